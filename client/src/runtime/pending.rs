//! Reports not written yet: what each finished handler turns into (an ack, a retry or a
//! failure without retry), kept until a round trip writes them. They survive a lost
//! connection.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::handler::{Ended, Finished};
use crate::{Ack, Claim, JobState};

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

    /// The claims these reports are about.
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
    pub fn canceled(&mut self, claim: Claim) {
        self.push(Ack {
            claim,
            status: JobState::Canceled,
            detail: Some(json!({"reason": "canceled before its handler started"})),
        });
    }

    /// Turns a finished handler into the report to write.
    pub fn record(&mut self, Finished { claim, ended }: Finished) {
        let id = claim.id;
        let (status, detail) = match ended {
            Ended::Successful(result) => (JobState::Successful, result),
            Ended::RetryRequested(retry) => {
                tracing::info!(id, reason = %retry.reason, "retry requested");
                self.since.get_or_insert_with(Instant::now);
                self.retries.push((claim, retry.delay, retry.reason));
                return;
            }
            Ended::Unrecoverable(fatal) => {
                tracing::warn!(id, reason = %fatal.reason, "unrecoverable: the job ends without retry");
                self.since.get_or_insert_with(Instant::now);
                let detail = json!({"type": "unrecoverable", "message": fatal.reason});
                self.fails.push((claim, Some(detail)));
                return;
            }
            Ended::Failed(error) => {
                tracing::warn!(id, %error, "handler failed");
                let detail = json!({
                    "type": "error",
                    "message": error.to_string(),
                    "debug": format!("{error:?}"),
                });
                (JobState::Exception, Some(detail))
            }
            Ended::Panicked(panic) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RetryRequested, Unrecoverable};

    fn finished(id: i64, ended: Ended) -> Finished {
        Finished {
            claim: Claim { id, token: Some(1) },
            ended,
        }
    }

    #[test]
    fn each_way_a_run_ends_becomes_its_report() {
        let mut pending = Pending::default();
        assert!(pending.is_empty() && pending.since.is_none());
        pending.record(finished(1, Ended::Successful(Some(json!({"n": 1})))));
        pending.record(finished(2, Ended::Failed("boom".into())));
        pending.record(finished(
            3,
            Ended::RetryRequested(RetryRequested {
                delay: Duration::from_secs(7),
                reason: "busy".into(),
            }),
        ));
        pending.record(finished(
            4,
            Ended::Unrecoverable(Unrecoverable::new("bad payload")),
        ));
        pending.record(finished(5, Ended::Panicked("oops".into())));
        pending.canceled(Claim {
            id: 6,
            token: Some(1),
        });

        let acks: Vec<(i64, &JobState)> = pending
            .acks
            .iter()
            .map(|ack| (ack.claim.id, &ack.status))
            .collect();
        assert_eq!(
            acks,
            [
                (1, &JobState::Successful),
                (2, &JobState::Exception),
                (5, &JobState::Exception),
                (6, &JobState::Canceled),
            ]
        );
        assert_eq!(pending.acks[0].detail, Some(json!({"n": 1})));
        let error = pending.acks[1].detail.as_ref().expect("the error");
        assert_eq!(
            (&error["type"], &error["message"]),
            (&json!("error"), &json!("boom"))
        );
        assert_eq!(
            pending.acks[2].detail,
            Some(json!({"type": "panic", "message": "oops"}))
        );
        assert_eq!(pending.retries.len(), 1);
        assert_eq!(
            (
                pending.retries[0].0.id,
                pending.retries[0].1,
                pending.retries[0].2.as_str()
            ),
            (3, Duration::from_secs(7), "busy")
        );
        assert_eq!(
            pending.fails,
            [(
                Claim {
                    id: 4,
                    token: Some(1)
                },
                Some(json!({"type": "unrecoverable", "message": "bad payload"}))
            )]
        );
        assert_eq!(pending.len(), 6);
        let mut claims: Vec<i64> = pending.claims().map(|claim| claim.id).collect();
        claims.sort_unstable();
        assert_eq!(claims, [1, 2, 3, 4, 5, 6]);
        assert!(pending.since.is_some());
    }
}
