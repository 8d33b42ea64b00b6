//! The two baselines pgqueuer is measured beside, run by the same Rust loops, so that the two
//! ratios differ only by schema:
//!
//! - **raw SQL**: hand-written statements on pgqueuer's own tables (`pgq.jobs`, `pgq.log`):
//!   what the SQL API's functions cost beyond the table they work on;
//! - **the minimal queue** (`../shared/bench/minimal-queue.md`): the smallest table and
//!   statements any PostgreSQL job queue runs per job, in schema `bench_minimal` (a table with a
//!   primary key and one partial index, a log with a primary key): what pgqueuer's schema costs
//!   too. Its tables are made on first use and emptied before each measurement.
//!
//! Each gives an insert, a claim (`$1` entrypoint, `$2` how many, `$3` the worker), an ack
//! (`$1` the claimed ids: delete and log), the claim to `EXPLAIN`, and its setup: reset, fill,
//! tally.

use pgqueuer::tokio_postgres::Client;

use crate::target::{PREFIX, Target, db};

/// Raw-SQL sessions plan each statement for the table as it is now. PostgreSQL's default may
/// keep a generic plan made while the queue was empty (a sequential scan), which would make the
/// baseline measure a bad plan rather than the limit.
pub const SESSION: &str = "SET plan_cache_mode = force_custom_plan";

/// A baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Hand-written SQL on pgqueuer's tables.
    Raw,
    /// The minimal queue's table and statements.
    Minimal,
}

impl Baseline {
    /// Its name in progress bars.
    pub fn label(self) -> &'static str {
        match self {
            Baseline::Raw => "raw SQL",
            Baseline::Minimal => "minimal queue",
        }
    }

    /// Inserts queued jobs: `$1` entrypoints, `$2` priorities, `$3` payloads.
    pub fn insert(self) -> &'static str {
        match self {
            Baseline::Raw => {
                "INSERT INTO pgq.jobs (entrypoint, priority, payload) \
                 SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[])"
            }
            Baseline::Minimal => {
                "INSERT INTO bench_minimal.q (entrypoint, priority, payload) \
                 SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[])"
            }
        }
    }

    /// Inserts one job (`$1` entrypoint, `$2` payload) and notifies its id on channel `$3`.
    pub fn insert_and_notify(self) -> &'static str {
        match self {
            Baseline::Raw => {
                "WITH j AS (INSERT INTO pgq.jobs (entrypoint, payload) VALUES ($1, $2) \
                 RETURNING id) SELECT pg_notify($3, id::text) FROM j"
            }
            Baseline::Minimal => {
                "WITH j AS (INSERT INTO bench_minimal.q (entrypoint, payload) VALUES ($1, $2) \
                 RETURNING id) SELECT pg_notify($3, id::text) FROM j"
            }
        }
    }

    /// Claims the best `$2` queued jobs of entrypoint `$1` for worker `$3`, returning `id`
    /// and `payload` (the order comes from the index, as in `pgq.dequeue`).
    pub fn claim(self) -> &'static str {
        match self {
            Baseline::Raw => {
                "UPDATE pgq.jobs SET status = 'picked', worker_id = $3, \
                        heartbeat = now(), picked_at = now(), updated = now() \
                 WHERE id IN (SELECT id FROM pgq.jobs \
                              WHERE entrypoint = $1 AND status = 'queued' \
                                AND execute_after <= now() \
                              ORDER BY priority DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, payload"
            }
            Baseline::Minimal => {
                "WITH c AS (SELECT id FROM bench_minimal.q \
                            WHERE entrypoint = $1 AND status = 'queued' \
                              AND execute_after <= now() \
                            ORDER BY priority DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
                      u AS (UPDATE bench_minimal.q q SET status = 'picked', heartbeat = now(), \
                                   worker = $3 \
                            FROM c WHERE q.id = c.id RETURNING q.id, q.payload) \
                 SELECT id, payload FROM u"
            }
        }
    }

    /// The claim as `EXPLAIN` takes it: `$1` and `$2` to be replaced by literals, a fresh
    /// worker id.
    pub fn claim_to_explain(self) -> String {
        self.claim()
            .replace("$2", "$2::int")
            .replace("$3", "gen_random_uuid()")
    }

    /// Ends the claimed jobs `$1` (ids): deletes them and writes their log rows.
    pub fn ack(self) -> &'static str {
        match self {
            Baseline::Raw => {
                "WITH done AS (DELETE FROM pgq.jobs WHERE id = ANY ($1) \
                     RETURNING id, entrypoint, priority, attempts, worker_id, created, picked_at) \
                 INSERT INTO pgq.log (job_id, entrypoint, priority, status, worker_id, attempts, \
                                      enqueued_at, picked_at) \
                 SELECT id, entrypoint, priority, 'successful', worker_id, attempts, created, \
                        picked_at \
                 FROM done"
            }
            Baseline::Minimal => {
                "WITH d AS (DELETE FROM bench_minimal.q WHERE id = ANY ($1) \
                     RETURNING id, entrypoint, priority) \
                 INSERT INTO bench_minimal.qlog (job_id, entrypoint, priority, status) \
                 SELECT id, entrypoint, priority, 'successful' FROM d"
            }
        }
    }

    /// Empties the baseline's table and log (for raw SQL, the benchmark's jobs in pgqueuer's),
    /// making the minimal queue's on first use; then VACUUM ANALYZE and CHECKPOINT.
    pub async fn reset(self, target: &Target, client: &Client) -> Result<(), String> {
        match self {
            Baseline::Raw => target.reset(client).await,
            Baseline::Minimal => {
                client.batch_execute(MINIMAL_TABLES).await.map_err(db)?;
                client
                    .batch_execute("TRUNCATE bench_minimal.q, bench_minimal.qlog")
                    .await
                    .map_err(db)?;
                settle_minimal(client).await
            }
        }
    }

    /// Inserts `count` queued jobs spread over `entrypoints` names as `target::fill` does,
    /// then settles.
    pub async fn fill(
        self,
        client: &Client,
        name: &str,
        entrypoints: u32,
        count: u64,
    ) -> Result<(), String> {
        match self {
            Baseline::Raw => crate::target::fill(client, name, entrypoints, count).await,
            Baseline::Minimal => {
                client
                    .execute(
                        "INSERT INTO bench_minimal.q (entrypoint, priority, payload) \
                         SELECT $1 || CASE WHEN $2 = 1 THEN '' \
                                           ELSE '_' || lpad((g % $2)::text, 2, '0') END, \
                                g % 3, '\\x0102030405060708'::bytea \
                         FROM generate_series(1, $3::bigint) AS g",
                        &[
                            &format!("{PREFIX}{name}"),
                            &(entrypoints as i32),
                            &(count as i64),
                        ],
                    )
                    .await
                    .map_err(db)?;
                settle_minimal(client).await
            }
        }
    }

    /// (jobs left, log rows, duplicate log rows) of the benchmark's entrypoints `name...`.
    pub async fn tally(self, client: &Client, name: &str) -> Result<(i64, i64, i64), String> {
        let sql = match self {
            Baseline::Raw => return crate::target::tally(client, name).await,
            Baseline::Minimal => {
                "SELECT (SELECT count(*) FROM bench_minimal.q WHERE entrypoint LIKE $1), \
                        (SELECT count(*) FROM bench_minimal.qlog WHERE entrypoint LIKE $1), \
                        (SELECT count(*) - count(DISTINCT job_id) FROM bench_minimal.qlog \
                         WHERE entrypoint LIKE $1)"
            }
        };
        let row = client
            .query_one(sql, &[&format!("{PREFIX}{name}%")])
            .await
            .map_err(db)?;
        Ok((
            row.try_get(0).map_err(db)?,
            row.try_get(1).map_err(db)?,
            row.try_get(2).map_err(db)?,
        ))
    }
}

