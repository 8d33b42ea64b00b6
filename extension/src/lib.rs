//! The pgqueuer PostgreSQL extension.
//!
//! `CREATE EXTENSION pgqueuer` creates schema `pgq` holding the whole queue. The queue is SQL,
//! kept as readable files in the repository's `sql/` directory and included here in order;
//! Rust is used only for what SQL cannot do well (cron math, the background worker).

use pgrx::prelude::*;

mod cron;
mod scheduler;

::pgrx::pg_module_magic!(name, version);

/// Runs once per process that loads the library: settings, and (when preloaded) the shared
/// memory and the background worker.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    scheduler::init();
}

extension_sql_file!("../../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../../sql/version.sql",
    name = "version",
    requires = ["schema"]
);
extension_sql_file!(
    "../../sql/configure.sql",
    name = "configure",
    requires = ["schema"]
);
extension_sql_file!(
    "../../sql/enqueue.sql",
    name = "enqueue",
    requires = ["schema"]
);
extension_sql_file!(
    "../../sql/dequeue.sql",
    name = "dequeue",
    requires = ["schema"]
);
extension_sql_file!(
    "../../sql/heartbeat.sql",
    name = "heartbeat",
    requires = ["schema"]
);
extension_sql_file!("../../sql/ack.sql", name = "ack", requires = ["schema"]);
extension_sql_file!(
    "../../sql/cancel.sql",
    name = "cancel",
    requires = ["schema"]
);
extension_sql_file!(
    "../../sql/status.sql",
    name = "status",
    requires = ["schema"]
);
extension_sql_file!(
    "../../sql/maintenance.sql",
    name = "maintenance",
    requires = ["schema"]
);
extension_sql_file!(
    "../../sql/durability.sql",
    name = "durability",
    requires = ["maintenance"]
);
// The table's CHECK calls pgq._cron_check, so the Rust functions come first.
extension_sql_file!(
    "../../sql/schedules.sql",
    name = "schedules",
    requires = ["enqueue", cron::_cron_check]
);

extension_sql_file!(
    "../../sql/scheduler.sql",
    name = "scheduler",
    requires = ["schedules"]
);
// The read model reads every table and view above.
extension_sql_file!(
    "../../sql/overview.sql",
    name = "overview",
    requires = ["scheduler", "durability", "status"]
);

// Last: roles, owners and grants over everything above.
extension_sql_file!("../../sql/privileges.sql", name = "privileges", finalize);

// pgrx's #[pg_schema] needs an inline module; the tests themselves are in tests.rs.
#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    include!("tests.rs");
}

/// Hooks of the pgrx test framework (`cargo pgrx test`); they must sit at the crate root.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'pgqueuer'"]
    }
}
