//! What a handler is given and what it returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::Job;

/// Any error a handler returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a handler returns: `Ok(())`, or any error (acked as `exception`, retried per the
/// entrypoint's `max_attempts`), a [`RetryRequested`] or an [`Unrecoverable`].
pub type HandlerResult = Result<(), BoxError>;

/// What a typed handler ([`PgQueuer::job`](crate::PgQueuer::job)) returns: a result, stored
/// with the job's successful outcome (`()` stores nothing), or an error as for
/// [`HandlerResult`].
pub type JobResult<R = ()> = Result<R, BoxError>;

/// What a registered handler's run comes to: the result to store, or the error.
pub(crate) type Output = Result<Option<Value>, BoxError>;

/// A registered handler: takes its job by value and runs as a tokio task.
pub(crate) type Handler =
    Arc<dyn Fn(Job) -> Pin<Box<dyn Future<Output = Output> + Send>> + Send + Sync>;

/// A handler's error that no retry can mend (a payload it cannot read, a request it refuses):
/// the job ends at once as `exception` (`pgq.fail`), whatever `max_attempts` says, with
/// `{"type": "unrecoverable", "message": reason}` in its log row. A typed handler's payload that
/// does not deserialise ends so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecoverable {
    /// Why, recorded in the log.
    pub reason: String,
}

impl Unrecoverable {
    /// An error ending the job for `reason`.
    pub fn new(reason: impl Into<String>) -> Unrecoverable {
        Unrecoverable {
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Unrecoverable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Unrecoverable {}

/// A handler's request to run its job again after `delay` (whatever `max_attempts` says).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRequested {
    /// How long to wait before the job may run again.
    pub delay: Duration,
    /// Why, recorded in the log.
    pub reason: String,
}

impl std::fmt::Display for RetryRequested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "retry requested in {:?}: {}", self.delay, self.reason)
    }
}

impl std::error::Error for RetryRequested {}

/// What a handler that ran longer than its entrypoint's timeout ([`PgQueuer::timeout`]) is
/// acked with: an `exception`, retried per the entrypoint's `max_attempts`. The handler's
/// future is dropped when the time is up, so it stops at its next `.await`.
///
/// [`PgQueuer::timeout`]: crate::PgQueuer::timeout
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    /// The entrypoint's timeout.
    pub after: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the handler ran longer than its timeout of {:?} and was cancelled",
            self.after
        )
    }
}

impl std::error::Error for TimedOut {}

/// `handler`, cancelled after `after` with [`TimedOut`].
pub(crate) fn with_timeout(handler: Handler, after: Duration) -> Handler {
    Arc::new(move |job| {
        let run = handler(job);
        Box::pin(async move {
            match tokio::time::timeout(after, run).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(TimedOut { after }) as BoxError),
            }
        })
    })
}

/// One fire of a schedule, as its handler receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledRun {
    /// The schedule's id (`pgq.schedules.id`).
    pub schedule_id: Option<i64>,
    /// The cron expression.
    pub expression: Option<String>,
    /// The fire being run (the latest one when missed fires were coalesced).
    pub scheduled_for: Option<String>,
    /// The job that carries this run.
    pub job: Job,
}

impl ScheduledRun {
    pub(crate) fn from_job(job: Job) -> ScheduledRun {
        let header = |name: &str| {
            job.headers
                .as_ref()
                .and_then(|headers| headers.get(name).cloned())
        };
        ScheduledRun {
            schedule_id: header("schedule_id").and_then(|id| id.as_i64()),
            expression: header("expression").and_then(|e| e.as_str().map(str::to_string)),
            scheduled_for: header("scheduled_for").and_then(|t| t.as_str().map(str::to_string)),
            job,
        }
    }
}
