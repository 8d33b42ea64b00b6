//! Installing, updating, checking and removing pgqueuer in a database, for both kinds of
//! install: the extension (`CREATE EXTENSION pgqueuer`, which needs its files on the server)
//! and the SQL-only script ([`crate::sql_only`]). `pgq install`, `upgrade`, `uninstall` and
//! `verify` are these calls; [`Schema`](crate::Schema) says what is installed.

use tokio_postgres::Client;

use crate::Error;

/// What `pgq install` runs for the extension.
pub const CREATE: &str = "CREATE EXTENSION pgqueuer;";

/// What `pgq uninstall` runs for the extension: `CREATE EXTENSION` made schema `pgq`, but the
/// schema is not a member of the extension, so it is dropped too (without CASCADE, so that
/// objects of someone else's in it are never dropped).
pub const DROP: &str = "DROP EXTENSION pgqueuer;\nDROP SCHEMA IF EXISTS pgq;";

/// What `pgq upgrade` runs for the extension: the chain of upgrade scripts to the server's
/// default version.
pub const UPDATE: &str = "ALTER EXTENSION pgqueuer UPDATE;";

/// The tables and functions a pgqueuer schema has (what `verify` checks today).
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

/// `CREATE EXTENSION pgqueuer` (its files must be on the server: [`available_version`]).
pub async fn create_extension(client: &Client) -> Result<(), Error> {
    client.batch_execute(CREATE).await.map_err(Error::from_db)
}

/// Runs this crate's SQL-only install script ([`crate::sql_only::install_script`]).
pub async fn install_sql_only(client: &Client) -> Result<(), Error> {
    client
        .batch_execute(&crate::sql_only::install_script())
        .await
        .map_err(Error::from_db)
}

/// The version `CREATE EXTENSION pgqueuer` would install (the server's control file's
/// default), or `None` when the extension's files are not on the server.
pub async fn available_version(client: &Client) -> Result<Option<String>, Error> {
    let row = client
        .query_opt(
            "SELECT default_version FROM pg_catalog.pg_available_extensions \
             WHERE name = 'pgqueuer'",
            &[],
        )
        .await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?)
}

/// Whether the server preloads the library (`shared_preload_libraries`), which the
/// background scheduler needs.
pub async fn preloaded(client: &Client) -> Result<bool, Error> {
    let libraries: String = client
        .query_one("SHOW shared_preload_libraries", &[])
        .await?
        .try_get(0)?;
    Ok(libraries
        .split(',')
        .any(|library| library.trim().trim_matches('"') == "pgqueuer"))
}

/// How many jobs are queued or picked (what an uninstall would lose).
pub async fn active_jobs(client: &Client) -> Result<i64, Error> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM pgq.jobs WHERE status IN ('queued', 'picked')",
            &[],
        )
        .await?
        .try_get(0)?)
}

/// `DROP EXTENSION pgqueuer` (and every job with it).
pub async fn drop_extension(client: &Client) -> Result<(), Error> {
    client
        .batch_execute("DROP EXTENSION pgqueuer")
        .await
        .map_err(Error::from_db)
}

/// Drops schema `pgq` if it is empty (after [`drop_extension`]).
pub async fn drop_empty_schema(client: &Client) -> Result<(), Error> {
    client
        .batch_execute("DROP SCHEMA IF EXISTS pgq")
        .await
        .map_err(Error::from_db)
}

/// Removes a SQL-only install: schema `pgq` and everything in it. The roles stay: they belong
/// to the server, and other databases may use them.
pub async fn drop_sql_only(client: &Client) -> Result<(), Error> {
    client
        .batch_execute("DROP SCHEMA pgq CASCADE")
        .await
        .map_err(Error::from_db)
}

/// `ALTER EXTENSION pgqueuer UPDATE`: to the server's default version.
pub async fn update_extension(client: &Client) -> Result<(), Error> {
    client.batch_execute(UPDATE).await.map_err(Error::from_db)
}

/// Runs the SQL-only upgrade from `from` to this crate's version; false when `from` is this
/// version already (nothing to run).
pub async fn upgrade_sql_only(client: &Client, from: &str) -> Result<bool, Error> {
    let script = crate::sql_only::upgrade_script(from).map_err(|error| Error::Schema(error.0))?;
    if script.is_empty() {
        return Ok(false);
    }
    client
        .batch_execute(&script)
        .await
        .map_err(Error::from_db)?;
    Ok(true)
}

/// What is missing of schema `pgq`, its tables and functions, one sentence each (empty
/// when nothing is).
pub async fn missing_objects(client: &Client) -> Result<Vec<String>, Error> {
    let mut missing = Vec::new();
    for table in TABLES {
        let present: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("pgq.{table}")],
            )
            .await?
            .try_get(0)?;
        if !present {
            missing.push(format!("missing table pgq.{table}"));
        }
    }
    for function in FUNCTIONS {
        let present: bool = client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc p \
                 JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname = 'pgq' AND p.proname = $1)",
                &[function],
            )
            .await?
            .try_get(0)?;
        if !present {
            missing.push(format!("missing function pgq.{function}"));
        }
    }
    Ok(missing)
}

/// Whether schema `pgq` exists.
pub async fn schema_exists(client: &Client) -> Result<bool, Error> {
    Ok(client
        .query_one("SELECT to_regnamespace('pgq') IS NOT NULL", &[])
        .await?
        .try_get(0)?)
}
