//! Encryption at rest: what the inner store holds, binding to the storage key,
//! rotation, and rejection of every kind of damaged record.

use std::sync::Arc;

use proptest::prelude::*;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, CookieDecision, DecodeError, Error, NewRecord, SaveMode, SessionConfig,
    SessionInterface, SessionManager, SessionToken, StorageKey,
};
use session_crypto::{EncryptedStore, Key, KeyRing, open_record, record_key_id, seal_record};
use session_file::FileStore;
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

fn storage_key() -> StorageKey {
    SessionToken::generate().unwrap().storage_key()
}

fn record(payload: &'static [u8]) -> NewRecord {
    NewRecord {
        payload: Bytes::from_static(payload),
        expires_at: OffsetDateTime::now_utc() + Duration::hours(1),
    }
}

const MARKER: &str = "plaintext-marker-7f3a9c";

/// Stores a session holding `MARKER` through a manager over an encrypted `inner`
/// and returns the cookie value.
async fn store_marker(inner: Arc<dyn SessionInterface>, ring: KeyRing) -> String {
    let store = EncryptedStore::new(inner, ring);
    let manager = SessionManager::new(Arc::new(store), SessionConfig::default());
    let session = manager.session(None);
    session.insert("secret", MARKER).await.unwrap();
    let CookieDecision::Set(cookie) = manager.finish(&session).await.unwrap() else {
        panic!("a new session sets its cookie")
    };
    // Reading it back through the wrapper works.
    let session = manager.session(Some(cookie.value()));
    assert_eq!(
        session.get::<String>("secret").await.unwrap().unwrap(),
        MARKER
    );
    cookie.value().to_owned()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn memory_store_holds_no_plaintext() {
    let memory = Arc::new(MemoryStore::new());
    let cookie = store_marker(memory.clone(), KeyRing::new(key("k", 1))).await;
    let skey = SessionToken::parse(&cookie).unwrap().storage_key();
    let raw = memory.load(&skey).await.unwrap().expect("the inner record");
    assert!(!raw.payload.is_empty());
    assert!(!contains(&raw.payload, MARKER.as_bytes()));
    assert!(!contains(&raw.payload, b"secret"));
    assert!(!contains(&raw.payload, b"\"v\":1"));
    assert_eq!(record_key_id(&raw.payload), Some("k"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(FileStore::open(dir.path().join("s")).await.unwrap());
    store_marker(file, KeyRing::new(key("k", 1))).await;
    // Grep every file under the store's directory, as an attacker with the disk would.
    let mut stack = vec![dir.path().to_path_buf()];
    let mut files = 0;
    while let Some(p) = stack.pop() {
        for entry in std::fs::read_dir(&p).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(!contains(&bytes, MARKER.as_bytes()), "{:?}", entry.path());
                assert!(!contains(&bytes, b"secret"), "{:?}", entry.path());
            }
        }
    }
    assert!(files >= 1, "the store wrote no file");
}

#[tokio::test]
async fn payload_copied_to_another_key_does_not_decrypt() {
    let memory = Arc::new(MemoryStore::new());
    let store = EncryptedStore::new(memory.clone(), KeyRing::new(key("k", 1)));
    let (a, b) = (storage_key(), storage_key());
    store
        .save(&a, &record(b"alice's session"), SaveMode::Create)
        .await
        .unwrap();
    let sealed = memory.load(&a).await.unwrap().unwrap().payload;
    let copied = NewRecord {
        payload: sealed,
        expires_at: OffsetDateTime::now_utc() + Duration::hours(1),
    };
    memory.save(&b, &copied, SaveMode::Create).await.unwrap();
    assert!(matches!(
        store.load(&b).await,
        Err(Error::Decode(DecodeError::Malformed { .. }))
    ));
    // The original still opens.
    let loaded = store.load(&a).await.unwrap().unwrap();
    assert_eq!(&loaded.payload[..], b"alice's session");
}

/// Sealed with A; rotate to B: still readable, re-sealed with B on the next save;
/// A removed: what is still sealed with A no longer opens.
#[tokio::test]
async fn rotation() {
    let memory = Arc::new(MemoryStore::new());
    let ring_a = KeyRing::new(key("a", 1));
    let ring_ba = ring_a.rotated(key("b", 2)).unwrap();
    let ring_b = ring_ba.without("a").unwrap();
    let (k1, k2) = (storage_key(), storage_key());

    let old = EncryptedStore::new(memory.clone(), ring_a);
    let v1 = old
        .save(&k1, &record(b"one"), SaveMode::Create)
        .await
        .unwrap();
    old.save(&k2, &record(b"two"), SaveMode::Create)
        .await
        .unwrap();

    let rotated = EncryptedStore::new(memory.clone(), ring_ba);
    let raw = |k: &StorageKey| {
        let memory = memory.clone();
        let k = k.clone();
        async move { memory.load(&k).await.unwrap().unwrap().payload }
    };
    assert_eq!(
        &rotated.load(&k1).await.unwrap().unwrap().payload[..],
        b"one"
    );
    assert_eq!(record_key_id(&raw(&k1).await), Some("a"));
    rotated
        .save(
            &k1,
            &record(b"one, again"),
            SaveMode::Update {
                expected_version: v1,
            },
        )
        .await
        .unwrap();
    assert_eq!(record_key_id(&raw(&k1).await), Some("b"));
    assert_eq!(record_key_id(&raw(&k2).await), Some("a"));

    let new = EncryptedStore::new(memory.clone(), ring_b);
    assert_eq!(
        &new.load(&k1).await.unwrap().unwrap().payload[..],
        b"one, again"
    );
    assert!(matches!(
        new.load(&k2).await,
        Err(Error::Decode(DecodeError::Malformed { reason }))
            if reason.contains("not in the key ring")
    ));
}

/// The same key id with a different secret (a misconfigured replica) does not
/// open, and says nothing more than "authentication failed".
#[test]
fn wrong_secret_under_the_same_id() {
    let k = storage_key();
    let sealed = seal_record(&KeyRing::new(key("k", 1)), &k, b"payload").unwrap();
    assert!(matches!(
        open_record(&KeyRing::new(key("k", 2)), &k, &sealed),
        Err(DecodeError::Malformed { reason }) if reason.contains("authentication")
    ));
}

/// The record produced by `scripts/kat.py` with an independent XChaCha20-Poly1305
/// opens to its payload, under the storage key it was written for only.
#[test]
fn known_answer_record_opens() {
    let hex = "01056b61742d31404142434445464748494a4b4c4d4e4f50515253545556570fc5ae1ec3\
               e1e294e509c1a76897fbae84551f80fdaf8b5925c1dd06b524d304b8df1efbfd9f257496\
               89d70be1bb4733945c3b01857937a99c31d7993b9d";
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let ring = KeyRing::new(Key::new("kat-1", (0u8..32).collect::<Vec<_>>()).unwrap());
    let k = StorageKey::parse("66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925")
        .unwrap();
    assert_eq!(
        open_record(&ring, &k, &bytes).unwrap(),
        br#"{"v":1,"created":0,"abs":1,"data":{"user":42}}"#
    );
    assert_eq!(record_key_id(&bytes), Some("kat-1"));
    assert!(open_record(&ring, &storage_key(), &bytes).is_err());
}

#[test]
fn format_of_a_fresh_record() {
    let ring = KeyRing::new(key("abc", 1));
    let k = storage_key();
    let sealed = seal_record(&ring, &k, b"12345").unwrap();
    assert_eq!(&sealed[..5], b"\x01\x03abc");
    assert_eq!(sealed.len(), 5 + 24 + 5 + 16);
    // Random nonces: sealing twice never gives the same bytes.
    assert_ne!(sealed, seal_record(&ring, &k, b"12345").unwrap());
}

#[test]
fn damaged_headers_are_typed_errors() {
    let ring = KeyRing::new(key("abc", 1));
    let k = storage_key();
    let sealed = seal_record(&ring, &k, b"payload").unwrap();
    let open = |b: &[u8]| open_record(&ring, &k, b);
    assert!(matches!(open(b""), Err(DecodeError::Malformed { .. })));
    assert!(matches!(open(b"\x01"), Err(DecodeError::Malformed { .. })));
    let mut v2 = sealed.clone();
    v2[0] = 2;
    assert!(matches!(open(&v2), Err(DecodeError::UnknownVersion(2))));
    // A plaintext JSON envelope (a store that was never encrypted) is not a
    // record — and not a record of an unknown version either, which the manager
    // would turn into an error on every request of that user (issue #20, item 3).
    assert!(matches!(
        open(br#"{"v":1}"#),
        Err(DecodeError::Malformed { reason }) if reason.contains("plaintext")
    ));
    let mut zero_id = sealed.clone();
    zero_id[1] = 0;
    assert!(matches!(open(&zero_id), Err(DecodeError::Malformed { .. })));
    let mut long_id = sealed.clone();
    long_id[1] = 255;
    assert!(matches!(open(&long_id), Err(DecodeError::Malformed { .. })));
    let mut bad_char = sealed.clone();
    bad_char[2] = b'/';
    assert!(matches!(
        open(&bad_char),
        Err(DecodeError::Malformed { .. })
    ));
    assert_eq!(record_key_id(&bad_char), None);
}

proptest! {
    #[test]
    fn seal_open_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let ring = KeyRing::from_keys([key("new", 1), key("old", 2)]).unwrap();
        let k = storage_key();
        let sealed = seal_record(&ring, &k, &payload).unwrap();
        prop_assert_eq!(open_record(&ring, &k, &sealed).unwrap(), payload);
    }

    /// Every single-bit flip anywhere in a record is rejected.
    #[test]
    fn every_bit_flip_is_rejected(
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        bit in any::<proptest::sample::Index>(),
    ) {
        let ring = KeyRing::new(key("k", 1));
        let k = storage_key();
        let mut sealed = seal_record(&ring, &k, &payload).unwrap();
        let bit = bit.index(sealed.len() * 8);
        sealed[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(open_record(&ring, &k, &sealed).is_err());
    }

    /// Every truncation and every extension is rejected.
    #[test]
    fn truncated_or_extended_records_are_rejected(
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        cut in any::<proptest::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        let ring = KeyRing::new(key("k", 1));
        let k = storage_key();
        let sealed = seal_record(&ring, &k, &payload).unwrap();
        let cut = cut.index(sealed.len());
        prop_assert!(open_record(&ring, &k, &sealed[..cut]).is_err());
        let mut longer = sealed.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(open_record(&ring, &k, &longer).is_err());
    }

    /// Arbitrary bytes never open and never panic.
    #[test]
    fn arbitrary_bytes_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let ring = KeyRing::new(key("k", 1));
        prop_assert!(open_record(&ring, &storage_key(), &bytes).is_err());
    }
}

/// The inner store's calls, by name, in order.
#[derive(Debug, Default)]
struct Logged {
    inner: MemoryStore,
    calls: std::sync::Mutex<Vec<&'static str>>,
}

impl Logged {
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
    fn log(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait::async_trait]
impl SessionInterface for Logged {
    async fn load(&self, key: &StorageKey) -> Result<Option<session_core::StoredRecord>, Error> {
        self.log("load");
        self.inner.load(key).await
    }
    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<session_core::Version, Error> {
        self.log("save");
        self.inner.save(key, record, mode).await
    }
    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.log("expire");
        self.inner.expire(key).await
    }
    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        self.log("touch");
        self.inner.touch(key, expires_at).await
    }
    async fn delete_expired(&self) -> Result<u64, Error> {
        self.log("delete_expired");
        self.inner.delete_expired().await
    }
    fn capabilities(&self) -> session_core::Capabilities {
        self.inner.capabilities()
    }
}

/// `touch`, `expire` and `delete_expired` cost the inner store exactly one call of the same name each, and `touch` leaves the sealed bytes and version as they were.
#[tokio::test]
async fn deadline_operations_pass_straight_through() {
    let logged = Arc::new(Logged::default());
    let store = EncryptedStore::new(logged.clone(), KeyRing::new(key("k", 1)));
    let k = storage_key();
    store
        .save(&k, &record(b"{\"a\":1}"), SaveMode::Create)
        .await
        .unwrap();
    let before = logged.inner.load(&k).await.unwrap().unwrap();
    logged.take();

    let later = before.expires_at + Duration::hours(1);
    assert!(store.touch(&k, later).await.unwrap());
    assert_eq!(logged.take(), ["touch"]);
    let after = logged.inner.load(&k).await.unwrap().unwrap();
    assert_eq!(
        (&after.payload, after.version, after.expires_at),
        (&before.payload, before.version, later)
    );

    assert_eq!(store.delete_expired().await.unwrap(), 0);
    assert_eq!(logged.take(), ["delete_expired"]);
    store.expire(&k).await.unwrap();
    assert_eq!(logged.take(), ["expire"]);
    assert_eq!(logged.inner.load(&k).await.unwrap(), None);
}
