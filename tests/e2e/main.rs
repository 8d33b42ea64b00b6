//! End-to-end tests: the client against a real PostgreSQL with the extension preloaded (or a
//! SQL-only install, `PGQ_TEST_INSTALL=sql-only`). One folder per subject, one module per
//! concern; `pgqueuer_tests` holds the cluster and database helpers.

mod operations;
mod releases;
mod runtime;
mod scheduler;
mod sql;
