//! pgq.enqueue and pgq.enqueue_many: ids, dedupe keys, and bad input that changes nothing.

use pgqueuer_tests::{TestDb, count, expect_invalid, expect_sqlstate, scalar};
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn enqueue_takes_named_arguments_and_returns_the_id() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let id: i64 = scalar(
        &c,
        "SELECT pgq.enqueue('mail', priority => 5, payload => 'hi', headers => '{\"k\": 1}')",
        &[],
    )
    .await;
    let row = c
        .query_one(
            "SELECT entrypoint, priority, payload, headers->>'k', status::text, attempts \
             FROM pgq.jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the job row");
    assert_eq!(row.get::<_, &str>(0), "mail");
    assert_eq!(row.get::<_, i32>(1), 5);
    assert_eq!(row.get::<_, &[u8]>(2), b"hi");
    assert_eq!(row.get::<_, &str>(3), "1");
    assert_eq!(row.get::<_, &str>(4), "queued");
    assert_eq!(row.get::<_, i32>(5), 0);
}

#[tokio::test]
async fn enqueue_many_returns_ids_ascending_in_input_order() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let ids: Vec<Option<i64>> = scalar(
        &c,
        "SELECT pgq.enqueue_many(ARRAY['c', 'a', 'b'], priorities => ARRAY[3, 1, 2])",
        &[],
    )
    .await;
    let ids: Vec<i64> = ids
        .into_iter()
        .map(|id| id.expect("every row inserted"))
        .collect();
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "{ids:?} ascend"
    );
    for (id, (entrypoint, priority)) in ids.iter().zip([("c", 3), ("a", 1), ("b", 2)]) {
        let row = c
            .query_one(
                "SELECT entrypoint, priority FROM pgq.jobs WHERE id = $1",
                &[id],
            )
            .await
            .expect("the job row");
        assert_eq!(
            (row.get::<_, &str>(0), row.get::<_, i32>(1)),
            (entrypoint, priority)
        );
    }
    let empty: Vec<i64> = scalar(&c, "SELECT pgq.enqueue_many('{}')", &[]).await;
    assert!(empty.is_empty());
}

#[tokio::test]
async fn skip_puts_null_where_a_dedupe_key_is_taken_and_the_first_occurrence_wins() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.execute("SELECT pgq.enqueue('a', dedupe_key => 'taken')", &[])
        .await
        .expect("enqueue");
    let ids: Vec<Option<i64>> = scalar(
        &c,
        "SELECT pgq.enqueue_many(ARRAY['x', 'y', 'z', 'w'], \
             dedupe_keys => ARRAY['taken', 'new', 'new', NULL], on_conflict => 'skip')",
        &[],
    )
    .await;
    assert!(ids[0].is_none() && ids[1].is_some() && ids[2].is_none() && ids[3].is_some());
    assert_eq!(count(&c, "pgq.jobs").await, 3);
    let entrypoint: String = scalar(
        &c,
        "SELECT entrypoint FROM pgq.jobs WHERE dedupe_key = 'new'",
        &[],
    )
    .await;
    assert_eq!(entrypoint, "y", "the first occurrence in the batch wins");
}

#[tokio::test]
async fn raise_on_a_taken_dedupe_key_is_23505_naming_the_key_and_inserts_nothing() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.execute("SELECT pgq.enqueue('a', dedupe_key => 'k-1')", &[])
        .await
        .expect("enqueue");

    let message = expect_sqlstate(
        c.query_one(
            "SELECT pgq.enqueue_many(ARRAY['b', 'c'], dedupe_keys => ARRAY['fresh', 'k-1'])",
            &[],
        )
        .await,
        &SqlState::UNIQUE_VIOLATION,
    );
    assert!(message.contains("'k-1'"), "{message}");
    let message = expect_sqlstate(
        c.query_one("SELECT pgq.enqueue('b', dedupe_key => 'k-1')", &[])
            .await,
        &SqlState::UNIQUE_VIOLATION,
    );
    assert!(message.contains("'k-1'"), "{message}");
    let message = expect_sqlstate(
        c.query_one(
            "SELECT pgq.enqueue_many(ARRAY['b', 'c'], dedupe_keys => ARRAY['d', 'd'])",
            &[],
        )
        .await,
        &SqlState::UNIQUE_VIOLATION,
    );
    assert!(message.contains("'d'"), "{message}");
    assert_eq!(count(&c, "pgq.jobs").await, 1, "nothing was inserted");
}

