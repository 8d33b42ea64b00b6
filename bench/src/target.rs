//! The database under test: a throwaway durable cluster by default, or `--dsn`. Also the
//! setup steps every scenario shares: emptying the queue and filling it fast.

use pgqueuer::Settings;
use pgqueuer::tokio_postgres::Client;
use pgqueuer_cluster::{Cluster, Options};
use serde_json::{Value, json};

/// Entrypoint names the benchmark uses all start with this, so that against `--dsn` it only
/// ever deletes its own jobs.
pub const PREFIX: &str = "bench_";

pub struct Target {
    pub config: Settings,
    /// The DSN, for a child process.
    pub dsn: String,
    /// Ours alone (a throwaway cluster): the queue may be truncated.
    pub owned: bool,
    _cluster: Option<Cluster>,
}

impl Target {
    /// Connects to `dsn`, or starts a throwaway cluster with PostgreSQL's durable defaults
    /// (fsync, synchronous_commit and full_page_writes on) and installs the extension.
    pub async fn open(dsn: Option<String>) -> Result<Target, String> {
        let (dsn, cluster) = match dsn {
            Some(dsn) => (dsn, None),
            None => {
                let cluster = Cluster::start_with(Options {
                    durable: true,
                    ..Options::default()
                })
                .map_err(|e| format!("cannot start a throwaway cluster: {e}"))?;
                let database = cluster
                    .create_database()
                    .map_err(|e| format!("cannot create the database: {e}"))?;
                cluster
                    .psql(&database, "CREATE EXTENSION pgqueuer")
                    .map_err(|e| format!("CREATE EXTENSION pgqueuer failed: {e}"))?;
                (cluster.dsn(&database), Some(cluster))
            }
        };
        let config = pgqueuer::config(&dsn).map_err(|e| e.to_string())?;
        let target = Target {
            config,
            dsn,
            owned: cluster.is_some(),
            _cluster: cluster,
        };
        let client = target.connect().await?;
        let foreign: i64 = client
            .query_one(
                "SELECT count(*) FROM pgq.jobs WHERE entrypoint NOT LIKE 'bench\\_%'",
                &[],
            )
            .await
            .map_err(|e| format!("is the pgqueuer extension installed? {e}"))?
            .try_get(0)
            .map_err(|e| e.to_string())?;
        if foreign > 0 {
            return Err(format!(
                "pgq.jobs holds {foreign} jobs that are not the benchmark's: run it on a database \
                 whose queue is idle (or leave out --dsn for a throwaway cluster)"
            ));
        }
        Ok(target)
    }

    pub async fn connect(&self) -> Result<Client, String> {
        pgqueuer::connect_with(&self.config)
            .await
            .map_err(|e| e.to_string())
    }

    /// The same database with `synchronous_commit = off` on every session.
    pub fn async_commit(&self) -> Settings {
        let mut config = self.config.clone();
        config.options("-c synchronous_commit=off");
        config
    }

    /// Empties the queue (the benchmark's jobs and log rows), forgets entrypoint settings,
    /// then VACUUM ANALYZE and CHECKPOINT, so that each measurement starts alike.
    pub async fn reset(&self, client: &Client) -> Result<(), String> {
        let sql = if self.owned {
            "TRUNCATE pgq.jobs, pgq.log; DELETE FROM pgq.entrypoints;"
        } else {
            "DELETE FROM pgq.jobs WHERE entrypoint LIKE 'bench\\_%'; \
             DELETE FROM pgq.log WHERE entrypoint LIKE 'bench\\_%'; \
             DELETE FROM pgq.entrypoints WHERE name LIKE 'bench\\_%';"
        };
        client.batch_execute(sql).await.map_err(db)?;
        settle(client).await
    }

    /// PostgreSQL's version and the settings that decide these numbers.
    pub async fn describe(&self, client: &Client) -> Result<Value, String> {
        let row = client
            .query_one(
                "SELECT version(), current_setting('fsync'), \
                        current_setting('synchronous_commit'), \
                        current_setting('full_page_writes'), current_setting('shared_buffers'), \
                        current_setting('wal_level'), current_setting('max_wal_size'), \
                        current_setting('work_mem')",
                &[],
            )
            .await
            .map_err(db)?;
        let get = |i: usize| row.try_get::<_, String>(i).unwrap_or_default();
        Ok(json!({
            "server": get(0),
            "fsync": get(1),
            "synchronous_commit": get(2),
            "full_page_writes": get(3),
            "shared_buffers": get(4),
            "wal_level": get(5),
            "max_wal_size": get(6),
            "work_mem": get(7),
            "throwaway_cluster": self.owned,
        }))
    }
}

/// VACUUM ANALYZE the queue's tables and CHECKPOINT (the latter needs superuser or
/// pg_checkpoint; without it the step is skipped).
pub async fn settle(client: &Client) -> Result<(), String> {
    client
        .batch_execute("VACUUM ANALYZE pgq.jobs, pgq.log, pgq.entrypoints")
        .await
        .map_err(db)?;
    let _ = client.batch_execute("CHECKPOINT").await;
    Ok(())
}

/// Inserts `count` queued jobs spread over `entrypoints` names (`bench_<name>_00`, ...) with
/// priorities 0..3, in one statement (setup, not measured), then settles.
pub async fn fill(client: &Client, name: &str, entrypoints: u32, count: u64) -> Result<(), String> {
    client
        .execute(
            "INSERT INTO pgq.jobs (entrypoint, priority, payload) \
             SELECT $1 || CASE WHEN $2 = 1 THEN '' ELSE '_' || lpad((g % $2)::text, 2, '0') END, \
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
    settle(client).await
}

/// The entrypoint names [`fill`] used.
pub fn names(name: &str, entrypoints: u32) -> Vec<String> {
    if entrypoints == 1 {
        return vec![format!("{PREFIX}{name}")];
    }
    (0..entrypoints)
        .map(|i| format!("{PREFIX}{name}_{i:02}"))
        .collect()
}

/// Counts (queued or picked jobs, log rows by status) of the benchmark's entrypoints.
pub async fn tally(client: &Client, name: &str) -> Result<(i64, i64, i64), String> {
    let pattern = format!("{PREFIX}{name}%");
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pgq.jobs WHERE entrypoint LIKE $1), \
                    (SELECT count(*) FROM pgq.log WHERE entrypoint LIKE $1), \
                    (SELECT count(*) - count(DISTINCT job_id) FROM pgq.log WHERE entrypoint LIKE $1)",
            &[&pattern],
        )
        .await
        .map_err(db)?;
    Ok((
        row.try_get(0).map_err(db)?,
        row.try_get(1).map_err(db)?,
        row.try_get(2).map_err(db)?,
    ))
}

/// A database error as one line.
pub fn db(error: pgqueuer::tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(e) => format!("{} ({})", e.message(), e.code().code()),
        None => error.to_string(),
    }
}
