//! `pgq dashboard`: the queue at a glance. Live, it is a terminal UI redrawn every
//! `--interval` seconds (`q` quits); with `--once` or `--json` it prints one table and exits.
//!
//! Each refresh is one query returning one JSON document (`SNAPSHOT`), run by a task of its
//! own so that a slow or lost database never stops the keyboard: the screen says what went
//! wrong and the task reconnects.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures_util::StreamExt;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Sparkline, Table};
use ratatui::{DefaultTerminal, Frame};
use serde_json::Value;
use tokio::sync::watch;
use tokio_postgres::Client;

use crate::failure::Failure;
use crate::table::{Format, TableFormat, list_as};

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
    /// The window, in seconds, for jobs per second and recent exceptions.
    #[arg(long, default_value_t = 60.0, value_parser = positive_seconds)]
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

/// One row per entrypoint: what is waiting, running and held now, whether it is paused, and
/// what finished in the window ($1 seconds; a range of log_created_idx, not the whole log).
const ENTRYPOINTS: &str = "WITH live AS ( \
        SELECT entrypoint, queued, picked, held, oldest_queued_seconds AS oldest \
        FROM pgq.backlog), \
    done AS ( \
        SELECT entrypoint, \
               count(*) FILTER (WHERE status <> 'queued') / $1::float8 AS rate, \
               count(*) FILTER (WHERE status = 'exception') AS exceptions \
        FROM pgq.log WHERE created > now() - make_interval(secs => $1::float8) \
        GROUP BY entrypoint), \
    paused AS (SELECT name AS entrypoint, true AS paused FROM pgq.entrypoints WHERE paused) \
    SELECT entrypoint, coalesce(queued, 0) AS queued, coalesce(picked, 0) AS picked, \
           coalesce(held, 0) AS held, \
           round(coalesce(rate, 0)::numeric, 2) AS jobs_per_second, \
           round(oldest::numeric, 1) AS oldest_queued_seconds, \
           coalesce(exceptions, 0) AS recent_exceptions, coalesce(paused, false) AS paused \
    FROM live FULL JOIN done USING (entrypoint) FULL JOIN paused USING (entrypoint) \
    ORDER BY entrypoint";

/// How many seconds of history the sparkline can show (as many as fit the terminal's width).
const SPARKLINE_SECONDS: f64 = 300.0;

/// Everything one screen shows, in one round trip: the entrypoint rows, jobs finished in each
/// whole second of the last $2 seconds (oldest first), the five latest exceptions (a retried attempt
/// included) and how many workers hold jobs.
fn snapshot_sql() -> String {
    format!(
        "SELECT json_build_object( \
             'now', to_char(now(), 'YYYY-MM-DD HH24:MI:SS'), \
             'database', current_database(), \
             'entrypoints', (SELECT coalesce(json_agg(e), '[]') FROM ({ENTRYPOINTS}) e), \
             'per_second', ( \
                 SELECT json_agg(coalesce(n, 0) ORDER BY second) \
                 FROM generate_series(floor(extract(epoch FROM now()))::bigint - ceil($2::float8)::bigint, \
                                      floor(extract(epoch FROM now()))::bigint - 1) AS second \
                 LEFT JOIN (SELECT floor(extract(epoch FROM created))::bigint AS second, count(*) AS n \
                            FROM pgq.log \
                            WHERE created > now() - make_interval(secs => $2::float8 + 1) \
                              AND status <> 'queued' \
                            GROUP BY 1) finished USING (second)), \
             'exceptions', (SELECT coalesce(json_agg(x), '[]') FROM ( \
                 SELECT to_char(created, 'HH24:MI:SS') AS at, entrypoint, job_id, attempts, \
                        coalesce(detail->>'message', detail->'error'->>'message', \
                                 detail->>'error', detail::text, '') AS message \
                 FROM pgq.log \
                 WHERE created > now() - make_interval(secs => $1::float8) \
                   AND (status = 'exception' OR detail->>'reason' = 'exception') \
                 ORDER BY created DESC, id DESC LIMIT 5) x), \
             'workers', (SELECT count(*) FROM pgq.workers) \
         )::text"
    )
}

