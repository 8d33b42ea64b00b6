//! Dedupe keys: while a job with a key is queued or running, another with the same key is
//! refused (or skipped).
//!
//! ```text
//! cargo run -p pgqueuer-client --example dedupe
//! ```

use pgqueuer::{Error, NewJob, OnConflict, Queries};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let q = Queries::new(pgqueuer::connect_from_env().await?);
    let welcome = || {
        NewJob::new("send_mail")
            .payload("welcome")
            .dedupe_key("welcome-ann")
    };

    let first = q.enqueue_many(&[welcome()], OnConflict::Raise).await?;
    println!("enqueued {first:?}");
    // The same key again: Skip returns None for it ...
    let again = q.enqueue_many(&[welcome()], OnConflict::Skip).await?;
    assert_eq!(again, [None]);
    // ... and Raise fails the whole batch with Error::Duplicate.
    match q.enqueue_many(&[welcome()], OnConflict::Raise).await {
        Err(Error::Duplicate { message, .. }) => println!("refused: {message}"),
        other => panic!("expected a duplicate, got {other:?}"),
    }
    Ok(())
}
