//! Scenario pinned: a steady load (one producer enqueueing `--pin-rate` jobs a second, paced,
//! and one runtime with its defaults) for `--pin-seconds` before, during and after a pin:
//! another session holds a REPEATABLE READ transaction with a snapshot open, so vacuum may
//! remove no row version newer than it, the way a forgotten transaction pins a production
//! server. A healthy queue finishes what is offered and its backlog stays flat; a queue slowed
//! by dead row versions falls behind. It reports the jobs finished per second in each phase
//! (during and after against before), and in the detail, per window of a tenth of a phase, the
//! rate, the backlog and the sizes of `pgq.jobs`, its indexes and its dead rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pgqueuer::{Mode, RunOptions};
use serde_json::{Value, json};

use crate::Params;
use crate::drain::no_op_runtime;
use crate::report::Measure;
use crate::target::{PREFIX, Target, db};

/// The sizes that show dead rows piling up.
async fn sizes(client: &pgqueuer::tokio_postgres::Client) -> Result<Value, String> {
    let row = client
        .query_one(
            "SELECT pg_relation_size('pgq.jobs'), pg_indexes_size('pgq.jobs'), \
                    (SELECT n_dead_tup FROM pg_stat_user_tables \
                     WHERE relid = 'pgq.jobs'::regclass), \
                    (SELECT count(*) FROM pgq.jobs WHERE status = 'queued')",
            &[],
        )
        .await
        .map_err(db)?;
    Ok(json!({
        "jobs_table_bytes": row.try_get::<_, i64>(0).map_err(db)?,
        "jobs_indexes_bytes": row.try_get::<_, i64>(1).map_err(db)?,
        "jobs_dead_rows": row.try_get::<_, Option<i64>>(2).map_err(db)?,
        "queued": row.try_get::<_, i64>(3).map_err(db)?,
    }))
}

pub async fn run(target: &Target, params: &Params) -> Result<Vec<Measure>, String> {
    let admin = target.connect().await?;
    target.reset(&admin).await?;
    let phase = Duration::from_secs_f64(params.pin_seconds);
    let window = phase / 10;
    let entrypoint = format!("{PREFIX}pinned");
    let stop = Arc::new(AtomicBool::new(false));
    let enqueued = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    {
        // Paced: every 10 ms, what the rate owes since the start.
        let queries = pgqueuer::Queries::new(target.connect().await?);
        let (stop, enqueued, entrypoint) =
            (Arc::clone(&stop), Arc::clone(&enqueued), entrypoint.clone());
        let rate = params.pin_rate;
        tasks.spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let owed = (started.elapsed().as_secs_f64() * rate) as u64;
                let due = owed
                    .saturating_sub(enqueued.load(Ordering::Relaxed))
                    .min(10_000);
                if due == 0 {
                    continue;
                }
                let jobs: Vec<pgqueuer::NewJob> = (0..due)
                    .map(|_| pgqueuer::NewJob::new(entrypoint.as_str()).payload(b"{}".to_vec()))
                    .collect();
                queries
                    .enqueue_many(&jobs, pgqueuer::OnConflict::Raise)
                    .await
                    .map_err(|e| e.to_string())?;
                enqueued.fetch_add(due, Ordering::Relaxed);
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

    let pinner = target.connect().await?;
    let observer = target.connect().await?;
    let started = Instant::now();
    let observe = async {
        let mut windows = Vec::new();
        let mut phases = [0u64; 3];
        let mut last = 0;
        for index in 0..30 {
            if index == 10 {
                // A snapshot held open: vacuum keeps every row version newer than it.
                pinner
                    .batch_execute(
                        "BEGIN ISOLATION LEVEL REPEATABLE READ; \
                         SELECT count(*) FROM pgq.entrypoints;",
                    )
                    .await
                    .map_err(db)?;
            }
            if index == 20 {
                pinner.batch_execute("COMMIT").await.map_err(db)?;
            }
            tokio::time::sleep_until((started + window * (index + 1)).into()).await;
            let now = handled.load(Ordering::Relaxed);
            phases[index as usize / 10] += now - last;
            let mut sample = sizes(&observer).await?;
            sample["second"] = json!((window * (index + 1)).as_secs_f64());
            sample["jobs_per_second"] = json!(((now - last) as f64 / window.as_secs_f64()).round());
            windows.push(sample);
            last = now;
        }
        stop.store(true, Ordering::Relaxed);
        Ok::<_, String>((windows, phases))
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let observed = async {
        let result = observe.await;
        let _ = sender.send(result);
    };
    pgq.run_until(options, observed)
        .await
        .map_err(|e| format!("the runtime failed: {e}"))?;
    let (windows, phases) = receiver
        .await
        .map_err(|_| "the observer stopped".to_string())??;
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    target.reset(&admin).await?;

    let seconds = phase.as_secs_f64();
    let detail = json!({
        "phase_seconds": seconds, "offered_per_second": params.pin_rate,
        "enqueued": enqueued.load(Ordering::Relaxed), "windows": windows,
    });
    let before = phases[0] as f64 / seconds;
    let against = |jobs: u64| ((jobs as f64 / seconds) / before.max(1e-9) * 100.0).round();
    let detail = json!({"during_percent_of_before": against(phases[1]),
                        "after_percent_of_before": against(phases[2]), "run": detail});
    Ok(vec![
        Measure::rate("pinned xmin: before", phases[0], seconds).detail(detail),
        Measure::rate("pinned xmin: during", phases[1], seconds).target(">= 80 % of before"),
        Measure::rate("pinned xmin: after", phases[2], seconds).target("as before within a minute"),
    ])
}
