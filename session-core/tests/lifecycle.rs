//! Lifecycle rules of the manager, against session-memory and a manual clock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Capabilities, Clock, CookieDecision, Error, ManualClock, NewRecord, Refreshed, SaveMode,
    Session, SessionConfig, SessionInterface, SessionManager, SessionToken, StorageKey,
    StoredRecord, Version,
};
use session_memory::MemoryStore;

/// Which store operations a request performed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Calls {
    load: u32,
    create: u32,
    update: u32,
    expire: u32,
    touch: u32,
    load_and_touch: u32,
    /// Updates answered with `Conflict`.
    conflict: u32,
}

/// session-memory with call counting and injectable failures.
#[derive(Debug)]
struct Recording {
    inner: MemoryStore,
    calls: Mutex<Calls>,
    /// Answer this many creates with `Collision` before passing them through.
    collide_creates: AtomicU32,
    /// Before passing this many creates through, store another session under
    /// their key, so the store itself answers `Collision` (a real one).
    occupy_creates: AtomicU32,
    /// The keys of the sessions stored by `occupy_creates`.
    occupied: Mutex<Vec<StorageKey>>,
    touch_supported: bool,
    /// Declares (and passes through) session-memory's one-step `load_and_touch`.
    one_step: bool,
}

impl Recording {
    fn new(clock: &ManualClock) -> Arc<Self> {
        Self::with_touch(clock, true)
    }

    fn with_touch(clock: &ManualClock, touch_supported: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::with_clock(clock.shared()),
            calls: Mutex::new(Calls::default()),
            collide_creates: AtomicU32::new(0),
            occupy_creates: AtomicU32::new(0),
            occupied: Mutex::default(),
            touch_supported,
            one_step: false,
        })
    }

    /// A recording store that declares the one-step `load_and_touch`.
    fn one_step(clock: &ManualClock) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::with_clock(clock.shared()),
            calls: Mutex::new(Calls::default()),
            collide_creates: AtomicU32::new(0),
            occupy_creates: AtomicU32::new(0),
            occupied: Mutex::default(),
            touch_supported: true,
            one_step: true,
        })
    }

    /// Returns the calls so far and resets the count.
    fn take_calls(&self) -> Calls {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn count(&self, f: impl FnOnce(&mut Calls)) {
        f(&mut self.calls.lock().unwrap());
    }
}

#[async_trait]
impl SessionInterface for Recording {
    async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
        self.count(|c| c.load += 1);
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &StorageKey,
        record: &NewRecord,
        mode: SaveMode,
    ) -> Result<Version, Error> {
        match mode {
            SaveMode::Create => {
                self.count(|c| c.create += 1);
                let forced =
                    self.collide_creates
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                if forced.is_ok() {
                    return Err(Error::Collision);
                }
                let occupy =
                    self.occupy_creates
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                if occupy.is_ok() {
                    let theirs = NewRecord {
                        payload: session_core::Bytes::from_static(b"someone else's"),
                        expires_at: record.expires_at,
                    };
                    self.inner.save(key, &theirs, SaveMode::Create).await?;
                    self.occupied.lock().unwrap().push(key.clone());
                }
            }
            SaveMode::Update { .. } => self.count(|c| c.update += 1),
        }
        let outcome = self.inner.save(key, record, mode).await;
        if matches!(outcome, Err(Error::Conflict)) {
            self.count(|c| c.conflict += 1);
        }
        outcome
    }

    async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
        self.count(|c| c.expire += 1);
        self.inner.expire(key).await
    }

    async fn touch(&self, key: &StorageKey, expires_at: OffsetDateTime) -> Result<bool, Error> {
        if !self.touch_supported {
            return Err(Error::unsupported("touch"));
        }
        self.count(|c| c.touch += 1);
        self.inner.touch(key, expires_at).await
    }

    async fn load_and_touch(
        &self,
        key: &StorageKey,
        expires_at: OffsetDateTime,
        due_before: OffsetDateTime,
    ) -> Result<Option<Refreshed>, Error> {
        self.count(|c| c.load_and_touch += 1);
        self.inner.load_and_touch(key, expires_at, due_before).await
    }

    async fn delete_expired(&self) -> Result<u64, Error> {
        self.inner.delete_expired().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner
            .capabilities()
            .with_touch(self.touch_supported)
            .with_load_and_touch(self.one_step)
    }
}

struct Fixture {
    clock: ManualClock,
    store: Arc<Recording>,
    manager: SessionManager,
}

fn fixture_with(config: SessionConfig) -> Fixture {
    let clock = ManualClock::new(session_core::time::macros::datetime!(2030-01-01 0:00 UTC));
    let store = Recording::new(&clock);
    let manager = SessionManager::with_clock(store.clone(), config, clock.shared());
    Fixture {
        clock,
        store,
        manager,
    }
}

fn fixture() -> Fixture {
    fixture_with(SessionConfig::default())
}

fn set_value(d: &CookieDecision) -> String {
    match d {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected a Set cookie, got {other:?}"),
    }
}

fn assert_removed(d: &CookieDecision) {
    match d {
        CookieDecision::Remove(c) => {
            assert_eq!(c.value(), "");
            assert_eq!(c.max_age(), Some(Duration::ZERO));
        }
        other => panic!("expected a removal cookie, got {other:?}"),
    }
}

/// Runs one request that inserts `pairs` and returns its cookie value.
async fn new_session(f: &Fixture, pairs: &[(&str, i64)]) -> String {
    let s = f.manager.session(None);
    for (k, v) in pairs {
        s.insert(k, v).await.unwrap();
    }
    let cookie = set_value(&f.manager.finish(&s).await.unwrap());
    f.store.take_calls();
    cookie
}

async fn stored(f: &Fixture, cookie: &str) -> Option<StoredRecord> {
    let key = SessionToken::parse(cookie).unwrap().storage_key();
    f.store.inner.load(&key).await.unwrap()
}

#[tokio::test]
async fn untouched_session_makes_no_store_call() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1)]).await;
    for value in [None, Some(cookie.as_str()), Some("garbage")] {
        let s = f.manager.session(value);
        assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);
        assert_eq!(f.store.take_calls(), Calls::default());
    }
}

/// A cookie value that is not a canonical token is no session even when the request uses it: no store call but the new session's create.
#[tokio::test]
async fn an_ill_formed_cookie_never_reaches_the_store() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1)]).await;
    let key = SessionToken::parse(&cookie).unwrap().storage_key();
    let huge = "A".repeat(1 << 20);
    for value in [
        "",
        "../../etc/passwd",
        &cookie[..42],
        &format!("{cookie}="),
        &format!(" {cookie}"),
        // The session's storage key (a leaked store dump) is not its cookie.
        key.as_str(),
        &huge,
    ] {
        let s = f.manager.session(Some(value));
        assert!(!s.exists().await.unwrap());
        assert_eq!(s.get::<i64>("a").await.unwrap(), None);
        s.insert("b", &2).await.unwrap();
        let fresh = set_value(&f.manager.finish(&s).await.unwrap());
        assert_ne!(fresh, cookie);
        assert_eq!(
            f.store.take_calls(),
            Calls {
                create: 1,
                ..Calls::default()
            },
            "{value:.60?}"
        );
    }
}

#[tokio::test]
async fn reading_without_changes_writes_nothing() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1)]).await;
    let s = f.manager.session(Some(&cookie));
    assert_eq!(s.get::<i64>("a").await.unwrap(), Some(1));
    // Re-inserting the same value is not a change either.
    s.insert("a", &1).await.unwrap();
    assert!(!s.is_modified());
    assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);
    assert_eq!(
        f.store.take_calls(),
        Calls {
            load: 1,
            ..Calls::default()
        }
    );
}

