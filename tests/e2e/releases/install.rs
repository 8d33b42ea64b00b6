//! Installing the extension into a real, preloaded server and reaching it through the client.

use pgqueuer_tests::{TestDb, scalar};

#[tokio::test]
async fn create_extension_then_version_through_the_client() {
    let db = TestDb::empty().await;
    let client = db.connect().await;

    let preload: String = scalar(&client, "SHOW shared_preload_libraries", &[]).await;
    assert_eq!(preload, "pgqueuer", "the server must preload the extension");

    client
        .batch_execute("CREATE EXTENSION pgqueuer")
        .await
        .expect("CREATE EXTENSION pgqueuer");
    let version: String = scalar(&client, "SELECT pgq.version()", &[]).await;
    assert_eq!(version, env!("CARGO_PKG_VERSION"));

    let schema: String = scalar(
        &client,
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgqueuer'",
        &[],
    )
    .await;
    assert_eq!(schema, "pgq");
}

#[tokio::test]
async fn each_test_gets_a_database_of_its_own() {
    let first = TestDb::with_extension().await;
    let second = TestDb::empty().await;
    assert_ne!(first.name, second.name);

    let installed: i64 = second
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pgqueuer'",
            &[],
        )
        .await
        .expect("pg_extension is readable")
        .get(0);
    assert_eq!(
        installed, 0,
        "the other test's CREATE EXTENSION must not be visible here"
    );
}
