//! Durability modes: which tables are unlogged in each, that the identity sequences stay
//! logged, that a switch waits at most its lock_timeout, and what a crash keeps.

use pgqueuer_cluster::{Cluster, Options};
use pgqueuer_tests::{TestDb, expect_invalid, expect_sqlstate, scalar, sql_only};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// The persistence (p or u) of the queue's tables and sequences, by name.
async fn persistence(c: &Client) -> Vec<(String, String)> {
    c.query(
        "SELECT c.relname::text, c.relpersistence::text FROM pg_class c \
         WHERE c.relnamespace = 'pgq'::regnamespace AND c.relkind IN ('r', 'S') \
           AND c.relname IN ('jobs', 'log', 'stats', 'settings', 'jobs_id_seq', 'log_id_seq') \
         ORDER BY 1",
        &[],
    )
    .await
    .expect("pg_class")
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

fn expected(jobs: &str, history: &str) -> Vec<(String, String)> {
    [
        ("jobs", jobs),
        ("jobs_id_seq", "p"),
        ("log", history),
        ("log_id_seq", "p"),
        ("settings", "p"),
        ("stats", history),
    ]
    .iter()
    .map(|(name, p)| (name.to_string(), p.to_string()))
    .collect()
}

#[tokio::test]
async fn each_mode_unlogs_its_tables_and_keeps_the_sequences_logged() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let mode: String = scalar(&c, "SELECT pgq.durability()", &[]).await;
    assert_eq!(mode, "durable");
    assert_eq!(persistence(&c).await, expected("p", "p"));
    for (mode, jobs, history, previous) in [
        ("volatile", "u", "u", "durable"),
        ("balanced", "p", "u", "volatile"),
        ("durable", "p", "p", "balanced"),
    ] {
        let was: String = scalar(&c, "SELECT pgq.set_durability($1)", &[&mode]).await;
        assert_eq!(was, previous);
        let now: String = scalar(&c, "SELECT pgq.durability()", &[]).await;
        assert_eq!(now, mode);
        assert_eq!(persistence(&c).await, expected(jobs, history), "{mode}");
        // The queue works in every mode.
        c.execute("SELECT pgq.enqueue('d')", &[])
            .await
            .expect("enqueue");
        let done: i64 = scalar(
            &c,
            "SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['d'], 1)))",
            &[],
        )
        .await;
        assert_eq!(done, 1, "{mode}");
    }
    expect_invalid(
        &c,
        &[
            "SELECT pgq.set_durability('fast')",
            "SELECT pgq.set_durability(NULL)",
            "SELECT pgq.set_durability('durable', '2 hours')",
        ],
    )
    .await;
}

/// A switch waits at most its lock_timeout for a table that a transaction is using, then
/// fails with 55P03 and changes nothing.
#[tokio::test]
async fn a_switch_gives_up_after_its_lock_timeout_and_changes_nothing() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let mut other = db.connect().await;
    let reading = other.transaction().await.expect("BEGIN");
    reading
        .query("SELECT count(*) FROM pgq.jobs", &[])
        .await
        .expect("a reader holds its lock");
    expect_sqlstate(
        c.query_one(
            "SELECT pgq.set_durability('volatile', '50 milliseconds')",
            &[],
        )
        .await,
        &SqlState::LOCK_NOT_AVAILABLE,
    );
    reading.rollback().await.expect("ROLLBACK");
    assert_eq!(persistence(&c).await, expected("p", "p"));
}

/// After a crash, a volatile queue is empty but its ids go on: no job id is handed out twice.
#[tokio::test]
async fn after_a_crash_a_volatile_queue_is_empty_and_its_ids_go_on() {
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start_with(Options {
            preload: !sql_only(),
            ..Options::default()
        })
    })
    .await
    .expect("the cluster task")
    .expect("a cluster");
    let c = pgqueuer::connect(&cluster.dsn("postgres"))
        .await
        .expect("connect");
    pgqueuer_tests::install(&c).await;
    c.batch_execute(
        "SELECT pgq.set_durability('volatile');
         SELECT pgq.enqueue_many(ARRAY['v', 'v', 'v']);
         CHECKPOINT;",
    )
    .await
    .expect("three volatile jobs");
    let last: i64 = scalar(&c, "SELECT max(id) FROM pgq.jobs", &[]).await;
    drop(c);
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.crash_restart().expect("crash and restart");
        cluster
    })
    .await
    .expect("the crash task");
    let c = pgqueuer::connect(&cluster.dsn("postgres"))
        .await
        .expect("reconnect");
    let left: i64 = scalar(&c, "SELECT count(*) FROM pgq.jobs", &[]).await;
    assert_eq!(left, 0, "an unlogged table is emptied by a crash");
    let next: i64 = scalar(&c, "SELECT pgq.enqueue('v')", &[]).await;
    assert!(
        next > last,
        "ids go on after the crash: {next} after {last}"
    );
    let mode: String = scalar(&c, "SELECT pgq.durability()", &[]).await;
    assert_eq!(mode, "volatile");
}
