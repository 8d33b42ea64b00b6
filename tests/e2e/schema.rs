//! How the client meets a schema: `Schema` reads its version, how it is installed and what it
//! can do; `Queries` asks it before a call an older schema lacks (docs/updating.md, "Clients
//! and schemas").

use pgqueuer::{
    Ack, Capability, Claim, EntrypointSettings, Error, Install, JobState, Queries, Schema,
};
use pgqueuer_tests::{TestDb, scalar};

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
