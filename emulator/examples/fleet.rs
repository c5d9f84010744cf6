//! Measures the emulator at fleet size:
//! `cargo run --release -p emulator --example fleet [TENANTS [ALERTS]]`
//! (default 10,000; Linux, reads `/proc`).
//!
//! 1. Builds a fleet scenario (`emulator::fleet`: application, delegated v1 and v2 tenants, most
//!    already consented, `ALERTS` alerts each, default 3; second argument), serializes it as a scenario file would be, and times
//!    reading it back and loading it into a running emulator.
//! 2. Serves it from one runtime thread (`emu-server`) and drives it from another: every tenant
//!    onboards (admin consent for the unconsented application tenants, a sign-in for the
//!    delegated ones) and gets a token, then two rounds read each tenant's alert API and refresh
//!    a third of the tokens. The server thread's CPU time (`/proc/self/task/*/schedstat`) is
//!    divided by the requests served.
//! 3. Prints load time, CPU per request per phase, the process's resident memory after load and
//!    its peak, and the per-tenant request counts the control API reports.
//!
//! 4. When the release `emulator` binary is built (`cargo build --release -p emulator`), also loads
//!    the scenario file in that binary, alone in its process, and prints the time until it serves
//!    and its resident memory then: the emulator's own footprint, without this program's.
//!
//! Nothing is asserted about time; the figures go to the README.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use emulator::fleet::{self, APP, Model, REDIRECT, SECRET};
use futures::StreamExt;
use serde_json::Value;

const START: &str = "2026-01-01T00:00:00Z";
const IN_FLIGHT: usize = 8;
const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";
const SIEM: &str = "https://graph.windows.net";
const MDE_OFFLINE: &str = "https://api.securitycenter.microsoft.com/Alert.Read offline_access";

