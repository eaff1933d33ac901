//! Store-agnostic checks of the [`SessionInterface`] contract, run by the SQL stores'
//! own integration tests against real servers (the shared `conformance-tests` suite
//! covers every store; these pin down the SQL-specific edge cases next to the code).
//!
//! Every check takes a store that uses `clock` and a table of its own, and panics
//! (fails the test) on a broken clause.

use std::sync::Arc;

use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, Clock, Error, FIRST_VERSION, ManualClock, NewRecord, SaveMode, SessionInterface,
    SessionToken, StorageKey,
};

/// A fresh random storage key.
pub fn key() -> StorageKey {
    SessionToken::generate()
        .expect("OS random source")
        .storage_key()
}

fn rec(payload: &[u8], expires_at: OffsetDateTime) -> NewRecord {
    NewRecord {
        payload: Bytes::copy_from_slice(payload),
        expires_at,
    }
}

fn update(v: u64) -> SaveMode {
    SaveMode::Update {
        expected_version: v,
    }
}

/// Create, load back, second create collides and writes nothing.
pub async fn create_and_collision(store: &dyn SessionInterface, clock: &ManualClock) {
    let k = key();
    let deadline = clock.now() + Duration::hours(1);
    assert_eq!(
        store
            .save(&k, &rec(b"one", deadline), SaveMode::Create)
            .await
            .unwrap(),
        FIRST_VERSION
    );
    let got = store.load(&k).await.unwrap().expect("live record");
    assert_eq!(got.payload, Bytes::from_static(b"one"));
    assert_eq!(got.version, FIRST_VERSION);
    // Storage keeps at least microseconds.
    assert!((got.expires_at - deadline).abs() < Duration::microseconds(1));
    let err = store
        .save(
            &k,
            &rec(b"two", deadline + Duration::hours(1)),
            SaveMode::Create,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Collision), "{err:?}");
    let again = store.load(&k).await.unwrap().unwrap();
    assert_eq!(
        (again.payload, again.expires_at),
        (got.payload, got.expires_at)
    );
    // A collision leaves no trace that makes the next create on another key fail.
    let k2 = key();
    store
        .save(&k2, &rec(b"x", deadline), SaveMode::Create)
        .await
        .unwrap();
}

/// An expired record is invisible before any purge, and a create replaces it with
/// version 1.
pub async fn create_over_expired(store: &dyn SessionInterface, clock: &ManualClock) {
    let k = key();
    store
        .save(
            &k,
            &rec(b"old", clock.now() + Duration::minutes(5)),
            SaveMode::Create,
        )
        .await
        .unwrap();
    store
        .save(
            &k,
            &rec(b"old2", clock.now() + Duration::minutes(5)),
            update(1),
        )
        .await
        .unwrap();
    clock.advance(Duration::minutes(10));
    assert!(
        store.load(&k).await.unwrap().is_none(),
        "expired record returned"
    );
    let v = store
        .save(
            &k,
            &rec(b"new", clock.now() + Duration::hours(1)),
            SaveMode::Create,
        )
        .await
        .unwrap();
    assert_eq!(v, FIRST_VERSION);
    let got = store.load(&k).await.unwrap().unwrap();
    assert_eq!((got.payload, got.version), (Bytes::from_static(b"new"), 1));
    // A create whose own deadline already passed, over a dead record, is no collision.
    let dead = key();
    let past = clock.now() - Duration::hours(1);
    store
        .save(&dead, &rec(b"d", past), SaveMode::Create)
        .await
        .unwrap();
    store
        .save(&dead, &rec(b"d", past), SaveMode::Create)
        .await
        .unwrap();
    assert!(store.load(&dead).await.unwrap().is_none());
}

