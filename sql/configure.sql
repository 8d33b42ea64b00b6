-- pgq.configure: the fleet-wide settings of an entrypoint (upsert; NULL keeps the current value).
--
-- notify_completion: announce the end of each of its jobs on channel pgq_done (sql/status.sql),
-- for callers that wait for them; off by default.
--
-- A new heartbeat_timeout (the lease) takes effect at once for running jobs too: so that a
-- shorter one does not make them stale by itself, their heartbeats are refreshed, and a
-- {"type": "configured", "entrypoints": [name]} notification tells their workers to heartbeat
-- at the new pace.
CREATE FUNCTION pgq.configure(
    entrypoint        text,
    concurrency_limit int DEFAULT NULL,
    rate_limit        double precision DEFAULT NULL,
    heartbeat_timeout interval DEFAULT NULL,
    max_attempts      int DEFAULT NULL,
    retry_delay       interval DEFAULT NULL,
    retry_delay_max   interval DEFAULT NULL,
    on_failure        text DEFAULT NULL,
    notify_completion boolean DEFAULT NULL
) RETURNS pgq.entrypoints
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    result pgq.entrypoints;
    lease  interval;
BEGIN
    PERFORM pgq._check_entrypoint(entrypoint);
    IF concurrency_limit NOT BETWEEN 0 AND 1000000 THEN
        PERFORM pgq._invalid(format(
            'concurrency_limit must be from 0 (unlimited) to 1000000, not %s', concurrency_limit));
    END IF;
    IF NOT rate_limit BETWEEN 0 AND 1000000 THEN
        PERFORM pgq._invalid(format(
            'rate_limit must be from 0 (unlimited) to 1000000 jobs per second, not %s',
            rate_limit));
    END IF;
    IF heartbeat_timeout NOT BETWEEN '1 second' AND '7 days' THEN
        PERFORM pgq._invalid(format('heartbeat_timeout must be from 1 second to 7 days, not %s',
            heartbeat_timeout),
            'a worker heartbeats several times per heartbeat_timeout; a job whose worker stays '
            'silent that long is claimed again');
    END IF;
    IF max_attempts NOT BETWEEN 1 AND 1000000 THEN
        PERFORM pgq._invalid(format('max_attempts must be from 1 (no retry) to 1000000, not %s',
            max_attempts));
    END IF;
    IF retry_delay NOT BETWEEN '0' AND '7 days' THEN
        PERFORM pgq._invalid(format('retry_delay must be from 0 to 7 days, not %s', retry_delay));
    END IF;
    IF retry_delay_max NOT BETWEEN '0' AND '30 days' THEN
        PERFORM pgq._invalid(format('retry_delay_max must be from 0 to 30 days, not %s',
            retry_delay_max));
    END IF;
    IF on_failure NOT IN ('delete', 'hold') THEN
        PERFORM pgq._invalid(format('on_failure must be ''delete'' or ''hold'', not %L',
            on_failure));
    END IF;

    SELECT e.heartbeat_timeout INTO lease
    FROM pgq.entrypoints e WHERE e.name = configure.entrypoint
    FOR UPDATE;
    lease := coalesce(lease, '30 seconds');

    INSERT INTO pgq.entrypoints AS e (name, concurrency_limit, rate_limit, heartbeat_timeout,
        max_attempts, retry_delay, retry_delay_max, on_failure, notify_completion)
    VALUES (configure.entrypoint,
        coalesce(configure.concurrency_limit, 0),
        coalesce(configure.rate_limit, 0),
        coalesce(configure.heartbeat_timeout, '30 seconds'),
        coalesce(configure.max_attempts, 1),
        coalesce(configure.retry_delay, '1 second'),
        coalesce(configure.retry_delay_max, '5 minutes'),
        coalesce(configure.on_failure, 'delete'),
        coalesce(configure.notify_completion, false))
    ON CONFLICT (name) DO UPDATE SET
        concurrency_limit = coalesce(configure.concurrency_limit, e.concurrency_limit),
        rate_limit        = coalesce(configure.rate_limit, e.rate_limit),
        heartbeat_timeout = coalesce(configure.heartbeat_timeout, e.heartbeat_timeout),
        max_attempts      = coalesce(configure.max_attempts, e.max_attempts),
        retry_delay       = coalesce(configure.retry_delay, e.retry_delay),
        retry_delay_max   = coalesce(configure.retry_delay_max, e.retry_delay_max),
        on_failure        = coalesce(configure.on_failure, e.on_failure),
        notify_completion = coalesce(configure.notify_completion, e.notify_completion),
        updated           = now()
    RETURNING e.* INTO result;

    IF result.heartbeat_timeout <> lease THEN
        UPDATE pgq.jobs j SET heartbeat = now()
        WHERE j.entrypoint = configure.entrypoint AND j.status = 'picked';
        PERFORM pg_notify('pgq', jsonb_build_object(
            'type', 'configured', 'entrypoints', jsonb_build_array(configure.entrypoint))::text);
    END IF;
    RETURN result;
END
$$;

-- pgq.pause: stop claiming the entrypoint's jobs. Jobs already picked run to their end, enqueue
-- goes on, stale picked jobs are not claimed again, and schedule fires are skipped (pgq.tick)
-- until pgq.resume. Returns true if the entrypoint was running.
CREATE FUNCTION pgq.pause(entrypoint text) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    was boolean;
BEGIN
    PERFORM pgq._check_entrypoint(entrypoint);
    SELECT e.paused INTO was FROM pgq.entrypoints e WHERE e.name = pause.entrypoint FOR UPDATE;
    INSERT INTO pgq.entrypoints AS e (name, paused) VALUES (pause.entrypoint, true)
    ON CONFLICT (name) DO UPDATE SET paused = true, updated = now();
    RETURN NOT coalesce(was, false);
END
$$;

-- pgq.resume: claim the entrypoint's jobs again, and tell the workers (an 'enqueued'
-- notification). Returns true if it was paused.
CREATE FUNCTION pgq.resume(entrypoint text) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    PERFORM pgq._check_entrypoint(entrypoint);
    UPDATE pgq.entrypoints e SET paused = false, updated = now()
    WHERE e.name = resume.entrypoint AND e.paused;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pgq._notify_enqueued(ARRAY[resume.entrypoint]);
    END IF;
    RETURN n > 0;
END
$$;
