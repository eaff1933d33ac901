//! The demo in a real browser: headless Chromium driven through chromedriver
//! (WebDriver) through login, cart, reload and logout, with a screenshot kept as
//! an artifact (`target/tmp/session-demo-browser/`).
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
    let demo = Demo::start("memory", &[])
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

    // Log in through the form.
    browser.goto(&url("/login")).await?;
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
        // Wait for the redirected cart page to show the item.
        browser.find("#cart").await?;
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

    // Log out: the session and its cookie are gone.
    browser.click(&browser.find("#logout").await?).await?;
    let greeting = browser.text(&browser.find("#greeting").await?).await?;
    expect(
        greeting == "You are not logged in.",
        &format!("after logout: {greeting:?}"),
    )?;
    let cookies = browser.cookies().await?;
    expect(
        !cookies.iter().any(|c| c["name"] == "session_id"),
        &format!("the cookie is removed at logout: {cookies:?}"),
    )?;
    browser.goto(&url("/cart")).await?;
    let items = browser.texts("#cart .item .name").await?;
    expect(items.is_empty(), &format!("cart after logout: {items:?}"))?;
    browser.screenshot(&artifact("after-logout.png")).await?;
    Ok(())
}
