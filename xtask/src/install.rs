//! Installing the extension into a PostgreSQL installation without ever disturbing a server
//! that has the old library loaded.
//!
//! A running PostgreSQL maps `pgqueuer.so` into every backend. A file rewritten in place (same
//! inode, as `cp` over an existing file does) changes those pages under the server, which dies
//! with SIGBUS. So no file is written where PostgreSQL reads it: `cargo pgrx package` builds
//! every file into a staging directory, the release scripts cargo-pgrx does not copy are added
//! (`release.rs`: older releases' install scripts, assembled upgrade scripts), and each file is then
//! copied *beside* its destination and renamed over it. A server that had the old library
//! keeps its mapping of the old inode; a process that opens the file afterwards gets the new
//! one, whole. Design note 7 has the details.
//!
//! Every install path of the project goes through [`install`]: `cargo xtask install`, the
//! release build of `cargo xtask bench`, and the test build that `cargo pgrx test` installs
//! (its framework runs `$CARGO_PGRX pgrx install --test ...`, which [`pgrx_hook`] takes).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::command::{Result, cargo, run, workspace_root};
use crate::setup::PG_CONFIG;

/// What to build and where to put it.
#[derive(Debug, Clone)]
pub struct Build {
    /// The `pg_config` of the installation to install into.
    pub pg_config: PathBuf,
    /// Optimised (`--release`) rather than a debug build.
    pub release: bool,
    /// The build `cargo pgrx test` runs its tests with (feature `pg_test`).
    pub test: bool,
    /// Further cargo feature arguments (`--features ...`, `--no-default-features`).
    pub feature_args: Vec<String>,
}

impl Default for Build {
    fn default() -> Self {
        Build {
            pg_config: PathBuf::from(PG_CONFIG),
            release: false,
            test: false,
            feature_args: Vec::new(),
        }
    }
}

/// Builds the extension and installs it, each file written beside its destination and
/// renamed over it. Progress goes to stderr.
pub fn install(build: &Build) -> Result {
    let stage = workspace_root()
        .join("target")
        .join("xtask-install")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&stage);
    let result = package(build, &stage).and_then(|()| {
        crate::release::add_to_package(&staged_extension_dir(&stage, &build.pg_config)?)?;
        place_tree(&stage)?;
        remove_stale_scripts(&stage, &build.pg_config)
    });
    let _ = std::fs::remove_dir_all(&stage);
    result
}

/// `cargo pgrx package` into `stage`: the library, the control file, the generated install
/// script of the current version and the upgrade scripts of `extension/sql/`, each under the
/// absolute path it is installed to.
fn package(build: &Build, stage: &Path) -> Result {
    let mut command = cargo();
    command
        .args(["pgrx", "package", "--package", "pgqueuer", "--pg-config"])
        .arg(&build.pg_config)
        .arg("--out-dir")
        .arg(stage)
        .args(&build.feature_args)
        // Everything cargo-pgrx prints is progress: keep stdout clean (pgq-bench --json).
        .stdout(std::io::stderr());
    if !build.release {
        command.arg("--debug");
    }
    if build.test {
        command.arg("--test");
    }
    run(&mut command)
}

/// Where `cargo pgrx package` put the extension directory of `pg_config`'s installation
/// inside `stage`.
fn staged_extension_dir(stage: &Path, pg_config: &Path) -> Result<PathBuf> {
    let sharedir = pg_config_value(pg_config, "--sharedir")?;
    Ok(staged(stage, &Path::new(&sharedir).join("extension")))
}

/// Removes the extension's scripts that this install did not put in place (an upgrade script
/// since deleted or renamed in the repository), so that PostgreSQL's update paths are exactly
/// the repository's. Only `CREATE/ALTER EXTENSION` read these files, never a running query.
fn remove_stale_scripts(stage: &Path, pg_config: &Path) -> Result {
    let extension_dir = Path::new(&pg_config_value(pg_config, "--sharedir")?).join("extension");
    let staged_dir = staged_extension_dir(stage, pg_config)?;
    let entries = std::fs::read_dir(&extension_dir)
        .map_err(|error| format!("{}: {error}", extension_dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("pgqueuer--")
            && name.ends_with(".sql")
            && !staged_dir.join(&name).exists()
        {
            eprintln!(
                "    remove {} (not in this checkout)",
                entry.path().display()
            );
            remove(&entry.path())?;
        }
    }
    Ok(())
}

/// Deletes a file, through `sudo` without write access to its directory.
fn remove(path: &Path) -> Result {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            run(Command::new("sudo").args(["rm", "-f"]).arg(path))
        }
        Err(error) => Err(format!("removing {}: {error}", path.display())),
    }
}

