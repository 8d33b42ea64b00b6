//! pgq.ack, pgq.retry and pgq.heartbeat: outcomes, retries in place, holds, fencing.

use pgqueuer_tests::{TestDb, count, expect_invalid, expect_sqlstate, scalar};
use serde_json::Value;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

/// Enqueues one job of `entrypoint` and claims it as `worker`; returns its id.
async fn claimed(c: &Client, entrypoint: &str, worker: Uuid) -> i64 {
    c.execute("SELECT pgq.enqueue($1)", &[&entrypoint])
        .await
        .expect("enqueue");
    c.query_one(
        "SELECT id FROM pgq.dequeue(ARRAY[$1], 1, $2)",
        &[&entrypoint, &worker],
    )
    .await
    .expect("one job claimed")
    .get(0)
}

/// The log rows of a job: (status, attempts, detail), oldest first.
async fn log_of(c: &Client, id: i64) -> Vec<(String, i32, Option<Value>)> {
    c.query(
        "SELECT status::text, attempts, detail FROM pgq.log WHERE job_id = $1 ORDER BY id",
        &[&id],
    )
    .await
    .expect("the log")
    .iter()
    .map(|row| (row.get(0), row.get(1), row.get(2)))
    .collect()
}

#[tokio::test]
async fn success_removes_the_job_and_writes_one_log_row() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let worker = Uuid::new_v4();
    let id = claimed(&c, "a", worker).await;
    let acked: i64 = scalar(
        &c,
        "SELECT pgq.ack(ARRAY[$1::bigint], worker_id => $2)",
        &[&id, &worker],
    )
    .await;
    assert_eq!(acked, 1);
    assert_eq!(count(&c, "pgq.jobs").await, 0);
    let row = c
        .query_one(
            "SELECT status::text, attempts, worker_id, enqueued_at <= picked_at, \
             picked_at <= created FROM pgq.log WHERE job_id = $1",
            &[&id],
        )
        .await
        .expect("exactly one log row");
    assert_eq!(row.get::<_, &str>(0), "successful");
    assert_eq!(
        row.get::<_, i32>(1),
        0,
        "a first-try success logs 0 attempts"
    );
    assert_eq!(row.get::<_, Uuid>(2), worker);
    assert!(
        row.get::<_, bool>(3) && row.get::<_, bool>(4),
        "enqueued <= picked <= finished"
    );
}

#[tokio::test]
async fn an_exception_with_attempts_left_is_retried_in_place_with_growing_backoff() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.execute(
        "SELECT pgq.configure('a', max_attempts => 3, retry_delay => '10 seconds', \
         retry_delay_max => '15 seconds')",
        &[],
    )
    .await
    .expect("configure");
    let worker = Uuid::new_v4();
    let id = claimed(&c, "a", worker).await;
    let fail = "SELECT pgq.ack(ARRAY[$1::bigint], ARRAY['exception']::pgq.job_state[], \
                ARRAY['{\"message\": \"boom\"}']::jsonb[], $2)";
    let state = "SELECT status::text, attempts FROM pgq.jobs WHERE id = $1";

    for (attempts, backoff) in [(1, "00:00:10"), (2, "00:00:15")] {
        let acked: i64 = scalar(&c, fail, &[&id, &worker]).await;
        assert_eq!(acked, 1, "a retry counts as acked");
        let row = c
            .query_one(state, &[&id])
            .await
            .expect("the same job, still there");
        assert_eq!(row.get::<_, &str>(0), "queued");
        assert_eq!(row.get::<_, i32>(1), attempts);
        let actual: String = scalar(
            &c,
            "SELECT (execute_after - updated)::text FROM pgq.jobs WHERE id = $1",
            &[&id],
        )
        .await;
        assert_eq!(
            actual, backoff,
            "retry_delay doubled per attempt, capped at retry_delay_max"
        );
        c.execute("UPDATE pgq.jobs SET execute_after = now()", &[])
            .await
            .expect("make it due");
        c.query_one("SELECT id FROM pgq.dequeue(ARRAY['a'], 1, $1)", &[&worker])
            .await
            .expect("claimed again");
    }
    c.query_one(fail, &[&id, &worker])
        .await
        .expect("the last attempt fails");
    assert_eq!(count(&c, "pgq.jobs").await, 0, "no attempts left: deleted");

    let log = log_of(&c, id).await;
    let statuses: Vec<(&str, i32)> = log.iter().map(|(s, a, _)| (s.as_str(), *a)).collect();
    assert_eq!(
        statuses,
        vec![("queued", 1), ("queued", 2), ("exception", 2)]
    );
    assert_eq!(
        log[0].2.as_ref().map(|d| d["error"]["message"].clone()),
        Some("boom".into())
    );
    assert_eq!(
        log[2].2.as_ref().map(|d| d["message"].clone()),
        Some("boom".into())
    );
}

