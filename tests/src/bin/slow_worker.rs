//! A worker for the shutdown test: `slow_worker DSN GRACE_MS`. Jobs of entrypoint `slow` take
//! 200 ms, except those whose payload is `forever`, which never finish. It prints `started ID`
//! when a handler starts and `stopped` when the runtime has shut down.

use std::io::Write;
use std::time::Duration;

use pgqueuer::{Job, PgQueuer, RunOptions};

#[tokio::main]
async fn main() -> Result<(), pgqueuer::Error> {
    let mut args = std::env::args().skip(1);
    let dsn = args.next().unwrap_or_default();
    let grace: u64 = args.next().and_then(|ms| ms.parse().ok()).unwrap_or(1000);

    let mut pgq = PgQueuer::new(pgqueuer::config(&dsn)?);
    pgq.entrypoint("slow", |job: Job| async move {
        println!("started {}", job.id);
        let _ = std::io::stdout().flush();
        if job.payload.as_deref() == Some(&b"forever"[..]) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // the job's work
        Ok(())
    });
    pgq.run(RunOptions {
        batch_size: 4,
        max_concurrent_tasks: 4,
        shutdown_grace: Duration::from_millis(grace),
        ..RunOptions::default()
    })
    .await?;
    println!("stopped");
    Ok(())
}
