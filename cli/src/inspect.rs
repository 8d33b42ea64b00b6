//! Inspecting and operating the queue: `schedules`, `held`, `requeue`, `cancel`, `backlog`,
//! `workers`, `stale`, `stats` (from the rollup, pgq.stats). Each listing is one query, printed
//! by `table.rs` as JSON (`--json`) or as an aligned table.

use clap::Args;
use tokio_postgres::Client;

use crate::failure::Failure;
use crate::table::{Format, list};

#[derive(Debug, Args)]
pub struct SchedulesArgs {
    /// Remove a schedule by id, or all schedules of an entrypoint by name.
    #[arg(long, value_name = "ID|ENTRYPOINT")]
    remove: Option<String>,
    #[command(flatten)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct IdsArgs {
    /// Job ids.
    #[arg(required = true)]
    ids: Vec<i64>,
}

#[derive(Debug, Args)]
pub struct StaleArgs {
    /// Picked jobs whose heartbeat is older than this many seconds.
    #[arg(long, default_value_t = 30.0)]
    threshold: f64,
    #[command(flatten)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The window, in seconds, back from now.
    #[arg(long, default_value_t = 3600.0)]
    window: f64,
    #[command(flatten)]
    format: Format,
}

pub async fn schedules(client: &Client, args: SchedulesArgs) -> Result<(), Failure> {
    if let Some(target) = args.remove {
        let removed: i64 = match target.parse::<i64>() {
            Ok(id) => {
                let sql = "SELECT pgq.unschedule_id($1)";
                client.query_one(sql, &[&id]).await?.try_get(0)?
            }
            Err(_) => {
                let sql = "SELECT pgq.unschedule($1)";
                client.query_one(sql, &[&target]).await?.try_get(0)?
            }
        };
        if removed == 0 {
            return Err(Failure::new(format!("no schedule matched {target:?}")));
        }
        println!("removed {removed} schedule(s)");
        return Ok(());
    }
    let sql = "SELECT id, entrypoint, expression, timezone, next_run, last_run, enabled \
               FROM pgq.schedules ORDER BY id";
    list(client, sql, &[], &args.format).await
}

pub async fn held(client: &Client, format: Format) -> Result<(), Failure> {
    let sql = "SELECT id, entrypoint, priority, attempts, updated AS failed_at, \
                      detail->>'message' AS error \
               FROM pgq.jobs WHERE status = 'failed' ORDER BY id";
    list(client, sql, &[], &format).await
}

/// `requeue` and `cancel`: acts on the ids; exits 1 unless every id was acted on.
pub async fn act(client: &Client, args: IdsArgs, what: &str) -> Result<(), Failure> {
    let sql = match what {
        "requeue" => "SELECT pgq.requeue($1)",
        _ => "SELECT pgq.cancel($1)",
    };
    let done: i64 = client.query_one(sql, &[&args.ids]).await?.try_get(0)?;
    let mut asked = args.ids.clone();
    asked.sort_unstable();
    asked.dedup();
    println!("{what}: {done} of {} job(s)", asked.len());
    if done < asked.len() as i64 {
        let why = match what {
            "requeue" => "only held jobs can be requeued",
            _ => "only queued, picked or held jobs can be cancelled",
        };
        return Err(Failure::new(format!(
            "{} id(s) were not acted on: {why}",
            asked.len() as i64 - done
        )));
    }
    Ok(())
}

pub async fn backlog(client: &Client, format: Format) -> Result<(), Failure> {
    let sql = "SELECT entrypoint, queued, ready, picked, held, \
                      round(oldest_queued_seconds::numeric, 1) AS oldest_queued_seconds \
               FROM pgq.backlog ORDER BY entrypoint";
    list(client, sql, &[], &format).await
}

pub async fn workers(client: &Client, format: Format) -> Result<(), Failure> {
    let sql = "SELECT worker_id, jobs, entrypoints, oldest_heartbeat, last_heartbeat \
               FROM pgq.workers ORDER BY worker_id";
    list(client, sql, &[], &format).await
}

pub async fn stale(client: &Client, args: StaleArgs) -> Result<(), Failure> {
    let sql = "SELECT id, entrypoint, worker_id, heartbeat, \
                      round(extract(epoch FROM now() - heartbeat)::numeric, 1) AS seconds_since \
               FROM pgq.jobs WHERE status = 'picked' \
                 AND heartbeat < now() - make_interval(secs => $1::float8) ORDER BY heartbeat";
    list(client, sql, &[&args.threshold], &args.format).await
}

pub async fn stats(client: &Client, args: StatsArgs) -> Result<(), Failure> {
    // The rollup, not the log: whole minutes that overlap the window, so a window shorter than
    // a minute still counts its minute. Outcomes of the last minute or so are not folded yet.
    let sql = "SELECT entrypoint, status, sum(count)::bigint AS count, \
                      round((sum(count) / $1::float8)::numeric, 3) AS per_second, \
                      round((sum(run_seconds_sum) / sum(count))::numeric, 3) AS mean_run_seconds, \
                      round(max(run_seconds_max)::numeric, 3) AS max_run_seconds \
               FROM pgq.stats \
               WHERE minute > now() - make_interval(secs => $1::float8) - interval '1 minute' \
               GROUP BY entrypoint, status ORDER BY entrypoint, status";
    list(client, sql, &[&args.window], &args.format).await
}
