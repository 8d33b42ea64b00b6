//! The worker runtime, `PgQueuer`, against a real server; the helpers its tests share.

mod cancel;
mod claims;
mod connections;
mod failures;
mod metrics;
mod running;
mod stopping;
mod trace_context;
mod typed;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgqueuer::Job;
use serde_json::Value;

/// Handlers that meet in groups of `size`: a run can only finish if `size` of them are in
/// flight together, and `most` shows how many ever were at once.
#[derive(Clone)]
struct Groups {
    barrier: Arc<tokio::sync::Barrier>,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Groups {
    fn of(size: usize) -> Groups {
        Groups {
            barrier: Arc::new(tokio::sync::Barrier::new(size)),
            running: Arc::default(),
            most: Arc::default(),
        }
    }

    async fn handle(self, _job: Job) -> pgqueuer::HandlerResult {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.barrier.wait().await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// (status, detail) of a job's log rows, oldest first.
async fn log_of(c: &tokio_postgres::Client, id: i64) -> Vec<(String, Option<Value>)> {
    c.query(
        "SELECT status::text, detail FROM pgq.log WHERE job_id = $1 ORDER BY id",
        &[&id],
    )
    .await
    .expect("the log")
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}
