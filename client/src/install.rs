//! Installing, updating, checking and removing pgqueuer in a database, for both kinds of
//! install: the extension (`CREATE EXTENSION pgqueuer`, which needs its files on the server)
//! and the SQL-only script ([`crate::sql_only`]). `pgq install`, `upgrade`, `uninstall` and
//! `verify` are these calls; [`Schema`](crate::Schema) says what is installed.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use crate::{Error, Install, Schema};

/// What `pgq install` runs for the extension.
pub const CREATE: &str = "CREATE EXTENSION pgqueuer;";

/// What `pgq uninstall` runs for the extension: `CREATE EXTENSION` made schema `pgq`, but the
/// schema is not a member of the extension, so it is dropped too (without CASCADE, so that
/// objects of someone else's in it are never dropped).
pub const DROP: &str = "DROP EXTENSION pgqueuer;\nDROP SCHEMA IF EXISTS pgq;";

/// What `pgq upgrade` runs for the extension: the chain of upgrade scripts to the server's
/// default version.
pub const UPDATE: &str = "ALTER EXTENSION pgqueuer UPDATE;";

/// What a version's schema holds: (version, whether a SQL-only install, [(kind, name,
/// arguments)]), kind being function, table, view or type.
type Manifest = (
    &'static str,
    bool,
    &'static [(&'static str, &'static str, usize)],
);

include!(concat!(env!("OUT_DIR"), "/manifests.rs"));

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

/// How schema `pgq` differs from what its version holds (this crate's version when pgqueuer
/// is not installed), one sentence each, empty when it does not: missing and extra functions
/// (by name and number of arguments), tables, views and types, and, for the extension,
/// objects that are not its members. What each release holds is built into the crate from its
/// frozen install script (`sql/` for this version): no scratch database.
pub async fn verify(client: &Client, schema: &Schema) -> Result<Vec<String>, Error> {
    let version = schema.version().unwrap_or(crate::sql_only::VERSION);
    let sql_only = schema.install() == Some(Install::SqlOnly);
    let mut differences = Vec::new();
    let expected: BTreeSet<(&str, &str, usize)> = match MANIFESTS
        .iter()
        .find(|(known, kind, _)| *known == version && *kind == sql_only)
    {
        Some((_, _, objects)) => objects.iter().copied().collect(),
        None => {
            differences.push(format!(
                "this pgq ({}) does not know what pgqueuer {version} holds",
                env!("CARGO_PKG_VERSION")
            ));
            return Ok(differences);
        }
    };
    let rows = client
        .query(
            "WITH ext AS (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'pgqueuer'), \
             objects AS ( \
                 SELECT 'function' AS kind, p.proname::text AS name, p.pronargs::int8 AS arguments, \
                        'pg_catalog.pg_proc'::regclass AS class, p.oid \
                 FROM pg_catalog.pg_proc p WHERE p.pronamespace = to_regnamespace('pgq') \
                 UNION ALL \
                 SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'table' END, c.relname::text, 0, \
                        'pg_catalog.pg_class'::regclass, c.oid \
                 FROM pg_catalog.pg_class c \
                 WHERE c.relnamespace = to_regnamespace('pgq') AND c.relkind IN ('r', 'p', 'v') \
                 UNION ALL \
                 SELECT 'type', t.typname::text, 0, 'pg_catalog.pg_type'::regclass, t.oid \
                 FROM pg_catalog.pg_type t \
                 WHERE t.typnamespace = to_regnamespace('pgq') AND t.typtype IN ('e', 'd')) \
             SELECT o.kind, o.name, o.arguments, \
                    EXISTS (SELECT FROM pg_catalog.pg_depend d, ext \
                            WHERE d.classid = o.class AND d.objid = o.oid \
                              AND d.refclassid = 'pg_catalog.pg_extension'::regclass \
                              AND d.refobjid = ext.oid AND d.deptype = 'e') \
             FROM objects o",
            &[],
        )
        .await?;
    let mut present = BTreeSet::new();
    for row in &rows {
        let (kind, name, arguments, member): (String, String, i64, bool) = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        );
        let arguments = usize::try_from(arguments).unwrap_or(0);
        if schema.install() == Some(Install::Extension) && !member {
            differences.push(format!(
                "{} is not a member of the extension",
                describe(&kind, &name, arguments)
            ));
        }
        present.insert((kind, name, arguments));
    }
    for (kind, name, arguments) in &expected {
        if !present.contains(&(kind.to_string(), name.to_string(), *arguments)) {
            differences.push(format!("missing {}", describe(kind, name, *arguments)));
        }
    }
    for (kind, name, arguments) in &present {
        if !expected.contains(&(kind.as_str(), name.as_str(), *arguments)) {
            differences.push(format!(
                "extra {} (pgqueuer {version} has none)",
                describe(kind, name, *arguments)
            ));
        }
    }
    Ok(differences)
}

/// `function pgq.ack (5 arguments)`, `table pgq.jobs`.
fn describe(kind: &str, name: &str, arguments: usize) -> String {
    match (kind, arguments) {
        ("function", 1) => format!("function pgq.{name} (1 argument)"),
        ("function", n) => format!("function pgq.{name} ({n} arguments)"),
        (kind, _) => format!("{kind} pgq.{name}"),
    }
}

/// Whether schema `pgq` exists.
pub async fn schema_exists(client: &Client) -> Result<bool, Error> {
    Ok(client
        .query_one("SELECT to_regnamespace('pgq') IS NOT NULL", &[])
        .await?
        .try_get(0)?)
}
