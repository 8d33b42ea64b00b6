//! `PgQueuer`: the worker runtime. It claims batches of jobs of its entrypoints and runs the
//! user's handlers as tokio tasks, over the SQL API.
//!
//! The loop, in one task (one per connection with [`RunOptions::connections`] > 1; those
//! lanes share the handler slots and the worker id):
//!
//! ```text
//!   claim (up to the free handler slots) ─► spawn handlers ─► wait for: a finished handler,
//!        ▲                                                    an `enqueued` notification for
//!        │                                                    one of our entrypoints, the
//!        └── ack every finished job in one call ◄──────────── heartbeat timer, or the poll
//!                                                             timeout (dequeue_timeout)
//! ```
//!
//! A handler's `Err` is acked as `exception` with `{"type", "message"}` in the detail. A panic
//! is caught and acked the same way. A [`RetryRequested`] error calls `pgq.retry` instead.
//!
//! Every report (ack, heartbeat, retry, release) names the claim it is about by its claim
//! token, so a late report about a job that has since been claimed again is fenced off. Each
//! lane has a worker id of its own. Heartbeats go out at least three times per lease (the
//! shortest `heartbeat_timeout` of the runtime's entrypoints, read again when `pgq.configure`
//! changes one). A cancel notification is checked with the database before a handler is
//! cancelled, since anyone who can connect can send one. After a lost connection, the lane
//! gives back the jobs its worker id holds whose claim it never learned of (a claim that
//! committed just before the connection went): `pgq.release_lost`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Config, NoTls};
use uuid::Uuid;

use crate::{Ack, Claim, EntrypointSettings, Error, Job, JobStatus, Queries, connect_with};

/// What a handler returns: `Ok(())`, or any error (acked as `exception`, retried per the
/// entrypoint's `max_attempts`), or a [`RetryRequested`].
pub type HandlerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

type Handler =
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

/// The connections of a running runtime, replaced whole after a lost connection.
struct Link {
    queries: Queries,
    /// Kept alive while its connection is read by the listening task.
    _listening: tokio_postgres::Client,
    wake: mpsc::UnboundedReceiver<Wake>,
}

/// Outcomes not written yet; they survive a lost connection.
#[derive(Default)]
struct Pending {
    acks: Vec<Ack>,
    /// Handler-requested retries: (claim, delay, reason).
    retries: Vec<(Claim, Duration, String)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.acks.is_empty() && self.retries.is_empty()
    }
}

/// A claim a lane runs a handler for: (job id, claim token).
type ClaimKey = (i64, i32);

fn claim_of((id, token): ClaimKey) -> Claim {
    Claim {
        id,
        token: Some(token),
    }
}

/// How often to heartbeat: the configured interval, but at least three times per lease.
fn heartbeat_every(configured: Duration, lease: Duration) -> Duration {
    configured.min(lease / 3).max(Duration::from_millis(10))
}

/// A heartbeat timer whose first tick is one period away.
fn heartbeat_timer(every: Duration) -> tokio::time::Interval {
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

/// The state of one lane of a `run_until`.
struct Run<'a> {
    pgq: &'a PgQueuer,
    /// This lane's worker id.
    worker_id: Uuid,
    names: Vec<&'a str>,
    options: RunOptions,
    link: Link,
    slots: Arc<Semaphore>,
    running: JoinSet<Finished>,
    /// The handlers running, by claim, with their cancellation tokens. A job claimed again
    /// while an earlier claim's handler still runs (a stale re-pick) runs again: each claim
    /// is a run of its own, and the earlier one's report is fenced off by its claim token.
    in_flight: HashMap<ClaimKey, tokio_util::sync::CancellationToken>,
    pending: Pending,
    next_tick: Option<tokio::time::Instant>,
    /// The heartbeat period in use, and its timer.
    heartbeat_every: Duration,
    heartbeat: tokio::time::Interval,
}

