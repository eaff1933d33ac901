//! Known answers for both cookie formats, computed independently by
//! `session-crypto/scripts/kat.py`, and the layout of freshly sealed values.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use session_cookie::{
    EncryptedCookies, FORMAT_ENCRYPTED_V1, FORMAT_SIGNED_V1, Key, KeyRing, SignedCookies,
    sealed_key_id,
};
use session_core::CookieSealer;
use session_core::time::{Duration, OffsetDateTime};
use sha2::{Digest, Sha256};
use time::macros::datetime;

/// The cookie name every value here is sealed for (authenticated, not stored).
const NAME: &str = "session_id";
const PAYLOAD: &[u8] = br#"{"v":1,"created":0,"abs":1,"data":{"user":42}}"#;
const DEADLINE: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);
// The known answers were computed outside Rust (Python: hashlib/hmac and the
// `cryptography` package's ChaCha20Poly1305 behind a hand-written HChaCha20, fixed
// nonce 0x40..0x57), from the layout in the crate README, name binding included.
const SIGNED_KAT: &str = "AQVrYXQtMQAAAbjaxbQAeyJ2IjoxLCJjcmVhdGVkIjowLCJhYnMiOjEsImRhdGEiOnsidXNlciI6NDJ9fctvWe9Ms-uHH8GHcnNscqcfCtgy6eE5JoRm0txET30q";
const ENCRYPTED_KAT: &str = "AgVrYXQtMQAAAbjaxbQAQEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXa7AdR3v65sI4tnHEEcffBBXP8bIpKh8NBcH4bWptpUP1nKTbRgsmmd8UVPVyp5cKWzUxuth-DjpDIV3T8KQ";

fn kat_ring() -> KeyRing {
    KeyRing::new(Key::new("kat-1", (0u8..32).collect::<Vec<_>>()).unwrap())
}

/// A fixed, high-entropy secret per number: SHA-256 of a label (stable keys
/// that pass the weak-secret check).
fn secret(n: u8) -> [u8; 32] {
    Sha256::digest(format!("session-cookie test key {n}")).into()
}

fn before_deadline() -> OffsetDateTime {
    DEADLINE - Duration::milliseconds(1)
}

#[test]
fn known_answer_signed() {
    let sealer = SignedCookies::new(kat_ring());
    // Signing is deterministic: the exact value.
    assert_eq!(sealer.seal(NAME, PAYLOAD, DEADLINE).unwrap(), SIGNED_KAT);
    assert_eq!(
        sealer.open(NAME, SIGNED_KAT, before_deadline()).as_deref(),
        Some(PAYLOAD)
    );
    assert_eq!(sealer.open(NAME, SIGNED_KAT, DEADLINE), None);
    assert_eq!(sealed_key_id(SIGNED_KAT).as_deref(), Some("kat-1"));
}

#[test]
fn known_answer_encrypted() {
    let sealer = EncryptedCookies::new(kat_ring());
    assert_eq!(
        sealer
            .open(NAME, ENCRYPTED_KAT, before_deadline())
            .as_deref(),
        Some(PAYLOAD)
    );
    assert_eq!(sealer.open(NAME, ENCRYPTED_KAT, DEADLINE), None);
    assert_eq!(sealed_key_id(ENCRYPTED_KAT).as_deref(), Some("kat-1"));
}

