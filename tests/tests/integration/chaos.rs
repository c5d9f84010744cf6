//! The fetch invariant under chaos (DESIGN §6): ten tenants over the three APIs, alerts created,
//! updated and arriving late — a tenth of the versions 1 to 24 hours late — while the emulator
//! clock moves on between runs, SIEM alerts of several detection records; the emulator serves
//! 429 storms, 5xx bursts, latency, malformed pages, dropped connections and 206 answers; fetches
//! and reconciliation sweeps are killed at random points, including between delivery and cursor
//! commit. After the final sweep the sink holds every exposed alert version exactly once, every
//! version the regular fetch cannot have seen is marked late, and no watermark moved backwards.
//!
//! Seeded: `MSSP_CHAOS_SEED` replays a run (default 20261130).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use emulator::faults::{FaultKind, FaultPlanSpec, FaultRule, FaultTarget};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use shared::domain::{AlertApi, AuthModel};
use shared::flows::fetch::job::Slice;
use shared::flows::fetch::{
    FetchFlowError, FetchHooks, FetchOptions, HookPoint, Interrupted, fetch_tenant,
};
use shared::flows::sweep::{Swept, sweep_tenant};
use shared::microsoft::alerts::parse_time;

use crate::fixtures::{APP_ID, World, scenario, tid};

/// Kills a run at a hook point with probability `p`.
struct Killer {
    rng: Mutex<StdRng>,
    p: f64,
    kills: AtomicU64,
    between_delivery_and_commit: AtomicU64,
}

impl FetchHooks for Killer {
    fn at(&self, point: HookPoint) -> Result<(), Interrupted> {
        let kill = self
            .rng
            .lock()
            .map(|mut r| r.random_bool(self.p))
            .unwrap_or(false);
        if kill {
            self.kills.fetch_add(1, Ordering::SeqCst);
            if point == HookPoint::BeforeCommit {
                self.between_delivery_and_commit
                    .fetch_add(1, Ordering::SeqCst);
            }
            return Err(Interrupted);
        }
        Ok(())
    }
}

const TENANTS: usize = 10;

fn tenant_id(i: usize) -> String {
    format!(
        "{:08x}-c0de-4000-8000-{:012x}",
        0xc4a0_0000u32 + i as u32,
        i
    )
}

fn api_of(i: usize) -> (AuthModel, AlertApi) {
    match i % 3 {
        0 => (AuthModel::Application, AlertApi::Graph),
        1 => (AuthModel::DelegatedV2, AlertApi::Mde),
        _ => (AuthModel::DelegatedV1, AlertApi::Siem),
    }
}

fn chaos_scenario(seed: u64) -> emulator::Scenario {
    let mut sc = scenario();
    sc.settings.graph_per_minute = 1_000_000;
    sc.settings.mde_per_minute = 1_000_000;
    sc.settings.mde_per_hour = 1_000_000;
    let template = sc.tenants[0].clone();
    sc.tenants = (0..TENANTS)
        .map(|i| {
            let mut t = template.clone();
            t.id = tenant_id(i);
            t.name = format!("Chaos {i}");
            t.domains = vec![format!("chaos{i}.onmicrosoft.com")];
            t.users[0].upn = format!("admin@chaos{i}.onmicrosoft.com");
            t.siem_apps = vec![APP_ID.into()];
            t.switches.graph_next_link = i % 2 == 0;
            t.generate = vec![
                // A backlog: two days, some alerts updated since.
                serde_json::from_value(json!({
                    "count": 120, "start": "-2d", "every": "20m", "seed": seed ^ (i as u64 * 31),
                    "update_fraction": 0.3, "update_after": "3h", "visible_after": "1m"
                }))
                .expect("backlog"),
                // The live stream of the next ten hours: arrivals up to 25 minutes late, a tenth
                // of the versions 1 to 24 hours late, updates, SIEM alerts of up to three
                // detection records, and bursts that share one creation second.
                serde_json::from_value(json!({
                    "count": 200, "start": "+0s", "every": "3m", "seed": seed ^ (i as u64 * 97 + 1),
                    "visible_after": "30s", "visible_jitter": "25m",
                    "update_fraction": 0.5, "update_after": "40m",
                    "late_fraction": 0.1, "late_min": "1h", "late_max": "24h",
                    "siem_parts_max": 3
                }))
                .expect("stream"),
                serde_json::from_value(json!({
                    "count": 30, "start": "+5h", "every": "0s", "seed": seed ^ (i as u64 * 7 + 2),
                    "visible_after": "2m", "update_fraction": 0.5, "update_after": "1h"
                }))
                .expect("burst"),
            ];
            t
        })
        .collect();
    sc
}

