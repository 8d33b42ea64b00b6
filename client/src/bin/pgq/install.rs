//! `pgq install`, `uninstall`, `upgrade` and `verify`.

use clap::{Args, ValueEnum};
use serde_json::json;
use tokio_postgres::Client;

use crate::Failure;

const CREATE: &str = "CREATE EXTENSION pgqueuer;";
/// CREATE EXTENSION made schema pgq, but it is not a member of the extension: drop it too
/// (without CASCADE, so objects of someone else's in it are never dropped).
const DROP: &str = "DROP EXTENSION pgqueuer;\nDROP SCHEMA IF EXISTS pgq;";
const UPDATE: &str = "ALTER EXTENSION pgqueuer UPDATE;";

/// The tables and functions `verify` expects in schema pgq.
const TABLES: &[&str] = &["jobs", "log", "entrypoints", "schedules"];
const FUNCTIONS: &[&str] = &[
    "enqueue",
    "enqueue_many",
    "dequeue",
    "heartbeat",
    "ack",
    "retry",
    "release",
    "cancel",
    "requeue",
    "clear",
    "job_status",
    "purge_log",
    "configure",
    "schedule",
    "unschedule",
    "tick",
    "version",
];

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Print the SQL instead of running it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Drop the extension even while jobs are queued or picked (they are lost).
    #[arg(long)]
    force: bool,
    /// Print the SQL instead of running it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Print the SQL instead of running it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// What to expect.
    #[arg(long, value_enum, default_value = "present")]
    expect: Expect,
    /// Print the result as JSON: {"expect", "ok", "differences": [...]}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Expect {
    /// The extension and all its objects.
    Present,
    /// Neither the extension nor schema pgq.
    Absent,
}

