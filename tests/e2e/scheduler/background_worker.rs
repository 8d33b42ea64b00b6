//! The scheduler, the extension's background worker ("pgqueuer scheduler"), in a server that
//! preloads the library. Each test has a cluster of its own, since the scheduler serves the
//! `postgres` database.

use std::time::{Duration, SystemTime};

use pgqueuer_cluster::Cluster;
use pgqueuer_tests::{Listener, scalar};
use serde_json::{Value, json};
use tokio_postgres::Client;

/// Guards against a hang: notifications come within a second or two when things work.
const PATIENCE: Duration = Duration::from_secs(30);

async fn cluster_with_extension() -> (Cluster, Client) {
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .expect("the cluster task")
        .expect("a preloaded cluster");
    let client = pgqueuer::connect(&cluster.dsn("postgres"))
        .await
        .expect("connect");
    client
        .batch_execute("CREATE EXTENSION pgqueuer")
        .await
        .expect("CREATE EXTENSION");
    (cluster, client)
}

/// The next notification, parsed, and its sender's process id.
async fn next(listener: &mut Listener) -> (Value, i32) {
    let (payload, pid) = tokio::time::timeout(PATIENCE, listener.next())
        .await
        .expect("a notification in time");
    (serde_json::from_str(&payload).expect("JSON"), pid)
}

async fn worker_pid(c: &Client) -> i32 {
    scalar(
        c,
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pgqueuer scheduler'",
        &[],
    )
    .await
}

#[tokio::test]
async fn a_delayed_job_is_announced_by_the_worker_when_it_falls_due() {
    let (cluster, c) = cluster_with_extension().await;
    let mut listener = Listener::connect(&cluster.dsn("postgres")).await;
    let id: i64 = scalar(
        &c,
        "SELECT pgq.enqueue('later', execute_after => '300 ms')",
        &[],
    )
    .await;
    let due: SystemTime = scalar(
        &c,
        "SELECT execute_after FROM pgq.jobs WHERE id = $1",
        &[&id],
    )
    .await;
    let (payload, sender) = next(&mut listener).await;
    let arrived = SystemTime::now();
    assert_eq!(
        payload,
        json!({"type": "enqueued", "entrypoints": ["later"]})
    );
    assert_eq!(
        sender,
        worker_pid(&c).await,
        "the worker sent it, not the enqueue"
    );
    let late = arrived
        .duration_since(due)
        .expect("not announced before it was due");
    eprintln!(
        "announced {:.1} ms after falling due",
        late.as_secs_f64() * 1000.0
    );
}

#[tokio::test]
async fn an_every_second_schedule_makes_one_job_per_second() {
    let (cluster, c) = cluster_with_extension().await;
    let mut listener = Listener::connect(&cluster.dsn("postgres")).await;
    c.execute("SELECT pgq.schedule('beat', '* * * * * *')", &[])
        .await
        .expect("schedule");
    for _ in 0..5 {
        let (payload, _) = next(&mut listener).await;
        assert_eq!(
            payload,
            json!({"type": "enqueued", "entrypoints": ["beat"]})
        );
    }
    let fires: Vec<SystemTime> = c
        .query(
            "SELECT (headers->>'scheduled_for')::timestamptz FROM pgq.jobs ORDER BY 1",
            &[],
        )
        .await
        .expect("the jobs")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(fires.len() >= 5, "{fires:?}");
    for pair in fires.windows(2) {
        let step = pair[1].duration_since(pair[0]).expect("ascending");
        assert_eq!(
            step,
            Duration::from_secs(1),
            "one job per second, none twice or skipped"
        );
    }
}

#[tokio::test]
async fn the_worker_survives_drop_and_create_extension_and_a_server_restart() {
    let (cluster, c) = cluster_with_extension().await;
    c.batch_execute("DROP EXTENSION pgqueuer; CREATE EXTENSION pgqueuer;")
        .await
        .expect("DROP and CREATE EXTENSION");
    let mut listener = Listener::connect(&cluster.dsn("postgres")).await;
    c.execute("SELECT pgq.schedule('beat', '* * * * * *')", &[])
        .await
        .expect("schedule");
    let (payload, _) = next(&mut listener).await;
    assert_eq!(
        payload,
        json!({"type": "enqueued", "entrypoints": ["beat"]})
    );

    let before = worker_pid(&c).await;
    tokio::task::spawn_blocking(move || {
        cluster.restart().expect("restart");
        cluster
    })
    .await
    .map(|cluster| async move {
        let c = pgqueuer::connect(&cluster.dsn("postgres"))
            .await
            .expect("reconnect");
        let mut listener = Listener::connect(&cluster.dsn("postgres")).await;
        let (payload, sender) = next(&mut listener).await;
        assert_eq!(
            payload,
            json!({"type": "enqueued", "entrypoints": ["beat"]})
        );
        let after = worker_pid(&c).await;
        assert_eq!(sender, after);
        assert_ne!(before, after, "a new worker after the restart");
    })
    .expect("the restart task")
    .await;
}

