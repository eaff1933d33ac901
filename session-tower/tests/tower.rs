//! The layer through plain tower: `ServiceExt::oneshot` over `service_fn` handlers.

mod common;

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use common::{Body, cookie_pair, get, manager, session_of, set_cookie};
use http::header::{COOKIE, VARY};
use http::{HeaderValue, Request, Response, StatusCode};
use session_core::{SessionConfig, SessionManager};
use session_tower::{Error, SessionLayer, StatusResponse};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A handler that counts visits in the session and answers with the count.
async fn count_visits(request: Request<Body>) -> Result<Response<Body>, Infallible> {
    let session = session_of(&request);
    let n = session.get::<u64>("n").await.unwrap().unwrap_or(0) + 1;
    session.insert("n", &n).await.unwrap();
    Ok(Response::new(n.to_string()))
}

#[tokio::test]
async fn a_session_round_trips_through_the_cookie() {
    let (manager, store) = manager();
    let service = SessionLayer::new(manager).layer(service_fn(count_visits));

    let first = service.clone().oneshot(get(None)).await.unwrap();
    assert_eq!(first.body(), "1");
    let header = set_cookie(&first).expect("a new session sets its cookie");
    assert!(header.starts_with("session_id="), "{header}");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(
            header.contains(attribute),
            "{attribute} missing in {header}"
        );
    }
    assert!(!header.contains("Max-Age"), "not permanent: {header}");

    let second = service
        .clone()
        .oneshot(get(Some(&cookie_pair(&header))))
        .await
        .unwrap();
    assert_eq!(second.body(), "2");
    assert_eq!(set_cookie(&second), None, "same id: nothing to set");
    assert_eq!(store.records(), 1);
}

