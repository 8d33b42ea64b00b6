//! The producer of the quick start: enqueues `fetch` jobs.
//!
//! ```text
//! cargo run -p pgqueuer-client --example producer -- [COUNT]   # default 10
//! ```
//! It connects with PGQUEUER_DSN, DATABASE_URL, or the libpq variables (PGHOST, PGPORT, ...).

use pgqueuer::Queries;

#[tokio::main]
async fn main() -> Result<(), pgqueuer::Error> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);

    let q = Queries::new(pgqueuer::connect_from_env().await?);
    let payloads = (1..=count).map(|n| format!("hello world {n}").into_bytes());
    let ids = q
        .enqueue(vec!["fetch"; count], payloads, vec![0; count])
        .await?;
    println!(
        "Enqueued {} fetch jobs: ids {:?}..{:?}",
        ids.len(),
        ids.first(),
        ids.last()
    );
    Ok(())
}
