//! Security review (HARDENING.md) of the demo's HTTP surface: every response is
//! `Cache-Control: no-store` (pages carry CSRF tokens, carts and `Set-Cookie`), no
//! page ever shows the session cookie's value, and login rotates the CSRF token
//! together with the session id. And the findings of the outside review (issue 20):
//! anonymous visits store nothing, a half-sent request is cut off, bodies are
//! bounded, a too-large session is a 413 that keeps the old session, and secrets
//! never travel on the command line.

mod common;

use std::time::{Duration, Instant};

use common::{
    Demo, browser, by_id, cart_items, csrf_token, files_under, get, login, post, raw_client,
    record_files, session_cookie,
};
use reqwest::header::{CACHE_CONTROL, COOKIE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        "/admin",
        "/api/ping",
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
    assert_eq!(checked, 10);
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

/// Issue 20, finding 9: every anonymous `GET /login` stored a session (two files on
/// the file backend: the record and its lock), with no cap. The form's CSRF token is
/// now a signed double-submit token: nothing is stored until someone logs in, and
/// the token is still checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_login_forms_store_nothing_and_csrf_still_holds() {
    let demo = Demo::start("file", &[])
        .await
        .expect("file is always available");
    // Visitors without cookies (a crawler), and one browser coming back.
    for _ in 0..20 {
        let (status, _) = get(&reqwest::Client::new(), demo.at("/login")).await;
        assert_eq!(status, 200);
    }
    let (client, jar) = browser();
    for _ in 0..10 {
        get(&client, demo.at("/login")).await;
        get(&client, demo.at("/cart")).await;
    }
    assert_eq!(
        files_under(demo.dir()),
        Vec::<std::path::PathBuf>::new(),
        "anonymous visits left files in the store"
    );
    assert_eq!(session_cookie(&jar, &demo.url), None);

    // CSRF is enforced all the same.
    let (_, page) = get(&client, demo.at("/login")).await;
    let token = csrf_token(&page);
    let (other, _) = browser();
    let (_, other_page) = get(&other, demo.at("/login")).await;
    let foreign = csrf_token(&other_page);
    assert_ne!(foreign, token);
    let well_formed = "A".repeat(43);
    for form in [
        vec![("username", "mallory")],
        vec![("csrf", ""), ("username", "mallory")],
        vec![("csrf", well_formed.as_str()), ("username", "mallory")],
        vec![("csrf", foreign.as_str()), ("username", "mallory")],
    ] {
        let (status, page) = post(&client, demo.at("/login"), &form).await;
        assert_eq!(status, 403, "{form:?}: {page}");
    }
    // The right token without the nonce cookie it signs is refused too.
    let (status, _) = post(
        &reqwest::Client::new(),
        demo.at("/login"),
        &[("csrf", token.as_str()), ("username", "mallory")],
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        record_files(demo.dir()).is_empty(),
        "a refused login stored something"
    );

    let (status, home) = post(
        &client,
        demo.at("/login"),
        &[("csrf", token.as_str()), ("username", "alice")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(home.contains("Signed in as <b>alice</b>"), "{home}");
    assert_eq!(
        record_files(demo.dir()).len(),
        1,
        "the login is the one record"
    );
}

/// Issue 20, finding 11: nothing bounded the time to send a request header (axum's
/// `serve` runs hyper without a timer), so a client could hold a connection with
/// half a header for as long as it liked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_header_is_cut_off() {
    let demo = Demo::start("memory", &["--header-read-timeout", "1s"])
        .await
        .expect("memory is always available");
    let mut stream = tokio::net::TcpStream::connect(demo.server.addr())
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    let elapsed = started.elapsed();
    assert!(read.is_ok(), "the connection is still open after 10 s");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    // A whole request on a new connection is served as usual.
    let (status, _) = get(&reqwest::Client::new(), demo.at("/")).await;
    assert_eq!(status, 200);
}

/// Issue 20, finding 11: request bodies had neither a time limit nor a size limit
/// below axum's 2 MB default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_bounded_in_size_and_time() {
    let demo = Demo::start(
        "memory",
        &["--max-body-bytes", "1024", "--body-read-timeout", "1s"],
    )
    .await
    .expect("memory is always available");
    let (client, _jar) = browser();
    let (_, page) = get(&client, demo.at("/cart")).await;
    let token = csrf_token(&page);
    let big = "x".repeat(4096);
    let (status, page) = post(
        &client,
        demo.at("/cart"),
        &[("csrf", token.as_str()), ("item", big.as_str())],
    )
    .await;
    assert_eq!(status, 413, "{page}");
    assert!(
        page.contains("larger than this server accepts (1024 bytes)"),
        "{page}"
    );
    // Just under the limit is an ordinary form (here: a too-long item name, 400).
    let small = "y".repeat(900);
    let (status, _) = post(
        &client,
        demo.at("/cart"),
        &[("csrf", token.as_str()), ("item", small.as_str())],
    )
    .await;
    assert_eq!(status, 400);

    // A body that stops halfway: 408 once the body timeout has passed.
    let mut stream = tokio::net::TcpStream::connect(demo.server.addr())
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /cart HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\nitem=slow",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream))
        .await
        .expect("no answer within 10 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Reads a response head (or whatever arrives before the connection closes).
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        let n = stream.read(&mut buffer).await.unwrap_or(0);
        answer.extend_from_slice(&buffer[..n]);
        if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
            return String::from_utf8_lossy(&answer).into_owned();
        }
    }
}

