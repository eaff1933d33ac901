//! Periodic id rotation with a grace window (manual clock).

use std::sync::Arc;

use session_core::time::Duration;
use session_core::{
    Clock, CookieDecision, ManualClock, SessionConfig, SessionInterface, SessionManager,
    SessionToken, StoredRecord,
};
use session_memory::MemoryStore;

struct Fixture {
    clock: ManualClock,
    store: Arc<MemoryStore>,
    manager: SessionManager,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(session_core::time::macros::datetime!(2030-01-01 0:00 UTC));
    let store = Arc::new(MemoryStore::with_clock(clock.shared()));
    let config = SessionConfig::builder()
        .rotate_every(Some(Duration::hours(1)))
        .rotation_grace(Duration::seconds(60))
        .build()
        .unwrap();
    let manager = SessionManager::with_clock(store.clone(), config, clock.shared());
    Fixture {
        clock,
        store,
        manager,
    }
}

fn set_value(d: &CookieDecision) -> String {
    match d {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected Set, got {other:?}"),
    }
}

async fn raw(f: &Fixture, cookie: &str) -> Option<StoredRecord> {
    let key = SessionToken::parse(cookie).unwrap().storage_key();
    f.store.load(&key).await.unwrap()
}

async fn start(f: &Fixture) -> String {
    let s = f.manager.session(None);
    s.insert("user", &1).await.unwrap();
    set_value(&f.manager.finish(&s).await.unwrap())
}

/// One request that reads the session and returns the cookie decision.
async fn visit(f: &Fixture, cookie: &str) -> CookieDecision {
    let s = f.manager.session(Some(cookie));
    s.get::<i64>("user").await.unwrap();
    f.manager.finish(&s).await.unwrap()
}

#[tokio::test]
async fn rotates_after_the_period_and_not_before() {
    let f = fixture();
    let old = start(&f).await;
    f.clock.advance(Duration::minutes(59));
    assert_eq!(visit(&f, &old).await, CookieDecision::Leave);
    f.clock.advance(Duration::minutes(2));
    let new = set_value(&visit(&f, &old).await);
    assert_ne!(new, old);
    let s = f.manager.session(Some(&new));
    assert_eq!(s.get::<i64>("user").await.unwrap(), Some(1));
    // The new id is fresh: no rotation on the next visit.
    assert_eq!(visit(&f, &new).await, CookieDecision::Leave);
}

#[tokio::test]
async fn old_cookie_within_the_window_merges_and_gets_the_new_cookie() {
    let f = fixture();
    let old = start(&f).await;
    f.clock.advance(Duration::minutes(61));
    // An in-flight request loaded the session before the rotation...
    let in_flight = f.manager.session(Some(&old));
    in_flight.insert("cart:apple", &1).await.unwrap();
    // ...another request rotates it...
    let new = set_value(&visit(&f, &old).await);
    // ...and the in-flight one finishes: its change lands in the new record.
    f.clock.advance(Duration::seconds(10));
    let d = f.manager.finish(&in_flight).await.unwrap();
    assert_eq!(set_value(&d), new);
    // A request that starts with the old cookie inside the window follows the
    // pointer, sees everything and is handed the new cookie.
    let late = f.manager.session(Some(&old));
    assert_eq!(late.get::<i64>("cart:apple").await.unwrap(), Some(1));
    late.insert("cart:pear", &2).await.unwrap();
    assert_eq!(set_value(&f.manager.finish(&late).await.unwrap()), new);
    let s = f.manager.session(Some(&new));
    assert_eq!(
        s.keys().await.unwrap(),
        vec!["cart:apple", "cart:pear", "user"]
    );
}

#[tokio::test]
async fn after_the_window_the_old_cookie_is_dead() {
    let f = fixture();
    let old = start(&f).await;
    f.clock.advance(Duration::minutes(61));
    let new = set_value(&visit(&f, &old).await);
    f.clock.advance(Duration::seconds(61));
    let s = f.manager.session(Some(&old));
    assert!(!s.exists().await.unwrap());
    assert_eq!(s.get::<i64>("user").await.unwrap(), None);
    // Dead, and left alone: the browser holding it may hold the new one by now.
    assert_eq!(f.manager.finish(&s).await.unwrap(), CookieDecision::Leave);
    assert!(f.manager.session(Some(&new)).exists().await.unwrap());
}

#[tokio::test]
async fn the_pointer_never_outlives_its_window_and_hides_the_new_token() {
    let f = fixture();
    let old = start(&f).await;
    f.clock.advance(Duration::minutes(61));
    let rotated_at = f.clock.now();
    let new = set_value(&visit(&f, &old).await);
    let pointer = raw(&f, &old).await.unwrap();
    assert_eq!(pointer.expires_at, rotated_at + Duration::seconds(60));
    let text = String::from_utf8_lossy(&pointer.payload);
    assert!(!text.contains(&new), "pointer holds the new cookie: {text}");
    let new_key = SessionToken::parse(&new).unwrap().storage_key();
    assert!(!text.contains(new_key.as_str()));
    f.clock.advance(Duration::seconds(60));
    assert!(raw(&f, &old).await.is_none());
    assert_eq!(f.store.delete_expired().await.unwrap(), 1);
    assert_eq!(f.store.len(), 1);
}

