//! What a job is, as the client sees it: the state type, a claimed job (`Job`, `Claim`), a job
//! to enqueue (`NewJob`, `OnConflict`) and how a claimed job ended (`Ack`).

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use postgres_types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::Error;

/// A job's state, SQL type `pgq.job_state`: live (`Queued`, `Picked`, `Held`) or how it
/// ended. Newer schemas may add states: a label this client does not know decodes as
/// [`JobState::Other`] rather than failing, so match with a wildcard arm.
///
/// *Held* is the state of a job kept after its last failed attempt (an entrypoint with
/// `on_failure = 'hold'`) until `pgq.requeue` or `pgq.cancel`; its SQL label is `failed`
/// (kept for every deployed client, users' queries and metrics labels).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting to be claimed (in the log: retried or requeued).
    Queued,
    /// Claimed by a worker and running.
    Picked,
    /// Finished without error.
    Successful,
    /// Finished with an error and no attempts left.
    Exception,
    /// Cancelled, or acked as cancelled.
    Canceled,
    /// Removed unrun by `clear`.
    Deleted,
    /// Held after its last failed attempt; can be requeued. SQL label `failed`.
    Held,
    /// A state of a newer schema, by its SQL label.
    Other(String),
}

/// The name this type had before 0.7.0.
#[deprecated(since = "0.7.0", note = "renamed JobState")]
pub type JobStatus = JobState;

impl JobState {
    /// The held state by its pre-0.7.0 name (its SQL label is still `failed`).
    #[deprecated(since = "0.7.0", note = "renamed JobState::Held")]
    #[allow(non_upper_case_globals)]
    pub const Failed: JobState = JobState::Held;

    /// Its label in SQL (`pgq.job_state`): `queued`, `picked`, `successful`, `exception`,
    /// `canceled`, `deleted`, `failed` (held), or the label of an unknown state.
    pub fn label(&self) -> &str {
        match self {
            JobState::Queued => "queued",
            JobState::Picked => "picked",
            JobState::Successful => "successful",
            JobState::Exception => "exception",
            JobState::Canceled => "canceled",
            JobState::Deleted => "deleted",
            JobState::Held => "failed",
            JobState::Other(label) => label,
        }
    }

    /// The state a SQL label names; an unknown label is [`JobState::Other`].
    pub fn from_label(label: &str) -> JobState {
        match label {
            "queued" => JobState::Queued,
            "picked" => JobState::Picked,
            "successful" => JobState::Successful,
            "exception" => JobState::Exception,
            "canceled" => JobState::Canceled,
            "deleted" => JobState::Deleted,
            "failed" => JobState::Held,
            other => JobState::Other(other.to_string()),
        }
    }
}

