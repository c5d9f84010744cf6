//! `cargo bench -p tests --bench fleet`: a fleet of tenants of the three APIs and both
//! permission models (`emulator::fleet`: application/Graph, delegated v1/SIEM, delegated v2/MDE,
//! a tenth never consented) on the Microsoft emulator answering every request after 50 ms,
//! onboarded by `mssp tenants import` (timed; the delegated tenants then consent through their
//! links, in this process), then fetched in rounds by
//!
//! - **local**: `mssp serve` (release build, its own process, default concurrency), 10,000
//!   tenants by default;
//! - **lambda**: the `alert-fetcher` binary (release build) through the Lambda Runtime API
//!   harness against moto: its scheduled dispatch puts one SQS message per tenant, and this bench,
//!   as Lambda's SQS event source mapping would, receives them and invokes warm fetcher processes
//!   with batches (5 messages, the Terraform module's default), deleting what they did not report
//!   failed; 1,000 tenants by default.
//!
//! ```text
//! cargo build --release --locked -p cli --bin mssp -p alert-fetcher --bin alert-fetcher
//! cargo bench -p tests --bench fleet -- [--tenants N (both paths)] [--local-tenants N]
//!     [--lambda-tenants N] [--path local|lambda|both] [--rounds R] [--interval S]
//!     [--lambda-interval S] [--latency-ms 50] [--active 0.1] [--lambdas 2] [--batch 5]
//! ```
//!
//! **Time.** The product runs on the system clock, so the emulator's clock runs with real time
//! and the 5-minute schedule is played at a shorter interval (`--interval`, default 45 s;
//! `--lambda-interval`, default 30 s): each round stands for 5 minutes of the product's life.
//! The emulator issues access tokens that live `600 s + 10 intervals`: the product renews a
//! token 10 minutes before it expires, so a tenant renews every 10 rounds — as Microsoft's
//! 60-minute tokens at a 5-minute schedule do. `--rounds 24` plays two emulated hours (the
//! default, 12, one).
//!
//! **Alerts.** From the second round to the one before last, a share (`--active`) of the
//! consented tenants gets 3 new alerts at the round's start; the others are idle. The last round
//! adds none, so everything added is due by its end.
//!
//! Per round it prints wall time (local: the interval, and the busy slot time over the
//! concurrency, i.e. the round's length back to back; lambda: dispatch to the last batch), CPU
//! seconds and peak RSS of the product's processes, Microsoft requests per idle tenant, each
//! tenant's actual period against the interval (p50, p99), and on the lambda path AWS calls per
//! tenant by service and operation (counted by a proxy in front of moto, `tests::aws`) and the
//! cost per tenant per month at a 5-minute schedule from the list prices below. The targets are
//! printed, never enforced; the run fails (exit 1) only when a round delivers the wrong count
//! (fewer records than the alerts due, or more than added, or a duplicate dedup key), a tenant
//! misses its interval (a round in which it was not fetched, after the first), or the local
//! process's peak RSS crosses the memory limit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use base64::Engine;
use emulator::fleet::{self, Model};
use emulator::scenario::AlertSpec;
use emulator::{EmuState, Scenario};
use serde_json::{Value, json};
use shared::adapters::aws::{S3AlertSink, s3_client};
use shared::config::deployment::ServiceConfig;
use shared::config::{Cloud, Env};
use shared::domain::{AlertApi, AuthModel, SiemRegion, TenantId};
use shared::flows::Deps;
use shared::flows::onboarding::NewTenant;
use tests::aws::{CallCounts, CountingProxy, calls_between, sdk_config_at, service_env};
use tests::bench::{arg, load_average, mark};
use tests::fleet::{FetchStarts, all_requests, cpu_s, peak_rss_mb, quantile, requests};
use tests::lambda::{LambdaProcess, binary_path, function_config};
use url::Url;

// ---------------------------------------------------------------------------------------------
// AWS list prices, us-east-1, on-demand, no free tier (checked 2025).

/// SQS standard queue: $0.40 per million requests (a batch of up to 10 is one request).
/// <https://aws.amazon.com/sqs/pricing/>
const SQS_PER_REQUEST: f64 = 0.40 / 1e6;
/// DynamoDB on-demand: $0.625 per million write request units (1 KB each).
/// <https://aws.amazon.com/dynamodb/pricing/on-demand/>
const DDB_PER_WRITE_UNIT: f64 = 0.625 / 1e6;
/// DynamoDB on-demand: $0.125 per million read request units (4 KB strongly consistent).
/// <https://aws.amazon.com/dynamodb/pricing/on-demand/>
const DDB_PER_READ_UNIT: f64 = 0.125 / 1e6;
/// Secrets Manager: $0.05 per 10,000 API calls. <https://aws.amazon.com/secrets-manager/pricing/>
const SM_PER_CALL: f64 = 0.05 / 10_000.0;
/// Secrets Manager: $0.40 per secret per month (one per tenant, by design; not in the line).
const SM_PER_SECRET_MONTH: f64 = 0.40;
/// S3 Standard: PUT, COPY, POST, LIST $0.005 per 1,000 requests. <https://aws.amazon.com/s3/pricing/>
const S3_PER_WRITE: f64 = 0.005 / 1000.0;
/// S3 Standard: GET and all other requests $0.0004 per 1,000.
const S3_PER_READ: f64 = 0.0004 / 1000.0;
/// Lambda: $0.20 per million requests. <https://aws.amazon.com/lambda/pricing/>
const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
/// Lambda arm64 (the module's default architecture): $0.0000133334 per GB-second.
const LAMBDA_PER_GB_S: f64 = 0.000_013_333_4;
/// The alert-fetcher's memory in the Terraform module (functions.tf), GB.
const FETCHER_GB: f64 = 0.5;
/// Rounds a month at a 5-minute schedule (30 days).
const ROUNDS_PER_MONTH: f64 = 30.0 * 24.0 * 12.0;

