//! Notifications on channel pgq: one per statement that makes jobs available now, none from
//! claims, heartbeats or acks.

use pgqueuer_tests::TestDb;
use serde_json::{Value, json};

fn parsed(payloads: Vec<String>) -> Vec<Value> {
    payloads
        .iter()
        .map(|payload| serde_json::from_str(payload).expect("JSON"))
        .collect()
}

#[tokio::test]
async fn one_enqueued_notification_per_statement_not_per_row() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    let mut listener = db.listen().await;
    c.batch_execute(
        "SELECT pgq.enqueue_many(ARRAY['b', 'a', 'b', 'a', 'a']);
         SELECT pg_notify('pgq', 'end');",
    )
    .await
    .expect("enqueue_many");
    assert_eq!(
        parsed(listener.until("end").await),
        vec![json!({"type": "enqueued", "entrypoints": ["a", "b"]})]
    );
    c.batch_execute("SELECT pgq.enqueue('mail'); SELECT pg_notify('pgq', 'end');")
        .await
        .expect("enqueue");
    // The payload text itself, for listeners that match on it without a JSON parser.
    assert_eq!(
        listener.until("end").await,
        vec![r#"{"type": "enqueued", "entrypoints": ["mail"]}"#.to_string()]
    );
}

#[tokio::test]
async fn deferred_jobs_are_not_announced_at_enqueue() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    let mut listener = db.listen().await;
    c.batch_execute(
        "SELECT pgq.enqueue('later', execute_after => '1 hour');
         SELECT pgq.enqueue_many(ARRAY['later'], execute_after => ARRAY['1 hour']::interval[]);
         SELECT pg_notify('pgq', 'end');",
    )
    .await
    .expect("deferred enqueues");
    assert!(listener.until("end").await.is_empty());
}

#[tokio::test]
async fn dequeue_heartbeat_and_ack_send_nothing_and_a_prompt_retry_notifies() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    c.execute("SELECT pgq.enqueue_many(ARRAY['a', 'a'])", &[])
        .await
        .expect("enqueue");
    let mut listener = db.listen().await;
    c.batch_execute(
        "SELECT pgq.dequeue(ARRAY['a'], 2);
         SELECT pgq.heartbeat(ARRAY(SELECT id FROM pgq.jobs));
         SELECT pgq.ack(ARRAY(SELECT min(id) FROM pgq.jobs));
         SELECT pg_notify('pgq', 'end');",
    )
    .await
    .expect("dequeue, heartbeat, ack");
    assert!(listener.until("end").await.is_empty());
    c.batch_execute(
        "SELECT pgq.retry((SELECT id FROM pgq.jobs), '0');
         SELECT pg_notify('pgq', 'end');",
    )
    .await
    .expect("retry");
    assert_eq!(
        parsed(listener.until("end").await),
        vec![json!({"type": "enqueued", "entrypoints": ["a"]})]
    );
}
