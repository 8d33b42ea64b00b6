-- Upgrade-test data for release 0.7.0, written with the 0.7.0 API only. Frozen with the
-- release: later APIs change, this file does not. cli/tests/upgrade.rs runs it in a database
-- where `CREATE EXTENSION pgqueuer VERSION '0.7.0'` ran, then updates the extension and
-- checks that every row kept its meaning; tests/e2e/releases/sql_only.rs runs it in a
-- SQL-only install of 0.7.0 (extension/sql/pgqueuer-sql-only--0.7.0.sql) and upgrades that.
--
-- Worker ids: ...0001 holds the picked job, ...0002 failed the held one.

-- Entrypoint settings.
SELECT pgq.configure('limited', concurrency_limit => 2, rate_limit => 50,
                     heartbeat_timeout => '1 minute');
SELECT pgq.configure('held', max_attempts => 1, on_failure => 'hold');
SELECT pgq.configure('retried', max_attempts => 5, retry_delay => '1 hour',
                     retry_delay_max => '2 hours');

-- Queued: with a payload, priority and headers; two more in one batch.
SELECT pgq.enqueue('queued', '\x01'::bytea, priority => 5, headers => '{"k": "v"}');
SELECT pgq.enqueue_many(ARRAY['queued', 'limited'], ARRAY['\x02', '\x03']::bytea[]);

-- Deferred: due tomorrow.
SELECT pgq.enqueue('deferred', execute_after => '1 day');

-- A dedupe key in use.
SELECT pgq.enqueue('deduped', dedupe_key => 'one-of-a-kind');

-- Picked by worker 1 in its first claim, with a heartbeat naming the claim.
SELECT pgq.enqueue('picked', '\x04'::bytea);
WITH c AS MATERIALIZED (
    SELECT id, claim_token FROM pgq.dequeue(ARRAY['picked'], 1,
                                            '00000000-0000-0000-0000-000000000001'))
SELECT pgq.heartbeat(ARRAY(SELECT id FROM c), '00000000-0000-0000-0000-000000000001',
                     ARRAY(SELECT claim_token FROM c));

-- Held (failed) after its only attempt, with the error.
SELECT pgq.enqueue('held');
SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['held'], 1,
                                                '00000000-0000-0000-0000-000000000002')),
               ARRAY['exception']::pgq.job_state[], ARRAY['{"error": "boom"}']::jsonb[],
               '00000000-0000-0000-0000-000000000002');

-- Retried after an exception (attempt 1 of 5, due in an hour) and by the handler's request.
SELECT pgq.enqueue('retried');
SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['retried'], 1)),
               ARRAY['exception']::pgq.job_state[], ARRAY['{"error": "flaky"}']::jsonb[]);
SELECT pgq.enqueue('asked');
SELECT pgq.retry((SELECT id FROM pgq.dequeue(ARRAY['asked'], 1)), '1 hour', 'not yet');

-- A job claimed twice (a stale re-pick): its claim token is 2. It ends as successful.
SELECT pgq.enqueue('repicked');
SELECT count(*) FROM pgq.dequeue(ARRAY['repicked'], 1, '00000000-0000-0000-0000-000000000003');
UPDATE pgq.jobs SET heartbeat = now() - interval '1 hour' WHERE entrypoint = 'repicked';
WITH c AS MATERIALIZED (
    SELECT id, claim_token FROM pgq.dequeue(ARRAY['repicked'], 1,
                                            '00000000-0000-0000-0000-000000000004'))
SELECT pgq.ack(ARRAY(SELECT id FROM c), claim_tokens => ARRAY(SELECT claim_token FROM c));

-- A running job whose cancel was requested, whose worker then reported: ended as canceled.
SELECT pgq.enqueue('stopped');
SELECT count(*) FROM pgq.dequeue(ARRAY['stopped'], 1, '00000000-0000-0000-0000-000000000005');
SELECT pgq.cancel(ARRAY(SELECT id FROM pgq.jobs WHERE entrypoint = 'stopped'));
SELECT pgq.ack(ARRAY(SELECT id FROM pgq.jobs WHERE entrypoint = 'stopped'));

-- Finished: successful, canceled, and deleted unrun by clear.
SELECT pgq.enqueue_many(ARRAY['done', 'done']);
SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['done'], 2)),
               ARRAY['successful', 'canceled']::pgq.job_state[]);
SELECT pgq.enqueue('cleared');
SELECT pgq.clear('cleared');

-- Schedules: one the test makes due before the update, one after it.
SELECT pgq.schedule('nightly', '0 3 * * *', 'Europe/Oslo');
SELECT pgq.schedule('yearly', '0 0 1 1 *');

-- A batch with and without dedupe keys (0.3.0 inserts the keyed rows with ON CONFLICT, the
-- others without), and a successful ack that reports a detail (0.3.0's fast path logs it).
SELECT pgq.enqueue_many(ARRAY['batched', 'batched'], dedupe_keys => ARRAY['batch-key', NULL]);
SELECT pgq.enqueue('reported');
SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['reported'], 1)),
               details => ARRAY['{"result": 42}']::jsonb[]);

-- 0.5.0: an entrypoint that announces its ends on pgq_done, a typed job with its content type,
-- a job ended by pgq.fail with attempts left, and a result.
SELECT pgq.configure('awaited', notify_completion => true, max_attempts => 3);
SELECT pgq.enqueue('awaited', convert_to('{"width": 3}', 'UTF8'),
                   headers => '{"content-type": "application/json"}');
SELECT pgq.enqueue('awaited', convert_to('not json', 'UTF8'),
                   headers => '{"content-type": "application/json"}');
SELECT pgq.fail(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['awaited'], 1)),
                ARRAY['{"type": "unrecoverable", "message": "not a Resize"}']::jsonb[]);
SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['awaited'], 1)),
               details => ARRAY['{"width": 6}']::jsonb[]);

-- 0.6.0: a paused entrypoint (with no job, so the drain leaves nothing of it), retention
-- settings that differ from the defaults, and a maintenance round (folds what it may into
-- pgq.stats).
SELECT pgq.pause('dormant');
SELECT pgq.set_log_retention('30 days');
SELECT pgq.set_stats_retention('1 year');
SELECT pgq.tick();

-- 0.7.0 adds functions only (the read model, the scheduler's new names): nothing to store.
-- The read model reads this database as it is.
SELECT pgq.overview('1 hour') IS NOT NULL;
