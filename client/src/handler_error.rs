//! What a handler returns, and the errors that say how its job should end: any error (an
//! `exception`, retried per the entrypoint's `max_attempts`), [`RetryRequested`],
//! [`Unrecoverable`], and [`TimedOut`], which the runtime gives a handler that ran too long.
//! Typed jobs (`typed.rs`) and the runtime both use them; neither owns them.

use std::time::Duration;

/// Any error a handler returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a handler returns: `Ok(())`, or any error (acked as `exception`, retried per the
/// entrypoint's `max_attempts`), a [`RetryRequested`] or an [`Unrecoverable`].
pub type HandlerResult = Result<(), BoxError>;

/// What a typed handler ([`PgQueuer::job`](crate::PgQueuer::job)) returns: a result, stored
/// with the job's successful outcome (`()` stores nothing), or an error as for
/// [`HandlerResult`].
pub type JobResult<R = ()> = Result<R, BoxError>;

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
