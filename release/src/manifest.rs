//! What a version's schema `pgq` holds, read from its SQL (design: `pgq verify` compares it
//! with a database's catalog without a scratch database): its functions (by name and number of
//! arguments), tables, views and types.

use std::collections::BTreeSet;

use crate::names::SQL_ONLY_DIR;
use crate::order::{SQL_FILES, sql_path};
use crate::statements::{first_words, statements};
use crate::{Error, Script, Tree, Version};

/// The functions the extension's library creates (Rust, `#[pg_extern]`, not in `sql/`), by
/// name and number of arguments; a test holds them to the newest frozen install script.
pub const LIBRARY_FUNCTIONS: &[(&str, usize)] = &[
    ("_cron_check", 2),
    ("_cron_latest", 3),
    ("_cron_next", 3),
    ("_wake_scheduler", 1),
];

/// An object of schema `pgq`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    /// A function: its name and how many arguments it takes.
    Function(String, usize),
    /// A table.
    Table(String),
    /// A view.
    View(String),
    /// A type of its own (an enum).
    Type(String),
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Function(name, 1) => write!(f, "function pgq.{name} (1 argument)"),
            Object::Function(name, n) => write!(f, "function pgq.{name} ({n} arguments)"),
            Object::Table(name) => write!(f, "table pgq.{name}"),
            Object::View(name) => write!(f, "view pgq.{name}"),
            Object::Type(name) => write!(f, "type pgq.{name}"),
        }
    }
}

/// The objects `sql` creates in schema `pgq` (qualified `pgq.`, or unqualified as pgrx writes
/// the library's functions, which `CREATE EXTENSION` puts in the extension's schema).
pub fn objects(sql: &str) -> BTreeSet<Object> {
    let mut found = BTreeSet::new();
    for statement in statements(sql) {
        let words = first_words(statement, 4);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let kind = match words.as_slice() {
            ["CREATE", "OR", "REPLACE", kind, ..] | ["CREATE", kind, ..] => *kind,
            _ => continue,
        };
        let Some(after) = after_keyword(statement, kind) else {
            continue;
        };
        let name_end = after
            .find(|c: char| c == '(' || c.is_whitespace())
            .unwrap_or(after.len());
        let Some(name) = in_pgq(&after[..name_end]) else {
            continue;
        };
        match kind {
            "FUNCTION" => {
                let arguments = after[name_end..].trim_start();
                found.insert(Object::Function(name, argument_count(arguments)));
            }
            "TABLE" => {
                found.insert(Object::Table(name));
            }
            "VIEW" => {
                found.insert(Object::View(name));
            }
            "TYPE" => {
                found.insert(Object::Type(name));
            }
            _ => {}
        }
    }
    found
}

/// What follows the keyword `kind` in `statement` (the object's name and the rest).
fn after_keyword<'a>(statement: &'a str, kind: &str) -> Option<&'a str> {
    // ASCII upper-casing keeps every byte where it was.
    let at = statement.to_ascii_uppercase().find(kind)?;
    Some(statement[at + kind.len()..].trim_start())
}

/// The name of an object of schema `pgq` (`pgq.name`, `pgq."name"`, or unqualified), without
/// quotes; None for another schema's.
fn in_pgq(qualified: &str) -> Option<String> {
    let unquote = |name: &str| name.trim_matches('"').to_string();
    match qualified.split_once('.') {
        Some((schema, name)) if unquote(schema) == "pgq" => Some(unquote(name)),
        Some(_) => None,
        None => Some(unquote(qualified)),
    }
}

/// How many arguments `(a int, b text DEFAULT 'x, y', c numeric(10, 2))` declares: the commas
/// at the top level of the parentheses, outside quotes.
fn argument_count(arguments: &str) -> usize {
    let mut depth = 0;
    let mut quoted = false;
    let mut commas = 0;
    let mut any = false;
    for c in arguments.chars() {
        if quoted {
            quoted = c != '\'';
            continue;
        }
        match c {
            '\'' => quoted = true,
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => commas += 1,
            c if depth == 1 && !c.is_whitespace() => any = true,
            _ => {}
        }
    }
    if any { commas + 1 } else { 0 }
}

/// Which kind of install a manifest is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `CREATE EXTENSION pgqueuer`.
    Extension,
    /// The SQL-only script.
    SqlOnly,
}

