#![doc = include_str!("../README.md")]

mod error;
mod key;
mod record;
mod ring;
mod store;

pub use error::{InvalidId, KeyError};
pub use key::{
    AEAD_OVERHEAD, AEAD_TAG_LEN, Domain, Key, MAC_LEN, MAX_CHECKED_PERIOD, MAX_KEY_ID_LEN,
    MIN_DISTINCT_BYTES, MIN_SECRET_LEN, NONCE_LEN,
};
pub use record::{RECORD_FORMAT_V1, is_plaintext_record, open_record, record_key_id, seal_record};
pub use ring::KeyRing;
pub use store::{EncryptedStore, EncryptedStoreBuilder, Migration};
