//! pgq.cancel, pgq.requeue and pgq.clear.

use pgqueuer_tests::{TestDb, count, expect_sqlstate, scalar};
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn cancel_ends_queued_and_held_jobs_and_asks_the_workers_of_running_ones() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let mut listener = db.listen().await;
    c.batch_execute(
        "SELECT pgq.configure('held', on_failure => 'hold');
         SELECT pgq.enqueue_many(ARRAY['queued', 'picked', 'held']);
         SELECT pgq.dequeue(ARRAY['picked']);
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['held'])),
                        ARRAY['exception']::pgq.job_state[]);
         SELECT pg_notify('pgq', 'setup done');",
    )
    .await
    .expect("one job queued, one picked, one held");
    listener.until("setup done").await;
    let picked: i64 = scalar(&c, "SELECT id FROM pgq.jobs WHERE status = 'picked'", &[]).await;

    let canceled: i64 = scalar(
        &c,
        "SELECT pgq.cancel(ARRAY(SELECT id FROM pgq.jobs) || 999::bigint)",
        &[],
    )
    .await;
    c.execute("SELECT pg_notify('pgq', 'canceled')", &[])
        .await
        .expect("sentinel");
    assert_eq!(canceled, 3, "unknown ids are ignored");
    assert_eq!(count(&c, "pgq.log WHERE status = 'canceled'").await, 2);
    // The running job stays until its worker reports: its handler may still be running.
    let left: Vec<(i64, bool)> = c
        .query("SELECT id, cancel_requested IS NOT NULL FROM pgq.jobs", &[])
        .await
        .expect("jobs")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(left, vec![(picked, true)]);
    let sent: Vec<Value> = listener
        .until("canceled")
        .await
        .iter()
        .map(|payload| serde_json::from_str(payload).expect("JSON"))
        .collect();
    assert_eq!(sent, vec![json!({"type": "cancel", "ids": [picked]})]);
    let confirmed: Vec<i64> = c
        .query(
            "SELECT job_id FROM pgq.cancel_requested(ARRAY[$1::bigint, 999])",
            &[&picked],
        )
        .await
        .expect("cancel_requested")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        confirmed,
        vec![picked],
        "a worker can check the notification"
    );

    // Whatever its worker reports, the job ends as canceled, once, keeping the report.
    let acked: i64 = scalar(&c, "SELECT pgq.ack(ARRAY[$1::bigint])", &[&picked]).await;
    assert_eq!(acked, 1);
    assert_eq!(count(&c, "pgq.jobs").await, 0);
    let detail: Value = scalar(
        &c,
        "SELECT detail FROM pgq.log WHERE job_id = $1 AND status = 'canceled'",
        &[&picked],
    )
    .await;
    assert_eq!(
        detail,
        json!({"reason": "canceled", "previous_status": "picked", "outcome": "successful",
               "detail": null})
    );
}

/// A cancelled running job keeps its seat under the concurrency limit and its dedupe key
/// until its worker reports: its handler may go on regardless (freeing them at once let a
/// second job start beside it, over the limit, and a duplicate of it run in parallel).
#[tokio::test]
async fn a_cancelled_running_job_keeps_its_seat_and_dedupe_key_until_its_worker_reports() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('one', concurrency_limit => 1);
         SELECT pgq.enqueue('one', dedupe_key => 'k');
         SELECT pgq.enqueue('one');",
    )
    .await
    .expect("two jobs, one seat");
    let running: i64 = scalar(&c, "SELECT id FROM pgq.dequeue(ARRAY['one'], 5)", &[]).await;
    assert_eq!(
        scalar::<i64>(&c, "SELECT pgq.cancel(ARRAY[$1::bigint])", &[&running]).await,
        1
    );

    let claimed: i64 = scalar(&c, "SELECT count(*) FROM pgq.dequeue(ARRAY['one'], 5)", &[]).await;
    assert_eq!(claimed, 0, "the seat is still taken");
    expect_sqlstate(
        c.query("SELECT pgq.enqueue('one', dedupe_key => 'k')", &[])
            .await,
        &SqlState::UNIQUE_VIOLATION,
    );

    // Its worker reports (here: an exception); the job ends as canceled, the seat frees.
    let acked: i64 = scalar(
        &c,
        "SELECT pgq.ack(ARRAY[$1::bigint], ARRAY['exception']::pgq.job_state[])",
        &[&running],
    )
    .await;
    assert_eq!(acked, 1);
    assert_eq!(
        count(&c, "pgq.log WHERE status = 'canceled'").await,
        1,
        "one terminal row"
    );
    let claimed: i64 = scalar(&c, "SELECT count(*) FROM pgq.dequeue(ARRAY['one'], 5)", &[]).await;
    assert_eq!(claimed, 1, "the next job takes the seat");
    let key: i64 = scalar(&c, "SELECT pgq.enqueue('one', dedupe_key => 'k')", &[]).await;
    assert!(key > 0, "the key is free again");
}