/// Where `absolute` lies inside `stage`.
fn staged(stage: &Path, absolute: &Path) -> PathBuf {
    stage.join(absolute.strip_prefix("/").unwrap_or(absolute))
}

/// One value of `pg_config`.
fn pg_config_value(pg_config: &Path, key: &str) -> Result<String> {
    let output = Command::new(pg_config)
        .arg(key)
        .output()
        .map_err(|error| format!("could not run {}: {error}", pg_config.display()))?;
    if !output.status.success() {
        return Err(format!("{} {key} failed", pg_config.display()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Places every file of the staged tree at its absolute path.
fn place_tree(stage: &Path) -> Result {
    let mut files = Vec::new();
    collect_files(stage, &mut files)?;
    // Scripts and control file first, the library last: a session that sees the new library
    // also finds the scripts it was built with.
    files.sort_by_key(|file| file.extension().is_some_and(|ext| ext == "so"));
    for file in files {
        let relative = file
            .strip_prefix(stage)
            .map_err(|error| format!("{}: {error}", file.display()))?;
        place(&file, &Path::new("/").join(relative))?;
    }
    Ok(())
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result {
    let entries = std::fs::read_dir(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// Writes `src` to a temporary name in `dest`'s directory and renames it over `dest`
/// (rename(2) replaces the directory entry atomically; the old inode lives on for whoever has
/// it open or mapped). Without write access to the directory, the same two steps run through
/// `sudo`.
pub fn place(src: &Path, dest: &Path) -> Result {
    let name = dest
        .file_name()
        .ok_or_else(|| format!("{} has no file name", dest.display()))?
        .to_string_lossy();
    let temporary = dest.with_file_name(format!(".{name}.new-{}", std::process::id()));
    eprintln!("    install {}", dest.display());
    match copy_then_rename(src, &temporary, dest) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            let _ = std::fs::remove_file(&temporary);
            run(Command::new("sudo").arg("cp").arg(src).arg(&temporary))?;
            run(Command::new("sudo")
                .args(["mv", "-f"])
                .arg(&temporary)
                .arg(dest))
        }
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(format!("installing {}: {error}", dest.display()))
        }
    }
}

fn copy_then_rename(src: &Path, temporary: &Path, dest: &Path) -> std::io::Result<()> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // fs::copy creates the temporary file anew and copies the permissions of `src`.
    std::fs::copy(src, temporary)?;
    std::fs::File::open(temporary)?.sync_all()?;
    std::fs::rename(temporary, dest)
}

/// `xtask pgrx install ARGS`: the command line the pgrx test framework runs (through
/// `CARGO_PGRX`) to install the `pg_test` build before the `#[pg_test]`s. cargo-pgrx itself
/// would copy with `sudo cp`, in place; this installs the same build through [`install`].
pub fn pgrx_hook(args: &[String]) -> Result {
    if args.first().map(String::as_str) != Some("install") {
        return Err(format!(
            "xtask pgrx: only `install` is handled here, not {args:?}"
        ));
    }
    let mut build = Build::default();
    let mut args = args[1..].iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--test" => build.test = true,
            "--release" => build.release = true,
            // The framework asks for sudo when its server runs as another user; placing
            // falls back to sudo by itself when it must. The schema is always generated.
            "--sudo" | "--no-schema" => {}
            "--pg-config" => {
                let path = args.next().ok_or("--pg-config needs a path")?;
                build.pg_config = PathBuf::from(path);
            }
            "--features" => {
                let features = args.next().ok_or("--features needs a value")?;
                build
                    .feature_args
                    .extend(["--features".into(), features.clone()]);
            }
            "--no-default-features" | "--all-features" => build.feature_args.push(arg.clone()),
            // The framework runs in the extension's directory; --package is implied.
            "--manifest-path" => {
                args.next();
            }
            other => return Err(format!("xtask pgrx install: unexpected argument {other}")),
        }
    }
    install(&build)
}
