//! Notifications on channel pgq: one per statement that makes jobs available now, none from
//! claims, heartbeats or acks.

use pgqueuer_tests::{TestDb, count, expect_invalid, expect_sqlstate, scalar};
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;

fn parsed(payloads: Vec<String>) -> Vec<Value> {
    payloads
        .iter()
        .map(|payload| serde_json::from_str(payload).expect("JSON"))
        .collect()
}

#[tokio::test]
async fn one_enqueued_notification_per_statement_not_per_row() {
    let db = TestDb::installed().await;
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
    let db = TestDb::installed().await;
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
    let db = TestDb::installed().await;
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

/// What arrived before `end`: each payload under 8000 bytes and of the documented shape, and
/// the union of their lists (`entrypoints` or `ids`).
fn union_of(payloads: Vec<String>, kind: &str, list: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for payload in payloads {
        assert!(payload.len() < 8000, "{} bytes", payload.len());
        let value: Value = serde_json::from_str(&payload).expect("JSON");
        assert_eq!(value["type"], kind, "{payload}");
        assert_eq!(value.as_object().map(|o| o.len()), Some(2), "{payload}");
        all.extend(value[list].as_array().expect("a list").iter().cloned());
    }
    // Notifications of one statement come in no particular order of their lists.
    all.sort_by_key(|value| value.to_string());
    all
}

/// Long lists went into one notification over 8000 bytes, and PostgreSQL failed the whole
/// statement (22023 "payload string too long"): enqueue_many over ~1000 entrypoints, cancel of
/// ~1000 running jobs, release across many entrypoints, tick with ~360 due schedules.
#[tokio::test]
async fn long_lists_are_split_over_notifications_under_8000_bytes() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let mut listener = db.listen().await;
    // 1000 entrypoints of 200 bytes: about 200 kB of names.
    let names: Vec<String> = (0..1000)
        .map(|i| format!("{i:04}{}", "n".repeat(196)))
        .collect();
    let mut expected: Vec<Value> = names.iter().map(|n| Value::from(n.as_str())).collect();
    expected.sort_by_key(|value| value.to_string());

    c.execute("SELECT pgq.enqueue_many($1)", &[&names])
        .await
        .expect("enqueue_many over 1000 entrypoints");
    c.batch_execute("SELECT pg_notify('pgq', 'end')")
        .await
        .expect("end");
    assert_eq!(
        union_of(listener.until("end").await, "enqueued", "entrypoints"),
        expected
    );

    c.execute("SELECT count(*) FROM pgq.dequeue($1, 1000)", &[&names])
        .await
        .expect("claim them all");
    c.batch_execute(
        "SELECT pgq.release(ARRAY(SELECT id FROM pgq.jobs)); SELECT pg_notify('pgq', 'end')",
    )
    .await
    .expect("release across 1000 entrypoints");
    assert_eq!(
        union_of(listener.until("end").await, "enqueued", "entrypoints"),
        expected
    );

    c.execute("SELECT count(*) FROM pgq.dequeue($1, 1000)", &[&names])
        .await
        .expect("claim them all again");
    let ids: Vec<i64> = c
        .query("SELECT id FROM pgq.jobs ORDER BY id", &[])
        .await
        .expect("ids")
        .iter()
        .map(|row| row.get(0))
        .collect();
    c.batch_execute(
        "SELECT pgq.cancel(ARRAY(SELECT id FROM pgq.jobs)); SELECT pg_notify('pgq', 'end')",
    )
    .await
    .expect("cancel 1000 running jobs");
    let mut ids: Vec<Value> = ids.into_iter().map(Value::from).collect();
    ids.sort_by_key(|value| value.to_string());
    assert_eq!(union_of(listener.until("end").await, "cancel", "ids"), ids);

    // 400 due schedules of long names, fired by one tick.
    c.execute(
        "SELECT pgq.schedule(name, '0 0 1 1 *') FROM unnest($1::text[]) AS name LIMIT 400",
        &[&names],
    )
    .await
    .expect("400 schedules");
    c.batch_execute(
        "UPDATE pgq.schedules SET next_run = now() - interval '1 minute';
         SELECT pgq.tick(); SELECT pg_notify('pgq', 'end');",
    )
    .await
    .expect("tick with 400 due schedules");
    assert_eq!(
        union_of(listener.until("end").await, "enqueued", "entrypoints"),
        expected[..400].to_vec()
    );
}

/// A name over 255 bytes is 22023 everywhere it is accepted, and a write around the API is
/// refused by the tables (a long name broke every later round of the background worker).
#[tokio::test]
async fn entrypoint_names_are_at_most_255_bytes() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let longest = "é".repeat(127) + "x"; // 255 bytes
    let id: i64 = scalar(&c, "SELECT pgq.enqueue($1)", &[&longest]).await;
    assert!(id > 0);
    expect_invalid(
        &c,
        &[
            "SELECT pgq.enqueue(repeat('é', 128))",
            "SELECT pgq.enqueue(repeat('x', 8000), execute_after => '1 second')",
            "SELECT pgq.enqueue_many(ARRAY['ok', repeat('x', 256)])",
            "SELECT * FROM pgq.dequeue(ARRAY['ok', repeat('x', 256)])",
            "SELECT pgq.configure(repeat('x', 256), max_attempts => 2)",
            "SELECT pgq.schedule(repeat('x', 256), '* * * * *')",
        ],
    )
    .await;
    let message = expect_sqlstate(
        c.query(
            "SELECT pgq.enqueue_many(ARRAY['ok', repeat('x', 300)])",
            &[],
        )
        .await,
        &SqlState::INVALID_PARAMETER_VALUE,
    );
    assert_eq!(
        message,
        "entrypoints[2] must be a non-empty name of at most 255 bytes, \
         not a name of 300 bytes ('xxxxxxxxxxxxxxxxxxxx'...)"
    );
    expect_sqlstate(
        c.query(
            "INSERT INTO pgq.jobs (entrypoint) VALUES (repeat('x', 256))",
            &[],
        )
        .await,
        &SqlState::CHECK_VIOLATION,
    );
    assert_eq!(count(&c, "pgq.jobs").await, 1, "nothing else was written");
}

