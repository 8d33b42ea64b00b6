//! Connecting to PostgreSQL the way libpq users expect.
//!
//! tokio-postgres reads no environment variables, so this module applies libpq's rules
//! itself: a connection string (key/value `host=... dbname=...` or a `postgres://` URL)
//! wins; whatever it leaves out comes from `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
//! `PGDATABASE`, `PGAPPNAME` and `PGCONNECT_TIMEOUT`; and then from libpq's defaults (the
//! unix socket in `/var/run/postgresql` if it exists, else `localhost`; port 5432; the
//! operating-system user name).

use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

/// The unix socket directory libpq uses on Debian when no host is given.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection string or a `PG*` variable could not be understood.
    #[error("invalid connection settings: {0}")]
    Config(String),
    /// The server could not be reached or refused the connection.
    #[error("could not connect to PostgreSQL at {target}: {source}")]
    Connect {
        /// Where the connection was tried (`host=... port=... user=... dbname=...`).
        target: String,
        /// Why it failed.
        source: tokio_postgres::Error,
    },
    /// An argument was refused (SQLSTATE 22023); the message says what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// A dedupe key is already held by a queued or picked job (SQLSTATE 23505).
    #[error("{0}")]
    Duplicate(String),
    /// The database has no pgqueuer schema, or one of a version this client cannot work with
    /// ([`crate::SCHEMA_VERSIONS`]); the message names both versions and what to do.
    #[error("{0}")]
    Schema(String),
    /// Any other database error.
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// Connects with a connection string, filling what it leaves out from the `PG*` variables.
pub async fn connect(dsn: &str) -> Result<Client, Error> {
    connect_with(&config(dsn)?).await
}

/// Connects using `PGQUEUER_DSN`, else `DATABASE_URL`, else the libpq variables alone.
pub async fn connect_from_env() -> Result<Client, Error> {
    connect_with(&config_from_env()?).await
}

/// Connects with a resolved [`Config`]. The connection is driven by a spawned tokio task,
/// which ends when the returned [`Client`] is dropped. The server's notices and warnings go to
/// `tracing` (level info).
pub async fn connect_with(config: &Config) -> Result<Client, Error> {
    connect_with_notices(config, |notice| {
        tracing::info!(severity = notice.severity(), "{}", notice.message());
    })
    .await
}

/// [`connect_with`], handing every notice or warning the server sends (`RAISE NOTICE`, an
/// upgrade script's report) to `on_notice`.
pub async fn connect_with_notices(
    config: &Config,
    on_notice: impl Fn(&tokio_postgres::error::DbError) + Send + 'static,
) -> Result<Client, Error> {
    let (client, mut connection) =
        config
            .connect(NoTls)
            .await
            .map_err(|source| Error::Connect {
                target: describe(config),
                source,
            })?;
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notice(notice))) => on_notice(&notice),
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, "PostgreSQL connection ended with an error");
                    break;
                }
                None => break,
            }
        }
    });
    Ok(client)
}

/// The settings [`connect`] would use for `dsn`.
pub fn config(dsn: &str) -> Result<Config, Error> {
    resolve(Some(dsn), &|name| std::env::var(name).ok())
}

/// The settings [`connect_from_env`] would use.
pub fn config_from_env() -> Result<Config, Error> {
    resolve(None, &|name| std::env::var(name).ok())
}

/// Where a connection goes, for messages: every setting but the password.
pub(crate) fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    let mut text = format!("host={} port={}", hosts.join(","), ports.join(","));
    if let Some(user) = config.get_user() {
        text.push_str(&format!(" user={user}"));
    }
    if let Some(dbname) = config.get_dbname() {
        text.push_str(&format!(" dbname={dbname}"));
    }
    text
}

