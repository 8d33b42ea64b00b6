//! Waiting for jobs to end, woken by completion notifications rather than by polling.
//!
//! An entrypoint configured with `notify_completion` announces the end of each of its jobs on
//! channel `pgq_done` (sql/status.sql). [`Completions`] LISTENs there and reads
//! `pgq.job_status` when a notification names a job it waits for: the notification is a hint,
//! the status is the answer. Jobs of other entrypoints are still found, by a poll every
//! `max_poll`.
//!
//! ```no_run
//! # async fn example(ids: Vec<i64>) -> Result<(), pgqueuer::Error> {
//! use std::time::Duration;
//! let mut completions = pgqueuer::Completions::connect(&pgqueuer::config_from_env()?).await?;
//! for outcome in completions.wait_for(&ids, Duration::from_secs(5)).await? {
//!     println!("job {} ended {:?}: {:?}", outcome.id, outcome.status, outcome.result::<u32>()?);
//! }
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::time::Duration;

use crate::notify::DONE_CHANNEL;
use crate::{Error, Event, JobOutcome, Listener, Settings};

/// A connection that waits for jobs to end (see the module's documentation).
#[derive(Debug)]
pub struct Completions {
    listener: Listener,
    job_status: tokio_postgres::Statement,
}

impl Completions {
    /// Connects and LISTENs on channel `pgq_done`.
    pub async fn connect(settings: &Settings) -> Result<Completions, Error> {
        let listener = Listener::connect_to(settings, DONE_CHANNEL).await?;
        let sql = "SELECT job_id, status, detail FROM pgq.job_status($1::bigint[])";
        let job_status = listener.client().prepare(sql).await?;
        Ok(Completions {
            listener,
            job_status,
        })
    }

    /// Waits until every job in `ids` has ended (or is held) and returns their outcomes,
    /// ordered by id; ids `pgq.job_status` does not know are left out at once. It reads the
    /// statuses once, then again whenever a notification names one of the jobs still running,
    /// and every `max_poll` in any case (for entrypoints without `notify_completion`).
    pub async fn wait_for(
        &mut self,
        ids: &[i64],
        max_poll: Duration,
    ) -> Result<Vec<JobOutcome>, Error> {
        loop {
            // LISTEN began before this read, so no end after it goes unannounced.
            let rows = self
                .listener
                .client()
                .query(&self.job_status, &[&ids])
                .await;
            let outcomes = rows
                .map_err(Error::from_db)?
                .iter()
                .map(JobOutcome::from_row)
                .collect::<Result<Vec<_>, _>>()?;
            if outcomes.iter().all(JobOutcome::is_finished) {
                return Ok(outcomes);
            }
            let running: HashSet<i64> = outcomes
                .iter()
                .filter(|outcome| !outcome.is_finished())
                .map(|outcome| outcome.id)
                .collect();
            let poll = tokio::time::sleep(max_poll);
            tokio::pin!(poll);
            loop {
                tokio::select! {
                    notification = self.listener.next() => match notification {
                        Some(notification) => match notification.event() {
                            Event::Done { ids } if ids.iter().any(|id| running.contains(id)) => break,
                            _ => continue,
                        },
                        // The connection ended: the next read says why.
                        None => break,
                    },
                    () = &mut poll => break,
                }
            }
        }
    }
}
