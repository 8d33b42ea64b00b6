//! `pgq-bench`: how fast pgqueuer is, beside what hand-written SQL gets from the same server in
//! the same run. It reports numbers and never passes or fails on them. See
//! `docs/benchmarks.md`.

mod backlog;
mod baseline;
mod drain;
mod durability;
mod enqueue;
mod graphile;
mod latency;
mod memory;
mod pgmq;
mod pinned;
mod report;
mod target;
mod throughput;

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use pgqueuer::RunOptions;
use serde_json::{Value, json};

use report::Measure;
use target::Target;

/// Benchmark pgqueuer against the raw-SQL limit of the same server, in one run.
///
/// Without --dsn it starts a throwaway PostgreSQL 15 cluster with durable settings (fsync,
/// synchronous_commit and full_page_writes on) and installs the extension there. With --dsn it
/// uses that database, whose queue must be idle: it creates and deletes only jobs of
/// entrypoints named bench_*.
#[derive(Debug, Parser)]
#[command(name = "pgq-bench", version, about, long_about)]
struct Args {
    /// The database to use instead of a throwaway cluster.
    #[arg(long)]
    dsn: Option<String>,
    /// Scenarios to run (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Jobs in the enqueue and drain scenarios.
    #[arg(long, default_value_t = 100_000)]
    jobs: u64,
    /// Jobs a claim asks for (the runtime's batch_size, the raw claim's LIMIT); the runtime's
    /// default.
    #[arg(long, default_value_t = RunOptions::default().batch_size)]
    batch: i32,
    /// Jobs an enqueue call carries.
    #[arg(long, default_value_t = 1000)]
    enqueue_batch: usize,
    /// The runtime's max_concurrent_tasks; the runtime's default.
    #[arg(long, default_value_t = RunOptions::default().max_concurrent_tasks)]
    concurrency: usize,
    /// The runtime's connections (RunOptions::connections) in the drain and throughput
    /// scenarios, and the raw-SQL workers beside them (the same number); the runtime's
    /// default.
    #[arg(long, default_value_t = RunOptions::default().connections)]
    connections: usize,
    /// Connections that enqueue in the enqueue scenario.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Connections that enqueue, as fast as they can, in the throughput scenario.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// How long the throughput scenario runs, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Jobs the latency scenario sends, one at a time.
    #[arg(long, default_value_t = 1000)]
    latency_jobs: u64,
    /// Jobs per second the latency scenario sends.
    #[arg(long, default_value_t = 100.0)]
    latency_rate: f64,
    /// Queue sizes of the backlog scenario (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 100_000, 1_000_000])]
    backlog: Vec<u64>,
    /// Claims timed at each backlog size and variant.
    #[arg(long, default_value_t = 30)]
    claims: usize,
    /// Each phase of the pinned scenario (before, during and after the pin), in seconds.
    #[arg(long, default_value_t = 120.0)]
    pin_seconds: f64,
    /// Jobs a second the pinned scenario's producer offers (paced).
    #[arg(long, default_value_t = 5000.0)]
    pin_rate: f64,
    /// Jobs in flight at once in the worker memory scenario.
    #[arg(long, default_value_t = 10_000)]
    in_flight: u64,
    /// pgmq's SQL file (`pgmq/sql/pgmq.sql` inside the wheel of PyPI package `pgmq`): runs
    /// the pgmq scenario, pgmq side by side with the raw-SQL baselines of the same run.
    #[arg(long)]
    pgmq_sql: Option<std::path::PathBuf>,
    /// A node_modules directory holding graphile-worker (`npm install --prefix DIR
    /// graphile-worker@0.18.0`, then DIR/node_modules): runs the graphile-worker scenario, side by
    /// side with the raw-SQL baselines of the same run. Needs Node.js.
    #[arg(long)]
    graphile_modules: Option<std::path::PathBuf>,
    /// Tiny sizes, for the test suite: every scenario runs, and the numbers mean nothing.
    #[arg(long)]
    smoke: bool,
    /// Print the results as one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: run as the worker process of the memory scenario.
    #[arg(long, hide = true)]
    worker_rss: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Enqueue,
    Drain,
    Throughput,
    Latency,
    Backlog,
    Memory,
    /// Drains in each durability mode (throwaway cluster only).
    Durability,
    /// The mixed load before, during and after a pinned xmin horizon (3 x --pin-seconds; only
    /// when named in --only).
    Pinned,
    /// A peer: needs --pgmq-sql.
    Pgmq,
    /// A peer: needs --graphile-modules.
    Graphile,
}

/// The sizes every scenario reads.
#[derive(Debug, Clone)]
pub struct Params {
    pub jobs: u64,
    pub batch: i32,
    pub enqueue_batch: usize,
    pub concurrency: usize,
    pub connections: usize,
    pub clients: usize,
    pub producers: usize,
    pub seconds: f64,
    pub latency_jobs: u64,
    pub latency_rate: f64,
    pub backlog: Vec<u64>,
    pub claims: usize,
    pub in_flight: u64,
    pub pin_seconds: f64,
    pub pin_rate: f64,
}

