//! What a registered handler is, and how its run ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::handler_error::{BoxError, RetryRequested, TimedOut, Unrecoverable};
use crate::{Claim, Job};

/// What a registered handler's run comes to: the result to store, or the error.
pub(crate) type Output = Result<Option<Value>, BoxError>;

/// A registered handler: takes its job by value and runs as a tokio task.
pub(crate) type Handler =
    Arc<dyn Fn(Job) -> Pin<Box<dyn Future<Output = Output> + Send>> + Send + Sync>;

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

/// How a handler's run ended: what decides the report about its job (`pending.rs`) and the
/// `outcome` label of its run time (`metrics.rs`).
#[derive(Debug)]
pub(crate) enum Ended {
    /// It returned a result (the detail of the successful ack; `None` stores nothing).
    Successful(Option<Value>),
    /// It returned an error: an exception, retried per the entrypoint's `max_attempts`.
    Failed(BoxError),
    /// It asked for its job to run again later.
    RetryRequested(RetryRequested),
    /// Its error said no retry can mend it.
    Unrecoverable(Unrecoverable),
    /// It panicked, with this message.
    Panicked(String),
}

impl Ended {
    /// Reads a run's output, or the message of its panic.
    pub(crate) fn of(run: Result<Output, String>) -> Ended {
        match run {
            Ok(Ok(result)) => Ended::Successful(result),
            Ok(Err(error)) => match error.downcast::<RetryRequested>() {
                Ok(retry) => Ended::RetryRequested(*retry),
                Err(error) => match error.downcast::<Unrecoverable>() {
                    Ok(fatal) => Ended::Unrecoverable(*fatal),
                    Err(error) => Ended::Failed(error),
                },
            },
            Err(panic) => Ended::Panicked(panic),
        }
    }

    /// The `outcome` label of the handler's run time: `successful`, `exception`, `retry`,
    /// `unrecoverable` or `panic`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Ended::Successful(_) => "successful",
            Ended::Failed(_) => "exception",
            Ended::RetryRequested(_) => "retry",
            Ended::Unrecoverable(_) => "unrecoverable",
            Ended::Panicked(_) => "panic",
        }
    }
}

/// A handler that finished: which claim it ran, and how it ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub claim: Claim,
    pub ended: Ended,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(run: Result<Output, String>) -> &'static str {
        Ended::of(run).label()
    }

    #[test]
    fn a_run_ends_by_what_its_handler_returned() {
        assert_eq!(ended(Ok(Ok(None))), "successful");
        assert_eq!(ended(Ok(Err("boom".into()))), "exception");
        let retry = RetryRequested {
            delay: Duration::from_secs(5),
            reason: "busy".into(),
        };
        assert_eq!(ended(Ok(Err(Box::new(retry)))), "retry");
        assert_eq!(
            ended(Ok(Err(Box::new(Unrecoverable::new("bad"))))),
            "unrecoverable"
        );
        let timed_out = TimedOut {
            after: Duration::from_secs(1),
        };
        assert_eq!(ended(Ok(Err(Box::new(timed_out)))), "exception");
        assert_eq!(ended(Err("oops".into())), "panic");
    }
}
