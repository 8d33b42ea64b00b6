//! pgq.dequeue: order, batches, deferral, stale re-picks, concurrent claimers, bad input.

use std::collections::HashSet;

use pgqueuer_tests::{TestDb, count, expect_invalid, scalar};
use uuid::Uuid;

async fn ids(c: &tokio_postgres::Client, sql: &str) -> Vec<i64> {
    c.query(sql, &[])
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .iter()
        .map(|row| row.get("id"))
        .collect()
}

#[tokio::test]
async fn claims_best_first_across_entrypoints_without_a_log_row() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let queued = ids(
        &c,
        "SELECT unnest(pgq.enqueue_many(ARRAY['a', 'b', 'a', 'c'], \
         priorities => ARRAY[1, 5, 5, 9])) AS id",
    )
    .await;
    let worker = Uuid::new_v4();
    let rows = c
        .query(
            "SELECT * FROM pgq.dequeue(ARRAY['a', 'b'], 10, $1)",
            &[&worker],
        )
        .await
        .expect("dequeue");
    let claimed: Vec<i64> = rows.iter().map(|row| row.get("id")).collect();
    assert_eq!(
        claimed,
        vec![queued[1], queued[2], queued[0]],
        "priority DESC, id ASC"
    );
    for row in &rows {
        assert_eq!(row.get::<_, Option<Uuid>>("worker_id"), Some(worker));
        assert!(
            row.get::<_, Option<std::time::SystemTime>>("heartbeat")
                .is_some()
        );
    }
    assert_eq!(count(&c, "pgq.jobs WHERE status = 'picked'").await, 3);
    assert_eq!(count(&c, "pgq.log").await, 0, "a claim writes no log row");
}

