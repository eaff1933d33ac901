//! The demo over real HTTP with a cookie jar, once per available backend.
//!
//! memory and file always run; redis, redis-cluster, postgres and mysql run when
//! their `SESSION_TEST_*` variable is set (see DESIGN.md) and fail instead of
//! skipping when `SESSION_TEST_REQUIRE` names them.

mod common;

use common::{
    Demo, browser, by_id, cart_items, csrf_token, get, login, post, raw_client, session_cookie,
};
use reqwest::header::{COOKIE, SET_COOKIE};

/// A backend under test and what it promises.
#[derive(Clone, Copy)]
struct Backend {
    /// `--backend` value.
    name: &'static str,
    /// More flags.
    extra: &'static [&'static str],
    /// Two instances over it share sessions (a shared server or directory).
    shared: bool,
    /// A destroyed session cannot be brought back by replaying its cookie
    /// (server-side sessions; a cookie session lives until its sealed deadline).
    revocable: bool,
    /// Concurrent changes to one session merge (server-side compare-and-set; a
    /// cookie session is last-response-wins in the browser).
    merges: bool,
    /// Secret keys from a key file (`--secret-key-file`): encryption at rest for a
    /// server-side backend.
    encrypted: bool,
}

impl Backend {
    async fn start(&self, more: &[&str]) -> Option<Demo> {
        let mut flags: Vec<&str> = self.extra.iter().chain(more).copied().collect();
        if self.encrypted {
            flags.extend(["--secret-key-file", common::key_file()]);
        }
        Demo::start(self.name, &flags).await
    }
}

