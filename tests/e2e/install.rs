//! Installing the extension into a real, preloaded server and reaching it through the client.

use pgqueuer_tests::TestDb;

#[tokio::test]
async fn create_extension_then_version_through_the_client() {
    let db = TestDb::empty().await;
    let client = db.connect().await;

    let preload: String = client
        .query_one("SHOW shared_preload_libraries", &[])
        .await
        .expect("SHOW works")
        .get(0);
    assert_eq!(preload, "pgqueuer", "the server must preload the extension");

    client
        .batch_execute("CREATE EXTENSION pgqueuer")
        .await
        .expect("CREATE EXTENSION pgqueuer");
    let version: String = client
        .query_one("SELECT pgq.version()", &[])
        .await
        .expect("pgq.version() exists after CREATE EXTENSION")
        .get(0);
    assert_eq!(version, env!("CARGO_PKG_VERSION"));

    let schema: String = client
        .query_one(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgqueuer'",
            &[],
        )
        .await
        .expect("the extension is recorded")
        .get(0);
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
