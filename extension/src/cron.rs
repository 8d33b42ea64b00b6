//! Cron expressions for `pgq.schedule` and `pgq.tick`: parsing, and the next or latest fire time
//! in a named time zone.
//!
//! Standard 5-field cron (minute, hour, day of month, month, day of week), or 6 fields with a
//! leading seconds field, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. Days of the
//! week are 0-7 with 0 and 7 both Sunday, so `1-5` is Monday to Friday. When both the day of
//! month and the day of week are restricted, a day matching either fires (as in Vixie cron).
//! Time zones are IANA names (`UTC`, `Europe/Oslo`); fire times follow the zone's wall clock
//! across daylight-saving changes.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use pgrx::prelude::*;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A parsed cron expression and the time zone it is read in.
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses an expression and a time zone name; the error says what is wrong.
    pub fn parse(expression: &str, timezone: &str) -> Result<Schedule, String> {
        let trimmed = expression.trim();
        if trimmed.is_empty() {
            return Err("the cron expression must not be empty".into());
        }
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "cron expression {expression:?} has {fields} fields: use 5 (minute hour \
                 day-of-month month day-of-week), 6 (a leading seconds field), or @hourly, \
                 @daily, @weekly, @monthly, @yearly"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|error| format!("invalid cron expression {expression:?}: {error}"))?;
        if timezone.is_empty() {
            return Err("the time zone must not be empty: use an IANA name such as UTC".into());
        }
        let zone = Tz::from_str(timezone).map_err(|_| {
            format!(
                "unknown time zone {timezone:?}: use a name from the IANA tz database, such as \
                 UTC or Europe/Oslo"
            )
        })?;
        Ok(Schedule { cron, zone })
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|time| time.with_timezone(&Utc))
    }

    /// The latest fire time at or before `at`.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&at.with_timezone(&self.zone), true)
            .ok()
            .map(|time| time.with_timezone(&Utc))
    }
}

/// Parses or raises 22023 (invalid_parameter_value) with the reason.
fn parse_or_raise(expression: &str, timezone: &str) -> Schedule {
    Schedule::parse(expression, timezone).unwrap_or_else(|message| {
        ereport!(
            PgLogLevel::ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            message
        );
        unreachable!("ereport(ERROR) does not return")
    })
}

fn to_chrono(time: TimestampWithTimeZone) -> Option<DateTime<Utc>> {
    let micros = pg_sys::TimestampTz::from(time).checked_add(PG_EPOCH_MICROS)?;
    DateTime::from_timestamp_micros(micros)
}

fn to_postgres(time: DateTime<Utc>) -> Option<TimestampWithTimeZone> {
    let micros = time.timestamp_micros().checked_sub(PG_EPOCH_MICROS)?;
    TimestampWithTimeZone::try_from(micros).ok()
}

/// `pgq._cron_check(expression, timezone)`: raises 22023 unless both are valid.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _cron_check(expression: &str, timezone: &str) -> bool {
    parse_or_raise(expression, timezone);
    true
}

/// `pgq._cron_next(expression, timezone, after)`: the first fire time after `after`, or NULL
/// when there is none (or `after` is infinite).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _cron_next(
    expression: &str,
    timezone: &str,
    after: TimestampWithTimeZone,
) -> Option<TimestampWithTimeZone> {
    let schedule = parse_or_raise(expression, timezone);
    schedule.next_after(to_chrono(after)?).and_then(to_postgres)
}

/// `pgq._cron_latest(expression, timezone, at)`: the latest fire time at or before `at`.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _cron_latest(
    expression: &str,
    timezone: &str,
    at: TimestampWithTimeZone,
) -> Option<TimestampWithTimeZone> {
    let schedule = parse_or_raise(expression, timezone);
    schedule
        .latest_at_or_before(to_chrono(at)?)
        .and_then(to_postgres)
}
