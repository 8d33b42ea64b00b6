//! How a command fails: one line on stderr, and an exit code scripts can rely on (0 success,
//! 1 the command failed or found a mismatch, 2 no connection or a wrong command line).

use std::process::ExitCode;

/// Exit codes scripts can rely on.
pub mod exit {
    /// The command failed, or `verify` found a mismatch.
    pub const FAILURE: u8 = 1;
    /// No connection could be made, or the command line was wrong (as clap uses).
    pub const CONNECTION: u8 = 2;
}

/// A command's failure: its message (one line) and exit code.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    /// A failure with exit code 1.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: exit::FAILURE,
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Failure {
        let message = match error.as_db_error() {
            Some(db) => db.message().to_string(),
            None => error.to_string(),
        };
        Failure::new(message)
    }
}

impl From<pgqueuer::Error> for Failure {
    fn from(error: pgqueuer::Error) -> Failure {
        match error {
            pgqueuer::Error::Db(error) => Failure::from(error),
            other => Failure::new(other.to_string()),
        }
    }
}

/// The exit code of a command's result, with its failure printed as one line.
pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("pgq: {}", one_line(&failure.message));
            ExitCode::from(failure.code)
        }
    }
}

/// Messages are one line, so that scripts and logs can rely on it.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
