//! Switching encryption at rest on and off over existing sessions, end to end
//! through `SessionManager` (issue #20, item 3): a record the store cannot read
//! must be "no session" (a fresh session; the stale cookie left alone, as for any
//! dead session), never an error
//! returned on every request for as long as the record lives.

use std::sync::Arc;

use proptest::prelude::*;
use session_core::time::Duration;
use session_core::{
    CookieDecision, DecodeError, Error, ManualClock, SessionConfig, SessionInterface,
    SessionManager, SessionToken, StorageKey,
};
use session_crypto::{
    EncryptedStore, Key, KeyRing, Migration, is_plaintext_record, record_key_id, seal_record,
};
use session_memory::MemoryStore;
use sha2::{Digest, Sha256};
use time::macros::datetime;

/// A fixed, high-entropy secret per label (tests need stable keys; generated
/// ones would do as well, but a failure is easier to reproduce with these).
fn secret(label: &str) -> [u8; 32] {
    Sha256::digest(format!("session-crypto migration test {label}")).into()
}

fn ring() -> KeyRing {
    KeyRing::new(Key::new("k1", secret("k1")).unwrap())
}

fn storage_key(cookie: &str) -> StorageKey {
    SessionToken::parse(cookie).unwrap().storage_key()
}

/// A session holding `user = "ada"`, written through a manager over `store`;
/// returns the cookie value.
async fn write_session(store: Arc<dyn SessionInterface>) -> String {
    let manager = SessionManager::new(store, SessionConfig::default());
    let session = manager.session(None);
    session.insert("user", "ada").await.unwrap();
    match manager.finish(&session).await.unwrap() {
        CookieDecision::Set(cookie) => cookie.value().to_owned(),
        other => panic!("a new session sets its cookie, got {other:?}"),
    }
}

/// What a returning user with `cookie` sees through a manager over `store`: the
/// `user` value (an error is a 500 for them), then what `finish` tells the browser.
async fn revisit(
    store: Arc<dyn SessionInterface>,
    cookie: &str,
) -> (Result<Option<String>, Error>, CookieDecision) {
    let manager = SessionManager::new(store, SessionConfig::default());
    let session = manager.session(Some(cookie));
    let user = session.get::<String>("user").await;
    let decision = manager.finish(&session).await.unwrap();
    (user, decision)
}

/// Without the migration mode a plaintext record is no session (a fresh start, no
/// error), and still counted by `plaintext_reads`.
#[tokio::test]
async fn strict_store_treats_a_plaintext_record_as_no_session() {
    let memory = Arc::new(MemoryStore::new());
    let cookie = write_session(memory.clone()).await;

    let encrypted = Arc::new(EncryptedStore::new(memory.clone(), ring()));
    let (user, decision) = revisit(encrypted.clone(), &cookie).await;
    assert_eq!(user.unwrap(), None);
    assert_eq!(decision, CookieDecision::Leave);
    // A plain `load` says why, as a decode error the manager reads as "no session".
    assert!(matches!(
        encrypted.load(&storage_key(&cookie)).await,
        Err(Error::Decode(DecodeError::Malformed { .. }))
    ));
    // Refused, but counted: plaintext_reads counts every load that found
    // plaintext, whether the mode let it be read or not.
    assert_eq!(
        (encrypted.plaintext_reads(), encrypted.sealed_reads()),
        (2, 0)
    );
}

/// Encryption switched off by removing the wrapper: sealed records are no
/// session for the bare store's manager (users are logged out, nobody gets an
/// error).
#[tokio::test]
async fn removing_the_wrapper_makes_sealed_records_no_session() {
    let memory = Arc::new(MemoryStore::new());
    let cookie = write_session(Arc::new(EncryptedStore::new(memory.clone(), ring()))).await;
    let (user, decision) = revisit(memory.clone(), &cookie).await;
    assert_eq!(user.unwrap(), None);
    assert_eq!(decision, CookieDecision::Leave);
}

/// A record sealed with a key that has left the ring is no session too.
#[tokio::test]
async fn a_record_of_a_dropped_key_is_no_session() {
    let memory = Arc::new(MemoryStore::new());
    let cookie = write_session(Arc::new(EncryptedStore::new(memory.clone(), ring()))).await;
    let other = KeyRing::new(Key::new("k2", secret("k2")).unwrap());
    let (user, decision) = revisit(Arc::new(EncryptedStore::new(memory, other)), &cookie).await;
    assert_eq!(user.unwrap(), None);
    assert_eq!(decision, CookieDecision::Leave);
}