impl Run<'_> {
    /// Writes the pending acks and claims up to the free handler slots (at most a batch) in
    /// one round trip: tokio-postgres pipelines the two statements on the connection, the ack
    /// first, so the seats it frees count for the claim. Starts the claimed jobs' handlers.
    /// Returns (claimed, asked for, acked).
    async fn claim(&mut self) -> Result<(usize, usize, u64), Error> {
        let free = self
            .slots
            .available_permits()
            .min(self.options.batch_size.max(1) as usize);
        let worker = Some(self.worker_id);
        let acks = std::mem::take(&mut self.pending.acks);
        let (queries, names) = (&self.link.queries, &self.names);
        let (acked, claimed) = tokio::join!(
            async {
                match acks.is_empty() {
                    true => Ok(0),
                    false => queries.ack(&acks, worker).await,
                }
            },
            async {
                match free {
                    0 => Ok(Vec::new()),
                    _ => queries.dequeue(names, free as i32, worker).await,
                }
            },
        );
        if acked.is_err() {
            self.pending.acks = acks; // written again after the error is dealt with
        }
        let jobs = match claimed {
            Ok(jobs) => jobs,
            Err(error) => return Err(acked.err().unwrap_or(error)),
        };
        let count = jobs.len();
        for job in jobs {
            let permit = Arc::clone(&self.slots)
                .acquire_owned()
                .await
                .map_err(|_| Error::Config("the handler slots were closed".into()))?;
            self.in_flight
                .insert((job.id, job.claim_token), job.cancel.clone());
            self.pgq.spawn(&mut self.running, job, permit);
        }
        Ok((count, free, acked?))
    }

    /// Records every handler that has already finished.
    fn collect_finished(&mut self) {
        while let Some(Ok(finished)) = self.running.try_join_next() {
            self.record(finished);
        }
    }

    /// Turns a finished handler into an outcome to write.
    fn record(&mut self, Finished { job, outcome }: Finished) {
        self.in_flight.remove(&(job.id, job.claim_token));
        let claim = Claim::of(&job);
        let (status, detail) = match outcome {
            Ok(Ok(())) => (JobStatus::Successful, None),
            Ok(Err(error)) => {
                if let Some(retry) = error.downcast_ref::<RetryRequested>() {
                    tracing::info!(id = job.id, reason = %retry.reason, "retry requested");
                    self.pending
                        .retries
                        .push((claim, retry.delay, retry.reason.clone()));
                    return;
                }
                tracing::warn!(id = job.id, %error, "handler failed");
                let detail = json!({
                    "type": "error",
                    "message": error.to_string(),
                    "debug": format!("{error:?}"),
                });
                (JobStatus::Exception, Some(detail))
            }
            Err(panic) => {
                tracing::error!(id = job.id, %panic, "handler panicked");
                (
                    JobStatus::Exception,
                    Some(json!({"type": "panic", "message": panic})),
                )
            }
        };
        self.pending.acks.push(Ack {
            claim,
            status,
            detail,
        });
    }

    /// Writes the pending outcomes: every ack in one call, then the requested retries. What
    /// fails stays pending.
    async fn flush(&mut self) -> Result<(), Error> {
        let worker = Some(self.worker_id);
        while let Some((claim, delay, reason)) = self.pending.retries.last() {
            self.link
                .queries
                .retry(*claim, *delay, Some(reason), worker)
                .await?;
            self.pending.retries.pop();
        }
        if !self.pending.acks.is_empty() {
            self.link.queries.ack(&self.pending.acks, worker).await?;
            self.pending.acks.clear();
        }
        Ok(())
    }

    /// Opens a new LISTEN connection in place of one that ended, then checks the running jobs
    /// for a cancel that was notified meanwhile.
    async fn relisten(&mut self) -> Result<(), Error> {
        tracing::warn!("the LISTEN connection ended; listening again");
        let (listening, wake) = self.pgq.listen().await?;
        self.link._listening = listening;
        self.link.wake = wake;
        self.confirm_cancels(self.running_ids()).await
    }

    fn running_ids(&self) -> Vec<i64> {
        self.in_flight.keys().map(|(id, _)| *id).collect()
    }

    async fn wake(&mut self, wake: Wake) -> Result<(), Error> {
        match wake {
            Wake::Enqueued => Ok(()),
            Wake::Cancel(ids) => self.confirm_cancels(ids).await,
            Wake::Configured => self.read_lease().await,
        }
    }

    /// Cancels the handlers of those of `ids` whose cancel the database confirms, in the
    /// claim this lane holds. A notification is only a hint: anyone who can connect can send
    /// one on channel pgq.
    async fn confirm_cancels(&mut self, ids: Vec<i64>) -> Result<(), Error> {
        let running = self.running_ids();
        let ours: Vec<i64> = ids.into_iter().filter(|id| running.contains(id)).collect();
        if ours.is_empty() {
            return Ok(());
        }
        for claim in self.link.queries.cancel_requested(&ours).await? {
            if let Some(token) = claim.token
                && let Some(cancel) = self.in_flight.get(&(claim.id, token))
            {
                tracing::info!(id = claim.id, "cancelled while running");
                cancel.cancel();
            }
        }
        Ok(())
    }

    /// Reads the lease of this lane's entrypoints and heartbeats at least three times per
    /// lease; a changed period takes effect at once, with a heartbeat now.
    async fn read_lease(&mut self) -> Result<(), Error> {
        let lease = self.link.queries.lease(&self.names).await?;
        let every = heartbeat_every(self.options.heartbeat_interval, lease);
        if every != self.heartbeat_every {
            tracing::info!(?lease, ?every, "heartbeat period changed");
            self.heartbeat_every = every;
            self.heartbeat = heartbeat_timer(every);
            self.heartbeat().await?;
        }
        Ok(())
    }

    /// The claims this lane must keep: running jobs, and outcomes not yet written.
    fn held_claims(&self) -> Vec<Claim> {
        let running = self.in_flight.keys().copied().map(claim_of);
        let acked = self.pending.acks.iter().map(|ack| ack.claim);
        let retried = self.pending.retries.iter().map(|(claim, _, _)| *claim);
        running.chain(acked).chain(retried).collect()
    }

    async fn heartbeat(&mut self) -> Result<(), Error> {
        let claims: Vec<Claim> = self.in_flight.keys().copied().map(claim_of).collect();
        if !claims.is_empty() {
            self.link
                .queries
                .heartbeat(&claims, Some(self.worker_id))
                .await?;
        }
        Ok(())
    }

    /// Fires due schedules (when no background worker does) and plans the next tick.
    async fn tick(&mut self) -> Result<(), Error> {
        let due = self.link.queries.tick().await?;
        let wait = due
            .and_then(|due| due.duration_since(std::time::SystemTime::now()).ok())
            .unwrap_or(Duration::ZERO)
            .min(self.options.dequeue_timeout);
        self.next_tick = Some(tokio::time::Instant::now() + wait.max(Duration::from_millis(1)));
        Ok(())
    }

    /// After a lost connection: reconnect with backoff (handlers keep running meanwhile).
    /// Any other error is returned.
    async fn recover(&mut self, error: Error) -> Result<(), Error> {
        if !connection_lost(&error) {
            return Err(error);
        }
        tracing::warn!(%error, "lost the connection to PostgreSQL; reconnecting");
        let mut wait = Duration::from_millis(100);
        loop {
            tokio::time::sleep(wait).await;
            match self.pgq.connect_link().await {
                Ok(link) => {
                    if let Err(error) = link.queries.prepare_all().await {
                        tracing::warn!(%error, "preparing statements after reconnecting failed");
                        continue;
                    }
                    // A claim may have committed just before the connection went, its reply
                    // lost: its jobs are this lane's in the database, but it never ran them.
                    // Give them back (no attempt spent). Nothing of this lane can still be in
                    // flight: its connection is gone.
                    let held = self.held_claims();
                    match link.queries.release_lost(self.worker_id, &held).await {
                        Ok(0) => {}
                        Ok(lost) => tracing::warn!(lost, "gave back claims whose reply was lost"),
                        Err(error) => {
                            tracing::warn!(%error, "giving back lost claims failed");
                            continue;
                        }
                    }
                    self.link = link;
                    tracing::info!(pending = self.pending.acks.len(), "reconnected");
                    // A cancel notified while the connection was down was missed.
                    match self.confirm_cancels(self.running_ids()).await {
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

    /// Lets running handlers finish until the grace is up, writes their outcomes, and
    /// releases the jobs of the rest.
    async fn wind_down(mut self) -> Result<(), Error> {
        tracing::info!(
            running = self.running.len(),
            "shutting down: no more claims"
        );
        let deadline = tokio::time::Instant::now() + self.options.shutdown_grace;
        while !self.running.is_empty() {
            tokio::select! {
                Some(finished) = self.running.join_next() => {
                    if let Ok(finished) = finished {
                        self.record(finished);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.running.abort_all();
        if let Err(error) = self.flush().await {
            self.recover(error).await?;
            self.flush().await?;
        }
        let unfinished: Vec<Claim> = self
            .in_flight
            .drain()
            .map(|(key, _)| claim_of(key))
            .collect();
        if !unfinished.is_empty() {
            let released = self
                .link
                .queries
                .release(&unfinished, Some(self.worker_id))
                .await?;
            tracing::warn!(
                released,
                "shutdown grace over: released unfinished jobs to the queue"
            );
        }
        Ok(())
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

/// A notification that concerns the runtime.
#[derive(Debug, PartialEq)]
enum Wake {
    /// Jobs of one of our entrypoints can run now.
    Enqueued,
    /// These jobs were cancelled (a hint, to check with the database).
    Cancel(Vec<i64>),
    /// The settings of one of our entrypoints changed.
    Configured,
}

impl Wake {
    fn parse(payload: &str, ours: &[String]) -> Option<Wake> {
        let payload: serde_json::Value = serde_json::from_str(payload).ok()?;
        // Whether an "entrypoints" list names one of ours.
        let mine = || -> Option<bool> {
            let names = payload.get("entrypoints")?.as_array()?;
            Some(
                names
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .any(|name| ours.iter().any(|ours| ours == name)),
            )
        };
        match payload.get("type")?.as_str()? {
            "enqueued" => mine()?.then_some(Wake::Enqueued),
            "configured" => mine()?.then_some(Wake::Configured),
            "cancel" => {
                let ids = payload.get("ids")?.as_array()?;
                Some(Wake::Cancel(
                    ids.iter().filter_map(serde_json::Value::as_i64).collect(),
                ))
            }
            _ => None,
        }
    }
}

/// Completes on SIGINT or SIGTERM (or never, if the handlers cannot be installed). The
/// handlers are installed here, when called, not when the future is first polled: a signal
/// that arrives before the first poll is still seen.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        match streams {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => {
                tracing::error!(
                    "cannot install SIGINT/SIGTERM handlers; stop the worker otherwise"
                );
                std::future::pending::<()>().await;
            }
        }
    }
}

/// When [`PgQueuer::run`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Run until the process is stopped.
    #[default]
    Continuous,
    /// Return once no job of these entrypoints is left to claim and every handler finished.
    Drain,
}

/// How [`PgQueuer::run`] works.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Most jobs claimed in one call (default 100).
    pub batch_size: i32,
    /// Most handlers running at once (default 100); never exceeded.
    pub max_concurrent_tasks: usize,
    /// Claim again after this long even without a notification (default 5 s).
    pub dequeue_timeout: Duration,
    /// Continuous (default) or drain.
    pub mode: Mode,
    /// The longest wait between heartbeats of running jobs (default 10 s). The runtime
    /// heartbeats more often when a lease needs it: at least three times per the shortest
    /// `heartbeat_timeout` of its entrypoints, read at start and whenever `pgq.configure`
    /// changes one.
    pub heartbeat_interval: Duration,
    /// On shutdown, how long running handlers may take to finish (default 30 s); jobs still
    /// running then are released to the queue for another worker.
    pub shutdown_grace: Duration,
    /// Connections that claim and ack side by side (default 1), so that PostgreSQL works on
    /// that many batches at once. They share the handler slots (`max_concurrent_tasks` holds
    /// for the whole runtime); each claims with a worker id of its own (the first is
    /// [`PgQueuer::worker_id`]) and LISTENs. See docs/benchmarks.md.
    pub connections: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch_size: 100,
            max_concurrent_tasks: 100,
            dequeue_timeout: Duration::from_secs(5),
            mode: Mode::Continuous,
            heartbeat_interval: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            connections: 1,
        }
    }
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
    fn from_job(job: Job) -> ScheduledRun {
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

struct Registered {
    handler: Handler,
    settings: EntrypointSettings,
}

/// The worker runtime: register entrypoints, then [`run`](PgQueuer::run).
///
/// ```no_run
/// # async fn example() -> Result<(), pgqueuer::Error> {
/// use pgqueuer::{Job, PgQueuer, RunOptions};
/// let mut pgq = PgQueuer::from_env()?;
/// pgq.entrypoint("fetch", |job: Job| async move {
///     println!("Processed: {job:?}");
///     Ok(())
/// });
/// pgq.run(RunOptions::default()).await?;
/// # Ok(()) }
/// ```
pub struct PgQueuer {
    config: Config,
    worker_id: Uuid,
    entrypoints: BTreeMap<String, Registered>,
    /// (entrypoint, cron expression, time zone) registered with `pgq.schedule` at start.
    schedules: Vec<(String, String, String)>,
}

/// A finished handler: its job and what it returned (`Err` text when it panicked).
struct Finished {
    job: Job,
    outcome: Result<HandlerResult, String>,
}

impl PgQueuer {
    /// A runtime that connects with these settings (it opens its own connections).
    pub fn new(config: Config) -> PgQueuer {
        PgQueuer {
            config,
            worker_id: Uuid::new_v4(),
            entrypoints: BTreeMap::new(),
            schedules: Vec::new(),
        }
    }

    /// A runtime that connects like [`crate::connect_from_env`].
    pub fn from_env() -> Result<PgQueuer, Error> {
        Ok(PgQueuer::new(crate::config_from_env()?))
    }

    /// This runtime's worker id (in `pgq.jobs.worker_id` while it runs a job); with several
    /// [`RunOptions::connections`], the first lane's.
    pub fn worker_id(&self) -> Uuid {
        self.worker_id
    }

    /// Registers the handler of an entrypoint, with the default settings.
    pub fn entrypoint<F, Fut>(&mut self, name: &str, handler: F) -> &mut PgQueuer
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.entrypoint_with(name, EntrypointSettings::default(), handler)
    }

    /// Registers the handler of an entrypoint with fleet-wide settings (limits, retries,
    /// hold), written with `pgq.configure` when the runtime starts.
    pub fn entrypoint_with<F, Fut>(
        &mut self,
        name: &str,
        settings: EntrypointSettings,
        handler: F,
    ) -> &mut PgQueuer
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |job| Box::pin(handler(job)));
        self.entrypoints
            .insert(name.to_string(), Registered { handler, settings });
        self
    }

    /// Registers a cron schedule (UTC) and the handler of its runs. Each fire becomes a job of
    /// `entrypoint`, so it gets retries, limits and one run per fire however many workers run.
    pub fn schedule<F, Fut>(
        &mut self,
        entrypoint: &str,
        expression: &str,
        handler: F,
    ) -> &mut PgQueuer
    where
        F: Fn(ScheduledRun) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.schedule_in(entrypoint, expression, "UTC", handler)
    }

    /// [`schedule`](PgQueuer::schedule) in a named time zone (IANA, such as `Europe/Oslo`).
    pub fn schedule_in<F, Fut>(
        &mut self,
        entrypoint: &str,
        expression: &str,
        timezone: &str,
        handler: F,
    ) -> &mut PgQueuer
    where
        F: Fn(ScheduledRun) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.schedules
            .push((entrypoint.into(), expression.into(), timezone.into()));
        self.entrypoint(entrypoint, move |job| {
            let handler = Arc::clone(&handler);
            async move { handler(ScheduledRun::from_job(job)).await }
        })
    }

    /// Runs until SIGINT or SIGTERM ([`Mode::Continuous`]) or until nothing is left
    /// ([`Mode::Drain`]). On a signal it shuts down gracefully: see [`run_until`](PgQueuer::run_until).
    pub async fn run(&self, options: RunOptions) -> Result<(), Error> {
        self.run_until(options, shutdown_signal()).await
    }

    /// Runs until `shutdown` completes (or, in drain mode, nothing is left). Then it stops
    /// claiming, lets running handlers finish for up to `shutdown_grace` and acks them, and
    /// releases the jobs still running to the queue, so another worker takes them at once.
    ///
    /// A lost connection does not stop it. Handlers keep running while it reconnects (with
    /// backoff) and LISTENs again; then it writes the outcomes that waited.
    pub async fn run_until(
        &self,
        options: RunOptions,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let link = self.connect_link().await?;
        // A schema this client does not know would fail later, in the middle of a claim.
        link.queries.check_schema().await?;
        // Prepared up front, so that an ack pipelined with a claim is always sent first.
        link.queries.prepare_all().await?;
        for (name, registered) in &self.entrypoints {
            if registered.settings != EntrypointSettings::default() {
                link.queries.configure(name, &registered.settings).await?;
            }
        }
        for (entrypoint, expression, timezone) in &self.schedules {
            link.queries
                .schedule(entrypoint, expression, timezone)
                .await?;
        }
        // Without the background worker in this database, fire the schedules ourselves.
        let scheduler: bool = link
            .queries
            .client()
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity \
                 WHERE backend_type = 'pgqueuer scheduler' AND datname = current_database())",
                &[],
            )
            .await?
            .try_get(0)?;
        let next_tick = if self.schedules.is_empty() || scheduler {
            None
        } else {
            tracing::info!(
                "no pgqueuer scheduler serves this database: this worker calls pgq.tick()"
            );
            Some(tokio::time::Instant::now())
        };
        // Heartbeats at least three times per lease of our entrypoints.
        let names: Vec<&str> = self.entrypoints.keys().map(String::as_str).collect();
        let every = heartbeat_every(
            options.heartbeat_interval,
            link.queries.lease(&names).await?,
        );
        let mut links = vec![link];
        for _ in 1..options.connections.max(1) {
            let link = self.connect_link().await?;
            link.queries.prepare_all().await?;
            links.push(link);
        }

        // One lane per connection, all in this task. The first to fail stops the others
        // (gracefully: they wind down like on shutdown).
        let slots = Arc::new(Semaphore::new(options.max_concurrent_tasks));
        let stop = tokio_util::sync::CancellationToken::new();
        let lanes = links.into_iter().enumerate().map(|(lane, link)| {
            let run = Run {
                pgq: self,
                // Each lane claims as a worker of its own, so that after a lost connection it
                // can tell exactly which of its worker id's jobs it never learned of.
                worker_id: if lane == 0 {
                    self.worker_id
                } else {
                    Uuid::new_v4()
                },
                names: names.clone(),
                heartbeat_every: every,
                heartbeat: heartbeat_timer(every),
                slots: Arc::clone(&slots),
                options: options.clone(),
                link,
                running: JoinSet::new(),
                in_flight: HashMap::new(),
                pending: Pending::default(),
                // Only the first lane ticks the schedules.
                next_tick: if lane == 0 { next_tick } else { None },
            };
            let stop = stop.clone();
            async move {
                let result = run.work(stop.clone().cancelled_owned()).await;
                if result.is_err() {
                    stop.cancel();
                }
                result
            }
        });
        let all = futures_util::future::join_all(lanes);
        let mut all = std::pin::pin!(all);
        let results = tokio::select! {
            results = &mut all => results,
            () = shutdown => {
                stop.cancel();
                all.await
            }
        };
        results.into_iter().collect::<Result<Vec<()>, Error>>()?;
        Ok(())
    }
}

