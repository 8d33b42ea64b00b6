//! The `pgq` command line against a real server: output, exit codes, and what changed.

mod support;

use std::process::Command;

use pgqueuer_tests::{TestDb, count, scalar};
use serde_json::Value;
use support::{pgq, stderr, stdout};

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
    assert!(stdout(&present).contains("pgqueuer is not installed"));
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

    // A database left behind the server's files (or at a schema this pgq does not know).
    c.batch_execute("UPDATE pg_extension SET extversion = '0.0.1' WHERE extname = 'pgqueuer'")
        .await
        .expect("pretend the schema is 0.0.1");
    let behind = pgq(&db.dsn, &["verify"]);
    assert_eq!(behind.status.code(), Some(1), "{}", stdout(&behind));
    let current = env!("CARGO_PKG_VERSION");
    assert!(
        stdout(&behind).contains(&format!(
            "pgqueuer 0.0.1 is installed, but the server's files are {current}: run pgq upgrade"
        )) && stdout(&behind).contains(&format!(
            "works with schema {}, not 0.0.1",
            pgqueuer::SCHEMA_VERSIONS.join(", ")
        )),
        "{}",
        stdout(&behind)
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

/// `pgq ARGS --json`, parsed.
fn json(dsn: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let output = pgq(dsn, &all);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        stderr(&output)
    );
    serde_json::from_str(&stdout(&output)).unwrap_or_else(|error| panic!("{args:?}: {error}"))
}