/// Stored bytes that are neither a sealed record of any version nor plaintext
/// (corruption) are no session as well; only a version byte reserved for a later
/// release of the format is `UnknownVersion`.
#[tokio::test]
async fn garbage_is_malformed_and_only_reserved_versions_are_unknown() {
    let memory = Arc::new(MemoryStore::new());
    let encrypted = EncryptedStore::new(memory.clone(), ring());
    for first in [0x00u8, 0x09, 0x20, b'[', 0x7f, 0x80, 0xff] {
        let cookie = write_session(memory.clone()).await;
        let key = storage_key(&cookie);
        let mut bytes = memory.load(&key).await.unwrap().unwrap().payload.to_vec();
        bytes[0] = first;
        overwrite(&memory, &key, bytes).await;
        assert!(
            matches!(
                encrypted.load(&key).await,
                Err(Error::Decode(DecodeError::Malformed { .. }))
            ),
            "first byte {first:#04x}"
        );
    }
    for version in 2u8..=8 {
        let cookie = write_session(Arc::new(encrypted.clone())).await;
        let key = storage_key(&cookie);
        let mut bytes = memory.load(&key).await.unwrap().unwrap().payload.to_vec();
        bytes[0] = version;
        overwrite(&memory, &key, bytes).await;
        assert!(
            matches!(
                encrypted.load(&key).await,
                Err(Error::Decode(DecodeError::UnknownVersion(v))) if v == u64::from(version)
            ),
            "version {version}"
        );
    }
}

/// Replaces the payload under `key` in `memory`, keeping its deadline.
async fn overwrite(memory: &MemoryStore, key: &StorageKey, payload: Vec<u8>) {
    let old = memory.load(key).await.unwrap().unwrap();
    let record = session_core::NewRecord {
        payload: payload.into(),
        expires_at: old.expires_at,
    };
    memory
        .save(
            key,
            &record,
            session_core::SaveMode::Update {
                expected_version: old.version,
            },
        )
        .await
        .unwrap();
}