/// PostgreSQL sends an enum as its label: any label of a type named `job_state` is read.
impl<'a> FromSql<'a> for JobState {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> Result<JobState, Box<dyn std::error::Error + Sync + Send>> {
        Ok(JobState::from_label(std::str::from_utf8(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "job_state"
    }
}

impl ToSql for JobState {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.label().as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "job_state"
    }

    to_sql_checked!();
}

/// A row of `pgq.jobs`, as `dequeue` returns it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job's id.
    pub id: i64,
    /// The entrypoint (the kind of job) it runs as.
    pub entrypoint: String,
    /// Bigger runs first.
    pub priority: i32,
    /// The payload, as enqueued.
    pub payload: Option<Vec<u8>>,
    /// Headers, as enqueued (a schedule's jobs carry `schedule_id`, `expression`, `scheduled_for`).
    pub headers: Option<Value>,
    /// The dedupe key, if any.
    pub dedupe_key: Option<String>,
    /// Its state.
    pub status: JobState,
    /// Retries so far (0 on the first run).
    pub attempts: i32,
    /// The worker holding it.
    pub worker_id: Option<Uuid>,
    /// When it was enqueued.
    pub created: SystemTime,
    /// Not runnable before this.
    pub execute_after: SystemTime,
    /// When its current claim took it (`None` while queued).
    pub picked_at: Option<SystemTime>,
    /// The claim this job is in (how many times it has been claimed): reports about it
    /// ([`Claim::of`]) act only on this claim, not on a later one.
    pub claim_token: i32,
    /// Cancelled by the worker runtime when `pgq.cancel` takes this job while it runs. A
    /// handler may stop early (`job.cancel.cancelled().await`); if it finishes anyway, its ack
    /// is fenced off.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Two jobs are equal when their data is; the cancellation token is not compared.
impl PartialEq for Job {
    fn eq(&self, other: &Job) -> bool {
        (
            self.id,
            &self.entrypoint,
            self.priority,
            &self.payload,
            &self.headers,
        ) == (
            other.id,
            &other.entrypoint,
            other.priority,
            &other.payload,
            &other.headers,
        ) && (
            &self.dedupe_key,
            &self.status,
            self.attempts,
            self.worker_id,
        ) == (
            &other.dedupe_key,
            &other.status,
            other.attempts,
            other.worker_id,
        ) && (
            self.created,
            self.execute_after,
            self.picked_at,
            self.claim_token,
        ) == (
            other.created,
            other.execute_after,
            other.picked_at,
            other.claim_token,
        )
    }
}

impl Job {
    pub(crate) fn from_row(row: &Row) -> Result<Job, Error> {
        Ok(Job {
            id: row.try_get("id")?,
            entrypoint: row.try_get("entrypoint")?,
            priority: row.try_get("priority")?,
            payload: row.try_get("payload")?,
            headers: row.try_get("headers")?,
            dedupe_key: row.try_get("dedupe_key")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            worker_id: row.try_get("worker_id")?,
            created: row.try_get("created")?,
            execute_after: row.try_get("execute_after")?,
            picked_at: row.try_get("picked_at")?,
            claim_token: row.try_get("claim_token")?,
            cancel: tokio_util::sync::CancellationToken::new(),
        })
    }
}

/// A claimed job as the calls that report on it name it: its id and, to act only on that
/// claim, its claim token (sql/ack.sql, "Fencing").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The job.
    pub id: i64,
    /// Its claim token; `None` acts on whatever claim the job is in (weaker).
    pub token: Option<i32>,
}

impl Claim {
    /// The claim `job` was returned in.
    pub fn of(job: &Job) -> Claim {
        Claim {
            id: job.id,
            token: Some(job.claim_token),
        }
    }

    /// A job by id alone, whatever claim it is in.
    pub fn any(id: i64) -> Claim {
        Claim { id, token: None }
    }
}

/// The ids and tokens of claims as SQL arrays; the tokens are NULL unless every claim has one.
pub(crate) fn claim_arrays(claims: &[Claim]) -> (Vec<i64>, Option<Vec<i32>>) {
    let ids = claims.iter().map(|claim| claim.id).collect();
    let tokens = claims.iter().map(|claim| claim.token).collect();
    (ids, tokens)
}

/// A job to enqueue: `NewJob::new("mail").payload(b"hi").priority(5)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewJob {
    /// The entrypoint it runs as.
    pub entrypoint: String,
    /// Its payload.
    pub payload: Option<Vec<u8>>,
    /// Bigger runs first (default 0).
    pub priority: i32,
    /// Not runnable before this much time has passed.
    pub delay: Option<Duration>,
    /// At most one queued or picked job holds a dedupe key.
    pub dedupe_key: Option<String>,
    /// Free-form headers.
    pub headers: Option<Value>,
}

impl NewJob {
    /// A job of `entrypoint` with the defaults.
    pub fn new(entrypoint: impl Into<String>) -> NewJob {
        NewJob {
            entrypoint: entrypoint.into(),
            ..NewJob::default()
        }
    }
    /// Sets the payload.
    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> NewJob {
        self.payload = Some(payload.into());
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, priority: i32) -> NewJob {
        self.priority = priority;
        self
    }
    /// Sets the delay before it may run.
    pub fn delay(mut self, delay: Duration) -> NewJob {
        self.delay = Some(delay);
        self
    }
    /// Sets the dedupe key.
    pub fn dedupe_key(mut self, key: impl Into<String>) -> NewJob {
        self.dedupe_key = Some(key.into());
        self
    }
    /// Adds headers: the keys of `headers` (a JSON object) are set, the others kept (a typed
    /// job keeps its `content-type`). Anything but an object replaces the headers.
    pub fn headers(mut self, headers: Value) -> NewJob {
        match (&mut self.headers, headers) {
            (Some(Value::Object(have)), Value::Object(add)) => have.extend(add),
            (slot, headers) => *slot = Some(headers),
        }
        self
    }
    /// Sets one header.
    pub fn header(self, name: &str, value: impl Into<Value>) -> NewJob {
        let mut one = serde_json::Map::new();
        one.insert(name.to_string(), value.into());
        self.headers(Value::Object(one))
    }
}

