//! `pgq`: the pgqueuer command line.

mod dashboard;
mod failure;
mod http;
mod inspect;
mod install;
mod listen;
mod metrics;
mod operate;
mod queue;
mod table;
mod web;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use failure::{Failure, exit, finish, one_line};
use pgqueuer::{Capability, Queries, Schema};
use tokio_postgres::Client;

/// Operate a pgqueuer job queue in PostgreSQL.
///
/// Connection: --dsn (or PGQUEUER_DSN), else DATABASE_URL, else the libpq variables
/// PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE.
///
/// Exit codes: 0 success, 1 the command failed or found a mismatch, 2 no connection could be
/// made or the command line was wrong.
#[derive(Debug, Parser)]
#[command(name = "pgq", version, about, long_about)]
struct Cli {
    /// Connection string: `host=... dbname=...` or `postgres://user@host:port/dbname`.
    #[arg(long, global = true, env = "PGQUEUER_DSN", hide_env_values = true)]
    dsn: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the versions of this client and of the extension installed in the database.
    Version,
    /// Install pgqueuer in the database: the extension (CREATE EXTENSION pgqueuer), or with
    /// --sql-only the plain SQL script, for servers without the library.
    Install(install::InstallArgs),
    /// Remove pgqueuer and every job with it (DROP EXTENSION pgqueuer, or the schema of a
    /// SQL-only install).
    Uninstall(install::UninstallArgs),
    /// Update the extension to the newest version installed on the server, or a SQL-only
    /// install to this pgq's version.
    Upgrade(install::UpgradeArgs),
    /// Check that pgqueuer and its objects are present (or absent).
    Verify(install::VerifyArgs),
    /// Print a SQL-only script (install, upgrade, roles, privileges) for a migration tool.
    Sql(install::SqlArgs),
    /// Enqueue one job and print its id.
    Queue(queue::QueueArgs),
    /// List the cron schedules, or remove one (--remove ID) or an entrypoint's (--remove NAME).
    Schedules(inspect::SchedulesArgs),
    /// List the held jobs: failed on their last attempt with on_failure = 'hold' (their SQL
    /// state label is `failed`, hence the alias).
    #[command(visible_alias = "failed")]
    Held(table::Format),
    /// Put held jobs back in the queue; exit 1 unless every id was requeued.
    Requeue(inspect::IdsArgs),
    /// Cancel queued, picked or held jobs; exit 1 unless every id was cancelled.
    Cancel(inspect::IdsArgs),
    /// Queued, picked and held jobs per entrypoint, and the age of the oldest queued one.
    Backlog(table::Format),
    /// The workers holding picked jobs.
    Workers(table::Format),
    /// Picked jobs whose heartbeat is older than --threshold seconds.
    Stale(inspect::StaleArgs),
    /// Outcomes per entrypoint and status over the last --window seconds (from the per-minute
    /// statistics, pgq.stats).
    Stats(inspect::StatsArgs),
    /// Stop claiming an entrypoint's jobs (running ones finish; enqueue goes on).
    Pause(operate::EntrypointArg),
    /// Claim an entrypoint's jobs again.
    Resume(operate::EntrypointArg),
    /// Print the log's and the statistics' retention, or set them (--log, --stats).
    Retention(operate::RetentionArgs),
    /// Print the durability mode, or switch to durable, balanced or volatile.
    Durability(operate::DurabilityArgs),
    /// Print every notification on channel pgq, one JSON payload a line, until Ctrl-C.
    Listen,
    /// A live view, per entrypoint: queued, picked and held jobs, jobs per second with a
    /// sparkline, the oldest queued job's age and recent exceptions (q quits; --once prints
    /// one table and exits).
    Dashboard(dashboard::DashboardArgs),
    /// Serve Prometheus metrics over HTTP (GET /metrics) until Ctrl-C.
    Metrics(metrics::MetricsArgs),
    /// Serve the dashboard in a browser (live, by server-sent events) until Ctrl-C.
    Web(web::WebArgs),
}

