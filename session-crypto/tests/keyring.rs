//! Keys and key rings: validation, rotation order, and no secrets in `Debug`.

use std::sync::Arc;

use session_core::{ConfigError, Error};
use session_crypto::{EncryptedStore, InvalidId, Key, KeyError, KeyRing, MIN_SECRET_LEN};
use session_memory::MemoryStore;
use sha2::{Digest, Sha256};

/// A fixed, high-entropy secret per number: SHA-256 of a label (tests need
/// stable, distinct keys that pass the weak-secret check).
fn secret(n: u8) -> [u8; 32] {
    Sha256::digest(format!("session-crypto test key {n}")).into()
}

fn key(id: &str, n: u8) -> Key {
    Key::new(id, secret(n)).unwrap()
}

#[test]
fn secrets_shorter_than_32_bytes_are_a_typed_error() {
    for len in [0, 1, 16, 31] {
        assert_eq!(
            Key::new("k", &secret(1)[..len]).unwrap_err(),
            KeyError::SecretTooShort {
                len,
                min: MIN_SECRET_LEN
            }
        );
    }
    assert!(Key::new("k", secret(1)).is_ok());
    assert!(Key::new("k", [secret(1), secret(2)].concat()).is_ok());
}

#[test]
fn key_ids_are_validated() {
    for (bad, why) in [
        ("", InvalidId::Empty),
        ("with space", InvalidId::Character { position: 4 }),
        ("semi;colon", InvalidId::Character { position: 4 }),
        ("é", InvalidId::Character { position: 0 }),
        ("a/b", InvalidId::Character { position: 1 }),
        (&"x".repeat(33), InvalidId::TooLong { len: 33 }),
    ] {
        assert_eq!(
            Key::new(bad, secret(1)).unwrap_err(),
            KeyError::InvalidId(why),
            "{bad:?}"
        );
    }
    for good in ["a", "2025-06", "v1.prod_A", &"x".repeat(32)] {
        assert_eq!(Key::new(good, secret(1)).unwrap().id(), good);
    }
}

#[test]
fn ring_construction_rules() {
    assert_eq!(KeyRing::from_keys(Vec::new()).unwrap_err(), KeyError::Empty);
    assert_eq!(
        KeyRing::from_keys([key("a", 1), key("b", 2), key("a", 3)]).unwrap_err(),
        KeyError::DuplicateId { position: 2 }
    );
    let ring = KeyRing::from_keys([key("c", 3), key("b", 2), key("a", 1)]).unwrap();
    assert_eq!(ring.newest().id(), "c");
    assert_eq!(ring.ids().collect::<Vec<_>>(), ["c", "b", "a"]);
    assert_eq!(ring.keys().len(), 3);
    assert_eq!(ring.get_by_bytes(b"b").map(Key::id), Some("b"));
    assert!(ring.get_by_bytes(b"B").is_none());
    assert!(ring.get("d").is_none());

    let rotated = ring.rotated(key("d", 4)).unwrap();
    assert_eq!(rotated.ids().collect::<Vec<_>>(), ["d", "c", "b", "a"]);
    assert_eq!(
        ring.rotated(key("b", 9)).unwrap_err(),
        KeyError::DuplicateId { position: 2 }
    );
    // Dropping the newest makes the next one the sealer.
    assert_eq!(rotated.without("d").unwrap().newest().id(), "c");
    assert_eq!(rotated.without("zz").unwrap_err(), KeyError::UnknownId);
    assert_eq!(
        KeyRing::new(key("only", 1)).without("only").unwrap_err(),
        KeyError::Empty
    );
    assert_eq!(KeyRing::from(key("x", 1)).newest().id(), "x");
}