/// What `enqueue_many` does with a dedupe key that is already taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Fail the whole batch ([`Error::Duplicate`]); nothing is inserted.
    Raise,
    /// Skip that job: its position in the result is `None`.
    Skip,
}

/// How a claimed job ended, for [`Queries::ack`](crate::Queries::ack).
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// The job, in the claim it ran in.
    pub claim: Claim,
    /// `Successful`, `Exception` or `Canceled`.
    pub status: JobState,
    /// An error (`{"type", "message"}`) or a result.
    pub detail: Option<Value>,
}

/// Where a job stands, as `pgq.job_status` reports it: live (`Queued`, `Picked`), held
/// (`Held`), or how it ended, with the detail of that outcome: a successful job's result, an
/// exception's error, a cancel's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// The job.
    pub id: i64,
    /// Its latest status.
    pub status: JobState,
    /// The result (successful), error (exception, held) or reason (canceled), if any.
    pub detail: Option<Value>,
}

impl JobOutcome {
    pub(crate) fn from_row(row: &Row) -> Result<JobOutcome, Error> {
        Ok(JobOutcome {
            id: row.try_get(0)?,
            status: row.try_get(1)?,
            detail: row.try_get(2)?,
        })
    }

    /// Whether the job will not run again by itself: it ended, or is held.
    pub fn is_finished(&self) -> bool {
        !matches!(self.status, JobState::Queued | JobState::Picked)
    }

    /// The result a typed handler returned, read as `R`: `None` unless the job ended
    /// successfully. A handler that returned `()` stored nothing, read as JSON `null` (so `()`
    /// and `Option<_>` read fine). [`Error::Invalid`] when the result is not an `R`.
    pub fn result<R: serde::de::DeserializeOwned>(&self) -> Result<Option<R>, Error> {
        if self.status != JobState::Successful {
            return Ok(None);
        }
        let value = self.detail.clone().unwrap_or(Value::Null);
        serde_json::from_value(value).map(Some).map_err(|error| {
            Error::invalid(format!(
                "the result of job {} is not a {}: {error}",
                self.id,
                std::any::type_name::<R>()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use postgres_types::Kind;

    use super::*;

    /// The type as a schema with one more state than this client knows would describe it.
    fn job_state_type() -> Type {
        let labels = [
            "queued",
            "picked",
            "successful",
            "exception",
            "canceled",
            "deleted",
            "failed",
            "snoozed",
        ];
        Type::new(
            "job_state".into(),
            1,
            Kind::Enum(labels.iter().map(|label| label.to_string()).collect()),
            "pgq".into(),
        )
    }

    #[test]
    fn every_label_reads_back_and_an_unknown_one_is_other() {
        let ty = job_state_type();
        for state in [
            JobState::Queued,
            JobState::Picked,
            JobState::Successful,
            JobState::Exception,
            JobState::Canceled,
            JobState::Deleted,
            JobState::Held,
            JobState::Other("snoozed".into()),
        ] {
            let mut bytes = BytesMut::new();
            state.to_sql_checked(&ty, &mut bytes).expect("encodes");
            assert_eq!(JobState::from_sql(&ty, &bytes).expect("decodes"), state);
        }
        assert_eq!(JobState::Held.label(), "failed");
        assert!(
            <JobState as FromSql>::accepts(&ty) && !<JobState as FromSql>::accepts(&Type::TEXT)
        );
        #[allow(deprecated)]
        let old = JobStatus::Failed;
        assert_eq!(old, JobState::Held);
    }
}
