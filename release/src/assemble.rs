//! Upgrade scripts assembled from a hand-written delta (docs/design/0016-assembled-upgrades.md).
//!
//! A person writes only what an upgrade must do that a fresh install does not say: new
//! columns and indexes, changed constraints, data moves, `DROP FUNCTION` of a changed
//! signature, a comment per change. Everything `sql/` already says is added here: every
//! function and view of `sql/` as `CREATE OR REPLACE`, their comments, and
//! `sql/privileges.sql`. The script is
//!
//! ```text
//! header, SET LOCAL lock_timeout
//! the delta up to its FUNCTIONS_HERE line (all of it when it has none)
//! -- BEGIN functions of sql/ ... -- END functions of sql/
//! the rest of the delta
//! -- BEGIN sql/privileges.sql ... -- END sql/privileges.sql
//! ```

use std::fmt::Write as _;

use crate::names::Step;
use crate::order::{PRIVILEGES, SQL_FILES, sql_path};
use crate::sections::{
    FUNCTIONS_BEGIN, FUNCTIONS_END, FUNCTIONS_HERE, PRIVILEGES_BEGIN, PRIVILEGES_END,
};
use crate::statements::{first_words, statements};
use crate::{Error, Tree};

/// The lock timeout every upgrade script sets: it fails rather than queue every claim behind
/// it while it waits for a lock held by a long transaction.
pub const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '5s';";

/// The upgrade script of `step`: `delta` (the text of `sql/upgrade/A--B.sql`) with the
/// functions and views of `tree`'s `sql/` and its privileges.
pub fn upgrade(tree: &Tree, step: Step, delta: &str) -> Result<String, Error> {
    let name = step.delta_path();
    for marker in [
        FUNCTIONS_BEGIN,
        FUNCTIONS_END,
        PRIVILEGES_BEGIN,
        PRIVILEGES_END,
    ] {
        if delta.contains(marker) {
            return Err(Error::new(format!(
                "{name}: {marker:?} is written by the assembly, not in a delta"
            )));
        }
    }
    let here = delta
        .match_indices(FUNCTIONS_HERE)
        .map(|(at, _)| at)
        .collect::<Vec<_>>();
    let (before, after) = match here.as_slice() {
        [] => (delta, ""),
        [at] => {
            let line_start = delta[..*at].rfind('\n').map_or(0, |newline| newline + 1);
            let line_end = delta[*at..]
                .find('\n')
                .map_or(delta.len(), |end| at + end + 1);
            if delta[line_start..line_end].trim() != FUNCTIONS_HERE {
                return Err(Error::new(format!(
                    "{name}: {FUNCTIONS_HERE:?} must be a line of its own"
                )));
            }
            (&delta[..line_start], &delta[line_end..])
        }
        _ => {
            return Err(Error::new(format!(
                "{name}: {FUNCTIONS_HERE:?} may appear once"
            )));
        }
    };
    let mut out = format!(
        "-- pgqueuer {from} -> {to}. Run by ALTER EXTENSION pgqueuer UPDATE (pgq upgrade), in one\n\
         -- transaction; docs/updating.md says in which order to update files, servers and workers.\n\
         -- Assembled from {name} (written by hand), the functions and views of sql/ and\n\
         -- sql/privileges.sql (docs/design/0016-assembled-upgrades.md).\n\
         -- It fails rather than queue the whole queue behind a long transaction's lock.\n\
         {LOCK_TIMEOUT}\n\n-- {name}\n",
        from = step.from,
        to = step.to,
    );
    push_part(&mut out, before);
    writeln!(out, "{FUNCTIONS_BEGIN}\n").expect("write to a String");
    out.push_str(&functions_and_views(tree)?);
    writeln!(out, "{FUNCTIONS_END}\n").expect("write to a String");
    if !after.trim().is_empty() {
        writeln!(out, "-- {name}, after the functions").expect("write to a String");
        push_part(&mut out, after);
    }
    writeln!(out, "{PRIVILEGES_BEGIN}").expect("write to a String");
    push_part(&mut out, tree.file(&sql_path(PRIVILEGES))?);
    writeln!(out, "{PRIVILEGES_END}").expect("write to a String");
    Ok(out)
}

/// `text`, ending with a newline and a blank line.
fn push_part(out: &mut String, text: &str) {
    let text = text.trim_end();
    if !text.is_empty() {
        out.push_str(text);
        out.push_str("\n\n");
    }
}

