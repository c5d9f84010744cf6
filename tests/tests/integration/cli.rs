//! The `mssp` binary as an operator runs it: a subprocess of the built binary
//! (`target/debug/mssp`, built by `cargo build --workspace --bins`), pointed at the in-process
//! Microsoft emulator by a config file, its local data in a temporary directory — and at the AWS
//! deployment (moto, the consent-callback binary behind the API Gateway bridge) with
//! `--backend aws`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emulator::RunningEmulator;
use serde_json::{Value, json};
use shared::adapters::local::FileAlertSink;
use shared::domain::AlertApi;
use shared::record::AlertRecord;
use tokio::io::{AsyncBufReadExt, BufReader};
use url::Url;

use crate::fixtures::{APP_ID, APP_SECRET, CONTOSO, FABRIKAM, NORTHWIND, tid};

/// What one run of `mssp` left.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Stdout as one JSON value a line (`each` names what a line must be).
    pub(crate) fn json_lines(&self, each: &str) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{each} ({e}): {l}")))
            .collect()
    }
}

fn binary() -> PathBuf {
    let path = tests::lambda::binary_path("mssp", "debug");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// `mssp ARGS` in `cwd` with `envs` (and no `MSSP_*` of the test process).
fn command(cwd: &Path, args: &[&str], envs: &[(String, String)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(args).current_dir(cwd).kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("MSSP_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(envs.iter().map(|(k, v)| (k, v)));
    cmd
}

pub(crate) async fn mssp(cwd: &Path, args: &[&str], envs: &[(String, String)]) -> Run {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        command(cwd, args, envs).stdin(Stdio::null()).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("mssp {args:?} did not finish in 90 s"))
    .expect("mssp runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`mssp`], which must exit 0.
pub(crate) async fn mssp_ok(cwd: &Path, args: &[&str], envs: &[(String, String)]) -> Run {
    let run = mssp(cwd, args, envs).await;
    assert_eq!(run.code, Some(0), "mssp {args:?}: {run:?}");
    run
}

/// `ARGS` after `--config mssp.toml`.
pub(crate) fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--config", "mssp.toml"];
    v.extend_from_slice(args);
    v
}

/// [`mssp`] with the config file `mssp.toml` in `cwd` and no environment of its own.
pub(crate) async fn configured(cwd: &Path, args: &[&str]) -> Run {
    mssp(cwd, &with(args), &[]).await
}

/// [`configured`], which must exit 0.
pub(crate) async fn configured_ok(cwd: &Path, args: &[&str]) -> Run {
    mssp_ok(cwd, &with(args), &[]).await
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Dedup keys of every version the emulator exposed for `id`, sorted.
/// How many records a complete client of the tenant's API must have delivered (Contoso reads
/// the SIEM API, which serves a record per detection part).
fn exposed(emu: &RunningEmulator, id: &str) -> usize {
    let now = emu.state().now();
    let truth = emu.state().world().truth(id, now).expect("tenant");
    let api = match id {
        CONTOSO => emulator::scenario::Api::Siem,
        FABRIKAM => emulator::scenario::Api::Mde,
        _ => emulator::scenario::Api::Graph,
    };
    truth.exposed_records(api).len()
}

fn check(emu: &RunningEmulator, id: &str, records: &[AlertRecord]) -> emulator::world::Check {
    let now = emu.state().now();
    let truth = emu.state().world().truth(id, now).expect("tenant");
    let api = records.first().map_or(AlertApi::Graph, |r| r.source);
    let api = emulator::scenario::Api::named(api.as_str()).expect("api");
    truth.check(api, records.iter().map(|r| r.dedup_key.as_str()))
}

/// Opens a consent link like a browser; the last answer must be our callback's 200 page.
async fn consent(http: &reqwest::Client, link: &str) -> String {
    let mut url = Url::parse(link).expect("link");
    for _ in 0..5 {
        let resp = http.get(url.clone()).send().await.expect("GET");
        if resp.status().is_redirection() {
            let to = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("location");
            url = url.join(to).expect("redirect");
            continue;
        }
        assert_eq!(resp.status().as_u16(), 200, "{}", url.path());
        assert_eq!(url.path(), "/consent/callback");
        return resp.text().await.expect("page");
    }
    panic!("too many redirects from {link}");
}

pub(crate) fn link_in(text: &str) -> String {
    text.split_whitespace()
        .find(|w| w.contains("/consent/start?link="))
        .unwrap_or_else(|| panic!("no consent link in {text}"))
        .to_string()
}

/// A `mssp serve` child with its output collected.
struct Serve {
    child: tokio::process::Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    async fn start(cwd: &Path, args: &[&str]) -> Serve {
        let mut child = command(cwd, args, &[])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mssp serve starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let out = stdout.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("consent endpoint")
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(());
                }
                let mut o = out.lock().expect("lock");
                o.push_str(&line);
                o.push('\n');
            }
        });
        let mut errs = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let err = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errs.next_line().await {
                let mut e = err.lock().expect("lock");
                e.push_str(&line);
                e.push('\n');
            }
        });
        let serve = Serve {
            child,
            stdout,
            stderr,
        };
        if tokio::time::timeout(Duration::from_secs(20), ready_rx)
            .await
            .is_err()
        {
            panic!("mssp serve is not ready: {}", serve.output());
        }
        serve
    }

    fn output(&self) -> String {
        format!(
            "{}\n{}",
            self.stdout.lock().expect("lock"),
            self.stderr.lock().expect("lock")
        )
    }

    /// SIGTERM, then the exit code.
    async fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().expect("running");
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("mssp serve did not stop: {}", self.output()))
            .expect("wait");
        // Let the readers drain the pipes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        (status.code(), self.output())
    }
}

