//! Support for the end-to-end tests: a real PostgreSQL with the extension preloaded.
//!
//! Each test process starts one throwaway [`Cluster`] the first time a test asks for it
//! (cargo-nextest runs every test in its own process; `cargo test` shares it between the
//! threads of one binary), and every test gets a database of its own, so tests never see
//! each other's jobs. The cluster is stopped and deleted when the process exits, however
//! it exits. A test that cannot get a server fails; it never skips.
//!
//! `PGQ_TEST_INSTALL=sql-only` runs the tests that use [`TestDb::installed`] against SQL-only
//! installs (`pgqueuer::sql_only`) in a server that does not preload the library, and
//! `PGQ_PG_BINDIR` against another PostgreSQL (`cargo xtask test` does both, for every major).

pub mod catalog;
pub mod release;
pub mod tls;

use std::sync::OnceLock;

pub use pgqueuer_cluster::Cluster;
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// Run options that drain (stop when nothing is left), with these sizes.
pub fn drain(batch_size: i32, max_concurrent_tasks: usize) -> pgqueuer::RunOptions {
    pgqueuer::RunOptions {
        batch_size,
        max_concurrent_tasks,
        mode: pgqueuer::Mode::Drain,
        ..pgqueuer::RunOptions::default()
    }
}

/// How [`TestDb::installed`] installs pgqueuer: `PGQ_TEST_INSTALL`, `extension` (the default)
/// or `sql-only`.
pub fn sql_only() -> bool {
    match std::env::var("PGQ_TEST_INSTALL").as_deref() {
        Ok("sql-only") => true,
        Ok("extension") | Err(_) => false,
        Ok(other) => panic!("PGQ_TEST_INSTALL={other}: use extension or sql-only"),
    }
}

/// Installs pgqueuer in the database `client` is connected to, as this run does
/// ([`sql_only`]).
pub async fn install(client: &Client) {
    let script = match sql_only() {
        true => pgqueuer::sql_only::install_script(),
        false => "CREATE EXTENSION pgqueuer".to_string(),
    };
    client
        .batch_execute(&script)
        .await
        .unwrap_or_else(|error| panic!("installing pgqueuer failed: {error:?}"));
}

/// The cluster of this test process, started on first use. In a SQL-only run it does not
/// preload the library, as a managed server would not.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    let options = pgqueuer_cluster::Options {
        preload: !sql_only(),
        ..pgqueuer_cluster::Options::default()
    };
    CLUSTER.get_or_init(|| match Cluster::start_with(options) {
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

    /// Creates a database and installs pgqueuer in it: the extension, or the SQL-only script in
    /// a SQL-only run ([`sql_only`]).
    pub async fn installed() -> TestDb {
        let db = TestDb::empty().await;
        install(&db.connect().await).await;
        db
    }

    /// Creates a database and runs `CREATE EXTENSION pgqueuer` in it, whatever the run.
    pub async fn with_extension() -> TestDb {
        let db = TestDb::empty().await;
        db.connect()
            .await
            .batch_execute("CREATE EXTENSION pgqueuer")
            .await
            .unwrap_or_else(|error| panic!("CREATE EXTENSION pgqueuer failed: {error}"));
        db
    }

    /// A worker runtime that connects to this database.
    pub fn runtime(&self) -> pgqueuer::PgQueuer {
        pgqueuer::PgQueuer::new(pgqueuer::config(&self.dsn).expect("settings of the test database"))
    }

    /// A new connection to this database through the client library.
    pub async fn connect(&self) -> Client {
        pgqueuer::connect(&self.dsn)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {}: {error}", self.dsn))
    }

    /// The plans of every statement that `sql` runs, nested ones included (the statements
    /// inside the extension's functions), as `auto_explain` reports them in text form.
    pub async fn nested_plans(&self, sql: &str) -> Vec<String> {
        let (client, mut connection) = tokio_postgres::connect(&self.dsn, NoTls)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {}: {error}", self.dsn));
        let (sender, mut notices) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if let AsyncMessage::Notice(notice) = message {
                    let _ = sender.send(notice.message().to_string());
                }
            }
        });
        client
            .batch_execute(
                "LOAD 'auto_explain';
                 SET auto_explain.log_min_duration = 0;
                 SET auto_explain.log_nested_statements = on;
                 SET client_min_messages = log;",
            )
            .await
            .expect("auto_explain");
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
        client
            .batch_execute("SET client_min_messages = notice; SELECT pg_notify('pgq', 'x')")
            .await
            .expect("reset");
        drop(client);
        let mut plans = Vec::new();
        while let Some(message) = notices.recv().await {
            plans.push(message);
        }
        plans
    }

    /// A connection that LISTENs on channel `pgq`, with its notifications.
    pub async fn listen(&self) -> Listener {
        Listener::connect(&self.dsn).await
    }

    /// A connection that LISTENs on `channel`, with its notifications.
    pub async fn listen_to(&self, channel: &str) -> Listener {
        Listener::connect_to(&self.dsn, channel).await
    }
}