// Targets (printed, never enforced).
const TARGET_ROUND_S: f64 = 60.0;
const TARGET_CPU_MS_PER_IDLE: f64 = 1.0;
const TARGET_MS_REQ_PER_IDLE: f64 = 1.1;
const TARGET_P99_SLACK: f64 = 0.10;
const TARGET_AWS_CALLS_PER_IDLE: f64 = 2.0;
const TARGET_DOLLARS: f64 = 0.01;
/// The local process's memory limit (the run fails above it).
const RSS_LIMIT_MB: f64 = 64.0;

/// The product renews an access token this long before it expires (`Settings::refresh_margin`).
const RENEW_MARGIN_S: u64 = 600;
const ALERTS_PER_ACTIVE: usize = 3;
const PUBLIC_BASE: &str = "http://127.0.0.1:8080";

struct Opts {
    path: String,
    local_tenants: usize,
    lambda_tenants: usize,
    rounds: usize,
    interval: Duration,
    lambda_interval: Duration,
    latency_ms: u64,
    active: f64,
    lambdas: usize,
    batch: usize,
}

fn opts() -> anyhow::Result<Opts> {
    let num = |name: &str, default: f64| -> anyhow::Result<f64> {
        arg(name).map_or(Ok(default), |v| {
            v.replace(['_', ','], "")
                .parse()
                .with_context(|| format!("{name} takes a number"))
        })
    };
    let both = arg("--tenants");
    let local_default = both.as_deref().map_or(Ok(10_000.0), str::parse)?;
    let lambda_default = both.as_deref().map_or(Ok(1_000.0), str::parse)?;
    let o = Opts {
        path: arg("--path").unwrap_or_else(|| "both".into()),
        local_tenants: num("--local-tenants", local_default)? as usize,
        lambda_tenants: num("--lambda-tenants", lambda_default)? as usize,
        rounds: num("--rounds", 12.0)? as usize,
        interval: Duration::from_secs_f64(num("--interval", 45.0)?),
        lambda_interval: Duration::from_secs_f64(num("--lambda-interval", 30.0)?),
        latency_ms: num("--latency-ms", 50.0)? as u64,
        active: num("--active", 0.1)?,
        lambdas: num("--lambdas", 2.0)?.max(1.0) as usize,
        batch: num("--batch", 5.0)?.clamp(1.0, 10.0) as usize,
    };
    ensure!(o.rounds >= 3, "--rounds: at least 3");
    ensure!(
        ["local", "lambda", "both"].contains(&o.path.as_str()),
        "--path local|lambda|both"
    );
    Ok(o)
}

fn main() -> ExitCode {
    let result = opts().and_then(|o| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run(o))
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fleet bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(o: Opts) -> anyhow::Result<bool> {
    let mssp = binary_path("mssp", "release");
    ensure!(
        mssp.is_file(),
        "{} is missing: cargo build --release --locked -p cli --bin mssp -p alert-fetcher --bin alert-fetcher",
        mssp.display()
    );
    println!(
        "fleet bench: emulator latency {} ms on every Microsoft request; {} rounds, each standing \
         for 5 minutes; {:.0} % of the tenants get {ALERTS_PER_ACTIVE} alerts a round; {} CPUs, \
         load {}",
        o.latency_ms,
        o.rounds,
        o.active * 100.0,
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );
    let mut ok = true;
    if o.path != "lambda" {
        ok &= local_path(&o, &mssp).await?;
    }
    if o.path != "local" {
        ok &= lambda_path(&o, &mssp).await?;
    }
    Ok(ok)
}

// ---------------------------------------------------------------------------------------------
// The fleet, its onboarding, its alerts.

/// The fleet scenario of `n` tenants without alerts, on real time, with tokens that renew every
/// 10 rounds of `interval`.
fn scenario(n: usize, interval: Duration, latency_ms: u64) -> anyhow::Result<Scenario> {
    let start = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut sc = fleet::fleet(n, 0, &start)?;
    sc.clock.frozen = false;
    sc.settings.latency_ms = latency_ms;
    let life = (RENEW_MARGIN_S + 10 * interval.as_secs()) as i64;
    sc.settings.access_token_min_secs = life;
    sc.settings.access_token_max_secs = life;
    Ok(sc)
}

fn model_api(i: usize) -> (AuthModel, AlertApi) {
    match fleet::model(i) {
        Model::Application => (AuthModel::Application, AlertApi::Graph),
        Model::DelegatedV1 => (AuthModel::DelegatedV1, AlertApi::Siem),
        Model::DelegatedV2 => (AuthModel::DelegatedV2, AlertApi::Mde),
    }
}

fn region(i: usize) -> &'static str {
    ["eu", "us", "uk"][(i / 3) % 3]
}

/// The import file: every tenant of the fleet.
fn fleet_csv(n: usize) -> String {
    let mut csv = String::from("id,name,model,api,siem_region\n");
    for i in 0..n {
        let (model, api) = model_api(i);
        let region = if api == AlertApi::Siem { region(i) } else { "" };
        csv.push_str(&format!(
            "{},Tenant {i},{model},{api},{region}\n",
            fleet::tenant_id(i)
        ));
    }
    csv
}

