//! Connection settings the way libpq users expect.
//!
//! tokio-postgres reads no environment variables, so this module applies libpq's rules
//! itself: a connection string (key/value `host=... dbname=...` or a `postgres://` URL)
//! wins; whatever it leaves out comes from `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
//! `PGDATABASE`, `PGAPPNAME` and `PGCONNECT_TIMEOUT`; and then from libpq's defaults (the
//! unix socket in `/var/run/postgresql` if it exists, else `localhost`; port 5432; the
//! operating-system user name).
//!
//! TLS follows libpq too (`tls.rs`): `sslmode` (all six modes), `sslrootcert`, `sslcert` and
//! `sslkey`, in the connection string (key/value or URL query) or as `PGSSLMODE`,
//! `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY`. tokio-postgres's own parser knows only three
//! modes and none of the files, so those keys are taken out of the string here and kept in
//! [`Settings`] beside tokio-postgres's [`Config`]. Connecting with them is `connect.rs`.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::Config;
use tokio_postgres::config::{Host, SslMode as PostgresSslMode};

use crate::error::Error;
use crate::tls::{RootCert, SslMode, Tls};

/// Where and how to connect: tokio-postgres's [`Config`] (which it derefs to) and the TLS
/// settings libpq has and tokio-postgres lacks. [`config`] and [`config_from_env`] make one
/// with libpq's rules; a [`Config`] converts into one (its `ssl_mode` kept, nothing verified).
#[derive(Debug, Clone)]
pub struct Settings {
    pub(crate) postgres: Config,
    pub(crate) tls: Tls,
}

impl Settings {
    /// The TLS settings.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// Replaces the TLS settings.
    pub fn set_tls(&mut self, tls: Tls) -> &mut Settings {
        self.tls = tls;
        self
    }
}

impl From<Config> for Settings {
    fn from(postgres: Config) -> Settings {
        let mode = match postgres.get_ssl_mode() {
            PostgresSslMode::Disable => SslMode::Disable,
            PostgresSslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        Settings {
            postgres,
            tls: Tls {
                mode,
                ..Tls::default()
            },
        }
    }
}

impl Deref for Settings {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.postgres
    }
}

impl DerefMut for Settings {
    fn deref_mut(&mut self) -> &mut Config {
        &mut self.postgres
    }
}

/// The unix socket directory libpq uses on Debian when no host is given.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The settings [`connect`](crate::connect) would use for `dsn`.
pub fn config(dsn: &str) -> Result<Settings, Error> {
    resolve(Some(dsn), &|name| std::env::var(name).ok())
}

/// The settings [`connect_from_env`](crate::connect_from_env) would use.
pub fn config_from_env() -> Result<Settings, Error> {
    resolve(None, &|name| std::env::var(name).ok())
}

/// Where a connection goes, for messages: every setting but the password, and the TLS mode.
pub(crate) fn describe(config: &Settings) -> String {
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
    if config.tls.mode != SslMode::Prefer {
        text.push_str(&format!(" sslmode={}", config.tls.mode.as_str()));
    }
    text
}

/// The TLS keys of a connection string, as written.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsKeys {
    mode: Option<String>,
    root_cert: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

impl TlsKeys {
    /// Takes `key` if it is a TLS key; false otherwise.
    fn take(&mut self, key: &str, value: &str) -> bool {
        let slot = match key {
            "sslmode" => &mut self.mode,
            "sslrootcert" => &mut self.root_cert,
            "sslcert" => &mut self.cert,
            "sslkey" => &mut self.key,
            _ => return false,
        };
        *slot = Some(value.to_string());
        true
    }
}