pub async fn dashboard(
    client: Client,
    dsn: Option<String>,
    args: DashboardArgs,
) -> Result<(), Failure> {
    if args.once || args.format.json {
        return list_as(
            &client,
            ENTRYPOINTS,
            &[&args.window],
            &args.format,
            args.table_format,
        )
        .await;
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

/// Queries the database every `interval` seconds and publishes the result; reconnects when
/// the connection is gone.
async fn refresh(
    mut client: Client,
    dsn: Option<String>,
    interval: f64,
    window: f64,
    sender: watch::Sender<Screen>,
) {
    let sql = snapshot_sql();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if client.is_closed() {
            let connected = match dsn.as_deref() {
                Some(dsn) => pgqueuer::connect(dsn).await,
                None => pgqueuer::connect_from_env().await,
            };
            match connected {
                Ok(fresh) => client = fresh,
                Err(error) => {
                    publish_failure(&sender, format!("reconnecting: {error}"));
                    continue;
                }
            }
        }
        let text: Result<String, tokio_postgres::Error> =
            match client.query_one(&sql, &[&window, &SPARKLINE_SECONDS]).await {
                Ok(row) => row.try_get(0),
                Err(error) => Err(error),
            };
        match text {
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
    per_second: Vec<u64>,
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

impl Snapshot {
    /// Reads [`snapshot_sql`]'s document; `None` if it is not an object.
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
        Some(Snapshot {
            now: text(&whole, "now"),
            database: text(&whole, "database"),
            entrypoints: list("entrypoints")
                .iter()
                .map(|row| EntrypointRow {
                    entrypoint: text(row, "entrypoint"),
                    queued: count(row, "queued"),
                    picked: count(row, "picked"),
                    held: count(row, "held"),
                    jobs_per_second: row
                        .get("jobs_per_second")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                    oldest_queued_seconds: row.get("oldest_queued_seconds").and_then(Value::as_f64),
                    recent_exceptions: count(row, "recent_exceptions"),
                    paused: row.get("paused").and_then(Value::as_bool).unwrap_or(false),
                })
                .collect(),
            per_second: list("per_second")
                .iter()
                .map(|n| n.as_u64().unwrap_or(0))
                .collect(),
            exceptions: list("exceptions")
                .iter()
                .map(|row| Exception {
                    at: text(row, "at"),
                    entrypoint: text(row, "entrypoint"),
                    job_id: row.get("job_id").and_then(Value::as_i64).unwrap_or(0),
                    attempts: row.get("attempts").and_then(Value::as_i64).unwrap_or(0),
                    message: text(row, "message"),
                })
                .collect(),
            workers: count(&whole, "workers"),
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
    // The newest seconds that fit, the latest at the right edge.
    let data = &snapshot.per_second;
    let inner = area.width.saturating_sub(2) as usize;
    let shown = &data[data.len().saturating_sub(inner)..];
    let last = shown.last().copied().unwrap_or(0);
    let peak = shown.iter().copied().max().unwrap_or(0);
    let title = format!(
        " jobs finished per second, last {} s: now {last}, peak {peak} ",
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
        let text = r#"{"now": "2026-11-24 12:00:00", "database": "shop",
            "entrypoints": [{"entrypoint": "send_mail", "queued": 12, "picked": 3, "held": 1,
                             "jobs_per_second": 2.5, "oldest_queued_seconds": 125.0,
                             "recent_exceptions": 2}],
            "per_second": [0, 4, 9],
            "exceptions": [{"at": "11:59:58", "entrypoint": "send_mail", "job_id": 7,
                            "attempts": 2, "message": "smtp timeout"}],
            "workers": 2}"#;
        let snapshot = Snapshot::parse(text).expect("an object");
        assert_eq!(snapshot.entrypoints[0].queued, 12);
        assert_eq!(snapshot.per_second, vec![0, 4, 9]);
        let shown = screen_text(&Screen::Shown(snapshot));
        for expected in [
            "shop",
            "queued 12  picked 3  held 1  workers 2  finished 2.50/s",
            "last 3 s: now 9, peak 9",
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
    fn ages_and_intervals() {
        assert_eq!(age(4.3), "4.3s");
        assert_eq!(age(3725.0), "1h 02m");
        assert_eq!(age(90061.0), "1d 01h");
        assert!(positive_seconds("0").is_err());
        assert!(positive_seconds("NaN").is_err());
        assert_eq!(positive_seconds("0.25"), Ok(0.25));
    }
}
