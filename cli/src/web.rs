//! `pgq web`: the dashboard in a browser. One task reads the whole picture from the database
//! (the read model, `pgq.overview` of the last hour: one call) every `--every` seconds; the
//! page gets it as server-sent events and redraws without reloading. It needs only `pgq_monitor`. The page, its script and
//! its style are embedded in the binary.
//!
//! Who may read it: requests must name this server in their Host header (the listen address,
//! `localhost` on its port, or a `--host`), so a page elsewhere that rebinds its own name to
//! this address (DNS rebinding) is refused. Off loopback, a token is required (`--token`; the
//! browser opens `/?token=...` once and keeps it in a same-site cookie), and plain HTTP must be
//! acknowledged with `--insecure-http` (pgq web does not serve TLS itself yet).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use futures_util::StreamExt;
use futures_util::stream::{self, Stream};
use pgqueuer::Queries;
use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::failure::Failure;

#[derive(Debug, Args)]
pub struct WebArgs {
    /// The address to serve on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A token the browser must present; required unless --listen is a loopback address. Open
    /// http://ADDRESS/?token=TOKEN once; the browser keeps it in a cookie.
    #[arg(long, env = "PGQ_WEB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Serve plain HTTP on an address that is not loopback (behind a TLS proxy, say).
    #[arg(long)]
    insecure_http: bool,
    /// Another name browsers reach this server by (its Host header), besides the listen
    /// address and localhost; repeatable.
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// Seconds between reads of the database.
    #[arg(long, default_value_t = 1.0)]
    every: f64,
    /// Offer actions on the page: requeue and cancel jobs, pause and resume entrypoints (the
    /// login needs pgq_admin for them). Without it the server has no action at all.
    #[arg(long)]
    allow_actions: bool,
}

/// How far back the page's outcomes, chart and exceptions go.
const SPAN: Duration = Duration::from_secs(3600);
const PAGE: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/app.css");
const COOKIE: &str = "pgq_web_token";

struct App {
    /// The newest snapshot, as JSON text.
    snapshot: watch::Receiver<Arc<String>>,
    /// Host header values that name this server.
    hosts: Vec<String>,
    token: Option<String>,
    /// Cancelled on Ctrl-C or SIGTERM: event streams end, so the graceful shutdown does not
    /// wait for browsers that keep them open.
    stopping: CancellationToken,
    /// With --allow-actions: the connection actions run on, and the token a request must
    /// carry in `x-pgq-csrf` (the page has it; a page of another origin cannot read it).
    actions: Option<Actions>,
    /// The page, with the actions' settings filled in.
    page: String,
}

struct Actions {
    queries: Arc<Queries>,
    csrf: String,
}

pub async fn web(client: Client, args: WebArgs) -> Result<(), Failure> {
    let loopback = args.listen.ip().is_loopback();
    if !loopback && args.token.is_none() {
        return Err(Failure::new(format!(
            "pgq web on {} (not a loopback address) needs --token (or PGQ_WEB_TOKEN): anyone \
             who reaches the address could read the queue",
            args.listen
        )));
    }
    if !loopback && !args.insecure_http {
        return Err(Failure::new(format!(
            "pgq web on {} would serve plain HTTP off loopback: put a TLS proxy in front and \
             pass --insecure-http to acknowledge it (pgq web does not serve TLS itself yet)",
            args.listen
        )));
    }
    if !(0.1..=3600.0).contains(&args.every) {
        return Err(Failure::new(format!(
            "--every must be from 0.1 to 3600 seconds, not {}",
            args.every
        )));
    }
    let queries = Arc::new(Queries::new(client));
    // The first read fails here, with its message, rather than on the page.
    let first = queries.overview(SPAN).await?;
    let (publish, snapshot) = watch::channel(Arc::new(first));
    let every = Duration::from_secs_f64(args.every);
    let reader = Arc::clone(&queries);
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            let text = reader
                .overview(SPAN)
                .await
                .map_err(|error| Failure::from(error).message);
            let text =
                text.unwrap_or_else(|error| serde_json::json!({ "error": error }).to_string());
            if publish.send(Arc::new(text)).is_err() {
                return;
            }
        }
    });

    let (listener, address) = crate::http::bind(args.listen).await?;
    let mut hosts = vec![address.to_string(), format!("localhost:{}", address.port())];
    if address.ip().is_loopback() {
        hosts.push(format!("127.0.0.1:{}", address.port()));
        hosts.push(format!("[::1]:{}", address.port()));
    }
    hosts.extend(args.hosts.iter().cloned());
    let stopping = CancellationToken::new();
    let actions = args.allow_actions.then(|| Actions {
        queries,
        csrf: uuid::Uuid::new_v4().simple().to_string(),
    });
    let page = PAGE.replace(
        "<meta name=\"pgq-actions\" content=\"\">",
        &format!(
            "<meta name=\"pgq-actions\" content=\"{}\">",
            actions
                .as_ref()
                .map(|a| a.csrf.as_str())
                .unwrap_or_default()
        ),
    );
    let allow_actions = actions.is_some();
    let app = Arc::new(App {
        snapshot,
        hosts,
        token: args.token,
        stopping: stopping.clone(),
        actions,
        page,
    });
    let mut router = Router::new();
    if allow_actions {
        router = router.route("/api/action", post(action));
    }
    let router = router
        .route("/", get(show_page))
        .route(
            "/app.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route("/app.css", get(|| asset(STYLE, "text/css; charset=utf-8")))
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .with_state(app);
    eprintln!(
        "pgq: serving the dashboard on http://{address}/{} (Ctrl-C to stop)",
        if allow_actions {
            " with actions (requeue, cancel, pause, resume)"
        } else {
            ""
        }
    );
    crate::http::serve(listener, router, stopping).await
}

