-- pgq.ack: report how claimed jobs ended, in one statement for the whole batch.
--
-- successful / canceled: the row leaves pgq.jobs and one log row records the outcome.
-- exception with attempts left (attempts + 1 < max_attempts): retried in place: same id,
--   queued, attempts + 1, execute_after = now() + backoff, and a 'queued' log row carrying
--   the error. The backoff is retry_delay, doubled each attempt, capped at retry_delay_max.
-- exception with no attempts left: an 'exception' log row; the row is deleted, or kept as
--   'failed' (with a 'failed' log row) when the entrypoint's on_failure is 'hold'.
-- Fencing: with worker_id, only rows that worker still holds (picked by it) are touched.
CREATE FUNCTION pgq.ack(
    job_ids   bigint[],
    statuses  pgq.job_state[] DEFAULT NULL,
    details   jsonb[] DEFAULT NULL,
    worker_id uuid DEFAULT NULL
) RETURNS bigint
-- Rows are found by index; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n        bigint;
    bad      record;
    retry_at timestamptz;
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
    SELECT i, s INTO bad FROM unnest(statuses) WITH ORDINALITY AS u(s, i)
    WHERE s IS NULL OR s NOT IN ('successful', 'exception', 'canceled')
    LIMIT 1;
    IF FOUND THEN
        PERFORM pgq._invalid(format(
            'statuses[%s] must be successful, exception or canceled, not %s',
            bad.i, coalesce(bad.s::text, 'NULL')));
    END IF;

    WITH input AS (
        SELECT DISTINCT ON (u.id) u.id, coalesce(u.s, 'successful') AS outcome, u.d AS detail
        FROM unnest(job_ids, statuses, details) WITH ORDINALITY AS u(id, s, d, i)
        WHERE u.id IS NOT NULL
        ORDER BY u.id, u.i
    ), target AS (
        SELECT j.id, j.entrypoint, j.priority, j.attempts, j.worker_id, j.created, j.picked_at,
               i.outcome, i.detail,
               coalesce(e.max_attempts, 1) AS max_attempts,
               coalesce(e.retry_delay, '1 second') AS retry_delay,
               coalesce(e.retry_delay_max, '5 minutes') AS retry_delay_max,
               coalesce(e.on_failure, 'delete') AS on_failure
        FROM input i
        JOIN pgq.jobs j ON j.id = i.id
        LEFT JOIN pgq.entrypoints e ON e.name = j.entrypoint
        WHERE j.status = 'picked' AND (ack.worker_id IS NULL OR j.worker_id = ack.worker_id)
        FOR UPDATE OF j
    ), decided AS (
        SELECT t.*,
               CASE WHEN t.outcome = 'exception' AND t.attempts + 1 < t.max_attempts THEN 'retry'
                    WHEN t.outcome = 'exception' AND t.on_failure = 'hold' THEN 'hold'
                    ELSE 'delete'
               END AS action,
               -- Only a retry has a backoff, computed in seconds so that no number of
               -- attempts overflows an interval, and capped at retry_delay_max (at most 30
               -- days, even for a row written around pgq.configure).
               CASE WHEN t.outcome = 'exception' AND t.attempts + 1 < t.max_attempts THEN
                   make_interval(secs => least(
                       extract(epoch FROM t.retry_delay)::float8
                           * power(2::float8, least(greatest(t.attempts, 0), 1000)),
                       extract(epoch FROM least(t.retry_delay_max, '30 days'))::float8))
               END AS backoff
        FROM target t
    ), deleted AS (
        DELETE FROM pgq.jobs j USING decided d WHERE j.id = d.id AND d.action = 'delete'
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
                             ELSE d.outcome END::pgq.job_state,
               coalesce(ack.worker_id, d.worker_id),
               CASE d.action WHEN 'retry' THEN d.attempts + 1 ELSE d.attempts END,
               CASE d.action WHEN 'retry' THEN jsonb_build_object(
                                  'reason', 'exception', 'error', d.detail,
                                  'retry_at', now() + d.backoff)
                             ELSE d.detail END,
               d.created, d.picked_at
        FROM decided d
    )
    SELECT count(*), min(now() + d.backoff) FILTER (WHERE d.action = 'retry')
    INTO n, retry_at
    FROM decided d;
    PERFORM pgq._wake_scheduler(retry_at);
    RETURN n;
END
$$;

-- pgq.retry: the handler asks for its job to run again later (in place: same id, queued,
-- attempts + 1), whatever max_attempts says. Fenced by worker_id like ack. Returns false
-- when the job is not picked (or not held by that worker).
CREATE FUNCTION pgq.retry(
    job_id    bigint,
    delay     interval DEFAULT '0',
    reason    text DEFAULT NULL,
    worker_id uuid DEFAULT NULL
) RETURNS boolean
-- Rows are found by id; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    wait interval := coalesce(delay, '0');
    ep   text;
BEGIN
    IF job_id IS NULL THEN
        PERFORM pgq._invalid('job_id must be a job id, not NULL');
    END IF;
    IF wait < '0' THEN
        PERFORM pgq._invalid(format('delay must not be negative, not %s', wait));
    END IF;

    WITH target AS (
        SELECT j.id, j.worker_id FROM pgq.jobs j
        WHERE j.id = retry.job_id AND j.status = 'picked'
          AND (retry.worker_id IS NULL OR j.worker_id = retry.worker_id)
        FOR UPDATE
    ), changed AS (
        UPDATE pgq.jobs j
        SET status = 'queued', attempts = j.attempts + 1, worker_id = NULL,
            execute_after = now() + wait, updated = now()
        FROM target t WHERE j.id = t.id
        RETURNING j.*, t.worker_id AS holder
    )
    INSERT INTO pgq.log (job_id, entrypoint, priority, status, worker_id, attempts, detail,
                         enqueued_at, picked_at)
    SELECT c.id, c.entrypoint, c.priority, 'queued', coalesce(retry.worker_id, c.holder),
           c.attempts,
           jsonb_build_object('reason', 'retry_requested', 'message', retry.reason,
                              'retry_at', c.execute_after),
           c.created, c.picked_at
    FROM changed c
    RETURNING entrypoint INTO ep;

    IF ep IS NULL THEN
        RETURN false;
    END IF;
    IF wait = '0' THEN
        PERFORM pgq._notify_enqueued(ARRAY[ep]);
    ELSE
        PERFORM pgq._wake_scheduler(now() + wait);
    END IF;
    RETURN true;
END
$$;

-- pgq.release: a worker gives back picked jobs it will not run to the end (it is shutting
-- down). They are queued again at once for another worker, with attempts unchanged and no log
-- row, since nothing happened to them. Fenced by worker_id like ack. Returns how many.
CREATE FUNCTION pgq.release(job_ids bigint[], worker_id uuid DEFAULT NULL) RETURNS bigint
-- Rows are found by id; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n   bigint;
    eps text[];
BEGIN
    IF job_ids IS NULL THEN
        PERFORM pgq._invalid('job_ids must be an array of job ids, not NULL');
    END IF;
    WITH released AS (
        UPDATE pgq.jobs j
        SET status = 'queued', worker_id = NULL, heartbeat = NULL, picked_at = NULL,
            updated = now()
        WHERE j.id = ANY (job_ids) AND j.status = 'picked'
          AND (release.worker_id IS NULL OR j.worker_id = release.worker_id)
        RETURNING j.entrypoint
    )
    SELECT count(*), array_agg(r.entrypoint) INTO n, eps FROM released r;
    PERFORM pgq._notify_enqueued(eps);
    RETURN n;
END
$$;
