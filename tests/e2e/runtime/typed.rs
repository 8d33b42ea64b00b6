//! Typed jobs through the client: arguments serialised as JSON with a content-type header,
//! handlers that receive them and return results, payloads that cannot be read, and waiting
//! for completion on notifications.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pgqueuer::{
    Completions, EntrypointSettings, Job, JobArgs, JobState, Mode, NewJob, OnConflict, PgQueuer,
    Queries, RunOptions,
};
use pgqueuer_tests::{TestDb, scalar};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Resize {
    width: u32,
}

impl JobArgs for Resize {
    const ENTRYPOINT: &'static str = "resize";
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Resized {
    width: u32,
    attempt: i32,
}

fn drain() -> RunOptions {
    RunOptions {
        mode: Mode::Drain,
        ..RunOptions::default()
    }
}

/// The handler of `Resize` jobs: doubles the width, and counts its runs.
fn resizer(db: &TestDb, runs: &Arc<AtomicUsize>) -> PgQueuer {
    let mut pgq = PgQueuer::new(pgqueuer::config(&db.dsn).expect("settings"));
    let runs = Arc::clone(runs);
    pgq.job(move |resize: Resize, job: Job| {
        runs.fetch_add(1, Ordering::SeqCst);
        async move {
            assert_eq!(
                job.headers,
                Some(json!({"content-type": "application/json", "trace": "t1"}))
            );
            Ok(Resized {
                width: resize.width * 2,
                attempt: job.attempts,
            })
        }
    });
    pgq
}

#[tokio::test]
async fn a_typed_job_runs_with_its_arguments_and_its_result_is_returned_by_job_status() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let jobs: Vec<NewJob> = [10, 20]
        .iter()
        .map(|&width| {
            NewJob::typed(&Resize { width })
                .expect("serialises")
                .priority(width as i32)
                .header("trace", "t1")
        })
        .collect();
    let mut ids: Vec<i64> = q
        .enqueue_many(&jobs, OnConflict::Raise)
        .await
        .expect("enqueue")
        .into_iter()
        .flatten()
        .collect();
    // One more inside the caller's transaction, with a delay of 0 and a dedupe key.
    let mut client = db.connect().await;
    let tx = client.transaction().await.expect("begin");
    let job = NewJob::typed(&Resize { width: 30 })
        .expect("serialises")
        .delay(Duration::ZERO)
        .dedupe_key("thirty")
        .headers(json!({"trace": "t1"}));
    let in_tx = pgqueuer::enqueue_in(&tx, &[job], OnConflict::Raise)
        .await
        .expect("enqueue in the transaction");
    tx.commit().await.expect("commit");
    ids.extend(in_tx.into_iter().flatten());
    let stored: Vec<u8> = scalar(
        q.client(),
        "SELECT payload FROM pgq.jobs WHERE id = $1",
        &[&ids[0]],
    )
    .await;
    assert_eq!(stored, br#"{"width":10}"#);

    let runs = Arc::new(AtomicUsize::new(0));
    resizer(&db, &runs).run(drain()).await.expect("drain");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let outcomes = q.job_status(&ids).await.expect("job_status");
    let results: Vec<Option<Resized>> = outcomes
        .iter()
        .map(|outcome| outcome.result().expect("a Resized"))
        .collect();
    assert_eq!(
        results,
        [20, 40, 60]
            .map(|width| Some(Resized { width, attempt: 0 }))
            .into_iter()
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_payload_that_is_not_the_type_ends_its_job_at_once_without_retries() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    q.configure(
        "resize",
        &EntrypointSettings {
            max_attempts: Some(5),
            ..EntrypointSettings::default()
        },
    )
    .await
    .expect("configure");
    let jobs = [
        NewJob::new("resize").payload("not json"),
        NewJob::new("resize").payload(r#"{"height": 3}"#),
        NewJob::new("resize")
            .payload(r#"{"width": 3}"#)
            .header("content-type", "application/msgpack"),
    ];
    let ids: Vec<i64> = q
        .enqueue_many(&jobs, OnConflict::Raise)
        .await
        .expect("enqueue")
        .into_iter()
        .flatten()
        .collect();
    let runs = Arc::new(AtomicUsize::new(0));
    resizer(&db, &runs).run(drain()).await.expect("drain");
    assert_eq!(runs.load(Ordering::SeqCst), 0, "no handler ran");
    let log: Vec<(i64, String, i32, Value)> = q
        .client()
        .query(
            "SELECT job_id, status::text, attempts, detail FROM pgq.log ORDER BY id",
            &[],
        )
        .await
        .expect("the log")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    assert_eq!(log.len(), 3, "one row a job, no retry: {log:?}");
    let expected = [
        "in JSON: expected",
        "missing field `width`",
        "application/msgpack",
    ];
    for ((job_id, status, attempts, detail), (id, words)) in
        log.iter().zip(ids.iter().zip(expected))
    {
        assert_eq!((job_id, status.as_str(), *attempts), (id, "exception", 0));
        assert_eq!(detail["type"], "unrecoverable");
        let message = detail["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{message}");
    }
}

#[tokio::test]
async fn completions_wake_on_the_notification_of_a_job_that_ends() {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let id = q
        .enqueue_many(
            &[NewJob::typed(&Resize { width: 1 }).expect("serialises")],
            OnConflict::Raise,
        )
        .await
        .expect("enqueue")[0]
        .expect("an id");
    // The handler holds the job until the waiter has read it running.
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut pgq = PgQueuer::new(pgqueuer::config(&db.dsn).expect("settings"));
    {
        let gate = Arc::clone(&gate);
        pgq.job(move |resize: Resize, _job: Job| {
            let gate = Arc::clone(&gate);
            async move {
                gate.notified().await;
                Ok(resize.width + 1)
            }
        });
    }
    pgq.configure(
        "resize",
        EntrypointSettings {
            notify_completion: Some(true),
            ..EntrypointSettings::default()
        },
    );
    let running = tokio::spawn(async move { pgq.run(drain()).await });
    let picked = async {
        while q.job_status(&[id]).await.expect("status")[0].status != JobState::Picked {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), picked)
        .await
        .expect("the runtime claims the job");

    let mut completions = Completions::connect(&pgqueuer::config(&db.dsn).expect("settings"))
        .await
        .expect("LISTEN pgq_done");
    let since: std::time::SystemTime = scalar(q.client(), "SELECT clock_timestamp()", &[]).await;
    // A poll an hour away: only the notification can end this wait within the test.
    let waiting =
        tokio::spawn(async move { completions.wait_for(&[id], Duration::from_secs(3600)).await });
    // The waiter's first read (its only statement since `since`) is over: it saw the job
    // running and waits.
    let first_read = async {
        loop {
            let read: bool = scalar(
                q.client(),
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() \
             AND query LIKE '%pgq.job_status%' AND query_start > $1 AND state = 'idle')",
                &[&since],
            )
            .await;
            if read {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), first_read)
        .await
        .expect("the waiter reads the status");
    gate.notify_one();
    let outcomes = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("woken by the notification, not the hourly poll")
        .expect("the task")
        .expect("wait_for");
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].status, JobState::Successful);
    assert_eq!(outcomes[0].result::<u32>().expect("a u32"), Some(2));
    running.await.expect("the task").expect("the run");
}
