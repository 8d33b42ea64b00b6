#![warn(missing_docs)]
//! Rust client for **pgqueuer**, a job queue that lives in PostgreSQL.
//!
//! The queue itself is SQL in the `pgqueuer` extension (schema `pgq`); this crate is a thin,
//! async caller of it built on tokio-postgres: [`connect_from_env`] connects, and [`Queries`]
//! calls every function of the SQL API with typed arguments and results.
//!
//! ```no_run
//! # async fn example() -> Result<(), pgqueuer::Error> {
//! // PGQUEUER_DSN, then DATABASE_URL, then the libpq variables PGHOST, PGPORT, PGUSER, ...
//! let client = pgqueuer::connect_from_env().await?;
//! let version: String = client.query_one("SELECT pgq.version()", &[]).await?.get(0);
//! # Ok(()) }
//! ```
//!
//! - [`PgQueuer`] (module `runtime`): the worker runtime that runs handlers;
//! - [`Listener`] and [`Notification`] (module `notify`): the queue's notifications;
//! - [`shutdown_signal`]: SIGINT or SIGTERM, as the runtime and `pgq` wait for them;
//! - [`sql_only`]: the queue as a plain SQL script, for PostgreSQL without the extension.

mod connect;
mod error;
mod job;
mod notify;
mod queries;
mod runtime;
mod shutdown;
pub mod sql_only;
mod tls;

pub use connect::{
    Settings, config, config_from_env, connect, connect_from_env, connect_with,
    connect_with_notices,
};
pub use error::Error;
pub use notify::{CHANNEL, Event, Listener, Notification};
pub use queries::{
    Ack, Claim, EntrypointSettings, Job, JobStatus, LogRow, NewJob, OnConflict, Queries,
    SCHEMA_VERSIONS, SummaryRow,
};
pub use runtime::{HandlerResult, Mode, PgQueuer, RetryRequested, RunOptions, ScheduledRun};
pub use shutdown::shutdown_signal;
pub use tls::{RootCert, SslMode, Tls};
pub use tokio_postgres;
