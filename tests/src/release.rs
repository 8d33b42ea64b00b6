//! The released versions of the extension, as the repository holds them.
//!
//! `extension/sql/` holds the frozen full install script of every release
//! (`pgqueuer--V.sql`) and the upgrade scripts between versions (`pgqueuer--A--B.sql`).
//! The current version is the workspace's; it is a release once its script is frozen.

use std::path::PathBuf;

/// The version this checkout builds (the workspace version, the control file's default).
pub const CURRENT: &str = env!("CARGO_PKG_VERSION");

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `extension/sql/`: frozen install scripts and upgrade scripts.
pub fn scripts_dir() -> PathBuf {
    repo_root().join("extension").join("sql")
}

/// An upgrade script `pgqueuer--FROM--TO.sql`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The version it starts from.
    pub from: String,
    /// The version it leads to.
    pub to: String,
    /// Its file.
    pub path: PathBuf,
}

/// The frozen releases, oldest first.
pub fn releases() -> Vec<String> {
    let mut versions: Vec<String> = script_names()
        .into_iter()
        .filter_map(|name| {
            let version = name.strip_prefix("pgqueuer--")?.strip_suffix(".sql")?;
            (!version.contains("--")).then(|| version.to_string())
        })
        .collect();
    versions.sort_by_key(|version| version_key(version));
    versions
}

/// The upgrade scripts, in no particular order.
pub fn upgrades() -> Vec<Upgrade> {
    script_names()
        .into_iter()
        .filter_map(|name| {
            let versions = name.strip_prefix("pgqueuer--")?.strip_suffix(".sql")?;
            let (from, to) = versions.split_once("--")?;
            Some(Upgrade {
                from: from.to_string(),
                to: to.to_string(),
                path: scripts_dir().join(&name),
            })
        })
        .collect()
}

/// The frozen install script of `version`.
pub fn frozen_script(version: &str) -> PathBuf {
    scripts_dir().join(format!("pgqueuer--{version}.sql"))
}

fn script_names() -> Vec<String> {
    let dir = scripts_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));
    entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("pgqueuer--") && name.ends_with(".sql"))
        .collect()
}

/// Orders `0.10.0` after `0.9.0`.
pub fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['.', '-'])
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

/// An install script reduced to what PostgreSQL executes, for comparing two of them: SQL
/// comments (and so pgrx's `-- file:line` markers) and blank lines removed, trailing spaces
/// trimmed, and the blocks that pgrx writes between `<begin connected objects>` markers put
/// in sorted order, since pgrx does not keep their order stable from one build to the next.
pub fn normalise(script: &str) -> Vec<String> {
    let mut blocks: Vec<String> = script
        .split("/* <begin connected objects> */")
        .map(|block| {
            strip_comments(block)
                .lines()
                .map(str::trim_end)
                .filter(|line| !line.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|block| !block.is_empty())
        .collect();
    blocks.sort();
    blocks
}

/// Removes `-- ...` and `/* ... */` comments outside string literals. Function bodies in
/// dollar quotes are SQL or PL/pgSQL, whose comments are comments too, so dollar quotes are
/// read through; single-quoted literals (with `''` escapes) are kept whole.
fn strip_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    out.extend(chars.next());
                } else {
                    in_string = false;
                }
            }
            continue;
        }
        match (c, chars.peek()) {
            ('\'', _) => {
                in_string = true;
                out.push(c);
            }
            ('-', Some('-')) => {
                for skipped in chars.by_ref() {
                    if skipped == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut previous = ' ';
                for skipped in chars.by_ref() {
                    if previous == '*' && skipped == '/' {
                        break;
                    }
                    previous = skipped;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_pgrx_markers_are_dropped_but_strings_are_kept() {
        let script = "/* <begin connected objects> */\n\
                      -- extension/src/lib.rs:21\n\
                      CREATE TABLE t (a text DEFAULT '-- not a comment');  -- trailing\n\
                      /* a block\n comment */\n\
                      SELECT 'it''s /* kept */';\n\
                      /* </end connected objects> */\n";
        assert_eq!(
            normalise(script),
            vec!["CREATE TABLE t (a text DEFAULT '-- not a comment');\nSELECT 'it''s /* kept */';"]
        );
    }

    #[test]
    fn block_order_does_not_matter_but_content_does() {
        let one = "/* <begin connected objects> */\nCREATE TABLE a ();\n\
                   /* <begin connected objects> */\nCREATE TABLE b ();\n";
        let swapped = "/* <begin connected objects> */\nCREATE TABLE b ();\n\
                       /* <begin connected objects> */\n-- moved\nCREATE TABLE a ();\n";
        let changed = "/* <begin connected objects> */\nCREATE TABLE a ();\n\
                       /* <begin connected objects> */\nCREATE TABLE b (x int);\n";
        assert_eq!(normalise(one), normalise(swapped));
        assert_ne!(normalise(one), normalise(changed));
    }

    #[test]
    fn a_comment_inside_a_function_body_is_ignored_and_code_is_not() {
        let a = "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 -- one\n $$;";
        let b = "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 -- uno\n $$;";
        let c = "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 2 -- one\n $$;";
        assert_eq!(normalise(a), normalise(b));
        assert_ne!(normalise(a), normalise(c));
    }

    #[test]
    fn versions_sort_numerically() {
        let mut versions = vec!["0.10.0", "0.9.1", "0.2.0", "1.0.0"];
        versions.sort_by_key(|version| version_key(version));
        assert_eq!(versions, vec!["0.2.0", "0.9.1", "0.10.0", "1.0.0"]);
    }
}
