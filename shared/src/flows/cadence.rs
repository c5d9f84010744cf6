//! A fixed-rate fetch schedule for one machine (`mssp serve`). Each tenant is due every
//! `interval` from its own phase — a stable offset derived from its id, which spreads the fleet
//! evenly over the interval — so a tenant's period is the interval however long the others take,
//! and there is no "round" whose length adds to it. At most `concurrency` fetches run at once; a
//! tenant due while every slot is busy starts when one frees, and one still running when it is
//! due again skips that turn. The fleet is listed again every `interval`, so tenants added or
//! removed join or leave at their phase.
//!
//! Every interval the schedule reports whether the fleet fits ([`Fit`]): how late tenants
//! started, how busy the slots were, and — when it does not fit — by how much, and what
//! concurrency would make it fit.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::domain::{Tenant, TenantId};

/// The schedule's knobs.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// Each tenant's period.
    pub interval: Duration,
    /// Fetches at once.
    pub concurrency: usize,
}

/// How the last interval went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// When the interval ended.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The period each tenant should have, in seconds.
    pub interval_s: f64,
    /// Fetches at once.
    pub concurrency: usize,
    /// Tenants on the schedule.
    pub tenants: usize,
    /// Fetches started in the interval.
    pub started: u64,
    /// Of which more than a tenth of the interval after they were due.
    pub late: u64,
    /// Turns skipped because the tenant's previous fetch was still running.
    pub skipped: u64,
    /// The longest wait between a tenant being due and its fetch starting, in seconds.
    pub max_delay_s: f64,
    /// The share of the slots' time spent fetching (above 1: the fleet needs more time than the
    /// interval gives).
    pub utilization: f64,
}

impl Fit {
    /// Whether every tenant started within a tenth of the interval of its turn and none skipped.
    pub fn fits(&self) -> bool {
        self.late == 0 && self.skipped == 0
    }

    /// The concurrency that would have fetched this interval's work at 80 % utilization.
    pub fn concurrency_needed(&self) -> usize {
        ((self.utilization * self.concurrency as f64) / 0.8)
            .ceil()
            .max(1.0) as usize
    }

    /// One line for people: fits, or by how much it does not and what to change.
    pub fn describe(&self) -> String {
        let every = human_secs(self.interval_s);
        if self.fits() {
            return format!(
                "{} tenants every {every} at concurrency {}: fits ({:.0} % busy, longest wait {})",
                self.tenants,
                self.concurrency,
                self.utilization * 100.0,
                human_secs(self.max_delay_s)
            );
        }
        format!(
            "the fleet does not fit the interval: {} tenants every {every} at concurrency {}; {} of \
             {} fetches started late (up to {} after their turn), {} turns skipped; the work needs \
             {:.1}x the slots: set fetch.concurrency to at least {} or the interval to at least {}",
            self.tenants,
            self.concurrency,
            self.late,
            self.started,
            human_secs(self.max_delay_s),
            self.skipped,
            self.utilization,
            self.concurrency_needed(),
            human_secs((self.interval_s * self.utilization / 0.8).ceil()),
        )
    }
}

fn human_secs(s: f64) -> String {
    let s = s.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", (s / 60.0).floor(), (s % 60.0).floor())
    }
}

/// The tenant's offset inside the interval: stable for its id, spread evenly over the fleet.
pub fn phase(id: &TenantId, interval: Duration) -> Duration {
    let h = crate::record::digest(id.as_str());
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h % ms)
}

/// The first turn of a tenant with `phase` at or after `now` (turns are `epoch + phase + k ×
/// interval`).
fn first_turn(epoch: Instant, phase: Duration, interval: Duration, now: Instant) -> Instant {
    let mut due = epoch + phase;
    if due < now {
        let behind = now - due;
        let k = behind.as_nanos().div_ceil(interval.as_nanos().max(1));
        due += interval * k as u32;
    }
    due
}

/// What the running fetches share with the loop.
#[derive(Default)]
struct Shared {
    running: HashSet<TenantId>,
    busy: Duration,
}

/// The schedule's state between two wake-ups.
struct Turns {
    cadence: Cadence,
    epoch: Instant,
    fleet: HashMap<TenantId, Tenant>,
    queue: BinaryHeap<Reverse<(Instant, TenantId)>>,
    next_list: Instant,
    window: Window,
    shared: Arc<Mutex<Shared>>,
}

impl Turns {
    fn new(cadence: Cadence) -> Self {
        let epoch = Instant::now();
        Turns {
            cadence,
            epoch,
            fleet: HashMap::new(),
            queue: BinaryHeap::new(),
            next_list: epoch,
            window: Window::new(epoch),
            shared: Arc::default(),
        }
    }

