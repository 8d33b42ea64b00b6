//! A handler that fails, runs past its timeout or asks for a retry: how its job is retried and
//! how it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pgqueuer::{EntrypointSettings, Job, Queries, RetryRequested};
use pgqueuer_tests::{TestDb, count, drain};

use super::log_of;

#[tokio::test]
async fn a_failing_handler_is_retried_then_ends_as_exception_or_held() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let failing = q
        .enqueue(["fails"], [Vec::new()], [0])
        .await
        .expect("enqueue")[0];
    let held = q
        .enqueue(["held"], [Vec::new()], [0])
        .await
        .expect("enqueue")[0];
    let mut pgq = db.runtime();
    let retry_once = EntrypointSettings {
        max_attempts: Some(2),
        retry_delay: Some(Duration::ZERO),
        ..EntrypointSettings::default()
    };
    pgq.entrypoint_with("fails", retry_once.clone(), |_job: Job| async {
        Err("boom".into())
    });
    pgq.entrypoint_with(
        "held",
        EntrypointSettings {
            hold_on_failure: Some(true),
            ..retry_once
        },
        |_job: Job| async { panic!("kaboom") },
    );
    pgq.run(drain(10, 10)).await.expect("drain");

    let log = log_of(q.client(), failing).await;
    let statuses: Vec<&str> = log.iter().map(|(status, _)| status.as_str()).collect();
    assert_eq!(
        statuses,
        vec!["queued", "exception"],
        "one retry, then the final exception"
    );
    let detail = log[1].1.as_ref().expect("the error");
    assert_eq!(
        (detail["type"].as_str(), detail["message"].as_str()),
        (Some("error"), Some("boom"))
    );

    let log = log_of(q.client(), held).await;
    let statuses: Vec<&str> = log.iter().map(|(status, _)| status.as_str()).collect();
    assert_eq!(
        statuses,
        vec!["queued", "failed"],
        "a panic is an exception, held at the end"
    );
    let detail = log[1].1.as_ref().expect("the panic");
    assert_eq!(
        (detail["type"].as_str(), detail["message"].as_str()),
        (Some("panic"), Some("kaboom"))
    );
    assert_eq!(
        count(q.client(), "pgq.jobs WHERE status = 'failed'").await,
        1
    );
}

/// A handler past its entrypoint's timeout is cancelled (its future dropped) and its job
/// acked as an exception saying so, retried per max_attempts; other entrypoints are not bound.
#[tokio::test]
async fn a_handler_past_its_timeout_is_cancelled_and_its_job_retried_then_ends_as_exception() {
    struct Dropped(Arc<AtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let stuck = q
        .enqueue(["stuck"], [Vec::new()], [0])
        .await
        .expect("enqueue")[0];
    let free = q
        .enqueue(["free"], [Vec::new()], [0])
        .await
        .expect("enqueue")[0];
    let (started, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut pgq = db.runtime();
    {
        let (started, dropped) = (Arc::clone(&started), Arc::clone(&dropped));
        pgq.entrypoint_with(
            "stuck",
            EntrypointSettings {
                max_attempts: Some(2),
                retry_delay: Some(Duration::ZERO),
                ..EntrypointSettings::default()
            },
            move |_job: Job| {
                started.fetch_add(1, Ordering::SeqCst);
                let guard = Dropped(Arc::clone(&dropped));
                async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    Ok(())
                }
            },
        );
    }
    pgq.timeout("stuck", Duration::from_millis(200));
    pgq.entrypoint("free", |_job: Job| async { Ok(()) });
    pgq.run(drain(10, 10)).await.expect("drain");

    assert_eq!(started.load(Ordering::SeqCst), 2, "run, retried once");
    assert_eq!(dropped.load(Ordering::SeqCst), 2, "each run was cancelled");
    let log = log_of(q.client(), stuck).await;
    let statuses: Vec<&str> = log.iter().map(|(status, _)| status.as_str()).collect();
    assert_eq!(statuses, vec!["queued", "exception"]);
    let detail = log[1].1.as_ref().expect("the reason");
    assert_eq!(
        detail["message"].as_str(),
        Some("the handler ran longer than its timeout of 200ms and was cancelled")
    );
    let log = log_of(q.client(), free).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].0, "successful");
}

#[tokio::test]
async fn retry_requested_runs_the_job_again() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let id = q
        .enqueue(["flaky"], [Vec::new()], [0])
        .await
        .expect("enqueue")[0];
    let mut pgq = db.runtime();
    pgq.entrypoint("flaky", |job: Job| async move {
        if job.attempts == 0 {
            return Err(RetryRequested {
                delay: Duration::ZERO,
                reason: "not yet".into(),
            }
            .into());
        }
        Ok(())
    });
    pgq.run(drain(10, 10)).await.expect("drain");
    let log = log_of(q.client(), id).await;
    let statuses: Vec<&str> = log.iter().map(|(status, _)| status.as_str()).collect();
    assert_eq!(statuses, vec!["queued", "successful"]);
    assert_eq!(
        log[0].1.as_ref().map(|d| d["message"].clone()),
        Some("not yet".into())
    );
}
