//! Nothing pgq runs resolves a name through a schema a database user can write to.
//!
//! An unprivileged role with CREATE on schema `public` (a database owner has it) plants
//! functions and operators there that shadow what pgq's functions call (`unnest(text[])`
//! matches better than `pg_catalog.unnest(anyarray)`; with `public` ahead of `pg_catalog` in
//! `search_path`, even `=` and `now()` are its own). Each planted object records that it ran.
//! A superuser then calls every pgq function, with the default `search_path` and with
//! `public, pg_catalog`, and the background worker runs its rounds: nothing may run.

use std::time::Duration;

use pgqueuer_tests::{Cluster, Listener, TestDb, expect_sqlstate, scalar};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// The planted objects. Each one inserts a row into `public.ran` when called, then behaves.
const PLANT: &str = r#"
CREATE FUNCTION public.mark(what text) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO public.ran VALUES (current_user, what) $$;
CREATE FUNCTION public.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('unnest(text[])'); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
CREATE FUNCTION public.unnest(a bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('unnest(bigint[])'); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
CREATE FUNCTION public.cardinality(a text[]) RETURNS int LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('cardinality(text[])'); RETURN pg_catalog.cardinality(a); END $$;
CREATE FUNCTION public.cardinality(a bigint[]) RETURNS int LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('cardinality(bigint[])'); RETURN pg_catalog.cardinality(a); END $$;
CREATE FUNCTION public.quote_literal(a text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('quote_literal(text)'); RETURN pg_catalog.quote_literal(a); END $$;
CREATE FUNCTION public.to_timestamp(a numeric) RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('to_timestamp(numeric)');
      RETURN pg_catalog.to_timestamp(a::float8); END $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('now()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('clock_timestamp()'); RETURN pg_catalog.clock_timestamp(); END $$;
CREATE FUNCTION public.pg_notify(c text, p text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('pg_notify'); PERFORM pg_catalog.pg_notify(c, p); END $$;
CREATE FUNCTION public.nextval(s regclass) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('nextval'); RETURN pg_catalog.nextval(s); END $$;
CREATE FUNCTION public.text_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('= (text)'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_eq);
CREATE FUNCTION public.int8_eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('= (bigint)'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.int8_eq);
CREATE FUNCTION public.int4_lt(a int, b int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.mark('< (int)'); RETURN a OPERATOR(pg_catalog.<) b; END $$;
CREATE OPERATOR public.< (LEFTARG = int, RIGHTARG = int, FUNCTION = public.int4_lt);
"#;

/// Every function of the SQL API, called once with arguments that make it do its work. The
/// statements themselves name no operator or function the attacker planted (they run with
/// `public` first too), so whatever runs, runs inside pgq.
const CALLS: &str = r#"
SELECT pgq.configure('a', concurrency_limit => 5, rate_limit => 100, max_attempts => 2);
SELECT pgq.configure('held', on_failure => 'hold');
SELECT pgq.enqueue('a', '\x01'::bytea, headers => '{"x": 1}');
SELECT pgq.enqueue('a', execute_after => '1 hour');
SELECT pgq.enqueue_many(ARRAY['a', 'b', 'held', 'held'], dedupe_keys => ARRAY['k', NULL, NULL, NULL]);
SELECT pgq.enqueue_many(ARRAY['a'], dedupe_keys => ARRAY['k'], on_conflict => 'skip');
SELECT count(*) FROM pgq.dequeue(ARRAY['a', 'b', 'held'], 10,
                                 '00000000-0000-0000-0000-000000000001');
SELECT pgq.heartbeat(ARRAY(SELECT id FROM pgq.jobs WHERE status = 'picked'),
                     '00000000-0000-0000-0000-000000000001');
SELECT pgq.ack(ARRAY(SELECT id FROM pgq.jobs
                     WHERE entrypoint OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'held'])
                       AND status = 'picked' ORDER BY id),
               ARRAY(SELECT 'exception'::pgq.job_state FROM pgq.jobs
                     WHERE entrypoint OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'held'])
                       AND status = 'picked'),
               NULL, '00000000-0000-0000-0000-000000000001');
SELECT pgq.requeue(ARRAY(SELECT id FROM pgq.jobs WHERE status = 'failed'));
SELECT count(*) FROM pgq.dequeue(ARRAY['a', 'b', 'held'], 10,
                                 '00000000-0000-0000-0000-000000000002');
SELECT pgq.retry((SELECT min(id) FROM pgq.jobs WHERE status = 'picked'), '0', 'again',
                 '00000000-0000-0000-0000-000000000002');
SELECT pgq.release(ARRAY(SELECT id FROM pgq.jobs WHERE entrypoint OPERATOR(pg_catalog.=) 'b'),
                   '00000000-0000-0000-0000-000000000002');
SELECT pgq.cancel(ARRAY(SELECT id FROM pgq.jobs WHERE status = 'picked'));
SELECT count(*) FROM pgq.job_status(ARRAY(SELECT job_id FROM pgq.log));
SELECT pgq.clear('b');
SELECT pgq.schedule('s', '* * * * *', 'Europe/Oslo');
UPDATE pgq.schedules SET next_run = pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 minute';
SELECT pgq.tick();
SELECT pgq._worker_round(pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 day');
SELECT pgq.unschedule('s');
SELECT pgq.pause('a');
SELECT pgq.resume('a');
SELECT pgq.set_log_retention('1 day');
SELECT pgq.set_stats_retention('1 day');
SELECT pgq.set_durability('balanced');
SELECT pgq.set_durability('durable');
SELECT pgq.durability();
SELECT pgq.enqueue('f');
SELECT pgq.fail(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['f'])));
SELECT pgq.configure('f', notify_completion => true);
SELECT pgq.enqueue('f');
SELECT pgq.ack(ARRAY(SELECT id FROM pgq.dequeue(ARRAY['f'])));
SELECT count(*) FROM pgq.backlog;
SELECT count(*) FROM pgq.workers;
SELECT pgq.version();
SELECT count(*) FROM pgq.queue_summary;
SELECT count(*) FROM pgq.throughput;
SELECT pgq.purge_log('0');
SELECT pgq.clear();
"#;

