//! `pgq.cancel` reaching the runtime: a running handler is cancelled and its late ack fenced
//! off, a job claimed ahead never starts.

use std::sync::Arc;
use std::time::Duration;

use pgqueuer::{Job, Queries, RunOptions};
use pgqueuer_tests::{TestDb, drain, scalar};

use super::log_of;

#[tokio::test]
async fn cancel_reaches_a_running_handler_and_a_late_ack_is_fenced_off() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let polite = q
        .enqueue(["polite"], [Vec::new()], [0])
        .await
        .expect("enqueue")[0];
    let stubborn = q
        .enqueue(["stubborn"], [Vec::new()], [0])
        .await
        .expect("enqueue")[0];

    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let finish = Arc::new(tokio::sync::Notify::new());
    let mut pgq = db.runtime();
    {
        let started_tx = started_tx.clone();
        pgq.entrypoint("polite", move |job: Job| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(job.id);
                job.cancel.cancelled().await; // stops as soon as it is told
                Ok(())
            }
        });
    }
    {
        let finish = Arc::clone(&finish);
        pgq.entrypoint("stubborn", move |job: Job| {
            let (started_tx, finish) = (started_tx.clone(), Arc::clone(&finish));
            async move {
                let _ = started_tx.send(job.id);
                finish.notified().await; // ignores the token
                Ok(())
            }
        });
    }
    let worker = tokio::spawn(async move { pgq.run(drain(10, 10)).await });
    for _ in 0..2 {
        started.recv().await.expect("a handler started");
    }
    assert_eq!(q.cancel(&[polite, stubborn]).await.expect("cancel"), 2);
    finish.notify_one();
    tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the polite handler saw the cancellation")
        .expect("the worker task")
        .expect("the run");

    for id in [polite, stubborn] {
        let log = log_of(q.client(), id).await;
        let statuses: Vec<&str> = log.iter().map(|(status, _)| status.as_str()).collect();
        assert_eq!(
            statuses,
            vec!["canceled"],
            "job {id}: one outcome, the late ack fenced off"
        );
    }
}

/// A job claimed ahead whose cancel is confirmed while it waits for a slot never runs: it is
/// taken out of the queue and ends as canceled, with the reason in the log.
#[tokio::test]
async fn a_job_cancelled_while_claimed_ahead_never_runs() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let mut pgq = db.runtime();
    {
        let release = Arc::clone(&release);
        pgq.entrypoint("e", move |job: Job| {
            let (ran_tx, release) = (ran_tx.clone(), Arc::clone(&release));
            async move {
                let _ = ran_tx.send(job.id);
                if job.payload.as_deref() == Some(b"block") {
                    release.notified().await;
                }
                Ok(())
            }
        });
    }
    // One lane, so that one claim takes both jobs below (two lanes could split them and start
    // the second before the first).
    let options = RunOptions {
        max_concurrent_tasks: 1,
        batch_size: 10,
        connections: 1,
        ..RunOptions::default()
    };
    let worker = tokio::spawn(async move { pgq.run_until(options, std::future::pending()).await });

    // A first job that finishes gives the runtime a run time to claim ahead by.
    let first = q.enqueue(["e"], [Vec::new()], [0]).await.expect("enqueue")[0];
    let got = tokio::time::timeout(Duration::from_secs(30), ran.recv()).await;
    assert_eq!(got.expect("the first job runs"), Some(first));
    q.wait_for(&[first], Duration::from_millis(50))
        .await
        .expect("the first job ends");

    // One claim takes both: the blocking job runs in the only slot, the other waits.
    let ids = q
        .enqueue(["e", "e"], [b"block".to_vec(), Vec::new()], [1, 0])
        .await
        .expect("enqueue");
    let (blocking, waiting) = (ids[0], ids[1]);
    let got = tokio::time::timeout(Duration::from_secs(30), ran.recv()).await;
    assert_eq!(got.expect("the blocking job runs"), Some(blocking));
    let status: String = scalar(
        q.client(),
        "SELECT status::text FROM pgq.jobs WHERE id = $1",
        &[&waiting],
    )
    .await;
    assert_eq!(status, "picked", "the second job is claimed ahead");

    assert_eq!(q.cancel(&[waiting]).await.expect("cancel"), 1);
    let ended = q
        .wait_for(&[waiting], Duration::from_millis(50))
        .await
        .expect("the cancelled job ends");
    assert_eq!(ended[0].status, pgqueuer::JobState::Canceled);
    let log = log_of(q.client(), waiting).await;
    assert_eq!(log.len(), 1, "{log:?}");
    let detail = log[0].1.clone().expect("a detail");
    assert_eq!(
        detail["detail"]["reason"], "canceled before its handler started",
        "{detail}"
    );
    release.notify_one();
    worker.abort();
    let _ = worker.await;
    assert!(
        !std::iter::from_fn(|| ran.try_recv().ok()).any(|id| id == waiting),
        "the cancelled job never ran"
    );
}
