//! What a handler is given and what it returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::Job;

/// What a handler returns: `Ok(())`, or any error (acked as `exception`, retried per the
/// entrypoint's `max_attempts`), or a [`RetryRequested`].
pub type HandlerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A registered handler: takes its job by value and runs as a tokio task.
pub(crate) type Handler =
    Arc<dyn Fn(Job) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>> + Send + Sync>;

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
                Err(_) => {
                    Err(Box::new(TimedOut { after }) as Box<dyn std::error::Error + Send + Sync>)
                }
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
