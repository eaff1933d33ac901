//! Everything that is not a live, authentic value of the sealer's format under a
//! key of its ring opens to `None`: tampered, truncated, extended, re-ordered,
//! wrongly keyed, expired, oversized, or garbage. Both sealers, with proptest.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::sample::Index;
use session_cookie::{EncryptedCookies, Key, KeyRing, MAX_COOKIE_VALUE_LEN, SignedCookies};
use session_core::time::{Duration, OffsetDateTime};
use session_core::{CookieSealer, Error};
use sha2::{Digest, Sha256};

/// The cookie name values are sealed for in these tests.
const NAME: &str = "session_id";

/// A fixed, high-entropy secret per number: SHA-256 of a label (stable keys
/// that pass the weak-secret check).
fn secret(n: u8) -> [u8; 32] {
    Sha256::digest(format!("session-cookie test key {n}")).into()
}

fn ring(id: &str, n: u8) -> KeyRing {
    KeyRing::new(Key::new(id, secret(n)).unwrap())
}

/// Both sealers over the same ring.
fn sealers(ring: KeyRing) -> [Box<dyn CookieSealer>; 2] {
    [
        Box::new(SignedCookies::new(ring.clone())),
        Box::new(EncryptedCookies::new(ring)),
    ]
}

fn now() -> OffsetDateTime {
    time::macros::datetime!(2030-06-01 12:00 UTC)
}

fn decode(v: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(v).unwrap()
}

fn encode(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..300)
}

proptest! {
    #[test]
    fn round_trip(payload in payload(), secs in 1i64..10_000_000) {
        for sealer in sealers(ring("k", 1)) {
            let value = sealer.seal(NAME, &payload, now() + Duration::seconds(secs)).unwrap();
            prop_assert_eq!(sealer.open(NAME, &value, now()), Some(payload.clone()));
        }
    }

    /// A value opens only under the cookie name it was sealed for: any other name
    /// (a prefix, an extension, another case) is refused.
    #[test]
    fn values_open_only_under_their_cookie_name(
        payload in payload(),
        name in "[A-Za-z0-9_-]{1,24}",
        other in "[A-Za-z0-9_-]{0,24}",
    ) {
        prop_assume!(name != other);
        for sealer in sealers(ring("k", 1)) {
            let value = sealer.seal(&name, &payload, now() + Duration::hours(1)).unwrap();
            prop_assert_eq!(sealer.open(&name, &value, now()), Some(payload.clone()));
            prop_assert_eq!(sealer.open(&other, &value, now()), None);
        }
    }

    /// Every single-bit flip of the sealed bytes is rejected.
    #[test]
    fn every_bit_flip_is_rejected(payload in payload(), bit in any::<Index>()) {
        for sealer in sealers(ring("k", 1)) {
            let mut bytes = decode(&sealer.seal(NAME, &payload, now() + Duration::hours(1)).unwrap());
            let bit = bit.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(sealer.open(NAME, &encode(&bytes), now()), None);
        }
    }

    /// Replacing any one character of the cookie value with another base64url
    /// character is rejected (non-canonical spellings included).
    #[test]
    fn every_character_substitution_is_rejected(
        payload in payload(),
        at in any::<Index>(),
        with in proptest::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec()),
    ) {
        for sealer in sealers(ring("k", 1)) {
            let mut value = sealer.seal(NAME, &payload, now() + Duration::hours(1)).unwrap().into_bytes();
            let at = at.index(value.len());
            prop_assume!(value[at] != with);
            value[at] = with;
            let value = String::from_utf8(value).unwrap();
            prop_assert_eq!(sealer.open(NAME, &value, now()), None);
        }
    }

    /// Every truncation (of bytes or of characters) and every extension is rejected.
    #[test]
    fn truncated_or_extended_values_are_rejected(
        payload in payload(),
        cut in any::<Index>(),
        extra in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        for sealer in sealers(ring("k", 1)) {
            let value = sealer.seal(NAME, &payload, now() + Duration::hours(1)).unwrap();
            let chars = cut.index(value.len());
            prop_assert_eq!(sealer.open(NAME, &value[..chars], now()), None);
            let bytes = decode(&value);
            let cut = cut.index(bytes.len());
            prop_assert_eq!(sealer.open(NAME, &encode(&bytes[..cut]), now()), None);
            let mut longer = bytes.clone();
            longer.extend_from_slice(&extra);
            prop_assert_eq!(sealer.open(NAME, &encode(&longer), now()), None);
        }
    }

    /// Swapping two different chunks of a value is rejected.
    #[test]
    fn reordered_values_are_rejected(
        payload in proptest::collection::vec(any::<u8>(), 16..200),
        a in any::<Index>(),
        b in any::<Index>(),
        len in 1usize..16,
    ) {
        for sealer in sealers(ring("k", 1)) {
            let bytes = decode(&sealer.seal(NAME, &payload, now() + Duration::hours(1)).unwrap());
            let chunks = bytes.len() / len;
            let (i, j) = (a.index(chunks) * len, b.index(chunks) * len);
            prop_assume!(bytes[i..i + len] != bytes[j..j + len]);
            let mut swapped = bytes.clone();
            swapped[i..i + len].copy_from_slice(&bytes[j..j + len]);
            swapped[j..j + len].copy_from_slice(&bytes[i..i + len]);
            prop_assert_eq!(sealer.open(NAME, &encode(&swapped), now()), None);
        }
    }

    /// Arbitrary strings never open and never panic.
    #[test]
    fn arbitrary_strings_are_rejected(s in ".{0,400}") {
        for sealer in sealers(ring("k", 1)) {
            prop_assert_eq!(sealer.open(NAME, &s, now()), None);
        }
    }

    /// Arbitrary bytes behind a valid header (right format, known key, live
    /// deadline) never open: only a valid tag does.
    #[test]
    fn forged_bodies_are_rejected(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        for (format, sealer) in [1u8, 2].into_iter().zip(sealers(ring("k", 1))) {
            let mut bytes = vec![format, 1, b'k'];
            bytes.extend_from_slice(&i64::MAX.to_be_bytes());
            bytes.extend_from_slice(&body);
            prop_assert_eq!(sealer.open(NAME, &encode(&bytes), now()), None);
        }
    }
}

