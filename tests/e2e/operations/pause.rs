//! Pausing an entrypoint: its jobs are not claimed (running ones finish), enqueue goes on,
//! schedule fires are skipped, and resume tells the workers.

use pgqueuer_tests::{TestDb, count, expect_invalid, scalar};
use serde_json::json;

#[tokio::test]
async fn a_paused_entrypoint_is_not_claimed_until_it_is_resumed() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute("SELECT pgq.enqueue_many(ARRAY['p', 'p', 'other'])")
        .await
        .expect("enqueue");
    let running: i64 = scalar(&c, "SELECT id FROM pgq.dequeue(ARRAY['p'], 1)", &[]).await;
    let paused: bool = scalar(&c, "SELECT pgq.pause('p')", &[]).await;
    assert!(paused);
    let again: bool = scalar(&c, "SELECT pgq.pause('p')", &[]).await;
    assert!(!again, "already paused");

    // Nothing of p is claimed, the other entrypoint is; p's running job is acked; enqueue works.
    let claimed: Vec<String> = c
        .query(
            "SELECT entrypoint FROM pgq.dequeue(ARRAY['p', 'other'], 10)",
            &[],
        )
        .await
        .expect("dequeue")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(claimed, ["other"]);
    let acked: i64 = scalar(&c, "SELECT pgq.ack(ARRAY[$1::bigint])", &[&running]).await;
    assert_eq!(acked, 1);
    c.execute("SELECT pgq.enqueue('p')", &[])
        .await
        .expect("enqueue while paused");
    // Its stale jobs are not claimed again either.
    c.batch_execute(
        "UPDATE pgq.jobs SET status = 'picked', heartbeat = now() - interval '1 day'
         WHERE id = (SELECT min(id) FROM pgq.jobs WHERE entrypoint = 'p');",
    )
    .await
    .expect("a stale job");
    assert_eq!(
        count(&c, "pgq.dequeue(ARRAY['p'], 10)").await,
        0,
        "nothing of a paused entrypoint"
    );

    // A due schedule of p advances without making a job.
    c.batch_execute(
        "SELECT pgq.schedule('p', '* * * * *');
         UPDATE pgq.schedules SET next_run = now() - interval '1 minute';
         SELECT pgq.tick();",
    )
    .await
    .expect("tick");
    assert_eq!(count(&c, "pgq.jobs WHERE headers ? 'schedule_id'").await, 0);
    assert_eq!(count(&c, "pgq.schedules WHERE next_run > now()").await, 1);

    let mut listener = db.listen().await;
    c.batch_execute("SELECT pgq.resume('p'); SELECT pg_notify('pgq', 'end');")
        .await
        .expect("resume");
    let heard: Vec<serde_json::Value> = listener
        .until("end")
        .await
        .iter()
        .map(|payload| serde_json::from_str(payload).expect("JSON"))
        .collect();
    assert_eq!(heard, [json!({"type": "enqueued", "entrypoints": ["p"]})]);
    let resumed: bool = scalar(&c, "SELECT pgq.resume('p')", &[]).await;
    assert!(!resumed, "not paused any more");
    assert_eq!(count(&c, "pgq.dequeue(ARRAY['p'], 10)").await, 2);
    expect_invalid(&c, &["SELECT pgq.pause(NULL)", "SELECT pgq.resume('')"]).await;
}