#[tokio::test]
async fn concurrent_first_uses_share_one_load() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1), ("b", 2)]).await;
    let s = f.manager.session(Some(&cookie));
    let s2 = s.clone();
    let (a, b) = tokio::join!(s.get::<i64>("a"), s2.get::<i64>("b"));
    assert_eq!((a.unwrap(), b.unwrap()), (Some(1), Some(2)));
    assert_eq!(f.store.take_calls().load, 1);
}

#[tokio::test]
async fn new_session_is_created_with_a_cookie() {
    let f = fixture();
    let s = f.manager.session(None);
    s.insert("user", "ada").await.unwrap();
    let d = f.manager.finish(&s).await.unwrap();
    let CookieDecision::Set(c) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(c.name(), "session_id");
    assert!(SessionToken::parse(c.value()).is_some());
    assert_eq!(c.http_only(), Some(true));
    assert_eq!(c.secure(), Some(true));
    assert_eq!(c.same_site(), Some(session_core::cookie::SameSite::Lax));
    assert_eq!(c.path(), Some("/"));
    // Not permanent: a browser-session cookie.
    assert_eq!(c.max_age(), None);
    assert!(c.expires().is_none());
    let header = d.set_cookie_header().unwrap();
    assert!(
        header.starts_with(&format!("session_id={}", c.value())),
        "{header}"
    );
    assert!(
        header.contains("HttpOnly") && header.contains("Secure"),
        "{header}"
    );

    let calls = f.store.take_calls();
    assert_eq!((calls.create, calls.update, calls.load), (1, 0, 0));
    let rec = stored(&f, c.value()).await.unwrap();
    assert_eq!(rec.expires_at, f.clock.now() + Duration::hours(24));
}

#[tokio::test]
async fn new_empty_session_stores_nothing() {
    let f = fixture();
    let s = f.manager.session(None);
    assert!(s.is_empty().await.unwrap());
    s.insert("a", &1).await.unwrap();
    s.remove("a").await.unwrap();
    assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);
    assert_eq!(f.store.take_calls(), Calls::default());
    assert!(f.store.inner.is_empty());
}

#[tokio::test]
async fn permanent_sessions_get_max_age() {
    let f = fixture_with(SessionConfig::builder().permanent(true).build().unwrap());
    let s = f.manager.session(None);
    s.insert("a", &1).await.unwrap();
    let CookieDecision::Set(c) = f.manager.finish(&s).await.unwrap() else {
        panic!()
    };
    assert_eq!(c.max_age(), Some(Duration::hours(24)));
    assert_eq!(
        c.expires_datetime(),
        Some(f.clock.now() + Duration::hours(24))
    );
}

#[tokio::test]
async fn per_session_permanence_and_lifetime_persist() {
    let f = fixture();
    let s = f.manager.session(None);
    s.insert("a", &1).await.unwrap();
    s.set_permanent(Some(true)).await.unwrap();
    s.set_idle_lifetime(Some(Duration::hours(2))).await.unwrap();
    let CookieDecision::Set(c) = f.manager.finish(&s).await.unwrap() else {
        panic!()
    };
    assert_eq!(c.max_age(), Some(Duration::hours(2)));
    let s2 = f.manager.session(Some(c.value()));
    assert_eq!(
        s2.expires_at().await.unwrap(),
        f.clock.now() + Duration::hours(2)
    );
}

#[tokio::test]
async fn collision_draws_a_new_token() {
    let f = fixture();
    f.store.collide_creates.store(2, Ordering::SeqCst);
    let s = f.manager.session(None);
    s.insert("a", &1).await.unwrap();
    let cookie = set_value(&f.manager.finish(&s).await.unwrap());
    assert_eq!(f.store.take_calls().create, 3);
    assert!(stored(&f, &cookie).await.is_some());

    // A store that always collides is reported, not looped on forever.
    f.store.collide_creates.store(u32::MAX, Ordering::SeqCst);
    let s = f.manager.session(None);
    s.insert("a", &1).await.unwrap();
    assert!(matches!(f.manager.finish(&s).await, Err(Error::Collision)));
}

/// A create that meets a live record (a real `Collision`) is retried under a fresh token, never the same one, and the other session is left alone.
#[tokio::test]
async fn a_real_collision_is_retried_under_a_new_token() {
    let f = fixture();
    f.store.occupy_creates.store(2, Ordering::SeqCst);
    let s = f.manager.session(None);
    s.insert("a", &1).await.unwrap();
    let cookie = set_value(&f.manager.finish(&s).await.unwrap());
    assert_eq!(f.store.take_calls().create, 3);
    let occupied = f.store.occupied.lock().unwrap().clone();
    let mine = SessionToken::parse(&cookie).unwrap().storage_key();
    assert_eq!(occupied.len(), 2);
    assert!(occupied[0] != occupied[1] && !occupied.contains(&mine));
    for key in &occupied {
        let theirs = f.store.inner.load(key).await.unwrap().unwrap();
        assert_eq!(&theirs.payload[..], b"someone else's");
    }
    let s = f.manager.session(Some(&cookie));
    assert_eq!(s.get::<i64>("a").await.unwrap(), Some(1));
}

/// A second manager over the fixture's store: another process, as far as the
/// per-session queue is concerned.
fn other_process(f: &Fixture) -> SessionManager {
    SessionManager::with_clock(
        f.store.clone(),
        f.manager.config().clone(),
        f.clock.shared(),
    )
}

#[tokio::test]
async fn concurrent_changes_to_different_keys_both_survive() {
    for processes in [1, 2] {
        let f = fixture();
        let cookie = new_session(&f, &[("base", 0)]).await;
        let b_manager = if processes == 1 {
            f.manager.clone()
        } else {
            other_process(&f)
        };
        let a = f.manager.session(Some(&cookie));
        let b = b_manager.session(Some(&cookie));
        // Both load the same version before either saves.
        a.insert("a", &1).await.unwrap();
        b.insert("b", &2).await.unwrap();
        b.remove("base").await.unwrap();
        assert_eq!(f.manager.finish(&a).await.unwrap(), CookieDecision::Leave);
        assert_eq!(b_manager.finish(&b).await.unwrap(), CookieDecision::Leave);
        let calls = f.store.take_calls();
        if processes == 1 {
            // The queue hands b what a saved: no conflict, no reload.
            assert_eq!(
                (calls.update, calls.conflict, calls.load),
                (2, 0, 2),
                "{calls:?}"
            );
        } else {
            // a, b (conflict), b again after a reload.
            assert_eq!(
                (calls.update, calls.conflict, calls.load),
                (3, 1, 3),
                "{calls:?}"
            );
        }
        let check = f.manager.session(Some(&cookie));
        assert_eq!(check.get::<i64>("a").await.unwrap(), Some(1));
        assert_eq!(check.get::<i64>("b").await.unwrap(), Some(2));
        assert!(!check.contains("base").await.unwrap());
    }
}

#[tokio::test]
async fn same_key_later_writer_wins_and_nothing_else_is_lost() {
    let f = fixture();
    let cookie = new_session(&f, &[("k", 0), ("keep", 7)]).await;
    let a = f.manager.session(Some(&cookie));
    let b = f.manager.session(Some(&cookie));
    a.insert("k", &1).await.unwrap();
    a.insert("only_a", &1).await.unwrap();
    b.insert("k", &2).await.unwrap();
    assert_eq!(f.manager.finish(&a).await.unwrap(), CookieDecision::Leave);
    assert_eq!(f.manager.finish(&b).await.unwrap(), CookieDecision::Leave);
    let check = f.manager.session(Some(&cookie));
    assert_eq!(check.get::<i64>("k").await.unwrap(), Some(2));
    assert_eq!(check.get::<i64>("only_a").await.unwrap(), Some(1));
    assert_eq!(check.get::<i64>("keep").await.unwrap(), Some(7));
}

