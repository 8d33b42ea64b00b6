//! `cargo xtask`: set up a machine, install the extension, run the demo or every test.
//!
//! ```text
//! cargo xtask demo      setup + install, then a throwaway cluster and the quick start
//! cargo xtask test      setup, fmt, clippy, the #[pg_test]s, install, doc tests, end-to-end tests
//! cargo xtask bench     setup + a release install, then pgq-bench (arguments are passed on)
//! cargo xtask setup     only the machine setup (idempotent; a second run does nothing expensive)
//! cargo xtask install   setup, then install the extension into the system PostgreSQL 15
//! ```
//!
//! Setup targets a Debian 12 machine: apt packages for PostgreSQL 15 and pgrx's bindgen, and
//! cargo-pgrx pinned to the pgrx version of `extension/Cargo.toml`. The pgrx home is
//! `pgrx-config/` in the repository, which points at Debian's `pg_config`.

mod setup;
mod steps;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <demo|test|bench|setup|install>
  demo     set up, install the extension, start a throwaway cluster and run the quick start
  test     set up and run every check: fmt, clippy, #[pg_test]s, doc tests, end-to-end tests
  bench    set up, install a release build, run pgq-bench (cargo xtask bench -- --help)
  setup    install what a fresh Debian 12 machine lacks (apt packages, cargo-pgrx)
  install  set up, then build and install the extension into the system PostgreSQL 15";

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
        "install" => setup::ensure().and_then(|()| steps::install()),
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