/// Nanoseconds the server's threads have run.
fn server_cpu_ns() -> u64 {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("emu-server") {
            continue;
        }
        let sched = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += sched
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory_mib() -> (f64, f64) {
    memory_of("self")
}

/// `VmRSS` and `VmHWM` of process `pid` (`self` for this one), in MiB.
fn memory_of(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What one tenant holds after onboarding: the token and how to renew it.
#[derive(Debug, Clone)]
struct Session {
    index: usize,
    access_token: String,
    refresh_token: Option<String>,
}

struct Driver {
    http: reqwest::Client,
    urls: emulator::Urls,
}

impl Driver {
    fn tenant_url(&self, i: usize, path: &str) -> String {
        format!("{}/{}/{path}", self.urls.authority, fleet::tenant_id(i))
    }

    async fn form(&self, url: String, form: &[(&str, &str)]) -> Result<Value> {
        let r = self.http.post(url).form(form).send().await?;
        let status = r.status();
        let body: Value = r.json().await?;
        ensure!(status.is_success(), "{status}: {body}");
        Ok(body)
    }

    /// The code an auto-approved authorize request redirects with.
    async fn code(&self, i: usize, path: &str, extra: &[(&str, &str)]) -> Result<String> {
        let admin = fleet::admin(i);
        let mut query = vec![
            ("client_id", APP),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("login_hint", admin.as_str()),
        ];
        query.extend_from_slice(extra);
        let url = url::Url::parse_with_params(&self.tenant_url(i, path), &query)?;
        let r = self.http.get(url).send().await?;
        let location = r
            .headers()
            .get("location")
            .context("a redirect")?
            .to_str()?;
        let url = url::Url::parse(location)?;
        let code = url.query_pairs().find(|(k, _)| k == "code");
        Ok(code.context("a code")?.1.into_owned())
    }

    /// A token request of the app for tenant `i`: `grant` (the grant type and its parameters) on
    /// the v1 endpoint with `resource`, else on the v2 endpoint.
    async fn token(
        &self,
        i: usize,
        grant: &[(&str, &str)],
        resource: Option<&str>,
    ) -> Result<Value> {
        let mut form = vec![("client_id", APP), ("client_secret", SECRET)];
        form.extend_from_slice(grant);
        let path = match resource {
            Some(r) => {
                form.push(("resource", r));
                "oauth2/token"
            }
            None => "oauth2/v2.0/token",
        };
        self.form(self.tenant_url(i, path), &form).await
    }

    /// Consents where needed and gets the tenant's first token.
    async fn onboard(&self, i: usize) -> Result<Session> {
        let (authorize, asked, resource) = match fleet::model(i) {
            Model::Application => {
                if !fleet::consented(i) {
                    let url = url::Url::parse_with_params(
                        &self.tenant_url(i, "v2.0/adminconsent"),
                        &[
                            ("client_id", APP),
                            ("redirect_uri", REDIRECT),
                            ("scope", GRAPH_DEFAULT),
                        ],
                    )?;
                    self.http.get(url).send().await?;
                }
                return Ok(session(i, &self.client_credentials(i).await?));
            }
            Model::DelegatedV1 => ("oauth2/authorize", ("resource", SIEM), Some(SIEM)),
            Model::DelegatedV2 => ("oauth2/v2.0/authorize", ("scope", MDE_OFFLINE), None),
        };
        let code = self.code(i, authorize, &[asked]).await?;
        let grant = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ];
        Ok(session(i, &self.token(i, &grant, resource).await?))
    }

    async fn client_credentials(&self, i: usize) -> Result<Value> {
        let grant = [
            ("grant_type", "client_credentials"),
            ("scope", GRAPH_DEFAULT),
        ];
        self.token(i, &grant, None).await
    }

    /// A new token: client credentials again, or the refresh token.
    async fn renew(&self, s: &Session) -> Result<Session> {
        let i = s.index;
        let body = match (fleet::model(i), &s.refresh_token) {
            (Model::DelegatedV1 | Model::DelegatedV2, Some(rt)) => {
                let grant = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ];
                let resource = (fleet::model(i) == Model::DelegatedV1).then_some(SIEM);
                self.token(i, &grant, resource).await?
            }
            _ => self.client_credentials(i).await?,
        };
        Ok(session(i, &body))
    }

    /// One read of the tenant's alert API; the number of alerts (records) answered.
    async fn read(&self, s: &Session) -> Result<usize> {
        let i = s.index;
        let url = match fleet::model(i) {
            Model::Application => format!("{}/v1.0/security/alerts_v2", self.urls.graph),
            Model::DelegatedV1 => {
                let region = emulator::scenario::Region::ALL[(i / 3) % 3];
                format!("{}/api/alerts", self.urls.siem_of(region))
            }
            Model::DelegatedV2 => format!("{}/api/alerts", self.urls.mde),
        };
        let r = self
            .http
            .get(url)
            .bearer_auth(&s.access_token)
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        ensure!(status.is_success(), "tenant {i}: {status}: {body}");
        Ok(body
            .get("value")
            .unwrap_or(&body)
            .as_array()
            .map_or(0, Vec::len))
    }
}

fn session(index: usize, body: &Value) -> Session {
    Session {
        index,
        access_token: body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        refresh_token: body["refresh_token"].as_str().map(str::to_string),
    }
}

/// Runs `work` over every item, `IN_FLIGHT` at a time; the server CPU per request in µs.
async fn phase<T, F, Fut>(
    name: &str,
    items: Vec<T>,
    requests_per_item: f64,
    work: F,
) -> Result<Vec<Fut::Output>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future,
{
    let cpu0 = server_cpu_ns();
    let wall = Instant::now();
    let n = items.len();
    let out: Vec<_> = futures::stream::iter(items.into_iter().map(work))
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let cpu = server_cpu_ns() - cpu0;
    let requests = n as f64 * requests_per_item;
    println!(
        "{name:<28} {requests:>8.0} requests in {:>6.2} s wall, server CPU {:>6.2} s = {:>6.1} µs/request",
        wall.elapsed().as_secs_f64(),
        cpu as f64 / 1e9,
        cpu as f64 / 1e3 / requests
    );
    Ok(out)
}

