//! Fetching end to end against the emulator, over the file adapters: every API, updates and late
//! arrivals, deep windows that defeat `$skip`/`$top` and missing next links, and every answer that
//! must not move the watermark.

use chrono::Duration;
use emulator::faults::{FaultKind, FaultPlanSpec, FaultRule, FaultTarget};
use serde_json::json;
use shared::domain::{AlertApi, AuthModel};
use shared::flows::fetch::FetchFlowError;
use shared::record::Change;

use crate::fixtures::{CONTOSO, FABRIKAM, NORTHWIND, World, generating, tid};

fn fault(tenant: &str, api: FaultTarget, kind: FaultKind, count: u32) -> FaultRule {
    FaultRule {
        tenant: Some(tenant.into()),
        count: Some(count),
        retry_after: Some(0.05),
        status: Some(503),
        ..FaultRule::new(api, kind)
    }
}

async fn watermark(w: &World, id: &str, api: AlertApi) -> Option<chrono::DateTime<chrono::Utc>> {
    w.services
        .cursors
        .get(&tid(id), api)
        .await
        .expect("cursor")
        .and_then(|c| c.watermark)
}

#[tokio::test]
async fn every_api_delivers_each_alert_version_once_and_a_second_run_adds_nothing() {
    let w = World::start().await;
    w.onboard_three().await;
    for id in [CONTOSO, FABRIKAM, NORTHWIND] {
        let r = w.fetch(id).await.expect("fetched");
        assert_eq!(r.delivered, 5, "{id}: {r:?}");
        assert_eq!(r.created, 5);
        w.assert_exactly_once(id);
        let again = w.fetch(id).await.expect("fetched again");
        assert_eq!(again.delivered, 0, "{again:?}");
        w.assert_exactly_once(id);
        let rec = &w.records(id)[0];
        assert_eq!(rec.schema, "mssp.alert/1");
        // A SIEM record is keyed by its FullId (`{AlertId}:{IocUniqueId}`), the others by id.
        let record_id = rec.alert_json()["FullId"]
            .as_str()
            .map_or_else(|| rec.alert_id.clone(), str::to_string);
        assert_eq!(
            rec.dedup_key,
            format!("{id}:{record_id}:{}", rec.alert_version)
        );
        assert!(rec.alert_json().is_object(), "the raw alert is kept");
    }
}

#[tokio::test]
async fn an_update_arrives_as_a_new_version_marked_updated() {
    let w = World::caught_up(NORTHWIND, AuthModel::Application, AlertApi::Graph).await;
    let id = w.records(NORTHWIND)[0].alert_id.clone();
    w.advance(Duration::minutes(5));
    w.control(
        &format!("tenants/{NORTHWIND}/alerts/{id}/updates"),
        Some(json!({"status": "resolved", "assigned_to": "soc@mssp.example"})),
    )
    .await;
    w.advance(Duration::minutes(5));
    let r = w.fetch(NORTHWIND).await.expect("second");
    assert_eq!((r.delivered, r.updated), (1, 1), "{r:?}");
    let versions: Vec<_> = w
        .records(NORTHWIND)
        .into_iter()
        .filter(|x| x.alert_id == id)
        .collect();
    assert_eq!(versions.len(), 2);
    assert!(
        versions
            .iter()
            .any(|v| v.change == Change::Updated && v.alert_json()["status"] == "resolved")
    );
    w.assert_exactly_once(NORTHWIND);
}

#[tokio::test]
async fn an_alert_that_becomes_visible_late_inside_the_overlap_is_delivered() {
    let w = World::caught_up(FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde).await;
    // Created now, visible only in 20 minutes: by then the watermark has passed its update time.
    w.add_alerts(
        FABRIKAM,
        json!([{"created": "+0s", "visible_after": "20m", "title": "Late arrival"}]),
    )
    .await;
    w.advance(Duration::minutes(10));
    assert_eq!(w.fetch(FABRIKAM).await.expect("before").delivered, 0);
    w.advance(Duration::minutes(15));
    let r = w.fetch(FABRIKAM).await.expect("after");
    assert_eq!(r.delivered, 1, "{r:?}");
    w.assert_exactly_once(FABRIKAM);
}

