//! A peer, side by side: pgmq (pure SQL), installed from the SQL file that ships inside its PyPI
//! package (`pip download pgmq`, then `pgmq/sql/pgmq.sql` in the wheel) into schema `pgmq` of
//! the same database, with one queue `bench` (`pgmq.create`). Used as pgmq documents it:
//!
//! - enqueue: `pgmq.send_batch(queue, jsonb[])`, `--enqueue-batch` messages a call, from
//!   `--clients` connections (as the enqueue scenario);
//! - drain: `--connections` clients (as many as the runtime has) looping `pgmq.read(queue, vt,
//!   --batch)` then `pgmq.archive(queue, ids)` until the queue is empty.
//!
//! Each is reported beside the raw-SQL baseline measured again in this scenario, so that its
//! ratio compares with the enqueue and drain scenarios' ratios of the same run.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pgqueuer::tokio_postgres::Client;
use serde_json::{Value, json};

use crate::Params;
use crate::report::{Measure, progress};
use crate::target::{Target, db};

const QUEUE: &str = "bench";

/// Runs the scenario with pgmq's SQL file at `path` (its version is read from the file
/// `VERSION` beside it, as the package ships it).
pub async fn run(target: &Target, params: &Params, path: &Path) -> Result<Vec<Measure>, String> {
    let sql = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read pgmq's SQL at {}: {e}", path.display()))?;
    let version = path
        .parent()
        .and_then(|dir| std::fs::read_to_string(dir.join("VERSION")).ok())
        .map(|version| version.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let admin = target.connect().await?;
    install(&admin, &sql).await?;

    reset(&admin).await?;
    let sent = send(target, params).await?;
    let raw_enqueue = crate::enqueue::raw_seconds(target, params).await?;

    reset(&admin).await?;
    admin
        .execute(
            "SELECT count(*) FROM pgmq.send_batch($1, \
             array_fill('{\"user\": 12345}'::jsonb, ARRAY[$2::int]))",
            &[&QUEUE, &(params.jobs as i32)],
        )
        .await
        .map_err(db)?;
    settle(&admin).await?;
    let (drained, left, archived) = drain(target, params).await?;
    reset(&admin).await?;
    let raw_drain = crate::drain::raw_seconds(target, params).await?;

    let detail = |seconds: f64, extra: Value| {
        let mut detail = json!({
            "pgmq": version, "jobs": params.jobs, "seconds": seconds,
        });
        if let (Some(detail), Some(extra)) = (detail.as_object_mut(), extra.as_object()) {
            detail.extend(extra.clone());
        }
        detail
    };
    Ok(vec![
        Measure::rate("pgmq enqueue (send_batch)", params.jobs, sent)
            .raw(params.jobs as f64 / raw_enqueue)
            .detail(detail(
                sent,
                json!({"batch": params.enqueue_batch, "connections": params.clients}),
            )),
        Measure::rate("pgmq drain (read + archive)", params.jobs, drained)
            .raw(params.jobs as f64 / raw_drain)
            .detail(detail(
                drained,
                json!({"batch": params.batch, "connections": params.connections,
                       "left": left, "archived": archived}),
            )),
    ])
}

/// Installs pgmq's SQL unless schema pgmq exists, and creates the queue.
async fn install(admin: &Client, sql: &str) -> Result<(), String> {
    let installed: bool = admin
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'pgmq')",
            &[],
        )
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    if !installed {
        admin
            .batch_execute(sql)
            .await
            .map_err(|e| format!("installing pgmq's SQL: {}", db(e)))?;
    }
    admin
        .execute("SELECT pgmq.create($1)", &[&QUEUE])
        .await
        .map_err(db)?;
    Ok(())
}

async fn reset(admin: &Client) -> Result<(), String> {
    admin
        .batch_execute("TRUNCATE pgmq.q_bench, pgmq.a_bench")
        .await
        .map_err(db)?;
    settle(admin).await
}

async fn settle(admin: &Client) -> Result<(), String> {
    admin
        .batch_execute("VACUUM ANALYZE pgmq.q_bench, pgmq.a_bench")
        .await
        .map_err(db)?;
    let _ = admin.batch_execute("CHECKPOINT").await;
    Ok(())
}

/// `pgmq.send_batch` from `params.clients` connections; returns the seconds taken.
async fn send(target: &Target, params: &Params) -> Result<f64, String> {
    let bar = progress("pgmq enqueue", params.jobs);
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
            let statement = client
                .prepare("SELECT count(*) FROM pgmq.send_batch($1, $2::jsonb[])")
                .await
                .map_err(db)?;
            let message = json!({"user": 12345});
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= total {
                    return Ok::<(), String>(());
                }
                let n = batch.min(total - start) as usize;
                let messages = vec![&message; n];
                client
                    .execute(&statement, &[&QUEUE, &messages])
                    .await
                    .map_err(db)?;
                bar.inc(n as u64);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    bar.finish_and_clear();
    Ok(started.elapsed().as_secs_f64())
}

/// `params.connections` clients loop read + archive until the queue is empty; returns the
/// seconds taken, the messages left and the archived ones.
async fn drain(target: &Target, params: &Params) -> Result<(f64, i64, i64), String> {
    let bar = progress("pgmq drain", params.jobs);
    let mut clients = Vec::new();
    for _ in 0..params.connections {
        clients.push(target.connect().await?);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let (bar, batch) = (bar.clone(), params.batch);
        tasks.spawn(async move {
            let read = client
                .prepare("SELECT msg_id FROM pgmq.read($1, 30, $2)")
                .await
                .map_err(db)?;
            let archive = client
                .prepare("SELECT count(*) FROM pgmq.archive($1, $2::bigint[])")
                .await
                .map_err(db)?;
            loop {
                let rows = client.query(&read, &[&QUEUE, &batch]).await.map_err(db)?;
                if rows.is_empty() {
                    return Ok::<(), String>(());
                }
                let ids: Vec<i64> = rows.iter().filter_map(|row| row.try_get(0).ok()).collect();
                client
                    .execute(&archive, &[&QUEUE, &ids])
                    .await
                    .map_err(db)?;
                bar.inc(ids.len() as u64);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let admin = target.connect().await?;
    let row = admin
        .query_one(
            "SELECT (SELECT count(*) FROM pgmq.q_bench), (SELECT count(*) FROM pgmq.a_bench)",
            &[],
        )
        .await
        .map_err(db)?;
    Ok((
        seconds,
        row.try_get(0).map_err(db)?,
        row.try_get(1).map_err(db)?,
    ))
}