/// Runs `mssp tenants import fleet.csv` in `dir` with `env`; its wall time and report.
fn import(mssp: &Path, dir: &Path, env: &[(String, String)]) -> anyhow::Result<(f64, Value)> {
    let mut cmd = Command::new(mssp);
    cmd.args([
        "--config",
        "mssp.toml",
        "--json",
        "tenants",
        "import",
        "fleet.csv",
    ])
    .current_dir(dir);
    clean_env(&mut cmd);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let started = Instant::now();
    let out = cmd.output().context("running mssp tenants import")?;
    let wall = started.elapsed().as_secs_f64();
    let report: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "the import's report; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    ensure!(
        report["failed"] == 0,
        "the import refused tenants: {}",
        report["tenants"]
    );
    // Exit 3: some tenants wait for a click (the delegated ones, and those never consented).
    ensure!(
        out.status.success() || out.status.code() == Some(3),
        "mssp tenants import failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((wall, report))
}

fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("MSSP_") || k.starts_with("AWS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
}

/// The delegated tenants that consented: each signs in through its consent link (in this
/// process, over `deps`), 32 at once. Returns how many and the wall time.
async fn consent_delegated(deps: &Deps, n: usize) -> anyhow::Result<(usize, f64)> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()?;
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(32));
    let mut set = tokio::task::JoinSet::new();
    let mut count = 0;
    for i in (0..n).filter(|&i| fleet::consented(i) && fleet::model(i) != Model::Application) {
        let (model, api) = model_api(i);
        let new = NewTenant {
            id: TenantId::parse(&fleet::tenant_id(i))?,
            display_name: format!("Tenant {i}"),
            auth_model: model,
            alert_api: api,
            cloud: Cloud::Commercial,
            backfill: None,
            siem_region: match api {
                AlertApi::Siem => Some(
                    region(i)
                        .parse::<SiemRegion>()
                        .map_err(anyhow::Error::msg)?,
                ),
                _ => None,
            },
        };
        let (deps, http, permit) = (
            deps.clone(),
            http.clone(),
            slots.clone().acquire_owned().await?,
        );
        set.spawn(async move {
            let r = tests::local::onboard(&deps, &http, new).await;
            drop(permit);
            r
        });
        count += 1;
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok((count, started.elapsed().as_secs_f64()))
}

/// The tenants that take part in rounds (consented), by index.
fn consented(n: usize) -> Vec<usize> {
    (0..n).filter(|&i| fleet::consented(i)).collect()
}

/// Whether tenant `i` gets alerts in round `k` (about `share` of the tenants, a different set
/// each round).
fn active_in(i: usize, k: usize, share: f64) -> bool {
    let h = (i as u64 ^ ((k as u64) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 11) as f64 / (1u64 << 53) as f64) < share
}

/// Adds `ALERTS_PER_ACTIVE` alerts, visible now, to every tenant active in round `k`; the ids of
/// those tenants.
fn add_alerts(
    emu: &EmuState,
    tenants: &[usize],
    k: usize,
    share: f64,
) -> anyhow::Result<Vec<String>> {
    let now = emu.now();
    let mut w = emu.world();
    let mut touched = Vec::new();
    for &i in tenants.iter().filter(|&&i| active_in(i, k, share)) {
        let tid = fleet::tenant_id(i);
        let t = w.tenants.get_mut(&tid).context("a fleet tenant")?;
        for j in 0..ALERTS_PER_ACTIVE {
            let spec = AlertSpec {
                created: "-1s".into(),
                visible_after: Some("0s".into()),
                title: Some(format!("fleet bench round {k} alert {j}")),
                ..AlertSpec::default()
            };
            let seed = (i as u64) << 20 | (k as u64) << 4 | j as u64;
            t.alerts
                .push(emulator::world::alert_from_spec(&tid, seed, &spec, now)?);
        }
        t.sort_alerts();
        touched.push(tid);
    }
    Ok(touched)
}

// ---------------------------------------------------------------------------------------------
// One round's figures.

#[derive(Default)]
struct Round {
    wall_s: f64,
    back_to_back_s: Option<f64>,
    cpu_s: f64,
    rss_mb: f64,
    tenants: usize,
    idle: usize,
    fetched: usize,
    missed: usize,
    ms_requests_idle: f64,
    ms_requests_all: f64,
    p50: f64,
    p99: f64,
    added: usize,
    delivered_total: usize,
    due_total: usize,
    added_total: usize,
    duplicates: usize,
    aws: CallCounts,
    poller: CallCounts,
    invocations: u64,
    billed_s: f64,
}

/// What both paths keep from round to round to measure each the same way, from the outside:
/// the tenants' Microsoft requests at the last round's end, the tenants given alerts last round,
/// and the alerts added so far.
struct Tracker<'a> {
    ids: &'a [String],
    req_before: HashMap<String, emulator::world::TenantRequests>,
    busy_prev: HashSet<String>,
    added_total: usize,
}

impl<'a> Tracker<'a> {
    fn new(ids: &'a [String], req: HashMap<String, emulator::world::TenantRequests>) -> Self {
        Tracker {
            ids,
            req_before: req,
            busy_prev: HashSet::new(),
            added_total: 0,
        }
    }