/// `GET /metrics` of a running `mssp serve` parses as Prometheus text, and its numbers are what
/// the fetches did: each tenant's delivered (and late) records are the records in the sink, no
/// fetch failed, every tenant has a lag, the schedule's figures are there, and counters never go
/// down between two scrapes.
async fn metrics_match_the_sink(
    http: &reqwest::Client,
    public: &str,
    sink: &FileAlertSink,
    serve: &Serve,
) {
    let scrape = move || async move {
        let resp = http
            .get(format!("{public}/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some(shared::metrics::PROMETHEUS_CONTENT_TYPE)
        );
        let text = resp.text().await.expect("body");
        let families = crate::metrics::parse_prometheus(&text)
            .unwrap_or_else(|e| panic!("/metrics is not Prometheus text ({e}):\n{text}"));
        (text, families)
    };
    let tenants = [(CONTOSO, "siem"), (FABRIKAM, "mde"), (NORTHWIND, "graph")];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (text, families) = loop {
        let (text, families) = scrape().await;
        let counted = |family: &str, id: &str, api: &str| {
            families
                .get(family)
                .and_then(|f| f.value(&[("api", api), ("tenant", id)]))
                .unwrap_or(0.0)
        };
        let all = tenants.iter().all(|(id, api)| {
            let records = sink.records(Some(&tid(id))).map(|r| r.len()).unwrap_or(0);
            counted("mssp_alerts_delivered_total", id, api)
                + counted("mssp_late_alerts_total", id, api)
                == records as f64
        });
        if all {
            break (text, families);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/metrics does not count the sink's records:\n{text}\nserve said: {}",
            serve.output()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for (id, api) in tenants {
        let labels = [("api", api), ("tenant", id)];
        assert_eq!(
            families["mssp_fetch_failures_total"].value(&labels),
            Some(0.0),
            "{id}: {text}"
        );
        let lag = families["mssp_lag_seconds"].value(&labels);
        assert!(lag.is_some_and(|l| l >= 0.0), "{id}: {text}");
    }
    assert_eq!(families["mssp_lag_seconds"].kind, "gauge");
    assert_eq!(families["mssp_alerts_delivered_total"].kind, "counter");
    assert!(
        families["mssp_tokens_refreshed_total"].value(&[]).is_some(),
        "{text}"
    );
    for gauge in [
        "mssp_schedule_fits",
        "mssp_schedule_late_starts",
        "mssp_schedule_skipped_turns",
        "mssp_schedule_utilization",
        "mssp_schedule_tenants",
    ] {
        let f = families
            .get(gauge)
            .unwrap_or_else(|| panic!("{gauge} missing: {text}"));
        assert_eq!(f.kind, "gauge", "{gauge}");
        assert!(!f.help.is_empty(), "{gauge}");
    }
    assert_eq!(
        families["mssp_schedule_tenants"].value(&[]),
        Some(3.0),
        "{text}"
    );
    // Counters only grow over the process's life.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (later_text, later) = scrape().await;
    for (name, family) in families.iter().filter(|(_, f)| f.kind == "counter") {
        for (labels, value) in &family.samples {
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let now = later.get(name).and_then(|f| f.value(&pairs));
            assert!(
                now.is_some_and(|n| n >= *value),
                "{name}{labels:?} went from {value} to {now:?}:\n{later_text}"
            );
        }
    }
}

/// The emulator's scenario of the fixtures on real time (the CLI uses the system clock),
/// redirecting to `public`.
async fn emulator_for(public: &str) -> RunningEmulator {
    let sc = crate::lambda_world::scenario(&Url::parse(public).expect("url"), true);
    emulator::start(sc).await.expect("emulator")
}

pub(crate) fn config_text(emu: &RunningEmulator, port: u16) -> String {
    let u = emu.urls();
    format!(
        r#"data_dir = "mssp-data"
listen = "127.0.0.1:{port}"
public_base_url = "http://127.0.0.1:{port}"

[endpoints]
authority = "{}"
graph = "{}"
mde = "{}"
siem = "{}"

[schedule]
refresh_interval = "1h"
fetch_interval = "1s"
shutdown_grace = "10s"
"#,
        u.authority, u.graph, u.mde, u.siem
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operator_command_works_on_the_local_data_directory_against_the_emulator() {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let emu = emulator_for(&public).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut outputs: Vec<String> = Vec::new();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http");

    // init: a commented config and an app credentials template with a fresh state key.
    let init = mssp_ok(root, &["init", "--dir", "."], &[]).await;
    assert!(root.join("mssp.toml").is_file());
    let app_path = root.join("mssp-data/secrets/app.json");
    let mut app: Value =
        serde_json::from_slice(&std::fs::read(&app_path).expect("app template")).expect("json");
    let state_key = app["state_key"].as_str().expect("state key").to_string();
    assert!(state_key.len() >= 43, "32 bytes of base64");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&app_path)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    outputs.push(init.all());
    let again = mssp(root, &["init", "--dir", "."], &[]).await;
    assert_eq!(
        again.code,
        Some(2),
        "init never overwrites silently: {again:?}"
    );

    std::fs::write(root.join("mssp.toml"), config_text(&emu, port)).expect("config");

    // The template is refused until the operator fills in the app registration.
    let refused = configured(
        root,
        &[
            "tenants",
            "add",
            CONTOSO,
            "--name",
            "Contoso",
            "--model",
            "delegated-v1",
            "--api",
            "siem",
        ],
    )
    .await;
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(refused.stderr.contains("template"), "{refused:?}");
    app["client_id"] = APP_ID.into();
    app["client_secret"] = APP_SECRET.into();
    std::fs::write(&app_path, app.to_string()).expect("app credentials");

    // tenants add: one per model and API; each prints its consent link.
    let mut links = Vec::new();
    for (id, name, model, api) in [
        (CONTOSO, "Contoso", "delegated-v1", "siem"),
        (FABRIKAM, "Fabrikam", "delegated-v2", "mde"),
        (NORTHWIND, "Northwind", "application", "graph"),
    ] {
        let add = configured_ok(
            root,
            &[
                "tenants", "add", id, "--name", name, "--model", model, "--api", api,
            ],
        )
        .await;
        let link = link_in(&add.stdout);
        assert!(
            link.starts_with(&format!("{public}/consent/start?link=")),
            "{link}"
        );
        links.push(link);
        outputs.push(add.all());
    }
    let list = configured_ok(root, &["tenants", "list", "--json"]).await;
    let tenants = list.json();
    assert_eq!(tenants.as_array().expect("array").len(), 3);
    assert!(
        tenants
            .as_array()
            .expect("array")
            .iter()
            .all(|t| t["status"] == "pending_consent")
    );
    // A SIEM tenant records its exporter region: the configured default when none is given.
    let regions: Vec<_> = tenants
        .as_array()
        .expect("array")
        .iter()
        .map(|t| (t["alert_api"].clone(), t["siem_region"].clone()))
        .collect();
    assert!(
        regions.contains(&(json!("siem"), json!("us"))),
        "{regions:?}"
    );
    assert!(
        regions.contains(&(json!("graph"), Value::Null)),
        "{regions:?}"
    );
    let link = configured_ok(root, &["consent-link", NORTHWIND]).await;
    assert!(link.stdout.trim().starts_with(&public), "{link:?}");

    // serve: the consent endpoint and the schedules in one process.
    let serve = Serve::start(root, &with(&["serve"])).await;
    for link in &links {
        let page = consent(&http, link).await;
        assert!(page.contains("Consent recorded"), "{page}");
    }
    let sink = FileAlertSink::new(&root.join("mssp-data"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    for id in [CONTOSO, FABRIKAM, NORTHWIND] {
        loop {
            let got = sink.records(Some(&tid(id))).map(|r| r.len()).unwrap_or(0);
            if got == exposed(&emu, id) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id}: {got} records; serve said: {}",
                serve.output()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    metrics_match_the_sink(&http, &public, &sink, &serve).await;
    let (code, out) = serve.terminate().await;
    assert_eq!(code, Some(0), "serve exits 0 on SIGTERM: {out}");
    assert!(out.contains("mssp serve: stopped"), "{out}");
    outputs.push(out);
    for id in [CONTOSO, FABRIKAM, NORTHWIND] {
        let records = sink.records(Some(&tid(id))).expect("records");
        let c = check(&emu, id, &records);
        assert!(
            c.duplicates == 0 && c.missing.is_empty() && c.records == c.expected,
            "{id}: every version exactly once: {c:?}"
        );
    }

    // status: every tenant active, fetched, no error.
    let status = configured_ok(root, &["status", "--json"]).await;
    for h in status.json().as_array().expect("array") {
        assert_eq!(h["status"], "active", "{h}");
        assert_eq!(h["last_fetch_ok"], true, "{h}");
        assert!(h["lag_s"].as_i64().is_some(), "{h}");
    }
    let table = configured_ok(root, &["status"]).await;
    for word in [
        "TENANT",
        "MODEL",
        "LAST FETCH",
        "LAG",
        "LAST ERROR",
        "Contoso",
        "siem",
    ] {
        assert!(table.stdout.contains(word), "{word}: {table:?}");
    }

    // run --once: one refresh + fetch cycle in the foreground; every cursor moves.
    let watermarks = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|h| (h["tenant_id"].to_string(), h["watermark"].to_string()))
            .collect()
    };
    let before = watermarks(&status.json());
    for id in [CONTOSO, FABRIKAM, NORTHWIND] {
        let added = http
            .post(format!("{}/tenants/{id}/alerts", emu.urls().control))
            .json(&serde_json::json!([{"created": "-1s", "title": "New for run"}]))
            .send()
            .await
            .expect("control api");
        assert!(added.status().is_success(), "{}", added.status());
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let run = configured_ok(root, &["run", "--once"]).await;
    for name in ["Contoso", "Fabrikam", "Northwind"] {
        assert!(
            run.stderr.contains(&format!("{name}: 1 alerts delivered")),
            "{name}: {run:?}"
        );
    }
    assert!(
        run.stdout.contains("LAST FETCH"),
        "the status table: {run:?}"
    );
    let after = configured(root, &["status", "--json"]).await;
    let moved = watermarks(&after.json());
    for (b, a) in before.iter().zip(&moved) {
        assert_eq!(b.0, a.0);
        assert!(a.1 > b.1, "the cursor moved: {b:?} -> {a:?}");
    }
    for id in [CONTOSO, FABRIKAM, NORTHWIND] {
        let records = sink.records(Some(&tid(id))).expect("records");
        let c = check(&emu, id, &records);
        assert!(
            c.duplicates == 0 && c.missing.is_empty(),
            "{id}: exactly once after run: {c:?}"
        );
    }
    let one = configured_ok(root, &["run", "--once", CONTOSO]).await;
    assert!(one.stderr.contains("fetching 1 tenants"), "{one:?}");
    let forced = configured_ok(root, &["refresh", "--force"]).await;
    assert_eq!(
        forced.stdout.matches("refreshed").count(),
        3,
        "every active tenant renewed: {forced:?}"
    );
    outputs.push(run.all());

    // backfill: history older than the regular fetch's coverage, delivered once.
    let old: Vec<Value> = (0..30)
        .map(|i| serde_json::json!({"created": format!("-{}h", 240 + 8 * i), "title": format!("Old {i}")}))
        .collect();
    let added = http
        .post(format!("{}/tenants/{NORTHWIND}/alerts", emu.urls().control))
        .json(&old)
        .send()
        .await
        .expect("control api");
    assert!(added.status().is_success(), "{}", added.status());
    let backfill = configured_ok(
        root,
        &["backfill", NORTHWIND, "--since", "-30d", "--api", "graph"],
    )
    .await;
    assert!(backfill.stdout.contains("30 delivered"), "{backfill:?}");
    let records = sink.records(Some(&tid(NORTHWIND))).expect("records");
    let c = check(&emu, NORTHWIND, &records);
    assert!(
        c.duplicates == 0 && c.missing.is_empty(),
        "the backfilled history exactly once: {c:?}"
    );
    let again = configured_ok(root, &["backfill", NORTHWIND, "--since", "-30d"]).await;
    assert!(again.stdout.contains("0 delivered"), "{again:?}");
    let wrong = configured(
        root,
        &["backfill", NORTHWIND, "--since", "-30d", "--api", "siem"],
    )
    .await;
    assert_eq!(wrong.code, Some(2), "{wrong:?}");
    outputs.push(backfill.all());

    // fetch: a range on demand, as NDJSON and JSON; the cursor does not move.
    let cursor = root.join(format!("mssp-data/cursors/{CONTOSO}"));
    let before = snapshot(&cursor);
    let nd = configured_ok(
        root,
        &["fetch", CONTOSO, "--since", "-3h", "--format", "ndjson"],
    )
    .await;
    let lines = nd.json_lines("one JSON record per line");
    assert_eq!(lines.len(), exposed(&emu, CONTOSO), "{nd:?}");
    assert!(
        lines
            .iter()
            .all(|r| r["schema"] == "mssp.alert/1" && r["source"] == "siem")
    );
    assert!(nd.stderr.contains("alert versions of"), "{nd:?}");
    // The same range as OCSF: one valid Detection Finding per record, metadata.uid its dedup key.
    let oc = configured_ok(
        root,
        &["fetch", CONTOSO, "--since", "-3h", "--format", "ocsf"],
    )
    .await;
    let events = oc.json_lines("one OCSF event per line");
    crate::ocsf::validate_all(&events);
    let mut uids: Vec<&str> = events
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().expect("uid"))
        .collect();
    let mut keys: Vec<&str> = lines
        .iter()
        .map(|r| r["dedup_key"].as_str().expect("dedup_key"))
        .collect();
    uids.sort_unstable();
    keys.sort_unstable();
    assert_eq!(uids, keys, "one event per record of the range");
    assert!(
        events.iter().all(|e| e["class_uid"] == 2004
            && e["metadata"]["log_name"] == "Defender for Endpoint SIEM API")
    );
    assert_eq!(
        snapshot(&cursor),
        before,
        "an on-demand fetch leaves the cursor"
    );
    let js = configured_ok(
        root,
        &["fetch", FABRIKAM, "--since", "-3h", "--until", "now"],
    )
    .await;
    assert_eq!(
        js.json().as_array().expect("array").len(),
        exposed(&emu, FABRIKAM)
    );
    outputs.push(nd.stderr.clone());
    outputs.push(js.stderr.clone());

    // show, suspend, resume.
    let show = configured_ok(root, &["tenants", "show", FABRIKAM]).await;
    assert!(
        show.stdout.contains("Fabrikam") && show.stdout.contains("delegated-v2"),
        "{show:?}"
    );
    configured_ok(root, &["tenants", "suspend", FABRIKAM]).await;
    let refused = configured(root, &["refresh", FABRIKAM]).await;
    assert_eq!(
        refused.code,
        Some(4),
        "a suspended tenant is not refreshed: {refused:?}"
    );
    let resume = configured_ok(root, &["tenants", "resume", FABRIKAM, "--json"]).await;
    assert_eq!(resume.json()["status"], "active");
    let twice = configured(root, &["tenants", "resume", FABRIKAM]).await;
    assert_eq!(twice.code, Some(4), "{twice:?}");

    // Every output so far: no secret, no token.
    let mut secrets = vec![APP_SECRET.to_string(), state_key];
    for entry in std::fs::read_dir(root.join("mssp-data/secrets/tenants")).expect("tokens") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let tokens: Value =
            serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
        for field in ["access_token", "refresh_token"] {
            if let Some(t) = tokens[field].as_str() {
                secrets.push(t.to_string());
            }
        }
    }
    for out in &outputs {
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "a secret was printed: {out}");
        }
    }

    // remove: tokens and cursor deleted, the record kept as offboarded.
    configured_ok(root, &["tenants", "remove", NORTHWIND]).await;
    assert!(
        !root
            .join(format!("mssp-data/secrets/tenants/{NORTHWIND}.json"))
            .exists()
    );
    let cursors = snapshot(&root.join(format!("mssp-data/cursors/{NORTHWIND}")));
    assert!(
        cursors.iter().all(|(name, _)| name.starts_with('.')),
        "only the lock file stays: {:?}",
        cursors.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let show = configured(root, &["tenants", "show", NORTHWIND, "--json"]).await;
    assert_eq!(show.json()["tenant"]["status"], "offboarded", "{show:?}");

    // refresh of every active tenant.
    let refresh = configured_ok(root, &["refresh"]).await;
    assert!(refresh.stdout.contains("Contoso"), "{refresh:?}");

    // 91 idle days later at Microsoft, Contoso's refresh token is dead: re-consent, with a link.
    emu.state().clock.advance(chrono::Duration::days(91));
    let dead = configured(root, &["refresh", CONTOSO, "--force"]).await;
    assert_eq!(dead.code, Some(3), "{dead:?}");
    assert!(dead.stdout.contains("reconsent_required"), "{dead:?}");
    let status = configured(root, &["status"]).await;
    assert_eq!(status.code, Some(3), "a tenant needs attention: {status:?}");
    let contoso = status
        .stdout
        .lines()
        .find(|l| l.starts_with("Contoso"))
        .expect("Contoso's row");
    assert!(contoso.contains("reconsent_required"), "{status:?}");
    let link = link_in(&status.stdout);
    assert!(
        link.starts_with(&format!("{public}/consent/start?link=")),
        "{status:?}"
    );
    let json = configured(root, &["status", "--json"]).await;
    let contoso = json
        .json()
        .as_array()
        .expect("array")
        .iter()
        .find(|h| h["tenant_id"] == CONTOSO)
        .cloned()
        .expect("Contoso");
    assert_eq!(contoso["status"], "reconsent_required");
    assert!(
        contoso["consent_link"]
            .as_str()
            .is_some_and(|l| l.starts_with(&public))
    );
}

/// The file names and contents under `dir`.
pub(crate) fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mssp_demo_runs_end_to_end_and_prints_a_table_per_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let demo = mssp_ok(dir.path(), &["demo", "--data-dir", "demo-data"], &[]).await;
    assert!(started.elapsed() < Duration::from_secs(60));
    for word in "TENANT MODEL API STATUS DELIVERED/EXPECTED CREATED/UPDATED LAG".split(' ') {
        assert!(demo.stdout.contains(word), "{word}: {demo:?}");
    }
    for (name, model, api) in [
        ("Contoso", "delegated-v1", "siem"),
        ("Fabrikam", "delegated-v2", "mde"),
        ("Northwind", "application", "graph"),
    ] {
        let row = demo
            .stdout
            .lines()
            .find(|l| l.starts_with(name) && l.contains("active"))
            .unwrap_or_else(|| panic!("{name}'s row: {demo:?}"));
        assert!(row.contains(model) && row.contains(api), "{row}");
        assert!(row.contains("ok: every version once"), "{row}");
    }
    assert!(
        demo.stdout.contains("demo-data"),
        "names the data dir: {demo:?}"
    );
    let data = dir.path().join("demo-data");
    let sink = FileAlertSink::new(&data);
    let records = sink.records(None).expect("records");
    assert!(records.len() > 400);
    // The OCSF output: the demo says where, every record's event is valid, once in the lake's
    // Parquet files (read back with the parquet crate's row reader) in its event day's
    // partition, and once in the OCSF NDJSON objects.
    let source = data.join("lake/ext/mssp-alerts");
    let line = demo
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("lake/"))
        .unwrap_or_else(|| panic!("a lake/ line: {demo:?}"));
    assert!(
        line.contains(
            "demo-data/lake/ext/mssp-alerts/region=local/accountId=local/eventDay=<YYYYMMDD>/"
        ) && line.contains(&format!("{} OCSF Detection Findings", records.len()))
            && line.contains("each delivered record once"),
        "{line}"
    );
    assert!(
        demo.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("ocsf/")),
        "{demo:?}"
    );
    let events: Vec<Value> = records.iter().map(shared::ocsf::map).collect();
    let validated = crate::ocsf::validate_all(&events);
    let rows = crate::ocsf::check_lake(&crate::ocsf::lake_files(&source), &events);
    let mut ndjson: Vec<Value> = crate::ocsf::ocsf_objects(&data.join("ocsf"));
    crate::ocsf::validate_all(&ndjson);
    let uid = |e: &Value| e["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    ndjson.sort_by_key(uid);
    let mut want = events.clone();
    want.sort_by_key(uid);
    assert_eq!(
        ndjson, want,
        "the OCSF objects hold every record's event once"
    );
    eprintln!(
        "demo: {validated} records, each valid OCSF 1.1.0, {rows} Parquet rows read back in their \
         partitions, {} OCSF NDJSON events",
        ndjson.len()
    );
    let again = mssp(dir.path(), &["demo", "--data-dir", "demo-data"], &[]).await;
    assert_eq!(again.code, Some(2), "a used data dir is refused: {again:?}");
}

#[tokio::test]
async fn bad_usage_and_configuration_exit_2_naming_what_to_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];

    let help = mssp(root, &["--help"], &[]).await;
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("Exit codes:"), "{help:?}");

    let bad = mssp(root, &["status"], &env("MSSP_FETCH_INTERVAL", "soon")).await;
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(bad.stderr.contains("MSSP_FETCH_INTERVAL"), "{bad:?}");

    std::fs::write(
        root.join("mssp.toml"),
        "[schedule]\nfetch_interval = \"soon\"\n",
    )
    .expect("w");
    let bad = mssp(root, &["status"], &[]).await;
    assert_eq!(bad.code, Some(2), "./mssp.toml is read: {bad:?}");
    assert!(
        bad.stderr.contains("MSSP_FETCH_INTERVAL")
            && bad.stderr.contains("schedule.fetch_interval"),
        "{bad:?}"
    );
    let fixed = mssp(root, &["status"], &env("MSSP_FETCH_INTERVAL", "2m")).await;
    assert_eq!(
        fixed.code,
        Some(0),
        "the environment overrides the file: {fixed:?}"
    );

    std::fs::write(root.join("typo.toml"), "[fetch]\noverlapp = \"1h\"\n").expect("w");
    let typo = mssp(root, &["--config", "typo.toml", "status"], &[]).await;
    assert_eq!(typo.code, Some(2), "{typo:?}");
    assert!(typo.stderr.contains("fetch.overlapp"), "{typo:?}");

    let missing = mssp(root, &["--config", "nope.toml", "status"], &[]).await;
    assert_eq!(missing.code, Some(2), "{missing:?}");

    let not_guid = mssp(root, &add_tenant("contoso", "delegated-v1", &[]), &[]).await;
    assert_eq!(not_guid.code, Some(2), "{not_guid:?}");
    let bad_model = mssp(root, &add_tenant(CONTOSO, "delegated", &[]), &[]).await;
    assert_eq!(bad_model.code, Some(2), "{bad_model:?}");
    let region_of_graph = mssp(
        root,
        &add_tenant(CONTOSO, "application", &["--siem-region", "eu"]),
        &env("MSSP_FETCH_INTERVAL", "2m"),
    )
    .await;
    assert_eq!(region_of_graph.code, Some(2), "{region_of_graph:?}");
    assert!(
        region_of_graph.stderr.contains("--siem-region"),
        "{region_of_graph:?}"
    );

    let unknown = mssp(
        root,
        &["--config", "typo.toml", "tenants", "show", CONTOSO],
        &[],
    )
    .await;
    assert_eq!(
        unknown.code,
        Some(2),
        "the config error comes first: {unknown:?}"
    );
    std::fs::remove_file(root.join("mssp.toml")).expect("rm");
    let unknown = mssp(root, &["tenants", "show", CONTOSO], &[]).await;
    assert_eq!(unknown.code, Some(4), "{unknown:?}");

    let aws_serve = mssp(root, &["--backend", "aws", "serve"], &[]).await;
    assert_eq!(aws_serve.code, Some(2), "{aws_serve:?}");
    let aws_missing = mssp(root, &["--backend", "aws", "status"], &[]).await;
    assert_eq!(aws_missing.code, Some(2), "{aws_missing:?}");
    assert!(
        aws_missing.stderr.contains("MSSP_PUBLIC_BASE_URL"),
        "{aws_missing:?}"
    );
}

