//! How the client meets a schema: `Schema` reads its version, how it is installed and what it
//! can do; `Queries` asks it before a call an older schema lacks (docs/updating.md, "Clients
//! and schemas").

use pgqueuer::{Capability, EntrypointSettings, Error, Install, Queries, Schema};
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
