//! `pgq`: the pgqueuer command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Operate a pgqueuer job queue in PostgreSQL.
///
/// Connection: --dsn (or PGQUEUER_DSN), else DATABASE_URL, else the libpq variables
/// PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE.
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
}

/// Exit codes scripts can rely on.
mod exit {
    /// The command failed (for `version`: the extension is not installed).
    pub const FAILURE: u8 = 1;
    /// No connection could be made, or the command line was wrong (as clap uses).
    pub const CONNECTION: u8 = 2;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match cli.dsn.as_deref() {
        Some(dsn) => pgqueuer::connect(dsn).await,
        None => pgqueuer::connect_from_env().await,
    };
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            eprintln!("pgq: {error}");
            return ExitCode::from(exit::CONNECTION);
        }
    };
    match cli.command {
        Command::Version => version(&client).await,
    }
}

async fn version(client: &pgqueuer::tokio_postgres::Client) -> ExitCode {
    println!("pgq {}", env!("CARGO_PKG_VERSION"));
    let installed = client
        .query_opt(
            "SELECT current_database()::text FROM pg_extension WHERE extname = 'pgqueuer'",
            &[],
        )
        .await;
    let database =
        match installed.and_then(|row| row.map(|row| row.try_get::<_, String>(0)).transpose()) {
            Ok(Some(database)) => database,
            Ok(None) => {
                eprintln!(
                    "pgq: the pgqueuer extension is not installed in this database \
                 (run CREATE EXTENSION pgqueuer)"
                );
                return ExitCode::from(exit::FAILURE);
            }
            Err(error) => {
                eprintln!("pgq: {error}");
                return ExitCode::from(exit::FAILURE);
            }
        };
    let extension = client.query_one("SELECT pgq.version()", &[]).await;
    match extension.and_then(|row| row.try_get::<_, String>(0)) {
        Ok(extension) => {
            println!("pgqueuer extension {extension} in database {database}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pgq: {error}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
