//! Encrypted-record decoding (encryption at rest): arbitrary stored bytes. Must
//! never panic, and nothing may open without the key.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use session_core::{SessionToken, StorageKey};
use session_crypto::{Key, KeyRing, open_record, record_key_id};

static RING: LazyLock<(KeyRing, StorageKey)> = LazyLock::new(|| {
    let ring = KeyRing::new(Key::generate("k").unwrap());
    (ring, SessionToken::generate().unwrap().storage_key())
});

fuzz_target!(|data: &[u8]| {
    let (ring, key) = &*RING;
    assert!(open_record(ring, key, data).is_err());
    let _ = record_key_id(data);
});