#[tokio::test]
async fn many_concurrent_requests_on_one_session_lose_nothing() {
    let f = fixture();
    let cookie = new_session(&f, &[("base", 0)]).await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let manager = f.manager.clone();
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            let s = manager.session(Some(&cookie));
            s.insert(&format!("item{i}"), &i).await.unwrap();
            tokio::task::yield_now().await;
            manager.finish(&s).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), CookieDecision::Leave);
    }
    let check = f.manager.session(Some(&cookie));
    assert_eq!(check.len().await.unwrap(), 33);
}

#[tokio::test]
async fn clear_merges_with_later_concurrent_additions() {
    let f = fixture();
    let cookie = new_session(&f, &[("old", 1)]).await;
    let a = f.manager.session(Some(&cookie));
    let b = f.manager.session(Some(&cookie));
    b.insert("old2", &2).await.unwrap(); // b loads before a saves
    a.clear().await.unwrap();
    a.insert("fresh", &3).await.unwrap();
    assert_eq!(f.manager.finish(&b).await.unwrap(), CookieDecision::Leave);
    assert_eq!(f.manager.finish(&a).await.unwrap(), CookieDecision::Leave);
    let check = f.manager.session(Some(&cookie));
    assert_eq!(check.keys().await.unwrap(), vec!["fresh".to_owned()]);
}

#[tokio::test]
async fn destroyed_meanwhile_drops_changes_and_never_resurrects() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1)]).await;
    let writer = f.manager.session(Some(&cookie));
    writer.insert("b", &2).await.unwrap();

    let logout = f.manager.session(Some(&cookie));
    logout.destroy();
    assert_removed(&f.manager.finish(&logout).await.unwrap());

    // The logout removed the cookie; the writer's changes are dropped and its
    // response leaves the cookie to the request that ended the session.
    assert_eq!(
        f.manager.finish(&writer).await.unwrap(),
        CookieDecision::Leave
    );
    assert!(
        writer.ended_meanwhile(),
        "the writer learns its change was dropped"
    );
    assert!(stored(&f, &cookie).await.is_none());
    let calls = f.store.take_calls();
    assert_eq!(calls.create, 0, "{calls:?}");
    assert!(f.store.inner.is_empty());
}

/// Requests still in flight with the cookie a login just rotated away — one that
/// reads the session after the rotation, one that loaded before it and writes after
/// — send no `Set-Cookie`: a removal would delete the new login cookie from the
/// browser whenever their response arrived after the login's. The old id stays dead,
/// and the late write is dropped, never resurrecting it.
#[tokio::test]
async fn requests_racing_a_login_rotation_leave_the_new_cookie_alone() {
    let f = fixture();
    let old = new_session(&f, &[("cart", 1)]).await;
    // Another tab's request, through another process, loads before the login…
    let other = other_process(&f);
    let writer = other.session(Some(&old));
    writer.insert("cart", &2).await.unwrap();
    // …the login cycles the id…
    let login = f.manager.session(Some(&old));
    login.insert("user", &7).await.unwrap();
    login.cycle_id().await.unwrap();
    let new = set_value(&f.manager.finish(&login).await.unwrap());
    // …a third request reads through the old cookie after it…
    let reader = f.manager.session(Some(&old));
    assert!(!reader.exists().await.unwrap());
    assert_eq!(
        f.manager.finish(&reader).await.unwrap(),
        CookieDecision::Leave
    );
    // …and the first one saves after it.
    assert_eq!(other.finish(&writer).await.unwrap(), CookieDecision::Leave);
    assert!(writer.ended_meanwhile() && !reader.ended_meanwhile());
    assert!(!login.ended_meanwhile());
    assert!(stored(&f, &old).await.is_none(), "the old id stays dead");
    let logged_in = f.manager.session(Some(&new));
    assert_eq!(logged_in.get::<i64>("user").await.unwrap(), Some(7));
    assert_eq!(logged_in.get::<i64>("cart").await.unwrap(), Some(1));
}

#[tokio::test]
async fn destroy_without_loading_expires_the_record() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1)]).await;
    let s = f.manager.session(Some(&cookie));
    s.destroy();
    assert!(s.has_expired().await.unwrap());
    assert_removed(&f.manager.finish(&s).await.unwrap());
    assert_eq!(
        f.store.take_calls(),
        Calls {
            expire: 1,
            ..Calls::default()
        }
    );
    assert!(stored(&f, &cookie).await.is_none());
}

/// A logout that reads the session first (to log who leaves, say) removes it with
/// one store call, as a blind one does: the loaded key is the cookie's key, so
/// expiring "the loaded record and the cookie's key" is one expire, not two.
#[tokio::test]
async fn destroy_after_loading_expires_the_record_once() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1)]).await;
    let s = f.manager.session(Some(&cookie));
    assert_eq!(s.get::<i32>("a").await.unwrap(), Some(1));
    f.store.take_calls();
    s.destroy();
    assert_removed(&f.manager.finish(&s).await.unwrap());
    assert_eq!(
        f.store.take_calls(),
        Calls {
            expire: 1,
            ..Calls::default()
        }
    );
    assert!(stored(&f, &cookie).await.is_none());
}

#[tokio::test]
async fn cycle_id_moves_the_data_and_kills_the_old_key() {
    let f = fixture();
    let old = new_session(&f, &[("a", 1)]).await;
    let s = f.manager.session(Some(&old));
    s.insert("user", &9).await.unwrap();
    s.cycle_id().await.unwrap();
    let new = set_value(&f.manager.finish(&s).await.unwrap());
    assert_ne!(new, old);
    assert!(stored(&f, &old).await.is_none());
    let check = f.manager.session(Some(&new));
    assert_eq!(check.get::<i64>("a").await.unwrap(), Some(1));
    assert_eq!(check.get::<i64>("user").await.unwrap(), Some(9));
    // The old cookie now starts a fresh, empty session.
    let stale = f.manager.session(Some(&old));
    assert!(stale.is_empty().await.unwrap());
    assert!(!stale.exists().await.unwrap());
}

#[tokio::test]
async fn idle_deadline_ends_a_session() {
    let f = fixture_with(
        SessionConfig::builder()
            .idle_lifetime(Duration::minutes(30))
            .build()
            .unwrap(),
    );
    let cookie = new_session(&f, &[("a", 1)]).await;
    f.clock.advance(Duration::minutes(29));
    assert!(f.manager.session(Some(&cookie)).exists().await.unwrap());
    f.clock.advance(Duration::minutes(2));
    let s = f.manager.session(Some(&cookie));
    assert!(!s.exists().await.unwrap());
    assert_eq!(s.get::<i64>("a").await.unwrap(), None);
}

#[tokio::test]
async fn absolute_deadline_ends_an_active_session() {
    let f = fixture_with(
        SessionConfig::builder()
            .idle_lifetime(Duration::hours(1))
            .absolute_lifetime(Duration::hours(3))
            .refresh_each_request(true)
            .refresh_threshold(0.0)
            .build()
            .unwrap(),
    );
    let cookie = new_session(&f, &[("a", 1)]).await;
    // Active every 50 minutes: the idle deadline keeps moving...
    for _ in 0..3 {
        f.clock.advance(Duration::minutes(50));
        let s = f.manager.session(Some(&cookie));
        assert!(s.exists().await.unwrap());
        assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);
    }
    // ...but never past created + 3 h.
    let rec = stored(&f, &cookie).await.unwrap();
    let created = f.clock.now() - Duration::minutes(150);
    assert_eq!(rec.expires_at, created + Duration::hours(3));
    f.clock.advance(Duration::minutes(31));
    assert!(!f.manager.session(Some(&cookie)).exists().await.unwrap());
}

