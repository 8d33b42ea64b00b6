//! The pgqueuer PostgreSQL extension.
//!
//! `CREATE EXTENSION pgqueuer` creates schema `pgq` holding the whole queue. The queue is SQL,
//! kept as readable files in the repository's `sql/` directory and included here in order;
//! Rust is used only for what SQL cannot do well (cron math, the background worker).

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

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

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn version_is_the_crate_version() {
        let version = Spi::get_one::<String>("SELECT pgq.version()");
        assert_eq!(version, Ok(Some(env!("CARGO_PKG_VERSION").to_string())));
    }

    #[pg_test]
    fn extension_lives_in_schema_pgq() {
        let schema = Spi::get_one::<String>(
            "SELECT n.nspname::text FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgqueuer'",
        );
        assert_eq!(schema, Ok(Some("pgq".to_string())));
    }

    #[pg_test]
    fn library_is_preloaded() {
        let preload = Spi::get_one::<String>("SHOW shared_preload_libraries");
        assert_eq!(preload, Ok(Some("pgqueuer".to_string())));
    }
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
