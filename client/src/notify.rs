//! Notifications on channel `pgq`, and a connection that listens for them.
//!
//! The queue sends three kinds, each a JSON object with a `type` (docs/sql-api.md):
//! `enqueued` (jobs of these entrypoints can run now), `cancel` (these jobs were cancelled
//! while picked) and `configured` (these entrypoints' settings changed); and on channel
//! `pgq_done`, `done` (these jobs ended), for entrypoints that opted in. Anyone who can
//! connect can send a notification on any channel, so a notification is a hint to look, never
//! an authority: the runtime confirms a cancel with the database before it acts on it.
//!
//! ```no_run
//! # async fn example() -> Result<(), pgqueuer::Error> {
//! use pgqueuer::{Event, Listener};
//! let mut listener = Listener::connect(&pgqueuer::config_from_env()?).await?;
//! while let Some(notification) = listener.next().await {
//!     if let Event::Enqueued { entrypoints } = notification.event() {
//!         println!("work for {entrypoints:?}");
//!     }
//! }
//! # Ok(()) }
//! ```

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client};

use crate::config::Settings;

use crate::Error;

/// The channel the queue notifies on.
pub const CHANNEL: &str = "pgq";

/// The channel of completion notifications (`{"type": "done", "ids": [...]}`), sent for the
/// jobs of entrypoints configured with `notify_completion`.
pub const DONE_CHANNEL: &str = "pgq_done";

/// A notification as it arrived: who sent it, on which channel, and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The process id of the sending backend.
    pub process_id: i32,
    /// The channel it was sent on.
    pub channel: String,
    /// Its payload, as sent.
    pub payload: String,
}

/// What a notification on channel `pgq` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Jobs of these entrypoints can run now.
    Enqueued {
        /// The entrypoints.
        entrypoints: Vec<String>,
    },
    /// These picked jobs were cancelled (a hint: check with `pgq.cancel_requested`).
    Cancel {
        /// The job ids.
        ids: Vec<i64>,
    },
    /// The settings of these entrypoints changed (`pgq.configure`).
    Configured {
        /// The entrypoints.
        entrypoints: Vec<String>,
    },
    /// These jobs ended (channel [`DONE_CHANNEL`]; a hint: read `pgq.job_status`).
    Done {
        /// The job ids.
        ids: Vec<i64>,
    },
    /// Anything else: not JSON, or a type this client does not know.
    Other,
}

impl Notification {
    /// What the payload says; [`Event::Other`] when it is not one of the queue's.
    pub fn event(&self) -> Event {
        let Ok(payload) = serde_json::from_str::<Value>(&self.payload) else {
            return Event::Other;
        };
        let names = || -> Vec<String> {
            let list = payload.get("entrypoints").and_then(Value::as_array);
            list.into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        let ids = || -> Vec<i64> {
            let list = payload.get("ids").and_then(Value::as_array);
            list.into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect()
        };
        match payload.get("type").and_then(Value::as_str) {
            Some("enqueued") => Event::Enqueued {
                entrypoints: names(),
            },
            Some("configured") => Event::Configured {
                entrypoints: names(),
            },
            Some("cancel") => Event::Cancel { ids: ids() },
            Some("done") => Event::Done { ids: ids() },
            _ => Event::Other,
        }
    }
}

/// A connection that LISTENs on one channel and hands over its notifications in arrival order
/// (PostgreSQL delivers them in commit order).
#[derive(Debug)]
pub struct Listener {
    client: Client,
    notifications: mpsc::UnboundedReceiver<Notification>,
}

impl Listener {
    /// Connects and LISTENs on channel [`CHANNEL`].
    pub async fn connect(config: &Settings) -> Result<Listener, Error> {
        Listener::connect_to(config, CHANNEL).await
    }

    /// Connects and LISTENs on `channel`.
    pub async fn connect_to(config: &Settings, channel: &str) -> Result<Listener, Error> {
        let (client, mut connection) = crate::connect::establish(config, " (to LISTEN)").await?;
        let (sender, notifications) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(notification)) => {
                        let notification = Notification {
                            process_id: notification.process_id(),
                            channel: notification.channel().to_string(),
                            payload: notification.payload().to_string(),
                        };
                        if sender.send(notification).is_err() {
                            break;
                        }
                    }
                    Ok(AsyncMessage::Notice(notice)) => {
                        tracing::info!(severity = notice.severity(), "{}", notice.message());
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "the LISTEN connection ended with an error");
                        break;
                    }
                }
            }
        });
        let plain = channel.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && channel
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let name = match plain {
            true => channel.to_string(),
            false => format!("\"{}\"", channel.replace('"', "\"\"")),
        };
        client.batch_execute(&format!("LISTEN {name}")).await?;
        Ok(Listener {
            client,
            notifications,
        })
    }

    /// The next notification; `None` once the connection has ended. Cancel-safe: in a
    /// `tokio::select!`, a notification is never lost.
    pub async fn next(&mut self) -> Option<Notification> {
        self.notifications.recv().await
    }

    /// The listening session (usable for queries too).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload: &str) -> Event {
        Notification {
            process_id: 1,
            channel: CHANNEL.into(),
            payload: payload.into(),
        }
        .event()
    }

    #[test]
    fn each_kind_of_payload_is_read() {
        assert_eq!(
            event(r#"{"type": "enqueued", "entrypoints": ["mail", "sms"]}"#),
            Event::Enqueued {
                entrypoints: vec!["mail".into(), "sms".into()]
            }
        );
        assert_eq!(
            event(r#"{"type": "configured", "entrypoints": ["mail"]}"#),
            Event::Configured {
                entrypoints: vec!["mail".into()]
            }
        );
        assert_eq!(
            event(r#"{"type": "cancel", "ids": [3, 4]}"#),
            Event::Cancel { ids: vec![3, 4] }
        );
        assert_eq!(
            event(r#"{"type": "done", "ids": [5]}"#),
            Event::Done { ids: vec![5] }
        );
        assert_eq!(event("not json"), Event::Other);
        assert_eq!(event(r#"{"type": "party"}"#), Event::Other);
        assert_eq!(
            event(r#"{"type": "enqueued", "entrypoints": "mail"}"#),
            Event::Enqueued {
                entrypoints: vec![]
            }
        );
    }
}
