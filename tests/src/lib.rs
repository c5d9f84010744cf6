//! Harness for the cross-crate integration tests of mssp-alerts (`DESIGN.md` §8).
//!
//! A test asks for a [`TestEnv`] and gets the two clouds the product talks to, both on 127.0.0.1:
//! the Microsoft emulator (the `emulator` crate, in-process on its own port, one per test) and the
//! AWS emulator (a moto server, one per test process, shared by every test):
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let env = tests::TestEnv::start(emulator::Scenario::sample()).await?;
//! let bucket = env.unique_name("alerts");
//! let health = tests::endpoint(&env.emulator.urls().control, "health")?;
//! let answer = env.http.get(health).send().await?;
//! # let _ = (bucket, answer);
//! # Ok(())
//! # }
//! ```
//!
//! Tests run in parallel against the one moto server, so they never reset it; each test names its
//! AWS resources with [`TestEnv::unique_name`] instead.
//!
//! The Lambda functions run as their real binaries: [`lambda::LambdaProcess`] spawns one against
//! a Lambda Runtime API served by the harness, and [`apigw::ApiGateway`] puts an "API Gateway"
//! in front of it for HTTP clients and browsers.
#![warn(missing_docs)]

pub mod apigw;
pub mod aws;
pub mod bench;
pub mod browser;
pub mod contract;
pub mod fleet;
pub mod lambda;
pub mod local;
mod moto;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use emulator::{RunningEmulator, Scenario};
use url::Url;

/// Timeout of every request made with [`TestEnv::http`].
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything one integration test runs against.
pub struct TestEnv {
    /// The Microsoft emulator serving this test's scenario; it stops when the `TestEnv` drops.
    pub emulator: RunningEmulator,
    /// Base URL of the AWS emulator, `http://127.0.0.1:PORT/`, shared by every test in the process.
    pub moto_url: Url,
    /// An HTTP client for the test's own requests: rustls, redirects returned rather than followed
    /// (consent callbacks answer with redirects the tests assert on), a 30 s timeout.
    ///
    /// One per `TestEnv` rather than one per process: a client keeps pooled connections on the
    /// runtime that opened them, and every `#[tokio::test]` has its own runtime.
    pub http: reqwest::Client,
}

