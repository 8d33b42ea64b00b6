//! Operating the queue: `pause` and `resume` an entrypoint, the log's `retention`, the
//! `durability` mode. Each is a call of `Queries` (docs/operating.md).

use clap::Args;
use pgqueuer::{Durability, Interval, Queries};

use crate::failure::Failure;

#[derive(Debug, Args)]
pub struct EntrypointArg {
    /// The entrypoint.
    entrypoint: String,
}

#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Keep log rows this long (a PostgreSQL interval: '7 days', '12 hours'), or `forever`.
    #[arg(long, value_name = "INTERVAL|forever")]
    log: Option<String>,
    /// Keep the per-minute statistics this long (1 hour to 100 years).
    #[arg(long, value_name = "INTERVAL")]
    stats: Option<String>,
}

#[derive(Debug, Args)]
pub struct DurabilityArgs {
    /// Switch to this mode; without it, print the current one.
    #[arg(value_parser = ["durable", "balanced", "volatile"])]
    mode: Option<String>,
    /// Wait at most this long for the tables' locks (a PostgreSQL interval).
    #[arg(long, default_value = "5 seconds")]
    lock_timeout: String,
}

pub async fn pause(queries: &Queries, args: EntrypointArg) -> Result<(), Failure> {
    match queries.pause(&args.entrypoint).await? {
        true => println!(
            "paused {}: its jobs are not claimed until pgq resume",
            args.entrypoint
        ),
        false => println!("{} was already paused", args.entrypoint),
    }
    Ok(())
}

pub async fn resume(queries: &Queries, args: EntrypointArg) -> Result<(), Failure> {
    match queries.resume(&args.entrypoint).await? {
        true => println!("resumed {}", args.entrypoint),
        false => println!("{} was not paused", args.entrypoint),
    }
    Ok(())
}

pub async fn retention(queries: &Queries, args: RetentionArgs) -> Result<(), Failure> {
    if let Some(log) = &args.log {
        let log = (log != "forever").then(|| Interval::new(log.as_str()));
        queries.set_log_retention(log.as_ref()).await?;
    }
    if let Some(stats) = &args.stats {
        queries
            .set_stats_retention(&Interval::new(stats.as_str()))
            .await?;
    }
    let retention = queries.retention().await?;
    let log = retention
        .log
        .map(|log| log.to_string())
        .unwrap_or_else(|| "forever".to_string());
    println!("log retention: {log}\nstats retention: {}", retention.stats);
    Ok(())
}

pub async fn durability(queries: &Queries, args: DurabilityArgs) -> Result<(), Failure> {
    match args.mode {
        None => println!("{}", queries.durability().await?.label()),
        Some(mode) => {
            let mode = Durability::from_label(&mode)?;
            let previous = queries
                .set_durability(mode, &Interval::new(args.lock_timeout.as_str()))
                .await?;
            println!("durability: {} -> {}", previous.label(), mode.label());
        }
    }
    Ok(())
}
