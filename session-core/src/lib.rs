#![doc = include_str!("../README.md")]

mod clock;
mod error;
mod store;
mod token;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock, system_clock};
pub use error::{BoxError, ConfigError, DecodeError, Error};
pub use store::{
    Capabilities, FIRST_VERSION, NewRecord, SaveMode, SessionInterface, StoredRecord, Version,
};
pub use token::{STORAGE_KEY_LEN, SessionToken, StorageKey, TOKEN_BYTES, TOKEN_COOKIE_LEN};

/// Re-exported so stores and users name the same versions.
pub use bytes::Bytes;
pub use time;
