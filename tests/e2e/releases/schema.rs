//! How the client meets a schema: `Schema` reads its version, how it is installed and what it
//! can do; `Queries` asks it before a call an older schema lacks (docs/updating.md, "Clients
//! and schemas").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgqueuer::{
    Ack, Capability, Claim, EntrypointSettings, Error, Install, Job, JobState, Queries, Schema,
};
use pgqueuer_tests::{TestDb, count, drain, scalar};

/// A database at 0.4.0 (before pgq.fail and notify_completion): the schema says so, a call
/// that needs 0.5.0 is refused in one line naming it and changes nothing, and pgq.fail falls
/// back to an exception ack as documented.
#[tokio::test]
async fn an_older_extension_schema_is_asked_before_a_call_it_lacks() {
    let db = TestDb::empty().await;
    let c = db.connect().await;
    c.batch_execute("CREATE EXTENSION pgqueuer VERSION '0.4.0'")
        .await
        .expect("install 0.4.0");
    let q = Queries::new(db.connect().await);
    let schema = q.schema().await.expect("the schema");
    assert_eq!(
        (schema.version(), schema.install(), schema.database()),
        (Some("0.4.0"), Some(Install::Extension), db.name.as_str())
    );
    assert!(!schema.has(Capability::Fail) && !schema.has(Capability::NotifyCompletion));
    assert_eq!(q.check_schema().await.expect("0.4.0 is supported"), "0.4.0");
    q.prepare_all().await.expect("every statement 0.4.0 has");

    let error = q
        .configure(
            "mail",
            &EntrypointSettings {
                notify_completion: Some(true),
                ..EntrypointSettings::default()
            },
        )
        .await
        .expect_err("0.4.0 has no notify_completion");
    let message = error.to_string();
    assert!(matches!(error, Error::Schema(_)), "{error:?}");
    assert!(
        message.contains("has pgqueuer schema 0.4.0")
            && message.contains("needs pgqueuer schema 0.5.0 or later"),
        "{message}"
    );
    let configured: i64 = scalar(&c, "SELECT count(*) FROM pgq.entrypoints", &[]).await;
    assert_eq!(configured, 0, "nothing was configured");
}

/// The current schema has every capability, read from pgq.version(); a role that may not call
/// pgq.version() (pgq_monitor) reads the version from the catalog; an empty database has none.
#[tokio::test]
async fn the_schema_is_read_by_any_role_and_has_every_capability_now() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let schema = Schema::read(&c).await.expect("the schema");
    assert_eq!(schema.version(), Some(env!("CARGO_PKG_VERSION")));
    for capability in Capability::ALL {
        assert!(schema.has(*capability), "{capability:?}");
        schema
            .requires(*capability)
            .expect("the current schema has it");
    }
    let expected_install = match pgqueuer_tests::sql_only() {
        true => Install::SqlOnly,
        false => Install::Extension,
    };
    assert_eq!(schema.install(), Some(expected_install));

    let login = format!("monitor_{}", db.name);
    c.batch_execute(&format!(
        "CREATE ROLE {login} LOGIN; GRANT pgq_monitor TO {login}"
    ))
    .await
    .expect("a monitor");
    let monitor = pgqueuer::connect(&format!("{} user={login}", db.dsn))
        .await
        .expect("connect as the monitor");
    let seen = Schema::read(&monitor).await.expect("read by a monitor");
    assert_eq!(seen.version(), schema.version());
    assert_eq!(seen.install(), schema.install());

    let empty = TestDb::empty().await;
    let none = Schema::read(&empty.connect().await).await.expect("read");
    assert_eq!((none.version(), none.install()), (None, None));
    let error = none
        .requires(Capability::Pause)
        .expect_err("nothing installed");
    assert!(
        error.to_string().contains("pgqueuer is not installed"),
        "{error}"
    );
}

/// A newer schema may add a state to pgq.job_state: this client reads rows in it as
/// `JobState::Other` with the label, instead of failing to decode them (here the type gains
/// `snoozed`, a live job and a log row take it).
#[tokio::test]
async fn a_state_of_a_newer_schema_decodes_as_other() {
    let db = TestDb::installed().await;
    let c = db.connect().await;
    let q = Queries::new(db.connect().await);
    let ids = q
        .enqueue(["later", "done"], [Vec::new(), Vec::new()], [0, 0])
        .await
        .expect("enqueue");
    let picked = q.dequeue(&["done"], 1, None).await.expect("claim");
    q.ack(
        &[Ack {
            claim: Claim::of(&picked[0]),
            status: JobState::Successful,
            detail: None,
        }],
        None,
    )
    .await
    .expect("ack");
    c.batch_execute("ALTER TYPE pgq.job_state ADD VALUE 'snoozed'")
        .await
        .expect("a newer schema's state");
    let check: String = scalar(
        &c,
        "SELECT conname::text FROM pg_constraint WHERE conrelid = 'pgq.jobs'::regclass \
         AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%status%'",
        &[],
    )
    .await;
    c.batch_execute(&format!(
        "ALTER TABLE pgq.jobs DROP CONSTRAINT {check}; \
         UPDATE pgq.jobs SET status = 'snoozed' WHERE id = {}; \
         UPDATE pgq.log SET status = 'snoozed' WHERE job_id = {}",
        ids[0], ids[1]
    ))
    .await
    .expect("rows in the new state");

    let snoozed = JobState::Other("snoozed".into());
    let summary = q.queue_summary().await.expect("queue_summary decodes");
    assert_eq!(
        summary
            .iter()
            .map(|row| (row.entrypoint.as_str(), &row.status))
            .collect::<Vec<_>>(),
        [("later", &snoozed)]
    );
    let log = q.log(Some("done"), 10).await.expect("the log decodes");
    assert_eq!(log[0].status, snoozed);
    let outcomes = q.job_status(&ids).await.expect("job_status decodes");
    assert!(
        outcomes.iter().all(|outcome| outcome.status == snoozed),
        "{outcomes:?}"
    );
    assert!(JobState::from_label("failed") == JobState::Held);
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
    let error = db
        .runtime()
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
    let error = empty
        .runtime()
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
    let mut pgq = db.runtime();
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