impl Run<'_> {
    /// One lane's loop: claim, run, ack, until `shutdown` (or, in drain mode, nothing is left).
    async fn work(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let mut shutdown = std::pin::pin!(shutdown);
        let run = &mut self;

        loop {
            let (claimed, asked, acked) = match run.claim().await {
                Ok(counts) => counts,
                Err(error) => {
                    run.recover(error).await?;
                    continue;
                }
            };
            // "Empty" only counts from a claim that ran alone: one pipelined with an ack may
            // have run before that ack put a retried job back. A claim that asked for nothing
            // (another lane's handlers hold every slot) says nothing either.
            if claimed == 0
                && asked > 0
                && acked == 0
                && run.running.is_empty()
                && run.pending.is_empty()
                && run.options.mode == Mode::Drain
            {
                return Ok(());
            }
            if (&mut shutdown).now_or_never().is_some() {
                break;
            }
            if acked > 0 && run.options.mode == Mode::Drain {
                continue; // the confirming claim, at once rather than after the poll timeout
            }
            if claimed == asked && asked > 0 {
                // A full batch: there may be more. Claim again at once; what finished meanwhile
                // is acked in the same round trip.
                run.collect_finished();
                continue;
            }
            let slots = Arc::clone(&run.slots);
            let result = tokio::select! {
                // Every slot is taken by other lanes' handlers: claim when one frees up.
                Ok(_permit) = slots.acquire_owned(), if asked == 0 && run.running.is_empty() => {
                    Ok(())
                }
                Some(finished) = run.running.join_next(), if !run.running.is_empty() => {
                    if let Ok(finished) = finished {
                        run.record(finished);
                    }
                    run.collect_finished();
                    // Acks go out with the next claim, in the same round trip.
                    match run.pending.retries.is_empty() {
                        true => Ok(()),
                        false => run.flush().await,
                    }
                }
                wake = run.link.wake.recv() => match wake {
                    Some(wake) => run.wake(wake).await,
                    // The LISTEN connection ended on its own: LISTEN again (a failure to
                    // connect goes through recover, like any lost connection).
                    None => run.relisten().await,
                },
                _ = run.heartbeat.tick() => run.heartbeat().await,
                _ = tokio::time::sleep_until(run.next_tick.unwrap_or_else(tokio::time::Instant::now)),
                    if run.next_tick.is_some() => run.tick().await,
                _ = tokio::time::sleep(run.options.dequeue_timeout) => {
                    // The poll fallback; also retries outcomes that could not be written.
                    run.flush().await
                }
                () = &mut shutdown => break,
            };
            if let Err(error) = result {
                run.recover(error).await?;
            }
        }
        self.wind_down().await
    }
}

