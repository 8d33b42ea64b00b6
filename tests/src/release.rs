//! The released versions of the extension, as the repository holds them
//! (`pgqueuer_release::Tree`: `extension/sql/` and the deltas in `sql/upgrade/`). The current
//! version is the workspace's; it is a release once its script is frozen.

use std::path::PathBuf;

pub use pgqueuer_release::{Script, Step, Tree, Version};

/// The version this checkout builds (the workspace version, the control file's default).
pub const CURRENT: &str = env!("CARGO_PKG_VERSION");

/// [`CURRENT`] as a [`Version`].
pub fn current() -> Version {
    Version::parse(CURRENT).expect("the workspace's version")
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The checkout's release scripts and SQL sources.
pub fn tree() -> Tree {
    Tree::read(&repo_root()).unwrap_or_else(|error| panic!("reading the release scripts: {error}"))
}

/// The frozen releases, oldest first.
pub fn releases() -> Vec<Version> {
    tree().releases()
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
}
