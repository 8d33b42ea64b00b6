//! How a runtime runs: [`RunOptions`] and [`Mode`].

use std::time::Duration;

/// When [`crate::PgQueuer::run`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Run until the process is stopped.
    #[default]
    Continuous,
    /// Return once no job of these entrypoints is left to claim and every handler finished.
    Drain,
}

/// How [`crate::PgQueuer::run`] works. The defaults need no tuning for throughput: see
/// docs/design/0009-pipelined-runtime.md for how they were chosen.
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
    /// The longest wait between heartbeats of claimed jobs (default 10 s). The runtime
    /// heartbeats more often when a lease needs it: at least three times per the shortest
    /// `heartbeat_timeout` of its entrypoints, read at start and whenever `pgq.configure`
    /// changes one. It also bounds how far ahead the runtime claims: no more jobs than its
    /// handler slots can start within one heartbeat period, at their measured run time.
    pub heartbeat_interval: Duration,
    /// On shutdown, how long running handlers may take to finish (default 30 s); jobs still
    /// running then are released to the queue for another worker. Jobs claimed ahead that
    /// have not started are released at once.
    pub shutdown_grace: Duration,
    /// Connections that claim and ack side by side (default 2), so that PostgreSQL works on
    /// that many batches at once. They share the handler slots (`max_concurrent_tasks` holds
    /// for the whole runtime) and one LISTEN connection; each claims with a worker id of its
    /// own (the first is [`crate::PgQueuer::worker_id`]). See docs/benchmarks.md.
    pub connections: usize,
    /// How long a finished job's outcome may wait to be written with others (default 5 ms).
    /// Outcomes go out sooner with the next claim (in its transaction) or once a batch's
    /// worth is ready.
    pub ack_delay: Duration,
    /// Where to serve the runtime's own metrics as Prometheus text (`GET /metrics`): handler
    /// run time by entrypoint and outcome, queue wait, round-trip time, handlers in flight
    /// (default: not served; they are recorded through OpenTelemetry either way). See
    /// docs/client.md, "Metrics".
    pub metrics_listen: Option<std::net::SocketAddr>,
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
            connections: 2,
            ack_delay: Duration::from_millis(5),
            metrics_listen: None,
        }
    }
}
