-- pgqueuer 0.6.0 -> 0.7.0. Run by ALTER EXTENSION pgqueuer UPDATE (pgq upgrade), in one
-- transaction; docs/updating.md says in which order to update files, servers and workers.
-- Assembled from sql/upgrade/0.6.0--0.7.0.sql (written by hand), the functions and views of sql/ and
-- sql/privileges.sql (docs/design/0016-assembled-upgrades.md).
-- It fails rather than queue the whole queue behind a long transaction's lock.
SET LOCAL lock_timeout = '5s';

-- sql/upgrade/0.6.0--0.7.0.sql
-- pgqueuer 0.6.0 -> 0.7.0 (issue 26).
--
-- New functions, which the assembly creates with the functions of sql/ and which
-- sql/privileges.sql grants; no table changes:
-- - pgq.overview(interval), the read model of pgq dashboard, pgq web and pgq metrics
--   (sql/overview.sql), granted to pgq_monitor;
-- - pgq._scheduler_round(timestamptz), the scheduler's round (sql/scheduler.sql), which
--   pgq._worker_round becomes a wrapper of for one release (a server still preloading the
--   0.6.0 library calls the old name);
-- - pgq._scheduler_serves(), whether a scheduler serves this database (the runtime asks it
--   instead of reading pg_stat_activity itself).

-- BEGIN functions of sql/

