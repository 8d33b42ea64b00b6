//! Schedules: a cron expression whose fires become jobs, one per fire however many workers run.
//!
//! ```text
//! cargo run -p pgqueuer-client --example schedule
//! ```

use std::sync::Arc;

use pgqueuer::{PgQueuer, RunOptions, ScheduledRun};
use tokio::sync::Notify;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let fired = Arc::new(Notify::new());
    let mut pgq = PgQueuer::from_env()?;
    let signal = Arc::clone(&fired);
    // Every second (6 fields: seconds first). Without the extension's background worker the
    // runtime fires its schedules itself.
    pgq.schedule("heartbeat", "* * * * * *", move |run: ScheduledRun| {
        println!("fired for {:?} ({:?})", run.scheduled_for, run.expression);
        signal.notify_one();
        async { Ok(()) }
    });
    // Run until the first fire has been handled, then stop gracefully.
    pgq.run_until(RunOptions::default(), async move { fired.notified().await })
        .await?;

    let client = pgqueuer::connect_from_env().await?;
    let runs: i64 = client
        .query_one(
            "SELECT count(*) FROM pgq.log WHERE entrypoint = 'heartbeat' AND status = 'successful'",
            &[],
        )
        .await?
        .get(0);
    assert!(runs >= 1, "the schedule fired");
    Ok(())
}
