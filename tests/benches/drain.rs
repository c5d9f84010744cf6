//! `cargo bench -p tests --bench drain [-- --alerts N]`: drains a 100,000-alert Microsoft Graph
//! backlog from the emulator into the local file sink, and prints CPU seconds per alert and peak
//! RSS beside two floors measured in the same run on the same response bytes:
//!
//! - the *reference* floor: a JSON tree (`serde_json::Value`) of each page and gzip at level 6
//!   with flate2's default backend (`miniz_oxide`, called directly here, since the workspace's
//!   flate2 runs zlib-rs);
//! - the *lean* floor: the product's own page parse (borrowed, each alert kept as raw bytes and
//!   only its head read: `odata::parse_page`) and gzip of the page with the product's
//!   compressor at the product's default level.
//!
//! With `--alerts N` the two drains run again with N alerts spaced so that all of them fall in
//! the first fetch's window (N = 1,000,000: 300 ms apart over the same 3.5 days), and the table
//! compares their CPU per alert and peak RSS with the 100,000-alert run (the floors are measured
//! at 100,000 only).
//!
//! Every measured phase runs in its own process (this binary again, with `--phase`), so its CPU
//! time and peak RSS (`VmHWM`, which cannot be reset) are its own; the emulator is the release
//! `emulator` binary in another process, so none of its work is counted. Phases:
//!
//! | phase | what is timed |
//! |---|---|
//! | reference floor | `serde_json::from_slice::<Value>` and miniz_oxide gzip level 6 of each page, downloaded beforehand (not timed) |
//! | lean floor | `odata::parse_page` and flate2 gzip at the product's default level of each page |
//! | drain | one `fetch_tenant` of the whole backlog, next links followed |
//! | drain without next links | the same with the tenant's `graph_next_link` switch off, so paging goes by creation-time boundary |
//!
//! The targets (drain CPU per alert at most 0.75x the reference floor and 1.25x the lean floor;
//! at N alerts within 10 % of the 100,000-alert run in CPU per alert and RSS) are printed, never
//! enforced: nothing here is a timing assertion. The run fails (exit 1) only when a drain delivers
//! the wrong number of records, its peak RSS reaches 48 MB at 100,000 alerts, or at N alerts
//! exceeds 1.1x that drain's peak RSS at 100,000.

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
use shared::config::{Cloud, CloudEndpoints, GzipLevel};
use shared::domain::{AlertApi, AuthModel, TenantId};
use shared::flows::Deps;
use shared::flows::fetch::{FetchOptions, NoHooks, fetch_tenant};
use shared::flows::onboarding::NewTenant;
use shared::microsoft::alerts::odata::{Flavor, parse_page};
use tests::bench::{load_average, mark};
use tests::fleet::{cpu_s, peak_rss_mb};
use tests::local;
use url::Url;

