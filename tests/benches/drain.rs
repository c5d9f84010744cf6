//! `cargo bench -p tests --bench drain`: drains a 100,000-alert Microsoft Graph backlog from the
//! emulator into the local file sink, and prints alerts/s, CPU seconds and peak RSS beside a
//! floor measured in the same run — `serde_json` parsing plus gzip of the same response bytes.
//!
//! Every measured phase runs in its own process (this binary again, with `--phase`), so its CPU
//! time and peak RSS (`VmHWM`, which cannot be reset) are its own; the emulator is the release
//! `emulator` binary in another process, so none of its work is counted. Phases:
//!
//! | phase | what is timed |
//! |---|---|
//! | floor | `serde_json::from_slice::<Value>` and gzip (default level) of each of the 100 pages, downloaded beforehand (not timed) |
//! | drain | one `fetch_tenant` of the whole backlog, next links followed |
//! | drain without next links | the same with the tenant's `graph_next_link` switch off, so paging goes by creation-time boundary |
//!
//! Nothing here is a timing assertion. The run fails (exit 1) only when a drain delivers fewer
//! than 100,000 records or its peak RSS reaches 100 MB: the limits the issue sets.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::clock::ManualClock;
use shared::config::{Cloud, CloudEndpoints};
use shared::domain::{AlertApi, AuthModel, TenantId};
use shared::flows::Deps;
use shared::flows::fetch::{FetchOptions, NoHooks, fetch_tenant};
use shared::flows::onboarding::NewTenant;
use tests::local;
use url::Url;

