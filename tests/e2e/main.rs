//! End-to-end tests: the client against a real PostgreSQL with the extension preloaded.
//! One module per concern; `pgqueuer_tests` holds the cluster and database helpers.

mod ack;
mod backup;
mod cancel;
mod catalog;
mod claims;
mod configure;
mod cron_twin;
mod dequeue;
mod durability;
mod enqueue;
mod install;
mod limits;
mod maintenance;
mod notify;
mod pause;
mod pinned;
mod queries;
mod release;
mod runtime;
mod runtime_metrics;
mod schedules;
mod schema;
mod security;
mod sql_only;
mod status;
mod trace_context;
mod typed;
mod worker;