/// Alerts in the backlog every run drains; `--alerts N` adds a run with N.
const BASE_ALERTS: u64 = 100_000;
/// The limit on a drain's peak RSS at 100,000 alerts.
const RSS_LIMIT_MB: f64 = 48.0;
/// At N alerts, a drain's peak RSS may be at most this times its peak at 100,000.
const RSS_GROWTH_LIMIT: f64 = 1.1;
/// Targets, printed and never enforced: drain CPU per alert over each floor's, and at N alerts
/// over the same drain's at 100,000.
const TARGET_VS_REFERENCE: f64 = 0.75;
const TARGET_VS_LEAN: f64 = 1.25;
const TARGET_FLAT: f64 = 1.10;
/// The span the alerts' creation times cover, whatever their number: inside the first fetch's
/// seven-day lookback.
const SPAN_MS: u64 = 300_000_000;
/// Graph's page size (`$top`), as the product asks.
const PAGE: usize = 1000;
/// Graph requests per minute, for the emulator and the client alike: high enough that the
/// budget never waits, so throttling does not hide the client's own cost.
const GRAPH_PER_MINUTE: u32 = 1_000_000;
const APP_ID: &str = "7f3b2c1a-5d4e-4f60-9a8b-1c2d3e4f5a6b";
const APP_SECRET: &str = "bench-client-secret-value";
const PUBLIC_BASE: &str = "http://127.0.0.1:8080";
const TENANT: &str = "33333333-3333-4333-8333-333333333333";
const START: &str = "2026-03-01T09:00:00Z";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench` (and any filter); only `--phase` and `--alerts` mean
    // anything here.
    let result = match args.iter().position(|a| a == "--phase") {
        Some(i) => phase(args.get(i + 1..).unwrap_or_default()),
        None => alerts_flag(&args).and_then(orchestrate),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("drain bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The backlog sizes to run: 100,000, and N from `--alerts N` when it differs.
fn alerts_flag(args: &[String]) -> anyhow::Result<Vec<u64>> {
    let mut sizes = vec![BASE_ALERTS];
    if let Some(i) = args.iter().position(|a| a == "--alerts") {
        let n: u64 = args
            .get(i + 1)
            .context("--alerts needs a number")?
            .replace(['_', ','], "")
            .parse()
            .context("--alerts N: N is a number of alerts")?;
        ensure!(
            (PAGE as u64..=SPAN_MS).contains(&n),
            "--alerts N: N from {PAGE} to {SPAN_MS}"
        );
        if n != BASE_ALERTS {
            sizes.push(n);
        }
    }
    Ok(sizes)
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

impl Measured {
    fn cpu_us_per_alert(&self) -> f64 {
        self.cpu_s / self.alerts.max(1) as f64 * 1e6
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reference,
    Lean,
    Drain,
    DrainNoLinks,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Reference => "reference floor",
            Kind::Lean => "lean floor",
            Kind::Drain => "drain, next links",
            Kind::DrainNoLinks => "drain, no next links",
        }
    }

    fn phase(self) -> &'static str {
        match self {
            Kind::Reference => "reference",
            Kind::Lean => "lean",
            Kind::Drain | Kind::DrainNoLinks => "drain",
        }
    }

    fn is_drain(self) -> bool {
        matches!(self, Kind::Drain | Kind::DrainNoLinks)
    }
}

struct Row {
    size: u64,
    kind: Kind,
    m: Measured,
    emulator_cpu_s: f64,
}

fn orchestrate(sizes: Vec<u64>) -> anyhow::Result<ExitCode> {
    let emulator_bin = emulator_binary()?;
    let load_before = load_average();
    let mut rows = Vec::new();
    for &size in &sizes {
        rows.extend(run_size(&emulator_bin, size)?);
    }
    print_table(&rows, &load_before, &load_average());
    Ok(if verdict(&rows) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every phase against an emulator holding `size` alerts.
fn run_size(emulator_bin: &Path, size: u64) -> anyhow::Result<Vec<Row>> {
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let scenario = tmp.path().join("scenario.json");
    fs::write(&scenario, serde_json::to_vec_pretty(&scenario_json(size))?)?;
    eprintln!("drain bench: starting the emulator with {size} Graph alerts");
    let emu = EmulatorProcess::spawn(emulator_bin, &scenario, &tmp.path().join("emulator.log"))?;
    let world = tmp.path().join("emulated.json");
    fs::write(&world, serde_json::to_vec(&emu.urls)?)?;
    let pages = tmp.path().join("pages");
    fs::create_dir(&pages)?;
    let mut rows = Vec::new();
    // The floors read the same pages, downloaded once (not timed) and kept on disk; only at
    // 100,000 alerts (a larger backlog is compared with the same drain at 100,000, and its pages
    // would fill gigabytes of disk).
    if size == BASE_ALERTS {
        eprintln!("drain bench: downloading the {size} alerts for the floors …");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(download(&pages, &emu.urls))?;
        for kind in [Kind::Reference, Kind::Lean] {
            rows.push(run_phase(kind, size, &world, &pages, &emu)?);
        }
    }
    rows.push(run_phase(Kind::Drain, size, &world, &pages, &emu)?);
    switch_next_links_off(&emu.urls.control)?;
    rows.push(run_phase(Kind::DrainNoLinks, size, &world, &pages, &emu)?);
    Ok(rows)
}

/// One tenant, application permissions on Graph, `alerts` alerts created evenly over the 3.5 days
/// before a frozen clock (3 s apart for 100,000; a fifth of them updated an hour later), no
/// throttling to speak of.
fn scenario_json(alerts: u64) -> Value {
    json!({
        "description": format!("drain bench: one tenant with a {alerts}-alert Graph backlog"),
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
                "count": alerts, "start": "-4d", "every": format!("{}ms", SPAN_MS / alerts),
                "seed": 33, "update_fraction": 0.2, "update_after": "1h"
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
        cpu_s(self.child.id())
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kind`'s phase in a child process and reads what it measured; the emulator's CPU time
/// over the phase is read from outside.
fn run_phase(
    kind: Kind,
    size: u64,
    world: &Path,
    pages: &Path,
    emu: &EmulatorProcess,
) -> anyhow::Result<Row> {
    let label = kind.label();
    eprintln!("drain bench: {size} alerts, {label} …");
    let before = emu.cpu_s()?;
    let mut cmd = phase_command()?;
    let out = cmd
        .args(["--phase", kind.phase()])
        .arg(world)
        .arg(pages)
        .arg(size.to_string())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running phase {label}"))?;
    let emulator_cpu_s = emu.cpu_s()? - before;
    ensure!(out.status.success(), "phase {label} failed: {}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .with_context(|| format!("phase {label} printed no result"))?;
    Ok(Row {
        size,
        kind,
        m: serde_json::from_str(last).with_context(|| format!("phase {label}: {last}"))?,
        emulator_cpu_s,
    })
}

/// This bench again, or under the profiler `DRAIN_BENCH_PROFILER` names (for example
/// `DRAIN_BENCH_PROFILER="heaptrack -o /tmp/drain"`: which allocation holds the peak).
fn phase_command() -> anyhow::Result<Command> {
    let exe = std::env::current_exe()?;
    let profiler = std::env::var("DRAIN_BENCH_PROFILER").unwrap_or_default();
    let mut words = profiler.split_whitespace();
    Ok(match words.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words).arg(exe);
            cmd
        }
        None => Command::new(exe),
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

fn find(rows: &[Row], size: u64, kind: Kind) -> Option<&Row> {
    rows.iter().find(|r| r.size == size && r.kind == kind)
}

fn print_table(rows: &[Row], load_before: &str, load_after: &str) {
    println!();
    println!(
        "drain bench: Graph alerts, emulator in its own process; each phase in its own process; gzip level {} (product default)",
        GzipLevel::DEFAULT
    );
    // Wall times mean little on a busy machine; CPU seconds and RSS hold.
    println!(
        "load average (1 min) before {load_before}, after {load_after}; {} CPUs",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "{:>8} {:<22} {:>8} {:>9} {:>7} {:>9} {:>12} {:>9} {:>9}",
        "backlog",
        "phase",
        "alerts",
        "wall s",
        "CPU s",
        "µs/alert",
        "peak RSS MB",
        "requests",
        "emu CPU s"
    );
    for r in rows {
        println!(
            "{:>8} {:<22} {:>8} {:>9.2} {:>7.2} {:>9.1} {:>12.1} {:>9} {:>9.2}",
            r.size,
            r.kind.label(),
            r.m.alerts,
            r.m.wall_s,
            r.m.cpu_s,
            r.m.cpu_us_per_alert(),
            r.m.peak_rss_mb,
            r.m.requests,
            r.emulator_cpu_s
        );
    }
    println!();
    println!(
        "targets (CPU per alert, same run): drain ≤ {TARGET_VS_REFERENCE}x the reference floor, ≤ {TARGET_VS_LEAN}x the lean floor; peak RSS < {RSS_LIMIT_MB} MB at {BASE_ALERTS}"
    );
    for r in rows
        .iter()
        .filter(|r| r.kind.is_drain() && r.size == BASE_ALERTS)
    {
        let us = r.m.cpu_us_per_alert();
        let vs =
            |kind: Kind| find(rows, r.size, kind).map_or(f64::NAN, |f| us / f.m.cpu_us_per_alert());
        let (reference, lean) = (vs(Kind::Reference), vs(Kind::Lean));
        let rss = format!(
            "{:.1} MB {}",
            r.m.peak_rss_mb,
            mark(r.m.peak_rss_mb < RSS_LIMIT_MB)
        );
        println!(
            "  {:>8} {:<22} {:>6.1} µs/alert   {:>5.2}x reference {:<4}   {:>5.2}x lean {:<4}   RSS {rss}",
            r.size,
            r.kind.label(),
            us,
            reference,
            mark(reference <= TARGET_VS_REFERENCE),
            lean,
            mark(lean <= TARGET_VS_LEAN),
        );
    }
    let larger: Vec<&Row> = rows
        .iter()
        .filter(|r| r.size != BASE_ALERTS && r.kind.is_drain())
        .collect();
    if !larger.is_empty() {
        println!();
        println!(
            "flat as the backlog grows (same drain at {BASE_ALERTS}): CPU per alert ≤ {TARGET_FLAT}x, peak RSS ≤ {RSS_GROWTH_LIMIT}x"
        );
    }
    for r in larger {
        let Some(base) = find(rows, BASE_ALERTS, r.kind) else {
            continue;
        };
        let cpu = r.m.cpu_us_per_alert() / base.m.cpu_us_per_alert();
        let rss = r.m.peak_rss_mb / base.m.peak_rss_mb;
        println!(
            "  {:>8} {:<22} CPU per alert {:>5.2}x {:<4}   peak RSS {:>5.2}x {}",
            r.size,
            r.kind.label(),
            cpu,
            mark(cpu <= TARGET_FLAT),
            rss,
            mark(rss <= RSS_GROWTH_LIMIT),
        );
    }
    println!(
        "  a drain's wall time includes waiting for the emulator (emu CPU s); the floors' have no I/O"
    );
}

/// Whether every drain delivered exactly its backlog within the memory limits (time is never
/// judged).
fn verdict(rows: &[Row]) -> bool {
    let mut ok = true;
    for r in rows.iter().filter(|r| r.kind.is_drain()) {
        let label = format!("{} alerts, {}", r.size, r.kind.label());
        let sink = r.m.sink_records.unwrap_or_default();
        // Every alert is visible once, in one version: exactly-once means exactly the backlog.
        if r.m.alerts != r.size || sink != r.size {
            eprintln!(
                "FAIL {label}: delivered {} records, the sink holds {sink}; exactly {} expected",
                r.m.alerts, r.size
            );
            ok = false;
        }
        let limit = if r.size == BASE_ALERTS {
            RSS_LIMIT_MB
        } else {
            find(rows, BASE_ALERTS, r.kind)
                .map_or(RSS_LIMIT_MB, |b| b.m.peak_rss_mb * RSS_GROWTH_LIMIT)
        };
        if r.m.peak_rss_mb >= limit {
            eprintln!(
                "FAIL {label}: peak RSS {:.1} MB is not under {limit:.1} MB",
                r.m.peak_rss_mb
            );
            ok = false;
        }
    }
    ok
}

// ---------------------------------------------------------------------------------------------
// The children: one measured phase each.

fn phase(args: &[String]) -> anyhow::Result<ExitCode> {
    let [name, world, pages, alerts, ..] = args else {
        bail!("usage: drain --phase reference|lean|drain EMULATED_JSON PAGES_DIR ALERTS");
    };
    let urls: Emulated = serde_json::from_slice(&fs::read(world)?)?;
    let (pages, alerts) = (Path::new(pages), alerts.parse::<u64>()?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let m = match name.as_str() {
        "drain" => rt.block_on(drain(&urls))?,
        "reference" => floor(pages, alerts, reference_floor)?,
        "lean" => floor(pages, alerts, lean_floor)?,
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
        siem: shared::config::SiemEndpoint::fixed(Url::parse(&urls.siem)?),
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
        siem_region: None,
    };
    local::onboard(&s, &http, new).await?;
    Ok(s)
}

/// One scheduled fetch of the whole backlog into the file sink.
async fn drain(urls: &Emulated) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir()?;
    let s = onboarded(dir.path(), urls).await?;
    let opts = FetchOptions {
        deadline: tokio::time::Instant::now() + Duration::from_secs(3 * 3600),
        owner: uuid::Uuid::new_v4().to_string(),
        hooks: &NoHooks,
    };
    let cpu = process_cpu_s()?;
    let t = Instant::now();
    let report = fetch_tenant(&s, &tenant_id()?, &opts).await?;
    let wall_s = t.elapsed().as_secs_f64();
    let cpu_s = process_cpu_s()? - cpu;
    // Before anything below allocates.
    let peak_rss_mb = peak_rss_mb(std::process::id())?;
    Ok(Measured {
        alerts: report.delivered,
        wall_s,
        cpu_s,
        peak_rss_mb,
        requests: report.http.requests,
        sink_records: Some(count_lines(&dir.path().join("alerts"))?),
    })
}

/// The reference floor of one page: a JSON tree, and gzip level 6 with flate2's default backend.
fn reference_floor(page: Vec<u8>) -> anyhow::Result<usize> {
    let v: Value = serde_json::from_slice(&page)?;
    let zipped = miniz_gzip(&page, 6)?;
    let n = v["value"].as_array().map_or(0, Vec::len);
    std::hint::black_box((&v, &zipped));
    Ok(n)
}

/// The lean floor of one page: the product's parse (one pass, UTF-8 check included), and gzip
/// with the product's compressor at its default level, written as the sinks write (64 KiB at a
/// time).
fn lean_floor(page: Vec<u8>) -> anyhow::Result<usize> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::new(GzipLevel::DEFAULT.get()));
    for part in page.chunks(64 * 1024) {
        gz.write_all(part)?;
    }
    let zipped = gz.finish()?;
    let parsed = parse_page(Flavor::Graph, page, PAGE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let n = parsed.alerts.len();
    std::hint::black_box((&parsed, &zipped));
    Ok(n)
}

