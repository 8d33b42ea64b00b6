//! Handlers run every job once, within the handler slots, the connections and the
//! entrypoints' limits, claimed ahead no further than the slots can start; schedules ticked by
//! two runtimes fire once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgqueuer::{EntrypointSettings, Job, Queries, RunOptions};
use pgqueuer_tests::{TestDb, count, drain, scalar};

use super::Groups;

#[tokio::test]
async fn drain_mode_runs_every_job_once_and_returns_when_empty() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let mut ids = q
        .enqueue(vec!["a"; 150], vec![Vec::new(); 150], vec![0; 150])
        .await
        .expect("a");
    ids.extend(
        q.enqueue(vec!["b"; 150], vec![Vec::new(); 150], vec![0; 150])
            .await
            .expect("b"),
    );

    let seen: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let mut pgq = db.runtime();
    for name in ["a", "b"] {
        let seen = Arc::clone(&seen);
        pgq.entrypoint(name, move |job: Job| {
            let seen = Arc::clone(&seen);
            async move {
                *seen
                    .lock()
                    .expect("not poisoned")
                    .entry(job.id)
                    .or_default() += 1;
                Ok(())
            }
        });
    }
    pgq.run(drain(50, 20)).await.expect("drain");

    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 300, "every job ran");
    assert!(seen.values().all(|&runs| runs == 1), "no job ran twice");
    assert!(ids.iter().all(|id| seen.contains_key(id)));
    assert_eq!(count(q.client(), "pgq.jobs").await, 0);
    assert_eq!(
        count(q.client(), "pgq.log WHERE status = 'successful'").await,
        300
    );
}

#[tokio::test]
async fn max_concurrent_tasks_is_reached_and_never_exceeded() {
    const LIMIT: usize = 5;
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    q.enqueue(vec!["a"; 100], vec![Vec::new(); 100], vec![0; 100])
        .await
        .expect("enqueue");

    // Handlers wait for each other in groups of LIMIT (see Groups).
    let groups = Groups::of(LIMIT);
    let mut pgq = db.runtime();
    {
        let groups = groups.clone();
        pgq.entrypoint("a", move |job: Job| groups.clone().handle(job));
    }
    pgq.run(drain(3, LIMIT)).await.expect("drain");
    assert_eq!(groups.most(), LIMIT);
    assert_eq!(
        count(q.client(), "pgq.log WHERE status = 'successful'").await,
        100
    );
}

#[tokio::test]
async fn two_connections_share_the_handler_slots_and_run_every_job_once() {
    const LIMIT: usize = 5;
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    q.enqueue(vec!["a"; 400], vec![Vec::new(); 400], vec![0; 400])
        .await
        .expect("enqueue");

    let groups = Groups::of(LIMIT);
    let seen: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let listening = Arc::new(AtomicUsize::new(0));
    let watcher = Arc::new(db.connect().await);
    let mut pgq = db.runtime();
    {
        let (groups, seen) = (groups.clone(), Arc::clone(&seen));
        let (listening, watcher) = (Arc::clone(&listening), Arc::clone(&watcher));
        pgq.entrypoint("a", move |job: Job| {
            *seen
                .lock()
                .expect("not poisoned")
                .entry(job.id)
                .or_default() += 1;
            let (groups, listening, watcher) =
                (groups.clone(), Arc::clone(&listening), Arc::clone(&watcher));
            async move {
                if listening.load(Ordering::SeqCst) == 0 {
                    let sessions = scalar::<i64>(
                        &watcher,
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE datname = current_database() AND query = 'LISTEN pgq'",
                        &[],
                    )
                    .await;
                    listening.store(sessions as usize, Ordering::SeqCst);
                }
                groups.handle(job).await
            }
        });
    }
    let options = RunOptions {
        connections: 2,
        ..drain(3, LIMIT)
    };
    tokio::time::timeout(Duration::from_secs(60), pgq.run(options))
        .await
        .expect("the run ends")
        .expect("drain");

    assert_eq!(
        listening.load(Ordering::SeqCst),
        1,
        "two lanes share one LISTEN connection"
    );
    assert_eq!(
        groups.most(),
        LIMIT,
        "the slots are shared: reached, never exceeded"
    );
    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 400, "every job ran");
    assert!(seen.values().all(|&runs| runs == 1), "no job ran twice");
    assert_eq!(count(q.client(), "pgq.jobs").await, 0);
    assert_eq!(
        count(q.client(), "pgq.log WHERE status = 'successful'").await,
        400
    );
}