/// `tenants add ID --name C --model MODEL --api graph` and `extra`.
fn add_tenant<'a>(id: &'a str, model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "tenants", "add", id, "--name", "C", "--model", model, "--api", "graph",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_work_on_the_aws_deployment_with_backend_aws() {
    let mut w = crate::lambda_world::FnWorld::start(true).await;
    let _function = w.serve_consent().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let env = w.lambda_env();
    let aws = |args: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["--backend", "aws"];
        v.extend_from_slice(args);
        v
    };

    let add = mssp_ok(
        root,
        &aws(&[
            "tenants",
            "add",
            FABRIKAM,
            "--name",
            "Fabrikam",
            "--model",
            "delegated-v2",
            "--api",
            "mde",
        ]),
        &env,
    )
    .await;
    let link = link_in(&add.stdout);
    assert!(link.starts_with(w.gw.url().as_str()), "{link}");
    let page = consent(&w.env.http, &link).await;
    assert!(page.contains("Consent recorded"), "{page}");

    let status = mssp_ok(root, &aws(&["status", "--json"]), &env).await;
    assert_eq!(status.json()[0]["status"], "active", "{status:?}");

    let refresh = mssp_ok(root, &aws(&["refresh", FABRIKAM, "--force"]), &env).await;
    assert!(refresh.stdout.contains("refreshed"), "{refresh:?}");

    let fetched = mssp_ok(
        root,
        &aws(&["fetch", FABRIKAM, "--since", "-3h", "--format", "ndjson"]),
        &env,
    )
    .await;
    assert_eq!(
        fetched.stdout.lines().count(),
        exposed(&w.env.emulator, FABRIKAM),
        "{fetched:?}"
    );

    mssp_ok(root, &aws(&["tenants", "suspend", FABRIKAM]), &env).await;
    assert_eq!(
        w.tenant(FABRIKAM).await.expect("tenant").status,
        shared::domain::TenantStatus::Suspended
    );
    let remove = mssp_ok(root, &aws(&["tenants", "remove", FABRIKAM]), &env).await;
    assert!(
        w.tokens(FABRIKAM).await.is_none(),
        "the tenant's secret is deleted"
    );
    assert_eq!(
        w.tenant(FABRIKAM).await.expect("the record stays").status,
        shared::domain::TenantStatus::Offboarded
    );
    let list = mssp(root, &aws(&["tenants", "list", "--json"]), &env).await;
    assert_eq!(list.json()[0]["status"], "offboarded", "{list:?}");
    for out in [&add, &status, &refresh, &fetched, &remove] {
        assert!(!out.all().contains(APP_SECRET), "{out:?}");
    }
}