#[tokio::test]
async fn refresh_each_request_touches_instead_of_saving() {
    let f = fixture_with(
        SessionConfig::builder()
            .refresh_each_request(true)
            .build()
            .unwrap(),
    );
    let cookie = new_session(&f, &[("a", 1)]).await;
    f.clock.advance(Duration::hours(13));
    let s = f.manager.session(Some(&cookie));
    s.get::<i64>("a").await.unwrap();
    assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);
    let calls = f.store.take_calls();
    assert_eq!(
        (calls.load, calls.touch, calls.update),
        (1, 1, 0),
        "{calls:?}"
    );
    let rec = stored(&f, &cookie).await.unwrap();
    assert_eq!(rec.expires_at, f.clock.now() + Duration::hours(24));
    assert_eq!(rec.version, 1);
}

#[tokio::test]
async fn refresh_without_touch_support_rewrites_the_loaded_bytes() {
    let clock = ManualClock::new(session_core::time::macros::datetime!(2030-01-01 0:00 UTC));
    let store = Recording::with_touch(&clock, false);
    let config = SessionConfig::builder()
        .refresh_each_request(true)
        .build()
        .unwrap();
    let manager = SessionManager::with_clock(store.clone(), config, clock.shared());
    let s = manager.session(None);
    s.insert("a", &1).await.unwrap();
    let cookie = set_value(&manager.finish(&s).await.unwrap());
    let key = SessionToken::parse(&cookie).unwrap().storage_key();
    let before = store.inner.load(&key).await.unwrap().unwrap();
    store.take_calls();

    clock.advance(Duration::hours(13));
    let s = manager.session(Some(&cookie));
    assert!(s.exists().await.unwrap());
    assert_eq!(manager.finish(&s).await.unwrap(), CookieDecision::Leave);
    let calls = store.take_calls();
    assert_eq!((calls.touch, calls.update), (0, 1));
    let after = store.inner.load(&key).await.unwrap().unwrap();
    assert_eq!(after.payload, before.payload);
    assert_eq!(after.expires_at, clock.now() + Duration::hours(24));
}

#[tokio::test]
async fn without_refresh_an_unchanged_session_is_not_extended() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1)]).await;
    let before = stored(&f, &cookie).await.unwrap();
    f.clock.advance(Duration::hours(1));
    let s = f.manager.session(Some(&cookie));
    s.get::<i64>("a").await.unwrap();
    assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);
    assert_eq!(stored(&f, &cookie).await.unwrap(), before);
}

#[tokio::test]
async fn permanent_refresh_renews_max_age() {
    let f = fixture_with(
        SessionConfig::builder()
            .permanent(true)
            .refresh_each_request(true)
            .build()
            .unwrap(),
    );
    let cookie = new_session(&f, &[("a", 1)]).await;
    f.clock.advance(Duration::hours(13));
    let s = f.manager.session(Some(&cookie));
    s.get::<i64>("a").await.unwrap();
    let CookieDecision::Set(c) = f.manager.finish(&s).await.unwrap() else {
        panic!()
    };
    assert_eq!(c.value(), cookie);
    assert_eq!(c.max_age(), Some(Duration::hours(24)));
}

/// A refresh that finds its session gone writes nothing back and leaves the cookie
/// to whoever ended the session.
#[tokio::test]
async fn touch_of_a_vanished_session_writes_nothing_and_leaves_the_cookie() {
    let f = fixture_with(
        SessionConfig::builder()
            .refresh_each_request(true)
            .build()
            .unwrap(),
    );
    let cookie = new_session(&f, &[("a", 1)]).await;
    f.clock.advance(Duration::hours(13));
    let s = f.manager.session(Some(&cookie));
    s.get::<i64>("a").await.unwrap();
    let key = SessionToken::parse(&cookie).unwrap().storage_key();
    f.store.inner.expire(&key).await.unwrap();
    assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);
    assert!(f.store.inner.is_empty());
}

#[tokio::test]
async fn emptied_session_removes_record_and_cookie() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1), ("b", 2)]).await;
    let s = f.manager.session(Some(&cookie));
    s.remove("a").await.unwrap();
    s.remove("b").await.unwrap();
    assert_removed(&f.manager.finish(&s).await.unwrap());
    assert!(stored(&f, &cookie).await.is_none());

    let cookie = new_session(&f, &[("a", 1)]).await;
    let s = f.manager.session(Some(&cookie));
    s.clear().await.unwrap();
    assert_removed(&f.manager.finish(&s).await.unwrap());
    assert!(f.store.inner.is_empty());
}

#[tokio::test]
async fn unknown_or_expired_cookie_starts_fresh() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1)]).await;
    f.clock.advance(Duration::days(2));
    let unknown = SessionToken::generate().unwrap().to_cookie_value();
    for (value, token) in [
        (cookie.as_str(), true),
        (unknown.as_str(), true),
        ("../../etc/passwd", false),
        ("", false),
    ] {
        let s = f.manager.session(Some(value));
        assert!(!s.exists().await.unwrap());
        assert_eq!(s.get::<i64>("a").await.unwrap(), None);
        // Left empty: nothing stored. A cookie that is no token is removed; a
        // dead token is left alone (it may be the old id of a concurrent login).
        let decision = f.manager.finish(&s).await.unwrap();
        if token {
            assert_eq!(decision, CookieDecision::Leave, "{value}");
        } else {
            assert_removed(&decision);
        }

        let s = f.manager.session(Some(value));
        s.insert("n", &1).await.unwrap();
        let fresh = set_value(&f.manager.finish(&s).await.unwrap());
        assert_ne!(fresh, value, "a new token, never the presented one");
    }
}

#[tokio::test]
async fn oversize_payload_is_a_typed_error_and_writes_nothing() {
    let f = fixture_with(
        SessionConfig::builder()
            .max_payload_bytes(1024)
            .build()
            .unwrap(),
    );
    let s = f.manager.session(None);
    s.insert("big", &"x".repeat(2000)).await.unwrap();
    match f.manager.finish(&s).await {
        Err(Error::PayloadTooLarge { size, limit: 1024 }) => assert!(size > 2000),
        other => panic!("{other:?}"),
    }
    assert!(f.store.inner.is_empty());

    // An existing session that grows too large keeps its old record.
    let cookie = new_session(&f, &[("a", 1)]).await;
    let before = stored(&f, &cookie).await.unwrap();
    let s = f.manager.session(Some(&cookie));
    s.insert("big", &"x".repeat(2000)).await.unwrap();
    assert!(matches!(
        f.manager.finish(&s).await,
        Err(Error::PayloadTooLarge { .. })
    ));
    assert_eq!(stored(&f, &cookie).await.unwrap(), before);
}

