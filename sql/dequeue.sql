-- pgq.dequeue: claim up to batch_size jobs of these entrypoints, best first (priority DESC,
-- id ASC across all of them), and return them in that order.
--
-- Paused entrypoints (pgq.pause) are left out. Eligible: queued jobs whose execute_after has
-- passed, and picked jobs whose heartbeat is older than their entrypoint's heartbeat_timeout
-- (a stale re-pick, by any worker, the holder too; not held back by limits, since the job
-- already holds a seat). Every claim takes the
-- job's next claim token (claim_token + 1). Stale jobs whose cancel was requested are not
-- claimed: they end as canceled.
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
    names := ARRAY(SELECT DISTINCT e FROM unnest(entrypoints) AS e);
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

    RETURN QUERY
    WITH ask AS (
        -- A timeout beyond the allowed range (a row written around pgq.configure) is read
        -- as the longest one, rather than overflowing now() - timeout.
        SELECT a.name, least(coalesce(s.heartbeat_timeout, '30 seconds'), '7 days') AS timeout,
               l.allow
        FROM unnest(names) AS a(name)
        LEFT JOIN pgq.entrypoints s ON s.name = a.name
        LEFT JOIN unnest(limited, lim_allow) AS l(name, allow) ON l.name = a.name
        WHERE s.paused IS NOT TRUE  -- pgq.pause: nothing of it is claimed
    ), fresh AS (
        SELECT c.id, c.priority, c.entrypoint, true AS fresh
        FROM ask CROSS JOIN LATERAL (
            SELECT j.id, j.priority, j.entrypoint FROM pgq.jobs j
            WHERE j.entrypoint = ask.name AND j.status = 'queued' AND j.execute_after <= now()
            ORDER BY j.priority DESC, j.id
            LIMIT least(dequeue.batch_size, ask.allow)
            FOR UPDATE SKIP LOCKED
        ) c
    ), stale AS (
        SELECT c.id, c.priority, c.entrypoint, false AS fresh
        FROM ask CROSS JOIN LATERAL (
            SELECT j.id, j.priority, j.entrypoint FROM pgq.jobs j
            WHERE j.entrypoint = ask.name AND j.status = 'picked'
              AND j.heartbeat < now() - ask.timeout AND j.cancel_requested IS NULL
            ORDER BY j.priority DESC, j.id
            LIMIT dequeue.batch_size
            FOR UPDATE SKIP LOCKED
        ) c
    ), chosen AS (
        SELECT * FROM (SELECT * FROM fresh UNION ALL SELECT * FROM stale) u
        ORDER BY u.priority DESC, u.id
        LIMIT dequeue.batch_size
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
        RETURNING j.*
    )
    SELECT * FROM claimed ORDER BY claimed.priority DESC, claimed.id;
END
$$;
