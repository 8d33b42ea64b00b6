//! The scheduler, a background worker ("pgqueuer scheduler"): fires due schedules and announces
//! deferred jobs when they fall due, waking at the exact time rather than polling.
//!
//! State machine, one round per wake-up:
//!
//! ```text
//!   start ──► connect to pgqueuer.database ──► round ──► sleep until the next due time
//!                                                ▲        (at most 1 s; a latch set by
//!                                                │         SIGUSR1 ends it early)
//!                                                └────────────────┘
//! ```
//!
//! A round runs `pgq._scheduler_round(since)` (`pgq._worker_round` in schemas before 0.7.0) in
//! its own transaction: `pgq.tick()`, plus one `enqueued` notification for entrypoints whose
//! deferred jobs fell due since the last round.
//! Without the extension in that database the round does nothing and the worker checks again
//! after the cap, so `CREATE EXTENSION` later (or `DROP` and `CREATE` again) just works. An
//! error in a round is logged, rolled back, and the worker goes on. SIGTERM ends it; SIGHUP
//! reloads the settings.
//!
//! Backends wake it: `pgq._wake_scheduler(at)`, called by `pgq.schedule` and by enqueues with a
//! delay, sends SIGUSR1 at commit when `at` is earlier than the time the worker sleeps until
//! (which it publishes in shared memory, 0 while it is awake).

use std::cell::Cell;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::time::Duration;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, GucContext, GucFlags, GucRegistry, GucSetting, PgAtomic};

/// The longest sleep: it bounds the cost of a missed wake-up or a clock change.
const CAP: Duration = Duration::from_secs(1);

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// The role the worker connects as; unset: the bootstrap superuser.
static ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// The worker's process id, 0 when it is not running.
static WORKER_PID: PgAtomic<AtomicI32> = unsafe { PgAtomic::new(c"pgqueuer_worker_pid") };
/// When the worker's sleep ends (PostgreSQL timestamp, microseconds); 0 while it is awake.
static SLEEP_UNTIL: PgAtomic<AtomicI64> = unsafe { PgAtomic::new(c"pgqueuer_sleep_until") };

/// Whether this process has the shared memory above (the library was preloaded).
static PRELOADED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// A wake-up is already registered for this transaction's commit.
    static WAKE_PENDING: Cell<bool> = const { Cell::new(false) };
}

