//! Why the demo could not start.

/// A failure to configure or start the demo. Request-time failures are pages, not
/// this type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The session options are inconsistent (e.g. `SameSite=None` without Secure).
    #[error("invalid session configuration: {0}")]
    Config(#[from] session_core::ConfigError),
    /// The chosen backend needs a URL (`--backend-url` / `SESSION_BACKEND_URL`).
    #[error("the {backend} backend needs --backend-url (or SESSION_BACKEND_URL)")]
    MissingUrl {
        /// The backend's command-line name.
        backend: &'static str,
    },
    /// The backend could not be opened or reached.
    #[error("the {backend} backend could not be opened: {source}")]
    Backend {
        /// The backend's command-line name.
        backend: &'static str,
        /// What went wrong.
        #[source]
        source: session_core::Error,
    },
    /// A `--secret-key` is not `ID:SECRET` with a valid id and a long enough secret.
    #[error("invalid --secret-key: {0}")]
    SecretKey(String),
    /// The listening socket could not be bound, or the server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}
