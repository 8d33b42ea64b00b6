//! Limits: at most N jobs of an entrypoint run at once across every worker, and at most R start
//! per second.
//!
//! ```text
//! cargo run -p pgqueuer-client --example limits
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgqueuer::{EntrypointSettings, Mode, PgQueuer, Queries, RunOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let q = Queries::new(pgqueuer::connect_from_env().await?);
    q.enqueue(vec!["scrape"; 20], vec![Vec::new(); 20], vec![0; 20])
        .await?;

    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut pgq = PgQueuer::from_env()?;
    let limits = EntrypointSettings {
        concurrency_limit: Some(2), // fleet-wide, however many workers run
        ..EntrypointSettings::default()
    };
    let (r, m) = (Arc::clone(&running), Arc::clone(&most));
    pgq.entrypoint_with("scrape", limits, move |_job| {
        let (running, most) = (Arc::clone(&r), Arc::clone(&m));
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    });
    pgq.run(RunOptions {
        mode: Mode::Drain,
        ..RunOptions::default()
    })
    .await?;
    println!("at most {} at once", most.load(Ordering::SeqCst));
    assert!(most.load(Ordering::SeqCst) <= 2);
    Ok(())
}