#[tokio::test]
async fn inspection_commands_report_the_queue_in_tables_and_json() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('held', on_failure => 'hold');
         SELECT pgq.enqueue_many(ARRAY['mail', 'mail', 'held', 'slow']);
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['held'])), ARRAY['exception']::pgq.job_state[],
                        ARRAY['{\"message\": \"boom\"}']::jsonb[]);
         SELECT pgq.dequeue(ARRAY['slow'], 1, 'aaaaaaaa-0000-4000-8000-000000000001');
         UPDATE pgq.jobs SET heartbeat = now() - interval '5 minutes' WHERE status = 'picked';
         SELECT pgq.schedule('report', '@daily');",
    )
    .await
    .expect("a queue with queued, held, stale and scheduled work");

    let backlog = json(&db.dsn, &["backlog"]);
    let mail = backlog
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["entrypoint"] == "mail"));
    assert_eq!(mail.map(|row| &row["queued"]), Some(&Value::from(2)));
    assert_eq!(mail.map(|row| &row["ready"]), Some(&Value::from(2)));
    let held = backlog
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["entrypoint"] == "held"));
    assert_eq!(held.map(|row| &row["held"]), Some(&Value::from(1)));
    let failed = json(&db.dsn, &["failed"]);
    assert_eq!(failed[0]["entrypoint"], "held");
    assert_eq!(failed[0]["error"], "boom");
    assert_eq!(
        json(&db.dsn, &["held"]),
        failed,
        "pgq failed is pgq held by its SQL label"
    );
    let workers = json(&db.dsn, &["workers"]);
    assert_eq!(
        workers[0]["worker_id"],
        "aaaaaaaa-0000-4000-8000-000000000001"
    );
    assert_eq!(workers[0]["entrypoints"], serde_json::json!(["slow"]));
    assert_eq!(
        json(&db.dsn, &["stale", "--threshold", "60"])[0]["entrypoint"],
        "slow"
    );
    assert_eq!(
        json(&db.dsn, &["stale", "--threshold", "3600"]),
        Value::Array(vec![])
    );
    // pgq stats reads the rollup: maintenance rounds fold the log in (a range once every
    // transaction of the cluster that was running when it was noted has ended).
    let folded = async {
        loop {
            c.batch_execute("UPDATE pgq.settings SET next_round = NULL; SELECT pgq.tick();")
                .await
                .expect("a maintenance round");
            let folded: bool = c
                .query_one("SELECT EXISTS (SELECT FROM pgq.stats)", &[])
                .await
                .expect("stats")
                .get(0);
            if folded {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), folded)
        .await
        .expect("the rollup folds the log");
    let stats = json(&db.dsn, &["stats"]);
    assert_eq!(stats[0]["status"], "failed");
    assert_eq!(stats[0]["count"], 1);
    let schedules = json(&db.dsn, &["schedules"]);
    assert_eq!(schedules[0]["expression"], "@daily");

    let table = pgq(&db.dsn, &["backlog"]);
    let text = stdout(&table);
    assert!(
        text.lines()
            .next()
            .is_some_and(|header| header.starts_with("entrypoint")),
        "{text}"
    );

    let held: i64 = scalar(&c, "SELECT id FROM pgq.jobs WHERE status = 'failed'", &[]).await;
    let requeue = pgq(&db.dsn, &["requeue", &held.to_string(), "999999"]);
    assert_eq!(
        requeue.status.code(),
        Some(1),
        "one of the two ids is not held"
    );
    assert_eq!(
        count(&c, "pgq.jobs WHERE status = 'failed'").await,
        0,
        "the held one was requeued"
    );
    let cancel = pgq(&db.dsn, &["cancel", &held.to_string()]);
    assert_eq!(cancel.status.code(), Some(0), "{}", stderr(&cancel));

    assert_eq!(
        pgq(&db.dsn, &["schedules", "--remove", "nothing"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        pgq(&db.dsn, &["schedules", "--remove", "report"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(count(&c, "pgq.schedules").await, 0);
}

#[tokio::test]
async fn listen_prints_each_notification_until_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let db = TestDb::with_extension().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgq"))
        .args(["--dsn", &db.dsn, "listen"])
        .env_remove("PGQUEUER_DSN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgq listen starts");
    let stderr = child.stderr.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    // It says when it is listening: only then can a notification be expected.
    let ready = tokio::task::spawn_blocking(move || BufReader::new(stderr).lines().next())
        .await
        .expect("reading stderr");
    assert!(ready.is_some_and(|line| line.is_ok_and(|line| line.contains("listening"))));

    db.connect()
        .await
        .execute("SELECT pgq.enqueue('mail')", &[])
        .await
        .expect("enqueue");
    let line = tokio::task::spawn_blocking(move || BufReader::new(stdout).lines().next())
        .await
        .expect("reading stdout")
        .expect("a line")
        .expect("readable");
    let payload: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(
        payload,
        serde_json::json!({"type": "enqueued", "entrypoints": ["mail"]})
    );

    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(
        child.wait().expect("it exits").success(),
        "SIGTERM ends it with exit 0"
    );
}

#[tokio::test]
async fn dashboard_once_prints_one_table_per_entrypoint() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.enqueue_many(ARRAY['mail', 'mail', 'sms']);
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['sms'])), ARRAY['exception']::pgq.job_state[]);",
    )
    .await
    .expect("two queued mails and a failed sms");
    let rows = json(&db.dsn, &["dashboard", "--once"]);
    let by_name = |name: &str| {
        rows.as_array()
            .and_then(|rows| rows.iter().find(|row| row["entrypoint"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_name("mail")["queued"], Value::from(2));
    assert_eq!(by_name("sms")["recent_exceptions"], Value::from(1));

    let markdown = pgq(
        &db.dsn,
        &["dashboard", "--once", "--table-format", "markdown"],
    );
    assert_eq!(markdown.status.code(), Some(0));
    let text = stdout(&markdown);
    assert!(text.starts_with("| entrypoint"), "{text}");
    assert_eq!(
        text.lines().count(),
        4,
        "a header, a rule and two entrypoints:\n{text}"
    );

    let piped = pgq(&db.dsn, &["dashboard"]);
    assert_eq!(piped.status.code(), Some(2), "no terminal, no live view");
    assert!(stderr(&piped).contains("--once"), "{}", stderr(&piped));
}

/// A tmux server of its own (a private socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux {
            socket: format!("pgq-test-{}", std::process::id()),
        }
    }

    /// Runs `tmux -L SOCKET ARGS...`; panics if tmux is missing or fails.
    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs (cargo xtask setup installs it)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            stderr(&output)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    /// The visible screen of the only pane.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "dashboard"])
    }

    /// Waits for the screen to satisfy `ready`; panics with the last screen after 30 s.
    fn wait_for_screen(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the dashboard never showed {what}:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// `#{pane_dead} #{pane_dead_status}` of the pane: "0 " while the program runs.
    fn pane_state(&self) -> String {
        self.run(&[
            "display-message",
            "-p",
            "-t",
            "dashboard",
            "#{pane_dead} #{pane_dead_status}",
        ])
        .trim()
        .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[tokio::test]
async fn the_live_dashboard_runs_in_a_real_terminal_and_q_quits() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.enqueue_many(ARRAY['send_mail', 'send_mail', 'resize']);
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['resize'])),
                        ARRAY['exception']::pgq.job_state[],
                        ARRAY['{\"type\": \"error\", \"message\": \"disk full\"}']::jsonb[]);",
    )
    .await
    .expect("two queued mails and a failed resize");

    let tmux = Tmux::new();
    // The pane runs pgq under sh, which writes pgq's exit status to a file: tmux 3.3a sometimes
    // marks the pane dead without ever recording the status. remain-on-exit keeps the pane, so
    // that its last screen can be read.
    let status_file = std::env::temp_dir().join(format!("pgq-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_file(&status_file);
    let script = format!("\"$0\" \"$@\"; echo $? > '{}'", status_file.display());
    tmux.run(&[
        "start-server",
        ";",
        "set-option",
        "-g",
        "remain-on-exit",
        "on",
        ";",
        "new-session",
        "-d",
        "-s",
        "dashboard",
        "-x",
        "110",
        "-y",
        "32",
        "sh",
        "-c",
        &script,
        env!("CARGO_BIN_EXE_pgq"),
        "--dsn",
        &db.dsn,
        "dashboard",
        "--interval",
        "0.2",
    ]);

    let screen = tmux.wait_for_screen("the two entrypoints", |s| {
        s.contains("send_mail") && s.contains("resize")
    });
    assert!(screen.contains("queued 2"), "{screen}");
    assert!(
        screen.contains("disk full"),
        "the exception is listed:\n{screen}"
    );
    assert!(screen.contains("jobs finished per minute"), "{screen}");

    // The view refreshes on its own: a new entrypoint appears without a key press.
    c.execute("SELECT pgq.enqueue('thumbnail')", &[])
        .await
        .expect("enqueue");
    let screen = tmux.wait_for_screen("the new entrypoint", |s| s.contains("thumbnail"));
    assert!(screen.contains("queued 3"), "{screen}");
    assert_eq!(tmux.pane_state(), "0", "still running");

    tmux.run(&["send-keys", "-t", "dashboard", "q"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        match std::fs::read_to_string(&status_file) {
            Ok(status) if status.ends_with('\n') => break status,
            _ => {
                assert!(std::time::Instant::now() < deadline, "q did not quit");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    };
    let _ = std::fs::remove_file(&status_file);
    assert_eq!(status.trim(), "0", "exited with status 0");
    assert!(
        !tmux.screen().contains("jobs finished per minute"),
        "the terminal is restored (the alternate screen is gone)"
    );
}

/// A plain HTTP/1.1 GET; returns the status line and the body.
fn http_get(address: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the metrics endpoint accepts");
    // Sent in two writes, as a client may: the server must wait for the blank line.
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\n").as_bytes())
        .expect("send the request line");
    stream
        .write_all(format!("Host: {address}\r\nConnection: close\r\n\r\n").as_bytes())
        .expect("send the headers");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers and a body");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let db = TestDb::with_extension().await;
    db.connect()
        .await
        .batch_execute("SELECT pgq.enqueue_many(ARRAY['mail', 'mail']); SELECT pgq.enqueue('sms');")
        .await
        .expect("three queued jobs");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgq"))
        .args(["--dsn", &db.dsn, "metrics", "--listen", "127.0.0.1:0"])
        .env_remove("PGQUEUER_DSN")
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgq metrics starts");
    // Keep reading stderr while pgq runs: closing the pipe would make its next message fail.
    let stderr = child.stderr.take().expect("piped");
    let (first, rest) = std::sync::mpsc::channel();
    let later = std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let _ = first.send(lines.next());
        lines.map_while(Result::ok).collect::<Vec<_>>().join("\n")
    });
    let line = tokio::task::spawn_blocking(move || rest.recv())
        .await
        .expect("reading stderr")
        .expect("a line")
        .expect("a first line")
        .expect("readable");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();

    let (status, body) = tokio::task::spawn_blocking({
        let address = address.clone();
        move || http_get(&address, "/metrics")
    })
    .await
    .expect("scrape");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let sample = |name: &str| {
        body.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
    };
    assert_eq!(
        sample("pgq_jobs{entrypoint=\"mail\",status=\"queued\"}"),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        sample("pgq_jobs{entrypoint=\"sms\",status=\"queued\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(sample("pgq_workers"), Some(0.0), "{body}");
    assert!(
        body.contains("# TYPE pgq_oldest_queued_seconds gauge"),
        "{body}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");

    let (status, _) = tokio::task::spawn_blocking(move || http_get(&address, "/other"))
        .await
        .expect("request");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let exited = child.wait().expect("it exits");
    let rest = later.join().expect("stderr read to the end");
    assert!(exited.success(), "{exited}: {rest}");
}

/// Each command works for a login granted just the pgq role its docs name: a producer queues,
/// a monitor reads every report, an admin operates; a monitor cannot operate.
#[tokio::test]
async fn commands_run_with_the_least_role_they_need() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    for kind in ["producer", "monitor", "admin"] {
        c.batch_execute(&format!(
            "CREATE ROLE {kind}_{db} LOGIN; GRANT pgq_{kind} TO {kind}_{db};",
            db = db.name
        ))
        .await
        .expect("a login with one pgq role");
    }
    let as_role = |kind: &str| format!("{} user={kind}_{}", db.dsn, db.name);

    let queued = pgq(&as_role("producer"), &["queue", "mail", "hi"]);
    assert_eq!(queued.status.code(), Some(0), "{}", stderr(&queued));
    let id = stdout(&queued);
    c.batch_execute("SELECT pgq.schedule('report', '@daily')")
        .await
        .expect("a schedule");

    for report in [
        &["backlog"][..],
        &["failed"],
        &["workers"],
        &["stale"],
        &["stats"],
        &["schedules"],
        &["dashboard", "--once"],
        &["version"],
        &["retention"],
        &["durability"],
    ] {
        let output = pgq(&as_role("monitor"), report);
        assert_eq!(
            output.status.code(),
            Some(0),
            "pgq {report:?} as a monitor: {}",
            stderr(&output)
        );
    }
    let refused = pgq(&as_role("monitor"), &["cancel", &id]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("permission denied"),
        "{}",
        stderr(&refused)
    );

    let refused = pgq(&as_role("monitor"), &["pause", "mail"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    for operation in [
        &["cancel", id.as_str()][..],
        &["schedules", "--remove", "report"],
        &["pause", "mail"],
        &["resume", "mail"],
        &["retention", "--log", "3d", "--stats", "1 year"],
        &["durability", "durable"],
    ] {
        let output = pgq(&as_role("admin"), operation);
        assert_eq!(
            output.status.code(),
            Some(0),
            "pgq {operation:?} as an admin: {}",
            stderr(&output)
        );
    }
    assert_eq!(count(&c, "pgq.jobs").await, 0);
    assert_eq!(count(&c, "pgq.schedules").await, 0);
}

#[tokio::test]
async fn operating_commands_pause_set_retention_and_switch_durability() {
    let db = TestDb::installed().await;
    let run = |args: &[&str]| {
        let output = pgq(&db.dsn, args);
        (output.status.code(), stdout(&output), stderr(&output))
    };
    let (code, out, _) = run(&["retention"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "log retention: 7 days\nstats retention: 90 days")
    );
    let (_, out, _) = run(&["retention", "--log", "forever"]);
    assert!(out.starts_with("log retention: forever\n"), "{out}");
    let (_, out, _) = run(&["retention", "--log", "3d", "--stats", "1 year"]);
    assert_eq!(out, "log retention: 3 days\nstats retention: 1 year");
    let (code, _, err) = run(&["retention", "--log=-1 day"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("retention must be from 0 to 100 years"),
        "{err}"
    );

    assert_eq!(run(&["durability"]).1, "durable");
    assert_eq!(
        run(&["durability", "balanced"]).1,
        "durability: durable -> balanced"
    );
    assert_eq!(run(&["durability"]).1, "balanced");
    assert_eq!(run(&["durability", "fast"]).0, Some(2), "clap refuses it");

    assert!(run(&["pause", "mail"]).1.starts_with("paused mail"));
    assert_eq!(run(&["pause", "mail"]).1, "mail was already paused");
    assert_eq!(run(&["resume", "mail"]).1, "resumed mail");
    assert_eq!(run(&["resume", "mail"]).1, "mail was not paused");
}

#[tokio::test]
async fn commands_of_a_later_schema_say_which_version_they_need() {
    let db = TestDb::empty().await;
    let c = db.connect().await;
    c.batch_execute("CREATE EXTENSION pgqueuer VERSION '0.5.0'")
        .await
        .expect("install release 0.5.0");
    for args in [
        &["stats"][..],
        &["pause", "mail"],
        &["resume", "mail"],
        &["retention"],
        &["durability"],
    ] {
        let output = pgq(&db.dsn, args);
        assert_eq!(output.status.code(), Some(1), "pgq {args:?}");
        assert!(
            stderr(&output).ends_with("this needs pgqueuer schema 0.6.0 or later: run pgq upgrade"),
            "pgq {args:?}: {}",
            stderr(&output)
        );
    }
    let backlog = pgq(&db.dsn, &["backlog"]);
    assert_eq!(backlog.status.code(), Some(0), "{}", stderr(&backlog));

    // The dashboards and metrics read the read model of 0.7.0.
    c.batch_execute("ALTER EXTENSION pgqueuer UPDATE TO '0.6.0'")
        .await
        .expect("update to release 0.6.0");
    for args in [&["dashboard", "--once"][..], &["metrics"], &["web"]] {
        let output = pgq(&db.dsn, args);
        assert_eq!(output.status.code(), Some(1), "pgq {args:?}");
        assert!(
            stderr(&output).ends_with("this needs pgqueuer schema 0.7.0 or later: run pgq upgrade"),
            "pgq {args:?}: {}",
            stderr(&output)
        );
    }
}

/// `pgq verify` holds the catalog to what the installed version holds (built into pgq from
/// its SQL): a function dropped, one added, one taken out of the extension are each a line.
#[tokio::test]
async fn verify_finds_missing_extra_and_foreign_objects() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    let clean = pgq(&db.dsn, &["verify"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    c.batch_execute(
        "ALTER EXTENSION pgqueuer DROP FUNCTION pgq.lease(text[]);
         DROP FUNCTION pgq.lease(text[]);
         CREATE FUNCTION pgq.extra(a int, b int) RETURNS int LANGUAGE sql AS $$ SELECT a $$;
         ALTER EXTENSION pgqueuer DROP FUNCTION pgq.tick();",
    )
    .await
    .expect("a damaged schema");
    let damaged = pgq(&db.dsn, &["verify", "--json"]);
    assert_eq!(damaged.status.code(), Some(1), "{}", stdout(&damaged));
    let report: Value = serde_json::from_str(&stdout(&damaged)).expect("JSON");
    let mut differences: Vec<String> = report["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|line| line.as_str().unwrap_or_default().to_string())
        .collect();
    differences.sort();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        differences,
        [
            format!("extra function pgq.extra (2 arguments) (pgqueuer {version} has none)"),
            "function pgq.extra (2 arguments) is not a member of the extension".to_string(),
            "function pgq.tick (0 arguments) is not a member of the extension".to_string(),
            "missing function pgq.lease (1 argument)".to_string(),
        ]
    );
}
