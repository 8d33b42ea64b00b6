//! The pgqueuer schema a database holds, read once: its version, how it is installed, and what
//! it can do. Callers ask it before a call that an older schema lacks
//! (`schema.requires(Capability::Pause)`), instead of calling and reading the error.
//!
//! A client works with the schemas of [`SCHEMA_VERSIONS`] (docs/updating.md, "Clients and
//! schemas"): the current one and the older ones it still knows how to call. Something that
//! came later than the oldest of them is a [`Capability`], with the release that brought it.

use pgqueuer_release::Version;
use tokio_postgres::Client;

use crate::Error;

/// The versions of the pgqueuer schema (`pgq.version()`) this client works with. The worker
/// runtime refuses to start on any other; see docs/updating.md for the order of an upgrade.
pub const SCHEMA_VERSIONS: &[&str] = &[
    env!("CARGO_PKG_VERSION"),
    "0.6.0",
    "0.5.0",
    "0.4.0",
    "0.3.0",
    "0.2.0",
];

/// What the SQL API says of its own version.
pub(crate) const VERSION: &str = "SELECT pgq.version()";

/// Something of the SQL API that came after the oldest schema of [`SCHEMA_VERSIONS`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// `pgq.fail`: ending jobs without retry (0.5.0).
    Fail,
    /// `pgq.configure(..., notify_completion)` and the `pgq_done` notifications (0.5.0).
    NotifyCompletion,
    /// The views `pgq.backlog` and `pgq.workers` (0.5.0).
    ReadModel,
    /// `pgq.pause`, `pgq.resume` and `pgq.entrypoints.paused` (0.6.0).
    Pause,
    /// `pgq.settings`, `pgq.set_log_retention` and `pgq.set_stats_retention` (0.6.0).
    Retention,
    /// The per-minute statistics, `pgq.stats` (0.6.0).
    Stats,
    /// `pgq.durability` and `pgq.set_durability` (0.6.0).
    Durability,
    /// The read model of the dashboards and metrics, `pgq.overview` (0.7.0).
    Overview,
    /// `pgq._scheduler_serves`, whether a scheduler serves the database (0.7.0).
    Scheduler,
}

impl Capability {
    /// Every capability.
    pub const ALL: &'static [Capability] = &[
        Capability::Fail,
        Capability::NotifyCompletion,
        Capability::ReadModel,
        Capability::Pause,
        Capability::Retention,
        Capability::Stats,
        Capability::Durability,
        Capability::Overview,
        Capability::Scheduler,
    ];

    /// The release that brought it.
    pub fn since(self) -> Version {
        match self {
            Capability::Fail | Capability::NotifyCompletion | Capability::ReadModel => {
                Version::new(0, 5, 0)
            }
            Capability::Pause
            | Capability::Retention
            | Capability::Stats
            | Capability::Durability => Version::new(0, 6, 0),
            Capability::Overview | Capability::Scheduler => Version::new(0, 7, 0),
        }
    }

    /// What it is, in words ("a schema without ...").
    pub fn what(self) -> &'static str {
        match self {
            Capability::Fail => "pgq.fail",
            Capability::NotifyCompletion => "completion notifications (notify_completion)",
            Capability::ReadModel => "views pgq.backlog and pgq.workers",
            Capability::Pause => "pause and resume (pgq.pause, pgq.resume)",
            Capability::Retention => "retention settings (pgq.settings)",
            Capability::Stats => "per-minute statistics (pgq.stats)",
            Capability::Durability => "durability modes (pgq.set_durability)",
            Capability::Overview => "read model (pgq.overview)",
            Capability::Scheduler => "scheduler probe (pgq._scheduler_serves)",
        }
    }
}

/// How pgqueuer is installed in a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Install {
    /// `CREATE EXTENSION pgqueuer`.
    Extension,
    /// The SQL-only script ([`crate::sql_only`]), known by its schema's comment.
    SqlOnly,
}

/// The pgqueuer schema of a database, as [`Schema::read`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    database: String,
    /// (version, how it is installed), when pgqueuer is installed.
    installed: Option<(String, Option<Install>)>,
}

