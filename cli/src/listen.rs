//! `pgq listen`: prints every notification on channel `pgq`, one payload a line, until
//! SIGINT or SIGTERM. It says on stderr when it is listening.

use std::io::Write;

use pgqueuer::Listener;

use crate::failure::Failure;

pub async fn listen(dsn: Option<&str>) -> Result<(), Failure> {
    let config = match dsn {
        Some(dsn) => pgqueuer::config(dsn),
        None => pgqueuer::config_from_env(),
    }?;
    let shutdown = pgqueuer::shutdown_signal().map_err(|e| Failure::new(e.to_string()))?;
    let mut listener = Listener::connect(&config).await.map_err(|error| Failure {
        message: error.to_string(),
        code: crate::failure::exit::CONNECTION,
    })?;
    eprintln!("pgq: listening on channel pgq (Ctrl-C to stop)");
    let mut shutdown = std::pin::pin!(shutdown);
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            notification = listener.next() => match notification {
                Some(notification) => {
                    let _ = writeln!(out, "{}", notification.payload);
                    let _ = out.flush();
                }
                None => return Err(Failure::new("the connection ended")),
            },
            () = &mut shutdown => return Ok(()),
        }
    }
}
