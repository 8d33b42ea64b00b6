//! A private copy of a PostgreSQL installation, with library and extension directories of its
//! own, for tests that install the extension without touching the system's PostgreSQL.
//!
//! PostgreSQL finds its library and share directories relative to where its binaries are
//! (Debian's build is relocatable), so a copy of `bin/` beside links to everything in `lib/`
//! and `share/` is a working installation whose `pkglibdir` and `extension/` are new
//! directories. The binaries are copied, not linked: PostgreSQL resolves links to find
//! itself. Nothing of pgqueuer's is copied; install it with `cargo xtask install
//! --pg-config <Installation::pg_config>`.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::{Error, io_error, pg_config_value};

/// A private PostgreSQL installation under `/tmp`, deleted on drop.
#[derive(Debug)]
pub struct Installation {
    root: PathBuf,
    pg_config: PathBuf,
}

impl Installation {
    /// Copies the installation that `pg_config` describes (the binaries; links for the rest)
    /// into a new directory under `/tmp`, leaving out every `pgqueuer` file.
    pub fn copy_of(pg_config: &Path) -> Result<Installation, Error> {
        let pg_config = pg_config.display().to_string();
        let bindir = PathBuf::from(pg_config_value(&pg_config, "--bindir")?);
        let pkglibdir = PathBuf::from(pg_config_value(&pg_config, "--pkglibdir")?);
        let sharedir = PathBuf::from(pg_config_value(&pg_config, "--sharedir")?);

        let root = PathBuf::from(format!(
            "/tmp/pgq-install-{}-{}",
            std::process::id(),
            next_number()
        ));
        let installation = Installation {
            pg_config: under(&root, &bindir).join("pg_config"),
            root,
        };
        // The server's user (postgres when this is root) must be able to read it all.
        make_dir(&installation.root)?;
        copy_files(&bindir, &under(&installation.root, &bindir))?;
        link_entries(&pkglibdir, &under(&installation.root, &pkglibdir))?;
        link_entries(&sharedir, &under(&installation.root, &sharedir))?;
        // The extension directory is a directory of its own (not a link), with the files of
        // every other extension linked into it.
        let extension = under(&installation.root, &sharedir).join("extension");
        std::fs::remove_file(&extension).map_err(|source| io_error(&extension, source))?;
        link_entries(&sharedir.join("extension"), &extension)?;
        Ok(installation)
    }

    /// This installation's `pg_config`.
    pub fn pg_config(&self) -> &Path {
        &self.pg_config
    }

    /// One of its settings, for example `value("--pkglibdir")`.
    pub fn value(&self, flag: &str) -> Result<String, Error> {
        pg_config_value(&self.pg_config.display().to_string(), flag)
    }
}

impl Drop for Installation {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn next_number() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `absolute` re-rooted under `root`.
fn under(root: &Path, absolute: &Path) -> PathBuf {
    root.join(absolute.strip_prefix("/").unwrap_or(absolute))
}

fn make_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|source| io_error(dir, source))
}

/// Copies every file of `from` into `to` (made readable by everyone).
fn copy_files(from: &Path, to: &Path) -> Result<(), Error> {
    make_parents(to)?;
    for entry in std::fs::read_dir(from).map_err(|source| io_error(from, source))? {
        let entry = entry.map_err(|source| io_error(from, source))?;
        let target = to.join(entry.file_name());
        std::fs::copy(entry.path(), &target).map_err(|source| io_error(&target, source))?;
    }
    Ok(())
}

/// Links every entry of `from` but pgqueuer's into the new directory `to`.
fn link_entries(from: &Path, to: &Path) -> Result<(), Error> {
    make_parents(to)?;
    for entry in std::fs::read_dir(from).map_err(|source| io_error(from, source))? {
        let entry = entry.map_err(|source| io_error(from, source))?;
        if entry.file_name().to_string_lossy().starts_with("pgqueuer") {
            continue;
        }
        let target = to.join(entry.file_name());
        symlink(entry.path(), &target).map_err(|source| io_error(&target, source))?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents, each readable by everyone.
fn make_parents(dir: &Path) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(path) = cursor {
        if path.exists() {
            break;
        }
        missing.push(path.to_path_buf());
        cursor = path.parent();
    }
    for path in missing.iter().rev() {
        make_dir(path)?;
    }
    Ok(())
}
