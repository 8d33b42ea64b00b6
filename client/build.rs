//! Builds the SQL-only scripts into the crate (`src/sql_only.rs`), from the same `sql/` files
//! and release scripts as the extension, with `pgqueuer-release`: the install script of this
//! version, each upgrade step made fit for a SQL-only install, the stand-ins for the library
//! and the privileges block. The cron twin accepts the time zone names the extension's cron
//! math knows (chrono-tz, the same crate and version the extension uses).

use std::fmt::Write as _;
use std::path::PathBuf;

use pgqueuer_release::manifest::{Kind, Object, manifest};
use pgqueuer_release::{Tree, Version, sql_only};

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = crate_dir
        .parent()
        .expect("the client sits in the workspace");
    for dir in Tree::DIRS {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let tree = Tree::read(root).unwrap_or_else(|error| panic!("{error}"));
    let version = Version::parse(env!("CARGO_PKG_VERSION")).expect("the workspace's version");
    let mut zones: Vec<&str> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|zone| zone.name())
        .collect();
    zones.sort_unstable();

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let write = |name: &str, text: &str| -> String {
        let path = out.join(name);
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        path.display().to_string()
    };
    let built = |result: Result<String, pgqueuer_release::Error>| {
        result.unwrap_or_else(|error| panic!("building the SQL-only scripts: {error}"))
    };

    let mut code = String::new();
    let install = write(
        "install.sql",
        &built(sql_only::install_script(&tree, version, &zones)),
    );
    writeln!(code, "/// The SQL-only install script of this version.").expect("write");
    writeln!(code, "const INSTALL: &str = include_str!({install:?});").expect("write");
    let twins = write("twins.sql", &built(sql_only::twins(&tree, &zones)));
    writeln!(
        code,
        "/// The stand-ins for the library, as CREATE FUNCTION statements."
    )
    .expect("write");
    writeln!(code, "const TWINS: &str = include_str!({twins:?});").expect("write");
    let privileges = write("privileges.sql", &built(sql_only::privileges_script(&tree)));
    writeln!(code, "/// This version's privileges as a SQL-only block.").expect("write");
    writeln!(
        code,
        "const PRIVILEGES: &str = include_str!({privileges:?});"
    )
    .expect("write");
    writeln!(
        code,
        "/// Every upgrade step made fit for a SQL-only install (frozen ones from their frozen\n\
         /// text, the others assembled from their delta).\n\
         const STEPS: &[(Step, &str)] = &["
    )
    .expect("write");
    for step in tree.steps() {
        let extension = built(tree.upgrade_script(step).map(String::from));
        let made = built(sql_only::upgrade_step(&extension, step));
        let path = write(&format!("{}--{}.sql", step.from, step.to), &made);
        let version = |v: Version| format!("Version::new({}, {}, {})", v.major, v.minor, v.patch);
        writeln!(
            code,
            "    (Step {{ from: {}, to: {} }}, include_str!({path:?})),",
            version(step.from),
            version(step.to)
        )
        .expect("write");
    }
    code.push_str("];\n");
    write("sql_only.rs", &code);

    // What each version's schema holds, for `pgq verify` (src/install.rs).
    let mut code = String::from(
        "/// What each version's schema holds, by install.\n\
         const MANIFESTS: &[Manifest] = &[\n",
    );
    let mut versions = tree.releases();
    if !versions.contains(&version) {
        versions.push(version);
    }
    for release in versions {
        for (kind, sql_only) in [(Kind::Extension, false), (Kind::SqlOnly, true)] {
            let found = manifest(&tree, release, kind, version)
                .unwrap_or_else(|error| panic!("building the manifests: {error}"));
            let Some(objects) = found else {
                continue;
            };
            write!(code, "    ({:?}, {sql_only}, &[", release.to_string()).expect("write");
            for object in objects {
                let (kind, name, arguments) = match &object {
                    Object::Function(name, n) => ("function", name, *n),
                    Object::Table(name) => ("table", name, 0),
                    Object::View(name) => ("view", name, 0),
                    Object::Type(name) => ("type", name, 0),
                };
                write!(code, "({kind:?}, {name:?}, {arguments}), ").expect("write");
            }
            code.push_str("]),\n");
        }
    }
    code.push_str("];\n");
    write("manifests.rs", &code);
}
