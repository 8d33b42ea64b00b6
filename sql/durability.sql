-- Durability modes: what a crash or a failover may lose, traded for speed.
--
--   durable   (the default) every table is logged: a commit is on disk, survives a crash and
--             reaches standbys; every job ends in exactly one terminal log row.
--   balanced  pgq.log and pgq.stats are unlogged: outcomes and statistics are emptied by a
--             crash and absent on standbys; the jobs themselves are kept.
--   volatile  pgq.jobs too: a crash or failover loses every queued and running job.
--
-- Unlogged tables skip the write-ahead log: PostgreSQL empties them after a crash (not after a
-- clean shutdown) and standbys cannot read them. The identity sequences stay logged in every
-- mode (PostgreSQL 15 makes a table's identity sequence unlogged with it; this puts it back),
-- so job and log ids never repeat after a crash.

-- pgq.durability: the current mode, read from the tables' persistence.
CREATE FUNCTION pgq.durability() RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN (SELECT relpersistence FROM pg_class WHERE oid = 'pgq.jobs'::regclass) = 'u'
            THEN 'volatile'
        WHEN (SELECT relpersistence FROM pg_class WHERE oid = 'pgq.log'::regclass) = 'u'
            THEN 'balanced'
        ELSE 'durable'
    END
$$;

-- pgq.set_durability: switch to `mode` (durable, balanced or volatile). Each table that changes
-- is rewritten under an ACCESS EXCLUSIVE lock, so claims, acks and enqueues wait until the
-- transaction commits: about as long as copying the table (seconds per million rows; to logged,
-- also writing it all to the WAL). It waits at most `lock_timeout` (default 5 s) for the lock,
-- then fails with 55P03 and changes nothing. Returns the previous mode.
CREATE FUNCTION pgq.set_durability(mode text, lock_timeout interval DEFAULT '5 seconds')
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    previous text := pgq.durability();
    jobs     text;
    history  text;
BEGIN
    IF mode IS NULL OR mode NOT IN ('durable', 'balanced', 'volatile') THEN
        PERFORM pgq._invalid(format(
            'mode must be ''durable'', ''balanced'' or ''volatile'', not %s',
            coalesce(quote_literal(mode), 'NULL')));
    END IF;
    IF set_durability.lock_timeout IS NULL OR set_durability.lock_timeout < '0'
       OR set_durability.lock_timeout > '1 hour' THEN
        PERFORM pgq._invalid(format('lock_timeout must be from 0 to 1 hour, not %s',
            coalesce(set_durability.lock_timeout::text, 'NULL')));
    END IF;
    PERFORM set_config('lock_timeout',
        (extract(epoch FROM set_durability.lock_timeout) * 1000)::bigint::text, true);
    jobs := CASE mode WHEN 'volatile' THEN 'UNLOGGED' ELSE 'LOGGED' END;
    history := CASE mode WHEN 'durable' THEN 'LOGGED' ELSE 'UNLOGGED' END;
    -- Logged tables first when going durable, unlogged last: a table may not be logged while
    -- it references an unlogged one (none does here, but the order costs nothing).
    EXECUTE format('ALTER TABLE pgq.log SET %s', history);
    EXECUTE format('ALTER TABLE pgq.stats SET %s', history);
    EXECUTE format('ALTER TABLE pgq.jobs SET %s', jobs);
    -- PostgreSQL 15 and later change the identity sequences with their tables (and only they
    -- know ALTER SEQUENCE ... SET LOGGED).
    IF current_setting('server_version_num')::int >= 150000 THEN
        EXECUTE 'ALTER SEQUENCE pgq.jobs_id_seq SET LOGGED';
        EXECUTE 'ALTER SEQUENCE pgq.log_id_seq SET LOGGED';
    END IF;
    RETURN previous;
END
$$;