    /// The fields of a round every path measures alike, from the requests `req` at its end,
    /// the tenants `added` alerts to, the fetches `starts` (those in `window` count), and the
    /// sink's `records`; the rest is the caller's.
    fn round(
        &mut self,
        req: HashMap<String, emulator::world::TenantRequests>,
        added: Vec<String>,
        starts: &HashMap<String, Vec<Instant>>,
        window: std::ops::Range<Instant>,
        records: &[shared::record::AlertRecord],
    ) -> Round {
        let added_n = added.len() * ALERTS_PER_ACTIVE;
        self.added_total += added_n;
        let busy: HashSet<String> = added.into_iter().collect();
        let both: HashSet<String> = busy.union(&self.busy_prev).cloned().collect();
        let (idle_req, all_req, idle) = ms_requests(&self.req_before, &req, self.ids, &both);
        let (mut p, fetched, missed) = periods(starts, self.ids, window.start, window.end);
        let (delivered, duplicates) = tally(records);
        self.req_before = req;
        self.busy_prev = busy;
        Round {
            tenants: self.ids.len(),
            idle,
            fetched,
            missed,
            ms_requests_idle: idle_req,
            ms_requests_all: all_req,
            p50: quantile(&mut p, 0.5),
            p99: quantile(&mut p, 0.99),
            added: added_n,
            delivered_total: delivered,
            added_total: self.added_total,
            duplicates,
            ..Round::default()
        }
    }
}

/// Periods (seconds) of fetches started in `[from, to)`, and which tenants started none there.
fn periods(
    starts: &HashMap<String, Vec<Instant>>,
    ids: &[String],
    from: Instant,
    to: Instant,
) -> (Vec<f64>, usize, usize) {
    let (mut out, mut fetched, mut missed) = (Vec::new(), 0, 0);
    for id in ids {
        let s = starts.get(id).map_or(&[][..], Vec::as_slice);
        let inside: Vec<usize> = (0..s.len())
            .filter(|&j| s[j] >= from && s[j] < to)
            .collect();
        // A tenant whose turn sits at the window's edge may be seen just before it (the
        // watcher reads every few hundred ms): it missed its turn only when it has no fetch a
        // quarter interval around the window either.
        let slack = (to - from) / 4;
        let near = s.iter().any(|&t| t + slack >= from && t < to);
        if !near {
            missed += 1;
        } else {
            fetched += 1;
        }
        for j in inside {
            if j > 0 {
                out.push((s[j] - s[j - 1]).as_secs_f64());
            }
        }
    }
    (out, fetched, missed)
}

/// Microsoft requests per tenant over a round: idle tenants (no alerts this round or the last)
/// and all.
fn ms_requests(
    before: &HashMap<String, emulator::world::TenantRequests>,
    after: &HashMap<String, emulator::world::TenantRequests>,
    ids: &[String],
    busy: &HashSet<String>,
) -> (f64, f64, usize) {
    let (mut idle_n, mut idle_sum, mut all_sum) = (0usize, 0u64, 0u64);
    for id in ids {
        let a = after.get(id).map_or(0, all_requests);
        let b = before.get(id).map_or(0, all_requests);
        all_sum += a - b;
        if !busy.contains(id) {
            idle_n += 1;
            idle_sum += a - b;
        }
    }
    (
        idle_sum as f64 / idle_n.max(1) as f64,
        all_sum as f64 / ids.len().max(1) as f64,
        idle_n,
    )
}

/// Records delivered so far: count, and how many dedup keys repeat.
fn tally(records: &[shared::record::AlertRecord]) -> (usize, usize) {
    let mut keys = HashSet::new();
    let dup = records
        .iter()
        .filter(|r| !keys.insert(r.dedup_key.clone()))
        .count();
    (records.len(), dup)
}

// ---------------------------------------------------------------------------------------------
// Local: mssp serve.

