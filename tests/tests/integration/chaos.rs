//! The fetch invariant under chaos (DESIGN §6): ten tenants over the three APIs, alerts created,
//! updated and arriving late while the emulator clock moves on between runs; the emulator serves
//! 429 storms, 5xx bursts, latency, malformed pages, dropped connections and 206 answers; runs
//! are killed at random points, including between delivery and cursor commit. At the end the
//! sink holds every exposed alert version exactly once, and no watermark ever moved backwards.
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
use shared::flows::fetch::{
    FetchFlowError, FetchHooks, FetchOptions, HookPoint, Interrupted, fetch_tenant,
};

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
                // The live stream of the next ten hours: late arrivals, updates, and bursts that
                // share one creation second.
                serde_json::from_value(json!({
                    "count": 200, "start": "+0s", "every": "3m", "seed": seed ^ (i as u64 * 97 + 1),
                    "visible_after": "30s", "visible_jitter": "25m",
                    "update_fraction": 0.5, "update_after": "40m"
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

    // Calm: no faults, no kills; everything still pending becomes visible and is fetched.
    w.emu.state().world().faults.replace(FaultPlanSpec {
        seed,
        rules: vec![],
    });
    w.advance(Duration::hours(3));
    for round in 0..3 {
        for (i, id) in ids.iter().enumerate() {
            let opts = FetchOptions {
                deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(60),
                owner: format!("calm-{round}-{i}"),
                hooks: &shared::flows::fetch::NoHooks,
            };
            fetch_tenant(&w.services, &tid(id), &opts)
                .await
                .expect("a calm run completes");
        }
        w.advance(Duration::minutes(10));
    }

    let (mut records, mut expected, mut missing, mut duplicates) = (0usize, 0usize, 0usize, 0usize);
    for id in &ids {
        let d = w.delivery(id);
        records += d.records;
        duplicates += d.duplicates;
        expected += d.expected;
        missing += d.missing.len();
    }
    println!(
        "chaos seed {seed}: {runs} runs over {round} rounds ({complete} complete, {incomplete} stopped by faults, \
         {busy} refused by a live lease, {other} other), {kills} interruptions \
         ({} between delivery and commit), faults served {served:?}, {records} records, \
         {expected} expected, {missing} missing, {duplicates} duplicates, {regressions} watermark regressions",
        killer.between_delivery_and_commit.load(Ordering::SeqCst)
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
}
