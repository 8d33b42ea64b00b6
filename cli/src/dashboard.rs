//! `pgq dashboard`: the queue at a glance. Live, it is a terminal UI redrawn every
//! `--interval` seconds (`q` quits); with `--once` or `--json` it prints one table and exits.
//!
//! Each refresh is one call of the read model (`pgq.overview`, one JSON document), run by a
//! task of its own so that a slow or lost database never stops the keyboard: the screen says
//! what went wrong and the task reconnects.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures_util::StreamExt;
use pgqueuer::Queries;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Sparkline, Table};
use ratatui::{DefaultTerminal, Frame};
use serde_json::Value;
use tokio::sync::watch;
use tokio_postgres::Client;

use crate::failure::Failure;
use crate::table::{Format, TableFormat, print};

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Print one table and exit, for scripts and terminals that are not interactive.
    #[arg(long)]
    once: bool,
    /// The table style of --once.
    #[arg(long, value_enum, default_value = "plain")]
    table_format: TableFormat,
    /// Seconds between refreshes of the live view.
    #[arg(long, default_value_t = 1.0, value_parser = positive_seconds)]
    interval: f64,
    /// The window, in seconds, for jobs per second, the chart and recent exceptions (an hour
    /// by default; the rates come from the per-minute statistics).
    #[arg(long, default_value_t = 3600.0, value_parser = positive_seconds)]
    window: f64,
    /// Print one JSON array (the --once table) and exit.
    #[command(flatten)]
    format: Format,
}

/// A number of seconds: finite and above zero.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(seconds),
        _ => Err(format!(
            "{text:?} is not a number of seconds above 0 (for example 0.5 or 2)"
        )),
    }
}

pub async fn dashboard(
    client: Client,
    dsn: Option<String>,
    args: DashboardArgs,
) -> Result<(), Failure> {
    if args.once || args.format.json {
        let queries = Queries::new(client);
        let document = queries.overview(span(args.window)).await?;
        let table = entrypoint_table(&document)
            .ok_or_else(|| Failure::new("unexpected output from the database"))?;
        return print(&table, &args.format, args.table_format);
    }
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(Failure {
            message: "the live dashboard needs an interactive terminal: use pgq dashboard --once \
                      (or --json) to print one table"
                .into(),
            code: crate::failure::exit::CONNECTION,
        });
    }
    let (sender, screen) = watch::channel(Screen::Waiting);
    let refresher = tokio::spawn(refresh(client, dsn, args.interval, args.window, sender));
    let mut terminal = ratatui::try_init()
        .map_err(|e| Failure::new(format!("cannot set up the terminal: {e}")))?;
    let result = interact(&mut terminal, screen, args.interval, args.window).await;
    ratatui::restore();
    refresher.abort();
    result
}

/// What the screen shows: nothing yet, the latest snapshot, or why the latest refresh failed
/// (with the snapshot before it, if any).
#[derive(Debug, Clone)]
enum Screen {
    Waiting,
    Shown(Snapshot),
    Failed(String, Option<Snapshot>),
}

/// Reads the read model every `interval` seconds and publishes it; reconnects when the
/// connection is gone.
async fn refresh(
    client: Client,
    dsn: Option<String>,
    interval: f64,
    window: f64,
    sender: watch::Sender<Screen>,
) {
    let mut queries = Queries::new(client);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if queries.client().is_closed() {
            let connected = match dsn.as_deref() {
                Some(dsn) => pgqueuer::connect(dsn).await,
                None => pgqueuer::connect_from_env().await,
            };
            match connected {
                Ok(fresh) => queries = Queries::new(fresh),
                Err(error) => {
                    publish_failure(&sender, format!("reconnecting: {error}"));
                    continue;
                }
            }
        }
        match queries.overview(span(window)).await {
            Ok(text) => match Snapshot::parse(&text) {
                Some(snapshot) => {
                    sender.send_replace(Screen::Shown(snapshot));
                }
                None => publish_failure(&sender, "unexpected output from the database".into()),
            },
            Err(error) => publish_failure(&sender, Failure::from(error).message),
        }
    }
}

fn publish_failure(sender: &watch::Sender<Screen>, message: String) {
    let message = crate::failure::one_line(&message);
    sender.send_modify(|screen| {
        let last = match screen {
            Screen::Shown(snapshot) | Screen::Failed(_, Some(snapshot)) => Some(snapshot.clone()),
            _ => None,
        };
        *screen = Screen::Failed(message, last);
    });
}