/// Called from `_PG_init`: settings everywhere; shared memory and the worker only while the
/// library is being preloaded (Postmaster settings may not be defined later).
pub fn init() {
    GucRegistry::define_bool_guc(
        c"pgqueuer.enabled",
        c"Whether the pgqueuer scheduler fires schedules and announces deferred jobs.",
        c"When off, the worker idles; clients can call pgq.tick() themselves.",
        &ENABLED,
        GucContext::Sighup,
        GucFlags::default(),
    );
    // SAFETY: a plain read of a flag PostgreSQL sets while loading preload libraries.
    if unsafe { !pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    GucRegistry::define_string_guc(
        c"pgqueuer.database",
        c"The database whose pgq schema the pgqueuer scheduler serves.",
        c"The background worker connects to this database at server start.",
        &DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pgqueuer.role",
        c"The role the pgqueuer scheduler connects as (unset: the bootstrap superuser).",
        c"A login role granted pgq_worker is enough: CREATE ROLE pgq_scheduler LOGIN; \
          GRANT pgq_worker TO pgq_scheduler;",
        &ROLE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    pg_shmem_init!(WORKER_PID);
    pg_shmem_init!(SLEEP_UNTIL);
    PRELOADED.store(true, Ordering::Relaxed);
    BackgroundWorkerBuilder::new("pgqueuer scheduler")
        .set_type("pgqueuer scheduler")
        .set_library("pgqueuer")
        .set_function("pgqueuer_worker_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// The worker's entry point.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pgqueuer_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = DATABASE
        .get()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "postgres".into());
    let role = ROLE
        .get()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty());
    BackgroundWorker::connect_worker_to_spi(Some(&database), role.as_deref());
    // Nothing this session runs may resolve a name through a schema that a database user can
    // create objects in (public): every statement it runs names pgq's objects in full.
    // SAFETY: both strings are NUL-terminated; setting a GUC in a connected background worker
    // is what its own startup does.
    unsafe {
        pg_sys::SetConfigOption(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
    }
    // SAFETY: MyProcPid is set for every backend before this runs.
    WORKER_PID
        .get()
        .store(unsafe { pg_sys::MyProcPid }, Ordering::SeqCst);
    log!(
        "pgqueuer scheduler started for database {database} as {}",
        role.as_deref().unwrap_or("the bootstrap superuser")
    );

    // Deferred jobs due before the worker started are announced in the first round.
    let mut since: f64 = 0.0;
    loop {
        SLEEP_UNTIL.get().store(0, Ordering::SeqCst);
        let wait = if ENABLED.get() {
            match round(since) {
                Some((ran_at, wait)) => {
                    since = ran_at;
                    wait
                }
                None => CAP,
            }
        } else {
            CAP
        };
        let wait = wait.min(CAP);
        SLEEP_UNTIL
            .get()
            .store(pg_now_micros() + wait.as_micros() as i64, Ordering::SeqCst);
        if !BackgroundWorker::wait_latch(Some(wait)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a background worker to reload its settings.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
    WORKER_PID.get().store(0, Ordering::SeqCst);
    log!("pgqueuer scheduler stopped");
}

/// One round in its own transaction. Returns when it ran (Unix seconds) and how long until the
/// next due time, or None when there is nothing to do here (no extension) or the round failed.
fn round(since: f64) -> Option<(f64, Duration)> {
    let result = PgTryBuilder::new(|| {
        BackgroundWorker::transaction(|| {
            let present = Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pgqueuer')",
            );
            if present != Ok(Some(true)) {
                return None;
            }
            // The round's name since 0.7.0; a database not updated yet has the old one.
            let renamed = Spi::get_one::<bool>(
                "SELECT to_regprocedure('pgq._scheduler_round(timestamptz)') IS NOT NULL",
            );
            let function = match renamed {
                Ok(Some(true)) => "pgq._scheduler_round",
                _ => "pgq._worker_round",
            };
            // `since` is a number this worker produced, so formatting it into SQL is safe.
            let row = Spi::get_two::<f64, f64>(&format!(
                "SELECT extract(epoch FROM now())::float8, \
                        extract(epoch FROM {function}(to_timestamp({since})) \
                                           - clock_timestamp())::float8"
            ));
            match row {
                Ok((Some(ran_at), wait)) => {
                    // Whole milliseconds, rounded up: waking early would find nothing due.
                    let wait = wait.map_or(CAP, |seconds| {
                        Duration::from_millis((seconds.max(0.0) * 1000.0).ceil() as u64)
                    });
                    Some((ran_at, wait))
                }
                _ => None,
            }
        })
    })
    .catch_others(|error| {
        // SAFETY: the error left a transaction open; abort it before the next round.
        unsafe { pg_sys::AbortCurrentTransaction() };
        warning!("pgqueuer scheduler: a round failed and was rolled back: {error:?}");
        None
    })
    .execute();
    // Let SIGTERM and SIGHUP that arrived meanwhile be seen by the caller.
    result
}

/// Now as a PostgreSQL timestamp (microseconds since 2000-01-01 UTC).
fn pg_now_micros() -> i64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as i64)
        .unwrap_or(0);
    unix - PG_EPOCH_MICROS
}

/// `pgq._wake_scheduler(at)`: something falls due at `at`. If the worker sleeps past that, wake
/// it when this transaction commits. Does nothing when the library is not preloaded.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn _wake_scheduler(at: Option<TimestampWithTimeZone>) {
    let Some(at) = at else { return };
    if !PRELOADED.load(Ordering::Relaxed) || WAKE_PENDING.with(Cell::get) {
        return;
    }
    let due = pg_sys::TimestampTz::from(at);
    let sleep_until = SLEEP_UNTIL.get().load(Ordering::SeqCst);
    if sleep_until != 0 && due >= sleep_until {
        return;
    }
    WAKE_PENDING.with(|pending| pending.set(true));
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, || {
        WAKE_PENDING.with(|pending| pending.set(false));
        let pid = WORKER_PID.get().load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) with a pid and a signal number has no memory-safety requirements.
            unsafe { libc::kill(pid, libc::SIGUSR1) };
        }
    });
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, || {
        WAKE_PENDING.with(|pending| pending.set(false));
    });
}
