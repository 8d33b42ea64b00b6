-- pgq.dequeue: claim up to batch_size jobs of these entrypoints, best first (priority DESC,
-- id ASC across all of them), and return them in that order.
--
-- Paused entrypoints (pgq.pause) are left out. Eligible: queued jobs whose execute_after has
-- passed, and picked jobs whose heartbeat is older than their entrypoint's heartbeat_timeout
-- (a stale re-pick, by any worker, the holder too; not held back by limits, since the job
-- already holds a seat). Every claim takes the job's next claim token (claim_token + 1). Stale jobs whose cancel was requested are not
-- claimed: they end as canceled.
--
-- While an old snapshot pins the xmin horizon, a session's claims start after the last job it
-- claimed (the claim cursor, below): jobs it passed are claimed at its next read of the head.
--
-- Limits. Claimers of an entrypoint with a concurrency_limit or rate_limit first lock its
-- pgq.entrypoints row (in name order, so they cannot deadlock): a concurrent claimer waits
-- for the first to commit. The next statement then takes a new snapshot (READ COMMITTED),
-- so it counts the seats and tokens that committed claims left. Unlimited entrypoints take
-- no lock at all.
CREATE FUNCTION pgq.dequeue(
    entrypoints text[],
    batch_size  int DEFAULT 1,
    worker_id   uuid DEFAULT NULL
) RETURNS SETOF pgq.jobs
-- Planner settings (docs/design/0006): the planner cannot estimate the per-entrypoint LIMIT and
-- guesses 10 % of the table. Custom plans therefore always looked cheaper than the generic one,
-- so every call planned the claim again (1 ms of a 1.4 ms claim of one job); the generic plan is
-- forced, and it stays good because the claimed rows are updated by id (= ANY, an index scan)
-- rather than through a join whose plan follows that guess. Sequential scans are off: a session
-- keeps its generic plan, and one made while the queue was empty (a worker starting on an idle
-- queue) chose them; when the queue then grew, every claim read the whole table (852 against
-- 15 776 jobs/s in the benchmark's mixed load). Every statement here has an index to use. JIT is
-- off: on a large queue the guessed cost crossed jit_above_cost and each claim paid ~50 ms of
-- compilation (1M jobs).
LANGUAGE plpgsql
SET jit = off
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    names       text[];
    limited     text[];
    lim_allow   int[];
    lim_tokens  double precision[];
    clock       timestamptz;
    want        int := batch_size;
    got         bigint[];
    n_claimed   bigint;
    entries     bigint;
    wasted      bigint := 0;
    state_name  text;
    state       text;
    parts       text[];
    from_p      int[];
    from_id     bigint[];
    cur         text[];
    head        boolean;
    head_at     timestamptz;
    head_cost   interval;
    started     timestamptz;
    t0          timestamptz;
BEGIN
    IF entrypoints IS NULL OR cardinality(entrypoints) = 0 THEN
        PERFORM pgq._invalid(format('entrypoints must list at least one entrypoint, not %s',
            coalesce(quote_literal(entrypoints), 'NULL')));
    END IF;
    PERFORM pgq._check_entrypoint(e, format('entrypoints[%s]', i))
    FROM unnest(entrypoints) WITH ORDINALITY AS u(e, i)
    WHERE e IS NULL OR e = '' OR octet_length(e) > 255;
    IF batch_size IS NULL OR batch_size < 1 OR batch_size > 10000 THEN
        PERFORM pgq._invalid(format('batch_size must be from 1 to 10000, not %s',
            coalesce(batch_size::text, 'NULL')));
    END IF;
    names := ARRAY(SELECT DISTINCT e FROM unnest(entrypoints) AS e ORDER BY e);
    PERFORM pgq._end_expired_cancels(names);

    SELECT array_agg(l.name) INTO limited FROM (
        SELECT e.name FROM pgq.entrypoints e
        WHERE e.name = ANY (names) AND (e.concurrency_limit > 0 OR e.rate_limit > 0)
        ORDER BY e.name
        FOR UPDATE
    ) l;

    IF limited IS NOT NULL THEN
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_transaction_state',
                MESSAGE = format('pgq.dequeue of entrypoints with limits (%s) must run in READ '
                                 'COMMITTED, not %s', array_to_string(limited, ', '),
                                 current_setting('transaction_isolation')),
                HINT = 'a later snapshot is needed to count the seats and tokens in use';
        END IF;
        clock := clock_timestamp();
        SELECT array_agg(e.name ORDER BY e.name),
               array_agg(least(
                   CASE WHEN e.concurrency_limit > 0 THEN greatest(0, e.concurrency_limit - (
                       SELECT count(*) FROM pgq.jobs j
                       WHERE j.entrypoint = e.name AND j.status = 'picked'))
                   END,
                   least(floor(b.tokens), dequeue.batch_size)::int) ORDER BY e.name),
               array_agg(b.tokens ORDER BY e.name)
        INTO limited, lim_allow, lim_tokens
        FROM pgq.entrypoints e
        CROSS JOIN LATERAL (
            SELECT CASE WHEN e.rate_limit > 0 THEN least(greatest(1, e.rate_limit),
                coalesce(e.tokens + e.rate_limit
                                    * greatest(0, extract(epoch FROM clock - e.tokens_at)),
                         greatest(1, e.rate_limit)))
            END AS tokens
        ) b
        WHERE e.name = ANY (limited);
    END IF;

    -- The claim cursor (docs/design/0014-pinned-xmin.md). Claims normally read each
    -- entrypoint's jobs from the head of jobs_queued_idx. While an old snapshot pins the xmin
    -- horizon, the head keeps an entry for every job claimed since, which no claim can skip,
    -- and reading it costs more with every claim. When the last read of the head passed 1000
    -- or more such entries, a claim starts after the last job this session claimed of each
    -- entrypoint instead, and reads the head again (for retried, released and newly due jobs,
    -- and jobs whose enqueue committed after a later one's) at most a tenth of the time, and at
    -- least a second apart while the claims fill their batches. The state is a setting of the
    -- session, named after the entrypoint set: "head_read_at head_read_seconds wasted" and a
    -- cursor "priority:id" (or "-") per entrypoint. Claims with limits always read the head.
    state_name := 'pgq.claim_' || md5(names::text);
    IF limited IS NULL THEN
        state := current_setting(state_name, true);
    END IF;
    t0 := clock_timestamp();
    -- Our own format, or nothing: a value set by hand that is not ours is ignored.
    IF state ~ ('^[0-9]{1,12}(\.[0-9]{1,6})? [0-9]{1,6}(\.[0-9]{1,6})? [0-9]{1,12}'
                || '( (-?[0-9]{1,10}:-?[0-9]{1,19}|-))*$')
       AND cardinality(string_to_array(state, ' ')) = cardinality(names) + 3 THEN
        parts := string_to_array(state, ' ');
        head_at := to_timestamp(parts[1]::numeric);
        head_cost := parts[2]::numeric * interval '1 second';
        wasted := parts[3]::bigint;
        cur := parts[4:];
        FOR i IN 1 .. cardinality(names) LOOP
            IF cur[i] = '-' THEN
                from_p[i] := 2147483647;
                from_id[i] := -9223372036854775808;
            ELSE
                from_p[i] := least(greatest(split_part(cur[i], ':', 1)::numeric,
                                            -2147483648), 2147483647)::int;
                from_id[i] := least(greatest(split_part(cur[i], ':', 2)::numeric,
                                             -9223372036854775808), 9223372036854775807)::bigint;
            END IF;
        END LOOP;
        head := wasted < 1000 OR head_at > t0
                OR t0 - head_at >= greatest(interval '1 second', 10 * head_cost);
    ELSE
        head := true;
    END IF;

    FOR pass IN 1 .. 2 LOOP
        IF head THEN
            from_p := array_fill(2147483647, ARRAY[cardinality(names)]);
            from_id := array_fill((-9223372036854775808)::bigint, ARRAY[cardinality(names)]);
            started := clock_timestamp();
            -- Index entries read so far in this transaction: the difference after the claim,
            -- less the jobs claimed, is what the head made it pass.
            entries := pg_stat_get_xact_tuples_returned('pgq.jobs_queued_idx'::regclass)
                       + pg_stat_get_xact_tuples_returned('pgq.jobs_picked_idx'::regclass);
        END IF;
        WITH ask AS (
            -- A timeout beyond the allowed range (a row written around pgq.configure) is read
            -- as the longest one, rather than overflowing now() - timeout.
            SELECT a.name, a.p, a.id,
                   least(coalesce(s.heartbeat_timeout, '30 seconds'), '7 days') AS timeout,
                   l.allow
            FROM unnest(names, from_p, from_id) AS a(name, p, id)
            LEFT JOIN pgq.entrypoints s ON s.name = a.name
            LEFT JOIN unnest(limited, lim_allow) AS l(name, allow) ON l.name = a.name
            WHERE s.paused IS NOT TRUE  -- pgq.pause: nothing of it is claimed
        ), fresh AS (
            -- From the cursor (p, id) on, in index order: higher priorities from their head
            -- (jobs enqueued since), the rest of priority p, then lower priorities. From the
            -- head, (p, id) is (max int, min bigint).
            SELECT c.id, c.priority, c.entrypoint, true AS fresh
            FROM ask CROSS JOIN LATERAL (
                SELECT * FROM (SELECT * FROM (
                    SELECT j.id, j.priority, j.entrypoint FROM pgq.jobs j
                    WHERE j.entrypoint = ask.name AND j.status = 'queued'
                      AND j.execute_after <= now() AND j.priority > ask.p
                    ORDER BY j.priority DESC, j.id
                    LIMIT least(want, ask.allow)
                    FOR UPDATE SKIP LOCKED
                ) a UNION ALL SELECT * FROM (
                    SELECT j.id, j.priority, j.entrypoint FROM pgq.jobs j
                    WHERE j.entrypoint = ask.name AND j.status = 'queued'
                      AND j.execute_after <= now()
                      -- A range rather than "priority = ask.p", so that only this index
                      -- gives the order: with an equality, the generic plan read the
                      -- primary key from ask.id on (each job in id order, all of them).
                      AND j.priority >= ask.p AND j.priority <= ask.p AND j.id > ask.id
                    ORDER BY j.priority DESC, j.id
                    LIMIT least(want, ask.allow)
                    FOR UPDATE SKIP LOCKED
                ) a UNION ALL SELECT * FROM (
                    SELECT j.id, j.priority, j.entrypoint FROM pgq.jobs j
                    WHERE j.entrypoint = ask.name AND j.status = 'queued'
                      AND j.execute_after <= now() AND j.priority < ask.p
                    ORDER BY j.priority DESC, j.id
                    LIMIT least(want, ask.allow)
                    FOR UPDATE SKIP LOCKED
                ) a) u
                ORDER BY u.priority DESC, u.id
                LIMIT least(want, ask.allow)
            ) c
        ), stale AS (
            -- Read with the head only: under a pinned xmin this index keeps an entry for every
            -- job acked since, all with old heartbeats.
            SELECT c.id, c.priority, c.entrypoint, false AS fresh
            FROM ask CROSS JOIN LATERAL (
                SELECT j.id, j.priority, j.entrypoint FROM pgq.jobs j
                WHERE head AND j.entrypoint = ask.name AND j.status = 'picked'
                  AND j.heartbeat < now() - ask.timeout AND j.cancel_requested IS NULL
                ORDER BY j.priority DESC, j.id
                LIMIT want
                FOR UPDATE SKIP LOCKED
            ) c
        ), chosen AS (
            SELECT * FROM (SELECT * FROM fresh UNION ALL SELECT * FROM stale) u
            ORDER BY u.priority DESC, u.id
            LIMIT want
        ), bucket AS (
            UPDATE pgq.entrypoints e
            SET tokens = b.tokens - coalesce(c.n, 0), tokens_at = clock
            FROM unnest(limited, lim_tokens) AS b(name, tokens)
            LEFT JOIN (SELECT ch.entrypoint, count(*) AS n FROM chosen ch WHERE ch.fresh
                       GROUP BY ch.entrypoint) c ON c.entrypoint = b.name
            WHERE e.name = b.name AND b.tokens IS NOT NULL
        ), claimed AS (
            UPDATE pgq.jobs j
            SET status = 'picked', worker_id = dequeue.worker_id, heartbeat = now(),
                picked_at = now(), updated = now(), claim_token = j.claim_token + 1
            WHERE j.id = ANY (ARRAY(SELECT chosen.id FROM chosen))
            RETURNING j.id
        )
        SELECT coalesce(got, '{}') || coalesce(array_agg(c.id), '{}'),
               -- Each entrypoint's cursor moves to its last fresh claim, if it had one.
               ARRAY(SELECT coalesce(
                         (SELECT ch.priority || ':' || ch.id FROM chosen ch
                          WHERE ch.fresh AND ch.entrypoint = n.name
                          ORDER BY ch.priority, ch.id DESC LIMIT 1),
                         CASE WHEN n.p = 2147483647 AND n.id = -9223372036854775808 THEN
                             coalesce(cur[n.i], '-')
                         ELSE n.p || ':' || n.id END)
                     FROM unnest(names, from_p, from_id) WITH ORDINALITY AS n(name, p, id, i)
                     ORDER BY n.i),
               count(*)
        INTO got, cur, n_claimed
        FROM claimed c;

        IF head THEN
            head_at := started;
            head_cost := clock_timestamp() - started;
            wasted := greatest(0,
                pg_stat_get_xact_tuples_returned('pgq.jobs_queued_idx'::regclass)
                + pg_stat_get_xact_tuples_returned('pgq.jobs_picked_idx'::regclass)
                - entries - n_claimed);
        END IF;
        -- A claim from the cursor that comes back short reads the head for the rest when a
        -- tenth of the time allows it: deferred jobs that fell due and retried or released
        -- jobs are then claimed at once.
        EXIT WHEN head OR cardinality(got) >= batch_size
                  OR clock_timestamp() - head_at < 10 * head_cost;
        head := true;
        want := batch_size - cardinality(got);
    END LOOP;

    IF limited IS NULL THEN
        PERFORM set_config(state_name, format('%s %s %s %s',
            -- numeric: extract returns double precision before PostgreSQL 14.
            round(extract(epoch FROM head_at)::numeric, 6),
            round(extract(epoch FROM head_cost)::numeric, 6),
            wasted, array_to_string(cur, ' ')), false);
    END IF;
    -- The claimed rows, read again by id: best first, across both reads.
    RETURN QUERY SELECT j.* FROM pgq.jobs j WHERE j.id = ANY (got)
                 ORDER BY j.priority DESC, j.id;
END
$$;
