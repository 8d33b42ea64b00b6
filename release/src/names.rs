//! The names of the release scripts: what `extension/sql/` and `sql/upgrade/` hold.

use std::fmt;

use crate::Version;

/// The extension's name, which starts every script's name.
pub const EXTENSION: &str = "pgqueuer";

/// Released scripts, frozen: full install scripts, SQL-only install scripts and upgrade
/// scripts. cargo-pgrx copies the upgrade scripts found here into the package.
pub const SCRIPTS_DIR: &str = "extension/sql";

/// The hand-written deltas of upgrade steps, `A--B.sql`, from which the upgrade scripts are
/// assembled ([`crate::assemble`]).
pub const DELTAS_DIR: &str = "sql/upgrade";

/// The SQL sources of the current version.
pub const SQL_DIR: &str = "sql";

/// The sources of a SQL-only install's stand-ins for the library (the cron twin, the no-op
/// wake-up).
pub const SQL_ONLY_DIR: &str = "sql/sql-only";

/// One upgrade, from a version to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Step {
    /// The version it starts from (a release).
    pub from: Version,
    /// The version it leads to.
    pub to: Version,
}

impl Step {
    /// The upgrade script's file name, as PostgreSQL looks for it: `pgqueuer--A--B.sql`.
    pub fn script_name(self) -> String {
        format!("{EXTENSION}--{}--{}.sql", self.from, self.to)
    }

    /// Where the frozen upgrade script lives: `extension/sql/pgqueuer--A--B.sql`.
    pub fn script_path(self) -> String {
        format!("{SCRIPTS_DIR}/{}", self.script_name())
    }

    /// Where its delta lives: `sql/upgrade/A--B.sql`.
    pub fn delta_path(self) -> String {
        format!("{DELTAS_DIR}/{}--{}.sql", self.from, self.to)
    }

    /// The step a delta's file name (`A--B.sql`) names.
    pub fn of_delta(file_name: &str) -> Option<Step> {
        let (from, to) = file_name.strip_suffix(".sql")?.split_once("--")?;
        Some(Step {
            from: Version::parse(from).ok()?,
            to: Version::parse(to).ok()?,
        })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

/// A script of `extension/sql/`, by its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Script {
    /// `pgqueuer--V.sql`: the frozen install script of release V (`CREATE EXTENSION pgqueuer
    /// VERSION 'V'`).
    Install(Version),
    /// `pgqueuer--A--B.sql`: a frozen upgrade script.
    Upgrade(Step),
    /// `pgqueuer-sql-only--V.sql`: the frozen SQL-only install script of release V.
    SqlOnlyInstall(Version),
}

impl Script {
    /// What a file name of `extension/sql/` is; None for anything else.
    pub fn parse(file_name: &str) -> Option<Script> {
        let name = file_name.strip_suffix(".sql")?;
        if let Some(version) = name
            .strip_prefix(EXTENSION)
            .and_then(|rest| rest.strip_prefix("-sql-only--"))
        {
            return Version::parse(version).ok().map(Script::SqlOnlyInstall);
        }
        let versions = name.strip_prefix(EXTENSION)?.strip_prefix("--")?;
        match versions.split_once("--") {
            Some((from, to)) => Some(Script::Upgrade(Step {
                from: Version::parse(from).ok()?,
                to: Version::parse(to).ok()?,
            })),
            None => Version::parse(versions).ok().map(Script::Install),
        }
    }

    /// The file name.
    pub fn file_name(self) -> String {
        match self {
            Script::Install(version) => format!("{EXTENSION}--{version}.sql"),
            Script::Upgrade(step) => step.script_name(),
            Script::SqlOnlyInstall(version) => format!("{EXTENSION}-sql-only--{version}.sql"),
        }
    }

    /// The path from the repository's root.
    pub fn path(self) -> String {
        format!("{SCRIPTS_DIR}/{}", self.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_read_back_as_written() {
        let v = |text| Version::parse(text).expect("a version");
        let step = Step {
            from: v("0.5.0"),
            to: v("0.6.0"),
        };
        for (name, script) in [
            ("pgqueuer--0.6.0.sql", Script::Install(v("0.6.0"))),
            ("pgqueuer--0.5.0--0.6.0.sql", Script::Upgrade(step)),
            (
                "pgqueuer-sql-only--0.10.0.sql",
                Script::SqlOnlyInstall(v("0.10.0")),
            ),
        ] {
            assert_eq!(Script::parse(name), Some(script), "{name}");
            assert_eq!(script.file_name(), name);
        }
        for other in [
            "pgqueuer.control",
            "pgqueuer--0.6.sql",
            "pgqueuer--0.5.0--0.6.0--0.7.0.sql",
            "other--0.6.0.sql",
            "pgqueuer--0.6.0.sql.orig",
        ] {
            assert_eq!(Script::parse(other), None, "{other}");
        }
        assert_eq!(Step::of_delta("0.5.0--0.6.0.sql"), Some(step));
        assert_eq!(step.delta_path(), "sql/upgrade/0.5.0--0.6.0.sql");
        assert_eq!(
            step.script_path(),
            "extension/sql/pgqueuer--0.5.0--0.6.0.sql"
        );
        assert_eq!(Step::of_delta("README.md"), None);
    }
}
