//! The demo in a real browser: headless Chromium driven through chromedriver
//! (WebDriver) through the login form (which stores nothing until the login), cart,
//! reload, the rate-limited API up to its 429, the admin page (403 for a user, a new
//! session id at a role change) and logout, with screenshots kept as artifacts
//! (`target/tmp/session-demo-browser/`).
//!
//! Needs the Debian packages `chromium` and `chromium-driver`
//! (`scripts/install-browser.sh`). Without them the test prints a skip line, unless
//! `SESSION_TEST_REQUIRE` names `browser`: then it fails.

mod common;
mod webdriver;

use std::path::{Path, PathBuf};

use common::{Demo, required};
use webdriver::{Browser, Driver};

/// A program from `variable`, else the Debian path.
fn program(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_cart_reload_logout_in_chromium() {
    let chromium = program("SESSION_TEST_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = program("SESSION_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let missing: Vec<_> = [&chromium, &chromedriver]
        .into_iter()
        .filter(|p| !p.is_file())
        .collect();
    if !missing.is_empty() {
        let message = format!(
            "{missing:?} not found: install the Debian packages chromium and chromium-driver \
             (scripts/install-browser.sh), or point SESSION_TEST_CHROMIUM / \
             SESSION_TEST_CHROMEDRIVER at them"
        );
        assert!(
            !required("browser"),
            "SESSION_TEST_REQUIRE names browser, but {message}"
        );
        eprintln!("SKIP browser: {message}");
        return;
    }

    // Default cookie options, Secure included: Chromium treats http://127.0.0.1 as
    // a secure context and keeps Secure cookies from it.
    let demo = Demo::start(
        "memory",
        &["--admin-users", "root", "--api-rate-limit", "3"],
    )
    .await
    .expect("memory is always available");
    let driver = Driver::start(&chromedriver)
        .await
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().expect("a profile directory");
    let browser = driver
        .browser(&chromium, profile.path())
        .await
        .expect("chromium starts");
    let outcome = walk_through(&browser, &demo).await;
    // Close the browser whatever happened, then report.
    let quit = browser.quit().await;
    outcome.unwrap();
    quit.expect("the browser session ends");
}

fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("session-demo-browser")
        .join(name)
}

async fn walk_through(browser: &Browser<'_>, demo: &Demo) -> Result<(), String> {
    let url = |path: &str| demo.at(path).to_string();
    let expect = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };

    // The login form stores nothing: the browser gets the CSRF nonce cookie only.
    browser.goto(&url("/login")).await?;
    let cookies = browser.cookies().await?;
    expect(
        !cookies.iter().any(|c| c["name"] == "session_id")
            && cookies.iter().any(|c| c["name"] == "session_demo_csrf"),
        &format!("the login form's cookies: {cookies:?}"),
    )?;

    // Log in through the form.
    let username = browser.find("#username").await?;
    browser.type_into(&username, "alice").await?;
    browser.click(&browser.find("#login").await?).await?;
    let user = browser.text(&browser.find("#user").await?).await?;
    expect(
        user.contains("alice"),
        &format!("logged in as alice, got {user:?}"),
    )?;
    let landed = browser.current_url().await?;
    expect(
        landed == url("/"),
        &format!("login redirects home, got {landed}"),
    )?;

    // Add two items through the cart form.
    for item in ["apple", "pear"] {
        browser.goto(&url("/cart")).await?;
        let field = browser.find("#item").await?;
        browser.type_into(&field, item).await?;
        browser.click(&browser.find("#add").await?).await?;
        // Wait for the redirected cart page to show the item (the page before the
        // click has a #cart too, from the second item on; items are sorted).
        wait_for_text(browser, "#cart tr.item:last-child .name", item).await?;
    }

    // The cart survives a reload: the browser sends the session cookie back.
    browser.refresh().await?;
    let items = browser.texts("#cart .item .name").await?;
    expect(
        items == ["apple", "pear"],
        &format!("cart after reload: {items:?}"),
    )?;

    // The page's scripts cannot read the HttpOnly session cookie, but the browser
    // holds it (WebDriver sees every cookie).
    let visible = browser
        .execute("return document.cookie;", serde_json::json!([]))
        .await?;
    let visible = visible.as_str().unwrap_or_default().to_owned();
    expect(
        !visible.contains("session_id"),
        &format!("document.cookie = {visible:?}"),
    )?;
    let cookies = browser.cookies().await?;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "session_id")
        .ok_or_else(|| format!("the browser holds no session cookie: {cookies:?}"))?;
    expect(
        session["httpOnly"] == true,
        "the session cookie is HttpOnly",
    )?;
    expect(session["secure"] == true, "the session cookie is Secure")?;

    let screenshot = artifact("cart.png");
    browser.screenshot(&screenshot).await?;
    eprintln!("screenshot: {}", screenshot.display());

    // The rate-limited API: three calls, then a 429 that says when to retry.
    for call in 1..=3 {
        browser.goto(&url("/api/ping")).await?;
        let body = body_text(browser).await?;
        expect(
            body.contains(&format!("\"call\":{call}")),
            &format!("API call {call}: {body}"),
        )?;
    }
    browser.goto(&url("/api/ping")).await?;
    let body = body_text(browser).await?;
    expect(
        body.contains("rate limit exceeded") && body.contains("Retry in"),
        &format!("the fourth call: {body}"),
    )?;
    browser.screenshot(&artifact("rate-limited.png")).await?;

    // A user is refused the admin page.
    browser.goto(&url("/admin")).await?;
    let message = browser.text(&browser.find("#message").await?).await?;
    expect(
        message.contains("administrators"),
        &format!("/admin as a user: {message:?}"),
    )?;
    browser.goto(&url("/")).await?;

    // Log out: the session and its cookie are gone.
    browser.click(&browser.find("#logout").await?).await?;
    // The page before the click has a #greeting too: wait for the new one (reading
    // the old one as the navigation replaced it failed CI once with a stale
    // element reference).
    wait_for_text(browser, "#greeting", "You are not logged in.")
        .await
        .map_err(|e| format!("after logout: {e}"))?;
    let cookies = browser.cookies().await?;
    expect(
        !cookies.iter().any(|c| c["name"] == "session_id"),
        &format!("the cookie is removed at logout: {cookies:?}"),
    )?;
    browser.goto(&url("/cart")).await?;
    let items = browser.texts("#cart .item .name").await?;
    expect(items.is_empty(), &format!("cart after logout: {items:?}"))?;
    browser.screenshot(&artifact("after-logout.png")).await?;

    // An admin sees the admin page; dropping the role gives the session a new id,
    // and the admin page is refused.
    browser.goto(&url("/login")).await?;
    browser
        .type_into(&browser.find("#username").await?, "root")
        .await?;
    browser.click(&browser.find("#login").await?).await?;
    let role = browser.text(&browser.find("#role").await?).await?;
    expect(role == "admin", &format!("root's role: {role:?}"))?;
    browser.goto(&url("/admin")).await?;
    browser.find("#admin").await?;
    browser.screenshot(&artifact("admin.png")).await?;
    let admin_id = session_id(browser).await?;
    browser.goto(&url("/")).await?;
    browser.click(&browser.find("#switch-role").await?).await?;
    // The click reloads the home page, which also has a #role: wait for the new one.
    wait_for_text(browser, "#role", "user").await?;
    let user_id = session_id(browser).await?;
    expect(user_id != admin_id, "a role change rotates the session id")?;
    browser.goto(&url("/admin")).await?;
    let message = browser.text(&browser.find("#message").await?).await?;
    expect(
        message.contains("administrators"),
        &format!("/admin after dropping the role: {message:?}"),
    )?;
    Ok(())
}

/// Waits (up to 5 s) until the element `selector` reads `expected`; an element of
/// the page being replaced may vanish under us, which is retried too.
async fn wait_for_text(
    browser: &Browser<'_>,
    selector: &str,
    expected: &str,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(element) = browser.find(selector).await {
            match browser.text(&element).await {
                Ok(text) if text == expected => return Ok(()),
                Ok(text) => last = text,
                Err(_) => {}
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(format!("{selector} reads {last:?}, not {expected:?}"))
}

/// The page's text (a JSON answer is shown as text).
async fn body_text(browser: &Browser<'_>) -> Result<String, String> {
    let text = browser
        .execute("return document.body.innerText;", serde_json::json!([]))
        .await?;
    Ok(text.as_str().unwrap_or_default().to_owned())
}

/// The value of the browser's session cookie.
async fn session_id(browser: &Browser<'_>) -> Result<String, String> {
    let cookies = browser.cookies().await?;
    cookies
        .iter()
        .find(|c| c["name"] == "session_id")
        .and_then(|c| c["value"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("no session cookie: {cookies:?}"))
}
