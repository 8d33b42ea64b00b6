//! `pgq web` over HTTP: the page and its assets, the snapshot, live updates as server-sent
//! events, the Host check, the token, and what it refuses to start with. (Its rendering in a
//! real browser is issue 18's next step.)

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use pgqueuer_tests::TestDb;
use serde_json::Value;
use support::{pgq, stderr, stdout};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// `pgq web` on a free loopback port with `args`; its child and address.
async fn start(dsn: &str, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgq"))
        .args(["--dsn", dsn, "web", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("PGQUEUER_DSN")
        .env_remove("PGQ_WEB_TOKEN")
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgq web starts");
    let stderr = child.stderr.take().expect("piped");
    let line = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let first = lines.next();
        // Keep draining, so that pgq's later messages never meet a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        first
    })
    .await
    .expect("reading stderr")
    .expect("a first line")
    .expect("readable");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, address)
}

/// One GET; the status line, the head and the body.
async fn request(address: &str, path: &str, headers: &[(&str, &str)]) -> (String, String, String) {
    send(address, "GET", path, headers, "").await
}

/// One request; the status line, the head (lowercase) and the body.
async fn send(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (String, String, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("pgq web accepts");
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        text.push_str(&format!("Host: {address}\r\n"));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response)
        .await
        .expect("read");
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (
        head.lines().next().unwrap_or_default().to_string(),
        head.to_lowercase(),
        body.to_string(),
    )
}

fn stop(mut child: Child) {
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let exited = child.wait().expect("it exits");
    assert!(exited.success(), "{exited}");
}

#[tokio::test]
async fn the_dashboard_serves_its_page_and_live_snapshots() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    c.batch_execute("SELECT pgq.enqueue('mail'); SELECT pgq.pause('reports');")
        .await
        .expect("a queued job and a paused entrypoint");
    let (child, address) = start(&db.dsn, &["--every", "0.1"]).await;

    let (status, head, page) = request(&address, "/", &[]).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(page.contains("<title>pgq web</title>") && page.contains("/app.js"));
    for asset in ["/app.js", "/app.css"] {
        assert_eq!(request(&address, asset, &[]).await.0, "HTTP/1.1 200 OK");
    }

    let (status, _, body) = request(&address, "/api/state", &[]).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let state: Value = serde_json::from_str(&body).expect("JSON");
    let entrypoints = state["entrypoints"].as_array().expect("entrypoints");
    let row = |name: &str| {
        entrypoints
            .iter()
            .find(|row| row["entrypoint"] == name)
            .unwrap_or_else(|| panic!("no {name} in {state}"))
            .clone()
    };
    assert_eq!(row("mail")["queued"], 1);
    assert_eq!(row("reports")["paused"], true);

    // Live: a job enqueued now appears in a later event of the same stream.
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    stream
        .write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("subscribe");
    let mut lines = tokio::io::BufReader::new(stream).lines();
    let mut first_event = true;
    let mut data = String::new();
    loop {
        let line = lines
            .next_line()
            .await
            .expect("read the stream")
            .expect("the stream goes on");
        if let Some(part) = line.strip_prefix("data:") {
            data.push_str(part.trim_start());
            continue;
        }
        if !line.is_empty() || data.is_empty() {
            continue;
        }
        let event: Value = serde_json::from_str(&data).expect("an event holds JSON");
        data.clear();
        let names: Vec<&str> = event["entrypoints"]
            .as_array()
            .expect("entrypoints")
            .iter()
            .filter_map(|row| row["entrypoint"].as_str())
            .collect();
        if first_event {
            assert!(!names.contains(&"sms"), "{event}");
            c.execute("SELECT pgq.enqueue('sms')", &[])
                .await
                .expect("enqueue while the page watches");
            first_event = false;
        } else if names.contains(&"sms") {
            break;
        }
    }

    // A name that is not this server's (a rebound DNS name) is refused. (The event stream
    // stays open: SIGTERM below must end it.)
    let (status, _, _) = request(&address, "/api/state", &[("Host", "attacker.example:80")]).await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    stop(child);
}

