//! tower-sessions' test suite (`tests/common/mod.rs` route tests, the layer tests of
//! `service.rs`, `tower-sessions-core/src/session.rs` unit tests) re-expressed against
//! this layer, for the behaviours no test of `session-tower` or `session-core` covers
//! yet.
//!
//! Where this workspace deliberately differs, the tests check the documented
//! behaviour here (session-core/README.md, `SessionManager::finish`):
//!
//! - Defaults: the cookie is `session_id` (tower-sessions: `id`) with `SameSite=Lax`
//!   (tower-sessions: `Strict`), and is a browser-session cookie unless the session is
//!   permanent (recent tower-sessions sends a `Max-Age` of up to two weeks even then).
//! - `malformed_session_cookie`: tower-sessions answers a request that never uses its
//!   session but carries a malformed cookie with a removal cookie. Here such a request
//!   costs no store call and sends no `Set-Cookie` (sessions are lazy); a request that
//!   does use it gets the removal.
//! - `Expiry::AtDateTime` is a per-session fixed date; here the fixed cap is the
//!   configured absolute lifetime, the per-session knobs are `set_idle_lifetime` and
//!   `set_permanent`, and a session always has a deadline.
//! - `concurrent_counter` (10 000 parallel increments, each seen once): through the
//!   layer, `finish` merges per key and the later writer of one key wins, so a
//!   read-then-write counter can lose increments under concurrency. The documented tool
//!   for such read-dependent writes is `SessionManager::finish_if_unchanged`, which the
//!   layer does not call. Different keys are never lost (session-core's
//!   `many_concurrent_requests_on_one_session_lose_nothing`).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{call, cookie_pair, manager, manager_at, parse, set_cookie};
use http::StatusCode;
use session_core::cookie::SameSite as CookieSameSite;
use session_core::time::Duration;
use session_core::{Clock, SameSite, SessionConfig, SessionManager};
use session_memory::MemoryStore;

/// A session with one value, created through the layer; its cookie pair.
async fn start(manager: &SessionManager) -> String {
    let response = call(manager, None, |s| async move {
        s.insert("foo", &42).await.unwrap();
        String::new()
    })
    .await;
    cookie_pair(&set_cookie(&response).expect("a new session sets its cookie"))
}

/// `secure_test`, `http_only_test`, `same_site_*_test`: Secure, HttpOnly and SameSite follow the config, on or off, when set and removed.
#[tokio::test]
async fn cookie_protection_attributes_follow_the_configuration() {
    let cases = [
        // (secure, http_only, same_site)
        (false, false, SameSite::Lax),
        (true, false, SameSite::Strict),
        (false, true, SameSite::Strict),
        (true, true, SameSite::None),
    ];
    for (secure, http_only, same_site) in cases {
        let config = SessionConfig::builder()
            .secure(secure)
            .http_only(http_only)
            .same_site(same_site)
            .build()
            .unwrap();
        let manager = SessionManager::new(Arc::new(MemoryStore::new()), config);
        let created = set_cookie(
            &call(&manager, None, |s| async move {
                s.insert("foo", &42).await.unwrap();
                String::new()
            })
            .await,
        )
        .unwrap();
        let removed = set_cookie(
            &call(&manager, Some(&cookie_pair(&created)), |s| async move {
                s.destroy();
                String::new()
            })
            .await,
        )
        .unwrap();
        let expected = match same_site {
            SameSite::Lax => CookieSameSite::Lax,
            SameSite::Strict => CookieSameSite::Strict,
            SameSite::None => CookieSameSite::None,
        };
        for header in [&created, &removed] {
            let cookie = parse(header);
            assert_eq!(cookie.secure().unwrap_or(false), secure, "{header}");
            assert_eq!(cookie.http_only().unwrap_or(false), http_only, "{header}");
            assert_eq!(cookie.same_site(), Some(expected), "{header}");
        }
    }
}

/// `set_expiry`: a later lifetime change re-sends the same session's cookie with the new Max-Age, and stores the new deadline.
#[tokio::test]
async fn a_later_lifetime_change_resends_the_cookie_with_the_new_max_age() {
    let config = SessionConfig::builder()
        .permanent(true)
        .idle_lifetime(Duration::hours(1))
        .build()
        .unwrap();
    let (manager, store, clock) = manager_at(config);
    let pair = start(&manager).await;

    clock.advance(Duration::minutes(10));
    let response = call(&manager, Some(&pair), |s| async move {
        s.set_idle_lifetime(Some(Duration::days(1))).await.unwrap();
        String::new()
    })
    .await;
    let header = set_cookie(&response).expect("the new lifetime's cookie");
    assert_eq!(cookie_pair(&header), pair, "the same session");
    assert_eq!(
        parse(&header).max_age(),
        Some(Duration::days(1)),
        "{header}"
    );
    let record = store.record(&pair).await.unwrap();
    assert_eq!(record.expires_at, clock.now() + Duration::days(1));
}

