//! Scenario 2, drain: N jobs enqueued beforehand, then one `PgQueuer` runtime (a no-op
//! handler; the runtime's default settings unless `--batch`, `--concurrency` or
//! `--connections` say otherwise) in drain mode until the queue is empty. Beside it, the
//! two baselines (`baseline.rs`: raw SQL on pgqueuer's tables, and the minimal queue) on as many
//! connections: clients that loop over two transactions a batch, a claim (`... FOR UPDATE SKIP
//! LOCKED`) and then a delete with a log row. All run twice: durable (the headline) and with
//! `synchronous_commit = off`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgqueuer::Settings;
use pgqueuer::{Mode, PgQueuer, RunOptions};
use serde_json::json;

use crate::Params;
use crate::baseline::{Baseline, SESSION};
use crate::report::{Measure, progress};
use crate::target::{PREFIX, Target, db, fill, tally};

pub async fn run(target: &Target, params: &Params) -> Result<Vec<Measure>, String> {
    let mut measures = Vec::new();
    for (variant, config) in [
        ("", target.config.clone()),
        (" (synchronous_commit off)", target.async_commit()),
    ] {
        let raw = baseline_drain(target, &config, params, variant, Baseline::Raw).await?;
        let minimal = baseline_drain(target, &config, params, variant, Baseline::Minimal).await?;
        let (ours, mut detail) = runtime_drain(target, &config, params, variant, false).await?;
        detail["minimal_queue_seconds"] = json!(minimal);
        let mut measure = Measure::rate(format!("drain{variant}"), params.jobs, ours)
            .raw(params.jobs as f64 / raw)
            .minimal(params.jobs as f64 / minimal)
            .detail(detail);
        if variant.is_empty() {
            measure = measure.target(">= 80 % of raw");
            // The cost of completion notifications: the same drain with the entrypoint's
            // notify_completion on (one NOTIFY per ack statement).
            let variant = " (notify_completion)";
            let (ours, detail) = runtime_drain(target, &config, params, variant, true).await?;
            measures.push(measure);
            measure = Measure::rate(format!("drain{variant}"), params.jobs, ours)
                .raw(params.jobs as f64 / raw)
                .minimal(params.jobs as f64 / minimal)
                .detail(detail);
        }
        measures.push(measure);
    }
    Ok(measures)
}

/// The runtime drains `params.jobs` jobs; returns the seconds taken and what it left.
pub async fn runtime_drain(
    target: &Target,
    config: &Settings,
    params: &Params,
    variant: &str,
    notify_completion: bool,
) -> Result<(f64, serde_json::Value), String> {
    let admin = target.connect().await?;
    target.reset(&admin).await?;
    fill(&admin, "drain", 1, params.jobs).await?;
    if notify_completion {
        let sql = "SELECT pgq.configure($1, notify_completion => true)";
        let name = format!("{PREFIX}drain");
        admin.execute(sql, &[&name]).await.map_err(db)?;
    }

    let bar = progress(&format!("drain{variant}"), params.jobs);
    let handled = Arc::new(AtomicU64::new(0));
    let (pgq, options) = no_op_runtime(config, &format!("{PREFIX}drain"), &handled, params);
    let options = RunOptions {
        mode: Mode::Drain,
        ..options
    };
    let ticker = tick_progress(&bar, &handled);
    let started = Instant::now();
    let result = pgq.run_until(options, std::future::pending()).await;
    let seconds = started.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    result.map_err(|e| format!("the runtime failed: {e}"))?;

    let (left, logged, duplicates) = tally(&admin, "drain").await?;
    Ok((
        seconds,
        json!({
            "jobs": params.jobs, "batch": params.batch, "max_concurrent_tasks": params.concurrency,
            "connections": params.connections,
            "seconds": seconds, "handled": handled.load(Ordering::Relaxed), "left": left,
            "log_rows": logged, "duplicate_log_rows": duplicates,
        }),
    ))
}

/// `params.connections` clients of `baseline` (as many as the runtime's connections) drain
/// `params.jobs` jobs of its table, each looping over two transactions a batch (claim, then
/// ack); returns the seconds taken.
pub async fn baseline_drain(
    target: &Target,
    config: &Settings,
    params: &Params,
    variant: &str,
    baseline: Baseline,
) -> Result<f64, String> {
    let admin = target.connect().await?;
    baseline.reset(target, &admin).await?;
    baseline.fill(&admin, "drain", 1, params.jobs).await?;

    let bar = progress(&format!("drain {}{variant}", baseline.label()), params.jobs);
    let mut clients = Vec::new();
    for _ in 0..params.connections {
        clients.push(
            pgqueuer::connect_with(config)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let (bar, batch) = (bar.clone(), i64::from(params.batch));
        tasks.spawn(async move {
            client.batch_execute(SESSION).await.map_err(db)?;
            let claim = client.prepare(baseline.claim()).await.map_err(db)?;
            let ack = client.prepare(baseline.ack()).await.map_err(db)?;
            let name = format!("{PREFIX}drain");
            let worker = uuid::Uuid::new_v4();
            loop {
                let rows = client
                    .query(&claim, &[&name, &batch, &worker])
                    .await
                    .map_err(db)?;
                if rows.is_empty() {
                    return Ok::<(), String>(());
                }
                let ids: Vec<i64> = rows.iter().filter_map(|row| row.try_get(0).ok()).collect();
                client.execute(&ack, &[&ids]).await.map_err(db)?;
                bar.inc(ids.len() as u64);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let (left, logged, _) = baseline.tally(&admin, "drain").await?;
    if left != 0 || logged != params.jobs as i64 {
        return Err(format!(
            "the {} drain left {left} jobs and logged {logged} of {}",
            baseline.label(),
            params.jobs
        ));
    }
    baseline.reset(target, &admin).await?;
    Ok(seconds)
}

/// The raw drain baseline alone (durable), for the peers' scenarios; returns the seconds taken.
pub async fn raw_seconds(target: &Target, params: &Params) -> Result<f64, String> {
    baseline_drain(target, &target.config, params, "", Baseline::Raw).await
}

/// A runtime whose handler of `entrypoint` only counts, with the benchmark's batch size,
/// handler slots and connections.
pub fn no_op_runtime(
    config: &Settings,
    entrypoint: &str,
    handled: &Arc<AtomicU64>,
    params: &Params,
) -> (PgQueuer, RunOptions) {
    let mut pgq = PgQueuer::new(config.clone());
    let counter = Arc::clone(handled);
    pgq.entrypoint(entrypoint, move |_job| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok(()) }
    });
    let options = RunOptions {
        batch_size: params.batch,
        max_concurrent_tasks: params.concurrency,
        dequeue_timeout: Duration::from_secs(1),
        connections: params.connections,
        ..RunOptions::default()
    };
    (pgq, options)
}

/// Moves a progress bar along with a counter, ten times a second.
pub fn tick_progress(
    bar: &indicatif::ProgressBar,
    counter: &Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let (bar, counter) = (bar.clone(), Arc::clone(counter));
    tokio::spawn(async move {
        loop {
            bar.set_position(counter.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}
