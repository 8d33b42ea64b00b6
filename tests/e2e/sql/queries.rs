//! The client's `Queries`: every SQL function through typed calls.

use std::time::Duration;

use pgqueuer::{
    Ack, Claim, Durability, EntrypointSettings, Error, Interval, JobOutcome, JobState, NewJob,
    OnConflict, Queries, Report, Retention,
};
use pgqueuer_tests::TestDb;
use serde_json::json;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

async fn queries() -> (TestDb, Queries) {
    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    (db, q)
}

#[tokio::test]
async fn the_quick_start_round_trip() {
    let (_db, q) = queries().await;
    let ids = q
        .enqueue(["fetch"], [b"hello world".to_vec()], [0])
        .await
        .expect("enqueue");
    assert_eq!(ids.len(), 1);
    let worker = Uuid::new_v4();
    let jobs = q
        .dequeue(&["fetch"], 10, Some(worker))
        .await
        .expect("dequeue");
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!((job.id, job.entrypoint.as_str()), (ids[0], "fetch"));
    assert_eq!(job.payload.as_deref(), Some(&b"hello world"[..]));
    assert_eq!(
        (&job.status, job.worker_id),
        (&JobState::Picked, Some(worker))
    );
    assert_eq!(
        q.heartbeat(&[Claim::of(job)], Some(worker))
            .await
            .expect("heartbeat"),
        1
    );
    let acked = q
        .ack(
            &[Ack {
                claim: Claim::of(job),
                status: JobState::Successful,
                detail: Some(json!({"ok": 1})),
            }],
            Some(worker),
        )
        .await
        .expect("ack");
    assert_eq!(acked, 1);
    let status = q.job_status(&[job.id]).await.expect("job_status");
    assert_eq!(
        status,
        vec![JobOutcome {
            id: job.id,
            status: JobState::Successful,
            detail: Some(json!({"ok": 1}))
        }]
    );
    let log = q.log(Some("fetch"), 10).await.expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].job_id, &log[0].status),
        (job.id, &JobState::Successful)
    );
}

