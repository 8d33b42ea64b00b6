//! What the runtime measures of itself: how long handlers run (by entrypoint and outcome), how
//! long jobs waited in the queue (claimed minus enqueued, by entrypoint), how long each round
//! trip of claims and acks took, and how many handlers run now.
//!
//! Each is recorded twice, both cheap: in a Prometheus registry that the runtime serves itself
//! when [`RunOptions::metrics_listen`](super::RunOptions::metrics_listen) is set, and through the
//! OpenTelemetry metrics API (meter `pgqueuer`), which does nothing until the application
//! installs a meter provider with an exporter. `pgq metrics` serves the database's side (backlog,
//! outcomes, workers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, http};
use hyper_util::rt::TokioIo;
use opentelemetry::KeyValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::{Error, Job};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByOutcome {
    entrypoint: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByEntrypoint {
    entrypoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByKind {
    kind: &'static str,
}

fn seconds_buckets() -> Histogram {
    // 1 ms to about 9 hours, doubling.
    Histogram::new(exponential_buckets(0.001, 2.0, 25))
}

/// The runtime's instruments.
pub(crate) struct Metrics {
    registry: Registry,
    handler: Family<ByOutcome, Histogram>,
    queue_wait: Family<ByEntrypoint, Histogram>,
    round_trip: Family<ByKind, Histogram>,
    in_flight: Gauge,
    otel: Otel,
}

struct Otel {
    handler: opentelemetry::metrics::Histogram<f64>,
    queue_wait: opentelemetry::metrics::Histogram<f64>,
    round_trip: opentelemetry::metrics::Histogram<f64>,
    in_flight: opentelemetry::metrics::UpDownCounter<i64>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let handler = Family::<ByOutcome, Histogram>::new_with_constructor(seconds_buckets);
        registry.register(
            "pgq_handler_duration_seconds",
            "How long handlers ran, by entrypoint and outcome (successful, exception, retry, \
             unrecoverable, panic)",
            handler.clone(),
        );
        let queue_wait = Family::<ByEntrypoint, Histogram>::new_with_constructor(seconds_buckets);
        registry.register(
            "pgq_queue_wait_seconds",
            "How long claimed jobs waited in the queue: claimed minus enqueued",
            queue_wait.clone(),
        );
        let round_trip = Family::<ByKind, Histogram>::new_with_constructor(seconds_buckets);
        registry.register(
            "pgq_round_trip_seconds",
            "How long each write of outcomes and claim took (kind: claim, ack, ack_and_claim)",
            round_trip.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "pgq_jobs_in_flight",
            "Handlers running now",
            in_flight.clone(),
        );
        let meter = opentelemetry::global::meter("pgqueuer");
        let otel = Otel {
            handler: meter
                .f64_histogram("pgq.handler.duration")
                .with_unit("s")
                .with_description("How long handlers ran, by entrypoint and outcome")
                .build(),
            queue_wait: meter
                .f64_histogram("pgq.queue.wait")
                .with_unit("s")
                .with_description("How long claimed jobs waited in the queue")
                .build(),
            round_trip: meter
                .f64_histogram("pgq.round_trip.duration")
                .with_unit("s")
                .with_description("How long each write of outcomes and claim took")
                .build(),
            in_flight: meter
                .i64_up_down_counter("pgq.jobs.in_flight")
                .with_description("Handlers running now")
                .build(),
        };
        Metrics {
            registry,
            handler,
            queue_wait,
            round_trip,
            in_flight,
            otel,
        }
    }

    /// A handler starts; the returned guard says it ended, however it ends.
    pub(crate) fn running(self: &Arc<Metrics>) -> Running {
        self.in_flight.inc();
        self.otel.in_flight.add(1, &[]);
        Running(Arc::clone(self))
    }

    /// A handler of `entrypoint` ran for `took` and ended with `outcome`.
    pub(crate) fn handler_ran(&self, entrypoint: &str, outcome: &'static str, took: Duration) {
        let took = took.as_secs_f64();
        self.handler
            .get_or_create(&ByOutcome {
                entrypoint: entrypoint.to_string(),
                outcome,
            })
            .observe(took);
        self.otel.handler.record(
            took,
            &[
                KeyValue::new("entrypoint", entrypoint.to_string()),
                KeyValue::new("outcome", outcome),
            ],
        );
    }

    /// A round trip that wrote `acks` outcomes and asked for `asked` jobs took `took`; it
    /// returned `jobs`.
    pub(crate) fn round_trip(&self, acks: usize, asked: usize, took: Duration, jobs: &[Job]) {
        let kind = match (acks > 0, asked > 0) {
            (true, true) => "ack_and_claim",
            (true, false) => "ack",
            _ => "claim",
        };
        self.round_trip
            .get_or_create(&ByKind { kind })
            .observe(took.as_secs_f64());
        self.otel
            .round_trip
            .record(took.as_secs_f64(), &[KeyValue::new("kind", kind)]);
        for job in jobs {
            let Some(picked) = job.picked_at else {
                continue;
            };
            let waited = picked
                .duration_since(job.created)
                .unwrap_or_default()
                .as_secs_f64();
            self.queue_wait
                .get_or_create(&ByEntrypoint {
                    entrypoint: job.entrypoint.clone(),
                })
                .observe(waited);
            self.otel.queue_wait.record(
                waited,
                &[KeyValue::new("entrypoint", job.entrypoint.clone())],
            );
        }
    }

    /// The registry in Prometheus text format.
    pub(crate) fn text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// Serves `GET /metrics` on `address` until the returned task is aborted (HTTP/1.1 by
    /// hyper, one request a connection; anything else is 404).
    pub(crate) async fn serve(
        self: &Arc<Metrics>,
        address: SocketAddr,
    ) -> Result<tokio::task::JoinHandle<()>, Error> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|error| Error::Setup(format!("cannot serve metrics on {address}: {error}")))?;
        if let Ok(bound) = listener.local_addr() {
            tracing::info!(%bound, "serving the runtime's metrics on http://{bound}/metrics");
        }
        let metrics = Arc::clone(self);
        Ok(tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors, say: try again a little later.
                        tracing::warn!(%error, "the metrics listener cannot accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let metrics = Arc::clone(&metrics);
                let service = service_fn(move |request: Request<Incoming>| {
                    let metrics = Arc::clone(&metrics);
                    async move { metrics.respond(&request) }
                });
                tokio::spawn(async move {
                    let connection = http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "a metrics request failed");
                    }
                });
            }
        }))
    }

    /// The answer to one request: the registry for `GET /metrics`, else 404.
    fn respond<B>(&self, request: &Request<B>) -> Result<Response<Full<Bytes>>, http::Error> {
        if request.method() == Method::GET && request.uri().path() == "/metrics" {
            Response::builder()
                .header(
                    CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .body(Full::new(Bytes::from(self.text())))
        } else {
            Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Full::new(Bytes::new()))
        }
    }
}

/// A running handler; dropping it counts it out of `pgq_jobs_in_flight`.
pub(crate) struct Running(Arc<Metrics>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.in_flight.dec();
        self.0.otel.in_flight.add(-1, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        let metrics = Metrics::new();
        metrics.handler_ran("mail", "successful", Duration::from_millis(5));
        let get = |method: Method, uri: &str| {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .expect("a request");
            metrics.respond(&request).expect("a response")
        };
        let served = get(Method::GET, "/metrics");
        assert_eq!(served.status(), StatusCode::OK);
        assert!(
            served.headers()[CONTENT_TYPE]
                .to_str()
                .is_ok_and(|t| t.starts_with("application/openmetrics-text")),
            "{:?}",
            served.headers()
        );
        assert_eq!(get(Method::GET, "/").status(), StatusCode::NOT_FOUND);
        assert_eq!(
            get(Method::POST, "/metrics").status(),
            StatusCode::NOT_FOUND
        );
        assert!(metrics.text().contains("pgq_handler_duration_seconds"));
    }
}