    /// Takes in a new listing of the fleet: new tenants get their first turn, gone ones are
    /// dropped (their queued turns are skipped when they come up).
    fn relist(&mut self, listed: Vec<Tenant>, now: Instant) {
        let interval = self.cadence.interval;
        let listed: HashMap<TenantId, Tenant> =
            listed.into_iter().map(|t| (t.id.clone(), t)).collect();
        for id in listed.keys() {
            if !self.fleet.contains_key(id) {
                let due = first_turn(self.epoch, phase(id, interval), interval, now);
                self.queue.push(Reverse((due, id.clone())));
            }
        }
        self.fleet = listed;
        self.next_list = now + interval;
    }

    /// The window's report when an interval has passed since it began.
    fn close_window(&mut self, now: Instant) -> Option<Fit> {
        if now < self.window.start + self.cadence.interval {
            return None;
        }
        let busy = std::mem::take(&mut lock(&self.shared).busy);
        let fit = self.window.close(busy, self.cadence, self.fleet.len());
        self.window = Window::new(now);
        Some(fit)
    }

    /// When something is next to do: a turn, a listing, or the window's end.
    fn wake(&self) -> Instant {
        let end = self.window.start + self.cadence.interval;
        let turn = self.queue.peek().map_or(end, |Reverse((due, _))| *due);
        turn.min(end).min(self.next_list)
    }

    /// The next due tenant to start, its next turn queued; `None` when its turn is skipped (it
    /// left the fleet, or its previous fetch still runs).
    fn take_due(&mut self) -> Option<(Instant, Tenant)> {
        let Reverse((due, id)) = self.queue.pop()?;
        let tenant = self.fleet.get(&id).cloned()?;
        self.queue
            .push(Reverse((due + self.cadence.interval, id.clone())));
        if lock(&self.shared).running.contains(&id) {
            self.window.skipped += 1;
            return None;
        }
        Some((due, tenant))
    }
}

