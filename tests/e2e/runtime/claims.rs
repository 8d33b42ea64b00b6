//! The worker runtime's claims under attack and accident: a spoofed cancel notification, a
//! late report about an earlier claim (ABA), a claim whose reply was lost with the connection,
//! and a lease shortened while a long job runs.

use std::sync::Arc;
use std::time::Duration;

use pgqueuer::{Job, Mode, PgQueuer, RunOptions};
use pgqueuer_tests::{TestDb, count, scalar};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `pgq` in drain mode (with `options` otherwise) on a task of its own.
fn start(
    pgq: PgQueuer,
    options: RunOptions,
) -> tokio::task::JoinHandle<Result<(), pgqueuer::Error>> {
    let options = RunOptions {
        mode: Mode::Drain,
        ..options
    };
    tokio::spawn(async move { pgq.run_until(options, std::future::pending()).await })
}

/// Waits for a run started by [`start`] to end well.
async fn finished(worker: tokio::task::JoinHandle<Result<(), pgqueuer::Error>>) {
    tokio::time::timeout(PATIENCE, worker)
        .await
        .expect("the run ends")
        .expect("the worker task")
        .expect("the run");
}

async fn outcomes(c: &tokio_postgres::Client, id: i64) -> Vec<String> {
    c.query(
        "SELECT status::text FROM pgq.log WHERE job_id = $1 ORDER BY id",
        &[&id],
    )
    .await
    .expect("log")
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// A role with no privilege on pgq NOTIFYs a cancel of a running job: the runtime checks with
/// the database and cancels nothing. A real cancel sent after it is obeyed, which shows the
/// spoofed one was read (notifications arrive in commit order).
#[tokio::test]
async fn a_spoofed_cancel_notification_cancels_nothing() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let role = format!("stranger_{}", db.name);
    c.batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .await
        .expect("a role that can only connect");
    let victim: i64 = scalar(&c, "SELECT pgq.enqueue('victim')", &[]).await;
    let real: i64 = scalar(&c, "SELECT pgq.enqueue('real')", &[]).await;

    let (events, mut seen) = mpsc::unbounded_channel::<(i64, &'static str)>();
    let finish = Arc::new(Notify::new());
    let mut pgq = db.runtime();
    for name in ["victim", "real"] {
        let (events, finish) = (events.clone(), Arc::clone(&finish));
        pgq.entrypoint(name, move |job: Job| {
            let (events, finish) = (events.clone(), Arc::clone(&finish));
            async move {
                let _ = events.send((job.id, "started"));
                tokio::select! {
                    () = job.cancel.cancelled() => { let _ = events.send((job.id, "cancelled")); }
                    () = finish.notified() => {}
                }
                Ok(())
            }
        });
    }
    let worker = start(pgq, RunOptions::default());
    for _ in 0..2 {
        seen.recv().await.expect("a handler started");
    }

    let stranger = pgqueuer::connect(&format!("{} user={role}", db.dsn))
        .await
        .expect("connect as the stranger");
    stranger
        .batch_execute(&format!(
            "NOTIFY pgq, '{{\"type\": \"cancel\", \"ids\": [{victim}]}}'"
        ))
        .await
        .expect("anyone may NOTIFY");
    c.execute("SELECT pgq.cancel(ARRAY[$1::bigint])", &[&real])
        .await
        .expect("a real cancel");
    let (id, event) = tokio::time::timeout(PATIENCE, seen.recv())
        .await
        .expect("the real cancel is obeyed")
        .expect("an event");
    assert_eq!(
        (id, event),
        (real, "cancelled"),
        "the victim was not cancelled"
    );

    finish.notify_waiters();
    finished(worker).await;
    assert_eq!(outcomes(&c, victim).await, ["successful"]);
    assert_eq!(outcomes(&c, real).await, ["canceled"]);
}

/// ABA through the runtime: its job goes stale, another worker re-picks it and it is retried,
/// the runtime claims it again and runs it again. The first run's late error must not count
/// for the second claim.
#[tokio::test]
async fn a_late_report_of_an_earlier_claim_is_fenced_off_through_the_runtime() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    c.batch_execute("SELECT pgq.configure('j', max_attempts => 5, retry_delay => '0')")
        .await
        .expect("retries");
    let id: i64 = scalar(&c, "SELECT pgq.enqueue('j')", &[]).await;

    let (events, mut seen) = mpsc::unbounded_channel::<i32>();
    let finish_first = Arc::new(Notify::new());
    let mut pgq = db.runtime();
    {
        let finish_first = Arc::clone(&finish_first);
        pgq.entrypoint("j", move |job: Job| {
            let (events, finish_first) = (events.clone(), Arc::clone(&finish_first));
            async move {
                let _ = events.send(job.claim_token);
                if job.claim_token == 1 {
                    finish_first.notified().await;
                    return Err("the first run's late error".into());
                }
                Ok(())
            }
        });
    }
    let worker = start(
        pgq,
        RunOptions {
            dequeue_timeout: Duration::from_millis(50),
            // No heartbeat while the test ages the first claim.
            heartbeat_interval: Duration::from_secs(3600),
            ..RunOptions::default()
        },
    );
    assert_eq!(seen.recv().await, Some(1), "the first claim runs");

    // The first claim goes stale; another worker re-picks the job and fails it: retried.
    c.batch_execute(
        "UPDATE pgq.jobs SET heartbeat = now() - interval '1 hour';
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['j'], 1, gen_random_uuid())),
                        ARRAY['exception']::pgq.job_state[],
                        claim_tokens => ARRAY[2]);",
    )
    .await
    .expect("another worker's claim and exception");
    let second = tokio::time::timeout(PATIENCE, seen.recv())
        .await
        .expect("the runtime claims the job again");
    assert_eq!(second, Some(3), "a run of its own, in the third claim");

    finish_first.notify_one();
    finished(worker).await;
    assert_eq!(
        outcomes(&c, id).await,
        ["queued", "successful"],
        "the other worker's retry, then the third claim's success; the first run's error \
         was fenced off"
    );
    assert_eq!(count(&c, "pgq.jobs").await, 0);
}

