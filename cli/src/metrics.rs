//! `pgq metrics`: an HTTP endpoint serving Prometheus text exposition, computed from the
//! database's read model (`pgq.overview`) at every scrape; anything but `GET /metrics` is 404, no token (what Prometheus
//! scrapes carry none of).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use pgqueuer::Queries;
use serde_json::Value;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::failure::Failure;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The address to serve http://ADDRESS/metrics on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:9187")]
    listen: SocketAddr,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByStatus {
    entrypoint: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByEntrypoint {
    entrypoint: String,
}

pub async fn metrics(client: Client, args: MetricsArgs) -> Result<(), Failure> {
    let (listener, address) = crate::http::bind(args.listen).await?;
    let router = Router::new()
        .route("/metrics", get(scrape).fallback(not_found))
        .fallback(not_found)
        .with_state(Arc::new(Queries::new(client)));
    eprintln!("pgq: serving Prometheus metrics on http://{address}/metrics (Ctrl-C to stop)");
    crate::http::serve(listener, router, CancellationToken::new()).await
}

/// `GET /metrics`: a scrape, or 503 with why it failed.
async fn scrape(State(queries): State<Arc<Queries>>) -> Response {
    match render(&queries).await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(failure) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("{}\n", failure.message),
        )
            .into_response(),
    }
}

/// Anything but `GET /metrics`.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "only GET /metrics is served\n",
    )
        .into_response()
}

/// One scrape: the queue as it is now, from the read model (`pgq.overview` of the last hour,
/// one call, which never scans the log).
async fn render(queries: &Queries) -> Result<String, Failure> {
    let document = queries.overview(Duration::from_secs(3600)).await?;
    let document: Value = serde_json::from_str(&document)
        .map_err(|error| Failure::new(format!("unexpected output from the database: {error}")))?;
    let list = |key: &str| document[key].as_array().cloned().unwrap_or_default();
    let text = |row: &Value, key: &str| row[key].as_str().unwrap_or_default().to_string();

    let mut registry = Registry::default();
    let jobs = Family::<ByStatus, Gauge>::default();
    registry.register(
        "pgq_jobs",
        "Live jobs by entrypoint and status",
        jobs.clone(),
    );
    let finished = Family::<ByStatus, Gauge>::default();
    registry.register(
        "pgq_outcomes_last_hour",
        "Outcomes by entrypoint and status in the last hour (pgq.stats, and the newest log \
         rows it has not folded yet)",
        finished.clone(),
    );
    let paused = Family::<ByEntrypoint, Gauge>::default();
    registry.register(
        "pgq_paused",
        "1 for each paused entrypoint (pgq.pause)",
        paused.clone(),
    );
    let oldest = Family::<ByEntrypoint, Gauge<f64, AtomicU64>>::default();
    registry.register(
        "pgq_oldest_queued_seconds",
        "Age of the oldest queued job by entrypoint",
        oldest.clone(),
    );
    let workers = Gauge::<i64>::default();
    registry.register(
        "pgq_workers",
        "Workers holding picked jobs",
        workers.clone(),
    );

    for row in list("entrypoints") {
        let entrypoint = text(&row, "entrypoint");
        // Held jobs keep their SQL label, `failed`, in the status label.
        for (column, status) in [
            ("queued", "queued"),
            ("picked", "picked"),
            ("held", "failed"),
        ] {
            let count = row[column].as_i64().unwrap_or(0);
            if count > 0 {
                let labels = ByStatus {
                    entrypoint: entrypoint.clone(),
                    status: status.to_string(),
                };
                jobs.get_or_create(&labels).set(count);
            }
        }
        if let Some(age) = row["oldest_queued_seconds"].as_f64() {
            let labels = ByEntrypoint {
                entrypoint: entrypoint.clone(),
            };
            oldest.get_or_create(&labels).set(age);
        }
        if row["paused"].as_bool() == Some(true) {
            paused.get_or_create(&ByEntrypoint { entrypoint }).set(1);
        }
    }
    for row in list("outcomes") {
        let labels = ByStatus {
            entrypoint: text(&row, "entrypoint"),
            status: text(&row, "status"),
        };
        finished
            .get_or_create(&labels)
            .set(row["count"].as_i64().unwrap_or(0));
    }
    workers.set(i64::try_from(list("workers").len()).unwrap_or(i64::MAX));

    let mut body = String::new();
    encode(&mut body, &registry).map_err(|error| Failure::new(error.to_string()))?;
    Ok(body)
}
