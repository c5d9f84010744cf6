//! The app registration's own health against the emulator: each refresh cycle checks the app's
//! credentials once in its home tenant, so a wrong or expired client secret is one app-wide
//! problem found by the next cycle — while every tenant's access token is still valid — and the
//! client secret's expiry warns 30, 14 and 7 days ahead, on the emulator's clock.

use chrono::{DateTime, Duration, Utc};
use emulator::Scenario;
use serde_json::json;
use shared::adapters::local::FileAppSecrets;
use shared::domain::{AlertApi, AuthModel, Tenant, TenantStatus};
use shared::flows::app_health::Credentials;
use shared::flows::refresh::{RefreshSummary, refresh_all};
use shared::ports::AppSecrets;

use crate::fixtures::{APP_ID, FABRIKAM, NORTHWIND, World, start_time, tid};

/// The MSSP's own tenant, where the app is registered.
pub const HOME: &str = "99999999-9999-4999-8999-999999999999";

/// The fixtures' scenario with the app registered in [`HOME`], its secret expiring `expires`
/// after the clock start.
pub fn scenario_with_home(expires: &str) -> Scenario {
    with_home(crate::fixtures::scenario(), expires)
}

/// `sc` with the app registered in [`HOME`], its secret expiring `expires` after the clock start.
pub fn with_home(mut sc: Scenario, expires: &str) -> Scenario {
    sc.tenants.push(
        serde_json::from_value(
            json!({"id": HOME, "name": "MSSP", "domains": ["mssp.onmicrosoft.com"]}),
        )
        .expect("tenant"),
    );
    sc.apps[0].home_tenant = Some(HOME.into());
    sc.apps[0].secrets[0].expires = Some(expires.into());
    sc
}

/// Writes `tenant_id` and `client_secret_expires` into the local app secret, as the operator
/// does once.
async fn describe_app(w: &World, expires: Option<DateTime<Utc>>) {
    let app = FileAppSecrets::new(w.dir.path());
    let mut creds = app.app_credentials().await.expect("app secret");
    creds.tenant_id = Some(tid(HOME));
    creds.client_secret_expires = expires;
    app.write(&creds).expect("write");
}

async fn tenants(w: &World) -> Vec<Tenant> {
    w.services.registry.list().await.expect("registry")
}

fn assert_every_tenant_untouched(before: &[Tenant], after: &[Tenant]) {
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(after) {
        assert_eq!(
            a.status,
            TenantStatus::Active,
            "{}: not the tenant's fault",
            a.id
        );
        assert_eq!(
            a.last_refresh, b.last_refresh,
            "{}: nothing recorded on it",
            a.id
        );
        assert_eq!(a.consecutive_failures, b.consecutive_failures);
    }
}

fn warning_days(s: &RefreshSummary) -> Option<i64> {
    s.app.expiry_warning_days
}

#[tokio::test]
async fn an_expired_client_secret_is_reported_by_the_next_cycle_while_every_access_token_is_valid()
{
    let w = World::start_with(scenario_with_home("+365d")).await;
    w.onboard_three().await;
    describe_app(&w, None).await;
    let s = refresh_all(&w.services, None).await.expect("run");
    assert!(
        matches!(&s.app.credentials, Credentials::Accepted { tenant_id } if tenant_id == &tid(HOME)),
        "{:?}",
        s.app
    );
    assert_eq!(s.fresh.len(), 3, "every access token is fresh: {s:?}");
    let before = tenants(&w).await;

    w.control(&format!("apps/{APP_ID}/expire-secret"), None)
        .await;
    w.advance(Duration::minutes(1));
    let s = refresh_all(&w.services, None).await.expect("run");

    let problem = s.app_misconfigured.clone().expect("one app-wide problem");
    assert!(
        problem.starts_with("the app's client secret has expired (AADSTS7000222)"),
        "{problem}"
    );
    assert!(problem.contains("Certificates & secrets"), "{problem}");
    assert!(matches!(
        s.app.credentials,
        Credentials::Refused {
            code: Some(7000222),
            ..
        }
    ));
    assert!(s.failed.is_empty() && s.reconsent.is_empty() && s.refreshed.is_empty());
    assert_eq!(s.skipped.len(), 3, "no tenant tried: {s:?}");
    assert_every_tenant_untouched(&before, &tenants(&w).await);
}

