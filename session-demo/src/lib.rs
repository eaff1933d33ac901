#![doc = include_str!("../README.md")]

mod app;
mod backend;
pub mod csrf;
mod error;
mod forms;
pub mod html;
mod options;

use std::net::SocketAddr;

pub use app::{MAX_NAME_CHARS, router};
pub use backend::open_manager;
pub use error::DemoError;
pub use options::{BackendKind, Options, SameSiteArg, Sealing, parse_duration};

/// A running demo server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Opens the backend, binds `options.host:options.port` (port 0: any free one)
    /// and starts serving in a background task.
    pub async fn start(options: &Options) -> Result<Self, DemoError> {
        let manager = open_manager(options).await?;
        let app = router(manager, options.backend.name());
        let listener = tokio::net::TcpListener::bind((options.host, options.port)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    // Without a signal handler the server simply runs until aborted.
                    if tokio::signal::ctrl_c().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                })
                .await
        });
        Ok(Self { addr, task })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:3000`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server stops (Ctrl-C).
    pub async fn wait(mut self) -> Result<(), DemoError> {
        match (&mut self.task).await {
            Ok(result) => Ok(result?),
            Err(join) => Err(DemoError::Io(std::io::Error::other(join))),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Tests start many servers; each stops with its handle.
        self.task.abort();
    }
}