-- sql/schema.sql
CREATE OR REPLACE FUNCTION pgq._invalid(message text, hint text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF hint IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = message;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = message, HINT = hint;
END
$$;

CREATE OR REPLACE FUNCTION pgq._check_claim_tokens(job_ids bigint[], claim_tokens int[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF claim_tokens IS NOT NULL AND (cardinality(claim_tokens) <> cardinality(job_ids)
                                     OR array_position(claim_tokens, NULL) IS NOT NULL) THEN
        PERFORM pgq._invalid(format(
            'claim_tokens must hold one claim token per job id (%s), not %s',
            cardinality(job_ids), claim_tokens),
            'pass NULL to act on whatever claim each job is in (weaker fencing)');
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION pgq._name_problem(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN name IS NULL THEN 'NULL'
                WHEN name = '' THEN ''''''
                WHEN octet_length(name) > 255
                    THEN format('a name of %s bytes (%s...)', octet_length(name),
                                quote_literal(left(name, 20)))
           END
$$;

CREATE OR REPLACE FUNCTION pgq._check_entrypoint(entrypoint text, argument text DEFAULT 'entrypoint')
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- The test is inline; pgq._name_problem (a SQL function, planned at every call) only
    -- words the error.
    IF entrypoint IS NULL OR entrypoint = '' OR octet_length(entrypoint) > 255 THEN
        PERFORM pgq._invalid(format('%s must be a non-empty name of at most 255 bytes, not %s',
            argument, pgq._name_problem(entrypoint)));
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION pgq._notify_enqueued(entrypoints text[]) RETURNS void
-- PL/pgSQL rather than SQL: a SQL function's statement is planned anew at every call.
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF entrypoints IS NULL OR cardinality(entrypoints) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_notify('pgq', jsonb_build_object('type', 'enqueued',
                                                'entrypoints', jsonb_agg(n.name ORDER BY n.name))::text)
    FROM (SELECT d.name,
                 (sum(octet_length(to_jsonb(d.name)::text) + 2) OVER (ORDER BY d.name)
                  - octet_length(to_jsonb(d.name)::text) - 2) / 6000 AS part
          FROM (SELECT DISTINCT e AS name FROM unnest(entrypoints) AS e WHERE e IS NOT NULL) d) n
    GROUP BY n.part;
END
$$;

CREATE OR REPLACE FUNCTION pgq._notify_cancel(ids bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF ids IS NULL OR cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_notify('pgq', jsonb_build_object('type', 'cancel',
                                                'ids', jsonb_agg(c.id ORDER BY c.id))::text)
    FROM (SELECT i.id, (row_number() OVER (ORDER BY i.id) - 1) / 300 AS part
          FROM (SELECT DISTINCT u AS id FROM unnest(ids) AS u WHERE u IS NOT NULL) i) c
    GROUP BY c.part;
END
$$;

-- sql/version.sql
CREATE OR REPLACE FUNCTION pgq.version() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pgqueuer'
$$;

COMMENT ON FUNCTION pgq.version() IS 'Version of the pgqueuer extension installed in this database';

-- sql/configure.sql
CREATE OR REPLACE FUNCTION pgq.configure(
    entrypoint        text,
    concurrency_limit int DEFAULT NULL,
    rate_limit        double precision DEFAULT NULL,
    heartbeat_timeout interval DEFAULT NULL,
    max_attempts      int DEFAULT NULL,
    retry_delay       interval DEFAULT NULL,
    retry_delay_max   interval DEFAULT NULL,
    on_failure        text DEFAULT NULL,
    notify_completion boolean DEFAULT NULL
) RETURNS pgq.entrypoints
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    result pgq.entrypoints;
    lease  interval;
BEGIN
    PERFORM pgq._check_entrypoint(entrypoint);
    IF concurrency_limit NOT BETWEEN 0 AND 1000000 THEN
        PERFORM pgq._invalid(format(
            'concurrency_limit must be from 0 (unlimited) to 1000000, not %s', concurrency_limit));
    END IF;
    IF NOT rate_limit BETWEEN 0 AND 1000000 THEN
        PERFORM pgq._invalid(format(
            'rate_limit must be from 0 (unlimited) to 1000000 jobs per second, not %s',
            rate_limit));
    END IF;
    IF heartbeat_timeout NOT BETWEEN '1 second' AND '7 days' THEN
        PERFORM pgq._invalid(format('heartbeat_timeout must be from 1 second to 7 days, not %s',
            heartbeat_timeout),
            'a worker heartbeats several times per heartbeat_timeout; a job whose worker stays '
            'silent that long is claimed again');
    END IF;
    IF max_attempts NOT BETWEEN 1 AND 1000000 THEN
        PERFORM pgq._invalid(format('max_attempts must be from 1 (no retry) to 1000000, not %s',
            max_attempts));
    END IF;
    IF retry_delay NOT BETWEEN '0' AND '7 days' THEN
        PERFORM pgq._invalid(format('retry_delay must be from 0 to 7 days, not %s', retry_delay));
    END IF;
    IF retry_delay_max NOT BETWEEN '0' AND '30 days' THEN
        PERFORM pgq._invalid(format('retry_delay_max must be from 0 to 30 days, not %s',
            retry_delay_max));
    END IF;
    IF on_failure NOT IN ('delete', 'hold') THEN
        PERFORM pgq._invalid(format('on_failure must be ''delete'' or ''hold'', not %L',
            on_failure));
    END IF;

    SELECT e.heartbeat_timeout INTO lease
    FROM pgq.entrypoints e WHERE e.name = configure.entrypoint
    FOR UPDATE;
    lease := coalesce(lease, '30 seconds');

    INSERT INTO pgq.entrypoints AS e (name, concurrency_limit, rate_limit, heartbeat_timeout,
        max_attempts, retry_delay, retry_delay_max, on_failure, notify_completion)
    VALUES (configure.entrypoint,
        coalesce(configure.concurrency_limit, 0),
        coalesce(configure.rate_limit, 0),
        coalesce(configure.heartbeat_timeout, '30 seconds'),
        coalesce(configure.max_attempts, 1),
        coalesce(configure.retry_delay, '1 second'),
        coalesce(configure.retry_delay_max, '5 minutes'),
        coalesce(configure.on_failure, 'delete'),
        coalesce(configure.notify_completion, false))
    ON CONFLICT (name) DO UPDATE SET
        concurrency_limit = coalesce(configure.concurrency_limit, e.concurrency_limit),
        rate_limit        = coalesce(configure.rate_limit, e.rate_limit),
        heartbeat_timeout = coalesce(configure.heartbeat_timeout, e.heartbeat_timeout),
        max_attempts      = coalesce(configure.max_attempts, e.max_attempts),
        retry_delay       = coalesce(configure.retry_delay, e.retry_delay),
        retry_delay_max   = coalesce(configure.retry_delay_max, e.retry_delay_max),
        on_failure        = coalesce(configure.on_failure, e.on_failure),
        notify_completion = coalesce(configure.notify_completion, e.notify_completion),
        updated           = now()
    RETURNING e.* INTO result;

    IF result.heartbeat_timeout <> lease THEN
        UPDATE pgq.jobs j SET heartbeat = now()
        WHERE j.entrypoint = configure.entrypoint AND j.status = 'picked';
        PERFORM pg_notify('pgq', jsonb_build_object(
            'type', 'configured', 'entrypoints', jsonb_build_array(configure.entrypoint))::text);
    END IF;
    RETURN result;
END
$$;

CREATE OR REPLACE FUNCTION pgq.pause(entrypoint text) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    was boolean;
BEGIN
    PERFORM pgq._check_entrypoint(entrypoint);
    SELECT e.paused INTO was FROM pgq.entrypoints e WHERE e.name = pause.entrypoint FOR UPDATE;
    INSERT INTO pgq.entrypoints AS e (name, paused) VALUES (pause.entrypoint, true)
    ON CONFLICT (name) DO UPDATE SET paused = true, updated = now();
    RETURN NOT coalesce(was, false);
END
$$;

CREATE OR REPLACE FUNCTION pgq.resume(entrypoint text) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    PERFORM pgq._check_entrypoint(entrypoint);
    UPDATE pgq.entrypoints e SET paused = false, updated = now()
    WHERE e.name = resume.entrypoint AND e.paused;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pgq._notify_enqueued(ARRAY[resume.entrypoint]);
    END IF;
    RETURN n > 0;
END
$$;

-- sql/enqueue.sql
CREATE OR REPLACE FUNCTION pgq.enqueue_many(
    entrypoints   text[],
    payloads      bytea[] DEFAULT NULL,
    priorities    int[] DEFAULT NULL,
    execute_after interval[] DEFAULT NULL,
    dedupe_keys   text[] DEFAULT NULL,
    headers       jsonb[] DEFAULT NULL,
    on_conflict   text DEFAULT 'raise'
) RETURNS bigint[]
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n        int := cardinality(entrypoints);
    bad      record;
    ids      bigint[];
    inserted bigint[];
    now_eps  text[];
    seq      regclass;
BEGIN
    IF entrypoints IS NULL THEN
        PERFORM pgq._invalid('entrypoints must be an array of entrypoint names, not NULL');
    END IF;
    IF on_conflict IS NULL OR on_conflict NOT IN ('raise', 'skip') THEN
        PERFORM pgq._invalid(format('on_conflict must be ''raise'' or ''skip'', not %s',
            coalesce(quote_literal(on_conflict), 'NULL')));
    END IF;
    IF payloads IS NOT NULL AND cardinality(payloads) <> n
       OR priorities IS NOT NULL AND cardinality(priorities) <> n
       OR execute_after IS NOT NULL AND cardinality(execute_after) <> n
       OR dedupe_keys IS NOT NULL AND cardinality(dedupe_keys) <> n
       OR headers IS NOT NULL AND cardinality(headers) <> n THEN
        PERFORM pgq._invalid(format(
            'every array must have one element per entrypoint (%s): payloads %s, priorities %s, '
            'execute_after %s, dedupe_keys %s, headers %s',
            n, coalesce(cardinality(payloads)::text, 'NULL'),
            coalesce(cardinality(priorities)::text, 'NULL'),
            coalesce(cardinality(execute_after)::text, 'NULL'),
            coalesce(cardinality(dedupe_keys)::text, 'NULL'),
            coalesce(cardinality(headers)::text, 'NULL')),
            'pass NULL instead of an array to use the default for every job');
    END IF;
    IF n = 0 THEN
        RETURN '{}';
    END IF;

    SELECT i, e, d INTO bad
    FROM unnest(entrypoints, execute_after) WITH ORDINALITY AS u(e, d, i)
    WHERE e IS NULL OR e = '' OR octet_length(e) > 255 OR d < '0'
    LIMIT 1;
    IF FOUND THEN
        PERFORM pgq._check_entrypoint(bad.e, format('entrypoints[%s]', bad.i));
        PERFORM pgq._invalid(format('execute_after[%s] must not be negative, not %s',
            bad.i, bad.d));
    END IF;

    -- The sequence is looked up once: pg_get_serial_sequence in the select list ran once a
    -- row (a catalog lookup each; a batch of 1000 enqueued at 0.75x the rate it does now).
    seq := pg_get_serial_sequence('pgq.jobs', 'id')::regclass;
    ids := ARRAY(SELECT nextval(seq) FROM generate_series(1, n));

    -- Rows without a dedupe key cannot conflict: they are inserted without ON CONFLICT, whose
    -- speculative insertion costs a check of the arbiter index and extra WAL a row (pgbench:
    -- batches of 1000 at 1.1x the rate of one ON CONFLICT insert for all).
    WITH input AS (
        SELECT i, ids[i] AS id, e, p, coalesce(pr, 0) AS pr, now() + coalesce(d, '0') AS run_at,
               k, h
        FROM unnest(entrypoints, payloads, priorities, execute_after, dedupe_keys, headers)
             WITH ORDINALITY AS u(e, p, pr, d, k, h, i)
    ), plain AS (
        INSERT INTO pgq.jobs AS j (id, entrypoint, priority, payload, headers, dedupe_key,
                                   execute_after)
        SELECT id, e, pr, p, h, k, run_at FROM input WHERE k IS NULL ORDER BY i
        RETURNING j.id, j.entrypoint, j.execute_after
    ), keyed AS (
        INSERT INTO pgq.jobs AS j (id, entrypoint, priority, payload, headers, dedupe_key,
                                   execute_after)
        SELECT id, e, pr, p, h, k, run_at FROM input WHERE k IS NOT NULL ORDER BY i
        ON CONFLICT (dedupe_key) WHERE status IN ('queued', 'picked') AND dedupe_key IS NOT NULL
        DO NOTHING
        RETURNING j.id, j.entrypoint, j.execute_after
    ), rows AS (
        SELECT * FROM plain UNION ALL SELECT * FROM keyed
    )
    SELECT array_agg(id),
           array_agg(DISTINCT entrypoint) FILTER (WHERE execute_after <= now())
    INTO inserted, now_eps
    FROM rows;

    IF coalesce(cardinality(inserted), 0) < n THEN
        IF on_conflict = 'raise' THEN
            SELECT i, k INTO bad
            FROM unnest(ids, dedupe_keys) WITH ORDINALITY AS u(id, k, i)
            WHERE id <> ALL (coalesce(inserted, '{}'))
            ORDER BY i LIMIT 1;
            RAISE EXCEPTION USING ERRCODE = 'unique_violation',
                MESSAGE = format('dedupe key %L is already used by a queued or picked job',
                                 bad.k),
                DETAIL = format('dedupe_keys[%s] = %L; nothing was enqueued', bad.i, bad.k),
                HINT = 'use on_conflict => ''skip'' to skip duplicate jobs instead';
        END IF;
        ids := ARRAY(SELECT CASE WHEN id = ANY (inserted) THEN id END
                     FROM unnest(ids) WITH ORDINALITY AS u(id, i) ORDER BY i);
    END IF;

    PERFORM pgq._notify_enqueued(now_eps);
    PERFORM pgq._wake_scheduler(now() + (SELECT min(d) FROM unnest(execute_after) AS d
                                          WHERE d > '0'));
    RETURN ids;
END
$$;

CREATE OR REPLACE FUNCTION pgq.enqueue(
    entrypoint    text,
    payload       bytea DEFAULT NULL,
    priority      int DEFAULT 0,
    execute_after interval DEFAULT NULL,
    dedupe_key    text DEFAULT NULL,
    headers       jsonb DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    new_id bigint;
BEGIN
    PERFORM pgq._check_entrypoint(entrypoint);
    IF execute_after < '0' THEN
        PERFORM pgq._invalid(format('execute_after must not be negative, not %s',
            execute_after));
    END IF;

    INSERT INTO pgq.jobs AS j (entrypoint, priority, payload, headers, dedupe_key, execute_after)
    VALUES (enqueue.entrypoint, coalesce(enqueue.priority, 0), enqueue.payload, enqueue.headers,
            enqueue.dedupe_key, now() + coalesce(enqueue.execute_after, '0'))
    ON CONFLICT (dedupe_key) WHERE status IN ('queued', 'picked') AND dedupe_key IS NOT NULL
        DO NOTHING
    RETURNING j.id INTO new_id;

    IF new_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'unique_violation',
            MESSAGE = format('dedupe key %L is already used by a queued or picked job',
                             enqueue.dedupe_key),
            DETAIL = 'nothing was enqueued',
            HINT = 'pgq.enqueue_many(..., on_conflict => ''skip'') skips duplicates instead';
    END IF;
    IF coalesce(enqueue.execute_after, '0') <= '0' THEN
        PERFORM pgq._notify_enqueued(ARRAY[enqueue.entrypoint]);
    ELSE
        PERFORM pgq._wake_scheduler(now() + enqueue.execute_after);
    END IF;
    RETURN new_id;
END
$$;

-- sql/dequeue.sql
CREATE OR REPLACE FUNCTION pgq.dequeue(
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

-- sql/heartbeat.sql
CREATE OR REPLACE FUNCTION pgq.heartbeat(
    job_ids      bigint[],
    worker_id    uuid DEFAULT NULL,
    claim_tokens int[] DEFAULT NULL
) RETURNS bigint
-- Rows are found by id; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    holder ALIAS FOR $2;  -- "heartbeat.worker_id" would read as the heartbeat column
    n      bigint;
BEGIN
    IF job_ids IS NULL THEN
        PERFORM pgq._invalid('job_ids must be an array of job ids, not NULL');
    END IF;
    IF claim_tokens IS NOT NULL THEN
        PERFORM pgq._check_claim_tokens(job_ids, claim_tokens);
    END IF;
    UPDATE pgq.jobs j SET heartbeat = now()
    FROM unnest(job_ids, claim_tokens) AS u(id, token)
    WHERE j.id = u.id AND j.status IS NOT DISTINCT FROM 'picked'
      AND (holder IS NULL OR j.worker_id = holder)
      AND (u.token IS NULL OR j.claim_token = u.token);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION pgq.lease(entrypoints text[]) RETURNS interval
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    shortest interval;
BEGIN
    IF entrypoints IS NULL OR cardinality(entrypoints) = 0 THEN
        PERFORM pgq._invalid('entrypoints must list at least one entrypoint');
    END IF;
    SELECT min(least(coalesce(e.heartbeat_timeout, '30 seconds'), '7 days')) INTO shortest
    FROM unnest(entrypoints) AS u(name)
    LEFT JOIN pgq.entrypoints e ON e.name = u.name;
    RETURN shortest;
END
$$;

-- sql/ack.sql
CREATE OR REPLACE FUNCTION pgq.ack(
    job_ids      bigint[],
    statuses     pgq.job_state[] DEFAULT NULL,
    details      jsonb[] DEFAULT NULL,
    worker_id    uuid DEFAULT NULL,
    claim_tokens int[] DEFAULT NULL
) RETURNS bigint
-- Rows are found by index; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    fast bigint := 0;
    bad  record;
BEGIN
    IF job_ids IS NULL THEN
        PERFORM pgq._invalid('job_ids must be an array of job ids, not NULL');
    END IF;
    IF statuses IS NOT NULL AND cardinality(statuses) <> cardinality(job_ids)
       OR details IS NOT NULL AND cardinality(details) <> cardinality(job_ids) THEN
        PERFORM pgq._invalid(format(
            'statuses and details must have one element per job id (%s), not %s and %s',
            cardinality(job_ids), coalesce(cardinality(statuses)::text, 'NULL'),
            coalesce(cardinality(details)::text, 'NULL')),
            'pass NULL statuses to ack every job as successful');
    END IF;
    IF claim_tokens IS NOT NULL THEN
        PERFORM pgq._check_claim_tokens(job_ids, claim_tokens);
    END IF;
    SELECT i, s INTO bad FROM unnest(statuses) WITH ORDINALITY AS u(s, i)
    WHERE s IS NULL OR s NOT IN ('successful', 'exception', 'canceled')
    LIMIT 1;
    IF FOUND THEN
        PERFORM pgq._invalid(format(
            'statuses[%s] must be successful, exception or canceled, not %s',
            bad.i, coalesce(bad.s::text, 'NULL')));
    END IF;

    -- The common case first: every outcome successful. Each job is deleted by a DELETE whose
    -- WHERE carries the fencing (PostgreSQL checks it again on the row it locks, so a
    -- concurrent cancel or re-pick is seen) and logged from what the DELETE returns: no row
    -- lock of its own before the delete, one WAL record a job fewer (docs/benchmarks.md: the
    -- claim-and-ack cycle at 1.3x the rate of the locking path). Jobs it leaves (a cancel was
    -- requested, or the report is fenced off) go the general way below.
    IF statuses IS NULL OR NOT EXISTS (SELECT FROM unnest(statuses) AS s WHERE s <> 'successful')
    THEN
        WITH input AS (
            SELECT DISTINCT ON (u.id) u.id, u.d AS detail, u.t AS token
            FROM unnest(job_ids, details, claim_tokens) WITH ORDINALITY AS u(id, d, t, i)
            WHERE u.id IS NOT NULL
            ORDER BY u.id, u.i
        ), deleted AS (
            DELETE FROM pgq.jobs j USING input i
            WHERE j.id = i.id AND j.status IS NOT DISTINCT FROM 'picked'
              AND j.cancel_requested IS NULL
              AND (ack.worker_id IS NULL OR j.worker_id = ack.worker_id)
              AND (i.token IS NULL OR j.claim_token = i.token)
            RETURNING j.id, j.entrypoint, j.priority, j.attempts, j.worker_id, j.created,
                      j.picked_at, i.detail
        )
        INSERT INTO pgq.log (job_id, entrypoint, priority, status, worker_id, attempts, detail,
                             enqueued_at, picked_at)
        SELECT d.id, d.entrypoint, d.priority, 'successful', coalesce(ack.worker_id, d.worker_id),
               d.attempts, d.detail, d.created, d.picked_at
        FROM deleted d;
        GET DIAGNOSTICS fast = ROW_COUNT;
        IF fast = (SELECT count(DISTINCT u) FROM unnest(job_ids) AS u) THEN
            RETURN fast;
        END IF;
    END IF;

    RETURN fast + pgq._end_claims(job_ids, statuses, details, ack.worker_id, claim_tokens,
                                  may_retry => true);
END
$$;

CREATE OR REPLACE FUNCTION pgq.fail(
    job_ids      bigint[],
    details      jsonb[] DEFAULT NULL,
    worker_id    uuid DEFAULT NULL,
    claim_tokens int[] DEFAULT NULL
) RETURNS bigint
-- Rows are found by index; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF job_ids IS NULL THEN
        PERFORM pgq._invalid('job_ids must be an array of job ids, not NULL');
    END IF;
    IF details IS NOT NULL AND cardinality(details) <> cardinality(job_ids) THEN
        PERFORM pgq._invalid(format(
            'details must have one element per job id (%s), not %s',
            cardinality(job_ids), cardinality(details)),
            'pass NULL details to fail every job without a detail');
    END IF;
    IF claim_tokens IS NOT NULL THEN
        PERFORM pgq._check_claim_tokens(job_ids, claim_tokens);
    END IF;
    IF cardinality(job_ids) = 0 THEN
        RETURN 0;
    END IF;
    RETURN pgq._end_claims(job_ids,
        array_fill('exception'::pgq.job_state, ARRAY[cardinality(job_ids)]), details,
        fail.worker_id, claim_tokens, may_retry => false);
END
$$;

CREATE OR REPLACE FUNCTION pgq._end_claims(
    job_ids      bigint[],
    statuses     pgq.job_state[],
    details      jsonb[],
    worker_id    uuid,
    claim_tokens int[],
    may_retry    boolean
) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n        bigint;
    retry_at timestamptz;
BEGIN
    WITH input AS (
        SELECT DISTINCT ON (u.id) u.id, coalesce(u.s, 'successful') AS outcome, u.d AS detail,
               u.t AS token
        FROM unnest(job_ids, statuses, details, claim_tokens) WITH ORDINALITY AS u(id, s, d, t, i)
        WHERE u.id IS NOT NULL
        ORDER BY u.id, u.i
    ), target AS (
        SELECT j.id, j.entrypoint, j.priority, j.attempts, j.worker_id, j.created, j.picked_at,
               j.cancel_requested IS NOT NULL AS canceled, i.outcome, i.detail,
               coalesce(e.max_attempts, 1) AS max_attempts,
               coalesce(e.retry_delay, '1 second') AS retry_delay,
               coalesce(e.retry_delay_max, '5 minutes') AS retry_delay_max,
               coalesce(e.on_failure, 'delete') AS on_failure
        FROM input i
        JOIN pgq.jobs j ON j.id = i.id
        LEFT JOIN pgq.entrypoints e ON e.name = j.entrypoint
        WHERE j.status IS NOT DISTINCT FROM 'picked'
          AND (_end_claims.worker_id IS NULL OR j.worker_id = _end_claims.worker_id)
          AND (i.token IS NULL OR j.claim_token = i.token)
        FOR UPDATE OF j
    ), decided AS (
        SELECT t.*,
               CASE WHEN t.canceled THEN 'cancel'
                    WHEN t.outcome = 'exception' AND may_retry
                         AND t.attempts + 1 < t.max_attempts THEN 'retry'
                    WHEN t.outcome = 'exception' AND t.on_failure = 'hold' THEN 'hold'
                    ELSE 'delete'
               END AS action,
               -- Only a retry has a backoff, computed in seconds so that no number of
               -- attempts overflows an interval, and capped at retry_delay_max (at most 30
               -- days, even for a row written around pgq.configure).
               CASE WHEN NOT t.canceled AND t.outcome = 'exception' AND may_retry
                         AND t.attempts + 1 < t.max_attempts THEN
                   make_interval(secs => least(
                       extract(epoch FROM t.retry_delay)::float8
                           * power(2::float8, least(greatest(t.attempts, 0), 1000)),
                       extract(epoch FROM least(t.retry_delay_max, '30 days'))::float8))
               END AS backoff
        FROM target t
    ), deleted AS (
        DELETE FROM pgq.jobs j USING decided d
        WHERE j.id = d.id AND d.action IN ('delete', 'cancel')
    ), changed AS (
        UPDATE pgq.jobs j SET
            status = CASE d.action WHEN 'retry' THEN 'queued' ELSE 'failed' END::pgq.job_state,
            attempts = CASE d.action WHEN 'retry' THEN j.attempts + 1 ELSE j.attempts END,
            worker_id = CASE d.action WHEN 'retry' THEN NULL ELSE j.worker_id END,
            execute_after = CASE d.action WHEN 'retry' THEN now() + d.backoff
                            ELSE j.execute_after END,
            detail = CASE d.action WHEN 'hold' THEN d.detail END,
            updated = now()
        FROM decided d
        WHERE j.id = d.id AND d.action IN ('retry', 'hold')
    ), logged AS (
        INSERT INTO pgq.log (job_id, entrypoint, priority, status, worker_id, attempts, detail,
                             enqueued_at, picked_at)
        SELECT d.id, d.entrypoint, d.priority,
               CASE d.action WHEN 'retry' THEN 'queued'
                             WHEN 'hold' THEN 'failed'
                             WHEN 'cancel' THEN 'canceled'
                             ELSE d.outcome END::pgq.job_state,
               coalesce(_end_claims.worker_id, d.worker_id),
               CASE d.action WHEN 'retry' THEN d.attempts + 1 ELSE d.attempts END,
               CASE d.action WHEN 'retry' THEN jsonb_build_object(
                                  'reason', 'exception', 'error', d.detail,
                                  'retry_at', now() + d.backoff)
                             WHEN 'cancel' THEN jsonb_build_object(
                                  'reason', 'canceled', 'previous_status', 'picked',
                                  'outcome', d.outcome, 'detail', d.detail)
                             ELSE d.detail END,
               d.created, d.picked_at
        FROM decided d
    )
    SELECT count(*), min(now() + d.backoff) FILTER (WHERE d.action = 'retry')
    INTO n, retry_at
    FROM decided d;
    IF retry_at IS NOT NULL THEN
        PERFORM pgq._wake_scheduler(retry_at);
    END IF;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION pgq.retry(
    job_id      bigint,
    delay       interval DEFAULT '0',
    reason      text DEFAULT NULL,
    worker_id   uuid DEFAULT NULL,
    claim_token int DEFAULT NULL
) RETURNS boolean
-- Rows are found by id; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    wait  interval := coalesce(delay, '0');
    held  record;
BEGIN
    IF job_id IS NULL THEN
        PERFORM pgq._invalid('job_id must be a job id, not NULL');
    END IF;
    IF wait < '0' OR wait > '30 days' THEN
        PERFORM pgq._invalid(format('delay must be from 0 to 30 days, not %s', wait));
    END IF;

    SELECT j.id, j.worker_id AS holder, j.cancel_requested IS NOT NULL AS canceled INTO held
    FROM pgq.jobs j
    WHERE j.id = retry.job_id AND j.status IS NOT DISTINCT FROM 'picked'
      AND (retry.worker_id IS NULL OR j.worker_id = retry.worker_id)
      AND (retry.claim_token IS NULL OR j.claim_token = retry.claim_token)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF held.canceled THEN
        PERFORM pgq._end_canceled(ARRAY[held.id], 'retry_requested', retry.worker_id);
        RETURN true;
    END IF;

    WITH changed AS (
        UPDATE pgq.jobs j
        SET status = 'queued', attempts = j.attempts + 1, worker_id = NULL,
            execute_after = now() + wait, updated = now()
        WHERE j.id = held.id
        RETURNING j.*
    )
    INSERT INTO pgq.log (job_id, entrypoint, priority, status, worker_id, attempts, detail,
                         enqueued_at, picked_at)
    SELECT c.id, c.entrypoint, c.priority, 'queued', coalesce(retry.worker_id, held.holder),
           c.attempts,
           jsonb_build_object('reason', 'retry_requested', 'message', retry.reason,
                              'retry_at', c.execute_after),
           c.created, c.picked_at
    FROM changed c;

    IF wait = '0' THEN
        PERFORM pgq._notify_enqueued(ARRAY(SELECT j.entrypoint FROM pgq.jobs j
                                           WHERE j.id = held.id));
    ELSE
        PERFORM pgq._wake_scheduler(now() + wait);
    END IF;
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION pgq.release(
    job_ids      bigint[],
    worker_id    uuid DEFAULT NULL,
    claim_tokens int[] DEFAULT NULL
) RETURNS bigint
-- Rows are found by id; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    ids bigint[];
BEGIN
    IF job_ids IS NULL THEN
        PERFORM pgq._invalid('job_ids must be an array of job ids, not NULL');
    END IF;
    IF claim_tokens IS NOT NULL THEN
        PERFORM pgq._check_claim_tokens(job_ids, claim_tokens);
    END IF;
    ids := ARRAY(
        SELECT j.id FROM pgq.jobs j
        JOIN unnest(job_ids, claim_tokens) AS u(id, token) ON j.id = u.id
        WHERE j.status IS NOT DISTINCT FROM 'picked'
          AND (release.worker_id IS NULL OR j.worker_id = release.worker_id)
          AND (u.token IS NULL OR j.claim_token = u.token));
    RETURN pgq._give_back(ids);
END
$$;

CREATE OR REPLACE FUNCTION pgq.release_lost(
    worker_id   uuid,
    held_ids    bigint[] DEFAULT '{}',
    held_tokens int[] DEFAULT '{}'
) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    ids bigint[];
BEGIN
    IF worker_id IS NULL THEN
        PERFORM pgq._invalid('worker_id must be the worker''s id, not NULL');
    END IF;
    IF held_ids IS NULL OR held_tokens IS NULL
       OR cardinality(held_ids) <> cardinality(held_tokens)
       OR array_position(held_tokens, NULL) IS NOT NULL THEN
        PERFORM pgq._invalid(format(
            'held_ids and held_tokens must be arrays of the same length (a claim token per id), '
            'not %s and %s', coalesce(cardinality(held_ids)::text, 'NULL'),
            coalesce(cardinality(held_tokens)::text, 'NULL')));
    END IF;
    ids := ARRAY(
        SELECT j.id FROM pgq.jobs j
        WHERE j.worker_id = release_lost.worker_id AND j.status = 'picked'
          AND NOT EXISTS (SELECT FROM unnest(held_ids, held_tokens) AS h(id, token)
                          WHERE h.id = j.id AND h.token = j.claim_token));
    RETURN pgq._give_back(ids);
END
$$;

CREATE OR REPLACE FUNCTION pgq._give_back(ids bigint[]) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n   bigint;
    eps text[];
BEGIN
    n := pgq._end_canceled(ARRAY(SELECT j.id FROM pgq.jobs j
                                 WHERE j.id = ANY (ids) AND j.cancel_requested IS NOT NULL),
                           'released', NULL);
    WITH released AS (
        UPDATE pgq.jobs j
        SET status = 'queued', worker_id = NULL, heartbeat = NULL, picked_at = NULL,
            updated = now()
        WHERE j.id = ANY (ids) AND j.status IS NOT DISTINCT FROM 'picked'
          AND j.cancel_requested IS NULL
        RETURNING j.entrypoint
    )
    SELECT n + count(*), array_agg(r.entrypoint) INTO n, eps FROM released r;
    PERFORM pgq._notify_enqueued(eps);
    RETURN n;
END
$$;

-- sql/cancel.sql
CREATE OR REPLACE FUNCTION pgq.cancel(job_ids bigint[]) RETURNS bigint
-- Rows are found by id; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n         bigint;
    requested bigint[];
BEGIN
    IF job_ids IS NULL THEN
        PERFORM pgq._invalid('job_ids must be an array of job ids, not NULL');
    END IF;
    WITH gone AS (
        DELETE FROM pgq.jobs j
        WHERE j.id = ANY (job_ids) AND j.status IN ('queued', 'failed')
        RETURNING j.*
    ), logged AS (
        INSERT INTO pgq.log (job_id, entrypoint, priority, status, worker_id, attempts, detail,
                             enqueued_at, picked_at)
        SELECT g.id, g.entrypoint, g.priority, 'canceled', NULL, g.attempts,
               jsonb_build_object('reason', 'canceled', 'previous_status', g.status),
               g.created, g.picked_at
        FROM gone g
    )
    SELECT count(*) INTO n FROM gone g;

    WITH marked AS (
        UPDATE pgq.jobs j SET cancel_requested = coalesce(j.cancel_requested, now())
        WHERE j.id = ANY (job_ids) AND j.status IS NOT DISTINCT FROM 'picked'
        RETURNING j.id
    )
    SELECT array_agg(m.id) INTO requested FROM marked m;

    PERFORM pgq._notify_cancel(requested);
    RETURN n + coalesce(cardinality(requested), 0);
END
$$;

CREATE OR REPLACE FUNCTION pgq.cancel_requested(job_ids bigint[])
RETURNS TABLE (job_id bigint, claim_token int)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF job_ids IS NULL THEN
        PERFORM pgq._invalid('job_ids must be an array of job ids, not NULL');
    END IF;
    RETURN QUERY
    SELECT j.id, j.claim_token FROM pgq.jobs j
    WHERE j.id = ANY (job_ids) AND j.status = 'picked' AND j.cancel_requested IS NOT NULL
    ORDER BY j.id;
END
$$;

CREATE OR REPLACE FUNCTION pgq._end_canceled(ids bigint[], how text, reporter uuid) RETURNS bigint
LANGUAGE plpgsql
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    WITH gone AS (
        DELETE FROM pgq.jobs j
        WHERE j.id = ANY (ids) AND j.status = 'picked' AND j.cancel_requested IS NOT NULL
        RETURNING j.*
    ), logged AS (
        INSERT INTO pgq.log (job_id, entrypoint, priority, status, worker_id, attempts, detail,
                             enqueued_at, picked_at)
        SELECT g.id, g.entrypoint, g.priority, 'canceled', coalesce(reporter, g.worker_id),
               g.attempts,
               jsonb_build_object('reason', 'canceled', 'previous_status', 'picked',
                                  'outcome', how),
               g.created, g.picked_at
        FROM gone g
    )
    SELECT count(*) INTO n FROM gone;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION pgq._end_expired_cancels(entrypoints text[]) RETURNS bigint
-- Called by every claim: the lookup reads jobs_canceling_idx, which is empty but for running
-- jobs whose cancel was requested, so it costs next to nothing when there is none.
LANGUAGE plpgsql
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    expired bigint[];
BEGIN
    expired := ARRAY(
        SELECT j.id FROM pgq.jobs j
        LEFT JOIN pgq.entrypoints e ON e.name = j.entrypoint
        WHERE j.status = 'picked' AND j.cancel_requested IS NOT NULL
          AND (entrypoints IS NULL OR j.entrypoint = ANY (entrypoints))
          AND j.heartbeat < now() - least(coalesce(e.heartbeat_timeout, '30 seconds'), '7 days')
        FOR UPDATE OF j SKIP LOCKED);
    IF cardinality(expired) = 0 THEN
        RETURN 0;
    END IF;
    RETURN pgq._end_canceled(expired, 'lease_expired', NULL);
END
$$;

CREATE OR REPLACE FUNCTION pgq.requeue(job_ids bigint[]) RETURNS bigint
-- Rows are found by id; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n     bigint;
    eps   text[];
    taken record;
BEGIN
    IF job_ids IS NULL THEN
        PERFORM pgq._invalid('job_ids must be an array of job ids, not NULL');
    END IF;

    SELECT h.id, h.dedupe_key INTO taken
    FROM pgq.jobs h
    WHERE h.id = ANY (job_ids) AND h.status = 'failed' AND h.dedupe_key IS NOT NULL
      AND EXISTS (
          SELECT FROM pgq.jobs o
          -- IS NOT NULL, though implied, lets the planner prove the dedupe index's predicate.
          WHERE o.dedupe_key = h.dedupe_key AND o.dedupe_key IS NOT NULL AND o.id <> h.id
            AND (o.status IN ('queued', 'picked')
                 OR o.status = 'failed' AND o.id = ANY (job_ids) AND o.id < h.id))
    ORDER BY h.id
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'unique_violation',
            MESSAGE = format('dedupe key %L of held job %s is already used by a queued or '
                             'picked job', taken.dedupe_key, taken.id),
            DETAIL = 'nothing was requeued',
            HINT = 'cancel one of the two jobs first';
    END IF;

    WITH changed AS (
        UPDATE pgq.jobs j
        SET status = 'queued', attempts = 0, worker_id = NULL, execute_after = now(),
            heartbeat = NULL, picked_at = NULL, detail = NULL, updated = now()
        WHERE j.id = ANY (job_ids) AND j.status = 'failed'
        RETURNING j.*
    ), logged AS (
        INSERT INTO pgq.log (job_id, entrypoint, priority, status, worker_id, attempts, detail,
                             enqueued_at, picked_at)
        SELECT c.id, c.entrypoint, c.priority, 'queued', NULL, 0,
               jsonb_build_object('reason', 'requeue'), c.created, NULL
        FROM changed c
    )
    SELECT count(*), array_agg(c.entrypoint) INTO n, eps FROM changed c;

    PERFORM pgq._notify_enqueued(eps);
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION pgq.clear(entrypoint text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    IF entrypoint = '' THEN
        PERFORM pgq._invalid('entrypoint must be a non-empty name, or NULL for every entrypoint');
    END IF;
    WITH gone AS (
        DELETE FROM pgq.jobs j
        WHERE j.status = 'queued' AND (clear.entrypoint IS NULL OR j.entrypoint = clear.entrypoint)
        RETURNING j.*
    ), logged AS (
        INSERT INTO pgq.log (job_id, entrypoint, priority, status, worker_id, attempts, detail,
                             enqueued_at, picked_at)
        SELECT g.id, g.entrypoint, g.priority, 'deleted', NULL, g.attempts,
               jsonb_build_object('reason', 'clear'), g.created, g.picked_at
        FROM gone g
    )
    SELECT count(*) INTO n FROM gone;
    RETURN n;
END
$$;

-- sql/status.sql
CREATE OR REPLACE FUNCTION pgq.job_status(job_ids bigint[])
RETURNS TABLE (job_id bigint, status pgq.job_state, detail jsonb)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    IF job_ids IS NULL THEN
        PERFORM pgq._invalid('job_ids must be an array of job ids, not NULL');
    END IF;
    RETURN QUERY
    SELECT s.job_id, s.status, s.detail FROM (
        SELECT j.id AS job_id, j.status, CASE WHEN j.status = 'failed' THEN j.detail END AS detail
        FROM pgq.jobs j
        WHERE j.id = ANY (job_ids)
        UNION ALL
        (SELECT DISTINCT ON (l.job_id) l.job_id, l.status, l.detail
         FROM pgq.log l
         WHERE l.job_id = ANY (job_ids)
           AND NOT EXISTS (SELECT FROM pgq.jobs j WHERE j.id = l.job_id)
         ORDER BY l.job_id, l.id DESC)
    ) s
    ORDER BY s.job_id;
END
$$;

CREATE OR REPLACE FUNCTION pgq._notify_completed() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = on
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pgq.entrypoints e WHERE e.notify_completion) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('pgq_done', jsonb_build_object(
        'type', 'done', 'ids', jsonb_agg(c.job_id ORDER BY c.job_id))::text)
    FROM (SELECT a.job_id, (row_number() OVER (ORDER BY a.job_id) - 1) / 300 AS chunk
          FROM added a
          JOIN pgq.entrypoints e ON e.name = a.entrypoint AND e.notify_completion
          WHERE a.status <> 'queued') c
    GROUP BY c.chunk;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION pgq.purge_log(older_than interval) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    IF older_than IS NULL OR older_than < '0' THEN
        PERFORM pgq._invalid(format('older_than must be an interval of 0 or more, not %s',
            coalesce(older_than::text, 'NULL')));
    END IF;
    DELETE FROM pgq.log l WHERE l.created < now() - older_than;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE OR REPLACE VIEW pgq.queue_summary AS
SELECT entrypoint, status, priority, count(*) AS count, min(created) AS oldest
FROM pgq.jobs
GROUP BY entrypoint, status, priority;

CREATE OR REPLACE VIEW pgq.throughput AS
SELECT date_trunc('second', created) AS second, entrypoint, status, count(*) AS count
FROM pgq.log
WHERE created > now() - interval '1 hour'
GROUP BY 1, 2, 3;

CREATE OR REPLACE VIEW pgq.backlog AS
SELECT entrypoint,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'queued' AND execute_after <= now()) AS ready,
       count(*) FILTER (WHERE status = 'picked') AS picked,
       count(*) FILTER (WHERE status = 'failed') AS held,
       extract(epoch FROM now() - min(created) FILTER (WHERE status = 'queued'))::float8
           AS oldest_queued_seconds
FROM pgq.jobs
GROUP BY entrypoint;

CREATE OR REPLACE VIEW pgq.workers AS
SELECT worker_id,
       count(*) AS jobs,
       array_agg(DISTINCT entrypoint ORDER BY entrypoint) AS entrypoints,
       min(heartbeat) AS oldest_heartbeat,
       max(heartbeat) AS last_heartbeat
FROM pgq.jobs
WHERE status = 'picked'
GROUP BY worker_id;

-- sql/maintenance.sql
CREATE OR REPLACE FUNCTION pgq.set_log_retention(retention interval) RETURNS pgq.settings
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

CREATE OR REPLACE FUNCTION pgq.set_stats_retention(retention interval) RETURNS pgq.settings
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

CREATE OR REPLACE FUNCTION pgq._maintain() RETURNS timestamptz
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

-- sql/durability.sql
CREATE OR REPLACE FUNCTION pgq.durability() RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN (SELECT relpersistence FROM pg_class WHERE oid = 'pgq.jobs'::regclass) = 'u'
            THEN 'volatile'
        WHEN (SELECT relpersistence FROM pg_class WHERE oid = 'pgq.log'::regclass) = 'u'
            THEN 'balanced'
        ELSE 'durable'
    END
$$;

CREATE OR REPLACE FUNCTION pgq.set_durability(mode text, lock_timeout interval DEFAULT '5 seconds')
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    previous text := pgq.durability();
    jobs     text;
    history  text;
BEGIN
    IF mode IS NULL OR mode NOT IN ('durable', 'balanced', 'volatile') THEN
        PERFORM pgq._invalid(format(
            'mode must be ''durable'', ''balanced'' or ''volatile'', not %s',
            coalesce(quote_literal(mode), 'NULL')));
    END IF;
    IF set_durability.lock_timeout IS NULL OR set_durability.lock_timeout < '0'
       OR set_durability.lock_timeout > '1 hour' THEN
        PERFORM pgq._invalid(format('lock_timeout must be from 0 to 1 hour, not %s',
            coalesce(set_durability.lock_timeout::text, 'NULL')));
    END IF;
    PERFORM set_config('lock_timeout',
        (extract(epoch FROM set_durability.lock_timeout) * 1000)::bigint::text, true);
    jobs := CASE mode WHEN 'volatile' THEN 'UNLOGGED' ELSE 'LOGGED' END;
    history := CASE mode WHEN 'durable' THEN 'LOGGED' ELSE 'UNLOGGED' END;
    -- Logged tables first when going durable, unlogged last: a table may not be logged while
    -- it references an unlogged one (none does here, but the order costs nothing).
    EXECUTE format('ALTER TABLE pgq.log SET %s', history);
    EXECUTE format('ALTER TABLE pgq.stats SET %s', history);
    EXECUTE format('ALTER TABLE pgq.jobs SET %s', jobs);
    -- PostgreSQL 15 and later change the identity sequences with their tables (and only they
    -- know ALTER SEQUENCE ... SET LOGGED).
    IF current_setting('server_version_num')::int >= 150000 THEN
        EXECUTE 'ALTER SEQUENCE pgq.jobs_id_seq SET LOGGED';
        EXECUTE 'ALTER SEQUENCE pgq.log_id_seq SET LOGGED';
    END IF;
    RETURN previous;
END
$$;

-- sql/schedules.sql
CREATE OR REPLACE FUNCTION pgq.schedule(entrypoint text, expression text, timezone text DEFAULT 'UTC')
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

CREATE OR REPLACE FUNCTION pgq.unschedule(entrypoint text, expression text DEFAULT NULL) RETURNS bigint
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

CREATE OR REPLACE FUNCTION pgq.unschedule_id(schedule_id bigint) RETURNS bigint
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

CREATE OR REPLACE FUNCTION pgq.tick() RETURNS timestamptz
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

-- sql/scheduler.sql
CREATE OR REPLACE FUNCTION pgq._scheduler_round(since timestamptz) RETURNS timestamptz
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    next_due timestamptz;
    eps      text[];
BEGIN
    next_due := pgq.tick();
    -- Jobs created runnable were announced by their enqueue: only later ones count here.
    SELECT array_agg(DISTINCT j.entrypoint) INTO eps
    FROM pgq.jobs j
    WHERE j.status = 'queued' AND j.execute_after > since AND j.execute_after <= now()
      AND j.execute_after > j.created;
    PERFORM pgq._notify_enqueued(eps);
    RETURN next_due;
END
$$;

CREATE OR REPLACE FUNCTION pgq._worker_round(since timestamptz) RETURNS timestamptz
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgq._scheduler_round(since)
$$;

CREATE OR REPLACE FUNCTION pgq._scheduler_serves() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pgqueuer')
       AND EXISTS (SELECT FROM pg_catalog.pg_stat_activity
                   WHERE backend_type = 'pgqueuer scheduler'
                     AND datname = pg_catalog.current_database())
$$;

-- sql/overview.sql
CREATE OR REPLACE FUNCTION pgq.overview(span interval DEFAULT '1 hour') RETURNS json
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    since timestamptz;
BEGIN
    IF span IS NULL OR span < '1 second' OR span > '100 years' THEN
        PERFORM pgq._invalid(format('span must be from 1 second to 100 years, not %s',
            coalesce(span::text, 'NULL')));
    END IF;
    since := now() - span;
    RETURN (
        WITH newest AS MATERIALIZED (
            -- The newest outcomes, backwards along the primary key: bounded whatever the log's
            -- size, and an index scan whatever the planner guesses.
            SELECT l.id, l.job_id, l.entrypoint, l.attempts, l.created, l.status, l.detail
            FROM pgq.log l
            ORDER BY l.id DESC
            LIMIT 10000
        ),
        exceptions AS (
            SELECT n.* FROM newest n
            WHERE n.created > since
              AND (n.status IN ('exception', 'failed') OR n.detail->>'reason' = 'exception')
        ),
        stats AS (
            -- Outcomes per minute: the rollup up to its watermark, and the newest log rows it
            -- has not folded yet (exact while fewer than 10,000 wait), so that a job that just
            -- ended counts at once.
            SELECT s.minute, s.entrypoint, s.status, s.count
            FROM pgq.stats s
            WHERE s.minute > since - interval '1 minute'
            UNION ALL
            SELECT t.minute, t.entrypoint, t.status, count(*)
            FROM (SELECT date_trunc('minute', n.created) AS minute, n.entrypoint, n.status
                  FROM newest n
                  WHERE n.id > coalesce((SELECT max(w.stats_folded_to) FROM pgq.settings w), 0)
                 ) t
            WHERE t.minute > since - interval '1 minute'
            GROUP BY t.minute, t.entrypoint, t.status
        ),
        finished AS (
            SELECT s.entrypoint, sum(s.count) FILTER (WHERE s.status <> 'queued') AS finished
            FROM stats s GROUP BY s.entrypoint
        ),
        failing AS (
            SELECT x.entrypoint, count(*) AS recent_exceptions FROM exceptions x
            GROUP BY x.entrypoint
        ),
        entrypoints AS (
            SELECT coalesce(b.entrypoint, p.name, f.entrypoint, x.entrypoint) AS entrypoint,
                   coalesce(b.queued, 0) AS queued, coalesce(b.ready, 0) AS ready,
                   coalesce(b.picked, 0) AS picked, coalesce(b.held, 0) AS held,
                   b.oldest_queued_seconds, coalesce(p.paused, false) AS paused,
                   coalesce(f.finished, 0) AS finished,
                   round(coalesce(f.finished, 0) / extract(epoch FROM span)::numeric, 2) AS per_second,
                   coalesce(x.recent_exceptions, 0) AS recent_exceptions
            FROM pgq.backlog b
            FULL JOIN (SELECT e.name, e.paused FROM pgq.entrypoints e WHERE e.paused) p
                ON p.name = b.entrypoint
            FULL JOIN finished f ON f.entrypoint = coalesce(b.entrypoint, p.name)
            FULL JOIN failing x ON x.entrypoint = coalesce(b.entrypoint, p.name, f.entrypoint)
        )
        SELECT json_build_object(
            'at', now(),
            'database', current_database(),
            'span_seconds', extract(epoch FROM span)::numeric,
            'entrypoints', coalesce((
                SELECT json_agg(e ORDER BY e.entrypoint) FROM entrypoints e), '[]'),
            'outcomes', coalesce((
                SELECT json_agg(o ORDER BY o.entrypoint, o.status) FROM (
                    SELECT s.entrypoint, s.status, sum(s.count)::bigint AS count
                    FROM stats s GROUP BY s.entrypoint, s.status
                ) o), '[]'),
            'per_minute', coalesce((
                SELECT json_agg(m ORDER BY m.minute) FROM (
                    SELECT s.minute,
                           round(sum(s.count) FILTER (WHERE s.status = 'successful') / 60.0, 2)
                               AS successful,
                           round(coalesce(sum(s.count)
                                     FILTER (WHERE s.status IN ('exception', 'failed')), 0)
                                 / 60.0, 2) AS failed
                    FROM stats s GROUP BY s.minute
                ) m), '[]'),
            'exceptions', coalesce((
                SELECT json_agg(x ORDER BY x.id DESC) FROM (
                    SELECT x.id, x.job_id, x.entrypoint, x.attempts, x.created, x.status,
                           x.detail
                    FROM exceptions x ORDER BY x.id DESC LIMIT 20
                ) x), '[]'),
            'held', coalesce((
                SELECT json_agg(h ORDER BY h.id) FROM (
                    SELECT j.id, j.entrypoint, j.attempts, j.updated, j.detail
                    FROM pgq.jobs j WHERE j.status = 'failed' ORDER BY j.id LIMIT 50
                ) h), '[]'),
            'running', coalesce((
                SELECT json_agg(r ORDER BY r.picked_at) FROM (
                    SELECT j.id, j.entrypoint, j.worker_id, j.picked_at, j.heartbeat,
                           extract(epoch FROM now() - j.heartbeat)::float8
                               AS heartbeat_age_seconds
                    FROM pgq.jobs j WHERE j.status = 'picked' ORDER BY j.picked_at LIMIT 50
                ) r), '[]'),
            'workers', coalesce((
                SELECT json_agg(w ORDER BY w.worker_id) FROM pgq.workers w), '[]'),
            'schedules', coalesce((
                SELECT json_agg(s ORDER BY s.next_run NULLS LAST, s.id) FROM (
                    SELECT c.id, c.entrypoint, c.expression, c.timezone, c.next_run,
                           c.last_run, c.enabled
                    FROM pgq.schedules c
                ) s), '[]')
        )
    );
END
$$;

-- END functions of sql/

-- BEGIN sql/privileges.sql
-- Roles and privileges: least privilege by role, nothing for PUBLIC (docs/sql-api.md, "Roles").
--
--   pgq_producer  enqueue, enqueue_many, job_status, version
--   pgq_worker    a producer that also runs jobs: dequeue, heartbeat, ack, fail, retry, release,
--                 release_lost, cancel_requested, lease, tick
--   pgq_monitor   reads the tables (pgq.jobs without its payloads), the views, job_status,
--                 durability, overview
--   pgq_admin     a worker and monitor that also operates the queue: configure, schedule,
--                 unschedule, unschedule_id, cancel, requeue, clear, purge_log, pause, resume,
--                 set_log_retention, set_stats_retention, set_durability; reads payloads
--   pgq_owner     owns the tables and functions; the API functions run as it (SECURITY
--                 DEFINER). Not a superuser: a flaw in a function yields the queue, not the
--                 server. Nobody logs in as these roles: grant them (GRANT pgq_worker TO app).
--
-- No role but the owner writes the tables: every change goes through the functions. Roles are
-- shared by the databases of a server: they are created when missing, and an existing one must
-- be what this script would make of it, or the install stops and says what differs.
DO $$
DECLARE
    wanted CONSTANT text[][] := ARRAY[
        -- role, the pgq roles it is a member of (comma-separated)
        ARRAY['pgq_owner', ''],
        ARRAY['pgq_producer', ''],
        ARRAY['pgq_monitor', ''],
        ARRAY['pgq_worker', 'pgq_producer'],
        ARRAY['pgq_admin', 'pgq_monitor,pgq_worker']];
    pair     text[];
    r        record;
    expected text;
    actual   text;
BEGIN
    -- Only what is missing is made, so that a role that may not create roles can run this
    -- once a DBA made them (SQL-only installs, docs/managed-postgres.md).
    FOREACH pair SLICE 1 IN ARRAY wanted LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = pair[1]) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', pair[1]);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- made just now by an install running in another database
            END;
        END IF;
        FOREACH expected IN ARRAY string_to_array(pair[2], ',') LOOP
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m
                           WHERE m.roleid = expected::regrole AND m.member = pair[1]::regrole)
            THEN
                BEGIN
                    EXECUTE format('GRANT %I TO %I', expected, pair[1]);
                EXCEPTION WHEN unique_violation THEN
                    NULL;
                END;
            END IF;
        END LOOP;
    END LOOP;
    FOREACH pair SLICE 1 IN ARRAY wanted LOOP
        SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname = pair[1];
        actual := concat_ws(' ',
            CASE WHEN r.rolcanlogin THEN 'LOGIN' END,
            CASE WHEN r.rolsuper THEN 'SUPERUSER' END,
            CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
            CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
            CASE WHEN r.rolreplication THEN 'REPLICATION' END,
            CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END);
        IF actual <> '' THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
                MESSAGE = format('role %s exists with %s, which pgqueuer''s role must not have',
                                 pair[1], actual),
                HINT = format('ALTER ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                              'NOREPLICATION NOBYPASSRLS, or drop it, then install again; '
                              'log in as a role granted %I instead', pair[1], pair[1]);
        END IF;
        SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) INTO actual
        FROM pg_catalog.pg_auth_members m
        JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
        WHERE m.member = r.oid;
        IF coalesce(actual, '') <> pair[2] THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
                MESSAGE = format('role %s exists and is a member of %s, but pgqueuer''s role is '
                                 'a member of %s', pair[1], coalesce(actual, 'no role'),
                                 coalesce(nullif(pair[2], ''), 'no role')),
                HINT = format('revoke the other roles from %I, or drop it, then install again',
                              pair[1]);
        END IF;
    END LOOP;
END
$$;

-- Everything of the extension belongs to pgq_owner (the schema stays the installer's).
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = 'pgq'::regnamespace LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO pgq_owner', f);
    END LOOP;
END
$$;
ALTER TABLE pgq.entrypoints OWNER TO pgq_owner;
ALTER TABLE pgq.jobs OWNER TO pgq_owner;
ALTER TABLE pgq.log OWNER TO pgq_owner;
ALTER TABLE pgq.schedules OWNER TO pgq_owner;
ALTER TABLE pgq.settings OWNER TO pgq_owner;
ALTER TABLE pgq.stats OWNER TO pgq_owner;
ALTER VIEW pgq.queue_summary OWNER TO pgq_owner;
ALTER VIEW pgq.throughput OWNER TO pgq_owner;
ALTER VIEW pgq.backlog OWNER TO pgq_owner;
ALTER VIEW pgq.workers OWNER TO pgq_owner;
ALTER TYPE pgq.job_state OWNER TO pgq_owner;

-- PUBLIC gets nothing: not the schema, not a function (CREATE FUNCTION grants EXECUTE to
-- PUBLIC), not the type.
REVOKE ALL ON SCHEMA pgq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgq FROM PUBLIC;
REVOKE ALL ON TYPE pgq.job_state FROM PUBLIC;
GRANT USAGE ON SCHEMA pgq TO pgq_owner, pgq_producer, pgq_monitor;
GRANT USAGE ON TYPE pgq.job_state TO pgq_producer, pgq_monitor;

GRANT EXECUTE ON FUNCTION
    pgq.enqueue(text, bytea, int, interval, text, jsonb),
    pgq.enqueue_many(text[], bytea[], int[], interval[], text[], jsonb[], text),
    pgq.job_status(bigint[]),
    pgq.version()
TO pgq_producer;

GRANT EXECUTE ON FUNCTION
    pgq.dequeue(text[], int, uuid),
    pgq.heartbeat(bigint[], uuid, int[]),
    pgq.ack(bigint[], pgq.job_state[], jsonb[], uuid, int[]),
    pgq.fail(bigint[], jsonb[], uuid, int[]),
    pgq.retry(bigint, interval, text, uuid, int),
    pgq.release(bigint[], uuid, int[]),
    pgq.release_lost(uuid, bigint[], int[]),
    pgq.cancel_requested(bigint[]),
    pgq.lease(text[]),
    pgq.tick(),
    pgq._scheduler_round(timestamptz),
    pgq._worker_round(timestamptz),
    pgq._scheduler_serves()
TO pgq_worker;

GRANT SELECT ON pgq.entrypoints, pgq.log, pgq.schedules, pgq.queue_summary, pgq.throughput,
    pgq.backlog, pgq.workers, pgq.settings, pgq.stats
TO pgq_monitor;
GRANT SELECT (id, entrypoint, priority, headers, dedupe_key, status, attempts, worker_id,
              created, updated, heartbeat, execute_after, picked_at, detail, claim_token,
              cancel_requested)
ON pgq.jobs TO pgq_monitor;
GRANT EXECUTE ON FUNCTION pgq.job_status(bigint[]), pgq.version(), pgq.durability(),
    pgq.overview(interval)
TO pgq_monitor;

GRANT SELECT ON pgq.jobs TO pgq_admin;
GRANT EXECUTE ON FUNCTION
    pgq.configure(text, int, double precision, interval, int, interval, interval, text, boolean),
    pgq.schedule(text, text, text),
    pgq.unschedule(text, text),
    pgq.unschedule_id(bigint),
    pgq.cancel(bigint[]),
    pgq.requeue(bigint[]),
    pgq.clear(text),
    pgq.purge_log(interval),
    pgq.pause(text),
    pgq.resume(text),
    pgq.set_log_retention(interval),
    pgq.set_stats_retention(interval),
    pgq.set_durability(text, interval)
TO pgq_admin;

-- END sql/privileges.sql
