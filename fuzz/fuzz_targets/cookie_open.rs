//! Cookie decoding: arbitrary cookie values into both sealers. Must never panic;
//! nothing the fuzzer makes may open (it has no key), except by breaking HMAC or
//! Poly1305.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use session_cookie::{EncryptedCookies, Key, KeyRing, SignedCookies, sealed_key_id};
use session_core::CookieSealer;
use session_core::time::OffsetDateTime;

static SEALERS: LazyLock<(SignedCookies, EncryptedCookies)> = LazyLock::new(|| {
    let ring = KeyRing::from_keys([
        Key::generate("k").unwrap(),
        Key::generate("old").unwrap(),
    ])
    .unwrap();
    (
        SignedCookies::new(ring.clone()),
        EncryptedCookies::new(ring),
    )
});

fuzz_target!(|data: &[u8]| {
    let (signed, encrypted) = &*SEALERS;
    let now = OffsetDateTime::UNIX_EPOCH;
    // Half the inputs as a cookie string, half as the sealed bytes behind the
    // base64, so the fuzzer reaches the header and tag checks quickly.
    let value = match data.split_first() {
        Some((0, rest)) => {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rest)
        }
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    assert!(signed.open("session_id", &value, now).is_none());
    assert!(encrypted.open("session_id", &value, now).is_none());
    let _ = sealed_key_id(&value);
});
