//! Property tests of the record format, through the public API (issue 9; the
//! `file_record` fuzz target in `fuzz/` covers arbitrary files):
//!
//! - any payload, deadline and sequence of updates and touches round-trips byte for
//!   byte, with the deadline to the second and the version as the store reported it;
//! - a record file damaged on disk (bits flipped, truncated, extended) gives a
//!   decode error or the exact original record — never other data, never a panic,
//!   never an error for another key.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, Error, ManualClock, NewRecord, SaveMode, SessionInterface, SessionToken, StorageKey,
};
use session_file::{FileStore, TouchMode};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_893_456_000).unwrap() // 2030-01-01
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

async fn open(dir: &Path, mode: TouchMode) -> FileStore {
    FileStore::builder(dir)
        .clock(ManualClock::new(now()).shared())
        .touch_mode(mode)
        .max_payload_bytes(1 << 20)
        .open()
        .await
        .unwrap()
}

/// Where the store keeps `key`'s record (see session-file's layout: two-character
/// shard directory, then the key).
fn record_path(dir: &Path, key: &StorageKey) -> PathBuf {
    dir.join(&key.as_str()[..2]).join(key.as_str())
}

fn key() -> StorageKey {
    SessionToken::generate().unwrap().storage_key()
}

/// One step applied to a live record.
#[derive(Debug, Clone)]
enum Step {
    Update(Vec<u8>, i64),
    Touch(i64),
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(any::<u8>(), 0..8192),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    // Deadlines from 1 s to ~3 years ahead, at whole seconds.
    let secs = 1i64..100_000_000;
    prop_oneof![
        (payload(), secs.clone()).prop_map(|(p, s)| Step::Update(p, s)),
        secs.prop_map(Step::Touch),
    ]
}

/// How a record file is damaged.
#[derive(Debug, Clone)]
enum Damage {
    Flip(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Damage::Flip(i, b)),
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        prop::collection::vec(any::<u8>(), 1..32).prop_map(Damage::Append),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn records_round_trip_through_updates_and_touches(
        first in payload(),
        first_secs in 1i64..100_000_000,
        steps in prop::collection::vec(step(), 0..6),
        rewrite in any::<bool>(),
    ) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mode = if rewrite { TouchMode::Rewrite } else { TouchMode::InPlace };
            let store = open(dir.path(), mode).await;
            let key = key();
            let mut expected = NewRecord {
                payload: Bytes::from(first),
                expires_at: now() + Duration::seconds(first_secs),
            };
            let mut version = store.save(&key, &expected, SaveMode::Create).await.unwrap();
            for step in steps {
                match step {
                    Step::Update(payload, secs) => {
                        expected = NewRecord {
                            payload: Bytes::from(payload),
                            expires_at: now() + Duration::seconds(secs),
                        };
                        let mode = SaveMode::Update { expected_version: version };
                        let next = store.save(&key, &expected, mode).await.unwrap();
                        assert_ne!(next, version, "an update bumps the version");
                        version = next;
                    }
                    Step::Touch(secs) => {
                        expected.expires_at = now() + Duration::seconds(secs);
                        assert!(store.touch(&key, expected.expires_at).await.unwrap());
                    }
                }
                let got = store.load(&key).await.unwrap().expect("a live record");
                assert_eq!(got.payload, expected.payload);
                assert_eq!(got.expires_at, expected.expires_at);
                assert_eq!(got.version, version);
            }
            // A reopened store (a restarted process) reads the same record.
            let again = open(dir.path(), mode).await;
            let got = again.load(&key).await.unwrap().expect("a live record");
            assert_eq!((got.payload, got.expires_at, got.version),
                       (expected.payload, expected.expires_at, version));
        });
    }

    #[test]
    fn damaged_record_files_never_yield_other_data(
        payload in payload(),
        touched in any::<bool>(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path(), TouchMode::InPlace).await;
            let (victim, bystander) = (key(), key());
            let record = NewRecord {
                payload: Bytes::from(payload),
                expires_at: now() + Duration::hours(1),
            };
            let version = store.save(&victim, &record, SaveMode::Create).await.unwrap();
            store.save(&bystander, &record, SaveMode::Create).await.unwrap();
            let mut deadlines = vec![record.expires_at];
            if touched {
                // Both deadline slots hold a valid deadline now.
                let later = now() + Duration::hours(2);
                assert!(store.touch(&victim, later).await.unwrap());
                deadlines.push(later);
            }

            let path = record_path(dir.path(), &victim);
            let mut bytes = std::fs::read(&path).unwrap();
            for d in damages {
                match d {
                    Damage::Flip(at, bit) if !bytes.is_empty() => {
                        let i = at.index(bytes.len());
                        bytes[i] ^= 1 << bit;
                    }
                    Damage::Truncate(at) => {
                        let n = at.index(bytes.len() + 1);
                        bytes.truncate(n);
                    }
                    Damage::Append(more) => bytes.extend(more),
                    Damage::Flip(..) => {}
                }
            }
            std::fs::write(&path, &bytes).unwrap();

            match store.load(&victim).await {
                Err(Error::Decode(_)) | Ok(None) => {}
                Ok(Some(got)) => {
                    assert_eq!(got.payload, record.payload, "other data was returned");
                    assert_eq!(got.version, version);
                    assert!(deadlines.contains(&got.expires_at), "{}", got.expires_at);
                }
                Err(other) => panic!("not a decode error: {other:?}"),
            }
            // The other operations on the damaged key answer too.
            match store.touch(&victim, now() + Duration::hours(3)).await {
                Ok(_) | Err(Error::Decode(_)) => {}
                Err(other) => panic!("touch: {other:?}"),
            }
            let swept = store.delete_expired().await;
            assert!(swept.is_ok(), "{swept:?}");
            // Damage stays with its key.
            let other = store.load(&bystander).await.unwrap().expect("the bystander");
            assert_eq!(other.payload, record.payload);
        });
    }
}
