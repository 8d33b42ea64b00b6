//! Connections that die under the runtime: the working one and the LISTEN one are replaced and
//! no job is lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pgqueuer::{Job, Queries, RunOptions};
use pgqueuer_tests::{TestDb, count, drain, scalar};

#[tokio::test]
async fn a_connection_killed_by_the_server_mid_run_is_reconnected_and_no_job_is_lost() {
    use std::sync::atomic::AtomicBool;

    let db = TestDb::installed().await;
    Queries::new(db.connect().await)
        .enqueue(vec!["a"; 200], vec![Vec::new(); 200], vec![0; 200])
        .await
        .expect("enqueue");
    // The first handler terminates every other session of this database, the runtime's
    // working and LISTEN connections among them, while other handlers are in flight.
    let killer = Arc::new(db.connect().await);
    let killed = Arc::new(AtomicBool::new(false));
    let mut pgq = db.runtime();
    {
        let (killer, killed) = (Arc::clone(&killer), Arc::clone(&killed));
        pgq.entrypoint("a", move |_job: Job| {
            let (killer, killed) = (Arc::clone(&killer), Arc::clone(&killed));
            async move {
                if !killed.swap(true, Ordering::SeqCst) {
                    let terminated = killer
                        .execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                             WHERE datname = current_database() AND pid <> pg_backend_pid()",
                            &[],
                        )
                        .await
                        .expect("pg_terminate_backend");
                    assert!(
                        terminated >= 2,
                        "the runtime's two connections were terminated"
                    );
                }
                Ok(())
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(60), pgq.run(drain(10, 4)))
        .await
        .expect("the run ends")
        .expect("the run survives the lost connection");

    assert!(killed.load(Ordering::SeqCst));
    let c = db.connect().await;
    assert_eq!(
        count(&c, "pgq.jobs").await,
        0,
        "no job left queued or picked"
    );
    assert_eq!(count(&c, "pgq.log").await, 200, "one outcome per job");
    assert_eq!(
        count(
            &c,
            "(SELECT DISTINCT job_id FROM pgq.log WHERE status = 'successful') s"
        )
        .await,
        200
    );
}

#[tokio::test]
async fn a_killed_listen_connection_is_replaced_and_wakes_the_worker_again() {
    let db = TestDb::installed().await;
    let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
    let mut pgq = db.runtime();
    pgq.entrypoint("mail", move |job: Job| {
        let ran_tx = ran_tx.clone();
        async move {
            let _ = ran_tx.send(job.id);
            Ok(())
        }
    });
    // A long poll interval: only a notification can wake the worker in time.
    let options = RunOptions {
        dequeue_timeout: Duration::from_secs(3600),
        ..RunOptions::default()
    };
    let worker = tokio::spawn(async move { pgq.run(options).await });

    let c = db.connect().await;
    let listener_pid = || async {
        scalar::<Option<i32>>(
            &c,
            "SELECT max(pid) FROM pg_stat_activity WHERE datname = current_database() \
             AND query = 'LISTEN pgq' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
    };
    // Wait for the worker's LISTEN session; another session's state can only be watched.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(pid) = listener_pid().await {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let killed: bool = scalar(&c, "SELECT pg_terminate_backend($1)", &[&first]).await;
    assert!(killed);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if listener_pid().await.is_some_and(|pid| pid != first) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never listened again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id: i64 = scalar(&c, "SELECT pgq.enqueue('mail')", &[]).await;
    let woke = tokio::time::timeout(Duration::from_secs(30), ran.recv()).await;
    assert_eq!(
        woke.ok().flatten(),
        Some(id),
        "the new LISTEN connection woke the worker"
    );
    worker.abort();
}