/// A registry of `n` tenants in `dir`: all active, the first 500 fetched (lags 0–499 s), 20
/// whose last fetch failed, 10 that need re-consent; a third of them on each API.
async fn fleet(dir: &Path, n: usize) {
    use shared::domain::{AuthModel, Outcome, Tenant, TenantStatus};
    use shared::ports::{CursorStore, TenantRegistry};
    let registry = shared::adapters::local::FileTenantRegistry::new(dir);
    let cursors = shared::adapters::local::FileCursorStore::new(dir);
    let now = chrono::Utc::now();
    for i in 0..n {
        let id = tid(&format!("{:08x}-0000-4000-8000-{:012x}", i, i));
        let api = AlertApi::ALL[i % 3];
        let mut t = Tenant::pending(
            id.clone(),
            format!("Customer {i}"),
            AuthModel::Application,
            api,
            shared::config::Cloud::Commercial,
            now,
        );
        t.status = if i < 10 {
            TenantStatus::ReconsentRequired
        } else {
            TenantStatus::Active
        };
        let failed = (10..30).contains(&i);
        t.last_fetch = Some(Outcome {
            at: now,
            ok: !failed,
            detail: failed.then(|| "the connection was dropped; the next run retries".into()),
        });
        registry.create(&t).await.expect("tenant");
        if i < 500 {
            let owner = "fleet";
            let mut c = cursors
                .acquire(&id, api, owner, now, chrono::Duration::minutes(1))
                .await
                .expect("lease");
            c.watermark = Some(now - chrono::Duration::seconds(i as i64));
            c.lease = None;
            cursors.commit(&c, owner, now).await.expect("cursor");
        }
    }
}

