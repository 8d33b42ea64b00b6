//! Scenario 3, throughput: producers (batches through `Queries`, as fast as they can) and
//! workers together for T seconds, starting from an empty queue. Reports the jobs finished per
//! second and the backlog left. The baselines are the same mixed load with their workers (the
//! drain baselines' claim+ack loop on as many connections as the runtime has, `--connections`):
//! raw SQL on pgqueuer's tables, fed by the same producers, and the minimal queue, fed by its
//! own insert.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgqueuer::{Mode, NewJob, OnConflict, Queries, RunOptions};
use serde_json::{Value, json};

use crate::Params;
use crate::baseline::{Baseline, SESSION};
use crate::drain::{no_op_runtime, tick_progress};
use crate::report::{Measure, progress};
use crate::target::{PREFIX, Target, db};

#[derive(Clone, Copy, PartialEq)]
enum Workers {
    Runtime,
    Baseline(Baseline),
}

pub async fn run(target: &Target, params: &Params) -> Result<Vec<Measure>, String> {
    let raw = Workers::Baseline(Baseline::Raw);
    let (raw_finished, raw_seconds, raw) = mixed(target, params, raw).await?;
    let minimal = Workers::Baseline(Baseline::Minimal);
    let (minimal_finished, minimal_seconds, minimal) = mixed(target, params, minimal).await?;
    let (finished, seconds, mut detail) = mixed(target, params, Workers::Runtime).await?;
    detail["raw_sql"] = raw;
    detail["minimal_queue"] = minimal;
    Ok(vec![
        Measure::rate("throughput", finished, seconds)
            .raw(raw_finished as f64 / raw_seconds)
            .minimal(minimal_finished as f64 / minimal_seconds)
            .detail(detail),
    ])
}

/// `params.producers` connections that enqueue batches of `params.enqueue_batch` jobs of
/// `entrypoint` as fast as they can until `stop`, counting them in `enqueued`: through
/// `Queries` into pgqueuer's table, or with the minimal queue's insert into its own.
async fn spawn_producers(
    target: &Target,
    params: &Params,
    entrypoint: &str,
    minimal: bool,
    stop: &Arc<AtomicBool>,
    enqueued: &Arc<AtomicU64>,
    tasks: &mut tokio::task::JoinSet<Result<(), String>>,
) -> Result<(), String> {
    for _ in 0..params.producers {
        let queries = Queries::new(target.connect().await?);
        let (stop, enqueued) = (Arc::clone(stop), Arc::clone(enqueued));
        let jobs: Vec<NewJob> = (0..params.enqueue_batch)
            .map(|_| NewJob::new(entrypoint).payload(b"{}".to_vec()))
            .collect();
        let entrypoints = vec![entrypoint.to_string(); jobs.len()];
        let (priorities, payloads) = (vec![0i32; jobs.len()], vec![b"{}".to_vec(); jobs.len()]);
        tasks.spawn(async move {
            let insert = match minimal {
                true => Some(
                    queries
                        .client()
                        .prepare(Baseline::Minimal.insert())
                        .await
                        .map_err(db)?,
                ),
                false => None,
            };
            while !stop.load(Ordering::Relaxed) {
                match &insert {
                    Some(insert) => {
                        queries
                            .client()
                            .execute(insert, &[&entrypoints, &priorities, &payloads])
                            .await
                            .map_err(db)?;
                    }
                    None => {
                        queries
                            .enqueue_many(&jobs, OnConflict::Raise)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
                enqueued.fetch_add(jobs.len() as u64, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        });
    }
    Ok(())
}

/// Producers and workers for `params.seconds`; returns the jobs finished, the seconds and the
/// counts.
async fn mixed(
    target: &Target,
    params: &Params,
    workers: Workers,
) -> Result<(u64, f64, Value), String> {
    let admin = target.connect().await?;
    let baseline = match workers {
        Workers::Runtime => Baseline::Raw,
        Workers::Baseline(baseline) => baseline,
    };
    baseline.reset(target, &admin).await?;
    let entrypoint = format!("{PREFIX}throughput");
    let label = match workers {
        Workers::Runtime => "throughput (seconds)".to_string(),
        Workers::Baseline(baseline) => format!("throughput {} (seconds)", baseline.label()),
    };
    let bar = progress(&label, params.seconds.ceil() as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let enqueued = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let minimal = baseline == Baseline::Minimal;
    spawn_producers(
        target,
        params,
        &entrypoint,
        minimal,
        &stop,
        &enqueued,
        &mut tasks,
    )
    .await?;
    if let Workers::Baseline(baseline) = workers {
        for _ in 0..params.connections {
            let client = target.connect().await?;
            let (stop, entrypoint, batch) = (
                Arc::clone(&stop),
                entrypoint.clone(),
                i64::from(params.batch),
            );
            tasks.spawn(async move {
                client.batch_execute(SESSION).await.map_err(db)?;
                let claim = client.prepare(baseline.claim()).await.map_err(db)?;
                let ack = client.prepare(baseline.ack()).await.map_err(db)?;
                let worker = uuid::Uuid::new_v4();
                while !stop.load(Ordering::Relaxed) {
                    let rows = client
                        .query(&claim, &[&entrypoint, &batch, &worker])
                        .await
                        .map_err(db)?;
                    if rows.is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    let ids: Vec<i64> = rows.iter().filter_map(|row| row.try_get(0).ok()).collect();
                    client.execute(&ack, &[&ids]).await.map_err(db)?;
                }
                Ok::<(), String>(())
            });
        }
    }

    let handled = Arc::new(AtomicU64::new(0));
    let (pgq, options) = no_op_runtime(&target.config, &entrypoint, &handled, params);
    let options = RunOptions {
        mode: Mode::Continuous,
        shutdown_grace: Duration::from_secs(5),
        ..options
    };
    let seconds = params.seconds;
    let clock = Arc::new(AtomicU64::new(0));
    let ticker = tick_progress(&bar, &clock);
    let started = Instant::now();
    let deadline = async {
        while started.elapsed().as_secs_f64() < seconds {
            clock.store(started.elapsed().as_secs(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.store(true, Ordering::Relaxed);
    };
    match workers {
        Workers::Runtime => pgq
            .run_until(options, deadline)
            .await
            .map_err(|e| format!("the runtime failed: {e}"))?,
        Workers::Baseline(_) => deadline.await,
    }
    let elapsed = started.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }

    let (left, finished, duplicates) = baseline.tally(&admin, "throughput").await?;
    let finished = u64::try_from(finished).unwrap_or(0);
    let enqueued = enqueued.load(Ordering::Relaxed);
    baseline.reset(target, &admin).await?;
    let workers = match workers {
        Workers::Runtime => json!({"runtimes": 1, "connections": params.connections}),
        Workers::Baseline(_) => json!({"clients": params.connections}),
    };
    Ok((
        finished,
        elapsed,
        json!({
            "seconds": elapsed, "producers": params.producers, "workers": workers,
            "enqueued": enqueued, "enqueued_per_second": (enqueued as f64 / elapsed).round(),
            "finished": finished, "backlog_left": left, "duplicate_log_rows": duplicates,
        }),
    ))
}