#[test]
fn key_errors_convert_to_config_errors() {
    let e: Error = Key::new("k", b"short").unwrap_err().into();
    match e {
        Error::Config(ConfigError::Invalid { setting, reason }) => {
            assert_eq!(setting, "key ring");
            assert!(reason.contains("at least 32"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// Neither the secret nor anything derived from it shows in `Debug` output, at
/// any level: a key, a ring, a store, an error.
#[test]
fn debug_output_shows_ids_only() {
    let secret = *b"SUPERSECRET-k9Qz4tX7vB2nM8wLc5Yr";
    let k = Key::new("visible-id", secret).unwrap();
    let ring = KeyRing::new(k.clone());
    let store = EncryptedStore::new(Arc::new(MemoryStore::new()), ring.clone());
    let short = Key::new("visible-id", &secret[..31]).unwrap_err();
    for dbg in [
        format!("{k:?}"),
        format!("{k:#?}"),
        format!("{ring:?}"),
        format!("{store:?}"),
    ] {
        assert!(dbg.contains("visible-id"), "{dbg}");
    }
    for dbg in [
        format!("{k:?}"),
        format!("{k:#?}"),
        format!("{ring:?}"),
        format!("{store:?}"),
        format!("{short:?}"),
        short.to_string(),
    ] {
        assert!(!dbg.contains("SUPERSECRET"), "{dbg}");
        // No long runs of numbers either (a byte array of key material).
        let digits = dbg.bytes().filter(u8::is_ascii_digit).count();
        assert!(digits < 16, "{dbg}");
    }
}

/// Issue #20, item 6: an id that does not pass validation may be a secret pasted
/// into the wrong place (`SECRET:ID`, a missing separator), and errors end up in
/// logs. No rendering of any key error — nor of the `session_core::Error` it
/// becomes — contains the id, valid or not, or the secret.
#[test]
fn key_errors_never_echo_ids_or_secrets() {
    let secret = *b"k9Qz-pasted-SECRET-tX4vB7nM2wLc8";
    let pasted = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A";
    let ids = [pasted, "Zm9vYmFy YmF6", "Zm9vYmFyYmF6;", ""];
    let mut errors: Vec<KeyError> = ids
        .iter()
        .map(|id| Key::new(*id, secret).unwrap_err())
        .collect();
    // Valid ids may be secrets too (a 32-character hex string is a valid id).
    let hex_id = "3f9a0c1d7e5b2a4869c0d1e2f3a4b5c6";
    errors.push(Key::new(hex_id, &secret[..31]).unwrap_err());
    let k = Key::new(hex_id, secret).unwrap();
    let ring = KeyRing::new(k.clone());
    errors.push(ring.rotated(k.clone()).unwrap_err());
    errors.push(KeyRing::from_keys([k.clone(), k]).unwrap_err());
    errors.push(ring.without(pasted).unwrap_err());
    for e in errors {
        let as_config = Error::from(e.clone());
        for text in [
            e.to_string(),
            format!("{e:?}"),
            format!("{e:#?}"),
            as_config.to_string(),
            format!("{as_config:?}"),
        ] {
            assert!(!text.contains("Zm9vYmFy"), "{text}");
            assert!(!text.contains(&hex_id[..8]), "{text}");
            assert!(!text.contains("SECRET"), "{text}");
        }
    }
}

/// Issue #20, item 7: secrets of obviously low entropy are refused with a typed
/// error, however long they are.
#[test]
fn weak_secrets_are_refused() {
    let mut weak: Vec<Vec<u8>> = vec![
        vec![b'a'; 32],
        vec![0; 32],
        vec![1; 32],
        vec![7; 64],
        b"abababababababababababababababab".to_vec(),
        b"0123456789abcdef0123456789abcdef".to_vec(),
        b"password1password1password1password1".to_vec(),
        // Four distinct bytes, in no repeating order.
        b"aabbbcdaaddcbcabdcbadbcbaccdbadd".to_vec(),
    ];
    // One byte changed at the end does not make a run of one byte strong.
    let mut almost = vec![0u8; 31];
    almost.push(1);
    weak.push(almost);
    for secret in weak {
        assert!(
            Key::new("k", &secret).is_err(),
            "{:?}",
            String::from_utf8_lossy(&secret)
        );
    }
}

proptest::proptest! {
    /// Random secrets pass the weak-secret check (its false-rejection probability,
    /// documented on `Key::new`, is below 10⁻³⁸ for random bytes and about 10⁻¹⁶
    /// for 32 random hex characters), and so does any random secret of any
    /// length from 32 bytes.
    #[test]
    fn random_secrets_are_accepted(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 32..200),
        hex in "[0-9a-f]{32,64}",
        base64 in "[A-Za-z0-9+/]{43}=",
    ) {
        proptest::prop_assert!(Key::new("k", &bytes).is_ok());
        proptest::prop_assert!(Key::new("k", hex.as_bytes()).is_ok());
        proptest::prop_assert!(Key::new("k", base64.as_bytes()).is_ok());
    }
}

/// `Key::generate` draws a fresh secret every time: two keys of the same id do
/// not open each other's records.
#[test]
fn generated_keys_are_distinct() {
    let (a, b) = (Key::generate("g").unwrap(), Key::generate("g").unwrap());
    let tag = a.sign(&[b"x"]);
    assert!(a.verify(&[b"x"], &tag));
    assert!(!b.verify(&[b"x"], &tag));
    assert!(matches!(
        Key::generate("bad id"),
        Err(Error::Config(ConfigError::Invalid { .. }))
    ));
}
