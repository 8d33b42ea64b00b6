//! The examples of `client/examples/` run as tests, each against a database of its own with
//! pgqueuer installed (the extension, or the SQL-only install in a SQL-only run): an example
//! that no longer works fails the build's tests, so the docs that point at them stay true.

use std::path::PathBuf;
use std::process::Command;

use pgqueuer_tests::{TestDb, cluster};

/// The compiled example `name`: cargo builds examples beside the test binaries' `deps/`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = debug.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: cargo test and cargo nextest build the examples with the tests",
        path.display()
    );
    path
}

async fn run(name: &str) {
    let db = TestDb::installed().await;
    let output = Command::new(example(name))
        .envs(cluster().env(&db.name))
        .env_remove("PGQUEUER_DSN")
        .env_remove("DATABASE_URL")
        .output()
        .expect("the example runs");
    assert!(
        output.status.success(),
        "example {name} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

macro_rules! examples {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                run(stringify!($name)).await;
            }
        )*
    };
}

examples!(
    typed_job,
    result,
    transaction,
    retry,
    cancel,
    schedule,
    dedupe,
    limits,
    shared_state
);
