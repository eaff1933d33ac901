//! What happens to existing cookie sessions when the keys or the kind of
//! session change (the README's "Changing keys, sealers or session kinds"):
//! rotation keeps everyone logged in, anything else logs everyone out once —
//! "no session" and a replaced or removed cookie, never an error.

use std::sync::Arc;

use session_cookie::{EncryptedCookies, Key, KeyRing, SignedCookies, sealed_key_id};
use session_core::time::Duration;
use session_core::{CookieDecision, CookieSealer, ManualClock, SessionConfig, SessionManager};
use session_memory::MemoryStore;
use sha2::{Digest, Sha256};

/// A fixed, high-entropy secret per label (SHA-256 of it).
fn key(id: &str) -> Key {
    let secret: [u8; 32] = Sha256::digest(format!("session-cookie switching test {id}")).into();
    Key::new(id, secret).unwrap()
}

fn sealers(ring: &KeyRing) -> [Arc<dyn CookieSealer>; 2] {
    [
        Arc::new(SignedCookies::new(ring.clone())),
        Arc::new(EncryptedCookies::new(ring.clone())),
    ]
}

const IDLE: Duration = Duration::minutes(30);

fn config() -> SessionConfig {
    SessionConfig::builder()
        .idle_lifetime(IDLE)
        .build()
        .unwrap()
}

/// A new session holding `user = 1` through `manager`; its cookie value.
async fn log_in(manager: &SessionManager) -> String {
    let session = manager.session(None);
    session.insert("user", &1u64).await.unwrap();
    match manager.finish(&session).await.unwrap() {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected a cookie, got {other:?}"),
    }
}

/// The `user` a request with `cookie` sees, and what `finish` tells the browser.
async fn visit(manager: &SessionManager, cookie: &str) -> (Option<u64>, CookieDecision) {
    let session = manager.session(Some(cookie));
    let user = session.get::<u64>("user").await.unwrap();
    (user, manager.finish(&session).await.unwrap())
}

/// Logged out once: no session, and the stale cookie is removed.
async fn assert_logged_out(manager: &SessionManager, cookie: &str) {
    let (user, decision) = visit(manager, cookie).await;
    assert_eq!(user, None);
    assert!(
        matches!(decision, CookieDecision::Remove(_)),
        "{decision:?}"
    );
}

/// The rotation procedure of the README: new key in front; cookies of the old
/// key open while it stays in the ring, and are re-sealed with the new one when
/// the session is written; an old-key cookie that is not used dies at its sealed
/// deadline, at most one idle lifetime after the rotation, even with the old key
/// still in the ring — so dropping the old key after that logs nobody out.
#[tokio::test]
async fn rotation_then_dropping_the_old_key_after_one_idle_lifetime() {
    let ring_a = KeyRing::new(key("a"));
    let ring_ba = ring_a.rotated(key("b")).unwrap();
    let ring_b = ring_ba.without("a").unwrap();
    for ((a, ba), b) in sealers(&ring_a)
        .into_iter()
        .zip(sealers(&ring_ba))
        .zip(sealers(&ring_b))
    {
        let clock = ManualClock::starting_now();
        let manager = |s| SessionManager::client_side_with_clock(s, config(), clock.shared());
        let before = manager(a);
        let (active, idle) = (log_in(&before).await, log_in(&before).await);

        // Rotation. The active user comes back and changes the session.
        let rotated = manager(ba);
        clock.advance(IDLE - Duration::minutes(1));
        let session = rotated.session(Some(&active));
        assert_eq!(session.get::<u64>("user").await.unwrap(), Some(1));
        session.insert("seen", &true).await.unwrap();
        let CookieDecision::Set(active) = rotated.finish(&session).await.unwrap() else {
            panic!("a change re-seals the cookie")
        };
        let active = active.value().to_owned();
        assert_eq!(sealed_key_id(&active).as_deref(), Some("b"));

        // One idle lifetime after the rotation the idle user's "a" cookie is dead
        // by its own deadline, "a" still in the ring.
        clock.advance(Duration::minutes(2));
        assert_logged_out(&rotated, &idle).await;

        // Dropping "a" now changes nothing for the active user.
        let after = manager(b);
        assert_eq!(visit(&after, &active).await.0, Some(1));
    }
}

/// A ring replaced without rotation (the old key gone at once, or a key
/// mistyped on one instance): every cookie of the old key is no session.
#[tokio::test]
async fn replacing_the_key_logs_everyone_out_without_errors() {
    for (old, new) in sealers(&KeyRing::new(key("a")))
        .into_iter()
        .zip(sealers(&KeyRing::new(key("b"))))
    {
        let cookie = log_in(&SessionManager::client_side(old, config())).await;
        assert_logged_out(&SessionManager::client_side(new, config()), &cookie).await;
    }
    // The same id with another secret: the same.
    let same_id = Key::new("a", Sha256::digest("another secret for a")).unwrap();
    for (old, new) in sealers(&KeyRing::new(key("a")))
        .into_iter()
        .zip(sealers(&KeyRing::new(same_id)))
    {
        let cookie = log_in(&SessionManager::client_side(old, config())).await;
        assert_logged_out(&SessionManager::client_side(new, config()), &cookie).await;
    }
}

/// Signed to encrypted (or back) over the same ring: the formats never cross,
/// so every session of the other format is no session.
#[tokio::test]
async fn switching_between_signed_and_encrypted_logs_everyone_out_once() {
    let ring = KeyRing::new(key("a"));
    let [signed, encrypted] = sealers(&ring);
    let signed = SessionManager::client_side(signed, config());
    let encrypted = SessionManager::client_side(encrypted, config());
    for (from, to) in [(&signed, &encrypted), (&encrypted, &signed)] {
        let cookie = log_in(from).await;
        assert_logged_out(to, &cookie).await;
        // The new kind works from the next login on.
        let fresh = log_in(to).await;
        assert_eq!(visit(to, &fresh).await.0, Some(1));
    }
}

/// Server-side to client-side sessions (or back) under the same cookie name:
/// neither reads the other's cookie.
#[tokio::test]
async fn switching_between_server_and_client_side_logs_everyone_out_once() {
    let server = SessionManager::new(Arc::new(MemoryStore::new()), config());
    for sealer in sealers(&KeyRing::new(key("a"))) {
        let client = SessionManager::client_side(sealer, config());
        assert_logged_out(&client, &log_in(&server).await).await;
        assert_logged_out(&server, &log_in(&client).await).await;
    }
}