/// Compare-and-set: bumps, stale version → Conflict, absent/expired/expired-by-call →
/// NotFound, and nothing is ever resurrected.
pub async fn update_cas(store: &dyn SessionInterface, clock: &ManualClock) {
    let k = key();
    let deadline = clock.now() + Duration::hours(1);
    store
        .save(&k, &rec(b"a", deadline), SaveMode::Create)
        .await
        .unwrap();
    assert_eq!(
        store
            .save(&k, &rec(b"b", deadline), update(1))
            .await
            .unwrap(),
        2
    );
    let err = store
        .save(&k, &rec(b"c", deadline), update(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict), "{err:?}");
    let err = store
        .save(&k, &rec(b"c", deadline), update(u64::MAX))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict), "{err:?}");
    let got = store.load(&k).await.unwrap().unwrap();
    assert_eq!((got.payload, got.version), (Bytes::from_static(b"b"), 2));

    let err = store
        .save(&key(), &rec(b"x", deadline), update(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");

    store.expire(&k).await.unwrap();
    let err = store
        .save(&k, &rec(b"zombie", deadline), update(2))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert!(
        store.load(&k).await.unwrap().is_none(),
        "update resurrected a session"
    );

    let k = key();
    store
        .save(
            &k,
            &rec(b"a", clock.now() + Duration::minutes(1)),
            SaveMode::Create,
        )
        .await
        .unwrap();
    clock.advance(Duration::minutes(2));
    let err = store
        .save(&k, &rec(b"zombie", deadline), update(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert!(
        store.load(&k).await.unwrap().is_none(),
        "update resurrected a session"
    );
}

/// expire is idempotent and final.
pub async fn expire(store: &dyn SessionInterface, clock: &ManualClock) {
    let k = key();
    store.expire(&k).await.unwrap();
    store
        .save(
            &k,
            &rec(b"a", clock.now() + Duration::hours(1)),
            SaveMode::Create,
        )
        .await
        .unwrap();
    store.expire(&k).await.unwrap();
    store.expire(&k).await.unwrap();
    assert!(store.load(&k).await.unwrap().is_none());
    assert!(
        !store
            .touch(&k, clock.now() + Duration::hours(2))
            .await
            .unwrap()
    );
}

/// touch moves the deadline only; absent and expired keys report false and stay dead;
/// a deadline in the past kills.
pub async fn touch(store: &dyn SessionInterface, clock: &ManualClock) {
    let k = key();
    store
        .save(
            &k,
            &rec(b"payload", clock.now() + Duration::minutes(5)),
            SaveMode::Create,
        )
        .await
        .unwrap();
    let later = clock.now() + Duration::hours(3);
    assert!(store.touch(&k, later).await.unwrap());
    // Touching with the deadline it already has still finds the record.
    assert!(store.touch(&k, later).await.unwrap());
    let got = store.load(&k).await.unwrap().unwrap();
    assert_eq!(
        (got.payload, got.version),
        (Bytes::from_static(b"payload"), 1)
    );
    assert!((got.expires_at - later).abs() < Duration::microseconds(1));
    clock.advance(Duration::hours(1));
    assert!(
        store.load(&k).await.unwrap().is_some(),
        "touch did not extend"
    );

    assert!(!store.touch(&key(), later).await.unwrap());

    let dead = key();
    store
        .save(
            &dead,
            &rec(b"d", clock.now() + Duration::minutes(1)),
            SaveMode::Create,
        )
        .await
        .unwrap();
    clock.advance(Duration::minutes(2));
    assert!(
        !store
            .touch(&dead, clock.now() + Duration::hours(1))
            .await
            .unwrap()
    );
    assert!(store.load(&dead).await.unwrap().is_none(), "touch revived");

    assert!(
        store
            .touch(&k, clock.now() - Duration::seconds(1))
            .await
            .unwrap()
    );
    assert!(
        store.load(&k).await.unwrap().is_none(),
        "past deadline kept it alive"
    );
}

/// delete_expired removes exactly the `expired` records (more than one batch of
/// 1,000) and returns the count; live ones stay.
pub async fn delete_expired(store: Arc<dyn SessionInterface>, clock: &ManualClock, expired: usize) {
    let soon = clock.now() + Duration::minutes(1);
    let later = clock.now() + Duration::hours(1);
    let live: Vec<StorageKey> = (0..10).map(|_| key()).collect();
    for k in &live {
        store
            .save(k, &rec(b"live", later), SaveMode::Create)
            .await
            .unwrap();
    }
    // 16 writers: this is setup, not the subject.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in (i..expired).step_by(16) {
                    store
                        .save(&key(), &rec(b"dead", soon), SaveMode::Create)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        store.delete_expired().await.unwrap(),
        0,
        "purged live records"
    );
    clock.advance(Duration::minutes(2));
    assert_eq!(store.delete_expired().await.unwrap(), expired as u64);
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    for k in &live {
        assert!(store.load(k).await.unwrap().is_some(), "live record purged");
    }
}

/// Payloads from 0 bytes to 8 MiB, every byte value, come back byte for byte.
pub async fn payload_sizes(store: &dyn SessionInterface, clock: &ManualClock) {
    for size in [0usize, 1, 255, 65_536, 65_537, 1 << 20, 8 << 20] {
        let payload: Vec<u8> = (0..size)
            .map(|i| (i % 251) as u8 ^ (i >> 8) as u8)
            .collect();
        let k = key();
        let deadline = clock.now() + Duration::hours(1);
        store
            .save(&k, &rec(&payload, deadline), SaveMode::Create)
            .await
            .unwrap();
        let got = store.load(&k).await.unwrap().unwrap();
        assert!(got.payload == payload, "payload of {size} bytes changed");
        store
            .save(&k, &rec(&payload, deadline), update(1))
            .await
            .unwrap();
        assert!(store.load(&k).await.unwrap().unwrap().payload == payload);
    }
    let all: Vec<u8> = (0..=255u8).collect();
    let k = key();
    store
        .save(
            &k,
            &rec(&all, clock.now() + Duration::hours(1)),
            SaveMode::Create,
        )
        .await
        .unwrap();
    assert_eq!(
        &store.load(&k).await.unwrap().unwrap().payload[..],
        &all[..]
    );
}

/// `n` concurrent creates of one key: exactly one wins, the others collide.
pub async fn concurrent_creates(store: Arc<dyn SessionInterface>, clock: &ManualClock, n: usize) {
    let k = key();
    let deadline = clock.now() + Duration::hours(1);
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                let payload = format!("writer {i}");
                store
                    .save(&k, &rec(payload.as_bytes(), deadline), SaveMode::Create)
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(v) => {
                assert_eq!(v, FIRST_VERSION);
                wins += 1;
            }
            Err(Error::Collision) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one create must win");
    assert_eq!(
        store.load(&k).await.unwrap().unwrap().version,
        FIRST_VERSION
    );
}

/// `n` concurrent compare-and-sets on one version: exactly one wins, the others
/// conflict.
pub async fn concurrent_updates(store: Arc<dyn SessionInterface>, clock: &ManualClock, n: usize) {
    let k = key();
    let deadline = clock.now() + Duration::hours(1);
    store
        .save(&k, &rec(b"base", deadline), SaveMode::Create)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                let payload = format!("writer {i}");
                store
                    .save(&k, &rec(payload.as_bytes(), deadline), update(1))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(v) => {
                assert_eq!(v, 2);
                wins += 1;
            }
            Err(Error::Conflict) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one update must win");
    assert_eq!(store.load(&k).await.unwrap().unwrap().version, 2);
}
