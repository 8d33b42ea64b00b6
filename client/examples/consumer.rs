//! The consumer of the quick start: runs the typed `fetch` jobs and an every-minute schedule.
//!
//! ```text
//! cargo run -p pgqueuer-client --example consumer            # until stopped
//! cargo run -p pgqueuer-client --example consumer -- --drain # until no job is left
//! ```
//! It connects with PGQUEUER_DSN, DATABASE_URL, or the libpq variables (PGHOST, PGPORT, ...).

use pgqueuer::{Job, Mode, PgQueuer, RunOptions, ScheduledRun};

#[path = "shared/fetch.rs"]
mod fetch;
use fetch::Fetch;

#[tokio::main]
async fn main() -> Result<(), pgqueuer::Error> {
    let drain = std::env::args().any(|arg| arg == "--drain");

    let mut pgq = PgQueuer::from_env()?;
    pgq.job(|fetch: Fetch, job: Job| async move {
        println!(
            "Processed: job {} of {}: {}",
            job.id, job.entrypoint, fetch.url
        );
        Ok(())
    });
    pgq.schedule(
        "every_minute",
        "* * * * *",
        |run: ScheduledRun| async move {
            println!("Ran the every-minute schedule for {:?}", run.scheduled_for);
            Ok(())
        },
    );

    let mode = if drain { Mode::Drain } else { Mode::Continuous };
    pgq.run(RunOptions {
        mode,
        ..RunOptions::default()
    })
    .await
}
