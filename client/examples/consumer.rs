//! The consumer of the quick start: runs the `fetch` jobs and an every-minute schedule.
//!
//! ```text
//! cargo run -p pgqueuer-client --example consumer            # until stopped
//! cargo run -p pgqueuer-client --example consumer -- --drain # until no job is left
//! ```
//! It connects with PGQUEUER_DSN, DATABASE_URL, or the libpq variables (PGHOST, PGPORT, ...).

use pgqueuer::{Job, Mode, PgQueuer, RunOptions, ScheduledRun};

#[tokio::main]
async fn main() -> Result<(), pgqueuer::Error> {
    let drain = std::env::args().any(|arg| arg == "--drain");

    let mut pgq = PgQueuer::from_env()?;
    pgq.entrypoint("fetch", |job: Job| async move {
        let payload = String::from_utf8_lossy(job.payload.as_deref().unwrap_or_default());
        println!(
            "Processed: job {} of {} with payload {payload:?}",
            job.id, job.entrypoint
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
