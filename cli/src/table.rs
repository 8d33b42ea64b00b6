//! Listings as the command line prints them: one JSON array of objects (`Queries::report`,
//! written by the database), printed as is with `--json`, or as an aligned (or Markdown) table.

use clap::Args;
use serde_json::Value;

use crate::failure::Failure;

/// How a listing draws its table (`dashboard --once --table-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    /// Aligned columns under a dashed rule.
    Plain,
    /// A Markdown table.
    Markdown,
}

/// `--json` for the listing commands.
#[derive(Debug, Args)]
pub struct Format {
    /// Print a JSON array of objects instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Prints a listing (`text`, a JSON array of objects, as `Queries::report` gives it): as is
/// with `--json`, else as a table drawn in `style`.
pub fn print(text: &str, format: &Format, style: TableFormat) -> Result<(), Failure> {
    if format.json {
        println!("{text}");
        return Ok(());
    }
    let rows: Vec<serde_json::Map<String, Value>> = serde_json::from_str(text)
        .map_err(|error| Failure::new(format!("unexpected output from the database: {error}")))?;
    print_table(&rows, style);
    Ok(())
}

/// An aligned table with a header; "(none)" when there are no rows.
fn print_table(rows: &[serde_json::Map<String, Value>], style: TableFormat) {
    let Some(first) = rows.first() else {
        println!("(none)");
        return;
    };
    let columns: Vec<&String> = first.keys().collect();
    let cell = |value: Option<&Value>| match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(row.get(*c))).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        match style {
            TableFormat::Plain => println!("{}", padded.join("  ").trim_end()),
            TableFormat::Markdown => println!("| {} |", padded.join(" | ")),
        }
    };
    line(columns.iter().map(|c| c.to_string()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in table {
        line(row);
    }
}
