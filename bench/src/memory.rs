//! Worker memory: the resident set of a worker process that holds K jobs in flight at once
//! (10k by default). The worker is a child process (this binary, hidden `--worker-rss`), so
//! nothing the benchmark itself allocated counts: it claims with `max_concurrent_tasks = K`,
//! every handler waits until all K have started, the process reads its own `VmRSS` and prints
//! it, and then every handler returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pgqueuer::{Mode, PgQueuer, RunOptions};
use serde_json::json;
use tokio::sync::watch;

use crate::Params;
use crate::report::Measure;
use crate::target::{PREFIX, Target, fill, tally};

pub async fn run(target: &Target, params: &Params) -> Result<Vec<Measure>, String> {
    let admin = target.connect().await?;
    target.reset(&admin).await?;
    fill(&admin, "memory", 1, params.in_flight).await?;

    let bar = crate::report::progress("worker memory", params.in_flight);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = tokio::process::Command::new(exe)
        .args([
            "--dsn",
            &target.dsn,
            "--worker-rss",
            &params.in_flight.to_string(),
        ])
        .args(["--batch", &params.batch.to_string()])
        .output()
        .await
        .map_err(|e| format!("cannot start the worker process: {e}"))?;
    bar.finish_and_clear();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the worker process failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let field = |key: &str| -> Option<f64> {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|value| value.trim().parse().ok())
    };
    let (Some(start), Some(peak)) = (field("rss_start_kib="), field("rss_in_flight_kib=")) else {
        return Err(format!("the worker process printed no RSS: {stdout}"));
    };
    let (left, logged, duplicates) = tally(&admin, "memory").await?;
    target.reset(&admin).await?;
    let mut measure = Measure::millis("worker memory", "RSS", peak / 1024.0)
        .target("< 30 MB")
        .detail(json!({
            "jobs_in_flight": params.in_flight, "rss_at_start_mib": (start / 1024.0 * 10.0).round() / 10.0,
            "left": left, "log_rows": logged, "duplicate_log_rows": duplicates,
        }));
    measure.unit = "MiB";
    Ok(vec![measure])
}

/// The child: runs the runtime until `in_flight` handlers run at once, prints the RSS, lets
/// them finish and drains the rest.
pub async fn worker(config: pgqueuer::Settings, in_flight: u64, batch: i32) -> Result<(), String> {
    println!("rss_start_kib={}", rss_kib()?);
    let started = Arc::new(AtomicU64::new(0));
    // all_in: every handler has started; release: they may return (after the RSS is read).
    let (all_in, mut everyone_in) = watch::channel(false);
    let (release, released) = watch::channel(false);
    let mut pgq = PgQueuer::new(config);
    let counter = Arc::clone(&started);
    pgq.entrypoint(&format!("{PREFIX}memory"), move |_job| {
        let mut released = released.clone();
        if counter.fetch_add(1, Ordering::SeqCst) + 1 == in_flight {
            let _ = all_in.send(true);
        }
        async move {
            let _ = released.wait_for(|go| *go).await;
            Ok(())
        }
    });
    let options = RunOptions {
        batch_size: batch.clamp(1000, 10_000),
        max_concurrent_tasks: in_flight as usize,
        mode: Mode::Drain,
        dequeue_timeout: Duration::from_secs(1),
        ..RunOptions::default()
    };
    let report = async {
        let _ = everyone_in.wait_for(|go| *go).await;
        let rss = rss_kib();
        if let Ok(rss) = &rss {
            println!("rss_in_flight_kib={rss}");
        }
        let _ = release.send(true);
        rss
    };
    let run = pgq.run_until(options, std::future::pending());
    tokio::pin!(run);
    tokio::select! {
        ran = &mut run => {
            ran.map_err(|e| format!("the runtime failed: {e}"))?;
            Err(format!("the runtime finished before {in_flight} jobs were in flight"))
        }
        rss = report => {
            rss?;
            run.await.map_err(|e| format!("the runtime failed: {e}"))
        }
    }
}

/// This process's resident set, in KiB, from /proc/self/status.
fn rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/self/status".to_string())
}
