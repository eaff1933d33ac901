//! Starting the demo for a test: the backends this machine offers, servers on
//! ephemeral ports, clients with cookie jars, and page scraping helpers.
#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Client, Url, redirect};
use session_demo::{Options, Server};

/// Whether `SESSION_TEST_REQUIRE` (comma-separated) names `what`.
pub fn required(what: &str) -> bool {
    std::env::var("SESSION_TEST_REQUIRE")
        .unwrap_or_default()
        .split(',')
        .any(|name| name.trim() == what)
}

/// The command-line arguments selecting `backend`, or `None` (after printing a skip
/// line) when its server is not configured. Fails the test instead when
/// `SESSION_TEST_REQUIRE` names the backend.
pub fn backend_args(backend: &str, dir: &std::path::Path) -> Option<Vec<String>> {
    let variable = match backend {
        "memory" => return Some(args(&["--backend", "memory"])),
        "cookie" => return Some(args(&["--backend", "cookie"])),
        "file" => {
            let dir = dir.to_str().expect("a UTF-8 temporary directory");
            return Some(args(&["--backend", "file", "--file-dir", dir]));
        }
        "redis" => "SESSION_TEST_REDIS_URL",
        "redis-cluster" => "SESSION_TEST_REDIS_CLUSTER_URLS",
        "postgres" => "SESSION_TEST_POSTGRES_URL",
        "mysql" => "SESSION_TEST_MYSQL_URL",
        other => panic!("unknown backend {other}"),
    };
    // Read at run time: the same test binary runs with and without servers.
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => Some(args(&[
            "--backend",
            backend,
            "--backend-url",
            url.trim(),
            "--sql-table",
            "session_demo_tests",
            "--redis-key-prefix",
            "session-demo-tests:",
        ])),
        _ if required(backend) => {
            panic!("SESSION_TEST_REQUIRE names {backend}, but {variable} is not set")
        }
        _ => {
            eprintln!("SKIP {backend}: set {variable} to run the demo tests against it");
            None
        }
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A demo server on an ephemeral port, with whatever it needs to live.
pub struct Demo {
    pub server: Server,
    pub url: Url,
    pub args: Vec<String>,
    _dir: Arc<tempfile::TempDir>,
}

impl Demo {
    /// Starts the demo on `backend` with `extra` flags; `None` if the backend is
    /// not available here (see [`backend_args`]).
    pub async fn start(backend: &str, extra: &[&str]) -> Option<Demo> {
        let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
        let mut args = backend_args(backend, dir.path())?;
        // A test's own table or prefix replaces the shared one.
        for flag in ["--sql-table", "--redis-key-prefix"] {
            if extra.contains(&flag)
                && let Some(at) = args.iter().position(|a| a == flag)
            {
                args.drain(at..at + 2);
            }
        }
        args.extend(["--host", "127.0.0.1", "--port", "0"].map(str::to_owned));
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Some(Self::with_args(args, dir).await)
    }

    async fn with_args(args: Vec<String>, dir: Arc<tempfile::TempDir>) -> Demo {
        let options = Options::parse_args(&args).expect("valid test flags");
        let server = Server::start(&options)
            .await
            .unwrap_or_else(|e| panic!("the demo starts with {args:?}: {e}"));
        let url = Url::parse(&server.url()).expect("a server URL");
        Demo {
            server,
            url,
            args,
            _dir: dir,
        }
    }

    /// A second instance over the same backend (same server, same directory): a
    /// second process of a scaled-out application.
    pub async fn twin(&self) -> Demo {
        Self::with_args(self.args.clone(), self._dir.clone()).await
    }

    /// The URL of `path` on this instance.
    pub fn at(&self, path: &str) -> Url {
        self.url.join(path).expect("a valid path")
    }

    /// The temporary directory of this demo (the file backend's store).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

/// A key file (`--secret-key-file`) holding one random key, shared by the whole
/// test binary (so twin instances agree); its path.
pub fn key_file() -> &'static str {
    static FILE: OnceLock<(tempfile::TempDir, String)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("randomness");
        let path = dir.path().join("session-keys");
        let text = format!(
            "# test key\ntest-key:{}\n",
            base64::engine::general_purpose::STANDARD.encode(secret)
        );
        std::fs::write(&path, text).expect("the key file is written");
        let path = path.to_str().expect("a UTF-8 path").to_owned();
        (dir, path)
    });
    path
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("a readable directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// The session records (files named by 64 hex characters) under `dir`.
pub fn record_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .collect()
}

/// Logs in as `user` through the login form and returns the final page.
pub async fn login(demo: &Demo, client: &Client, user: &str) -> String {
    let (_, page) = get(client, demo.at("/login")).await;
    let token = csrf_token(&page);
    let (status, home) = post(
        client,
        demo.at("/login"),
        &[("csrf", &token), ("username", user)],
    )
    .await;
    assert_eq!(status, 200, "{home}");
    home
}

/// A browser-like client: a cookie jar, redirects followed.
pub fn browser() -> (Client, Arc<Jar>) {
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .build()
        .expect("a client");
    (client, jar)
}

/// A client with a cookie jar that does not follow redirects, to see every
/// response's own headers.
pub fn raw_client(jar: Arc<Jar>) -> Client {
    Client::builder()
        .cookie_provider(jar)
        .redirect(redirect::Policy::none())
        .build()
        .expect("a client")
}

/// The session cookie's value in `jar` for `url`, if any.
pub fn session_cookie(jar: &Jar, url: &Url) -> Option<String> {
    let header = jar.cookies(url)?;
    header
        .to_str()
        .ok()?
        .split(';')
        .map(str::trim)
        .find_map(|pair| pair.strip_prefix("session_id="))
        .map(str::to_owned)
}

/// GETs `url` and returns the status and the body.
pub async fn get(client: &Client, url: Url) -> (u16, String) {
    let response = client.get(url).send().await.expect("the demo answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// POSTs a form and returns the final status and body.
pub async fn post(client: &Client, url: Url, form: &[(&str, &str)]) -> (u16, String) {
    let response = client
        .post(url)
        .form(form)
        .send()
        .await
        .expect("the demo answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// The CSRF token embedded in a page's forms.
pub fn csrf_token(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page
        .find(marker)
        .expect("the page has a form with a CSRF token")
        + marker.len();
    let len = page[start..].find('"').expect("a closing quote");
    page[start..start + len].to_owned()
}

/// The text of the element with `id` (the demo's pages put values in ids).
pub fn by_id<'a>(page: &'a str, id: &str) -> Option<&'a str> {
    let marker = format!("id=\"{id}\">");
    let start = page.find(&marker)? + marker.len();
    let len = page[start..].find('<')?;
    Some(&page[start..start + len])
}

/// The cart's `(item, quantity)` rows as the page shows them.
pub fn cart_items(page: &str) -> Vec<(String, u32)> {
    page.split(r#"<tr class="item"><td class="name">"#)
        .skip(1)
        .map(|row| {
            let name = &row[..row.find('<').expect("end of the name")];
            let qty = by_id_class(row, "qty").expect("a quantity cell");
            (name.to_owned(), qty.parse().expect("a number"))
        })
        .collect()
}

fn by_id_class<'a>(row: &'a str, class: &str) -> Option<&'a str> {
    let marker = format!("class=\"{class}\">");
    let start = row.find(&marker)? + marker.len();
    let len = row[start..].find('<')?;
    Some(&row[start..start + len])
}
