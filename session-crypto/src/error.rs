//! Errors in building keys and key rings.

use session_core::{ConfigError, Error};

/// Why a [`Key`](crate::Key) or [`KeyRing`](crate::KeyRing) could not be built.
///
/// Never contains secret material, and never a key id either: ids come from
/// configuration, where a secret pasted into the id's place (`SECRET:ID`, a
/// missing separator) is a common slip, and errors end up in logs. Errors about
/// one key of a ring name its position instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The secret is shorter than [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes.
    #[error("key secret is {len} bytes; at least {min} are required")]
    SecretTooShort {
        /// The secret's length.
        len: usize,
        /// The minimum length.
        min: usize,
    },
    /// The secret is long enough but obviously not random (see
    /// [`Key::new`](crate::Key::new) for the rule).
    #[error("key secret is not random enough ({reason}); use 32 random bytes")]
    WeakSecret {
        /// Which rule it broke, in a few words (never the secret).
        reason: &'static str,
    },
    /// The key id is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid key id ({0}): must be 1 to 32 characters of [A-Za-z0-9._-]")]
    InvalidId(InvalidId),
    /// Two keys in one ring have the same id.
    #[error(
        "the key at position {position} of the key ring (0 = newest) has the id of an earlier key"
    )]
    DuplicateId {
        /// Position of the second key with that id, newest first from 0.
        position: usize,
    },
    /// No key with the given id is in the ring.
    #[error("no key with this id in the key ring")]
    UnknownId,
    /// A key ring needs at least one key (the one that signs and encrypts).
    #[error("a key ring needs at least one key")]
    Empty,
}

/// What is wrong with a key id, without the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidId {
    /// The id is empty.
    #[error("empty")]
    Empty,
    /// The id is longer than [`MAX_KEY_ID_LEN`](crate::MAX_KEY_ID_LEN) bytes.
    #[error("{len} bytes long")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A byte outside `[A-Za-z0-9._-]`.
    #[error("byte {position} is not allowed")]
    Character {
        /// Position of the first such byte, from 0.
        position: usize,
    },
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
