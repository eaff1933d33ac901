//! Security review (HARDENING.md): what a store, a log line or an error message can
//! learn about a session's cookie.
//!
//! - Stores see only storage keys (hex SHA-256 of the token) and payloads that never
//!   contain the token, in any encoding, through every lifecycle step: create, update,
//!   touch, login rotation (`cycle_id`), periodic rotation (pointer records), destroy.
//! - Tokens come from the OS CSPRNG: 256 bits, no repeats, no stuck bits.
//! - `Debug` of every public type that holds a token or a cookie, and `Display` /
//!   `Debug` of the errors a hostile or broken store produces, never show the token.
//! - Rotating the id (periodically or with `cycle_id`) never extends the absolute
//!   lifetime, which caps what a stolen cookie is worth.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Bytes, Capabilities, CookieDecision, CookieSealer, Error, ManualClock, NewRecord, SaveMode,
    SessionConfig, SessionInterface, SessionManager, SessionToken, StorageKey, StoredRecord,
    Version,
};
use session_memory::MemoryStore;

/// Everything a store was ever handed: keys (of every call) and written payloads.
#[derive(Default)]
struct Seen {
    keys: Vec<String>,
    payloads: Vec<Vec<u8>>,
}

/// session-memory that records what it is given.
struct Witness {
    inner: MemoryStore,
    seen: Mutex<Seen>,
}

impl Witness {
    fn key(&self, key: &StorageKey) {
        self.seen.lock().unwrap().keys.push(key.as_str().to_owned());
    }
}

