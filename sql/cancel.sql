-- Taking jobs out of the queue, and putting held ones back.

-- pgq.cancel: queued, picked or held (failed) jobs leave the queue, each with one 'canceled'
-- log row. The ids of the picked ones (being run right now) go out in one cancel
-- notification, so their workers can stop them; a late ack from such a worker finds nothing.
CREATE FUNCTION pgq.cancel(job_ids bigint[]) RETURNS bigint
-- Rows are found by id; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n      bigint;
    picked bigint[];
BEGIN
    IF job_ids IS NULL THEN
        PERFORM pgq._invalid('job_ids must be an array of job ids, not NULL');
    END IF;
    WITH gone AS (
        DELETE FROM pgq.jobs j WHERE j.id = ANY (job_ids) RETURNING j.*
    ), logged AS (
        INSERT INTO pgq.log (job_id, entrypoint, priority, status, worker_id, attempts, detail,
                             enqueued_at, picked_at)
        SELECT g.id, g.entrypoint, g.priority, 'canceled', NULL, g.attempts,
               jsonb_build_object('reason', 'canceled', 'previous_status', g.status),
               g.created, g.picked_at
        FROM gone g
    )
    SELECT count(*), array_agg(g.id ORDER BY g.id) FILTER (WHERE g.status = 'picked')
    INTO n, picked
    FROM gone g;

    PERFORM pgq._notify_cancel(picked);
    RETURN n;
END
$$;

-- pgq.requeue: held (failed) jobs go back to queued with attempts 0. Other ids are ignored.
-- If a held job's dedupe key has been taken by an active job meanwhile, nothing is requeued
-- (23505, naming the key).
CREATE FUNCTION pgq.requeue(job_ids bigint[]) RETURNS bigint
-- Rows are found by id; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
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
          WHERE o.dedupe_key = h.dedupe_key AND o.id <> h.id
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
