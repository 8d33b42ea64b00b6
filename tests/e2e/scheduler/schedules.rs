//! Schedules across sessions: bad input, concurrent ticks, notifications, and a server that
//! does not preload the library.

use pgqueuer_cluster::{Cluster, Options};
use pgqueuer_tests::{TestDb, count, expect_invalid, expect_sqlstate, scalar};
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn bad_schedules_are_22023_and_store_nothing() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    expect_invalid(
        &c,
        &[
        "SELECT pgq.schedule('a', '* * * * * * *')",
        "SELECT pgq.schedule('a', '* * * *')",
        "SELECT pgq.schedule('a', 'every minute')",
        // Unicode spaces are not separators (the extension took them, the SQL-only twin not).
        "SELECT pgq.schedule('a', E'0\\u00a00 * * *')",
        "SELECT pgq.schedule('a', '')",
        "SELECT pgq.schedule('a', NULL)",
        "SELECT pgq.schedule('', '* * * * *')",
        "SELECT pgq.schedule(NULL, '* * * * *')",
        "SELECT pgq.schedule('a', '* * * * *', 'Mars/Olympus')",
        "SELECT pgq.schedule('a', '* * * * *', '')",
        "SELECT pgq.schedule('a', '* * * * *', NULL)",
        "SELECT pgq.unschedule('')",
        "SELECT pgq.unschedule('a', '')",
        "INSERT INTO pgq.schedules (entrypoint, expression, next_run) VALUES ('a', '* * *', now())",
        ],
    )
    .await;
    assert_eq!(count(&c, "pgq.schedules").await, 0);
}

#[tokio::test]
async fn concurrent_ticks_turn_each_fire_into_exactly_one_job() {
    let db = TestDb::installed().await;
    let setup = db.connect().await;
    setup
        .batch_execute(
            "SELECT pgq.schedule('e' || i, '*/5 * * * *') FROM generate_series(1, 50) AS i;
             UPDATE pgq.schedules SET next_run = now() - interval '1 minute';",
        )
        .await
        .expect("fifty due schedules");

    let first = db.connect().await;
    first
        .batch_execute("BEGIN; SELECT pgq.tick();")
        .await
        .expect("the first tick, open");
    let second = db.connect().await;
    // The first tick holds the due rows: the second skips them instead of waiting.
    second
        .batch_execute("SELECT pgq.tick()")
        .await
        .expect("a concurrent tick");
    assert_eq!(count(&setup, "pgq.jobs").await, 0, "nothing committed yet");
    first.batch_execute("COMMIT").await.expect("COMMIT");
    second
        .batch_execute("SELECT pgq.tick()")
        .await
        .expect("a later tick");

    assert_eq!(count(&setup, "pgq.jobs").await, 50);
    assert_eq!(
        count(
            &setup,
            "(SELECT DISTINCT headers->>'schedule_id' FROM pgq.jobs) s"
        )
        .await,
        50,
        "one job per schedule"
    );
}

#[tokio::test]
async fn a_tick_notifies_for_what_it_enqueued_and_only_then() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.schedule('report', '@daily');
         SELECT pgq.schedule('cleanup', '@hourly');
         UPDATE pgq.schedules SET next_run = now() - interval '1 second';",
    )
    .await
    .expect("two due schedules");
    let mut listener = db.listen().await;
    c.batch_execute("SELECT pgq.tick(); SELECT pg_notify('pgq', 'end');")
        .await
        .expect("tick");
    let sent: Vec<Value> = listener
        .until("end")
        .await
        .iter()
        .map(|payload| serde_json::from_str(payload).expect("JSON"))
        .collect();
    assert_eq!(
        sent,
        vec![json!({"type": "enqueued", "entrypoints": ["cleanup", "report"]})]
    );

    c.batch_execute("SELECT pgq.tick(); SELECT pg_notify('pgq', 'end');")
        .await
        .expect("tick");
    assert!(
        listener.until("end").await.is_empty(),
        "a tick that enqueues nothing is silent"
    );
}

