//! Enqueue inside your own transaction: the job commits or rolls back with your rows.
//!
//! ```text
//! cargo run -p pgqueuer-client --example transaction     # PG* variables or DATABASE_URL
//! ```

use pgqueuer::{Mode, NewJob, OnConflict, PgQueuer, RunOptions, enqueue_in};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut client = pgqueuer::connect_from_env().await?;
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY)")
        .await?;

    // Rolled back: neither the order nor its job exists.
    let tx = client.transaction().await?;
    tx.execute("INSERT INTO orders VALUES (1)", &[]).await?;
    enqueue_in(
        &tx,
        &[NewJob::new("ship_order").payload("1")],
        OnConflict::Raise,
    )
    .await?;
    tx.rollback().await?;

    // Committed: both exist, and a worker runs the job.
    let tx = client.transaction().await?;
    tx.execute("INSERT INTO orders VALUES (2)", &[]).await?;
    enqueue_in(
        &tx,
        &[NewJob::new("ship_order").payload("2")],
        OnConflict::Raise,
    )
    .await?;
    tx.commit().await?;

    let mut pgq = PgQueuer::from_env()?;
    pgq.entrypoint("ship_order", |job| async move {
        println!(
            "shipping order {}",
            String::from_utf8_lossy(job.payload.as_deref().unwrap_or_default())
        );
        Ok(())
    });
    pgq.run(RunOptions {
        mode: Mode::Drain,
        ..RunOptions::default()
    })
    .await?;

    let shipped: i64 = client
        .query_one("SELECT count(*) FROM pgq.log WHERE entrypoint = 'ship_order' AND status = 'successful'", &[])
        .await?
        .get(0);
    assert_eq!(shipped, 1, "only the committed order's job ran");
    Ok(())
}