impl Schema {
    /// Reads the current database's schema in one or two statements: the catalog (the
    /// extension's version, or a SQL-only install's schema comment), then `pgq.version()` when
    /// this role may call it (what the SQL API says of itself wins). Anyone may run it.
    pub async fn read(client: &Client) -> Result<Schema, Error> {
        let row = client
            .query_one(
                "SELECT current_database()::text, \
                        (SELECT extversion FROM pg_catalog.pg_extension \
                         WHERE extname = 'pgqueuer'), \
                        (SELECT pg_catalog.obj_description(oid, 'pg_namespace') \
                         FROM pg_catalog.pg_namespace WHERE nspname = 'pgq'), \
                        CASE WHEN to_regprocedure('pgq.version()') IS NULL THEN false \
                             ELSE has_schema_privilege('pgq', 'USAGE') \
                                  AND has_function_privilege('pgq.version()', 'EXECUTE') END",
                &[],
            )
            .await?;
        let database: String = row.try_get(0)?;
        let extension: Option<String> = row.try_get(1)?;
        let comment: Option<String> = row.try_get(2)?;
        let callable: bool = row.try_get(3)?;
        let mut installed = match (extension, comment) {
            (Some(version), _) => Some((version, Some(Install::Extension))),
            (None, Some(comment)) => crate::sql_only::version_in_comment(&comment)
                .map(|version| (version.to_string(), Some(Install::SqlOnly))),
            (None, None) => None,
        };
        if callable {
            let said: Option<String> = client.query_one(VERSION, &[]).await?.try_get(0)?;
            if let Some(said) = said {
                let install = installed.and_then(|(_, install)| install);
                installed = Some((said, install));
            }
        }
        Ok(Schema {
            database,
            installed,
        })
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The schema's version, if pgqueuer is installed.
    pub fn version(&self) -> Option<&str> {
        self.installed.as_ref().map(|(version, _)| version.as_str())
    }

    /// How pgqueuer is installed, if it is (and the install says how).
    pub fn install(&self) -> Option<Install> {
        self.installed.as_ref().and_then(|(_, install)| *install)
    }

    /// "pgqueuer extension 0.6.0" or "pgqueuer 0.6.0 (SQL-only install)"; None when pgqueuer
    /// is not installed.
    pub fn describe(&self) -> Option<String> {
        let (version, install) = self.installed.as_ref()?;
        Some(match install {
            Some(Install::Extension) => format!("pgqueuer extension {version}"),
            Some(Install::SqlOnly) => format!("pgqueuer {version} (SQL-only install)"),
            None => format!("pgqueuer {version}"),
        })
    }

    /// The version, or [`Error::Schema`] saying pgqueuer is not installed and how to install it.
    pub fn installed(&self) -> Result<&str, Error> {
        self.version().ok_or_else(|| {
            Error::Schema(format!(
                "pgqueuer is not installed in database {}: run pgq install \
                 (CREATE EXTENSION pgqueuer), or pgq install --sql-only",
                self.database
            ))
        })
    }

    /// The version, when this client works with it ([`SCHEMA_VERSIONS`]); otherwise
    /// [`Error::Schema`] naming both versions and what to do (upgrade the schema, or the
    /// client).
    pub fn supported(&self) -> Result<&str, Error> {
        let installed = self.installed()?;
        if SCHEMA_VERSIONS.contains(&installed) {
            return Ok(installed);
        }
        let older = Version::parse(installed).is_ok_and(|installed| {
            SCHEMA_VERSIONS
                .iter()
                .filter_map(|supported| Version::parse(supported).ok())
                .all(|supported| installed < supported)
        });
        let advice = if older {
            "update the schema first: pgq upgrade (ALTER EXTENSION pgqueuer UPDATE)"
        } else {
            "use a newer pgqueuer client"
        };
        Err(Error::Schema(format!(
            "database {} has pgqueuer schema {installed}, but this client ({}) works with \
             schema {}: {advice}",
            self.database,
            env!("CARGO_PKG_VERSION"),
            SCHEMA_VERSIONS.join(", ")
        )))
    }

    /// Whether the schema has `capability` (false when pgqueuer is not installed, or its
    /// version is not one this repository ever wrote).
    pub fn has(&self, capability: Capability) -> bool {
        self.version()
            .and_then(|version| Version::parse(version).ok())
            .is_some_and(|version| version >= capability.since())
    }

    /// Ok when the schema has `capability`; otherwise [`Error::Schema`] naming the release that
    /// brought it and this schema's version.
    pub fn requires(&self, capability: Capability) -> Result<(), Error> {
        let installed = self.installed()?;
        match self.has(capability) {
            true => Ok(()),
            false => Err(Error::Schema(format!(
                "database {} has pgqueuer schema {installed}, which has no {}: this needs \
                 pgqueuer schema {} or later: run pgq upgrade",
                self.database,
                capability.what(),
                capability.since()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(version: &str) -> Schema {
        Schema {
            database: "app".into(),
            installed: Some((version.into(), Some(Install::Extension))),
        }
    }

    #[test]
    fn a_capability_is_there_from_its_release_on() {
        assert!(at("0.6.0").has(Capability::Pause) && at("0.10.0").has(Capability::Pause));
        assert!(!at("0.5.0").has(Capability::Pause) && at("0.5.0").has(Capability::Fail));
        assert!(!at("dev").has(Capability::Fail));
        let missing = at("0.5.0")
            .requires(Capability::Stats)
            .expect_err("0.6.0 brought it");
        assert_eq!(
            missing.to_string(),
            "database app has pgqueuer schema 0.5.0, which has no per-minute statistics \
             (pgq.stats): this needs pgqueuer schema 0.6.0 or later: run pgq upgrade"
        );
        for capability in Capability::ALL {
            let since = capability.since();
            assert!(
                SCHEMA_VERSIONS.contains(&since.to_string().as_str()),
                "{capability:?} came with {since}, which this client does not work with"
            );
        }
    }

    #[test]
    fn an_unknown_schema_is_refused_with_what_to_do() {
        let older = at("0.1.0").supported().expect_err("too old").to_string();
        assert!(older.contains("pgq upgrade"), "{older}");
        let newer = at("9.0.0").supported().expect_err("too new").to_string();
        assert!(newer.contains("use a newer pgqueuer client"), "{newer}");
        assert_eq!(at("0.5.0").supported().ok(), Some("0.5.0"));
        let none = Schema {
            database: "app".into(),
            installed: None,
        };
        assert!(none.installed().is_err() && !none.has(Capability::Fail));
        assert_eq!(
            at("0.6.0").describe().as_deref(),
            Some("pgqueuer extension 0.6.0")
        );
    }
}
