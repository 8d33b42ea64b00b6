//! Fleet-wide limits: concurrency_limit and rate_limit hold across concurrent claimers.

use std::time::{Duration, Instant};

use pgqueuer_tests::{TestDb, count, expect_sqlstate, scalar};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

async fn claim(c: &Client, entrypoints: &[&str], batch: i32) -> Vec<String> {
    c.query(
        "SELECT entrypoint FROM pgq.dequeue($1, $2, gen_random_uuid())",
        &[&entrypoints, &batch],
    )
    .await
    .expect("dequeue")
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// Waits until session `pid` is blocked on a lock. It is another session, so its state can
/// only be watched; the deadline only guards against a hang.
async fn until_blocked(observer: &Client, pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: Option<String> = scalar(
            observer,
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await;
        if waiting.as_deref() == Some("Lock") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "session {pid} never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_concurrency_limit_holds_against_an_uncommitted_claim() {
    let db = TestDb::installed().await;
    let setup = db.connect().await;
    setup
        .batch_execute(
            "SELECT pgq.configure('limited', concurrency_limit => 2);
             SELECT pgq.enqueue_many(array_fill('limited'::text, ARRAY[10]));
             SELECT pgq.enqueue_many(array_fill('free'::text, ARRAY[5]));",
        )
        .await
        .expect("setup");

    let first = db.connect().await;
    first.batch_execute("BEGIN").await.expect("BEGIN");
    assert_eq!(claim(&first, &["limited"], 10).await.len(), 2, "two seats");

    let second = db.connect().await;
    let pid: i32 = scalar(&second, "SELECT pg_backend_pid()", &[]).await;
    let racing = tokio::spawn(async move { claim(&second, &["limited", "free"], 10).await });
    until_blocked(&setup, pid).await;
    first.batch_execute("COMMIT").await.expect("COMMIT");

    let got = racing.await.expect("the second claimer");
    assert_eq!(
        got.len(),
        5,
        "the batch is filled from the other entrypoint: {got:?}"
    );
    assert!(got.iter().all(|entrypoint| entrypoint == "free"), "{got:?}");
    assert_eq!(
        count(
            &setup,
            "pgq.jobs WHERE entrypoint = 'limited' AND status = 'picked'"
        )
        .await,
        2
    );

    setup
        .execute("SELECT pgq.ack(ARRAY(SELECT id FROM pgq.jobs WHERE entrypoint = 'limited' AND status = 'picked' LIMIT 1))", &[])
        .await
        .expect("one limited job finishes");
    assert_eq!(
        claim(&setup, &["limited"], 10).await.len(),
        1,
        "its seat is free again"
    );
}

#[tokio::test]
async fn a_stale_re_pick_moves_a_seat_instead_of_adding_one() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('limited', concurrency_limit => 1, heartbeat_timeout => '1 second');
         SELECT pgq.enqueue_many(array_fill('limited'::text, ARRAY[3]));
         SELECT pgq.dequeue(ARRAY['limited'], 10, gen_random_uuid());
         UPDATE pgq.jobs SET heartbeat = now() - interval '1 minute' WHERE status = 'picked';",
    )
    .await
    .expect("one seat, taken by a stale job");
    assert_eq!(
        claim(&c, &["limited"], 10).await.len(),
        1,
        "only the stale job is re-picked"
    );
    assert_eq!(count(&c, "pgq.jobs WHERE status = 'picked'").await, 1);
}

#[tokio::test]
async fn the_rate_limit_is_one_bucket_for_all_workers() {
    let db = TestDb::installed().await;
    let setup = db.connect().await;
    // 5 tokens at the start; one token per 1000 s after that, so no refill during the test.
    setup
        .batch_execute(
            "SELECT pgq.configure('slow', rate_limit => 5);
             SELECT pgq.enqueue_many(array_fill('slow'::text, ARRAY[20]));",
        )
        .await
        .expect("setup");
    assert_eq!(
        claim(&setup, &["slow"], 100).await.len(),
        5,
        "a full bucket at the start"
    );
    setup
        .execute("SELECT pgq.configure('slow', rate_limit => 0.001)", &[])
        .await
        .expect("slow the refill down");
    setup
        .execute(
            "UPDATE pgq.entrypoints SET tokens = 1 WHERE name = 'slow'",
            &[],
        )
        .await
        .expect("one token left");
    let (one, two) = (db.connect().await, db.connect().await);
    let (a, b) = tokio::join!(claim(&one, &["slow"], 10), claim(&two, &["slow"], 10));
    assert_eq!(a.len() + b.len(), 1, "two workers share one token");
}

#[tokio::test]
async fn a_stale_re_pick_takes_no_token() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('slow', rate_limit => 0.001, heartbeat_timeout => '1 second');
         SELECT pgq.enqueue_many(array_fill('slow'::text, ARRAY[3]));",
    )
    .await
    .expect("setup: one token, next refill in 1000 s");
    assert_eq!(claim(&c, &["slow"], 10).await.len(), 1, "the one token");
    assert!(claim(&c, &["slow"], 10).await.is_empty(), "no token left");
    c.execute(
        "UPDATE pgq.jobs SET heartbeat = now() - interval '1 minute' WHERE status = 'picked'",
        &[],
    )
    .await
    .expect("the claimed job goes stale");
    assert_eq!(
        claim(&c, &["slow"], 10).await.len(),
        1,
        "the stale job is re-picked without a token"
    );
}

#[tokio::test]
async fn limits_need_read_committed() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.execute(
        "SELECT pgq.configure('limited', concurrency_limit => 1)",
        &[],
    )
    .await
    .expect("configure");
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .expect("BEGIN");
    expect_sqlstate(
        c.query("SELECT * FROM pgq.dequeue(ARRAY['limited'])", &[])
            .await,
        &SqlState::INVALID_TRANSACTION_STATE,
    );
}
