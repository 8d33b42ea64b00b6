//! Scenario 3, throughput: producers (batches through `Queries`, as fast as they can) and one
//! runtime together for T seconds, starting from an empty queue. Reports the jobs finished per
//! second and the backlog left, against the raw claim+ack baseline of the drain scenario.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgqueuer::{Mode, NewJob, OnConflict, Queries, RunOptions};
use serde_json::json;

use crate::Params;
use crate::drain::{no_op_runtime, tick_progress};
use crate::report::{Measure, progress};
use crate::target::{PREFIX, Target, tally};

pub async fn run(target: &Target, params: &Params, raw_rate: f64) -> Result<Vec<Measure>, String> {
    let admin = target.connect().await?;
    target.reset(&admin).await?;
    let entrypoint = format!("{PREFIX}throughput");

    let bar = progress("throughput (seconds)", params.seconds.ceil() as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let enqueued = Arc::new(AtomicU64::new(0));
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..params.producers {
        let queries = Queries::new(target.connect().await?);
        let (stop, enqueued, entrypoint) =
            (Arc::clone(&stop), Arc::clone(&enqueued), entrypoint.clone());
        let batch = params.enqueue_batch;
        producers.spawn(async move {
            let jobs: Vec<NewJob> = (0..batch)
                .map(|_| NewJob::new(entrypoint.as_str()).payload(b"{}".to_vec()))
                .collect();
            while !stop.load(Ordering::Relaxed) {
                queries
                    .enqueue_many(&jobs, OnConflict::Raise)
                    .await
                    .map_err(|e| e.to_string())?;
                enqueued.fetch_add(jobs.len() as u64, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        });
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
    pgq.run_until(options, deadline)
        .await
        .map_err(|e| format!("the runtime failed: {e}"))?;
    let elapsed = started.elapsed().as_secs_f64();
    ticker.abort();
    bar.finish_and_clear();
    while let Some(done) = producers.join_next().await {
        done.map_err(|e| e.to_string())??;
    }

    let (left, finished, duplicates) = tally(&admin, "throughput").await?;
    let finished = u64::try_from(finished).unwrap_or(0);
    let enqueued = enqueued.load(Ordering::Relaxed);
    target.reset(&admin).await?;
    Ok(vec![
        Measure::rate("throughput", finished, elapsed)
            .raw(raw_rate)
            .detail(json!({
                "seconds": elapsed, "producers": params.producers, "workers": 1, "connections": params.connections,
                "enqueued": enqueued, "enqueued_per_second": (enqueued as f64 / elapsed).round(),
                "finished": finished, "handled": handled.load(Ordering::Relaxed),
                "backlog_left": left, "duplicate_log_rows": duplicates,
            })),
    ])
}
