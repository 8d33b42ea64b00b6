// `#[pg_test]`s: what lives inside the server, run by `cargo pgrx test` in a transaction that
// is rolled back. Behaviour that needs several sessions or notifications is tested end to end
// in `tests/e2e/`.

use pgrx::prelude::*;

#[pg_test]
fn version_is_the_crate_version() {
    let version = Spi::get_one::<String>("SELECT pgq.version()");
    assert_eq!(version, Ok(Some(env!("CARGO_PKG_VERSION").to_string())));
}

#[pg_test]
fn extension_lives_in_schema_pgq() {
    let schema = Spi::get_one::<String>(
        "SELECT n.nspname::text FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgqueuer'",
    );
    assert_eq!(schema, Ok(Some("pgq".to_string())));
}

#[pg_test]
fn library_is_preloaded() {
    let preload = Spi::get_one::<String>("SHOW shared_preload_libraries");
    assert_eq!(preload, Ok(Some("pgqueuer".to_string())));
}

/// A value of a one-row, one-column query; panics with the query otherwise.
fn one<T: IntoDatum + FromDatum + std::fmt::Debug>(sql: &str) -> T {
    match Spi::get_one::<T>(sql) {
        Ok(Some(value)) => value,
        other => panic!("{sql}: {other:?}"),
    }
}

/// The first fire of `expression` in `timezone` after `after`, as UTC text.
fn next(expression: &str, timezone: &str, after: &str) -> String {
    one(&format!(
        "SELECT to_char(pgq._cron_next('{expression}', '{timezone}', '{after}') AT TIME ZONE 'UTC', \
         'YYYY-MM-DD HH24:MI:SS')"
    ))
}

// 2026-11-24 is a Tuesday.

#[pg_test]
fn five_fields_read_minute_hour_day_month_weekday() {
    assert_eq!(
        next("30 9 * * 1-5", "UTC", "2026-11-27 10:00+00"),
        "2026-11-30 09:30:00"
    );
    assert_eq!(
        next("0 12 1 * *", "UTC", "2026-11-24 00:00+00"),
        "2026-12-01 12:00:00"
    );
}

#[pg_test]
fn sunday_is_day_0_and_day_7() {
    assert_eq!(
        next("0 0 * * 0", "UTC", "2026-11-24 12:00+00"),
        "2026-11-29 00:00:00"
    );
    assert_eq!(
        next("0 0 * * 7", "UTC", "2026-11-24 12:00+00"),
        "2026-11-29 00:00:00"
    );
    assert_eq!(
        next("0 0 * * SUN", "UTC", "2026-11-24 12:00+00"),
        "2026-11-29 00:00:00"
    );
}

#[pg_test]
fn six_fields_lead_with_seconds() {
    assert_eq!(
        next("*/15 * * * * *", "UTC", "2026-11-24 12:00:07+00"),
        "2026-11-24 12:00:15"
    );
}

#[pg_test]
fn shorthands() {
    let after = "2026-11-24 12:10+00";
    assert_eq!(next("@hourly", "UTC", after), "2026-11-24 13:00:00");
    assert_eq!(next("@daily", "UTC", after), "2026-11-25 00:00:00");
    assert_eq!(next("@weekly", "UTC", after), "2026-11-29 00:00:00");
    assert_eq!(next("@monthly", "UTC", after), "2026-12-01 00:00:00");
    assert_eq!(next("@yearly", "UTC", after), "2027-01-01 00:00:00");
}

#[pg_test]
fn fire_times_follow_the_wall_clock_across_daylight_saving_changes() {
    // Oslo moves from UTC+1 to UTC+2 on 2026-03-29 and back on 2026-10-25.
    assert_eq!(
        next("0 9 * * *", "Europe/Oslo", "2026-03-28 09:00+01"),
        "2026-03-29 07:00:00"
    );
    assert_eq!(
        next("0 9 * * *", "Europe/Oslo", "2026-10-24 09:00+02"),
        "2026-10-25 08:00:00"
    );
    assert_eq!(
        next("0 9 * * *", "America/New_York", "2026-11-24 00:00+00"),
        "2026-11-24 14:00:00"
    );
}

#[pg_test]
fn the_latest_fire_is_at_or_before_the_given_time() {
    let latest: String = one(
        "SELECT to_char(pgq._cron_latest('*/5 * * * *', 'UTC', '2026-11-24 12:14:59+00') \
         AT TIME ZONE 'UTC', 'HH24:MI:SS')",
    );
    assert_eq!(latest, "12:10:00");
}

#[pg_test(
    error = "cron expression \"* * * * * * *\" has 7 fields: use 5 (minute hour day-of-month month day-of-week), 6 (a leading seconds field), or @hourly, @daily, @weekly, @monthly, @yearly"
)]
fn seven_fields_are_an_error() {
    Spi::run("SELECT pgq.schedule('a', '* * * * * * *')").expect("must fail");
}

#[pg_test(error = "invalid cron expression \"61 * * * *\": Component error: Number out of bounds.")]
fn an_out_of_range_minute_is_an_error() {
    Spi::run("SELECT pgq.schedule('a', '61 * * * *')").expect("must fail");
}