#[test]
fn one_key_ring_for_two_cookies_does_not_let_one_stand_in_for_the_other() {
    let deadline = now() + Duration::hours(1);
    for sealer in sealers(ring("k", 1)) {
        let user = sealer.seal("user_session", b"{}", deadline).unwrap();
        assert_eq!(sealer.open("admin_session", &user, now()), None);
        // The name's length is bound too: moving bytes between name and value fails.
        assert_eq!(sealer.open("user_sessio", &user, now()), None);
        assert_eq!(sealer.open("", &user, now()), None);
    }
}

#[test]
fn wrong_keys_are_rejected() {
    let deadline = now() + Duration::hours(1);
    for (ours, theirs) in sealers(ring("k", 1)).into_iter().zip(sealers(ring("k", 2))) {
        // Same id, other secret.
        let value = theirs.seal(NAME, b"{}", deadline).unwrap();
        assert_eq!(ours.open(NAME, &value, now()), None);
    }
    for (ours, theirs) in sealers(ring("k", 1))
        .into_iter()
        .zip(sealers(ring("other", 1)))
    {
        // Same secret, an id the ring does not have.
        let value = theirs.seal(NAME, b"{}", deadline).unwrap();
        assert_eq!(ours.open(NAME, &value, now()), None);
    }
    // The header claims a key of the ring, but another key sealed it.
    for (ours, theirs) in sealers(ring("k", 1)).into_iter().zip(sealers(ring("j", 2))) {
        let mut bytes = decode(&theirs.seal(NAME, b"{}", deadline).unwrap());
        bytes[2] = b'k';
        assert_eq!(ours.open(NAME, &encode(&bytes), now()), None);
    }
}

