#![warn(missing_docs)]
//! Rust client for **pgqueuer**, a job queue that lives in PostgreSQL.
//!
//! The queue itself is SQL in schema `pgq` (the `pgqueuer` extension, or the same schema from
//! a plain script: [`sql_only`]); this crate is a thin, async caller of it built on
//! tokio-postgres, plus a worker runtime.
//!
//! ```no_run
//! # async fn example() -> Result<(), pgqueuer::Error> {
//! // PGQUEUER_DSN, then DATABASE_URL, then the libpq variables PGHOST, PGPORT, PGUSER, ...
//! let client = pgqueuer::connect_from_env().await?;
//! let version: String = client.query_one("SELECT pgq.version()", &[]).await?.get(0);
//! # Ok(()) }
//! ```
//!
//! # A tour, in reading order
//!
//! 1. **Connecting** (`config.rs`, `connect.rs`, `tls.rs`): [`config`] and
//!    [`config_from_env`] apply libpq's rules (connection strings, `PG*` variables, defaults,
//!    TLS keys) into [`Settings`]; [`connect`], [`connect_from_env`] and [`connect_with`]
//!    connect with them, TLS as libpq's `sslmode` says. Every connection of the crate goes
//!    through them.
//! 2. **Errors** (`error.rs`): one [`Error`] type; the SQL API's documented SQLSTATEs become
//!    [`Error::Invalid`] and [`Error::Duplicate`], an unknown schema [`Error::Schema`].
//! 3. **Jobs** (`job.rs`, `typed.rs`): a claimed [`Job`], its [`Claim`] (id and claim token), a
//!    [`NewJob`] to enqueue, an [`Ack`] saying how one ended, [`JobState`], and a
//!    [`JobOutcome`] (status and result) as `pgq.job_status` reports it. Typed jobs: a serde
//!    type implementing [`JobArgs`] travels as JSON with a `content-type` header
//!    ([`NewJob::typed`], [`Job::args`]).
//! 4. **Calls** (`queries.rs`): [`Queries`] calls every function of the SQL API with typed
//!    arguments, one prepared statement each, one round trip a call (or a pipelined
//!    transaction: [`Queries::ack_and_dequeue`]). [`enqueue_in`] (`enqueue.rs`) enqueues
//!    through any client, a transaction included, so jobs commit with the caller's rows.
//! 5. **Notifications** (`notify.rs`, `completion.rs`): [`Listener`] and [`Notification`]; a
//!    notification is a hint to look, never an authority. [`Completions`] waits for jobs to
//!    end on the `pgq_done` notifications of entrypoints that opted in.
//! 6. **The runtime** (`runtime/`): [`PgQueuer`] runs handlers for entrypoints, typed jobs
//!    ([`PgQueuer::job`]) and schedules with [`RunOptions`]: lanes that claim ahead and write outcomes with the next claim
//!    (`lane.rs`), one queue of claimed jobs shared by the handler slots (`dispatch.rs`), one
//!    LISTEN connection for all lanes (`listen.rs`). docs/design/0009-pipelined-runtime.md
//!    explains why.
//! 7. **Installing** ([`install`], [`sql_only`]): the extension or the queue as a SQL script
//!    for servers without the extension (built from the same `sql/` files); updating,
//!    checking and removing either.
//! 8. **Stopping** (`shutdown.rs`): [`shutdown_signal`] is SIGINT or SIGTERM, as the runtime
//!    and `pgq` wait for them.
//!
//! The `pgq` command line (crate `pgq`, `cli/` in the repository) is built on the same pieces.

mod completion;
mod config;
mod connect;
mod enqueue;
mod error;
mod handler_error;
pub mod install;
mod interval;
mod job;
mod notify;
mod queries;
mod report;
mod rows;
mod runtime;
mod schema;
mod shutdown;
pub mod sql_only;
#[cfg(feature = "otlp")]
pub mod telemetry;
mod tls;
pub mod trace;
mod typed;

pub use completion::Completions;
pub use config::{Settings, config, config_from_env};
pub use connect::{connect, connect_from_env, connect_with, connect_with_notices};
pub use enqueue::enqueue_in;
pub use error::Error;
pub use handler_error::{
    BoxError, HandlerResult, JobResult, RetryRequested, TimedOut, Unrecoverable,
};
pub use interval::Interval;
#[allow(deprecated)]
pub use job::JobStatus;
pub use job::{Ack, Claim, Job, JobOutcome, JobState, NewJob, OnConflict};
pub use notify::{CHANNEL, DONE_CHANNEL, Event, Listener, Notification};
pub use queries::{Durability, EntrypointSettings, Queries, Retention};
pub use report::Report;
pub use rows::{BacklogRow, LogRow, SummaryRow, ThroughputRow, WorkerRow};
pub use runtime::{Mode, PgQueuer, RunOptions, ScheduledRun};
pub use schema::{Capability, Install, SCHEMA_VERSIONS, Schema};
pub use shutdown::shutdown_signal;
pub use tls::{RootCert, SslMode, Tls};
pub use tokio_postgres;
pub use typed::{CONTENT_TYPE, JSON, JobArgs, RESULT_LIMIT};
