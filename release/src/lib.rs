//! What the repository knows about pgqueuer's releases, in one place (design note 16).
//!
//! - [`Version`] (`version.rs`): the one parser of version numbers;
//! - the names of the scripts (`names.rs`): [`Script`] for the files of `extension/sql/`
//!   (frozen install scripts, SQL-only install scripts, upgrade scripts) and [`Step`] for an
//!   upgrade and its delta in `sql/upgrade/`;
//! - the order the extension creates `sql/` in (`order.rs`, [`SQL_FILES`]);
//! - [`Tree`] (`tree.rs`): a checkout's scripts and sources, its releases, upgrade steps and
//!   the path between two versions;
//! - [`assemble`]: an upgrade script from its hand-written delta, the functions and views of
//!   `sql/` and the privileges, in [`sections`];
//! - [`sql_only`]: the same SQL made fit for a database without the extension's library;
//! - [`manifest`]: what a version's schema holds, for `pgq verify`.
//!
//! It has no dependencies: the client's build script, xtask and the tests all use it, and the
//! client reads schema versions with it.

pub mod assemble;
pub mod manifest;
mod names;
mod order;
pub mod sections;
pub mod sql_only;
mod statements;
mod tree;
mod version;

pub use names::{DELTAS_DIR, EXTENSION, SCRIPTS_DIR, SQL_DIR, SQL_ONLY_DIR, Script, Step};
pub use order::{PRIVILEGES, SQL_FILES, extension_sql_files, sql_path};
pub use statements::statements;
pub use tree::{Tree, path};
pub use version::Version;

/// What went wrong reading or assembling release scripts, in a sentence naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && name != ".git" {
                    rust_files(&path, found);
                }
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                found.push(path);
            }
        }
    }

    /// Version numbers are read in one place, `version.rs`: a second parser would order or
    /// accept versions differently (`0.10.0` before `0.9.0`).
    #[test]
    fn there_is_one_version_parser() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace");
        let mut files = Vec::new();
        rust_files(root, &mut files);
        assert!(
            files.len() > 50,
            "the workspace's Rust files: {}",
            files.len()
        );
        let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        // The patterns are built so that this file does not match them itself.
        let patterns = [
            format!("split('{}')", '.'),
            format!("split(\"{}\")", '.'),
            format!("split(['{}'", '.'),
            format!("fn version_{}", "key"),
        ];
        let mut parsers = Vec::new();
        for file in files {
            if file == own.join("version.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (number, line) in text.lines().enumerate() {
                if patterns
                    .iter()
                    .any(|pattern| line.contains(pattern.as_str()))
                {
                    parsers.push(format!(
                        "{}:{}: {}",
                        file.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
        assert!(
            parsers.is_empty(),
            "versions are parsed by pgqueuer_release::Version alone; found another parser:\n{}",
            parsers.join("\n")
        );
    }
}