#[tokio::test]
async fn status_of_ten_thousand_tenants_fits_a_screen_and_filters_narrow_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fleet(&root.join("data"), 10_000).await;
    let env = vec![(
        "MSSP_DATA_DIR".to_string(),
        root.join("data").display().to_string(),
    )];

    let summary = mssp(root, &["status"], &env).await;
    assert_eq!(summary.code, Some(3), "30 need attention: {summary:?}");
    let lines = summary.stdout.lines().count();
    assert!(lines <= 40, "{lines} lines:\n{}", summary.stdout);
    for expected in [
        "10000 tenants: 9990 active, 10 reconsent_required",
        "APIs: 3334 graph, 3333 mde, 3333 siem",
        "Lag of 490 fetched tenants: p50 ",
        "30 tenants need attention:",
        "… and 10 more",
    ] {
        assert!(
            summary.stdout.contains(expected),
            "{expected}:\n{}",
            summary.stdout
        );
    }

    let all = mssp(root, &["status", "--all"], &env).await;
    assert_eq!(
        all.stdout.lines().count(),
        10_001,
        "a header and a row each"
    );

    let reconsent = mssp(root, &["status", "--state", "reconsent_required"], &env).await;
    assert_eq!(reconsent.code, Some(3));
    assert_eq!(reconsent.stdout.lines().count(), 11, "{reconsent:?}");

    let siem = mssp(root, &["status", "--api", "siem", "--json"], &env).await;
    let siem = siem.json();
    let siem = siem.as_array().expect("array");
    assert_eq!(siem.len(), 3333);
    assert!(siem.iter().all(|h| h["alert_api"] == "siem"));

    let fine = mssp(
        root,
        &["status", "--state", "active", "--api", "graph"],
        &env,
    )
    .await;
    assert_eq!(
        fine.code,
        Some(3),
        "graph tenants among the failed: {fine:?}"
    );
    assert!(
        fine.stdout.contains("3330 tenants: 3330 active"),
        "{fine:?}"
    );
}