impl Listener {
    /// Connects to `dsn` and LISTENs on channel `pgq`.
    pub async fn connect(dsn: &str) -> Listener {
        Listener::connect_to(dsn, pgqueuer::CHANNEL).await
    }

    /// Connects to `dsn` and LISTENs on `channel`.
    pub async fn connect_to(dsn: &str, channel: &str) -> Listener {
        let config = pgqueuer::config(dsn).unwrap_or_else(|error| panic!("{dsn}: {error}"));
        let inner = pgqueuer::Listener::connect_to(&config, channel)
            .await
            .unwrap_or_else(|error| panic!("cannot LISTEN at {dsn}: {error}"));
        Listener { inner }
    }
}

/// A session listening on channel `pgq` (the client library's [`pgqueuer::Listener`]), with
/// what tests ask of it.
#[derive(Debug)]
pub struct Listener {
    inner: pgqueuer::Listener,
}

impl Listener {
    /// The next notification's payload and the process id that sent it.
    pub async fn next(&mut self) -> (String, i32) {
        let notification = self
            .inner
            .next()
            .await
            .expect("the listening connection ended");
        (notification.payload, notification.process_id)
    }

    /// The payloads of the notifications that arrive before `sentinel`, which the caller
    /// sends (`SELECT pg_notify('pgq', 'sentinel')`) after the statements under test: since
    /// PostgreSQL delivers notifications in commit order, this collects exactly what those
    /// statements sent, with no waiting on a clock.
    pub async fn until(&mut self, sentinel: &str) -> Vec<String> {
        let mut payloads = Vec::new();
        loop {
            let (payload, _) = self.next().await;
            if payload == sentinel {
                return payloads;
            }
            payloads.push(payload);
        }
    }
}

/// Asserts that `result` failed with SQLSTATE `code` and returns its message.
pub fn expect_sqlstate<T: std::fmt::Debug>(
    result: Result<T, tokio_postgres::Error>,
    code: &SqlState,
) -> String {
    match result {
        Ok(value) => panic!("expected SQLSTATE {}, got success: {value:?}", code.code()),
        Err(error) => {
            let db = error
                .as_db_error()
                .unwrap_or_else(|| panic!("expected a database error, got {error}"));
            assert_eq!(db.code(), code, "unexpected error: {}", db.message());
            db.message().to_string()
        }
    }
}

/// Asserts that each statement fails with 22023 (invalid_parameter_value) and a message.
pub async fn expect_invalid(client: &Client, statements: &[&str]) {
    for sql in statements {
        let message = expect_sqlstate(
            client.query(*sql, &[]).await,
            &SqlState::INVALID_PARAMETER_VALUE,
        );
        assert!(!message.is_empty(), "{sql}: an empty message");
    }
}

/// The first column of the single row that `sql` returns; panics with the statement and the
/// error otherwise.
pub async fn scalar<T: for<'a> FromSql<'a>>(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> T {
    match client.query_one(sql, params).await {
        Ok(row) => row
            .try_get(0)
            .unwrap_or_else(|error| panic!("{sql}: unexpected type: {error}")),
        Err(error) => panic!("{sql}: {}", describe(&error)),
    }
}

/// A table's rows as a JSON array of objects (`to_jsonb` of each row), in `order_by` order:
/// for comparing a table's contents before and after something.
pub async fn rows_json(client: &Client, table: &str, order_by: &str) -> String {
    scalar(
        client,
        &format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.{order_by}), '[]')::text \
             FROM {table} t"
        ),
        &[],
    )
    .await
}

/// An error with its SQLSTATE, message and context, for a failed test's message
/// (tokio-postgres's own display says only "db error").
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{} {}{}",
            db.code().code(),
            db.message(),
            db.where_().map(|w| format!(" ({w})")).unwrap_or_default()
        ),
        None => error.to_string(),
    }
}

/// `SELECT count(*)` of a query's rows, for "nothing changed" checks.
pub async fn count(client: &Client, from: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {from}"), &[])
        .await
        .unwrap_or_else(|error| panic!("counting {from}: {error}"))
        .get(0)
}