/// Adds items named `NN-long-item-name-…` until the demo refuses one; returns the
/// refusal's status and page and the items added before it.
async fn fill_the_cart(
    demo: &Demo,
    client: &reqwest::Client,
    token: &str,
    max: usize,
) -> (u16, String, Vec<String>) {
    let mut added = Vec::new();
    for i in 0..max {
        let item = format!("{i:02}-{}", "long-item-name-".repeat(4));
        let (status, page) = post(
            client,
            demo.at("/cart"),
            &[("csrf", token), ("item", item.as_str())],
        )
        .await;
        if status != 200 {
            return (status, page, added);
        }
        added.push(item);
    }
    panic!("{max} items fit: no limit was reached");
}

/// Issue 20, finding 12: a session over `--max-payload-bytes` was a 500 page. It is a
/// 413 that says what happened, and the session is the one before the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_large_session_is_a_413_and_the_session_survives() {
    let demo = Demo::start("memory", &["--max-payload-bytes", "1500"])
        .await
        .expect("memory is always available");
    let (client, _jar) = browser();
    login(&demo, &client, "alice").await;
    let (_, cart) = get(&client, demo.at("/cart")).await;
    let token = csrf_token(&cart);
    let (status, page, added) = fill_the_cart(&demo, &client, &token, 60).await;
    assert_eq!(status, 413, "{page}");
    assert!(
        page.contains("more than the server&#39;s limit of 1500 bytes"),
        "{page}"
    );
    assert!(page.contains("Your session is as it was before"), "{page}");
    assert!(added.len() >= 5, "only {} items fit", added.len());
    let (_, cart) = get(&client, demo.at("/cart")).await;
    let names: Vec<String> = cart_items(&cart).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, added, "the cart before the refused item");
    assert!(cart.contains("Signed in as <b>alice</b>"));
    // Making room works again.
    let (status, _) = post(
        &client,
        demo.at("/cart/remove"),
        &[("csrf", token.as_str()), ("item", added[0].as_str())],
    )
    .await;
    assert_eq!(status, 200);
}

/// Issue 20, finding 12, cookie backend: a session over the 4096 bytes of a cookie
/// was a 500 page. It is a 413, and the browser keeps its previous cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_large_cookie_session_is_a_413_and_the_cookie_survives() {
    let demo = Demo::start("cookie", &[])
        .await
        .expect("cookie is always available");
    let (client, jar) = browser();
    login(&demo, &client, "alice").await;
    let (_, cart) = get(&client, demo.at("/cart")).await;
    let token = csrf_token(&cart);
    let (status, page, added) = fill_the_cart(&demo, &client, &token, 200).await;
    assert_eq!(status, 413, "{page}");
    assert!(
        page.contains("more than the 4096 bytes browsers keep"),
        "{page}"
    );
    let cookie = session_cookie(&jar, &demo.url).expect("the previous cookie");
    let (_, cart) = get(&client, demo.at("/cart")).await;
    let names: Vec<String> = cart_items(&cart).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, added, "the cart before the refused item");
    assert_eq!(session_cookie(&jar, &demo.url), Some(cookie));
}