/// A scenario whose Northwind (Graph) and Fabrikam (MDE) hold `n` alerts created a second apart
/// that were all updated at the same instant.
fn same_update_time(n: usize) -> emulator::Scenario {
    generating(
        &[NORTHWIND, FABRIKAM],
        json!({
            "count": n, "start": "-3h", "every": "1s", "seed": 5,
            "update_fraction": 1.0, "update_at": "-10m", "update_status": "inProgress"
        }),
        |s| s.graph_next_link = false,
    )
}

#[tokio::test]
async fn five_thousand_alerts_sharing_one_update_time_drain_once_on_graph_without_next_links() {
    let w = World::start_with(same_update_time(5000)).await;
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    let r = w.fetch(NORTHWIND).await.expect("fetched");
    assert_eq!(r.delivered, 5000, "{r:?}");
    w.assert_exactly_once(NORTHWIND);
    let versions: std::collections::HashSet<_> = w
        .records(NORTHWIND)
        .into_iter()
        .map(|r| r.alert_version)
        .collect();
    assert_eq!(
        versions.len(),
        1,
        "they really share one lastUpdateDateTime"
    );
}

#[tokio::test]
async fn five_thousand_alerts_sharing_one_update_time_drain_once_on_mde_in_pages_of_a_thousand() {
    let mut w = World::start_with(same_update_time(5000)).await;
    w.services.settings.fetch.mde_page = 1000;
    w.onboard(FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde)
        .await;
    let r = w.fetch(FABRIKAM).await.expect("fetched");
    assert_eq!(r.delivered, 5000, "{r:?}");
    w.assert_exactly_once(FABRIKAM);
}

#[tokio::test]
async fn a_graph_backlog_deeper_than_skip_and_top_can_reach_is_drained() {
    // $skip stops at 500 and $top at 1,000, so offsets reach 1,500 alerts at most; next links
    // stop after 2,000. 6,000 alerts over two days must still all arrive.
    let sc = generating(
        &[NORTHWIND],
        json!({
            "count": 6000, "start": "-2d", "every": "25s", "seed": 8,
            "update_fraction": 0.3, "update_after": "30m"
        }),
        |s| s.graph_next_link_max_offset = Some(2000),
    );
    let w = World::start_with(sc).await;
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    let r = w.fetch(NORTHWIND).await.expect("fetched");
    assert_eq!(r.delivered, 6000, "{r:?}");
    assert!(
        r.http.requests >= 7,
        "six pages and a count at least: {r:?}"
    );
    w.assert_exactly_once(NORTHWIND);
}

#[tokio::test]
async fn a_partial_answer_never_advances_the_watermark_and_is_recorded() {
    let w = World::onboarded(NORTHWIND, AuthModel::Application, AlertApi::Graph).await;
    w.emu.state().world().faults.replace(FaultPlanSpec {
        seed: 1,
        rules: vec![fault(NORTHWIND, FaultTarget::Graph, FaultKind::Partial, 3)],
    });
    // A partial page's alerts are taken and the page asked for again; here the first page is
    // partial and the count that follows answers 206 to both attempts allowed.
    let mut w2 = w;
    w2.services.settings.fetch.retry.max_attempts = 2;
    let e = w2.fetch(NORTHWIND).await;
    let e = match e {
        Err(FetchFlowError::Incomplete { error, .. }) => error,
        other => panic!("expected an incomplete fetch, got {other:?}"),
    };
    assert!(e.to_string().contains("206"), "{e}");
    assert_eq!(watermark(&w2, NORTHWIND, AlertApi::Graph).await, None);
    let t = w2
        .services
        .registry
        .get(&tid(NORTHWIND))
        .await
        .expect("get")
        .expect("t");
    let detail = t.last_fetch.expect("recorded").detail.unwrap_or_default();
    assert!(detail.contains("206"), "{detail}");
    // Next run: complete, nothing duplicated.
    w2.fetch(NORTHWIND).await.expect("complete");
    w2.assert_exactly_once(NORTHWIND);
}