/// Draws each new screen and on resize; returns on `q`, Esc, Ctrl-C, SIGINT or SIGTERM.
async fn interact(
    terminal: &mut DefaultTerminal,
    mut screen: watch::Receiver<Screen>,
    interval: f64,
    window: f64,
) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::new(format!("terminal: {e}"));
    let mut shutdown = std::pin::pin!(pgqueuer::shutdown_signal().map_err(io)?);
    let mut events = EventStream::new();
    let footer = format!("q quit · refresh every {interval} s · window {window} s");
    loop {
        let current = screen.borrow_and_update().clone();
        terminal
            .draw(|frame| draw(frame, &current, &footer))
            .map_err(io)?;
        tokio::select! {
            changed = screen.changed() => {
                if changed.is_err() {
                    return Err(Failure::new("the refresh task stopped"));
                }
            }
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if quits(&key) => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(io(error)),
                None => return Ok(()),
            },
            () = &mut shutdown => return Ok(()),
        }
    }
}

fn quits(key: &KeyEvent) -> bool {
    key.kind == KeyEventKind::Press
        && match key.code {
            KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => true,
            KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

/// One refresh's data.
#[derive(Debug, Clone, Default, PartialEq)]
struct Snapshot {
    now: String,
    database: String,
    entrypoints: Vec<EntrypointRow>,
    /// Jobs ended in each minute of the window, oldest first.
    per_minute: Vec<u64>,
    exceptions: Vec<Exception>,
    workers: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct EntrypointRow {
    entrypoint: String,
    queued: u64,
    picked: u64,
    held: u64,
    jobs_per_second: f64,
    oldest_queued_seconds: Option<f64>,
    recent_exceptions: u64,
    paused: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Exception {
    at: String,
    entrypoint: String,
    job_id: i64,
    /// The log row's attempts: retries before this outcome (a first try is 0).
    attempts: i64,
    message: String,
}

/// The window as the span of the read model.
fn span(window: f64) -> Duration {
    Duration::try_from_secs_f64(window).unwrap_or(Duration::from_secs(3600))
}

/// The `--once` table: one row per entrypoint of the read model's document, as JSON text.
fn entrypoint_table(document: &str) -> Option<String> {
    let document: Value = serde_json::from_str(document).ok()?;
    let rows: Vec<Value> = document["entrypoints"]
        .as_array()?
        .iter()
        .map(|row| {
            let oldest = row["oldest_queued_seconds"]
                .as_f64()
                .map(|age| (age * 10.0).round() / 10.0);
            serde_json::json!({
                "entrypoint": row["entrypoint"],
                "queued": row["queued"],
                "picked": row["picked"],
                "held": row["held"],
                "jobs_per_second": row["per_second"],
                "oldest_queued_seconds": oldest,
                "recent_exceptions": row["recent_exceptions"],
                "paused": row["paused"],
            })
        })
        .collect();
    Some(Value::Array(rows).to_string())
}

/// What an exception's detail says, in a line: its message, or its error's.
fn message_of(detail: &Value) -> String {
    let text = |value: &Value| value.as_str().map(str::to_string);
    text(&detail["message"])
        .or_else(|| text(&detail["error"]["message"]))
        .or_else(|| text(&detail["error"]))
        .unwrap_or_else(|| match detail {
            Value::Null => String::new(),
            other => other.to_string(),
        })
}

impl Snapshot {
    /// Reads the read model's document (`pgq.overview`); `None` if it is not an object.
    fn parse(text: &str) -> Option<Snapshot> {
        let document: Value = serde_json::from_str(text).ok()?;
        let document = document.as_object()?;
        let text = |value: &Value, key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let count = |value: &Value, key: &str| value.get(key).and_then(Value::as_u64).unwrap_or(0);
        let list = |key: &str| {
            document
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let whole = Value::Object(document.clone());
        // `2026-11-24T12:00:00.123+00:00`: the date and the time to the second.
        let at = text(&whole, "at");
        let now = at.get(..19).unwrap_or(&at).replace('T', " ");
        Some(Snapshot {
            now,
            database: text(&whole, "database"),
            entrypoints: list("entrypoints")
                .iter()
                .map(|row| EntrypointRow {
                    entrypoint: text(row, "entrypoint"),
                    queued: count(row, "queued"),
                    picked: count(row, "picked"),
                    held: count(row, "held"),
                    jobs_per_second: row.get("per_second").and_then(Value::as_f64).unwrap_or(0.0),
                    oldest_queued_seconds: row.get("oldest_queued_seconds").and_then(Value::as_f64),
                    recent_exceptions: count(row, "recent_exceptions"),
                    paused: row.get("paused").and_then(Value::as_bool).unwrap_or(false),
                })
                .collect(),
            per_minute: list("per_minute")
                .iter()
                .map(|minute| {
                    let rate = |key: &str| minute.get(key).and_then(Value::as_f64).unwrap_or(0.0);
                    ((rate("successful") + rate("failed")) * 60.0).round() as u64
                })
                .collect(),
            exceptions: list("exceptions")
                .iter()
                .take(5)
                .map(|row| {
                    let created = text(row, "created");
                    Exception {
                        at: created.get(11..19).unwrap_or(&created).to_string(),
                        entrypoint: text(row, "entrypoint"),
                        job_id: row.get("job_id").and_then(Value::as_i64).unwrap_or(0),
                        attempts: row.get("attempts").and_then(Value::as_i64).unwrap_or(0),
                        message: message_of(&row["detail"]),
                    }
                })
                .collect(),
            workers: list("workers").len() as u64,
        })
    }
}

/// An age in seconds as the largest two units: `42s`, `3m 05s`, `2h 10m`, `3d 04h`.
fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{:.1}s", seconds.max(0.0)),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// The whole screen: totals, the sparkline, the entrypoints, the latest exceptions, the keys.
fn draw(frame: &mut Frame, screen: &Screen, footer: &str) {
    let empty = Snapshot::default();
    let (snapshot, problem) = match screen {
        Screen::Waiting => (&empty, Some("connecting...")),
        Screen::Shown(snapshot) => (snapshot, None),
        Screen::Failed(message, last) => (last.as_ref().unwrap_or(&empty), Some(message.as_str())),
    };
    let [top, spark, table, exceptions, bottom] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(6),
        Constraint::Min(4),
        Constraint::Length(7),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    draw_totals(frame, top, snapshot, problem);
    draw_sparkline(frame, spark, snapshot);
    draw_entrypoints(frame, table, snapshot);
    draw_exceptions(frame, exceptions, snapshot);
    frame.render_widget(Line::from(footer.to_string()).dim(), bottom);
}

fn draw_totals(frame: &mut Frame, area: Rect, snapshot: &Snapshot, problem: Option<&str>) {
    let sum = |f: fn(&EntrypointRow) -> u64| snapshot.entrypoints.iter().map(f).sum::<u64>();
    let rate: f64 = snapshot.entrypoints.iter().map(|e| e.jobs_per_second).sum();
    let title = Line::from(vec![
        "pgq dashboard".bold(),
        format!("  {}  {}", snapshot.database, snapshot.now).into(),
    ]);
    let status = match problem {
        Some(problem) => Line::from(problem.to_string()).red(),
        None => Line::from(format!(
            "queued {}  picked {}  held {}  workers {}  finished {:.2}/s",
            sum(|e| e.queued),
            sum(|e| e.picked),
            sum(|e| e.held),
            snapshot.workers,
            rate
        )),
    };
    frame.render_widget(Paragraph::new(vec![title, status]), area);
}

fn draw_sparkline(frame: &mut Frame, area: Rect, snapshot: &Snapshot) {
    // The newest minutes that fit, the latest at the right edge.
    let data = &snapshot.per_minute;
    let inner = area.width.saturating_sub(2) as usize;
    let shown = &data[data.len().saturating_sub(inner)..];
    let last = shown.last().copied().unwrap_or(0);
    let peak = shown.iter().copied().max().unwrap_or(0);
    let title = format!(
        " jobs finished per minute, last {} min: now {last}, peak {peak} ",
        shown.len()
    );
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(title))
            .data(shown)
            .style(Style::new().green()),
        area,
    );
}

fn draw_entrypoints(frame: &mut Frame, area: Rect, snapshot: &Snapshot) {
    let header = Row::new([
        "entrypoint",
        "queued",
        "picked",
        "held",
        "jobs/s",
        "oldest queued",
        "exceptions",
    ])
    .bold();
    let rows = snapshot.entrypoints.iter().map(|e| {
        Row::new([
            match e.paused {
                true => format!("{} (paused)", e.entrypoint),
                false => e.entrypoint.clone(),
            },
            e.queued.to_string(),
            e.picked.to_string(),
            e.held.to_string(),
            format!("{:.2}", e.jobs_per_second),
            e.oldest_queued_seconds.map(age).unwrap_or_default(),
            e.recent_exceptions.to_string(),
        ])
    });
    let widths = [
        Constraint::Min(16),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(14),
        Constraint::Length(10),
    ];
    let title = if snapshot.entrypoints.is_empty() {
        " entrypoints: none yet "
    } else {
        " entrypoints "
    };
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(title)),
        area,
    );
}

fn draw_exceptions(frame: &mut Frame, area: Rect, snapshot: &Snapshot) {
    let lines: Vec<Line> = if snapshot.exceptions.is_empty() {
        vec![Line::from("none in the window").dim()]
    } else {
        snapshot
            .exceptions
            .iter()
            .map(|x| {
                Line::from(format!(
                    "{}  {}  job {} (try {})  {}",
                    x.at,
                    x.entrypoint,
                    x.job_id,
                    x.attempts + 1,
                    crate::failure::one_line(&x.message)
                ))
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" recent exceptions ")),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen_text(screen: &Screen) -> String {
        let mut terminal = Terminal::new(TestBackend::new(100, 30)).expect("a test terminal");
        terminal
            .draw(|frame| draw(frame, screen, "q quit"))
            .expect("draw");
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_snapshot_document_is_read_and_drawn() {
        let text = r#"{"at": "2026-11-24T12:00:00.5+00:00", "database": "shop",
            "entrypoints": [{"entrypoint": "send_mail", "queued": 12, "picked": 3, "held": 1,
                             "per_second": 2.5, "oldest_queued_seconds": 125.0,
                             "recent_exceptions": 2}],
            "per_minute": [{"minute": "2026-11-24T11:58:00+00:00", "successful": 0, "failed": 0},
                           {"minute": "2026-11-24T11:59:00+00:00", "successful": 0.05,
                            "failed": 0.0166},
                           {"minute": "2026-11-24T12:00:00+00:00", "successful": 0.15,
                            "failed": null}],
            "exceptions": [{"created": "2026-11-24T11:59:58.1+00:00", "entrypoint": "send_mail",
                            "job_id": 7, "attempts": 2, "detail": {"message": "smtp timeout"}}],
            "workers": [{"worker_id": "a"}, {"worker_id": "b"}]}"#;
        let snapshot = Snapshot::parse(text).expect("an object");
        assert_eq!(snapshot.entrypoints[0].queued, 12);
        assert_eq!(snapshot.per_minute, vec![0, 4, 9]);
        assert_eq!(snapshot.now, "2026-11-24 12:00:00");
        let shown = screen_text(&Screen::Shown(snapshot));
        for expected in [
            "shop",
            "queued 12  picked 3  held 1  workers 2  finished 2.50/s",
            "last 3 min: now 9, peak 9",
            "send_mail",
            "2m 05s",
            "job 7 (try 3)  smtp timeout",
        ] {
            assert!(
                shown.contains(expected),
                "{expected:?} missing from:\n{shown}"
            );
        }
    }

    #[test]
    fn a_failed_refresh_keeps_the_last_data_and_says_why() {
        let last = Snapshot {
            entrypoints: vec![EntrypointRow {
                entrypoint: "resize".into(),
                ..EntrypointRow::default()
            }],
            ..Snapshot::default()
        };
        let shown = screen_text(&Screen::Failed("connection refused".into(), Some(last)));
        assert!(shown.contains("connection refused"), "{shown}");
        assert!(shown.contains("resize"), "{shown}");
        assert!(Snapshot::parse("[1, 2]").is_none());
    }

    #[test]
    fn an_exceptions_message_is_its_own_or_its_errors() {
        use serde_json::json;
        assert_eq!(message_of(&json!({"message": "boom"})), "boom");
        assert_eq!(
            message_of(&json!({"reason": "exception", "error": {"message": "late"}})),
            "late"
        );
        assert_eq!(message_of(&json!({"error": "plain"})), "plain");
        assert_eq!(message_of(&json!({"code": 7})), r#"{"code":7}"#);
        assert_eq!(message_of(&Value::Null), "");
    }

    #[test]
    fn ages_and_intervals() {
        assert_eq!(age(4.3), "4.3s");
        assert_eq!(age(3725.0), "1h 02m");
        assert_eq!(age(90061.0), "1d 01h");
        assert!(positive_seconds("0").is_err());
        assert!(positive_seconds("NaN").is_err());
        assert_eq!(positive_seconds("0.25"), Ok(0.25));
    }
}
