//! The Lambda functions exercised for real (`DESIGN.md` §8): a built function binary is spawned
//! with `AWS_LAMBDA_RUNTIME_API` pointing at a small [Lambda Runtime API] server served here,
//! and each [`LambdaProcess::invoke`] is handed to it exactly as Lambda would.
//!
//! | route | what |
//! |---|---|
//! | `GET /2018-06-01/runtime/invocation/next` | long poll: answers the next queued event with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Invoked-Function-Arn`, `Lambda-Runtime-Trace-Id` |
//! | `POST /2018-06-01/runtime/invocation/{id}/response` | the function's answer |
//! | `POST /2018-06-01/runtime/invocation/{id}/error` | the function's error (`errorType`, `errorMessage`) |
//! | `POST /2018-06-01/runtime/init/error` | the function failed to start |
//!
//! The binaries are found at `<workspace>/target/<profile>/<name>` (`$CARGO_TARGET_DIR` is
//! honoured); `scripts/test` builds them (`cargo build --workspace --bins`) before the tests.
//!
//! [Lambda Runtime API]: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

/// The configuration the functions read from their environment on AWS: consent callbacks at
/// `public_base`, tenant secrets under `secrets_prefix`, the registry in `table`, and Microsoft
/// at the emulator's `urls`.
pub fn function_config(
    public_base: &str,
    secrets_prefix: &str,
    table: &str,
    urls: &emulator::Urls,
) -> Vec<(String, String)> {
    [
        ("MSSP_PUBLIC_BASE_URL", public_base.to_owned()),
        ("MSSP_SECRETS_PREFIX", secrets_prefix.to_owned()),
        ("MSSP_TABLE", table.to_owned()),
        ("MSSP_AUTHORITY_URL", urls.authority.to_string()),
        ("MSSP_GRAPH_URL", urls.graph.to_string()),
        ("MSSP_MDE_URL", urls.mde.to_string()),
        ("MSSP_SIEM_URL", urls.siem.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Lambda's limit on a synchronous invocation's response: 6 MB.
pub const RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

const PREFIX: &str = "/2018-06-01/runtime";
/// Time an invocation may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// An invocation that failed: what the function posted to `/error`, or what the harness saw
/// (`Runtime.ExitError` when the process died, `Harness.Timeout` when it did not answer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct LambdaError {
    /// `errorType`.
    #[serde(rename = "errorType", default)]
    pub error_type: String,
    /// `errorMessage`.
    #[serde(rename = "errorMessage", default)]
    pub error_message: String,
}

impl std::fmt::Display for LambdaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl std::error::Error for LambdaError {}

type Outcome = Result<Value, LambdaError>;

struct Queued {
    id: String,
    body: Vec<u8>,
    deadline_ms: u64,
    reply: oneshot::Sender<Outcome>,
}

struct RuntimeApi {
    function_name: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: OnceLock<Instant>,
    polled: watch::Sender<bool>,
    init_error: watch::Sender<Option<LambdaError>>,
}

impl RuntimeApi {
    fn take(&self, id: &str) -> Option<oneshot::Sender<Outcome>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    if api.first_poll.set(Instant::now()).is_ok() {
        api.polled.send_replace(true);
    }
    let mut queue = api.queue.lock().await;
    let Some(inv) = queue.recv().await else {
        return StatusCode::GONE.into_response();
    };
    drop(queue);
    api.in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(inv.id.clone(), inv.reply);
    let arn = format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{}",
        api.function_name
    );
    let trace = format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        now_ms() / 1000,
        &uuid::Uuid::new_v4().simple().to_string()[..24],
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let headers = [
        ("lambda-runtime-aws-request-id", inv.id),
        ("lambda-runtime-deadline-ms", inv.deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", arn),
        ("lambda-runtime-trace-id", trace),
        ("content-type", "application/json".to_owned()),
    ];
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        if let Ok(v) = v.parse() {
            map.insert(k, v);
        }
    }
    (StatusCode::OK, map, inv.body).into_response()
}

async fn response(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let Some(reply) = api.take(&id) else {
        return StatusCode::BAD_REQUEST;
    };
    let outcome = serde_json::from_slice(&body).map_err(|e| LambdaError {
        error_type: "Harness.UnreadableResponse".into(),
        error_message: format!("the response is not JSON: {e}"),
    });
    let _ = reply.send(outcome);
    StatusCode::ACCEPTED
}

fn diagnostic(headers: &HeaderMap, body: &[u8]) -> LambdaError {
    let mut e: LambdaError = serde_json::from_slice(body).unwrap_or_else(|_| LambdaError {
        error_type: String::new(),
        error_message: String::from_utf8_lossy(body).into_owned(),
    });
    if e.error_type.is_empty() {
        e.error_type = headers
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("Unhandled")
            .to_owned();
    }
    e
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Some(reply) = api.take(&id) else {
        return StatusCode::BAD_REQUEST;
    };
    let _ = reply.send(Err(diagnostic(&headers, &body)));
    StatusCode::ACCEPTED
}

async fn init_error(
    State(api): State<Arc<RuntimeApi>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    api.init_error
        .send_replace(Some(diagnostic(&headers, &body)));
    StatusCode::ACCEPTED
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The product's Lambda functions, by crate and binary name: every one the CI configuration
/// deploys (infra/ci/moto.tf turns the exporter on).
pub const FUNCTIONS: [&str; 4] = [
    "consent-callback",
    "token-refresh",
    "alert-fetcher",
    "ocsf-exporter",
];

/// Where the binary `name` of `profile` (`debug`, `release`) is.
pub fn binary_path(name: &str, profile: &str) -> PathBuf {
    let root = crate::workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    target.join(profile).join(name)
}

/// A function binary running against this harness's Runtime API. Dropping it kills the process.
pub struct LambdaProcess {
    name: String,
    pid: u32,
    spawned_at: Instant,
    api: Arc<RuntimeApi>,
    queue: mpsc::UnboundedSender<Queued>,
    exited: watch::Receiver<Option<String>>,
    logs: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
    _kill: oneshot::Sender<()>,
}

impl LambdaProcess {
    /// Spawns the debug build of function `name` with `envs` (typically
    /// [`crate::TestEnv::aws_env`] and the `MSSP_*` configuration) on top of what Lambda sets:
    /// `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`, memory size, version, log group and
    /// stream. The rest of the environment is cleared (so no host AWS profile leaks in) except
    /// `RUST_LOG`.
    ///
    /// # Errors
    ///
    /// When the binary is missing (the message says how to build it) or cannot be started.
    pub async fn spawn(
        name: &str,
        envs: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
    ) -> anyhow::Result<LambdaProcess> {
        Self::spawn_profile(name, "debug", envs).await
    }

    /// [`LambdaProcess::spawn`] of the build of `profile` (`debug` or `release`).
    ///
    /// # Errors
    ///
    /// As [`LambdaProcess::spawn`].
    pub async fn spawn_profile(
        name: &str,
        profile: &str,
        envs: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
    ) -> anyhow::Result<LambdaProcess> {
        let binary = binary_path(name, profile);
        if !binary.is_file() {
            anyhow::bail!(
                "{} does not exist: build the function binaries first with `cargo build \
                 --workspace --bins{}` (scripts/test does it)",
                binary.display(),
                if profile == "release" {
                    " --release"
                } else {
                    ""
                }
            );
        }
        Self::spawn_binary(name, &binary, envs).await
    }

    /// [`LambdaProcess::spawn`] of the executable at `binary` (e.g. the `bootstrap` of a
    /// `cargo lambda` package) as the function `name`.
    ///
    /// # Errors
    ///
    /// When `binary` is missing or cannot be started.
    pub async fn spawn_binary(
        name: &str,
        binary: &std::path::Path,
        envs: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
    ) -> anyhow::Result<LambdaProcess> {
        if !binary.is_file() {
            anyhow::bail!("{} does not exist", binary.display());
        }
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let api = Arc::new(RuntimeApi {
            function_name: name.to_owned(),
            queue: tokio::sync::Mutex::new(queue_rx),
            in_flight: Mutex::default(),
            first_poll: OnceLock::new(),
            polled: watch::channel(false).0,
            init_error: watch::channel(None).0,
        });
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            // Lambda's synchronous response limit: larger answers are refused, as Lambda does.
            .layer(axum::extract::DefaultBodyLimit::max(RESPONSE_LIMIT))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Runtime API")?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let mut cmd = tokio::process::Command::new(binary);
        cmd.env_clear()
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info".into()),
            )
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .envs(envs)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("2026/01/01/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().unwrap_or_default();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for (out, copy) in [
            child.stdout.take().map(|s| {
                (
                    Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                    Some(stdout.clone()),
                )
            }),
            child.stderr.take().map(|s| {
                (
                    Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                    None,
                )
            }),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(copy) = &copy {
                        copy.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(line.clone());
                    }
                    logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            }));
        }
        let (exit_tx, exited) = watch::channel(None);
        let (kill, kill_rx) = oneshot::channel::<()>();
        let label = name.to_owned();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            // The process's last words first, so an exit error can quote them.
            for r in readers {
                let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
            }
            let text = match status {
                Ok(s) => format!("{label} exited ({s})"),
                Err(e) => format!("{label}: waiting for the process failed: {e}"),
            };
            exit_tx.send_replace(Some(text));
        });
        Ok(LambdaProcess {
            name: name.to_owned(),
            pid,
            spawned_at,
            api,
            queue: queue_tx,
            exited,
            logs,
            stdout,
            server,
            _kill: kill,
        })
    }

    /// The function's name (the binary's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Invokes the function with `event`, allowing [`DEFAULT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// What the function reported to `/error`, or `Runtime.ExitError` / `Runtime.InitError` /
    /// `Harness.Timeout`.
    pub async fn invoke(&self, event: &Value) -> Result<Value, LambdaError> {
        self.invoke_with_timeout(event, DEFAULT_TIMEOUT).await
    }

    /// Invokes the function with `event` and a deadline `timeout` from now.
    ///
    /// # Errors
    ///
    /// As [`LambdaProcess::invoke`].
    pub async fn invoke_with_timeout(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> Result<Value, LambdaError> {
        let body = serde_json::to_vec(event).unwrap_or_default();
        self.invoke_raw(body, timeout).await
    }

    /// Invokes the function with `payload` as the event's bytes, whatever they are (JSON or not:
    /// Lambda's Invoke API refuses what is not JSON, the Runtime API passes anything on), with a
    /// deadline `timeout` from now.
    ///
    /// # Errors
    ///
    /// As [`LambdaProcess::invoke`].
    pub async fn invoke_raw(
        &self,
        payload: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Value, LambdaError> {
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            id: uuid::Uuid::new_v4().to_string(),
            body: payload.into(),
            deadline_ms: now_ms() + timeout.as_millis() as u64,
            reply,
        };
        if self.queue.send(queued).is_err() {
            return Err(self.harness_error("Harness.Closed", "the Runtime API is closed"));
        }
        let mut exited = self.exited.clone();
        let mut init = self.api.init_error.subscribe();
        tokio::select! {
            outcome = answer => outcome.unwrap_or_else(|_| {
                Err(self.harness_error("Harness.Dropped", "the invocation was dropped"))
            }),
            status = exited.wait_for(Option::is_some) => {
                let text = status.ok().and_then(|s| s.clone()).unwrap_or_default();
                Err(self.harness_error("Runtime.ExitError", &text))
            }
            e = init.wait_for(Option::is_some) => {
                let e = e.ok().and_then(|e| e.clone()).unwrap_or(LambdaError {
                    error_type: "Runtime.InitError".into(),
                    error_message: String::new(),
                });
                Err(e)
            }
            _ = tokio::time::sleep(timeout + Duration::from_secs(5)) => {
                Err(self.harness_error("Harness.Timeout", "no answer before the deadline"))
            }
        }
    }

    fn harness_error(&self, error_type: &str, what: &str) -> LambdaError {
        let logs = self.logs();
        let tail: Vec<&str> = logs.lines().rev().take(20).collect();
        LambdaError {
            error_type: error_type.to_owned(),
            error_message: format!(
                "{}: {what}; last log lines:\n{}",
                self.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        }
    }

    /// Everything the process wrote to stdout and stderr so far, one line each.
    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// The lines the process wrote to stdout so far (where the functions write their Embedded
    /// Metric Format lines; tracing goes to stderr).
    pub fn stdout(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until the process first polls `GET …/invocation/next` (at most `timeout`) and
    /// answers how long after the spawn that was.
    ///
    /// # Errors
    ///
    /// When the process exits first or does not poll in time.
    pub async fn first_poll(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let mut polled = self.api.polled.subscribe();
        let mut exited = self.exited.clone();
        tokio::select! {
            _ = polled.wait_for(|p| *p) => {}
            _ = exited.wait_for(Option::is_some) => {
                anyhow::bail!("{} exited before polling:\n{}", self.name, self.logs())
            }
            _ = tokio::time::sleep(timeout) => {
                anyhow::bail!("{} did not poll within {timeout:?}:\n{}", self.name, self.logs())
            }
        }
        let at = self
            .api
            .first_poll
            .get()
            .copied()
            .context("first poll time")?;
        Ok(at.duration_since(self.spawned_at))
    }

    /// The process's resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        // Dropping `_kill` makes the waiter kill the process; kill_on_drop covers a runtime
        // that is already gone.
        self.server.abort();
    }
}
