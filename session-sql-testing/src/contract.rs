//! Store-agnostic checks of the [`SessionInterface`] contract that the shared
//! `conformance-tests` suite does not make, run against real servers by
//! [`sql_store_tests!`](crate::sql_store_tests): deadlines kept to the microsecond,
//! a collision leaving no per-connection trace, a create over an expired row at a
//! later version, and `delete_expired` over more than one batch. (Every other clause
//! these checks used to cover is a case of the suite, which both SQL stores run in
//! their `tests/conformance.rs`.)
//!
//! Every check takes a store that uses `clock` and a table of its own, and panics
//! (fails the test) on a broken clause.

use std::sync::Arc;

use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, Clock, Error, FIRST_VERSION, ManualClock, NewRecord, SaveMode, SessionInterface,
    SessionToken, StorageKey, Version,
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

/// `save(Create)` of `payload` until `expires_at`, which must succeed.
async fn create(
    store: &dyn SessionInterface,
    k: &StorageKey,
    payload: &[u8],
    expires_at: OffsetDateTime,
) -> Version {
    store
        .save(k, &rec(payload, expires_at), SaveMode::Create)
        .await
        .unwrap()
}

/// Create, load back (deadline to the microsecond), a second create collides and
/// writes nothing, and the collision leaves no trace on the connection (MySQL marks it
/// with the session variable `LAST_INSERT_ID`) that makes the next create fail; touch
/// keeps a deadline to the microsecond too.
pub async fn create_and_collision(store: &dyn SessionInterface, clock: &ManualClock) {
    let k = key();
    let deadline = clock.now() + Duration::hours(1);
    assert_eq!(create(store, &k, b"one", deadline).await, FIRST_VERSION);
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
    assert_eq!(create(store, &k2, b"x", deadline).await, FIRST_VERSION);
    // So does touch.
    let later = clock.now() + Duration::hours(3);
    assert!(store.touch(&k2, later).await.unwrap());
    let got = store.load(&k2).await.unwrap().unwrap();
    assert!((got.expires_at - later).abs() < Duration::microseconds(1));
}

/// An expired record is invisible before any purge, and a create replaces it — at
/// version 2 — with version 1; a create whose own deadline already passed, over a dead
/// record, is no collision.
pub async fn create_over_expired(store: &dyn SessionInterface, clock: &ManualClock) {
    let k = key();
    create(store, &k, b"old", clock.now() + Duration::minutes(5)).await;
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
    let v = create(store, &k, b"new", clock.now() + Duration::hours(1)).await;
    assert_eq!(v, FIRST_VERSION);
    let got = store.load(&k).await.unwrap().unwrap();
    assert_eq!((got.payload, got.version), (Bytes::from_static(b"new"), 1));
    let dead = key();
    let past = clock.now() - Duration::hours(1);
    create(store, &dead, b"d", past).await;
    create(store, &dead, b"d", past).await;
    assert!(store.load(&dead).await.unwrap().is_none());
}

/// delete_expired removes exactly the `expired` records (more than one batch of
/// 1,000) and returns the count; live ones stay.
pub async fn delete_expired(store: Arc<dyn SessionInterface>, clock: &ManualClock, expired: usize) {
    let soon = clock.now() + Duration::minutes(1);
    let later = clock.now() + Duration::hours(1);
    let live: Vec<StorageKey> = (0..10).map(|_| key()).collect();
    for k in &live {
        create(&*store, k, b"live", later).await;
    }
    // 16 writers: this is setup, not the subject.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in (i..expired).step_by(16) {
                    create(&*store, &key(), b"dead", soon).await;
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

/// Compare-and-set: bumps, stale version → Conflict, absent/expired/expired-by-call →
/// NotFound, and nothing is ever resurrected. (The suite covers these clauses; the SQL
/// stores run this check on a caller's `sqlx::Pool`, which the suite does not use.)
pub async fn update_cas(store: &dyn SessionInterface, clock: &ManualClock) {
    let k = key();
    let deadline = clock.now() + Duration::hours(1);
    create(store, &k, b"a", deadline).await;
    assert_eq!(
        store
            .save(&k, &rec(b"b", deadline), update(1))
            .await
            .unwrap(),
        2
    );
    for stale in [1, u64::MAX] {
        let err = store
            .save(&k, &rec(b"c", deadline), update(stale))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict), "{err:?}");
    }
    let got = store.load(&k).await.unwrap().unwrap();
    assert_eq!((got.payload, got.version), (Bytes::from_static(b"b"), 2));

    let err = store
        .save(&key(), &rec(b"x", deadline), update(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");

    store.expire(&k).await.unwrap();
    assert_update_not_found(store, &k, update(2), deadline).await;

    let k = key();
    create(store, &k, b"a", clock.now() + Duration::minutes(1)).await;
    clock.advance(Duration::minutes(2));
    assert_update_not_found(store, &k, update(1), deadline).await;
}

/// An update of a dead key is `NotFound` and does not bring it back.
async fn assert_update_not_found(
    store: &dyn SessionInterface,
    k: &StorageKey,
    mode: SaveMode,
    deadline: OffsetDateTime,
) {
    let err = store
        .save(k, &rec(b"zombie", deadline), mode)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert!(
        store.load(k).await.unwrap().is_none(),
        "update resurrected a session"
    );
}

/// `n` concurrent creates of one key: exactly one wins, the others collide. (Like
/// [`update_cas`], run on a caller's `sqlx::Pool`.)
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
