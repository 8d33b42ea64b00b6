//! A PostgreSQL interval as the SQL API takes and gives it: text PostgreSQL reads (`7 days`,
//! `12:00:00`, `1 year`), so that what an operator wrote is stored and shown as written.

use std::fmt;
use std::time::Duration;

/// A PostgreSQL interval, as text (`Interval::new("7 days")`, or from a [`Duration`]). The
/// server reads it; an interval it cannot read is its error (SQLSTATE 22007).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Interval(String);

impl Interval {
    /// An interval written as PostgreSQL reads it: `7 days`, `12 hours`, `1 year 2 mons`.
    pub fn new(text: impl Into<String>) -> Interval {
        Interval(text.into())
    }

    /// Its text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Duration> for Interval {
    /// Whole seconds and microseconds (PostgreSQL's precision): `90.5` seconds is
    /// `90.500000 seconds`.
    fn from(duration: Duration) -> Interval {
        Interval(format!(
            "{}.{:06} seconds",
            duration.as_secs(),
            duration.subsec_micros()
        ))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_is_seconds_to_the_microsecond() {
        assert_eq!(
            Interval::from(Duration::from_millis(90_500)).as_str(),
            "90.500000 seconds"
        );
        assert_eq!(Interval::new("7 days").to_string(), "7 days");
    }
}