async fn local_path(o: &Opts, mssp: &Path) -> anyhow::Result<bool> {
    let n = o.local_tenants;
    let interval = o.interval;
    println!();
    println!(
        "== local path: mssp serve, {n} tenants, interval {:.0} s standing for 5 minutes ==",
        interval.as_secs_f64()
    );
    let emu = emulator::start(scenario(n, interval, o.latency_ms)?).await?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("mssp-data");
    let u = emu.urls().clone();
    std::fs::write(
        dir.path().join("mssp.toml"),
        format!(
            "data_dir = \"mssp-data\"\npublic_base_url = \"{PUBLIC_BASE}\"\nlisten = \"127.0.0.1:0\"\n\n\
             [endpoints]\nauthority = \"{}\"\ngraph = \"{}\"\nmde = \"{}\"\nsiem = \"{}\"\n\n\
             [schedule]\nfetch_interval = \"{}s\"\nrefresh_interval = \"{}s\"\n",
            u.authority,
            u.graph,
            u.mde,
            u.siem,
            interval.as_secs(),
            3 * interval.as_secs()
        ),
    )?;
    tests::local::write_app_secret(&data, fleet::APP, fleet::SECRET)?;
    std::fs::write(dir.path().join("fleet.csv"), fleet_csv(n))?;
    let (import_s, report) = {
        let (mssp, path) = (mssp.to_path_buf(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || import(&mssp, &path, &[])).await??
    };
    let deps = tests::local::file_deps(
        &data,
        tests::local::endpoints(&u),
        Url::parse(PUBLIC_BASE)?,
        Arc::new(shared::clock::SystemClock),
    );
    if std::env::var_os("FLEET_DEBUG").is_some() {
        eprintln!("{report:#}");
    }
    let (delegated, consent_s) = consent_delegated(&deps, n).await?;
    println!(
        "onboarding: import of {n} tenants {import_s:.1} s ({} adopted, {} pending); {delegated} \
         delegated tenants consented through their links in {consent_s:.1} s (not timed as import)",
        report["adopted"], report["pending"]
    );

    let log = std::fs::File::create(dir.path().join("serve.log"))?;
    let mut cmd = Command::new(mssp);
    cmd.args(["--config", "mssp.toml", "serve"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    clean_env(&mut cmd);
    let mut serve = cmd.spawn().context("starting mssp serve")?;
    let pid = serve.id();
    let result = local_rounds(o, &emu, &data, pid).await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = tokio::task::spawn_blocking(move || serve.wait()).await;
    let (rounds, ok) = result?;
    Ok(print_rounds("local", o, &rounds, None) && ok)
}

async fn local_rounds(
    o: &Opts,
    emu: &emulator::RunningEmulator,
    data: &Path,
    pid: u32,
) -> anyhow::Result<(Vec<Round>, bool)> {
    let interval = o.interval;
    let tenants = consented(o.local_tenants);
    let ids: Vec<String> = tenants.iter().map(|&i| fleet::tenant_id(i)).collect();
    let watch = FetchStarts::watch(
        emu.state().clone(),
        Duration::from_millis(200),
        interval / 2,
    );
    let sink = shared::adapters::local::FileAlertSink::new(data);
    let t0 = Instant::now();
    let mut rounds = Vec::new();
    let mut ok = true;
    let mut due_total = 0usize;
    let mut cpu_before = cpu_s(pid)?;
    let mut tracker = Tracker::new(&ids, requests(emu.state()));
    for k in 0..o.rounds {
        let start = t0 + interval * k as u32;
        let added = if k >= 1 && k + 1 < o.rounds {
            add_alerts(emu.state(), &tenants, k, o.active)?
        } else {
            Vec::new()
        };
        tokio::time::sleep_until((start + interval).into()).await;
        let cpu = cpu_s(pid)?;
        let req = requests(emu.state());
        let starts = watch.starts();
        let records = sink.records(None)?;
        let seen = tracker.round(req, added, &starts, start..start + interval, &records);
        let fit: Option<Value> = std::fs::read(data.join("schedule.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let r = Round {
            wall_s: interval.as_secs_f64(),
            back_to_back_s: fit
                .as_ref()
                .and_then(|f| Some(f["utilization"].as_f64()? * f["interval_s"].as_f64()?)),
            cpu_s: cpu - cpu_before,
            rss_mb: peak_rss_mb(pid)?,
            due_total,
            ..seen
        };
        ok &= judge("local", k, &r, Some(RSS_LIMIT_MB));
        rounds.push(r);
        due_total = tracker.added_total;
        cpu_before = cpu;
    }
    Ok((rounds, ok))
}

/// Whether round `k` delivered the right count, every tenant was fetched (after the first
/// round) and the memory limit held; says why not.
fn judge(path: &str, k: usize, r: &Round, rss_limit: Option<f64>) -> bool {
    let mut ok = true;
    if r.delivered_total < r.due_total || r.delivered_total > r.added_total || r.duplicates > 0 {
        eprintln!(
            "FAIL {path} round {k}: {} records delivered ({} duplicate keys); {} were due, {} added",
            r.delivered_total, r.duplicates, r.due_total, r.added_total
        );
        ok = false;
    }
    if k > 0 && r.missed > 0 {
        eprintln!(
            "FAIL {path} round {k}: {} tenants were not fetched in the round",
            r.missed
        );
        ok = false;
    }
    if let Some(limit) = rss_limit
        && r.rss_mb > limit
    {
        eprintln!(
            "FAIL {path} round {k}: peak RSS {:.1} MB over {limit} MB",
            r.rss_mb
        );
        ok = false;
    }
    ok
}

// ---------------------------------------------------------------------------------------------
// Lambda: dispatch → SQS → fetcher batches, against moto.

struct Aws {
    sdk: aws_config::SdkConfig,
    proxy: CountingProxy,
    poller_proxy: CountingProxy,
    table: String,
    prefix: String,
    bucket: String,
    queue_url: String,
}

async fn aws_world(env: &tests::TestEnv) -> anyhow::Result<Aws> {
    let sdk = env.aws_config().await;
    let table = env.unique_name("fleet");
    tests::aws::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await;
    let bucket = env.unique_name("fleet-alerts");
    s3_client(&sdk)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await?;
    let queue_url = aws_sdk_sqs::Client::new(&sdk)
        .create_queue()
        .queue_name(env.unique_name("fleet-work"))
        .send()
        .await?
        .queue_url()
        .context("queue url")?
        .to_owned();
    let prefix = env.unique_name("fleet");
    let app = json!({
        "client_id": fleet::APP,
        "client_secret": fleet::SECRET,
        "state_key": base64::engine::general_purpose::STANDARD
            .encode(b"fleet-bench-state-key-0123456789abcdef"),
    });
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(format!("{prefix}/app"))
        .secret_string(app.to_string())
        .send()
        .await?;
    Ok(Aws {
        sdk,
        proxy: CountingProxy::start(&env.moto_url).await?,
        poller_proxy: CountingProxy::start(&env.moto_url).await?,
        table,
        prefix,
        bucket,
        queue_url,
    })
}

async fn lambda_path(o: &Opts, mssp: &Path) -> anyhow::Result<bool> {
    let n = o.lambda_tenants;
    let interval = o.lambda_interval;
    println!();
    println!(
        "== lambda path: dispatch → SQS → alert-fetcher batches of {} on {} warm fetcher \
         processes, {n} tenants, a round every {:.0} s standing for 5 minutes ==",
        o.batch,
        o.lambdas,
        interval.as_secs_f64()
    );
    let env = tests::TestEnv::start(scenario(n, interval, o.latency_ms)?).await?;
    let aws = aws_world(&env).await?;
    let u = env.emulator.urls().clone();
    let config = function_config(PUBLIC_BASE, &aws.prefix, &aws.table, &u);
    let product_env: Vec<(String, String)> = service_env(&aws.proxy.endpoint())
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(config.iter().cloned())
        .collect();

    // Onboarding: the import through mssp on the AWS backend, then the delegated consents.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("mssp.toml"), "backend = \"aws\"\n")?;
    std::fs::write(dir.path().join("fleet.csv"), fleet_csv(n))?;
    let before = aws.proxy.counts();
    let (import_s, report) = {
        let (mssp, path, e) = (
            mssp.to_path_buf(),
            dir.path().to_path_buf(),
            product_env.clone(),
        );
        tokio::task::spawn_blocking(move || import(&mssp, &path, &e)).await??
    };
    let import_calls = calls_between(&before, &aws.proxy.counts());
    let cfg = ServiceConfig::from_env(&config.iter().cloned().collect::<Env>())?;
    let deps = shared::assemble::aws(&cfg, &sdk_config_at(&aws.proxy.endpoint()).await);
    let (delegated, consent_s) = consent_delegated(&deps, n).await?;
    println!(
        "onboarding: import of {n} tenants {import_s:.1} s ({} adopted, {} pending), AWS calls \
         per tenant {}; {delegated} delegated tenants consented in {consent_s:.1} s",
        report["adopted"],
        report["pending"],
        per_tenant(&import_calls, n)
    );

    let mut fenv = product_env.clone();
    fenv.push(("MSSP_BUCKET".into(), aws.bucket.clone()));
    fenv.push(("MSSP_QUEUE_URL".into(), aws.queue_url.clone()));
    let mut fetchers = Vec::new();
    for _ in 0..o.lambdas {
        fetchers.push(Arc::new(
            LambdaProcess::spawn_profile("alert-fetcher", "release", fenv.clone()).await?,
        ));
    }
    let result = lambda_rounds(o, &env, &aws, &fetchers).await;
    drop(fetchers);
    let (rounds, ok) = result?;
    Ok(print_rounds("lambda", o, &rounds, Some(n)) && ok)
}

const SCHEDULED: &str = include_str!("../fixtures/events/eventbridge-scheduled-event.json");

async fn lambda_rounds(
    o: &Opts,
    env: &tests::TestEnv,
    aws: &Aws,
    fetchers: &[Arc<LambdaProcess>],
) -> anyhow::Result<(Vec<Round>, bool)> {
    let interval = o.lambda_interval;
    let tenants = consented(o.lambda_tenants);
    let ids: Vec<String> = tenants.iter().map(|&i| fleet::tenant_id(i)).collect();
    let emu = env.emulator.state();
    let watch = FetchStarts::watch(emu.clone(), Duration::from_millis(100), interval / 2);
    let sink = S3AlertSink::new(s3_client(&aws.sdk), &aws.bucket, None);
    let sqs = aws_sdk_sqs::Client::new(&sdk_config_at(&aws.poller_proxy.endpoint()).await);
    let scheduled: Value = serde_json::from_str(SCHEDULED)?;
    let cpu_all = || -> anyhow::Result<f64> {
        fetchers
            .iter()
            .map(|f| cpu_s(f.pid()))
            .sum::<anyhow::Result<f64>>()
    };
    let t0 = Instant::now();
    let mut rounds = Vec::new();
    let mut ok = true;
    let mut cpu_before = cpu_all()?;
    let mut tracker = Tracker::new(&ids, requests(emu));
    let (mut aws_before, mut poller_before) = (aws.proxy.counts(), aws.poller_proxy.counts());
    for k in 0..o.rounds {
        let start = t0 + interval * k as u32;
        tokio::time::sleep_until(start.into()).await;
        let began = Instant::now();
        let added = if k >= 1 && k + 1 < o.rounds {
            add_alerts(emu, &tenants, k, o.active)?
        } else {
            Vec::new()
        };
        let answer = fetchers[0]
            .invoke(&scheduled)
            .await
            .map_err(|e| anyhow::anyhow!("dispatch: {e:?}"))?;
        let dispatched = answer["dispatched"].as_u64().context("dispatched")? as usize;
        let (invocations, billed_s) =
            drain_queue(&sqs, &aws.queue_url, fetchers, o.batch, dispatched).await?;
        let wall_s = began.elapsed().as_secs_f64();
        // Two of the watcher's readings, so the last fetches are seen.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let next = (start + interval).max(Instant::now());
        let cpu = cpu_all()?;
        let req = requests(emu);
        let (aws_now, poller_now) = (aws.proxy.counts(), aws.poller_proxy.counts());
        let starts = watch.starts();
        let records = sink.records(None).await?;
        let seen = tracker.round(req, added, &starts, start..next, &records);
        let r = Round {
            wall_s,
            back_to_back_s: None,
            cpu_s: cpu - cpu_before,
            rss_mb: fetchers
                .iter()
                .map(|f| peak_rss_mb(f.pid()))
                .collect::<anyhow::Result<Vec<_>>>()?
                .into_iter()
                .fold(0.0, f64::max),
            // Everything added this round is fetched this round (the alerts come first).
            due_total: tracker.added_total,
            aws: calls_between(&aws_before, &aws_now),
            poller: calls_between(&poller_before, &poller_now),
            invocations: invocations + 1,
            billed_s,
            ..seen
        };
        ok &= judge("lambda", k, &r, None);
        rounds.push(r);
        cpu_before = cpu;
        aws_before = aws_now;
        poller_before = poller_now;
    }
    Ok((rounds, ok))
}

/// Lambda's SQS event source mapping, played by this bench: one poller per fetcher process
/// receives up to `batch` messages, invokes its process with them, and deletes those not
/// reported failed, until `expected` messages were handled. Invocations and their billed
/// seconds.
async fn drain_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    fetchers: &[Arc<LambdaProcess>],
    batch: usize,
    expected: usize,
) -> anyhow::Result<(u64, f64)> {
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for f in fetchers {
        let (sqs, url, f, done) = (sqs.clone(), queue_url.to_owned(), f.clone(), done.clone());
        set.spawn(async move {
            let (mut invocations, mut billed) = (0u64, 0.0f64);
            let mut idle_since = Instant::now();
            while done.load(std::sync::atomic::Ordering::SeqCst) < expected {
                let got = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(batch as i32)
                    .visibility_timeout(120)
                    .send()
                    .await?;
                let msgs = got.messages();
                if msgs.is_empty() {
                    ensure!(
                        idle_since.elapsed() < Duration::from_secs(300),
                        "the queue stayed empty with {} of {expected} messages handled",
                        done.load(std::sync::atomic::Ordering::SeqCst)
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                idle_since = Instant::now();
                let event = json!({"Records": msgs.iter().map(|m| json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(),
                    "body": m.body(), "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fleet-work",
                    "awsRegion": "us-east-1"
                })).collect::<Vec<_>>()});
                let t = Instant::now();
                let answer = f
                    .invoke(&event)
                    .await
                    .map_err(|e| anyhow::anyhow!("fetcher batch: {e:?}"))?;
                billed += (t.elapsed().as_secs_f64() * 1000.0).ceil() / 1000.0;
                invocations += 1;
                let failed: HashSet<String> = answer["batchItemFailures"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x["itemIdentifier"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                ensure!(
                    failed.is_empty(),
                    "the fetcher reported failed messages: {failed:?}"
                );
                let mut del = sqs.delete_message_batch().queue_url(&url);
                for (j, m) in msgs.iter().enumerate() {
                    del = del.entries(
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(j.to_string())
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .build()?,
                    );
                }
                del.send().await?;
                done.fetch_add(msgs.len(), std::sync::atomic::Ordering::SeqCst);
            }
            anyhow::Ok((invocations, billed))
        });
    }
    let (mut invocations, mut billed) = (0, 0.0);
    while let Some(r) = set.join_next().await {
        let (i, b) = r??;
        invocations += i;
        billed += b;
    }
    Ok((invocations, billed))
}

// ---------------------------------------------------------------------------------------------
// Printing.

fn per_tenant(calls: &CallCounts, n: usize) -> String {
    if calls.is_empty() {
        return "none".into();
    }
    calls
        .iter()
        .map(|((svc, op), c)| format!("{svc}.{op} {:.2}", c.n as f64 / n.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Dollars of `calls` (product and event-source-mapping SQS calls alike), invocations and
/// billed seconds. DynamoDB units are estimated from the bytes moved: a read unit per 4 KB
/// received, a write unit per 1 KB sent, at least one per call.
fn dollars(calls: &CallCounts, invocations: u64, billed_s: f64) -> f64 {
    let mut d = invocations as f64 * LAMBDA_PER_REQUEST + billed_s * FETCHER_GB * LAMBDA_PER_GB_S;
    for ((svc, op), c) in calls {
        let n = c.n as f64;
        d += match svc.as_str() {
            "sqs" => n * SQS_PER_REQUEST,
            "secretsmanager" => n * SM_PER_CALL,
            "s3" if matches!(op.as_str(), "GetObject" | "HeadObject" | "HeadBucket") => {
                n * S3_PER_READ
            }
            "s3" => n * S3_PER_WRITE,
            "dynamodb"
                if op.starts_with("Get")
                    || op == "Query"
                    || op == "Scan"
                    || op.starts_with("BatchGet") =>
            {
                n.max((c.received as f64 / 4096.0).ceil()) * DDB_PER_READ_UNIT
            }
            "dynamodb" => n.max((c.sent as f64 / 1024.0).ceil()) * DDB_PER_WRITE_UNIT,
            _ => 0.0,
        };
    }
    d
}

fn print_rounds(path: &str, o: &Opts, rounds: &[Round], lambda_tenants: Option<usize>) -> bool {
    let interval = if path == "local" {
        o.interval
    } else {
        o.lambda_interval
    }
    .as_secs_f64();
    println!(
        "{:>5} {:>7} {:>8} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9}",
        "round",
        "wall s",
        "b2b s",
        "CPU s",
        "ms/idle",
        "RSS MB",
        "fetched",
        "MSreq/id",
        "MSreq/all",
        "p50 s",
        "p99 s",
        "added",
        "delivered"
    );
    for (k, r) in rounds.iter().enumerate() {
        println!(
            "{k:>5} {:>7.1} {:>8} {:>7.2} {:>8.3} {:>8.1} {:>8} {:>9.3} {:>9.3} {:>7.1} {:>7.1} {:>7} {:>9}",
            r.wall_s,
            r.back_to_back_s.map_or("-".into(), |b| format!("{b:.1}")),
            r.cpu_s,
            r.cpu_s * 1000.0 / r.tenants.max(1) as f64,
            r.rss_mb,
            format!("{}/{}", r.fetched, r.tenants),
            r.ms_requests_idle,
            r.ms_requests_all,
            r.p50,
            r.p99,
            r.added,
            r.delivered_total,
        );
    }
    // The first round is the start (first fetches, warm-up); the figures below leave it out.
    let steady: Vec<&Round> = rounds.iter().skip(1).collect();
    let avg = |f: &dyn Fn(&Round) -> f64| {
        steady.iter().map(|r| f(r)).sum::<f64>() / steady.len().max(1) as f64
    };
    let max = |f: &dyn Fn(&Round) -> f64| steady.iter().map(|r| f(r)).fold(0.0, f64::max);
    let cpu_ms = avg(&|r| r.cpu_s * 1000.0 / r.tenants.max(1) as f64);
    let req_idle = avg(&|r| r.ms_requests_idle);
    let p99 = max(&|r| r.p99);
    let rss = max(&|r| r.rss_mb);
    println!(
        "{path} targets (rounds 1.., averaged; p99 and RSS the worst round; {} of {} tenants idle in the last round):",
        rounds.last().map_or(0, |r| r.idle),
        rounds.last().map_or(0, |r| r.tenants)
    );
    println!(
        "  CPU per tenant per round {cpu_ms:.3} ms (≤ {TARGET_CPU_MS_PER_IDLE} ms per idle tenant) {}",
        mark(cpu_ms <= TARGET_CPU_MS_PER_IDLE)
    );
    println!(
        "  Microsoft requests per idle tenant per round {req_idle:.3} (≤ {TARGET_MS_REQ_PER_IDLE}, renewals included) {}",
        mark(req_idle <= TARGET_MS_REQ_PER_IDLE)
    );
    println!(
        "  p99 period {p99:.1} s against the {interval:.0} s interval (within {:.0} %) {}",
        TARGET_P99_SLACK * 100.0,
        mark((p99 - interval).abs() <= interval * TARGET_P99_SLACK)
    );
    if path == "local" {
        let b2b = max(&|r| r.back_to_back_s.unwrap_or(f64::NAN));
        println!(
            "  a full round back to back {b2b:.1} s (≤ {TARGET_ROUND_S} s) {}",
            mark(b2b <= TARGET_ROUND_S)
        );
        println!(
            "  peak RSS {rss:.1} MB (≤ {RSS_LIMIT_MB} MB) {}",
            mark(rss <= RSS_LIMIT_MB)
        );
    }
    if let Some(n) = lambda_tenants {
        let mut calls: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut poller: BTreeMap<(String, String), f64> = BTreeMap::new();
        for r in &steady {
            for (k, c) in &r.aws {
                *calls.entry(k.clone()).or_default() += c.n as f64;
            }
            for (k, c) in &r.poller {
                *poller.entry(k.clone()).or_default() += c.n as f64;
            }
        }
        let per = |m: &BTreeMap<(String, String), f64>| {
            m.iter()
                .map(|((s, op), v)| format!("{s}.{op} {:.3}", v / steady.len() as f64 / n as f64))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  AWS calls per tenant per round, the functions: {}",
            per(&calls)
        );
        println!(
            "  AWS calls per tenant per round, the SQS event source mapping: {}",
            per(&poller)
        );
        let idle_calls =
            avg(&|r| r.aws.values().map(|c| c.n).sum::<u64>() as f64 / r.tenants.max(1) as f64);
        println!(
            "  AWS calls per tenant per round (functions) {idle_calls:.2} (≤ {TARGET_AWS_CALLS_PER_IDLE} per idle tenant) {}",
            mark(idle_calls <= TARGET_AWS_CALLS_PER_IDLE)
        );
        let per_round = avg(&|r| {
            let mut all = r.aws.clone();
            for (k, c) in &r.poller {
                let e = all.entry(k.clone()).or_default();
                e.n += c.n;
                e.sent += c.sent;
                e.received += c.received;
            }
            dollars(&all, r.invocations, r.billed_s) / r.tenants.max(1) as f64
        });
        let month = per_round * ROUNDS_PER_MONTH;
        let mut by_service: BTreeMap<String, f64> = BTreeMap::new();
        for r in &steady {
            let mut all = r.aws.clone();
            all.extend(
                r.poller
                    .iter()
                    .map(|(k, c)| ((format!("{} (mapping)", k.0), k.1.clone()), *c)),
            );
            for ((svc, op), c) in &all {
                let one: CallCounts = [(
                    (svc.trim_end_matches(" (mapping)").to_owned(), op.clone()),
                    *c,
                )]
                .into();
                *by_service.entry(svc.clone()).or_default() += dollars(&one, 0, 0.0);
            }
            *by_service.entry("lambda".into()).or_default() +=
                dollars(&CallCounts::new(), r.invocations, r.billed_s);
        }
        let scale = ROUNDS_PER_MONTH / steady.len().max(1) as f64 / n as f64;
        println!(
            "  cost by service, $ per tenant per month: {}",
            by_service
                .iter()
                .map(|(s, d)| format!("{s} {:.4}", d * scale))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  cost: ${month:.4} per tenant per month at a 5-minute schedule (≤ ${TARGET_DOLLARS}) \
             beyond the ${SM_PER_SECRET_MONTH:.2} secret {}; Lambda billed {:.1} s a round at {:.0} MB",
            mark(month <= TARGET_DOLLARS),
            avg(&|r| r.billed_s),
            FETCHER_GB * 1024.0
        );
    }
    true
}
