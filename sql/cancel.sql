-- Taking jobs out of the queue, and putting held ones back.

-- pgq.cancel: queued and held (failed) jobs leave the queue at once, each with one 'canceled'
-- log row. A picked job is running: its cancel is requested (pgq.jobs.cancel_requested) and
-- its id goes out in a cancel notification, so that its worker can stop the handler. Until
-- that worker reports (any outcome then ends the job as canceled, with one log row) or its
-- lease expires (then pgq.dequeue or pgq.tick end it as canceled; it never runs again), the
-- job keeps its seat under a concurrency limit and its dedupe key, since its handler may still
-- be running. Returns how many jobs were canceled or had their cancel requested.
CREATE FUNCTION pgq.cancel(job_ids bigint[]) RETURNS bigint
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

-- pgq.cancel_requested: which of these jobs are running with their cancel requested, in which
-- claim. A worker checks a cancel notification with it before it stops a handler: anyone who
-- can connect can NOTIFY on channel pgq, so a notification is a hint, not an order.
CREATE FUNCTION pgq.cancel_requested(job_ids bigint[])
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

-- Ends these running jobs whose cancel was requested: the row leaves pgq.jobs with one
-- 'canceled' log row; its detail says what ended it (how: 'lease_expired', or what the worker
-- reported: 'released', 'retry_requested'; an ack writes its own). Returns how many.
CREATE FUNCTION pgq._end_canceled(ids bigint[], how text, reporter uuid) RETURNS bigint
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

-- Ends, as canceled, the running jobs of these entrypoints (NULL: of all) whose cancel was
-- requested and whose lease has expired: their worker is gone, and they never run again.
CREATE FUNCTION pgq._end_expired_cancels(entrypoints text[]) RETURNS bigint
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

-- pgq.requeue: held (failed) jobs go back to queued with attempts 0. Other ids are ignored.
-- If a held job's dedupe key has been taken by an active job meanwhile, nothing is requeued
-- (23505, naming the key).
CREATE FUNCTION pgq.requeue(job_ids bigint[]) RETURNS bigint
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

-- pgq.clear: removes the queued jobs of one entrypoint (NULL: of all), each with a 'deleted'
-- log row. Picked jobs are running: cancel them with pgq.cancel. Held jobs stay.
CREATE FUNCTION pgq.clear(entrypoint text DEFAULT NULL) RETURNS bigint
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
