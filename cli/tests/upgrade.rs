//! Upgrading a database with jobs in flight, from every release to the current version.
//!
//! For each frozen release V (`extension/sql/pgqueuer--V.sql`): install V in a server of its
//! own, put data in every state with V's own SQL (`tests/upgrade/fixture-V.sql`), check that
//! the background worker of the current library serves V's schema, run `pgq upgrade`, then
//! check that the catalog equals a fresh install of the current version, that every row kept
//! its meaning, that the jobs still work (the picked job is acked by its worker, the held job
//! requeued, a schedule fires, the dedupe key holds, everything drains) and that `pgq verify`
//! passes.

mod support;

use std::time::Duration;

use pgqueuer_tests::catalog::{difference, snapshot};
use pgqueuer_tests::release::{self, CURRENT};
use pgqueuer_tests::{Cluster, Listener, expect_sqlstate, rows_json, scalar};
use serde_json::Value;
use support::{pgq, stderr, stdout};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// Guards against a hang: the worker fires a due schedule within about a second.
const PATIENCE: Duration = Duration::from_secs(30);

/// The tables whose rows an upgrade must keep, with their order.
const TABLES: &[(&str, &str)] = &[
    ("pgq.jobs", "id"),
    ("pgq.log", "id"),
    ("pgq.entrypoints", "name"),
    ("pgq.schedules", "id"),
];

const WORKER_1: &str = "00000000-0000-0000-0000-000000000001";

/// Each table's rows as JSON objects, in order.
async fn rows(client: &Client) -> Vec<(String, Vec<serde_json::Map<String, Value>>)> {
    let mut all = Vec::new();
    for (table, order) in TABLES {
        let json = rows_json(client, table, order).await;
        let rows: Vec<serde_json::Map<String, Value>> =
            serde_json::from_str(&json).expect("rows as JSON");
        all.push((table.to_string(), rows));
    }
    all
}

/// Makes a schedule due and waits for the background worker to fire it.
async fn worker_fires(client: &Client, listener: &mut Listener, entrypoint: &str) {
    let fired_before: i64 = scalar(
        client,
        "SELECT count(*) FROM pgq.jobs WHERE entrypoint = $1",
        &[&entrypoint],
    )
    .await;
    client
        .execute(
            "UPDATE pgq.schedules SET next_run = now() - interval '1 minute' \
             WHERE entrypoint = $1",
            &[&entrypoint],
        )
        .await
        .expect("make the schedule due");
    let worker: i32 = scalar(
        client,
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgqueuer scheduler'",
        &[],
    )
    .await;
    loop {
        let (payload, sender) = tokio::time::timeout(PATIENCE, listener.next())
            .await
            .unwrap_or_else(|_| panic!("the worker did not fire schedule {entrypoint}"));
        let payload: Value = serde_json::from_str(&payload).expect("a JSON notification");
        let names = payload["entrypoints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if sender == worker && names.contains(&Value::from(entrypoint)) {
            break;
        }
    }
    let fired: i64 = scalar(
        client,
        "SELECT count(*) FROM pgq.jobs WHERE entrypoint = $1 AND headers ? 'schedule_id'",
        &[&entrypoint],
    )
    .await;
    assert_eq!(
        fired,
        fired_before + 1,
        "one job for the fire of {entrypoint}"
    );
}

#[tokio::test]
async fn every_release_upgrades_to_the_current_version_with_jobs_in_flight() {
    let releases = release::releases();
    assert!(!releases.is_empty(), "no release in extension/sql/");
    for version in releases {
        upgrade_from(&version.to_string()).await;
    }
}

