//! A TLS server for the tests of TLS (the client's and the command line's): `ssl = on`, a CA,
//! server and client certificates made with `openssl` in a directory of this process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pgqueuer_cluster::{Cluster, Options};

/// The certificates, in a directory of their own.
pub struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// The path of one file (`ca.crt`, `client.key`, ...).
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The bytes of one file.
    pub fn read(&self, name: &str) -> Vec<u8> {
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

/// The certificates of this process: two CAs, a server certificate for `localhost` and a
/// client certificate for `tls_cert_user`, made once.
pub fn certs() -> &'static Certs {
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
pub fn server() -> &'static Cluster {
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
pub fn dsn(host: &str, extra: &str) -> String {
    format!(
        "host={host} port={} user=postgres dbname=postgres {extra}",
        server().port()
    )
}

/// Whether this connection is encrypted, as the server sees it.
pub async fn encrypted(client: &pgqueuer::tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}