impl TestEnv {
    /// Starts the Microsoft emulator with `scenario` on `127.0.0.1:0` and makes sure the AWS
    /// emulator is up.
    ///
    /// The AWS emulator is `$MOTO_URL` when that is set (checked to answer `GET /moto-api/`).
    /// Otherwise the first call in the process starts one `moto_server` on a free loopback port —
    /// found at `$MOTO_SERVER`, else `<workspace>/.venv/bin/moto_server`, else on `PATH` — and
    /// every later call reuses it. A watchdog stops that server when the test process exits.
    ///
    /// # Errors
    ///
    /// When the emulator cannot bind, `moto_server` cannot be found (run `bash scripts/test`,
    /// which installs it), or moto does not answer within 30 s (the error quotes its output).
    pub async fn start(scenario: Scenario) -> anyhow::Result<TestEnv> {
        Self::start_on(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), scenario).await
    }

    /// [`TestEnv::start`] with the Microsoft emulator on `addr` (a configuration made beforehand
    /// names its port, e.g. the endpoints Terraform set on the deployed functions).
    ///
    /// # Errors
    ///
    /// As [`TestEnv::start`].
    pub async fn start_on(
        addr: std::net::SocketAddr,
        scenario: Scenario,
    ) -> anyhow::Result<TestEnv> {
        let moto_url = moto::shared_url().await?;
        let emulator = emulator::start_on(addr, scenario)
            .await
            .with_context(|| format!("starting the Microsoft emulator on {addr}"))?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .no_proxy()
            .build()
            .context("building the test HTTP client")?;
        Ok(TestEnv {
            emulator,
            moto_url,
            http,
        })
    }

    /// An AWS SDK configuration pointing at the AWS emulator with test credentials, for tests
    /// that build SDK clients in-process.
    pub async fn aws_config(&self) -> aws_config::SdkConfig {
        aws::sdk_config_at(self.moto_endpoint()).await
    }

    /// The environment variables that point the AWS SDK (and so every AWS adapter and Lambda
    /// binary under test) at the AWS emulator with dummy credentials ([`aws::service_env`]).
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        aws::service_env(self.moto_endpoint())
    }

    /// The AWS emulator's URL without the trailing slash (the SDK appends paths to it).
    fn moto_endpoint(&self) -> &str {
        self.moto_url.as_str().trim_end_matches('/')
    }

    /// A new DynamoDB table as the Terraform module creates it ([`aws::create_table`]), named
    /// [`TestEnv::unique_name`]`(prefix)`, and a client for it.
    ///
    /// # Panics
    ///
    /// When the table cannot be created (a test setup failure).
    pub async fn dynamodb_table(&self, prefix: &str) -> (aws_sdk_dynamodb::Client, String) {
        let ddb = aws_sdk_dynamodb::Client::new(&self.aws_config().await);
        let table = self.unique_name(prefix);
        aws::create_table(&ddb, &table).await;
        (ddb, table)
    }

    /// A name no other test (in this process or any other sharing the moto server) uses:
    /// `{prefix}-{12 random hex digits}`. With a short lowercase `prefix` (letters, digits,
    /// hyphens; at most 40 characters) it is valid for S3 buckets, DynamoDB tables, SQS queues and
    /// Secrets Manager secrets alike.
    pub fn unique_name(&self, prefix: &str) -> String {
        let random = uuid::Uuid::new_v4().simple().to_string();
        format!("{prefix}-{}", &random[..12])
    }

    /// Stops the Microsoft emulator and waits for it. (Dropping the `TestEnv` stops it too, without
    /// waiting.) The shared AWS emulator keeps running for the other tests.
    pub async fn shutdown(self) {
        self.emulator.shutdown().await;
    }
}

/// Sends `body` (none when `None`) with `method` to the emulator's control API at `path` (below
/// its control URL).
///
/// # Panics
///
/// When the emulator cannot be reached or refuses the request.
pub async fn control(
    http: &reqwest::Client,
    emu: &RunningEmulator,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) {
    let mut req = http.request(method, format!("{}/{path}", emu.urls().control));
    if let Some(body) = &body {
        req = req.json(body);
    }
    let resp = req.send().await.expect("control api");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
}

/// GETs `url`, which must redirect, and returns the `Location` it redirects to.
///
/// # Panics
///
/// When the answer is not a redirect to an absolute URL.
pub async fn redirect_of(http: &reqwest::Client, url: &str) -> Url {
    let resp = http.get(url).send().await.expect("GET");
    assert_eq!(resp.status().as_u16(), 302, "{url} redirects");
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location");
    Url::parse(location).expect("absolute location")
}

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// `path` appended below `base`, keeping `base`'s own path: `endpoint(control, "health")` with
/// `control = http://h/_emulator` is `http://h/_emulator/health`. (`Url::join` would replace the
/// last segment instead, because the emulator's service URLs have no trailing slash.)
///
/// # Errors
///
/// When `base` cannot be a base URL (e.g. `mailto:`).
pub fn endpoint(base: &Url, path: &str) -> anyhow::Result<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("{base} cannot be a base URL"))?
        .pop_if_empty()
        .extend(path.trim_start_matches('/').split('/'));
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_appends_below_a_base_without_trailing_slash() -> anyhow::Result<()> {
        let control = Url::parse("http://127.0.0.1:9/_emulator")?;
        assert_eq!(
            endpoint(&control, "health")?.as_str(),
            "http://127.0.0.1:9/_emulator/health"
        );
        let graph = Url::parse("http://127.0.0.1:9/graph/")?;
        assert_eq!(
            endpoint(&graph, "/v1.0/security/alerts_v2")?.as_str(),
            "http://127.0.0.1:9/graph/v1.0/security/alerts_v2"
        );
        Ok(())
    }

    #[test]
    fn the_workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("tests/Cargo.toml").is_file());
    }
}