/// One module per backend, each with every scenario.
macro_rules! backends {
    ($($module:ident => $backend:expr;)*) => {$(
        mod $module {
            use super::*;
            const BACKEND: Backend = $backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn login_cart_logout_flow() {
                super::login_cart_logout_flow(BACKEND).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cookie_attributes() {
                super::cookie_attributes(BACKEND).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn csrf_is_checked_on_every_post() {
                super::csrf_is_checked_on_every_post(BACKEND).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn forged_cookies_get_a_fresh_session() {
                super::forged_cookies_get_a_fresh_session(BACKEND).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn refreshed_reads_reissue_the_cookie_only_when_due() {
                super::refreshed_reads_reissue_the_cookie_only_when_due(BACKEND).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fifty_concurrent_additions_all_survive() {
                super::fifty_concurrent_additions(BACKEND, false).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fifty_concurrent_additions_across_two_instances() {
                super::fifty_concurrent_additions(BACKEND, true).await;
            }
        }
    )*};
}

const SERVER: Backend = Backend {
    name: "",
    extra: &[],
    shared: true,
    revocable: true,
    merges: true,
    encrypted: false,
};

backends! {
    memory => Backend { name: "memory", shared: false, ..SERVER };
    memory_encrypted => Backend { name: "memory", shared: false, encrypted: true, ..SERVER };
    file => Backend { name: "file", ..SERVER };
    file_encrypted => Backend { name: "file", encrypted: true, ..SERVER };
    redis => Backend { name: "redis", ..SERVER };
    redis_cluster => Backend { name: "redis-cluster", ..SERVER };
    postgres => Backend { name: "postgres", ..SERVER };
    mysql => Backend { name: "mysql", ..SERVER };
    cookie_encrypted => Backend { name: "cookie", shared: false, revocable: false, merges: false, ..SERVER };
    cookie_signed => Backend {
        name: "cookie",
        extra: &["--cookie-sealing", "signed"],
        shared: false,
        revocable: false,
        merges: false,
        encrypted: false,
    };
}

async fn login_cart_logout_flow(backend: Backend) {
    let Some(demo) = backend.start(&[]).await else {
        return;
    };
    let (client, jar) = browser();

    let (status, home) = get(&client, demo.at("/")).await;
    assert_eq!(status, 200);
    assert_eq!(by_id(&home, "greeting"), Some("You are not logged in."));
    assert_eq!(
        session_cookie(&jar, &demo.url),
        None,
        "browsing creates no session"
    );

    // Reading the login form stores nothing (issue 20): no session cookie.
    let (_, page) = get(&client, demo.at("/login")).await;
    assert_eq!(
        session_cookie(&jar, &demo.url),
        None,
        "the login form stores nothing"
    );
    let login_token = csrf_token(&page);

    // An anonymous cart addition starts a session; logging in rotates its id.
    let (_, cart) = get(&client, demo.at("/cart")).await;
    assert!(cart.contains(r#"id="empty""#));
    let (status, _) = post(
        &client,
        demo.at("/cart"),
        &[("csrf", &csrf_token(&cart)), ("item", "plum")],
    )
    .await;
    assert_eq!(status, 200);
    let before = session_cookie(&jar, &demo.url).expect("the anonymous cart's session");
    let (status, home) = post(
        &client,
        demo.at("/login"),
        &[("csrf", &login_token), ("username", "alice <3")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(home.contains("Signed in as <b>alice &lt;3</b>"), "{home}");
    let after = session_cookie(&jar, &demo.url).expect("the logged-in session");
    assert_ne!(before, after, "login gives the session a new id");

    // The pre-login id is dead: replaying it is a fresh, anonymous session.
    let stale = reqwest::Client::new()
        .get(demo.at("/"))
        .header(COOKIE, format!("session_id={before}"))
        .send()
        .await
        .unwrap();
    assert!(
        stale
            .text()
            .await
            .unwrap()
            .contains("You are not logged in.")
    );

    // The cart: the anonymous item came along; each addition is its own request.
    let (_, cart) = get(&client, demo.at("/cart")).await;
    assert_eq!(cart_items(&cart), [("plum".to_owned(), 1)]);
    let token = csrf_token(&cart);
    for item in ["apple", "pear", "apple"] {
        let (status, _) = post(
            &client,
            demo.at("/cart"),
            &[("csrf", &token), ("item", item)],
        )
        .await;
        assert_eq!(status, 200);
    }
    let (_, cart) = get(&client, demo.at("/cart")).await;
    assert_eq!(
        cart_items(&cart),
        [
            ("apple".to_owned(), 2),
            ("pear".to_owned(), 1),
            ("plum".to_owned(), 1)
        ]
    );
    post(
        &client,
        demo.at("/cart/remove"),
        &[("csrf", &token), ("item", "pear")],
    )
    .await;
    let (_, cart) = get(&client, demo.at("/cart")).await;
    assert_eq!(
        cart_items(&cart),
        [("apple".to_owned(), 2), ("plum".to_owned(), 1)]
    );

    // The visit counter and the expiry page.
    for expected in ["1", "2"] {
        let (_, page) = get(&client, demo.at("/counter")).await;
        assert_eq!(by_id(&page, "visits"), Some(expected));
    }
    let (_, page) = get(&client, demo.at("/session")).await;
    assert_eq!(by_id(&page, "has-expired"), Some("false"));
    assert_eq!(by_id(&page, "exists"), Some("true"));
    let expires_at = by_id(&page, "expires-at").expect("the deadline is shown");
    assert!(
        expires_at.len() >= 20 && expires_at.contains('T'),
        "{expires_at}"
    );
    assert!(page.contains("cart:apple"), "get-all shows the entries");
    assert!(
        page.contains("&quot;(hidden)&quot;"),
        "the token's entry is masked"
    );
    assert_eq!(
        page.matches(&token).count(),
        1,
        "the token is only in the logout form"
    );

    // Logout destroys the session: the cookie goes, and it is not coming back.
    let last = session_cookie(&jar, &demo.url).expect("the session cookie");
    if backend.revocable {
        assert_eq!(
            last, after,
            "a server-side session keeps its id until logout"
        );
    }
    let (status, home) = post(&client, demo.at("/logout"), &[("csrf", &token)]).await;
    assert_eq!(status, 200);
    assert!(home.contains("You are not logged in."), "{home}");
    assert_eq!(
        session_cookie(&jar, &demo.url),
        None,
        "the cookie was removed"
    );
    // A copy of the cookie taken before logout: worthless for a server-side
    // session. (A cookie session stays valid until its sealed deadline: the
    // documented price of client-side sessions, so nothing to assert there.)
    if backend.revocable {
        let replay = reqwest::Client::new()
            .get(demo.at("/cart"))
            .header(COOKIE, format!("session_id={last}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            cart_items(&replay.text().await.unwrap()),
            [],
            "a destroyed session stays dead"
        );
    }
}

/// The `Set-Cookie` value of a response (exactly one expected).
/// Write-free sliding expiry over HTTP: with refresh on and a permanent session
/// (whose refresh would send a new `Set-Cookie` with `Max-Age`), reads that gain
/// no more than the default threshold (half the idle lifetime) send no session
/// cookie — on server-side backends and on cookie sessions alike — while the
/// threshold 0 re-issues it on every read.
async fn refreshed_reads_reissue_the_cookie_only_when_due(backend: Backend) {
    for (threshold, reissued) in [("0.5", false), ("0", true)] {
        let flags = [
            "--permanent",
            "--refresh-each-request",
            "--refresh-threshold",
            threshold,
        ];
        let Some(demo) = backend.start(&flags).await else {
            return;
        };
        let (client, jar) = browser();
        login(&demo, &client, "carol").await;
        assert!(session_cookie(&jar, &demo.url).is_some());
        let raw = raw_client(jar);
        for read in 0..3 {
            // Two milliseconds at least between reads, so each refresh would move
            // the deadline past the millisecond a store or a cookie keeps.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            let response = raw.get(demo.at("/")).send().await.unwrap();
            let session_cookies = response
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .filter(|h| h.to_str().is_ok_and(|h| h.starts_with("session_id=")))
                .count();
            let page = response.text().await.unwrap();
            assert_eq!(
                by_id(&page, "greeting"),
                Some("Welcome back, carol."),
                "read {read}"
            );
            assert_eq!(
                session_cookies,
                usize::from(reissued),
                "threshold {threshold}, read {read}"
            );
        }
    }
}

fn set_cookie(response: &reqwest::Response) -> String {
    let mut all = response.headers().get_all(SET_COOKIE).iter();
    let first = all.next().expect("a Set-Cookie header");
    assert!(all.next().is_none(), "one Set-Cookie per response");
    first.to_str().unwrap().to_owned()
}

fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// Logs in through the form with a client that does not follow redirects (and
/// `extra` form fields); the login form's response and the login's (a 303).
async fn login_responses(
    demo: &Demo,
    extra: &[(&str, &str)],
) -> (reqwest::Response, reqwest::Response) {
    let (_, jar) = browser();
    let client = raw_client(jar);
    let form_response = client.get(demo.at("/login")).send().await.unwrap();
    let nonce = set_cookie(&form_response);
    // The jar took the nonce cookie; the form page of this response carries the
    // token that matches it.
    let page = client
        .get(demo.at("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token(&page);
    let mut form = vec![("csrf", token.as_str()), ("username", "bob")];
    form.extend_from_slice(extra);
    let response = client
        .post(demo.at("/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "{nonce}");
    (form_response, response)
}

async fn cookie_attributes(backend: Backend) {
    let Some(demo) = backend.start(&[]).await else {
        return;
    };
    let (form_response, response) = login_responses(&demo, &[]).await;
    // The login form sets only the CSRF nonce cookie, with the session cookie's
    // attributes; the login sets the session cookie.
    let nonce = set_cookie(&form_response);
    assert!(nonce.starts_with("session_demo_csrf="), "{nonce}");
    let header = set_cookie(&response);
    assert!(header.starts_with("session_id="), "{header}");
    for cookie in [&nonce, &header] {
        let attrs = attributes(cookie);
        for expected in ["httponly", "secure", "samesite=lax", "path=/"] {
            assert!(
                attrs.iter().any(|a| a == expected),
                "{expected} missing: {cookie}"
            );
        }
        assert!(
            !attrs
                .iter()
                .any(|a| a.starts_with("max-age") || a.starts_with("expires")),
            "a browser-session cookie unless permanent: {cookie}"
        );
    }

    // "Remember me" makes this session permanent: Max-Age appears at login.
    let (_, response) = login_responses(&demo, &[("remember", "on")]).await;
    let header = set_cookie(&response);
    let max_age = attributes(&header)
        .into_iter()
        .find_map(|a| a.strip_prefix("max-age=").map(str::to_owned))
        .unwrap_or_else(|| panic!("a permanent session has Max-Age: {header}"));
    let seconds: i64 = max_age.parse().unwrap();
    assert!(
        (86_000..=86_400).contains(&seconds),
        "the 24 h idle lifetime: {seconds}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_options_come_from_the_flags() {
    let demo = Demo::start(
        "memory",
        &[
            "--cookie-name",
            "sid",
            "--insecure-cookies",
            "--cookie-same-site",
            "strict",
            "--permanent",
            "--idle-lifetime",
            "30m",
        ],
    )
    .await
    .expect("memory is always available");
    let (form_response, response) = login_responses(&demo, &[]).await;
    let header = set_cookie(&response);
    assert!(header.starts_with("sid="), "{header}");
    let attrs = attributes(&header);
    assert!(attrs.contains(&"samesite=strict".to_owned()), "{header}");
    assert!(attrs.contains(&"httponly".to_owned()), "{header}");
    assert!(!attrs.contains(&"secure".to_owned()), "{header}");
    assert!(
        attrs.contains(&"max-age=1800".to_owned()),
        "permanent, 30 min: {header}"
    );
    let nonce = set_cookie(&form_response);
    let nonce_attrs = attributes(&nonce);
    assert!(
        nonce_attrs.contains(&"samesite=strict".to_owned()),
        "{nonce}"
    );
    assert!(!nonce_attrs.contains(&"secure".to_owned()), "{nonce}");
}

async fn csrf_is_checked_on_every_post(backend: Backend) {
    let Some(demo) = backend.start(&[]).await else {
        return;
    };
    let (client, _jar) = browser();

    // Without a session there is no token to match.
    let (status, page) = post(&client, demo.at("/login"), &[("username", "mallory")]).await;
    assert_eq!(status, 403, "{page}");

    let (_, page) = get(&client, demo.at("/login")).await;
    let token = csrf_token(&page);
    for form in [
        vec![("username", "mallory")],
        vec![("csrf", ""), ("username", "mallory")],
        vec![("csrf", "not-the-token"), ("username", "mallory")],
    ] {
        let (status, page) = post(&client, demo.at("/login"), &form).await;
        assert_eq!(status, 403, "{form:?}");
        assert!(page.contains("CSRF token"), "{page}");
    }
    let (_, home) = get(&client, demo.at("/")).await;
    assert!(
        home.contains("You are not logged in."),
        "rejected logins log nobody in"
    );

    // Another session's valid token is no good here either.
    let (other, _) = browser();
    let (_, other_page) = get(&other, demo.at("/login")).await;
    let foreign = csrf_token(&other_page);
    assert_ne!(foreign, token);
    let (status, _) = post(
        &client,
        demo.at("/cart"),
        &[("csrf", &foreign), ("item", "x")],
    )
    .await;
    assert_eq!(status, 403);

    login(&demo, &client, "alice").await;
    for (path, form) in [
        ("/cart", vec![("item", "stolen")]),
        ("/cart/remove", vec![("item", "stolen")]),
        ("/logout", vec![]),
    ] {
        let (status, _) = post(&client, demo.at(path), &form).await;
        assert_eq!(status, 403, "{path} without the token");
    }
    let (_, cart) = get(&client, demo.at("/cart")).await;
    assert_eq!(cart_items(&cart), [], "nothing was added");
    assert!(
        cart.contains("Signed in as <b>alice</b>"),
        "still logged in"
    );

    // A body that is not a form at all is a 4xx page, not a crash.
    let response = client
        .post(demo.at("/cart"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
}

async fn forged_cookies_get_a_fresh_session(backend: Backend) {
    let Some(demo) = backend.start(&[]).await else {
        return;
    };
    let valid_but_unknown = "A".repeat(43);
    let huge = "x".repeat(6000);
    let forged = [
        "",
        "garbage",
        "../../../../etc/passwd",
        "' OR '1'='1",
        "%00%ff%fe",
        valid_but_unknown.as_str(),
        huge.as_str(),
    ];
    for value in forged {
        for path in ["/", "/counter", "/cart", "/login", "/session"] {
            let response = reqwest::Client::new()
                .get(demo.at(path))
                .header(COOKIE, format!("session_id={value}"))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_eq!(status, 200, "{path} with cookie {value:.40}: {body}");
            if path == "/counter" {
                assert_eq!(by_id(&body, "visits"), Some("1"), "a fresh session");
            }
        }
    }
}

async fn fifty_concurrent_additions(backend: Backend, two_instances: bool) {
    const N: usize = 50;
    if !backend.merges {
        eprintln!(
            "SKIP {}: a client-side session keeps the last response's cookie; \
             concurrent changes do not merge (see session-cookie's README)",
            backend.name
        );
        return;
    }
    if two_instances && !backend.shared {
        eprintln!(
            "SKIP {}: two instances share no sessions on this backend",
            backend.name
        );
        return;
    }
    // The default save_attempts (16): within one instance the manager's per-session
    // queue orders the writers, so none meets a conflict; across two instances only
    // the two queues' heads race (session-bench's contention table measures the
    // attempts that takes).
    let Some(first) = backend.start(&[]).await else {
        return;
    };
    let second = if two_instances {
        Some(first.twin().await)
    } else {
        None
    };
    let (client, jar) = browser();
    login(&first, &client, "alice").await;
    let (_, cart) = get(&client, first.at("/cart")).await;
    let token = csrf_token(&cart);

    // Every request carries the same session cookie (the jar is per host, not per
    // port, so both instances see it) and adds a different item.
    let adder = raw_client(jar.clone());
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let demo = match &second {
                Some(second) if i % 2 == 1 => second,
                _ => &first,
            };
            let url = demo.at("/cart");
            let adder = adder.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let item = format!("item-{i:02}");
                let response = adder
                    .post(url)
                    .form(&[("csrf", token.as_str()), ("item", item.as_str())])
                    .send()
                    .await
                    .expect("the demo answers");
                (
                    response.status().as_u16(),
                    response.text().await.unwrap_or_default(),
                )
            })
        })
        .collect();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 303, "every addition succeeds: {body}");
    }

    for demo in std::iter::once(&first).chain(second.as_ref()) {
        let (_, cart) = get(&client, demo.at("/cart")).await;
        let items = cart_items(&cart);
        let expected: Vec<_> = (0..N).map(|i| (format!("item-{i:02}"), 1)).collect();
        assert_eq!(
            items, expected,
            "all {N} concurrent additions are in the cart"
        );
        assert!(cart.contains("Signed in as <b>alice</b>"));
    }
}
