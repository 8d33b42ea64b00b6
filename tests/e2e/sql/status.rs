//! pgq.job_status, pgq.purge_log and the two views.

use pgqueuer_tests::{TestDb, count, expect_invalid, scalar};

#[tokio::test]
async fn job_status_reports_live_and_finished_jobs_and_omits_unknown_ones() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let ids: Vec<i64> = scalar(&c, "SELECT pgq.enqueue_many(ARRAY['a', 'b'])", &[]).await;
    c.execute(
        "SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['b'])), NULL, ARRAY['{\"result\": 42}']::jsonb[])",
        &[],
    )
    .await
    .expect("b finishes");
    let rows = c
        .query(
            "SELECT job_id, status::text, detail->>'result' FROM pgq.job_status($1)",
            &[&vec![ids[0], ids[1], 999]],
        )
        .await
        .expect("job_status");
    let got: Vec<(i64, String, Option<String>)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            (ids[0], "queued".to_string(), None),
            (ids[1], "successful".to_string(), Some("42".to_string()))
        ]
    );
}

/// The enum type once had the function's name, so a literal argument read as a cast (22P02)
/// and NULL gave one NULL row.
#[tokio::test]
async fn job_status_takes_a_literal_array_and_refuses_null() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let id: i64 = scalar(&c, "SELECT pgq.enqueue('a')", &[]).await;
    let status: String = scalar(
        &c,
        &format!("SELECT status::text FROM pgq.job_status('{{{id}}}')"),
        &[],
    )
    .await;
    assert_eq!(status, "queued");
    expect_invalid(&c, &["SELECT * FROM pgq.job_status(NULL)"]).await;
}

#[tokio::test]
async fn purge_log_deletes_old_rows_and_refuses_a_negative_age() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.execute("SELECT pgq.enqueue_many(ARRAY['a', 'a'])", &[])
        .await
        .expect("enqueue");
    c.execute(
        "SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['a'], 2)))",
        &[],
    )
    .await
    .expect("ack");
    let kept: i64 = scalar(&c, "SELECT pgq.purge_log('1 day')", &[]).await;
    assert_eq!(kept, 0, "nothing is a day old");
    let purged: i64 = scalar(&c, "SELECT pgq.purge_log('0')", &[]).await;
    assert_eq!(purged, 2);
    expect_invalid(
        &c,
        &[
            "SELECT pgq.purge_log('-1 second')",
            "SELECT pgq.purge_log(NULL)",
        ],
    )
    .await;
}

#[tokio::test]
async fn queue_summary_and_throughput_describe_the_queue() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.enqueue_many(ARRAY['a', 'a', 'a', 'b'], priorities => ARRAY[0, 0, 1, 0]);
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['b'])));",
    )
    .await
    .expect("setup");
    let summary: Vec<(String, String, i32, i64)> = c
        .query(
            "SELECT entrypoint, status::text, priority, count FROM pgq.queue_summary \
             ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .expect("queue_summary")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("a".into(), "queued".into(), 0, 2),
            ("a".into(), "queued".into(), 1, 1)
        ]
    );
    assert_eq!(
        count(
            &c,
            "pgq.throughput WHERE entrypoint = 'b' AND status = 'successful'"
        )
        .await,
        1
    );
}

/// The read model: pgq.backlog per entrypoint (queued, ready, picked, held, oldest queued age)
/// and pgq.workers per worker, as `pgq backlog`, `pgq workers`, the dashboard and the metrics
/// read them.
#[tokio::test]
async fn backlog_and_workers_describe_live_jobs() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let worker = uuid::Uuid::new_v4();
    c.batch_execute(
        "SELECT pgq.configure('h', on_failure => 'hold');
         SELECT pgq.enqueue_many(ARRAY['a', 'a', 'a', 'h', 'b']);
         SELECT pgq.enqueue('a', execute_after => '1 hour');
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['h'])),
                        ARRAY['exception']::pgq.job_state[]);",
    )
    .await
    .expect("setup");
    c.execute("SELECT pgq.dequeue(ARRAY['a', 'b'], 2, $1)", &[&worker])
        .await
        .expect("claim two");
    let backlog: Vec<(String, i64, i64, i64, i64, bool)> = c
        .query(
            "SELECT entrypoint, queued, ready, picked, held, oldest_queued_seconds >= 0 \
             FROM pgq.backlog ORDER BY entrypoint",
            &[],
        )
        .await
        .expect("backlog")
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get::<_, Option<bool>>(5).unwrap_or(false),
            )
        })
        .collect();
    // a: 4 jobs, one deferred; the claim took the two oldest of a.
    assert_eq!(
        backlog,
        vec![
            ("a".into(), 2, 1, 2, 0, true),
            ("b".into(), 1, 1, 0, 0, true),
            ("h".into(), 0, 0, 0, 1, false),
        ]
    );
    let workers = c
        .query(
            "SELECT worker_id, jobs, entrypoints, oldest_heartbeat <= last_heartbeat \
             FROM pgq.workers",
            &[],
        )
        .await
        .expect("workers");
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].get::<_, uuid::Uuid>(0), worker);
    assert_eq!(workers[0].get::<_, i64>(1), 2);
    assert_eq!(workers[0].get::<_, Vec<String>>(2), vec!["a".to_string()]);
    assert!(workers[0].get::<_, bool>(3));
}
