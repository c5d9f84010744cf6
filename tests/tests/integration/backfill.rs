//! Backfill: a tenant's history delivered as ordinary records, exactly once, also when the
//! process is killed midway and the job resumes.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Duration;
use serde_json::json;
use shared::domain::{AlertApi, AuthModel};
use shared::flows::backfill::{Backfilled, backfill_tenant, request};
use shared::flows::fetch::job::Slice;
use shared::flows::fetch::{FetchFlowError, FetchHooks, FetchOptions, HookPoint, Interrupted};

use crate::fixtures::{NORTHWIND, World, scenario, tid};

/// Kills the run at the deliveries numbered in `at` (counted across runs).
struct KillAt {
    at: Vec<u32>,
    deliveries: AtomicU32,
}

impl FetchHooks for KillAt {
    fn at(&self, point: HookPoint) -> Result<(), Interrupted> {
        if point != HookPoint::AfterDelivery {
            return Ok(());
        }
        let n = self.deliveries.fetch_add(1, Ordering::SeqCst) + 1;
        if self.at.contains(&n) {
            return Err(Interrupted);
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_180_day_backfill_of_20000_alerts_killed_twice_arrives_exactly_once() {
    let mut sc = scenario();
    sc.tenants.retain(|t| t.id == NORTHWIND);
    // 20,000 alerts spread over the last 180 days, a tenth updated a day after creation.
    sc.tenants[0].generate = vec![
        serde_json::from_value(json!({
            "count": 20000, "start": "-180d", "every": "777s", "seed": 180,
            "update_fraction": 0.1, "update_after": "1d"
        }))
        .expect("history"),
    ];
    let w = World::start_with(sc).await;
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    let first = w
        .fetch(NORTHWIND)
        .await
        .expect("the regular fetch covers its lookback");
    assert!(first.delivered > 500, "{first:?}");
    let since = w.clock_now() - Duration::days(180);
    request(&w.services, &tid(NORTHWIND), since, None)
        .await
        .expect("requested");

    let killer = KillAt {
        at: vec![4, 13],
        deliveries: AtomicU32::new(0),
    };
    let (mut kills, mut slices) = (0, 0);
    let summary = loop {
        slices += 1;
        assert!(slices < 50, "the backfill does not finish");
        let opts = FetchOptions {
            deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(120),
            owner: format!("backfill-{slices}"),
            hooks: &killer,
        };
        let slice = std::time::Duration::from_secs(60);
        match backfill_tenant(&w.services, &tid(NORTHWIND), &opts, slice).await {
            Ok(Backfilled::Ran(Slice::Finished(s))) => break s,
            Ok(Backfilled::Ran(Slice::Continues(_))) => {}
            Err(FetchFlowError::Interrupted(_)) => {
                kills += 1;
                // A killed process keeps its lease until it expires.
                w.advance(Duration::minutes(16));
            }
            other => panic!("unexpected: {other:?}"),
        }
    };
    assert_eq!(kills, 2);
    assert!(summary.delivered > 18_000, "{summary:?}");
    let tenant = w.tenant(NORTHWIND).await;
    assert_eq!(tenant.backfill, None, "the request is done");
    // The regular fetch catches up on what the clock moved meanwhile.
    w.fetch(NORTHWIND).await.expect("fetched");
    let d = w.delivery(NORTHWIND);
    assert!(d.expected >= 20_000, "{d:?}");
    w.assert_exactly_once(NORTHWIND);
    let records = w.records(NORTHWIND);
    assert!(
        records.iter().all(|r| !r.late),
        "backfilled records are ordinary"
    );
    let cursor = w.cursor(NORTHWIND, AlertApi::Graph).await;
    assert!(cursor.backfill.is_none());
    assert_eq!(
        cursor.last_backfill.map(|s| s.delivered),
        Some(summary.delivered)
    );
}
