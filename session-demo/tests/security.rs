//! Security review (HARDENING.md) of the demo's HTTP surface: every response is
//! `Cache-Control: no-store` (pages carry CSRF tokens, carts and `Set-Cookie`), no
//! page ever shows the session cookie's value, and login rotates the CSRF token
//! together with the session id.

mod common;

use common::{Demo, browser, cart_items, csrf_token, get, post, raw_client, session_cookie};
use reqwest::header::CACHE_CONTROL;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_is_no_store_and_no_page_shows_the_cookie() {
    let demo = Demo::start("memory", &[])
        .await
        .expect("memory is always available");
    let (_, jar) = browser();
    let client = raw_client(jar.clone());

    // Log in, so the session has a cookie, a user and a CSRF token.
    let page = client
        .get(demo.at("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token(&page);
    let response = client
        .post(demo.at("/login"))
        .form(&[("csrf", token.as_str()), ("username", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = session_cookie(&jar, &demo.url).expect("a session cookie after login");

    let mut checked = 0;
    for path in [
        "/",
        "/login",
        "/cart",
        "/counter",
        "/session",
        "/no-such-page",
    ] {
        let response = client.get(demo.at(path)).send().await.unwrap();
        let cache = response.headers().get(CACHE_CONTROL).cloned();
        assert_eq!(
            cache.as_ref().and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "GET {path}"
        );
        let body = response.text().await.unwrap();
        assert!(!body.contains(&cookie), "GET {path} shows the cookie value");
        checked += 1;
    }
    // A rejected form (no CSRF token) and the logout redirect too.
    for (path, form) in [
        ("/cart", vec![("item", "apple")]),
        ("/logout", vec![("csrf", token.as_str())]),
    ] {
        let response = client.post(demo.at(path)).form(&form).send().await.unwrap();
        assert_eq!(
            response
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "POST {path} ({})",
            response.status()
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
}

/// Security review (HARDENING.md, finding S6): the CSRF token survived login. An
/// attacker who plants a pre-login session (cookie tossing from a sibling subdomain,
/// or a shared computer) knows its token; after the victim logged in — new id, same
/// data — that token still validated the victim's forms. Login now draws a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_rotates_the_csrf_token() {
    let demo = Demo::start("memory", &[])
        .await
        .expect("memory is always available");
    let (client, _jar) = browser();
    let (_, page) = get(&client, demo.at("/login")).await;
    let planted = csrf_token(&page);
    let (status, home) = post(
        &client,
        demo.at("/login"),
        &[("csrf", planted.as_str()), ("username", "alice")],
    )
    .await;
    assert_eq!(status, 200, "{home}");
    assert!(home.contains("Signed in as <b>alice</b>"), "{home}");
    let fresh = csrf_token(&home);
    assert_ne!(fresh, planted, "login draws a new CSRF token");

    // The pre-login token is dead; the new one works.
    let (status, _) = post(
        &client,
        demo.at("/cart"),
        &[("csrf", planted.as_str()), ("item", "forged")],
    )
    .await;
    assert_eq!(status, 403, "the planted token no longer validates");
    let (status, _) = post(
        &client,
        demo.at("/cart"),
        &[("csrf", fresh.as_str()), ("item", "apple")],
    )
    .await;
    assert_eq!(status, 200);
    let (_, cart) = get(&client, demo.at("/cart")).await;
    assert_eq!(cart_items(&cart), [("apple".to_owned(), 1)]);
}
