-- Schedules: cron expressions whose fires become ordinary jobs of their entrypoint.
-- The cron math is Rust (extension/src/cron.rs): pgq._cron_check, _cron_next, _cron_latest.

CREATE TABLE pgq.schedules (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entrypoint text NOT NULL CHECK (entrypoint <> '' AND octet_length(entrypoint) <= 255),
    expression text NOT NULL CHECK (expression <> ''),
    timezone   text NOT NULL DEFAULT 'UTC',
    -- The next fire time; NULL when the expression never fires again.
    next_run   timestamptz,
    last_run   timestamptz,
    enabled    boolean NOT NULL DEFAULT true,
    created    timestamptz NOT NULL DEFAULT now(),
    updated    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (entrypoint, expression),
    -- Rows written around pgq.schedule() must be valid too: a bad one would fail every tick.
    CHECK (pgq._cron_check(expression, timezone))
);

CREATE INDEX schedules_due_idx ON pgq.schedules (next_run) WHERE enabled;

-- Dumped with the database, like the other tables (sql/schema.sql).
SELECT pg_catalog.pg_extension_config_dump('pgq.schedules', '');
SELECT pg_catalog.pg_extension_config_dump('pgq.schedules_id_seq', '');

-- pgq.schedule: registers (upserts) a schedule and returns its id. Registering the same
-- (entrypoint, expression) again returns the same id and changes nothing but the time zone;
-- next_run is recomputed only if the time zone changed.
CREATE FUNCTION pgq.schedule(entrypoint text, expression text, timezone text DEFAULT 'UTC')
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    first timestamptz;
    sid   bigint;
BEGIN
    PERFORM pgq._check_entrypoint(entrypoint);
    IF expression IS NULL OR btrim(expression) = '' THEN
        PERFORM pgq._invalid(format('expression must be a cron expression, not %s',
            coalesce(quote_literal(expression), 'NULL')),
            'for example ''*/5 * * * *'' (every 5 minutes) or ''@daily''');
    END IF;
    IF timezone IS NULL OR timezone = '' THEN
        PERFORM pgq._invalid(format('timezone must be an IANA time zone name, not %s',
            coalesce(quote_literal(timezone), 'NULL')), 'for example ''UTC'' or ''Europe/Oslo''');
    END IF;
    first := pgq._cron_next(schedule.expression, schedule.timezone, now());
    IF first IS NULL THEN
        PERFORM pgq._invalid(format('cron expression %L never fires', schedule.expression));
    END IF;

    INSERT INTO pgq.schedules AS s (entrypoint, expression, timezone, next_run)
    VALUES (schedule.entrypoint, schedule.expression, schedule.timezone, first)
    ON CONFLICT (entrypoint, expression) DO UPDATE SET
        timezone = excluded.timezone,
        next_run = CASE WHEN s.timezone = excluded.timezone THEN s.next_run
                        ELSE excluded.next_run END,
        updated  = CASE WHEN s.timezone = excluded.timezone THEN s.updated ELSE now() END
    RETURNING s.id INTO sid;
    PERFORM pgq._wake_scheduler((SELECT s.next_run FROM pgq.schedules s WHERE s.id = sid));
    RETURN sid;
END
$$;

-- pgq.unschedule: removes one schedule of an entrypoint, or all of them (expression NULL).
-- Returns the count removed. Jobs already enqueued by them stay.
CREATE FUNCTION pgq.unschedule(entrypoint text, expression text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    PERFORM pgq._check_entrypoint(entrypoint);
    IF btrim(expression) = '' THEN
        PERFORM pgq._invalid('expression must be a cron expression, or NULL for all of the '
                             'entrypoint''s schedules');
    END IF;
    DELETE FROM pgq.schedules s
    WHERE s.entrypoint = unschedule.entrypoint
      AND (unschedule.expression IS NULL OR s.expression = unschedule.expression);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- pgq.unschedule_id: removes one schedule by its id (pgq.schedules.id). Returns the count
-- removed (0 or 1).
CREATE FUNCTION pgq.unschedule_id(schedule_id bigint) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    IF schedule_id IS NULL THEN
        PERFORM pgq._invalid('schedule_id must be a schedule''s id, not NULL');
    END IF;
    DELETE FROM pgq.schedules s WHERE s.id = unschedule_id.schedule_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- pgq.tick: fires every enabled schedule whose next_run has passed, in this transaction:
-- one job of its entrypoint each (headers: schedule_id, expression, scheduled_for), last_run
-- set, next_run advanced past now. Missed fires are coalesced into that one job, whose
-- scheduled_for is the latest fire. Rows are locked FOR UPDATE SKIP LOCKED, so concurrent
-- ticks turn each fire into exactly one job. Notifies like enqueue for the jobs it made.
-- The fires of a paused entrypoint (pgq.pause) are skipped: next_run advances, no job is
-- made, so a long pause does not pile up fires. Returns the earliest next due time of enabled
-- schedules, of deferred queued jobs and of the maintenance (pgq._maintain, run here: the
-- log's retention and the statistics rollup). It also ends, as canceled, running jobs whose
-- cancel was requested and whose lease has expired.
CREATE FUNCTION pgq.tick() RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    eps      text[];
    earliest timestamptz;
    maintain timestamptz;
BEGIN
    PERFORM pgq._end_expired_cancels(NULL);
    WITH due AS (
        SELECT s.id, s.entrypoint, s.expression, s.timezone
        FROM pgq.schedules s
        WHERE s.enabled AND s.next_run <= now()
        ORDER BY s.next_run
        FOR UPDATE SKIP LOCKED
    ), fired AS (
        SELECT d.*, pgq._cron_latest(d.expression, d.timezone, now()) AS scheduled_for,
               pgq._cron_next(d.expression, d.timezone, now()) AS next_run,
               coalesce(e.paused, false) AS paused
        FROM due d
        LEFT JOIN pgq.entrypoints e ON e.name = d.entrypoint
    ), advanced AS (
        UPDATE pgq.schedules s
        SET last_run = now(), next_run = f.next_run, updated = now()
        FROM fired f
        WHERE s.id = f.id
    ), enqueued AS (
        INSERT INTO pgq.jobs (entrypoint, headers)
        SELECT f.entrypoint, jsonb_build_object('schedule_id', f.id, 'expression', f.expression,
                                                'scheduled_for', f.scheduled_for)
        FROM fired f
        WHERE NOT f.paused
        ORDER BY f.id
        RETURNING entrypoint
    )
    SELECT array_agg(e.entrypoint) INTO eps FROM enqueued e;
    PERFORM pgq._notify_enqueued(eps);

    SELECT least(
        (SELECT min(s.next_run) FROM pgq.schedules s WHERE s.enabled),
        (SELECT min(j.execute_after) FROM pgq.jobs j
         WHERE j.status = 'queued' AND j.execute_after > j.created  -- jobs_deferred_idx
           AND j.execute_after > now()))
    INTO earliest;
    -- A failing maintenance must not stop the schedules: it is reported and retried later.
    BEGIN
        maintain := pgq._maintain();
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pgqueuer maintenance failed: % (SQLSTATE %)', SQLERRM, SQLSTATE;
        maintain := now() + interval '30 seconds';
    END;
    RETURN least(earliest, maintain);
END
$$;
