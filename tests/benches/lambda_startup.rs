//! Cold-start cost of each Lambda function binary: the time from spawning the process to its
//! first Runtime API poll (`GET …/invocation/next`, i.e. configuration read, tracing and AWS
//! clients built, runtime started), and its resident memory at that moment (`VmRSS`).
//!
//! ```text
//! cargo bench -p tests --bench lambda_startup -- [--profile release|debug] [--spawns N]
//! ```
//!
//! The binaries measured are `target/<profile>/<function>`; build them first
//! (`cargo build --release --bins`, or `cargo build --bins` for `debug`). The default profile is
//! `release` when its binaries exist, else `debug`. The functions read no AWS or Microsoft
//! endpoint before their first poll, so the configuration points at closed loopback ports.

use std::time::Duration;

use tests::lambda::{LambdaProcess, binary_path};

const FUNCTIONS: [&str; 3] = ["consent-callback", "token-refresh", "alert-fetcher"];

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("MSSP_PUBLIC_BASE_URL", "https://consent.example.com"),
        ("MSSP_SECRETS_PREFIX", "mssp-bench"),
        ("MSSP_TABLE", "mssp-bench"),
        ("MSSP_BUCKET", "mssp-bench-alerts"),
        (
            "MSSP_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/mssp-bench",
        ),
        ("RUST_LOG", "warn"),
    ]
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let profile = arg("--profile").unwrap_or_else(|| {
        let release = FUNCTIONS
            .iter()
            .all(|f| binary_path(f, "release").is_file());
        if release { "release" } else { "debug" }.to_owned()
    });
    let spawns: usize = arg("--spawns").map_or(Ok(10), |s| s.parse())?;
    println!(
        "Lambda cold start: spawn → first Runtime API poll, {spawns} spawns each, {profile} builds"
    );
    println!(
        "{:<18} {:>10} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "function",
        "binary MiB",
        "start min ms",
        "start med ms",
        "start max ms",
        "RSS med MiB",
        "RSS max MiB"
    );
    for f in FUNCTIONS {
        let size = std::fs::metadata(binary_path(f, &profile))
            .map(|m| m.len() as f64 / 1048576.0)
            .unwrap_or(f64::NAN);
        let mut starts = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..spawns {
            let p = LambdaProcess::spawn_profile(f, &profile, env()).await?;
            let took = p.first_poll(Duration::from_secs(30)).await?;
            starts.push(took.as_secs_f64() * 1000.0);
            rss.push(p.rss_kib().unwrap_or_default() as f64 / 1024.0);
            drop(p);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let min = starts.iter().copied().fold(f64::INFINITY, f64::min);
        let max = starts.iter().copied().fold(0.0, f64::max);
        let rss_max = rss.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<18} {:>10.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1} {:>12.1}",
            f,
            size,
            min,
            median(&mut starts),
            max,
            median(&mut rss),
            rss_max
        );
    }
    Ok(())
}
