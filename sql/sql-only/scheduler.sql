-- pgq._wake_scheduler(at), for installs without the extension's library (SQL-only installs).
--
-- With the library preloaded, this wakes the background worker at commit when something falls
-- due before it would wake by itself (extension/src/scheduler.rs). A SQL-only install has no
-- background worker: the Rust runtime (or whoever calls pgq.tick()) fires schedules and
-- announces deferred jobs, so this does nothing.
CREATE FUNCTION pgq._wake_scheduler(at timestamptz) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NULL;
END
$$;
