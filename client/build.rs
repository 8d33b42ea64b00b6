//! Embeds the queue's SQL in the crate, for SQL-only installs (`src/sql_only.rs`): the files of
//! `sql/` and `sql/sql-only/`, the extension's upgrade scripts, and the names of the time zones
//! the extension's cron math knows (chrono-tz, the same crate and version the extension uses).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("the client sits in the workspace")
        .to_path_buf();
    let mut files = Vec::new();
    for directory in ["sql", "sql/sql-only", "extension/sql"] {
        let path = root.join(directory);
        println!("cargo:rerun-if-changed={}", path.display());
        files.extend(sql_files(&root, &path));
    }
    files.sort();

    let mut out =
        String::from("/// Every embedded SQL file: (path from the repository root, text).\n");
    out.push_str("pub(crate) const FILES: &[(&str, &str)] = &[\n");
    for (relative, absolute) in &files {
        writeln!(out, "    ({relative:?}, include_str!({absolute:?})),").expect("write");
    }
    out.push_str("];\n\n/// The time zone names the extension's cron math accepts.\n");
    out.push_str("pub(crate) const ZONES: &[&str] = &[\n");
    let mut zones: Vec<&str> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|zone| zone.name())
        .collect();
    zones.sort_unstable();
    for zone in zones {
        writeln!(out, "    {zone:?},").expect("write");
    }
    out.push_str("];\n");
    let target = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("sql_files.rs");
    std::fs::write(&target, out).expect("write sql_files.rs");
}

/// The `.sql` files directly in `directory`, as (path from `root`, absolute path).
fn sql_files(root: &Path, directory: &Path) -> Vec<(String, String)> {
    let entries = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()));
    entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "sql"))
        .map(|path| {
            let relative = path
                .strip_prefix(root)
                .expect("under the root")
                .display()
                .to_string();
            (relative, path.display().to_string())
        })
        .collect()
}