/// `open_with_deadline` gives the payload `open` gives and the deadline in the
/// known answers' header; a sealed deadline comes back at millisecond precision
/// (what the header keeps), for either format.
#[test]
fn open_with_deadline_tells_the_sealed_deadline() {
    let ring = kat_ring();
    let signed: &dyn CookieSealer = &SignedCookies::new(ring.clone());
    let encrypted: &dyn CookieSealer = &EncryptedCookies::new(ring);
    for (sealer, kat) in [(signed, SIGNED_KAT), (encrypted, ENCRYPTED_KAT)] {
        let opened = sealer
            .open_with_deadline(NAME, kat, before_deadline())
            .unwrap();
        assert_eq!(opened.payload, PAYLOAD);
        assert_eq!(opened.expires_at, Some(DEADLINE));
        assert_eq!(sealer.open_with_deadline(NAME, kat, DEADLINE), None);
        assert_eq!(
            sealer.open_with_deadline("other", kat, before_deadline()),
            None
        );

        let sealed_at = datetime!(2031-06-30 23:59:59.123_456_789 -08:00);
        let value = sealer.seal(NAME, PAYLOAD, sealed_at).unwrap();
        let opened = sealer
            .open_with_deadline(NAME, &value, sealed_at - Duration::days(1))
            .unwrap();
        assert_eq!(
            opened.expires_at,
            Some(datetime!(2031-07-01 07:59:59.123 UTC))
        );
    }
}

#[test]
fn layout_of_fresh_values() {
    let ring = KeyRing::new(Key::new("abc", secret(9)).unwrap());
    let deadline = datetime!(2030-01-01 0:00:00.123_456 UTC);
    let header = |format: u8| {
        let mut h = vec![format, 3, b'a', b'b', b'c'];
        h.extend_from_slice(&1_893_456_000_123i64.to_be_bytes());
        h
    };

    let signed = SignedCookies::new(ring.clone())
        .seal(NAME, b"xyz", deadline)
        .unwrap();
    let bytes = URL_SAFE_NO_PAD.decode(&signed).unwrap();
    assert_eq!(bytes[..13], header(FORMAT_SIGNED_V1)[..]);
    assert_eq!(&bytes[13..16], b"xyz");
    assert_eq!(bytes.len(), 13 + 3 + 32);

    let sealer = EncryptedCookies::new(ring);
    let encrypted = sealer.seal(NAME, b"xyz", deadline).unwrap();
    let bytes = URL_SAFE_NO_PAD.decode(&encrypted).unwrap();
    assert_eq!(bytes[..13], header(FORMAT_ENCRYPTED_V1)[..]);
    assert_eq!(bytes.len(), 13 + 24 + 3 + 16);
    // Random nonces: the same session never seals to the same value twice.
    assert_ne!(encrypted, sealer.seal(NAME, b"xyz", deadline).unwrap());
    // Cookie-safe characters only.
    for v in [&signed, &encrypted] {
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{v}"
        );
    }
}

/// A value of one format never opens as the other, even under the same key.
#[test]
fn formats_do_not_cross() {
    let ring = KeyRing::new(Key::new("k", secret(5)).unwrap());
    let signed = SignedCookies::new(ring.clone());
    let encrypted = EncryptedCookies::new(ring);
    let now = OffsetDateTime::now_utc();
    let deadline = now + Duration::hours(1);
    let s = signed.seal(NAME, PAYLOAD, deadline).unwrap();
    let e = encrypted.seal(NAME, PAYLOAD, deadline).unwrap();
    assert!(signed.open(NAME, &s, now).is_some());
    assert!(encrypted.open(NAME, &e, now).is_some());
    assert_eq!(signed.open(NAME, &e, now), None);
    assert_eq!(encrypted.open(NAME, &s, now), None);
    // Relabelling the format byte does not help either.
    let mut relabelled = URL_SAFE_NO_PAD.decode(&s).unwrap();
    relabelled[0] = FORMAT_ENCRYPTED_V1;
    assert_eq!(
        encrypted.open(NAME, &URL_SAFE_NO_PAD.encode(&relabelled), now),
        None
    );
}

#[test]
fn encrypted_values_hide_the_payload() {
    let sealer = EncryptedCookies::new(KeyRing::new(Key::new("k", secret(5)).unwrap()));
    let value = sealer
        .seal(
            NAME,
            b"{\"secret\":\"hunter2\"}",
            OffsetDateTime::now_utc() + Duration::hours(1),
        )
        .unwrap();
    let bytes = URL_SAFE_NO_PAD.decode(&value).unwrap();
    assert!(!bytes.windows(7).any(|w| w == b"hunter2"));
    assert!(!bytes.windows(6).any(|w| w == b"secret"));
}