#[tokio::test]
async fn a_batch_holds_at_most_batch_size_jobs() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.execute(
        "SELECT pgq.enqueue_many(array_fill('a'::text, ARRAY[5]))",
        &[],
    )
    .await
    .expect("enqueue");
    assert_eq!(
        ids(&c, "SELECT * FROM pgq.dequeue(ARRAY['a'], 2)")
            .await
            .len(),
        2
    );
    assert_eq!(
        ids(&c, "SELECT * FROM pgq.dequeue(ARRAY['a'], 10)")
            .await
            .len(),
        3
    );
    assert!(
        ids(&c, "SELECT * FROM pgq.dequeue(ARRAY['a'], 10)")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn deferred_jobs_are_not_claimed_before_they_are_due() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.execute("SELECT pgq.enqueue('a', execute_after => '1 hour')", &[])
        .await
        .expect("enqueue");
    assert!(
        ids(&c, "SELECT * FROM pgq.dequeue(ARRAY['a'], 10)")
            .await
            .is_empty()
    );
    c.execute("UPDATE pgq.jobs SET execute_after = now()", &[])
        .await
        .expect("make it due");
    assert_eq!(
        ids(&c, "SELECT * FROM pgq.dequeue(ARRAY['a'], 10)")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_stale_job_is_re_picked_in_a_new_claim_even_by_its_holder() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    c.batch_execute(
        "SELECT pgq.configure('a', heartbeat_timeout => '10 seconds'); SELECT pgq.enqueue('a');",
    )
    .await
    .expect("setup");
    let claimed = c
        .query(
            "SELECT id, claim_token FROM pgq.dequeue(ARRAY['a'], 1, $1)",
            &[&first],
        )
        .await
        .expect("first claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].get::<_, i32>("claim_token"), 1);
    assert!(
        c.query("SELECT id FROM pgq.dequeue(ARRAY['a'], 1, $1)", &[&second])
            .await
            .expect("a fresh heartbeat is not stale")
            .is_empty()
    );
    let age = "UPDATE pgq.jobs SET heartbeat = now() - interval '1 minute'";
    c.execute(age, &[]).await.expect("age the heartbeat");
    let repicked = c
        .query(
            "SELECT worker_id, claim_token FROM pgq.dequeue(ARRAY['a'], 1, $1)",
            &[&second],
        )
        .await
        .expect("another worker");
    assert_eq!(
        (
            repicked[0].get::<_, Uuid>("worker_id"),
            repicked[0].get::<_, i32>("claim_token")
        ),
        (second, 2)
    );
    // Its holder re-picks it too once it is stale (a worker that lost track of its claim
    // would strand it otherwise), in a claim of its own.
    c.execute(age, &[]).await.expect("age the heartbeat");
    let again = c
        .query(
            "SELECT worker_id, claim_token FROM pgq.dequeue(ARRAY['a'], 1, $1)",
            &[&second],
        )
        .await
        .expect("its holder");
    assert_eq!(
        (
            again[0].get::<_, Uuid>("worker_id"),
            again[0].get::<_, i32>("claim_token")
        ),
        (second, 3)
    );
}

#[tokio::test]
async fn two_concurrent_workers_never_share_a_job_and_each_job_ends_once() {
    let db = TestDb::installed().await;
    let setup = db.connect().await;
    setup
        .execute(
            "SELECT pgq.enqueue_many(array_fill('a'::text, ARRAY[2000]))",
            &[],
        )
        .await
        .expect("enqueue");
    /// Claims and acks batches until nothing is left; returns the ids it claimed.
    async fn drain(c: tokio_postgres::Client) -> Vec<i64> {
        let worker = Uuid::new_v4();
        let mut all = Vec::new();
        loop {
            let batch: Vec<i64> = c
                .query("SELECT id FROM pgq.dequeue(ARRAY['a'], 7, $1)", &[&worker])
                .await
                .expect("dequeue")
                .iter()
                .map(|row| row.get(0))
                .collect();
            if batch.is_empty() {
                return all;
            }
            let acked: i64 = scalar(
                &c,
                "SELECT pgq.ack($1, worker_id => $2)",
                &[&batch, &worker],
            )
            .await;
            assert_eq!(
                acked,
                batch.len() as i64,
                "a worker acks every job it claimed"
            );
            all.extend(batch);
        }
    }
    let (one, two) = tokio::join!(
        tokio::spawn(drain(db.connect().await)),
        tokio::spawn(drain(db.connect().await))
    );
    let (one, two) = (one.expect("claimer 1"), two.expect("claimer 2"));
    let first: HashSet<i64> = one.iter().copied().collect();
    let second: HashSet<i64> = two.iter().copied().collect();
    assert_eq!(first.len(), one.len(), "no job twice to one claimer");
    assert_eq!(second.len(), two.len(), "no job twice to one claimer");
    assert!(first.is_disjoint(&second), "a job went to both claimers");
    assert_eq!(first.len() + second.len(), 2000, "every job was claimed");
    assert_eq!(count(&setup, "pgq.jobs").await, 0);
    assert_eq!(
        count(
            &setup,
            "(SELECT DISTINCT job_id FROM pgq.log WHERE status = 'successful') s"
        )
        .await,
        2000
    );
    assert_eq!(
        count(&setup, "pgq.log").await,
        2000,
        "exactly one terminal log row per job"
    );
}

#[tokio::test]
async fn bad_input_is_22023_and_claims_nothing() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.execute("SELECT pgq.enqueue('a')", &[])
        .await
        .expect("enqueue");
    expect_invalid(
        &c,
        &[
            "SELECT * FROM pgq.dequeue(NULL)",
            "SELECT * FROM pgq.dequeue('{}')",
            "SELECT * FROM pgq.dequeue(ARRAY['a', ''])",
            "SELECT * FROM pgq.dequeue(ARRAY['a', NULL])",
            "SELECT * FROM pgq.dequeue(ARRAY['a'], 0)",
            "SELECT * FROM pgq.dequeue(ARRAY['a'], 10001)",
            "SELECT * FROM pgq.dequeue(ARRAY['a'], NULL)",
        ],
    )
    .await;
    assert_eq!(count(&c, "pgq.jobs WHERE status = 'queued'").await, 1);
}

#[tokio::test]
async fn a_claim_walks_the_index_however_deep_the_backlog() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute(
        "INSERT INTO pgq.jobs (entrypoint, priority)
         SELECT 'e' || (i % 20), i % 7 FROM generate_series(1, 120000) AS i;
         ANALYZE pgq.jobs;",
    )
    .await
    .expect("a backlog of 120k jobs over 20 entrypoints");
    let plans = db
        .nested_plans("SELECT * FROM pgq.dequeue(ARRAY['e1', 'e2', 'e3'], 100)")
        .await;
    let all = plans.join("\n");
    assert!(
        all.contains("jobs_queued_idx"),
        "the claim must use the queue index:\n{all}"
    );
    assert!(
        !all.contains("Seq Scan on jobs"),
        "the claim scanned the backlog:\n{all}"
    );
    assert_eq!(count(&c, "pgq.jobs WHERE status = 'picked'").await, 100);
}