/// Loads `json` in the release `emulator` binary beside this example, if built: the seconds until
/// it serves, and its `VmRSS`/`VmHWM` in MiB then.
fn in_the_binary(json: &str) -> Result<Option<(f64, f64, f64)>> {
    use std::io::BufRead;
    let exe = std::env::current_exe()?;
    let Some(binary) = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|release| release.join("emulator"))
        .filter(|b| b.exists())
    else {
        return Ok(None);
    };
    let file = std::env::temp_dir().join(format!("fleet-{}.json", std::process::id()));
    std::fs::write(&file, json)?;
    let started = Instant::now();
    let mut child = std::process::Command::new(binary)
        .args(["--scenario", &file.to_string_lossy(), "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    for line in std::io::BufReader::new(stdout).lines() {
        if line?.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let ready = started.elapsed().as_secs_f64();
    let memory = memory_of(&child.id().to_string());
    child.kill()?;
    child.wait()?;
    std::fs::remove_file(&file)?;
    Ok(Some((ready, memory.0, memory.1)))
}

fn main() -> Result<()> {
    let tenants: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let alerts: usize = std::env::args()
        .nth(2)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(3);
    let (rss0, _) = memory_mib();
    let json = serde_json::to_string(&fleet::fleet(tenants, alerts, START)?)?;
    println!(
        "fleet of {tenants} tenants, {alerts} alerts each: scenario JSON {:.1} MiB",
        json.len() as f64 / (1024.0 * 1024.0)
    );

    match in_the_binary(&json)? {
        Some((ready, rss, hwm)) => println!(
            "release emulator binary: serving after {:.0} ms (process start, file read, parse, \
             world); resident {rss:.0} MiB, peak {hwm:.0} MiB",
            ready * 1e3
        ),
        None => println!("(build the release emulator binary to measure it alone)"),
    }
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("emu-server")
        .enable_all()
        .build()?;
    let parse = Instant::now();
    let scenario: emulator::Scenario = serde_json::from_str(&json)?;
    let parsed = parse.elapsed();
    drop(json);
    let (rss_parsed, _) = memory_mib();
    let load = Instant::now();
    let emu = server.block_on(emulator::start(scenario))?;
    let loaded = load.elapsed();
    let (rss, _) = memory_mib();
    println!(
        "load: parse {:.0} ms + world and listener {:.0} ms = {:.0} ms; resident {:.0} MiB \
         (+{:.0} MiB: {:.0} MiB with the parsed scenario, +{:.0} MiB for the world)",
        parsed.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3,
        (parsed + loaded).as_secs_f64() * 1e3,
        rss,
        rss - rss0,
        rss_parsed - rss0,
        rss - rss_parsed
    );

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let driver = Driver {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(IN_FLIGHT)
            .build()?,
        urls: emu.urls().clone(),
    };
    client.block_on(async {
        // Onboarding: application tenants 1 request (2 unconsented), delegated 2.
        let onboarding_requests = (0..tenants)
            .map(|i| match fleet::model(i) {
                Model::Application if fleet::consented(i) => 1.0,
                _ => 2.0,
            })
            .sum::<f64>()
            / tenants as f64;
        let sessions = phase(
            "onboard + first token",
            (0..tenants).collect(),
            onboarding_requests,
            |i| driver.onboard(i),
        )
        .await?;
        let mut sessions: Vec<Session> = sessions.into_iter().collect::<Result<_>>()?;
        let mut served = 0;
        for round in 0..2 {
            let reads = phase(
                &format!("round {round}: alert reads"),
                sessions.iter().collect(),
                1.0,
                |s| driver.read(s),
            )
            .await?;
            served += reads
                .into_iter()
                .collect::<Result<Vec<_>>>()?
                .iter()
                .sum::<usize>();
            let renewing: Vec<&Session> =
                sessions.iter().filter(|s| s.index % 3 == round).collect();
            let renewed = phase(
                &format!("round {round}: token renewals"),
                renewing,
                1.0,
                |s| driver.renew(s),
            )
            .await?;
            for s in renewed {
                let s = s?;
                let i = s.index;
                sessions[i] = s;
            }
        }
        println!("alerts or records served: {served}");
        Ok::<(), anyhow::Error>(())
    })?;

    let (rss, hwm) = memory_mib();
    println!("after the run: resident {rss:.0} MiB, peak {hwm:.0} MiB");
    let world = emu.state().world();
    let per_tenant: Vec<u64> = world
        .tenant_requests
        .values()
        .map(|c| c.graph + c.mde + c.siem + c.token + c.authorize)
        .collect();
    println!(
        "per-tenant Microsoft requests (GET /_emulator/stats/tenants): {} tenants, {:.2} on average, {} at most",
        per_tenant.len(),
        per_tenant.iter().sum::<u64>() as f64 / per_tenant.len().max(1) as f64,
        per_tenant.iter().max().copied().unwrap_or(0)
    );
    drop(world);
    drop(emu);
    drop(server);
    Ok(())
}
