//! The release scripts and SQL sources of a checkout, read once: from the files (xtask, the
//! tests, the client's build script) or from a list (anything embedded).

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use crate::names::{DELTAS_DIR, SCRIPTS_DIR, SQL_DIR, SQL_ONLY_DIR, Script, Step};
use crate::{Error, Version, assemble};

/// The `.sql` files of a checkout's `sql/`, `sql/sql-only/`, `sql/upgrade/` and
/// `extension/sql/`, by path from the repository's root.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    files: BTreeMap<String, String>,
}

impl Tree {
    /// The folders read, from the repository's root.
    pub const DIRS: [&'static str; 4] = [SQL_DIR, SQL_ONLY_DIR, DELTAS_DIR, SCRIPTS_DIR];

    /// Reads the `.sql` files directly in each of [`Tree::DIRS`] under `root` (a folder that
    /// does not exist holds none).
    pub fn read(root: &Path) -> Result<Tree, Error> {
        let mut files = BTreeMap::new();
        for dir in Tree::DIRS {
            let path = root.join(dir);
            let entries = match std::fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(Error::new(format!("{}: {error}", path.display()))),
            };
            for entry in entries {
                let entry = entry.map_err(|error| Error::new(format!("{dir}: {error}")))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".sql") || !entry.path().is_file() {
                    continue;
                }
                let text = std::fs::read_to_string(entry.path())
                    .map_err(|error| Error::new(format!("{}: {error}", entry.path().display())))?;
                files.insert(format!("{dir}/{name}"), text);
            }
        }
        Ok(Tree { files })
    }

    /// A tree of these (path, text) pairs.
    pub fn from_files<P: Into<String>, T: Into<String>>(
        files: impl IntoIterator<Item = (P, T)>,
    ) -> Tree {
        Tree {
            files: files
                .into_iter()
                .map(|(path, text)| (path.into(), text.into()))
                .collect(),
        }
    }

    /// Every file, by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files
            .iter()
            .map(|(path, text)| (path.as_str(), text.as_str()))
    }

    /// The text of the file at `path` (from the repository's root).
    pub fn file(&self, path: &str) -> Result<&str, Error> {
        self.files
            .get(path)
            .map(String::as_str)
            .ok_or_else(|| Error::new(format!("{path}: no such file")))
    }

    /// What `pick` takes of the scripts of `extension/sql/` (each with its text), sorted.
    fn scripts<'a, T: Ord>(&'a self, pick: impl Fn(Script, &'a str) -> Option<T>) -> Vec<T> {
        let mut found: Vec<T> = self
            .files
            .iter()
            .filter_map(|(path, text)| {
                let name = path.strip_prefix(SCRIPTS_DIR)?.strip_prefix('/')?;
                pick(Script::parse(name)?, text)
            })
            .collect();
        found.sort();
        found
    }

    /// The releases: versions whose install script is frozen, oldest first.
    pub fn releases(&self) -> Vec<Version> {
        self.scripts(|script, _| match script {
            Script::Install(version) => Some(version),
            _ => None,
        })
    }

    /// Whether `version` is a release.
    pub fn is_released(&self, version: Version) -> bool {
        self.files.contains_key(&Script::Install(version).path())
    }

    /// The releases whose SQL-only install script is frozen, with it, oldest first.
    pub fn sql_only_releases(&self) -> Vec<(Version, &str)> {
        self.scripts(|script, text| match script {
            Script::SqlOnlyInstall(version) => Some((version, text)),
            _ => None,
        })
    }

    /// The steps whose upgrade script is frozen in `extension/sql/`, oldest first.
    pub fn frozen_steps(&self) -> Vec<Step> {
        self.scripts(|script, _| match script {
            Script::Upgrade(step) => Some(step),
            _ => None,
        })
    }

    /// The steps that have a delta in `sql/upgrade/`.
    pub fn deltas(&self) -> Vec<Step> {
        self.files
            .keys()
            .filter_map(|path| {
                let name = path.strip_prefix(DELTAS_DIR)?.strip_prefix('/')?;
                Step::of_delta(name)
            })
            .collect()
    }

    /// Every upgrade step: the frozen ones, and those with a delta but no frozen script yet
    /// (assembled when packaged). Oldest first.
    pub fn steps(&self) -> Vec<Step> {
        let mut steps = self.frozen_steps();
        steps.extend(self.deltas());
        steps.sort();
        steps.dedup();
        steps
    }

    /// Whether `step`'s upgrade script is frozen.
    pub fn is_frozen(&self, step: Step) -> bool {
        self.files.contains_key(&step.script_path())
    }

    /// The upgrade script of `step`: the frozen text once the step is frozen (whatever its
    /// delta and `sql/` say now), else assembled from its delta and today's `sql/`.
    pub fn upgrade_script(&self, step: Step) -> Result<Cow<'_, str>, Error> {
        if let Ok(frozen) = self.file(&step.script_path()) {
            return Ok(Cow::Borrowed(frozen));
        }
        let delta = self.file(&step.delta_path()).map_err(|_| {
            Error::new(format!(
                "no upgrade from {} to {}: neither {} nor {}",
                step.from,
                step.to,
                step.script_path(),
                step.delta_path()
            ))
        })?;
        assemble::upgrade(self, step, delta).map(Cow::Owned)
    }

    /// The fewest steps that lead from `from` to `to` (none when they are equal).
    pub fn path(&self, from: Version, to: Version) -> Result<Vec<Step>, Error> {
        path(&self.steps(), from, to)
    }
}

