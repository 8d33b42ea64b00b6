//! Scenario 1, enqueue: N jobs in batches through `Queries::enqueue_many`, from several
//! connections at once; beside it, the raw insert baseline: the same rows with one
//! hand-written `INSERT ... SELECT FROM unnest(...)` a batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pgqueuer::{NewJob, OnConflict, Queries};
use serde_json::json;

use crate::Params;
use crate::report::{Measure, progress};
use crate::target::{PREFIX, Target, db, tally};

const PAYLOAD: &[u8] = b"{\"user\": 12345}";

pub async fn run(target: &Target, params: &Params) -> Result<Vec<Measure>, String> {
    let admin = target.connect().await?;

    target.reset(&admin).await?;
    let raw = produce(target, params, "enqueue raw SQL", Producer::Raw).await?;

    target.reset(&admin).await?;
    let ours = produce(target, params, "enqueue", Producer::Queries).await?;
    let (queued, _, _) = tally(&admin, "enqueue").await?;
    target.reset(&admin).await?;

    Ok(vec![
        Measure::rate("enqueue", params.jobs, ours)
            .raw(params.jobs as f64 / raw)
            .target(">= 70 % of raw")
            .detail(json!({
                "jobs": params.jobs, "batch": params.enqueue_batch, "connections": params.clients,
                "seconds": ours, "raw_seconds": raw, "queued_after": queued,
            })),
    ])
}

/// The raw insert baseline alone, from an emptied queue (for the peers' scenarios); returns
/// the seconds taken.
pub async fn raw_seconds(target: &Target, params: &Params) -> Result<f64, String> {
    let admin = target.connect().await?;
    target.reset(&admin).await?;
    let seconds = produce(target, params, "enqueue raw SQL", Producer::Raw).await?;
    target.reset(&admin).await?;
    Ok(seconds)
}

#[derive(Clone, Copy)]
enum Producer {
    Queries,
    Raw,
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
            let raw = queries
                .client()
                .prepare(
                    "INSERT INTO pgq.jobs (entrypoint, priority, payload) \
                     SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[])",
                )
                .await
                .map_err(db)?;
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= total {
                    return Ok::<(), String>(());
                }
                let n = batch.min(total - start) as usize;
                match producer {
                    Producer::Queries => {
                        let jobs: Vec<NewJob> = (0..n)
                            .map(|_| NewJob::new(entrypoint.as_str()).payload(PAYLOAD))
                            .collect();
                        queries
                            .enqueue_many(&jobs, OnConflict::Raise)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Producer::Raw => {
                        let entrypoints = vec![entrypoint.as_str(); n];
                        let priorities = vec![0i32; n];
                        let payloads = vec![PAYLOAD; n];
                        queries
                            .client()
                            .execute(&raw, &[&entrypoints, &priorities, &payloads])
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