/// Runs the schedule until `stop` turns true: `list` gives the fleet (called every interval),
/// `work` fetches one tenant, `report` hears how each interval went.
pub async fn run<L, LF, W, WF>(
    cadence: Cadence,
    mut list: L,
    work: W,
    mut report: impl FnMut(Fit),
    mut stop: watch::Receiver<bool>,
) where
    L: FnMut() -> LF,
    LF: Future<Output = Vec<Tenant>>,
    W: Fn(Tenant) -> WF + Send + Sync + 'static,
    WF: Future<Output = ()> + Send + 'static,
{
    let work = Arc::new(work);
    let slots = Arc::new(Semaphore::new(cadence.concurrency.max(1)));
    let mut t = Turns::new(cadence);
    while !*stop.borrow() {
        let now = Instant::now();
        if now >= t.next_list {
            t.relist(list().await, now);
        }
        if let Some(fit) = t.close_window(now) {
            report(fit);
        }
        let wake = t.wake();
        if wake > now {
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            continue;
        }
        let Some((due, tenant)) = t.take_due() else {
            continue;
        };
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        t.window.started(
            Instant::now().saturating_duration_since(due),
            cadence.interval,
        );
        lock(&t.shared).running.insert(tenant.id.clone());
        let (shared, work) = (t.shared.clone(), work.clone());
        tokio::spawn(async move {
            let (began, id) = (Instant::now(), tenant.id.clone());
            work(tenant).await;
            let mut s = lock(&shared);
            s.running.remove(&id);
            s.busy += began.elapsed();
            drop(permit);
        });
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One interval's counts.
struct Window {
    start: Instant,
    started: u64,
    late: u64,
    skipped: u64,
    max_delay: Duration,
}

impl Window {
    fn new(start: Instant) -> Self {
        Window {
            start,
            started: 0,
            late: 0,
            skipped: 0,
            max_delay: Duration::ZERO,
        }
    }

    fn started(&mut self, delay: Duration, interval: Duration) {
        self.started += 1;
        if delay > interval / 10 {
            self.late += 1;
        }
        self.max_delay = self.max_delay.max(delay);
    }

    fn close(&self, busy: Duration, c: Cadence, tenants: usize) -> Fit {
        let capacity = c.interval.as_secs_f64() * c.concurrency.max(1) as f64;
        Fit {
            at: chrono::Utc::now(),
            interval_s: c.interval.as_secs_f64(),
            concurrency: c.concurrency,
            tenants,
            started: self.started,
            late: self.late,
            skipped: self.skipped,
            max_delay_s: self.max_delay.as_secs_f64(),
            utilization: busy.as_secs_f64() / capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_the_fleet_over_the_interval() {
        let interval = Duration::from_secs(300);
        let mut buckets = [0u32; 10];
        for i in 0..10_000u32 {
            let id = TenantId::parse(&format!("{i:08x}-0000-4000-8000-000000000000")).unwrap();
            let p = phase(&id, interval);
            assert!(p < interval);
            buckets[(p.as_secs() / 30) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "{buckets:?}");
        }
    }

    #[test]
    fn the_first_turn_is_the_next_at_the_phase() {
        let epoch = Instant::now();
        let i = Duration::from_secs(300);
        let p = Duration::from_secs(40);
        assert_eq!(first_turn(epoch, p, i, epoch), epoch + p);
        assert_eq!(
            first_turn(epoch, p, i, epoch + Duration::from_secs(41)),
            epoch + p + i
        );
        assert_eq!(
            first_turn(epoch, p, i, epoch + Duration::from_secs(340)),
            epoch + p + i
        );
    }

    fn fleet(n: usize) -> Vec<Tenant> {
        (0..n)
            .map(|i| {
                Tenant::pending(
                    TenantId::parse(&format!("{i:08x}-0000-4000-8000-000000000000")).unwrap(),
                    format!("T{i}"),
                    crate::domain::AuthModel::Application,
                    crate::domain::AlertApi::Graph,
                    crate::config::Cloud::Commercial,
                    chrono::Utc::now(),
                )
            })
            .collect()
    }

    type Starts = Arc<Mutex<HashMap<TenantId, Vec<Instant>>>>;

    /// Runs the schedule on tokio's paused clock: `size` tenants listed, each fetch taking
    /// `took`, for `phases` (fleet size, intervals) in turn; every fetch's start per tenant.
    async fn simulate(
        cadence: Cadence,
        took: Duration,
        phases: &[(usize, u32)],
    ) -> (Starts, Vec<Fit>) {
        let size = Arc::new(std::sync::atomic::AtomicUsize::new(phases[0].0));
        let starts: Starts = Arc::default();
        let fits = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = {
            let (size, starts, fits) = (size.clone(), starts.clone(), fits.clone());
            tokio::spawn(async move {
                let list = move || {
                    let n = size.load(std::sync::atomic::Ordering::SeqCst);
                    async move { fleet(n) }
                };
                let work = move |t: Tenant| {
                    let starts = starts.clone();
                    async move {
                        starts
                            .lock()
                            .unwrap()
                            .entry(t.id)
                            .or_default()
                            .push(Instant::now());
                        tokio::time::sleep(took).await;
                    }
                };
                run(
                    cadence,
                    list,
                    work,
                    |f| fits.lock().unwrap().push(f),
                    stop_rx,
                )
                .await;
            })
        };
        for &(n, intervals) in phases {
            size.store(n, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(cadence.interval * intervals).await;
        }
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        let fits = fits.lock().unwrap().clone();
        (starts, fits)
    }

    #[tokio::test(start_paused = true)]
    async fn every_tenant_keeps_its_period_while_the_fleet_grows() {
        let cadence = Cadence {
            interval: Duration::from_secs(300),
            concurrency: 8,
        };
        // 200 tenants for 3 intervals, then 2,000 for 4; each fetch takes 0.5 s (2,000 × 0.5 s
        // = 1,000 s of work in 2,400 slot-seconds: it fits).
        let (starts, fits) =
            simulate(cadence, Duration::from_millis(500), &[(200, 3), (2000, 4)]).await;
        let starts = starts.lock().unwrap();
        assert_eq!(starts.len(), 2000, "every tenant, old and new, was fetched");
        let mut periods = 0;
        for (id, s) in starts.iter() {
            assert!(s.len() >= 3, "{id}: {} fetches", s.len());
            for w in s.windows(2) {
                let p = (w[1] - w[0]).as_secs_f64();
                assert!((270.0..=330.0).contains(&p), "{id}: period {p} s");
                periods += 1;
            }
        }
        assert!(periods > 5000, "{periods}");
        assert!(fits.iter().all(Fit::fits), "{fits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleet_too_large_for_its_interval_is_reported() {
        let cadence = Cadence {
            interval: Duration::from_secs(60),
            concurrency: 2,
        };
        // 600 tenants × 1 s each = 600 slot-seconds a minute against 120: 5x too much.
        let (_, fits) = simulate(cadence, Duration::from_secs(1), &[(600, 4)]).await;
        let last = fits.last().expect("a report per interval");
        assert!(!last.fits(), "{last:?}");
        assert!(last.utilization > 0.9, "{last:?}");
        assert!(
            last.describe().contains("does not fit"),
            "{}",
            last.describe()
        );
    }

    #[test]
    fn a_fleet_that_does_not_fit_says_by_how_much() {
        let fit = Fit {
            at: chrono::Utc::now(),
            interval_s: 300.0,
            concurrency: 4,
            tenants: 10_000,
            started: 3000,
            late: 2500,
            skipped: 0,
            max_delay_s: 200.0,
            utilization: 3.0,
        };
        assert!(!fit.fits());
        assert_eq!(fit.concurrency_needed(), 15);
        let said = fit.describe();
        assert!(said.contains("does not fit"), "{said}");
        assert!(said.contains("at least 15"), "{said}");
    }
}