#[tokio::test]
async fn enqueue_many_with_options_and_errors_as_variants() {
    let (_db, q) = queries().await;
    let jobs = [
        NewJob::new("mail").payload("a").priority(5).dedupe_key("k"),
        NewJob::new("mail").payload("b").dedupe_key("k"),
        NewJob::new("later")
            .delay(Duration::from_secs(3600))
            .headers(json!({"lang": "nb"})),
    ];
    let ids = q.enqueue_many(&jobs, OnConflict::Skip).await.expect("skip");
    assert!(
        ids[0].is_some() && ids[1].is_none() && ids[2].is_some(),
        "{ids:?}"
    );

    match q.enqueue_many(&jobs[..1], OnConflict::Raise).await {
        Err(Error::Duplicate { message, .. }) => assert!(message.contains("'k'"), "{message}"),
        other => panic!("expected Error::Duplicate, got {other:?}"),
    }
    match q.enqueue_many(&[NewJob::new("")], OnConflict::Raise).await {
        Err(Error::Invalid { message, .. }) => assert!(message.contains("non-empty"), "{message}"),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
    match q.dequeue(&["mail"], 0, None).await {
        Err(Error::Invalid { message, .. }) => assert!(message.contains("batch_size"), "{message}"),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
    // A database's error keeps what the server said: SQLSTATE, message, detail and hint.
    let duplicate = q
        .enqueue_many(&jobs[..1], OnConflict::Raise)
        .await
        .expect_err("the key is taken");
    assert_eq!(duplicate.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let refused = q.dequeue(&["mail"], 0, None).await.expect_err("batch 0");
    let db = refused.db_error().expect("the server's error");
    assert_eq!(db.code(), &SqlState::INVALID_PARAMETER_VALUE);
    assert_eq!(db.message(), refused.to_string());
    let other = q
        .client()
        .query_one("SELECT * FROM pgq.no_such_table", &[])
        .await
        .map_err(Error::from)
        .expect_err("no such table");
    assert_eq!(other.code(), Some(&SqlState::UNDEFINED_TABLE));
    assert_eq!(
        other.to_string(),
        "ERROR: relation \"pgq.no_such_table\" does not exist (SQLSTATE 42P01)"
    );

    let claimed = q
        .dequeue(&["mail", "later"], 10, None)
        .await
        .expect("dequeue");
    assert_eq!(claimed.len(), 1, "the delayed job is not due");
    assert_eq!(claimed[0].priority, 5);
    let summary = q.queue_summary().await.expect("summary");
    let later = summary
        .iter()
        .find(|row| row.entrypoint == "later")
        .expect("a later row");
    assert_eq!((&later.status, later.count), (&JobState::Queued, 1));
}

#[tokio::test]
async fn settings_retries_holds_and_operations() {
    let (_db, q) = queries().await;
    q.configure(
        "h",
        &EntrypointSettings {
            max_attempts: Some(2),
            retry_delay: Some(Duration::ZERO),
            hold_on_failure: Some(true),
            ..EntrypointSettings::default()
        },
    )
    .await
    .expect("configure");
    let id = q.enqueue(["h"], [Vec::new()], [0]).await.expect("enqueue")[0];
    let fail = [Ack {
        claim: Claim::any(id),
        status: JobState::Exception,
        detail: Some(json!({"message": "boom"})),
    }];
    for _ in 0..2 {
        assert_eq!(q.dequeue(&["h"], 1, None).await.expect("dequeue").len(), 1);
        assert_eq!(q.ack(&fail, None).await.expect("ack"), 1);
    }
    let held = q.job_status(&[id]).await.expect("job_status");
    assert_eq!(
        held,
        vec![JobOutcome {
            id,
            status: JobState::Held,
            detail: Some(json!({"message": "boom"}))
        }]
    );
    assert_eq!(q.requeue(&[id]).await.expect("requeue"), 1);

    let worker = Uuid::new_v4();
    assert_eq!(
        q.dequeue(&["h"], 1, Some(worker))
            .await
            .expect("dequeue")
            .len(),
        1
    );
    assert!(
        q.retry(
            Claim::any(id),
            Duration::from_secs(60),
            Some("later"),
            Some(worker)
        )
        .await
        .expect("retry")
    );
    assert!(
        !q.retry(Claim::any(id), Duration::ZERO, None, Some(worker))
            .await
            .expect("not picked")
    );
    assert_eq!(q.cancel(&[id]).await.expect("cancel"), 1);
    q.enqueue(["x", "x"], [Vec::new(), Vec::new()], [0, 0])
        .await
        .expect("enqueue");
    assert_eq!(q.clear(Some("x")).await.expect("clear"), 2);
    assert_eq!(
        q.purge_log(Duration::from_secs(86_400))
            .await
            .expect("purge"),
        0
    );
}

#[tokio::test]
async fn schedules_through_queries() {
    let (_db, q) = queries().await;
    let id = q
        .schedule("report", "@daily", "Europe/Oslo")
        .await
        .expect("schedule");
    assert_eq!(
        q.schedule("report", "@daily", "Europe/Oslo")
            .await
            .expect("again"),
        id
    );
    let next = q.tick().await.expect("tick").expect("a next due time");
    assert!(next > std::time::SystemTime::now());
    match q.schedule("report", "* * * * * * *", "UTC").await {
        Err(Error::Invalid { message, .. }) => assert!(message.contains("7 fields"), "{message}"),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
    assert_eq!(q.unschedule("report", None).await.expect("unschedule"), 1);
    // With no schedule left, the next due time is the maintenance's (sql/maintenance.sql).
    let due = q
        .tick()
        .await
        .expect("tick")
        .expect("the maintenance is due");
    assert!(due > std::time::SystemTime::now());
}

#[tokio::test]
async fn wait_for_returns_once_every_job_has_ended() {
    let (db, q) = queries().await;
    let ids = q
        .enqueue(["a", "b"], [Vec::new(), Vec::new()], [0, 0])
        .await
        .expect("enqueue");
    let waiting = {
        let ids = ids.clone();
        let watcher = Queries::new(db.connect().await);
        tokio::spawn(async move { watcher.wait_for(&ids, Duration::from_millis(200)).await })
    };
    let jobs = q.dequeue(&["a"], 1, None).await.expect("dequeue");
    q.ack(
        &[Ack {
            claim: Claim::of(&jobs[0]),
            status: JobState::Successful,
            detail: Some(json!(42)),
        }],
        None,
    )
    .await
    .expect("ack");
    assert_eq!(q.cancel(&[ids[1]]).await.expect("cancel"), 1);
    let outcomes = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("wait_for returns")
        .expect("the task")
        .expect("wait_for");
    assert_eq!(
        outcomes[0],
        JobOutcome {
            id: ids[0],
            status: JobState::Successful,
            detail: Some(json!(42))
        }
    );
    assert_eq!(outcomes[0].result::<i32>().expect("an i32"), Some(42));
    assert_eq!(
        (outcomes[1].id, &outcomes[1].status),
        (ids[1], &JobState::Canceled)
    );
    assert_eq!(outcomes[1].result::<i32>().expect("no result"), None);
    let unknown = q
        .wait_for(&[999_999], Duration::from_millis(10))
        .await
        .expect("unknown ids");
    assert!(unknown.is_empty());
}

/// A worker that runs through an update adding a column to pgq.jobs keeps claiming with the
/// statement it prepared before: docs/updating.md promises that old workers survive a release
/// that only appends columns.
#[tokio::test]
async fn a_prepared_claim_survives_a_column_added_to_the_jobs_table() {
    let (db, q) = queries().await;
    q.prepare_all().await.expect("prepare");
    q.enqueue(["e"], [Vec::new()], [0]).await.expect("enqueue");
    assert_eq!(q.dequeue(&["e"], 10, None).await.expect("claim").len(), 1);

    db.connect()
        .await
        .batch_execute("ALTER TABLE pgq.jobs ADD COLUMN added_by_a_release int")
        .await
        .expect("what an upgrade script may do");
    q.enqueue(["e"], [Vec::new()], [0]).await.expect("enqueue");
    let jobs = q
        .dequeue(&["e"], 10, None)
        .await
        .expect("the same prepared claim");
    assert_eq!(jobs.len(), 1);
}

/// The calls of the operations and the read model: one job by pgq.enqueue, a schedule removed
/// by id, pause and resume, retention, durability, and the views.
#[tokio::test]
async fn operations_and_the_read_model_through_queries() {
    let (db, q) = queries().await;
    let job = NewJob::new("one").payload("p").dedupe_key("k1");
    let id = q.enqueue_one(&job).await.expect("pgq.enqueue");
    match q.enqueue_one(&job).await {
        Err(Error::Duplicate { message, .. }) => assert!(message.contains("'k1'"), "{message}"),
        other => panic!("expected Error::Duplicate, got {other:?}"),
    }
    let schedule = q
        .schedule("nightly", "@daily", "UTC")
        .await
        .expect("schedule");
    assert_eq!(q.unschedule_id(schedule).await.expect("unschedule_id"), 1);
    assert_eq!(q.unschedule_id(schedule).await.expect("gone already"), 0);

    assert!(q.pause("one").await.expect("pause"));
    assert!(!q.pause("one").await.expect("paused already"));
    assert!(
        q.dequeue(&["one"], 10, None)
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(q.resume("one").await.expect("resume"));
    assert!(!q.resume("one").await.expect("not paused"));

    let fresh = q.retention().await.expect("retention");
    assert_eq!(
        fresh,
        Retention {
            log: Some(Interval::new("7 days")),
            stats: Interval::new("90 days")
        }
    );
    let forever = q.set_log_retention(None).await.expect("forever");
    assert_eq!(forever.log, None);
    let set = q
        .set_stats_retention(&Interval::new("1 year"))
        .await
        .expect("stats retention");
    assert_eq!((set.log, set.stats.as_str()), (None, "1 year"));
    let from_duration = q
        .set_log_retention(Some(&Interval::from(Duration::from_secs(3 * 86_400))))
        .await
        .expect("from a Duration");
    assert_eq!(from_duration.log, Some(Interval::new("72:00:00")));
    assert_eq!(q.retention().await.expect("again").stats.as_str(), "1 year");
    match q.set_stats_retention(&Interval::new("1 minute")).await {
        Err(Error::Invalid { message, .. }) => {
            assert!(message.contains("from 1 hour to 100 years"), "{message}")
        }
        other => panic!("expected Error::Invalid, got {other:?}"),
    }

    assert_eq!(
        q.durability().await.expect("durability"),
        Durability::Durable
    );
    let previous = q
        .set_durability(Durability::Balanced, &Interval::new("5 seconds"))
        .await
        .expect("balanced");
    assert_eq!(previous, Durability::Durable);
    assert_eq!(q.durability().await.expect("now"), Durability::Balanced);

    let worker = Uuid::new_v4();
    let claimed = q.dequeue(&["one"], 10, Some(worker)).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    q.enqueue(["two"], [Vec::new()], [0])
        .await
        .expect("enqueue");
    let backlog = q.backlog().await.expect("backlog");
    let row = |name: &str| backlog.iter().find(|row| row.entrypoint == name).cloned();
    let one = row("one").expect("one's row");
    assert_eq!((one.queued, one.picked, one.held), (0, 1, 0));
    let two = row("two").expect("two's row");
    assert_eq!((two.queued, two.ready, two.picked), (1, 1, 0));
    assert!(two.oldest_queued_seconds.is_some_and(|age| age >= 0.0));
    let workers = q.workers().await.expect("workers");
    assert_eq!(workers.len(), 1);
    assert_eq!(
        (
            workers[0].worker_id,
            workers[0].jobs,
            workers[0].entrypoints.clone()
        ),
        (Some(worker), 1, vec!["one".to_string()])
    );
    q.ack(
        &[Ack {
            claim: Claim::of(&claimed[0]),
            status: JobState::Successful,
            detail: None,
        }],
        Some(worker),
    )
    .await
    .expect("ack");
    let throughput = q.throughput().await.expect("throughput");
    assert!(
        throughput.iter().any(|row| row.entrypoint == "one"
            && row.status == JobState::Successful
            && row.count == 1),
        "{throughput:?}"
    );
    assert_eq!(id, claimed[0].id);
    drop(db);
}

/// Listings for people come back as one JSON array of objects, columns in order.
#[tokio::test]
async fn reports_are_json_arrays_of_objects_in_column_order() {
    let (_db, q) = queries().await;
    assert_eq!(q.report(&Report::Held).await.expect("no held jobs"), "[]");
    q.enqueue(["mail", "mail"], [Vec::new(), Vec::new()], [0, 0])
        .await
        .expect("enqueue");
    let text = q.report(&Report::Backlog).await.expect("backlog");
    let rows: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&text).expect("a JSON array of objects");
    assert_eq!(rows.len(), 1);
    let columns: Vec<&str> = rows[0].keys().map(String::as_str).collect();
    assert_eq!(
        columns,
        [
            "entrypoint",
            "queued",
            "ready",
            "picked",
            "held",
            "oldest_queued_seconds"
        ]
    );
    assert_eq!(
        (&rows[0]["entrypoint"], &rows[0]["queued"]),
        (&json!("mail"), &json!(2))
    );
    let stale = q
        .report(&Report::Stale {
            threshold: Duration::from_secs(30),
        })
        .await
        .expect("stale");
    assert_eq!(stale, "[]");
    q.report(&Report::Stats {
        window: Duration::from_secs(3600),
    })
    .await
    .expect("stats");
    q.report(&Report::Schedules).await.expect("schedules");
    q.report(&Report::Workers).await.expect("workers");
}