#[pg_test(
    error = "unknown time zone \"Mars/Olympus\": use a name from the IANA tz database, such as UTC or Europe/Oslo"
)]
fn an_unknown_time_zone_is_an_error() {
    Spi::run("SELECT pgq.schedule('a', '* * * * *', 'Mars/Olympus')").expect("must fail");
}

#[pg_test(error = "cron expression '0 0 30 2 *' never fires")]
fn an_expression_that_never_fires_is_an_error() {
    Spi::run("SELECT pgq.schedule('a', '0 0 30 2 *')").expect("must fail");
}

#[pg_test]
fn registering_twice_returns_the_same_id_and_only_the_time_zone_changes() {
    let first: i64 = one("SELECT pgq.schedule('report', '0 9 * * *')");
    let next_run: String = one("SELECT next_run::text FROM pgq.schedules");
    let again: i64 = one("SELECT pgq.schedule('report', '0 9 * * *')");
    assert_eq!(first, again);
    assert_eq!(
        one::<String>("SELECT next_run::text FROM pgq.schedules"),
        next_run
    );
    let moved: i64 = one("SELECT pgq.schedule('report', '0 9 * * *', 'Asia/Tokyo')");
    assert_eq!(first, moved);
    assert_eq!(
        one::<String>("SELECT timezone FROM pgq.schedules"),
        "Asia/Tokyo"
    );
    assert!(one::<bool>(
        "SELECT next_run = pgq._cron_next(expression, 'Asia/Tokyo', now()) FROM pgq.schedules"
    ));
    assert_eq!(one::<i64>("SELECT count(*) FROM pgq.schedules"), 1);
}

#[pg_test]
fn unschedule_removes_one_expression_or_all_of_an_entrypoint() {
    Spi::run(
        "SELECT pgq.schedule('a', '* * * * *'), pgq.schedule('a', '@daily'), \
         pgq.schedule('b', '@daily')",
    )
    .expect("three schedules");
    assert_eq!(one::<i64>("SELECT pgq.unschedule('a', '@daily')"), 1);
    assert_eq!(one::<i64>("SELECT pgq.unschedule('a')"), 1);
    assert_eq!(one::<i64>("SELECT pgq.unschedule('a')"), 0);
    assert_eq!(
        one::<String>("SELECT string_agg(entrypoint, ',') FROM pgq.schedules"),
        "b"
    );
}

#[pg_test]
fn a_tick_coalesces_missed_fires_into_one_job_for_the_latest() {
    Spi::run(
        "SELECT pgq.schedule('report', '*/5 * * * *');
         UPDATE pgq.schedules SET next_run = now() - interval '1 hour'",
    )
    .expect("a schedule that missed twelve fires");
    // Separate statements: a subquery in the tick's own statement would see the old row.
    let returned: String = one("SELECT pgq.tick()::text");
    // The earliest of the next fire and the maintenance's next round.
    assert!(one::<bool>(&format!(
        "SELECT '{returned}'::timestamptz = least(next_run, now() + interval '30 seconds') \
         FROM pgq.schedules"
    )));
    assert!(one::<bool>("SELECT next_run > now() FROM pgq.schedules"), "the next fire lies ahead");
    assert_eq!(
        one::<i64>("SELECT count(*) FROM pgq.jobs WHERE entrypoint = 'report'"),
        1
    );
    let headers_match: bool = one("SELECT headers->>'expression' = '*/5 * * * *' \
            AND (headers->>'schedule_id')::bigint = (SELECT id FROM pgq.schedules) \
            AND (headers->>'scheduled_for')::timestamptz \
                = pgq._cron_latest('*/5 * * * *', 'UTC', now()) \
            AND jsonb_typeof(headers->'schedule_id') = 'number' \
         FROM pgq.jobs");
    assert!(
        headers_match,
        "headers name the schedule and the latest missed fire"
    );
    assert!(one::<bool>("SELECT last_run = now() FROM pgq.schedules"));
    assert!(one::<bool>("SELECT pgq.tick() IS NOT NULL"));
    assert_eq!(
        one::<i64>("SELECT count(*) FROM pgq.jobs"),
        1,
        "a second tick fires nothing"
    );
}

#[pg_test]
fn a_tick_returns_the_earliest_of_schedules_deferred_jobs_and_the_maintenance() {
    // With nothing else due, the maintenance's next round (30 seconds when it has caught up).
    assert!(one::<bool>(
        "SELECT pgq.tick() = now() + interval '30 seconds'"
    ));
    Spi::run("SELECT pgq.enqueue('later', execute_after => '10 seconds')").expect("enqueue");
    assert!(one::<bool>(
        "SELECT pgq.tick() = now() + interval '10 seconds'"
    ));
    Spi::run("SELECT pgq.schedule('soon', '* * * * * *')").expect("every second");
    assert!(one::<bool>(
        "SELECT pgq.tick() <= now() + interval '1 second'"
    ));
}
