//! The command line's HTTP: `pgq metrics` and `pgq web` are axum apps, bound and served here
//! alike: bind the address (port 0 picks a free one), serve until SIGINT or SIGTERM, then
//! stop gracefully.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::failure::Failure;

/// Binds `listen`; returns the listener and the address it got.
pub async fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr), Failure> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|error| Failure::new(format!("cannot listen on {listen}: {error}")))?;
    let address = listener
        .local_addr()
        .map_err(|error| Failure::new(error.to_string()))?;
    Ok((listener, address))
}

/// Serves `router` until SIGINT or SIGTERM; then `stopping` is cancelled (so that streams the
/// app keeps open end) and the server waits for the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stopping: CancellationToken,
) -> Result<(), Failure> {
    let signal = pgqueuer::shutdown_signal().map_err(|e| Failure::new(e.to_string()))?;
    let shutdown = async move {
        signal.await;
        stopping.cancel();
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|error| Failure::new(error.to_string()))
}