/// Creates the attacker, who owns nothing but may create objects in `public`, and the table
/// its objects write to; then plants them, as the attacker.
async fn plant(superuser: &Client, dsn: &str) {
    superuser
        .batch_execute(
            "CREATE ROLE attacker LOGIN;
             GRANT CREATE ON SCHEMA public TO attacker;
             CREATE TABLE public.ran (who text, what text);
             GRANT INSERT ON public.ran TO PUBLIC;",
        )
        .await
        .expect("the attacker's role");
    let attacker = pgqueuer::connect(&format!("{dsn} user=attacker"))
        .await
        .expect("connect as the attacker");
    attacker.batch_execute(PLANT).await.expect("plant");
}

async fn ran(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT who || ': ' || what FROM public.ran GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("read public.ran")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn planted_functions_and_operators_never_run_inside_pgq() {
    let db = TestDb::with_extension().await;
    let superuser = db.connect().await;
    plant(&superuser, &db.dsn).await;

    for search_path in ["\"$user\", public", "public, pg_catalog"] {
        let c = db.connect().await;
        c.batch_execute(&format!("SET search_path = {search_path}"))
            .await
            .expect("set search_path");
        c.batch_execute(CALLS)
            .await
            .unwrap_or_else(|error| panic!("search_path {search_path}: {error:?}"));
    }
    assert_eq!(
        ran(&superuser).await,
        Vec::<String>::new(),
        "attacker code ran inside pgq's functions"
    );
}

#[tokio::test]
async fn every_function_pins_its_search_path() {
    let db = TestDb::with_extension().await;
    let c = db.connect().await;
    let loose: Vec<String> = c
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.pronamespace = 'pgq'::regnamespace
               AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
             ORDER BY 1",
            &[],
        )
        .await
        .expect("pg_proc")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        loose,
        Vec::<String>::new(),
        "functions without a pinned search_path"
    );
}

