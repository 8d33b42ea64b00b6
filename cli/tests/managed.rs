//! Managed PostgreSQL, as near as a test gets: a database owned by a role that is not a
//! superuser, installing with `pgq install --sql-only`. `cargo xtask test` runs these on a
//! server without pgqueuer's library on every major from 13 to 18 (`PGQ_TEST_INSTALL=sql-only`,
//! `PGQ_PG_BINDIR`), and on PostgreSQL 15 with the library preloaded.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pgqueuer::{Job, JobArgs, NewJob, OnConflict, PgQueuer, Queries, RunOptions, ScheduledRun};
use support::{pgq, stderr, stdout};
use tokio::sync::Notify;

/// The quick start's job type.
#[derive(serde::Serialize, serde::Deserialize)]
struct Fetch {
    url: String,
}

impl JobArgs for Fetch {
    const ENTRYPOINT: &'static str = "fetch";
}

/// A login role and a database it owns, made by the superuser (as a managed service's console
/// does); returns a DSN for that role and database.
async fn owned_database(role_options: &str) -> (String, String) {
    let cluster = pgqueuer_tests::cluster();
    let db = pgqueuer_tests::TestDb::empty().await;
    let owner = format!("{}_owner", db.name);
    let admin = db.connect().await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {owner} LOGIN {role_options};
             ALTER DATABASE {} OWNER TO {owner};
             ALTER SCHEMA public OWNER TO {owner};",
            db.name
        ))
        .await
        .expect("an owner role");
    let dsn = format!(
        "host={} port={} user={owner} dbname={}",
        cluster.socket_dir().display(),
        cluster.port(),
        db.name
    );
    (dsn, owner)
}

