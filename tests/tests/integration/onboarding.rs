//! Customer onboarding end to end against the Microsoft emulator: consent for each model, the
//! verified token, and everything a hostile or broken callback must not achieve.

use chrono::Duration;
use shared::domain::{AlertApi, AuthModel, TenantStatus};
use shared::flows::onboarding::{ConsentError, complete_consent};
use shared::secret::RefreshToken;

use crate::fixtures::{CONTOSO, FABRIKAM, NORTHWIND, WOODGROVE, World, tid};

/// Every file under the data directory's registry, concatenated.
fn registry_text(w: &World) -> String {
    let mut out = String::new();
    for dir in ["registry/tenants", "registry/nonces"] {
        if let Ok(entries) = std::fs::read_dir(w.dir.path().join(dir)) {
            for e in entries.flatten() {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    out
}

async fn assert_consented(w: &World, id: &str, model: AuthModel, granted: &str) {
    let t = w.tenant(id).await;
    assert_eq!(t.status, TenantStatus::Active);
    let p = t.consent.expect("provenance recorded");
    assert_eq!(p.auth_model, model);
    assert_eq!(p.consented_at, w.clock_now());
    assert!(p.granted.iter().any(|g| g == granted), "{:?}", p.granted);
    assert!(p.consented_by.is_some());
    let tokens = w.tokens(id).await;
    let access = tokens.access_token.expect("access token");
    assert_eq!(
        tokens.refresh_token.is_some(),
        model.is_delegated(),
        "refresh token only for delegated"
    );
    let registry = registry_text(w);
    assert!(!registry.contains(access.expose_secret().as_str()));
    if let Some(rt) = tokens
        .refresh_token
        .as_ref()
        .map(RefreshToken::expose_secret)
    {
        assert!(
            !registry.contains(rt.as_str()),
            "the registry holds no secret"
        );
    }
}

#[tokio::test]
async fn delegated_v1_consent_makes_the_tenant_active_with_tokens_in_the_store_only() {
    let w = World::onboarded(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem).await;
    let t = w.tenant(CONTOSO).await;
    assert_eq!(t.status, TenantStatus::Active);
    assert_consented(&w, CONTOSO, AuthModel::DelegatedV1, "user_impersonation").await;
    let p = t.consent.expect("provenance");
    assert_eq!(
        p.consented_by.as_deref(),
        Some("admin@contoso.onmicrosoft.com")
    );
}

#[tokio::test]
async fn delegated_v2_consent_uses_pkce_and_offline_access() {
    let (w, ms) = World::at_microsoft(FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde).await;
    let q: std::collections::HashMap<_, _> = ms.query_pairs().into_owned().collect();
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert!(q["scope"].contains("offline_access") && q["scope"].contains("Alert.Read"));
    assert!(
        !ms.as_str().contains("code_verifier"),
        "the verifier never travels"
    );
    let cb = w.follow(ms).await;
    complete_consent(&w.services, &cb).await.expect("completes");
    assert_consented(&w, FABRIKAM, AuthModel::DelegatedV2, "Alert.Read").await;
}

#[tokio::test]
async fn application_consent_verifies_the_roles_with_a_client_credentials_token() {
    let w = World::onboarded(NORTHWIND, AuthModel::Application, AlertApi::Graph).await;
    let t = w.tenant(NORTHWIND).await;
    assert_eq!(t.status, TenantStatus::Active);
    assert_consented(
        &w,
        NORTHWIND,
        AuthModel::Application,
        "SecurityAlert.Read.All",
    )
    .await;
}

async fn nothing_stored(w: &World, id: &str) {
    let t = w.services.registry.get(&tid(id)).await.expect("registry");
    if let Some(t) = t {
        assert_ne!(t.status, TenantStatus::Active, "tenant must not be active");
        assert!(t.consent.is_none());
    }
    assert!(!w.has_tokens(id).await, "no tokens stored");
}

#[tokio::test]
async fn forged_and_garbage_states_are_refused_and_nothing_is_stored() {
    let (w, mut cb) = World::signed_in_to(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem).await;
    let real = cb.state.clone().expect("state");
    let (payload, _) = real.split_once('.').expect("two parts");
    for bad in [
        format!("{payload}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        "not-a-state".to_string(),
        String::new(),
        "x".repeat(10_000),
    ] {
        cb.state = Some(bad);
        let e = w.refused(&cb).await;
        assert!(e.is_client_error(), "{e}");
    }
    nothing_stored(&w, CONTOSO).await;
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let (w, cb) = World::signed_in_to(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem).await;
    w.advance(Duration::minutes(31));
    let e = w.refused(&cb).await;
    assert!(e.to_string().contains("expired"), "{e}");
    nothing_stored(&w, CONTOSO).await;
}

#[tokio::test]
async fn a_replayed_callback_is_refused_and_changes_nothing() {
    let (w, cb) = World::signed_in_to(NORTHWIND, AuthModel::Application, AlertApi::Graph).await;
    complete_consent(&w.services, &cb).await.expect("first use");
    let before = w.tokens(NORTHWIND).await;
    let e = w.refused(&cb).await;
    assert!(matches!(e, ConsentError::Replayed), "{e}");
    let after = w.tokens(NORTHWIND).await;
    assert_eq!(
        before.access_token.map(|t| t.into_exposed()),
        after.access_token.map(|t| t.into_exposed())
    );
}

#[tokio::test]
async fn an_admin_consent_in_another_tenant_does_not_activate_the_bound_tenant() {
    // The state is bound to Woodgrove, but the admin who consents belongs to Northwind: the
    // redirect says tenant=Northwind. We never trust that parameter: the client-credentials token
    // is requested for the bound tenant, which never consented.
    let (w, ms) = World::at_microsoft(WOODGROVE, AuthModel::Application, AlertApi::Graph).await;
    let other = url::Url::parse(&ms.as_str().replace(WOODGROVE, "organizations").replace(
        "adminconsent?",
        "adminconsent?login_hint=admin%40northwind.onmicrosoft.com&",
    ))
    .expect("url");
    let cb = w.follow(other).await;
    assert_eq!(cb.tenant.as_deref(), Some(NORTHWIND));
    let e = w.refused(&cb).await;
    assert!(e.to_string().contains("not consented"), "{e}");
    nothing_stored(&w, WOODGROVE).await;
}

#[tokio::test]
async fn a_token_for_another_tenant_is_refused() {
    // A token endpoint that answers for another tenant (misrouted or hostile): the product reads
    // tid from the token and refuses it.
    use axum::extract::{Request, State};
    use axum::response::IntoResponse;
    let w = World::start().await;
    // Northwind consents for real, so a token for it exists.
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    let target = w.emu.urls().authority.clone();
    let proxy = axum::Router::new()
        .fallback(|State(target): State<url::Url>, req: Request| async move {
            let path = req.uri().path().replace(WOODGROVE, NORTHWIND);
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let resp = reqwest::Client::new()
                .post(format!(
                    "{}{}",
                    target.as_str().trim_end_matches('/'),
                    path.trim_start_matches("/login")
                ))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("forward");
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap_or_default();
            (
                axum::http::StatusCode::from_u16(status)
                    .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
                bytes,
            )
                .into_response()
        })
        .with_state(target.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, proxy).await;
    });
    // Woodgrove's admin consents, so the flow gets as far as the token.
    let cb = w
        .signed_in(WOODGROVE, AuthModel::Application, AlertApi::Graph)
        .await;
    let mut s = w.services.clone();
    s.settings.endpoints =
        shared::config::Endpoints::Fixed(Box::new(shared::config::CloudEndpoints {
            authority: url::Url::parse(&format!("http://{addr}/login")).expect("url"),
            ..tests::local::endpoints(w.emu.urls())
        }));
    let e = complete_consent(&s, &cb).await.expect_err("refused");
    assert!(e.to_string().contains("another tenant"), "{e}");
    nothing_stored(&w, WOODGROVE).await;
}

#[tokio::test]
async fn a_consent_without_the_needed_permission_is_refused_naming_it() {
    let mut sc = crate::fixtures::scenario();
    sc.apps[0].permissions.app_roles.clear();
    let w = World::start_with(sc).await;
    let cb = w
        .signed_in(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;
    let e = w.refused(&cb).await;
    assert!(e.to_string().contains("SecurityAlert.Read.All"), "{e}");
    nothing_stored(&w, NORTHWIND).await;
}

#[tokio::test]
async fn a_cancelled_sign_in_is_reported_and_stores_nothing() {
    let mut sc = crate::fixtures::scenario();
    sc.settings.auto_approve = false;
    let w = World::start_with(sc).await;
    let link = w
        .register(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem)
        .await;
    let ms = w.microsoft_sign_in(&link).await;
    // The emulator's sign-in page, answered with Cancel.
    let page = w
        .http
        .get(ms)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let request = page
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("request id");
    let decide = format!("{}/_decide", w.emu.urls().authority);
    let resp = w
        .http
        .post(decide)
        .form(&[
            ("request", request),
            ("user", "admin@contoso.onmicrosoft.com"),
            ("decision", "deny"),
        ])
        .send()
        .await
        .expect("decide");
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let cb = crate::fixtures::callback_of(&url::Url::parse(&location).expect("url"));
    let e = w.refused(&cb).await;
    assert!(matches!(e, ConsentError::Denied { .. }), "{e}");
    nothing_stored(&w, CONTOSO).await;
}