#[tokio::test]
async fn a_token_guards_the_dashboard_and_is_needed_off_loopback() {
    let db = TestDb::with_extension().await;
    // A login with pgq_monitor alone is enough to serve the dashboard.
    db.connect()
        .await
        .batch_execute(&format!(
            "CREATE ROLE watcher_{db} LOGIN; GRANT pgq_monitor TO watcher_{db};",
            db = db.name
        ))
        .await
        .expect("a monitor login");
    let monitor = format!("{} user=watcher_{}", db.dsn, db.name);
    let (child, address) = start(&monitor, &["--token", "s3cret-token"]).await;
    assert_eq!(
        request(&address, "/api/state", &[]).await.0,
        "HTTP/1.1 401 Unauthorized"
    );
    assert_eq!(
        request(
            &address,
            "/api/state",
            &[("Authorization", "Bearer wrong-token")]
        )
        .await
        .0,
        "HTTP/1.1 401 Unauthorized"
    );
    assert_eq!(
        request(
            &address,
            "/api/state",
            &[("Authorization", "Bearer s3cret-token")]
        )
        .await
        .0,
        "HTTP/1.1 200 OK"
    );
    let (status, head, _) = request(&address, "/?token=s3cret-token", &[]).await;
    assert_eq!(status, "HTTP/1.1 303 See Other");
    assert!(
        head.contains("set-cookie: pgq_web_token=s3cret-token; httponly; samesite=strict"),
        "{head}"
    );
    assert_eq!(
        request(&address, "/", &[("Cookie", "pgq_web_token=s3cret-token")])
            .await
            .0,
        "HTTP/1.1 200 OK"
    );
    stop(child);

    for (args, says) in [
        (&["--listen", "0.0.0.0:0"][..], "needs --token"),
        (
            &["--listen", "0.0.0.0:0", "--token", "t"],
            "pass --insecure-http",
        ),
    ] {
        let output = pgq(&db.dsn, &[&["web"][..], args].concat());
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(stderr(&output).contains(says), "{}", stderr(&output));
        assert_eq!(stdout(&output), "", "nothing served, nothing printed");
    }
}

#[tokio::test]
async fn actions_exist_only_with_allow_actions_and_only_for_the_page_itself() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('invoices', max_attempts => 1, on_failure => 'hold'); \
         SELECT pgq.enqueue('invoices'); \
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['invoices'], 1)), \
                        ARRAY['exception']::pgq.job_state[]);",
    )
    .await
    .expect("a held job");
    let held: i64 =
        pgqueuer_tests::scalar(&c, "SELECT id FROM pgq.jobs WHERE status = 'failed'", &[]).await;
    let status = || async {
        pgqueuer_tests::scalar::<String>(
            &db.connect().await,
            "SELECT status::text FROM pgq.jobs WHERE entrypoint = 'invoices'",
            &[],
        )
        .await
    };
    let body = format!("{{\"action\": \"requeue\", \"ids\": [{held}]}}");

    // Without --allow-actions: no token on the page, no action on the server.
    let (child, address) = start(&db.dsn, &[]).await;
    let page = request(&address, "/", &[]).await.2;
    assert!(
        page.contains("<meta name=\"pgq-actions\" content=\"\">"),
        "{page}"
    );
    let origin = format!("http://{address}");
    let (refused, _, _) = send(
        &address,
        "POST",
        "/api/action",
        &[("Origin", &origin), ("Content-Type", "application/json")],
        &body,
    )
    .await;
    assert_eq!(refused, "HTTP/1.1 404 Not Found");
    stop(child);
    assert_eq!(status().await, "failed");

    // With it: only a request from this server's page, carrying the page's token.
    let (child, address) = start(&db.dsn, &["--allow-actions"]).await;
    let page = request(&address, "/", &[]).await.2;
    let csrf = page
        .split("<meta name=\"pgq-actions\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(csrf.len(), 32, "{page}");
    let origin = format!("http://{address}");
    for (why, headers) in [
        ("no Origin", vec![("x-pgq-csrf", csrf.as_str())]),
        (
            "another site",
            vec![("Origin", "http://attacker.example"), ("x-pgq-csrf", &csrf)],
        ),
        ("no token", vec![("Origin", origin.as_str())]),
        (
            "a wrong token",
            vec![
                ("Origin", &origin),
                ("x-pgq-csrf", "0123456789abcdef0123456789abcdef"),
            ],
        ),
    ] {
        let (refused, _, _) = send(&address, "POST", "/api/action", &headers, &body).await;
        assert_eq!(refused, "HTTP/1.1 403 Forbidden", "{why}");
        assert_eq!(status().await, "failed", "{why}: nothing changed");
    }
    let (done, _, answer) = send(
        &address,
        "POST",
        "/api/action",
        &[("Origin", &origin), ("x-pgq-csrf", &csrf)],
        &body,
    )
    .await;
    assert_eq!(done, "HTTP/1.1 200 OK", "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).expect("JSON")["changed"],
        1
    );
    assert_eq!(status().await, "queued", "requeued from the page");

    let (done, _, _) = send(
        &address,
        "POST",
        "/api/action",
        &[("Origin", &origin), ("x-pgq-csrf", &csrf)],
        "{\"action\": \"pause\", \"entrypoint\": \"invoices\"}",
    )
    .await;
    assert_eq!(done, "HTTP/1.1 200 OK");
    let paused: bool = pgqueuer_tests::scalar(
        &c,
        "SELECT paused FROM pgq.entrypoints WHERE name = 'invoices'",
        &[],
    )
    .await;
    assert!(paused);
    let (bad, _, _) = send(
        &address,
        "POST",
        "/api/action",
        &[("Origin", &origin), ("x-pgq-csrf", &csrf)],
        "{\"action\": \"drop\"}",
    )
    .await;
    assert_eq!(bad, "HTTP/1.1 400 Bad Request");
    stop(child);
}
