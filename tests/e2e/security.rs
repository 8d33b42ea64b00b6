//! Nothing pgq runs resolves a name through a schema a database user can write to.
//!
//! An unprivileged role with CREATE on schema `public` (a database owner has it) plants
//! functions and operators there that shadow what pgq's functions call (`unnest(text[])`
//! matches better than `pg_catalog.unnest(anyarray)`; with `public` ahead of `pg_catalog` in
//! `search_path`, even `=` and `now()` are its own). Each planted object records that it ran.
//! A superuser then calls every pgq function, with the default `search_path` and with
//! `public, pg_catalog`, and the background worker runs its rounds: nothing may run.

use std::time::Duration;

use pgqueuer_tests::{Cluster, Listener, TestDb, scalar};
use tokio_postgres::Client;

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
