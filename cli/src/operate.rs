//! Operating the queue: `pause` and `resume` an entrypoint, the log's `retention`, the
//! `durability` mode. Each is one SQL call of the admin API (docs/operating.md).

use clap::Args;
use tokio_postgres::Client;

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

pub async fn pause(client: &Client, args: EntrypointArg) -> Result<(), Failure> {
    let changed: bool = client
        .query_one("SELECT pgq.pause($1)", &[&args.entrypoint])
        .await?
        .try_get(0)?;
    match changed {
        true => println!(
            "paused {}: its jobs are not claimed until pgq resume",
            args.entrypoint
        ),
        false => println!("{} was already paused", args.entrypoint),
    }
    Ok(())
}

pub async fn resume(client: &Client, args: EntrypointArg) -> Result<(), Failure> {
    let changed: bool = client
        .query_one("SELECT pgq.resume($1)", &[&args.entrypoint])
        .await?
        .try_get(0)?;
    match changed {
        true => println!("resumed {}", args.entrypoint),
        false => println!("{} was not paused", args.entrypoint),
    }
    Ok(())
}

pub async fn retention(client: &Client, args: RetentionArgs) -> Result<(), Failure> {
    if let Some(log) = &args.log {
        let log = (log != "forever").then_some(log.as_str());
        client
            .execute("SELECT pgq.set_log_retention($1::text::interval)", &[&log])
            .await?;
    }
    if let Some(stats) = &args.stats {
        client
            .execute(
                "SELECT pgq.set_stats_retention($1::text::interval)",
                &[stats],
            )
            .await?;
    }
    // A fresh install has no settings row yet: the defaults.
    let row = client
        .query_one(
            "SELECT coalesce((SELECT log_retention::text FROM pgq.settings), \
                             CASE WHEN EXISTS (SELECT FROM pgq.settings) THEN 'forever' \
                                  ELSE '7 days' END), \
                    coalesce((SELECT stats_retention::text FROM pgq.settings), '90 days')",
            &[],
        )
        .await?;
    let (log, stats): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    println!("log retention: {log}\nstats retention: {stats}");
    Ok(())
}

pub async fn durability(client: &Client, args: DurabilityArgs) -> Result<(), Failure> {
    match args.mode {
        None => {
            let mode: String = client
                .query_one("SELECT pgq.durability()", &[])
                .await?
                .try_get(0)?;
            println!("{mode}");
        }
        Some(mode) => {
            let previous: String = client
                .query_one(
                    "SELECT pgq.set_durability($1, $2::text::interval)",
                    &[&mode, &args.lock_timeout],
                )
                .await?
                .try_get(0)?;
            println!("durability: {previous} -> {mode}");
        }
    }
    Ok(())
}
