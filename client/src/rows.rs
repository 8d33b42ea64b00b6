//! What the read model's views and tables give, as rows: `pgq.queue_summary`, `pgq.backlog`,
//! `pgq.workers`, `pgq.throughput` and `pgq.log` ([`Queries`](crate::Queries) reads them).

use std::time::SystemTime;

use serde_json::Value;
use uuid::Uuid;

use crate::JobState;

/// A row of `pgq.queue_summary`.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// The entrypoint.
    pub entrypoint: String,
    /// The live state.
    pub status: JobState,
    /// The priority.
    pub priority: i32,
    /// How many jobs.
    pub count: i64,
    /// When the oldest of them was enqueued.
    pub oldest: SystemTime,
}

/// A row of `pgq.log`: one outcome of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    /// The log row's id.
    pub id: i64,
    /// The job.
    pub job_id: i64,
    /// Its entrypoint.
    pub entrypoint: String,
    /// The outcome (`Queued` for a retry or requeue).
    pub status: JobState,
    /// Attempts after the outcome.
    pub attempts: i32,
    /// The error, result or reason.
    pub detail: Option<Value>,
    /// When the outcome happened.
    pub created: SystemTime,
}

/// A row of `pgq.backlog`: an entrypoint's live jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct BacklogRow {
    /// The entrypoint.
    pub entrypoint: String,
    /// Queued jobs.
    pub queued: i64,
    /// Of those, the ones that may run now (not deferred).
    pub ready: i64,
    /// Running jobs.
    pub picked: i64,
    /// Held jobs (SQL state `failed`).
    pub held: i64,
    /// How long the oldest queued job has waited, in seconds.
    pub oldest_queued_seconds: Option<f64>,
}

/// A row of `pgq.workers`: a worker running jobs now.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    /// The worker id (each lane of a runtime has one).
    pub worker_id: Option<Uuid>,
    /// How many jobs it runs.
    pub jobs: i64,
    /// Of which entrypoints.
    pub entrypoints: Vec<String>,
    /// Its oldest and newest heartbeat.
    pub oldest_heartbeat: SystemTime,
    /// Its newest heartbeat.
    pub last_heartbeat: SystemTime,
}

/// A row of `pgq.throughput`: outcomes in one second of the last hour.
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputRow {
    /// The second.
    pub second: SystemTime,
    /// The entrypoint.
    pub entrypoint: String,
    /// The outcome.
    pub status: JobState,
    /// How many.
    pub count: i64,
}
