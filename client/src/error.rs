//! The client's errors, in one type: what a caller can tell apart (bad connection settings, a
//! setup that failed, no connection, an argument the SQL API refused, a taken dedupe key, a
//! schema this client does not know) and everything else the database said. A database's
//! error keeps what the server sent: SQLSTATE, message, detail and hint ([`Error::db_error`]).

use tokio_postgres::error::{DbError, SqlState};

/// What can go wrong calling pgqueuer: connecting, an argument the SQL API refused, a schema
/// this client does not know, or any other database error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection string or a `PG*` variable could not be understood.
    #[error("invalid connection settings: {0}")]
    Config(String),
    /// Something the client was asked to set up, other than a connection, failed: serving the
    /// runtime's metrics ([`RunOptions::metrics_listen`](crate::RunOptions::metrics_listen)),
    /// an OTLP exporter.
    #[error("{0}")]
    Setup(String),
    /// The server could not be reached, refused the connection, or failed the TLS checks.
    #[error("could not connect to PostgreSQL at {target}: {}", with_causes(source))]
    Connect {
        /// Where the connection was tried (`host=... port=... user=... dbname=...`).
        target: String,
        /// Why it failed.
        source: tokio_postgres::Error,
    },
    /// An argument was refused: by the SQL API (SQLSTATE 22023), or by the client before
    /// sending it. The message says what is allowed.
    #[error("{message}")]
    Invalid {
        /// What was refused, and what is allowed.
        message: String,
        /// What the server said (SQLSTATE, detail, hint), when it refused.
        db: Option<Box<DbError>>,
    },
    /// A dedupe key is already held by a queued or picked job (SQLSTATE 23505).
    #[error("{message}")]
    Duplicate {
        /// Which key.
        message: String,
        /// What the server said (SQLSTATE, detail, hint).
        db: Option<Box<DbError>>,
    },
    /// The database has no pgqueuer schema, one of a version this client cannot work with
    /// ([`crate::SCHEMA_VERSIONS`]), or one without what a call needs
    /// ([`crate::Capability`]); the message names the versions and what to do.
    #[error("{0}")]
    Schema(String),
    /// Any other error of the database or the connection. Shown as the server's severity,
    /// message and SQLSTATE, with its detail and hint on lines of their own.
    #[error("{}", describe(.0))]
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

/// What the server said ("ERROR: relation \"x\" does not exist (SQLSTATE 42P01)", then its
/// detail and hint), or for any other error the error and its causes.
fn describe(error: &tokio_postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        return with_causes(error);
    };
    let mut text = format!(
        "{}: {} (SQLSTATE {})",
        db.severity(),
        db.message(),
        db.code().code()
    );
    if let Some(detail) = db.detail() {
        text.push_str("\nDETAIL: ");
        text.push_str(detail);
    }
    if let Some(hint) = db.hint() {
        text.push_str("\nHINT: ");
        text.push_str(hint);
    }
    text
}

impl Error {
    /// Maps the extension's documented SQLSTATEs to their variants.
    pub(crate) fn from_db(error: tokio_postgres::Error) -> Error {
        match error.as_db_error() {
            Some(db) if db.code() == &SqlState::INVALID_PARAMETER_VALUE => Error::Invalid {
                message: db.message().to_string(),
                db: Some(Box::new(db.clone())),
            },
            Some(db) if db.code() == &SqlState::UNIQUE_VIOLATION => Error::Duplicate {
                message: db.message().to_string(),
                db: Some(Box::new(db.clone())),
            },
            _ => Error::Db(error),
        }
    }

    /// An argument refused by the client itself, before anything was sent.
    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid {
            message: message.into(),
            db: None,
        }
    }

    /// What the server said, when this error is the database's: its SQLSTATE
    /// ([`DbError::code`]), message, detail, hint, and where.
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            Error::Db(error) | Error::Connect { source: error, .. } => error.as_db_error(),
            Error::Invalid { db, .. } | Error::Duplicate { db, .. } => db.as_deref(),
            _ => None,
        }
    }

    /// The SQLSTATE, when this error is the database's.
    pub fn code(&self) -> Option<&SqlState> {
        self.db_error().map(DbError::code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_by_the_client_has_no_sqlstate() {
        let error = Error::invalid("batch_size must be 1 or more");
        assert_eq!(error.to_string(), "batch_size must be 1 or more");
        assert!(error.code().is_none() && error.db_error().is_none());
    }
}