impl Command {
    /// What the schema must have for this command: it is asked before the command runs, so
    /// that an older schema gets one line naming the release that brought it.
    fn needs(&self) -> &'static [Capability] {
        use Capability::*;
        match self {
            Command::Backlog(_) | Command::Workers(_) => &[ReadModel],
            Command::Stats(_) => &[Stats],
            Command::Pause(_) | Command::Resume(_) => &[Pause],
            Command::Retention(_) => &[Retention],
            Command::Durability(_) => &[Durability],
            Command::Dashboard(_) | Command::Metrics(_) | Command::Web(_) => &[Overview],
            _ => &[],
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Listen => return finish(listen::listen(cli.dsn.as_deref()).await),
        Command::Sql(args) => return finish(install::sql(args)),
        command => command,
    };
    let config = match cli.dsn.as_deref() {
        Some(dsn) => pgqueuer::config(dsn),
        None => pgqueuer::config_from_env(),
    };
    // The server's notices and warnings (an upgrade's report, say) are printed, as psql does.
    let client = match config {
        Ok(config) => {
            pgqueuer::connect_with_notices(&config, |notice| {
                eprintln!("pgq: server {}: {}", notice.severity(), notice.message());
            })
            .await
        }
        Err(error) => Err(error),
    };
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            eprintln!("pgq: {}", one_line(&error.to_string()));
            return ExitCode::from(exit::CONNECTION);
        }
    };
    let result = match requires(&client, command.needs()).await {
        Ok(()) => run(client, cli.dsn, command).await,
        Err(failure) => Err(failure),
    };
    finish(result)
}

/// Fails unless the database's schema has every one of `capabilities`.
async fn requires(client: &Client, capabilities: &[Capability]) -> Result<(), Failure> {
    if capabilities.is_empty() {
        return Ok(());
    }
    let schema = Schema::read(client).await?;
    for &capability in capabilities {
        schema.requires(capability)?;
    }
    Ok(())
}

/// Runs a command that needs a connection.
async fn run(client: Client, dsn: Option<String>, command: Command) -> Result<(), Failure> {
    match command {
        Command::Version => version(&client).await,
        Command::Install(args) => install::install(&client, args).await,
        Command::Uninstall(args) => install::uninstall(&client, args).await,
        Command::Upgrade(args) => install::upgrade(&client, args).await,
        Command::Verify(args) => install::verify(&client, args).await,
        Command::Queue(args) => queue::queue(client, args).await,
        Command::Schedules(args) => inspect::schedules(&Queries::new(client), args).await,
        Command::Held(format) => inspect::held(&Queries::new(client), format).await,
        Command::Requeue(args) => inspect::act(&Queries::new(client), args, "requeue").await,
        Command::Cancel(args) => inspect::act(&Queries::new(client), args, "cancel").await,
        Command::Backlog(format) => inspect::backlog(&Queries::new(client), format).await,
        Command::Workers(format) => inspect::workers(&Queries::new(client), format).await,
        Command::Stale(args) => inspect::stale(&Queries::new(client), args).await,
        Command::Stats(args) => inspect::stats(&Queries::new(client), args).await,
        Command::Pause(args) => operate::pause(&Queries::new(client), args).await,
        Command::Resume(args) => operate::resume(&Queries::new(client), args).await,
        Command::Retention(args) => operate::retention(&Queries::new(client), args).await,
        Command::Durability(args) => operate::durability(&Queries::new(client), args).await,
        Command::Dashboard(args) => dashboard::dashboard(client, dsn, args).await,
        Command::Metrics(args) => metrics::metrics(client, args).await,
        Command::Web(args) => web::web(client, args).await,
        Command::Listen | Command::Sql(_) => unreachable!("handled before connecting"),
    }
}

async fn version(client: &Client) -> Result<(), Failure> {
    println!("pgq {}", env!("CARGO_PKG_VERSION"));
    let schema = Schema::read(client).await?;
    match schema.describe() {
        Some(installed) => {
            println!("{installed} in database {}", schema.database());
            Ok(())
        }
        None => Err(Failure::new(format!(
            "pgqueuer is not installed in database {} (run pgq install)",
            schema.database()
        ))),
    }
}

#[cfg(test)]
mod tests {
    /// The command line reaches the database only through the client library: no statement
    /// of its own (what `pgq sql` and the dry runs print comes from the library too).
    const KEYWORDS: &[&str] = &[
        "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "LISTEN", "SHOW", "WITH",
    ];

    #[test]
    fn the_command_line_holds_no_sql() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        let mut files = vec![dir];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path)
                    .expect("a folder of cli/src")
                    .flatten()
                {
                    files.push(entry.path());
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let name = path.display().to_string();
            if name.ends_with(".sql") {
                found.push(name);
                continue;
            }
            for (number, line) in text.lines().enumerate() {
                // A string literal that opens with a keyword (built here, so that this test
                // does not find itself).
                let statement = KEYWORDS
                    .iter()
                    .any(|word| line.contains(&format!("{}{word} ", '"')));
                if statement {
                    found.push(format!("{name}:{}: {}", number + 1, line.trim()));
                }
            }
        }
        assert!(found.is_empty(), "SQL in the command line: {found:#?}");
    }
}
