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

/// The actions' CSRF token a page carries (empty without --allow-actions).
fn csrf_of(page: &str) -> String {
    page.split("<meta name=\"pgq-actions\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
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
    assert!(page.contains("<meta name=\"pgq-actions\""), "{page}");
    assert_eq!(csrf_of(&page), "", "no token without --allow-actions");
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
    let csrf = csrf_of(&page);
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

    // Acting needs pgq_admin: a monitor's page offers the buttons, the database refuses.
    c.batch_execute(&format!(
        "CREATE ROLE viewer_{db} LOGIN; GRANT pgq_monitor TO viewer_{db};",
        db = db.name
    ))
    .await
    .expect("a monitor login");
    let monitor = format!("{} user=viewer_{}", db.dsn, db.name);
    let (child, address) = start(&monitor, &["--allow-actions"]).await;
    let page = request(&address, "/", &[]).await.2;
    let csrf = csrf_of(&page);
    let origin = format!("http://{address}");
    let (refused, _, why) = send(
        &address,
        "POST",
        "/api/action",
        &[("Origin", &origin), ("x-pgq-csrf", &csrf)],
        "{\"action\": \"resume\", \"entrypoint\": \"invoices\"}",
    )
    .await;
    assert_eq!(refused, "HTTP/1.1 409 Conflict", "{why}");
    assert!(why.contains("permission denied"), "{why}");
    stop(child);
}

/// A WebDriver session of headless Chromium (Debian's `chromium` and `chromium-driver`), over
/// chromedriver's HTTP API: what the browser test needs of it, nothing more.
struct Browser {
    driver: Child,
    address: String,
    session: String,
}

impl Browser {
    async fn start() -> Browser {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian package chromium-driver; cargo xtask setup)");
        let stdout = driver.stdout.take().expect("piped");
        let port = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let port = lines.by_ref().map_while(Result::ok).find_map(|line| {
                line.strip_prefix("ChromeDriver was started successfully on port ")
                    .map(|rest| rest.trim_end_matches('.').to_string())
            });
            std::thread::spawn(move || lines.for_each(drop));
            port
        })
        .await
        .expect("reading chromedriver")
        .expect("chromedriver says its port");
        let address = format!("127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            address,
            session: String::new(),
        };
        let created = browser
            .call(
                "POST",
                "/session",
                serde_json::json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--window-size=1280,1050", "--hide-scrollbars"]
                    }
                }}}),
            )
            .await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session in {created}"))
            .to_string();
        // Elements are waited for by the browser, up to 20 s; scripts likewise.
        browser
            .session_call(
                "POST",
                "/timeouts",
                serde_json::json!({"implicit": 20000, "script": 20000}),
            )
            .await;
        browser
    }

    /// One WebDriver command; its `value`. (chromedriver keeps connections open, so the body
    /// is read by its Content-Length rather than to the end.)
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        use tokio::io::AsyncReadExt;
        let body = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let mut stream = tokio::net::TcpStream::connect(&self.address)
            .await
            .expect("chromedriver accepts");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.address,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut received = Vec::new();
        let mut chunk = vec![0u8; 65536];
        let (head_end, length) = loop {
            let read = stream.read(&mut chunk).await.expect("read");
            assert!(
                read > 0,
                "{method} {path}: chromedriver closed the connection"
            );
            received.extend_from_slice(&chunk[..read]);
            if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .expect("a Content-Length");
                break (end + 4, length);
            }
        };
        while received.len() < head_end + length {
            let read = stream.read(&mut chunk).await.expect("read");
            assert!(read > 0, "{method} {path}: the body was cut short");
            received.extend_from_slice(&chunk[..read]);
        }
        let status = String::from_utf8_lossy(&received[..head_end])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let value: Value = serde_json::from_slice(&received[head_end..head_end + length])
            .unwrap_or_else(|error| panic!("{method} {path}: {status}: {error}"));
        assert!(
            status == "HTTP/1.1 200 OK",
            "{method} {path}: {status}: {value}"
        );
        value["value"].clone()
    }

    async fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn open(&self, url: &str) {
        self.session_call("POST", "/url", serde_json::json!({ "url": url }))
            .await;
    }

    /// The first element matching a CSS selector, once it exists.
    async fn find(&self, selector: &str) -> String {
        let found = self
            .session_call(
                "POST",
                "/element",
                serde_json::json!({"using": "css selector", "value": selector}),
            )
            .await;
        found
            .as_object()
            .and_then(|object| object.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {selector}: {found}"))
            .to_string()
    }

    async fn run(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            serde_json::json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Resolves when the page's `condition` (a JS expression over `args`) is true: checked at
    /// once and at every change of the document.
    async fn until(&self, condition: &str, args: Value) {
        let script = format!(
            "const args = arguments[0]; const done = arguments[arguments.length - 1];
             const check = () => {{ try {{ return {condition}; }} catch (e) {{ return false; }} }};
             if (check()) {{ done(true); return; }}
             const watch = new MutationObserver(() => {{
               if (check()) {{ watch.disconnect(); done(true); }}
             }});
             watch.observe(document, {{subtree: true, childList: true, characterData: true,
                                       attributes: true}});"
        );
        let met = self
            .session_call(
                "POST",
                "/execute/async",
                serde_json::json!({ "script": script, "args": [args] }),
            )
            .await;
        assert_eq!(met, Value::Bool(true), "{condition}");
    }

    async fn screenshot(&self, file: &std::path::Path) {
        use base64::Engine;
        let png = self.session_call("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 text"))
            .expect("a PNG");
        std::fs::write(file, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn in_a_real_browser_the_page_goes_live_and_its_actions_work_only_from_itself() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    c.batch_execute(
        "SELECT pgq.configure('invoices', max_attempts => 1, on_failure => 'hold'); \
         SELECT pgq.enqueue('invoices'); \
         SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['invoices'], 1)), \
                        ARRAY['exception']::pgq.job_state[], \
                        ARRAY['{\"message\": \"SMTP 550\"}']::jsonb[]); \
         SELECT pgq.enqueue('mail');",
    )
    .await
    .expect("a held job and a queued one");
    let held: i64 =
        pgqueuer_tests::scalar(&c, "SELECT id FROM pgq.jobs WHERE status = 'failed'", &[]).await;
    let (with_actions, address) = start(&db.dsn, &["--allow-actions", "--every", "0.2"]).await;
    let (without_actions, other) = start(&db.dsn, &["--every", "0.2"]).await;
    let browser = Browser::start().await;

    // The page loads and shows the entrypoint the test enqueued.
    browser.open(&format!("http://{address}/")).await;
    browser.find("tr[data-entrypoint=\"mail\"]").await;
    browser
        .until(
            "document.querySelector('tr[data-entrypoint=\"mail\"] td.queued').textContent === '1'",
            Value::Null,
        )
        .await;
    // A count changes without a reload: the same document, marked before.
    browser.run("window.pgqMarker = 'same page';").await;
    c.execute("SELECT pgq.enqueue('mail')", &[])
        .await
        .expect("another job");
    browser
        .until(
            "document.querySelector('tr[data-entrypoint=\"mail\"] td.queued').textContent === '2' \
             && window.pgqMarker === 'same page'",
            Value::Null,
        )
        .await;
    let artifact = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pgq-web.png");
    browser.screenshot(&artifact).await;

    // A page of another origin (the second server) posts to the first, the way a CSRF attack
    // would: a "simple" request the browser sends without asking. It is refused.
    browser.open(&format!("http://{other}/")).await;
    browser.find("tr[data-entrypoint=\"mail\"]").await;
    assert_eq!(
        browser
            .run("return document.querySelectorAll('button').length;")
            .await,
        0,
        "no action without --allow-actions"
    );
    browser
        .session_call(
            "POST",
            "/execute/async",
            serde_json::json!({
                "script": "const done = arguments[arguments.length - 1];
                    fetch(arguments[0], {method: 'POST', mode: 'no-cors',
                        headers: {'content-type': 'text/plain'}, body: arguments[1]})
                    .then(() => done('sent'), (e) => done(String(e)));",
                "args": [format!("http://{address}/api/action"),
                         format!("{{\"action\": \"requeue\", \"ids\": [{held}]}}")]
            }),
        )
        .await;
    let status: String = pgqueuer_tests::scalar(
        &c,
        "SELECT status::text FROM pgq.jobs WHERE id = $1",
        &[&held],
    )
    .await;
    assert_eq!(status, "failed", "a cross-origin POST changed nothing");

    // On its own page, requeue is a click; the held row goes, and the job is queued.
    browser.open(&format!("http://{address}/")).await;
    let requeue = browser
        .find(&format!(
            "tr[data-job=\"{held}\"] button[data-action=\"requeue\"]"
        ))
        .await;
    browser
        .session_call(
            "POST",
            &format!("/element/{requeue}/click"),
            serde_json::json!({}),
        )
        .await;
    browser
        .until(
            "!document.querySelector('tr[data-job=\"' + args + '\"]')",
            Value::from(held),
        )
        .await;
    let status: String = pgqueuer_tests::scalar(
        &c,
        "SELECT status::text FROM pgq.jobs WHERE id = $1",
        &[&held],
    )
    .await;
    assert_eq!(status, "queued", "requeued by a click");

    drop(browser);
    stop(with_actions);
    stop(without_actions);
    assert!(artifact.exists(), "the screenshot {}", artifact.display());
}
