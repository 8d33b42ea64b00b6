//! pgq.configure: upsert of an entrypoint's settings; bad values are 22023 and change nothing.

use pgqueuer_tests::{TestDb, count, expect_invalid, expect_sqlstate, scalar};
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn configure_upserts_and_null_keeps_the_current_value() {
    let db = TestDb::installed().await;
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
    let db = TestDb::installed().await;
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
            // Beyond the ranges: each of these once made every later claim or ack fail.
            "SELECT pgq.configure('a', concurrency_limit => 1000001)",
            "SELECT pgq.configure('a', rate_limit => 3e9)",
            "SELECT pgq.configure('a', heartbeat_timeout => '999 milliseconds')",
            "SELECT pgq.configure('a', heartbeat_timeout => '6800 years')",
            "SELECT pgq.configure('a', max_attempts => 1000001)",
            "SELECT pgq.configure('a', retry_delay => '8 days')",
            "SELECT pgq.configure('a', retry_delay_max => '31 days')",
        ],
    )
    .await;
    assert_eq!(count(&c, "pgq.entrypoints").await, 0);
    let message = expect_sqlstate(
        c.query(
            "SELECT pgq.configure('a', heartbeat_timeout => '6800 years')",
            &[],
        )
        .await,
        &SqlState::INVALID_PARAMETER_VALUE,
    );
    assert_eq!(
        message,
        "heartbeat_timeout must be from 1 second to 7 days, not 6800 years"
    );
    // The edges are allowed.
    c.batch_execute(
        "SELECT pgq.configure('a', concurrency_limit => 1000000, rate_limit => 1000000,
                              heartbeat_timeout => '1 second', max_attempts => 1000000,
                              retry_delay => '7 days', retry_delay_max => '30 days');
         SELECT pgq.configure('b', heartbeat_timeout => '7 days', retry_delay => '0',
                              retry_delay_max => '0');",
    )
    .await
    .expect("the edges of every range");
}

/// Settings stored out of range (by 0.1.0, which allowed them, or written around
/// pgq.configure) neither fail claims of other entrypoints nor make a job impossible to ack.
#[tokio::test]
async fn settings_stored_out_of_range_break_no_claim_or_ack() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "ALTER TABLE pgq.entrypoints DROP CONSTRAINT entrypoints_rate_limit_check,
                                     DROP CONSTRAINT entrypoints_heartbeat_timeout_check,
                                     DROP CONSTRAINT entrypoints_retry_delay_check,
                                     DROP CONSTRAINT entrypoints_retry_delay_max_check;
         INSERT INTO pgq.entrypoints (name, rate_limit, heartbeat_timeout)
         VALUES ('fast', 3e9, '6800 years');
         INSERT INTO pgq.entrypoints (name, max_attempts, retry_delay, retry_delay_max)
         VALUES ('slow', 100, '3 hours', '1000 years');
         SELECT pgq.enqueue_many(ARRAY['fast', 'other', 'slow', 'slow']);",
    )
    .await
    .expect("settings out of range");
    let claimed: i64 = scalar(
        &c,
        "SELECT count(*) FROM pgq.dequeue(ARRAY['fast', 'other'], 10)",
        &[],
    )
    .await;
    assert_eq!(claimed, 2, "both entrypoints are served");

    // Jobs retried 40 times: one acks as successful, the other retries, its backoff capped.
    c.batch_execute(
        "UPDATE pgq.jobs SET attempts = 40 WHERE entrypoint = 'slow';
         SELECT count(*) FROM pgq.dequeue(ARRAY['slow'], 2);",
    )
    .await
    .expect("claim the slow ones");
    let ids: Vec<i64> = c
        .query(
            "SELECT id FROM pgq.jobs WHERE entrypoint = 'slow' ORDER BY id",
            &[],
        )
        .await
        .expect("ids")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let acked: i64 = scalar(
        &c,
        "SELECT pgq.ack($1, ARRAY['successful', 'exception']::pgq.job_state[])",
        &[&ids],
    )
    .await;
    assert_eq!(acked, 2);
    let delay: String = scalar(
        &c,
        "SELECT (execute_after - updated)::text FROM pgq.jobs WHERE id = $1",
        &[&ids[1]],
    )
    .await;
    assert_eq!(
        delay, "30 days",
        "the backoff is capped at the longest allowed"
    );
}
