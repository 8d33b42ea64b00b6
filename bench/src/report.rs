//! What a run measured: one [`Measure`] per number, printed as a table or as JSON.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

/// One number of one scenario, with the raw-SQL figure measured in the same run, if any.
#[derive(Debug, Clone)]
pub struct Measure {
    /// The scenario, such as `drain` or `backlog 1000000 (limits)`.
    pub scenario: String,
    /// What was measured, such as `jobs/s` or `claim p50`.
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
    /// The matching raw-SQL baseline (pgqueuer's tables), same unit.
    pub raw: Option<f64>,
    /// The matching minimal-queue baseline (`baseline.rs`), same unit.
    pub minimal: Option<f64>,
    /// Whether a larger value is better (rates) or a smaller one (times, memory).
    pub higher_is_better: bool,
    /// The target for this number, as text (reported, never asserted).
    pub target: Option<String>,
    /// Counts that show the work was done right (jobs processed, left, duplicates...).
    pub detail: Value,
}

impl Measure {
    /// A rate in jobs per second.
    pub fn rate(scenario: impl Into<String>, jobs: u64, seconds: f64) -> Measure {
        Measure {
            scenario: scenario.into(),
            metric: "throughput".into(),
            value: jobs as f64 / seconds.max(1e-9),
            unit: "jobs/s",
            raw: None,
            minimal: None,
            higher_is_better: true,
            target: None,
            detail: json!({"jobs": jobs, "seconds": seconds}),
        }
    }

    /// A time in milliseconds; smaller is better.
    pub fn millis(scenario: impl Into<String>, metric: impl Into<String>, ms: f64) -> Measure {
        Measure {
            scenario: scenario.into(),
            metric: metric.into(),
            value: ms,
            unit: "ms",
            raw: None,
            minimal: None,
            higher_is_better: false,
            target: None,
            detail: Value::Null,
        }
    }

    pub fn raw(mut self, raw: f64) -> Measure {
        self.raw = Some(raw);
        self
    }

    pub fn minimal(mut self, minimal: f64) -> Measure {
        self.minimal = Some(minimal);
        self
    }

    pub fn target(mut self, target: &str) -> Measure {
        self.target = Some(target.to_string());
        self
    }

    pub fn detail(mut self, detail: Value) -> Measure {
        self.detail = detail;
        self
    }

    /// Ours divided by raw SQL's.
    pub fn ratio(&self) -> Option<f64> {
        self.raw
            .filter(|raw| *raw > 0.0)
            .map(|raw| self.value / raw)
    }

    /// Ours divided by the minimal queue's.
    pub fn minimal_ratio(&self) -> Option<f64> {
        self.minimal
            .filter(|minimal| *minimal > 0.0)
            .map(|minimal| self.value / minimal)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "metric": self.metric,
            "value": round(self.value),
            "unit": self.unit,
            "raw_sql": self.raw.map(round),
            "ratio": self.ratio().map(|r| (r * 1000.0).round() / 1000.0),
            "minimal_queue": self.minimal.map(round),
            "minimal_ratio": self.minimal_ratio().map(|r| (r * 1000.0).round() / 1000.0),
            "higher_is_better": self.higher_is_better,
            "target": self.target,
            "detail": self.detail,
        })
    }
}

fn round(value: f64) -> f64 {
    if value.abs() >= 100.0 {
        value.round()
    } else {
        (value * 100.0).round() / 100.0
    }
}

fn number(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The results as an aligned table, with the ratios to both baselines where there are some.
pub fn print_table(measures: &[Measure]) {
    let header = [
        "scenario",
        "metric",
        "value",
        "unit",
        "raw SQL",
        "ours/raw",
        "minimal",
        "ours/minimal",
        "target",
    ];
    let percent = |ratio: Option<f64>| {
        ratio
            .map(|r| format!("{:.0} %", r * 100.0))
            .unwrap_or_default()
    };
    let rows: Vec<[String; 9]> = measures
        .iter()
        .map(|m| {
            [
                m.scenario.clone(),
                m.metric.clone(),
                number(m.value),
                m.unit.to_string(),
                m.raw.map(number).unwrap_or_default(),
                percent(m.ratio()),
                m.minimal.map(number).unwrap_or_default(),
                percent(m.minimal_ratio()),
                m.target.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, width))| match i {
                2 | 4..=7 => format!("{cell:>width$}"),
                _ => format!("{cell:<width$}"),
            })
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header.map(String::from));
    line(&widths.map(|w| "-".repeat(w)));
    for row in &rows {
        line(row);
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(what: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{msg:<28} [{bar:30}] {pos}/{len} {per_sec:>12} {elapsed:>4}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// Percentile `p` (0..=100) of sorted values, by the nearest-rank method.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 90.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn the_ratio_is_ours_over_raw() {
        let m = Measure::rate("drain", 500, 1.0).raw(1000.0);
        assert_eq!(m.ratio(), Some(0.5));
        assert_eq!(m.to_json()["ratio"], json!(0.5));
        assert_eq!(Measure::rate("x", 1, 1.0).ratio(), None);
    }
}
