#![doc = include_str!("../README.md")]

mod error;
#[cfg(feature = "axum")]
mod extract;
mod layer;
mod service;

pub use error::{Error, ErrorResponder, StatusResponse};
#[cfg(feature = "axum")]
pub use extract::{CurrentSession, MissingSessionLayer};
pub use layer::SessionLayer;
pub use service::{ResponseFuture, SessionService};

/// Re-exported: the handle handlers receive.
pub use session_core::{Session, SessionManager};