/// Completion notifications on pgq_done: only for entrypoints that opted in, one per statement
/// (and per 300 jobs, so that each stays far below 8000 bytes), for every way a job ends, not
/// for a retry; nothing when the statement rolls back.
#[tokio::test]
async fn ends_of_jobs_are_announced_on_pgq_done_only_for_entrypoints_that_opted_in() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let mut listener = db.listen_to("pgq_done").await;
    let end = "SELECT pg_notify('pgq_done', 'end');";
    c.batch_execute(&format!(
        "SELECT pgq.enqueue_many(ARRAY['quiet', 'quiet']);
         SELECT pgq.dequeue(ARRAY['quiet'], 2);
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.jobs));
         {end}"
    ))
    .await
    .expect("acks without the setting");
    assert!(listener.until("end").await.is_empty());

    c.batch_execute(
        "SELECT pgq.configure('w', notify_completion => true, max_attempts => 2);
         SELECT pgq.enqueue_many(array_fill('w'::text, ARRAY[700]));
         SELECT pgq.dequeue(ARRAY['w'], 700);",
    )
    .await
    .expect("700 claimed jobs");
    let ids: Vec<i64> = c
        .query("SELECT id FROM pgq.jobs ORDER BY id", &[])
        .await
        .expect("ids")
        .iter()
        .map(|row| row.get(0))
        .collect();
    // A retry is not an end; a rolled-back ack announces nothing.
    // (Separate strings: in one, a BEGIN would take the statements before it into its
    // transaction.)
    c.execute(
        "SELECT pgq.ack(ARRAY[$1::bigint], ARRAY['exception']::pgq.job_state[])",
        &[&ids[0]],
    )
    .await
    .expect("a retry");
    c.batch_execute(&format!(
        "BEGIN; SELECT pgq.ack(ARRAY(SELECT id FROM pgq.jobs)); ROLLBACK; {end}"
    ))
    .await
    .expect("a rollback");
    assert!(listener.until("end").await.is_empty());

    c.batch_execute(&format!(
        "SELECT pgq.ack(ARRAY(SELECT id FROM pgq.jobs WHERE status = 'picked')); {end}"
    ))
    .await
    .expect("ack 699");
    let payloads = listener.until("end").await;
    assert_eq!(payloads.len(), 3, "699 ids in chunks of 300");
    assert!(payloads.iter().all(|payload| payload.len() < 8000));
    let announced: Vec<i64> = parsed(payloads)
        .iter()
        .inspect(|payload| assert_eq!(payload["type"], "done"))
        .flat_map(|payload| payload["ids"].as_array().cloned().unwrap_or_default())
        .filter_map(|id| id.as_i64())
        .collect();
    assert_eq!(announced, ids[1..].to_vec());

    // Ends other than an ack: a cancel of a queued job, and a clear.
    c.batch_execute(&format!(
        "SELECT pgq.cancel(ARRAY[{}::bigint]);
         SELECT pgq.enqueue('w');
         SELECT pgq.clear('w');
         {end}",
        ids[0]
    ))
    .await
    .expect("cancel, clear");
    let payloads = parsed(listener.until("end").await);
    assert_eq!(payloads.len(), 2, "{payloads:?}");
    assert_eq!(payloads[0], json!({"type": "done", "ids": [ids[0]]}));
}

/// The completion trigger runs inside acks, which turn sequential scans off: its probe of
/// pgq.entrypoints must not inherit that, or the penalty pushes its plan past jit_above_cost
/// and every ack pays for JIT compilation (tens of milliseconds; the runtime drained at a
/// seventh of its speed). No statement of an ack, a fail or the trigger is planned for JIT,
/// with the setting off and on.
#[tokio::test]
async fn no_statement_of_an_ack_or_its_completion_trigger_is_planned_for_jit() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    for notify in [false, true] {
        c.execute(
            "SELECT pgq.configure('j', notify_completion => $1)",
            &[&notify],
        )
        .await
        .expect("configure");
        c.batch_execute(
            "SELECT pgq.enqueue_many(array_fill('j'::text, ARRAY[300]));
             SELECT pgq.dequeue(ARRAY['j'], 300);",
        )
        .await
        .expect("300 claimed jobs");
        let plans = db
            .nested_plans(
                "SET jit = on;
                 SELECT pgq.ack(ARRAY(SELECT id FROM pgq.jobs ORDER BY id LIMIT 100));
                 SELECT pgq.ack(ARRAY(SELECT id FROM pgq.jobs ORDER BY id LIMIT 100),
                                array_fill('exception'::pgq.job_state, ARRAY[100]));
                 SELECT pgq.fail(ARRAY(SELECT id FROM pgq.jobs ORDER BY id LIMIT 100));",
            )
            .await;
        assert!(
            plans.iter().any(|plan| plan.contains("pgq.entrypoints e")),
            "the trigger's probe ran: {plans:#?}"
        );
        let jitted: Vec<&String> = plans.iter().filter(|plan| plan.contains("JIT:")).collect();
        assert!(jitted.is_empty(), "planned for JIT: {jitted:#?}");
        assert_eq!(count(&c, "pgq.jobs").await, 0);
    }
}