/// The fewest of `steps` that lead from `from` to `to`, in order (none when they are equal).
pub fn path(steps: &[Step], from: Version, to: Version) -> Result<Vec<Step>, Error> {
    let mut came_by: BTreeMap<Version, Step> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        if at == to {
            let mut path = Vec::new();
            let mut back = to;
            while back != from {
                let step = came_by[&back];
                path.push(step);
                back = step.from;
            }
            path.reverse();
            return Ok(path);
        }
        for step in steps.iter().filter(|step| step.from == at) {
            if step.to != from && !came_by.contains_key(&step.to) {
                came_by.insert(step.to, *step);
                queue.push_back(step.to);
            }
        }
    }
    Err(Error::new(format!(
        "no upgrade path from pgqueuer {from} to {to}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).expect("a version")
    }

    fn step(from: &str, to: &str) -> Step {
        Step {
            from: v(from),
            to: v(to),
        }
    }

    #[test]
    fn a_tree_knows_releases_frozen_steps_and_deltas() {
        let sql = crate::SQL_FILES
            .iter()
            .map(|name| (crate::sql_path(name), ""));
        let tree = Tree::from_files(sql.chain([
            (
                "extension/sql/pgqueuer--0.1.0.sql".to_string(),
                "install 0.1.0",
            ),
            ("extension/sql/pgqueuer--0.2.0.sql".into(), "install 0.2.0"),
            ("extension/sql/pgqueuer--0.1.0--0.2.0.sql".into(), "frozen"),
            (
                "extension/sql/pgqueuer-sql-only--0.2.0.sql".into(),
                "sql-only 0.2.0",
            ),
            ("sql/upgrade/0.1.0--0.2.0.sql".into(), "history"),
            (
                "sql/upgrade/0.2.0--0.3.0.sql".into(),
                "ALTER TABLE pgq.jobs ADD COLUMN x int;",
            ),
            ("sql/privileges.sql".into(), "GRANT x;\n"),
        ]));
        assert_eq!(tree.releases(), [v("0.1.0"), v("0.2.0")]);
        assert_eq!(tree.sql_only_releases(), [(v("0.2.0"), "sql-only 0.2.0")]);
        assert_eq!(
            tree.steps(),
            [step("0.1.0", "0.2.0"), step("0.2.0", "0.3.0")]
        );
        assert!(tree.is_frozen(step("0.1.0", "0.2.0")) && !tree.is_frozen(step("0.2.0", "0.3.0")));
        assert_eq!(
            tree.upgrade_script(step("0.1.0", "0.2.0")).as_deref(),
            Ok("frozen")
        );
        let assembled = tree
            .upgrade_script(step("0.2.0", "0.3.0"))
            .expect("assembled");
        assert!(
            assembled.contains("ALTER TABLE pgq.jobs ADD COLUMN x int;"),
            "{assembled}"
        );
        let missing = tree
            .upgrade_script(step("0.3.0", "0.4.0"))
            .expect_err("no script");
        assert!(
            missing.to_string().contains("sql/upgrade/0.3.0--0.4.0.sql"),
            "{missing}"
        );
        assert_eq!(
            tree.path(v("0.1.0"), v("0.3.0")),
            Ok(vec![step("0.1.0", "0.2.0"), step("0.2.0", "0.3.0")])
        );
    }

    #[test]
    fn the_shortest_path_is_taken_and_a_missing_one_named() {
        let steps = [
            step("0.1.0", "0.2.0"),
            step("0.2.0", "0.3.0"),
            step("0.1.0", "0.3.0"),
            step("0.3.0", "0.4.0"),
        ];
        assert_eq!(
            path(&steps, v("0.1.0"), v("0.4.0")),
            Ok(vec![step("0.1.0", "0.3.0"), step("0.3.0", "0.4.0")])
        );
        assert_eq!(path(&steps, v("0.4.0"), v("0.4.0")), Ok(vec![]));
        let error = path(&steps, v("0.0.9"), v("0.4.0")).expect_err("no path");
        assert_eq!(
            error.to_string(),
            "no upgrade path from pgqueuer 0.0.9 to 0.4.0"
        );
    }
}
