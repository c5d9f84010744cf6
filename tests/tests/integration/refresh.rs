//! Token refresh against the emulator: rotation persisted every time, re-consent after 90 idle
//! days without stopping other tenants, an expired app secret reported as app-wide, 5xx retried.

use chrono::Duration;
use emulator::faults::{FaultKind, FaultPlanSpec, FaultRule, FaultTarget};
use shared::domain::{AlertApi, AuthModel, TenantStatus};
use shared::flows::refresh::{RefreshError, RefreshOutcome, refresh_all, refresh_tenant};

use crate::fixtures::{APP_ID, CONTOSO, FABRIKAM, NORTHWIND, World, tid};

async fn refresh_token_of(w: &World, id: &str) -> String {
    w.tokens(id)
        .await
        .refresh_token
        .expect("refresh token")
        .into_exposed()
}

#[tokio::test]
async fn every_refresh_persists_the_rotated_refresh_token() {
    let w = World::onboarded(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem).await;
    w.onboard(FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde)
        .await;
    for id in [CONTOSO, FABRIKAM] {
        let mut seen = vec![refresh_token_of(&w, id).await];
        for _ in 0..3 {
            w.advance(Duration::minutes(5));
            let r = refresh_tenant(&w.services, &tid(id), true)
                .await
                .expect("refreshed");
            assert_eq!(r, RefreshOutcome::Refreshed);
            let rt = refresh_token_of(&w, id).await;
            assert!(!seen.contains(&rt), "a new refresh token every time");
            seen.push(rt);
        }
    }
}

#[tokio::test]
async fn fresh_tokens_are_left_alone_and_near_expiry_ones_are_renewed() {
    let w = World::onboarded(NORTHWIND, AuthModel::Application, AlertApi::Graph).await;
    let r = refresh_tenant(&w.services, &tid(NORTHWIND), false)
        .await
        .expect("ok");
    assert_eq!(r, RefreshOutcome::Fresh);
    w.advance(Duration::minutes(55));
    let r = refresh_tenant(&w.services, &tid(NORTHWIND), false)
        .await
        .expect("ok");
    assert_eq!(r, RefreshOutcome::Refreshed);
}

#[tokio::test]
async fn after_90_idle_days_a_tenant_needs_reconsent_while_the_others_keep_refreshing() {
    let w = World::start().await;
    w.onboard_three().await;
    // Contoso is paused for three months; the others are refreshed on schedule meanwhile.
    w.services
        .update_tenant(&tid(CONTOSO), |t| t.status = TenantStatus::Suspended)
        .await
        .expect("suspend");
    for _ in 0..7 {
        w.advance(Duration::days(13));
        let s = refresh_all(&w.services, None).await.expect("run");
        assert!(s.failed.is_empty() && s.reconsent.is_empty(), "{s:?}");
    }
    w.services
        .update_tenant(&tid(CONTOSO), |t| t.status = TenantStatus::Active)
        .await
        .expect("resume");
    let s = refresh_all(&w.services, None).await.expect("run");
    assert_eq!(s.reconsent.len(), 1, "{s:?}");
    let (id, link) = &s.reconsent[0];
    assert_eq!(id, &tid(CONTOSO));
    let link = link.as_ref().expect("a fresh consent link");
    assert!(
        link.as_str()
            .starts_with("http://127.0.0.1:8080/consent/start?link=")
    );
    let mut ok = s.refreshed.clone();
    ok.extend(s.fresh.clone());
    ok.sort();
    assert_eq!(ok, vec![tid(FABRIKAM), tid(NORTHWIND)]);
    let c = w.tenant(CONTOSO).await;
    assert_eq!(c.status, TenantStatus::ReconsentRequired);
    let detail = c.last_refresh.and_then(|o| o.detail).unwrap_or_default();
    assert!(detail.contains("700082"), "{detail}");
    // The new link works: consenting again makes the tenant active.
    let cb = w.sign_in(link).await;
    shared::flows::onboarding::complete_consent(&w.services, &cb)
        .await
        .expect("re-consent");
    let c = w.tenant(CONTOSO).await;
    assert_eq!(c.status, TenantStatus::Active);
}

