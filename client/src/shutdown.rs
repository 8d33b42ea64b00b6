//! The shutdown signal shared by the runtime and the long-running `pgq` commands.

use std::future::Future;

/// A future that completes on SIGINT or SIGTERM. The signal handlers are installed here, when
/// this is called, not when the future is first polled: a signal that arrives in between is
/// still seen. Fails only when the handlers cannot be installed.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
