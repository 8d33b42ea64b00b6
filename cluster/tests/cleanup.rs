//! The throwaway cluster never outlives its owner: dropped, or owner killed outright.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgqueuer_cluster::Cluster;

/// The postmaster's process id, from the first line of `postmaster.pid`.
fn postmaster_pid(dir: &Path) -> u32 {
    let text = std::fs::read_to_string(dir.join("data/postmaster.pid")).expect("postmaster.pid");
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .expect("a pid on line 1")
}

/// Whether a process runs (a zombie waiting for its parent to reap it does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until `pid` has exited and `dir` is gone. Neither process is a child of this test,
/// so their ends cannot be awaited: watch for the effect, with a deadline that only guards
/// against a hang (it asserts nothing about speed).
fn wait_until_gone(pid: u32, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while (alive(pid) || dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "postmaster {pid} still runs");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn a_started_cluster_answers_sql_and_preloads_the_extension() {
    let cluster = Cluster::start().expect("cluster starts");
    assert_eq!(cluster.psql("postgres", "SELECT 1 + 1").expect("psql"), "2");
    assert_eq!(
        cluster
            .psql("postgres", "SHOW shared_preload_libraries")
            .expect("psql"),
        "pgqueuer"
    );
    let db = cluster.create_database().expect("a database");
    assert_eq!(
        cluster
            .psql(&db, "SELECT current_database()")
            .expect("psql"),
        db
    );
}

#[test]
fn stop_shuts_the_server_down_and_removes_its_files() {
    let cluster = Cluster::start().expect("cluster starts");
    let dir = cluster.dir().to_path_buf();
    let pid = postmaster_pid(&dir);
    assert!(alive(pid));

    cluster.stop().expect("stop");
    // pg_ctl stop -w returned once the server removed its pid file; its process may take a
    // moment more to end.
    assert!(!dir.exists(), "{} still exists after stop", dir.display());
    wait_until_gone(pid, &dir);
}

#[test]
fn killing_the_owner_still_stops_the_server() {
    let mut owner = Command::new(env!("CARGO_BIN_EXE_pgq-cluster"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pgq-cluster starts");
    let stdout = owner.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let exports = lines.next().expect("a first line").expect("readable");
    let dir = exports
        .split_whitespace()
        .find_map(|word| word.strip_prefix("PGHOST="))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no PGHOST in {exports:?}"));
    let pid = postmaster_pid(&dir);
    assert!(alive(pid));

    owner.kill().expect("SIGKILL the owner");
    owner.wait().expect("the owner is reaped");

    wait_until_gone(pid, &dir);
}
