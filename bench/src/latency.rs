//! Scenario 4, latency: an idle runtime, and jobs enqueued one at a time (one commit each) at
//! a fixed rate; the time from just before the enqueue call to the start of the handler.
//! Beside it, the floor of each baseline (`baseline.rs`: raw SQL on pgqueuer's tables, the
//! minimal queue): `INSERT ... ; pg_notify` in one statement, and a listener that claims with
//! the baseline's claim as soon as the notification arrives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgqueuer::Listener;
use pgqueuer::{Mode, NewJob, OnConflict, PgQueuer, Queries, RunOptions};
use serde_json::json;
use tokio::sync::mpsc;

use crate::Params;
use crate::baseline::{Baseline, SESSION};
use crate::report::{Measure, percentile, progress};
use crate::target::{PREFIX, Target, db};

/// How long the samples may take to arrive after the last enqueue.
const PATIENCE: Duration = Duration::from_secs(60);

pub async fn run(target: &Target, params: &Params) -> Result<Vec<Measure>, String> {
    let admin = target.connect().await?;
    let raw = baseline_latencies(target, params, Baseline::Raw).await?;
    let minimal = baseline_latencies(target, params, Baseline::Minimal).await?;
    target.reset(&admin).await?;
    let ours = runtime_latencies(target, params).await?;
    target.reset(&admin).await?;

    let mut measures = Vec::new();
    for (metric, p, target) in [
        ("p50", 50.0, Some("< 3 ms")),
        ("p90", 90.0, None),
        ("p99", 99.0, Some("< 20 ms")),
        ("max", 100.0, None),
    ] {
        let mut measure = Measure::millis("latency", metric, percentile(&ours, p))
            .raw(percentile(&raw, p))
            .minimal(percentile(&minimal, p))
            .detail(json!({"jobs": ours.len(), "rate_per_second": params.latency_rate}));
        if let Some(target) = target {
            measure = measure.target(target);
        }
        measures.push(measure);
    }
    Ok(measures)
}

/// Milliseconds since `base`, as the 8-byte payload a job carries.
fn stamp(base: Instant) -> Vec<u8> {
    (base.elapsed().as_nanos() as u64).to_le_bytes().to_vec()
}

/// Milliseconds from a payload's stamp to now.
fn since(base: Instant, payload: Option<&[u8]>) -> Option<f64> {
    let bytes: [u8; 8] = payload?.try_into().ok()?;
    let sent = Duration::from_nanos(u64::from_le_bytes(bytes));
    Some((base.elapsed().saturating_sub(sent)).as_secs_f64() * 1000.0)
}

/// Sends `params.latency_jobs` stamped jobs at the fixed rate with `send`, while collecting
/// as many samples from `samples`; returns them sorted.
async fn measure<F, Fut>(
    label: &str,
    params: &Params,
    base: Instant,
    mut samples: mpsc::UnboundedReceiver<f64>,
    send: F,
) -> Result<Vec<f64>, String>
where
    F: Fn(Vec<u8>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let bar = progress(label, params.latency_jobs);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / params.latency_rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut collected = Vec::new();
    for _ in 0..params.latency_jobs {
        ticks.tick().await;
        send(stamp(base)).await?;
        while let Ok(sample) = samples.try_recv() {
            collected.push(sample);
            bar.inc(1);
        }
    }
    while (collected.len() as u64) < params.latency_jobs {
        match tokio::time::timeout(PATIENCE, samples.recv()).await {
            Ok(Some(sample)) => {
                collected.push(sample);
                bar.inc(1);
            }
            _ => {
                return Err(format!(
                    "{label}: only {} of {} jobs reached the worker",
                    collected.len(),
                    params.latency_jobs
                ));
            }
        }
    }
    bar.finish_and_clear();
    collected.sort_by(f64::total_cmp);
    Ok(collected)
}

