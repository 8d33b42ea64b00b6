//! Feature `otlp` (src/telemetry.rs): spans and metrics reach an OTLP/HTTP collector. Built and
//! run by `cargo xtask test` with `--features otlp`; without the feature this file is empty.
#![cfg(feature = "otlp")]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing_subscriber::layer::SubscriberExt;

/// What the stand-in collector received: (path, content type) per request.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A collector stand-in on a free port: answers every request with 200 and remembers it.
async fn collector() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let received: Received = Arc::default();
    let seen = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 8192];
                // The head, then as much body as content-length says.
                let (head, body_len) = loop {
                    let read = stream.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&chunk[..read]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:"))
                            .and_then(|value| value.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (head, end + 4 + length);
                    }
                };
                while request.len() < body_len {
                    let read = stream.read(&mut chunk).await.unwrap_or(0);
                    if read == 0 {
                        break;
                    }
                    request.extend_from_slice(&chunk[..read]);
                }
                let path = head
                    .lines()
                    .next()
                    .and_then(|line| line.split(' ').nth(1))
                    .unwrap_or_default()
                    .to_string();
                let content_type = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-type:"))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                seen.lock().expect("the record").push((path, content_type));
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (base, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_are_posted_to_the_collector() {
    let (base, received) = collector().await;
    // The exporters' HTTP client blocks: build and shut them down off the async threads.
    let telemetry = tokio::task::spawn_blocking(move || {
        pgqueuer::telemetry::otlp(Some(&base), "pgqueuer-telemetry-test")
    })
    .await
    .expect("the setup task")
    .expect("OTLP exporters");
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!("request").in_scope(|| {});
    });
    opentelemetry::global::meter("pgqueuer-telemetry-test")
        .u64_counter("pgq.test.runs")
        .build()
        .add(1, &[]);
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .expect("the shutdown task")
        .expect("flushed");

    let received = received.lock().expect("the record").clone();
    for path in ["/v1/traces", "/v1/metrics"] {
        assert!(
            received
                .iter()
                .any(|(at, kind)| at == path && kind == "application/x-protobuf"),
            "no protobuf POST to {path} among {received:?}"
        );
    }
}
