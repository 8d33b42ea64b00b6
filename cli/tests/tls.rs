//! `pgq` over TLS: libpq's `sslmode` and certificate settings in a connection string or the
//! `PG*` variables, and a failure in one line with exit code 2 (`pgqueuer_tests::tls` is the
//! server).

mod support;

use std::process::Command;

use pgqueuer_cluster::{Cluster, Options};
use pgqueuer_tests::tls::{certs, dsn, server};
use support::{pgq, stderr, stdout};

#[tokio::test]
async fn the_cli_connects_over_tls_and_fails_in_one_line_with_exit_code_2() {
    let server = server();
    let root = certs().path("ca.crt");
    let good = pgq(
        &dsn(
            "localhost",
            &format!("sslmode=verify-full sslrootcert={root}"),
        ),
        &["version"],
    );
    // The server has no pgqueuer: version prints the client's and fails with 1, connected.
    assert_eq!(good.status.code(), Some(1), "{}", stderr(&good));
    assert!(stdout(&good).starts_with("pgq "), "{}", stdout(&good));

    let other = certs().path("other-ca.crt");
    let bad = pgq(
        &dsn(
            "localhost",
            &format!("sslmode=verify-full sslrootcert={other}"),
        ),
        &["version"],
    );
    assert_eq!(bad.status.code(), Some(2));
    let message = stderr(&bad);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("certificate"), "{message}");

    // The libpq variables do the same.
    let from_env = Command::new(env!("CARGO_BIN_EXE_pgq"))
        .arg("version")
        .env_remove("PGQUEUER_DSN")
        .env_remove("DATABASE_URL")
        .envs([
            ("PGHOST", "localhost".to_string()),
            ("PGPORT", server.port().to_string()),
            ("PGUSER", "postgres".to_string()),
            ("PGSSLMODE", "verify-full".to_string()),
            ("PGSSLROOTCERT", other),
        ])
        .output()
        .expect("pgq runs");
    assert_eq!(from_env.status.code(), Some(2), "{}", stderr(&from_env));
}

#[tokio::test]
async fn require_against_a_server_without_tls_fails_in_one_line_with_exit_code_2() {
    let plain = Cluster::start_with(Options {
        preload: false,
        ..Options::default()
    })
    .expect("a server without TLS");
    let dsn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require",
        plain.port()
    );
    let cli = pgq(&dsn, &["version"]);
    assert_eq!(cli.status.code(), Some(2));
    assert_eq!(stderr(&cli).lines().count(), 1, "{}", stderr(&cli));
}