#[tokio::test]
async fn a_token_without_the_role_gets_403_and_the_watermark_stays() {
    let w = World::onboarded(NORTHWIND, AuthModel::Application, AlertApi::Graph).await;
    // The admin withdraws the role: the next token has none.
    {
        let mut world = w.emu.state().world();
        let t = world.tenants.get_mut(NORTHWIND).expect("tenant");
        t.consents.values_mut().for_each(|g| g.app_roles.clear());
    }
    w.advance(Duration::hours(2));
    let e = w.fetch(NORTHWIND).await.expect_err("refused");
    assert!(e.to_string().contains("SecurityAlert.Read.All"), "{e}");
    assert_eq!(watermark(&w, NORTHWIND, AlertApi::Graph).await, None);
    assert!(w.records(NORTHWIND).is_empty());
}

#[tokio::test]
async fn throttling_server_errors_malformed_and_dropped_pages_are_retried() {
    let mut w = World::start().await;
    w.services.settings.fetch.graph_page = 2;
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    w.emu.state().world().faults.replace(FaultPlanSpec {
        seed: 4,
        rules: vec![
            fault(NORTHWIND, FaultTarget::Graph, FaultKind::Throttle, 2),
            fault(NORTHWIND, FaultTarget::Graph, FaultKind::ServerError, 1),
            fault(NORTHWIND, FaultTarget::Graph, FaultKind::Malformed, 1),
            fault(NORTHWIND, FaultTarget::Graph, FaultKind::Drop, 1),
        ],
    });
    let r = w.fetch(NORTHWIND).await.expect("fetched despite faults");
    assert_eq!(r.delivered, 5);
    assert_eq!(r.http.throttled, 2, "{r:?}");
    assert!(r.http.retried >= 3, "{r:?}");
    w.assert_exactly_once(NORTHWIND);
}

#[tokio::test]
async fn a_second_fetch_while_the_lease_is_held_is_refused() {
    let w = World::onboarded(NORTHWIND, AuthModel::Application, AlertApi::Graph).await;
    let ports = &w.services;
    use shared::clock::Clock;
    ports
        .cursors
        .acquire(
            &tid(NORTHWIND),
            AlertApi::Graph,
            "someone-else",
            w.clock.now(),
            Duration::minutes(5),
        )
        .await
        .expect("lease");
    let e = w.fetch(NORTHWIND).await.expect_err("busy");
    assert!(matches!(e, FetchFlowError::Busy(_)), "{e}");
    w.advance(Duration::minutes(6));
    w.fetch(NORTHWIND).await.expect("the lease expired");
}

#[tokio::test]
async fn a_big_window_is_committed_chunk_by_chunk() {
    let sc = generating(
        &[NORTHWIND],
        json!({
            "count": 3000, "start": "-1d", "every": "20s", "seed": 2
        }),
        |_| {},
    );
    let mut w = World::start_with(sc).await;
    w.services.settings.fetch.chunk_target = 500;
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    let r = w.fetch(NORTHWIND).await.expect("fetched");
    assert!(r.chunks_committed >= 6, "{r:?}");
    assert_eq!(r.chunks_committed, r.chunks_planned);
    w.assert_exactly_once(NORTHWIND);
}

#[tokio::test]
async fn more_alerts_than_a_page_sharing_one_creation_time_are_paged_through_with_skip() {
    let sc = generating(
        &[NORTHWIND, FABRIKAM],
        json!({
            "count": 260, "start": "-1h", "every": "0s", "seed": 12,
            "update_fraction": 0.2, "update_after": "10m"
        }),
        |s| s.graph_next_link = false,
    );
    let mut w = World::start_with(sc).await;
    w.services.settings.fetch.graph_page = 50;
    w.services.settings.fetch.mde_page = 50;
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    w.onboard(FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde)
        .await;
    for id in [NORTHWIND, FABRIKAM] {
        let r = w.fetch(id).await.expect("fetched");
        assert_eq!(r.delivered, 260, "{id}: {r:?}");
        w.assert_exactly_once(id);
    }
}
