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
    /// The secret keys (`SESSION_SECRET_KEYS` or `--secret-key-file`) are not
    /// `ID:BASE64` lines with valid ids and long enough secrets, or the file cannot
    /// be read. The message never quotes a key.
    #[error("invalid secret keys: {0}")]
    SecretKey(String),
    /// [`router`](crate::router) was given a manager whose session configuration is
    /// not the options' one.
    #[error("the session manager's configuration differs from the options")]
    ManagerConfig,
    /// The OS random source failed (drawing the CSRF key).
    #[error("no randomness: {0}")]
    Randomness(#[source] session_core::Error),
    /// The listening socket could not be bound, or the server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}
