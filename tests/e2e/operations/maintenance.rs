//! The maintenance (pgq._maintain, run by pgq.tick): the log's retention in batches, and the
//! per-minute statistics rollup, exact when rows commit out of id order.

use pgqueuer_tests::{TestDb, count, expect_invalid, scalar};
use tokio_postgres::Client;

/// One maintenance round now (the once-a-second spacing is reset, as if a second had passed).
async fn round(c: &Client) {
    c.batch_execute(
        "UPDATE pgq.settings SET next_round = NULL;
         SELECT pgq._maintain();",
    )
    .await
    .expect("a maintenance round");
}

/// Runs rounds until `done` holds; the number of rounds. A range is folded only once every
/// transaction of the cluster that was running when it was noted has ended, and other tests'
/// transactions count too: so this repeats rounds rather than expecting a number of them (and
/// gives up after a minute).
async fn rounds_until(c: &Client, done: &str) -> usize {
    let rounds = async {
        let mut rounds = 0;
        while !scalar::<bool>(c, &format!("SELECT {done}"), &[]).await {
            round(c).await;
            rounds += 1;
            tokio::task::yield_now().await;
        }
        rounds
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), rounds)
        .await
        .unwrap_or_else(|_| panic!("maintenance never reached: {done}"))
}

/// Outcomes per (entrypoint, status) in the log and in pgq.stats.
async fn totals(c: &Client) -> (Vec<(String, String, i64)>, Vec<(String, String, i64)>) {
    let read = |sql: &'static str| async move {
        c.query(sql, &[])
            .await
            .expect("totals")
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect::<Vec<_>>()
    };
    (
        read("SELECT entrypoint, status::text, count(*) FROM pgq.log GROUP BY 1, 2 ORDER BY 1, 2")
            .await,
        read(
            "SELECT entrypoint, status::text, sum(count)::bigint FROM pgq.stats \
             GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .await,
    )
}

#[tokio::test]
async fn a_fresh_install_keeps_the_log_seven_days_and_settings_are_checked() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    assert_eq!(count(&c, "pgq.settings").await, 0, "no row until needed");
    round(&c).await;
    let kept: String = scalar(&c, "SELECT log_retention::text FROM pgq.settings", &[]).await;
    assert_eq!(kept, "7 days");
    c.batch_execute(
        "SELECT pgq.set_log_retention('1 day'); SELECT pgq.set_stats_retention('30 days');",
    )
    .await
    .expect("set");
    let (log, stats): (String, String) = {
        let row = c
            .query_one(
                "SELECT log_retention::text, stats_retention::text FROM pgq.settings",
                &[],
            )
            .await
            .expect("settings");
        (row.get(0), row.get(1))
    };
    assert_eq!((log.as_str(), stats.as_str()), ("1 day", "30 days"));
    c.execute("SELECT pgq.set_log_retention(NULL)", &[])
        .await
        .expect("forever");
    assert_eq!(
        count(&c, "pgq.settings WHERE log_retention IS NULL").await,
        1
    );
    expect_invalid(
        &c,
        &[
            "SELECT pgq.set_log_retention('-1 day')",
            "SELECT pgq.set_log_retention('200 years')",
            "SELECT pgq.set_stats_retention(NULL)",
            "SELECT pgq.set_stats_retention('1 minute')",
        ],
    )
    .await;
}

/// 25,000 outcomes older than the retention go in batches of at most 10,000 a round, only
/// once counted, recent ones stay, and while a round's transaction is open, workers enqueue,
/// claim and ack (each with a lock_timeout, so a lock wait would fail them).
#[tokio::test]
async fn retention_deletes_old_log_rows_in_batches_and_keeps_recent_ones() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.set_log_retention('1 day');
         INSERT INTO pgq.log (job_id, entrypoint, priority, status, attempts, enqueued_at,
                              picked_at, created)
         SELECT i, 'old', 0, 'successful', 0, now() - interval '3 days',
                now() - interval '3 days', now() - interval '2 days'
         FROM generate_series(1, 25000) AS i;
         SELECT pgq.enqueue_many(array_fill('new'::text, ARRAY[10]));
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['new'], 10)));",
    )
    .await
    .expect("an old log and a recent one");

    // The first round only notes what to fold; nothing is deleted before it is counted.
    round(&c).await;
    assert_eq!(count(&c, "pgq.log").await, 25_010);
    rounds_until(&c, "EXISTS (SELECT FROM pgq.stats)").await;
    let before = count(&c, "pgq.log WHERE entrypoint = 'old'").await;
    assert!(before >= 15_000, "at most 10,000 a round: {before} left");

    let mut open = db.connect().await;
    let held = open.transaction().await.expect("BEGIN");
    held.batch_execute("UPDATE pgq.settings SET next_round = NULL")
        .await
        .expect("reset");
    held.query_one("SELECT pgq._maintain()", &[])
        .await
        .expect("a round, left open");
    let worker = db.connect().await;
    worker
        .batch_execute(
            "SET lock_timeout = '100ms';
             SELECT pgq.enqueue('busy');
             SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['busy'])));",
        )
        .await
        .expect("enqueue, claim and ack beside the round");
    held.commit().await.expect("COMMIT");

    let mut left = count(&c, "pgq.log WHERE entrypoint = 'old'").await;
    assert!(
        before - left <= 10_000,
        "at most 10,000 a round: {before} -> {left}"
    );
    while left > 0 {
        round(&c).await;
        let now = count(&c, "pgq.log WHERE entrypoint = 'old'").await;
        assert!(
            left - now <= 10_000,
            "at most 10,000 a round: {left} -> {now}"
        );
        left = now;
    }
    assert_eq!(count(&c, "pgq.log WHERE entrypoint = 'new'").await, 10);
    assert_eq!(count(&c, "pgq.log WHERE entrypoint = 'busy'").await, 1);
    // They were counted before they went.
    let folded: i64 = scalar(
        &c,
        "SELECT sum(count)::bigint FROM pgq.stats WHERE entrypoint = 'old'",
        &[],
    )
    .await;
    assert_eq!(folded, 25_000);
}