/// `change_expiry_type`: a later request switches the same session between a browser-session and a persistent cookie.
#[tokio::test]
async fn a_later_request_switches_between_browser_session_and_persistent_cookie() {
    let (manager, _store) = manager();
    let pair = start(&manager).await;

    let persistent = set_cookie(
        &call(&manager, Some(&pair), |s| async move {
            s.set_permanent(Some(true)).await.unwrap();
            String::new()
        })
        .await,
    )
    .expect("the persistent cookie");
    assert_eq!(cookie_pair(&persistent), pair);
    let cookie = parse(&persistent);
    assert_eq!(cookie.max_age(), Some(Duration::hours(24)), "{persistent}");
    assert!(cookie.expires_datetime().is_some(), "{persistent}");

    let browser_session = set_cookie(
        &call(&manager, Some(&pair), |s| async move {
            s.set_permanent(Some(false)).await.unwrap();
            String::new()
        })
        .await,
    )
    .expect("a browser-session cookie replacing the persistent one");
    assert_eq!(cookie_pair(&browser_session), pair);
    let cookie = parse(&browser_session);
    assert_eq!(cookie.max_age(), None, "{browser_session}");
    assert!(cookie.expires().is_none(), "{browser_session}");
}

/// `expiry_at_date_time_*`: near its absolute deadline a re-sent persistent cookie expires with the session, which ends there.
#[tokio::test]
async fn near_its_absolute_deadline_a_persistent_cookie_ends_with_the_session() {
    let config = SessionConfig::builder()
        .permanent(true)
        .idle_lifetime(Duration::hours(1))
        .absolute_lifetime(Duration::hours(3))
        .build()
        .unwrap();
    let (manager, store, clock) = manager_at(config);
    let end = clock.now() + Duration::hours(3);
    let pair = start(&manager).await;

    for elapsed in [
        Duration::minutes(50),
        Duration::minutes(100),
        Duration::minutes(150),
    ] {
        clock.set(end - Duration::hours(3) + elapsed);
        let response = call(&manager, Some(&pair), |s| async move {
            let foo = s.get::<u32>("foo").await.unwrap().unwrap();
            s.insert("foo", &(foo + 1)).await.unwrap();
            String::new()
        })
        .await;
        let header = set_cookie(&response).expect("the persistent cookie, re-sent");
        let cookie = parse(&header);
        let expected = (clock.now() + Duration::hours(1)).min(end);
        assert_eq!(cookie.max_age(), Some(expected - clock.now()), "{header}");
        assert_eq!(cookie.expires_datetime(), Some(expected), "{header}");
        assert_eq!(store.record(&pair).await.unwrap().expires_at, expected);
    }
    // Active until the end, yet over at the fixed date.
    clock.set(end);
    let response = call(&manager, Some(&pair), |s| async move {
        format!("{:?}", s.get::<u32>("foo").await.unwrap())
    })
    .await;
    assert_eq!(response.body(), "None");
}

/// `test_cycle_id_create_failure_preserves_previous_record`: a failed id cycle answers 500 and keeps the old id and its data.
#[tokio::test]
async fn a_failed_id_cycle_keeps_the_session_under_its_old_id() {
    let (manager, store) = manager();
    let pair = start(&manager).await;

    store.fail_creates.store(true, Ordering::SeqCst);
    let response = call(&manager, Some(&pair), |s| async move {
        s.insert("user", "alice").await.unwrap();
        s.cycle_id().await.unwrap();
        String::from("logged in")
    })
    .await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(set_cookie(&response), None);

    store.fail_creates.store(false, Ordering::SeqCst);
    let response = call(&manager, Some(&pair), |s| async move {
        let foo = s.get::<u32>("foo").await.unwrap();
        let user = s.get::<String>("user").await.unwrap();
        format!("{foo:?} {user:?}")
    })
    .await;
    assert_eq!(
        response.body(),
        "Some(42) None",
        "the old session, unchanged"
    );
    assert_eq!(set_cookie(&response), None, "its cookie still holds");
    assert_eq!(store.records(), 1, "no half-moved copy");
}

/// `flush` after changes: a session changed, then cleared in one request is not stored (new) or is removed (existing).
#[tokio::test]
async fn a_session_changed_then_cleared_in_one_request_is_not_kept() {
    let (manager, store) = manager();
    let response = call(&manager, None, |s| async move {
        s.insert("foo", &42).await.unwrap();
        s.clear().await.unwrap();
        String::new()
    })
    .await;
    assert_eq!(set_cookie(&response), None);
    assert_eq!(store.saves.load(Ordering::SeqCst), 0);

    let pair = start(&manager).await;
    let response = call(&manager, Some(&pair), |s| async move {
        s.insert("bar", &7).await.unwrap();
        s.clear().await.unwrap();
        String::new()
    })
    .await;
    let header = set_cookie(&response).expect("a removal cookie");
    let cookie = parse(&header);
    assert_eq!(cookie.value(), "", "{header}");
    assert_eq!(cookie.max_age(), Some(Duration::ZERO), "{header}");
    assert_eq!(store.records(), 0);
}
