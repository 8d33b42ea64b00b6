//! The steps of `cargo xtask test` and `cargo xtask demo`, each a plain command.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use pgqueuer_cluster::{Cluster, Options, is_root};

use crate::command::{Result, cargo, heading, run, workspace_root};
use crate::install::Build;
use crate::setup;

/// Runs a titled step and reports how long it took.
fn step(title: &str, command: &mut Command) -> Result {
    heading(title);
    let started = Instant::now();
    run(command)?;
    eprintln!(
        "    {title}: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds the extension and installs it into `pg_config`'s PostgreSQL (Debian's 15 unless
/// `--pg-config` says otherwise), optimised or not.
pub fn install(release: bool, pg_config: Option<&str>) -> Result {
    let mut build = Build {
        release,
        ..Build::default()
    };
    if let Some(pg_config) = pg_config {
        build.pg_config = PathBuf::from(pg_config);
    }
    heading(&format!(
        "install the extension ({} build) for {}",
        if release { "release" } else { "debug" },
        build.pg_config.display()
    ));
    let started = Instant::now();
    crate::install::install(&build)?;
    eprintln!("    installed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `cargo xtask bench [ARGS]`: the release build of the extension installed, then
/// `pgq-bench ARGS` built with optimisations. The numbers of `docs/benchmarks.md` come from it.
/// Everything but pgq-bench's own output goes to stderr, so that `--json > FILE` holds JSON.
pub fn bench(args: &[String]) -> Result {
    setup::ensure()?;
    install(true, None)?;
    eprintln!("\n==> pgq-bench (release build)");
    run(cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "pgqueuer-bench",
            "--",
        ])
        .args(args))
}

/// `cargo xtask test`: every check, ending with the end-to-end test runner's summary.
pub fn test() -> Result {
    setup::ensure()?;
    step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "cargo clippy --all-targets -- -D warnings",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The client's optional OTLP exporter, built, linted and tested with the feature on (the
    // workspace steps build it off). Per package: the workspace must never be built with
    // --all-features, which turns on pgrx's mutually exclusive PostgreSQL features.
    step(
        "the client with feature otlp: clippy, doc tests, the exporter's test",
        cargo().args([
            "clippy",
            "--package",
            "pgqueuer-client",
            "--features",
            "otlp",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run(cargo().args([
        "test",
        "--package",
        "pgqueuer-client",
        "--features",
        "otlp",
        "--doc",
        "telemetry",
    ]))?;
    run(cargo().args([
        "nextest",
        "run",
        "--package",
        "pgqueuer-client",
        "--features",
        "otlp",
        "--no-tests=fail",
        "-E",
        "binary(telemetry)",
    ]))?;
    pg_tests()?;
    // `cargo pgrx test` left a test build (with its `tests` schema) in PostgreSQL's
    // directories; the end-to-end tests must run against the real one.
    install(false, None)?;
    step(
        "doc tests",
        cargo().args(["test", "--workspace", "--exclude", "pgqueuer", "--doc"]),
    )?;
    sql_only_tests()?;
    // Last, and without a timing line after it: the output must end with nextest's summary.
    heading("unit and end-to-end tests (cargo nextest)");
    run(cargo().args(["nextest", "run", "--workspace", "--exclude", "pgqueuer"]))
}

/// The end-to-end tests of the SQL API (the `sql` room less its security tests, which are
/// about the extension's background worker too; schedules through tick; how a client meets a
/// schema), less those about the extension itself.
const SQL_TESTS: &str = "((test(/^sql::/) & !test(/^sql::security::/) \
                         | test(/^(scheduler::schedules|releases::schema)::/)) & binary(e2e) \
                         | binary(managed)) & !test(/extension/)";

/// The runtime's end-to-end tests, less those about the extension itself.
const RUNTIME_TESTS: &str = "test(/^runtime::/) & binary(e2e) & !test(/extension/)";

/// The SQL tests and the managed-install tests against SQL-only installs in servers without
/// the library: PostgreSQL 15 (with the runtime's tests too), then 13, 14, 16, 17 and 18.
fn sql_only_tests() -> Result {
    let filter = format!("({SQL_TESTS}) | ({RUNTIME_TESTS})");
    let started = Instant::now();
    heading("SQL and runtime tests on SQL-only installs, PostgreSQL 15 without the library");
    run(&mut nextest_sql_only(&filter))?;
    eprintln!("    ({:.0?})", started.elapsed());
    for major in crate::postgres::MAJORS {
        let started = Instant::now();
        heading(&format!(
            "SQL tests on SQL-only installs, PostgreSQL {}",
            major.major
        ));
        let bindir = major.bindir()?;
        run(nextest_sql_only(SQL_TESTS).env("PGQ_PG_BINDIR", bindir))?;
        eprintln!("    ({:.0?})", started.elapsed());
    }
    Ok(())
}

fn nextest_sql_only(filter: &str) -> Command {
    let mut command = cargo();
    command
        .args([
            "nextest",
            "run",
            "--package",
            "pgqueuer-tests",
            "--package",
            "pgq",
            "--no-tests=fail",
            "-E",
        ])
        .arg(filter)
        .env("PGQ_TEST_INSTALL", "sql-only");
    command
}

/// The extension's `#[pg_test]`s, inside a server that pgrx starts. PostgreSQL refuses to
/// run as root, so as root the test server runs as `postgres` (pgrx calls `sudo -u`) in a
/// postgres-owned directory under /tmp (short: it also holds the unix socket).
fn pg_tests() -> Result {
    let mut command = cargo();
    command.args(["pgrx", "test", "pg15", "--package", "pgqueuer"]);
    if !is_root() {
        hook_install(&mut command)?;
        return step("#[pg_test]s (cargo pgrx test)", &mut command);
    }
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--", "mktemp", "-d", "/tmp/pgrx-XXXXXX"])
        .output()
        .map_err(|error| format!("mktemp as postgres: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "mktemp as postgres failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let pgdata = String::from_utf8_lossy(&output.stdout).trim().to_string();
    command.args(["--runas", "postgres", "--pgdata", &pgdata]);
    hook_install(&mut command)?;
    let result = step("#[pg_test]s (cargo pgrx test)", &mut command);
    let _ = std::fs::remove_dir_all(&pgdata);
    result
}

/// Makes the pgrx test framework install its build through this program (`xtask pgrx
/// install ...`, see [`crate::install::pgrx_hook`]): left alone, it copies the library in
/// place with `sudo cp`, which kills any server that has the old one loaded.
fn hook_install(command: &mut Command) -> Result {
    let me = std::env::current_exe().map_err(|error| format!("the xtask binary: {error}"))?;
    command.env("CARGO_PGRX", me);
    Ok(())
}

/// `cargo xtask demo`: a throwaway cluster with the extension, and the quick start on it: the
/// producer enqueues jobs, the consumer runs them (in drain mode, so it ends), and the log shows
/// how they ended.
pub fn demo() -> Result {
    setup::ensure()?;
    install(false, None)?;
    step(
        "build the pgq command line and the examples",
        cargo().args([
            "build",
            "--quiet",
            "--package",
            "pgq",
            "--package",
            "pgqueuer-client",
            "--examples",
            "--bins",
        ]),
    )?;

    heading("start a throwaway PostgreSQL 15 with pgqueuer preloaded");
    let cluster = Cluster::start_with(Options {
        durable: true,
        ..Options::default()
    })
    .map_err(|error| error.to_string())?;
    // The background scheduler serves database `postgres` (pgqueuer.database's default).
    let database = "postgres";
    let env = cluster.env(database);
    let shown: Vec<String> = env
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    println!("    {}", shown.join(" "));

    heading("CREATE EXTENSION pgqueuer");
    cluster
        .psql(database, "CREATE EXTENSION pgqueuer")
        .map_err(|error| error.to_string())?;

    let debug = workspace_root().join("target/debug");
    heading("pgq version");
    run(Command::new(debug.join("pgq"))
        .arg("version")
        .envs(env.clone()))?;

    heading("producer: enqueue 5 fetch jobs (client/examples/producer.rs)");
    run(Command::new(debug.join("examples/producer"))
        .arg("5")
        .envs(env.clone()))?;

    heading(
        "consumer: run them, then stop when none is left (client/examples/consumer.rs --drain)",
    );
    run(Command::new(debug.join("examples/consumer"))
        .arg("--drain")
        .envs(env.clone()))?;

    heading("the dashboard (pgq dashboard --once)");
    run(Command::new(debug.join("pgq"))
        .args(["dashboard", "--once"])
        .envs(env))?;

    heading("stop the cluster");
    cluster.stop().map_err(|error| error.to_string())?;
    println!("    stopped and deleted; no server left running");
    Ok(())
}