#[tokio::test]
async fn a_dedupe_key_is_released_by_ack_cancel_and_hold() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('held', on_failure => 'hold');
         SELECT pgq.enqueue('done', dedupe_key => 'k1');
         SELECT pgq.enqueue('gone', dedupe_key => 'k2');
         SELECT pgq.enqueue('held', dedupe_key => 'k3');
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['done'])));
         SELECT pgq.cancel(ARRAY(SELECT id FROM pgq.jobs WHERE entrypoint = 'gone'));
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['held'])), ARRAY['exception']::pgq.job_state[]);",
    )
    .await
    .expect("ack, cancel and hold");
    for key in ["k1", "k2", "k3"] {
        c.execute("SELECT pgq.enqueue('again', dedupe_key => $1)", &[&key])
            .await
            .unwrap_or_else(|error| panic!("{key} must be free again: {error}"));
    }
}

#[tokio::test]
async fn bad_input_is_22023_and_inserts_nothing() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    expect_invalid(
        &c,
        &[
        "SELECT pgq.enqueue('')",
        "SELECT pgq.enqueue(NULL)",
        "SELECT pgq.enqueue('a', execute_after => '-1 second')",
        "SELECT pgq.enqueue_many(NULL)",
        "SELECT pgq.enqueue_many(ARRAY['a', ''])",
        "SELECT pgq.enqueue_many(ARRAY['a', NULL])",
        "SELECT pgq.enqueue_many(ARRAY['a', 'b'], priorities => ARRAY[1])",
        "SELECT pgq.enqueue_many(ARRAY['a', 'b'], payloads => ARRAY['x', 'y', 'z']::bytea[])",
        "SELECT pgq.enqueue_many(ARRAY['a'], on_conflict => 'ignore')",
        "SELECT pgq.enqueue_many(ARRAY['a'], on_conflict => NULL)",
        "SELECT pgq.enqueue_many(ARRAY['a', 'b'], execute_after => ARRAY['1 s', '-1 s']::interval[])",
        ],
    )
    .await;
    assert_eq!(count(&c, "pgq.jobs").await, 0);
}

/// Jobs enqueued in the caller's transaction roll back with it: no job, and no notification
/// (the sentinel sent afterwards is the first thing a listener hears).
#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_exists_nor_is_announced() {
    let db = TestDb::installed().await;
    let mut client = db.connect().await;
    client
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY)")
        .await
        .expect("the application's table");
    let mut listener = db.listen().await;
    let tx = client.transaction().await.expect("BEGIN");
    tx.execute("INSERT INTO orders VALUES (1)", &[])
        .await
        .expect("the application's row");
    let ids = pgqueuer::enqueue_in(
        &tx,
        &[pgqueuer::NewJob::new("ship").payload("1")],
        pgqueuer::OnConflict::Raise,
    )
    .await
    .expect("enqueue in the transaction");
    assert_eq!(ids.len(), 1);
    tx.rollback().await.expect("ROLLBACK");
    client
        .batch_execute("SELECT pg_notify('pgq', 'end')")
        .await
        .expect("the sentinel");
    assert!(
        listener.until("end").await.is_empty(),
        "nothing was announced"
    );
    assert_eq!(count(&client, "pgq.jobs").await, 0);
    assert_eq!(count(&client, "orders").await, 0);
}

/// Committed, the job exists with the application's row, is announced, and a worker runs it.
#[tokio::test]
async fn a_job_enqueued_in_a_committed_transaction_is_run() {
    let db = TestDb::installed().await;
    let mut client = db.connect().await;
    client
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY)")
        .await
        .expect("the application's table");
    let mut listener = db.listen().await;
    let tx = client.transaction().await.expect("BEGIN");
    tx.execute("INSERT INTO orders VALUES (1)", &[])
        .await
        .expect("the application's row");
    pgqueuer::enqueue_in(
        &tx,
        &[pgqueuer::NewJob::new("ship").payload("1")],
        pgqueuer::OnConflict::Raise,
    )
    .await
    .expect("enqueue in the transaction");
    tx.commit().await.expect("COMMIT");
    client
        .batch_execute("SELECT pg_notify('pgq', 'end')")
        .await
        .expect("the sentinel");
    assert_eq!(
        listener.until("end").await,
        vec![r#"{"type": "enqueued", "entrypoints": ["ship"]}"#.to_string()]
    );

    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut pgq = pgqueuer::PgQueuer::new(pgqueuer::config(&db.dsn).expect("settings"));
    {
        let ran = std::sync::Arc::clone(&ran);
        pgq.entrypoint("ship", move |job: pgqueuer::Job| {
            assert_eq!(job.payload.as_deref(), Some(&b"1"[..]));
            ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok(()) }
        });
    }
    pgq.run(pgqueuer::RunOptions {
        mode: pgqueuer::Mode::Drain,
        ..pgqueuer::RunOptions::default()
    })
    .await
    .expect("drain");
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        count(&client, "pgq.log WHERE status = 'successful'").await,
        1
    );
}
