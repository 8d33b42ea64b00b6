//! Support for the end-to-end tests: a real PostgreSQL with the extension preloaded.
//!
//! Each test process starts one throwaway [`Cluster`] the first time a test asks for it
//! (cargo-nextest runs every test in its own process; `cargo test` shares it between the
//! threads of one binary), and every test gets a database of its own, so tests never see
//! each other's jobs. The cluster is stopped and deleted when the process exits, however
//! it exits. A test that cannot get a server fails; it never skips.

use std::sync::OnceLock;

pub use pgqueuer_cluster::Cluster;
use tokio_postgres::Client;

/// The cluster of this test process, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match Cluster::start() {
        Ok(cluster) => cluster,
        Err(error) => panic!("cannot start the throwaway PostgreSQL cluster: {error}"),
    })
}

/// A database of one test's own in the shared cluster.
pub struct TestDb {
    /// The database name.
    pub name: String,
    /// A connection string for it (unix socket).
    pub dsn: String,
}

impl TestDb {
    /// Creates an empty database (no extension yet) in this process's cluster.
    pub async fn empty() -> TestDb {
        let name = tokio::task::spawn_blocking(|| cluster().create_database())
            .await
            .expect("the database-creating task panicked")
            .unwrap_or_else(|error| panic!("cannot create a test database: {error}"));
        TestDb {
            dsn: cluster().dsn(&name),
            name,
        }
    }

    /// Creates a database and runs `CREATE EXTENSION pgqueuer` in it.
    pub async fn with_extension() -> TestDb {
        let db = TestDb::empty().await;
        db.connect()
            .await
            .batch_execute("CREATE EXTENSION pgqueuer")
            .await
            .unwrap_or_else(|error| panic!("CREATE EXTENSION pgqueuer failed: {error}"));
        db
    }

    /// A new connection to this database through the client library.
    pub async fn connect(&self) -> Client {
        pgqueuer::connect(&self.dsn)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {}: {error}", self.dsn))
    }
}