/// gzip as flate2's default backend writes it (flate2 1.x's `GzEncoder` over `miniz_oxide`): a
/// bare header, raw deflate streamed through a 32 KiB output buffer zeroed before every call,
/// CRC-32 and length.
fn miniz_gzip(data: &[u8], level: u8) -> anyhow::Result<Vec<u8>> {
    use miniz_oxide::deflate::core::CompressorOxide;
    use miniz_oxide::deflate::stream::deflate;
    use miniz_oxide::{DataFormat, MZFlush, MZStatus};
    let mut compressor = Box::<CompressorOxide>::default();
    compressor.set_format_and_level(DataFormat::Raw, level);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut buf = vec![0u8; 32 * 1024];
    let mut input = data;
    loop {
        let flush = if input.is_empty() {
            MZFlush::Finish
        } else {
            MZFlush::None
        };
        buf.fill(0);
        let r = deflate(&mut compressor, input, &mut buf, flush);
        input = &input[r.bytes_consumed..];
        out.extend_from_slice(&buf[..r.bytes_written]);
        match r.status {
            Ok(MZStatus::StreamEnd) => break,
            Ok(_) => {}
            Err(e) => bail!("miniz_oxide: {e:?}"),
        }
    }
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}

/// Times `per_page` over every downloaded page (read from disk, not timed, one at a time as the
/// client holds them), on this thread's CPU clock.
fn floor(
    pages: &Path,
    expected: u64,
    per_page: fn(Vec<u8>) -> anyhow::Result<usize>,
) -> anyhow::Result<Measured> {
    let mut files: Vec<PathBuf> = fs::read_dir(pages)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let (mut alerts, mut wall, mut cpu_ns) = (0u64, Duration::ZERO, 0u64);
    for page in &files {
        let bytes = fs::read(page)?;
        let cpu = thread_cpu_ns()?;
        let t = Instant::now();
        let n = per_page(bytes)?;
        wall += t.elapsed();
        cpu_ns += thread_cpu_ns()? - cpu;
        alerts += n as u64;
    }
    ensure!(alerts == expected, "the floor saw {alerts} alerts");
    Ok(Measured {
        alerts,
        wall_s: wall.as_secs_f64(),
        cpu_s: cpu_ns as f64 / 1e9,
        peak_rss_mb: peak_rss_mb(std::process::id())?,
        requests: files.len() as u64,
        sink_records: None,
    })
}

/// Lists every alert with the largest pages, following `@odata.nextLink`, into one file a page
/// under `dir`.
async fn download(dir: &Path, urls: &Emulated) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Link {
        #[serde(rename = "@odata.nextLink")]
        next: Option<String>,
    }
    let deps = tempfile::tempdir()?;
    let s = onboarded(deps.path(), urls).await?;
    let tenant = s.registry.get(&tenant_id()?).await?.context("the tenant")?;
    let token = shared::flows::refresh::access_token(&s, &tenant).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut url = Some(format!(
        "{}/v1.0/security/alerts_v2?$top={PAGE}",
        urls.graph.trim_end_matches('/')
    ));
    let mut n = 0;
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
        fs::write(dir.join(format!("page-{n:05}.json")), &body)?;
        n += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measuring without `unsafe`: /proc.

/// CPU seconds (user + system) this process has used, over all its threads, ended ones included.
fn process_cpu_s() -> anyhow::Result<f64> {
    cpu_s(std::process::id())
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