#[tokio::test]
async fn a_database_owner_installs_sql_only_and_runs_the_quick_start() {
    // CREATEROLE, as the owner role of RDS, Cloud SQL, Azure, Supabase and Neon has.
    let (dsn, owner) = owned_database("CREATEROLE").await;

    let installed = pgq(&dsn, &["install", "--sql-only"]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    assert!(
        stdout(&installed).contains("(SQL-only install)"),
        "{}",
        stdout(&installed)
    );
    assert!(
        !stderr(&installed).contains("WARNING"),
        "{}",
        stderr(&installed)
    );
    let verified = pgq(&dsn, &["verify"]);
    assert!(verified.status.success(), "{}", stdout(&verified));
    let version = pgq(&dsn, &["version"]);
    assert!(
        stdout(&version).contains(&format!(
            "pgqueuer {} (SQL-only install)",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        stdout(&version)
    );

    // The API runs as pgq_owner, as in the extension.
    let client = pgqueuer::connect(&dsn).await.expect("connect as the owner");
    let owners: Vec<String> = client
        .query(
            "SELECT DISTINCT pg_get_userbyid(proowner)::text FROM pg_proc \
             WHERE pronamespace = 'pgq'::regnamespace",
            &[],
        )
        .await
        .expect("function owners")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(owners, ["pgq_owner"], "installed by {owner}");

    // The README's quick start: a producer, a consumer, and a schedule fired by the
    // runtime's own tick (there is no background worker).
    let producer = Queries::new(pgqueuer::connect(&dsn).await.expect("connect"));
    let jobs: Vec<NewJob> = (1..=5)
        .map(|i| {
            let url = format!("https://example.com/{i}");
            NewJob::typed(&Fetch { url }).expect("serialises")
        })
        .collect();
    producer
        .enqueue_many(&jobs, OnConflict::Raise)
        .await
        .expect("enqueue");

    let fetched = Arc::new(AtomicUsize::new(0));
    let fired = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Notify::new());
    let mut consumer = PgQueuer::new(pgqueuer::config(&dsn).expect("config"));
    {
        let (fetched, progress) = (Arc::clone(&fetched), Arc::clone(&progress));
        consumer.job(move |fetch: Fetch, _job: Job| {
            assert!(fetch.url.starts_with("https://example.com/"));
            fetched.fetch_add(1, Ordering::SeqCst);
            progress.notify_one();
            async { Ok(()) }
        });
    }
    {
        let (fired, progress) = (Arc::clone(&fired), Arc::clone(&progress));
        consumer.schedule("every_second", "* * * * * *", move |_run: ScheduledRun| {
            fired.fetch_add(1, Ordering::SeqCst);
            progress.notify_one();
            async { Ok(()) }
        });
    }
    let done = {
        let (fetched, fired) = (Arc::clone(&fetched), Arc::clone(&fired));
        async move {
            while fetched.load(Ordering::SeqCst) < 5 || fired.load(Ordering::SeqCst) < 1 {
                progress.notified().await;
            }
        }
    };
    // A bound on a hang, not a timing assertion: the run normally ends within seconds.
    tokio::time::timeout(
        Duration::from_secs(120),
        consumer.run_until(RunOptions::default(), done),
    )
    .await
    .expect("the quick start finished")
    .expect("the runtime ran");
    assert_eq!(fetched.load(Ordering::SeqCst), 5);
    assert!(fired.load(Ordering::SeqCst) >= 1);
    let logged: i64 = client
        .query_one(
            "SELECT count(*) FROM pgq.log WHERE status = 'successful' AND entrypoint = 'fetch'",
            &[],
        )
        .await
        .expect("the log")
        .get(0);
    assert_eq!(logged, 5);

    let uninstalled = pgq(&dsn, &["uninstall"]);
    assert!(uninstalled.status.success(), "{}", stderr(&uninstalled));
    let absent = pgq(&dsn, &["verify", "--expect", "absent"]);
    assert!(absent.status.success(), "{}", stdout(&absent));
}

#[tokio::test]
async fn an_owner_that_may_not_create_roles_gets_a_queue_of_its_own_and_a_warning() {
    let (dsn, owner) = owned_database("").await;
    let installed = pgq(&dsn, &["install", "--sql-only"]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    assert!(
        stderr(&installed).contains("may not create roles"),
        "{}",
        stderr(&installed)
    );
    assert!(pgq(&dsn, &["verify"]).status.success());

    // The owner has a working queue.
    let client = pgqueuer::connect(&dsn).await.expect("connect");
    let q = Queries::new(pgqueuer::connect(&dsn).await.expect("connect"));
    q.enqueue(vec!["e"], vec![b"x".to_vec()], vec![0])
        .await
        .expect("enqueue as the owner");

    // Nobody else may use it: PUBLIC got nothing.
    let cluster = pgqueuer_tests::cluster();
    let admin = pgqueuer::connect(&cluster.dsn("postgres"))
        .await
        .expect("superuser");
    let app = format!("{owner}_app");
    admin
        .batch_execute(&format!("CREATE ROLE {app} LOGIN"))
        .await
        .expect("an application role");
    let app_dsn = dsn.replace(&format!("user={owner}"), &format!("user={app}"));
    let app_client = pgqueuer::connect(&app_dsn).await.expect("connect as app");
    let refused = app_client
        .query_one("SELECT pgq.enqueue('e')", &[])
        .await
        .expect_err("no grant, no enqueue");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );

    // A DBA adds the roles, the owner applies the privileges: the install is then as the
    // extension's, and a granted role may enqueue.
    let roles = pgq(&dsn, &["sql", "roles", "--installer", &owner]);
    assert!(roles.status.success());
    admin
        .batch_execute(&stdout(&roles))
        .await
        .expect("the roles script, as a superuser");
    let privileges = pgq(&dsn, &["sql", "privileges"]);
    client
        .batch_execute(&stdout(&privileges))
        .await
        .expect("the privileges script, as the owner");
    admin
        .batch_execute(&format!("GRANT pgq_producer TO {app}"))
        .await
        .expect("grant");
    let app_client = pgqueuer::connect(&app_dsn).await.expect("reconnect as app");
    app_client
        .query_one("SELECT pgq.enqueue('e')", &[])
        .await
        .expect("a producer may enqueue");
    let owners: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgq'::regnamespace \
             AND pg_get_userbyid(proowner) <> 'pgq_owner'",
            &[],
        )
        .await
        .expect("owners")
        .get(0);
    assert_eq!(owners, 0, "every function belongs to pgq_owner");
}
