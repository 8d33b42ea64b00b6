//! Cancel: a queued job never runs; a running job's handler hears of it and stops.
//!
//! ```text
//! cargo run -p pgqueuer-client --example cancel
//! ```

use pgqueuer::{Mode, PgQueuer, Queries, RunOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let q = Queries::new(pgqueuer::connect_from_env().await?);
    let ids = q
        .enqueue(["report", "long"], [Vec::new(), Vec::new()], [0, 0])
        .await?;
    // Queued: cancelled before anyone runs it.
    q.cancel(&ids[..1]).await?;

    let long = ids[1];
    let mut pgq = PgQueuer::from_env()?;
    pgq.entrypoint("report", |_job| async {
        panic!("a cancelled job never runs")
    });
    pgq.entrypoint("long", move |job| {
        async move {
            // Running: someone cancels it, and the handler stops when told.
            let admin = Queries::new(pgqueuer::connect_from_env().await?);
            admin.cancel(&[long]).await?;
            job.cancel.cancelled().await;
            Err("stopped: cancelled".into())
        }
    });
    pgq.run(RunOptions {
        mode: Mode::Drain,
        ..RunOptions::default()
    })
    .await?;

    let statuses: Vec<String> = q
        .client()
        .query("SELECT status::text FROM pgq.log ORDER BY job_id", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    println!("{statuses:?}");
    assert_eq!(statuses, ["canceled", "canceled"]);
    Ok(())
}
