//! The AWS emulator (moto server) that every test in one test process shares.
//!
//! Starting moto takes a second or two of Python imports, so the process starts it once, on first
//! use, and every [`TestEnv`](crate::TestEnv) talks to that one server. Tests therefore never reset
//! moto: they isolate themselves with [`unique_name`](crate::TestEnv::unique_name) instead.
//!
//! A `static` is never dropped, so nothing in Rust can stop the server when the tests end. A small
//! `sh` watchdog does: it polls the test process's pid and terminates moto once that pid is gone,
//! however the test process ended.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::OnceCell;
use url::Url;

/// How long a freshly started moto server gets to answer its health check.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an external `MOTO_URL` server gets to answer its health check.
const EXTERNAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How many free ports to try when another program takes ours first.
const START_ATTEMPTS: usize = 3;
/// How many lines of moto's output an error message quotes.
const LOG_TAIL_LINES: usize = 20;

/// Polls the test process (`$1`) every half second; once it is gone, stops moto (`$2`) and
/// removes its log (`$3`).
const WATCHDOG: &str = r#"
while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
kill "$2" 2>/dev/null
rm -f "$3"
"#;

static SHARED: OnceCell<Url> = OnceCell::const_new();

/// The base URL of this process's moto server (`http://127.0.0.1:PORT/`).
///
/// Uses `$MOTO_URL` when it is set (after checking that it answers); otherwise starts one moto
/// server on the first call and returns the same URL to every later call.
pub(crate) async fn shared_url() -> anyhow::Result<Url> {
    SHARED.get_or_try_init(init).await.cloned()
}

async fn init() -> anyhow::Result<Url> {
    match std::env::var_os("MOTO_URL").filter(|v| !v.is_empty()) {
        Some(raw) => external(raw).await,
        None => start().await,
    }
}

/// Checks a moto server someone else runs.
async fn external(raw: OsString) -> anyhow::Result<Url> {
    let raw = raw
        .into_string()
        .map_err(|v| anyhow::anyhow!("MOTO_URL is not valid UTF-8: {v:?}"))?;
    let url = Url::parse(&raw).with_context(|| format!("MOTO_URL={raw} is not a URL"))?;
    let client = health_client()?;
    wait_healthy(&client, &url, EXTERNAL_TIMEOUT, None)
        .await?
        .map_err(|why| anyhow::anyhow!("MOTO_URL={url} {why}"))?;
    Ok(url)
}

/// Starts moto on a free loopback port, retrying on a fresh port if another program takes it
/// between our probe and moto's bind.
async fn start() -> anyhow::Result<Url> {
    let program = locate_moto_server()?;
    let client = health_client()?;
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        match launch(&program, port, &client).await? {
            Launched::Ready(url) => return Ok(url),
            Launched::PortTaken => continue,
        }
    }
    bail!("moto_server could not bind a free 127.0.0.1 port in {START_ATTEMPTS} attempts")
}

enum Launched {
    Ready(Url),
    PortTaken,
}

async fn launch(program: &Path, port: u16, client: &reqwest::Client) -> anyhow::Result<Launched> {
    let url = Url::parse(&format!("http://127.0.0.1:{port}/"))?;
    let log_path = std::env::temp_dir().join(format!(
        "mssp-alerts-moto-{}-{port}.log",
        std::process::id()
    ));
    let log = File::create(&log_path)
        .with_context(|| format!("creating moto's log file {}", log_path.display()))?;
    let mut moto = Command::new(program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let mut watchdog = match spawn_watchdog(moto.id(), &log_path) {
        Ok(watchdog) => watchdog,
        Err(e) => {
            // Without a watchdog nothing would ever stop this moto.
            stop(&mut moto);
            return Err(e);
        }
    };

    let Err(why) = wait_healthy(client, &url, START_TIMEOUT, Some(&mut moto)).await? else {
        // From here on the watchdog owns moto's lifetime.
        return Ok(Launched::Ready(url));
    };
    stop(&mut moto);
    stop(&mut watchdog);
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    if port_taken(&output) {
        let _ = std::fs::remove_file(&log_path);
        return Ok(Launched::PortTaken);
    }
    bail!(
        "moto_server ({}) {why}; the last lines of its output ({}):\n{}",
        program.display(),
        log_path.display(),
        tail(&output, LOG_TAIL_LINES)
    )
}

/// Starts the `sh` watchdog that stops moto (and removes its log) once this process is gone.
fn spawn_watchdog(moto_pid: u32, log_path: &Path) -> anyhow::Result<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("moto-watchdog")
        .arg(std::process::id().to_string())
        .arg(moto_pid.to_string())
        .arg(log_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting moto's watchdog with `sh`")
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Finds the `moto_server` executable: `$MOTO_SERVER`, else the workspace's `.venv`, else `PATH`.
fn locate_moto_server() -> anyhow::Result<PathBuf> {
    if let Some(explicit) = std::env::var_os("MOTO_SERVER").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(explicit);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "MOTO_SERVER={} does not exist; run `bash scripts/test`, which installs moto into .venv",
            path.display()
        );
    }
    let venv = crate::workspace_root().join(".venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("moto_server"))
        .find(|candidate| candidate.is_file());
    on_path.ok_or_else(|| {
        anyhow::anyhow!(
            "moto_server (the AWS emulator) was not found: not in $MOTO_SERVER, not at {}, not on \
             PATH. Run the tests with `bash scripts/test`, which installs it (pinned in \
             requirements-test.txt), or set MOTO_URL to a running moto server",
            venv.display()
        )
    })
}

/// A port that was free a moment ago: bind port 0, note the port, release it.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn port_taken(output: &str) -> bool {
    output.contains("Address already in use") || output.contains("is in use by another program")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A client for health checks only. It is built per check because a `reqwest::Client` holds
/// connections on the runtime that first used it, and each `#[tokio::test]` has its own runtime.
fn health_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()?)
}

/// Why a moto server is not (yet) serving.
enum NotHealthy {
    Exited(ExitStatus),
    TimedOut { timeout: Duration, last: String },
}

impl std::fmt::Display for NotHealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotHealthy::Exited(status) => write!(f, "exited before answering ({status})"),
            NotHealthy::TimedOut { timeout, last } => write!(
                f,
                "did not answer GET /moto-api/ with 200 within {timeout:?} (last attempt: {last})"
            ),
        }
    }
}

/// Polls `GET {url}moto-api/` until it answers 200, `child` exits, or `timeout` passes.
async fn wait_healthy(
    client: &reqwest::Client,
    url: &Url,
    timeout: Duration,
    mut child: Option<&mut Child>,
) -> anyhow::Result<Result<(), NotHealthy>> {
    let health = url.join("moto-api/")?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(child) = child.as_deref_mut()
            && let Some(status) = child.try_wait()?
        {
            return Ok(Err(NotHealthy::Exited(status)));
        }
        let last = match client.get(health.clone()).send().await {
            Ok(resp) if resp.status() == reqwest::StatusCode::OK => return Ok(Ok(())),
            Ok(resp) => format!("HTTP {}", resp.status()),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Ok(Err(NotHealthy::TimedOut { timeout, last }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_clash_is_recognised_from_werkzeugs_message() {
        let output = "Address already in use\nPort 5000 is in use by another program.";
        assert!(port_taken(output));
        assert!(!port_taken(" * Running on http://127.0.0.1:5000"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
