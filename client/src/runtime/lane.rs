//! One lane: a connection that claims jobs for the handler slots and writes their reports.
//!
//! ```text
//!   ┌─► round trip: BEGIN; ack(finished); dequeue(room); COMMIT ─► claimed jobs wait in the
//!   │                                                              slots' queue (dispatch.rs)
//!   └── when: room for half a batch (or idle slots) and jobs may be there; or reports worth
//!       a batch, or the oldest older than ack_delay. Meanwhile: finished handlers, notifications,
//!       heartbeats, schedule ticks, the poll timeout, shutdown.
//! ```
//!
//! The lane claims ahead: while the handlers run one batch, the next one is claimed. It never
//! holds more than the slots plus what they can start within one heartbeat period. Every claim
//! it holds, waiting or running, gets heartbeats and is given back on shutdown and after a lost
//! connection (`pgq.release_lost`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::dispatch::Dispatch;
use super::handler::Finished;
use super::listen::Wake;
use super::pending::Pending;
use super::{Mode, PgQueuer, RunOptions};
use crate::{Claim, Error, Event, Queries};

/// How often to heartbeat: the configured interval, but at least three times per lease.
pub(super) fn heartbeat_every(configured: Duration, lease: Duration) -> Duration {
    configured.min(lease / 3).max(Duration::from_millis(10))
}

/// How many jobs a lane claims now: at most a `batch`, within the `room` the slots have (free
/// slots plus the `ahead` they can start within a heartbeat period, less what is waiting or
/// asked for). Zero until there is room for half a batch (or half of the slots and what is
/// claimed ahead, when that is less), unless nothing is `waiting`: an idle slot never waits
/// for a fuller claim.
pub(super) fn claim_size(
    batch: usize,
    max_concurrent_tasks: usize,
    ahead: usize,
    room: usize,
    waiting: usize,
) -> usize {
    let room = room.min(batch);
    let enough = (max_concurrent_tasks + ahead).min(batch).div_ceil(2);
    if room >= enough || (room > 0 && waiting == 0) {
        room
    } else {
        0
    }
}

