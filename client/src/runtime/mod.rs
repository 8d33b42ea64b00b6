//! `PgQueuer`: the worker runtime. It claims batches of jobs of its entrypoints and runs the
//! user's handlers as tokio tasks, over the SQL API.
//!
//! - this file: the public face: registering handlers and schedules, starting a run;
//! - [`options`]: [`RunOptions`] and [`Mode`];
//! - `handler`: a registered handler, and how its run ended;
//! - `lane`: one connection's loop, claiming ahead and writing reports in one round trip;
//! - `dispatch`: the handler slots and the jobs waiting for them, shared by the lanes;
//! - `pending`: finished handlers turned into acks, retries and failures, until written;
//! - `listen`: the one LISTEN connection, whose notifications go to every lane.
//!
//! A handler's `Err` is acked as `exception` with `{"type", "message"}` in the detail. A panic
//! is caught and acked the same way. A [`RetryRequested`] error calls `pgq.retry` instead, an
//! [`Unrecoverable`] one `pgq.fail`. A typed handler's result is the detail of its successful
//! ack.
//!
//! Every report (ack, heartbeat, retry, release) names the claim it is about by its claim
//! token, so a late report about a job that has since been claimed again is fenced off. Each
//! lane has a worker id of its own. Heartbeats go out at least three times per lease (the
//! shortest `heartbeat_timeout` of the runtime's entrypoints, read again when `pgq.configure`
//! changes one). A cancel notification is checked with the database before a handler is
//! cancelled, since anyone who can connect can send one. After a lost connection, the lane
//! gives back the jobs its worker id holds whose claim it never learned of (a claim that
//! committed just before the connection went): `pgq.release_lost`.

mod dispatch;
mod handler;
mod lane;
mod listen;
mod metrics;
mod options;
mod pending;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use serde::Serialize;

use crate::handler_error::{BoxError, HandlerResult, JobResult};
use crate::{EntrypointSettings, Error, Job, JobArgs, Listener, Queries, Settings, connect_with};
use dispatch::Dispatch;
use handler::Handler;
pub use handler::ScheduledRun;
use lane::{Lane, heartbeat_every, heartbeat_timer};
pub use options::{Mode, RunOptions};

