//! Retries: a failing handler runs again after a growing delay, up to `max_attempts`; a handler
//! may also ask for a retry itself.
//!
//! ```text
//! cargo run -p pgqueuer-client --example retry
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pgqueuer::{EntrypointSettings, Mode, PgQueuer, Queries, RetryRequested, RunOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let q = Queries::new(pgqueuer::connect_from_env().await?);
    q.enqueue(["flaky", "polite"], [Vec::new(), Vec::new()], [0, 0])
        .await?;

    let runs = Arc::new(AtomicUsize::new(0));
    let mut pgq = PgQueuer::from_env()?;
    let settings = EntrypointSettings {
        max_attempts: Some(3),
        retry_delay: Some(Duration::ZERO),
        ..EntrypointSettings::default()
    };
    let flaky_runs = Arc::clone(&runs);
    pgq.entrypoint_with("flaky", settings, move |job| {
        flaky_runs.fetch_add(1, Ordering::SeqCst);
        async move {
            // Fails twice, then succeeds on its third attempt.
            if job.attempts < 2 {
                Err(format!("attempt {} failed", job.attempts).into())
            } else {
                Ok(())
            }
        }
    });
    pgq.entrypoint("polite", |job| async move {
        if job.attempts == 0 {
            // Not now: run again a little later, whatever max_attempts says.
            return Err(RetryRequested {
                delay: Duration::ZERO,
                reason: "busy".into(),
            }
            .into());
        }
        Ok(())
    });
    pgq.run(RunOptions {
        mode: Mode::Drain,
        ..RunOptions::default()
    })
    .await?;

    let log: Vec<(String, String)> = q
        .client()
        .query(
            "SELECT entrypoint, status::text FROM pgq.log ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    println!("{log:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(
        log.iter()
            .filter(|(_, status)| status == "successful")
            .count(),
        2
    );
    Ok(())
}
