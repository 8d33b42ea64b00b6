-- Roles and privileges: least privilege by role, nothing for PUBLIC (docs/sql-api.md, "Roles").
--
--   pgq_producer  enqueue, enqueue_many, job_status, version
--   pgq_worker    a producer that also runs jobs: dequeue, heartbeat, ack, fail, retry, release,
--                 release_lost, cancel_requested, lease, tick
--   pgq_monitor   reads the tables (pgq.jobs without its payloads), the views, job_status,
--                 durability, overview
--   pgq_admin     a worker and monitor that also operates the queue: configure, schedule,
--                 unschedule, unschedule_id, cancel, requeue, clear, purge_log, pause, resume,
--                 set_log_retention, set_stats_retention, set_durability; reads payloads
--   pgq_owner     owns the tables and functions; the API functions run as it (SECURITY
--                 DEFINER). Not a superuser: a flaw in a function yields the queue, not the
--                 server. Nobody logs in as these roles: grant them (GRANT pgq_worker TO app).
--
-- No role but the owner writes the tables: every change goes through the functions. Roles are
-- shared by the databases of a server: they are created when missing, and an existing one must
-- be what this script would make of it, or the install stops and says what differs.
DO $$
DECLARE
    wanted CONSTANT text[][] := ARRAY[
        -- role, the pgq roles it is a member of (comma-separated)
        ARRAY['pgq_owner', ''],
        ARRAY['pgq_producer', ''],
        ARRAY['pgq_monitor', ''],
        ARRAY['pgq_worker', 'pgq_producer'],
        ARRAY['pgq_admin', 'pgq_monitor,pgq_worker']];
    pair     text[];
    r        record;
    expected text;
    actual   text;
BEGIN
    -- Only what is missing is made, so that a role that may not create roles can run this
    -- once a DBA made them (SQL-only installs, docs/managed-postgres.md).
    FOREACH pair SLICE 1 IN ARRAY wanted LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = pair[1]) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', pair[1]);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- made just now by an install running in another database
            END;
        END IF;
        FOREACH expected IN ARRAY string_to_array(pair[2], ',') LOOP
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_auth_members m
                           WHERE m.roleid = expected::regrole AND m.member = pair[1]::regrole)
            THEN
                BEGIN
                    EXECUTE format('GRANT %I TO %I', expected, pair[1]);
                EXCEPTION WHEN unique_violation THEN
                    NULL;
                END;
            END IF;
        END LOOP;
    END LOOP;
    FOREACH pair SLICE 1 IN ARRAY wanted LOOP
        SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname = pair[1];
        actual := concat_ws(' ',
            CASE WHEN r.rolcanlogin THEN 'LOGIN' END,
            CASE WHEN r.rolsuper THEN 'SUPERUSER' END,
            CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
            CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
            CASE WHEN r.rolreplication THEN 'REPLICATION' END,
            CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END);
        IF actual <> '' THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
                MESSAGE = format('role %s exists with %s, which pgqueuer''s role must not have',
                                 pair[1], actual),
                HINT = format('ALTER ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                              'NOREPLICATION NOBYPASSRLS, or drop it, then install again; '
                              'log in as a role granted %I instead', pair[1], pair[1]);
        END IF;
        SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) INTO actual
        FROM pg_catalog.pg_auth_members m
        JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
        WHERE m.member = r.oid;
        IF coalesce(actual, '') <> pair[2] THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
                MESSAGE = format('role %s exists and is a member of %s, but pgqueuer''s role is '
                                 'a member of %s', pair[1], coalesce(actual, 'no role'),
                                 coalesce(nullif(pair[2], ''), 'no role')),
                HINT = format('revoke the other roles from %I, or drop it, then install again',
                              pair[1]);
        END IF;
    END LOOP;
END
$$;

-- Everything of the extension belongs to pgq_owner (the schema stays the installer's).
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = 'pgq'::regnamespace LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO pgq_owner', f);
    END LOOP;
END
$$;
ALTER TABLE pgq.entrypoints OWNER TO pgq_owner;
ALTER TABLE pgq.jobs OWNER TO pgq_owner;
ALTER TABLE pgq.log OWNER TO pgq_owner;
ALTER TABLE pgq.schedules OWNER TO pgq_owner;
ALTER TABLE pgq.settings OWNER TO pgq_owner;
ALTER TABLE pgq.stats OWNER TO pgq_owner;
ALTER VIEW pgq.queue_summary OWNER TO pgq_owner;
ALTER VIEW pgq.throughput OWNER TO pgq_owner;
ALTER VIEW pgq.backlog OWNER TO pgq_owner;
ALTER VIEW pgq.workers OWNER TO pgq_owner;
ALTER TYPE pgq.job_state OWNER TO pgq_owner;

-- PUBLIC gets nothing: not the schema, not a function (CREATE FUNCTION grants EXECUTE to
-- PUBLIC), not the type.
REVOKE ALL ON SCHEMA pgq FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgq FROM PUBLIC;
REVOKE ALL ON TYPE pgq.job_state FROM PUBLIC;
GRANT USAGE ON SCHEMA pgq TO pgq_owner, pgq_producer, pgq_monitor;
GRANT USAGE ON TYPE pgq.job_state TO pgq_producer, pgq_monitor;

GRANT EXECUTE ON FUNCTION
    pgq.enqueue(text, bytea, int, interval, text, jsonb),
    pgq.enqueue_many(text[], bytea[], int[], interval[], text[], jsonb[], text),
    pgq.job_status(bigint[]),
    pgq.version()
TO pgq_producer;

GRANT EXECUTE ON FUNCTION
    pgq.dequeue(text[], int, uuid),
    pgq.heartbeat(bigint[], uuid, int[]),
    pgq.ack(bigint[], pgq.job_state[], jsonb[], uuid, int[]),
    pgq.fail(bigint[], jsonb[], uuid, int[]),
    pgq.retry(bigint, interval, text, uuid, int),
    pgq.release(bigint[], uuid, int[]),
    pgq.release_lost(uuid, bigint[], int[]),
    pgq.cancel_requested(bigint[]),
    pgq.lease(text[]),
    pgq.tick(),
    pgq._scheduler_round(timestamptz),
    pgq._worker_round(timestamptz),
    pgq._scheduler_serves()
TO pgq_worker;

GRANT SELECT ON pgq.entrypoints, pgq.log, pgq.schedules, pgq.queue_summary, pgq.throughput,
    pgq.backlog, pgq.workers, pgq.settings, pgq.stats
TO pgq_monitor;
GRANT SELECT (id, entrypoint, priority, headers, dedupe_key, status, attempts, worker_id,
              created, updated, heartbeat, execute_after, picked_at, detail, claim_token,
              cancel_requested)
ON pgq.jobs TO pgq_monitor;
GRANT EXECUTE ON FUNCTION pgq.job_status(bigint[]), pgq.version(), pgq.durability(),
    pgq.overview(interval)
TO pgq_monitor;

GRANT SELECT ON pgq.jobs TO pgq_admin;
GRANT EXECUTE ON FUNCTION
    pgq.configure(text, int, double precision, interval, int, interval, interval, text, boolean),
    pgq.schedule(text, text, text),
    pgq.unschedule(text, text),
    pgq.unschedule_id(bigint),
    pgq.cancel(bigint[]),
    pgq.requeue(bigint[]),
    pgq.clear(text),
    pgq.purge_log(interval),
    pgq.pause(text),
    pgq.resume(text),
    pgq.set_log_retention(interval),
    pgq.set_stats_retention(interval),
    pgq.set_durability(text, interval)
TO pgq_admin;
