//! The manager over a client-side sealer (the cookie is the session).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use session_core::time::{Duration, OffsetDateTime};
use session_core::{
    Clock, CookieDecision, CookieSealer, Error, ManualClock, Opened, SessionConfig, SessionManager,
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
        self.open_with_deadline(cookie_name, cookie_value, now)
            .map(|opened| opened.payload)
    }

    fn open_with_deadline(
        &self,
        cookie_name: &str,
        cookie_value: &str,
        now: OffsetDateTime,
    ) -> Option<Opened> {
        let bytes = URL_SAFE_NO_PAD.decode(cookie_value).ok()?;
        let bytes = bytes.strip_prefix(format!("{cookie_name}|").as_bytes())?;
        let split = bytes.iter().position(|&b| b == b'|')?;
        let millis: i128 = std::str::from_utf8(&bytes[..split]).ok()?.parse().ok()?;
        let deadline = OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000).ok()?;
        (deadline > now).then(|| Opened::new(bytes[split + 1..].to_vec()).with_expires_at(deadline))
    }
}

/// The same values, from a sealer that implements only `open`: the manager cannot
/// tell the sealed deadline (the trait's default `open_with_deadline`).
struct BlindSealer;

impl CookieSealer for BlindSealer {
    fn seal(
        &self,
        cookie_name: &str,
        payload: &[u8],
        expires_at: OffsetDateTime,
    ) -> Result<String, Error> {
        PlainSealer.seal(cookie_name, payload, expires_at)
    }

    fn open(&self, cookie_name: &str, cookie_value: &str, now: OffsetDateTime) -> Option<Vec<u8>> {
        PlainSealer.open(cookie_name, cookie_value, now)
    }
}

fn manager(config: SessionConfig) -> (ManualClock, SessionManager) {
    manager_over(Arc::new(PlainSealer), config)
}

fn manager_over(
    sealer: Arc<dyn CookieSealer>,
    config: SessionConfig,
) -> (ManualClock, SessionManager) {
    let clock = ManualClock::new(session_core::time::macros::datetime!(2030-01-01 0:00 UTC));
    let m = SessionManager::client_side_with_clock(sealer, config, clock.shared());
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
    // Past half the idle lifetime (the default threshold): the refresh is due.
    clock.advance(Duration::hours(13));
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

/// `refresh_threshold` for a client-side session: a read reseals (a new
/// `Set-Cookie`) only when the new deadline gains more than the threshold share of
/// the idle lifetime over the one sealed in the cookie; the threshold 0 reseals
/// whenever the deadline moves; a sealer that cannot tell the sealed deadline gets
/// a reseal on every refreshed request, as before the threshold existed.
#[tokio::test]
async fn a_read_reseals_the_cookie_only_when_the_refresh_is_due() {
    let config = |threshold: f64| {
        SessionConfig::builder()
            .refresh_each_request(true)
            .refresh_threshold(threshold)
            .build()
            .unwrap()
    };
    let visit = |m: &SessionManager, cookie: &str| {
        let s = m.session(Some(cookie));
        let m = m.clone();
        async move {
            assert_eq!(s.get::<i32>("a").await.unwrap(), Some(1));
            m.finish(&s).await.unwrap()
        }
    };
    // (sealer, threshold, seconds after the seal, resealed?)
    let plain: Arc<dyn CookieSealer> = Arc::new(PlainSealer);
    let blind: Arc<dyn CookieSealer> = Arc::new(BlindSealer);
    let cases = [
        (&plain, 0.5, 1, false),
        (&plain, 0.5, 12 * 3600, false),
        (&plain, 0.5, 12 * 3600 + 1, true),
        (&plain, 0.25, 6 * 3600 + 1, true),
        (&plain, 0.0, 0, false),
        (&plain, 0.0, 1, true),
        (&blind, 0.5, 1, true),
        (&blind, 0.5, 0, true),
    ];
    for (sealer, threshold, after, resealed) in cases {
        let (clock, m) = manager_over(Arc::clone(sealer), config(threshold));
        let s = m.session(None);
        s.insert("a", &1).await.unwrap();
        let cookie = set(m.finish(&s).await.unwrap());
        clock.advance(Duration::seconds(after));
        let decision = visit(&m, &cookie).await;
        let case = format!("threshold {threshold}, {after} s later");
        match decision {
            CookieDecision::Set(c) => {
                assert!(resealed, "{case}: resealed");
                // Resealed with a full idle lifetime from now; the next visit in
                // the same instant has nothing to gain.
                let opened = PlainSealer
                    .open_with_deadline("session_id", c.value(), clock.now())
                    .unwrap();
                assert_eq!(opened.expires_at, Some(clock.now() + Duration::hours(24)));
                if Arc::ptr_eq(sealer, &plain) {
                    assert_eq!(visit(&m, c.value()).await, CookieDecision::Leave, "{case}");
                }
            }
            CookieDecision::Leave => assert!(!resealed, "{case}: left alone"),
            other => panic!("{case}: {other:?}"),
        }
    }
}
