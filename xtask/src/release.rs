//! The release scripts xtask writes (docs/design/0016-assembled-upgrades.md): the scripts a
//! package needs beside what cargo-pgrx builds, and `cargo xtask freeze`.
//!
//! cargo-pgrx packages the library, the control file, the current version's install script
//! (generated from `sql/`) and the frozen upgrade scripts of `extension/sql/`. To that a
//! package adds the frozen install scripts of older releases (so `CREATE EXTENSION pgqueuer
//! VERSION '0.1.0'` works) and the upgrade script of every step that is not frozen yet,
//! assembled from its delta in `sql/upgrade/`. Freezing writes that assembled text, and the
//! install scripts, into `extension/sql/` once.

use std::path::Path;

use pgqueuer_release::{Script, Tree, Version};

use crate::command::{Result, cargo, run, workspace_root};

/// The current version: the workspace's, which cargo-pgrx writes into `default_version`.
pub fn current_version() -> Version {
    Version::parse(env!("CARGO_PKG_VERSION")).expect("the workspace's version is MAJOR.MINOR.PATCH")
}

/// The checkout's release scripts and SQL sources.
pub fn tree() -> Result<Tree> {
    Tree::read(&workspace_root()).map_err(|error| error.to_string())
}

/// Writes into `extension_dir` (a package's extension directory) the frozen install scripts of
/// every release but the current version (whose script is the generated one, kept equal to
/// its frozen copy by the drift guard), and the assembled upgrade script of every step that
/// is not frozen.
pub fn add_to_package(extension_dir: &Path) -> Result {
    let tree = tree()?;
    let current = current_version();
    let write = |name: String, text: &str| {
        let dest = extension_dir.join(&name);
        std::fs::write(&dest, text).map_err(|error| format!("{}: {error}", dest.display()))
    };
    for version in tree.releases() {
        if version != current {
            let script = Script::Install(version);
            write(
                script.file_name(),
                tree.file(&script.path()).map_err(|e| e.to_string())?,
            )?;
        }
    }
    for step in tree.steps() {
        if !tree.is_frozen(step) {
            let text = tree
                .upgrade_script(step)
                .map_err(|error| error.to_string())?;
            eprintln!(
                "    assembled {} from {}",
                step.script_name(),
                step.delta_path()
            );
            write(step.script_name(), &text)?;
        }
    }
    Ok(())
}

/// `cargo xtask freeze`: makes the current version a release. Writes its generated install
/// script (`extension/sql/pgqueuer--V.sql`), its SQL-only install script and the assembled
/// upgrade script of each step that leads to it; none of them is ever written again. Refuses
/// when the version is released already, or cannot be reached from the previous release.
pub fn freeze() -> Result {
    let tree = tree()?;
    let version = current_version();
    let root = workspace_root();
    if tree.is_released(version) {
        return Err(format!(
            "{} exists: {version} is already released, and a release never changes; bump the \
             workspace version and write the delta of the next step (docs/development.md)",
            Script::Install(version).path()
        ));
    }
    if let Some(&latest) = tree.releases().last() {
        tree.path(latest, version).map_err(|error| {
            format!(
                "{error}: write sql/upgrade/{latest}--{version}.sql first (docs/development.md, \
                 \"Cutting a release\")"
            )
        })?;
    }
    let mut steps = Vec::new();
    for step in tree
        .steps()
        .into_iter()
        .filter(|step| !tree.is_frozen(*step))
    {
        if step.to != version {
            return Err(format!(
                "{} leads to {}, not to {version}, the version being frozen",
                step.delta_path(),
                step.to
            ));
        }
        let text = tree
            .upgrade_script(step)
            .map_err(|error| error.to_string())?;
        steps.push((root.join(step.script_path()), text.into_owned()));
    }

    let dest = root.join(Script::Install(version).path());
    run(cargo()
        .args(["pgrx", "schema", "--package", "pgqueuer", "pg15", "--out"])
        .arg(&dest)
        .stdout(std::io::stderr()))?;
    eprintln!("    froze release {version}: {}", dest.display());
    // The SQL-only install script of the release too, which later upgrade tests start from.
    let sql_only = root.join(Script::SqlOnlyInstall(version).path());
    let output = cargo()
        .args(["run", "--quiet", "--package", "pgq", "--bin", "pgq", "--"])
        .args(["sql", "install"])
        .output()
        .map_err(|error| format!("pgq sql install: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "pgq sql install failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::write(&sql_only, &output.stdout)
        .map_err(|error| format!("{}: {error}", sql_only.display()))?;
    eprintln!("    froze its SQL-only install: {}", sql_only.display());
    for (path, text) in steps {
        std::fs::write(&path, text).map_err(|error| format!("{}: {error}", path.display()))?;
        eprintln!("    froze its upgrade script: {}", path.display());
    }
    Ok(())
}