#[tokio::test]
async fn the_extension_works_in_a_server_that_does_not_preload_it() {
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start_with(Options {
            preload: false,
            ..Options::default()
        })
    })
    .await
    .expect("the cluster task")
    .expect("a cluster without shared_preload_libraries");
    let c = pgqueuer::connect(&cluster.dsn("postgres"))
        .await
        .expect("connect");
    let preload: String = scalar(&c, "SHOW shared_preload_libraries", &[]).await;
    assert_eq!(preload, "");
    c.batch_execute("CREATE EXTENSION pgqueuer")
        .await
        .expect("CREATE EXTENSION");
    // The first call of a Rust function loads the library into this session.
    let id: i64 = scalar(&c, "SELECT pgq.schedule('report', '@daily')", &[]).await;
    let next_run: bool = scalar(
        &c,
        "SELECT next_run = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' \
         + interval '1 day' FROM pgq.schedules WHERE id = $1",
        &[&id],
    )
    .await;
    assert!(next_run, "@daily fires at the next UTC midnight");
    let alive: i32 = scalar(&c, "SELECT 1", &[]).await;
    assert_eq!(alive, 1, "the session survived loading the library");
}

/// A SQL_ASCII database stores any bytes as text. Bytes that are not UTF-8 in a cron
/// expression or a time zone reached the Rust cron code, which panicked: XX000 with a
/// backtrace. They are 22023 now, and store nothing.
#[tokio::test]
async fn bytes_that_are_not_utf8_are_22023_not_a_panic() {
    let name = tokio::task::spawn_blocking(|| {
        let cluster = pgqueuer_tests::cluster();
        let name = format!("ascii_{}", std::process::id());
        cluster
            .psql(
                "postgres",
                &format!(
                    "CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' \
                     TEMPLATE template0"
                ),
            )
            .expect("a SQL_ASCII database");
        name
    })
    .await
    .expect("the task");
    let c = pgqueuer::connect(&pgqueuer_tests::cluster().dsn(&name))
        .await
        .expect("connect");
    pgqueuer_tests::install(&c).await;
    expect_invalid(
        &c,
        &[
            r"SELECT pgq.schedule('e', E'* * * * \xff')",
            r"SELECT pgq.schedule('e', '* * * * *', E'Europe/Osl\xf8')",
            r"SELECT pgq._cron_check(E'\xff', 'UTC')",
            r"SELECT pgq._cron_next('* * * * *', E'\xe9', now())",
            r"SELECT pgq._cron_latest(E'*/5 * * * \xc3', 'UTC', now())",
        ],
    )
    .await;
    expect_sqlstate(
        c.query(
            r"INSERT INTO pgq.schedules (entrypoint, expression) VALUES ('e', E'\xff * * * *')",
            &[],
        )
        .await,
        &SqlState::INVALID_PARAMETER_VALUE,
    );
    assert_eq!(count(&c, "pgq.schedules").await, 0);
    // The rest of the queue takes such bytes as the database does.
    let id: i64 = scalar(&c, r"SELECT pgq.enqueue(E'caf\xe9')", &[]).await;
    let claimed: i64 = scalar(
        &c,
        r"SELECT count(*) FROM pgq.dequeue(ARRAY[E'caf\xe9'])",
        &[],
    )
    .await;
    assert_eq!((id, claimed), (1, 1));
}

/// A test database is never the one a scheduler serves (that is database postgres, or none
/// for a SQL-only install), so the runtime knows it must tick.
#[tokio::test]
async fn no_scheduler_serves_a_test_database() {
    let db = pgqueuer_tests::TestDb::installed().await;
    let q = pgqueuer::Queries::new(db.connect().await);
    assert!(!q.scheduler_serves().await.expect("asked"));
}
