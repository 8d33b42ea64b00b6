//! `pgq queue`: enqueue one job.

use std::time::Duration;

use clap::{Args, ValueEnum};
use pgqueuer::{NewJob, OnConflict, Queries};
use serde_json::{Map, Value};
use tokio_postgres::Client;

use crate::failure::Failure;

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The entrypoint (kind of job) to enqueue.
    entrypoint: String,
    /// The payload, as text (stored as bytes).
    payload: Option<String>,
    /// Bigger runs first.
    #[arg(long, default_value_t = 0)]
    priority: i32,
    /// Run no sooner than this from now: 300ms, 5s, 2m, 1h, or seconds.
    #[arg(long, value_parser = parse_delay)]
    delay: Option<Duration>,
    /// At most one queued or picked job holds a dedupe key.
    #[arg(long)]
    dedupe_key: Option<String>,
    /// What to do when the dedupe key is taken.
    #[arg(long, value_enum, default_value = "raise")]
    on_conflict: Conflict,
    /// A header, as key=value; repeat for more.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Conflict {
    /// Fail (exit 1) when the dedupe key is taken.
    Raise,
    /// Enqueue nothing, print nothing, and exit 0 when the dedupe key is taken.
    Skip,
}

pub async fn queue(client: Client, args: QueueArgs) -> Result<(), Failure> {
    let mut job = NewJob::new(args.entrypoint).priority(args.priority);
    if let Some(payload) = args.payload {
        job = job.payload(payload);
    }
    if let Some(delay) = args.delay {
        job = job.delay(delay);
    }
    if let Some(key) = args.dedupe_key.clone() {
        job = job.dedupe_key(key);
    }
    if !args.headers.is_empty() {
        let headers: Map<String, Value> = args
            .headers
            .into_iter()
            .map(|(key, value)| (key, Value::String(value)))
            .collect();
        job = job.headers(Value::Object(headers));
    }
    let on_conflict = match args.on_conflict {
        Conflict::Raise => OnConflict::Raise,
        Conflict::Skip => OnConflict::Skip,
    };
    let ids = Queries::new(client)
        .enqueue_many(&[job], on_conflict)
        .await?;
    match ids.first().copied().flatten() {
        Some(id) => println!("{id}"),
        None => eprintln!(
            "pgq: skipped: dedupe key {:?} is held by a queued or picked job",
            args.dedupe_key.unwrap_or_default()
        ),
    }
    Ok(())
}

/// `300ms`, `5s`, `2m`, `1h`, or a number of seconds.
fn parse_delay(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a delay: use 300ms, 5s, 2m, 1h or seconds"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is not a delay"))
}

/// `key=value`.
fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not a header: use key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_read_like_people_write_them() {
        assert_eq!(parse_delay("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_delay("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_delay("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_delay("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_delay("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_delay("soon").is_err());
        assert!(parse_delay("5d").is_err());
    }

    #[test]
    fn headers_are_key_equals_value() {
        assert_eq!(parse_header("lang=nb"), Ok(("lang".into(), "nb".into())));
        assert_eq!(parse_header("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("=x").is_err());
    }
}
