//! The handler slots. Jobs claimed by every lane wait here, best first (priority, then id),
//! and start as slots free up, while the lanes are busy claiming the next batch. A slot is a
//! runner task that runs waiting jobs one after another until none is left.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::handler::{Ended, Finished, Handler};
use super::metrics::Metrics;
use crate::{Claim, Job};

/// Waiting jobs in the order they start: priority descending, then id, then claim.
type Order = (Reverse<i32>, i64, i32);

struct Waiting {
    job: Job,
    lane: usize,
}

pub(super) struct Dispatch {
    waiting: Mutex<BTreeMap<Order, Waiting>>,
    slots: Arc<Semaphore>,
    slot_count: usize,
    handlers: HashMap<String, Handler>,
    /// Where each lane hears that a handler of its jobs finished.
    finished: Vec<mpsc::UnboundedSender<Finished>>,
    /// Cancelled when the shutdown grace is over: runners drop their handlers.
    stop: CancellationToken,
    runners: Mutex<JoinSet<()>>,
    /// Jobs lanes are asking for in claims now in flight.
    asking: AtomicUsize,
    /// One per lane: a handler finished, so there may be room to claim for.
    freed: Vec<tokio::sync::Notify>,
    /// Mean handler run time in nanoseconds (a moving average; 0 before the first).
    mean_run: AtomicU64,
    /// The runtime's own metrics (handlers here, round trips in the lanes).
    pub metrics: Arc<Metrics>,
}

fn order(job: &Job) -> Order {
    (Reverse(job.priority), job.id, job.claim_token)
}

impl Dispatch {
    pub fn new(
        handlers: HashMap<String, Handler>,
        slot_count: usize,
        finished: Vec<mpsc::UnboundedSender<Finished>>,
        metrics: Arc<Metrics>,
    ) -> Dispatch {
        Dispatch {
            freed: finished
                .iter()
                .map(|_| tokio::sync::Notify::new())
                .collect(),
            finished,
            waiting: Mutex::default(),
            slots: Arc::new(Semaphore::new(slot_count)),
            slot_count,
            handlers,
            stop: CancellationToken::new(),
            runners: Mutex::default(),
            asking: AtomicUsize::new(0),
            mean_run: AtomicU64::new(0),
            metrics,
        }
    }

    fn waiting(&self) -> MutexGuard<'_, BTreeMap<Order, Waiting>> {
        // A runner that panicked while holding the lock left a map that is still whole.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Jobs claimed and not started, across lanes.
    pub fn waiting_count(&self) -> usize {
        self.waiting().len()
    }

    /// Handlers running now.
    pub fn running_count(&self) -> usize {
        self.slot_count - self.slots.available_permits()
    }

    /// How many more jobs the lanes may claim now: the free handler slots plus what may be
    /// claimed ahead (`ahead`), less what is `waiting` (as [`Dispatch::waiting_count`] just
    /// said) or being asked for.
    pub fn room(&self, ahead: usize, waiting: usize) -> usize {
        let taken = self.running_count() + waiting + self.asking.load(Ordering::SeqCst);
        (self.slot_count + ahead).saturating_sub(taken)
    }

    /// Marks `n` jobs as being asked for (until [`Dispatch::asked`]).
    pub fn asking(&self, n: usize) {
        self.asking.fetch_add(n, Ordering::SeqCst);
    }

    pub fn asked(&self, n: usize) {
        self.asking.fetch_sub(n, Ordering::SeqCst);
    }

    /// How many jobs the slots can start within `horizon`, at the handlers' mean run time so
    /// far, at most `most`; none before a handler has finished.
    pub fn startable_within(&self, horizon: Duration, most: usize) -> usize {
        let mean = self.mean_run.load(Ordering::Relaxed);
        if mean == 0 {
            return 0;
        }
        let starts = self.slot_count as f64 * horizon.as_secs_f64() / (mean as f64 / 1e9);
        if starts >= most as f64 {
            most
        } else {
            starts as usize
        }
    }

    fn observe(&self, run: Duration) {
        let sample = u64::try_from(run.as_nanos()).unwrap_or(u64::MAX).max(1);
        let mean = self.mean_run.load(Ordering::Relaxed);
        let next = match mean {
            0 => sample,
            _ => mean - mean / 8 + sample / 8,
        };
        self.mean_run.store(next.max(1), Ordering::Relaxed);
    }

    /// Queues a lane's claimed jobs and starts runners for them while slots are free.
    pub fn push(self: &Arc<Self>, lane: usize, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        {
            let mut waiting = self.waiting();
            for job in jobs {
                waiting.insert(order(&job), Waiting { job, lane });
            }
        }
        self.start_runners();
    }