/// The background worker runs as the bootstrap superuser: its rounds must not run planted
/// code either (`to_timestamp(numeric)` and `unnest(text[])` were reached before).
#[tokio::test]
async fn the_background_worker_runs_no_planted_code() {
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .expect("the cluster task")
        .expect("a preloaded cluster");
    let dsn = cluster.dsn("postgres");
    let superuser = pgqueuer::connect(&dsn).await.expect("connect");
    superuser
        .batch_execute("CREATE EXTENSION pgqueuer")
        .await
        .expect("CREATE EXTENSION");
    plant(&superuser, &dsn).await;

    // A deferred job makes the worker's round announce it (through unnest of the names).
    let mut listener = Listener::connect(&dsn).await;
    superuser
        .batch_execute("SELECT pgq.enqueue('later', execute_after => '50 ms')")
        .await
        .expect("a deferred job");
    let (payload, _) = tokio::time::timeout(Duration::from_secs(30), listener.next())
        .await
        .expect("the worker announces the job");
    assert!(payload.contains("later"), "{payload}");
    // And the round after it (a schedule made due, fired by the worker).
    superuser
        .batch_execute(
            "SELECT pgq.schedule('tick', '0 0 1 1 *');
             UPDATE pgq.schedules SET next_run = pg_catalog.now() - interval '1 minute';",
        )
        .await
        .expect("a due schedule");
    loop {
        let (payload, _) = tokio::time::timeout(Duration::from_secs(30), listener.next())
            .await
            .expect("the worker fires the schedule");
        if payload.contains("tick") {
            break;
        }
    }
    let fired: i64 = scalar(
        &superuser,
        "SELECT count(*) FROM pgq.jobs WHERE entrypoint = 'tick'",
        &[],
    )
    .await;
    assert_eq!(fired, 1);
    assert_eq!(
        ran(&superuser).await,
        Vec::<String>::new(),
        "attacker code ran in the background worker"
    );
    drop(cluster);
}

/// Who may run each statement: the pgq roles granted to a login, or none (the owner only).
const PRODUCER: &[&str] = &["producer", "worker", "admin"];
const WORKER: &[&str] = &["worker", "admin"];
const ADMIN: &[&str] = &["admin"];
const MONITOR: &[&str] = &["monitor", "admin"];
const READER: &[&str] = &["producer", "worker", "admin", "monitor"];
const EVERYONE: &[&str] = &["producer", "worker", "admin", "monitor", "none"];
const OWNER_ONLY: &[&str] = &[];

