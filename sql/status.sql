-- Reading the queue: job status, completion notifications, the log's retention, and the views
-- that dashboards, `pgq backlog`, `pgq workers` and `pgq metrics` read (the read model).

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

-- Completion notifications. For an entrypoint configured with notify_completion, each
-- statement that ends jobs sends {"type": "done", "ids": [...]} on channel pgq_done (at most
-- 300 ids per notification, so that one stays far below NOTIFY's 8000 bytes), when it commits.
-- Every way a job ends writes its log row, so a statement trigger on pgq.log sees them all: ack,
-- fail, cancel, clear, a lease that ran out. Retries and requeues (log status 'queued') are not
-- ends; a held job ('failed') is. Like every notification, a hint: a waiter reads
-- pgq.job_status to learn the outcome. Entrypoints without the setting cost one probe of
-- pgq.entrypoints per statement.
--
-- The probe is a sequential scan of a table of a few rows, and the acks that fire this trigger
-- run with enable_seqscan = off: inherited here, that setting's penalty made the probe's
-- estimated cost pass jit_above_cost, and JIT compiling it cost 25 - 130 ms per ack (the
-- runtime drained at a seventh of its speed). So this function turns sequential scans on.
CREATE FUNCTION pgq._notify_completed() RETURNS trigger
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

CREATE TRIGGER log_completed AFTER INSERT ON pgq.log
REFERENCING NEW TABLE AS added
FOR EACH STATEMENT EXECUTE FUNCTION pgq._notify_completed();

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

-- The backlog of each entrypoint with live jobs: queued (of which ready to run now), picked,
-- held (failed, waiting for pgq.requeue), and how long the oldest queued job has waited.
CREATE VIEW pgq.backlog AS
SELECT entrypoint,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'queued' AND execute_after <= now()) AS ready,
       count(*) FILTER (WHERE status = 'picked') AS picked,
       count(*) FILTER (WHERE status = 'failed') AS held,
       extract(epoch FROM now() - min(created) FILTER (WHERE status = 'queued'))::float8
           AS oldest_queued_seconds
FROM pgq.jobs
GROUP BY entrypoint;

-- The workers running jobs now: how many, of which entrypoints, and their heartbeats.
CREATE VIEW pgq.workers AS
SELECT worker_id,
       count(*) AS jobs,
       array_agg(DISTINCT entrypoint ORDER BY entrypoint) AS entrypoints,
       min(heartbeat) AS oldest_heartbeat,
       max(heartbeat) AS last_heartbeat
FROM pgq.jobs
WHERE status = 'picked'
GROUP BY worker_id;