#[tokio::test]
async fn the_last_failure_is_held_when_on_failure_is_hold() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.execute("SELECT pgq.configure('h', on_failure => 'hold')", &[])
        .await
        .expect("configure");
    let id = claimed(&c, "h", Uuid::new_v4()).await;
    c.execute(
        "SELECT pgq.ack(ARRAY[$1::bigint], ARRAY['exception']::pgq.job_state[], \
         ARRAY['{\"message\": \"boom\"}']::jsonb[])",
        &[&id],
    )
    .await
    .expect("ack");
    let row = c
        .query_one(
            "SELECT status::text, detail->>'message' FROM pgq.jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the held job");
    assert_eq!(
        (row.get::<_, &str>(0), row.get::<_, &str>(1)),
        ("failed", "boom")
    );
    let log = log_of(&c, id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].0, "failed");
    let status = c
        .query_one(
            "SELECT status::text, detail->>'message' FROM pgq.job_status(ARRAY[$1::bigint])",
            &[&id],
        )
        .await
        .expect("job_status");
    assert_eq!(
        (status.get::<_, &str>(0), status.get::<_, &str>(1)),
        ("failed", "boom")
    );
}

#[tokio::test]
async fn a_worker_that_lost_its_job_cannot_ack_heartbeat_or_retry_it() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
    let id = claimed(&c, "a", old).await;
    c.execute(
        "UPDATE pgq.jobs SET heartbeat = now() - interval '1 hour'",
        &[],
    )
    .await
    .expect("age the heartbeat");
    c.query_one("SELECT id FROM pgq.dequeue(ARRAY['a'], 1, $1)", &[&new])
        .await
        .expect("re-picked by the new worker");

    let ack: i64 = scalar(
        &c,
        "SELECT pgq.ack(ARRAY[$1::bigint], worker_id => $2)",
        &[&id, &old],
    )
    .await;
    let beat: i64 = scalar(
        &c,
        "SELECT pgq.heartbeat(ARRAY[$1::bigint], $2)",
        &[&id, &old],
    )
    .await;
    let retried: bool = scalar(&c, "SELECT pgq.retry($1, worker_id => $2)", &[&id, &old]).await;
    assert_eq!(
        (ack, beat, retried),
        (0, 0, false),
        "the old worker is fenced off"
    );
    let holder: Uuid = scalar(
        &c,
        "SELECT worker_id FROM pgq.jobs WHERE id = $1 AND status = 'picked'",
        &[&id],
    )
    .await;
    assert_eq!(holder, new);
    c.execute(
        "UPDATE pgq.jobs SET heartbeat = now() - interval '1 hour'",
        &[],
    )
    .await
    .expect("age the heartbeat again");
    let beat: i64 = scalar(
        &c,
        "SELECT pgq.heartbeat(ARRAY[$1::bigint], $2)",
        &[&id, &new],
    )
    .await;
    assert_eq!(beat, 1);
    assert!(
        c.query_one(
            "SELECT heartbeat > now() - interval '1 minute' FROM pgq.jobs WHERE id = $1",
            &[&id]
        )
        .await
        .expect("heartbeat")
        .get::<_, bool>(0)
    );
    let ack: i64 = scalar(
        &c,
        "SELECT pgq.ack(ARRAY[$1::bigint], worker_id => $2)",
        &[&id, &new],
    )
    .await;
    assert_eq!(ack, 1);
    assert_eq!(
        log_of(&c, id).await.len(),
        1,
        "exactly one terminal log row"
    );
}

#[tokio::test]
async fn retry_puts_the_job_back_in_place_with_the_reason() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let worker = Uuid::new_v4();
    let id = claimed(&c, "a", worker).await;
    let retried: bool = scalar(
        &c,
        "SELECT pgq.retry($1, '5 minutes', 'upstream busy', $2)",
        &[&id, &worker],
    )
    .await;
    assert!(retried);
    let row = c
        .query_one(
            "SELECT status::text, attempts, (execute_after - updated)::text, worker_id IS NULL \
             FROM pgq.jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the job");
    assert_eq!(row.get::<_, &str>(0), "queued");
    assert_eq!(row.get::<_, i32>(1), 1);
    assert_eq!(row.get::<_, &str>(2), "00:05:00");
    assert!(row.get::<_, bool>(3));
    let log = log_of(&c, id).await;
    assert_eq!((log[0].0.as_str(), log[0].1), ("queued", 1));
    assert_eq!(
        log[0].2.as_ref().map(|d| d["message"].clone()),
        Some("upstream busy".into())
    );

    let again: bool = scalar(&c, "SELECT pgq.retry($1)", &[&id]).await;
    assert!(!again, "a queued job is not picked: nothing to retry");
    expect_sqlstate(
        c.query_one("SELECT pgq.retry($1, '-1 second')", &[&id])
            .await,
        &SqlState::INVALID_PARAMETER_VALUE,
    );
    expect_sqlstate(
        c.query_one("SELECT pgq.retry(NULL)", &[]).await,
        &SqlState::INVALID_PARAMETER_VALUE,
    );
}

