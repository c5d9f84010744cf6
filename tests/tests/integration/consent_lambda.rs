//! The `consent-callback` binary end to end, through the API Gateway bridge: the consent link
//! redirects to Microsoft (the emulator, auto-approving), Microsoft redirects back to the
//! callback, and the callback answers a page naming the tenant after storing its tokens.

use shared::domain::{AlertApi, AuthModel, TenantStatus};

use crate::fixtures::{APP_SECRET, CONTOSO, FABRIKAM, NORTHWIND};
use crate::lambda_world::{FnWorld, assert_security_headers, raw_query};

async fn consent_through_the_binary(id: &str, name: &str, model: AuthModel, api: AlertApi) {
    let mut w = FnWorld::start(true).await;
    let function = w.serve_consent().await;
    let link = w.register(id, name, model, api).await;
    assert!(link.as_str().starts_with(w.gw.url().as_str()), "{link}");

    // The browser opens the link: a redirect to Microsoft's sign-in, nothing else.
    let start = w.env.http.get(link.clone()).send().await.expect("start");
    assert_eq!(start.status().as_u16(), 302);
    assert_security_headers(&start, "start");
    let microsoft = start
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned();
    assert!(
        microsoft.starts_with(w.env.emulator.urls().authority.as_str()),
        "{microsoft}"
    );

    // Microsoft signs the admin in and sends the browser back to the callback.
    let back = w.redirect_of(&microsoft).await;
    assert_eq!(back.path(), "/consent/callback");
    assert!(back.as_str().starts_with(w.gw.url().as_str()), "{back}");
    let done = w.env.http.get(back.clone()).send().await.expect("callback");
    assert_eq!(done.status().as_u16(), 200);
    assert_security_headers(&done, "callback");
    let page = done.text().await.expect("page");
    assert!(page.contains(id), "{page}");
    let escaped = shared::consent::web::escape_html(name);
    assert!(page.contains(&escaped), "the page names {escaped}: {page}");

    let tenant = w.tenant(id).await.expect("tenant");
    assert_eq!(tenant.status, TenantStatus::Active);
    assert_eq!(tenant.consent.expect("provenance").auth_model, model);
    let tokens = w.tokens(id).await.expect("tokens in Secrets Manager");
    let access = tokens.access_token.expect("access token").into_exposed();
    let refresh = tokens.refresh_token.map(|r| r.into_exposed());
    assert_eq!(refresh.is_some(), model.is_delegated());

    // No token, code, state or secret on the page or in the function's logs.
    let mut secrets = vec![access, APP_SECRET.to_owned()];
    secrets.extend(refresh);
    for (k, v) in back.query_pairs() {
        if k == "code" || k == "state" {
            secrets.push(v.into_owned());
        }
    }
    let logs = function.logs();
    assert!(
        logs.contains("consent completed"),
        "the function logs: {logs}"
    );
    for s in &secrets {
        assert!(!page.contains(s.as_str()), "the page leaks a secret");
        assert!(!logs.contains(s.as_str()), "the logs leak a secret");
    }
    assert!(!logs.contains(&raw_query(&back)), "the logs hold the query");
}

#[tokio::test]
async fn a_delegated_v1_consent_through_the_binary_lands_on_a_page_naming_the_tenant() {
    consent_through_the_binary(
        CONTOSO,
        "Contoso Ltd",
        AuthModel::DelegatedV1,
        AlertApi::Siem,
    )
    .await;
}

#[tokio::test]
async fn a_delegated_v2_consent_through_the_binary_lands_on_a_page_naming_the_tenant() {
    consent_through_the_binary(
        FABRIKAM,
        "Fabrikam & Sons <EMEA>",
        AuthModel::DelegatedV2,
        AlertApi::Mde,
    )
    .await;
}

#[tokio::test]
async fn an_application_consent_through_the_binary_lands_on_a_page_naming_the_tenant() {
    consent_through_the_binary(
        NORTHWIND,
        "Northwind Traders",
        AuthModel::Application,
        AlertApi::Graph,
    )
    .await;
}

#[tokio::test]
async fn the_binary_exits_at_start_naming_a_missing_variable() {
    let w = FnWorld::start(true).await;
    let env: Vec<(String, String)> = w
        .lambda_env()
        .into_iter()
        .filter(|(k, _)| k != "MSSP_TABLE")
        .collect();
    for name in ["consent-callback", "token-refresh"] {
        let f = tests::lambda::LambdaProcess::spawn(name, env.clone())
            .await
            .expect("spawn");
        let e = f
            .invoke(&serde_json::json!({}))
            .await
            .expect_err("no configuration");
        assert_eq!(e.error_type, "Runtime.ExitError", "{e}");
        assert!(e.error_message.contains("MSSP_TABLE"), "{e}");
    }
}
