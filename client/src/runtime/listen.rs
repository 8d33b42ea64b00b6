//! The runtime's one LISTEN connection, shared by its lanes. Each notification that concerns the
//! runtime goes to every lane. When the connection ends (a restart, `pg_terminate_backend`), it
//! is replaced with backoff, and the lanes are told so that they check for a cancel notified
//! meanwhile and claim in case an `enqueued` was missed.

use std::time::Duration;

use crate::config::Settings;
use tokio::sync::broadcast;

use crate::{Event, Listener};

/// What a lane hears from the LISTEN connection.
#[derive(Debug, Clone)]
pub(super) enum Wake {
    /// A notification about one of the runtime's entrypoints, or a cancel.
    Event(Event),
    /// The connection was replaced: notifications may have been missed.
    Relistened,
}

/// Room for this many notifications a lane has not read yet; a lane that falls further behind
/// is told it missed some, and acts as after [`Wake::Relistened`].
pub(super) const BACKLOG: usize = 1024;

/// Passes on notifications until the runtime ends (this task is aborted then).
pub(super) async fn fan_out(
    config: Settings,
    mut listener: Listener,
    names: Vec<String>,
    lanes: broadcast::Sender<Wake>,
) {
    let ours = |entrypoints: &[String]| entrypoints.iter().any(|name| names.contains(name));
    loop {
        match listener.next().await {
            Some(notification) => {
                let event = notification.event();
                let concerns = match &event {
                    Event::Enqueued { entrypoints } | Event::Configured { entrypoints } => {
                        ours(entrypoints)
                    }
                    Event::Cancel { .. } => true,
                    Event::Done { .. } | Event::Other => false,
                };
                if concerns {
                    let _ = lanes.send(Wake::Event(event));
                }
            }
            None => {
                tracing::warn!("the LISTEN connection ended; listening again");
                listener = relisten(&config).await;
                let _ = lanes.send(Wake::Relistened);
            }
        }
    }
}

/// A new LISTEN connection, retried with backoff (100 ms doubling to 5 s) until it works.
async fn relisten(config: &Settings) -> Listener {
    let mut wait = Duration::from_millis(100);
    loop {
        tokio::time::sleep(wait).await;
        match Listener::connect(config).await {
            Ok(listener) => return listener,
            Err(error) => {
                tracing::warn!(%error, ?wait, "listening again failed");
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}
