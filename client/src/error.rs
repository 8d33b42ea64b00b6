//! The client's errors, in one type: what a caller can tell apart (bad settings, no
//! connection, an argument the SQL API refused, a taken dedupe key, a schema this client does
//! not know) and everything else the database said.

use tokio_postgres::error::SqlState;

/// What can go wrong calling pgqueuer: connecting, an argument the SQL API refused, a schema
/// this client does not know, or any other database error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection string or a `PG*` variable could not be understood.
    #[error("invalid connection settings: {0}")]
    Config(String),
    /// The server could not be reached, refused the connection, or failed the TLS checks.
    #[error("could not connect to PostgreSQL at {target}: {}", with_causes(source))]
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

/// An error and the errors under it, as one line ("error performing TLS handshake: invalid
/// peer certificate: UnknownIssuer").
fn with_causes(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

impl Error {
    /// Maps the extension's documented SQLSTATEs to their variants.
    pub(crate) fn from_db(error: tokio_postgres::Error) -> Error {
        match error.as_db_error() {
            Some(db) if db.code() == &SqlState::INVALID_PARAMETER_VALUE => {
                Error::Invalid(db.message().to_string())
            }
            Some(db) if db.code() == &SqlState::UNIQUE_VIOLATION => {
                Error::Duplicate(db.message().to_string())
            }
            _ => Error::Db(error),
        }
    }
}
