//! A user's `pg_dump` of their database keeps the queue: jobs in every state, settings,
//! schedules and the log, and the identity sequences, so a restored queue goes on where it was.

use std::process::Command;

use pgqueuer_tests::{TestDb, cluster, rows_json, scalar};
use tokio_postgres::Client;

/// Every table's rows as JSON text, in id (or name) order.
async fn contents(client: &Client) -> Vec<String> {
    let mut all = Vec::new();
    for (table, order) in [
        ("pgq.jobs", "id"),
        ("pgq.log", "id"),
        ("pgq.entrypoints", "name"),
        ("pgq.schedules", "id"),
    ] {
        all.push(format!(
            "{table}: {}",
            rows_json(client, table, order).await
        ));
    }
    all
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn dump_and_restore_keeps_every_job_and_the_sequences() {
    let source = TestDb::with_extension().await;
    let c = source.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('held', on_failure => 'hold', concurrency_limit => 3);
         SELECT pgq.enqueue_many(ARRAY['a', 'a', 'held', 'done', 'later'],
                                 ARRAY['\\x01', '\\x02', NULL, NULL, NULL]::bytea[],
                                 execute_after => ARRAY[NULL, NULL, NULL, NULL, '1 day']::interval[],
                                 dedupe_keys => ARRAY['k', NULL, NULL, NULL, NULL]);
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['done'], 1)));
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['held'], 1)),
                        ARRAY['exception']::pgq.job_state[], ARRAY['{\"error\": \"x\"}']::jsonb[]);
         SELECT count(*) FROM pgq.dequeue(ARRAY['a'], 1,
                                          '00000000-0000-0000-0000-000000000001');
         SELECT pgq.schedule('nightly', '0 3 * * *', 'Europe/Oslo');",
    )
    .await
    .expect("a queue with jobs in every state");
    let before = contents(&c).await;

    let dump = cluster().dir().join(format!("{}.dump", source.name));
    let port = cluster().port().to_string();
    let host = cluster().socket_dir().display().to_string();
    run(Command::new(cluster().bin("pg_dump"))
        .args(["-Fc", "-h", &host, "-p", &port, "-U", "postgres", "-f"])
        .arg(&dump)
        .arg(&source.name));
    let target = TestDb::empty().await;
    run(Command::new(cluster().bin("pg_restore"))
        .args([
            "--exit-on-error",
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
        ])
        .arg(&target.name)
        .arg(&dump));
    let _ = std::fs::remove_file(&dump);

    let r = target.connect().await;
    assert_eq!(contents(&r).await, before, "every row came back as it was");

    // The sequences came back too: new rows get new ids, not ones the old rows hold.
    let max_job: i64 = scalar(&r, "SELECT max(id) FROM pgq.jobs", &[]).await;
    let new_job: i64 = scalar(&r, "SELECT pgq.enqueue('a')", &[]).await;
    assert!(new_job > max_job, "job id {new_job} after {max_job}");
    let max_log: i64 = scalar(&r, "SELECT max(id) FROM pgq.log", &[]).await;
    let acked: i64 = scalar(
        &r,
        "SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['done', 'a'], 10) \
                             WHERE entrypoint = 'a' AND id = $1))",
        &[&new_job],
    )
    .await;
    assert_eq!(acked, 1);
    let new_log: i64 = scalar(&r, "SELECT max(id) FROM pgq.log", &[]).await;
    assert!(new_log > max_log, "log id {new_log} after {max_log}");
    let schedule: i64 = scalar(&r, "SELECT pgq.schedule('hourly', '0 * * * *')", &[]).await;
    assert_eq!(schedule, 2, "the schedule ids go on after the restored one");

    // The restored objects are the extension's own, and the dedupe key still holds.
    let members: i64 = scalar(
        &r,
        "SELECT count(*) FROM pg_depend WHERE deptype = 'e' AND refobjid = \
         (SELECT oid FROM pg_extension WHERE extname = 'pgqueuer') \
         AND objid = 'pgq.jobs'::regclass",
        &[],
    )
    .await;
    assert_eq!(members, 1);
    let duplicate = r
        .query_one("SELECT pgq.enqueue('a', dedupe_key => 'k')", &[])
        .await;
    assert!(
        duplicate.is_err(),
        "the restored dedupe key is still in use"
    );
}