fn faults(seed: u64) -> FaultPlanSpec {
    let rule = |api, kind, probability| FaultRule {
        probability,
        retry_after: Some(0.01),
        latency_ms: Some(3),
        status: Some(503),
        ..FaultRule::new(api, kind)
    };
    let mut rules = Vec::new();
    for api in [FaultTarget::Graph, FaultTarget::Mde, FaultTarget::Siem] {
        rules.push(rule(api, FaultKind::Throttle, 0.06));
        rules.push(rule(api, FaultKind::ServerError, 0.05));
        rules.push(rule(api, FaultKind::Latency, 0.05));
        rules.push(rule(api, FaultKind::Malformed, 0.04));
        rules.push(rule(api, FaultKind::Drop, 0.04));
    }
    rules.push(rule(FaultTarget::Graph, FaultKind::Partial, 0.03));
    rules.push(rule(FaultTarget::Identity, FaultKind::ServerError, 0.05));
    FaultPlanSpec { seed, rules }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exposed_version_arrives_exactly_once_through_faults_and_kills() {
    let seed: u64 = std::env::var("MSSP_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_130);
    let mut w = World::start_with(chaos_scenario(seed)).await;
    {
        let f = &mut w.services.settings.fetch;
        f.graph_page = 25;
        f.mde_page = 40;
        f.chunk_target = 120;
        f.lease_ttl = Duration::minutes(4);
        f.retry.backoff_base = std::time::Duration::from_millis(2);
        f.retry.max_attempts = 4;
        // The emulator's limits are lifted too: the chaos is in the faults, not the budget.
        let minute = std::time::Duration::from_secs(60);
        f.graph_budget = vec![(100_000, minute)];
        f.mde_budget = vec![(100_000, minute)];
        f.siem_budget = vec![(100_000, minute)];
    }
    w.services.settings.identity_attempts = 3;
    let ids: Vec<String> = (0..TENANTS).map(tenant_id).collect();
    for (i, id) in ids.iter().enumerate() {
        let (model, api) = api_of(i);
        w.onboard(id, model, api).await;
    }
    w.emu.state().world().faults.replace(faults(seed));

    let killer = Killer {
        rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x6b11)),
        p: 0.05,
        kills: AtomicU64::new(0),
        between_delivery_and_commit: AtomicU64::new(0),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let ports = &w.services;
    let mut marks: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut regressions = 0u64;
    let (mut runs, mut complete, mut incomplete, mut busy, mut other) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let end_of_stream = w.emu.state().now() + Duration::hours(11);
    let mut sweep_slices = 0u64;
    let mut round = 0u64;
    while w.emu.state().now() < end_of_stream || killer.kills.load(Ordering::SeqCst) < 50 {
        round += 1;
        assert!(round < 400, "the chaos run does not converge");
        for (i, id) in ids.iter().enumerate() {
            let opts = FetchOptions {
                deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(30),
                owner: format!("run-{round}-{i}"),
                hooks: &killer,
            };
            runs += 1;
            match fetch_tenant(&w.services, &tid(id), &opts).await {
                Ok(_) => complete += 1,
                Err(FetchFlowError::Interrupted(_)) => {}
                Err(FetchFlowError::Incomplete { .. }) => incomplete += 1,
                Err(FetchFlowError::Busy(_)) => busy += 1,
                Err(_) => other += 1,
            }
            // The reconciliation sweep, when due, under the same faults and kills.
            if let Ok(Swept::Ran(_)) = sweep_tenant(&w.services, &tid(id), &opts).await {
                sweep_slices += 1;
            }
            let api = api_of(i).1;
            if let Some(wm) = ports
                .cursors
                .get(&tid(id), api)
                .await
                .expect("cursor")
                .and_then(|c| c.watermark)
            {
                if marks.get(id).is_some_and(|prev| wm < *prev) {
                    regressions += 1;
                }
                marks.insert(id.clone(), wm);
            }
        }
        w.advance(Duration::seconds(rng.random_range(240..=1200)));
    }
    let kills = killer.kills.load(Ordering::SeqCst);
    let served: BTreeMap<String, u64> = w.emu.state().world().faults.served().clone();

    // Calm: no faults, no kills. An hour at a time for a day and more, every version still
    // pending becomes visible (the latest ones 24 hours late) and is fetched or swept; then a
    // final sweep of every tenant.
    w.emu.state().world().faults.replace(FaultPlanSpec {
        seed,
        rules: vec![],
    });
    for round in 0..27 {
        w.advance(Duration::hours(1));
        for (i, id) in ids.iter().enumerate() {
            let opts = FetchOptions {
                deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(60),
                owner: format!("calm-{round}-{i}"),
                hooks: &shared::flows::fetch::NoHooks,
            };
            fetch_tenant(&w.services, &tid(id), &opts)
                .await
                .expect("a calm run completes");
            if let Swept::Ran(_) = sweep_tenant(&w.services, &tid(id), &opts)
                .await
                .expect("a calm sweep completes")
            {
                sweep_slices += 1;
            }
        }
    }
    w.services.settings.fetch.sweep_interval = Duration::zero();
    for id in &ids {
        let opts = FetchOptions {
            deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(60),
            owner: format!("final-sweep-{id}"),
            hooks: &shared::flows::fetch::NoHooks,
        };
        loop {
            match sweep_tenant(&w.services, &tid(id), &opts).await {
                Ok(Swept::Ran(Slice::Continues(_))) => sweep_slices += 1,
                Ok(_) => break,
                Err(e) => panic!("the final sweep of {id}: {e}"),
            }
        }
    }

    let (mut records, mut expected, mut missing, mut duplicates) = (0usize, 0usize, 0usize, 0usize);
    let mut late = Lateness::default();
    for id in &ids {
        let d = w.delivery(id);
        records += d.records;
        duplicates += d.duplicates;
        expected += d.expected;
        missing += d.missing.len();
        late.add(&w, id);
    }
    println!(
        "chaos seed {seed}: {runs} runs over {round} rounds ({complete} complete, {incomplete} stopped by faults, \
         {busy} refused by a live lease, {other} other), {kills} interruptions \
         ({} between delivery and commit), faults served {served:?}, {records} records, \
         {expected} expected, {missing} missing, {duplicates} duplicates, {regressions} watermark regressions; \
         {sweep_slices} sweep slices; {} versions visible more than 1 h late, {} of them more than 2 h \
         ({} of those marked late), {} records marked late, {} of them not late in the ground truth; \
         {} multi-record SIEM versions",
        killer.between_delivery_and_commit.load(Ordering::SeqCst),
        late.truth_late,
        late.truth_late_beyond_fetch,
        late.marked_beyond_fetch,
        late.marked,
        late.marked_not_late,
        late.multi_part
    );
    assert!(kills >= 50, "only {kills} interruptions");
    assert!(killer.between_delivery_and_commit.load(Ordering::SeqCst) > 0);
    for kind in [
        "throttle",
        "server_error",
        "latency",
        "malformed",
        "drop",
        "partial",
    ] {
        assert!(
            served.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} fault served"
        );
    }
    assert_eq!(missing, 0, "missing versions");
    assert_eq!(duplicates, 0, "duplicated versions");
    assert_eq!(regressions, 0, "a watermark moved backwards");
    assert!(
        expected > TENANTS * 300,
        "the stream was exposed ({expected})"
    );
    assert!(late.truth_late_beyond_fetch > 0, "no version came late");
    assert_eq!(
        late.marked_beyond_fetch, late.truth_late_beyond_fetch,
        "every version the regular fetch cannot have seen is delivered marked late"
    );
    assert_eq!(late.marked_not_late, 0, "a record marked late that was not");
    assert!(late.multi_part > 0, "no SIEM alert of several records");
    crate::ocsf::check_delivered(&w, &ids);
}

