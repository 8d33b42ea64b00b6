//! Scenario 5, backlog: does a claim stay cheap as the queue grows? For each size (10k, 100k,
//! 1M by default) the queue is filled over 20 entrypoints; then one worker that serves all 20
//! claims a batch at a time (each batch is acked, untimed, and topped up afterwards). Reported:
//! the claim's time as the client sees it, its server time and the buffers it touched
//! (`EXPLAIN (ANALYZE, BUFFERS)`), without limits, with a concurrency limit on every
//! entrypoint, and for both baselines' claims (`baseline.rs`) over the same rows: raw SQL on
//! pgqueuer's table, and the minimal queue's.

use std::time::Instant;

use pgqueuer::tokio_postgres::Client;
use pgqueuer::{Ack, Claim, EntrypointSettings, JobState, Queries};
use serde_json::{Value, json};

use crate::Params;
use crate::baseline::Baseline;
use crate::report::{Measure, percentile, progress};
use crate::target::{Target, db, names};

const ENTRYPOINTS: u32 = 20;

pub async fn run(target: &Target, params: &Params) -> Result<Vec<Measure>, String> {
    let queries = Queries::new(target.connect().await?);
    queries.prepare_all().await.map_err(|e| e.to_string())?;
    let client = queries.client();
    let names = names("backlog", ENTRYPOINTS);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let worker = uuid::Uuid::new_v4();
    let mut measures = Vec::new();

    for &size in &params.backlog {
        let bar = progress(&format!("backlog {size}"), 4 * params.claims as u64);
        let (raw, raw_plan) =
            baseline_claims(target, client, params, &bar, Baseline::Raw, &names, size).await?;
        let (minimal, minimal_plan) = baseline_claims(
            target,
            client,
            params,
            &bar,
            Baseline::Minimal,
            &names,
            size,
        )
        .await?;
        target.reset(client).await?;
        Baseline::Raw
            .fill(client, "backlog", ENTRYPOINTS, size)
            .await?;

        let mut ours_by_variant = Vec::new();
        for limits in [false, true] {
            if limits {
                let settings = EntrypointSettings {
                    concurrency_limit: Some(100_000),
                    ..EntrypointSettings::default()
                };
                for name in &refs {
                    queries
                        .configure(name, &settings)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            let ours = claims(params, &bar, || async {
                let started = Instant::now();
                let jobs = queries
                    .dequeue(&refs, params.batch, Some(worker))
                    .await
                    .map_err(|e| e.to_string())?;
                let elapsed = started.elapsed();
                let acks: Vec<Ack> = jobs
                    .iter()
                    .map(|job| Ack {
                        claim: Claim::of(job),
                        status: JobState::Successful,
                        detail: None,
                    })
                    .collect();
                queries
                    .ack(&acks, Some(worker))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((elapsed, jobs.len()))
            })
            .await?;
            top_up(client, Baseline::Raw, ours.count).await?;
            let array = names
                .iter()
                .map(|n| literal(n))
                .collect::<Vec<_>>()
                .join(", ");
            let plan = explain(
                client,
                &DEQUEUE_EXPLAIN
                    .replace("$1", &format!("ARRAY[{array}]::text[]"))
                    .replace("$2", &params.batch.to_string()),
            )
            .await?;
            ours_by_variant.push((limits, ours, plan));
        }
        bar.finish_and_clear();

        for (limits, ours, plan) in ours_by_variant {
            let scenario = match limits {
                false => format!("backlog {size}"),
                true => format!("backlog {size} (limits)"),
            };
            measures.push(
                Measure::millis(&scenario, "claim p50", ours.p50)
                    .raw(raw.p50)
                    .minimal(minimal.p50)
                    .target("< 2 ms, flat")
                    .detail(json!({
                        "queued": size, "entrypoints": ENTRYPOINTS, "batch": params.batch,
                        "claims": params.claims, "claimed_per_claim": ours.count as f64 / params.claims as f64,
                        "p95_ms": ours.p95, "raw_p95_ms": raw.p95, "minimal_p95_ms": minimal.p95,
                        "raw_claimed_per_claim": raw.count as f64 / params.claims as f64,
                        "minimal_claimed_per_claim": minimal.count as f64 / params.claims as f64,
                    })),
            );
            measures.push(
                Measure::millis(&scenario, "claim server time", plan.time)
                    .raw(raw_plan.time)
                    .minimal(minimal_plan.time)
                    .detail(json!({"explain": "EXPLAIN (ANALYZE, BUFFERS)"})),
            );
            let mut buffers = Measure::millis(&scenario, "claim buffers", plan.buffers as f64)
                .raw(raw_plan.buffers as f64)
                .minimal(minimal_plan.buffers as f64)
                .detail(json!({"shared_hit": plan.hit, "shared_read": plan.read,
                               "raw_shared_hit": raw_plan.hit, "raw_shared_read": raw_plan.read,
                               "minimal_shared_hit": minimal_plan.hit,
                               "minimal_shared_read": minimal_plan.read}));
            buffers.unit = "buffers";
            measures.push(buffers);
        }
    }
    target.reset(client).await?;
    Baseline::Minimal.reset(target, client).await?;
    Ok(measures)
}

/// A baseline's claims over `size` queued jobs of its table spread over the entrypoints
/// `names`: one entrypoint at a time, in turn (the cheapest index-ordered claim there is, the
/// floor for a claim over many), each acked untimed and topped up; and one claim EXPLAINed.
async fn baseline_claims(
    target: &Target,
    client: &Client,
    params: &Params,
    bar: &indicatif::ProgressBar,
    baseline: Baseline,
    names: &[String],
    size: u64,
) -> Result<(Timings, Plan), String> {
    baseline.reset(target, client).await?;
    baseline.fill(client, "backlog", ENTRYPOINTS, size).await?;
    let worker = uuid::Uuid::new_v4();
    let turn = std::sync::atomic::AtomicUsize::new(0);
    let timings = claims(params, bar, || async {
        let name = &names[turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % names.len()];
        let started = Instant::now();
        let rows = client
            .query(baseline.claim(), &[name, &i64::from(params.batch), &worker])
            .await
            .map_err(db)?;
        let elapsed = started.elapsed();
        let ids: Vec<i64> = rows.iter().filter_map(|row| row.try_get(0).ok()).collect();
        client.execute(baseline.ack(), &[&ids]).await.map_err(db)?;
        Ok((elapsed, ids.len()))
    })
    .await?;
    top_up(client, baseline, timings.count).await?;
    let plan = explain(
        client,
        &baseline
            .claim_to_explain()
            .replace("$1", &literal(&names[0]))
            .replace("$2", &params.batch.to_string()),
    )
    .await?;
    baseline.reset(target, client).await?;
    Ok((timings, plan))
}

/// Claim timings: median, 95th percentile (ms) and the jobs claimed in all.
struct Timings {
    p50: f64,
    p95: f64,
    count: usize,
}

async fn claims<F, Fut>(
    params: &Params,
    bar: &indicatif::ProgressBar,
    claim: F,
) -> Result<Timings, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(std::time::Duration, usize), String>>,
{
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..params.claims {
        let (elapsed, claimed) = claim().await?;
        times.push(elapsed.as_secs_f64() * 1000.0);
        count += claimed;
        bar.inc(1);
    }
    times.sort_by(f64::total_cmp);
    Ok(Timings {
        p50: percentile(&times, 50.0),
        p95: percentile(&times, 95.0),
        count,
    })
}

/// Puts back as many jobs as were claimed, so each measurement sees the same queue size.
async fn top_up(client: &Client, baseline: Baseline, claimed: usize) -> Result<(), String> {
    baseline
        .fill(client, "backlog", ENTRYPOINTS, claimed as u64)
        .await
}

const DEQUEUE_EXPLAIN: &str = "SELECT * FROM pgq.dequeue($1, $2::int, gen_random_uuid())";
/// What `EXPLAIN (ANALYZE, BUFFERS)` says of one claim, run in a transaction that is rolled
/// back: its execution time (ms) and shared buffers hit and read (nested statements of the
/// function included).
struct Plan {
    time: f64,
    buffers: u64,
    hit: u64,
    read: u64,
}

/// A string as an SQL literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// EXPLAINs `statement` (parameters already inlined: EXPLAIN cannot take them through the
/// extended protocol's prepare).
async fn explain(client: &Client, statement: &str) -> Result<Plan, String> {
    client.batch_execute("BEGIN").await.map_err(db)?;
    let result = client
        .query_one(
            &format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}"),
            &[],
        )
        .await;
    client.batch_execute("ROLLBACK").await.map_err(db)?;
    let document: Value = result.map_err(db)?.try_get(0).map_err(db)?;
    let top = &document[0];
    let plan = &top["Plan"];
    let number = |key: &str| plan[key].as_u64().unwrap_or(0);
    let (hit, read) = (number("Shared Hit Blocks"), number("Shared Read Blocks"));
    Ok(Plan {
        time: top["Execution Time"].as_f64().unwrap_or(0.0),
        buffers: hit + read,
        hit,
        read,
    })
}
