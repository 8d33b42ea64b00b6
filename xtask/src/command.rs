//! Running commands: the helpers every other module of xtask uses, and which use none of them
//! (so the modules import in one direction: main -> steps -> install -> release, setup,
//! postgres -> command).

use std::path::{Path, PathBuf};
use std::process::Command;

/// An xtask step's outcome; the error is the message to print.
pub type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `cargo`, run in the workspace root, with the repository's pgrx home and with
/// `$CARGO_HOME/bin` on `PATH` so that freshly installed subcommands are found.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(workspace_root())
        .env("PGRX_HOME", pgrx_home_dir());
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin"));
    if let Some(cargo_bin) = cargo_bin {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let paths = std::iter::once(cargo_bin).chain(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(paths) {
            command.env("PATH", joined);
        }
    }
    command
}

/// Prints a step heading.
/// Progress goes to stderr, so that a command's own output (pgq-bench --json) stays clean.
pub fn heading(text: &str) {
    eprintln!("\n==> {text}");
}

/// Runs a command with inherited output; a failure names the command.
pub fn run(command: &mut Command) -> Result {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|error| format!("could not run {shown}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// The pgrx home of this repository (`pgrx-config/`), which points cargo-pgrx at Debian's
/// `pg_config`.
pub fn pgrx_home_dir() -> PathBuf {
    workspace_root().join("pgrx-config")
}