/// libpq's rules, with the environment passed in so that they can be tested.
fn resolve(dsn: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
    let var = |name: &str| env(name).filter(|value| !value.is_empty());
    let dsn = dsn
        .map(str::to_string)
        .or_else(|| var("PGQUEUER_DSN"))
        .or_else(|| var("DATABASE_URL"));
    let mut config = match dsn.as_deref() {
        Some(dsn) => dsn
            .parse::<Config>()
            .map_err(|error| Error::Config(format!("connection string: {error}")))?,
        None => Config::new(),
    };

    if config.get_hosts().is_empty() {
        let hosts = var("PGHOST").unwrap_or_else(|| {
            if std::path::Path::new(DEFAULT_SOCKET_DIR).exists() {
                DEFAULT_SOCKET_DIR.to_string()
            } else {
                "localhost".to_string()
            }
        });
        for host in hosts.split(',') {
            config.host(host);
        }
    }
    if config.get_ports().is_empty() {
        match var("PGPORT") {
            Some(ports) => {
                for port in ports.split(',') {
                    let port = port.trim().parse::<u16>().map_err(|_| {
                        Error::Config(format!(
                            "PGPORT={ports}: a port is a number from 1 to 65535"
                        ))
                    })?;
                    config.port(port);
                }
            }
            None => {
                config.port(5432);
            }
        }
    }
    if config.get_user().is_none() {
        let user = var("PGUSER")
            .or_else(|| var("USER"))
            .or_else(|| var("LOGNAME"))
            .ok_or_else(|| {
                Error::Config(
                    "no user name: set PGUSER or put user= in the connection string".into(),
                )
            })?;
        config.user(user);
    }
    if let Some(password) = var("PGPASSWORD").filter(|_| config.get_password().is_none()) {
        config.password(password);
    }
    if let Some(dbname) = var("PGDATABASE").filter(|_| config.get_dbname().is_none()) {
        config.dbname(dbname);
    }
    if config.get_application_name().is_none() {
        config.application_name(var("PGAPPNAME").as_deref().unwrap_or("pgqueuer"));
    }
    let timeout = var("PGCONNECT_TIMEOUT").filter(|_| config.get_connect_timeout().is_none());
    if let Some(seconds) = timeout {
        let seconds = seconds.trim().parse::<u64>().map_err(|_| {
            Error::Config(format!(
                "PGCONNECT_TIMEOUT={seconds}: a whole number of seconds"
            ))
        })?;
        if seconds > 0 {
            config.connect_timeout(Duration::from_secs(seconds));
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn resolve_with(dsn: Option<&str>, vars: &[(&str, &str)]) -> Result<Config, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(dsn, &|name| vars.get(name).cloned())
    }

    #[test]
    fn libpq_variables_fill_an_empty_environment_dsn() {
        let config = resolve_with(
            None,
            &[
                ("PGHOST", "/tmp/sock"),
                ("PGPORT", "6543"),
                ("PGUSER", "alice"),
                ("PGPASSWORD", "secret"),
                ("PGDATABASE", "jobs"),
            ],
        )
        .expect("valid settings");
        assert_eq!(
            config.get_hosts(),
            &[Host::Unix(PathBuf::from("/tmp/sock"))]
        );
        assert_eq!(config.get_ports(), &[6543]);
        assert_eq!(config.get_user(), Some("alice"));
        assert_eq!(config.get_password(), Some(&b"secret"[..]));
        assert_eq!(config.get_dbname(), Some("jobs"));
        assert_eq!(config.get_application_name(), Some("pgqueuer"));
    }

    #[test]
    fn the_dsn_wins_over_the_variables_and_they_fill_its_gaps() {
        let config = resolve_with(
            Some("postgres://bob@db.example:7000"),
            &[
                ("PGHOST", "elsewhere"),
                ("PGUSER", "alice"),
                ("PGDATABASE", "jobs"),
            ],
        )
        .expect("valid settings");
        assert_eq!(config.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(config.get_ports(), &[7000]);
        assert_eq!(config.get_user(), Some("bob"));
        assert_eq!(config.get_dbname(), Some("jobs"));
    }

    #[test]
    fn pgqueuer_dsn_comes_before_database_url() {
        let config = resolve_with(
            None,
            &[
                ("DATABASE_URL", "postgres://u@from-database-url/db"),
                ("PGQUEUER_DSN", "host=from-pgqueuer-dsn user=u"),
            ],
        )
        .expect("valid settings");
        assert_eq!(config.get_hosts(), &[Host::Tcp("from-pgqueuer-dsn".into())]);

        let config = resolve_with(
            None,
            &[("DATABASE_URL", "postgres://u@from-database-url/db")],
        )
        .expect("valid settings");
        assert_eq!(config.get_hosts(), &[Host::Tcp("from-database-url".into())]);
    }

    #[test]
    fn defaults_are_port_5432_and_the_os_user() {
        let config = resolve_with(None, &[("USER", "carol")]).expect("valid settings");
        assert_eq!(config.get_ports(), &[5432]);
        assert_eq!(config.get_user(), Some("carol"));
        assert_eq!(config.get_dbname(), None);
    }

    #[test]
    fn a_bad_port_is_a_clear_error() {
        let error = resolve_with(None, &[("PGPORT", "fifty"), ("USER", "u")])
            .expect_err("PGPORT is not a number");
        assert_eq!(
            error.to_string(),
            "invalid connection settings: PGPORT=fifty: a port is a number from 1 to 65535"
        );
    }

    #[test]
    fn a_bad_connection_string_is_a_clear_error() {
        let error = resolve_with(Some("host=x port=notaport"), &[]).expect_err("bad port");
        assert!(
            error
                .to_string()
                .starts_with("invalid connection settings: connection string:"),
            "{error}"
        );
    }

    #[test]
    fn the_described_target_leaves_out_the_password() {
        let config = resolve_with(Some("host=h port=1 user=u password=hunter2 dbname=d"), &[])
            .expect("valid settings");
        assert_eq!(describe(&config), "host=h port=1 user=u dbname=d");
    }
}
