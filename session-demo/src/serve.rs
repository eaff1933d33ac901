//! The HTTP/1 server loop: hyper directly, because `axum::serve` takes no
//! configuration and runs hyper without a timer, so it has no header-read timeout at
//! all (security review, issue 20: a client that sent half a request header held
//! its connection for as long as it liked).
//!
//! Each connection gets hyper's `header_read_timeout`: the whole request head (and,
//! on a kept-alive connection, the next one) must arrive within it, or the
//! connection is closed. Bodies are bounded in time and size where they are read
//! (see `forms.rs`).

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// How long a graceful shutdown waits for open connections before it gives up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then lets the open
/// connections finish their current request (up to [`SHUTDOWN_GRACE`]).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) if is_per_connection(&error) => continue,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of
                    // spinning, as axum::serve does.
                    eprintln!("session-demo: accept failed: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A closed, timed-out or malformed connection is the client's business.
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    Ok(())
}

/// Errors that concern one connection only (it was reset before we accepted it).
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
