-- pgq.version(): the version of the pgqueuer extension installed in this database.
--
-- This is the schema version recorded by CREATE EXTENSION / ALTER EXTENSION UPDATE
-- (what \dx shows), which is what callers need to know which SQL API they can use.
CREATE FUNCTION pgq.version() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pgqueuer'
$$;

COMMENT ON FUNCTION pgq.version() IS 'Version of the pgqueuer extension installed in this database';
