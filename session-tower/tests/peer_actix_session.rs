//! actix-session's test suite (`tests/middleware.rs`, `tests/session.rs`,
//! `tests/opaque_errors.rs`, the store acceptance suite of `test_helpers`, the test
//! modules of `storage/redis_rs.rs` and `storage/cookie.rs`) re-expressed against this
//! layer, for the behaviours no test of `session-tower` or `session-core` covers yet.
//!
//! Where this workspace deliberately differs, the tests check the documented
//! behaviour here (session-core/README.md, `SessionManager::finish`):
//!
//! - `complex_workflow` steps 8 and 10: a request that reads its session through a
//!   dead cookie (rotated away, logged out) gets an empty session and no cookie, as
//!   in actix-session (session-core's `unknown_or_expired_cookie_starts_fresh`); a
//!   cookie that is not a session token at all is removed.
//! - `tests/middleware.rs`: actix-session's removal cookie drops `Secure`; here the
//!   removal carries the session cookie's own attributes (tests/cookie_attributes.rs).
//! - `expiration_is_always_refreshed_if_configured_to_refresh_on_every_request`: here
//!   `refresh_each_request` is lazy (a request that never uses its session does not
//!   count as activity and gets no cookie) and refreshes only when that gains more
//!   than `refresh_threshold` of the idle lifetime (session-core's
//!   `permanent_refresh_renews_max_age`, `a_refresh_that_gains_too_little_…`).
//! - `errors_are_opaque`: actix-session loads eagerly, so a failing `load` is a `500`
//!   even for a handler that ignores the session. Here loading is lazy: such a request
//!   makes no store call, and a handler that uses the session gets the typed error.
//!   Errors while saving are an empty `500` by default (tests/tower.rs).
//! - `loading_an_invalid_session_state_returns_deserialization_error`: unreadable
//!   stored bytes are no session here (a fresh one); only a newer envelope format is a
//!   typed `Decode` error (session-core's
//!   `unreadable_stored_bytes_are_no_session_but_newer_formats_are_errors`).
//! - `updating_of_an_expired_state_is_handled_gracefully`: actix-session saves the
//!   changes of an expired session under a new key. Here a session that is over is
//!   never re-created: the request's changes are dropped and the cookie removed.

mod common;

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use common::{Body, call, cookie_pair, get, manager, manager_at, parse, session_of, set_cookie};
use http::{Response, StatusCode};
use session_core::time::Duration;
use session_core::{Clock, SessionConfig, SessionInterface};
use session_tower::SessionLayer;
use tower::{Layer, Service, ServiceExt, service_fn};

/// `expiration_is_refreshed_on_changes`: a change re-sends a persistent cookie with full Max-Age and moves the deadline; a read does not.
#[tokio::test]
async fn a_change_renews_a_persistent_cookie_and_its_deadline_a_read_does_not() {
    let config = SessionConfig::builder()
        .permanent(true)
        .idle_lifetime(Duration::hours(1))
        .build()
        .unwrap();
    let (manager, store, clock) = manager_at(config);
    let do_something = |s: session_core::Session| async move {
        let counter = s.get::<u32>("counter").await.unwrap().unwrap_or(0) + 1;
        s.insert("counter", &counter).await.unwrap();
        counter.to_string()
    };

    let created = call(&manager, None, do_something).await;
    let header = set_cookie(&created).unwrap();
    assert_eq!(
        parse(&header).max_age(),
        Some(Duration::hours(1)),
        "{header}"
    );
    let pair = cookie_pair(&header);
    let first_deadline = clock.now() + Duration::hours(1);
    assert_eq!(
        store.record(&pair).await.unwrap().expires_at,
        first_deadline
    );

    clock.advance(Duration::minutes(30));
    let read = call(&manager, Some(&pair), |s| async move {
        s.get::<u32>("counter").await.unwrap().unwrap().to_string()
    })
    .await;
    assert_eq!(read.body(), "1");
    assert_eq!(set_cookie(&read), None, "a read sends no cookie");
    assert_eq!(
        store.record(&pair).await.unwrap().expires_at,
        first_deadline
    );

    let changed = call(&manager, Some(&pair), do_something).await;
    assert_eq!(changed.body(), "2");
    let header = set_cookie(&changed).expect("a change re-sends the persistent cookie");
    assert_eq!(cookie_pair(&header), pair, "the same session");
    assert_eq!(
        parse(&header).max_age(),
        Some(Duration::hours(1)),
        "{header}"
    );
    assert_eq!(
        store.record(&pair).await.unwrap().expires_at,
        clock.now() + Duration::hours(1)
    );
}

/// `guard`: a guard before the handler sees the request's session (no user: refused, no cookie), loaded once for both.
#[tokio::test]
async fn a_guard_in_front_of_the_handler_shares_the_requests_session() {
    let (manager, store) = manager();
    let count = service_fn(|req: http::Request<Body>| async move {
        let session = session_of(&req);
        let user = session.get::<String>("user_id").await.unwrap().unwrap();
        let counter = session.get::<u32>("counter").await.unwrap().unwrap_or(0);
        Ok::<_, Infallible>(Response::new(format!("{user} {counter}")))
    });
    // The guard: a service between the layer and the handler.
    let guarded = service_fn(move |req: http::Request<Body>| {
        let mut count = count;
        async move {
            let logged_in = session_of(&req)
                .get::<String>("user_id")
                .await
                .unwrap()
                .is_some();
            if !logged_in {
                let mut refused = Response::new(Body::new());
                *refused.status_mut() = StatusCode::FORBIDDEN;
                return Ok(refused);
            }
            count.call(req).await
        }
    });
    let protected = SessionLayer::new(manager.clone()).layer(guarded);

    let refused = protected.clone().oneshot(get(None)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(set_cookie(&refused), None);

    let login = call(&manager, None, |s| async move {
        s.insert("user_id", "ferris").await.unwrap();
        s.insert("counter", &1).await.unwrap();
        s.cycle_id().await.unwrap();
        String::new()
    })
    .await;
    let pair = cookie_pair(&set_cookie(&login).unwrap());

    store.loads.store(0, Ordering::SeqCst);
    let allowed = protected.oneshot(get(Some(&pair))).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.body(), "ferris 1");
    assert_eq!(set_cookie(&allowed), None);
    assert_eq!(store.loads.load(Ordering::SeqCst), 1, "one load for both");
}

/// `updating_of_an_expired_state_is_handled_gracefully`: a session that expires mid-request is not re-created by its write.
#[tokio::test]
async fn a_session_that_expires_mid_request_is_not_recreated_by_its_write() {
    let config = SessionConfig::builder()
        .idle_lifetime(Duration::minutes(30))
        .build()
        .unwrap();
    let (manager, store, clock) = manager_at(config);
    let created = call(&manager, None, |s| async move {
        s.insert("counter", &1).await.unwrap();
        String::new()
    })
    .await;
    let pair = cookie_pair(&set_cookie(&created).unwrap());

    let slow = call(&manager, Some(&pair), move |s| async move {
        let counter = s.get::<u32>("counter").await.unwrap().unwrap();
        // The request is still running when the idle deadline passes.
        clock.advance(Duration::minutes(31));
        s.insert("counter", &(counter + 1)).await.unwrap();
        String::new()
    })
    .await;
    assert_eq!(slow.status(), StatusCode::OK);
    // No new session id, and no removal either: only the request that ends a
    // session removes its cookie.
    assert_eq!(set_cookie(&slow), None);
    // Purge the dead record: no live one may be left.
    store.delete_expired().await.unwrap();
    assert_eq!(store.records(), 0, "nothing re-created");
}