/// Late versions in the ground truth against the records marked late.
#[derive(Default)]
struct Lateness {
    /// Exposed versions visible more than an hour after their update time.
    truth_late: usize,
    /// Of which visible more than two hours after it: the regular fetch (overlap 1 h, an hour
    /// between runs in the calm phase, less before) cannot have seen them.
    truth_late_beyond_fetch: usize,
    /// Of those, the ones whose records are all marked late.
    marked_beyond_fetch: usize,
    /// Records marked late.
    marked: usize,
    /// Records marked late whose version is not late in the ground truth.
    marked_not_late: usize,
    /// Exposed SIEM versions served as more than one record.
    multi_part: usize,
}

impl Lateness {
    fn add(&mut self, w: &World, id: &str) {
        let now = w.emu.state().now();
        let truth = w.emu.state().world().truth(id, now).expect("truth");
        let records = w.records(id);
        let mut marks: HashMap<(String, String), Vec<bool>> = HashMap::new();
        for r in &records {
            marks
                .entry((r.alert_id.clone(), r.alert_version.clone()))
                .or_default()
                .push(r.late);
        }
        for v in truth.versions.iter().filter(|v| v.exposed) {
            let delay = parse_time(&v.visible_at).expect("t") - parse_time(&v.version).expect("t");
            let key = (v.alert_id.clone(), v.version.clone());
            let got = marks.get(&key).cloned().unwrap_or_default();
            self.multi_part +=
                usize::from(v.siem_full_ids.len() > 1 && !got.is_empty() && id_is_siem(&records));
            if v.late {
                self.truth_late += 1;
                if delay > Duration::hours(2) {
                    self.truth_late_beyond_fetch += 1;
                    self.marked_beyond_fetch +=
                        usize::from(!got.is_empty() && got.iter().all(|l| *l));
                }
            } else {
                self.marked_not_late += got.iter().filter(|l| **l).count();
            }
        }
        self.marked += records.iter().filter(|r| r.late).count();
    }
}

fn id_is_siem(records: &[shared::record::AlertRecord]) -> bool {
    records.first().is_some_and(|r| r.source == AlertApi::Siem)
}
