//! Onboarding a fleet by import: `mssp tenants import` of N application tenants whose admins all
//! granted the app's roles (`emulator::fleet::granted`), against the emulator answering every
//! Microsoft request after a fixed latency, on the local backend. Every tenant must be adopted
//! (one client-credentials token each, `tid` and roles verified); a second run of the same file
//! must adopt none and leave every tenant as it is.
//!
//! ```text
//! cargo build --release -p cli --bin mssp
//! cargo bench -p tests --bench import -- [--tenants 1000,10000] [--latency-ms 50]
//!     [--concurrency N] [--profile release|debug]
//! ```
//!
//! Per size it prints the wall time of the import and of its re-run, and the `mssp` process's
//! CPU seconds and peak RSS (from GNU time when `/usr/bin/time` exists). The emulator runs in
//! this process, on the same cores. Exits non-zero when a tenant is not adopted, or the re-run
//! changes anything.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use emulator::fleet;
use serde_json::Value;
use tests::bench::arg;
use tests::lambda::binary_path;

/// What one `mssp` run cost and said.
struct Run {
    wall_s: f64,
    /// User + system CPU seconds and peak RSS in KiB, when GNU time measured them.
    cpu_s: Option<f64>,
    rss_kib: Option<u64>,
    report: Value,
}

fn import(mssp: &Path, dir: &Path, concurrency: Option<&str>) -> anyhow::Result<Run> {
    let gnu_time = Path::new("/usr/bin/time");
    let measured = dir.join("time.txt");
    let mut args: Vec<String> = vec![
        "--config".into(),
        "mssp.toml".into(),
        "--json".into(),
        "tenants".into(),
        "import".into(),
        "fleet.csv".into(),
    ];
    if let Some(c) = concurrency {
        args.extend(["--concurrency".into(), c.into()]);
    }
    let mut cmd = if gnu_time.is_file() {
        let mut c = Command::new(gnu_time);
        c.arg("-f")
            .arg("%U %S %M")
            .arg("-o")
            .arg(&measured)
            .arg(mssp);
        c
    } else {
        Command::new(mssp)
    };
    cmd.args(&args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("MSSP_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let started = Instant::now();
    let out = cmd.output().context("running mssp")?;
    let wall_s = started.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "mssp tenants import failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).context("the import's JSON report")?;
    let (mut cpu_s, mut rss_kib) = (None, None);
    if let Ok(text) = std::fs::read_to_string(&measured) {
        let f: Vec<&str> = text.split_whitespace().collect();
        if let [user, sys, rss] = f[..] {
            cpu_s = Some(user.parse::<f64>()? + sys.parse::<f64>()?);
            rss_kib = Some(rss.parse()?);
        }
    }
    Ok(Run {
        wall_s,
        cpu_s,
        rss_kib,
        report,
    })
}

fn count(r: &Value, what: &str) -> u64 {
    r[what].as_u64().unwrap_or(0)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let profile = arg("--profile").unwrap_or_else(|| {
        if binary_path("mssp", "release").is_file() {
            "release"
        } else {
            "debug"
        }
        .to_owned()
    });
    let mssp = binary_path("mssp", &profile);
    if !mssp.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p cli --bin mssp`",
            mssp.display()
        );
    }
    let sizes: Vec<usize> = arg("--tenants")
        .unwrap_or_else(|| "1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().context("--tenants N[,N…]"))
        .collect::<anyhow::Result<_>>()?;
    let latency: u64 = arg("--latency-ms").map_or(Ok(50), |s| s.parse())?;
    let concurrency = arg("--concurrency");
    println!(
        "mssp tenants import ({profile} build), local backend, emulator latency {latency} ms, \
         concurrency {}",
        concurrency.as_deref().unwrap_or("default")
    );
    println!(
        "{:>8} {:>9} {:>8} {:>8} {:>9} {:>10} {:>9} {:>8}",
        "tenants", "adopted", "wall s", "CPU s", "RSS MiB", "tenants/s", "rerun s", "rerun ok"
    );
    let mut failed = false;
    for n in sizes {
        let start = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut scenario = fleet::granted(n, &start)?;
        scenario.settings.latency_ms = latency;
        let emu = emulator::start(scenario).await?;
        let dir = tempfile::tempdir()?;
        let u = emu.urls();
        std::fs::write(
            dir.path().join("mssp.toml"),
            format!(
                "data_dir = \"mssp-data\"\npublic_base_url = \"http://127.0.0.1:8080\"\n\n\
                 [endpoints]\nauthority = \"{}\"\ngraph = \"{}\"\nmde = \"{}\"\nsiem = \"{}\"\n",
                u.authority, u.graph, u.mde, u.siem
            ),
        )?;
        tests::local::write_app_secret(&dir.path().join("mssp-data"), fleet::APP, fleet::SECRET)?;
        let mut csv = String::from("id,name,model,api\n");
        for i in 0..n {
            let api = if i % 2 == 0 { "graph" } else { "mde" };
            csv.push_str(&format!(
                "{},Tenant {i},application,{api}\n",
                fleet::tenant_id(i)
            ));
        }
        std::fs::write(dir.path().join("fleet.csv"), csv)?;

        let mssp = mssp.clone();
        let path = dir.path().to_path_buf();
        let c = concurrency.clone();
        let (first, again) = tokio::task::spawn_blocking(move || {
            let first = import(&mssp, &path, c.as_deref())?;
            let again = import(&mssp, &path, c.as_deref())?;
            anyhow::Ok((first, again))
        })
        .await??;
        let adopted = count(&first.report, "adopted");
        let rerun_ok = count(&again.report, "done") == n as u64
            && count(&again.report, "added") == 0
            && count(&again.report, "adopted") == 0;
        println!(
            "{n:>8} {adopted:>9} {:>8.1} {:>8} {:>9} {:>10.0} {:>9.1} {:>8}",
            first.wall_s,
            opt(first.cpu_s, 1),
            opt(first.rss_kib.map(|k| k as f64 / 1024.0), 1),
            n as f64 / first.wall_s,
            again.wall_s,
            if rerun_ok { "yes" } else { "NO" }
        );
        if adopted != n as u64 || !rerun_ok {
            failed = true;
            eprintln!(
                "{n} tenants: {adopted} adopted, re-run {}: first {}, re-run {}",
                if rerun_ok { "ok" } else { "changed something" },
                summary(&first.report),
                summary(&again.report)
            );
        }
        emu.shutdown().await;
    }
    if failed {
        bail!("not every tenant was adopted, or a re-run changed the registry");
    }
    Ok(())
}

fn summary(r: &Value) -> String {
    ["added", "adopted", "pending", "done", "failed"]
        .iter()
        .map(|k| format!("{k} {}", count(r, k)))
        .collect::<Vec<_>>()
        .join(", ")
}