/// Alerts in the backlog.
const ALERTS: u64 = 100_000;
/// The limit on a drain's peak RSS.
const RSS_LIMIT_MB: f64 = 100.0;
/// Graph requests per minute, for the emulator and the client alike: high enough that the
/// budget never waits, so throttling does not hide the client's own cost.
const GRAPH_PER_MINUTE: u32 = 1_000_000;
/// Clock ticks per second of `/proc/*/stat` (`USER_HZ`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;
const APP_ID: &str = "7f3b2c1a-5d4e-4f60-9a8b-1c2d3e4f5a6b";
const APP_SECRET: &str = "bench-client-secret-value";
const PUBLIC_BASE: &str = "http://127.0.0.1:8080";
const TENANT: &str = "33333333-3333-4333-8333-333333333333";
const START: &str = "2026-03-01T09:00:00Z";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench` (and any filter); only `--phase` means anything here.
    let result = match args.iter().position(|a| a == "--phase") {
        Some(i) => phase(args.get(i + 1..).unwrap_or_default()),
        None => orchestrate(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("drain bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: emulator, phases, table.

/// What the parent tells a phase: where the emulator is.
#[derive(Serialize, Deserialize)]
struct Emulated {
    authority: String,
    graph: String,
    mde: String,
    siem: String,
    control: String,
}

/// What a phase measured, printed by the child as its last stdout line.
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    alerts: u64,
    wall_s: f64,
    cpu_s: f64,
    peak_rss_mb: f64,
    requests: u64,
    /// Records found in the sink afterwards (drains only).
    sink_records: Option<u64>,
}

struct Row {
    label: &'static str,
    m: Measured,
    emulator_cpu_s: f64,
}

fn orchestrate() -> anyhow::Result<ExitCode> {
    let emulator_bin = emulator_binary()?;
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let scenario = tmp.path().join("scenario.json");
    fs::write(&scenario, serde_json::to_vec_pretty(&scenario_json())?)?;
    eprintln!("drain bench: starting the emulator with {ALERTS} Graph alerts");
    let emu = EmulatorProcess::spawn(&emulator_bin, &scenario, &tmp.path().join("emulator.log"))?;
    let world = tmp.path().join("emulated.json");
    fs::write(&world, serde_json::to_vec(&emu.urls)?)?;

    let load_before = load_average();
    let mut rows = Vec::new();
    rows.push(run_phase(
        "floor",
        "floor: serde_json + gzip",
        &world,
        &emu,
    )?);
    rows.push(run_phase("drain", "drain, next links", &world, &emu)?);
    switch_next_links_off(&emu.urls.control)?;
    rows.push(run_phase("drain", "drain, no next links", &world, &emu)?);
    drop(emu);

    print_table(&rows, &load_before, &load_average());
    let mut failed = false;
    for row in rows.iter().filter(|r| r.m.sink_records.is_some()) {
        let sink = row.m.sink_records.unwrap_or_default();
        // Every alert is visible once, in one version: exactly-once means exactly ALERTS.
        if row.m.alerts != ALERTS || sink != ALERTS {
            eprintln!(
                "FAIL {}: delivered {} records, the sink holds {sink}; exactly {ALERTS} expected",
                row.label, row.m.alerts
            );
            failed = true;
        }
        if row.m.peak_rss_mb >= RSS_LIMIT_MB {
            eprintln!(
                "FAIL {}: peak RSS {:.1} MB is not under {RSS_LIMIT_MB} MB",
                row.label, row.m.peak_rss_mb
            );
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One tenant, application permissions on Graph, 100,000 alerts created 3 s apart over the four
/// days before a frozen clock (a fifth of them updated an hour later), no throttling to speak of.
fn scenario_json() -> Value {
    json!({
        "description": "drain bench: one tenant with a 100,000-alert Graph backlog",
        "clock": {"start": START, "frozen": true},
        "settings": {"auto_approve": true, "graph_per_minute": GRAPH_PER_MINUTE},
        "apps": [{
            "client_id": APP_ID, "name": "MSSP Alert Connector",
            "secrets": [{"value": APP_SECRET, "expires": "+365d"}],
            "redirect_uris": [format!("{PUBLIC_BASE}/consent/callback")],
            "permissions": {"app_roles": {"graph": ["SecurityAlert.Read.All"]}}
        }],
        "tenants": [{
            "id": TENANT, "name": "Northwind", "domains": ["northwind.onmicrosoft.com"],
            "users": [{"upn": "admin@northwind.onmicrosoft.com", "name": "Northwind Admin", "admin": true}],
            "generate": [{
                "count": ALERTS, "start": "-4d", "every": "3s", "seed": 33,
                "update_fraction": 0.2, "update_after": "1h"
            }]
        }]
    })
}

/// The release `emulator` binary beside this bench (`target/release/`), built first: `cargo
/// build` is quick when it is up to date. `EMULATOR_BIN` overrides both.
fn emulator_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("EMULATOR_BIN") {
        return Ok(bin.into());
    }
    let exe = std::env::current_exe().context("locating this bench")?;
    // This bench is target/release/deps/drain-…; binaries sit one level up.
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .context("this bench is not inside a target directory")?
        .join("emulator");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("drain bench: cargo build --release -p emulator --bin emulator");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "emulator", "--bin", "emulator"])
        .current_dir(tests::workspace_root())
        .status()
        .context("running cargo build for the emulator")?;
    ensure!(status.success(), "building the emulator failed: {status}");
    ensure!(bin.is_file(), "no emulator binary at {}", bin.display());
    Ok(bin)
}

/// The emulator in its own process; killed on drop.
struct EmulatorProcess {
    child: Child,
    urls: Emulated,
}