#[tokio::test]
async fn bad_acks_are_22023_and_change_nothing() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let id = claimed(&c, "a", Uuid::new_v4()).await;
    for sql in [
        "SELECT pgq.ack(NULL)",
        "SELECT pgq.ack(ARRAY[$1::bigint], ARRAY['queued']::pgq.job_state[])",
        "SELECT pgq.ack(ARRAY[$1::bigint], ARRAY['picked']::pgq.job_state[])",
        "SELECT pgq.ack(ARRAY[$1::bigint], ARRAY['failed']::pgq.job_state[])",
        "SELECT pgq.ack(ARRAY[$1::bigint], ARRAY[NULL]::pgq.job_state[])",
        "SELECT pgq.ack(ARRAY[$1::bigint], ARRAY['successful', 'successful']::pgq.job_state[])",
        "SELECT pgq.ack(ARRAY[$1::bigint], details => ARRAY['{}', '{}']::jsonb[])",
        "SELECT pgq.heartbeat(NULL)",
    ] {
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = if sql.contains("$1") {
            vec![&id]
        } else {
            vec![]
        };
        expect_sqlstate(
            c.query_one(sql, &params).await,
            &SqlState::INVALID_PARAMETER_VALUE,
        );
    }
    assert_eq!(count(&c, "pgq.jobs WHERE status = 'picked'").await, 1);
    assert_eq!(count(&c, "pgq.log").await, 0);
}

#[tokio::test]
async fn release_gives_picked_jobs_back_unchanged_and_fenced() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let (holder, other) = (Uuid::new_v4(), Uuid::new_v4());
    let id = claimed(&c, "a", holder).await;
    let mut listener = db.listen().await;
    let released: i64 = scalar(
        &c,
        "SELECT pgq.release(ARRAY[$1::bigint], $2)",
        &[&id, &other],
    )
    .await;
    assert_eq!(released, 0, "another worker cannot release it");
    let released: i64 = scalar(
        &c,
        "SELECT pgq.release(ARRAY[$1::bigint], $2)",
        &[&id, &holder],
    )
    .await;
    assert_eq!(released, 1);
    c.execute("SELECT pg_notify('pgq', 'end')", &[])
        .await
        .expect("sentinel");
    let row = c
        .query_one(
            "SELECT status::text, attempts, worker_id IS NULL FROM pgq.jobs WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the job");
    assert_eq!(
        (
            row.get::<_, &str>(0),
            row.get::<_, i32>(1),
            row.get::<_, bool>(2)
        ),
        ("queued", 0, true)
    );
    assert_eq!(count(&c, "pgq.log").await, 0, "a release is not an outcome");
    assert_eq!(
        listener.until("end").await.len(),
        1,
        "the released job is announced"
    );
    expect_sqlstate(
        c.query_one("SELECT pgq.release(NULL)", &[]).await,
        &SqlState::INVALID_PARAMETER_VALUE,
    );
}

