//! pgq.configure: upsert of an entrypoint's settings; bad values are 22023 and change nothing.

use pgqueuer_tests::{TestDb, count, expect_invalid};

#[tokio::test]
async fn configure_upserts_and_null_keeps_the_current_value() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    let row = c
        .query_one(
            "SELECT concurrency_limit, max_attempts, on_failure, heartbeat_timeout::text \
             FROM pgq.configure('a', concurrency_limit => 4)",
            &[],
        )
        .await
        .expect("insert");
    assert_eq!(row.get::<_, i32>(0), 4);
    assert_eq!(row.get::<_, i32>(1), 1, "default max_attempts");
    assert_eq!(row.get::<_, &str>(2), "delete");
    assert_eq!(row.get::<_, &str>(3), "00:00:30");
    let row = c
        .query_one(
            "SELECT concurrency_limit, max_attempts FROM pgq.configure('a', max_attempts => 5)",
            &[],
        )
        .await
        .expect("update");
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1)), (4, 5));
    assert_eq!(count(&c, "pgq.entrypoints").await, 1);
}

#[tokio::test]
async fn bad_settings_are_22023_and_change_nothing() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    expect_invalid(
        &c,
        &[
            "SELECT pgq.configure('')",
            "SELECT pgq.configure(NULL)",
            "SELECT pgq.configure('a', concurrency_limit => -1)",
            "SELECT pgq.configure('a', rate_limit => -0.5)",
            "SELECT pgq.configure('a', rate_limit => 'NaN')",
            "SELECT pgq.configure('a', rate_limit => 'Infinity')",
            "SELECT pgq.configure('a', heartbeat_timeout => '0')",
            "SELECT pgq.configure('a', heartbeat_timeout => '-5 seconds')",
            "SELECT pgq.configure('a', max_attempts => 0)",
            "SELECT pgq.configure('a', retry_delay => '-1 second')",
            "SELECT pgq.configure('a', retry_delay_max => '-1 second')",
            "SELECT pgq.configure('a', on_failure => 'keep')",
        ],
    )
    .await;
    assert_eq!(count(&c, "pgq.entrypoints").await, 0);
}
