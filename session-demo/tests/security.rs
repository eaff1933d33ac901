//! Security review (HARDENING.md) of the demo's HTTP surface: every response is
//! `Cache-Control: no-store` (pages carry CSRF tokens, carts and `Set-Cookie`), and no
//! page ever shows the session cookie's value.

mod common;

use common::{Demo, browser, csrf_token, raw_client, session_cookie};
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
