//! TLS with libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, against a throwaway
//! server with `ssl = on` and a CA, server and client certificates made with `openssl`
//! (`pgqueuer_tests::tls`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgqueuer::{Job, PgQueuer, Queries, RunOptions};
use pgqueuer_cluster::{Cluster, Options};
use pgqueuer_tests::tls::{certs, dsn, encrypted, server};
use tokio::sync::Notify;

#[tokio::test]
async fn verify_full_connects_encrypted_from_a_key_value_string_and_a_url() {
    let root = certs().path("ca.crt");
    let client = pgqueuer::connect(&dsn(
        "localhost",
        &format!("sslmode=verify-full sslrootcert='{root}'"),
    ))
    .await
    .expect("verify-full with the right CA and host name");
    assert!(encrypted(&client).await);

    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        server().port(),
        root.replace('/', "%2F")
    );
    let client = pgqueuer::connect(&url).await.expect("the same as a URL");
    assert!(encrypted(&client).await);
}

#[tokio::test]
async fn a_wrong_ca_or_host_name_fails_and_verify_ca_accepts_the_wrong_name() {
    let other = certs().path("other-ca.crt");
    let error = pgqueuer::connect(&dsn(
        "localhost",
        &format!("sslmode=verify-full sslrootcert={other}"),
    ))
    .await
    .expect_err("a certificate from another CA");
    assert!(error.to_string().contains("certificate"), "{error}");

    let root = certs().path("ca.crt");
    let error = pgqueuer::connect(&dsn(
        "127.0.0.1",
        &format!("sslmode=verify-full sslrootcert={root}"),
    ))
    .await
    .expect_err("a certificate for localhost, reached as 127.0.0.1");
    assert!(error.to_string().contains("certificate"), "{error}");

    let client = pgqueuer::connect(&dsn(
        "127.0.0.1",
        &format!("sslmode=verify-ca sslrootcert={root}"),
    ))
    .await
    .expect("verify-ca checks the chain, not the name");
    assert!(encrypted(&client).await);

    // require with a root certificate is verify-ca, as in libpq.
    pgqueuer::connect(&dsn(
        "127.0.0.1",
        &format!("sslmode=require sslrootcert={other}"),
    ))
    .await
    .expect_err("require with a root certificate checks the chain");
}

#[tokio::test]
async fn require_needs_no_root_certificate_and_prefer_encrypts_when_offered() {
    for mode in ["require", "prefer"] {
        let client = pgqueuer::connect(&dsn("127.0.0.1", &format!("sslmode={mode}")))
            .await
            .unwrap_or_else(|error| panic!("sslmode={mode}: {error}"));
        assert!(encrypted(&client).await, "sslmode={mode}");
    }
    let client = pgqueuer::connect(&dsn("127.0.0.1", "sslmode=disable"))
        .await
        .expect("disable");
    assert!(!encrypted(&client).await);
}

#[tokio::test]
async fn allow_falls_back_to_tls_when_the_server_refuses_plain() {
    let base = format!(
        "host=127.0.0.1 port={} user=tls_only_user dbname=postgres",
        server().port()
    );
    pgqueuer::connect(&format!("{base} sslmode=disable"))
        .await
        .expect_err("a hostnossl reject rule");
    let client = pgqueuer::connect(&format!("{base} sslmode=allow"))
        .await
        .expect("allow tries TLS after the plain attempt is refused");
    assert!(encrypted(&client).await);
}

#[tokio::test]
async fn a_client_certificate_is_accepted_by_a_hostssl_cert_rule() {
    let (cert, key) = (certs().path("client.crt"), certs().path("client.key"));
    let base = format!(
        "host=localhost port={} user=tls_cert_user dbname=postgres sslmode=verify-full \
         sslrootcert={}",
        server().port(),
        certs().path("ca.crt")
    );
    pgqueuer::connect(&base)
        .await
        .expect_err("the cert rule wants a client certificate");
    let client = pgqueuer::connect(&format!("{base} sslcert={cert} sslkey={key}"))
        .await
        .expect("the client certificate logs in");
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("who")
        .get(0);
    assert_eq!(user, "tls_cert_user");
}

#[tokio::test]
async fn require_against_a_server_without_tls_fails_clearly() {
    let plain = Cluster::start_with(Options {
        preload: false,
        ..Options::default()
    })
    .expect("a server without TLS");
    let dsn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require",
        plain.port()
    );
    let error = pgqueuer::connect(&dsn).await.expect_err("no TLS there");
    assert!(
        error.to_string().contains("server does not support TLS"),
        "{error}"
    );
}

#[tokio::test]
async fn the_runtime_and_its_listen_connection_run_over_tls() {
    let root = certs().path("ca.crt");
    let dsn = dsn(
        "localhost",
        &format!("sslmode=verify-full sslrootcert={root} application_name=pgq_tls_runtime"),
    );
    let admin = pgqueuer::connect(&server().dsn("postgres"))
        .await
        .expect("admin over the socket");
    admin
        .batch_execute(&pgqueuer::sql_only::install_script())
        .await
        .expect("pgqueuer, SQL-only");
    let producer = Queries::new(pgqueuer::connect(&dsn).await.expect("producer over TLS"));
    producer
        .enqueue(vec!["e"; 3], vec![Vec::new(); 3], vec![0; 3])
        .await
        .expect("enqueue");

    let ran = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Notify::new());
    let mut pgq = PgQueuer::new(pgqueuer::config(&dsn).expect("settings"));
    {
        let (ran, progress) = (Arc::clone(&ran), Arc::clone(&progress));
        pgq.entrypoint("e", move |_job: Job| {
            ran.fetch_add(1, Ordering::SeqCst);
            progress.notify_one();
            async { Ok(()) }
        });
    }
    let plain_connections = Arc::new(AtomicUsize::new(usize::MAX));
    let done = {
        let (ran, plain_connections) = (Arc::clone(&ran), Arc::clone(&plain_connections));
        async move {
            while ran.load(Ordering::SeqCst) < 3 {
                progress.notified().await;
            }
            // Every connection of the runtime (its lanes and its LISTEN connection) is
            // encrypted; there are at least three of them.
            let row = admin
                .query_one(
                    "SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FILTER (WHERE s.ssl) \
                     FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                     WHERE a.application_name = 'pgq_tls_runtime'",
                    &[],
                )
                .await
                .expect("pg_stat_ssl");
            let (plain, tls): (i64, i64) = (row.get(0), row.get(1));
            assert!(tls >= 3, "{tls} encrypted connections");
            plain_connections.store(plain as usize, Ordering::SeqCst);
        }
    };
    pgq.run_until(RunOptions::default(), done)
        .await
        .expect("the runtime over TLS");
    assert_eq!(plain_connections.load(Ordering::SeqCst), 0);
}
