//! pgq.overview, the read model of the dashboards and pgq metrics: one JSON document, read as
//! pgq_monitor may, without payloads and without scanning the log.

use std::time::Duration;

use pgqueuer::{Error, Queries};
use pgqueuer_tests::{TestDb, expect_invalid};
use serde_json::Value;

/// The document of a queue with a job in every state: queued, ready, running, held, a final
/// exception, a retried attempt, a paused entrypoint and a schedule.
#[tokio::test]
async fn the_overview_holds_every_part_of_the_picture() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('held', on_failure => 'hold');
         SELECT pgq.configure('flaky', max_attempts => 3);
         SELECT pgq.enqueue_many(ARRAY['mail', 'mail', 'held', 'sms', 'flaky', 'run']);
         SELECT pgq.enqueue('later', execute_after => '1 hour');
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['held', 'sms', 'flaky'], 10)),
                        ARRAY['exception', 'exception', 'exception']::pgq.job_state[],
                        ARRAY['{\"message\": \"boom\"}', '{\"message\": \"boom\"}',
                              '{\"message\": \"boom\"}']::jsonb[]);
         SELECT count(*) FROM pgq.dequeue(ARRAY['run'], 1, '00000000-0000-4000-8000-000000000001');
         SELECT pgq.pause('idle');
         SELECT pgq.schedule('nightly', '0 2 * * *');",
    )
    .await
    .expect("a queue in every state");
    let q = Queries::new(db.connect().await);
    let text = q
        .overview(Duration::from_secs(3600))
        .await
        .expect("the overview");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["database"], Value::from(db.name.clone()));
    assert_eq!(doc["span_seconds"].as_f64(), Some(3600.0));
    let entrypoint = |name: &str| {
        doc["entrypoints"]
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["entrypoint"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no row for {name}: {doc}"))
    };
    let mail = entrypoint("mail");
    assert_eq!(
        (&mail["queued"], &mail["ready"], &mail["picked"]),
        (&Value::from(2), &Value::from(2), &Value::from(0))
    );
    let later = entrypoint("later");
    assert_eq!(
        (&later["queued"], &later["ready"]),
        (&Value::from(1), &Value::from(0))
    );
    assert_eq!(entrypoint("held")["held"], Value::from(1));
    assert_eq!(entrypoint("run")["picked"], Value::from(1));
    assert_eq!(entrypoint("idle")["paused"], Value::from(true));
    // sms ended (exception), flaky was retried, held is held: each counts as a recent
    // exception, from the newest log rows, without waiting for the statistics.
    for name in ["sms", "flaky", "held"] {
        assert_eq!(
            entrypoint(name)["recent_exceptions"],
            Value::from(1),
            "{name}"
        );
    }
    let exceptions = doc["exceptions"].as_array().expect("exceptions");
    assert_eq!(exceptions.len(), 3, "{exceptions:?}");
    assert!(
        exceptions
            .iter()
            .all(|x| x["detail"].to_string().contains("boom"))
    );
    assert_eq!(doc["held"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["running"][0]["entrypoint"], Value::from("run"));
    assert_eq!(
        doc["workers"][0]["worker_id"],
        Value::from("00000000-0000-4000-8000-000000000001")
    );
    assert_eq!(doc["schedules"][0]["entrypoint"], Value::from("nightly"));
    assert!(doc["per_minute"].is_array() && doc["outcomes"].is_array());
    assert!(
        !text.contains("payload"),
        "no payload in the overview: {text}"
    );
}

/// A span outside 1 second to 100 years is 22023; pgq_monitor may read the overview.
#[tokio::test]
async fn the_span_is_checked_and_a_monitor_may_read_it() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    expect_invalid(
        &c,
        &[
            "SELECT pgq.overview('0 seconds')",
            "SELECT pgq.overview(NULL)",
            "SELECT pgq.overview('101 years')",
        ],
    )
    .await;
    let login = format!("monitor_{}", db.name);
    c.batch_execute(&format!(
        "CREATE ROLE {login} LOGIN; GRANT pgq_monitor TO {login}"
    ))
    .await
    .expect("a monitor");
    let monitor = Queries::new(
        pgqueuer::connect(&format!("{} user={login}", db.dsn))
            .await
            .expect("connect as the monitor"),
    );
    let text = monitor
        .overview(Duration::from_secs(60))
        .await
        .expect("a monitor reads the overview");
    assert!(text.starts_with('{'), "{text}");
    match Queries::new(db.connect().await)
        .overview(Duration::ZERO)
        .await
    {
        Err(Error::Invalid { message, .. }) => assert!(message.contains("span"), "{message}"),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

/// However large the log grows, the overview reads only its newest rows by primary key: no
/// plan of it reads the created index or scans the log, even with sequential scans off.
#[tokio::test]
async fn the_overview_never_scans_the_log() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.enqueue_many(array_fill('e'::text, ARRAY[200]));
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['e'], 200)), NULL);
         ANALYZE pgq.log;",
    )
    .await
    .expect("a log");
    let plans = db
        .nested_plans("SET enable_seqscan = off; SELECT pgq.overview('1 hour')")
        .await;
    let plans = plans.join("\n");
    assert!(
        plans.contains("log_pkey"),
        "the newest rows by primary key:
{plans}"
    );
    assert!(
        !plans.contains("log_created_idx"),
        "the created index is read:\n{plans}"
    );
    assert!(
        !plans.contains("Seq Scan on log"),
        "the log is scanned:\n{plans}"
    );
}
