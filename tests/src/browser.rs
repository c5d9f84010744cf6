//! A real browser for tests: headless Chromium driven over the W3C WebDriver protocol (plain
//! HTTP to `chromedriver` on a free loopback port, through `reqwest`).
//!
//! `scripts/test` installs Debian's `chromium` and `chromium-driver`. Without them,
//! [`Browser::start`] answers `Ok(None)` locally and fails when `CI` is set, so CI can never
//! skip a browser test by accident.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push(PathBuf::from("/usr/bin"));
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// A headless Chromium session. [`Browser::quit`] ends it; dropping it ends it too (best
/// effort).
pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session.
    ///
    /// # Errors
    ///
    /// When Chromium or its driver is missing and `CI` is set (locally that is `Ok(None)`, with a
    /// message on stderr), or when they fail to start.
    pub async fn start() -> anyhow::Result<Option<Browser>> {
        let chromium = find_program(&["chromium", "chromium-browser"]);
        let driver = find_program(&["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let msg = "chromium and chromedriver are not installed: run `bash scripts/test` \
                       (it installs Debian's chromium and chromium-driver) or `apt-get install \
                       chromium chromium-driver`";
            if std::env::var_os("CI").is_some() {
                anyhow::bail!("{msg}");
            }
            eprintln!("SKIPPED (local run): {msg}");
            return Ok(None);
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver")?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == json!(true)
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(ready, "chromedriver did not become ready on port {port}");
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let session = created["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no WebDriver session: {created}"))?
            .to_owned();
        Ok(Some(Browser {
            http,
            base,
            session,
            driver,
            _profile: profile,
        }))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), &url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        anyhow::ensure!(status.is_success(), "WebDriver {path}: {status} {v}");
        Ok(v["value"].clone())
    }

    /// Navigates to `url` and waits for the page to load.
    ///
    /// # Errors
    ///
    /// When the WebDriver call fails.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await
            .map(|_| ())
    }

    /// The current page's URL.
    ///
    /// # Errors
    ///
    /// When the WebDriver call fails.
    pub async fn url(&self) -> anyhow::Result<String> {
        let v = self.call(reqwest::Method::GET, "/url", Value::Null).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The element matching the CSS `selector`.
    ///
    /// # Errors
    ///
    /// When there is none.
    pub async fn find(&self, selector: &str) -> anyhow::Result<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": selector}),
            )
            .await?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no element {selector}: {v}"))
    }

    /// Clicks the element matching `selector`.
    ///
    /// # Errors
    ///
    /// When there is none or the click fails.
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        let id = self.find(selector).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await
        .map(|_| ())
    }

    /// The rendered text of the element matching `selector`.
    ///
    /// # Errors
    ///
    /// When there is none.
    pub async fn text(&self, selector: &str) -> anyhow::Result<String> {
        let id = self.find(selector).await?;
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{id}/text"),
                Value::Null,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Ends the session (Chromium exits) and stops the driver.
    pub async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        self.session.clear();
        let _ = self.driver.kill().await;
    }
}

/// Ends the session with a blocking `DELETE`, so Chromium does not outlive a failed test.
fn delete_session(base: &str, session: &str) {
    let Some(addr) = base.strip_prefix("http://") else {
        return;
    };
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        s,
        "DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            delete_session(&self.base, &self.session);
        }
        let _ = self.driver.start_kill();
    }
}
