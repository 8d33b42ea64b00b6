//! Connecting to PostgreSQL with [`Settings`] (`config.rs`): plain or TLS as libpq's
//! `sslmode` says (`tls.rs`), the connection driven by a task of its own, the server's notices
//! handed to a callback.

use tokio_postgres::config::{Host, SslMode as PostgresSslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{Settings, config, config_from_env, describe};
use crate::error::Error;
use crate::tls::{Check, SslMode};

/// A connection's stream: TLS or not, as the settings and the server decide.
pub(crate) type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// Connects with a connection string, filling what it leaves out from the `PG*` variables.
pub async fn connect(dsn: &str) -> Result<Client, Error> {
    connect_with(&config(dsn)?).await
}

/// Connects using `PGQUEUER_DSN`, else `DATABASE_URL`, else the libpq variables alone.
pub async fn connect_from_env() -> Result<Client, Error> {
    connect_with(&config_from_env()?).await
}

/// Connects with resolved [`Settings`]. The connection is driven by a spawned tokio task,
/// which ends when the returned [`Client`] is dropped. The server's notices and warnings go to
/// `tracing` (level info).
pub async fn connect_with(config: &Settings) -> Result<Client, Error> {
    connect_with_notices(config, |notice| {
        tracing::info!(severity = notice.severity(), "{}", notice.message());
    })
    .await
}

/// [`connect_with`], handing every notice or warning the server sends (`RAISE NOTICE`, an
/// upgrade script's report) to `on_notice`.
pub async fn connect_with_notices(
    config: &Settings,
    on_notice: impl Fn(&tokio_postgres::error::DbError) + Send + 'static,
) -> Result<Client, Error> {
    let (client, mut connection) = establish(config, "").await?;
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

/// Opens a connection as `settings` say, TLS included (`allow` tries plain first, then TLS).
/// `purpose` is added to the target in an error (" (to LISTEN)").
pub(crate) async fn establish(
    settings: &Settings,
    purpose: &str,
) -> Result<(Client, Connection<Socket, Stream>), Error> {
    let failed = |source| Error::Connect {
        target: format!("{}{purpose}", describe(settings)),
        source,
    };
    // Unix sockets never use TLS (libpq ignores sslmode there too).
    let unix_only = settings
        .get_hosts()
        .iter()
        .all(|host| matches!(host, Host::Unix(_)));
    let mode = if unix_only {
        SslMode::Disable
    } else {
        settings.tls.mode
    };
    let mut postgres = settings.postgres.clone();
    let attempt = |postgres: &mut Config, ssl: PostgresSslMode, check: Check| {
        postgres.ssl_mode(ssl);
        let connector = settings.tls.connector(check);
        let postgres = postgres.clone();
        async move { Ok::<_, Error>(postgres.connect(connector?).await) }
    };
    let result = match mode {
        SslMode::Disable => {
            attempt(&mut postgres, PostgresSslMode::Disable, Check::Nothing).await?
        }
        SslMode::Allow => {
            match attempt(&mut postgres, PostgresSslMode::Disable, Check::Nothing).await? {
                Ok(connected) => Ok(connected),
                // The server may want TLS (a hostssl rule): try again with it.
                Err(plain) => attempt(&mut postgres, PostgresSslMode::Require, Check::Nothing)
                    .await?
                    .map_err(|_| plain),
            }
        }
        SslMode::Prefer => attempt(&mut postgres, PostgresSslMode::Prefer, Check::Nothing).await?,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            let check = settings.tls.check()?;
            attempt(&mut postgres, PostgresSslMode::Require, check).await?
        }
    };
    result.map_err(failed)
}
