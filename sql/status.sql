-- Reading the queue: job status, the log's retention, and two views for dashboards.

-- pgq.job_status: the latest status of each job, live or finished (completion tracking from
-- any language). Live jobs report their row (detail NULL, except a held job's error);
-- finished ones their latest log row. Unknown or purged ids are left out. NULL is 22023.
CREATE FUNCTION pgq.job_status(job_ids bigint[])
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

-- pgq.purge_log: deletes log rows older than older_than. Returns the count deleted.
CREATE FUNCTION pgq.purge_log(older_than interval) RETURNS bigint
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

-- Live jobs by entrypoint, status and priority, with the oldest one's creation time.
CREATE VIEW pgq.queue_summary AS
SELECT entrypoint, status, priority, count(*) AS count, min(created) AS oldest
FROM pgq.jobs
GROUP BY entrypoint, status, priority;

-- Outcomes per second over the last hour, by entrypoint and status.
CREATE VIEW pgq.throughput AS
SELECT date_trunc('second', created) AS second, entrypoint, status, count(*) AS count
FROM pgq.log
WHERE created > now() - interval '1 hour'
GROUP BY 1, 2, 3;