/// `max_payload_bytes` is the largest encoded session saved: exactly the limit is stored, one byte over is `PayloadTooLarge`.
#[tokio::test]
async fn the_payload_limit_admits_exactly_its_own_size() {
    // The encoded size of this session (the fixture's clock is fixed, so every
    // fixture encodes it to the same bytes).
    let probe = fixture();
    let cookie = new_session(&probe, &[("a", 1), ("b", 22)]).await;
    let size = stored(&probe, &cookie).await.unwrap().payload.len();

    for (limit, fits) in [(size, true), (size - 1, false)] {
        let f = fixture_with(
            SessionConfig::builder()
                .max_payload_bytes(limit)
                .build()
                .unwrap(),
        );
        let s = f.manager.session(None);
        s.insert("a", &1).await.unwrap();
        s.insert("b", &22).await.unwrap();
        match f.manager.finish(&s).await {
            Ok(CookieDecision::Set(c)) if fits => {
                assert_eq!(stored(&f, c.value()).await.unwrap().payload.len(), size);
            }
            Err(Error::PayloadTooLarge {
                size: got,
                limit: l,
            }) if !fits => {
                assert_eq!((got, l), (size, limit));
                assert!(f.store.inner.is_empty());
            }
            other => panic!("limit {limit}, size {size}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn typed_values_round_trip_and_type_errors_are_typed() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Cart {
        items: Vec<String>,
        total: u32,
    }
    let f = fixture();
    let s = f.manager.session(None);
    let cart = Cart {
        items: vec!["pear".into()],
        total: 3,
    };
    s.insert("cart", &cart).await.unwrap();
    let cookie = set_value(&f.manager.finish(&s).await.unwrap());
    let s = f.manager.session(Some(&cookie));
    assert_eq!(s.get::<Cart>("cart").await.unwrap(), Some(cart));
    assert!(matches!(
        s.get::<u8>("cart").await,
        Err(Error::Value { ref key, type_name: "u8", .. }) if key == "cart"
    ));
    let entries = s.entries().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1["total"], 3);
    assert_eq!(s.take::<Cart>("cart").await.unwrap().unwrap().total, 3);
    assert!(s.is_empty().await.unwrap());
}

#[tokio::test]
async fn unreadable_stored_bytes_are_no_session_but_newer_formats_are_errors() {
    let f = fixture();
    let write = |payload: &'static [u8]| {
        let token = SessionToken::generate().unwrap();
        let record = NewRecord {
            payload: session_core::Bytes::from_static(payload),
            expires_at: f.clock.now() + Duration::hours(1),
        };
        let store = f.store.clone();
        async move {
            store
                .inner
                .save(&token.storage_key(), &record, SaveMode::Create)
                .await
                .unwrap();
            token.to_cookie_value()
        }
    };
    // Corrupt bytes: a fresh session under a new token; the old record is left to
    // expire (never overwritten).
    let cookie = write(b"{not json").await;
    let s = f.manager.session(Some(&cookie));
    assert!(!s.exists().await.unwrap());
    s.insert("a", &1).await.unwrap();
    let fresh = set_value(&f.manager.finish(&s).await.unwrap());
    assert_ne!(fresh, cookie);
    assert_eq!(
        stored(&f, &cookie).await.unwrap().payload,
        session_core::Bytes::from_static(b"{not json")
    );
    // A format from a newer release is an error, not a logout.
    let cookie = write(br#"{"v":2,"data":{}}"#).await;
    let s = f.manager.session(Some(&cookie));
    assert!(matches!(
        s.get::<i64>("a").await,
        Err(Error::Decode(session_core::DecodeError::UnknownVersion(2)))
    ));
}

/// A save under conflict is tried exactly `save_attempts` times, then `TooManyConflicts` reports that number.
#[tokio::test]
async fn save_attempts_bound_conflict_retries() {
    /// A store whose updates always conflict, counting them.
    #[derive(Debug)]
    struct AlwaysConflict(MemoryStore, AtomicU32);
    #[async_trait]
    impl SessionInterface for AlwaysConflict {
        async fn load(&self, key: &StorageKey) -> Result<Option<StoredRecord>, Error> {
            self.0.load(key).await
        }
        async fn save(
            &self,
            key: &StorageKey,
            record: &NewRecord,
            mode: SaveMode,
        ) -> Result<Version, Error> {
            match mode {
                SaveMode::Update { .. } => {
                    self.1.fetch_add(1, Ordering::SeqCst);
                    Err(Error::Conflict)
                }
                SaveMode::Create => self.0.save(key, record, mode).await,
            }
        }
        async fn expire(&self, key: &StorageKey) -> Result<(), Error> {
            self.0.expire(key).await
        }
        async fn touch(&self, key: &StorageKey, t: OffsetDateTime) -> Result<bool, Error> {
            self.0.touch(key, t).await
        }
        async fn delete_expired(&self) -> Result<u64, Error> {
            self.0.delete_expired().await
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
    }
    let store = Arc::new(AlwaysConflict(MemoryStore::new(), AtomicU32::new(0)));
    let manager = SessionManager::new(
        store.clone(),
        SessionConfig::builder().save_attempts(3).build().unwrap(),
    );
    let s = manager.session(None);
    s.insert("a", &1).await.unwrap();
    let cookie = set_value(&manager.finish(&s).await.unwrap());
    let s: Session = manager.session(Some(&cookie));
    s.insert("a", &2).await.unwrap();
    assert!(matches!(
        manager.finish(&s).await,
        Err(Error::TooManyConflicts { attempts: 3 })
    ));
    assert_eq!(store.1.load(Ordering::SeqCst), 3, "updates tried");
}

#[tokio::test]
async fn cookie_header_parsing_picks_the_valid_session_cookie() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1)]).await;
    let header = format!("other=1; session_id=garbage; session_id={cookie}");
    let s = f.manager.session_from_cookie_headers([header.as_str()]);
    assert_eq!(s.get::<i64>("a").await.unwrap(), Some(1));
    // Only garbage: no session, and the bad cookie is removed at the end.
    let s = f
        .manager
        .session_from_cookie_headers(["session_id=%00%00; x=y"]);
    assert!(!s.exists().await.unwrap());
    assert_removed(&f.manager.finish(&s).await.unwrap());
    // No cookie of ours: nothing to remove.
    let s = f.manager.session_from_cookie_headers(["x=y"]);
    assert!(s.is_empty().await.unwrap());
    assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);
}

/// A value read as the wrong type is an error naming the key and the type, and its
/// whole chain (Display, sources, Debug) never quotes the value: session values may
/// be tokens or personal data, and error chains end up in logs.
#[tokio::test]
async fn value_errors_name_key_and_type_but_never_quote_the_value() {
    let f = fixture();
    let s = f.manager.session(None);
    s.insert("csrf", "secret-token-4711").await.unwrap();
    let err = s.get::<u64>("csrf").await.unwrap_err();
    let mut chain = format!("{err} / {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        chain.push_str(&format!(": {e} / {e:?}"));
        source = e.source();
    }
    assert!(!chain.contains("secret"), "{chain}");
    assert!(
        chain.contains("`csrf`") && chain.contains("`u64`"),
        "{chain}"
    );
    assert!(chain.contains("another type than expected"), "{chain}");

    // Serializing: a map with non-string keys has no JSON form.
    let bad: std::collections::HashMap<(u8, u8), &str> = [((1, 2), "secret-4711")].into();
    let err = s.insert("pairs", &bad).await.unwrap_err();
    assert!(
        matches!(err, Error::Value { ref key, .. } if key == "pairs"),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("secret"), "{err:?}");
}

/// Runs `body` once with both requests in one manager (the per-session queue
/// serialises them) and once with the second in another manager over the same store
/// (another process: compare-and-set and merge).
async fn in_one_and_two_processes<F, Fut>(body: F)
where
    F: Fn(Fixture, SessionManager) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for processes in [1, 2] {
        let f = fixture();
        let other = if processes == 1 {
            f.manager.clone()
        } else {
            other_process(&f)
        };
        body(f, other).await;
    }
}

#[tokio::test]
async fn emptying_racing_an_addition_keeps_the_addition() {
    in_one_and_two_processes(|f, other| async move {
        let cookie = new_session(&f, &[("last", 1)]).await;
        let a = f.manager.session(Some(&cookie));
        let b = other.session(Some(&cookie));
        // Tab A removes the cart's last item while tab B adds one.
        assert!(a.remove("last").await.unwrap());
        b.insert("added", &2).await.unwrap();
        assert_eq!(other.finish(&b).await.unwrap(), CookieDecision::Leave);
        // A's removal comes second: the session is not empty any more, so A saves
        // its removal instead of removing the record.
        assert_eq!(f.manager.finish(&a).await.unwrap(), CookieDecision::Leave);
        let check = f.manager.session(Some(&cookie));
        assert_eq!(check.keys().await.unwrap(), vec!["added".to_owned()]);
    })
    .await;
}

#[tokio::test]
async fn emptying_after_an_addition_was_merged_away_still_removes() {
    in_one_and_two_processes(|f, other| async move {
        let cookie = new_session(&f, &[("a", 1), ("b", 2)]).await;
        let x = f.manager.session(Some(&cookie));
        let y = other.session(Some(&cookie));
        // X removes a, Y removes b: whoever saves second empties the session.
        x.remove("a").await.unwrap();
        y.remove("b").await.unwrap();
        assert_eq!(other.finish(&y).await.unwrap(), CookieDecision::Leave);
        assert_removed(&f.manager.finish(&x).await.unwrap());
        assert!(stored(&f, &cookie).await.is_none());
    })
    .await;
}