async fn upgrade_from(version: &str) {
    let fixture = release::repo_root()
        .join("tests")
        .join("upgrade")
        .join(format!("fixture-{version}.sql"));
    let fixture = std::fs::read_to_string(&fixture).unwrap_or_else(|error| {
        panic!(
            "release {version} needs upgrade-test data written with its own API: {}: {error}",
            fixture.display()
        )
    });

    // A server of its own: its background worker serves database postgres.
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .expect("the cluster task")
        .expect("a preloaded cluster");
    let dsn = cluster.dsn("postgres");
    let c = pgqueuer::connect(&dsn).await.expect("connect");
    c.batch_execute(&format!("CREATE EXTENSION pgqueuer VERSION '{version}'"))
        .await
        .unwrap_or_else(|error| panic!("CREATE EXTENSION pgqueuer VERSION '{version}': {error}"));
    let installed: String = scalar(&c, "SELECT pgq.version()", &[]).await;
    assert_eq!(installed, version);
    c.batch_execute(&fixture).await.unwrap_or_else(|error| {
        panic!(
            "fixture-{version}.sql: {}",
            pgqueuer_tests::describe(&error)
        )
    });

    // Until a database is updated, the current library's worker serves the old schema.
    let mut listener = Listener::connect(&dsn).await;
    worker_fires(&c, &mut listener, "nightly").await;

    let before = rows(&c).await;
    let picked: i64 = scalar(
        &c,
        "SELECT id FROM pgq.jobs WHERE entrypoint = 'picked' AND status = 'picked'",
        &[],
    )
    .await;
    let held: i64 = scalar(
        &c,
        "SELECT id FROM pgq.jobs WHERE entrypoint = 'held' AND status = 'failed'",
        &[],
    )
    .await;

    let upgrade = pgq(&dsn, &["upgrade"]);
    assert_eq!(
        upgrade.status.code(),
        Some(0),
        "pgq upgrade from {version}: {}",
        stderr(&upgrade)
    );
    let expected = if version == CURRENT {
        format!("pgqueuer is already at {CURRENT}")
    } else {
        format!("upgraded pgqueuer from {version} to {CURRENT}")
    };
    assert!(
        stdout(&upgrade).contains(&expected),
        "pgq upgrade said {:?}, not {expected:?}",
        stdout(&upgrade)
    );
    if version == "0.1.0" && version != CURRENT {
        // The 0.1.0 -> 0.2.0 step bounds the settings and reports the rows beyond (the
        // fixture's 'unbounded'), which it keeps; pgq upgrade prints the server's warning.
        assert!(
            stderr(&upgrade)
                .contains("settings of entrypoints 'unbounded' are out of the allowed ranges"),
            "{}",
            stderr(&upgrade)
        );
    }

    // The catalog is exactly that of a fresh install.
    cluster
        .psql("postgres", "CREATE DATABASE fresh")
        .expect("CREATE DATABASE fresh");
    let fresh = pgqueuer::connect(&cluster.dsn("fresh"))
        .await
        .expect("connect to fresh");
    fresh
        .batch_execute("CREATE EXTENSION pgqueuer")
        .await
        .expect("CREATE EXTENSION pgqueuer");
    let (upgraded, installed) = (snapshot(&c).await, snapshot(&fresh).await);
    assert!(
        upgraded == installed,
        "from {version}: the upgraded catalog differs from a fresh install of {CURRENT} \
         (a function body or grant that differs: `cargo xtask sync-upgrade` copies sql/ into \
         the unreleased upgrade script):\n{}",
        difference(&upgraded, &installed)
    );

    // Every row is still there with the same values (columns added since are left out).
    let after = rows(&c).await;
    for ((table, old), (_, new)) in before.iter().zip(&after) {
        assert_eq!(
            old.len(),
            new.len(),
            "from {version}: {table} lost or gained rows"
        );
        for (old_row, new_row) in old.iter().zip(new) {
            let kept: serde_json::Map<String, Value> = new_row
                .iter()
                .filter(|(column, _)| old_row.contains_key(*column))
                .map(|(column, value)| (column.clone(), value.clone()))
                .collect();
            assert_eq!(&kept, old_row, "from {version}: a row of {table} changed");
        }
    }

    // The jobs still work. The picked job's worker acks it.
    let acked: i64 = scalar(
        &c,
        &format!("SELECT pgq.ack(ARRAY[$1::bigint], worker_id => '{WORKER_1}')"),
        &[&picked],
    )
    .await;
    assert_eq!(
        acked, 1,
        "from {version}: the picked job is acked by its worker"
    );
    // The held job is requeued.
    let requeued: i64 = scalar(&c, "SELECT pgq.requeue(ARRAY[$1::bigint])", &[&held]).await;
    assert_eq!(requeued, 1, "from {version}: the held job is requeued");
    // The dedupe key is still in use.
    expect_sqlstate(
        c.query_one(
            "SELECT pgq.enqueue('deduped', dedupe_key => 'one-of-a-kind')",
            &[],
        )
        .await,
        &SqlState::UNIQUE_VIOLATION,
    );
    // A schedule fires, through the worker.
    worker_fires(&c, &mut listener, "yearly").await;

    // Everything runnable drains, each job to one terminal log row.
    let mut drained = 0;
    loop {
        let ids: Vec<i64> = c
            .query(
                "SELECT id FROM pgq.dequeue(ARRAY(SELECT DISTINCT entrypoint FROM pgq.jobs), 100)",
                &[],
            )
            .await
            .expect("dequeue")
            .iter()
            .map(|row| row.get(0))
            .collect();
        if ids.is_empty() {
            break;
        }
        drained += ids.len();
        let n: i64 = scalar(&c, "SELECT pgq.ack($1)", &[&ids]).await;
        assert_eq!(n as usize, ids.len());
    }
    assert!(drained >= 7, "from {version}: {drained} jobs drained");
    let left: Vec<String> = c
        .query(
            "SELECT entrypoint || ':' || status FROM pgq.jobs ORDER BY 1",
            &[],
        )
        .await
        .expect("what is left")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        left,
        ["asked:queued", "deferred:queued", "retried:queued"],
        "from {version}: only jobs due later are left"
    );
    let doubled: i64 = scalar(
        &c,
        "SELECT count(*) FROM (SELECT job_id FROM pgq.log \
         WHERE status IN ('successful', 'exception', 'canceled', 'deleted') \
         GROUP BY job_id HAVING count(*) > 1) d",
        &[],
    )
    .await;
    assert_eq!(doubled, 0, "from {version}: one terminal log row per job");

    let verify = pgq(&dsn, &["verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "from {version}: pgq verify: {}",
        stdout(&verify)
    );
    drop(cluster);
}
