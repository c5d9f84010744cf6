//! Measuring a fleet from the outside, for the benches: when each tenant was fetched (read off
//! the Microsoft emulator's per-tenant request counters), and a process's CPU time and peak
//! memory (read from `/proc`, without `unsafe`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use emulator::EmuState;
use emulator::world::TenantRequests;

/// Clock ticks per second of `/proc/*/stat` (`USER_HZ`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// User + system CPU seconds of process `pid` (ended threads included).
///
/// # Errors
///
/// When `/proc/{pid}/stat` cannot be read.
pub fn cpu_s(pid: u32) -> anyhow::Result<f64> {
    let stat = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&stat).with_context(|| format!("reading {stat}"))?;
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

/// Peak resident set (`VmHWM`) of process `pid`, in MB.
///
/// # Errors
///
/// When `/proc/{pid}/status` cannot be read.
pub fn peak_rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
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

/// Every tenant's request counters, by tenant id.
pub fn requests(emu: &EmuState) -> HashMap<String, TenantRequests> {
    emu.world().tenant_requests.clone()
}

/// Requests of a tenant to the three alert APIs.
pub fn alert_requests(r: &TenantRequests) -> u64 {
    r.graph + r.mde + r.siem
}

/// Requests of a tenant to any Microsoft endpoint.
pub fn all_requests(r: &TenantRequests) -> u64 {
    alert_requests(r) + r.token + r.authorize
}

#[derive(Default)]
struct Seen {
    last: HashMap<String, u64>,
    starts: HashMap<String, Vec<Instant>>,
}

/// When each tenant's fetches started: the emulator's per-tenant alert-API counters, read every
/// `every`; a request after at least `gap` without one starts a fetch. (A fetch's own requests
/// follow each other closely; two fetches of a tenant are an interval apart.) The error of a
/// start is at most `every`.
pub struct FetchStarts {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl FetchStarts {
    /// Starts watching `emu`.
    pub fn watch(emu: Arc<EmuState>, every: Duration, gap: Duration) -> FetchStarts {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let now = Instant::now();
                    let counts: Vec<(String, u64)> = emu
                        .world()
                        .tenant_requests
                        .iter()
                        .map(|(k, r)| (k.clone(), alert_requests(r)))
                        .collect();
                    let mut s = seen.lock().unwrap_or_else(PoisonError::into_inner);
                    let Seen { last, starts } = &mut *s;
                    for (tenant, n) in counts {
                        let before = last.insert(tenant.clone(), n).unwrap_or(0);
                        if n == before {
                            continue;
                        }
                        let list = starts.entry(tenant).or_default();
                        if list.last().is_none_or(|t| now - *t >= gap) {
                            list.push(now);
                        }
                    }
                }
            })
        };
        FetchStarts { seen, task }
    }

    /// Every tenant's fetch starts so far.
    pub fn starts(&self) -> HashMap<String, Vec<Instant>> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .starts
            .clone()
    }
}

impl Drop for FetchStarts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `q` quantile (0 to 1) of `values` (sorted here), nearest rank; `NaN` when empty.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