#[tokio::test]
async fn removal_is_conditional_on_the_loaded_version() {
    let f = fixture();
    let cookie = new_session(&f, &[("only", 1)]).await;
    let s = f.manager.session(Some(&cookie));
    s.clear().await.unwrap();
    assert_removed(&f.manager.finish(&s).await.unwrap());
    let calls = f.store.take_calls();
    // One compare-and-set removal: no blind expire.
    assert_eq!((calls.update, calls.expire), (1, 0), "{calls:?}");
}

#[tokio::test]
async fn cycle_id_merges_a_change_saved_meanwhile() {
    in_one_and_two_processes(|f, other| async move {
        let old = new_session(&f, &[("cart", 1)]).await;
        let login = f.manager.session(Some(&old));
        let add = other.session(Some(&old));
        login.insert("user", &7).await.unwrap();
        login.cycle_id().await.unwrap();
        add.insert("cart2", &2).await.unwrap();
        // The other tab saves between the login's load and its rotation.
        assert_eq!(other.finish(&add).await.unwrap(), CookieDecision::Leave);
        let new = set_value(&f.manager.finish(&login).await.unwrap());
        assert_ne!(new, old);
        assert!(stored(&f, &old).await.is_none(), "the old id must be dead");
        let check = f.manager.session(Some(&new));
        assert_eq!(
            check.keys().await.unwrap(),
            vec!["cart".to_owned(), "cart2".to_owned(), "user".to_owned()]
        );
        // Exactly one live record: the loser's attempt left nothing behind.
        assert_eq!(f.store.inner.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn cycle_id_after_logout_meanwhile_stays_logged_out() {
    in_one_and_two_processes(|f, other| async move {
        let old = new_session(&f, &[("cart", 1)]).await;
        let login = f.manager.session(Some(&old));
        login.insert("user", &7).await.unwrap();
        login.cycle_id().await.unwrap();
        let logout = other.session(Some(&old));
        logout.destroy();
        assert_removed(&other.finish(&logout).await.unwrap());
        // The logout's response removes the cookie; the login's, whose session is
        // gone, sends nothing (it sets no new one either).
        assert_eq!(
            f.manager.finish(&login).await.unwrap(),
            CookieDecision::Leave
        );
        assert!(
            f.store.inner.is_empty(),
            "nothing may come back after a logout"
        );
    })
    .await;
}

#[tokio::test]
async fn clear_of_an_empty_session_is_not_a_change() {
    let f = fixture();
    let s = f.manager.session(None);
    s.clear().await.unwrap();
    assert!(!s.is_modified());
    assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);

    // Emptied by removals, then cleared: still a change (the removals are).
    let cookie = new_session(&f, &[("a", 1)]).await;
    let s = f.manager.session(Some(&cookie));
    s.remove("a").await.unwrap();
    s.clear().await.unwrap();
    assert!(s.is_modified());
    assert_removed(&f.manager.finish(&s).await.unwrap());
}

#[tokio::test]
async fn has_expired_notices_an_idle_deadline_passing_mid_request() {
    let f = fixture_with(
        SessionConfig::builder()
            .idle_lifetime(Duration::minutes(30))
            .build()
            .unwrap(),
    );
    let cookie = new_session(&f, &[("a", 1)]).await;
    let s = f.manager.session(Some(&cookie));
    assert!(!s.has_expired().await.unwrap());
    f.clock.advance(Duration::minutes(29));
    assert!(!s.has_expired().await.unwrap());
    // The request is still running when its idle deadline passes.
    f.clock.advance(Duration::minutes(1));
    assert!(s.has_expired().await.unwrap());
    // A session this request started has not expired.
    let fresh = f.manager.session(None);
    fresh.insert("x", &1).await.unwrap();
    f.clock.advance(Duration::hours(2));
    assert!(!fresh.has_expired().await.unwrap());
}

#[tokio::test]
async fn one_process_queues_writers_instead_of_conflicting() {
    let f = fixture();
    let cookie = new_session(&f, &[("base", 0)]).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let manager = f.manager.clone();
        let cookie = cookie.clone();
        tasks.push(tokio::spawn(async move {
            let s = manager.session(Some(&cookie));
            s.insert(&format!("item{i}"), &i).await.unwrap();
            tokio::task::yield_now().await;
            manager.finish(&s).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), CookieDecision::Leave);
    }
    let calls = f.store.take_calls();
    assert_eq!((calls.update, calls.conflict), (50, 0), "{calls:?}");
    assert_eq!(f.manager.queued_sessions(), 0, "the queue keeps no slot");
    let check = f.manager.session(Some(&cookie));
    assert_eq!(check.len().await.unwrap(), 51);
}

#[tokio::test]
async fn only_a_request_that_uses_its_session_joins_the_queue() {
    let f = fixture();
    let cookie = new_session(&f, &[("a", 1)]).await;
    let idle = f.manager.session(Some(&cookie));
    assert_eq!(f.manager.queued_sessions(), 0);
    assert_eq!(
        f.manager.finish(&idle).await.unwrap(),
        CookieDecision::Leave
    );
    assert_eq!(f.manager.queued_sessions(), 0);

    let reader = f.manager.session(Some(&cookie));
    let second = f.manager.session(Some(&cookie));
    reader.get::<i64>("a").await.unwrap();
    second.get::<i64>("a").await.unwrap();
    assert_eq!(f.manager.queued_sessions(), 1, "one slot per session");
    drop(reader);
    assert_eq!(f.manager.queued_sessions(), 1);
    drop(second);
    assert_eq!(f.manager.queued_sessions(), 0);

    // An unknown cookie takes no slot either.
    let unknown = f
        .manager
        .session(Some(&SessionToken::generate().unwrap().to_cookie_value()));
    assert!(unknown.is_empty().await.unwrap());
    assert_eq!(f.manager.queued_sessions(), 0);
}

#[tokio::test]
async fn finish_if_unchanged_never_merges_a_read_dependent_change() {
    in_one_and_two_processes(|f, other| async move {
        let cookie = new_session(&f, &[("calls", 4)]).await;
        let a = f.manager.session(Some(&cookie));
        let b = other.session(Some(&cookie));
        let n: i64 = a.get("calls").await.unwrap().unwrap();
        let m: i64 = b.get("calls").await.unwrap().unwrap();
        a.insert("calls", &(n + 1)).await.unwrap();
        b.insert("calls", &(m + 1)).await.unwrap();
        assert_eq!(
            f.manager.finish_if_unchanged(&a).await.unwrap(),
            CookieDecision::Leave
        );
        assert!(matches!(
            other.finish_if_unchanged(&b).await,
            Err(Error::Conflict)
        ));
        let check = f.manager.session(Some(&cookie));
        assert_eq!(check.get::<i64>("calls").await.unwrap(), Some(5));
        // Read afresh, the second request's increment goes through.
        let b = other.session(Some(&cookie));
        let m: i64 = b.get("calls").await.unwrap().unwrap();
        b.insert("calls", &(m + 1)).await.unwrap();
        assert_eq!(
            other.finish_if_unchanged(&b).await.unwrap(),
            CookieDecision::Leave
        );
        let check = f.manager.session(Some(&cookie));
        assert_eq!(check.get::<i64>("calls").await.unwrap(), Some(6));
    })
    .await;
}

fn refreshing(share: f64) -> Fixture {
    fixture_with(
        SessionConfig::builder()
            .refresh_each_request(true)
            .refresh_threshold(share)
            .build()
            .unwrap(),
    )
}

/// One request that reads `a` and finishes.
async fn read_request(f: &Fixture, cookie: &str) -> CookieDecision {
    let s = f.manager.session(Some(cookie));
    assert_eq!(s.get::<i64>("a").await.unwrap(), Some(1));
    f.manager.finish(&s).await.unwrap()
}

#[tokio::test]
async fn a_refresh_that_gains_too_little_makes_no_store_write_and_no_cookie() {
    for permanent in [false, true] {
        let f = fixture_with(
            SessionConfig::builder()
                .refresh_each_request(true)
                .permanent(permanent)
                .build()
                .unwrap(),
        );
        let cookie = new_session(&f, &[("a", 1)]).await;
        let before = stored(&f, &cookie).await.unwrap();
        // Exactly half the idle lifetime gains exactly the threshold: not more.
        f.clock.advance(Duration::hours(12));
        assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
        assert_eq!(
            f.store.take_calls(),
            Calls {
                load: 1,
                ..Calls::default()
            }
        );
        assert_eq!(stored(&f, &cookie).await.unwrap(), before);
    }
}

#[tokio::test]
async fn a_refresh_that_gains_more_than_the_threshold_is_one_touch() {
    for permanent in [false, true] {
        let f = fixture_with(
            SessionConfig::builder()
                .refresh_each_request(true)
                .permanent(permanent)
                .build()
                .unwrap(),
        );
        let cookie = new_session(&f, &[("a", 1)]).await;
        f.clock.advance(Duration::hours(12) + Duration::seconds(1));
        let decision = read_request(&f, &cookie).await;
        if permanent {
            let CookieDecision::Set(c) = decision else {
                panic!("{decision:?}")
            };
            assert_eq!(c.max_age(), Some(Duration::hours(24)));
        } else {
            assert_eq!(decision, CookieDecision::Leave);
        }
        let calls = f.store.take_calls();
        assert_eq!(
            (calls.load, calls.touch, calls.update),
            (1, 1, 0),
            "{calls:?}"
        );
        let rec = stored(&f, &cookie).await.unwrap();
        assert_eq!(rec.expires_at, f.clock.now() + Duration::hours(24));
    }
}

#[tokio::test]
async fn after_a_request_the_idle_time_left_is_never_below_one_minus_the_share() {
    for share in [0.0, 0.3, 0.5, 0.9] {
        // No absolute cap within reach: the interplay has its own test.
        let f = fixture_with(
            SessionConfig::builder()
                .refresh_each_request(true)
                .refresh_threshold(share)
                .absolute_lifetime(SessionConfig::MAX_LIFETIME)
                .build()
                .unwrap(),
        );
        let idle = Duration::hours(24);
        let floor = idle.as_seconds_f64() * (1.0 - share);
        let cookie = new_session(&f, &[("a", 1)]).await;
        // Gaps from a second to just under the promised floor (a longer one may end
        // the session), in a fixed jumble.
        let shares = [0.0, 0.04, 0.999, 0.5, 0.3, 0.99, 0.01, 0.75, 0.6, 0.2, 0.9];
        for (i, part) in shares.iter().cycle().take(60).enumerate() {
            let gap = ((floor * part) as i64).max(1);
            f.clock.advance(Duration::seconds(gap));
            assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
            let rec = stored(&f, &cookie).await.unwrap();
            let left = (rec.expires_at - f.clock.now()).as_seconds_f64();
            assert!(
                left >= floor && left <= idle.as_seconds_f64(),
                "share {share}, request {i}: {left} s left"
            );
        }
    }
}

#[tokio::test]
async fn the_threshold_never_lets_a_refresh_pass_the_absolute_deadline() {
    let f = fixture_with(
        SessionConfig::builder()
            .idle_lifetime(Duration::hours(1))
            .absolute_lifetime(Duration::hours(3))
            .refresh_each_request(true)
            .build()
            .unwrap(),
    );
    let created = f.clock.now();
    let cookie = new_session(&f, &[("a", 1)]).await;
    // 40 min gains more than half an hour: touched, to now + 1 h.
    f.clock.advance(Duration::minutes(40));
    assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
    assert_eq!(f.store.take_calls().touch, 1);
    f.clock.advance(Duration::minutes(40));
    assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
    assert_eq!(f.store.take_calls().touch, 1);
    // At 2 h: the capped deadline (3 h) gains 40 min over 2 h 20: touched, to the cap.
    f.clock.advance(Duration::minutes(40));
    assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
    assert_eq!(f.store.take_calls().touch, 1);
    let cap = created + Duration::hours(3);
    assert_eq!(stored(&f, &cookie).await.unwrap().expires_at, cap);
    // From now on the capped deadline gains nothing: no more writes until the end.
    for _ in 0..49 {
        f.clock.advance(Duration::seconds(59));
        assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
        assert_eq!(f.store.take_calls().touch, 0);
        assert_eq!(stored(&f, &cookie).await.unwrap().expires_at, cap);
    }
    f.clock.advance(Duration::hours(1));
    assert!(!f.manager.session(Some(&cookie)).exists().await.unwrap());
}

/// The figure the README quotes: one request a second for ten minutes, default
/// idle lifetime, default threshold.
#[tokio::test]
async fn a_user_active_every_second_for_ten_minutes_costs_no_refresh_write() {
    for (share, expected_touches) in [(SessionConfig::DEFAULT_REFRESH_THRESHOLD, 0), (0.0, 600)] {
        let f = refreshing(share);
        let cookie = new_session(&f, &[("a", 1)]).await;
        let mut calls = Calls::default();
        for _ in 0..600 {
            f.clock.advance(Duration::seconds(1));
            assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
            let c = f.store.take_calls();
            calls.load += c.load;
            calls.touch += c.touch;
            calls.update += c.update;
        }
        assert_eq!(
            (calls.load, calls.touch, calls.update),
            (600, expected_touches, 0),
            "share {share}"
        );
    }
}

fn one_step_fixture(config: SessionConfig) -> Fixture {
    let clock = ManualClock::new(session_core::time::macros::datetime!(2030-01-01 0:00 UTC));
    let store = Recording::one_step(&clock);
    let manager = SessionManager::with_clock(store.clone(), config, clock.shared());
    Fixture {
        clock,
        store,
        manager,
    }
}

fn only_load_and_touch() -> Calls {
    Calls {
        load_and_touch: 1,
        ..Calls::default()
    }
}

#[tokio::test]
async fn with_a_one_step_store_a_read_only_request_is_one_round_trip() {
    for permanent in [false, true] {
        let f = one_step_fixture(
            SessionConfig::builder()
                .refresh_each_request(true)
                .permanent(permanent)
                .build()
                .unwrap(),
        );
        let cookie = new_session(&f, &[("a", 1)]).await;
        let before = stored(&f, &cookie).await.unwrap();

        // Not due: one call, nothing moves, no cookie.
        f.clock.advance(Duration::hours(12));
        assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
        assert_eq!(f.store.take_calls(), only_load_and_touch());
        assert_eq!(stored(&f, &cookie).await.unwrap(), before);

        // Due: still one call, and the deadline moved in it.
        f.clock.advance(Duration::seconds(1));
        let decision = read_request(&f, &cookie).await;
        assert_eq!(f.store.take_calls(), only_load_and_touch());
        let after = stored(&f, &cookie).await.unwrap();
        assert_eq!(after.expires_at, f.clock.now() + Duration::hours(24));
        assert_eq!(
            (&after.payload, after.version),
            (&before.payload, before.version)
        );
        if permanent {
            let CookieDecision::Set(c) = decision else {
                panic!("{decision:?}")
            };
            assert_eq!(c.max_age(), Some(Duration::hours(24)));
        } else {
            assert_eq!(decision, CookieDecision::Leave);
        }
    }
}

#[tokio::test]
async fn with_a_one_step_store_ten_minutes_of_requests_cost_one_call_each() {
    let f = one_step_fixture(
        SessionConfig::builder()
            .refresh_each_request(true)
            .build()
            .unwrap(),
    );
    let cookie = new_session(&f, &[("a", 1)]).await;
    let mut total = 0;
    for _ in 0..600 {
        f.clock.advance(Duration::seconds(1));
        assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
        assert_eq!(f.store.take_calls(), only_load_and_touch());
        total += 1;
    }
    assert_eq!(total, 600);
}

#[tokio::test]
async fn a_one_step_refresh_is_corrected_to_the_absolute_deadline() {
    let f = one_step_fixture(
        SessionConfig::builder()
            .idle_lifetime(Duration::hours(1))
            .absolute_lifetime(Duration::hours(3))
            .refresh_each_request(true)
            .build()
            .unwrap(),
    );
    let created = f.clock.now();
    let cap = created + Duration::hours(3);
    let cookie = new_session(&f, &[("a", 1)]).await;
    let (mut touches, mut one_step_loads) = (0, 0);
    // Every 10 minutes until just before the cap: the deadline follows the idle
    // lifetime in half-hour steps and never passes the cap.
    for step in 1..18 {
        f.clock.advance(Duration::minutes(10));
        assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
        let calls = f.store.take_calls();
        assert_eq!(calls.load_and_touch + calls.load, 1, "step {step}");
        assert_eq!(calls.update, 0);
        one_step_loads += calls.load_and_touch;
        touches += calls.touch;
        let rec = stored(&f, &cookie).await.unwrap();
        assert!(rec.expires_at <= cap, "step {step}");
        let left = rec.expires_at - f.clock.now();
        assert!(
            left >= Duration::minutes(30) || rec.expires_at == cap,
            "step {step}: {left}"
        );
    }
    // A correction happens where the store's idle deadline first passed the cap,
    // at 2 h 40 (at 2 h the store's deadline was the cap exactly); the manager
    // then remembers the session and loads it in two steps, so 2 h 50 (nothing
    // due: the deadline is the cap) writes nothing.
    assert_eq!(touches, 1, "corrective touches");
    assert_eq!(one_step_loads, 16, "one-step loads before the correction");
    assert_eq!(stored(&f, &cookie).await.unwrap().expires_at, cap);
    f.clock.advance(Duration::minutes(11));
    assert!(!f.manager.session(Some(&cookie)).exists().await.unwrap());
}

/// Refresh on, a one-step store, and a session with an idle lifetime of its own
/// (10 minutes, against the configured 24 hours); the call log starts empty.
async fn ten_minute_session_on_a_one_step_store() -> (Fixture, String) {
    let f = one_step_fixture(
        SessionConfig::builder()
            .refresh_each_request(true)
            .build()
            .unwrap(),
    );
    let s = f.manager.session(None);
    s.insert("a", &1).await.unwrap();
    s.set_idle_lifetime(Some(Duration::minutes(10)))
        .await
        .unwrap();
    let cookie = set_value(&f.manager.finish(&s).await.unwrap());
    f.store.take_calls();
    (f, cookie)
}

#[tokio::test]
async fn a_one_step_refresh_honours_a_shorter_per_session_idle_lifetime() {
    let (f, cookie) = ten_minute_session_on_a_one_step_store().await;
    for read in 0..5 {
        f.clock.advance(Duration::minutes(6));
        assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
        let calls = f.store.take_calls();
        // The first read moves the deadline a full configured idle lifetime and
        // corrects it; the manager remembers that and loads in two steps after,
        // touching when due (6 of 10 minutes gained, over the half threshold).
        let expected = if read == 0 { (1, 0, 1) } else { (0, 1, 1) };
        assert_eq!(
            (calls.load_and_touch, calls.load, calls.touch),
            expected,
            "read {read}: {calls:?}"
        );
        let rec = stored(&f, &cookie).await.unwrap();
        assert_eq!(rec.expires_at, f.clock.now() + Duration::minutes(10));
    }
    f.clock.advance(Duration::minutes(11));
    assert!(!f.manager.session(Some(&cookie)).exists().await.unwrap());
}

/// Write-free sliding expiry holds for a session with a shorter idle lifetime of
/// its own on a one-step store too: a request a second for ten minutes writes
/// only the first read's correction and the refreshes that are due (one per half
/// of its 10-minute idle lifetime), not two writes per request; and its deadline
/// is never further than its own idle lifetime once a request has ended.
#[tokio::test]
async fn a_shorter_per_session_idle_lifetime_keeps_reads_write_free() {
    let (f, cookie) = ten_minute_session_on_a_one_step_store().await;
    let (mut one_step, mut touches) = (0, 0);
    for second in 1..=600 {
        f.clock.advance(Duration::seconds(1));
        assert_eq!(read_request(&f, &cookie).await, CookieDecision::Leave);
        let calls = f.store.take_calls();
        assert_eq!(calls.update, 0);
        one_step += calls.load_and_touch;
        touches += calls.touch;
        let rec = stored(&f, &cookie).await.unwrap();
        assert!(
            rec.expires_at <= f.clock.now() + Duration::minutes(10),
            "second {second}"
        );
    }
    // The first read: the one-step write and its correction. After it, a
    // refresh is due only once it gains more than 5 minutes (half of 10): at most
    // two in the ten minutes left.
    assert_eq!(one_step, 1, "one-step loads");
    assert!(
        (1..=3).contains(&touches),
        "{touches} touches in 600 requests"
    );
}

/// With a one-step store and refresh-each-request, an unreadable record is no session and its deadline is put back: it still dies when it would have.
#[tokio::test]
async fn a_one_step_refresh_never_extends_an_unreadable_record() {
    let f = one_step_fixture(
        SessionConfig::builder()
            .refresh_each_request(true)
            .build()
            .unwrap(),
    );
    let token = SessionToken::generate().unwrap();
    let dies_at = f.clock.now() + Duration::hours(1);
    let corrupt = NewRecord {
        payload: session_core::Bytes::from_static(b"{not json"),
        expires_at: dies_at,
    };
    f.store
        .inner
        .save(&token.storage_key(), &corrupt, SaveMode::Create)
        .await
        .unwrap();
    let cookie = token.to_cookie_value();
    for request in 0..3 {
        let s = f.manager.session(Some(&cookie));
        assert!(!s.exists().await.unwrap());
        // No session, and the (dead) cookie left alone.
        assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);
        assert_eq!(stored(&f, &cookie).await.unwrap().expires_at, dies_at);
        if request == 0 {
            // The one-step path: the load moved the deadline, a touch put it back.
            let calls = f.store.take_calls();
            assert_eq!((calls.load_and_touch, calls.touch), (1, 1), "{calls:?}");
        }
        f.clock.advance(Duration::minutes(20));
    }
    assert_eq!(stored(&f, &cookie).await, None);
}

#[tokio::test]
async fn a_one_step_refresh_never_extends_a_rotation_pointer() {
    let f = one_step_fixture(
        SessionConfig::builder()
            .refresh_each_request(true)
            .rotate_every(Some(Duration::hours(1)))
            .rotation_grace(Duration::seconds(60))
            .build()
            .unwrap(),
    );
    let old = new_session(&f, &[("a", 1)]).await;
    f.clock.advance(Duration::minutes(61));
    let decision = read_request(&f, &old).await;
    let new = set_value(&decision);
    assert_ne!(new, old);
    let pointer = stored(&f, &old).await.unwrap();
    assert_eq!(pointer.expires_at, f.clock.now() + Duration::seconds(60));
    f.store.take_calls();
    // The old cookie, within the grace window: it leads to the session...
    f.clock.advance(Duration::seconds(30));
    assert_eq!(set_value(&read_request(&f, &old).await), new);
    // ...but the pointer's deadline is put back.
    assert_eq!(stored(&f, &old).await.unwrap(), pointer);
    f.clock.advance(Duration::seconds(31));
    let s = f.manager.session(Some(&old));
    assert!(!s.exists().await.unwrap());
}
