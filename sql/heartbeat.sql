-- pgq.heartbeat: a worker says it still runs these jobs. With worker_id, only rows that worker
-- still holds are refreshed (a re-picked or cancelled job is not). Returns the count refreshed.
CREATE FUNCTION pgq.heartbeat(job_ids bigint[], worker_id uuid DEFAULT NULL) RETURNS bigint
-- Rows are found by id; enable_seqscan = off for the reason given at pgq.dequeue.
LANGUAGE plpgsql
SET enable_seqscan = off
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
    UPDATE pgq.jobs j SET heartbeat = now()
    WHERE j.id = ANY (job_ids) AND j.status = 'picked'
      AND (holder IS NULL OR j.worker_id = holder);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