#[tokio::test]
async fn racing_rotations_produce_one_new_id_and_lose_nothing() {
    let f = fixture();
    let old = start(&f).await;
    f.clock.advance(Duration::minutes(61));
    let a = f.manager.session(Some(&old));
    let b = f.manager.session(Some(&old));
    a.insert("a", &1).await.unwrap();
    b.insert("b", &2).await.unwrap();
    let (da, db) = tokio::join!(f.manager.finish(&a), f.manager.finish(&b));
    let (na, nb) = (set_value(&da.unwrap()), set_value(&db.unwrap()));
    assert_eq!(na, nb, "both requests end on the same new id");
    assert_ne!(na, old);
    // The new record and the pointer: no extra session left behind.
    assert_eq!(f.store.len(), 2);
    let s = f.manager.session(Some(&na));
    assert_eq!(s.keys().await.unwrap(), vec!["a", "b", "user"]);
}

#[tokio::test]
async fn many_concurrent_requests_across_a_rotation_lose_nothing() {
    let f = fixture();
    let old = start(&f).await;
    f.clock.advance(Duration::minutes(61));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let m = f.manager.clone();
        let old = old.clone();
        tasks.push(tokio::spawn(async move {
            let s = m.session(Some(&old));
            s.insert(&format!("item{i}"), &i).await.unwrap();
            tokio::task::yield_now().await;
            set_value(&m.finish(&s).await.unwrap())
        }));
    }
    let mut cookies = Vec::new();
    for t in tasks {
        cookies.push(t.await.unwrap());
    }
    cookies.dedup();
    assert_eq!(cookies.len(), 1, "one new id");
    assert_eq!(f.store.len(), 2);
    let s = f.manager.session(Some(&cookies[0]));
    assert_eq!(s.len().await.unwrap(), 17);
}

#[tokio::test]
async fn a_destroyed_session_is_not_resurrected_through_a_pointer() {
    let f = fixture();
    let old = start(&f).await;
    f.clock.advance(Duration::minutes(61));
    let new = set_value(&visit(&f, &old).await);
    let s = f.manager.session(Some(&new));
    s.destroy();
    assert!(matches!(
        f.manager.finish(&s).await.unwrap(),
        CookieDecision::Remove(_)
    ));
    let s = f.manager.session(Some(&old));
    assert!(!s.exists().await.unwrap());
    s.insert("x", &1).await.unwrap();
    let fresh = set_value(&f.manager.finish(&s).await.unwrap());
    assert_ne!(fresh, new);
    assert!(raw(&f, &new).await.is_none());
}

#[tokio::test]
async fn logout_with_the_old_cookie_ends_the_rotated_session() {
    let f = fixture();
    let old = start(&f).await;
    f.clock.advance(Duration::minutes(61));
    let new = set_value(&visit(&f, &old).await);
    let s = f.manager.session(Some(&old));
    s.destroy();
    assert!(matches!(
        f.manager.finish(&s).await.unwrap(),
        CookieDecision::Remove(_)
    ));
    assert!(raw(&f, &new).await.is_none());
    assert!(raw(&f, &old).await.is_none());
    assert!(f.store.is_empty());
}

#[tokio::test]
async fn cycle_id_leaves_no_pointer() {
    let f = fixture();
    let old = start(&f).await;
    let s = f.manager.session(Some(&old));
    s.cycle_id().await.unwrap();
    let new = set_value(&f.manager.finish(&s).await.unwrap());
    assert!(raw(&f, &old).await.is_none());
    assert_eq!(f.store.len(), 1);

    // Also when the request came in through a rotation pointer.
    f.clock.advance(Duration::minutes(61));
    let rotated = set_value(&visit(&f, &new).await);
    let s = f.manager.session(Some(&new));
    s.cycle_id().await.unwrap();
    let cycled = set_value(&f.manager.finish(&s).await.unwrap());
    assert_ne!(cycled, rotated);
    assert!(raw(&f, &new).await.is_none());
    assert!(raw(&f, &rotated).await.is_none());
    assert_eq!(f.store.len(), 1);
}

#[tokio::test]
async fn rotation_is_off_by_default() {
    let clock = ManualClock::new(session_core::time::macros::datetime!(2030-01-01 0:00 UTC));
    let store = Arc::new(MemoryStore::with_clock(clock.shared()));
    let m = SessionManager::with_clock(store, SessionConfig::default(), clock.shared());
    let s = m.session(None);
    s.insert("a", &1).await.unwrap();
    let c = set_value(&m.finish(&s).await.unwrap());
    clock.advance(Duration::hours(23));
    let s = m.session(Some(&c));
    s.get::<i64>("a").await.unwrap();
    assert_eq!(m.finish(&s).await.unwrap(), CookieDecision::Leave);
}
