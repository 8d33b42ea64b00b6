//! `pgq listen`: prints every notification on channel `pgq`, one payload a line, until
//! SIGINT or SIGTERM. It says on stderr when it is listening.

use std::io::Write;

use tokio::signal::unix::{SignalKind, signal};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::Failure;

pub async fn listen(dsn: Option<&str>) -> Result<(), Failure> {
    let config = match dsn {
        Some(dsn) => pgqueuer::config(dsn),
        None => pgqueuer::config_from_env(),
    }?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| Failure::new(e.to_string()))?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| Failure::new(e.to_string()))?;
    let (client, mut connection) = config.connect(NoTls).await.map_err(|error| Failure {
        message: format!("could not connect to PostgreSQL for LISTEN: {error}"),
        code: crate::exit::CONNECTION,
    })?;
    let (sender, mut payloads) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(notification) = message
                && sender.send(notification.payload().to_string()).is_err()
            {
                break;
            }
        }
    });
    client.batch_execute("LISTEN pgq").await?;
    eprintln!("pgq: listening on channel pgq (Ctrl-C to stop)");
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            payload = payloads.recv() => match payload {
                Some(payload) => {
                    let _ = writeln!(out, "{payload}");
                    let _ = out.flush();
                }
                None => return Err(Failure::new("the connection ended")),
            },
            _ = interrupt.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        }
    }
}
