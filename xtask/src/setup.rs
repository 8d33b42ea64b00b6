//! Machine setup: what a fresh Debian 12 machine lacks, installed only when missing.

use std::path::PathBuf;
use std::process::Command;

use pgqueuer_cluster::is_root;

use crate::command::{Result, cargo, heading, pgrx_home_dir, run};

/// Debian packages: PostgreSQL 15 and its server headers, libclang for pgrx's bindgen, and
/// sudo, which `cargo pgrx test --runas` calls to run the test server as `postgres`, and tmux,
/// the real terminal in which the CLI tests drive `pgq dashboard`.
const APT_PACKAGES: &[&str] = &[
    "postgresql-15",
    "postgresql-server-dev-15",
    "libclang-dev",
    "clang",
    "pkg-config",
    "sudo",
    "tmux",
    // The other PostgreSQL majors' download (xtask/src/postgres.rs) and the TLS tests'
    // certificates (client/tests/tls.rs).
    "curl",
    "openssl",
    // The browser test of pgq web (cli/tests/web.rs): headless Chromium through WebDriver.
    "chromium",
    "chromium-driver",
];

/// cargo-pgrx must match the `pgrx` crate exactly; 0.19 needs Rust 1.96.
pub const CARGO_PGRX_VERSION: &str = "0.18.1";

/// Debian's pg_config for PostgreSQL 15, as recorded in `pgrx-config/config.toml`.
pub const PG_CONFIG: &str = "/usr/lib/postgresql/15/bin/pg_config";

/// Installs whatever is missing; does nothing expensive when everything is there.
pub fn ensure() -> Result {
    heading("setup: checking the machine");
    apt_packages()?;
    cargo_pgrx()?;
    cargo_nextest()?;
    pgrx_home()?;
    Ok(())
}

fn apt_packages() -> Result {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|package| !dpkg_installed(package))
        .collect();
    if missing.is_empty() {
        eprintln!("    apt packages: all present");
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "missing Debian packages: run `sudo apt-get install -y {}`, then this again",
            missing.join(" ")
        ));
    }
    eprintln!("    apt packages: installing {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|output| output.stdout.ends_with(b" installed"))
}

fn cargo_pgrx() -> Result {
    let wanted = format!("cargo-pgrx {CARGO_PGRX_VERSION}");
    let present = cargo()
        .args(["pgrx", "--version"])
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == wanted);
    if present {
        eprintln!("    {wanted}: present");
        return Ok(());
    }
    eprintln!("    {wanted}: installing (about 5 minutes on 2 cores)");
    run(cargo()
        .args(["install", "--locked", "cargo-pgrx", "--version"])
        .arg(format!("={CARGO_PGRX_VERSION}")))
}

fn cargo_nextest() -> Result {
    let present = cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if present {
        eprintln!("    cargo-nextest: present");
        return Ok(());
    }
    eprintln!("    cargo-nextest: installing");
    run(cargo().args(["install", "--locked", "cargo-nextest"]))
}

/// `pgrx-config/` is committed with the path of Debian's pg_config, so `cargo pgrx init` is
/// never needed (it would rewrite the file and force a rebuild). Check that it still fits.
fn pgrx_home() -> Result {
    let config = pgrx_home_dir().join("config.toml");
    let text = std::fs::read_to_string(&config)
        .map_err(|error| format!("{}: {error}", config.display()))?;
    if !text.contains(PG_CONFIG) {
        return Err(format!(
            "{} does not point at {PG_CONFIG}",
            config.display()
        ));
    }
    if !PathBuf::from(PG_CONFIG).exists() {
        return Err(format!(
            "{PG_CONFIG} is missing: is postgresql-server-dev-15 installed?"
        ));
    }
    eprintln!(
        "    pgrx home: {} -> {PG_CONFIG}",
        pgrx_home_dir().display()
    );
    Ok(())
}
