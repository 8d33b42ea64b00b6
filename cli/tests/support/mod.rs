//! Running the real `pgq` binary in the client crate's tests.

use std::process::{Command, Output};

/// Runs `pgq --dsn DSN ARGS...` and returns its output.
pub fn pgq(dsn: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgq"))
        .arg("--dsn")
        .arg(dsn)
        .args(args)
        .env_remove("PGQUEUER_DSN")
        .output()
        .expect("pgq runs")
}

/// Standard output, trimmed.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Standard error, trimmed.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}