/// ABA: worker A's job goes stale, B re-picks it and it is retried, A claims it again. A's
/// late report about its first claim must not count for its second. Worker ids cannot tell
/// the two claims apart (A holds the job both times); claim tokens can.
#[tokio::test]
async fn a_late_report_about_an_earlier_claim_is_fenced_off_by_the_claim_token() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    c.batch_execute("SELECT pgq.configure('j', max_attempts => 5, retry_delay => '0');")
        .await
        .expect("retries");
    let id: i64 = scalar(&c, "SELECT pgq.enqueue('j')", &[]).await;
    let claim = "SELECT claim_token FROM pgq.dequeue(ARRAY['j'], 1, $1)";
    let first: i32 = scalar(&c, claim, &[&a]).await;
    c.execute(
        "UPDATE pgq.jobs SET heartbeat = now() - interval '1 hour'",
        &[],
    )
    .await
    .expect("A's claim goes stale");
    let second: i32 = scalar(&c, claim, &[&b]).await;
    let retried: i64 = scalar(
        &c,
        "SELECT pgq.ack(ARRAY[$1::bigint], ARRAY['exception']::pgq.job_state[], \
         worker_id => $2, claim_tokens => ARRAY[$3::int])",
        &[&id, &b, &second],
    )
    .await;
    assert_eq!(retried, 1, "B's exception retries the job");
    let third: i32 = scalar(&c, claim, &[&a]).await;
    assert_eq!((first, second, third), (1, 2, 3));

    // A's late reports about its first claim: each is ignored.
    let report = [
        "SELECT pgq.ack(ARRAY[$1::bigint], claim_tokens => ARRAY[$2::int])",
        "SELECT pgq.heartbeat(ARRAY[$1::bigint], claim_tokens => ARRAY[$2::int])",
        "SELECT pgq.release(ARRAY[$1::bigint], claim_tokens => ARRAY[$2::int])",
    ];
    for sql in report {
        let n: i64 = scalar(&c, sql, &[&id, &first]).await;
        assert_eq!(n, 0, "{sql} with the first claim's token");
    }
    let retry: bool = scalar(
        &c,
        "SELECT pgq.retry($1, claim_token => $2)",
        &[&id, &first],
    )
    .await;
    assert!(!retry, "retry with the first claim's token");
    let (status, attempts): (String, i32) = {
        let row = c
            .query_one(
                "SELECT status::text, attempts FROM pgq.jobs WHERE id = $1",
                &[&id],
            )
            .await
            .expect("the job");
        (row.get(0), row.get(1))
    };
    assert_eq!((status.as_str(), attempts), ("picked", 1), "untouched");
    // Worker-scoped fencing alone is weaker: A's ack without a token would have been taken.
    // With the third claim's token it is, once.
    let acked: i64 = scalar(
        &c,
        "SELECT pgq.ack(ARRAY[$1::bigint], worker_id => $2, claim_tokens => ARRAY[$3::int])",
        &[&id, &a, &third],
    )
    .await;
    assert_eq!(acked, 1);
    let outcomes: Vec<String> = c
        .query(
            "SELECT status::text FROM pgq.log WHERE job_id = $1 ORDER BY id",
            &[&id],
        )
        .await
        .expect("log")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(outcomes, ["queued", "successful"]);
    expect_invalid(
        &c,
        &[
            "SELECT pgq.ack(ARRAY[1, 2]::bigint[], claim_tokens => ARRAY[1])",
            "SELECT pgq.heartbeat(ARRAY[1]::bigint[], claim_tokens => ARRAY[NULL]::int[])",
            "SELECT pgq.release(ARRAY[1]::bigint[], claim_tokens => ARRAY[1, 2])",
        ],
    )
    .await;
}

/// pgq.fail ends a job at once, attempts left or not: one 'exception' log row with the detail,
/// no retry; a hold entrypoint keeps it as failed. It is fenced like ack, and checks its input.
#[tokio::test]
async fn fail_ends_a_job_without_retrying_it_and_respects_holds_and_fencing() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let worker = Uuid::new_v4();
    c.batch_execute(
        "SELECT pgq.configure('a', max_attempts => 5);
         SELECT pgq.configure('h', max_attempts => 5, on_failure => 'hold');",
    )
    .await
    .expect("configure");
    let id = claimed(&c, "a", worker).await;
    // A report about another claim of the job is fenced off.
    let stale: i64 = scalar(
        &c,
        "SELECT pgq.fail(ARRAY[$1::bigint], claim_tokens => ARRAY[99])",
        &[&id],
    )
    .await;
    assert_eq!(stale, 0);
    let failed: i64 = scalar(
        &c,
        "SELECT pgq.fail(ARRAY[$1::bigint], ARRAY['{\"message\": \"unreadable\"}'::jsonb], $2)",
        &[&id, &worker],
    )
    .await;
    assert_eq!(failed, 1);
    assert_eq!(count(&c, "pgq.jobs").await, 0, "not retried");
    assert_eq!(
        log_of(&c, id).await,
        vec![(
            "exception".to_string(),
            0,
            Some(serde_json::json!({"message": "unreadable"}))
        )]
    );

    let held = claimed(&c, "h", worker).await;
    let failed: i64 = scalar(&c, "SELECT pgq.fail(ARRAY[$1::bigint])", &[&held]).await;
    assert_eq!(failed, 1);
    let status: String = scalar(
        &c,
        "SELECT status::text FROM pgq.jobs WHERE id = $1",
        &[&held],
    )
    .await;
    assert_eq!(status, "failed");

    expect_invalid(
        &c,
        &[
            "SELECT pgq.fail(NULL)",
            "SELECT pgq.fail(ARRAY[1::bigint], ARRAY[NULL, NULL]::jsonb[])",
            "SELECT pgq.fail(ARRAY[1::bigint], claim_tokens => ARRAY[1, 2])",
        ],
    )
    .await;
    let none: i64 = scalar(&c, "SELECT pgq.fail('{}')", &[]).await;
    assert_eq!(none, 0);
}
