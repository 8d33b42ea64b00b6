//! Inspecting and operating the queue: `schedules`, `held`, `requeue`, `cancel`, `backlog`,
//! `workers`, `stale`, `stats` (from the rollup, pgq.stats). Each listing is one query, printed
//! by `table.rs` as JSON (`--json`) or as an aligned table.

use std::time::Duration;

use clap::Args;
use pgqueuer::{Queries, Report};

use crate::failure::Failure;
use crate::table::{Format, TableFormat, print};

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

pub async fn schedules(queries: &Queries, args: SchedulesArgs) -> Result<(), Failure> {
    if let Some(target) = args.remove {
        let removed = match target.parse::<i64>() {
            Ok(id) => queries.unschedule_id(id).await?,
            Err(_) => queries.unschedule(&target, None).await?,
        };
        if removed == 0 {
            return Err(Failure::new(format!("no schedule matched {target:?}")));
        }
        println!("removed {removed} schedule(s)");
        return Ok(());
    }
    show(queries, &Report::Schedules, &args.format).await
}

pub async fn held(queries: &Queries, format: Format) -> Result<(), Failure> {
    show(queries, &Report::Held, &format).await
}

/// `requeue` and `cancel`: acts on the ids; exits 1 unless every id was acted on.
pub async fn act(queries: &Queries, args: IdsArgs, what: &str) -> Result<(), Failure> {
    let done = match what {
        "requeue" => queries.requeue(&args.ids).await?,
        _ => queries.cancel(&args.ids).await?,
    };
    let mut asked = args.ids.clone();
    asked.sort_unstable();
    asked.dedup();
    let asked = asked.len() as u64;
    println!("{what}: {done} of {asked} job(s)");
    if done < asked {
        let why = match what {
            "requeue" => "only held jobs can be requeued",
            _ => "only queued, picked or held jobs can be cancelled",
        };
        return Err(Failure::new(format!(
            "{} id(s) were not acted on: {why}",
            asked - done
        )));
    }
    Ok(())
}

pub async fn backlog(queries: &Queries, format: Format) -> Result<(), Failure> {
    show(queries, &Report::Backlog, &format).await
}

pub async fn workers(queries: &Queries, format: Format) -> Result<(), Failure> {
    show(queries, &Report::Workers, &format).await
}

pub async fn stale(queries: &Queries, args: StaleArgs) -> Result<(), Failure> {
    let threshold = seconds("--threshold", args.threshold)?;
    show(queries, &Report::Stale { threshold }, &args.format).await
}

pub async fn stats(queries: &Queries, args: StatsArgs) -> Result<(), Failure> {
    let window = seconds("--window", args.window)?;
    show(queries, &Report::Stats { window }, &args.format).await
}

/// Prints a listing.
async fn show(queries: &Queries, report: &Report, format: &Format) -> Result<(), Failure> {
    print(&queries.report(report).await?, format, TableFormat::Plain)
}

/// A number of seconds given on the command line, as a duration.
fn seconds(flag: &str, value: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        Failure::new(format!(
            "{flag} must be a number of seconds from 0, not {value}"
        ))
    })
}
