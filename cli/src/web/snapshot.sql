-- What pgq web shows, in one statement and one round trip, read as pgq_monitor may: never the
-- payloads, and of the log only its newest rows (the primary key's end), never a scan of it.
SELECT json_build_object(
    'at', now(),
    'entrypoints', coalesce((
        SELECT json_agg(e ORDER BY e.entrypoint) FROM (
            SELECT coalesce(b.entrypoint, p.name) AS entrypoint,
                   coalesce(b.queued, 0) AS queued, coalesce(b.ready, 0) AS ready,
                   coalesce(b.picked, 0) AS picked, coalesce(b.held, 0) AS held,
                   b.oldest_queued_seconds, coalesce(p.paused, false) AS paused
            FROM pgq.backlog b
            FULL JOIN (SELECT name, paused FROM pgq.entrypoints) p ON p.name = b.entrypoint
            WHERE b.entrypoint IS NOT NULL OR p.paused
        ) e), '[]'),
    -- Jobs ended per second, averaged over each minute of the last hour (the rollup).
    'per_minute', coalesce((
        SELECT json_agg(m ORDER BY m.minute) FROM (
            SELECT s.minute,
                   round(sum(s.count) FILTER (WHERE s.status = 'successful') / 60.0, 2)
                       AS successful,
                   round(coalesce(sum(s.count) FILTER (WHERE s.status IN ('exception', 'failed')), 0)
                         / 60.0, 2) AS failed
            FROM pgq.stats s
            WHERE s.minute > now() - interval '1 hour'
            GROUP BY s.minute
        ) m), '[]'),
    -- The newest exceptions among the last 10,000 outcomes.
    'exceptions', coalesce((
        SELECT json_agg(x ORDER BY x.id DESC) FROM (
            SELECT l.id, l.job_id, l.entrypoint, l.attempts, l.created, l.detail
            FROM pgq.log l
            WHERE l.id > (SELECT coalesce(max(id), 0) FROM pgq.log) - 10000
              AND l.status IN ('exception', 'failed')
            ORDER BY l.id DESC
            LIMIT 20
        ) x), '[]'),
    'held', coalesce((
        SELECT json_agg(h ORDER BY h.id) FROM (
            SELECT j.id, j.entrypoint, j.attempts, j.updated, j.detail
            FROM pgq.jobs j WHERE j.status = 'failed' ORDER BY j.id LIMIT 50
        ) h), '[]'),
    'running', coalesce((
        SELECT json_agg(r ORDER BY r.picked_at) FROM (
            SELECT j.id, j.entrypoint, j.worker_id, j.picked_at, j.heartbeat,
                   extract(epoch FROM now() - j.heartbeat)::float8 AS heartbeat_age_seconds
            FROM pgq.jobs j WHERE j.status = 'picked' ORDER BY j.picked_at LIMIT 50
        ) r), '[]'),
    'workers', coalesce((SELECT json_agg(w ORDER BY w.worker_id) FROM pgq.workers w), '[]'),
    'schedules', coalesce((
        SELECT json_agg(s ORDER BY s.next_run NULLS LAST, s.id) FROM (
            SELECT id, entrypoint, expression, timezone, next_run, last_run, enabled
            FROM pgq.schedules
        ) s), '[]')
)::text
