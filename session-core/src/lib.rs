#![doc = include_str!("../README.md")]

mod cleanup;
mod client_side;
mod clock;
mod codec;
mod config;
mod decision;
mod error;
mod manager;
mod pinned;
mod queue;
mod rotation;
mod sealer;
mod server_side;
mod session;
mod shared;
mod state;
mod store;
mod token;

pub use cleanup::{CleanupSchedule, spawn_cleanup};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock, system_clock};
pub use config::{SameSite, SessionConfig, SessionConfigBuilder};
pub use decision::CookieDecision;
pub use error::{BoxError, ConfigError, DecodeError, Error, JsonError, JsonErrorKind};
pub use manager::SessionManager;
pub use sealer::{CookieSealer, MAX_SET_COOKIE_BYTES, Opened};
pub use session::Session;
pub use store::{
    Capabilities, FIRST_VERSION, NewRecord, Refreshed, SaveMode, SessionInterface, StoredRecord,
    Version, load_then_touch,
};
pub use token::{STORAGE_KEY_LEN, SessionToken, StorageKey, TOKEN_BYTES, TOKEN_COOKIE_LEN};

/// The workspace README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadme;

/// Re-exported so stores and users name the same versions.
pub use bytes::Bytes;
/// Re-exported: the `Set-Cookie` values in [`CookieDecision`] are `cookie::Cookie`s.
pub use cookie;
/// Re-exported: deadlines are `time::OffsetDateTime`.
pub use time;