/// Every function and view of `sql/`, in the order the extension creates them, as `CREATE
/// OR REPLACE`, with their `COMMENT ON` statements; each file's under a line naming it.
pub fn functions_and_views(tree: &Tree) -> Result<String, Error> {
    let mut out = String::new();
    for name in SQL_FILES {
        let path = sql_path(name);
        let mut kept = Vec::new();
        for statement in statements(tree.file(&path)?) {
            let words = first_words(statement, 4);
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let statement = match words.as_slice() {
                ["CREATE", kind @ ("FUNCTION" | "VIEW"), ..] => or_replace(statement, kind)
                    .ok_or_else(|| Error::new(format!("{path}: cannot read {statement:.60}")))?,
                ["CREATE", "OR", "REPLACE", "FUNCTION" | "VIEW"]
                | ["COMMENT", "ON", "FUNCTION" | "VIEW", ..] => statement.to_string(),
                _ => continue,
            };
            kept.push(statement);
        }
        if !kept.is_empty() {
            writeln!(out, "-- {path}\n{}\n", kept.join("\n\n")).expect("write to a String");
        }
    }
    Ok(out)
}

/// `CREATE FUNCTION ...` as `CREATE OR REPLACE FUNCTION ...` (or VIEW).
fn or_replace(statement: &str, kind: &str) -> Option<String> {
    // ASCII upper-casing keeps every byte where it was.
    let at = statement.to_ascii_uppercase().find(kind)?;
    Some(format!(
        "CREATE OR REPLACE {kind}{}",
        &statement[at + kind.len()..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Version;

    fn step() -> Step {
        Step {
            from: Version::new(0, 6, 0),
            to: Version::new(0, 7, 0),
        }
    }

    /// A tree with one file of sql/ that has a table, a function, a view and a comment.
    fn tree() -> Tree {
        let mut files: Vec<(String, String)> = SQL_FILES
            .iter()
            .map(|name| (sql_path(name), String::new()))
            .collect();
        files[0].1 = "-- the queue\nCREATE TABLE pgq.jobs (id bigint);\n\
                      CREATE FUNCTION pgq.f() RETURNS int\nLANGUAGE sql\nAS $$ SELECT 1; $$;\n\
                      COMMENT ON FUNCTION pgq.f() IS 'one; really';\n\
                      CREATE INDEX jobs_idx ON pgq.jobs (id);\n\
                      create view pgq.v AS SELECT pgq.f();\n"
            .into();
        files.push((
            sql_path(PRIVILEGES),
            "GRANT SELECT ON pgq.v TO pgq_monitor;\n".into(),
        ));
        Tree::from_files(files)
    }

    #[test]
    fn the_script_is_the_delta_then_functions_and_views_then_privileges() {
        let script = upgrade(
            &tree(),
            step(),
            "-- a column\nALTER TABLE pgq.jobs ADD x int;\n",
        )
        .expect("assembled");
        let order = [
            LOCK_TIMEOUT,
            "ALTER TABLE pgq.jobs ADD x int;",
            FUNCTIONS_BEGIN,
            "CREATE OR REPLACE FUNCTION pgq.f() RETURNS int\nLANGUAGE sql\nAS $$ SELECT 1; $$;",
            "COMMENT ON FUNCTION pgq.f() IS 'one; really';",
            "CREATE OR REPLACE VIEW pgq.v AS SELECT pgq.f();",
            FUNCTIONS_END,
            PRIVILEGES_BEGIN,
            "GRANT SELECT ON pgq.v TO pgq_monitor;",
            PRIVILEGES_END,
        ];
        let mut at = 0;
        for part in order {
            at += script[at..]
                .find(part)
                .unwrap_or_else(|| panic!("{part:?} missing or out of order in\n{script}"));
        }
        assert!(
            !script.contains("CREATE TABLE") && !script.contains("CREATE INDEX"),
            "{script}"
        );
    }

    #[test]
    fn the_marker_puts_the_functions_before_the_rest_of_the_delta() {
        let delta = format!(
            "ALTER TABLE pgq.jobs ADD x int;\n{FUNCTIONS_HERE}\nUPDATE pgq.jobs SET x = pgq.f();\n"
        );
        let script = upgrade(&tree(), step(), &delta).expect("assembled");
        let add = script.find("ADD x int").expect("the first part");
        let function = script
            .find("CREATE OR REPLACE FUNCTION pgq.f()")
            .expect("the function");
        let update = script.find("SET x = pgq.f()").expect("the second part");
        let privileges = script.find(PRIVILEGES_BEGIN).expect("privileges");
        assert!(
            add < function && function < update && update < privileges,
            "{script}"
        );
        assert!(!script.contains(FUNCTIONS_HERE), "{script}");
    }

    #[test]
    fn a_delta_with_the_assemblys_markers_or_two_places_is_refused() {
        for delta in [
            format!("{FUNCTIONS_BEGIN}\n{FUNCTIONS_END}\n"),
            format!("{PRIVILEGES_BEGIN}\n"),
            format!("{FUNCTIONS_HERE}\nSELECT 1;\n{FUNCTIONS_HERE}\n"),
            format!("SELECT 1; {FUNCTIONS_HERE}\n"),
        ] {
            let error = upgrade(&tree(), step(), &delta).expect_err("refused");
            assert!(
                error
                    .to_string()
                    .starts_with("sql/upgrade/0.6.0--0.7.0.sql: "),
                "{error}"
            );
        }
    }
}
