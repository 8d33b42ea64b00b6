-- Keeping the queue's history bounded: the log's retention, and a per-minute statistics rollup
-- folded in from the log, which outlives it. Both are done by pgq._maintain, in small batches,
-- from pgq.tick (the background worker's round, or a client's tick in SQL-only installs).

-- The queue's own settings and the maintenance's state: one row, made by the first
-- maintenance or setting (a fresh install has none, and reads the defaults). Restoring a dump
-- restores it.
CREATE TABLE pgq.settings (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- Log rows older than this are deleted; NULL keeps them forever (an installation upgraded
    -- from before 0.6.0 starts so). A fresh install's default is 7 days.
    log_retention    interval DEFAULT '7 days'
                     CHECK (log_retention BETWEEN '0' AND '100 years'),
    -- pgq.stats rows older than this are deleted.
    stats_retention  interval NOT NULL DEFAULT '90 days'
                     CHECK (stats_retention BETWEEN '1 hour' AND '100 years'),
    -- The rollup's watermark: every log row with id <= stats_folded_to is in pgq.stats.
    stats_folded_to  bigint NOT NULL DEFAULT 0,
    -- The next range to fold, (stats_folded_to, stats_pending_to], and the snapshot xmax it was
    -- noted at: it is folded once every transaction running then has ended.
    stats_pending_to bigint,
    stats_pending_xmax xid8,
    -- When the last round ran, and when the next is due (a second later while work is
    -- left, 30 seconds otherwise).
    maintained_at    timestamptz,
    next_round       timestamptz,
    updated          timestamptz NOT NULL DEFAULT now()
);