#[async_trait]
impl SessionInterface for Witness {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        self.key(key);
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        self.key(key);
        self.seen
            .lock()
            .unwrap()
            .payloads
            .push(record.payload.to_vec());
        self.inner.save(key, record, mode).await
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.key(key);
        self.inner.expire(key).await
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        self.key(key);
        self.inner.touch(key, expires_at).await
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        self.inner.delete_expired().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

fn set_value(d: &CookieDecision) -> String {
    match d {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected Set, got {other:?}"),
    }
}

/// Every form in which a token could be written down: the cookie string, its 32
/// raw bytes, and their hex (lower and upper case).
fn encodings(cookie: &str) -> Vec<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD.decode(cookie).unwrap();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        cookie.as_bytes().to_vec(),
        raw,
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn stores_never_see_a_token_in_any_form() {
    let clock = ManualClock::new(session_core::time::macros::datetime!(2030-01-01 0:00 UTC));
    let store = Arc::new(Witness {
        inner: MemoryStore::with_clock(clock.shared()),
        seen: Mutex::new(Seen::default()),
    });
    let config = SessionConfig::builder()
        .refresh_each_request(true)
        .rotate_every(Some(Duration::hours(1)))
        .rotation_grace(Duration::minutes(5))
        .build()
        .unwrap();
    let manager = SessionManager::with_clock(store.clone(), config, clock.shared());
    let mut cookies = Vec::new();

    // Create.
    let s = manager.session(None);
    s.insert("cart", &"marker-value").await.unwrap();
    cookies.push(set_value(&manager.finish(&s).await.unwrap()));
    // Update, then a read-only visit later (touch).
    let s = manager.session(Some(&cookies[0]));
    s.insert("visits", &2).await.unwrap();
    let _ = manager.finish(&s).await.unwrap();
    clock.advance(Duration::minutes(10));
    let s = manager.session(Some(&cookies[0]));
    assert!(s.exists().await.unwrap());
    let _ = manager.finish(&s).await.unwrap();
    // Login: a new id.
    let s = manager.session(Some(&cookies[0]));
    s.insert("user", &"alice").await.unwrap();
    s.cycle_id().await.unwrap();
    cookies.push(set_value(&manager.finish(&s).await.unwrap()));
    // Periodic rotation: leaves a pointer record under the old key, followed once.
    clock.advance(Duration::minutes(61));
    let s = manager.session(Some(&cookies[1]));
    assert!(s.exists().await.unwrap());
    cookies.push(set_value(&manager.finish(&s).await.unwrap()));
    let s = manager.session(Some(&cookies[1]));
    assert!(
        s.exists().await.unwrap(),
        "the old id within its grace window"
    );
    let _ = manager.finish(&s).await.unwrap();
    // Through the store's own API: every record under every id the session had.
    let mut raw_records = Vec::new();
    for cookie in &cookies {
        let key = SessionToken::parse(cookie).unwrap().storage_key();
        if let Some(record) = store.inner.load(&key).await.unwrap() {
            raw_records.push(record.payload.to_vec());
        }
    }
    assert!(
        raw_records.len() >= 2,
        "the session and its rotation pointer"
    );
    // Logout.
    let s = manager.session(Some(&cookies[2]));
    s.destroy();
    assert!(matches!(
        manager.finish(&s).await.unwrap(),
        CookieDecision::Remove(_)
    ));

    let seen = store.seen.lock().unwrap();
    let issued: HashSet<String> = cookies
        .iter()
        .map(|c| {
            SessionToken::parse(c)
                .unwrap()
                .storage_key()
                .as_str()
                .to_owned()
        })
        .collect();
    assert_eq!(issued.len(), 3, "three distinct ids");
    for key in &seen.keys {
        assert!(
            issued.contains(key),
            "a key that is no issued id's hash: {key}"
        );
    }
    assert!(
        seen.payloads.iter().any(|p| contains(p, b"marker-value")),
        "the witness saw the session data (the check below is not vacuous)"
    );
    for cookie in &cookies {
        for form in encodings(cookie) {
            for key in &seen.keys {
                assert!(!contains(key.as_bytes(), &form), "a token in a key");
            }
            for payload in seen.payloads.iter().chain(&raw_records) {
                assert!(!contains(payload, &form), "a token in a stored payload");
            }
        }
    }
}

#[test]
fn tokens_are_256_random_bits() {
    const N: usize = 4000;
    let mut seen = HashSet::new();
    let mut ones = [0u32; 256];
    for _ in 0..N {
        let cookie = SessionToken::generate().unwrap().to_cookie_value();
        let raw = URL_SAFE_NO_PAD.decode(&cookie).unwrap();
        assert_eq!(raw.len(), 32);
        for (i, one) in ones.iter_mut().enumerate() {
            *one += u32::from(raw[i / 8] >> (i % 8) & 1);
        }
        assert!(seen.insert(raw), "a repeated token");
    }
    // Each bit is set in half the tokens: 2000 ± 32 (one standard deviation). The
    // bounds are 12 deviations wide, so a true CSPRNG never fails them; a stuck
    // bit, a counter or a short random part does.
    for (bit, &n) in ones.iter().enumerate() {
        assert!(
            (1600..=2400).contains(&n),
            "bit {bit} set in {n} of {N} tokens"
        );
    }
}

/// A store that holds the given bytes under every key.
struct Garbage(&'static [u8]);

#[async_trait]
impl SessionInterface for Garbage {
    async fn load(&self, _: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        Ok(Some(StoredRecord {
            payload: Bytes::from_static(self.0),
            expires_at: OffsetDateTime::now_utc() + Duration::hours(1),
            version: 1,
        }))
    }

    async fn save(&self, _: &StorageKey, _: &NewRecord, _: SaveMode) -> Result<Version, Error> {
        Err(Error::backend("save refused"))
    }

    async fn expire(&self, _: &StorageKey) -> Result<(), Error> {
        Ok(())
    }

    async fn touch(&self, _: &StorageKey, _: OffsetDateTime) -> Result<bool, Error> {
        Ok(true)
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        Ok(0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
}

/// `Display`, alternate `Display` and `Debug` of an error and its whole source chain.
fn every_rendering(e: &Error) -> String {
    let mut out = format!("{e} | {e:#} | {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!(" | {s} | {s:?}"));
        source = s.source();
    }
    out
}

#[tokio::test]
async fn debug_and_errors_never_show_a_token() {
    // A live session over memory: Debug of the handle, the manager, the decision.
    let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default());
    let s = manager.session(None);
    s.insert("a", &1).await.unwrap();
    let decision = manager.finish(&s).await.unwrap();
    let cookie = set_value(&decision);
    let token = SessionToken::parse(&cookie).unwrap();
    let s = manager.session(Some(&cookie));
    assert!(s.exists().await.unwrap());
    s.cycle_id().await.unwrap();
    let rotated = manager.finish(&s).await.unwrap();
    let new_cookie = set_value(&rotated);
    let debug = format!("{s:?} {manager:?} {decision:?} {rotated:?} {token:?} {decision:#?}");
    for c in [&cookie, &new_cookie] {
        assert!(!debug.contains(c.as_str()), "a token in Debug: {debug}");
    }
    assert!(
        debug.contains("session_id="),
        "the cookie is still described: {debug}"
    );
    assert!(debug.contains("HttpOnly"), "with its attributes: {debug}");

    // Errors from stores returning garbage or failing: never the cookie value.
    for bytes in [&b"\xff\x00garbage"[..], b"{\"v\":1,\"data\":17}", b""] {
        let manager = SessionManager::new(Arc::new(Garbage(bytes)), SessionConfig::default());
        let s = manager.session(Some(&cookie));
        let load = s.get::<i64>("a").await;
        let insert = s.insert("b", &2).await;
        let finish = manager.finish(&s).await;
        let errors: Vec<Error> = [load.err(), insert.err(), finish.err()]
            .into_iter()
            .flatten()
            .collect();
        assert!(!errors.is_empty(), "garbage {bytes:?} must fail somewhere");
        for e in &errors {
            let text = every_rendering(e);
            assert!(!text.contains(&cookie), "a token in an error: {text}");
        }
    }

    // Client-side: the cookie *is* the sealed session; Debug hides it too.
    struct Plain;
    impl CookieSealer for Plain {
        fn seal(&self, _: &str, payload: &[u8], _: OffsetDateTime) -> Result<String, Error> {
            Ok(URL_SAFE_NO_PAD.encode(payload))
        }
        fn open(&self, _: &str, value: &str, _: OffsetDateTime) -> Option<Vec<u8>> {
            URL_SAFE_NO_PAD.decode(value).ok()
        }
    }
    let manager = SessionManager::client_side(Arc::new(Plain), SessionConfig::default());
    let s = manager.session(None);
    s.insert("csrf", &"secret-form-token").await.unwrap();
    let decision = manager.finish(&s).await.unwrap();
    let value = set_value(&decision);
    let debug = format!("{decision:?} {s:?} {manager:?}");
    assert!(
        !debug.contains(&value),
        "a sealed session in Debug: {debug}"
    );
}

/// A stolen cookie's worth is capped by the absolute lifetime, and rotating the id —
/// periodically or with `cycle_id` at every other request — does not reset that cap:
/// the creation time travels with the session to every new id.
#[tokio::test]
async fn id_rotation_never_extends_the_absolute_lifetime() {
    let clock = ManualClock::new(session_core::time::macros::datetime!(2030-01-01 0:00 UTC));
    let store = Arc::new(MemoryStore::with_clock(clock.shared()));
    let config = SessionConfig::builder()
        .idle_lifetime(Duration::hours(1))
        .absolute_lifetime(Duration::hours(3))
        .refresh_each_request(true)
        .rotate_every(Some(Duration::minutes(30)))
        .rotation_grace(Duration::minutes(1))
        .build()
        .unwrap();
    let manager = SessionManager::with_clock(store, config, clock.shared());
    let s = manager.session(None);
    s.insert("user", &"alice").await.unwrap();
    let mut cookie = set_value(&manager.finish(&s).await.unwrap());
    let mut ids = HashSet::from([cookie.clone()]);
    // Active every 20 minutes for 2 h 40 min: alive throughout, many ids.
    for i in 1..=8 {
        clock.advance(Duration::minutes(20));
        let s = manager.session(Some(&cookie));
        assert!(s.exists().await.unwrap(), "alive at {} min", i * 20);
        let cap = session_core::time::macros::datetime!(2030-01-01 3:00 UTC);
        assert!(
            s.expires_at().await.unwrap() <= cap,
            "deadline past the cap"
        );
        if i % 2 == 0 {
            s.cycle_id().await.unwrap();
        }
        if let CookieDecision::Set(c) = manager.finish(&s).await.unwrap() {
            cookie = c.value().to_owned();
            ids.insert(cookie.clone());
        }
    }
    assert!(ids.len() >= 5, "the id rotated: {} ids", ids.len());
    // At 3 h since creation the session is over, whatever id it carries now.
    clock.advance(Duration::minutes(21));
    let s = manager.session(Some(&cookie));
    assert!(
        !s.exists().await.unwrap(),
        "the absolute lifetime was extended"
    );
}
