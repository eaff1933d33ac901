//! Cookie sessions through `SessionManager::client_side`: the same `Session` API,
//! deadlines, rotation of keys, and the 4,096-byte limit.

use std::sync::Arc;

use session_cookie::{EncryptedCookies, Key, KeyRing, SignedCookies, sealed_key_id};
use session_core::time::Duration;
use session_core::time::macros::datetime;
use session_core::{
    CookieDecision, CookieSealer, Error, ManualClock, SessionConfig, SessionManager,
};
use sha2::{Digest, Sha256};

/// A fixed, high-entropy secret per number: SHA-256 of a label (stable keys
/// that pass the weak-secret check).
fn secret(n: u8) -> [u8; 32] {
    Sha256::digest(format!("session-cookie test key {n}")).into()
}

fn key(id: &str, n: u8) -> Key {
    Key::new(id, secret(n)).unwrap()
}

fn sealers(ring: KeyRing) -> [Arc<dyn CookieSealer>; 2] {
    [
        Arc::new(SignedCookies::new(ring.clone())),
        Arc::new(EncryptedCookies::new(ring)),
    ]
}

fn config() -> SessionConfig {
    SessionConfig::builder()
        .idle_lifetime(Duration::minutes(30))
        .build()
        .unwrap()
}

fn set_cookie(decision: CookieDecision) -> String {
    match decision {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected a cookie to be set, got {other:?}"),
    }
}

#[tokio::test]
async fn round_trip_with_the_session_api() {
    for sealer in sealers(KeyRing::new(key("k", 1))) {
        let clock = ManualClock::starting_now();
        let manager = SessionManager::client_side_with_clock(sealer, config(), clock.shared());

        // No cookie: a new session; an untouched one sets nothing.
        let session = manager.session(None);
        assert_eq!(
            manager.finish(&session).await.unwrap(),
            CookieDecision::Leave
        );

        let session = manager.session(None);
        session.insert("user_id", &42u64).await.unwrap();
        session
            .insert("cart", &vec!["apple", "pear"])
            .await
            .unwrap();
        let cookie = set_cookie(manager.finish(&session).await.unwrap());

        let session = manager.session(Some(&cookie));
        assert_eq!(session.get::<u64>("user_id").await.unwrap(), Some(42));
        assert_eq!(
            session.get::<Vec<String>>("cart").await.unwrap(),
            Some(vec!["apple".to_owned(), "pear".to_owned()])
        );
        // Reading changes nothing, so nothing is sent.
        assert_eq!(
            manager.finish(&session).await.unwrap(),
            CookieDecision::Leave
        );

        // A change re-seals the cookie.
        let session = manager.session(Some(&cookie));
        session.remove("cart").await.unwrap();
        let cookie = set_cookie(manager.finish(&session).await.unwrap());
        let session = manager.session(Some(&cookie));
        assert_eq!(session.get::<Vec<String>>("cart").await.unwrap(), None);
        assert_eq!(session.get::<u64>("user_id").await.unwrap(), Some(42));

        // Logout removes the cookie.
        session.destroy();
        assert!(matches!(
            manager.finish(&session).await.unwrap(),
            CookieDecision::Remove(_)
        ));

        // A forged cookie is no session (and the stale cookie is removed once the
        // session is used).
        let session = manager.session(Some("forged"));
        assert!(session.is_empty().await.unwrap());
        assert!(matches!(
            manager.finish(&session).await.unwrap(),
            CookieDecision::Remove(_)
        ));
    }
}

/// A cookie replayed after its deadline is a fresh, empty session, whatever the
/// browser was told.
#[tokio::test]
async fn replay_after_deadline_is_rejected() {
    for sealer in sealers(KeyRing::new(key("k", 1))) {
        let clock = ManualClock::starting_now();
        let manager = SessionManager::client_side_with_clock(sealer, config(), clock.shared());
        let session = manager.session(None);
        session.insert("user_id", &7u64).await.unwrap();
        let cookie = set_cookie(manager.finish(&session).await.unwrap());

        clock.advance(Duration::minutes(29));
        let session = manager.session(Some(&cookie));
        assert_eq!(session.get::<u64>("user_id").await.unwrap(), Some(7));

        clock.advance(Duration::minutes(2));
        let session = manager.session(Some(&cookie));
        assert_eq!(session.get::<u64>("user_id").await.unwrap(), None);
    }
}

