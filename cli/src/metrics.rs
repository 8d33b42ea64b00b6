//! `pgq metrics`: an HTTP endpoint serving Prometheus text exposition, computed from the
//! database at every scrape; anything but `GET /metrics` is 404, no token (what Prometheus
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
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::failure::Failure;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The address to serve http://ADDRESS/metrics on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:9187")]
    listen: SocketAddr,
}

/// What a scrape reads, one statement each: the live jobs (view pgq.backlog), the outcomes of
/// the last hour (the rollup pgq.stats), the workers (view pgq.workers) and the paused
/// entrypoints. Never the log, which grows with every job: a test checks each plan.
const BACKLOG: &str =
    "SELECT entrypoint, queued, picked, held, oldest_queued_seconds FROM pgq.backlog";
const OUTCOMES: &str = "SELECT entrypoint, status::text, sum(count)::bigint FROM pgq.stats \
     WHERE minute > now() - interval '1 hour' GROUP BY 1, 2";
const WORKERS: &str = "SELECT count(*) FROM pgq.workers";
const PAUSED: &str = "SELECT name FROM pgq.entrypoints WHERE paused";

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
        .with_state(Arc::new(client));
    eprintln!("pgq: serving Prometheus metrics on http://{address}/metrics (Ctrl-C to stop)");
    crate::http::serve(listener, router, CancellationToken::new()).await
}

/// `GET /metrics`: a scrape, or 503 with why it failed.
async fn scrape(State(client): State<Arc<Client>>) -> Response {
    match render(&client).await {
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

/// One scrape: the queue as it is now.
async fn render(client: &Client) -> Result<String, Failure> {
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
        "Outcomes by entrypoint and status in the last hour (pgq.stats; the latest minute or \
         so is not folded in yet)",
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

    for row in client.query(BACKLOG, &[]).await? {
        let entrypoint: String = row.try_get(0)?;
        for (column, status) in [(1, "queued"), (2, "picked"), (3, "failed")] {
            let count: i64 = row.try_get(column)?;
            if count > 0 {
                let labels = ByStatus {
                    entrypoint: entrypoint.clone(),
                    status: status.to_string(),
                };
                jobs.get_or_create(&labels).set(count);
            }
        }
        if let Some(age) = row.try_get::<_, Option<f64>>(4)? {
            let labels = ByEntrypoint { entrypoint };
            oldest.get_or_create(&labels).set(age);
        }
    }
    for row in client.query(OUTCOMES, &[]).await? {
        let labels = ByStatus {
            entrypoint: row.try_get(0)?,
            status: row.try_get(1)?,
        };
        finished
            .get_or_create(&labels)
            .set(row.try_get::<_, i64>(2)?);
    }
    let count: i64 = client.query_one(WORKERS, &[]).await?.try_get(0)?;
    workers.set(count);
    for row in client.query(PAUSED, &[]).await? {
        let labels = ByEntrypoint {
            entrypoint: row.try_get(0)?,
        };
        paused.get_or_create(&labels).set(1);
    }

    let mut body = String::new();
    encode(&mut body, &registry).map_err(|error| Failure::new(error.to_string()))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::{BACKLOG, OUTCOMES, PAUSED, WORKERS};
    use pgqueuer_tests::TestDb;

    const SCRAPE: [&str; 4] = [BACKLOG, OUTCOMES, WORKERS, PAUSED];

    /// However large the log grows, a scrape does not read it: no plan of a scrape's
    /// statements touches pgq.log (views expanded), even with sequential scans off.
    #[tokio::test]
    async fn no_statement_of_a_scrape_reads_the_log() {
        let db = TestDb::installed().await;
        let client = db.connect().await;
        for enable_seqscan in ["on", "off"] {
            client
                .batch_execute(&format!("SET enable_seqscan = {enable_seqscan}"))
                .await
                .expect("SET");
            for sql in SCRAPE {
                let plan: Vec<String> = client
                    .query(&format!("EXPLAIN {sql}"), &[])
                    .await
                    .unwrap_or_else(|error| panic!("EXPLAIN {sql}: {error}"))
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                let plan = plan.join("\n");
                assert!(!plan.contains(" on log"), "{sql} reads the log:\n{plan}");
                assert!(
                    plan.contains(" on "),
                    "a plan that scans something:\n{plan}"
                );
            }
        }
    }
}
