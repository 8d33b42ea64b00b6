-- pgq.heartbeat: a worker says it still runs these jobs. Fenced like ack (sql/ack.sql): with
-- claim tokens, only those claims are refreshed; with worker_id, only jobs that worker still
-- holds. Returns the count refreshed.
CREATE FUNCTION pgq.heartbeat(
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

-- pgq.lease: the shortest heartbeat_timeout of these entrypoints (30 seconds for one without
-- settings): a worker that runs their jobs must heartbeat well within it. NULL entrypoints
-- (or none) are 22023.
CREATE FUNCTION pgq.lease(entrypoints text[]) RETURNS interval
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
