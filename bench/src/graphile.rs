//! A peer, side by side: graphile-worker (Node.js), run by `bench/peers/graphile-worker.cjs`
//! against the same database (its own schema, `graphile_worker`). The script enqueues the jobs
//! with `addJobs` in batches of `--enqueue-batch`, then drains them with graphile-worker's runner
//! set up for throughput as its documentation recommends: concurrency 24, a pool of 25, a local
//! queue of 100 and batched completion. `--graphile-modules` names a `node_modules` holding
//! graphile-worker (`npm install --prefix target/peers/graphile graphile-worker@0.18.0`).
//!
//! Each number is reported beside the raw-SQL baseline measured again in this scenario.

use std::path::Path;

use pgqueuer::tokio_postgres::Config;
use pgqueuer::tokio_postgres::config::Host;
use serde_json::Value;

use crate::Params;
use crate::report::Measure;
use crate::target::Target;

/// The script, from this crate's source tree.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/graphile-worker.cjs");

pub async fn run(target: &Target, params: &Params, modules: &Path) -> Result<Vec<Measure>, String> {
    let url = node_url(&target.config)?;
    let (jobs, batch) = (params.jobs.to_string(), params.enqueue_batch.to_string());
    let output = tokio::process::Command::new("node")
        .args([SCRIPT, url.as_str(), jobs.as_str(), batch.as_str()])
        .env("NODE_PATH", modules)
        .output()
        .await
        .map_err(|e| format!("cannot run node (graphile-worker needs Node.js): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the graphile-worker run failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| format!("graphile-worker printed no result: {stdout}"))?;
    let seconds = |key: &str| {
        result[key]
            .as_f64()
            .ok_or_else(|| format!("graphile-worker's result has no {key}: {result}"))
    };
    let (enqueued, drained) = (seconds("enqueue_seconds")?, seconds("drain_seconds")?);
    let raw_enqueue = crate::enqueue::raw_seconds(target, params).await?;
    let admin = target.connect().await?;
    target.reset(&admin).await?;
    let raw_drain = crate::drain::raw_seconds(target, params).await?;
    Ok(vec![
        Measure::rate("graphile-worker enqueue (addJobs)", params.jobs, enqueued)
            .raw(params.jobs as f64 / raw_enqueue)
            .detail(result.clone()),
        Measure::rate("graphile-worker drain (runner)", params.jobs, drained)
            .raw(params.jobs as f64 / raw_drain)
            .detail(result),
    ])
}

/// The target as a `postgres://` URL for node-postgres (a socket directory as the host,
/// percent-encoded).
fn node_url(config: &Config) -> Result<String, String> {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string().replace('/', "%2F"),
        None => return Err("the target has no host".into()),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let dbname = config.get_dbname().unwrap_or(user);
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    Ok(format!(
        "postgres://{user}{password}@{host}:{port}/{dbname}"
    ))
}
