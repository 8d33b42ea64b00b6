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
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
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
        // Only ASCII means anything in an expression. Checked first, so that Unicode spaces
        // are not separators here while the PL/pgSQL twin of SQL-only installs
        // (sql/sql-only/cron.sql) reads ASCII only.
        if !expression.is_ascii() {
            return Err(format!(
                "cron expression {expression:?} has characters that are not ASCII: use digits, \
                 names such as MON and JAN, and * / , - L W # ?"
            ));
        }
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

/// A `text` argument taken as its bytes. pgrx's `&str` panics (XX000, with a backtrace) on
/// bytes that are not UTF-8, which a SQL_ASCII or LATIN1 database can pass; this type lets the
/// function answer 22023 instead ([`TextArg::utf8`]).
pub struct TextArg<'fcx>(&'fcx [u8]);

impl<'fcx> TextArg<'fcx> {
    /// The text, or 22023 naming `argument` when its bytes are not UTF-8.
    fn utf8(&self, argument: &str) -> &'fcx str {
        std::str::from_utf8(self.0).unwrap_or_else(|_| {
            ereport!(
                PgLogLevel::ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "{argument} must be UTF-8 text (cron expressions and time zone names are \
                     ASCII), not {} bytes that are not",
                    self.0.len()
                )
            );
            unreachable!("ereport(ERROR) does not return")
        })
    }
}

// SAFETY: text and bytea are both varlenas: the bytes of a detoasted text datum are its text.
unsafe impl<'fcx> ArgAbi<'fcx> for TextArg<'fcx> {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: the caller guarantees a non-null text argument.
        let bytes: Option<&'fcx [u8]> = unsafe { arg.unbox_arg_using_from_datum() };
        TextArg(bytes.unwrap_or_else(|| panic!("argument {index} must not be null")))
    }
}

// SAFETY: the SQL type is text, which is what the argument holds.
unsafe impl SqlTranslatable for TextArg<'_> {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(TextArg<'static>);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("TEXT"));
    // An argument only: nothing returns it.
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Err(ReturnsError::Datum);
}

/// Parses the two text arguments of the functions below, or raises 22023.
fn parse_args(expression: &TextArg, timezone: &TextArg) -> Schedule {
    parse_or_raise(expression.utf8("expression"), timezone.utf8("timezone"))
}

/// The instant in whole seconds, rounded down. Fires fall on whole seconds, so this changes no
/// answer, and croner must not see the fraction: with one, its search of a repeated hour could
/// answer `latest_at_or_before` with a fire up to a second after the instant.
fn to_chrono(time: TimestampWithTimeZone) -> Option<DateTime<Utc>> {
    let micros = pg_sys::TimestampTz::from(time).checked_add(PG_EPOCH_MICROS)?;
    DateTime::from_timestamp(micros.div_euclid(1_000_000), 0)
}

fn to_postgres(time: DateTime<Utc>) -> Option<TimestampWithTimeZone> {
    let micros = time.timestamp_micros().checked_sub(PG_EPOCH_MICROS)?;
    TimestampWithTimeZone::try_from(micros).ok()
}

/// `pgq._cron_check(expression, timezone)`: raises 22023 unless both are valid.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _cron_check(expression: TextArg, timezone: TextArg) -> bool {
    parse_args(&expression, &timezone);
    true
}

/// `pgq._cron_next(expression, timezone, after)`: the first fire time after `after`, or NULL
/// when there is none (or `after` is infinite).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _cron_next(
    expression: TextArg,
    timezone: TextArg,
    after: TimestampWithTimeZone,
) -> Option<TimestampWithTimeZone> {
    let schedule = parse_args(&expression, &timezone);
    schedule.next_after(to_chrono(after)?).and_then(to_postgres)
}

/// `pgq._cron_latest(expression, timezone, at)`: the latest fire time at or before `at`.
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _cron_latest(
    expression: TextArg,
    timezone: TextArg,
    at: TimestampWithTimeZone,
) -> Option<TimestampWithTimeZone> {
    let schedule = parse_args(&expression, &timezone);
    schedule
        .latest_at_or_before(to_chrono(at)?)
        .and_then(to_postgres)
}