/// What `version`'s schema holds when installed as `kind`: from the frozen install script of a
/// release, or for `current` (not frozen yet) from `sql/` (with the library's functions, or
/// the SQL-only stand-ins and their helpers). None when the tree has no script for it.
pub fn manifest(
    tree: &Tree,
    version: Version,
    kind: Kind,
    current: Version,
) -> Result<Option<BTreeSet<Object>>, Error> {
    let frozen = match kind {
        Kind::Extension => Script::Install(version),
        Kind::SqlOnly => Script::SqlOnlyInstall(version),
    };
    if let Ok(text) = tree.file(&frozen.path()) {
        return Ok(Some(objects(text)));
    }
    if version != current {
        return Ok(None);
    }
    let mut found = BTreeSet::new();
    for name in SQL_FILES {
        found.extend(objects(tree.file(&sql_path(name))?));
    }
    match kind {
        Kind::Extension => found.extend(
            LIBRARY_FUNCTIONS
                .iter()
                .map(|(name, count)| Object::Function(name.to_string(), *count)),
        ),
        Kind::SqlOnly => {
            for file in ["cron.sql", "scheduler.sql"] {
                found.extend(objects(tree.file(&format!("{SQL_ONLY_DIR}/{file}"))?));
            }
            found.insert(Object::Function("_cron_zones".into(), 0));
        }
    }
    Ok(Some(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_read_by_kind_name_and_argument_count() {
        let sql = "CREATE TYPE pgq.job_state AS ENUM ('queued');\n\
                   CREATE TABLE pgq.jobs (id bigint, x numeric(10, 2));\n\
                   CREATE VIEW pgq.backlog AS SELECT 1;\n\
                   CREATE FUNCTION pgq.enqueue(entrypoint text, payload bytea DEFAULT NULL, \
                       note text DEFAULT 'a, b', ids int[] DEFAULT ARRAY[1, 2]) RETURNS int \
                       LANGUAGE sql AS $$ SELECT 1 $$;\n\
                   CREATE OR REPLACE FUNCTION pgq.tick() RETURNS void LANGUAGE sql AS $$ $$;\n\
                   CREATE  FUNCTION \"_cron_check\"(\n\t\"expression\" TEXT,\n\t\"timezone\" TEXT\n\
                       ) RETURNS bool AS 'MODULE_PATHNAME', 'x';\n\
                   CREATE FUNCTION other.f(a int) RETURNS int LANGUAGE sql AS $$ $$;\n\
                   CREATE INDEX jobs_idx ON pgq.jobs (id);\n";
        let found: Vec<String> = objects(sql).iter().map(Object::to_string).collect();
        assert_eq!(
            found,
            [
                "function pgq._cron_check (2 arguments)",
                "function pgq.enqueue (4 arguments)",
                "function pgq.tick (0 arguments)",
                "table pgq.jobs",
                "view pgq.backlog",
                "type pgq.job_state",
            ]
        );
    }

    /// The library's functions are those the newest frozen install script creates from the
    /// library (`MODULE_PATHNAME`).
    #[test]
    fn the_library_functions_are_the_frozen_scripts() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let tree = Tree::read(&root).expect("the checkout");
        let newest = *tree.releases().last().expect("a release");
        let text = tree
            .file(&Script::Install(newest).path())
            .expect("its script");
        let library: Vec<Object> = statements(text)
            .into_iter()
            .filter(|statement| statement.contains("MODULE_PATHNAME"))
            .flat_map(objects)
            .collect();
        let expected: Vec<Object> = LIBRARY_FUNCTIONS
            .iter()
            .map(|(name, count)| Object::Function(name.to_string(), *count))
            .collect();
        assert_eq!(library, expected);
    }

    /// Every release's manifest comes from its frozen script, the current version's from sql/.
    #[test]
    fn every_release_has_a_manifest_of_its_schema() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let tree = Tree::read(&root).expect("the checkout");
        let current = Version::parse(env!("CARGO_PKG_VERSION")).expect("ours");
        for version in tree.releases() {
            let found = manifest(&tree, version, Kind::Extension, current)
                .expect("readable")
                .expect("a frozen script");
            assert!(
                found.contains(&Object::Table("jobs".into()))
                    && found.contains(&Object::Function("dequeue".into(), 3))
                    && found.iter().any(|object| matches!(object, Object::Type(_))),
                "{version}: {found:?}"
            );
        }
        let now = manifest(&tree, current, Kind::SqlOnly, current)
            .expect("readable")
            .expect("from sql/");
        assert!(now.contains(&Object::Function("_cron_zones".into(), 0)));
        assert!(now.contains(&Object::Function("_wake_scheduler".into(), 1)));
    }
}
