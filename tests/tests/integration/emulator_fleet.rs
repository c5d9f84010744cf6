//! The emulator at fleet size: a generated scenario of thousands of tenants (`emulator::fleet`),
//! tenants resolved by id or domain wherever they are in the fleet, per-tenant request counts
//! (`GET /_emulator/stats/tenants`) and the global `latency_ms` setting. Nothing here is timed;
//! `cargo run --release -p emulator --example fleet` measures load time and CPU per request.

use emulator::fleet::{self, APP, SECRET};
use emulator::{RunningEmulator, Scenario};
use reqwest::StatusCode;
use serde_json::{Value, json};

const START: &str = "2026-01-01T00:00:00Z";
const TENANTS: usize = 2_000;

async fn start() -> (RunningEmulator, reqwest::Client) {
    let scenario: Scenario = fleet::fleet(TENANTS, 3, START).expect("a valid fleet");
    let emu = emulator::start(scenario).await.expect("emulator starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client");
    (emu, http)
}

/// The JSON body of the answer to `request`.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    let r = request.send().await.expect("answer");
    r.json().await.expect("json")
}

/// An application token for fleet tenant `tenant` (an id or a domain) and `scope`.
async fn app_token(
    emu: &RunningEmulator,
    http: &reqwest::Client,
    tenant: &str,
) -> (StatusCode, Value) {
    let r = http
        .post(format!(
            "{}/{tenant}/oauth2/v2.0/token",
            emu.urls().authority
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", APP),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .expect("answer");
    let status = r.status();
    (status, r.json().await.expect("json"))
}

#[tokio::test]
async fn every_tenant_of_a_fleet_is_served_and_counted_on_its_own() {
    let (emu, http) = start().await;
    assert_eq!(emu.state().world().tenants.len(), TENANTS);
    let last = TENANTS - 2; // an application tenant near the end of the fleet
    assert_eq!(fleet::model(last), fleet::Model::Application);

    let (status, by_domain) =
        app_token(&emu, &http, &format!("TENANT{last}.onmicrosoft.com")).await;
    assert_eq!(status, StatusCode::OK, "{by_domain}");
    let (status, by_id) = app_token(&emu, &http, &fleet::tenant_id(last).to_uppercase()).await;
    assert_eq!(status, StatusCode::OK, "{by_id}");
    let token = by_id["access_token"].as_str().expect("a token");
    let graph = format!("{}/v1.0/security/alerts_v2", emu.urls().graph);
    let page = json_of(http.get(graph).bearer_auth(token)).await;
    let alerts = page["value"].as_array().expect("a page");
    assert!(!alerts.is_empty());
    assert!(
        alerts
            .iter()
            .all(|a| a["tenantId"] == fleet::tenant_id(last).as_str())
    );
    let (status, _) = app_token(&emu, &http, "common").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "client credentials need a tenant"
    );

    let stats = json_of(http.get(format!("{}/stats/tenants", emu.urls().control))).await;
    let tenants = stats["tenants"].as_object().expect("an object");
    assert_eq!(
        tenants[&fleet::tenant_id(last)],
        json!({ "graph": 1, "mde": 0, "siem": 0, "token": 2, "authorize": 0 })
    );
    assert_eq!(tenants["common"]["token"], 1);
    assert_eq!(tenants.len(), 2, "only tenants that made requests");
    let totals = json_of(http.get(format!("{}/stats", emu.urls().control))).await;
    assert_eq!(totals["tenants_with_requests"], 2);
    assert_eq!(totals["requests"]["identity"], 3);
}

#[tokio::test]
async fn delegated_fleet_tenants_sign_in_through_their_own_tenant_and_onboard_later() {
    let (emu, http) = start().await;
    let v1 = 7; // delegated v1, consented
    assert_eq!(fleet::model(v1), fleet::Model::DelegatedV1);
    let authorize = |tenant: usize| {
        let url = url::Url::parse_with_params(
            &format!(
                "{}/{}/oauth2/authorize",
                emu.urls().authority,
                fleet::tenant_id(tenant)
            ),
            &[
                ("client_id", APP),
                ("response_type", "code"),
                ("redirect_uri", fleet::REDIRECT),
                ("resource", "https://graph.windows.net"),
                ("login_hint", &fleet::admin(tenant)),
            ],
        )
        .expect("url");
        let request = http.get(url);
        async move { request.send().await.expect("answer") }
    };
    let r = authorize(v1).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = r.headers()["location"].to_str().expect("ascii").to_string();
    assert!(location.contains("code="), "{location}");

    // Tenant 19 (i % 10 == 9) has consented to nothing; signing in grants it.
    let fresh = 19;
    assert!(!fleet::consented(fresh));
    assert!(
        emu.state().world().tenants[&fleet::tenant_id(fresh)]
            .consents
            .is_empty()
    );
    assert_eq!(authorize(fresh).await.status(), StatusCode::FOUND);
    assert!(
        emu.state().world().tenants[&fleet::tenant_id(fresh)]
            .consents
            .contains_key(APP)
    );
    let stats = emu.state().world().tenant_requests.clone();
    assert_eq!(stats[&fleet::tenant_id(v1)].authorize, 1);
    assert_eq!(stats[&fleet::tenant_id(fresh)].authorize, 1);
}

#[tokio::test]
async fn the_latency_setting_delays_microsoft_endpoints_but_not_the_control_api() {
    let (emu, http) = start().await;
    let settings = format!("{}/settings", emu.urls().control);
    let patched = json_of(http.patch(settings).json(&json!({ "latency_ms": 600 }))).await;
    assert_eq!(patched["latency_ms"], 600);

    // A client that gives up after 100 ms never sees a delayed endpoint answer.
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(100))
        .build()
        .expect("client");
    for url in [
        format!("{}/v1.0/security/alerts_v2", emu.urls().graph),
        format!("{}/api/alerts", emu.urls().mde),
        format!("{}/api/alerts", emu.urls().siem_eu),
        format!("{}/common/oauth2/v2.0/token", emu.urls().authority),
    ] {
        let r = impatient.get(&url).send().await;
        assert!(
            r.is_err_and(|e| e.is_timeout()),
            "{url} answered within 100 ms"
        );
    }
    let health = impatient
        .get(format!("{}/health", emu.urls().control))
        .send()
        .await
        .expect("the control API is not delayed");
    assert_eq!(health.status(), StatusCode::OK);

    // The scenario key sets it too.
    let mut scenario = fleet::fleet(3, 1, START).expect("valid");
    scenario.settings.latency_ms = 5;
    let json = serde_json::to_value(&scenario).expect("serializes");
    assert_eq!(json["settings"]["latency_ms"], 5);
}
