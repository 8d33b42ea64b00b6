-- The background scheduler ("pgqueuer scheduler", extension/src/scheduler.rs): what it runs
-- in a database, and whether one serves it.

-- pgq._scheduler_round: one round of the scheduler. Fires due schedules (pgq.tick) and sends
-- one 'enqueued' notification for the entrypoints of deferred or retried jobs that fell due
-- since the previous round. Returns the next due time.
CREATE FUNCTION pgq._scheduler_round(since timestamptz) RETURNS timestamptz
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

-- pgq._worker_round: the name of pgq._scheduler_round before 0.7.0, kept for one release: a
-- server that preloads a 0.6.0 library calls it until it restarts with the new one.
CREATE FUNCTION pgq._worker_round(since timestamptz) RETURNS timestamptz
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgq._scheduler_round(since)
$$;

-- pgq._scheduler_serves: whether a scheduler serves this database now (the extension is
-- installed here and a scheduler of this database is running), so that workers know whether
-- they must call pgq.tick() themselves. Always false for a SQL-only install, which no
-- scheduler serves.
CREATE FUNCTION pgq._scheduler_serves() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pgqueuer')
       AND EXISTS (SELECT FROM pg_catalog.pg_stat_activity
                   WHERE backend_type = 'pgqueuer scheduler'
                     AND datname = pg_catalog.current_database())
$$;
