//! The producer of the quick start: enqueues typed `fetch` jobs.
//!
//! ```text
//! cargo run -p pgqueuer-client --example producer -- [COUNT]   # default 10
//! ```
//! It connects with PGQUEUER_DSN, DATABASE_URL, or the libpq variables (PGHOST, PGPORT, ...).

use pgqueuer::{NewJob, OnConflict, Queries};

#[path = "shared/fetch.rs"]
mod fetch;
use fetch::Fetch;

#[tokio::main]
async fn main() -> Result<(), pgqueuer::Error> {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);

    let q = Queries::new(pgqueuer::connect_from_env().await?);
    let jobs = (1..=count)
        .map(|n| {
            let url = format!("https://example.com/page/{n}");
            NewJob::typed(&Fetch { url })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<i64> = q
        .enqueue_many(&jobs, OnConflict::Raise)
        .await?
        .into_iter()
        .flatten()
        .collect();
    println!(
        "Enqueued {} fetch jobs: ids {:?}..{:?}",
        ids.len(),
        ids.first(),
        ids.last()
    );
    Ok(())
}