const MATRIX: &[(&[&str], &str)] = &[
    (PRODUCER, "SELECT pgq.enqueue('r')"),
    (PRODUCER, "SELECT pgq.enqueue_many(ARRAY['r'])"),
    (
        READER,
        "SELECT count(*) FROM pgq.job_status(ARRAY[1::bigint])",
    ),
    (READER, "SELECT pgq.version()"),
    (WORKER, "SELECT count(*) FROM pgq.dequeue(ARRAY['r'])"),
    (WORKER, "SELECT pgq.heartbeat(ARRAY[1::bigint])"),
    (WORKER, "SELECT pgq.ack(ARRAY[1::bigint])"),
    (WORKER, "SELECT pgq.fail(ARRAY[1::bigint])"),
    (WORKER, "SELECT pgq.retry(1)"),
    (WORKER, "SELECT pgq.release(ARRAY[1::bigint])"),
    (WORKER, "SELECT pgq.release_lost(gen_random_uuid())"),
    (
        WORKER,
        "SELECT count(*) FROM pgq.cancel_requested(ARRAY[1::bigint])",
    ),
    (WORKER, "SELECT pgq.lease(ARRAY['r'])"),
    (WORKER, "SELECT pgq.tick()"),
    (WORKER, "SELECT pgq._worker_round(now())"),
    (ADMIN, "SELECT pgq.configure('r', max_attempts => 2)"),
    (ADMIN, "SELECT pgq.schedule('r', '0 0 1 1 *')"),
    (ADMIN, "SELECT pgq.unschedule('r')"),
    (ADMIN, "SELECT pgq.unschedule_id(1)"),
    (ADMIN, "SELECT pgq.cancel(ARRAY[1::bigint])"),
    (ADMIN, "SELECT pgq.requeue(ARRAY[1::bigint])"),
    (ADMIN, "SELECT pgq.clear('r')"),
    (ADMIN, "SELECT pgq.purge_log('1 day')"),
    (ADMIN, "SELECT pgq.pause('r')"),
    (ADMIN, "SELECT pgq.resume('r')"),
    (ADMIN, "SELECT pgq.set_log_retention('30 days')"),
    (ADMIN, "SELECT pgq.set_stats_retention('30 days')"),
    (ADMIN, "SELECT pgq.set_durability('durable')"),
    (MONITOR, "SELECT pgq.durability()"),
    (MONITOR, "SELECT count(*) FROM pgq.settings"),
    (MONITOR, "SELECT count(*) FROM pgq.stats"),
    (MONITOR, "SELECT count(*) FROM pgq.queue_summary"),
    (MONITOR, "SELECT count(*) FROM pgq.throughput"),
    (MONITOR, "SELECT count(*) FROM pgq.backlog"),
    (MONITOR, "SELECT count(*) FROM pgq.workers"),
    (MONITOR, "SELECT count(*) FROM pgq.log"),
    (MONITOR, "SELECT count(*) FROM pgq.entrypoints"),
    (MONITOR, "SELECT count(*) FROM pgq.schedules"),
    (MONITOR, "SELECT count(id), count(detail) FROM pgq.jobs"),
    (ADMIN, "SELECT count(payload) FROM pgq.jobs"),
    (EVERYONE, "LISTEN pgq"),
    (EVERYONE, "LISTEN pgq_done"),
    // Nobody but the owner writes the tables, adds a trigger, or calls an internal function.
    (OWNER_ONLY, "INSERT INTO pgq.jobs (entrypoint) VALUES ('x')"),
    (OWNER_ONLY, "UPDATE pgq.jobs SET priority = 1"),
    (OWNER_ONLY, "DELETE FROM pgq.log"),
    (OWNER_ONLY, "TRUNCATE pgq.log"),
    (
        OWNER_ONLY,
        "INSERT INTO pgq.entrypoints (name) VALUES ('x')",
    ),
    (
        OWNER_ONLY,
        "INSERT INTO pgq.schedules (entrypoint, expression) VALUES ('x', '@daily')",
    ),
    (
        OWNER_ONLY,
        "CREATE TRIGGER t BEFORE INSERT ON pgq.jobs FOR EACH ROW \
         EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    ),
    (OWNER_ONLY, "SELECT pgq._wake_scheduler(now())"),
    (OWNER_ONLY, "SELECT pgq._notify_enqueued(ARRAY['x'])"),
    (OWNER_ONLY, "SELECT pgq._maintain()"),
    (OWNER_ONLY, "UPDATE pgq.settings SET log_retention = NULL"),
    (
        OWNER_ONLY,
        "SELECT pgq._end_claims(ARRAY[1::bigint], NULL, NULL, NULL, NULL, true)",
    ),
    (
        OWNER_ONLY,
        "SELECT pgq._cron_next('* * * * *', 'UTC', now())",
    ),
];

/// Every role against every function and table, with real logins that are not superusers:
/// what a role may do works, the rest is 42501 (insufficient_privilege).
#[tokio::test]
async fn each_role_may_do_what_it_is_for_and_nothing_else() {
    let db = TestDb::with_extension().await;
    let superuser = db.connect().await;
    let kinds = ["producer", "worker", "admin", "monitor", "none"];
    let mut logins = Vec::new();
    for kind in kinds {
        let login = format!("app_{kind}_{}", db.name);
        let grant = match kind {
            "none" => String::new(),
            kind => format!("GRANT pgq_{kind} TO {login};"),
        };
        superuser
            .batch_execute(&format!("CREATE ROLE {login} LOGIN; {grant}"))
            .await
            .expect("a login");
        let client = pgqueuer::connect(&format!("{} user={login}", db.dsn))
            .await
            .expect("connect");
        logins.push((kind, client));
    }
    let mut wrong = Vec::new();
    for (allowed, sql) in MATRIX {
        for (kind, client) in &logins {
            client.batch_execute("BEGIN").await.expect("BEGIN");
            let result = client.batch_execute(sql).await;
            client.batch_execute("ROLLBACK").await.expect("ROLLBACK");
            let may = allowed.contains(kind);
            match (may, &result) {
                (true, Ok(())) => {}
                (false, Err(error)) if error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {}
                _ => wrong.push(format!(
                    "{kind}: {sql}: {}",
                    match &result {
                        Ok(()) => "allowed".to_string(),
                        Err(error) => pgqueuer_tests::describe(error),
                    }
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "unexpected results:\n{}",
        wrong.join("\n")
    );

    // PUBLIC holds nothing in schema pgq (a NULL ACL of a function or type means PUBLIC may
    // use it).
    let public: Vec<String> = superuser
        .query(
            "SELECT 'schema' FROM pg_namespace n, aclexplode(n.nspacl) a
              WHERE n.nspname = 'pgq' AND a.grantee = 0
             UNION ALL
             SELECT p.oid::regprocedure::text FROM pg_proc p
              WHERE p.pronamespace = 'pgq'::regnamespace
                AND (p.proacl IS NULL OR EXISTS (SELECT FROM aclexplode(p.proacl) a
                                                 WHERE a.grantee = 0))
             UNION ALL
             SELECT c.oid::regclass::text FROM pg_class c, aclexplode(c.relacl) a
              WHERE c.relnamespace = 'pgq'::regnamespace AND a.grantee = 0
             UNION ALL
             SELECT t.typname::text FROM pg_type t
              WHERE t.typnamespace = 'pgq'::regnamespace AND t.typtype = 'e'
                AND (t.typacl IS NULL OR EXISTS (SELECT FROM aclexplode(t.typacl) a
                                                 WHERE a.grantee = 0))",
            &[],
        )
        .await
        .expect("ACLs")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(public, Vec::<String>::new(), "PUBLIC may use these");
}

/// A role of that name made by someone else, with powers pgqueuer's role must not have,
/// stops the install with a message saying what differs; nothing is installed.
#[tokio::test]
async fn an_existing_role_that_is_not_what_pgqueuer_makes_stops_the_install() {
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .expect("the cluster task")
        .expect("a cluster");
    let c = pgqueuer::connect(&cluster.dsn("postgres"))
        .await
        .expect("connect");
    for (setup, expected) in [
        (
            "CREATE ROLE pgq_worker LOGIN CREATEDB",
            "role pgq_worker exists with LOGIN CREATEDB, which pgqueuer's role must not have",
        ),
        (
            "DROP ROLE pgq_worker; CREATE ROLE pgq_monitor; GRANT pg_read_all_data TO pgq_monitor",
            "role pgq_monitor exists and is a member of pg_read_all_data, but pgqueuer's role \
             is a member of no role",
        ),
    ] {
        c.batch_execute(setup).await.expect("a role of that name");
        let message = expect_sqlstate(
            c.query("CREATE EXTENSION pgqueuer", &[]).await,
            &SqlState::DUPLICATE_OBJECT,
        );
        assert_eq!(message, expected);
        let installed: i64 = scalar(
            &c,
            "SELECT count(*) FROM pg_extension WHERE extname = 'pgqueuer'",
            &[],
        )
        .await;
        assert_eq!(installed, 0, "nothing is installed");
    }
    // Fixed, the install goes through.
    c.batch_execute("REVOKE pg_read_all_data FROM pgq_monitor; CREATE EXTENSION pgqueuer")
        .await
        .expect("the install with the role fixed");
    drop(cluster);
}

/// A DBA chooses the role the background worker runs as: a login granted pgq_worker does.
#[tokio::test]
async fn the_background_worker_runs_as_the_role_a_dba_chooses() {
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start_with(pgqueuer_cluster::Options {
            settings: vec!["pgqueuer.role = 'pgq_scheduler'".into()],
            ..pgqueuer_cluster::Options::default()
        })
    })
    .await
    .expect("the cluster task")
    .expect("a cluster whose worker connects as pgq_scheduler");
    let dsn = cluster.dsn("postgres");
    let c = pgqueuer::connect(&dsn).await.expect("connect");
    c.batch_execute(
        "CREATE EXTENSION pgqueuer;
         CREATE ROLE pgq_scheduler LOGIN;
         GRANT pgq_worker TO pgq_scheduler;",
    )
    .await
    .expect("the extension and the worker's role");
    let mut listener = Listener::connect(&dsn).await;
    c.batch_execute(
        "SELECT pgq.schedule('tick', '0 0 1 1 *');
         UPDATE pgq.schedules SET next_run = now() - interval '1 minute';",
    )
    .await
    .expect("a due schedule");
    let (payload, sender) = tokio::time::timeout(Duration::from_secs(60), listener.next())
        .await
        .expect("the worker fires the schedule");
    assert!(payload.contains("tick"), "{payload}");
    let user: String = scalar(
        &c,
        "SELECT usename::text FROM pg_stat_activity WHERE pid = $1",
        &[&sender],
    )
    .await;
    assert_eq!(user, "pgq_scheduler");
    drop(cluster);
}