#[tokio::test]
async fn an_untouched_session_costs_no_store_call_and_sets_no_cookie() {
    let (manager, store) = manager();
    let service = SessionLayer::new(manager).layer(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("static")))
    }));
    let response = service
        .oneshot(get(Some("session_id=abc; other=1")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(store.loads.load(Ordering::SeqCst), 0);
    assert_eq!(store.saves.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn garbage_cookies_are_a_fresh_session_not_an_error() {
    let (manager, _store) = manager();
    let service = SessionLayer::new(manager).layer(service_fn(count_visits));
    let garbage = [
        "session_id=",
        "session_id=../../etc/passwd",
        "session_id=' OR 1=1 --",
        "session_id=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "session_id=\"quoted\"; session_id=twice",
        "=;;;=;session_id",
    ];
    for value in garbage {
        let response = service.clone().oneshot(get(Some(value))).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{value}");
        assert_eq!(response.body(), "1", "fresh session for {value}");
        let header = set_cookie(&response).expect("the fresh session's cookie");
        assert!(
            header.starts_with("session_id=") && header.len() > 50,
            "{header}"
        );
    }

    let huge = format!("session_id={}", "x".repeat(64 * 1024));
    let response = service.clone().oneshot(get(Some(&huge))).await.unwrap();
    assert_eq!(response.body(), "1");

    // Bytes that are not UTF-8 do not hide the other cookies of the header.
    let first = service.clone().oneshot(get(None)).await.unwrap();
    let pair = cookie_pair(&set_cookie(&first).unwrap());
    let mut bytes = b"junk=\xff\xfe; ".to_vec();
    bytes.extend_from_slice(pair.as_bytes());
    let mut request = get(None);
    request
        .headers_mut()
        .insert(COOKIE, HeaderValue::from_bytes(&bytes).unwrap());
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.body(), "2");
}

#[tokio::test]
async fn cookies_split_over_several_headers_are_found() {
    let (manager, _store) = manager();
    let service = SessionLayer::new(manager).layer(service_fn(count_visits));
    let first = service.clone().oneshot(get(None)).await.unwrap();
    let pair = cookie_pair(&set_cookie(&first).unwrap());

    let mut request = get(Some("theme=dark; lang=en"));
    request
        .headers_mut()
        .append(COOKIE, HeaderValue::from_str(&pair).unwrap());
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.body(), "2");
}

#[tokio::test]
async fn destroy_removes_the_cookie() {
    let (manager, store) = manager();
    let service = SessionLayer::new(manager.clone()).layer(service_fn(count_visits));
    let first = service.oneshot(get(None)).await.unwrap();
    let pair = cookie_pair(&set_cookie(&first).unwrap());

    let logout = SessionLayer::new(manager).layer(service_fn(|req: Request<Body>| async move {
        session_of(&req).destroy();
        Ok::<_, Infallible>(Response::new(Body::new()))
    }));
    let response = logout.oneshot(get(Some(&pair))).await.unwrap();
    let header = set_cookie(&response).expect("a removal cookie");
    assert!(header.starts_with("session_id=;"), "{header}");
    assert!(header.contains("Max-Age=0"), "{header}");
    assert_eq!(store.records(), 0);
}

/// A handler that writes to the session, then answers with `status`.
fn writes_then_answers(
    status: StatusCode,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(move |req: Request<Body>| async move {
        session_of(&req).insert("key", "value").await.unwrap();
        let mut response = Response::new(Body::from("handler body"));
        *response.status_mut() = status;
        Ok::<_, Infallible>(response)
    })
}

#[tokio::test]
async fn a_server_error_does_not_save_by_default() {
    let (manager, store) = manager();
    let service = SessionLayer::new(manager).layer(writes_then_answers(StatusCode::BAD_GATEWAY));
    let response = service.oneshot(get(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.body(), "handler body");
    assert_eq!(set_cookie(&response), None);
    assert_eq!(store.records(), 0);
    assert_eq!(store.saves.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_error_saves_when_configured() {
    let (manager, store) = manager();
    let service = SessionLayer::new(manager)
        .save_on_server_error(true)
        .layer(writes_then_answers(StatusCode::INTERNAL_SERVER_ERROR));
    let response = service.oneshot(get(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookie(&response).is_some());
    assert_eq!(store.records(), 1);
}

#[tokio::test]
async fn client_errors_still_save() {
    let (manager, store) = manager();
    let service = SessionLayer::new(manager).layer(writes_then_answers(StatusCode::FORBIDDEN));
    let response = service.oneshot(get(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&response).is_some());
    assert_eq!(store.records(), 1);
}

#[tokio::test]
async fn a_store_error_is_a_500_with_nothing_written() {
    let (manager, store) = manager();
    store.fail_writes.store(true, Ordering::SeqCst);
    let service = SessionLayer::new(manager).layer(writes_then_answers(StatusCode::OK));
    let response = service.oneshot(get(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.body(), "", "the handler's response is discarded");
    assert_eq!(set_cookie(&response), None);
    assert_eq!(store.records(), 0);
}

#[tokio::test]
async fn a_store_error_on_an_existing_session_keeps_the_old_data() {
    let (manager, store) = manager();
    let service = SessionLayer::new(manager).layer(service_fn(count_visits));
    let first = service.clone().oneshot(get(None)).await.unwrap();
    let pair = cookie_pair(&set_cookie(&first).unwrap());

    store.fail_writes.store(true, Ordering::SeqCst);
    let failed = service.clone().oneshot(get(Some(&pair))).await.unwrap();
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);

    store.fail_writes.store(false, Ordering::SeqCst);
    let next = service.oneshot(get(Some(&pair))).await.unwrap();
    assert_eq!(
        next.body(),
        "2",
        "the failed request's change was not stored"
    );
}

#[tokio::test]
async fn the_error_response_is_configurable() {
    let (manager, store) = manager();
    store.fail_writes.store(true, Ordering::SeqCst);

    let status_only = SessionLayer::new(manager.clone())
        .error_response(StatusResponse(StatusCode::SERVICE_UNAVAILABLE))
        .layer(writes_then_answers(StatusCode::OK));
    let response = status_only.oneshot(get(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    let rendered = SessionLayer::new(manager)
        .error_response(|error: &Error| {
            let retryable = matches!(
                error,
                Error::Session(session_core::Error::Backend {
                    retryable: true,
                    ..
                })
            );
            let mut response = Response::new(format!("retry: {retryable}"));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        })
        .layer(writes_then_answers(StatusCode::OK));
    let response = rendered.oneshot(get(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.body(), "retry: true");
}

#[tokio::test]
async fn a_session_over_the_payload_limit_is_an_error_response() {
    let (_, store) = manager();
    let config = SessionConfig::builder()
        .max_payload_bytes(64)
        .build()
        .unwrap();
    let manager = SessionManager::new(store.clone(), config);
    let service = SessionLayer::new(manager).layer(service_fn(|req: Request<Body>| async move {
        session_of(&req)
            .insert("big", &"x".repeat(1000))
            .await
            .unwrap();
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    }));
    let response = service.oneshot(get(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(store.records(), 0);
}

#[tokio::test]
async fn an_inner_service_error_passes_through_unsaved() {
    let (manager, store) = manager();
    let service = SessionLayer::new(manager).layer(service_fn(|req: Request<Body>| async move {
        session_of(&req).insert("k", &1).await.unwrap();
        Err::<Response<Body>, _>("inner failure")
    }));
    let error = service.oneshot(get(None)).await.unwrap_err();
    assert_eq!(error, "inner failure");
    assert_eq!(store.records(), 0);
}

#[tokio::test]
async fn login_rotation_sets_a_new_cookie_and_kills_the_old_one() {
    let (manager, store) = manager();
    let visits = SessionLayer::new(manager.clone()).layer(service_fn(count_visits));
    let first = visits.clone().oneshot(get(None)).await.unwrap();
    let old = cookie_pair(&set_cookie(&first).unwrap());

    let login = SessionLayer::new(manager).layer(service_fn(|req: Request<Body>| async move {
        let session = session_of(&req);
        session.insert("user", "alice").await.unwrap();
        session.cycle_id().await.unwrap();
        Ok::<_, Infallible>(Response::new(Body::new()))
    }));
    let response = login.oneshot(get(Some(&old))).await.unwrap();
    let new = cookie_pair(&set_cookie(&response).expect("the new id"));
    assert_ne!(new, old);
    assert_eq!(store.records(), 1);

    let with_new = visits.clone().oneshot(get(Some(&new))).await.unwrap();
    assert_eq!(with_new.body(), "2", "the data moved to the new id");
    let with_old = visits.oneshot(get(Some(&old))).await.unwrap();
    assert_eq!(with_old.body(), "1", "the old id is dead");
}

fn vary(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all(VARY)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// A response made with the session depends on the cookie: shared caches must key
/// it by the cookie (`Vary: Cookie`), whether the session was read, written or
/// destroyed; one that never touched the session is left alone.
#[tokio::test]
async fn responses_that_used_the_session_vary_on_cookie() {
    let (manager, _store) = manager();
    let reads =
        SessionLayer::new(manager.clone()).layer(service_fn(|req: Request<Body>| async move {
            let n = session_of(&req).get::<u64>("n").await.unwrap();
            Ok::<_, Infallible>(Response::new(format!("{n:?}")))
        }));
    let first = reads.oneshot(get(None)).await.unwrap();
    assert_eq!(
        set_cookie(&first),
        None,
        "a read of a new session saves nothing"
    );
    assert_eq!(vary(&first), ["Cookie"]);

    let writes = SessionLayer::new(manager.clone()).layer(service_fn(count_visits));
    assert_eq!(vary(&writes.oneshot(get(None)).await.unwrap()), ["Cookie"]);

    let destroys =
        SessionLayer::new(manager.clone()).layer(service_fn(|req: Request<Body>| async move {
            session_of(&req).destroy();
            Ok::<_, Infallible>(Response::new(Body::new()))
        }));
    assert_eq!(
        vary(&destroys.oneshot(get(None)).await.unwrap()),
        ["Cookie"]
    );

    let untouched = SessionLayer::new(manager).layer(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("static")))
    }));
    assert!(vary(&untouched.oneshot(get(None)).await.unwrap()).is_empty());
}

/// The handler's own `Vary` is kept, and `Cookie` is added once, not again when the
/// handler named it already (in any case) or varies on everything.
#[tokio::test]
async fn vary_cookie_is_added_to_the_handlers_vary_once() {
    for (handler_vary, expected) in [
        (Some("Accept-Encoding"), vec!["Accept-Encoding", "Cookie"]),
        (
            Some("accept-encoding, cookie"),
            vec!["accept-encoding, cookie"],
        ),
        (Some("*"), vec!["*"]),
        (None, vec!["Cookie"]),
    ] {
        let (manager, _store) = manager();
        let service =
            SessionLayer::new(manager).layer(service_fn(move |req: Request<Body>| async move {
                session_of(&req).insert("k", "v").await.unwrap();
                let mut response = Response::new(Body::new());
                if let Some(v) = handler_vary {
                    response
                        .headers_mut()
                        .insert(VARY, HeaderValue::from_static(v));
                }
                Ok::<_, Infallible>(response)
            }));
        let response = service.oneshot(get(None)).await.unwrap();
        assert_eq!(vary(&response), expected, "{handler_vary:?}");
    }
}

/// The error response the layer sends when saving fails was made with the session
/// too.
#[tokio::test]
async fn the_error_response_varies_on_cookie() {
    let (manager, store) = manager();
    store.fail_writes.store(true, Ordering::SeqCst);
    let service = SessionLayer::new(manager).layer(writes_then_answers(StatusCode::OK));
    let response = service.oneshot(get(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(vary(&response), ["Cookie"]);
}
