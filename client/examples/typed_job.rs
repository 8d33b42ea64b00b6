//! Typed jobs: a serde type names its entrypoint once; producers enqueue values of it (one or
//! many, with priority, delay, dedupe key and headers) and the handler receives them.
//!
//! ```text
//! cargo run -p pgqueuer-client --example typed_job
//! ```

use pgqueuer::{Job, JobArgs, Mode, NewJob, OnConflict, PgQueuer, Queries, RunOptions};
use serde::{Deserialize, Serialize};

/// The arguments of a `send_email` job, stored as JSON in the payload.
#[derive(Debug, Serialize, Deserialize)]
struct SendEmail {
    to: String,
    subject: String,
}

impl JobArgs for SendEmail {
    const ENTRYPOINT: &'static str = "send_email";
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let q = Queries::new(pgqueuer::connect_from_env().await?);
    let welcome = SendEmail {
        to: "ada@example.com".into(),
        subject: "Welcome".into(),
    };
    let reminder = SendEmail {
        to: "ada@example.com".into(),
        subject: "Your trial ends soon".into(),
    };
    let ids = q
        .enqueue_many(
            &[
                NewJob::typed(&welcome)?
                    .priority(10)
                    .dedupe_key("welcome-ada"),
                // .delay(Duration::from_secs(3600)) would hold it back an hour.
                NewJob::typed(&reminder)?.header("tenant", "acme"),
            ],
            OnConflict::Skip,
        )
        .await?;
    println!("enqueued {ids:?}");

    let mut pgq = PgQueuer::from_env()?;
    pgq.job(|email: SendEmail, job: Job| async move {
        println!("job {}: mail {:?} to {}", job.id, email.subject, email.to);
        Ok(())
    });
    pgq.run(RunOptions {
        mode: Mode::Drain,
        ..RunOptions::default()
    })
    .await?;

    let sent: i64 = q
        .client()
        .query_one(
            "SELECT count(*) FROM pgq.log WHERE entrypoint = 'send_email' AND status = 'successful'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(sent, 2);
    Ok(())
}
