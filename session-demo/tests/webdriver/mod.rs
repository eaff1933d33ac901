//! Just enough of the W3C WebDriver protocol, over plain HTTP + JSON, to drive
//! chromedriver: sessions, navigation, elements, scripts, cookies, screenshots.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process, killed when dropped.
pub struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Killing chromedriver also ends the browsers it started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts `chromedriver` on a free port and waits until it is ready.
    pub async fn start(chromedriver: &Path) -> Result<Driver, String> {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            probe.local_addr().map_err(|e| e.to_string())?.port()
        };
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", chromedriver.display()))?;
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| e.to_string())?,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(status) = driver.call(reqwest::Method::GET, "/status", None).await
                && status["ready"] == json!(true)
            {
                return Ok(driver);
            }
            if Instant::now() > deadline {
                return Err("chromedriver did not become ready within 30 s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One WebDriver command; the `value` of its answer, or the error it reported.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| format!("{method} {path}: not JSON: {e}"))?;
        if !status.is_success() {
            return Err(format!("{method} {path}: {status}: {}", answer["value"]));
        }
        Ok(answer["value"].clone())
    }

    /// A new headless browser session of `chromium` with a fresh profile in
    /// `profile_dir`.
    pub async fn browser(
        &self,
        chromium: &Path,
        profile_dir: &Path,
    ) -> Result<Browser<'_>, String> {
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1024,768".to_owned(),
            format!("--user-data-dir={}", profile_dir.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let value = self
            .call(reqwest::Method::POST, "/session", Some(capabilities))
            .await?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {value}"))?
            .to_owned();
        let browser = Browser { driver: self, id };
        // Element lookups wait up to 5 s for the element to appear (page loads).
        browser
            .post("/timeouts", json!({"implicit": 5000, "pageLoad": 30000}))
            .await?;
        Ok(browser)
    }
}

/// One browser session; call [`quit`](Self::quit) at the end.
pub struct Browser<'d> {
    driver: &'d Driver,
    id: String,
}

/// A reference to an element of the current page.
pub struct Element(String);

impl Browser<'_> {
    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.id);
        self.driver
            .call(reqwest::Method::POST, &path, Some(body))
            .await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.id);
        self.driver.call(reqwest::Method::GET, &path, None).await
    }

    /// Loads `url` and waits for the page.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.post("/url", json!({"url": url})).await.map(drop)
    }

    /// Reloads the page.
    pub async fn refresh(&self) -> Result<(), String> {
        self.post("/refresh", json!({})).await.map(drop)
    }

    /// The current URL.
    pub async fn current_url(&self) -> Result<String, String> {
        Ok(self
            .get("/url")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The first element matching the CSS `selector`.
    pub async fn find(&self, selector: &str) -> Result<Element, String> {
        let value = self
            .post(
                "/element",
                json!({"using": "css selector", "value": selector}),
            )
            .await?;
        value[ELEMENT_KEY]
            .as_str()
            .map(|id| Element(id.to_owned()))
            .ok_or_else(|| format!("no element reference for {selector}: {value}"))
    }

    /// The text of every element matching `selector` (none is an empty list).
    pub async fn texts(&self, selector: &str) -> Result<Vec<String>, String> {
        let script =
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent);";
        let value = self.execute(script, json!([selector])).await?;
        Ok(value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Types `text` into `element`.
    pub async fn type_into(&self, element: &Element, text: &str) -> Result<(), String> {
        self.post(
            &format!("/element/{}/value", element.0),
            json!({"text": text}),
        )
        .await
        .map(drop)
    }

    /// Clicks `element` (a submit button navigates; the next lookups wait for the
    /// new page).
    pub async fn click(&self, element: &Element) -> Result<(), String> {
        self.post(&format!("/element/{}/click", element.0), json!({}))
            .await
            .map(drop)
    }

    /// The visible text of `element`.
    pub async fn text(&self, element: &Element) -> Result<String, String> {
        Ok(self
            .get(&format!("/element/{}/text", element.0))
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Runs a script in the page and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Result<Value, String> {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// Every cookie the browser holds for the current page, HttpOnly ones included
    /// (the WebDriver view, not the page's).
    pub async fn cookies(&self) -> Result<Vec<Value>, String> {
        Ok(self
            .get("/cookie")
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<(), String> {
        let value = self.get("/screenshot").await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or_default())
            .map_err(|e| format!("screenshot is not base64: {e}"))?;
        if !png.starts_with(b"\x89PNG") {
            return Err("the screenshot is not a PNG".to_owned());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Ends the browser session.
    pub async fn quit(self) -> Result<(), String> {
        let path = format!("/session/{}", self.id);
        self.driver
            .call(reqwest::Method::DELETE, &path, None)
            .await
            .map(drop)
    }
}
