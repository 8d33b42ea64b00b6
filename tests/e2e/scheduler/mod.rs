//! Schedules and what fires them: the background worker of a preloading server, schedules
//! ticked by SQL, and the SQL-only cron twin against the extension's cron math.

mod background_worker;
mod cron_twin;
mod schedules;
