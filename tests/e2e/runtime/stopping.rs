//! A run that ends: SIGTERM finishes or gives back every job, and a dropped run takes its
//! handlers with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pgqueuer::{Job, Queries, RunOptions};
use pgqueuer_tests::{TestDb, count};

#[tokio::test]
async fn sigterm_finishes_or_releases_every_job_and_loses_none() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    // Two jobs that never finish, claimed first, then twenty that take 200 ms each.
    q.enqueue(
        ["slow", "slow"],
        [b"forever".to_vec(), b"forever".to_vec()],
        [1, 1],
    )
    .await
    .expect("enqueue");
    q.enqueue(vec!["slow"; 20], vec![Vec::new(); 20], vec![0; 20])
        .await
        .expect("enqueue");

    let mut worker = Command::new(env!("CARGO_BIN_EXE_slow_worker"))
        .args([db.dsn.as_str(), "1000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the worker starts");
    let stdout = worker.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::task::spawn_blocking(move || {
        let first = lines.next();
        (first, lines)
    });
    let (first, lines) = first.await.expect("reading the worker");
    assert!(first.is_some_and(|line| line.is_ok_and(|line| line.starts_with("started"))));

    // SAFETY: kill(2) on our own child's pid.
    let pid = i32::try_from(worker.id()).expect("a pid");
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .expect("join");
    assert!(
        status.expect("the worker exits").success(),
        "a graceful shutdown exits 0"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(rest.last().map(String::as_str), Some("stopped"), "{rest:?}");

    assert_eq!(
        count(q.client(), "pgq.jobs WHERE status = 'picked'").await,
        0,
        "nothing left picked"
    );
    let finished = count(q.client(), "pgq.log WHERE status = 'successful'").await;
    let queued = count(q.client(), "pgq.jobs WHERE status = 'queued'").await;
    assert_eq!(
        finished + queued,
        22,
        "every job finished or went back to the queue"
    );
    assert_eq!(
        count(q.client(), "pgq.log WHERE status <> 'successful'").await,
        0
    );
    assert_eq!(
        count(
            q.client(),
            "pgq.jobs WHERE payload = 'forever' AND status = 'queued' AND attempts = 0"
        )
        .await,
        2,
        "the unfinished jobs were released with their attempts unchanged"
    );
}

/// A run whose future is dropped (its task aborted) takes its handlers with it: none keeps
/// running, and none of the jobs claimed ahead starts afterwards.
#[tokio::test]
async fn dropping_a_run_drops_its_handlers() {
    struct Dropped(Arc<AtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    q.enqueue(vec!["a"; 20], vec![Vec::new(); 20], vec![0; 20])
        .await
        .expect("enqueue");
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut pgq = db.runtime();
    {
        let dropped = Arc::clone(&dropped);
        pgq.entrypoint("a", move |job: Job| {
            let (started_tx, guard) = (started_tx.clone(), Dropped(Arc::clone(&dropped)));
            async move {
                let _guard = guard;
                let _ = started_tx.send(job.id);
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    let options = RunOptions {
        max_concurrent_tasks: 5,
        ..RunOptions::default()
    };
    let worker = tokio::spawn(async move { pgq.run_until(options, std::future::pending()).await });
    for _ in 0..5 {
        tokio::time::timeout(Duration::from_secs(30), started.recv())
            .await
            .expect("five handlers start")
            .expect("a job id");
    }
    worker.abort();
    let _ = worker.await;
    // Each started handler is dropped; started_tx clones die with them, so the channel closes
    // once every handler (and the runtime holding the handler closure) is gone.
    let after = tokio::time::timeout(Duration::from_secs(30), started.recv())
        .await
        .expect("the handlers are dropped");
    assert_eq!(after, None, "a job started after the run was dropped");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        5,
        "every running handler was dropped"
    );
}
