//! TLS with libpq's `sslmode`, `sslrootcert`, `sslcert` and `sslkey`, against a throwaway
//! server with `ssl = on` and a CA, server and client certificates made here with `openssl`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgqueuer::{Job, PgQueuer, Queries, RunOptions};
use pgqueuer_cluster::{Cluster, Options};
use support::{pgq, stderr, stdout};
use tokio::sync::Notify;

/// The certificates, in a directory of their own.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).expect("a certificate file")
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`{name}.crt`, `{name}.key`).
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// A certificate signed by `ca` for `cn`, with the extensions in `ext`.
fn signed(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("extensions file");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pgq-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the certificates");
        ca(&dir, "ca");
        ca(&dir, "other-ca");
        // Valid for the name localhost only: 127.0.0.1 is a wrong host name for it.
        signed(
            &dir,
            "ca",
            "server",
            "localhost",
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        );
        signed(
            &dir,
            "ca",
            "client",
            "tls_cert_user",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        );
        Certs { dir }
    })
}

/// A server with TLS on: `tls_cert_user` must log in over TLS with a client certificate,
/// `tls_only_user` over TLS; everyone else as they like.
fn server() -> &'static Cluster {
    static SERVER: OnceLock<Cluster> = OnceLock::new();
    SERVER.get_or_init(|| {
        let certs = certs();
        let cluster = Cluster::start_with(Options {
            preload: false,
            settings: vec![
                "ssl = on".into(),
                "ssl_cert_file = 'server.crt'".into(),
                "ssl_key_file = 'server.key'".into(),
                "ssl_ca_file = 'ca.crt'".into(),
            ],
            files: ["server.crt", "server.key", "ca.crt"]
                .iter()
                .map(|name| (name.to_string(), certs.read(name)))
                .collect(),
            hba: vec![
                "hostssl all tls_cert_user 127.0.0.1/32 cert".into(),
                "host all tls_cert_user 127.0.0.1/32 reject".into(),
                "hostnossl all tls_only_user 127.0.0.1/32 reject".into(),
            ],
            ..Options::default()
        })
        .expect("a TLS server");
        cluster
            .psql(
                "postgres",
                "CREATE ROLE tls_cert_user LOGIN; CREATE ROLE tls_only_user LOGIN",
            )
            .expect("roles");
        cluster
    })
}

/// A key/value connection string to the TLS server at `host`, with `extra` settings.
fn dsn(host: &str, extra: &str) -> String {
    format!(
        "host={host} port={} user=postgres dbname=postgres {extra}",
        server().port()
    )
}

/// Whether this connection is encrypted, as the server sees it.
async fn encrypted(client: &pgqueuer::tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

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
    let cli = pgq(&dsn, &["version"]);
    assert_eq!(cli.status.code(), Some(2));
    assert_eq!(stderr(&cli).lines().count(), 1, "{}", stderr(&cli));
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
