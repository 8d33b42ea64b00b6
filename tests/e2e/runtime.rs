//! The worker runtime, `PgQueuer`, against a real server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgqueuer::{EntrypointSettings, Job, Mode, PgQueuer, Queries, RetryRequested, RunOptions};
use pgqueuer_tests::{TestDb, count, scalar};
use serde_json::Value;

fn runtime(db: &TestDb) -> PgQueuer {
    PgQueuer::new(pgqueuer::config(&db.dsn).expect("settings"))
}

fn drain(batch_size: i32, max_concurrent_tasks: usize) -> RunOptions {
    RunOptions {
        batch_size,
        max_concurrent_tasks,
        mode: Mode::Drain,
        ..RunOptions::default()
    }
}

/// Handlers that meet in groups of `size`: a run can only finish if `size` of them are in
/// flight together, and `most` shows how many ever were at once.
#[derive(Clone)]
struct Groups {
    barrier: Arc<tokio::sync::Barrier>,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Groups {
    fn of(size: usize) -> Groups {
        Groups {
            barrier: Arc::new(tokio::sync::Barrier::new(size)),
            running: Arc::default(),
            most: Arc::default(),
        }
    }

    async fn handle(self, _job: Job) -> pgqueuer::HandlerResult {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.barrier.wait().await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// (status, detail) of a job's log rows, oldest first.
async fn log_of(c: &tokio_postgres::Client, id: i64) -> Vec<(String, Option<Value>)> {
    c.query(
        "SELECT status::text, detail FROM pgq.log WHERE job_id = $1 ORDER BY id",
        &[&id],
    )
    .await
    .expect("the log")
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

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
    let mut pgq = runtime(&db);
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
    let mut pgq = runtime(&db);
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
    let mut pgq = runtime(&db);
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
    let mut pgq = runtime(&db);
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
    let mut pgq = runtime(&db);
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
    let mut pgq = runtime(&db);
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
async fn retry_requested_runs_the_job_again() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let id = q
        .enqueue(["flaky"], [Vec::new()], [0])
        .await
        .expect("enqueue")[0];
    let mut pgq = runtime(&db);
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

#[tokio::test]
async fn a_schedule_runs_once_per_fire_with_two_workers_ticking() {
    let db = TestDb::installed().await;
    // The test database has no pgqueuer scheduler (it serves `postgres`), so both runtimes
    // call pgq.tick() themselves: SKIP LOCKED must still make one job per fire.
    let (sender, mut runs) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let mut pgq = runtime(&db);
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
    let mut pgq = runtime(&db);
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
    let mut pgq = runtime(&db);
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
        let mut pgq = runtime(&db);
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

#[tokio::test]
async fn a_killed_listen_connection_is_replaced_and_wakes_the_worker_again() {
    let db = TestDb::installed().await;
    let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
    let mut pgq = runtime(&db);
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

/// The runtime refuses, in one line naming both versions, a schema it does not know, and a
/// database without pgqueuer; it starts on a schema it knows.
#[tokio::test]
async fn the_runtime_refuses_a_schema_version_it_does_not_know() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let checked = Queries::new(db.connect().await)
        .check_schema()
        .await
        .expect("the current schema is known");
    assert_eq!(checked, env!("CARGO_PKG_VERSION"));

    // What a database left at an old release looks like to the client.
    c.batch_execute(
        "CREATE OR REPLACE FUNCTION pgq.version() RETURNS text LANGUAGE sql \
         AS $$ SELECT '0.0.1'::text $$",
    )
    .await
    .expect("pretend the schema is 0.0.1");
    let error = runtime(&db)
        .entrypoint("e", |_job| async { Ok(()) })
        .run_until(drain(10, 10), std::future::pending())
        .await
        .expect_err("an unknown schema is refused");
    let message = error.to_string();
    assert!(matches!(error, pgqueuer::Error::Schema(_)), "{error:?}");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("schema 0.0.1")
            && message.contains(&format!("works with schema {}", env!("CARGO_PKG_VERSION")))
            && message.contains("pgq upgrade"),
        "{message}"
    );

    let empty = TestDb::empty().await;
    let error = runtime(&empty)
        .entrypoint("e", |_job| async { Ok(()) })
        .run_until(drain(10, 10), std::future::pending())
        .await
        .expect_err("no schema is refused");
    assert!(
        error.to_string().contains("pgqueuer is not installed"),
        "{error}"
    );
}

/// This client works with the previous release's schema too (a compatible release, listed in
/// SCHEMA_VERSIONS): its runtime drains a database still at 0.2.0, whose pgq.ack has no fast
/// path, and every job ends once.
#[tokio::test]
async fn the_runtime_drains_a_database_whose_extension_is_at_the_previous_release() {
    let db = TestDb::empty().await;
    let c = db.connect().await;
    c.batch_execute("CREATE EXTENSION pgqueuer VERSION '0.2.0'")
        .await
        .expect("install 0.2.0");
    let q = Queries::new(db.connect().await);
    q.enqueue(vec!["a"; 250], vec![Vec::new(); 250], vec![0; 250])
        .await
        .expect("enqueue");
    let ran = Arc::new(AtomicUsize::new(0));
    let mut pgq = runtime(&db);
    {
        let ran = Arc::clone(&ran);
        pgq.entrypoint("a", move |_job: Job| {
            ran.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        });
    }
    pgq.run(drain(50, 20)).await.expect("drain on 0.2.0");
    assert_eq!(ran.load(Ordering::SeqCst), 250);
    assert_eq!(count(q.client(), "pgq.jobs").await, 0);
    assert_eq!(
        count(q.client(), "pgq.log WHERE status = 'successful'").await,
        250
    );
    let version: String = scalar(&c, "SELECT pgq.version()", &[]).await;
    assert_eq!(version, "0.2.0");
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
    let mut pgq = runtime(&db);
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
    let mut pgq = runtime(&db);
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

/// A job claimed ahead whose cancel is confirmed while it waits for a slot never runs: it is
/// taken out of the queue and ends as canceled, with the reason in the log.
#[tokio::test]
async fn a_job_cancelled_while_claimed_ahead_never_runs() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let (ran_tx, mut ran) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let mut pgq = runtime(&db);
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