#[tokio::test]
async fn concurrency_limit_holds_across_two_runtimes() {
    const LIMIT: usize = 3;
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    q.enqueue(vec!["limited"; 30], vec![Vec::new(); 30], vec![0; 30])
        .await
        .expect("enqueue");

    // Handlers of both runtimes meet in groups of LIMIT (see Groups): the runs can only
    // finish if LIMIT jobs run at once somewhere in the fleet.
    let groups = Groups::of(LIMIT);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut pgq = db.runtime();
        let groups = groups.clone();
        pgq.entrypoint_with(
            "limited",
            EntrypointSettings {
                concurrency_limit: Some(LIMIT as i32),
                ..EntrypointSettings::default()
            },
            move |job: Job| groups.clone().handle(job),
        );
        let options = RunOptions {
            dequeue_timeout: Duration::from_millis(50),
            ..drain(10, 10)
        };
        runs.push(tokio::spawn(async move { pgq.run(options).await }));
    }
    for run in runs {
        tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the runs end")
            .expect("the task")
            .expect("the run");
    }
    assert_eq!(groups.most(), LIMIT, "the fleet ran at most LIMIT at once");
    assert_eq!(
        count(q.client(), "pgq.log WHERE status = 'successful'").await,
        30
    );
}

/// Jobs are never claimed further ahead than the handler slots can start them within a
/// heartbeat period: before any handler has finished there is no run time to go by, so a
/// runtime whose two slots are busy holds exactly two jobs, however many are queued.
#[tokio::test]
async fn nothing_is_claimed_ahead_of_handlers_that_never_finished() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    q.enqueue(vec!["slow"; 50], vec![Vec::new(); 50], vec![0; 50])
        .await
        .expect("enqueue");
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let mut pgq = db.runtime();
    {
        let release = Arc::clone(&release);
        pgq.entrypoint("slow", move |job: Job| {
            let (started_tx, release) = (started_tx.clone(), Arc::clone(&release));
            async move {
                let _ = started_tx.send(job.id);
                release.notified().await;
                Ok(())
            }
        });
    }
    let options = RunOptions {
        max_concurrent_tasks: 2,
        batch_size: 20,
        ..drain(20, 2)
    };
    let worker = tokio::spawn(async move { pgq.run(options).await });
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(30), started.recv())
            .await
            .expect("two handlers start")
            .expect("a job id");
    }
    // Another enqueue wakes the runtime: it has room for nothing, so it claims nothing.
    q.enqueue(["slow"], [Vec::new()], [0])
        .await
        .expect("enqueue");
    q.client()
        .batch_execute(
            "SELECT pg_notify('pgq', '{\"type\": \"enqueued\", \"entrypoints\": [\"slow\"]}')",
        )
        .await
        .expect("notify");
    assert_eq!(
        count(q.client(), "pgq.jobs WHERE status = 'picked'").await,
        2,
        "only the running jobs are claimed"
    );
    release.notify_waiters();
    // From here on handlers finish at once (each waits for a permit stored by notify_one).
    let releaser = tokio::spawn({
        let release = Arc::clone(&release);
        async move {
            loop {
                release.notify_one();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .expect("the drain ends")
        .expect("the worker task")
        .expect("drain");
    releaser.abort();
    assert_eq!(count(q.client(), "pgq.jobs").await, 0);
    assert_eq!(
        count(q.client(), "pgq.log WHERE status = 'successful'").await,
        51
    );
}

/// Handlers of two entrypoints share state passed at registration, without globals: every
/// run sees the same state.
#[tokio::test]
async fn handlers_share_the_state_they_were_registered_with() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    q.enqueue(
        ["a", "b", "a"],
        [Vec::new(), Vec::new(), Vec::new()],
        [0, 0, 0],
    )
    .await
    .expect("enqueue");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut pgq = db.runtime();
    for name in ["a", "b"] {
        pgq.entrypoint_with_state(
            name,
            Arc::clone(&seen),
            |seen: Arc<Mutex<Vec<String>>>, job: Job| async move {
                seen.lock().expect("the state").push(job.entrypoint);
                Ok(())
            },
        );
    }
    pgq.run(drain(10, 10)).await.expect("drain");
    let mut seen = seen.lock().expect("the state").clone();
    seen.sort();
    assert_eq!(seen, ["a", "a", "b"]);
}

#[tokio::test]
async fn a_schedule_runs_once_per_fire_with_two_workers_ticking() {
    let db = TestDb::installed().await;
    // The test database has no pgqueuer scheduler (it serves `postgres`), so both runtimes
    // call pgq.tick() themselves: SKIP LOCKED must still make one job per fire.
    let (sender, mut runs) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let mut pgq = db.runtime();
        let sender = sender.clone();
        pgq.schedule("beat", "* * * * * *", move |run: pgqueuer::ScheduledRun| {
            let sender = sender.clone();
            async move {
                let _ = sender.send(run);
                Ok(())
            }
        });
        workers.push(tokio::spawn(
            async move { pgq.run(RunOptions::default()).await },
        ));
    }
    let mut fires = Vec::new();
    while fires.len() < 3 {
        let run = tokio::time::timeout(Duration::from_secs(30), runs.recv())
            .await
            .expect("a run in time")
            .expect("the workers run");
        assert_eq!(run.expression.as_deref(), Some("* * * * * *"));
        assert!(run.schedule_id.is_some());
        fires.push(run.scheduled_for.expect("scheduled_for"));
    }
    for worker in &workers {
        worker.abort();
    }
    let mut distinct = fires.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), fires.len(), "a fire ran twice: {fires:?}");
}