impl Params {
    fn from(args: &Args) -> Params {
        if args.smoke {
            return Params {
                jobs: 500,
                batch: args.batch,
                enqueue_batch: 100,
                concurrency: args.concurrency,
                connections: args.connections,
                clients: 2,
                producers: 1,
                seconds: 1.0,
                latency_jobs: 10,
                latency_rate: 50.0,
                backlog: vec![1000],
                claims: 3,
                in_flight: 200,
                pin_seconds: 1.0,
                pin_rate: 500.0,
            };
        }
        Params {
            jobs: args.jobs,
            batch: args.batch,
            enqueue_batch: args.enqueue_batch,
            concurrency: args.concurrency,
            connections: args.connections,
            clients: args.clients,
            producers: args.producers,
            seconds: args.seconds,
            latency_jobs: args.latency_jobs,
            latency_rate: args.latency_rate,
            backlog: args.backlog.clone(),
            claims: args.claims,
            in_flight: args.in_flight,
            pin_seconds: args.pin_seconds,
            pin_rate: args.pin_rate,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "jobs": self.jobs, "batch": self.batch, "enqueue_batch": self.enqueue_batch,
            "max_concurrent_tasks": self.concurrency, "connections": self.connections,
            "clients": self.clients,
            "producers": self.producers,
            "throughput_seconds": self.seconds, "latency_jobs": self.latency_jobs,
            "latency_rate": self.latency_rate, "backlog": self.backlog,
            "claims": self.claims, "in_flight": self.in_flight, "pin_seconds": self.pin_seconds,
            "pin_rate": self.pin_rate,
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let problems = validate(&args);
    if !problems.is_empty() {
        eprintln!("pgq-bench: {}", problems.join("; "));
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pgq-bench: cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.worker_rss {
            Some(in_flight) => {
                let dsn = args.dsn.as_deref().unwrap_or_default();
                let config = pgqueuer::config(dsn).map_err(|e| e.to_string())?;
                memory::worker(config, in_flight, args.batch).await
            }
            None => benchmark(&args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pgq-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Every problem with the sizes, so that a run never fails halfway for a typo.
fn validate(args: &Args) -> Vec<String> {
    let mut problems = Vec::new();
    if !(1..=10_000).contains(&args.batch) {
        problems.push(format!(
            "--batch must be from 1 to 10000, not {}",
            args.batch
        ));
    }
    for (name, value) in [
        ("--jobs", args.jobs as f64),
        ("--enqueue-batch", args.enqueue_batch as f64),
        ("--concurrency", args.concurrency as f64),
        ("--connections", args.connections as f64),
        ("--clients", args.clients as f64),
        ("--producers", args.producers as f64),
        ("--seconds", args.seconds),
        ("--latency-jobs", args.latency_jobs as f64),
        ("--latency-rate", args.latency_rate),
        ("--claims", args.claims as f64),
        ("--in-flight", args.in_flight as f64),
        ("--pin-seconds", args.pin_seconds),
        ("--pin-rate", args.pin_rate),
    ] {
        if !(value.is_finite() && value > 0.0) {
            problems.push(format!("{name} must be above 0, not {value}"));
        }
    }
    if args.backlog.contains(&0) {
        problems.push("--backlog sizes must be above 0".into());
    }
    problems
}

async fn benchmark(args: &Args) -> Result<(), String> {
    let params = Params::from(args);
    let wanted = |scenario: Scenario| match scenario {
        // A peer runs when its files were given, unless --only leaves it out.
        Scenario::Pinned if args.only.is_empty() => args.smoke,
        Scenario::Pgmq if args.only.is_empty() => args.pgmq_sql.is_some(),
        Scenario::Graphile if args.only.is_empty() => args.graphile_modules.is_some(),
        _ => args.only.is_empty() || args.only.contains(&scenario),
    };
    let target = Target::open(args.dsn.clone()).await?;
    let admin = target.connect().await?;
    let server = target.describe(&admin).await?;
    if !args.json {
        eprintln!(
            "pgq-bench on {} ({} cores), {}",
            machine()["cpu"].as_str().unwrap_or("?"),
            machine()["cores"],
            server["server"].as_str().unwrap_or("?")
        );
    }

    let mut measures: Vec<Measure> = Vec::new();
    if wanted(Scenario::Enqueue) {
        measures.extend(enqueue::run(&target, &params).await?);
    }
    if wanted(Scenario::Drain) {
        measures.extend(drain::run(&target, &params).await?);
    }
    if wanted(Scenario::Throughput) {
        measures.extend(throughput::run(&target, &params).await?);
    }
    if wanted(Scenario::Latency) {
        measures.extend(latency::run(&target, &params).await?);
    }
    if wanted(Scenario::Backlog) {
        measures.extend(backlog::run(&target, &params).await?);
    }
    if wanted(Scenario::Memory) {
        measures.extend(memory::run(&target, &params).await?);
    }
    if wanted(Scenario::Durability) {
        measures.extend(durability::run(&target, &params).await?);
    }
    if wanted(Scenario::Pinned) {
        measures.extend(pinned::run(&target, &params).await?);
    }
    if wanted(Scenario::Pgmq) {
        let path = args.pgmq_sql.as_deref().ok_or(
            "the pgmq scenario needs --pgmq-sql FILE: pgmq's SQL, pgmq/sql/pgmq.sql in the wheel \
             of `pip download pgmq`",
        )?;
        measures.extend(pgmq::run(&target, &params, path).await?);
    }
    if wanted(Scenario::Graphile) {
        let modules = args.graphile_modules.as_deref().ok_or(
            "the graphile scenario needs --graphile-modules DIR: a node_modules holding \
             graphile-worker (npm install --prefix DIR graphile-worker@0.18.0)",
        )?;
        measures.extend(graphile::run(&target, &params, modules).await?);
    }

    if args.json {
        let document = json!({
            "machine": machine(),
            "postgresql": server,
            "parameters": params.to_json(),
            "smoke": args.smoke,
            "results": measures.iter().map(Measure::to_json).collect::<Vec<_>>(),
        });
        println!("{document:#}");
    } else {
        report::print_table(&measures);
    }
    Ok(())
}

/// The CPU, cores, memory and kernel of this machine, from /proc.
fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let memory_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": (memory_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
    })
}
