//! The legacy SIEM API is served by regional exporters, and another region's exporter answers a
//! tenant with an empty list. A tenant read at the wrong one would be "ok" and empty forever:
//! its sweep finds the region that holds its alerts, every fetch then fails naming both regions
//! and the command that fixes it, and once the region is set the tenant's alerts are delivered,
//! each once.

use chrono::Duration;
use emulator::scenario::Region;
use shared::config::{CloudEndpoints, Endpoints, SiemEndpoint};
use shared::domain::{AlertApi, AuthModel, SiemRegion};
use shared::flows::fetch::{FetchFlowError, FetchOptions, NoHooks};
use shared::flows::region::set_siem_region;
use shared::flows::status::status;

use crate::fixtures::{CONTOSO, World, scenario, tid};

/// A world whose Contoso keeps its SIEM alerts in the EU, with one exporter URL per region.
async fn world_with_contoso_in_the_eu() -> World {
    let mut sc = scenario();
    let contoso = sc
        .tenants
        .iter_mut()
        .find(|t| t.id == CONTOSO)
        .expect("contoso");
    contoso.region = Region::Eu;
    let mut w = World::start_with(sc).await;
    let u = w.emu.urls().clone();
    let template = u.siem_us.as_str().replace("siem-us", "siem-{region}");
    w.services.settings.endpoints = Endpoints::Fixed(Box::new(CloudEndpoints {
        authority: u.authority,
        graph: u.graph,
        mde: u.mde,
        siem: SiemEndpoint::from_template(&template).expect("template"),
    }));
    w
}

#[tokio::test]
async fn a_tenant_read_at_another_regions_exporter_is_reported_and_recovers_once_set() {
    let w = world_with_contoso_in_the_eu().await;
    // Added without a region: the deployment's default, us.
    w.onboard(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem)
        .await;
    for _ in 0..24 {
        let r = w.fetch(CONTOSO).await.expect("an empty answer is a fetch");
        assert_eq!(r.delivered, 0, "the US exporter holds nothing of Contoso");
        w.advance(Duration::minutes(5));
    }
    assert_eq!(
        w.delivery(CONTOSO).missing.len(),
        5,
        "the EU exporter holds 5"
    );

    let summary = w.sweep_finished(CONTOSO).await;
    assert_eq!(summary.checked, 0, "{summary:?}");
    assert_eq!(summary.elsewhere, Some(SiemRegion::Eu), "{summary:?}");

    let err = w.fetch(CONTOSO).await.expect_err("the fetch says so");
    assert!(
        matches!(
            err,
            FetchFlowError::SiemRegion {
                reading: SiemRegion::Us,
                holds: SiemRegion::Eu
            }
        ),
        "{err:?}"
    );
    let said = err.to_string();
    assert!(said.contains("mssp tenants set-region TENANT eu"), "{said}");
    let health = status(&w.services, Some(&tid(CONTOSO)))
        .await
        .expect("status")
        .pop()
        .expect("contoso");
    assert_eq!(health.last_fetch_ok, Some(false));
    assert_eq!(health.last_error.as_deref(), Some(said.as_str()));

    let opts = FetchOptions {
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(30),
        owner: "operator".into(),
        hooks: &NoHooks,
    };
    let t = set_siem_region(&w.services, &tid(CONTOSO), SiemRegion::Eu, &opts)
        .await
        .expect("set");
    assert_eq!(t.siem_region, Some(SiemRegion::Eu));
    let after = w.fetch(CONTOSO).await.expect("fetched at the EU exporter");
    assert_eq!(after.delivered, 5, "{after:?}");
    w.advance(Duration::minutes(5));
    let again = w.fetch(CONTOSO).await.expect("fetched");
    assert_eq!(again.delivered, 0, "{again:?}");
    w.assert_exactly_once(CONTOSO);
}

#[tokio::test]
async fn a_quiet_tenant_at_its_own_region_is_not_reported() {
    let w = world_with_contoso_in_the_eu().await;
    // Fabrikam is in the US (the default) like the deployment: its sweep finds its alerts.
    w.onboard(
        crate::fixtures::FABRIKAM,
        AuthModel::DelegatedV1,
        AlertApi::Siem,
    )
    .await;
    for _ in 0..24 {
        w.fetch(crate::fixtures::FABRIKAM).await.expect("fetched");
        w.advance(Duration::minutes(5));
    }
    let summary = w.sweep_finished(crate::fixtures::FABRIKAM).await;
    assert!(summary.checked > 0, "{summary:?}");
    assert_eq!(summary.elsewhere, None);
    w.fetch(crate::fixtures::FABRIKAM)
        .await
        .expect("still fetched");
    w.assert_exactly_once(crate::fixtures::FABRIKAM);
}
