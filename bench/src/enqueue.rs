//! Scenario 1, enqueue: N jobs in batches through `Queries::enqueue_many`, from several
//! connections at once; beside it, both baselines' inserts (`baseline.rs`): the same rows with
//! one hand-written `INSERT ... SELECT FROM unnest(...)` a batch, into pgqueuer's table and into
//! the minimal queue's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pgqueuer::{NewJob, OnConflict, Queries};
use serde_json::json;

use crate::Params;
use crate::baseline::Baseline;
use crate::report::{Measure, progress};
use crate::target::{PREFIX, Target, db, tally};

const PAYLOAD: &[u8] = b"{\"user\": 12345}";

pub async fn run(target: &Target, params: &Params) -> Result<Vec<Measure>, String> {
    let admin = target.connect().await?;

    let raw = baseline_seconds(target, params, Baseline::Raw).await?;
    let minimal = baseline_seconds(target, params, Baseline::Minimal).await?;

    target.reset(&admin).await?;
    let ours = produce(target, params, "enqueue", Producer::Queries).await?;
    let (queued, _, _) = tally(&admin, "enqueue").await?;
    target.reset(&admin).await?;

    Ok(vec![
        Measure::rate("enqueue", params.jobs, ours)
            .raw(params.jobs as f64 / raw)
            .minimal(params.jobs as f64 / minimal)
            .target(">= 70 % of raw")
            .detail(json!({
                "jobs": params.jobs, "batch": params.enqueue_batch, "connections": params.clients,
                "seconds": ours, "raw_seconds": raw, "minimal_queue_seconds": minimal,
                "queued_after": queued,
            })),
    ])
}

/// The raw insert baseline alone, from an emptied queue (for the peers' scenarios); returns
/// the seconds taken.
pub async fn raw_seconds(target: &Target, params: &Params) -> Result<f64, String> {
    baseline_seconds(target, params, Baseline::Raw).await
}

/// A baseline's inserts of `params.jobs` jobs into its emptied table; checks they are all
/// there and empties it again; returns the seconds taken.
async fn baseline_seconds(
    target: &Target,
    params: &Params,
    baseline: Baseline,
) -> Result<f64, String> {
    let admin = target.connect().await?;
    baseline.reset(target, &admin).await?;
    let label = format!("enqueue {}", baseline.label());
    let seconds = produce(target, params, &label, Producer::Baseline(baseline)).await?;
    let (queued, _, _) = baseline.tally(&admin, "enqueue").await?;
    if queued != params.jobs as i64 {
        return Err(format!(
            "the {} insert queued {queued} of {} jobs",
            baseline.label(),
            params.jobs
        ));
    }
    baseline.reset(target, &admin).await?;
    Ok(seconds)
}

#[derive(Clone, Copy)]
enum Producer {
    Queries,
    Baseline(Baseline),
}

/// Enqueues `params.jobs` jobs from `params.clients` connections; returns the seconds taken.
async fn produce(
    target: &Target,
    params: &Params,
    label: &str,
    producer: Producer,
) -> Result<f64, String> {
    let bar = progress(label, params.jobs);
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..params.clients {
        clients.push(target.connect().await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let (next, bar) = (Arc::clone(&next), bar.clone());
        let (total, batch) = (params.jobs, params.enqueue_batch as u64);
        tasks.spawn(async move {
            let entrypoint = format!("{PREFIX}enqueue");
            let queries = Queries::new(client);
            let insert = match producer {
                Producer::Queries => None,
                Producer::Baseline(baseline) => Some(
                    queries
                        .client()
                        .prepare(baseline.insert())
                        .await
                        .map_err(db)?,
                ),
            };
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= total {
                    return Ok::<(), String>(());
                }
                let n = batch.min(total - start) as usize;
                match &insert {
                    None => {
                        let jobs: Vec<NewJob> = (0..n)
                            .map(|_| NewJob::new(entrypoint.as_str()).payload(PAYLOAD))
                            .collect();
                        queries
                            .enqueue_many(&jobs, OnConflict::Raise)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Some(insert) => {
                        let entrypoints = vec![entrypoint.as_str(); n];
                        let priorities = vec![0i32; n];
                        let payloads = vec![PAYLOAD; n];
                        queries
                            .client()
                            .execute(insert, &[&entrypoints, &priorities, &payloads])
                            .await
                            .map_err(db)?;
                    }
                }
                bar.inc(n as u64);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(seconds)
}