/// Sign with A; rotate to B: the A cookie still opens and the next write
/// re-issues it under B; A removed: the A cookie is rejected.
#[tokio::test]
async fn key_rotation() {
    let ring_a = KeyRing::new(key("a", 1));
    let ring_ba = ring_a.rotated(key("b", 2)).unwrap();
    let ring_b = ring_ba.without("a").unwrap();
    let refresh = SessionConfig::builder()
        .idle_lifetime(Duration::minutes(30))
        .refresh_each_request(true)
        .build()
        .unwrap();
    for ((a, ba), b) in sealers(ring_a)
        .into_iter()
        .zip(sealers(ring_ba))
        .zip(sealers(ring_b))
    {
        let manager_a = SessionManager::client_side(a, config());
        let session = manager_a.session(None);
        session.insert("user_id", &1u64).await.unwrap();
        let cookie_a = set_cookie(manager_a.finish(&session).await.unwrap());
        assert_eq!(sealed_key_id(&cookie_a).as_deref(), Some("a"));

        // Rotated: readable, and a change re-issues it under B.
        let manager_ba = SessionManager::client_side(ba.clone(), config());
        let session = manager_ba.session(Some(&cookie_a));
        assert_eq!(session.get::<u64>("user_id").await.unwrap(), Some(1));
        session.insert("seen", &true).await.unwrap();
        let cookie_b = set_cookie(manager_ba.finish(&session).await.unwrap());
        assert_eq!(sealed_key_id(&cookie_b).as_deref(), Some("b"));

        // With refresh-each-request, reading re-issues it under B once the
        // refresh is due (it gains more than half the idle lifetime).
        let clock = ManualClock::starting_now();
        let refreshing =
            SessionManager::client_side_with_clock(ba, refresh.clone(), clock.shared());
        clock.advance(Duration::minutes(16));
        let session = refreshing.session(Some(&cookie_a));
        assert_eq!(session.get::<u64>("user_id").await.unwrap(), Some(1));
        let refreshed = set_cookie(refreshing.finish(&session).await.unwrap());
        assert_eq!(sealed_key_id(&refreshed).as_deref(), Some("b"));

        // A removed.
        let manager_b = SessionManager::client_side(b, config());
        let session = manager_b.session(Some(&cookie_a));
        assert_eq!(session.get::<u64>("user_id").await.unwrap(), None);
        let session = manager_b.session(Some(&cookie_b));
        assert_eq!(session.get::<u64>("user_id").await.unwrap(), Some(1));
        assert_eq!(session.get::<bool>("seen").await.unwrap(), Some(true));
    }
}

/// Write-free sliding expiry holds for cookies too: with refresh on, a read
/// reseals the cookie (a new `Set-Cookie`) only when that moves its sealed
/// deadline by more than the threshold share of the idle lifetime (half, 15 of 30
/// minutes); a change always reseals. Both sealers, permanent and not.
#[tokio::test]
async fn a_read_reseals_only_when_the_refresh_gains_more_than_the_threshold() {
    for permanent in [false, true] {
        for sealer in sealers(KeyRing::new(key("k", 1))) {
            // On a whole second: the header keeps milliseconds, and the boundary
            // below is exact.
            let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
            let config = SessionConfig::builder()
                .idle_lifetime(Duration::minutes(30))
                .refresh_each_request(true)
                .permanent(permanent)
                .build()
                .unwrap();
            let manager = SessionManager::client_side_with_clock(sealer, config, clock.shared());
            let session = manager.session(None);
            session.insert("user_id", &7u64).await.unwrap();
            let cookie = set_cookie(manager.finish(&session).await.unwrap());
            let read = |cookie: String| {
                let manager = &manager;
                async move {
                    let session = manager.session(Some(&cookie));
                    assert_eq!(session.get::<u64>("user_id").await.unwrap(), Some(7));
                    manager.finish(&session).await.unwrap()
                }
            };

            // At 15 minutes the refresh gains exactly the threshold: not more, so
            // no reseal.
            for step in [1, 13, 1] {
                clock.advance(Duration::minutes(step));
                assert_eq!(read(cookie.clone()).await, CookieDecision::Leave);
            }
            // A change reseals whatever the gain.
            let session = manager.session(Some(&cookie));
            session.insert("seen", &true).await.unwrap();
            assert!(matches!(
                manager.finish(&session).await.unwrap(),
                CookieDecision::Set(_)
            ));
            // One second more than the threshold: resealed, deadline a full idle
            // lifetime from now.
            clock.advance(Duration::seconds(1));
            let CookieDecision::Set(c) = read(cookie.clone()).await else {
                panic!("a due refresh reseals")
            };
            if permanent {
                assert_eq!(c.max_age(), Some(Duration::minutes(30)));
            }
            let resealed = c.value().to_owned();
            // The new cookie is not due again for another 15 minutes.
            clock.advance(Duration::minutes(15));
            assert_eq!(read(resealed.clone()).await, CookieDecision::Leave);
            clock.advance(Duration::seconds(1));
            assert!(matches!(read(resealed).await, CookieDecision::Set(_)));
        }
    }
}

