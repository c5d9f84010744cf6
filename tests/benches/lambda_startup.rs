//! Cold-start cost of each Lambda function binary: the time from spawning the process to its
//! first Runtime API poll (`GET …/invocation/next`, i.e. configuration read, tracing and AWS
//! clients built, runtime started), and its resident memory at that moment (`VmRSS`), beside the
//! floor measured in the same run: `lambda-floor`, a lambda_runtime binary that only echoes its
//! event (tests/lambda-floor).
//!
//! ```text
//! cargo bench -p tests --bench lambda_startup -- [--profile release|debug | --dir DIR] [--spawns N]
//! ```
//!
//! The binaries measured are `target/<profile>/<binary>`; build them first
//! (`cargo build --release --bins`, or `cargo build --bins` for `debug`). The default profile is
//! `release` when its binaries exist, else `debug`. `--dir DIR` measures `DIR/<binary>/bootstrap`
//! instead: the packages as shipped, unzipped (scripts/package writes
//! `target/lambda/<function>/bootstrap.zip`; build the floor for the same target and profile,
//! `cargo lambda build --profile function --x86-64 -p lambda-floor`). The functions read no AWS or
//! Microsoft endpoint before their first poll, so the configuration points at closed loopback
//! ports.
//!
//! Exits 1 when a function's median start is over 2x the floor's or its RSS at first poll over
//! 10 MiB (issue H's targets).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tests::bench::arg;
use tests::lambda::{FUNCTIONS, LambdaProcess, binary_path};

const FLOOR: &str = "lambda-floor";
/// A function's median start against the floor's, at most.
const MAX_START_RATIO: f64 = 2.0;
/// RSS at the first poll, at most (MiB).
const MAX_RSS_MIB: f64 = 10.0;

/// The functions' environment: the AWS SDK pointed at a closed port, and the configuration
/// every function reads.
fn env() -> Vec<(&'static str, String)> {
    let config = [
        ("MSSP_PUBLIC_BASE_URL", "https://consent.example.com"),
        ("MSSP_SECRETS_PREFIX", "mssp-bench"),
        ("MSSP_TABLE", "mssp-bench"),
        ("MSSP_BUCKET", "mssp-bench-alerts"),
        (
            "MSSP_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/mssp-bench",
        ),
        ("MSSP_LAKE_BUCKET", "mssp-bench-lake"),
        ("MSSP_LAKE_PREFIX", "ext/mssp-alerts"),
        ("MSSP_LAKE_ACCOUNT_ID", "123456789012"),
        ("RUST_LOG", "warn"),
    ];
    tests::aws::service_env("http://127.0.0.1:9")
        .into_iter()
        .chain(config.into_iter().map(|(k, v)| (k, v.to_owned())))
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Where the binaries come from: a cargo profile, or a directory of unzipped packages.
enum Source {
    Profile(String),
    Dir(PathBuf),
}

impl Source {
    fn path(&self, binary: &str) -> PathBuf {
        match self {
            Self::Profile(p) => binary_path(binary, p),
            Self::Dir(d) => d.join(binary).join("bootstrap"),
        }
    }
}

/// One binary's row: median start (ms) and median RSS (MiB), after printing it.
async fn measure(binary: &str, path: &Path, spawns: usize) -> anyhow::Result<(f64, f64)> {
    let size = std::fs::metadata(path)
        .map(|m| m.len() as f64 / 1048576.0)
        .unwrap_or(f64::NAN);
    let mut starts = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..spawns {
        let p = LambdaProcess::spawn_binary(binary, path, env()).await?;
        let took = p.first_poll(Duration::from_secs(30)).await?;
        starts.push(took.as_secs_f64() * 1000.0);
        rss.push(p.rss_kib().unwrap_or_default() as f64 / 1024.0);
        drop(p);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let min = starts.iter().copied().fold(f64::INFINITY, f64::min);
    let max = starts.iter().copied().fold(0.0, f64::max);
    let rss_max = rss.iter().copied().fold(0.0, f64::max);
    let (start_med, rss_med) = (median(&mut starts), median(&mut rss));
    print!(
        "{:<18} {:>10.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1}",
        binary, size, min, start_med, max, rss_med, rss_max
    );
    Ok((start_med, rss_med))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let source = match arg("--dir") {
        Some(dir) => Source::Dir(dir.into()),
        None => Source::Profile(arg("--profile").unwrap_or_else(|| {
            let release = FUNCTIONS
                .iter()
                .chain([&FLOOR])
                .all(|f| binary_path(f, "release").is_file());
            if release { "release" } else { "debug" }.to_owned()
        })),
    };
    let spawns: usize = arg("--spawns").map_or(Ok(10), |s| s.parse())?;
    let from = match &source {
        Source::Profile(p) => format!("{p} builds"),
        Source::Dir(d) => format!("packages in {}", d.display()),
    };
    println!("Lambda cold start: spawn → first Runtime API poll, {spawns} spawns each, {from}");
    println!(
        "{:<18} {:>10} {:>12} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "binary",
        "size MiB",
        "start min ms",
        "start med ms",
        "start max ms",
        "RSS med MiB",
        "RSS max MiB",
        "vs floor"
    );
    let (floor, _) = measure(FLOOR, &source.path(FLOOR), spawns).await?;
    println!(" {:>10}", "1.00x");
    let mut missed = Vec::new();
    for f in FUNCTIONS {
        let path = source.path(f);
        if !path.is_file() {
            println!("{f:<18} (no binary at {})", path.display());
            continue;
        }
        let (start, rss) = measure(f, &path, spawns).await?;
        let ratio = start / floor;
        println!(" {ratio:>9.2}x");
        if ratio > MAX_START_RATIO {
            missed.push(format!(
                "{f} starts in {ratio:.2}x the floor's time (target ≤ {MAX_START_RATIO}x)"
            ));
        }
        if rss > MAX_RSS_MIB {
            missed.push(format!(
                "{f} holds {rss:.1} MiB at its first poll (target ≤ {MAX_RSS_MIB} MiB)"
            ));
        }
    }
    if missed.is_empty() {
        println!("every function within {MAX_START_RATIO}x the floor and {MAX_RSS_MIB} MiB");
        Ok(())
    } else {
        for m in &missed {
            println!("MISSED: {m}");
        }
        std::process::exit(1)
    }
}