/// Switching encryption on with `Migration::ToEncrypted`: the plaintext session
/// opens as it was, the next save seals it, and `plaintext_reads` counts what
/// was still in plaintext.
#[tokio::test]
async fn to_encrypted_reads_plaintext_and_the_next_save_seals_it() {
    let memory = Arc::new(MemoryStore::new());
    let cookie = write_session(memory.clone()).await;
    let key = storage_key(&cookie);
    assert!(is_plaintext_record(
        &memory.load(&key).await.unwrap().unwrap().payload
    ));

    let store = Arc::new(
        EncryptedStore::builder(memory.clone(), ring())
            .migration(Migration::ToEncrypted)
            .build(),
    );
    let manager = SessionManager::new(store.clone(), SessionConfig::default());
    let session = manager.session(Some(&cookie));
    assert_eq!(
        session.get::<String>("user").await.unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!((store.plaintext_reads(), store.sealed_reads()), (1, 0));
    session.insert("visits", &2u32).await.unwrap();
    let _ = manager.finish(&session).await.unwrap();

    let raw = memory.load(&key).await.unwrap().unwrap().payload;
    assert!(!is_plaintext_record(&raw));
    assert_eq!(record_key_id(&raw), Some("k1"));
    assert!(!raw.windows(3).any(|w| w == b"ada"));

    // From now on it is a sealed record, for this store and a strict one alike.
    let (user, _) = revisit(store.clone(), &cookie).await;
    assert_eq!(user.unwrap().as_deref(), Some("ada"));
    assert_eq!((store.plaintext_reads(), store.sealed_reads()), (1, 1));
    let (user, _) = revisit(Arc::new(EncryptedStore::new(memory, ring())), &cookie).await;
    assert_eq!(user.unwrap().as_deref(), Some("ada"));
}

/// Switching encryption off with `Migration::ToPlaintext`: the sealed session
/// opens, the next save writes it in plaintext, and once `sealed_reads` stops
/// growing the wrapper can go: the bare store's manager reads the session.
#[tokio::test]
async fn to_plaintext_opens_sealed_records_and_the_next_save_decrypts_them() {
    let memory = Arc::new(MemoryStore::new());
    let cookie = write_session(Arc::new(EncryptedStore::new(memory.clone(), ring()))).await;
    let key = storage_key(&cookie);
    assert_eq!(
        record_key_id(&memory.load(&key).await.unwrap().unwrap().payload),
        Some("k1")
    );

    let store = Arc::new(
        EncryptedStore::builder(memory.clone(), ring())
            .migration(Migration::ToPlaintext)
            .build(),
    );
    let manager = SessionManager::new(store.clone(), SessionConfig::default());
    let session = manager.session(Some(&cookie));
    assert_eq!(
        session.get::<String>("user").await.unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!((store.plaintext_reads(), store.sealed_reads()), (0, 1));
    session.insert("visits", &2u32).await.unwrap();
    let _ = manager.finish(&session).await.unwrap();
    assert!(is_plaintext_record(
        &memory.load(&key).await.unwrap().unwrap().payload
    ));

    // New sessions are written in plaintext too; both read through the wrapper.
    let fresh = write_session(store.clone()).await;
    assert!(is_plaintext_record(
        &memory
            .load(&storage_key(&fresh))
            .await
            .unwrap()
            .unwrap()
            .payload
    ));
    let (user, _) = revisit(store.clone(), &cookie).await;
    assert_eq!(user.unwrap().as_deref(), Some("ada"));
    assert_eq!((store.plaintext_reads(), store.sealed_reads()), (1, 1));

    // The wrapper removed: the bare store reads both sessions.
    for c in [&cookie, &fresh] {
        let (user, _) = revisit(memory.clone(), c).await;
        assert_eq!(user.unwrap().as_deref(), Some("ada"));
    }
}

/// A rotation pointer left by session-core in plaintext (`{"v":1,"fwd":…}`) is
/// plaintext too: during `ToEncrypted` a cookie from before the rotation still
/// reaches its session.
#[tokio::test]
async fn plaintext_rotation_pointers_are_followed_while_migrating() {
    let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
    let memory = Arc::new(MemoryStore::with_clock(clock.shared()));
    let config = SessionConfig::builder()
        .rotate_every(Some(Duration::hours(1)))
        .rotation_grace(Duration::minutes(5))
        .build()
        .unwrap();
    let plain = SessionManager::with_clock(memory.clone(), config.clone(), clock.shared());
    let session = plain.session(None);
    session.insert("user", "ada").await.unwrap();
    let CookieDecision::Set(old) = plain.finish(&session).await.unwrap() else {
        panic!("a new session sets its cookie")
    };
    // A request after the rotation period moves the session to a new id; the
    // old record becomes a plaintext pointer for the grace window.
    clock.advance(Duration::hours(2));
    let session = plain.session(Some(old.value()));
    session.get::<String>("user").await.unwrap();
    assert!(matches!(
        plain.finish(&session).await.unwrap(),
        CookieDecision::Set(_)
    ));
    let pointer = memory
        .load(&storage_key(old.value()))
        .await
        .unwrap()
        .unwrap();
    assert!(is_plaintext_record(&pointer.payload));

    let store = Arc::new(
        EncryptedStore::builder(memory.clone(), ring())
            .migration(Migration::ToEncrypted)
            .build(),
    );
    let manager = SessionManager::with_clock(store.clone(), config, clock.shared());
    let session = manager.session(Some(old.value()));
    assert_eq!(
        session.get::<String>("user").await.unwrap().as_deref(),
        Some("ada")
    );
    // Pointer and session: two plaintext records read.
    assert_eq!(store.plaintext_reads(), 2);
}

proptest! {
    /// A sealed record is never taken for plaintext, whatever its key id and
    /// payload.
    #[test]
    fn sealed_records_are_never_plaintext(
        id in "[A-Za-z0-9._-]{1,32}",
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let ring = KeyRing::new(Key::new(id, secret("proptest")).unwrap());
        let token = SessionToken::generate().unwrap();
        let sealed = seal_record(&ring, &token.storage_key(), &payload).unwrap();
        prop_assert!(!is_plaintext_record(&sealed));
    }
}

/// The one-step refresh over an encrypted store: a readable record comes back
/// opened; a plaintext one the strict store refuses keeps its deadline (the
/// inner store's touch is put back), so asking never extends an unreadable
/// record.
#[tokio::test]
async fn load_and_touch_opens_the_payload_and_never_extends_an_unreadable_record() {
    let memory = Arc::new(MemoryStore::new());
    let plain_cookie = write_session(memory.clone()).await;
    let plain_key = storage_key(&plain_cookie);
    let before = memory.load(&plain_key).await.unwrap().unwrap();
    let encrypted = EncryptedStore::new(memory.clone(), ring());
    assert!(encrypted.capabilities().load_and_touch);
    let far = before.expires_at + Duration::days(30);
    let err = encrypted
        .load_and_touch(&plain_key, far, far)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Decode(DecodeError::Malformed { .. })),
        "{err:?}"
    );
    assert_eq!(memory.load(&plain_key).await.unwrap().unwrap(), before);

    let sealed_cookie = write_session(Arc::new(encrypted.clone())).await;
    let sealed_key = storage_key(&sealed_cookie);
    let plain = encrypted.load(&sealed_key).await.unwrap().unwrap();
    let r = encrypted
        .load_and_touch(&sealed_key, far, far)
        .await
        .unwrap()
        .unwrap();
    assert!(r.touched);
    assert_eq!(
        (r.record.payload, r.record.expires_at),
        (plain.payload, far)
    );
    assert_eq!(
        memory.load(&sealed_key).await.unwrap().unwrap().expires_at,
        far
    );
}
