//! Property tests (issue 9, next to the fuzz targets in `fuzz/`): cookie-token and
//! storage-key parsing, and the session envelope codec through the public API.
//!
//! - Any string parses to a token or to "no session", without panicking; a token
//!   that parses is the canonical encoding of its 32 bytes (one cookie string per
//!   token); every 32 bytes round-trip; near misses are rejected.
//! - Session data of any shape round-trips through the envelope (encode on `finish`,
//!   decode on the next request), server-side and client-side.
//! - Stored bytes of any kind — arbitrary, or a real envelope with mutations — give
//!   values or typed errors from every `Session` call, never a panic.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, CookieDecision, CookieSealer, Error, NewRecord, SaveMode, SessionConfig,
    SessionInterface, SessionManager, SessionToken, StorageKey, TOKEN_COOKIE_LEN,
};
use session_memory::MemoryStore;

const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn set_value(d: &CookieDecision) -> String {
    match d {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected Set, got {other:?}"),
    }
}

/// A JSON value of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        // Finite floats only: JSON has no NaN or infinity.
        (-1e300f64..1e300).prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Session data: up to 8 keys of any text, each with a JSON value.
fn session_data() -> impl Strategy<Value = BTreeMap<String, serde_json::Value>> {
    prop::collection::btree_map(any::<String>(), json_value(), 0..8)
}

/// Seals by base64url-encoding; opens anything that decodes (no authenticity: the
/// bytes reach the envelope decoder as if authentic).
struct PassThrough;

impl CookieSealer for PassThrough {
    fn seal(&self, _: &str, payload: &[u8], _: OffsetDateTime) -> Result<String, Error> {
        Ok(URL_SAFE_NO_PAD.encode(payload))
    }

    fn open(&self, _: &str, value: &str, _: OffsetDateTime) -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(value).ok()
    }
}

