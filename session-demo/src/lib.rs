#![doc = include_str!("../README.md")]

mod api;
mod app;
mod backend;
pub mod csrf;
mod error;
mod forms;
pub mod html;
mod options;
pub mod secrets;
mod serve;

use std::net::SocketAddr;

pub use app::{MAX_NAME_CHARS, router};
pub use backend::open_manager;
pub use error::DemoError;
pub use options::{
    BackendKind, Options, SameSiteArg, Sealing, parse_duration, parse_positive_duration,
};
use session_core::{CleanupSchedule, spawn_cleanup};

use crate::options::to_std;

/// A running demo server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The purge of expired sessions, when the store has one to run.
    cleanup: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Reads the secret keys, opens the backend, binds `options.host:options.port`
    /// (port 0: any free one), starts serving in a background task, and — unless
    /// `--cleanup-interval` is 0 or the backend has no store — starts the purge of
    /// expired sessions (`session_core::spawn_cleanup`).
    pub async fn start(options: &Options) -> Result<Self, DemoError> {
        let secrets = options.secret_keys()?;
        let manager = open_manager(options, &secrets).await?;
        let csrf = csrf::Csrf::new(&secrets, manager.config()).map_err(DemoError::Randomness)?;
        drop(secrets);
        let interval = to_std(options.cleanup_interval);
        let cleanup = match manager.store() {
            Some(store) if !interval.is_zero() => Some(spawn_cleanup(
                store.clone(),
                CleanupSchedule::every(interval),
                // Stopped by aborting the task when the server is dropped.
                std::future::pending::<()>(),
            )),
            _ => None,
        };
        let app = router(manager, options, csrf)?;
        let listener = tokio::net::TcpListener::bind((options.host, options.port)).await?;
        let addr = listener.local_addr()?;
        let header_read_timeout = to_std(options.header_read_timeout);
        let task = tokio::spawn(serve::serve(listener, app, header_read_timeout, async {
            // Without a signal handler the server simply runs until aborted.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        Ok(Self {
            addr,
            task,
            cleanup,
        })
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
        if let Some(cleanup) = &self.cleanup {
            cleanup.abort();
        }
    }
}