/// The minimal queue's tables, as `../shared/bench/minimal-queue.md` has them.
const MINIMAL_TABLES: &str = "CREATE SCHEMA IF NOT EXISTS bench_minimal;
CREATE TABLE IF NOT EXISTS bench_minimal.q (
  id            bigserial PRIMARY KEY,
  priority      int NOT NULL DEFAULT 0,
  entrypoint    text NOT NULL,
  status        text NOT NULL DEFAULT 'queued',
  payload       bytea,
  created       timestamptz NOT NULL DEFAULT now(),
  execute_after timestamptz NOT NULL DEFAULT now(),
  heartbeat     timestamptz,
  worker        uuid
);
CREATE INDEX IF NOT EXISTS q_pick ON bench_minimal.q (entrypoint, priority DESC, id)
  WHERE status = 'queued';
CREATE TABLE IF NOT EXISTS bench_minimal.qlog (
  id         bigserial PRIMARY KEY,
  job_id     bigint NOT NULL,
  entrypoint text NOT NULL,
  priority   int NOT NULL,
  status     text NOT NULL,
  created    timestamptz NOT NULL DEFAULT now()
);";

/// VACUUM ANALYZE the minimal queue's tables and CHECKPOINT, as `target::settle` does for
/// pgqueuer's (the checkpoint needs superuser or pg_checkpoint; without it, it is skipped).
async fn settle_minimal(client: &Client) -> Result<(), String> {
    client
        .batch_execute("VACUUM ANALYZE bench_minimal.q, bench_minimal.qlog")
        .await
        .map_err(db)?;
    let _ = client.batch_execute("CHECKPOINT").await;
    Ok(())
}
