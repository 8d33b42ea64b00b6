//! Outcomes not written yet: what each finished handler turns into (an ack or a retry), kept
//! until a flush writes them. They survive a lost connection.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::dispatch::{ClaimKey, Outcome};
use super::handler::{RetryRequested, Unrecoverable};
use crate::{Ack, Claim, JobState};

pub(super) fn claim_of((id, token): ClaimKey) -> Claim {
    Claim {
        id,
        token: Some(token),
    }
}

#[derive(Default)]
pub(super) struct Pending {
    pub acks: Vec<Ack>,
    /// Handler-requested retries: (claim, delay, reason).
    pub retries: Vec<(Claim, Duration, String)>,
    /// Jobs to end without retry (`pgq.fail`): (claim, detail).
    pub fails: Vec<(Claim, Option<serde_json::Value>)>,
    /// When the oldest of them was recorded.
    pub since: Option<Instant>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.acks.is_empty() && self.retries.is_empty() && self.fails.is_empty()
    }

    pub fn len(&self) -> usize {
        self.acks.len() + self.retries.len() + self.fails.len()
    }

    /// The claims these outcomes are about.
    pub fn claims(&self) -> impl Iterator<Item = Claim> + '_ {
        let acked = self.acks.iter().map(|ack| ack.claim);
        let retried = self.retries.iter().map(|(claim, _, _)| *claim);
        acked
            .chain(retried)
            .chain(self.fails.iter().map(|(claim, _)| *claim))
    }

    fn push(&mut self, ack: Ack) {
        self.since.get_or_insert_with(Instant::now);
        self.acks.push(ack);
    }

    /// A job cancelled before its handler started.
    pub fn canceled(&mut self, claim: ClaimKey) {
        self.push(Ack {
            claim: claim_of(claim),
            status: JobState::Canceled,
            detail: Some(json!({"reason": "canceled before its handler started"})),
        });
    }

    /// Turns a finished handler into an outcome to write.
    pub fn record(&mut self, Outcome { claim, result }: Outcome) {
        let (id, claim) = (claim.0, claim_of(claim));
        let (status, detail) = match result {
            Ok(Ok(result)) => (JobState::Successful, result),
            Ok(Err(error)) => {
                if let Some(retry) = error.downcast_ref::<RetryRequested>() {
                    tracing::info!(id, reason = %retry.reason, "retry requested");
                    self.since.get_or_insert_with(Instant::now);
                    self.retries
                        .push((claim, retry.delay, retry.reason.clone()));
                    return;
                }
                if let Some(fatal) = error.downcast_ref::<Unrecoverable>() {
                    tracing::warn!(id, reason = %fatal.reason, "unrecoverable: the job ends without retry");
                    self.since.get_or_insert_with(Instant::now);
                    let detail = json!({"type": "unrecoverable", "message": fatal.reason});
                    self.fails.push((claim, Some(detail)));
                    return;
                }
                tracing::warn!(id, %error, "handler failed");
                let detail = json!({
                    "type": "error",
                    "message": error.to_string(),
                    "debug": format!("{error:?}"),
                });
                (JobState::Exception, Some(detail))
            }
            Err(panic) => {
                tracing::error!(id, %panic, "handler panicked");
                (
                    JobState::Exception,
                    Some(json!({"type": "panic", "message": panic})),
                )
            }
        };
        self.push(Ack {
            claim,
            status,
            detail,
        });
    }
}
