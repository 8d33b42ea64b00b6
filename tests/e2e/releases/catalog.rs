//! The catalog snapshot that the upgrade test compares: it must see every kind of difference
//! an upgrade script could leave behind.

use pgqueuer_tests::TestDb;
use pgqueuer_tests::catalog::{difference, snapshot};

#[tokio::test]
async fn the_snapshot_sees_each_kind_of_schema_difference() {
    let db = TestDb::with_extension().await;
    let client = db.connect().await;
    let fresh = snapshot(&client).await;
    assert!(
        fresh.iter().any(|line| line.starts_with("function ack(")),
        "the snapshot lists functions: {fresh:?}"
    );
    assert_eq!(snapshot(&client).await, fresh, "the snapshot is stable");

    // Each change runs in a transaction that is rolled back, so each is compared alone.
    let changes = [
        (
            "a function's SET clause",
            "ALTER FUNCTION pgq.tick() SET work_mem = '1MB'",
        ),
        (
            "a function's body",
            "CREATE OR REPLACE FUNCTION pgq.version() RETURNS text \
                               LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT '9' $$",
        ),
        (
            "SECURITY DEFINER",
            "ALTER FUNCTION pgq.tick() SECURITY INVOKER",
        ),
        ("a grant", "GRANT SELECT ON pgq.jobs TO PUBLIC"),
        (
            "a grant on a function",
            "GRANT EXECUTE ON FUNCTION pgq.tick() TO PUBLIC",
        ),
        ("persistence", "ALTER TABLE pgq.log SET UNLOGGED"),
        (
            "a column default",
            "ALTER TABLE pgq.jobs ALTER COLUMN priority SET DEFAULT 1",
        ),
        ("a new column", "ALTER TABLE pgq.jobs ADD COLUMN extra int"),
        ("an index", "DROP INDEX pgq.log_created_idx"),
        (
            "a constraint",
            "ALTER TABLE pgq.jobs ADD CONSTRAINT p CHECK (priority > -1000)",
        ),
        ("an enum label", "ALTER TYPE pgq.job_state ADD VALUE 'lost'"),
        (
            "extension membership",
            "ALTER EXTENSION pgqueuer DROP VIEW pgq.throughput",
        ),
        // pg_extension_config_dump runs only inside CREATE EXTENSION: write what it writes.
        (
            "pg_dump's tables",
            "UPDATE pg_extension SET extcondition[array_position(extconfig, \
                              'pgq.log'::regclass)] = 'WHERE false' WHERE extname = 'pgqueuer'",
        ),
        (
            "a table's options",
            "ALTER TABLE pgq.jobs SET (fillfactor = 50)",
        ),
        (
            "a disabled trigger",
            "ALTER TABLE pgq.log DISABLE TRIGGER log_completed",
        ),
        (
            "a new function",
            "CREATE FUNCTION pgq.extra() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        ),
    ];
    for (what, sql) in changes {
        client.batch_execute("BEGIN").await.expect("BEGIN");
        if let Err(error) = client.batch_execute(sql).await {
            panic!("{what}: {sql}: {error}");
        }
        let changed = snapshot(&client).await;
        client.batch_execute("ROLLBACK").await.expect("ROLLBACK");
        assert!(
            !difference(&fresh, &changed).is_empty(),
            "the snapshot missed {what} ({sql})"
        );
    }
    assert_eq!(
        snapshot(&client).await,
        fresh,
        "every change was rolled back"
    );
}