#[test]
fn expired_values_are_rejected() {
    for sealer in sealers(ring("k", 1)) {
        let deadline = now() + Duration::minutes(30);
        let value = sealer.seal(NAME, b"{}", deadline).unwrap();
        assert!(sealer.open(NAME, &value, now()).is_some());
        assert!(
            sealer
                .open(NAME, &value, deadline - Duration::milliseconds(1))
                .is_some()
        );
        assert_eq!(sealer.open(NAME, &value, deadline), None);
        assert_eq!(
            sealer.open(NAME, &value, deadline + Duration::days(365)),
            None
        );
        // Sealed already dead.
        let dead = sealer
            .seal(NAME, b"{}", now() - Duration::seconds(1))
            .unwrap();
        assert_eq!(sealer.open(NAME, &dead, now()), None);
        // Moving the deadline forward breaks the tag.
        let mut bytes = decode(&value);
        bytes[3 + 7] = bytes[3 + 7].wrapping_add(1);
        assert_eq!(sealer.open(NAME, &encode(&bytes), deadline), None);
    }
}

/// Values over `MAX_COOKIE_VALUE_LEN` (8 KiB, as the README says) open to nothing and are never sealed; the largest value that fits round-trips.
#[test]
fn oversized_values_are_refused() {
    assert_eq!(MAX_COOKIE_VALUE_LEN, 8 * 1024);
    for sealer in sealers(ring("k", 1)) {
        // A genuine value, padded past the limit with trailing garbage.
        let value = sealer
            .seal(NAME, b"{}", now() + Duration::hours(1))
            .unwrap();
        let huge = format!("{value}{}", "A".repeat(MAX_COOKIE_VALUE_LEN));
        assert_eq!(sealer.open(NAME, &huge, now()), None);
        assert_eq!(sealer.open(NAME, &"A".repeat(10 << 20), now()), None);
        // Sealing what open would refuse is a typed error, not a dead cookie.
        match sealer.seal(
            NAME,
            &vec![b'x'; MAX_COOKIE_VALUE_LEN],
            now() + Duration::hours(1),
        ) {
            Err(Error::CookieTooLarge { size, limit }) => {
                assert!(size > limit);
                assert_eq!(limit, MAX_COOKIE_VALUE_LEN);
            }
            other => panic!("{other:?}"),
        }
        // The largest payload that fits still round-trips.
        let mut n = MAX_COOKIE_VALUE_LEN * 3 / 4 - 100;
        while sealer
            .seal(NAME, &vec![b'x'; n + 1], now() + Duration::hours(1))
            .is_ok()
        {
            n += 1;
        }
        let value = sealer
            .seal(NAME, &vec![b'x'; n], now() + Duration::hours(1))
            .unwrap();
        assert!(value.len() <= MAX_COOKIE_VALUE_LEN);
        assert_eq!(sealer.open(NAME, &value, now()).map(|p| p.len()), Some(n));
    }
}

#[test]
fn garbage_is_rejected() {
    let valid = SignedCookies::new(ring("k", 1))
        .seal(NAME, b"{}", now() + Duration::hours(1))
        .unwrap();
    let cases = [
        String::new(),
        "=".into(),
        "AQ".into(),
        "../../etc/passwd".into(),
        "'; DROP TABLE sessions; --".into(),
        format!("{valid}="),
        format!(" {valid}"),
        format!("{valid}\0"),
        valid.replace('-', "+").replace('_', "/"),
        "ééééééé".into(),
        encode(&[1, 0]),
        encode(&[1, 33]),
        encode(&[1, 255, b'k']),
        encode(&[1, 1, b'k', 0, 0]),
    ];
    for sealer in sealers(ring("k", 1)) {
        for c in &cases {
            assert_eq!(sealer.open(NAME, c, now()), None, "{c:.60?}");
        }
    }
}
