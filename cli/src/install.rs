//! `pgq install`, `uninstall`, `upgrade`, `verify` and `sql`, for both kinds of install: the
//! extension (`CREATE EXTENSION pgqueuer`) and the SQL-only script (`pgqueuer::sql_only`).

use clap::{Args, ValueEnum};
use pgqueuer::install::{self, CREATE, DROP, UPDATE};
use pgqueuer::{Install, Schema};
use serde_json::json;
use tokio_postgres::Client;

use crate::failure::Failure;

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Print the SQL instead of running it.
    #[arg(long)]
    dry_run: bool,
    /// Install from a plain SQL script instead of the extension: for servers without
    /// pgqueuer's library, such as managed PostgreSQL (docs/managed-postgres.md).
    #[arg(long)]
    sql_only: bool,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(subcommand)]
    script: SqlScript,
}

#[derive(Debug, clap::Subcommand)]
enum SqlScript {
    /// The SQL-only install script of this version, for psql -1 -f or a migration tool.
    Install,
    /// The script that upgrades a SQL-only install at --from to this version.
    Upgrade {
        /// The version installed now (pgq version, or SELECT pgq.version()).
        #[arg(long)]
        from: String,
    },
    /// What a role with CREATEROLE runs to add pgqueuer's roles to a SQL-only install made
    /// without them.
    Roles {
        /// The role that installed pgqueuer (it is given pgq_owner).
        #[arg(long)]
        installer: String,
    },
    /// Roles, owners and grants of a SQL-only install, for its installer to run after the
    /// roles were added.
    Privileges,
}

/// `pgq sql ...`: prints a script; needs no connection.
pub fn sql(args: SqlArgs) -> Result<(), Failure> {
    use pgqueuer::sql_only;
    let script = match args.script {
        SqlScript::Install => sql_only::install_script(),
        SqlScript::Upgrade { from } => {
            sql_only::upgrade_script(&from).map_err(|error| Failure::new(error.0))?
        }
        SqlScript::Roles { installer } => sql_only::roles_script(&installer),
        SqlScript::Privileges => sql_only::privileges_script(),
    };
    print!("{script}");
    Ok(())
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

pub async fn install(client: &Client, args: InstallArgs) -> Result<(), Failure> {
    if args.dry_run {
        match args.sql_only {
            true => print!("{}", pgqueuer::sql_only::install_script()),
            false => println!("{CREATE}"),
        }
        return Ok(());
    }
    let schema = Schema::read(client).await?;
    let database = schema.database();
    if let Some(installed) = schema.describe() {
        println!("{installed} is already installed in database {database}");
        return Ok(());
    }
    if args.sql_only {
        install::install_sql_only(client).await?;
        println!(
            "installed pgqueuer {} (SQL-only install) in database {database}",
            pgqueuer::sql_only::VERSION
        );
        return Ok(());
    }
    if install::available_version(client).await?.is_none() {
        return Err(Failure::new(
            "the pgqueuer extension's files are not installed on this PostgreSQL server \
             (no pgqueuer.control): install them (README.md, cargo xtask install), or install \
             from plain SQL with pgq install --sql-only (docs/managed-postgres.md)",
        ));
    }
    install::create_extension(client).await?;
    let installed = Schema::read(client).await?;
    println!(
        "installed pgqueuer {} in database {database}",
        installed.version().unwrap_or_default()
    );
    if !install::preloaded(client).await? {
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
    let schema = Schema::read(client).await?;
    let database = schema.database();
    if schema.version().is_none() {
        println!("pgqueuer is not installed in database {database}");
        return Ok(());
    }
    let active = install::active_jobs(client).await?;
    if active > 0 && !args.force {
        return Err(Failure::new(format!(
            "{active} jobs are queued or picked in database {database}: \
             run pgq uninstall --force to drop them with the extension"
        )));
    }
    if schema.install() == Some(Install::SqlOnly) {
        install::drop_sql_only(client).await?;
        println!("uninstalled pgqueuer (SQL-only install) from database {database}");
        return Ok(());
    }
    install::drop_extension(client).await?;
    if let Err(error) = install::drop_empty_schema(client).await {
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
    let schema = Schema::read(client).await?;
    let database = schema.database();
    let before = match (schema.version(), schema.install()) {
        (None, _) => {
            return Err(Failure::new(format!(
                "pgqueuer is not installed in database {database} (run pgq install)"
            )));
        }
        (Some(before), Some(Install::SqlOnly)) => {
            if !install::upgrade_sql_only(client, before).await? {
                println!("pgqueuer (SQL-only install) is already at {before}, this pgq's version");
                return Ok(());
            }
            println!(
                "upgraded pgqueuer (SQL-only install) from {before} to {} in database {database}",
                pgqueuer::sql_only::VERSION
            );
            return Ok(());
        }
        (Some(before), _) => before,
    };
    install::update_extension(client).await?;
    let after = Schema::read(client).await?;
    let after = after.version().unwrap_or_default();
    if after == before {
        println!("pgqueuer is already at {after}, the newest version installed on the server");
    } else {
        println!("upgraded pgqueuer from {before} to {after} in database {database}");
    }
    Ok(())
}

pub async fn verify(client: &Client, args: VerifyArgs) -> Result<(), Failure> {
    let schema = Schema::read(client).await?;
    let database = schema.database();
    let mut differences = Vec::new();
    match args.expect {
        Expect::Present => {
            match schema.version() {
                None => differences.push("pgqueuer is not installed".to_string()),
                Some(_) => differences.extend(version_differences(client, &schema).await?),
            }
            differences.extend(install::verify(client, &schema).await?);
        }
        Expect::Absent => {
            if let Some(installed) = schema.describe() {
                differences.push(format!("{installed} is installed"));
            }
            if install::schema_exists(client).await? {
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

/// An installed version that is behind the server's files (or this pgq's, for a SQL-only
/// install), or that this client cannot use.
async fn version_differences(client: &Client, schema: &Schema) -> Result<Vec<String>, Failure> {
    let mut differences = Vec::new();
    let (newest, whose) = match schema.install() {
        Some(Install::SqlOnly) => (
            Some(pgqueuer::sql_only::VERSION.to_string()),
            "this pgq installs",
        ),
        _ => (
            install::available_version(client).await?,
            "the server's files are",
        ),
    };
    let installed = schema.version().unwrap_or_default();
    if let Some(newest) = newest.filter(|newest| newest != installed) {
        differences.push(format!(
            "pgqueuer {installed} is installed, but {whose} {newest}: run pgq upgrade"
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
