//! Results: a typed handler returns a value, stored with the job's successful outcome;
//! `Completions` waits for the job on its completion notification and reads the result.
//!
//! ```text
//! cargo run -p pgqueuer-client --example result
//! ```

use std::time::Duration;

use pgqueuer::{
    Completions, EntrypointSettings, Job, JobArgs, JobResult, Mode, NewJob, OnConflict, PgQueuer,
    Queries, RunOptions,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

impl JobArgs for Add {
    const ENTRYPOINT: &'static str = "add";
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let settings = pgqueuer::config_from_env()?;
    let q = Queries::new(pgqueuer::connect_with(&settings).await?);
    // Announce the end of `add` jobs on channel pgq_done (off by default).
    let notify = EntrypointSettings {
        notify_completion: Some(true),
        ..EntrypointSettings::default()
    };
    q.configure(Add::ENTRYPOINT, &notify).await?;
    let ids: Vec<i64> = q
        .enqueue_many(&[NewJob::typed(&Add { a: 2, b: 3 })?], OnConflict::Raise)
        .await?
        .into_iter()
        .flatten()
        .collect();

    // Listen before the job can end, then run a worker beside the waiter.
    let mut completions = Completions::connect(&settings).await?;
    let mut pgq = PgQueuer::new(settings);
    pgq.job(|add: Add, _job: Job| async move { JobResult::Ok(add.a + add.b) });
    let worker = tokio::spawn(async move {
        pgq.run(RunOptions {
            mode: Mode::Drain,
            ..RunOptions::default()
        })
        .await
    });

    let outcomes = completions.wait_for(&ids, Duration::from_secs(5)).await?;
    let sum: Option<i64> = outcomes[0].result()?;
    println!(
        "job {} ended {:?} with {sum:?}",
        outcomes[0].id, outcomes[0].status
    );
    assert_eq!(sum, Some(5));
    worker.await??;
    Ok(())
}
