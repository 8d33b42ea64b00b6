//! `cargo xtask`: set up a machine, install the extension, run the demo or every test.
//!
//! ```text
//! cargo xtask demo      setup + install, then a throwaway cluster and the quick start
//! cargo xtask test      setup, fmt, clippy, the #[pg_test]s, install, doc tests, end-to-end tests
//! cargo xtask bench     setup + a release install, then pgq-bench (arguments are passed on)
//! cargo xtask setup     only the machine setup (idempotent; a second run does nothing expensive)
//! cargo xtask install   setup, then install the extension into the system PostgreSQL 15
//!                       [--release] [--pg-config PATH]
//! cargo xtask freeze    make the current version a release: freeze its install scripts and
//!                       the upgrade script assembled from its delta (sql/upgrade/A--B.sql)
//! cargo xtask postgres MAJOR  download PostgreSQL MAJOR (13, 14, 16, 17, 18) once and print
//!                       its bindir (PGQ_PG_BINDIR=... for the tests and pgq-cluster)
//! ```
//!
//! Installing never writes a file that PostgreSQL has open: each file is written beside its
//! destination and renamed over it (`install.rs`), so a running server keeps working.
//!
//! Setup targets a Debian 12 machine: apt packages for PostgreSQL 15 and pgrx's bindgen, and
//! cargo-pgrx pinned to the pgrx version of `extension/Cargo.toml`. The pgrx home is
//! `pgrx-config/` in the repository, which points at Debian's `pg_config`.

mod command;
mod install;
mod postgres;
mod release;
mod setup;
mod steps;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <demo|test|bench|setup|install|freeze|postgres>
  demo     set up, install the extension, start a throwaway cluster and run the quick start
  test     set up and run every check: fmt, clippy, #[pg_test]s, doc tests, end-to-end tests
  bench    set up, install a release build, run pgq-bench (cargo xtask bench -- --help)
  setup    install what a fresh Debian 12 machine lacks (apt packages, cargo-pgrx)
  install  set up, then build and install the extension into the system PostgreSQL 15
           [--release] [--pg-config PATH: another PostgreSQL installation]
  freeze   make the current version a release: write its install scripts and the upgrade
           script assembled from its delta into extension/sql/
  postgres MAJOR  download PostgreSQL MAJOR (13, 14, 16, 17, 18) once; print its bindir";

/// `install [--release] [--pg-config PATH]`.
fn install_args(args: &[String]) -> Result<(bool, Option<String>), String> {
    let mut release = false;
    let mut pg_config = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--release" => release = true,
            "--pg-config" => {
                pg_config = Some(args.next().ok_or("--pg-config needs a path")?.clone())
            }
            other => return Err(format!("install: unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok((release, pg_config))
}

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    let result = match command.as_str() {
        "demo" => steps::demo(),
        "test" => steps::test(),
        "bench" => {
            let args: Vec<String> = std::env::args().skip(2).skip_while(|a| a == "--").collect();
            steps::bench(&args)
        }
        "setup" => setup::ensure(),
        "install" => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            install_args(&args).and_then(|(release, pg_config)| {
                setup::ensure()?;
                steps::install(release, pg_config.as_deref())
            })
        }
        "freeze" => setup::ensure().and_then(|()| release::freeze()),
        "postgres" => {
            let wanted = std::env::args().nth(2).unwrap_or_default();
            match postgres::MAJORS
                .iter()
                .find(|major| major.major.to_string() == wanted)
            {
                Some(major) => major
                    .bindir()
                    .map(|bindir| println!("{}", bindir.display())),
                None => Err(format!(
                    "postgres: name a major: 13, 14, 16, 17 or 18\n{USAGE}"
                )),
            }
        }
        // Not for people: the pgrx test framework runs `$CARGO_PGRX pgrx install ...`.
        "pgrx" => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            install::pgrx_hook(&args)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("xtask: unknown command {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}