    fn start_runners(self: &Arc<Self>) {
        let mut runners = self.runners.lock().unwrap_or_else(|p| p.into_inner());
        while runners.try_join_next().is_some() {}
        let mut waiting = self.waiting_count();
        while waiting > 0 {
            let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
                break;
            };
            runners.spawn(Arc::clone(self).run(permit));
            waiting -= 1;
        }
    }

    fn pop(&self) -> Option<Waiting> {
        self.waiting().pop_first().map(|(_, waiting)| waiting)
    }

    /// Takes a waiting (not started) job out of the queue.
    pub fn take(&self, claim: Claim) -> Option<Job> {
        let mut waiting = self.waiting();
        let key = waiting
            .iter()
            .find(|(_, w)| Claim::of(&w.job) == claim)
            .map(|(key, _)| *key)?;
        waiting.remove(&key).map(|w| w.job)
    }

    /// Takes every waiting job a lane claimed (on shutdown).
    pub fn take_lane(&self, lane: usize) -> Vec<Job> {
        let mut waiting = self.waiting();
        let keys: Vec<Order> = waiting
            .iter()
            .filter(|(_, w)| w.lane == lane)
            .map(|(key, _)| *key)
            .collect();
        keys.into_iter()
            .filter_map(|key| waiting.remove(&key).map(|w| w.job))
            .collect()
    }

    /// Completes once a handler has finished since the last time it completed for `lane`.
    pub async fn freed(&self, lane: usize) {
        match self.freed.get(lane) {
            Some(freed) => freed.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Drops every running handler (the shutdown grace is over).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// One slot: runs waiting jobs until none is left.
    async fn run(self: Arc<Self>, mut permit: OwnedSemaphorePermit) {
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let Some(Waiting { job, lane }) = self.pop() else {
                drop(permit);
                // A job queued while this runner held the slot found no free slot: look again.
                if self.waiting_count() == 0 {
                    return;
                }
                match Arc::clone(&self.slots).try_acquire_owned() {
                    Ok(again) => {
                        permit = again;
                        continue;
                    }
                    Err(_) => return,
                }
            };
            let claim = Claim::of(&job);
            let ended = match self.handlers.get(&job.entrypoint) {
                Some(handler) => {
                    let span = tracing::info_span!("job", entrypoint = %job.entrypoint, id = job.id, attempt = job.attempts);
                    // A child of the span that enqueued the job, when its headers say which.
                    crate::trace::adopt(&span, job.headers.as_ref());
                    let started = Instant::now();
                    let running = self.metrics.running();
                    let entrypoint = job.entrypoint.clone();
                    let run = std::panic::AssertUnwindSafe(handler(job)).catch_unwind();
                    let result = tokio::select! {
                        result = tracing::Instrument::instrument(run, span) => result,
                        () = self.stop.cancelled() => return,
                    };
                    drop(running);
                    let took = started.elapsed();
                    self.observe(took);
                    let ended = Ended::of(result.map_err(|panic| {
                        panic
                            .downcast_ref::<&str>()
                            .map(|text| text.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "the handler panicked".to_string())
                    }));
                    self.metrics.handler_ran(&entrypoint, ended.label(), took);
                    ended
                }
                None => {
                    Ended::Failed(format!("no handler for entrypoint {}", job.entrypoint).into())
                }
            };
            if let Some(finished) = self.finished.get(lane) {
                let _ = finished.send(Finished { claim, ended });
            }
            for freed in &self.freed {
                freed.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatch(slots: usize) -> Dispatch {
        Dispatch::new(HashMap::new(), slots, Vec::new(), Arc::new(Metrics::new()))
    }

    #[test]
    fn room_is_free_slots_and_what_may_be_claimed_ahead_less_what_is_taken() {
        let dispatch = dispatch(10);
        assert_eq!(dispatch.room(0, 0), 10);
        assert_eq!(dispatch.room(5, 3), 12);
        dispatch.asking(4);
        assert_eq!(
            dispatch.room(5, 3),
            8,
            "jobs asked for in a claim in flight count"
        );
        dispatch.asked(4);
        assert_eq!(dispatch.room(0, 30), 0, "never below zero");
    }

    #[test]
    fn nothing_is_claimed_ahead_before_a_handler_has_finished_then_by_the_mean_run_time() {
        let dispatch = dispatch(10);
        let second = Duration::from_secs(1);
        assert_eq!(
            dispatch.startable_within(second, 1000),
            0,
            "no run time known yet"
        );
        dispatch.observe(Duration::from_millis(100));
        // 10 slots, 100 ms a run: 100 starts a second.
        assert_eq!(dispatch.startable_within(second, 1000), 100);
        assert_eq!(dispatch.startable_within(second, 30), 30, "at most `most`");
        // The mean moves an eighth of the way to each new run time.
        dispatch.observe(Duration::from_millis(900));
        assert_eq!(dispatch.startable_within(second, 1000), 50);
    }
}