/// A connection string without its TLS keys, and those keys.
fn split_tls(dsn: &str) -> Result<(String, TlsKeys), Error> {
    let mut keys = TlsKeys::default();
    let trimmed = dsn.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let Some((base, query)) = trimmed.split_once('?') else {
            return Ok((dsn.to_string(), keys));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !keys.take(&percent_decode(key)?, &percent_decode(value)?) {
                kept.push(pair);
            }
        }
        let rest = match kept.is_empty() {
            true => base.to_string(),
            false => format!("{base}?{}", kept.join("&")),
        };
        return Ok((rest, keys));
    }
    // key=value pairs, as libpq reads them: a value is 'quoted' or runs to the next space, and
    // a backslash escapes the next character in either.
    let mut kept = Vec::new();
    let mut chars = dsn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(Error::Config(format!(
                "connection string: missing \"=\" after \"{key}\""
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(Error::Config(format!(
                            "connection string: unterminated quoted value of \"{key}\""
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                match c {
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        }
        if !keys.take(&key, &value) {
            let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{escaped}'"));
        }
    }
    Ok((kept.join(" "), keys))
}

fn percent_decode(text: &str) -> Result<String, Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| Error::Config(format!("connection string: bad escape in {text}")))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::Config(format!("connection string: {text} is not UTF-8")))
}

/// libpq's rules, with the environment passed in so that they can be tested.
fn resolve(dsn: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Error> {
    let var = |name: &str| env(name).filter(|value| !value.is_empty());
    let dsn = dsn
        .map(str::to_string)
        .or_else(|| var("PGQUEUER_DSN"))
        .or_else(|| var("DATABASE_URL"));
    let (mut config, keys) = match dsn.as_deref() {
        Some(dsn) => {
            let (rest, keys) = split_tls(dsn)?;
            let config = rest
                .parse::<Config>()
                .map_err(|error| Error::Config(format!("connection string: {error}")))?;
            (config, keys)
        }
        None => (Config::new(), TlsKeys::default()),
    };
    let mode = keys.mode.or_else(|| var("PGSSLMODE"));
    let tls = Tls {
        mode: mode
            .as_deref()
            .map(SslMode::parse)
            .transpose()?
            .unwrap_or_default(),
        root_cert: keys.root_cert.or_else(|| var("PGSSLROOTCERT")).map(|root| {
            match root.as_str() {
                "system" => RootCert::System,
                path => RootCert::File(PathBuf::from(path)),
            }
        }),
        cert: keys.cert.or_else(|| var("PGSSLCERT")).map(PathBuf::from),
        key: keys.key.or_else(|| var("PGSSLKEY")).map(PathBuf::from),
    }
    .resolved(
        mode.is_some(),
        var("HOME").as_deref().map(std::path::Path::new),
    )?;

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
    Ok(Settings {
        postgres: config,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::Check;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn resolve_with(dsn: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, Error> {
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

    #[test]
    fn tls_keys_are_taken_out_of_key_value_strings_and_urls() {
        let config = resolve_with(
            Some(
                "host=db port=5433 user=u sslmode=verify-full sslrootcert='/etc/my ca.pem' \
                 application_name='it''s' sslcert=/c.pem sslkey=/c.key",
            ),
            &[],
        );
        // '' is not an escape in libpq: the quoted value ends at the second quote.
        assert!(config.is_err(), "{config:?}");

        let config = resolve_with(
            Some(
                "host=db port=5433 user=u sslmode=verify-full sslrootcert='/etc/my ca.pem' \
                 application_name='it\\'s' sslcert=/c.pem sslkey=/c.key",
            ),
            &[],
        )
        .expect("valid settings");
        assert_eq!(config.get_hosts(), &[Host::Tcp("db".into())]);
        assert_eq!(config.get_application_name(), Some("it's"));
        assert_eq!(
            config.tls(),
            &Tls {
                mode: SslMode::VerifyFull,
                root_cert: Some(RootCert::File("/etc/my ca.pem".into())),
                cert: Some("/c.pem".into()),
                key: Some("/c.key".into()),
            }
        );

        let config = resolve_with(
            Some("postgres://u@db:5433/jobs?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3"),
            &[],
        )
        .expect("valid settings");
        assert_eq!(config.get_dbname(), Some("jobs"));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(config.tls().mode, SslMode::VerifyCa);
        assert_eq!(
            config.tls().root_cert,
            Some(RootCert::File("/etc/ca.pem".into()))
        );
    }

    #[test]
    fn the_pgssl_variables_fill_what_the_string_leaves_out() {
        let vars = [
            ("PGSSLMODE", "require"),
            ("PGSSLROOTCERT", "/root.pem"),
            ("USER", "u"),
        ];
        let config = resolve_with(None, &vars).expect("valid settings");
        assert_eq!(config.tls().mode, SslMode::Require);
        assert_eq!(
            config.tls().check().ok(),
            Some(Check::Chain),
            "require + root = verify-ca"
        );
        let config = resolve_with(Some("host=h sslmode=disable"), &vars).expect("valid");
        assert_eq!(config.tls().mode, SslMode::Disable, "the string wins");
    }

    #[test]
    fn tls_settings_that_cannot_work_are_clear_errors() {
        let error = resolve_with(Some("host=h user=u sslmode=verify"), &[]).expect_err("bad");
        assert!(
            error
                .to_string()
                .contains("sslmode=verify: use disable, allow"),
            "{error}"
        );
        let error = resolve_with(
            Some("host=h user=u sslmode=require sslrootcert=system"),
            &[],
        )
        .expect_err("system roots need verify-full");
        assert!(
            error.to_string().contains("needs sslmode=verify-full"),
            "{error}"
        );
        let config = resolve_with(Some("host=h user=u sslrootcert=system"), &[]).expect("valid");
        assert_eq!(config.tls().mode, SslMode::VerifyFull);
        let config = resolve_with(
            Some("host=h user=u sslmode=verify-full"),
            &[("HOME", "/nonexistent")],
        )
        .expect("parses");
        let error = config
            .tls()
            .check()
            .expect_err("no root certificate anywhere");
        assert!(
            error.to_string().contains("needs a root certificate"),
            "{error}"
        );
        let error = resolve_with(Some("host=h user=u sslcert=/c.pem"), &[]).expect_err("no key");
        assert!(
            error.to_string().contains("both sslcert and sslkey"),
            "{error}"
        );
    }
}