/// A claim committed and its reply was lost with the connection (a crash between the commit
/// and the reply): its job is the runtime's in the database, but the runtime never ran it.
/// After reconnecting, the runtime gives it back and runs it; no attempt is spent. Before,
/// the job stayed picked for good with a single worker.
#[tokio::test]
async fn a_claim_whose_reply_was_lost_is_given_back_after_reconnecting() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    // A lease long enough that no stale re-pick can rescue the job during the test.
    c.batch_execute("SELECT pgq.configure('a', heartbeat_timeout => '1 hour')")
        .await
        .expect("a long lease");
    let (started, mut seen) = mpsc::unbounded_channel::<i64>();
    let finish = Arc::new(Notify::new());
    let first: i64 = scalar(&c, "SELECT pgq.enqueue('a')", &[]).await;
    let mut pgq = db.runtime();
    let worker_id: Uuid = pgq.worker_id();
    {
        let finish = Arc::clone(&finish);
        pgq.entrypoint("a", move |job: Job| {
            let (started, finish) = (started.clone(), Arc::clone(&finish));
            async move {
                let _ = started.send(job.id);
                if job.id == first {
                    finish.notified().await;
                }
                Ok(())
            }
        });
    }
    let worker = start(pgq, RunOptions::default());
    assert_eq!(seen.recv().await, Some(first));

    // Exactly the state a lost reply leaves: a job claimed under the runtime's worker id in
    // a transaction that committed, its rows never read by the runtime.
    c.batch_execute(&format!(
        "BEGIN;
         SELECT pgq.enqueue('a');
         SELECT count(*) FROM pgq.dequeue(ARRAY['a'], 1, '{worker_id}');
         COMMIT;"
    ))
    .await
    .expect("a claim whose reply is lost");
    let lost: i64 = scalar(&c, "SELECT max(id) FROM pgq.jobs", &[]).await;
    // The connection goes: the server ends every other session of this database.
    c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
        &[],
    )
    .await
    .expect("pg_terminate_backend");

    let ran = tokio::time::timeout(PATIENCE, seen.recv())
        .await
        .expect("the lost claim's job runs after the reconnect");
    assert_eq!(ran, Some(lost));
    finish.notify_one();
    finished(worker).await;
    assert_eq!(count(&c, "pgq.jobs").await, 0, "nothing stranded");
    assert_eq!(outcomes(&c, first).await, ["successful"]);
    assert_eq!(outcomes(&c, lost).await, ["successful"]);
    let attempts: i32 = scalar(
        &c,
        "SELECT attempts FROM pgq.log WHERE job_id = $1",
        &[&lost],
    )
    .await;
    assert_eq!(attempts, 0, "the give-back spent no attempt");
}

/// A long job outlives a lease shortened by pgq.configure while it runs: the runtime learns
/// the new lease at once and heartbeats at least three times per lease, so a competing worker
/// never finds the job stale. (It heartbeat every 10 s whatever the lease, and a long
/// handler's job was claimed again while it still ran.)
#[tokio::test]
async fn heartbeats_follow_a_lease_shortened_while_a_long_job_runs() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let id: i64 = scalar(&c, "SELECT pgq.enqueue('long')", &[]).await;
    let (started, mut seen) = mpsc::unbounded_channel::<i64>();
    let finish = Arc::new(Notify::new());
    let mut pgq = db.runtime();
    {
        let finish = Arc::clone(&finish);
        pgq.entrypoint("long", move |job: Job| {
            let (started, finish) = (started.clone(), Arc::clone(&finish));
            async move {
                let _ = started.send(job.id);
                finish.notified().await;
                Ok(())
            }
        });
    }
    let worker = start(pgq, RunOptions::default());
    assert_eq!(seen.recv().await, Some(id));

    c.batch_execute("SELECT pgq.configure('long', heartbeat_timeout => '6 seconds')")
        .await
        .expect("a shorter lease while the job runs");
    // Another worker tries to claim the job for well over two leases.
    let other = Uuid::new_v4();
    let watch = std::time::Instant::now();
    while watch.elapsed() < Duration::from_secs(15) {
        let stolen: i64 = scalar(
            &c,
            "SELECT count(*) FROM pgq.dequeue(ARRAY['long'], 1, $1)",
            &[&other],
        )
        .await;
        assert_eq!(stolen, 0, "the running job was claimed again");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    finish.notify_one();
    finished(worker).await;
    assert_eq!(outcomes(&c, id).await, ["successful"]);
}
