//! The manager over a client-side sealer (the cookie is the session).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Clock, CookieDecision, CookieSealer, Error, ManualClock, SessionConfig, SessionManager,
};

/// A test-only sealer: base64url of `cookie-name|deadline-millis|payload`, no
/// authenticity. Real ones (signed, encrypted) live in session-cookie; this one
/// isolates the manager's behaviour.
struct PlainSealer;

impl CookieSealer for PlainSealer {
    fn seal(
        &self,
        cookie_name: &str,
        payload: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<String, Error> {
        let mut bytes = format!(
            "{cookie_name}|{}",
            expires_at.unix_timestamp_nanos() / 1_000_000
        )
        .into_bytes();
        bytes.push(b'|');
        bytes.extend_from_slice(payload);
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    fn open(&self, cookie_name: &str, cookie_value: &str, now: OffsetDateTime) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(cookie_value).ok()?;
        let bytes = bytes.strip_prefix(format!("{cookie_name}|").as_bytes())?;
        let split = bytes.iter().position(|&b| b == b'|')?;
        let millis: i128 = std::str::from_utf8(&bytes[..split]).ok()?.parse().ok()?;
        (millis * 1_000_000 > now.unix_timestamp_nanos()).then(|| bytes[split + 1..].to_vec())
    }
}

fn manager(config: SessionConfig) -> (ManualClock, SessionManager) {
    let clock = ManualClock::new(session_core::time::macros::datetime!(2030-01-01 0:00 UTC));
    let m = SessionManager::client_side_with_clock(Arc::new(PlainSealer), config, clock.shared());
    (clock, m)
}

fn set(d: CookieDecision) -> String {
    match d {
        CookieDecision::Set(c) => c.value().to_owned(),
        other => panic!("expected Set, got {other:?}"),
    }
}

#[tokio::test]
async fn same_session_api_round_trips_through_the_cookie() {
    let (_, m) = manager(SessionConfig::default());
    assert!(m.store().is_none());
    let s = m.session(None);
    s.insert("user", "ada").await.unwrap();
    let cookie = set(m.finish(&s).await.unwrap());

    let s = m.session(Some(&cookie));
    assert!(s.exists().await.unwrap());
    assert_eq!(
        s.get::<String>("user").await.unwrap().as_deref(),
        Some("ada")
    );
    // Unchanged, no refresh: the browser's cookie stays as it is.
    assert_eq!(m.finish(&s).await.unwrap(), CookieDecision::Leave);

    let s = m.session(Some(&cookie));
    s.insert("n", &1).await.unwrap();
    let next = set(m.finish(&s).await.unwrap());
    let s = m.session(Some(&next));
    assert_eq!(s.get::<i32>("n").await.unwrap(), Some(1));
    assert_eq!(
        s.get::<String>("user").await.unwrap().as_deref(),
        Some("ada")
    );
}

#[tokio::test]
async fn expired_forged_or_garbage_cookies_are_no_session() {
    let (clock, m) = manager(SessionConfig::default());
    let s = m.session(None);
    s.insert("a", &1).await.unwrap();
    let cookie = set(m.finish(&s).await.unwrap());
    clock.advance(Duration::hours(25));
    for value in [cookie.as_str(), "garbage", "", &"A".repeat(100_000)] {
        let s = m.session(Some(value));
        assert!(!s.exists().await.unwrap());
        assert!(s.is_empty().await.unwrap());
        assert!(matches!(
            m.finish(&s).await.unwrap(),
            CookieDecision::Remove(_)
        ));
    }
}

#[tokio::test]
async fn the_manager_seals_and_opens_under_its_own_cookie_name() {
    let named = |name: &str| manager(SessionConfig::builder().cookie_name(name).build().unwrap()).1;
    let (user, admin) = (named("user_session"), named("admin_session"));
    let s = user.session(None);
    s.insert("role", "guest").await.unwrap();
    let cookie = set(user.finish(&s).await.unwrap());
    assert!(user.session(Some(&cookie)).exists().await.unwrap());
    // The same sealer behind another cookie name: the value is no session there.
    let s = admin.session(Some(&cookie));
    assert!(!s.exists().await.unwrap());
    assert_eq!(s.get::<String>("role").await.unwrap(), None);
}

#[tokio::test]
async fn refresh_reseals_and_destroy_removes() {
    let (clock, m) = manager(
        SessionConfig::builder()
            .refresh_each_request(true)
            .permanent(true)
            .build()
            .unwrap(),
    );
    let s = m.session(None);
    s.insert("a", &1).await.unwrap();
    let first = set(m.finish(&s).await.unwrap());
    clock.advance(Duration::hours(1));
    let s = m.session(Some(&first));
    s.get::<i32>("a").await.unwrap();
    let CookieDecision::Set(c) = m.finish(&s).await.unwrap() else {
        panic!()
    };
    assert_ne!(c.value(), first);
    assert_eq!(c.max_age(), Some(Duration::hours(24)));
    assert_eq!(
        c.expires_datetime(),
        Some(clock.now() + Duration::hours(24))
    );

    let s = m.session(Some(c.value()));
    s.destroy();
    assert!(matches!(
        m.finish(&s).await.unwrap(),
        CookieDecision::Remove(_)
    ));
}

#[tokio::test]
async fn a_session_too_big_for_a_cookie_is_a_typed_error() {
    let (_, m) = manager(SessionConfig::default());
    let s = m.session(None);
    s.insert("big", &"x".repeat(3500)).await.unwrap();
    match m.finish(&s).await {
        Err(Error::CookieTooLarge { size, limit: 4096 }) => assert!(size > 4096),
        other => panic!("{other:?}"),
    }
    // Just under the limit still works.
    let s = m.session(None);
    s.insert("big", &"x".repeat(2000)).await.unwrap();
    set(m.finish(&s).await.unwrap());
}

#[tokio::test]
async fn the_first_cookie_that_opens_wins_over_planted_garbage() {
    let (_, m) = manager(SessionConfig::default());
    let s = m.session(None);
    s.insert("user", "ada").await.unwrap();
    let real = set(m.finish(&s).await.unwrap());
    // A sibling subdomain planted `session_id=garbage`; the browser sends both, in
    // either order, in one header or two.
    let headers: [Vec<String>; 3] = [
        vec![format!("session_id=garbage; session_id={real}")],
        vec![format!("session_id={real}; session_id=garbage")],
        vec![
            "other=1; session_id=garbage".to_owned(),
            format!("session_id={real}"),
        ],
    ];
    for h in headers {
        let s = m.session_from_cookie_headers(h.iter().map(String::as_str));
        assert_eq!(
            s.get::<String>("user").await.unwrap().as_deref(),
            Some("ada"),
            "{h:?}"
        );
        // No removal cookie: the real session is not logged out.
        assert_eq!(m.finish(&s).await.unwrap(), CookieDecision::Leave, "{h:?}");
    }
    // Only garbage: no session, and the garbage is removed.
    let s = m.session_from_cookie_headers(["session_id=garbage; session_id=more"]);
    assert!(!s.exists().await.unwrap());
    assert!(matches!(
        m.finish(&s).await.unwrap(),
        CookieDecision::Remove(_)
    ));
}