#[tokio::test]
async fn a_wrong_client_secret_is_reported_once_as_aadsts7000215() {
    let w = World::start_with(scenario_with_home("+365d")).await;
    w.onboard_three().await;
    describe_app(&w, None).await;
    let before = tenants(&w).await;
    let app = FileAppSecrets::new(w.dir.path());
    let mut creds = app.app_credentials().await.expect("app secret");
    creds.client_secret = shared::secret::ClientSecret::new("the-secret-id-not-its-value".into());
    app.write(&creds).expect("write");

    let s = refresh_all(&w.services, None).await.expect("run");

    let problem = s.app_misconfigured.expect("one app-wide problem");
    assert!(problem.contains("AADSTS7000215"), "{problem}");
    assert!(problem.contains("not its Secret ID"), "{problem}");
    assert_eq!(s.skipped.len(), 3);
    assert_every_tenant_untouched(&before, &tenants(&w).await);
}

#[tokio::test]
async fn the_secret_expiry_warns_30_14_and_7_days_ahead_on_the_emulators_clock() {
    let w = World::start_with(scenario_with_home("+40d")).await;
    w.onboard(FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde)
        .await;
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    let expires = start_time() + Duration::days(40);
    describe_app(&w, Some(expires)).await;

    let s = refresh_all(&w.services, None).await.expect("run");
    assert_eq!(warning_days(&s), None, "40 days ahead: {:?}", s.app);
    assert!(s.app.warnings.is_empty());

    for (advance, level, days_left) in [(11, 30, 29), (16, 14, 13), (7, 7, 6)] {
        w.advance(Duration::days(advance));
        let s = refresh_all(&w.services, None).await.expect("run");
        assert_eq!(warning_days(&s), Some(level), "{:?}", s.app);
        assert_eq!(s.app.client_secret_days_left, Some(days_left));
        assert_eq!(s.app.warnings.len(), 1, "{:?}", s.app.warnings);
        let warning = &s.app.warnings[0];
        assert!(
            warning.contains(&format!("in {days_left} days"))
                && warning.contains("client_secret_expires"),
            "{warning}"
        );
        assert!(matches!(s.app.credentials, Credentials::Accepted { .. }));
        // The secret still works: the tenants were refreshed as usual.
        assert!(
            s.app_misconfigured.is_none() && s.failed.is_empty(),
            "{s:?}"
        );
        assert_eq!(s.refreshed.len() + s.fresh.len(), 2);
        assert_eq!(s.app.needs_attention(), level == 7);
    }

    // A day past the expiry the emulator's clock has Microsoft refuse the secret.
    w.advance(Duration::days(7));
    let s = refresh_all(&w.services, None).await.expect("run");
    let problem = s.app_misconfigured.clone().expect("expired");
    assert!(problem.contains("AADSTS7000222"), "{problem}");
    assert_eq!(warning_days(&s), Some(0));
    assert_eq!(s.app.warnings, vec![problem], "the refusal says it once");
}

