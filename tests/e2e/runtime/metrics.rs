//! The runtime's own metrics (client/src/runtime/metrics.rs): served as Prometheus text when
//! `RunOptions::metrics_listen` is set, and recorded through the OpenTelemetry metrics API.

use std::time::Duration;

use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use pgqueuer::{Job, Mode, PgQueuer, Queries, RunOptions};
use pgqueuer_tests::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /metrics` from `address`: the body.
async fn scrape(address: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the metrics listener");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read the response");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    response
}

/// How many values the OpenTelemetry histogram `name` recorded with these attributes.
fn otel_count(metrics: &[ResourceMetrics], name: &str, attributes: &[(&str, &str)]) -> u64 {
    let mut count = 0;
    for metric in metrics
        .iter()
        .flat_map(ResourceMetrics::scope_metrics)
        .flat_map(|scope| scope.metrics())
        .filter(|metric| metric.name() == name)
    {
        if let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data() {
            for point in histogram.data_points() {
                let matches = attributes.iter().all(|(key, value)| {
                    point
                        .attributes()
                        .any(|kv| kv.key.as_str() == *key && kv.value.as_str() == *value)
                });
                if matches {
                    count += point.count();
                }
            }
        }
    }
    count
}

#[tokio::test]
async fn the_runtime_serves_and_exports_its_metrics_with_their_labels() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());

    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let ids = q
        .enqueue(["fine", "broken"], [Vec::new(), Vec::new()], [0, 0])
        .await
        .expect("enqueue");
    // A free port for the listener.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");

    let mut pgq = PgQueuer::new(pgqueuer::config(&db.dsn).expect("settings"));
    pgq.entrypoint("fine", |_job: Job| async move { Ok(()) });
    pgq.entrypoint("broken", |_job: Job| async move { Err("boom".into()) });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        pgq.run_until(
            RunOptions {
                mode: Mode::Continuous,
                metrics_listen: Some(address),
                ..RunOptions::default()
            },
            async move {
                let _ = stopped.await;
            },
        )
        .await
    });
    // Both jobs ended (so both handlers' runs were recorded, before their acks).
    let ended = q
        .wait_for(&ids, Duration::from_millis(50))
        .await
        .expect("wait for the jobs");
    assert_eq!(ended.len(), 2);

    let body = scrape(address).await;
    for line in [
        "pgq_handler_duration_seconds_count{entrypoint=\"fine\",outcome=\"successful\"} 1",
        "pgq_handler_duration_seconds_count{entrypoint=\"broken\",outcome=\"exception\"} 1",
        "pgq_queue_wait_seconds_count{entrypoint=\"fine\"} 1",
        "pgq_queue_wait_seconds_count{entrypoint=\"broken\"} 1",
        "pgq_jobs_in_flight 0",
    ] {
        assert!(
            body.lines().any(|have| have == line),
            "no {line:?} in\n{body}"
        );
    }
    assert!(
        body.contains("pgq_round_trip_seconds_count{kind=\"claim\"}")
            || body.contains("pgq_round_trip_seconds_count{kind=\"ack_and_claim\"}"),
        "{body}"
    );

    stop.send(()).expect("stop the runtime");
    running
        .await
        .expect("the runtime's task")
        .expect("the runtime");
    provider.force_flush().expect("flush");
    let metrics = exporter.get_finished_metrics().expect("metrics");
    assert_eq!(
        otel_count(
            &metrics,
            "pgq.handler.duration",
            &[("entrypoint", "broken"), ("outcome", "exception")]
        ),
        1,
        "{metrics:#?}"
    );
    assert_eq!(
        otel_count(&metrics, "pgq.queue.wait", &[("entrypoint", "fine")]),
        1
    );
    assert!(otel_count(&metrics, "pgq.round_trip.duration", &[]) > 0);
}
