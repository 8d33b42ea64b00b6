//! `PgQueuer`: the worker runtime. It claims batches of jobs of its entrypoints and runs the
//! user's handlers as tokio tasks, over the SQL API.
//!
//! The loop, in one task:
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
//! is caught and acked the same way. A [`RetryRequested`] error calls `pgq.retry` instead. Acks
//! and heartbeats carry this runtime's worker id, so a job that was re-picked elsewhere or
//! cancelled is fenced off.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_postgres::{AsyncMessage, Config, NoTls};
use uuid::Uuid;

use crate::{Ack, EntrypointSettings, Error, Job, JobStatus, Queries, connect_with};

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

/// A notification that concerns the runtime.
#[derive(Debug, PartialEq)]
enum Wake {
    /// Jobs of one of our entrypoints can run now.
    Enqueued,
    /// These jobs were cancelled.
    Cancel(Vec<i64>),
}

impl Wake {
    fn parse(payload: &str, ours: &[String]) -> Option<Wake> {
        let payload: serde_json::Value = serde_json::from_str(payload).ok()?;
        match payload.get("type")?.as_str()? {
            "enqueued" => {
                let names = payload.get("entrypoints")?.as_array()?;
                let mine = names
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .any(|name| ours.iter().any(|ours| ours == name));
                mine.then_some(Wake::Enqueued)
            }
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

/// Completes on SIGINT or SIGTERM (or never, if the handlers cannot be installed).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install SIGINT/SIGTERM handlers; stop the worker otherwise");
            std::future::pending::<()>().await;
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
    /// How often running jobs' heartbeats are refreshed (default 10 s).
    pub heartbeat_interval: Duration,
    /// On shutdown, how long running handlers may take to finish (default 30 s); jobs still
    /// running then are released to the queue for another worker.
    pub shutdown_grace: Duration,
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

    /// This runtime's worker id (in `pgq.jobs.worker_id` while it runs a job).
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
    pub async fn run_until(
        &self,
        options: RunOptions,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let mut shutdown = std::pin::pin!(shutdown);
        let queries = Queries::new(connect_with(&self.config).await?);
        for (name, registered) in &self.entrypoints {
            if registered.settings != EntrypointSettings::default() {
                queries.configure(name, &registered.settings).await?;
            }
        }
        for (entrypoint, expression, timezone) in &self.schedules {
            queries.schedule(entrypoint, expression, timezone).await?;
        }
        // Without the background worker in this database, fire the schedules ourselves.
        let scheduler: bool = queries
            .client()
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_stat_activity \
                 WHERE backend_type = 'pgqueuer scheduler' AND datname = current_database())",
                &[],
            )
            .await?
            .try_get(0)?;
        let mut next_tick = if self.schedules.is_empty() || scheduler {
            None
        } else {
            tracing::info!(
                "no pgqueuer scheduler serves this database: this worker calls pgq.tick()"
            );
            Some(tokio::time::Instant::now())
        };
        let names: Vec<&str> = self.entrypoints.keys().map(String::as_str).collect();
        // The listening client must live while the loop runs; its connection is read elsewhere.
        let (_listening, mut wake) = self.listen().await?;

        let slots = Arc::new(Semaphore::new(options.max_concurrent_tasks));
        let mut running: JoinSet<Finished> = JoinSet::new();
        let mut in_flight: HashMap<i64, tokio_util::sync::CancellationToken> = HashMap::new();
        let mut heartbeat = tokio::time::interval(options.heartbeat_interval);
        heartbeat.tick().await;

        loop {
            let free = slots
                .available_permits()
                .min(options.batch_size.max(1) as usize);
            let mut claimed = 0;
            if free > 0 {
                let jobs = queries
                    .dequeue(&names, free as i32, Some(self.worker_id))
                    .await?;
                claimed = jobs.len();
                for job in jobs {
                    let permit = Arc::clone(&slots)
                        .acquire_owned()
                        .await
                        .map_err(|_| Error::Config("the handler slots were closed".into()))?;
                    in_flight.insert(job.id, job.cancel.clone());
                    self.spawn(&mut running, job, permit);
                }
            }
            if claimed == 0 && running.is_empty() && options.mode == Mode::Drain {
                return Ok(());
            }
            if (&mut shutdown).now_or_never().is_some() {
                break;
            }
            if claimed == free && free > 0 {
                // A full batch: there may be more; claim again before waiting.
                self.ack_finished(&queries, &mut running, &mut in_flight)
                    .await?;
                continue;
            }
            tokio::select! {
                Some(finished) = running.join_next(), if !running.is_empty() => {
                    let finished = finished.map_err(|error| Error::Config(format!("a handler task failed: {error}")))?;
                    let mut batch = vec![finished];
                    while let Some(Ok(more)) = running.try_join_next() {
                        batch.push(more);
                    }
                    self.ack(&queries, batch, &mut in_flight).await?;
                }
                // A closed channel (lost connection) disables this branch; the poll remains.
                Some(wake) = wake.recv() => {
                    if let Wake::Cancel(ids) = wake {
                        for id in ids {
                            if let Some(token) = in_flight.get(&id) {
                                tracing::info!(id, "cancelled while running");
                                token.cancel();
                            }
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    let ids: Vec<i64> = in_flight.keys().copied().collect();
                    if !ids.is_empty() {
                        queries.heartbeat(&ids, Some(self.worker_id)).await?;
                    }
                }
                _ = tokio::time::sleep_until(next_tick.unwrap_or_else(tokio::time::Instant::now)),
                    if next_tick.is_some() => {
                    let due = queries.tick().await?;
                    let wait = due
                        .and_then(|due| due.duration_since(std::time::SystemTime::now()).ok())
                        .unwrap_or(Duration::ZERO)
                        .min(options.dequeue_timeout);
                    next_tick = Some(tokio::time::Instant::now() + wait.max(Duration::from_millis(1)));
                }
                _ = tokio::time::sleep(options.dequeue_timeout) => {}
                () = &mut shutdown => break,
            }
        }
        self.wind_down(
            &queries,
            &mut running,
            &mut in_flight,
            options.shutdown_grace,
        )
        .await
    }

    /// Lets running handlers finish until `grace` is up, acking them; releases the rest.
    async fn wind_down(
        &self,
        queries: &Queries,
        running: &mut JoinSet<Finished>,
        in_flight: &mut HashMap<i64, tokio_util::sync::CancellationToken>,
        grace: Duration,
    ) -> Result<(), Error> {
        tracing::info!(running = running.len(), "shutting down: no more claims");
        let deadline = tokio::time::Instant::now() + grace;
        while !running.is_empty() {
            tokio::select! {
                Some(finished) = running.join_next() => {
                    if let Ok(finished) = finished {
                        self.ack(queries, vec![finished], in_flight).await?;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        running.abort_all();
        let unfinished: Vec<i64> = in_flight.drain().map(|(id, _)| id).collect();
        if !unfinished.is_empty() {
            let released = queries.release(&unfinished, Some(self.worker_id)).await?;
            tracing::warn!(
                released,
                "shutdown grace over: released unfinished jobs to the queue"
            );
        }
        Ok(())
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

    async fn ack_finished(
        &self,
        queries: &Queries,
        running: &mut JoinSet<Finished>,
        in_flight: &mut HashMap<i64, tokio_util::sync::CancellationToken>,
    ) -> Result<(), Error> {
        let mut batch = Vec::new();
        while let Some(Ok(finished)) = running.try_join_next() {
            batch.push(finished);
        }
        self.ack(queries, batch, in_flight).await
    }

    /// Acks a batch of finished jobs in one call (retries requested by handlers go one by one).
    async fn ack(
        &self,
        queries: &Queries,
        batch: Vec<Finished>,
        in_flight: &mut HashMap<i64, tokio_util::sync::CancellationToken>,
    ) -> Result<(), Error> {
        let mut acks = Vec::with_capacity(batch.len());
        for Finished { job, outcome } in batch {
            in_flight.remove(&job.id);
            match outcome {
                Ok(Ok(())) => acks.push(Ack {
                    id: job.id,
                    status: JobStatus::Successful,
                    detail: None,
                }),
                Ok(Err(error)) => match error.downcast_ref::<RetryRequested>() {
                    Some(retry) => {
                        tracing::info!(id = job.id, reason = %retry.reason, "retry requested");
                        queries
                            .retry(
                                job.id,
                                retry.delay,
                                Some(&retry.reason),
                                Some(self.worker_id),
                            )
                            .await?;
                    }
                    None => {
                        tracing::warn!(id = job.id, %error, "handler failed");
                        acks.push(Ack {
                            id: job.id,
                            status: JobStatus::Exception,
                            detail: Some(json!({"type": "error", "message": error.to_string()})),
                        });
                    }
                },
                Err(panic) => {
                    tracing::error!(id = job.id, %panic, "handler panicked");
                    acks.push(Ack {
                        id: job.id,
                        status: JobStatus::Exception,
                        detail: Some(json!({"type": "panic", "message": panic})),
                    });
                }
            }
        }
        if !acks.is_empty() {
            queries.ack(&acks, Some(self.worker_id)).await?;
        }
        Ok(())
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
        let cancel = r#"{"type": "cancel", "ids": [3, 4]}"#;
        assert_eq!(Wake::parse(cancel, &ours), Some(Wake::Cancel(vec![3, 4])));
        assert_eq!(Wake::parse("not json", &ours), None);
    }
}