#[tokio::test]
async fn without_a_home_tenant_the_cycle_says_the_credentials_are_not_checked() {
    let w = World::onboarded(NORTHWIND, AuthModel::Application, AlertApi::Graph).await;
    let s = refresh_all(&w.services, None).await.expect("run");
    match &s.app.credentials {
        Credentials::NotConfigured { reason } => {
            assert!(reason.contains("tenant_id"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(s.app_misconfigured.is_none() && !s.app.needs_attention());
}

/// The `token-refresh` binary's scheduled run checks the app's credentials too: with the app
/// secret in Secrets Manager naming the home tenant and the secret's expiry, its summary carries
/// the expiry warning, and once Microsoft refuses the secret, the one app-wide problem — while
/// every tenant's access token is still valid.
#[tokio::test]
async fn the_token_refresh_functions_scheduled_run_reports_the_apps_health() {
    let w = crate::lambda_world::FnWorld::start_with(true, |sc| with_home(sc, "+20d")).await;
    w.onboard_three().await;
    let name = format!("{}/app", w.prefix);
    let current =
        w.sm.get_secret_value()
            .secret_id(&name)
            .send()
            .await
            .expect("app secret");
    let mut app: serde_json::Value =
        serde_json::from_str(current.secret_string().expect("string")).expect("json");
    app["tenant_id"] = json!(HOME);
    app["client_secret_expires"] = json!((Utc::now() + Duration::days(20)).to_rfc3339());
    w.sm.put_secret_value()
        .secret_id(&name)
        .secret_string(app.to_string())
        .send()
        .await
        .expect("operator writes the app secret");
    let scheduled: serde_json::Value = serde_json::from_str(include_str!(
        "../../fixtures/events/eventbridge-scheduled-event.json"
    ))
    .expect("fixture");
    let f = w.spawn("token-refresh").await;

    let run = f.invoke(&scheduled).await.expect("summary");
    assert_eq!(run["app"]["credentials"]["state"], "accepted", "{run}");
    assert_eq!(run["app"]["expiry_warning_days"], 30, "{run}");
    assert_eq!(run["app"]["client_secret_days_left"], 19, "{run}");
    assert!(
        run["app"]["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("in 19 days")),
        "{run}"
    );
    // Delegated tokens are fresh; an application tenant's token is minted in a new process.
    assert_eq!(
        run["fresh"].as_array().map(Vec::len),
        Some(2),
        "tokens valid: {run}"
    );
    assert_eq!(run["refreshed"].as_array().map(Vec::len), Some(1), "{run}");

    let expire = tests::endpoint(
        &w.env.emulator.urls().control,
        &format!("apps/{APP_ID}/expire-secret"),
    )
    .expect("url");
    assert!(
        w.env
            .http
            .post(expire)
            .send()
            .await
            .expect("expire")
            .status()
            .is_success()
    );
    let run = f.invoke(&scheduled).await.expect("a summary, not an error");
    assert_eq!(run["app"]["credentials"]["state"], "refused", "{run}");
    assert_eq!(run["app"]["credentials"]["code"], 7000222, "{run}");
    assert!(
        run["app_misconfigured"]
            .as_str()
            .is_some_and(|p| p.contains("AADSTS7000222")),
        "{run}"
    );
    assert_eq!(run["skipped"].as_array().map(Vec::len), Some(3), "{run}");
    assert_eq!(run["failed"], json!([]), "{run}");
    let logs = f.logs();
    assert!(logs.contains("app client secret expires soon"), "{logs}");
    assert!(logs.contains("APP REGISTRATION MISCONFIGURED"), "{logs}");
    assert!(!logs.contains(crate::fixtures::APP_SECRET));
}

/// A connection Microsoft drops, on the token endpoint and on an alert API, is recorded as what
/// it is — the connection was dropped, the next run retries — not as the transport's jargon.
#[tokio::test]
async fn a_dropped_connection_says_so_and_that_the_next_run_retries() {
    use emulator::faults::{FaultKind, FaultPlanSpec, FaultRule, FaultTarget};
    use shared::flows::refresh::refresh_tenant;

    let mut w = World::start().await;
    w.services.settings.identity_attempts = 1;
    w.services.settings.fetch.retry.max_attempts = 1;
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    let drop = |api| FaultRule {
        tenant: Some(NORTHWIND.into()),
        ..FaultRule::new(api, FaultKind::Drop)
    };
    w.emu.state().world().faults.replace(FaultPlanSpec {
        seed: 1,
        rules: vec![drop(FaultTarget::Graph)],
    });
    let fetch = w.fetch(NORTHWIND).await.expect_err("dropped").to_string();
    assert!(
        fetch.starts_with("the API dropped the connection")
            && fetch.ends_with("the next run retries"),
        "{fetch}"
    );
    w.emu.state().world().faults.replace(FaultPlanSpec {
        seed: 1,
        rules: vec![drop(FaultTarget::Identity)],
    });
    let refresh = refresh_tenant(&w.services, &tid(NORTHWIND), true)
        .await
        .expect_err("dropped")
        .to_string();
    assert!(
        refresh.starts_with("Microsoft's sign-in service dropped the connection")
            && refresh.ends_with("the next run retries"),
        "{refresh}"
    );
    let recorded = w.tenant(NORTHWIND).await;
    for o in [&recorded.last_fetch, &recorded.last_refresh] {
        let detail = o
            .as_ref()
            .and_then(|o| o.detail.clone())
            .unwrap_or_default();
        assert!(detail.contains("dropped the connection"), "{detail}");
        assert!(!detail.contains("error sending request"), "{detail}");
    }
}