impl EmulatorProcess {
    /// Starts `bin` with `scenario` on a free port and reads the service URLs it prints.
    fn spawn(bin: &Path, scenario: &Path, log: &Path) -> anyhow::Result<EmulatorProcess> {
        let mut child = Command::new(bin)
            .arg("--scenario")
            .arg(scenario)
            .args(["--port", "0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(log).context("emulator log")?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("emulator stdout")?;
        // Owned from here, so the child is killed on any early return.
        let mut emu = EmulatorProcess {
            child,
            urls: Emulated {
                authority: String::new(),
                graph: String::new(),
                mde: String::new(),
                siem: String::new(),
                control: String::new(),
            },
        };
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading the emulator's output")?;
            let mut words = line.split_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let slot = match key {
                "authority" => &mut emu.urls.authority,
                "graph" => &mut emu.urls.graph,
                "mde" => &mut emu.urls.mde,
                "siem" => &mut emu.urls.siem,
                "control" => &mut emu.urls.control,
                "Press" => break,
                _ => continue,
            };
            *slot = value.to_string();
        }
        if emu.urls.control.is_empty() || emu.urls.graph.is_empty() {
            bail!(
                "the emulator stopped before printing its URLs; see {}",
                log.display()
            );
        }
        Ok(emu)
    }

    fn cpu_s(&self) -> anyhow::Result<f64> {
        cpu_s_of(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `phase` in a child process and reads what it measured; the emulator's CPU time over the
/// phase is read from outside.
fn run_phase(
    phase: &str,
    label: &'static str,
    world: &Path,
    emu: &EmulatorProcess,
) -> anyhow::Result<Row> {
    eprintln!("drain bench: {label} …");
    let before = emu.cpu_s()?;
    let out = Command::new(std::env::current_exe()?)
        .args(["--phase", phase])
        .arg(world)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running phase {phase}"))?;
    let emulator_cpu_s = emu.cpu_s()? - before;
    ensure!(out.status.success(), "phase {label} failed: {}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .with_context(|| format!("phase {label} printed no result"))?;
    Ok(Row {
        label,
        m: serde_json::from_str(last).with_context(|| format!("phase {label}: {last}"))?,
        emulator_cpu_s,
    })
}

/// Turns the tenant's Graph next links off, so drains continue by creation-time boundary.
fn switch_next_links_off(control: &str) -> anyhow::Result<()> {
    let url = format!(
        "{}/tenants/{TENANT}/switches",
        control.trim_end_matches('/')
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let r = reqwest::Client::new()
                .patch(url)
                .json(&json!({"graph_next_link": false}))
                .send()
                .await?;
            ensure!(r.status().is_success(), "PATCH switches: {}", r.status());
            let switches: Value = r.json().await?;
            ensure!(
                switches["graph_next_link"] == false,
                "the emulator kept next links on: {switches}"
            );
            Ok(())
        })
}

fn print_table(rows: &[Row], load_before: &str, load_after: &str) {
    println!();
    println!(
        "drain bench: {ALERTS} Graph alerts, emulator in its own process; each phase in its own process"
    );
    // Wall times mean little on a busy machine; CPU seconds and RSS hold.
    println!(
        "load average (1 min) before {load_before}, after {load_after}; {} CPUs",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "{:<26} {:>8} {:>8} {:>10} {:>7} {:>12} {:>9} {:>9}",
        "phase", "alerts", "wall s", "alerts/s", "CPU s", "peak RSS MB", "requests", "emu CPU s"
    );
    for r in rows {
        println!(
            "{:<26} {:>8} {:>8.2} {:>10.0} {:>7.2} {:>12.1} {:>9} {:>9.2}",
            r.label,
            r.m.alerts,
            r.m.wall_s,
            r.m.alerts as f64 / r.m.wall_s,
            r.m.cpu_s,
            r.m.peak_rss_mb,
            r.m.requests,
            r.emulator_cpu_s
        );
    }
    let Some((floor, drains)) = rows.split_first() else {
        return;
    };
    println!();
    println!("ratios against the floor (same run):");
    let floor_rate = floor.m.alerts as f64 / floor.m.wall_s;
    let floor_cpu_per_alert = floor.m.cpu_s / floor.m.alerts as f64;
    for r in drains {
        let rate = r.m.alerts as f64 / r.m.wall_s;
        let cpu_per_alert = r.m.cpu_s / r.m.alerts as f64;
        println!(
            "  {:<24} alerts/s {:>6.3} of the floor's   CPU per alert {:>5.2}x the floor's   ({:.1} µs vs {:.1} µs)",
            r.label,
            rate / floor_rate,
            cpu_per_alert / floor_cpu_per_alert,
            cpu_per_alert * 1e6,
            floor_cpu_per_alert * 1e6
        );
    }
    println!("  peak RSS limit {RSS_LIMIT_MB} MB (drains)");
    println!(
        "  a drain's wall time includes waiting for the emulator (emu CPU s); the floor's has no I/O"
    );
}

// ---------------------------------------------------------------------------------------------
// The children: one measured phase each.

fn phase(args: &[String]) -> anyhow::Result<ExitCode> {
    let [name, world, ..] = args else {
        bail!("usage: drain --phase floor|drain EMULATED_JSON");
    };
    let urls: Emulated = serde_json::from_slice(&fs::read(world)?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let m = match name.as_str() {
        "drain" => rt.block_on(drain(&urls))?,
        "floor" => floor(&rt, &urls)?,
        other => bail!("unknown phase {other}"),
    };
    println!("{}", serde_json::to_string(&m)?);
    Ok(ExitCode::SUCCESS)
}

fn tenant_id() -> anyhow::Result<TenantId> {
    TenantId::parse(TENANT).context("tenant id")
}

/// Deps over the file adapters in `dir`, with the tenant onboarded through the real consent
/// flow (application model, Graph) against the emulator, and a Graph budget to match it.
async fn onboarded(dir: &Path, urls: &Emulated) -> anyhow::Result<Deps> {
    local::write_app_secret(dir, APP_ID, APP_SECRET)?;
    let endpoints = CloudEndpoints {
        authority: Url::parse(&urls.authority)?,
        graph: Url::parse(&urls.graph)?,
        mde: Url::parse(&urls.mde)?,
        siem: Url::parse(&urls.siem)?,
    };
    let start: DateTime<Utc> = START.parse()?;
    let mut s = local::file_deps(
        dir,
        endpoints,
        Url::parse(PUBLIC_BASE)?,
        Arc::new(ManualClock::new(start)),
    );
    s.settings.fetch.graph_budget = vec![(GRAPH_PER_MINUTE, Duration::from_secs(60))];
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()?;
    let new = NewTenant {
        id: tenant_id()?,
        display_name: "Northwind".into(),
        auth_model: AuthModel::Application,
        alert_api: AlertApi::Graph,
        cloud: Cloud::Commercial,
        backfill: None,
    };
    local::onboard(&s, &http, new).await?;
    Ok(s)
}

/// One scheduled fetch of the whole backlog into the file sink.
async fn drain(urls: &Emulated) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let s = onboarded(dir.path(), urls).await?;
    let opts = FetchOptions {
        deadline: tokio::time::Instant::now() + Duration::from_secs(1800),
        owner: uuid::Uuid::new_v4().to_string(),
        hooks: &NoHooks,
    };
    let cpu = process_cpu_s()?;
    let t = Instant::now();
    let report = fetch_tenant(&s, &tenant_id()?, &opts).await?;
    let wall_s = t.elapsed().as_secs_f64();
    let cpu_s = process_cpu_s()? - cpu;
    // Before anything below allocates.
    let peak_rss_mb = peak_rss_mb()?;
    Ok(Measured {
        alerts: report.delivered,
        wall_s,
        cpu_s,
        peak_rss_mb,
        requests: report.http.requests,
        sink_records: Some(count_lines(&dir.path().join("alerts"))?),
    })
}

/// Downloads every page once (not timed), then times parsing and gzipping each page's bytes.
fn floor(rt: &tokio::runtime::Runtime, urls: &Emulated) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let pages = rt.block_on(download(dir.path(), urls))?;
    let (mut alerts, mut wall, mut cpu_ns) = (0u64, Duration::ZERO, 0u64);
    for page in &pages {
        // Pages wait on disk, so the floor holds one page at a time, as the client does.
        let bytes = fs::read(page)?;
        let cpu = thread_cpu_ns()?;
        let t = Instant::now();
        let v: Value = serde_json::from_slice(&bytes)?;
        let n = v["value"].as_array().map_or(0, Vec::len);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&bytes)?;
        let zipped = gz.finish()?;
        std::hint::black_box((&v, &zipped));
        drop((v, zipped));
        wall += t.elapsed();
        cpu_ns += thread_cpu_ns()? - cpu;
        alerts += n as u64;
    }
    ensure!(alerts == ALERTS, "the floor saw {alerts} alerts");
    Ok(Measured {
        alerts,
        wall_s: wall.as_secs_f64(),
        cpu_s: cpu_ns as f64 / 1e9,
        peak_rss_mb: peak_rss_mb()?,
        requests: pages.len() as u64,
        sink_records: None,
    })
}

/// Lists every alert with the largest pages, following `@odata.nextLink`, into one file a page.
async fn download(dir: &Path, urls: &Emulated) -> anyhow::Result<Vec<PathBuf>> {
    #[derive(Deserialize)]
    struct Link {
        #[serde(rename = "@odata.nextLink")]
        next: Option<String>,
    }
    let s = onboarded(dir, urls).await?;
    let tenant = s.registry.get(&tenant_id()?).await?.context("the tenant")?;
    let token = shared::flows::refresh::access_token(&s, &tenant).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut url = Some(format!(
        "{}/v1.0/security/alerts_v2?$top=1000",
        urls.graph.trim_end_matches('/')
    ));
    let mut pages = Vec::new();
    while let Some(u) = url {
        let r = http
            .get(&u)
            .bearer_auth(token.expose_secret())
            .header("Prefer", "include-unknown-enum-members")
            .send()
            .await?;
        ensure!(r.status().is_success(), "GET {u}: {}", r.status());
        let body = r.bytes().await?;
        url = serde_json::from_slice::<Link>(&body)?.next;
        let path = dir.join(format!("page-{:04}.json", pages.len()));
        fs::write(&path, &body)?;
        pages.push(path);
    }
    Ok(pages)
}

// ---------------------------------------------------------------------------------------------
// Measuring without `unsafe`: /proc.

/// The 1-minute load average (`/proc/loadavg`), or `?`.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// CPU seconds (user + system) this process has used, over all its threads, ended ones included.
fn process_cpu_s() -> anyhow::Result<f64> {
    cpu_s_of("/proc/self/stat")
}

/// User + system CPU seconds from a `/proc/{pid}/stat` file (fields 14 and 15, in clock ticks).
fn cpu_s_of(stat: &str) -> anyhow::Result<f64> {
    let text = fs::read_to_string(stat).with_context(|| format!("reading {stat}"))?;
    // Field 2, the command name, is in parentheses and may hold spaces; field 3 follows them.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .context("no command name in /proc stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i - 3)
            .context("short /proc stat")?
            .parse()
            .context("a /proc stat field")
    };
    Ok((ticks(14)? + ticks(15)?) as f64 / CLOCK_TICKS)
}

/// Nanoseconds of CPU the calling thread has run (`/proc/thread-self/schedstat`, first field).
fn thread_cpu_ns() -> anyhow::Result<u64> {
    fs::read_to_string("/proc/thread-self/schedstat")?
        .split_whitespace()
        .next()
        .context("empty schedstat")?
        .parse()
        .context("schedstat")
}

/// The process's peak resident set (`VmHWM`) in MB.
fn peak_rss_mb() -> anyhow::Result<f64> {
    let status = fs::read_to_string("/proc/self/status")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .context("no VmHWM")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb / 1024.0)
}

/// Lines (records) in every `.ndjson.gz` object under `dir`, streamed.
fn count_lines(dir: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            n += count_lines(&path)?;
        } else if path.to_string_lossy().ends_with(".ndjson.gz") {
            let mut gz = MultiGzDecoder::new(fs::File::open(&path)?);
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let read = gz.read(&mut buf)?;
                if read == 0 {
                    break;
                }
                n += buf[..read].iter().filter(|b| **b == b'\n').count() as u64;
            }
        }
    }
    Ok(n)
}