/// A session that would not fit in a 4,096-byte cookie is a typed error at save
/// time: nothing is set, nothing is truncated.
#[tokio::test]
async fn oversized_session_is_a_typed_error() {
    for sealer in sealers(KeyRing::new(key("k", 1))) {
        let manager = SessionManager::client_side(sealer, config());
        let session = manager.session(None);
        session.insert("blob", &"x".repeat(3500)).await.unwrap();
        match manager.finish(&session).await {
            Err(Error::CookieTooLarge { size, limit }) => {
                assert_eq!(limit, 4096);
                assert!(size > 4096, "{size}");
            }
            other => panic!("expected CookieTooLarge, got {other:?}"),
        }

        // A smaller session still fits and round-trips.
        let session = manager.session(None);
        session.insert("blob", &"x".repeat(2000)).await.unwrap();
        let cookie = set_cookie(manager.finish(&session).await.unwrap());
        let session = manager.session(Some(&cookie));
        assert_eq!(
            session
                .get::<String>("blob")
                .await
                .unwrap()
                .map(|s| s.len()),
            Some(2000)
        );
    }
}

/// The full `Set-Cookie` header stays within 4,096 bytes for every session the
/// manager accepts, and the limit is on the header, not only the value.
#[tokio::test]
async fn accepted_cookies_fit_the_browser_limit() {
    let sealer: Arc<dyn CookieSealer> = Arc::new(SignedCookies::new(KeyRing::new(key("k", 1))));
    let manager = SessionManager::client_side(sealer, config());
    let mut accepted = 0;
    for len in (2000..3200).step_by(10) {
        let session = manager.session(None);
        session.insert("blob", &"y".repeat(len)).await.unwrap();
        match manager.finish(&session).await {
            Ok(decision) => {
                let header = decision.set_cookie_header().unwrap();
                assert!(header.len() <= 4096, "{}", header.len());
                accepted += 1;
            }
            Err(Error::CookieTooLarge { size, .. }) => assert!(size > 4096),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(accepted > 0 && accepted < 120, "{accepted}");
}

/// `cycle_id` and `clear` behave as on the server side: a new cookie, and an
/// emptied session removes its cookie.
#[tokio::test]
async fn cycle_and_clear() {
    for sealer in sealers(KeyRing::new(key("k", 1))) {
        let manager = SessionManager::client_side(sealer, config());
        let session = manager.session(None);
        session.insert("a", &1).await.unwrap();
        let first = set_cookie(manager.finish(&session).await.unwrap());

        let session = manager.session(Some(&first));
        session.cycle_id().await.unwrap();
        let second = set_cookie(manager.finish(&session).await.unwrap());
        let session = manager.session(Some(&second));
        assert_eq!(session.get::<i32>("a").await.unwrap(), Some(1));

        session.clear().await.unwrap();
        assert!(matches!(
            manager.finish(&session).await.unwrap(),
            CookieDecision::Remove(_)
        ));
    }
}

/// An encrypted cookie shows none of the session's values; a signed one is only
/// tamper-proof (its JSON is readable by the client, as the README warns).
#[tokio::test]
async fn what_the_client_can_read() {
    let ring = KeyRing::new(key("k", 1));
    let [signed, encrypted] = sealers(ring);
    for (sealer, readable) in [(signed, true), (encrypted, false)] {
        let manager = SessionManager::client_side(sealer, config());
        let session = manager.session(None);
        session.insert("email", "ada@example.com").await.unwrap();
        let cookie = set_cookie(manager.finish(&session).await.unwrap());
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&cookie)
            .unwrap();
        let found = bytes.windows(15).any(|w| w == b"ada@example.com");
        assert_eq!(found, readable);
    }
}