/// A heartbeat timer whose first tick is one period away.
pub(super) fn heartbeat_timer(every: Duration) -> tokio::time::Interval {
    let mut timer = tokio::time::interval_at(Instant::now() + every, every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

pub(super) struct Lane<'a> {
    pub pgq: &'a PgQueuer,
    pub index: usize,
    /// This lane's worker id.
    pub worker_id: Uuid,
    pub names: Vec<&'a str>,
    pub options: RunOptions,
    /// The working connection, replaced after a lost connection.
    pub queries: Queries,
    /// Notifications, from the runtime's one LISTEN connection.
    pub wakes: broadcast::Receiver<Wake>,
    /// False once that connection's task is gone: the lane polls.
    pub listening: bool,
    pub dispatch: Arc<Dispatch>,
    /// The handlers of this lane's jobs that finished.
    pub finished: mpsc::UnboundedReceiver<Finished>,
    /// The claims this lane holds and has no report of yet (waiting or running), with their
    /// cancellation tokens. A job claimed again while an earlier claim's handler still runs
    /// (a stale re-pick) runs again: each claim is a run of its own, and the earlier one's
    /// report is fenced off by its claim token.
    pub held: HashMap<Claim, CancellationToken>,
    pub pending: Pending,
    /// Whether a claim may find jobs: false after a claim came back short, until a
    /// notification, the poll timeout or an ack says otherwise.
    pub more: bool,
    pub next_tick: Option<Instant>,
    /// The heartbeat period in use, and its timer.
    pub heartbeat_every: Duration,
    pub heartbeat: tokio::time::Interval,
}

/// What one round trip did.
struct Trip {
    asked: usize,
    claimed: usize,
}

impl Lane<'_> {
    /// One lane's loop, until `shutdown` (or, in drain mode, until nothing is left).
    pub async fn work(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            self.collect_finished();
            if self.options.mode == Mode::Drain && !self.more && self.held.is_empty() {
                self.more = true; // the confirming claim
            }
            let want = self.want();
            let claim = want > 0 && self.more;
            if claim || self.flush_due() {
                let ask = if claim || !self.pending.acks.is_empty() {
                    want
                } else {
                    0
                };
                match self.round_trip(ask).await {
                    Ok(trip) => {
                        if trip.claimed < trip.asked {
                            self.more = false;
                            if self.options.mode == Mode::Drain
                                && self.held.is_empty()
                                && self.pending.is_empty()
                            {
                                return Ok(());
                            }
                        }
                    }
                    Err(error) => self.recover(error).await?,
                }
                if (&mut shutdown).now_or_never().is_some() {
                    break;
                }
                continue;
            }
            let flush_at = self
                .pending
                .since
                .map(|since| since + self.options.ack_delay);
            let result = tokio::select! {
                Some(run) = self.finished.recv() => {
                    self.record(run);
                    Ok(())
                }
                // Another lane's handler freed a slot this lane may claim for.
                () = self.dispatch.freed(self.index), if self.more => Ok(()),
                wake = self.wakes.recv(), if self.listening => match wake {
                    Ok(Wake::Event(event)) => self.wake(event).await,
                    // The LISTEN connection was replaced, or this lane fell behind it:
                    // notifications may have been missed.
                    Ok(Wake::Relistened) | Err(RecvError::Lagged(_)) => {
                        self.more = true;
                        self.confirm_cancels(self.held_ids()).await
                    }
                    // Only if the LISTEN task ended early (it panicked): go on polling.
                    Err(RecvError::Closed) => {
                        tracing::error!("no more notifications: claiming every dequeue_timeout");
                        self.listening = false;
                        self.more = true;
                        Ok(())
                    }
                },
                _ = self.heartbeat.tick() => self.send_heartbeat().await,
                _ = tokio::time::sleep_until(self.next_tick.unwrap_or_else(Instant::now)),
                    if self.next_tick.is_some() => self.tick().await,
                _ = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)),
                    if flush_at.is_some() => Ok(()),
                _ = tokio::time::sleep(self.options.dequeue_timeout) => {
                    self.more = true; // the poll fallback
                    Ok(())
                }
                () = &mut shutdown => break,
            };
            if let Err(error) = result {
                self.recover(error).await?;
            }
        }
        self.wind_down().await
    }

    /// Records every handler that finished already.
    fn collect_finished(&mut self) {
        while let Ok(run) = self.finished.try_recv() {
            self.record(run);
        }
    }

    /// A handler finished: its claim is no longer held, its report waits to be written.
    fn record(&mut self, run: Finished) {
        self.held.remove(&run.claim);
        self.pending.record(run);
    }

    /// How many jobs to claim now ([`claim_size`]), from what the slots hold.
    fn want(&self) -> usize {
        let batch = usize::try_from(self.options.batch_size.max(1)).unwrap_or(1);
        let most_ahead = batch * self.options.connections.max(1);
        let ahead = self
            .dispatch
            .startable_within(self.heartbeat_every, most_ahead);
        let waiting = self.dispatch.waiting_count();
        let room = self.dispatch.room(ahead, waiting);
        claim_size(
            batch,
            self.options.max_concurrent_tasks,
            ahead,
            room,
            waiting,
        )
    }

    /// Whether reports should be written now: a batch's worth, or the oldest waited long
    /// enough.
    fn flush_due(&self) -> bool {
        let batch = usize::try_from(self.options.batch_size.max(1)).unwrap_or(1);
        match self.pending.since {
            None => false,
            Some(since) => self.pending.len() >= batch || since.elapsed() >= self.options.ack_delay,
        }
    }

    /// Writes the pending reports and claims `ask` jobs, in one round trip and one
    /// transaction (requested retries and unrecoverable failures, rare, go first in calls of
    /// their own). The claimed jobs go to the slots. What fails stays pending.
    async fn round_trip(&mut self, ask: usize) -> Result<Trip, Error> {
        let worker = Some(self.worker_id);
        while let Some((claim, delay, reason)) = self.pending.retries.last() {
            self.queries
                .retry(*claim, *delay, Some(reason), worker)
                .await?;
            self.pending.retries.pop();
        }
        if !self.pending.fails.is_empty() {
            self.queries.fail(&self.pending.fails, worker).await?;
            self.pending.fails.clear();
        }
        let acks = std::mem::take(&mut self.pending.acks);
        let acked_any = !acks.is_empty();
        let since = self.pending.since.take();
        self.dispatch.asking(ask);
        let started = Instant::now();
        let result = self
            .queries
            .ack_and_dequeue(&acks, &self.names, ask as i32, worker)
            .await;
        let took = started.elapsed();
        self.dispatch.asked(ask);
        let jobs = match result {
            Ok((_, jobs)) => jobs,
            Err(error) => {
                self.pending.acks = acks;
                self.pending.since = since;
                return Err(error);
            }
        };
        let claimed = jobs.len();
        self.dispatch
            .metrics
            .round_trip(acks.len(), ask, took, &jobs);
        for job in &jobs {
            self.held.insert(Claim::of(job), job.cancel.clone());
        }
        self.dispatch.push(self.index, jobs);
        if ask == 0 && acked_any {
            // Acks without a claim may have freed seats of limited entrypoints. (A claim in
            // the same transaction saw them already.)
            self.more = true;
        }
        Ok(Trip {
            asked: ask,
            claimed,
        })
    }

    /// Writes the pending reports alone.
    async fn flush(&mut self) -> Result<(), Error> {
        self.round_trip(0).await.map(|_| ())
    }

    fn held_ids(&self) -> Vec<i64> {
        self.held.keys().map(|claim| claim.id).collect()
    }

    fn ours(&self, entrypoints: &[String]) -> bool {
        entrypoints
            .iter()
            .any(|name| self.names.contains(&name.as_str()))
    }

    async fn wake(&mut self, event: Event) -> Result<(), Error> {
        match event {
            Event::Enqueued { entrypoints } if self.ours(&entrypoints) => {
                self.more = true;
                Ok(())
            }
            Event::Configured { entrypoints } if self.ours(&entrypoints) => self.read_lease().await,
            Event::Cancel { ids } => self.confirm_cancels(ids).await,
            _ => Ok(()),
        }
    }

    /// Cancels those of `ids` whose cancel the database confirms, in the claim this lane
    /// holds: a waiting job is taken out of the queue and acked as canceled, a running one's
    /// handler is cancelled. A notification is only a hint: anyone who can connect can send
    /// one on channel pgq.
    async fn confirm_cancels(&mut self, ids: Vec<i64>) -> Result<(), Error> {
        let held = self.held_ids();
        let ours: Vec<i64> = ids.into_iter().filter(|id| held.contains(id)).collect();
        if ours.is_empty() {
            return Ok(());
        }
        for claim in self.queries.cancel_requested(&ours).await? {
            let Some(cancel) = self.held.get(&claim) else {
                continue;
            };
            if self.dispatch.take(claim).is_some() {
                tracing::info!(id = claim.id, "cancelled before it started");
                self.held.remove(&claim);
                self.pending.canceled(claim);
            } else {
                tracing::info!(id = claim.id, "cancelled while running");
                cancel.cancel();
            }
        }
        Ok(())
    }

    /// Reads the lease of this lane's entrypoints and heartbeats at least three times per
    /// lease; a changed period takes effect at once, with a heartbeat now.
    pub async fn read_lease(&mut self) -> Result<(), Error> {
        let lease = self.queries.lease(&self.names).await?;
        let every = heartbeat_every(self.options.heartbeat_interval, lease);
        if every != self.heartbeat_every {
            tracing::info!(?lease, ?every, "heartbeat period changed");
            self.heartbeat_every = every;
            self.heartbeat = heartbeat_timer(every);
            self.send_heartbeat().await?;
        }
        Ok(())
    }

    /// The claims this lane must keep after a lost connection: those it holds, and those
    /// whose reports are not written yet.
    fn kept_claims(&self) -> Vec<Claim> {
        let held = self.held.keys().copied();
        held.chain(self.pending.claims()).collect()
    }

    async fn send_heartbeat(&mut self) -> Result<(), Error> {
        let claims: Vec<Claim> = self.held.keys().copied().collect();
        if !claims.is_empty() {
            self.queries
                .heartbeat(&claims, Some(self.worker_id))
                .await?;
        }
        Ok(())
    }

    /// Fires due schedules and runs the maintenance (when no background worker does) and
    /// plans the next tick: when `pgq.tick` says, at the latest after `dequeue_timeout`.
    async fn tick(&mut self) -> Result<(), Error> {
        let due = self.queries.tick().await?;
        let wait = match due {
            Some(due) => due
                .duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO),
            None => self.options.dequeue_timeout,
        }
        .min(self.options.dequeue_timeout);
        self.next_tick = Some(Instant::now() + wait.max(Duration::from_millis(1)));
        self.more = true; // a schedule may have enqueued a job of ours
        Ok(())
    }

    /// After a lost connection: reconnect with backoff (handlers keep running meanwhile). A
    /// deadlock or serialization failure is tried again. Any other error is returned.
    async fn recover(&mut self, error: Error) -> Result<(), Error> {
        if transient(&error) {
            tracing::warn!(%error, "trying again");
            return Ok(());
        }
        if !connection_lost(&error) {
            return Err(error);
        }
        tracing::warn!(%error, "lost the connection to PostgreSQL; reconnecting");
        let mut wait = Duration::from_millis(100);
        loop {
            tokio::time::sleep(wait).await;
            match self.pgq.connect_queries().await {
                Ok(queries) => {
                    if let Err(error) = queries.prepare_all().await {
                        tracing::warn!(%error, "preparing statements after reconnecting failed");
                        continue;
                    }
                    // A claim may have committed just before the connection went, its reply
                    // lost: its jobs are this lane's in the database, but it never ran them.
                    // Give them back (no attempt spent). Nothing of this lane can still be in
                    // flight: its connection is gone.
                    let kept = self.kept_claims();
                    match queries.release_lost(self.worker_id, &kept).await {
                        Ok(0) => {}
                        Ok(lost) => tracing::warn!(lost, "gave back claims whose reply was lost"),
                        Err(error) => {
                            tracing::warn!(%error, "giving back lost claims failed");
                            continue;
                        }
                    }
                    self.queries = queries;
                    tracing::info!(pending = self.pending.len(), "reconnected");
                    // A cancel notified while the connection was down was missed.
                    match self.confirm_cancels(self.held_ids()).await {
                        Err(error) if connection_lost(&error) => {
                            tracing::warn!(%error, "lost the connection again");
                            continue;
                        }
                        result => return result,
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, ?wait, "reconnecting failed");
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// On shutdown: gives back the jobs that have not started at once, lets running handlers
    /// finish until the grace is up, writes their reports, and gives back the rest.
    async fn wind_down(mut self) -> Result<(), Error> {
        let unstarted: Vec<Claim> = self
            .dispatch
            .take_lane(self.index)
            .iter()
            .map(|job| {
                self.held.remove(&Claim::of(job));
                Claim::of(job)
            })
            .collect();
        tracing::info!(
            running = self.held.len(),
            unstarted = unstarted.len(),
            "shutting down: no more claims"
        );
        if !unstarted.is_empty() {
            self.release(&unstarted).await?;
        }
        let deadline = Instant::now() + self.options.shutdown_grace;
        while !self.held.is_empty() {
            tokio::select! {
                Some(run) = self.finished.recv() => self.record(run),
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if !self.held.is_empty() {
            self.dispatch.stop();
        }
        if let Err(error) = self.flush().await {
            self.recover(error).await?;
            self.flush().await?;
        }
        let unfinished: Vec<Claim> = self.held.drain().map(|(claim, _)| claim).collect();
        if !unfinished.is_empty() {
            let released = self.release(&unfinished).await?;
            tracing::warn!(
                released,
                "shutdown grace over: released unfinished jobs to the queue"
            );
        }
        Ok(())
    }

    /// Gives claims back to the queue, reconnecting once if the connection is gone.
    async fn release(&mut self, claims: &[Claim]) -> Result<u64, Error> {
        let worker = Some(self.worker_id);
        match self.queries.release(claims, worker).await {
            Ok(released) => Ok(released),
            Err(error) => {
                self.recover(error).await?;
                self.queries.release(claims, worker).await
            }
        }
    }
}

/// Whether an error means the connection is gone (so reconnecting may help).
fn connection_lost(error: &Error) -> bool {
    match error {
        Error::Connect { .. } => true,
        Error::Db(error) => {
            let code = error.code();
            error.is_closed()
                || code.is_some_and(|code| {
                    code.code().starts_with("08")
                        || *code == SqlState::ADMIN_SHUTDOWN
                        || *code == SqlState::CRASH_SHUTDOWN
                        || *code == SqlState::CANNOT_CONNECT_NOW
                })
                || std::error::Error::source(error)
                    .is_some_and(|source| source.is::<std::io::Error>())
        }
        _ => false,
    }
}

/// Whether an error only means "try again": a deadlock or a serialization failure rolled the
/// round trip back.
fn transient(error: &Error) -> bool {
    match error {
        Error::Db(error) => error.code().is_some_and(|code| {
            *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_go_out_at_least_three_times_per_lease() {
        let second = Duration::from_secs(1);
        assert_eq!(heartbeat_every(5 * second, 30 * second), 5 * second);
        assert_eq!(heartbeat_every(5 * second, 6 * second), 2 * second);
        assert_eq!(heartbeat_every(5 * second, 15 * second), 5 * second);
        // A lease too short to keep is still heartbeated, every 10 ms.
        assert_eq!(
            heartbeat_every(5 * second, Duration::ZERO),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn a_claim_waits_for_room_for_half_a_batch_unless_slots_are_idle() {
        // batch 100, 10 slots, nothing ahead: half of the 10 slots.
        assert_eq!(
            claim_size(100, 10, 0, 4, 3),
            0,
            "4 of 5 with jobs waiting: wait"
        );
        assert_eq!(
            claim_size(100, 10, 0, 5, 3),
            5,
            "room for half of the slots"
        );
        assert_eq!(
            claim_size(100, 10, 0, 1, 0),
            1,
            "nothing waiting: an idle slot"
        );
        assert_eq!(claim_size(100, 10, 0, 0, 0), 0, "no room at all");
        // Claiming ahead: 200 startable within a heartbeat, so half a batch is the bar, and
        // a claim is never more than a batch.
        assert_eq!(claim_size(100, 10, 200, 49, 20), 0);
        assert_eq!(claim_size(100, 10, 200, 50, 20), 50);
        assert_eq!(claim_size(100, 10, 200, 500, 20), 100);
        // A batch of one claims one at a time.
        assert_eq!(claim_size(1, 10, 0, 3, 2), 1);
    }
}