impl PgQueuer {
    /// Opens the working connection and the LISTEN connection.
    async fn connect_link(&self) -> Result<Link, Error> {
        let queries = Queries::new(connect_with(&self.config).await?);
        let (listening, wake) = self.listen().await?;
        Ok(Link {
            queries,
            _listening: listening,
            wake,
        })
    }

    /// Starts a handler task for `job`, holding `permit` until it ends.
    fn spawn(
        &self,
        running: &mut JoinSet<Finished>,
        job: Job,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let Some(registered) = self.entrypoints.get(&job.entrypoint) else {
            return;
        };
        let handler = Arc::clone(&registered.handler);
        let span = tracing::info_span!("job", entrypoint = %job.entrypoint, id = job.id, attempt = job.attempts);
        running.spawn(tracing::Instrument::instrument(
            async move {
                let outcome = std::panic::AssertUnwindSafe(handler(job.clone()))
                    .catch_unwind()
                    .await
                    .map_err(|panic| {
                        panic
                            .downcast_ref::<&str>()
                            .map(|text| text.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "the handler panicked".to_string())
                    });
                drop(permit);
                Finished { job, outcome }
            },
            span,
        ));
    }

    /// A connection that LISTENs on channel `pgq` and passes on the notifications that concern
    /// this runtime: `enqueued` for one of its entrypoints, and every `cancel`.
    async fn listen(
        &self,
    ) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<Wake>), Error> {
        let (client, mut connection) =
            self.config
                .connect(NoTls)
                .await
                .map_err(|source| Error::Connect {
                    target: "the LISTEN connection".into(),
                    source,
                })?;
        let names: Vec<String> = self.entrypoints.keys().cloned().collect();
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                let AsyncMessage::Notification(notification) = message else {
                    continue;
                };
                let Some(wake) = Wake::parse(notification.payload(), &names) else {
                    continue;
                };
                if sender.send(wake).is_err() {
                    break;
                }
            }
        });
        client.batch_execute("LISTEN pgq").await?;
        Ok((client, receiver))
    }
}

#[cfg(test)]
mod tests {
    use super::Wake;

    #[test]
    fn notifications_for_other_entrypoints_are_ignored() {
        let ours = vec!["mail".to_string()];
        let enqueued = r#"{"type": "enqueued", "entrypoints": ["mail", "sms"]}"#;
        assert_eq!(Wake::parse(enqueued, &ours), Some(Wake::Enqueued));
        let other = r#"{"type": "enqueued", "entrypoints": ["sms"]}"#;
        assert_eq!(Wake::parse(other, &ours), None);
        let configured = r#"{"type": "configured", "entrypoints": ["mail"]}"#;
        assert_eq!(Wake::parse(configured, &ours), Some(Wake::Configured));
        let cancel = r#"{"type": "cancel", "ids": [3, 4]}"#;
        assert_eq!(Wake::parse(cancel, &ours), Some(Wake::Cancel(vec![3, 4])));
        assert_eq!(Wake::parse("not json", &ours), None);
    }
}
