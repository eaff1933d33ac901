//! The `CurrentSession` extractor in an axum router (feature `axum`).
#![cfg(feature = "axum")]

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use common::{cookie_pair, manager};
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use session_tower::{CurrentSession, SessionLayer};
use tower::ServiceExt;

async fn login(session: CurrentSession) -> Result<&'static str, StatusCode> {
    let fail = |_| StatusCode::INTERNAL_SERVER_ERROR;
    session.insert("user", "alice").await.map_err(fail)?;
    session.cycle_id().await.map_err(fail)?;
    Ok("logged in")
}

async fn whoami(session: CurrentSession) -> String {
    match session.get::<String>("user").await {
        Ok(Some(user)) => user,
        Ok(None) => "nobody".to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

async fn logout(session: CurrentSession) -> &'static str {
    session.destroy();
    "bye"
}

async fn optional(session: Option<CurrentSession>) -> &'static str {
    if session.is_some() {
        "with session"
    } else {
        "without session"
    }
}

fn app(manager: session_core::SessionManager) -> Router {
    let with_sessions = Router::new()
        .route("/login", post(login))
        .route("/whoami", get(whoami))
        .route("/logout", post(logout))
        .route("/optional", get(optional))
        .layer(SessionLayer::new(manager));
    // Routes merged after `layer` are not wrapped by it.
    with_sessions
        .route("/unwrapped", get(whoami))
        .route("/unwrapped-optional", get(optional))
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        builder = builder.header(COOKIE, c);
    }
    let response = app
        .clone()
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let set_cookie = response
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        set_cookie,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn login_whoami_logout() {
    let (manager, store) = manager();
    let app = app(manager);

    let (status, _, body) = call(&app, "GET", "/whoami", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "nobody"));

    let (status, set_cookie, _) = call(&app, "POST", "/login", None).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = cookie_pair(&set_cookie.expect("login sets the cookie"));

    let (_, set_cookie, body) = call(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(body, "alice");
    assert_eq!(set_cookie, None);

    let (_, set_cookie, _) = call(&app, "POST", "/logout", Some(&cookie)).await;
    assert!(
        set_cookie
            .expect("logout removes the cookie")
            .contains("Max-Age=0")
    );
    assert_eq!(store.records(), 0);

    let (_, _, body) = call(&app, "GET", "/whoami", Some(&cookie)).await;
    assert_eq!(body, "nobody", "a destroyed session stays dead");
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500_and_the_option_is_none() {
    let (manager, _store) = manager();
    let app = app(manager);

    let (status, _, body) = call(&app, "GET", "/unwrapped", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, "no SessionLayer wraps this route");

    let (_, _, body) = call(&app, "GET", "/unwrapped-optional", None).await;
    assert_eq!(body, "without session");
    let (_, _, body) = call(&app, "GET", "/optional", None).await;
    assert_eq!(body, "with session");
}