/// Every read and a write on a session over stored bytes; each must return.
async fn exercise(manager: &SessionManager, cookie: &str) {
    let s = manager.session(Some(cookie));
    let _ = s.exists().await;
    let _ = s.entries().await;
    let _ = s.keys().await;
    let _ = s.get::<String>("a").await;
    let _ = s.expires_at().await;
    let _ = s.has_expired().await;
    let _ = s.insert("added", &1).await;
    let _ = s.remove("a").await;
    let _ = manager.finish(&s).await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_string_is_a_token_or_no_session(s in any::<String>()) {
        if let Some(token) = SessionToken::parse(&s) {
            prop_assert_eq!(token.to_cookie_value(), s.clone());
        }
        if let Some(key) = StorageKey::parse(&s) {
            prop_assert_eq!(key.as_str(), s.as_str());
        }
    }

    #[test]
    fn any_bytes_as_a_lossy_string_are_a_token_or_no_session(
        bytes in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let s = String::from_utf8_lossy(&bytes);
        if let Some(token) = SessionToken::parse(&s) {
            prop_assert_eq!(token.to_cookie_value(), s.into_owned());
        }
    }

    #[test]
    fn strings_of_the_token_alphabet_and_length_parse_iff_canonical(
        chars in prop::collection::vec(prop::sample::select(ALPHABET.as_bytes().to_vec()), 43),
    ) {
        let s = String::from_utf8(chars).unwrap();
        let canonical = URL_SAFE_NO_PAD
            .decode(&s)
            .is_ok_and(|raw| raw.len() == 32 && URL_SAFE_NO_PAD.encode(&raw) == s);
        prop_assert_eq!(SessionToken::parse(&s).is_some(), canonical);
    }

    #[test]
    fn every_32_bytes_round_trip(raw in any::<[u8; 32]>()) {
        let cookie = URL_SAFE_NO_PAD.encode(raw);
        let token = SessionToken::parse(&cookie).expect("a canonical token parses");
        prop_assert_eq!(token.to_cookie_value(), cookie.clone());
        prop_assert_eq!(cookie.len(), TOKEN_COOKIE_LEN);
        let key = token.storage_key();
        prop_assert_eq!(StorageKey::parse(key.as_str()), Some(key.clone()));
        prop_assert_eq!(SessionToken::parse(&cookie).unwrap().storage_key(), key.clone());
        prop_assert!(!key.as_str().contains(&cookie));
        let debug = format!("{token:?}");
        prop_assert!(!debug.contains(&cookie));
    }

    #[test]
    fn near_misses_of_a_token_are_rejected(
        raw in any::<[u8; 32]>(),
        at in 0usize..43,
        bad in prop::sample::select(b"+/=.~ \0%\"';\\".to_vec()),
        cut in 1usize..43,
    ) {
        let cookie = URL_SAFE_NO_PAD.encode(raw);
        let mut replaced = cookie.clone().into_bytes();
        replaced[at] = bad;
        let replaced = String::from_utf8(replaced).unwrap();
        prop_assert!(SessionToken::parse(&replaced).is_none(), "{}", replaced);
        prop_assert!(SessionToken::parse(&cookie[..cut]).is_none());
        let longer = format!("{cookie}A");
        let spaced = format!(" {cookie}");
        prop_assert!(SessionToken::parse(&longer).is_none());
        prop_assert!(SessionToken::parse(&spaced).is_none());
    }

    #[test]
    fn session_data_round_trips_through_the_envelope_server_side(data in session_data()) {
        runtime().block_on(async {
            let manager =
                SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default());
            let s = manager.session(None);
            for (k, v) in &data {
                s.insert(k, v).await.unwrap();
            }
            let decision = manager.finish(&s).await.unwrap();
            if data.is_empty() {
                assert_eq!(decision, CookieDecision::Leave, "an empty session is not stored");
                return;
            }
            let s = manager.session(Some(&set_value(&decision)));
            let back: BTreeMap<String, serde_json::Value> =
                s.entries().await.unwrap().into_iter().collect();
            assert_eq!(back, data);
            for (k, v) in &data {
                assert_eq!(s.get::<serde_json::Value>(k).await.unwrap().as_ref(), Some(v));
            }
        });
    }

    #[test]
    fn session_data_round_trips_through_the_envelope_client_side(data in session_data()) {
        runtime().block_on(async {
            let manager = SessionManager::client_side(Arc::new(PassThrough), SessionConfig::default());
            let s = manager.session(None);
            for (k, v) in &data {
                s.insert(k, v).await.unwrap();
            }
            match manager.finish(&s).await {
                Ok(CookieDecision::Set(c)) => {
                    let s = manager.session(Some(c.value()));
                    let back: BTreeMap<String, serde_json::Value> =
                        s.entries().await.unwrap().into_iter().collect();
                    assert_eq!(back, data);
                }
                Ok(CookieDecision::Leave) => assert!(data.is_empty()),
                // Big data does not fit a cookie: a typed error, nothing sent.
                Err(Error::CookieTooLarge { .. }) => {}
                other => panic!("{other:?}"),
            }
        });
    }

    #[test]
    fn arbitrary_stored_bytes_never_panic(
        payload in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        runtime().block_on(async {
            let store = Arc::new(MemoryStore::new());
            let token = SessionToken::generate().unwrap();
            let record = NewRecord {
                payload: Bytes::from(payload),
                expires_at: OffsetDateTime::now_utc() + Duration::hours(1),
            };
            store.save(&token.storage_key(), &record, SaveMode::Create).await.unwrap();
            let manager = SessionManager::new(store, SessionConfig::default());
            exercise(&manager, &token.to_cookie_value()).await;
            // The same bytes as a client-side cookie.
            let sealed = URL_SAFE_NO_PAD.encode(&record.payload);
            let client = SessionManager::client_side(Arc::new(PassThrough), SessionConfig::default());
            exercise(&client, &sealed).await;
        });
    }

    #[test]
    fn mutated_envelopes_never_panic(
        data in session_data(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        runtime().block_on(async {
            // A real envelope, as the manager wrote it.
            let store = Arc::new(MemoryStore::new());
            let manager = SessionManager::new(store.clone(), SessionConfig::default());
            let s = manager.session(None);
            s.insert("a", "text").await.unwrap();
            for (k, v) in &data {
                s.insert(k, v).await.unwrap();
            }
            let cookie = set_value(&manager.finish(&s).await.unwrap());
            let key = SessionToken::parse(&cookie).unwrap().storage_key();
            let stored = store.load(&key).await.unwrap().unwrap();
            // Flip, overwrite, insert or delete bytes in it, and store that instead.
            let mut bytes = stored.payload.to_vec();
            for (at, byte, kind) in edits {
                let i = at.index(bytes.len().max(1));
                match kind {
                    0 if !bytes.is_empty() => bytes[i] ^= byte | 1,
                    1 => bytes.insert(i.min(bytes.len()), byte),
                    _ if !bytes.is_empty() => {
                        bytes.remove(i);
                    }
                    _ => bytes.push(byte),
                }
            }
            let record = NewRecord { payload: Bytes::from(bytes), expires_at: stored.expires_at };
            store
                .save(&key, &record, SaveMode::Update { expected_version: stored.version })
                .await
                .unwrap();
            exercise(&manager, &cookie).await;
        });
    }
}

/// Regression (found by `session_data_round_trips_through_the_envelope_*` above): a
/// float did not come back bit for bit. serde_json writes the shortest exact form
/// (ryu) but, without its `float_roundtrip` feature, parses with a fast algorithm
/// that can be one ULP off, so `get::<f64>` returned `-5.525091801720481e299` for
/// an inserted `-5.525091801720482e299`. Fixed by enabling `float_roundtrip` on
/// session-core's serde_json dependency.
#[test]
fn floats_come_back_bit_for_bit() {
    runtime().block_on(async {
        let values = [
            -5.525_091_801_720_482e299,
            0.1,
            1.0 / 3.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            5e-324,
            123_456.789_012_345_68,
        ];
        let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default());
        let s = manager.session(None);
        s.insert("floats", &values).await.unwrap();
        let cookie = set_value(&manager.finish(&s).await.unwrap());
        let s = manager.session(Some(&cookie));
        let back: Vec<f64> = s.get("floats").await.unwrap().unwrap();
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&values));
    });
}