/// A log row that commits after rows with higher ids (an ack in a long transaction) is counted
/// once, when its transaction ends; nothing is counted twice however many rounds run.
#[tokio::test]
async fn the_rollup_counts_each_outcome_once_even_when_rows_commit_out_of_order() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.enqueue_many(ARRAY['a', 'a', 'b']);
         SELECT pgq.dequeue(ARRAY['a', 'b'], 3);",
    )
    .await
    .expect("three claimed jobs");
    let ids: Vec<i64> = c
        .query("SELECT id FROM pgq.jobs ORDER BY id", &[])
        .await
        .expect("ids")
        .iter()
        .map(|row| row.get(0))
        .collect();

    let mut slow = db.connect().await;
    let late = slow.transaction().await.expect("BEGIN");
    late.execute("SELECT pgq.ack(ARRAY[$1::bigint])", &[&ids[0]])
        .await
        .expect("an ack that commits last");
    c.execute(
        "SELECT pgq.ack(ARRAY[$1::bigint, $2], ARRAY['successful', 'exception']::pgq.job_state[])",
        &[&ids[1], &ids[2]],
    )
    .await
    .expect("acks that commit first");
    for _ in 0..3 {
        round(&c).await;
    }
    assert_eq!(
        count(&c, "pgq.stats").await,
        0,
        "the range waits for the open transaction"
    );
    late.commit().await.expect("COMMIT");
    rounds_until(&c, "coalesce((SELECT sum(count) FROM pgq.stats), 0) = 3").await;
    for _ in 0..3 {
        round(&c).await;
    }
    let (log, stats) = totals(&c).await;
    assert_eq!(
        log,
        vec![
            ("a".into(), "successful".into(), 2),
            ("b".into(), "exception".into(), 1)
        ]
    );
    assert_eq!(stats, log);
    let run: Option<f64> = scalar(
        &c,
        "SELECT max(run_seconds_max) FROM pgq.stats WHERE entrypoint = 'a'",
        &[],
    )
    .await;
    assert!(run.is_some_and(|seconds| seconds >= 0.0));
}

/// pgq.tick runs the maintenance and says when it is next due; a failing maintenance does not
/// stop the schedules.
#[tokio::test]
async fn tick_runs_the_maintenance_and_survives_its_failure() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let due: std::time::SystemTime = scalar(&c, "SELECT pgq.tick()", &[]).await;
    assert!(due > std::time::SystemTime::now());
    assert_eq!(
        count(&c, "pgq.settings WHERE maintained_at IS NOT NULL").await,
        1
    );
    // A broken maintenance (a table it writes made unwritable) is reported; schedules fire.
    c.batch_execute(
        "UPDATE pgq.settings SET next_round = NULL, maintained_at = NULL;
         ALTER TABLE pgq.settings ADD CONSTRAINT broken CHECK (maintained_at IS NULL);
         SELECT pgq.schedule('s', '* * * * *');
         UPDATE pgq.schedules SET next_run = now() - interval '1 minute';",
    )
    .await
    .expect("setup");
    let due: std::time::SystemTime = scalar(&c, "SELECT pgq.tick()", &[]).await;
    assert!(due > std::time::SystemTime::now());
    assert_eq!(count(&c, "pgq.jobs WHERE entrypoint = 's'").await, 1);
}

/// However large the log, a round reads it only by index: the fold by a range of ids, the
/// retention by log_created_idx (so a round with nothing to delete reads nothing).
#[tokio::test]
async fn a_round_reads_the_log_only_by_index() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.set_log_retention('1 day');
         SELECT pgq.enqueue_many(ARRAY['a', 'a']);
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['a'], 2)));",
    )
    .await
    .expect("two outcomes");
    round(&c).await;
    rounds_until(&c, "EXISTS (SELECT FROM pgq.stats)").await;
    let plans = db
        .nested_plans(
            "UPDATE pgq.settings SET next_round = NULL, stats_pending_to = NULL;
             SELECT pgq._maintain();",
        )
        .await;
    let reading_log: Vec<&String> = plans
        .iter()
        .filter(|plan| plan.contains(" on log "))
        .collect();
    assert!(
        reading_log
            .iter()
            .any(|plan| plan.contains("log_created_idx")),
        "the retention's plan: {plans:#?}"
    );
    assert!(
        !plans.iter().any(|plan| plan.contains("Seq Scan on log ")),
        "{plans:#?}"
    );
}

/// Settings restored from another server's dump may carry a noted xmax this server has not
/// reached: the range is noted again rather than waited for forever.
#[tokio::test]
async fn a_noted_xmax_from_another_server_is_noted_again() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.enqueue('a');
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['a'])));",
    )
    .await
    .expect("an outcome");
    round(&c).await;
    c.batch_execute("UPDATE pgq.settings SET stats_pending_xmax = '999999999999'")
        .await
        .expect("a far xmax");
    rounds_until(&c, "EXISTS (SELECT FROM pgq.stats)").await;
}
