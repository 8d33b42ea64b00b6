//! SQL-only installs: the queue without the extension's library, for managed PostgreSQL.
//!
//! Managed services (RDS, Cloud SQL, Azure, Supabase, Neon, ...) load no custom shared library
//! and give no superuser, so `CREATE EXTENSION pgqueuer` is out of reach there. A SQL-only
//! install creates the same schema `pgq` from a plain script: the same tables, functions,
//! views, roles and errors, built at compile time (`build.rs`, with `pgqueuer-release`) from
//! the same `sql/` files and release scripts as the extension (never a hand copy). What needs
//! the library is replaced:
//!
//! - the cron math (`pgq._cron_check`, `_cron_next`, `_cron_latest`, Rust in the extension) by
//!   its PL/pgSQL twin, `sql/sql-only/cron.sql`, tested against the Rust on thousands of
//!   generated expressions;
//! - the commit-time wake-up of the background worker (`pgq._wake_scheduler`) by a no-op,
//!   `sql/sql-only/scheduler.sql`: there is no background worker, and the runtime ticks
//!   schedules itself when none serves the database;
//! - `pgq.version()` returns the version the script was built for, since there is no
//!   `pg_extension` row to read.
//!
//! The script runs as a non-superuser database owner. With `CREATEROLE` (or when the roles
//! exist and the installer is a member of `pgq_owner`) it makes the roles as the extension
//! does; without it, it installs everything owned by the installer, grants nothing, and says
//! so in a WARNING: a DBA adds the roles later with [`roles_script`], then the installer runs
//! [`privileges_script`]. docs/managed-postgres.md has the details.

use pgqueuer_release::{Step, Version};

pub use pgqueuer_release::sql_only::{HELPERS, version_in_comment};

include!(concat!(env!("OUT_DIR"), "/sql_only.rs"));

/// The version a SQL-only install built by this crate records (`pgq.version()`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The cron math's PL/pgSQL twin and the no-op wake-up, as CREATE FUNCTION statements.
pub fn library_twins() -> String {
    TWINS.to_string()
}

/// Roles and privileges: `sql/privileges.sql` when the installer may make the roles (or they
/// are there for it), otherwise nothing for anyone but the installer and a WARNING.
pub fn privileges_script() -> String {
    PRIVILEGES.to_string()
}

/// What a role with CREATEROLE runs to add the roles to an install made without them, so that
/// `installer` can then run [`privileges_script`].
pub fn roles_script(installer: &str) -> String {
    pgqueuer_release::sql_only::roles(installer)
}

/// The whole SQL-only install script of this version. Run it in one transaction.
pub fn install_script() -> String {
    INSTALL.to_string()
}

/// Why a SQL-only install cannot be upgraded from a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoUpgrade(pub String);

impl std::fmt::Display for NoUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoUpgrade {}

/// The script that upgrades a SQL-only install at `from` to this version: each release's
/// extension upgrade script in turn, made fit for a SQL-only install (extension-only
/// statements dropped, the privileges section as [`privileges_script`] makes it), then the
/// cron twin again. Empty when `from` is this version.
pub fn upgrade_script(from: &str) -> Result<String, NoUpgrade> {
    upgrade_script_between(from, VERSION)
}

/// [`upgrade_script`] from `from` to `to`, which need not be this version (tests).
pub fn upgrade_script_between(from: &str, to: &str) -> Result<String, NoUpgrade> {
    let version = |text: &str| Version::parse(text).map_err(|error| NoUpgrade(error.to_string()));
    pgqueuer_release::sql_only::upgrade_script(STEPS, TWINS, version(from)?, version(to)?)
        .map_err(|error| NoUpgrade(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_holds_every_file_in_order_and_nothing_of_the_library() {
        let script = install_script();
        let mut at = 0;
        for name in pgqueuer_release::SQL_FILES {
            let position = script[at..]
                .find(&format!("-- sql/{name}.sql\n"))
                .unwrap_or_else(|| panic!("sql/{name}.sql missing or out of order"));
            at += position;
        }
        assert!(!script.contains("MODULE_PATHNAME"));
        assert!(!script.contains("pg_extension_config_dump"));
        assert!(!script.contains(pgqueuer_release::sql_only::VERSION_FROM_CATALOG));
        assert!(script.contains(&format!("SELECT '{VERSION}'::text")));
        assert!(TWINS.contains("Europe/Oslo") && TWINS.contains("UTC"));
    }

    /// `cargo xtask freeze` keeps each release's script (`extension/sql/
    /// pgqueuer-sql-only--V.sql`): later upgrades are tested from it, so it must not drift.
    #[test]
    fn a_released_version_keeps_its_script() {
        let frozen = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(
                pgqueuer_release::Script::SqlOnlyInstall(Version::parse(VERSION).expect("ours"))
                    .path(),
            );
        if let Ok(text) = std::fs::read_to_string(&frozen) {
            assert!(
                install_script() == text,
                "{VERSION} is released: its SQL-only script changed; bump the version"
            );
        }
    }

    #[test]
    fn an_upgrade_from_an_unknown_version_says_there_is_no_path() {
        let error = upgrade_script("0.0.9").expect_err("no such release");
        assert!(
            error.0.contains("no upgrade path from pgqueuer 0.0.9"),
            "{error}"
        );
        assert_eq!(upgrade_script(VERSION).as_deref(), Ok(""));
        let error = upgrade_script("latest").expect_err("not a version");
        assert!(error.0.contains("MAJOR.MINOR.PATCH"), "{error}");
    }
}
