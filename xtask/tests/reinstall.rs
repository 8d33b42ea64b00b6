//! Installing the extension never crashes a server that has the library loaded and busy.
//!
//! The test works on a private copy of PostgreSQL (its own library and extension
//! directories), so the system's installation and the other tests are not touched. A backend
//! calls the library in a loop, committing each round, while the project's two install paths
//! replace the files under it: `cargo xtask install` and the command the pgrx test framework
//! runs before the `#[pg_test]`s (`$CARGO_PGRX pgrx install --test ... --sudo`), which once
//! wrote the library in place and killed such a server with SIGBUS.

use std::path::Path;
use std::process::{Command, Stdio};

use pgqueuer_cluster::{Cluster, Installation, Options};

/// `xtask ARGS` as the user runs it (`cargo xtask ...`), run in the extension's directory
/// like the pgrx test framework runs it.
fn xtask(args: &[&str]) {
    let extension = Path::new(env!("CARGO_MANIFEST_DIR")).join("../extension");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(extension)
        .output()
        .expect("xtask runs");
    assert!(
        output.status.success(),
        "xtask {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The library's inode: a new one means the file was replaced, not rewritten.
fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .ino()
}

#[test]
fn reinstalling_under_a_busy_server_keeps_it_serving() {
    let installation = Installation::copy_of(Path::new(pgqueuer_cluster::DEFAULT_PG_CONFIG))
        .expect("a private copy of PostgreSQL 15");
    let pg_config = installation.pg_config().display().to_string();
    xtask(&["install", "--pg-config", &pg_config]);
    let library =
        Path::new(&installation.value("--pkglibdir").expect("pkglibdir")).join("pgqueuer.so");
    let first = inode(&library);

    let cluster = Cluster::start_with(Options {
        pg_config: Some(installation.pg_config().to_path_buf()),
        ..Options::default()
    })
    .expect("a cluster of the private installation with the library preloaded");
    let db = cluster.create_database().expect("a database");
    let sql = |statement: &str| {
        cluster
            .psql(&db, statement)
            .unwrap_or_else(|error| panic!("{statement}: {error}"))
    };
    sql(
        "CREATE EXTENSION pgqueuer; CREATE TABLE beat (n bigint); INSERT INTO beat VALUES (0); \
         CREATE TABLE stop (after bigint)",
    );
    let started = sql("SELECT pg_postmaster_start_time()");

    // A backend that runs the library's code (cron math, the commit-time wake-up, enqueue,
    // claim and ack) and commits, round after round, until told to stop.
    let busy = cluster
        .psql_command(&db)
        .args([
            "-c",
            "DO $$
             DECLARE i bigint := 0;
             BEGIN
                 LOOP
                     i := i + 1;
                     PERFORM pgq._cron_next('*/5 * * * * *', 'Europe/Oslo', now());
                     PERFORM pgq.enqueue('busy', execute_after => '1 hour');
                     PERFORM pgq.enqueue('busy');
                     PERFORM pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['busy'], 10)));
                     UPDATE beat SET n = i;
                     COMMIT;
                     EXIT WHEN EXISTS (SELECT FROM stop WHERE after < i);
                 END LOOP;
             END $$",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql runs");

    xtask(&["install", "--pg-config", &pg_config]);
    let second = inode(&library);
    xtask(&[
        "pgrx",
        "install",
        "--test",
        "--pg-config",
        &pg_config,
        "--sudo",
        "--features",
        "pg15 pg_test",
    ]);
    let third = inode(&library);
    assert!(
        first != second && second != third,
        "each install put a new file in place ({first}, {second}, {third})"
    );

    // Let the busy backend run a hundred more rounds on the replaced files, then stop it.
    let rounds: i64 = sql("SELECT n FROM beat").parse().expect("a count");
    sql(&format!("INSERT INTO stop VALUES ({})", rounds + 100));
    let output = busy.wait_with_output().expect("psql ends");
    assert!(
        output.status.success(),
        "the busy session failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let total: i64 = sql("SELECT n FROM beat").parse().expect("a count");
    assert!(
        total > rounds + 100,
        "{total} rounds, {rounds} before the stop"
    );

    assert_eq!(
        sql("SELECT pg_postmaster_start_time()"),
        started,
        "the server never restarted"
    );
    let log = std::fs::read_to_string(cluster.log_path()).expect("the server log");
    assert!(
        !log.contains("terminated by signal"),
        "a process of the server was killed:\n{log}"
    );
    // A new session works too (it runs the library that the postmaster loaded at start).
    assert_eq!(
        sql("SELECT pgq._cron_check('* * * * *', 'UTC')"),
        "t",
        "a new session calls the library"
    );
}