/// Roles: `--admin-users` log in as `admin`, everyone else as `user`; `/admin` is
/// 403 for anyone but an admin; a role change rotates the session id (and the CSRF
/// token), and the old id is dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_guard_the_admin_page_and_a_role_change_rotates_the_id() {
    let demo = Demo::start("memory", &["--admin-users", "root,boss"])
        .await
        .expect("memory is always available");
    let (status, page) = get(&reqwest::Client::new(), demo.at("/admin")).await;
    assert_eq!(status, 403, "{page}");

    let (alice, _) = browser();
    let home = login(&demo, &alice, "alice").await;
    assert_eq!(by_id(&home, "role"), Some("user"));
    assert!(!home.contains("switch-role"), "a user has no role to take");
    let (status, _) = get(&alice, demo.at("/admin")).await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &alice,
        demo.at("/role"),
        &[("csrf", csrf_token(&home).as_str()), ("role", "admin")],
    )
    .await;
    assert_eq!(status, 403, "only the configured users may be admin");

    let (root, jar) = browser();
    let home = login(&demo, &root, "root").await;
    assert_eq!(by_id(&home, "role"), Some("admin"));
    let (status, page) = get(&root, demo.at("/admin")).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"id="admin""#), "{page}");

    // Dropping to `user`: new id, the old one dead, the old CSRF token too.
    let admin_id = session_cookie(&jar, &demo.url).unwrap();
    let admin_token = csrf_token(&home);
    let (status, home) = post(
        &root,
        demo.at("/role"),
        &[("csrf", admin_token.as_str()), ("role", "user")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_id(&home, "role"), Some("user"));
    let user_id = session_cookie(&jar, &demo.url).unwrap();
    assert_ne!(user_id, admin_id, "a role change rotates the session id");
    let replay = reqwest::Client::new()
        .get(demo.at("/admin"))
        .header(COOKIE, format!("session_id={admin_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 403, "the admin session's old id is dead");
    let (status, _) = get(&root, demo.at("/admin")).await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &root,
        demo.at("/role"),
        &[("csrf", admin_token.as_str()), ("role", "admin")],
    )
    .await;
    assert_eq!(status, 403, "the token from before the change is dead");

    // Taking the role back: another new id, and the admin page again.
    let (status, home) = post(
        &root,
        demo.at("/role"),
        &[("csrf", csrf_token(&home).as_str()), ("role", "admin")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_id(&home, "role"), Some("admin"));
    assert_ne!(session_cookie(&jar, &demo.url).unwrap(), user_id);
    let (status, _) = get(&root, demo.at("/admin")).await;
    assert_eq!(status, 200);
}

/// Issue 20, finding 8: secrets come from `SESSION_SECRET_KEYS` or a file, never a
/// flag; the real binary refuses `--secret-key`, reads the variable, and never
/// echoes a bad key.
#[test]
fn the_binary_takes_secrets_only_from_the_environment_or_a_file() {
    let binary = env!("CARGO_BIN_EXE_session-demo");
    let run = |args: &[&str], keys: Option<&str>| {
        let mut command = std::process::Command::new(binary);
        command
            .args(["--backend", "memory", "--port", "0"])
            .args(args)
            .env_remove("SESSION_SECRET_KEYS")
            .env_remove("SESSION_SECRET_KEY_FILE");
        if let Some(keys) = keys {
            command.env("SESSION_SECRET_KEYS", keys);
        }
        // Every case fails at start, before listening.
        let output = command.output().expect("the binary runs");
        assert!(!output.status.success(), "{args:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let secret = "R3VhcmQtdGhpcy1zZWNyZXQtOWY4ZTdkNmM1YjRhMzkyODE3MDY=";
    let stderr = run(&["--secret-key", &format!("k:{secret}")], None);
    assert!(
        stderr.contains("unexpected argument '--secret-key'"),
        "{stderr}"
    );

    // The variable is read: a bad key there stops the start without being echoed.
    let stderr = run(
        &[],
        Some("k:Tr0ub4dor-not-base64-9f8e7d6c5b4a39281706f5e4d3c2"),
    );
    assert!(stderr.contains("invalid secret keys: key 1"), "{stderr}");
    assert!(!stderr.contains("Tr0ub4dor"), "{stderr}");

    // Both sources at once is an error (which one wins would be a trap).
    let stderr = run(
        &["--secret-key-file", common::key_file()],
        Some(&format!("k:{secret}")),
    );
    assert!(stderr.contains("not both"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
}