#[tokio::test]
async fn an_expired_client_secret_is_reported_once_as_an_app_misconfiguration() {
    let w = World::start().await;
    w.onboard_three().await;
    w.control(&format!("apps/{APP_ID}/expire-secret"), None)
        .await;
    w.advance(Duration::hours(2));
    let s = refresh_all(&w.services, None).await.expect("run");
    let why = s
        .app_misconfigured
        .expect("app-wide misconfiguration reported");
    assert!(why.contains("7000222"), "{why}");
    assert!(s.refreshed.is_empty() && s.reconsent.is_empty());
    assert_eq!(s.failed.len() + s.skipped.len(), 3);
    for id in [CONTOSO, FABRIKAM, NORTHWIND] {
        let t = w.tenant(id).await;
        assert_eq!(t.status, TenantStatus::Active, "not the tenant's fault");
    }
    let e = refresh_tenant(&w.services, &tid(CONTOSO), true)
        .await
        .expect_err("fails");
    assert!(matches!(e, RefreshError::AppMisconfigured(_)), "{e}");
}

/// The identity platform answers `status` to `count` requests (to every one when `None`).
fn identity_server_errors(w: &World, status: u16, count: Option<u32>) {
    w.emu.state().world().faults.replace(FaultPlanSpec {
        seed: 9,
        rules: vec![FaultRule {
            count,
            status: Some(status),
            ..FaultRule::new(FaultTarget::Identity, FaultKind::ServerError)
        }],
    });
}

#[tokio::test]
async fn a_burst_of_server_errors_is_retried_and_changes_no_status() {
    let w = World::onboarded(FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde).await;
    identity_server_errors(&w, 503, Some(2));
    let r = refresh_tenant(&w.services, &tid(FABRIKAM), true)
        .await
        .expect("retried");
    assert_eq!(r, RefreshOutcome::Refreshed);
    assert_eq!(
        w.emu.state().world().faults.served().get("server_error"),
        Some(&2)
    );
    let t = w.tenant(FABRIKAM).await;
    assert_eq!(t.status, TenantStatus::Active);
    assert_eq!(t.consecutive_failures, 0);
    assert!(t.last_refresh.expect("recorded").ok);
}

#[tokio::test]
async fn a_persistent_outage_is_recorded_without_changing_the_status() {
    let w = World::onboarded(NORTHWIND, AuthModel::Application, AlertApi::Graph).await;
    identity_server_errors(&w, 500, None);
    let e = refresh_tenant(&w.services, &tid(NORTHWIND), true)
        .await
        .expect_err("fails");
    assert!(matches!(e, RefreshError::Transient(_)), "{e}");
    let t = w.tenant(NORTHWIND).await;
    assert_eq!(t.status, TenantStatus::Active);
    assert_eq!(t.consecutive_failures, 1);
    assert!(!t.last_refresh.expect("recorded").ok);
}

#[tokio::test]
async fn a_user_revoking_sessions_makes_the_tenant_need_reconsent() {
    let w = World::onboarded(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem).await;
    w.control(
        &format!("tenants/{CONTOSO}/users/admin@contoso.onmicrosoft.com/revoke"),
        None,
    )
    .await;
    w.advance(Duration::minutes(1));
    let e = refresh_tenant(&w.services, &tid(CONTOSO), true)
        .await
        .expect_err("fails");
    match e {
        RefreshError::ReconsentRequired {
            reason,
            consent_link,
        } => {
            assert!(reason.contains("50173"), "{reason}");
            assert!(consent_link.is_some());
        }
        other => panic!("expected re-consent, got {other}"),
    }
}
