//! Versions that become visible after the regular fetch passed their update time: the
//! reconciliation sweep finds them, delivers them once, marked late, inside its budget share.

use chrono::Duration;
use serde_json::json;
use shared::domain::{AlertApi, AuthModel};
use shared::flows::fetch::job::Slice;
use shared::flows::fetch::{FetchOptions, NoHooks};
use shared::flows::sweep::{Swept, sweep_tenant};

use crate::fixtures::{NORTHWIND, World, tid};

/// Fetches every five minutes of the emulator's clock for `hours`.
async fn fetch_every_five_minutes(w: &World, id: &str, hours: i64) {
    for _ in 0..hours * 12 {
        w.advance(Duration::minutes(5));
        w.fetch(id).await.expect("fetched");
    }
}

#[tokio::test]
async fn an_alert_visible_five_hours_after_its_update_is_delivered_late_by_the_next_sweep() {
    let w = World::caught_up(NORTHWIND, AuthModel::Application, AlertApi::Graph).await;
    w.add_alerts(
        NORTHWIND,
        json!([{"id": "late-one", "created": "+0s", "visible_after": "5h", "title": "Seen late"}]),
    )
    .await;

    // Six hours of regular fetches: the alert shows up after the watermark passed it by 5 h.
    fetch_every_five_minutes(&w, NORTHWIND, 6).await;
    let before: Vec<_> = w
        .records(NORTHWIND)
        .into_iter()
        .filter(|r| r.alert_id == "late-one")
        .collect();
    assert!(
        before.is_empty(),
        "the regular fetch cannot see it: {before:?}"
    );
    assert_eq!(
        w.delivery(NORTHWIND).missing.len(),
        1,
        "the emulator exposes it"
    );

    let summary = w.sweep_finished(NORTHWIND).await;
    assert_eq!(summary.delivered, 1, "{summary:?}");
    assert!(summary.checked >= 6, "{summary:?}");
    let late: Vec<_> = w
        .records(NORTHWIND)
        .into_iter()
        .filter(|r| r.alert_id == "late-one")
        .collect();
    assert_eq!(late.len(), 1);
    assert!(late[0].late);
    let delay = late[0].delay_s.expect("delay");
    assert!((5 * 3600..=7 * 3600).contains(&delay), "{delay}");
    w.assert_exactly_once(NORTHWIND);
    let cursor = w.cursor(NORTHWIND, AlertApi::Graph).await;
    assert_eq!(cursor.last_sweep.as_ref().map(|s| s.delivered), Some(1));

    // Nothing is due again before the interval; after it, a sweep finds nothing new.
    assert_eq!(w.sweep(NORTHWIND).await.expect("swept"), Swept::NotDue);
    fetch_every_five_minutes(&w, NORTHWIND, 6).await;
    let again = w.sweep(NORTHWIND).await.expect("swept again");
    assert!(
        matches!(&again, Swept::Ran(Slice::Finished(s)) if s.delivered == 0),
        "{again:?}"
    );
    w.assert_exactly_once(NORTHWIND);
}

#[tokio::test]
async fn a_sweep_spends_no_more_than_its_share_of_the_budget() {
    let mut w = World::start().await;
    // 15 requests a minute, 20 % of which is 3; pages of 5 over 60 alerts need 12 pages.
    w.services.settings.fetch.graph_budget = vec![(15, std::time::Duration::from_secs(60))];
    w.services.settings.fetch.graph_page = 5;
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    let resp = w
        .http
        .post(format!(
            "{}/tenants/{NORTHWIND}/alerts",
            w.emu.urls().control
        ))
        .json(
            &(0..60)
                .map(|i| json!({"created": format!("-{}m", 120 + i), "title": format!("Old {i}")}))
                .collect::<Vec<_>>(),
        )
        .send()
        .await
        .expect("control api");
    assert!(resp.status().is_success());
    w.fetch(NORTHWIND).await.expect("first fetch");
    w.advance(Duration::hours(2));
    w.fetch(NORTHWIND).await.expect("second fetch");

    let requests = || -> u64 {
        let stats: serde_json::Value =
            serde_json::to_value(w.emu.state().world().requests.clone()).expect("stats");
        stats["graph"].as_u64().unwrap_or(0)
    };
    let before = requests();
    let opts = FetchOptions {
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(3),
        owner: "sweeper".into(),
        hooks: &NoHooks,
    };
    let r = sweep_tenant(&w.services, &tid(NORTHWIND), &opts).await;
    assert!(
        matches!(r, Ok(Swept::Ran(Slice::Continues(_)))),
        "the budget runs out before the deadline, and the slice ends: {r:?}"
    );
    let sent = requests() - before;
    assert!(sent <= 3, "{sent} requests in one budget minute, share 3");
    assert!(sent >= 1, "the sweep started");
    // Where it stopped is kept: the next slice continues the same sweep.
    let cursor = w.cursor(NORTHWIND, AlertApi::Graph).await;
    let job = cursor.sweep.expect("a sweep in progress");
    assert!(job.requests >= 1, "{job:?}");
}
