//! Listings of the queue for people: what `pgq` prints as tables or JSON. Each is one
//! statement whose rows come back as one JSON array of objects (`json_agg`, written by
//! PostgreSQL), columns in order, so any reader (a terminal table, a script, a page) gets the
//! same names and values.

use std::time::Duration;

use postgres_types::ToSql;

use crate::{Capability, Error, Queries};

/// A listing ([`Queries::report`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The cron schedules: id, entrypoint, expression, timezone, next_run, last_run, enabled.
    Schedules,
    /// The held jobs: id, entrypoint, priority, attempts, failed_at, error.
    Held,
    /// Each entrypoint's live jobs (`pgq.backlog`), the oldest queued job's age rounded to a
    /// tenth of a second.
    Backlog,
    /// The workers running jobs now (`pgq.workers`).
    Workers,
    /// Picked jobs whose heartbeat is older than `threshold`: id, entrypoint, worker_id,
    /// heartbeat, seconds_since.
    Stale {
        /// How old a heartbeat must be.
        threshold: Duration,
    },
    /// Outcomes per entrypoint and status over `window` back from now, from the per-minute
    /// statistics (whole minutes that overlap the window; the last minute or so is not folded
    /// in yet): count, per_second, mean_run_seconds, max_run_seconds.
    Stats {
        /// How far back.
        window: Duration,
    },
}

impl Report {
    /// Its statement, and the capability the schema needs for it.
    fn sql(&self) -> (&'static str, Option<Capability>) {
        match self {
            Report::Schedules => (
                "SELECT id, entrypoint, expression, timezone, next_run, last_run, enabled \
                 FROM pgq.schedules ORDER BY id",
                None,
            ),
            Report::Held => (
                "SELECT id, entrypoint, priority, attempts, updated AS failed_at, \
                        detail->>'message' AS error \
                 FROM pgq.jobs WHERE status = 'failed' ORDER BY id",
                None,
            ),
            Report::Backlog => (
                "SELECT entrypoint, queued, ready, picked, held, \
                        round(oldest_queued_seconds::numeric, 1) AS oldest_queued_seconds \
                 FROM pgq.backlog ORDER BY entrypoint",
                Some(Capability::ReadModel),
            ),
            Report::Workers => (
                "SELECT worker_id, jobs, entrypoints, oldest_heartbeat, last_heartbeat \
                 FROM pgq.workers ORDER BY worker_id",
                Some(Capability::ReadModel),
            ),
            Report::Stale { .. } => (
                "SELECT id, entrypoint, worker_id, heartbeat, \
                        round(extract(epoch FROM now() - heartbeat)::numeric, 1) AS seconds_since \
                 FROM pgq.jobs WHERE status = 'picked' \
                   AND heartbeat < now() - make_interval(secs => $1::float8) ORDER BY heartbeat",
                None,
            ),
            Report::Stats { .. } => (
                "SELECT entrypoint, status, sum(count)::bigint AS count, \
                        round((sum(count) / $1::float8)::numeric, 3) AS per_second, \
                        round((sum(run_seconds_sum) / sum(count))::numeric, 3) \
                            AS mean_run_seconds, \
                        round(max(run_seconds_max)::numeric, 3) AS max_run_seconds \
                 FROM pgq.stats \
                 WHERE minute > now() - make_interval(secs => $1::float8) - interval '1 minute' \
                 GROUP BY entrypoint, status ORDER BY entrypoint, status",
                Some(Capability::Stats),
            ),
        }
    }

    /// Its one parameter, seconds, when it has one.
    fn seconds(&self) -> Option<f64> {
        match self {
            Report::Stale { threshold } => Some(threshold.as_secs_f64()),
            Report::Stats { window } => Some(window.as_secs_f64()),
            _ => None,
        }
    }
}

impl Queries {
    /// A listing as a JSON array of objects, as PostgreSQL's `json_agg` writes it (`[]` when
    /// there are no rows). One statement.
    pub async fn report(&self, report: &Report) -> Result<String, Error> {
        let (sql, needs) = report.sql();
        if let Some(capability) = needs {
            self.schema().await?.requires(capability)?;
        }
        let wrapped = format!("SELECT coalesce(json_agg(t), '[]')::text FROM ({sql}) t");
        let seconds = report.seconds();
        let params: Vec<&(dyn ToSql + Sync)> = match &seconds {
            Some(seconds) => vec![seconds],
            None => Vec::new(),
        };
        let row = self
            .client()
            .query_one(&wrapped, &params)
            .await
            .map_err(Error::from_db)?;
        Ok(row.try_get(0)?)
    }
}
