//! Security review (HARDENING.md): the `Set-Cookie` headers the layer writes.
//!
//! Every cookie the layer sends for a session — the new session's, the one after a
//! login rotation, the removal at logout — carries the same scoping and protection
//! attributes. A removal cookie with another `Path` or `Domain` would not delete the
//! browser's cookie (the old token would stay in the jar), and a rotated cookie without
//! `Secure` / `HttpOnly` would undo the defaults exactly at login.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response};
use session_core::{SameSite, Session, SessionConfig, SessionManager};
use session_memory::MemoryStore;
use session_tower::SessionLayer;
use tower::{Layer, ServiceExt, service_fn};

/// The `name=value` part of a `Set-Cookie` header, to send back as `Cookie`.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

type Body = String;

/// What a request's handler does with its session.
#[derive(Clone, Copy)]
enum Action {
    Write,
    Login,
    Logout,
}

async fn request(manager: &SessionManager, cookie: Option<&str>, action: Action) -> String {
    let service = SessionLayer::new(manager.clone()).layer(service_fn(
        move |req: Request<Body>| async move {
            let session = req.extensions().get::<Session>().unwrap().clone();
            match action {
                Action::Write => session.insert("n", &1).await.unwrap(),
                Action::Login => {
                    session.insert("user", "alice").await.unwrap();
                    session.cycle_id().await.unwrap();
                }
                Action::Logout => session.destroy(),
            }
            Ok::<_, Infallible>(Response::new(Body::new()))
        },
    ));
    let mut builder = Request::builder().uri("/");
    if let Some(c) = cookie {
        builder = builder.header(COOKIE, c);
    }
    let response = service
        .oneshot(builder.body(Body::new()).unwrap())
        .await
        .unwrap();
    let mut all = response.headers().get_all(SET_COOKIE).iter();
    let header = all
        .next()
        .expect("a Set-Cookie")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(all.next().is_none(), "one Set-Cookie per response");
    header
}

/// The attributes of a `Set-Cookie` value, lower-cased, without `Max-Age`/`Expires`.
fn scoping(header: &str) -> Vec<String> {
    let mut attrs: Vec<String> = header
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| !a.starts_with("max-age") && !a.starts_with("expires"))
        .collect();
    attrs.sort();
    attrs
}

fn has_lifetime(header: &str) -> bool {
    header.split(';').skip(1).any(|a| {
        let a = a.trim().to_ascii_lowercase();
        a.starts_with("max-age") || a.starts_with("expires")
    })
}

/// Create, login rotation, logout: the three headers, checked against `expected`
/// (the sorted scoping attributes).
async fn check(config: SessionConfig, expected: &[&str]) {
    let permanent = config.permanent();
    let name = config.cookie_name().to_owned();
    let manager = SessionManager::new(Arc::new(MemoryStore::new()), config);

    let created = request(&manager, None, Action::Write).await;
    let pair = cookie_pair(&created);
    let value = pair.strip_prefix(&format!("{name}=")).unwrap();
    assert_eq!(value.len(), 43, "a 256-bit token: {created}");
    let rotated = request(&manager, Some(&pair), Action::Login).await;
    assert_ne!(cookie_pair(&rotated), pair, "login gives a new id");
    let removed = request(&manager, Some(&cookie_pair(&rotated)), Action::Logout).await;
    assert!(removed.starts_with(&format!("{name}=;")), "{removed}");

    for header in [&created, &rotated, &removed] {
        assert_eq!(scoping(header), expected, "{header}");
    }
    assert_eq!(has_lifetime(&created), permanent, "{created}");
    assert_eq!(has_lifetime(&rotated), permanent, "{rotated}");
    // The removal expires the cookie now, whatever the session's kind.
    assert!(removed.contains("Max-Age=0"), "{removed}");
    let expires = removed
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Expires="))
        .unwrap_or_else(|| panic!("an Expires in the past: {removed}"));
    let year: i32 = expires
        .split(' ')
        .find_map(|w| w.parse().ok().filter(|y| *y > 1900))
        .unwrap_or_else(|| panic!("a year in {expires}"));
    assert!(
        year <= session_core::time::OffsetDateTime::now_utc().year(),
        "{removed}"
    );
}

#[tokio::test]
async fn defaults_on_create_rotation_and_removal() {
    // Host-only (no Domain), HttpOnly, Secure, SameSite=Lax, Path=/; a browser-
    // session cookie (no Max-Age) since permanent is off.
    check(
        SessionConfig::default(),
        &["httponly", "path=/", "samesite=lax", "secure"],
    )
    .await;
}

#[tokio::test]
async fn configured_attributes_on_create_rotation_and_removal() {
    let config = SessionConfig::builder()
        .cookie_name("__Secure-sid")
        .same_site(SameSite::Strict)
        .path("/app")
        .domain(Some("example.test".to_owned()))
        .partitioned(true)
        .permanent(true)
        .build()
        .unwrap();
    check(
        config,
        &[
            "domain=example.test",
            "httponly",
            "partitioned",
            "path=/app",
            "samesite=strict",
            "secure",
        ],
    )
    .await;
}
