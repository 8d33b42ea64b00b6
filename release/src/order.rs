//! The order in which the extension creates the files of `sql/`.

/// The files of `sql/` (`sql/NAME.sql`) in the order the extension creates them. The
/// `extension_sql_file!` list in `extension/src/lib.rs` is the one other copy (pgrx needs it
/// written out); a test holds the two together. `sql/privileges.sql` ([`PRIVILEGES`]) comes
/// after all of them.
pub const SQL_FILES: &[&str] = &[
    "schema",
    "version",
    "configure",
    "enqueue",
    "dequeue",
    "heartbeat",
    "ack",
    "cancel",
    "status",
    "maintenance",
    "durability",
    "schedules",
    "scheduler",
    "overview",
];

/// Roles, owners and grants over everything else: `sql/privileges.sql`, last.
pub const PRIVILEGES: &str = "privileges";

/// `sql/NAME.sql`.
pub fn sql_path(name: &str) -> String {
    format!("{}/{name}.sql", crate::names::SQL_DIR)
}

/// The files of `sql/` that an `extension_sql_file!` list (the text of `extension/src/lib.rs`)
/// names, in its order.
pub fn extension_sql_files(lib_rs: &str) -> Vec<&str> {
    lib_rs
        .split("extension_sql_file!(")
        .skip(1)
        .filter_map(|call| call.split_once("\"../../sql/")?.1.split_once(".sql\""))
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one allowed copy of the load order, pgrx's, is this one.
    #[test]
    fn the_extension_creates_sql_in_this_order() {
        let lib_rs = include_str!("../../extension/src/lib.rs");
        let mut expected = SQL_FILES.to_vec();
        expected.push(PRIVILEGES);
        assert_eq!(
            extension_sql_files(lib_rs),
            expected,
            "extension/src/lib.rs creates sql/ in another order than release/src/order.rs"
        );
    }
}
