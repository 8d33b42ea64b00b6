//! The `pgq` command line against a real server: output, exit codes, and what changed.

use std::process::{Command, Output};

use pgqueuer_tests::{TestDb, count, scalar};
use serde_json::Value;

/// Runs `pgq --dsn DSN ARGS...` and returns its output.
fn pgq(dsn: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgq"))
        .arg("--dsn")
        .arg(dsn)
        .args(args)
        .env_remove("PGQUEUER_DSN")
        .output()
        .expect("pgq runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

#[test]
fn a_connection_failure_is_one_line_naming_the_target_and_exit_2() {
    let output = pgq(
        "host=127.0.0.1 port=1 user=nobody dbname=nowhere",
        &["version"],
    );
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("host=127.0.0.1 port=1 user=nobody dbname=nowhere"),
        "{message}"
    );
}

#[tokio::test]
async fn install_dry_run_changes_nothing_then_install_and_verify() {
    let db = TestDb::empty().await;
    let c = db.connect().await;

    let dry = pgq(&db.dsn, &["install", "--dry-run"]);
    assert_eq!(
        (dry.status.code(), stdout(&dry).as_str()),
        (Some(0), "CREATE EXTENSION pgqueuer;")
    );
    assert_eq!(
        count(&c, "pg_extension WHERE extname = 'pgqueuer'").await,
        0,
        "dry run"
    );

    let absent = pgq(&db.dsn, &["verify", "--expect", "absent", "--json"]);
    assert_eq!(absent.status.code(), Some(0));
    let report: Value = serde_json::from_str(&stdout(&absent)).expect("JSON");
    assert_eq!(report["ok"], Value::Bool(true));

    let present = pgq(&db.dsn, &["verify"]);
    assert_eq!(present.status.code(), Some(1), "a mismatch exits 1");
    assert!(stdout(&present).contains("extension pgqueuer is not installed"));
    assert!(stdout(&present).contains("missing table pgq.jobs"));

    let install = pgq(&db.dsn, &["install"]);
    assert_eq!(install.status.code(), Some(0), "{}", stderr(&install));
    assert!(stdout(&install).starts_with("installed pgqueuer"));
    let again = pgq(&db.dsn, &["install"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(stdout(&again).contains("already installed"));

    let present = pgq(&db.dsn, &["verify", "--json"]);
    assert_eq!(present.status.code(), Some(0), "{}", stdout(&present));
    let report: Value = serde_json::from_str(&stdout(&present)).expect("JSON");
    assert_eq!(report["differences"], Value::Array(vec![]));

    let upgrade = pgq(&db.dsn, &["upgrade"]);
    assert_eq!(upgrade.status.code(), Some(0));
    assert!(
        stdout(&upgrade).contains("already at"),
        "{}",
        stdout(&upgrade)
    );
}

#[tokio::test]
async fn uninstall_refuses_while_jobs_wait_unless_forced() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    c.execute("SELECT pgq.enqueue('mail')", &[])
        .await
        .expect("enqueue");

    let refused = pgq(&db.dsn, &["uninstall"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("1 jobs are queued or picked"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        count(&c, "pg_extension WHERE extname = 'pgqueuer'").await,
        1
    );

    let forced = pgq(&db.dsn, &["uninstall", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert_eq!(
        pgq(&db.dsn, &["verify", "--expect", "absent"])
            .status
            .code(),
        Some(0)
    );
}

#[tokio::test]
async fn queue_prints_the_id_and_honours_every_option() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    let args = [
        "queue",
        "mail",
        "hello",
        "--priority",
        "5",
        "--delay",
        "10s",
        "--dedupe-key",
        "k",
        "--header",
        "lang=nb",
    ];
    let queued = pgq(&db.dsn, &args);
    assert_eq!(queued.status.code(), Some(0), "{}", stderr(&queued));
    let id: i64 = stdout(&queued).parse().expect("the id");
    let row: bool = scalar(
        &c,
        "SELECT entrypoint = 'mail' AND payload = 'hello' AND priority = 5 \
         AND execute_after - created = interval '10 seconds' AND dedupe_key = 'k' \
         AND headers = '{\"lang\": \"nb\"}' FROM pgq.jobs WHERE id = $1",
        &[&id],
    )
    .await;
    assert!(row, "the job has every option");

    let duplicate = pgq(&db.dsn, &["queue", "mail", "--dedupe-key", "k"]);
    assert_eq!(duplicate.status.code(), Some(1));
    assert!(stderr(&duplicate).contains("'k'"), "{}", stderr(&duplicate));
    let skipped = pgq(
        &db.dsn,
        &[
            "queue",
            "mail",
            "--dedupe-key",
            "k",
            "--on-conflict",
            "skip",
        ],
    );
    assert_eq!(
        (skipped.status.code(), stdout(&skipped).as_str()),
        (Some(0), "")
    );

    let invalid = pgq(&db.dsn, &["queue", ""]);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(
        stderr(&invalid).contains("non-empty"),
        "{}",
        stderr(&invalid)
    );
    let bad_delay = pgq(&db.dsn, &["queue", "mail", "--delay", "soon"]);
    assert_eq!(
        bad_delay.status.code(),
        Some(2),
        "a bad command line exits 2"
    );
    assert_eq!(count(&c, "pgq.jobs").await, 1);
}