/// A cancelled running job whose worker is gone ends as canceled when its lease expires;
/// it is never claimed again.
#[tokio::test]
async fn a_cancelled_job_whose_lease_expires_ends_as_canceled_and_never_runs_again() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.enqueue_many(ARRAY['a', 'b']);
         SELECT count(*) FROM pgq.dequeue(ARRAY['a', 'b'], 2);
         SELECT pgq.cancel(ARRAY(SELECT id FROM pgq.jobs));
         UPDATE pgq.jobs SET heartbeat = now() - interval '1 hour';",
    )
    .await
    .expect("two cancelled running jobs whose workers vanished");
    let claimed: i64 = scalar(&c, "SELECT count(*) FROM pgq.dequeue(ARRAY['a'], 5)", &[]).await;
    assert_eq!(claimed, 0, "never claimed again");
    assert_eq!(
        count(&c, "pgq.jobs WHERE entrypoint = 'a'").await,
        0,
        "the claim ended it"
    );
    // pgq.tick ends the ones nobody claims (the background worker calls it every round).
    c.batch_execute("SELECT pgq.tick()").await.expect("tick");
    assert_eq!(count(&c, "pgq.jobs").await, 0);
    let outcomes: Vec<String> = c
        .query(
            "SELECT entrypoint || ' ' || (detail->>'outcome') FROM pgq.log              WHERE status = 'canceled' ORDER BY entrypoint",
            &[],
        )
        .await
        .expect("log")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(outcomes, ["a lease_expired", "b lease_expired"]);
}

#[tokio::test]
async fn cancel_of_jobs_nobody_runs_sends_no_notification() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.execute("SELECT pgq.enqueue('a', execute_after => '1 hour')", &[])
        .await
        .expect("enqueue");
    let mut listener = db.listen().await;
    c.batch_execute(
        "SELECT pgq.cancel(ARRAY(SELECT id FROM pgq.jobs)); SELECT pg_notify('pgq', 'end');",
    )
    .await
    .expect("cancel");
    assert!(listener.until("end").await.is_empty());
    expect_sqlstate(
        c.query_one("SELECT pgq.cancel(NULL)", &[]).await,
        &SqlState::INVALID_PARAMETER_VALUE,
    );
}

#[tokio::test]
async fn requeue_brings_held_jobs_back_with_attempts_reset() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('h', on_failure => 'hold', max_attempts => 2, retry_delay => '0');
         SELECT pgq.enqueue('h');
         SELECT pgq.enqueue('other');
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['h'])), ARRAY['exception']::pgq.job_state[]);
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['h'])), ARRAY['exception']::pgq.job_state[]);",
    )
    .await
    .expect("a job held after two attempts");
    let held: i64 = scalar(
        &c,
        "SELECT id FROM pgq.jobs WHERE status = 'failed' AND attempts = 1",
        &[],
    )
    .await;
    let mut listener = db.listen().await;
    let requeued: i64 = scalar(
        &c,
        "SELECT pgq.requeue(ARRAY(SELECT id FROM pgq.jobs))",
        &[],
    )
    .await;
    c.execute("SELECT pg_notify('pgq', 'end')", &[])
        .await
        .expect("sentinel");
    assert_eq!(requeued, 1, "only held jobs are requeued");
    let row = c
        .query_one(
            "SELECT status::text, attempts, detail IS NULL FROM pgq.jobs WHERE id = $1",
            &[&held],
        )
        .await
        .expect("the job");
    assert_eq!(
        (
            row.get::<_, &str>(0),
            row.get::<_, i32>(1),
            row.get::<_, bool>(2)
        ),
        ("queued", 0, true)
    );
    let last: String = scalar(
        &c,
        "SELECT detail->>'reason' FROM pgq.log WHERE job_id = $1 ORDER BY id DESC LIMIT 1",
        &[&held],
    )
    .await;
    assert_eq!(last, "requeue");
    let sent = listener.until("end").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(&sent[0]).expect("JSON"),
        json!({"type": "enqueued", "entrypoints": ["h"]})
    );
}

#[tokio::test]
async fn requeue_refuses_when_the_dedupe_key_was_taken_meanwhile() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('h', on_failure => 'hold');
         SELECT pgq.enqueue('h', dedupe_key => 'report-7');
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['h'])), ARRAY['exception']::pgq.job_state[]);
         SELECT pgq.enqueue('h', dedupe_key => 'report-7');",
    )
    .await
    .expect("a held job whose key a new job took");
    let message = expect_sqlstate(
        c.query_one("SELECT pgq.requeue(ARRAY(SELECT id FROM pgq.jobs))", &[])
            .await,
        &SqlState::UNIQUE_VIOLATION,
    );
    assert!(message.contains("'report-7'"), "{message}");
    assert_eq!(
        count(&c, "pgq.jobs WHERE status = 'failed'").await,
        1,
        "nothing requeued"
    );
}

#[tokio::test]
async fn clear_removes_queued_jobs_only() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.enqueue_many(ARRAY['a', 'a', 'b']);
         SELECT pgq.dequeue(ARRAY['a']);",
    )
    .await
    .expect("setup");
    let cleared: i64 = scalar(&c, "SELECT pgq.clear('a')", &[]).await;
    assert_eq!(cleared, 1);
    let cleared: i64 = scalar(&c, "SELECT pgq.clear()", &[]).await;
    assert_eq!(cleared, 1);
    assert_eq!(
        count(&c, "pgq.jobs WHERE status = 'picked'").await,
        1,
        "running jobs stay"
    );
    assert_eq!(count(&c, "pgq.log WHERE status = 'deleted'").await, 2);
    expect_sqlstate(
        c.query_one("SELECT pgq.clear('')", &[]).await,
        &SqlState::INVALID_PARAMETER_VALUE,
    );
}
