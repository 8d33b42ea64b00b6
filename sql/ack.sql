-- Reporting on claimed jobs: pgq.ack (how they ended), pgq.retry (run again later),
-- pgq.release (give back unrun) and pgq.release_lost (give back claims a worker lost track of).
--
-- Fencing. Every claim of a job gets a claim token (pgq.jobs.claim_token: how many times the
-- job has been claimed), which pgq.dequeue returns. Given tokens, these functions act only on
-- the claims they name: a worker's late report about an earlier claim of a job that has since
-- been re-picked (even by itself) is ignored. Without tokens they act on any claim, and with a
-- worker_id only on jobs that worker holds: weaker, since a worker that claims a job again
-- cannot tell its claims apart.
--
-- A job whose cancel was requested while it ran (pgq.cancel) ends as canceled whatever its
-- worker reports: one 'canceled' log row, whose detail keeps the reported outcome.
--
-- Finding the jobs. Reports name their jobs by id, so each is found by primary key. They test
-- "status IS NOT DISTINCT FROM 'picked'" rather than "status = 'picked'", which is the same for
-- a column that is never NULL but does not match jobs_picked_idx's predicate: with it, the
-- planner read that whole index (it looks small), and under a pinned xmin it holds an entry for
-- every job acked since (docs/design/0014-pinned-xmin.md).

-- pgq.ack: report how claimed jobs ended, in one statement for the whole batch.
--
-- successful / canceled: the row leaves pgq.jobs and one log row records the outcome.
-- exception with attempts left (attempts + 1 < max_attempts): retried in place: same id,
--   queued, attempts + 1, execute_after = now() + backoff, and a 'queued' log row carrying
--   the error. The backoff is retry_delay, doubled each attempt, capped at retry_delay_max.
-- exception with no attempts left: an 'exception' log row; the row is deleted, or kept as
--   'failed' (with a 'failed' log row) when the entrypoint's on_failure is 'hold'.
CREATE FUNCTION pgq.ack(
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

-- pgq.fail: end claimed jobs as failures at once, without retrying them whatever max_attempts
-- says: for an error that no retry can mend (a payload that cannot be read, a request the
-- handler refuses). Each job ends like an exception on its last attempt: an 'exception' log
-- row carrying its detail, and the row deleted, or kept as 'failed' when the entrypoint's
-- on_failure is 'hold'. Fenced like ack; a job whose cancel was requested ends as canceled.
-- Returns how many jobs the report was taken for.
CREATE FUNCTION pgq.fail(
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

-- The general way a report ends claimed jobs (pgq.ack's outcomes other than all-successful,
-- and pgq.fail): each job, if still in the claim the report names, is retried (an exception
-- with attempts left, when may_retry), held, or deleted with its log row; a job whose cancel
-- was requested ends as canceled. The arguments are checked by the callers. Returns how many
-- jobs the report was taken for.
CREATE FUNCTION pgq._end_claims(
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

-- pgq.retry: the handler asks for its job to run again later (in place: same id, queued,
-- attempts + 1), whatever max_attempts says. Fenced like ack. Returns false when the job is
-- not picked (or not in that claim, or not held by that worker). A job whose cancel was
-- requested ends as canceled instead (and the result is true: the report was taken).
CREATE FUNCTION pgq.retry(
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

-- pgq.release: a worker gives back picked jobs it will not run to the end (it is shutting
-- down). They are queued again at once for another worker, with attempts unchanged and no log
-- row, since nothing happened to them. Fenced like ack. Returns how many were given back or,
-- for jobs whose cancel was requested, ended as canceled.
CREATE FUNCTION pgq.release(
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

-- pgq.release_lost: after a lost connection, a worker gives back every job its worker_id holds
-- but the claims it knows of (held_ids with their held_tokens): the claims whose reply never
-- reached it, committed just before the connection went. Like release, they are queued again
-- at once with attempts unchanged and no log row. Returns how many.
CREATE FUNCTION pgq.release_lost(
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

-- Gives these picked jobs back to the queue (attempts unchanged, no log row, one 'enqueued'
-- notification), but ends those whose cancel was requested as canceled. Returns how many.
CREATE FUNCTION pgq._give_back(ids bigint[]) RETURNS bigint
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
