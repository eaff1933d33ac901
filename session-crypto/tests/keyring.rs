//! Keys and key rings: validation, rotation order, and no secrets in `Debug`.

use std::sync::Arc;

use session_core::{ConfigError, Error};
use session_crypto::{EncryptedStore, Key, KeyError, KeyRing, MIN_SECRET_LEN};
use session_memory::MemoryStore;

fn key(id: &str, byte: u8) -> Key {
    Key::new(id, [byte; 32]).unwrap()
}

#[test]
fn secrets_shorter_than_32_bytes_are_a_typed_error() {
    for len in [0, 1, 16, 31] {
        assert_eq!(
            Key::new("k", vec![7u8; len]).unwrap_err(),
            KeyError::SecretTooShort {
                id: "k".into(),
                len,
                min: MIN_SECRET_LEN
            }
        );
    }
    assert!(Key::new("k", [7u8; 32]).is_ok());
    assert!(Key::new("k", [7u8; 64]).is_ok());
}

#[test]
fn key_ids_are_validated() {
    for bad in ["", "with space", "semi;colon", "é", "a/b", &"x".repeat(33)] {
        assert_eq!(
            Key::new(bad, [1u8; 32]).unwrap_err(),
            KeyError::InvalidId(bad.to_owned()),
            "{bad:?}"
        );
    }
    for good in ["a", "2025-06", "v1.prod_A", &"x".repeat(32)] {
        assert_eq!(Key::new(good, [1u8; 32]).unwrap().id(), good);
    }
}

#[test]
fn ring_construction_rules() {
    assert_eq!(KeyRing::from_keys(Vec::new()).unwrap_err(), KeyError::Empty);
    assert_eq!(
        KeyRing::from_keys([key("a", 1), key("b", 2), key("a", 3)]).unwrap_err(),
        KeyError::DuplicateId("a".into())
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
        KeyError::DuplicateId("b".into())
    );
    // Dropping the newest makes the next one the sealer.
    assert_eq!(rotated.without("d").unwrap().newest().id(), "c");
    assert_eq!(
        rotated.without("zz").unwrap_err(),
        KeyError::UnknownId("zz".into())
    );
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
    let secret = *b"SUPERSECRETSUPERSECRETSUPERSECRE";
    let k = Key::new("visible-id", secret).unwrap();
    let ring = KeyRing::new(k.clone());
    let store = EncryptedStore::new(Arc::new(MemoryStore::new()), ring.clone());
    let short = Key::new("visible-id", &secret[..31]).unwrap_err();
    for dbg in [
        format!("{k:?}"),
        format!("{k:#?}"),
        format!("{ring:?}"),
        format!("{store:?}"),
        format!("{short:?}"),
        short.to_string(),
    ] {
        assert!(dbg.contains("visible-id"), "{dbg}");
        assert!(!dbg.contains("SUPERSECRET"), "{dbg}");
        // No long runs of numbers either (a byte array of key material).
        let digits = dbg.bytes().filter(u8::is_ascii_digit).count();
        assert!(digits < 16, "{dbg}");
    }
}