/// The current database's name and the installed extension version, if any.
pub async fn installed_version(client: &Client) -> Result<(String, Option<String>), Failure> {
    let row = client
        .query_one(
            "SELECT current_database()::text, \
                    (SELECT extversion FROM pg_extension WHERE extname = 'pgqueuer')",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

pub async fn install(client: &Client, args: InstallArgs) -> Result<(), Failure> {
    if args.dry_run {
        println!("{CREATE}");
        return Ok(());
    }
    let (database, installed) = installed_version(client).await?;
    if let Some(version) = installed {
        println!("pgqueuer {version} is already installed in database {database}");
        return Ok(());
    }
    let available = available_version(client).await?;
    if available.is_none() {
        return Err(Failure::new(
            "the pgqueuer extension's files are not installed on this PostgreSQL server \
             (no pgqueuer.control): build and install them first, see README.md, \
             \"Use it with your own PostgreSQL 15\" (cargo xtask install)",
        ));
    }
    client.batch_execute(CREATE).await?;
    let (_, version) = installed_version(client).await?;
    println!(
        "installed pgqueuer {} in database {database}",
        version.unwrap_or_default()
    );
    let preload: String = client
        .query_one("SHOW shared_preload_libraries", &[])
        .await?
        .try_get(0)?;
    if !preload
        .split(',')
        .any(|library| library.trim() == "pgqueuer")
    {
        eprintln!(
            "pgq: note: the library is not in shared_preload_libraries, so no background \
             worker fires schedules; workers call pgq.tick() themselves (docs/schedules.md)"
        );
    }
    Ok(())
}

pub async fn uninstall(client: &Client, args: UninstallArgs) -> Result<(), Failure> {
    if args.dry_run {
        println!("{DROP}");
        return Ok(());
    }
    let (database, installed) = installed_version(client).await?;
    if installed.is_none() {
        println!("pgqueuer is not installed in database {database}");
        return Ok(());
    }
    let active: i64 = client
        .query_one(
            "SELECT count(*) FROM pgq.jobs WHERE status IN ('queued', 'picked')",
            &[],
        )
        .await?
        .try_get(0)?;
    if active > 0 && !args.force {
        return Err(Failure::new(format!(
            "{active} jobs are queued or picked in database {database}: \
             run pgq uninstall --force to drop them with the extension"
        )));
    }
    client.batch_execute("DROP EXTENSION pgqueuer").await?;
    if let Err(error) = client.batch_execute("DROP SCHEMA IF EXISTS pgq").await {
        let error = Failure::from(error);
        return Err(Failure::new(format!(
            "uninstalled pgqueuer from database {database}, but schema pgq was left in place: {}",
            error.message
        )));
    }
    println!("uninstalled pgqueuer from database {database}");
    Ok(())
}

pub async fn upgrade(client: &Client, args: UpgradeArgs) -> Result<(), Failure> {
    if args.dry_run {
        println!("{UPDATE}");
        return Ok(());
    }
    let (database, before) = installed_version(client).await?;
    let Some(before) = before else {
        return Err(Failure::new(format!(
            "pgqueuer is not installed in database {database} (run pgq install)"
        )));
    };
    client.batch_execute(UPDATE).await?;
    let (_, after) = installed_version(client).await?;
    let after = after.unwrap_or_default();
    if after == before {
        println!("pgqueuer is already at {after}, the newest version installed on the server");
    } else {
        println!("upgraded pgqueuer from {before} to {after} in database {database}");
    }
    Ok(())
}

pub async fn verify(client: &Client, args: VerifyArgs) -> Result<(), Failure> {
    let (database, installed) = installed_version(client).await?;
    let mut differences = Vec::new();
    match args.expect {
        Expect::Present => {
            match &installed {
                None => differences.push("extension pgqueuer is not installed".to_string()),
                Some(version) => differences.extend(version_differences(client, version).await?),
            }
            for table in TABLES {
                if !exists(
                    client,
                    "SELECT to_regclass($1) IS NOT NULL",
                    &format!("pgq.{table}"),
                )
                .await?
                {
                    differences.push(format!("missing table pgq.{table}"));
                }
            }
            for function in FUNCTIONS {
                let sql = "SELECT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n \
                           ON n.oid = p.pronamespace WHERE n.nspname = 'pgq' AND p.proname = $1)";
                if !exists(client, sql, function).await? {
                    differences.push(format!("missing function pgq.{function}"));
                }
            }
        }
        Expect::Absent => {
            if let Some(version) = &installed {
                differences.push(format!("extension pgqueuer {version} is installed"));
            }
            if exists(client, "SELECT to_regnamespace($1) IS NOT NULL", "pgq").await? {
                differences.push("schema pgq exists".to_string());
            }
        }
    }
    let ok = differences.is_empty();
    if args.json {
        let expect = match args.expect {
            Expect::Present => "present",
            Expect::Absent => "absent",
        };
        let report =
            json!({"database": database, "expect": expect, "ok": ok, "differences": differences});
        println!("{report}");
    } else if ok {
        println!("ok: pgqueuer is as expected in database {database}");
    } else {
        for difference in &differences {
            println!("{difference}");
        }
    }
    match ok {
        true => Ok(()),
        false => Err(Failure::new(format!(
            "{} difference(s) from what was expected in database {database}",
            differences.len()
        ))),
    }
}

/// The version `CREATE EXTENSION pgqueuer` would install: the server's control file's default.
async fn available_version(client: &Client) -> Result<Option<String>, Failure> {
    Ok(client
        .query_opt(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'pgqueuer'",
            &[],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
}

/// An installed version that is behind the server's files, or that this client cannot use.
async fn version_differences(client: &Client, installed: &str) -> Result<Vec<String>, Failure> {
    let mut differences = Vec::new();
    let available = available_version(client).await?;
    if let Some(available) = available.filter(|available| available != installed) {
        differences.push(format!(
            "pgqueuer {installed} is installed, but the server's files are {available}: \
             run pgq upgrade"
        ));
    }
    if !pgqueuer::SCHEMA_VERSIONS.contains(&installed) {
        differences.push(format!(
            "this pgq ({}) works with schema {}, not {installed}",
            env!("CARGO_PKG_VERSION"),
            pgqueuer::SCHEMA_VERSIONS.join(", ")
        ));
    }
    Ok(differences)
}

async fn exists(client: &Client, sql: &str, name: &str) -> Result<bool, Failure> {
    Ok(client.query_one(sql, &[&name]).await?.try_get(0)?)
}