-- Outcomes per minute (of the log row's time), entrypoint and status: how many, and their run
-- times (created - picked_at) in seconds. Retries and requeues ('queued') are counted too.
CREATE TABLE pgq.stats (
    minute           timestamptz NOT NULL,
    entrypoint       text NOT NULL,
    status           pgq.job_state NOT NULL,
    count            bigint NOT NULL,
    run_seconds_sum  double precision NOT NULL DEFAULT 0,
    run_seconds_max  double precision,
    PRIMARY KEY (minute, entrypoint, status)
);

SELECT pg_catalog.pg_extension_config_dump('pgq.settings', '');
SELECT pg_catalog.pg_extension_config_dump('pgq.stats', '');

-- pgq.set_log_retention: log rows older than `retention` are deleted by the maintenance (in
-- batches, after the rollup has counted them); NULL keeps the log forever. From 0 to 100 years.
CREATE FUNCTION pgq.set_log_retention(retention interval) RETURNS pgq.settings
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    result pgq.settings;
BEGIN
    IF retention < '0' OR retention > '100 years' THEN
        PERFORM pgq._invalid(format(
            'retention must be from 0 to 100 years, or NULL to keep the log forever, not %s',
            retention));
    END IF;
    INSERT INTO pgq.settings AS s (log_retention) VALUES (retention)
    ON CONFLICT (singleton) DO UPDATE SET log_retention = retention, updated = now()
    RETURNING s.* INTO result;
    RETURN result;
END
$$;

-- pgq.set_stats_retention: pgq.stats rows older than `retention` (1 hour to 100 years) are
-- deleted by the maintenance.
CREATE FUNCTION pgq.set_stats_retention(retention interval) RETURNS pgq.settings
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    result pgq.settings;
BEGIN
    IF retention IS NULL OR retention < '1 hour' OR retention > '100 years' THEN
        PERFORM pgq._invalid(format('retention must be from 1 hour to 100 years, not %s',
            coalesce(retention::text, 'NULL')));
    END IF;
    INSERT INTO pgq.settings AS s (stats_retention) VALUES (retention)
    ON CONFLICT (singleton) DO UPDATE SET stats_retention = retention, updated = now()
    RETURNING s.* INTO result;
    RETURN result;
END
$$;

-- pgq._maintain: one round of maintenance, bounded: folds up to 50,000 log ids into
-- pgq.stats, deletes up to 10,000 log rows past their retention (only rows already folded)
-- and up to 10,000 expired pgq.stats rows. One session at a time (the others skip, without
-- waiting); at most one round a second. Returns when the next round is due: in a second while work is left, in
-- 30 seconds otherwise.
--
-- The rollup is exact, without a lock on the log. Log ids are drawn in time order, but rows
-- commit in another order, so a row below the highest visible id may still become visible.
-- Each round therefore notes the sequence's position and the snapshot's xmax, and folds that
-- range in a later round, once every transaction that was running has ended
-- (pg_snapshot_xmin has passed the noted xmax): then every row of the range is committed or
-- never will be. This holds because each writer of the log has changed or locked its job's
-- row before it draws a log id, so it already has its transaction id. A transaction left open
-- delays the rollup (not the queue) until it ends.
--
-- Every statement here has an index to use (a range of the log's primary key or of
-- log_created_idx, the statistics' key): sequential scans are off, so that a plan made while
-- the log was small does not read the whole log once it is large, and JIT with them (their
-- penalty would make the estimated costs pass jit_above_cost).
CREATE FUNCTION pgq._maintain() RETURNS timestamptz
LANGUAGE plpgsql
SET jit = off
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s        pgq.settings;
    upto     bigint;
    drawn    bigint;
    deleted  bigint := 0;
    expired  bigint := 0;
    behind   boolean := false;
BEGIN
    -- One session at a time, and none waits for another: a session that cannot take this
    -- transaction-level advisory lock (the key spells "pgqmaint" in ASCII) skips the round.
    -- (A row lock would not do: the first round inserts the settings row, and a second
    -- session's insert of it would wait for the first's transaction to end.)
    IF NOT pg_try_advisory_xact_lock(8099567169448799860) THEN
        RETURN now() + interval '30 seconds';
    END IF;
    SELECT * INTO s FROM pgq.settings;
    IF NOT FOUND THEN
        INSERT INTO pgq.settings DEFAULT VALUES ON CONFLICT (singleton) DO NOTHING;
        SELECT * INTO s FROM pgq.settings;
    END IF;
    IF s.next_round > now() THEN
        RETURN s.next_round;
    END IF;

    -- A noted xmax beyond this server's (settings restored from another server's dump) would
    -- never be passed: note the range again.
    IF s.stats_pending_xmax > pg_snapshot_xmax(pg_current_snapshot()) THEN
        s.stats_pending_to := NULL;
    END IF;
    -- Fold the pending range once it is final, 50,000 ids at most.
    IF s.stats_pending_to IS NOT NULL
       AND pg_snapshot_xmin(pg_current_snapshot()) > s.stats_pending_xmax THEN
        upto := least(s.stats_pending_to, s.stats_folded_to + 50000);
        INSERT INTO pgq.stats AS t (minute, entrypoint, status, count, run_seconds_sum,
                                    run_seconds_max)
        SELECT date_trunc('minute', l.created), l.entrypoint, l.status, count(*),
               coalesce(sum(extract(epoch FROM l.created - l.picked_at)), 0),
               max(extract(epoch FROM l.created - l.picked_at))
        FROM pgq.log l
        WHERE l.id > s.stats_folded_to AND l.id <= upto
        GROUP BY 1, 2, 3
        ON CONFLICT (minute, entrypoint, status) DO UPDATE SET
            count = t.count + excluded.count,
            run_seconds_sum = t.run_seconds_sum + excluded.run_seconds_sum,
            run_seconds_max = greatest(t.run_seconds_max, excluded.run_seconds_max);
        s.stats_folded_to := upto;
        IF upto < s.stats_pending_to THEN
            behind := true;
        ELSE
            s.stats_pending_to := NULL;
        END IF;
    END IF;
    -- Note the next range.
    IF s.stats_pending_to IS NULL THEN
        SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END INTO drawn
        FROM pgq.log_id_seq;
        IF drawn > s.stats_folded_to THEN
            s.stats_pending_to := drawn;
            s.stats_pending_xmax := pg_snapshot_xmax(pg_current_snapshot());
        END IF;
    END IF;

    -- The log's retention: only rows the rollup has counted. The oldest 10,000 past the
    -- retention, read in log_created_idx order (so a round with nothing to delete reads
    -- nothing); the id bound applies to those alone, or the planner would walk the primary
    -- key over the whole log for it.
    IF s.log_retention IS NOT NULL THEN
        DELETE FROM pgq.log l
        WHERE l.id IN (SELECT o.id
                       FROM (SELECT x.id FROM pgq.log x
                             WHERE x.created < now() - s.log_retention
                             ORDER BY x.created LIMIT 10000) o
                       WHERE o.id <= s.stats_folded_to);
        GET DIAGNOSTICS deleted = ROW_COUNT;
    END IF;
    DELETE FROM pgq.stats t
    WHERE (t.minute, t.entrypoint, t.status) IN (
        SELECT o.minute, o.entrypoint, o.status FROM pgq.stats o
        WHERE o.minute < now() - s.stats_retention
        ORDER BY o.minute LIMIT 10000);
    GET DIAGNOSTICS expired = ROW_COUNT;

    s.next_round := now() + CASE WHEN behind OR deleted = 10000 OR expired = 10000
                                 THEN interval '1 second' ELSE interval '30 seconds' END;
    UPDATE pgq.settings SET stats_folded_to = s.stats_folded_to,
        stats_pending_to = s.stats_pending_to, stats_pending_xmax = s.stats_pending_xmax,
        maintained_at = now(), next_round = s.next_round;
    RETURN s.next_round;
END
$$;
