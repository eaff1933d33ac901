//! Errors in building keys and key rings.

use session_core::{ConfigError, Error};

/// Why a [`Key`](crate::Key) or [`KeyRing`](crate::KeyRing) could not be built.
/// Never contains secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The secret is shorter than [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes.
    #[error("secret of key {id:?} is {len} bytes; at least {min} are required")]
    SecretTooShort {
        /// The key's id.
        id: String,
        /// The secret's length.
        len: usize,
        /// The minimum length.
        min: usize,
    },
    /// The key id is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid key id {0:?}: must be 1 to 32 characters of [A-Za-z0-9._-]")]
    InvalidId(String),
    /// Two keys in one ring have the same id.
    #[error("key id {0:?} appears twice in the key ring")]
    DuplicateId(String),
    /// No key with this id is in the ring.
    #[error("no key {0:?} in the key ring")]
    UnknownId(String),
    /// A key ring needs at least one key (the one that signs and encrypts).
    #[error("a key ring needs at least one key")]
    Empty,
}

impl From<KeyError> for Error {
    /// A key problem is a configuration problem: [`Error::Config`] with
    /// [`ConfigError::Invalid`] for the setting `"key ring"`.
    fn from(e: KeyError) -> Self {
        Error::Config(ConfigError::Invalid {
            setting: "key ring",
            reason: e.to_string(),
        })
    }
}
