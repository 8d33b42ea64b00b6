//! `pgq-cluster`: start a throwaway PostgreSQL with pgqueuer preloaded and print how to
//! reach it; stop and delete it when standard input closes (Enter, Ctrl-D or Ctrl-C).
//!
//! ```text
//! cargo run -p pgqueuer-cluster -- [--durable] [--no-extension]
//! ```

use std::io::BufRead;
use std::process::ExitCode;

use pgqueuer_cluster::{Cluster, Options};

const USAGE: &str = "usage: pgq-cluster [--durable] [--no-extension]
  --durable       keep fsync and synchronous_commit on (for benchmarks)
  --no-extension  neither preload nor create the pgqueuer extension";

fn main() -> ExitCode {
    let mut options = Options::default();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--durable" => options.durable = true,
            "--no-extension" => options.preload = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("pgq-cluster: unknown argument {other}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let preload = options.preload;
    let cluster = match Cluster::start_with(options) {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("pgq-cluster: {error}");
            return ExitCode::FAILURE;
        }
    };
    let database = "pgq";
    let created = cluster
        .psql("postgres", &format!("CREATE DATABASE {database}"))
        .and_then(|_| {
            if preload {
                cluster
                    .psql(database, "CREATE EXTENSION pgqueuer")
                    .map(drop)
            } else {
                Ok(())
            }
        });
    if let Err(error) = created {
        eprintln!("pgq-cluster: {error}");
        return ExitCode::FAILURE;
    }

    let exports: Vec<String> = cluster
        .env(database)
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    println!("export {}", exports.join(" "));
    println!("# url: {}", cluster.url(database));
    println!("# server log: {}", cluster.log_path().display());
    println!("# press Enter (or Ctrl-D) to stop and delete this cluster");

    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    match cluster.stop() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pgq-cluster: {error}");
            ExitCode::FAILURE
        }
    }
}
