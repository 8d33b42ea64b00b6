//! Claims and reports while an old snapshot pins the xmin horizon (docs/design/0014-pinned-xmin.md):
//! a claim starts after the jobs its session claimed before instead of passing their index
//! entries again, what it passed is claimed when the head is read again, and reports find their
//! jobs by primary key. Work is measured in index entries read (the statistics of the current
//! transaction), not in time.

use pgqueuer_tests::{TestDb, scalar};
use tokio_postgres::Client;

/// Index entries the claim and stale-job indexes have returned in this transaction.
const ENTRIES: &str = "SELECT pg_stat_get_xact_tuples_returned('pgq.jobs_queued_idx'::regclass) \
                       + pg_stat_get_xact_tuples_returned('pgq.jobs_picked_idx'::regclass)";
const PICKED_ENTRIES: &str =
    "SELECT pg_stat_get_xact_tuples_returned('pgq.jobs_picked_idx'::regclass)";
/// The session setting that holds the claim cursor of entrypoint set {a}.
const STATE: &str = "'pgq.claim_' || md5(ARRAY['a']::text)";

/// A database with `n` queued jobs of entrypoint "a", their ids, and a second session holding a
/// REPEATABLE READ snapshot taken after the enqueue: until it is dropped, no version of a job
/// row can be removed, nor its index entries skipped.
async fn pinned(n: i32) -> (TestDb, Client, Client, Vec<i64>) {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let ids: Vec<i64> = scalar(
        &c,
        "SELECT pgq.enqueue_many(array_fill('a'::text, ARRAY[$1::int]))",
        &[&n],
    )
    .await;
    let pin = db.connect().await;
    pin.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pgq.jobs")
        .await
        .expect("pin the xmin horizon");
    (db, c, pin, ids)
}

/// Claims `n` jobs of "a" and acks them; returns their ids.
async fn claim_and_ack(c: &Client, n: i32) -> Vec<i64> {
    let rows = c
        .query(
            "SELECT id, claim_token FROM pgq.dequeue(ARRAY['a'], $1)",
            &[&n],
        )
        .await
        .expect("claim");
    let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    let tokens: Vec<i32> = rows.iter().map(|row| row.get(1)).collect();
    let acked: i64 = scalar(
        c,
        "SELECT pgq.ack($1, claim_tokens => $2)",
        &[&ids, &tokens],
    )
    .await;
    assert_eq!(acked, ids.len() as i64);
    ids
}

/// Runs `sql` in a transaction; returns the ids it returned and the entries `counter` counted.
async fn entries_read(c: &Client, counter: &str, sql: &str) -> (Vec<i64>, i64) {
    c.batch_execute("BEGIN").await.expect("begin");
    let before: i64 = scalar(c, counter, &[]).await;
    let ids = c
        .query(sql, &[])
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .iter()
        .map(|row| row.get(0))
        .collect();
    let after: i64 = scalar(c, counter, &[]).await;
    c.batch_execute("COMMIT").await.expect("commit");
    (ids, after - before)
}

#[tokio::test]
async fn under_a_pinned_xmin_a_claim_starts_after_the_jobs_its_session_claimed() {
    let (_db, c, pin, ids) = pinned(3000).await;
    assert_eq!(claim_and_ack(&c, 1500).await, ids[..1500]);

    // This claim reads the head: it passes the 1500 entries of the jobs claimed since the pin
    // (the cost every claim paid before the cursor), and notes it.
    let (claimed, passed) =
        entries_read(&c, ENTRIES, "SELECT id FROM pgq.dequeue(ARRAY['a'], 10)").await;
    assert_eq!(claimed, ids[1500..1510]);
    assert!(passed >= 1500, "the head read passed {passed} entries");

    // The next one starts after the last job this session claimed.
    let (claimed, passed) =
        entries_read(&c, ENTRIES, "SELECT id FROM pgq.dequeue(ARRAY['a'], 10)").await;
    assert_eq!(claimed, ids[1510..1520], "the next jobs, in order");
    assert!(
        passed < 100,
        "a claim from the cursor read {passed} entries"
    );

    // Reports find their jobs by primary key: jobs_picked_idx, which keeps an entry for each
    // of the 1510 jobs acked since the pin, is not read.
    let sql = format!(
        "SELECT pgq.heartbeat(ARRAY[{list}]) UNION ALL SELECT pgq.ack(ARRAY[{list}])",
        list = claimed
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let (reported, passed) = entries_read(&c, PICKED_ENTRIES, &sql).await;
    assert_eq!(reported, [10, 10]);
    assert_eq!(passed, 0, "the reports read jobs_picked_idx");
    drop(pin);
}

#[tokio::test]
async fn jobs_the_cursor_passed_are_claimed_when_the_head_is_read_again() {
    let (_db, c, pin, ids) = pinned(3000).await;
    claim_and_ack(&c, 1500).await;
    claim_and_ack(&c, 10).await; // reads the head, passes 1500 entries: the cursor is used

    // A higher priority is read from its own head: claimed at once.
    let urgent: i64 = scalar(&c, "SELECT pgq.enqueue('a', priority => 5)", &[]).await;
    let claimed: Vec<i64> = scalar(
        &c,
        "SELECT array_agg(id ORDER BY priority DESC, id) FROM pgq.dequeue(ARRAY['a'], 3)",
        &[],
    )
    .await;
    assert_eq!(claimed, [urgent, ids[1510], ids[1511]]);

    // Jobs given back behind the cursor wait for the next read of the head, which the state
    // says is due once its time has come (here: set back to the epoch).
    let released: i64 = scalar(
        &c,
        "SELECT pgq.release(ARRAY[$1, $2]::bigint[])",
        &[&ids[1510], &ids[1511]],
    )
    .await;
    assert_eq!(released, 2);
    c.execute(
        &format!(
            "SELECT set_config({STATE}, regexp_replace(current_setting({STATE}), '^[^ ]+', '0'), \
             false)"
        ),
        &[],
    )
    .await
    .expect("make the head read due");
    let claimed: Vec<i64> = scalar(
        &c,
        "SELECT array_agg(id ORDER BY id) FROM pgq.dequeue(ARRAY['a'], 3)",
        &[],
    )
    .await;
    assert_eq!(claimed, [ids[1510], ids[1511], ids[1512]]);

    // A value of the setting that is not the cursor's format is ignored: the head is read.
    c.execute(&format!("SELECT set_config({STATE}, 'x', false)"), &[])
        .await
        .expect("spoil the state");
    c.execute(
        "SELECT pgq.release(ARRAY(SELECT id FROM pgq.jobs WHERE status = 'picked'))",
        &[],
    )
    .await
    .expect("release");
    let claimed: Vec<i64> = scalar(
        &c,
        "SELECT array_agg(id ORDER BY priority DESC, id) FROM pgq.dequeue(ARRAY['a'], 2)",
        &[],
    )
    .await;
    assert_eq!(
        claimed,
        [urgent, ids[1510]],
        "from the head, not after {}",
        ids[1512]
    );
    drop(pin);
}
