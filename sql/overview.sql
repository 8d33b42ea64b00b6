-- pgq.overview: the read model of the dashboards (pgq dashboard, pgq web) and of pgq metrics:
-- the whole picture in one call and one JSON document, read as pgq_monitor may. Never a
-- payload; of the log only its newest rows (the primary key's end, 10,000 rows at most), never
-- a scan of it or of its created index; outcomes over time from the per-minute statistics.
-- `span` (1 second to 100 years, default an hour) is how far back outcomes are counted.
--
--   at, database, span_seconds
--   entrypoints   each entrypoint with live jobs, outcomes or exceptions in the span, or paused:
--                 queued, ready, picked, held, oldest_queued_seconds, paused; finished and
--                 per_second over the span (whole minutes that overlap it: the statistics, and
--                 the newest log rows they have not folded yet); recent_exceptions in the span
--                 (the newest log rows: final, held, or an attempt that will be retried)
--   outcomes      per entrypoint and status over the span (as finished)
--   per_minute    jobs ended per second, averaged over each minute: successful, failed
--   exceptions    the newest 20 exceptions in the span, with their detail (the error)
--   held, running up to 50 jobs each, oldest first
--   workers       the workers running jobs (pgq.workers)
--   schedules     every schedule, the next due first
CREATE FUNCTION pgq.overview(span interval DEFAULT '1 hour') RETURNS json
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    since timestamptz;
BEGIN
    IF span IS NULL OR span < '1 second' OR span > '100 years' THEN
        PERFORM pgq._invalid(format('span must be from 1 second to 100 years, not %s',
            coalesce(span::text, 'NULL')));
    END IF;
    since := now() - span;
    RETURN (
        WITH newest AS MATERIALIZED (
            -- The newest outcomes, backwards along the primary key: bounded whatever the log's
            -- size, and an index scan whatever the planner guesses.
            SELECT l.id, l.job_id, l.entrypoint, l.attempts, l.created, l.status, l.detail
            FROM pgq.log l
            ORDER BY l.id DESC
            LIMIT 10000
        ),
        exceptions AS (
            SELECT n.* FROM newest n
            WHERE n.created > since
              AND (n.status IN ('exception', 'failed') OR n.detail->>'reason' = 'exception')
        ),
        stats AS (
            -- Outcomes per minute: the rollup up to its watermark, and the newest log rows it
            -- has not folded yet (exact while fewer than 10,000 wait), so that a job that just
            -- ended counts at once.
            SELECT s.minute, s.entrypoint, s.status, s.count
            FROM pgq.stats s
            WHERE s.minute > since - interval '1 minute'
            UNION ALL
            SELECT t.minute, t.entrypoint, t.status, count(*)
            FROM (SELECT date_trunc('minute', n.created) AS minute, n.entrypoint, n.status
                  FROM newest n
                  WHERE n.id > coalesce((SELECT max(w.stats_folded_to) FROM pgq.settings w), 0)
                 ) t
            WHERE t.minute > since - interval '1 minute'
            GROUP BY t.minute, t.entrypoint, t.status
        ),
        finished AS (
            SELECT s.entrypoint, sum(s.count) FILTER (WHERE s.status <> 'queued') AS finished
            FROM stats s GROUP BY s.entrypoint
        ),
        failing AS (
            SELECT x.entrypoint, count(*) AS recent_exceptions FROM exceptions x
            GROUP BY x.entrypoint
        ),
        entrypoints AS (
            SELECT coalesce(b.entrypoint, p.name, f.entrypoint, x.entrypoint) AS entrypoint,
                   coalesce(b.queued, 0) AS queued, coalesce(b.ready, 0) AS ready,
                   coalesce(b.picked, 0) AS picked, coalesce(b.held, 0) AS held,
                   b.oldest_queued_seconds, coalesce(p.paused, false) AS paused,
                   coalesce(f.finished, 0) AS finished,
                   round(coalesce(f.finished, 0) / extract(epoch FROM span)::numeric, 2) AS per_second,
                   coalesce(x.recent_exceptions, 0) AS recent_exceptions
            FROM pgq.backlog b
            FULL JOIN (SELECT e.name, e.paused FROM pgq.entrypoints e WHERE e.paused) p
                ON p.name = b.entrypoint
            FULL JOIN finished f ON f.entrypoint = coalesce(b.entrypoint, p.name)
            FULL JOIN failing x ON x.entrypoint = coalesce(b.entrypoint, p.name, f.entrypoint)
        )
        SELECT json_build_object(
            'at', now(),
            'database', current_database(),
            'span_seconds', extract(epoch FROM span)::numeric,
            'entrypoints', coalesce((
                SELECT json_agg(e ORDER BY e.entrypoint) FROM entrypoints e), '[]'),
            'outcomes', coalesce((
                SELECT json_agg(o ORDER BY o.entrypoint, o.status) FROM (
                    SELECT s.entrypoint, s.status, sum(s.count)::bigint AS count
                    FROM stats s GROUP BY s.entrypoint, s.status
                ) o), '[]'),
            'per_minute', coalesce((
                SELECT json_agg(m ORDER BY m.minute) FROM (
                    SELECT s.minute,
                           round(sum(s.count) FILTER (WHERE s.status = 'successful') / 60.0, 2)
                               AS successful,
                           round(coalesce(sum(s.count)
                                     FILTER (WHERE s.status IN ('exception', 'failed')), 0)
                                 / 60.0, 2) AS failed
                    FROM stats s GROUP BY s.minute
                ) m), '[]'),
            'exceptions', coalesce((
                SELECT json_agg(x ORDER BY x.id DESC) FROM (
                    SELECT x.id, x.job_id, x.entrypoint, x.attempts, x.created, x.status,
                           x.detail
                    FROM exceptions x ORDER BY x.id DESC LIMIT 20
                ) x), '[]'),
            'held', coalesce((
                SELECT json_agg(h ORDER BY h.id) FROM (
                    SELECT j.id, j.entrypoint, j.attempts, j.updated, j.detail
                    FROM pgq.jobs j WHERE j.status = 'failed' ORDER BY j.id LIMIT 50
                ) h), '[]'),
            'running', coalesce((
                SELECT json_agg(r ORDER BY r.picked_at) FROM (
                    SELECT j.id, j.entrypoint, j.worker_id, j.picked_at, j.heartbeat,
                           extract(epoch FROM now() - j.heartbeat)::float8
                               AS heartbeat_age_seconds
                    FROM pgq.jobs j WHERE j.status = 'picked' ORDER BY j.picked_at LIMIT 50
                ) r), '[]'),
            'workers', coalesce((
                SELECT json_agg(w ORDER BY w.worker_id) FROM pgq.workers w), '[]'),
            'schedules', coalesce((
                SELECT json_agg(s ORDER BY s.next_run NULLS LAST, s.id) FROM (
                    SELECT c.id, c.entrypoint, c.expression, c.timezone, c.next_run,
                           c.last_run, c.enabled
                    FROM pgq.schedules c
                ) s), '[]')
        )
    );
END
$$;
