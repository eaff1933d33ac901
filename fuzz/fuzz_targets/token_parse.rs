//! Cookie-token parsing (`SessionToken::parse`) and storage-key parsing
//! (`StorageKey::parse`): any string must parse to a token or to "no session",
//! never panic, and a token that parses must be the canonical encoding of its
//! 32 bytes (one cookie string per token), hash to a well-formed storage key and
//! never show itself in `Debug`.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use session_core::{STORAGE_KEY_LEN, SessionToken, StorageKey, TOKEN_BYTES, TOKEN_COOKIE_LEN};

fn check_token(value: &str, token: &SessionToken) {
    // Canonical: re-encoding gives back exactly the input.
    assert_eq!(token.to_cookie_value(), value);
    assert_eq!(value.len(), TOKEN_COOKIE_LEN);
    let key = token.storage_key();
    assert_eq!(key.as_str().len(), STORAGE_KEY_LEN);
    assert_eq!(StorageKey::parse(key.as_str()).as_ref(), Some(&key));
    let debug = format!("{token:?}");
    assert!(!debug.contains(value), "Debug shows the token: {debug}");
}

fuzz_target!(|data: &[u8]| {
    // A first byte of 0 followed by 32 bytes: the cookie form of those bytes, which
    // must parse (the fuzzer then mutates around valid tokens too).
    if let [0, rest @ ..] = data
        && rest.len() == TOKEN_BYTES
    {
        let value = URL_SAFE_NO_PAD.encode(rest);
        let token = SessionToken::parse(&value).expect("a canonical token must parse");
        check_token(&value, &token);
    }
    let value = String::from_utf8_lossy(data);
    if let Some(token) = SessionToken::parse(&value) {
        check_token(&value, &token);
    }
    if let Some(key) = StorageKey::parse(&value) {
        assert_eq!(key.as_str(), value);
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
});