async fn runtime_latencies(target: &Target, params: &Params) -> Result<Vec<f64>, String> {
    let entrypoint = format!("{PREFIX}latency");
    let base = Instant::now();
    let (sender, mut samples) = mpsc::unbounded_channel();
    let mut pgq = PgQueuer::new(target.config.clone());
    pgq.entrypoint(&entrypoint, move |job| {
        if let Some(ms) = since(base, job.payload.as_deref()) {
            let _ = sender.send(ms);
        }
        async { Ok(()) }
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = RunOptions {
        batch_size: params.batch,
        max_concurrent_tasks: params.concurrency,
        mode: Mode::Continuous,
        // Long, so that only the notification can wake the idle worker.
        dequeue_timeout: Duration::from_secs(60),
        ..RunOptions::default()
    };
    let pgq = Arc::new(pgq);
    let worker = {
        let pgq = Arc::clone(&pgq);
        tokio::spawn(async move {
            pgq.run_until(options, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let queries = Queries::new(target.connect().await?);
    queries.prepare_all().await.map_err(|e| e.to_string())?;
    let enqueue = |payload: Vec<u8>| {
        let job = [NewJob::new(entrypoint.as_str()).payload(payload)];
        let queries = &queries;
        async move {
            queries
                .enqueue_many(&job, OnConflict::Raise)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    // A first job shows the worker is up and listening; it is not a sample.
    enqueue(stamp(base)).await?;
    tokio::time::timeout(PATIENCE, samples.recv())
        .await
        .map_err(|_| "the worker never ran the first job".to_string())?;
    let result = measure("latency", params, base, samples, enqueue).await;
    let _ = stop.send(());
    worker
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the runtime failed: {e}"))?;
    result
}

/// A baseline's floor: its insert-and-notify, and a listener that claims (and acks) with its
/// statements on each notification.
async fn baseline_latencies(
    target: &Target,
    params: &Params,
    baseline: Baseline,
) -> Result<Vec<f64>, String> {
    let admin = target.connect().await?;
    baseline.reset(target, &admin).await?;
    let channel = match baseline {
        Baseline::Raw => "bench_latency_raw",
        Baseline::Minimal => "bench_latency_minimal",
    };
    // The channel's name is the entrypoint's too (both start with the benchmark's prefix).
    let entrypoint = channel.to_string();
    let base = Instant::now();
    let (sender, mut samples) = mpsc::unbounded_channel();

    // The listener: one connection that LISTENs and claims on each notification.
    let mut listener = Listener::connect_to(&target.config, channel)
        .await
        .map_err(|e| e.to_string())?;
    let claimer = {
        let (entrypoint, batch) = (entrypoint.clone(), i64::from(params.batch));
        tokio::spawn(async move {
            listener.client().batch_execute(SESSION).await.map_err(db)?;
            let claim = listener
                .client()
                .prepare(baseline.claim())
                .await
                .map_err(db)?;
            let ack = listener
                .client()
                .prepare(baseline.ack())
                .await
                .map_err(db)?;
            let worker = uuid::Uuid::new_v4();
            while listener.next().await.is_some() {
                let rows = listener
                    .client()
                    .query(&claim, &[&entrypoint, &batch, &worker])
                    .await
                    .map_err(db)?;
                let mut ids = Vec::new();
                for row in rows {
                    let payload: Option<Vec<u8>> = row.try_get(1).map_err(db)?;
                    if let Some(ms) = since(base, payload.as_deref()) {
                        let _ = sender.send(ms);
                    }
                    ids.push(row.try_get::<_, i64>(0).map_err(db)?);
                }
                listener.client().execute(&ack, &[&ids]).await.map_err(db)?;
            }
            Ok::<(), String>(())
        })
    };

    let producer = target.connect().await?;
    let insert = producer
        .prepare(baseline.insert_and_notify())
        .await
        .map_err(db)?;
    let send = |payload: Vec<u8>| {
        let (producer, insert, entrypoint) = (&producer, &insert, &entrypoint);
        async move {
            producer
                .execute(insert, &[entrypoint, &payload, &channel])
                .await
                .map(|_| ())
                .map_err(db)
        }
    };
    send(stamp(base)).await?;
    tokio::time::timeout(PATIENCE, samples.recv())
        .await
        .map_err(|_| {
            format!(
                "the {} listener never claimed the first job",
                baseline.label()
            )
        })?;
    let label = format!("latency {}", baseline.label());
    let result = measure(&label, params, base, samples, send).await;
    claimer.abort();
    baseline.reset(target, &admin).await?;
    result
}
