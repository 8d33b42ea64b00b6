//! Shared state: handlers get what they need (a pool, an HTTP client, configuration) without
//! globals.
//!
//! ```text
//! cargo run -p pgqueuer-client --example shared_state
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgqueuer::{Job, Mode, PgQueuer, Queries, RunOptions};

/// What every handler shares.
struct App {
    greeting: String,
    greeted: AtomicUsize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let q = Queries::new(pgqueuer::connect_from_env().await?);
    q.enqueue(
        ["greet", "greet"],
        [b"ann".to_vec(), b"bob".to_vec()],
        [0, 0],
    )
    .await?;

    let app = Arc::new(App {
        greeting: "hello".into(),
        greeted: AtomicUsize::new(0),
    });
    let mut pgq = PgQueuer::from_env()?;
    pgq.entrypoint_with_state(
        "greet",
        Arc::clone(&app),
        |app: Arc<App>, job: Job| async move {
            let name =
                String::from_utf8_lossy(job.payload.as_deref().unwrap_or_default()).to_string();
            println!("{} {name} (attempt {})", app.greeting, job.attempts);
            app.greeted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    );
    pgq.run(RunOptions {
        mode: Mode::Drain,
        ..RunOptions::default()
    })
    .await?;
    assert_eq!(app.greeted.load(Ordering::SeqCst), 2);
    Ok(())
}