#[tokio::test]
async fn a_failing_round_is_logged_and_the_same_worker_goes_on() {
    let (cluster, c) = cluster_with_extension().await;
    let worker = worker_pid(&c).await;
    c.batch_execute(
        "ALTER FUNCTION pgq._scheduler_round(timestamptz) RENAME TO _scheduler_round_away",
    )
    .await
    .expect("break the rounds");
    // Wait for a failed round in the server log. Another process writes it, so it can only
    // be watched; the deadline guards against a hang.
    let deadline = std::time::Instant::now() + PATIENCE;
    while !std::fs::read_to_string(cluster.log_path())
        .unwrap_or_default()
        .contains("pgqueuer scheduler: a round failed and was rolled back")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no failed round was logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.batch_execute(
        "ALTER FUNCTION pgq._scheduler_round_away(timestamptz) RENAME TO _scheduler_round",
    )
    .await
    .expect("mend the rounds");
    let mut listener = Listener::connect(&cluster.dsn("postgres")).await;
    c.execute(
        "SELECT pgq.enqueue('later', execute_after => '100 ms')",
        &[],
    )
    .await
    .expect("enqueue");
    let (payload, sender) = next(&mut listener).await;
    assert_eq!(
        payload,
        json!({"type": "enqueued", "entrypoints": ["later"]})
    );
    assert_eq!(
        sender, worker,
        "the same worker process, not a restarted one"
    );
}

#[tokio::test]
async fn pgqueuer_enabled_is_reloaded_on_sighup() {
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start_with(pgqueuer_cluster::Options {
            settings: vec!["pgqueuer.enabled = off".into()],
            ..pgqueuer_cluster::Options::default()
        })
    })
    .await
    .expect("the cluster task")
    .expect("a cluster whose scheduler idles");
    let c = pgqueuer::connect(&cluster.dsn("postgres"))
        .await
        .expect("connect");
    c.batch_execute("CREATE EXTENSION pgqueuer")
        .await
        .expect("CREATE EXTENSION");
    let mut listener = Listener::connect(&cluster.dsn("postgres")).await;
    c.execute("SELECT pgq.schedule('beat', '* * * * * *')", &[])
        .await
        .expect("schedule");
    let fired: i64 = scalar(&c, "SELECT count(*) FROM pgq.jobs", &[]).await;
    assert_eq!(fired, 0, "an idle scheduler fires nothing");

    c.batch_execute("ALTER SYSTEM SET pgqueuer.enabled = on")
        .await
        .expect("turn the scheduler on");
    c.batch_execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");
    let (payload, sender) = next(&mut listener).await;
    assert_eq!(
        payload,
        json!({"type": "enqueued", "entrypoints": ["beat"]})
    );
    assert_eq!(sender, worker_pid(&c).await, "the reloaded worker fired it");
}

/// Deferred jobs of many long-named entrypoints fall due in one round: their announcement
/// takes several notifications, and the worker goes on (one notification over 8000 bytes
/// failed every round from then on, so no schedule fired again in that database).
#[tokio::test]
async fn a_round_with_many_long_names_announces_them_all_and_the_worker_goes_on() {
    let (cluster, c) = cluster_with_extension().await;
    let mut listener = Listener::connect(&cluster.dsn("postgres")).await;
    let names: Vec<String> = (0..100)
        .map(|i| format!("{i:03}{}", "d".repeat(252)))
        .collect();
    c.execute(
        "SELECT pgq.enqueue_many($1, execute_after => \
         array_fill('50 ms'::interval, ARRAY[cardinality($1::text[])]))",
        &[&names],
    )
    .await
    .expect("100 deferred jobs");
    let mut announced: Vec<String> = Vec::new();
    while announced.len() < names.len() {
        let (payload, _) = next(&mut listener).await;
        let list = payload["entrypoints"].as_array().expect("entrypoints");
        announced.extend(list.iter().filter_map(|n| n.as_str().map(String::from)));
    }
    announced.sort();
    assert_eq!(announced, names);

    c.execute("SELECT pgq.schedule('after', '* * * * * *')", &[])
        .await
        .expect("schedule");
    let (payload, _) = next(&mut listener).await;
    assert_eq!(
        payload,
        json!({"type": "enqueued", "entrypoints": ["after"]})
    );
}

/// The scheduler serves its database (`pgq._scheduler_serves()`, which the runtime asks to
/// know whether to tick itself), and no other; a server still preloading the 0.6.0 library
/// calls the round by its old name, `pgq._worker_round`, which fires due schedules as the new
/// one does.
#[tokio::test]
async fn the_scheduler_serves_its_database_only_and_the_old_round_name_still_works() {
    let (cluster, c) = cluster_with_extension().await;
    worker_pid(&c).await;
    let serves: bool = scalar(&c, "SELECT pgq._scheduler_serves()", &[]).await;
    assert!(serves, "the scheduler serves database postgres");
    let q = pgqueuer::Queries::new(
        pgqueuer::connect(&cluster.dsn("postgres"))
            .await
            .expect("connect"),
    );
    assert!(q.scheduler_serves().await.expect("asked"));

    c.batch_execute("CREATE DATABASE other")
        .await
        .expect("another database");
    let other = pgqueuer::connect(&cluster.dsn("other"))
        .await
        .expect("connect");
    other
        .batch_execute("CREATE EXTENSION pgqueuer")
        .await
        .expect("the extension there too");
    let serves: bool = scalar(&other, "SELECT pgq._scheduler_serves()", &[]).await;
    assert!(!serves, "no scheduler serves database other");

    // The old name fires a due schedule in the database that has no scheduler.
    other
        .batch_execute(
            "SELECT pgq.schedule('nightly', '0 2 * * *');
             UPDATE pgq.schedules SET next_run = now() - interval '1 minute';",
        )
        .await
        .expect("a due schedule");
    let _: Option<SystemTime> = scalar(
        &other,
        "SELECT pgq._worker_round(now() - interval '1 second')",
        &[],
    )
    .await;
    let fired: i64 = scalar(
        &other,
        "SELECT count(*) FROM pgq.jobs WHERE entrypoint = 'nightly'",
        &[],
    )
    .await;
    assert_eq!(fired, 1, "the old round's name fired the schedule");
}