#[tokio::test]
async fn a_session_that_first_claimed_from_an_empty_queue_still_uses_the_indexes() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute("VACUUM ANALYZE pgq.jobs")
        .await
        .expect("statistics of an empty queue");
    // One session: the claim and the ack are planned while the queue is empty, then the queue
    // grows to 50k jobs (no ANALYZE in between) and the same session claims and acks again.
    let plans = db
        .nested_plans(
            "SELECT pgq.ack(coalesce(array_agg(id), '{}')) FROM pgq.dequeue(ARRAY['e1'], 100);
             INSERT INTO pgq.jobs (entrypoint) SELECT 'e1' FROM generate_series(1, 50000);
             SELECT pgq.ack(array_agg(id)) FROM pgq.dequeue(ARRAY['e1'], 100);",
        )
        .await;
    let all = plans.join("\n");
    assert!(all.contains("jobs_queued_idx"), "{all}");
    assert!(
        !all.contains("Seq Scan on jobs"),
        "a plan made on the empty queue scanned the deep one:\n{all}"
    );
    assert_eq!(count(&c, "pgq.jobs").await, 49_900);
    assert_eq!(count(&c, "pgq.log WHERE status = 'successful'").await, 100);
}

#[tokio::test]
async fn functions_that_find_jobs_by_id_still_use_the_primary_key_after_the_queue_grows() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute("VACUUM ANALYZE pgq.jobs")
        .await
        .expect("statistics of an empty queue");
    // One session: six calls of each on the empty queue (after five, PL/pgSQL may keep a
    // generic plan), then 50k jobs (no ANALYZE), then each once more.
    let calls = |times: u32| {
        [
            "pgq.heartbeat(ARRAY[-1]::bigint[])",
            "pgq.release(ARRAY[-1]::bigint[])",
            "pgq.cancel(ARRAY[-1]::bigint[])",
            "pgq.requeue(ARRAY[-1]::bigint[])",
            "pgq.retry(-1)",
            "pgq.ack(ARRAY[-1]::bigint[])",
        ]
        .map(|call| format!("SELECT {call} FROM generate_series(1, {times});"))
        .join("\n")
    };
    let plans = db
        .nested_plans(&format!(
            "{}\nINSERT INTO pgq.jobs (entrypoint) SELECT 'e1' FROM generate_series(1, 50000);\n{}",
            calls(6),
            calls(1)
        ))
        .await;
    let all = plans.join("\n");
    assert!(all.contains("jobs_pkey"), "{all}");
    assert!(
        !all.contains("Seq Scan on jobs"),
        "a plan made on the empty queue scanned the deep one:\n{all}"
    );
    assert_eq!(count(&c, "pgq.jobs").await, 50_000, "nothing was touched");
}