/// Stops the handlers still running when dropped.
struct StopOnDrop(Arc<Dispatch>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Registered {
    handler: Handler,
    settings: EntrypointSettings,
    /// How long a handler may run before it is cancelled ([`PgQueuer::timeout`]).
    timeout: Option<std::time::Duration>,
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
    config: Settings,
    worker_id: Uuid,
    entrypoints: BTreeMap<String, Registered>,
    /// (entrypoint, cron expression, time zone) registered with `pgq.schedule` at start.
    schedules: Vec<(String, String, String)>,
}

impl PgQueuer {
    /// A runtime that connects with these settings (it opens its own connections).
    pub fn new(config: impl Into<Settings>) -> PgQueuer {
        let config = config.into();
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

    /// Registers the handler of an entrypoint, with the default settings. The handler owns
    /// its job.
    pub fn entrypoint<F, Fut>(&mut self, name: &str, handler: F) -> &mut PgQueuer
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.entrypoint_with(name, EntrypointSettings::default(), handler)
    }

    /// Registers the handler of an entrypoint that takes shared state beside its job: a
    /// connection pool, an HTTP client, configuration. Each run gets a clone of `state`, so
    /// make it cheap to clone (an `Arc`, or a handle that is one).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # struct App { greeting: String }
    /// # fn example(pgq: &mut pgqueuer::PgQueuer) {
    /// let app = Arc::new(App { greeting: "hello".into() });
    /// pgq.entrypoint_with_state("greet", app, |app: Arc<App>, job: pgqueuer::Job| async move {
    ///     println!("{} {:?} (attempt {})", app.greeting, job.payload, job.attempts);
    ///     Ok(())
    /// });
    /// # }
    /// ```
    pub fn entrypoint_with_state<S, F, Fut>(
        &mut self,
        name: &str,
        state: S,
        handler: F,
    ) -> &mut PgQueuer
    where
        S: Clone + Send + Sync + 'static,
        F: Fn(S, Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.entrypoint(name, move |job| handler(state.clone(), job))
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
        let handler: Handler = Arc::new(move |job| {
            let run = handler(job);
            Box::pin(async move { run.await.map(|()| None) })
        });
        self.register(name, settings, handler)
    }

    /// Registers the handler of a typed job ([`JobArgs`]): it receives the payload
    /// deserialised (`A` is read from the handler's argument) and may return a result, stored
    /// with the job's successful outcome (see [`Queries::job_status`]). A payload that is not
    /// an `A` in JSON ends the job at once as `exception`, without retries ([`Unrecoverable`]).
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize)]
    /// struct Resize { width: u32 }
    /// impl pgqueuer::JobArgs for Resize { const ENTRYPOINT: &'static str = "resize"; }
    ///
    /// # fn example(pgq: &mut pgqueuer::PgQueuer) {
    /// pgq.job(|resize: Resize, job: pgqueuer::Job| async move {
    ///     println!("job {} (attempt {}): {} px", job.id, job.attempts, resize.width);
    ///     Ok(resize.width * 2)
    /// });
    /// # }
    /// ```
    pub fn job<A, F, Fut, R>(&mut self, handler: F) -> &mut PgQueuer
    where
        A: JobArgs,
        F: Fn(A, Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult<R>> + Send + 'static,
        R: Serialize,
    {
        let handler: Handler = Arc::new(move |job: Job| match job.args::<A>() {
            Ok(args) => {
                let run = handler(args, job);
                Box::pin(async move {
                    let result = run.await?;
                    crate::typed::result_detail(&result).map_err(BoxError::from)
                })
            }
            Err(unreadable) => Box::pin(std::future::ready(Err(BoxError::from(unreadable)))),
        });
        let settings = self
            .entrypoints
            .get(A::ENTRYPOINT)
            .map(|old| old.settings.clone())
            .unwrap_or_default();
        self.register(A::ENTRYPOINT, settings, handler)
    }

    /// [`job`](PgQueuer::job) with shared state beside the arguments, as for
    /// [`entrypoint_with_state`](PgQueuer::entrypoint_with_state): each run gets a clone.
    pub fn job_with_state<A, S, F, Fut, R>(&mut self, state: S, handler: F) -> &mut PgQueuer
    where
        A: JobArgs,
        S: Clone + Send + Sync + 'static,
        F: Fn(S, A, Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult<R>> + Send + 'static,
        R: Serialize,
    {
        self.job(move |args: A, job| handler(state.clone(), args, job))
    }

    /// Sets the fleet-wide settings (limits, retries, hold, completion notifications) of a
    /// registered entrypoint, written with `pgq.configure` when the runtime starts. Register
    /// the entrypoint first; settings of an entrypoint without a handler do nothing.
    pub fn configure(&mut self, entrypoint: &str, settings: EntrypointSettings) -> &mut PgQueuer {
        if let Some(registered) = self.entrypoints.get_mut(entrypoint) {
            registered.settings = settings;
        }
        self
    }

    fn register(
        &mut self,
        name: &str,
        settings: EntrypointSettings,
        handler: Handler,
    ) -> &mut PgQueuer {
        let timeout = self.entrypoints.get(name).and_then(|old| old.timeout);
        self.entrypoints.insert(
            name.to_string(),
            Registered {
                handler,
                settings,
                timeout,
            },
        );
        self
    }

    /// Cancels a handler of `entrypoint` that runs longer than `timeout`: its future is dropped
    /// (it stops at its next `.await`) and its job is acked as `exception` with a [`TimedOut`]
    /// detail, retried per the entrypoint's `max_attempts`. Register the entrypoint first; a
    /// timeout of an entrypoint without a handler does nothing.
    pub fn timeout(&mut self, entrypoint: &str, timeout: std::time::Duration) -> &mut PgQueuer {
        if let Some(registered) = self.entrypoints.get_mut(entrypoint) {
            registered.timeout = Some(timeout);
        }
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
        match crate::shutdown_signal() {
            Ok(signal) => self.run_until(options, signal).await,
            Err(error) => {
                tracing::error!(%error, "cannot install SIGINT/SIGTERM handlers; stop the worker otherwise");
                self.run_until(options, std::future::pending()).await
            }
        }
    }

    /// Runs until `shutdown` completes (or, in drain mode, nothing is left). Then it stops
    /// claiming, gives back the jobs claimed ahead that have not started, lets running
    /// handlers finish for up to `shutdown_grace` and acks them, and releases the jobs still
    /// running to the queue, so another worker takes them at once.
    ///
    /// A lost connection does not stop it. Handlers keep running while it reconnects (with
    /// backoff) and LISTENs again; then it writes the outcomes that waited.
    pub async fn run_until(
        &self,
        options: RunOptions,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let queries = self.connect_queries().await?;
        // A schema this client does not know would fail later, in the middle of a claim.
        queries.check_schema().await?;
        // Prepared up front, so that pipelined statements go out in the order they are made.
        queries.prepare_all().await?;
        for (name, registered) in &self.entrypoints {
            if registered.settings != EntrypointSettings::default() {
                queries.configure(name, &registered.settings).await?;
            }
        }
        for (entrypoint, expression, timezone) in &self.schedules {
            queries.schedule(entrypoint, expression, timezone).await?;
        }
        // Whether a scheduler serves this database.
        let scheduler = queries.scheduler_serves().await?;
        // If not, the first lane ticks: schedules, and the maintenance (log retention, the
        // statistics rollup).
        let next_tick = if scheduler {
            None
        } else {
            tracing::info!(
                "no pgqueuer scheduler serves this database: this worker calls pgq.tick()"
            );
            Some(tokio::time::Instant::now())
        };
        // Heartbeats at least three times per lease of our entrypoints.
        let names: Vec<&str> = self.entrypoints.keys().map(String::as_str).collect();
        let every = heartbeat_every(options.heartbeat_interval, queries.lease(&names).await?);
        let mut links = vec![queries];
        for _ in 1..options.connections.max(1) {
            let queries = self.connect_queries().await?;
            queries.prepare_all().await?;
            links.push(queries);
        }
        // One LISTEN connection for all lanes.
        let (wakes, _) = tokio::sync::broadcast::channel(listen::BACKLOG);
        let listener = Listener::connect(&self.config).await?;
        let listening = tokio::spawn(listen::fan_out(
            self.config.clone(),
            listener,
            self.entrypoints.keys().cloned().collect(),
            wakes.clone(),
        ));
        let _stop_listening = AbortOnDrop(listening);

        // One lane per connection, all in this task; the handlers run in tasks of their own.
        // The first lane to fail stops the others (gracefully: they wind down like on
        // shutdown).
        let (senders, receivers): (Vec<_>, Vec<_>) =
            links.iter().map(|_| mpsc::unbounded_channel()).unzip();
        let handlers: HashMap<String, Handler> = self
            .entrypoints
            .iter()
            .map(|(name, registered)| {
                let handler = Arc::clone(&registered.handler);
                let handler = match registered.timeout {
                    Some(after) => handler::with_timeout(handler, after),
                    None => handler,
                };
                (name.clone(), handler)
            })
            .collect();
        let metrics = Arc::new(metrics::Metrics::new());
        let _serve_metrics = match options.metrics_listen {
            Some(address) => Some(AbortOnDrop(metrics.serve(address).await?)),
            None => None,
        };
        let dispatch = Arc::new(Dispatch::new(
            handlers,
            options.max_concurrent_tasks.max(1),
            senders,
            metrics,
        ));
        // Handlers stop with the run, however it ends: also when its future is dropped.
        let _stop_handlers = StopOnDrop(Arc::clone(&dispatch));
        let stop = tokio_util::sync::CancellationToken::new();
        let lanes =
            links
                .into_iter()
                .zip(receivers)
                .enumerate()
                .map(|(index, (queries, finished))| {
                    let lane = Lane {
                        pgq: self,
                        index,
                        // Each lane claims as a worker of its own, so that after a lost connection
                        // it can tell exactly which of its worker id's jobs it never learned of.
                        worker_id: if index == 0 {
                            self.worker_id
                        } else {
                            Uuid::new_v4()
                        },
                        names: names.clone(),
                        options: options.clone(),
                        queries,
                        wakes: wakes.subscribe(),
                        listening: true,
                        dispatch: Arc::clone(&dispatch),
                        finished,
                        held: HashMap::new(),
                        pending: Default::default(),
                        more: true,
                        // Only the first lane ticks the schedules.
                        next_tick: if index == 0 { next_tick } else { None },
                        heartbeat_every: every,
                        heartbeat: heartbeat_timer(every),
                    };
                    let stop = stop.clone();
                    async move {
                        let result = lane.work(stop.clone().cancelled_owned()).await;
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

    /// Opens a lane's working connection.
    async fn connect_queries(&self) -> Result<Queries, Error> {
        Ok(Queries::new(connect_with(&self.config).await?))
    }
}