/// Equal in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The token a request presents: `Authorization: Bearer`, or the cookie.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    {
        return Some(bearer);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| cookie.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// The `token` parameter of a query string.
fn token_parameter(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// Every request: the Host must name this server; with a token, it must be presented (or given
/// once as `?token=` on the page, which then sets the cookie).
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !app
        .hosts
        .iter()
        .any(|known| known.eq_ignore_ascii_case(host))
    {
        return (
            StatusCode::FORBIDDEN,
            format!("pgq web: this server is not {host:?}; pass --host to allow that name\n"),
        )
            .into_response();
    }
    if let Some(token) = &app.token {
        if request.uri().path() == "/"
            && token_parameter(request.uri().query()).is_some_and(|given| same(given, token))
        {
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            return response;
        }
        if !presented(request.headers()).is_some_and(|given| same(given, token)) {
            return (
                StatusCode::UNAUTHORIZED,
                "pgq web: open /?token=TOKEN once, or send Authorization: Bearer TOKEN\n",
            )
                .into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn show_page(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        app.page.clone(),
    )
        .into_response()
}

/// An action from the page: `{"action": "requeue" | "cancel", "ids": [...]}` or
/// `{"action": "pause" | "resume", "entrypoint": "..."}`.
struct ActionRequest {
    action: String,
    ids: Vec<i64>,
    entrypoint: Option<String>,
}

impl ActionRequest {
    fn parse(body: &str) -> Result<ActionRequest, String> {
        let value: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        let action = value["action"]
            .as_str()
            .ok_or("the body must be a JSON object with an \"action\"")?
            .to_string();
        let ids = match &value["ids"] {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::Array(ids) => ids
                .iter()
                .map(|id| id.as_i64().ok_or("ids must be job ids (integers)"))
                .collect::<Result<_, _>>()?,
            _ => return Err("ids must be an array of job ids".into()),
        };
        let entrypoint = value["entrypoint"].as_str().map(str::to_string);
        Ok(ActionRequest {
            action,
            ids,
            entrypoint,
        })
    }
}

/// Runs an action, after the checks against cross-site requests: the Origin must be this
/// server (the Host was checked by the guard), and the CSRF token the page holds must come in
/// `x-pgq-csrf`. Each action is logged on stderr.
async fn action(State(app): State<Arc<App>>, headers: HeaderMap, body: String) -> Response {
    let Some(actions) = &app.actions else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let refuse = |why: &str| (StatusCode::FORBIDDEN, format!("pgq web: {why}\n")).into_response();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok());
    if origin != Some(format!("http://{host}").as_str()) {
        return refuse("an action must come from this server's own page (Origin)");
    }
    let csrf = headers
        .get("x-pgq-csrf")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !same(csrf, &actions.csrf) {
        return refuse("an action must carry the page's token (x-pgq-csrf)");
    }
    let request = match ActionRequest::parse(&body) {
        Ok(request) => request,
        Err(error) => {
            return (StatusCode::BAD_REQUEST, format!("pgq web: {error}\n")).into_response();
        }
    };
    let queries = &actions.queries;
    let done = match (request.action.as_str(), &request.entrypoint) {
        ("requeue", _) => queries.requeue(&request.ids).await,
        ("cancel", _) => queries.cancel(&request.ids).await,
        ("pause", Some(name)) => queries.pause(name).await.map(u64::from),
        ("resume", Some(name)) => queries.resume(name).await.map(u64::from),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "pgq web: the action must be requeue or cancel (with ids), or pause or \
                 resume (with an entrypoint)\n",
            )
                .into_response();
        }
    };
    let target = match &request.entrypoint {
        Some(name) if request.ids.is_empty() => format!("entrypoint {name:?}"),
        _ => format!("jobs {:?}", request.ids),
    };
    match done {
        Ok(done) => {
            eprintln!("pgq web: {} {target}: {done} changed", request.action);
            (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({ "action": request.action, "changed": done }).to_string(),
            )
                .into_response()
        }
        Err(error) => {
            let message = Failure::from(error).message;
            eprintln!("pgq web: {} {target} failed: {message}", request.action);
            (StatusCode::CONFLICT, format!("pgq web: {message}\n")).into_response()
        }
    }
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn state(State(app): State<Arc<App>>) -> Response {
    let snapshot = app.snapshot.borrow().clone();
    (
        [(header::CONTENT_TYPE, "application/json")],
        snapshot.as_str().to_string(),
    )
        .into_response()
}

/// The snapshots as server-sent events: the current one at once, then each new one.
async fn events(
    State(app): State<Arc<App>>,
) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let receiver = app.snapshot.clone();
    let stream = stream::unfold((receiver, true), |(mut receiver, first)| async move {
        if !first && receiver.changed().await.is_err() {
            return None;
        }
        let snapshot = receiver.borrow_and_update().clone();
        Some((
            Ok(Event::default().event("snapshot").data(snapshot.as_str())),
            (receiver, false),
        ))
    });
    Sse::new(stream.take_until(app.stopping.clone().cancelled_owned()))
        .keep_alive(KeepAlive::default())
}
