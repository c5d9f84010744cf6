//! A steady rate of partial answers (206) slows a tenant down but never stops it: every run
//! delivers what it was shown and more, and nothing is lost or duplicated once the fault clears.

use chrono::Duration;
use emulator::faults::{FaultKind, FaultPlanSpec, FaultRule, FaultTarget};
use serde_json::json;
use shared::domain::{AlertApi, AuthModel};

use crate::fixtures::{CONTOSO, NORTHWIND, WOODGROVE, World, scenario};

#[tokio::test]
async fn with_thirty_percent_partial_answers_every_run_delivers_more() {
    let mut sc = scenario();
    for t in &mut sc.tenants {
        // A stream: twenty new alerts every twenty minutes, a third of them updated later.
        t.generate = vec![
            serde_json::from_value(json!({
                "count": 400, "start": "-1h", "every": "1m", "seed": 11,
                "visible_after": "30s", "update_fraction": 0.3, "update_after": "45m"
            }))
            .expect("stream"),
        ];
    }
    let mut w = World::start_with(sc).await;
    w.services.settings.fetch.graph_page = 25;
    w.services.settings.fetch.checkpoint_pages = 2;
    w.services.settings.fetch.retry.backoff_base = std::time::Duration::from_millis(2);
    let tenants = [
        (NORTHWIND, AuthModel::Application),
        (WOODGROVE, AuthModel::Application),
        (CONTOSO, AuthModel::DelegatedV2),
    ];
    for (id, model) in tenants {
        w.onboard(id, model, AlertApi::Graph).await;
    }
    w.emu.state().world().faults.replace(FaultPlanSpec {
        seed: 20261203,
        rules: vec![FaultRule {
            probability: 0.3,
            ..FaultRule::new(FaultTarget::Graph, FaultKind::Partial)
        }],
    });
    let mut delivered = [0usize; 3];
    let mut watermarks = [None; 3];
    for round in 0..12 {
        w.advance(Duration::minutes(20));
        for (i, (id, _)) in tenants.iter().enumerate() {
            let _ = w.fetch(id).await;
            let now = w.records(id).len();
            assert!(
                now > delivered[i],
                "round {round}: {id} delivered nothing new ({now} records)"
            );
            delivered[i] = now;
            let mark = w.cursor(id, AlertApi::Graph).await.watermark;
            assert!(
                mark > watermarks[i],
                "round {round}: {id}'s watermark stood still"
            );
            watermarks[i] = mark;
        }
    }
    let served = w.emu.state().world().faults.served().clone();
    assert!(
        served.get("partial").copied().unwrap_or(0) >= 30,
        "{served:?}"
    );
    w.emu.state().world().faults.replace(FaultPlanSpec {
        seed: 0,
        rules: Vec::new(),
    });
    for (id, _) in tenants {
        w.fetch(id).await.expect("complete once the fault clears");
        w.assert_exactly_once(id);
    }
}
