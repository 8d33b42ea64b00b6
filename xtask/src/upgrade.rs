//! `cargo xtask sync-upgrade`: refreshes the generated sections of the upgrade script that
//! leads to the current (unreleased) version, from `sql/`.
//!
//! An upgrade script is written by hand (new columns, constraints, dropped signatures), but two
//! of its sections must equal `sql/` exactly, or the upgraded catalog would differ from a fresh
//! install (the upgrade test compares function bodies):
//!
//! - between `-- BEGIN functions of sql/` and `-- END functions of sql/`: every
//!   `CREATE FUNCTION` of `sql/`, as `CREATE OR REPLACE FUNCTION`, and the `COMMENT ON
//!   FUNCTION`s, in the order the extension creates them;
//! - between `-- BEGIN sql/privileges.sql` and `-- END sql/privileges.sql`: that file.
//!
//! A released upgrade script never changes; this only touches the one whose target is the
//! current version.

use std::path::Path;

use crate::command::{Result, workspace_root};
use crate::install::{current_version, frozen_releases};

/// The files of `sql/` in the order `extension/src/lib.rs` creates them.
const ORDER: &[&str] = &[
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
];

pub fn sync() -> Result {
    let current = current_version();
    let releases = frozen_releases()?;
    if releases.iter().any(|(version, _)| version == current) {
        return Err(format!(
            "{current} is released: its upgrade script is frozen. Bump the version first \
             (docs/development.md, \"Cutting a release\")"
        ));
    }
    let Some((latest, _)) = releases.last() else {
        return Err("no release in extension/sql/".into());
    };
    let path = workspace_root()
        .join("extension")
        .join("sql")
        .join(format!("pgqueuer--{latest}--{current}.sql"));
    let script =
        std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    let sql = workspace_root().join("sql");
    let functions = functions_of(&sql)?;
    let script = replace_section(
        &script,
        "-- BEGIN functions of sql/",
        "-- END functions of sql/",
        &functions,
    )?;
    let privileges = read(&sql.join("privileges.sql"))?;
    let script = replace_section(
        &script,
        "-- BEGIN sql/privileges.sql",
        "-- END sql/privileges.sql",
        &privileges,
    )?;
    std::fs::write(&path, script).map_err(|error| format!("{}: {error}", path.display()))?;
    eprintln!("    refreshed {}", path.display());
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))
}

/// Every `CREATE FUNCTION ... $$;` statement of the files, as `CREATE OR REPLACE`, then their
/// `COMMENT ON FUNCTION` statements, each file's in turn.
fn functions_of(sql: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for name in ORDER {
        let text = read(&sql.join(format!("{name}.sql")))?;
        let mut rest = text.as_str();
        while let Some(start) = rest.find("CREATE FUNCTION") {
            let body = rest[start..]
                .find("AS $$")
                .ok_or_else(|| format!("sql/{name}.sql: a function without AS $$"))?;
            let end = rest[start + body..]
                .find("\n$$;")
                .ok_or_else(|| format!("sql/{name}.sql: a function body without $$;"))?;
            let statement = &rest[start..start + body + end + 4];
            parts.push(format!(
                "-- sql/{name}.sql\n{}",
                statement.replacen("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
            ));
            rest = &rest[start + body + end + 4..];
        }
        for line in text.lines() {
            if line.starts_with("COMMENT ON FUNCTION") {
                parts.push(line.to_string());
            }
        }
    }
    Ok(format!("\n{}\n\n", parts.join("\n\n")))
}

/// `script` with the lines between `begin` and `end` (both kept) replaced by `content`.
fn replace_section(script: &str, begin: &str, end: &str, content: &str) -> Result<String> {
    let Some(start) = script.find(begin) else {
        return Ok(script.to_string()); // this script has no such section
    };
    let after_begin = script[start..]
        .find('\n')
        .map(|line| start + line + 1)
        .ok_or_else(|| format!("nothing after {begin}"))?;
    let stop = script[after_begin..]
        .find(end)
        .map(|offset| after_begin + offset)
        .ok_or_else(|| format!("{begin} without {end}"))?;
    Ok(format!(
        "{}{}{}",
        &script[..after_begin],
        content,
        &script[stop..]
    ))
}
