#![doc = include_str!("../README.md")]

mod encrypted;
mod format;
mod signed;

pub use encrypted::EncryptedCookies;
pub use format::{FORMAT_ENCRYPTED_V1, FORMAT_SIGNED_V1, MAX_COOKIE_VALUE_LEN, sealed_key_id};
pub use signed::SignedCookies;

/// Re-exported: the key ring both sealers take.
pub use session_crypto::{Key, KeyError, KeyRing};
