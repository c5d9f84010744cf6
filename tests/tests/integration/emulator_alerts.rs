//! The emulator's three alert APIs at their wire boundary: Graph `alerts_v2`, Defender for
//! Endpoint `/api/alerts` and the legacy SIEM API (reference §1–§3, §6 items 12–28).
//!
//! Each test starts the emulator in-process with a frozen clock and mints access tokens directly
//! with the emulator's signing key, so these tests depend on the alert APIs only.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use chrono::Duration;
use emulator::faults::{FaultPlanSpec, FaultRule};
use emulator::jwt::{self, Claims};
use emulator::scenario::Api;
use emulator::{RunningEmulator, Scenario};
use reqwest::StatusCode;
use serde_json::{Value, json};

const START: &str = "2026-01-01T00:00:00Z";
const APP: &str = "7f3b2c1a-5d4e-4f60-9a8b-1c2d3e4f5a6b";
const X: &str = "11111111-1111-4111-8111-111111111111";
const Y: &str = "22222222-2222-4222-8222-222222222222";
const GRAPH_ROLE: &[&str] = &["SecurityAlert.Read.All"];
const MDE_ROLE: &[&str] = &["Alert.Read.All"];

/// A tenant with `count` generated alerts, one created every `every`, visible at once.
fn tenant(id: &str, count: usize, every: &str) -> Value {
    json!({
        "id": id,
        "siem_apps": [APP],
        "generate": [{ "count": count, "start": format!("-{}", minutes(count, every)), "every": every, "seed": id.len() + count }]
    })
}

/// `count × every` as a scenario duration, so a stream ends just before the clock start.
fn minutes(count: usize, every: &str) -> String {
    let each: usize = every.trim_end_matches('m').parse().unwrap_or(1);
    format!("{}m", count * each)
}

async fn start(tenants: Vec<Value>, settings: Value) -> Result<RunningEmulator> {
    let scenario: Scenario = serde_json::from_value(json!({
        "clock": { "start": START, "frozen": true },
        "settings": settings,
        "tenants": tenants,
    }))?;
    emulator::start(scenario).await
}

/// An emulator serving tenant `X` with `count` alerts, one a minute, and default settings.
async fn start_x(count: usize) -> Result<RunningEmulator> {
    start(vec![tenant(X, count, "1m")], json!({})).await
}

/// [`start_x`] and a token of `X` for `api` with the role an app needs to read it.
async fn start_x_with_token(count: usize, api: Api) -> Result<(RunningEmulator, String)> {
    let emu = start_x(count).await?;
    let role = match api {
        Api::Graph => GRAPH_ROLE,
        Api::Mde => MDE_ROLE,
        Api::Siem => &[],
    };
    let tok = token(&emu, X, api, role);
    Ok((emu, tok))
}

/// An app-only token of `APP` for `tenant` and `api`, valid for an hour from the emulated now.
fn token(emu: &RunningEmulator, tenant: &str, api: Api, roles: &[&str]) -> String {
    let now = emu.state().now().timestamp();
    sign(
        emu,
        Claims {
            aud: api.audiences()[0].to_string(),
            iss: format!("https://sts.windows.net/{tenant}/"),
            tid: tenant.to_string(),
            appid: Some(APP.to_string()),
            roles: Some(roles.iter().map(|r| r.to_string()).collect()),
            iat: now,
            nbf: now,
            exp: now + 3600,
            ver: "1.0".into(),
            oid: "00000000-0000-0000-0000-0000000000aa".into(),
            sub: "00000000-0000-0000-0000-0000000000aa".into(),
            uti: "test".into(),
            ..Claims::default()
        },
    )
}

fn sign(emu: &RunningEmulator, claims: Claims) -> String {
    jwt::sign(&emu.state().signing_key, &claims)
}

fn graph_url(emu: &RunningEmulator) -> String {
    format!("{}/v1.0/security/alerts_v2", emu.urls().graph)
}

fn mde_url(emu: &RunningEmulator) -> String {
    format!("{}/api/alerts", emu.urls().mde)
}

fn siem_url(emu: &RunningEmulator) -> String {
    format!("{}/api/alerts", emu.urls().siem)
}

async fn get(url: &str, token: &str, query: &[(&str, &str)]) -> Result<reqwest::Response> {
    Ok(reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .query(query)
        .send()
        .await?)
}

async fn get_json(url: &str, token: &str, query: &[(&str, &str)]) -> Result<(StatusCode, Value)> {
    let r = get(url, token, query).await?;
    let status = r.status();
    let text = r.text().await?;
    let body = serde_json::from_str(&text).with_context(|| format!("{status}: {text}"))?;
    Ok((status, body))
}

/// Spends a budget of `budget` requests (each must answer 200), then answers the next request.
async fn past_the_budget(url: &str, token: &str, budget: usize) -> Result<reqwest::Response> {
    for i in 0..budget {
        let r = get(url, token, &[("$top", "1")]).await?;
        assert_eq!(r.status(), StatusCode::OK, "request {}", i + 1);
    }
    get(url, token, &[("$top", "1")]).await
}

/// The status and `error.code` of an answer.
async fn error_of(url: &str, token: &str, query: &[(&str, &str)]) -> Result<(StatusCode, Value)> {
    let (status, body) = get_json(url, token, query).await?;
    Ok((status, body["error"]["code"].clone()))
}

fn ids(page: &Value) -> Vec<String> {
    page["value"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|a| a["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn set_faults(emu: &RunningEmulator, rules: Value) -> Result<()> {
    let rules: Vec<FaultRule> = serde_json::from_value(rules)?;
    emu.state()
        .world()
        .faults
        .replace(FaultPlanSpec { seed: 1, rules });
    Ok(())
}

/// Follows `@odata.nextLink` from `first` to the end; the ids of every page, in order.
async fn drain(first: &str, token: &str, query: &[(&str, &str)]) -> Result<(Vec<String>, usize)> {
    let (status, mut page) = get_json(first, token, query).await?;
    ensure!(status == StatusCode::OK, "{status}: {page}");
    let mut all = ids(&page);
    let mut pages = 1;
    while let Some(next) = page["@odata.nextLink"].as_str().map(str::to_string) {
        let (status, p) = get_json(&next, token, &[]).await?;
        ensure!(status == StatusCode::OK, "{status} on {next}: {p}");
        all.extend(ids(&p));
        page = p;
        pages += 1;
    }
    Ok((all, pages))
}

#[tokio::test]
async fn graph_next_links_drain_every_alert_exactly_once() -> Result<()> {
    let (emu, tok) = start_x_with_token(2500, Api::Graph).await?;

    let (all, pages) = drain(&graph_url(&emu), &tok, &[]).await?;

    assert_eq!(pages, 3, "1,000 per page by default");
    assert_eq!(all.len(), 2500);
    assert_eq!(
        all.iter().collect::<BTreeSet<_>>().len(),
        2500,
        "no duplicates"
    );

    // The links carry the filter and pass offsets far beyond the $skip limit of 500.
    let since = "createdDateTime ge 2025-12-31T00:00:00Z";
    let (filtered, pages) = drain(
        &graph_url(&emu),
        &tok,
        &[("$filter", since), ("$top", "300")],
    )
    .await?;
    let expected = 24 * 60;
    assert_eq!(filtered.len(), expected);
    assert_eq!(filtered.iter().collect::<BTreeSet<_>>().len(), expected);
    assert_eq!(pages, expected.div_ceil(300));
    assert_eq!(filtered[..], all[..expected], "newest first, same order");
    Ok(())
}

#[tokio::test]
async fn graph_next_link_switches_suppress_the_link() -> Result<()> {
    let mut off = tenant(X, 30, "1m");
    off["switches"] = json!({ "graph_next_link": false });
    let mut capped = tenant(Y, 30, "1m");
    capped["switches"] = json!({ "graph_next_link_max_offset": 20 });
    let emu = start(vec![off, capped], json!({})).await?;

    let (_, page) = get_json(
        &graph_url(&emu),
        &token(&emu, X, Api::Graph, GRAPH_ROLE),
        &[("$top", "10")],
    )
    .await?;
    assert_eq!(ids(&page).len(), 10);
    assert!(page.get("@odata.nextLink").is_none(), "{page}");

    let (seen, pages) = drain(
        &graph_url(&emu),
        &token(&emu, Y, Api::Graph, GRAPH_ROLE),
        &[("$top", "10")],
    )
    .await?;
    assert_eq!((seen.len(), pages), (30, 3), "links up to offset 20 only");
    let (seen, pages) = drain(
        &graph_url(&emu),
        &token(&emu, Y, Api::Graph, GRAPH_ROLE),
        &[("$top", "5")],
    )
    .await?;
    assert_eq!(
        (seen.len(), pages),
        (25, 5),
        "the link to offset 25 is withheld"
    );
    Ok(())
}

#[tokio::test]
async fn graph_accepts_skip_500_and_refuses_skip_501() -> Result<()> {
    let (emu, tok) = start_x_with_token(520, Api::Graph).await?;

    let (status, page) =
        get_json(&graph_url(&emu), &tok, &[("$top", "10"), ("$skip", "500")]).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&page).len(), 10);

    let refused = error_of(&graph_url(&emu), &tok, &[("$skip", "501")]).await?;
    assert_eq!(refused, (StatusCode::BAD_REQUEST, json!("BadRequest")));
    Ok(())
}

#[tokio::test]
async fn graph_clamps_top_5000_to_1000() -> Result<()> {
    let (emu, tok) = start_x_with_token(1200, Api::Graph).await?;

    let (status, page) = get_json(&graph_url(&emu), &tok, &[("$top", "5000")]).await?;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&page).len(), 1000);
    assert!(page["@odata.nextLink"].is_string());
    Ok(())
}

#[tokio::test]
async fn graph_refuses_a_filter_on_investigation_state() -> Result<()> {
    let (emu, tok) = start_x_with_token(3, Api::Graph).await?;

    let (status, body) = get_json(
        &graph_url(&emu),
        &tok,
        &[("$filter", "investigationState eq 'running'")],
    )
    .await?;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "BadRequest");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Invalid filter clause:"), "{message}");
    Ok(())
}

#[tokio::test]
async fn the_151st_graph_request_in_a_minute_is_throttled_with_a_fractional_retry_after()
-> Result<()> {
    let mut quiet = tenant(Y, 3, "1m");
    quiet["switches"] = json!({ "graph_retry_after": false });
    let emu = start(vec![tenant(X, 3, "1m"), quiet], json!({})).await?;

    for tenant_id in [X, Y] {
        let tok = token(&emu, tenant_id, Api::Graph, GRAPH_ROLE);
        let r = past_the_budget(&graph_url(&emu), &tok, 150).await?;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let body: Value = r.json().await?;
        assert_eq!(body["error"]["code"], "TooManyRequests");
        assert_eq!(body["error"]["message"], "Please retry again later.");
        assert_eq!(body["error"]["innerError"]["code"], "429");
        assert_eq!(body["error"]["innerError"]["status"], "429");
        assert_eq!(body["error"]["innerError"]["message"], "Please retry after");
        if tenant_id == X {
            let value = retry_after.context("Retry-After present")?;
            let (whole, frac) = value.split_once('.').context("fractional")?;
            assert!(whole.parse::<u32>()? <= 60 && frac.len() == 3, "{value}");
        } else {
            assert_eq!(retry_after, None, "the switch removes Retry-After");
        }
    }
    Ok(())
}

#[tokio::test]
async fn mde_gives_a_next_link_only_without_top() -> Result<()> {
    let emu = start(vec![tenant(X, 12, "1m")], json!({ "mde_max_page": 5 })).await?;
    let tok = token(&emu, X, Api::Mde, MDE_ROLE);

    let (status, page) = get_json(&mde_url(&emu), &tok, &[("$top", "5")]).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&page).len(), 5);
    assert!(page.get("@odata.nextLink").is_none(), "{page}");

    let refused = error_of(&mde_url(&emu), &tok, &[("$top", "6")]).await?;
    assert_eq!(refused, (StatusCode::BAD_REQUEST, json!("ODataError")));

    let (all, pages) = drain(&mde_url(&emu), &tok, &[]).await?;
    assert_eq!((all.len(), pages), (12, 3));
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 12);
    Ok(())
}

#[tokio::test]
async fn the_101st_mde_request_in_a_minute_is_throttled_with_whole_seconds() -> Result<()> {
    let (emu, tok) = start_x_with_token(3, Api::Mde).await?;

    let r = past_the_budget(&mde_url(&emu), &tok, 100).await?;

    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u32 = r
        .headers()
        .get("retry-after")
        .context("Retry-After present")?
        .to_str()?
        .parse()?;
    assert!((1..=60).contains(&retry_after));
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], "TooManyRequests");
    Ok(())
}

#[tokio::test]
async fn siem_without_parameters_returns_exactly_the_last_two_hours() -> Result<()> {
    // One alert every 10 minutes from -240m to 0m: 13 of them at -120m..=0m.
    let emu = start(
        vec![json!({
            "id": X, "siem_apps": [APP],
            "generate": [{ "count": 25, "start": "-240m", "every": "10m" }]
        })],
        json!({}),
    )
    .await?;
    let tok = token(&emu, X, Api::Siem, &[]);

    let (status, body) = get_json(&siem_url(&emu), &tok, &[]).await?;

    assert_eq!(status, StatusCode::OK);
    let records = body.as_array().context("a bare array")?;
    let times: Vec<&str> = records
        .iter()
        .filter_map(|r| r["LastProcessedTimeUtc"].as_str())
        .collect();
    assert_eq!(times.len(), 13);
    assert_eq!(times.first(), Some(&"2025-12-31T22:00:00.0000000Z"));
    assert_eq!(times.last(), Some(&"2026-01-01T00:00:00.0000000Z"));
    assert!(times.windows(2).all(|w| w[0] < w[1]), "oldest first");

    let (_, limited) = get_json(&siem_url(&emu), &tok, &[("ago", "PT1H"), ("limit", "2")]).await?;
    let last_two: Vec<&str> = limited
        .as_array()
        .context("array")?
        .iter()
        .filter_map(|r| r["LastProcessedTimeUtc"].as_str())
        .collect();
    assert_eq!(
        last_two,
        times[11..].to_vec(),
        "limit keeps the most recent"
    );
    Ok(())
}

#[tokio::test]
async fn siem_serves_each_version_as_one_record_per_ioc_and_the_truth_lists_their_full_ids()
-> Result<()> {
    let emu = start(
        vec![json!({
            "id": X, "siem_apps": [APP],
            "generate": [{ "count": 30, "start": "-60m", "every": "2m", "siem_parts_max": 3,
                           "update_fraction": 0.5, "update_after": "10m", "seed": 5 }]
        })],
        json!({}),
    )
    .await?;
    let (_, siem) = get_json(&siem_url(&emu), &token(&emu, X, Api::Siem, &[]), &[]).await?;
    let (_, graph) = get_json(
        &graph_url(&emu),
        &token(&emu, X, Api::Graph, GRAPH_ROLE),
        &[],
    )
    .await?;

    let records = siem.as_array().context("a bare array")?;
    let alerts: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r["AlertId"].as_str())
        .collect();
    assert_eq!(alerts.len(), 30);
    assert!(records.len() > 40, "most alerts have several parts");
    assert_eq!(ids(&graph).len(), 30, "Graph serves one alert per alert");
    let served: BTreeSet<(String, String)> = records
        .iter()
        .map(|r| {
            let full_id = r["FullId"].as_str().unwrap_or_default().to_string();
            let ioc = r["IocUniqueId"].as_str().unwrap_or_default();
            assert_eq!(
                full_id,
                format!("{}:{ioc}", r["AlertId"].as_str().unwrap_or_default())
            );
            (
                full_id,
                r["LastProcessedTimeUtc"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(served.len(), records.len(), "each (FullId, version) once");

    let truth: Value = reqwest::get(format!("{}/truth/{X}", emu.urls().control))
        .await?
        .json()
        .await?;
    let versions = truth["versions"].as_array().context("versions")?;
    let expected: BTreeSet<(String, String)> = versions
        .iter()
        .filter(|v| v["latest"] == true)
        .flat_map(|v| {
            let version = v["version"].as_str().unwrap_or_default().to_string();
            v["siem_full_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .map(move |f| (f.to_string(), version.clone()))
        })
        .collect();
    assert_eq!(served, expected);
    assert!(versions.iter().all(|v| v["late"] == false));
    Ok(())
}

#[tokio::test]
async fn another_regions_siem_exporter_answers_an_empty_array_and_observes_nothing() -> Result<()> {
    let mut eu = tenant(X, 5, "1m");
    eu["region"] = json!("eu");
    let emu = start(vec![eu, tenant(Y, 4, "1m")], json!({})).await?;
    let urls = emu.urls();
    let records = |body: &Value| body.as_array().map_or(0, Vec::len);
    let read = |base: &url::Url, tenant: &str| {
        let url = format!("{base}/api/alerts");
        let tok = token(&emu, tenant, Api::Siem, &[]);
        async move { get_json(&url, &tok, &[]).await }
    };
    let observed = |tenant: &str| -> Result<usize> {
        let state = emu.state();
        let truth = state.world().truth(tenant, state.now()).context("tenant")?;
        Ok(truth.versions.iter().filter(|v| v.observed).count())
    };

    for wrong in [&urls.siem_us, &urls.siem_uk] {
        let (status, body) = read(wrong, X).await?;
        assert_eq!((status, body), (StatusCode::OK, json!([])), "{wrong}");
    }
    let (status, body) = read(&urls.siem_eu, Y).await?;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!([])),
        "Y is in the US"
    );
    assert_eq!(
        (observed(X)?, observed(Y)?),
        (0, 0),
        "nothing served, nothing observed"
    );
    assert_eq!(emu.state().world().requests.get("siem"), Some(&3));

    let (_, own) = read(&urls.siem_eu, X).await?;
    assert_eq!(records(&own), 5);
    let (_, default) = read(&urls.siem, X).await?;
    assert_eq!(default, own, "/siem answers as the tenant's own region");
    let (_, us) = read(urls.siem_of(emulator::scenario::Region::Us), Y).await?;
    assert_eq!(records(&us), 4);
    assert_eq!((observed(X)?, observed(Y)?), (5, 4));

    let forged = token(&emu, X, Api::Graph, GRAPH_ROLE);
    let r = get(&format!("{}/api/alerts", urls.siem_uk), &forged, &[]).await?;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "authenticated as usual"
    );
    Ok(())
}

#[tokio::test]
async fn siem_switched_off_answers_404_with_an_empty_body() -> Result<()> {
    let mut off = tenant(X, 3, "1m");
    off["switches"] = json!({ "siem_enabled": false });
    let emu = start(vec![off], json!({})).await?;

    let r = get(&siem_url(&emu), &token(&emu, X, Api::Siem, &[]), &[]).await?;

    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.text().await?, "");
    Ok(())
}

#[tokio::test]
async fn a_partial_fault_answers_206_with_the_warning_header() -> Result<()> {
    let emu = start_x(10).await?;
    set_faults(
        &emu,
        json!([{ "api": "graph", "kind": "partial", "count": 1 }]),
    )?;
    let tok = token(&emu, X, Api::Graph, GRAPH_ROLE);

    let r = get(&graph_url(&emu), &tok, &[("$top", "4")]).await?;

    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()
            .get("warning")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("199 - \"Microsoft/Microsoft Defender XDR/504/10000\"")
    );
    let page: Value = r.json().await?;
    assert_eq!(ids(&page).len(), 2, "half the page");
    assert!(page.get("@odata.nextLink").is_none());
    Ok(())
}

#[tokio::test]
async fn a_token_for_one_tenant_sees_none_of_another_tenants_alerts() -> Result<()> {
    let emu = start(vec![tenant(X, 20, "1m"), tenant(Y, 30, "1m")], json!({})).await?;

    let (_, graph_x) = get_json(
        &graph_url(&emu),
        &token(&emu, X, Api::Graph, GRAPH_ROLE),
        &[],
    )
    .await?;
    let (_, graph_y) = get_json(
        &graph_url(&emu),
        &token(&emu, Y, Api::Graph, GRAPH_ROLE),
        &[],
    )
    .await?;
    let (_, mde_x) = get_json(&mde_url(&emu), &token(&emu, X, Api::Mde, MDE_ROLE), &[]).await?;

    let x: BTreeSet<String> = ids(&graph_x).into_iter().collect();
    let y: BTreeSet<String> = ids(&graph_y).into_iter().collect();
    assert_eq!((x.len(), y.len()), (20, 30));
    assert!(x.is_disjoint(&y));
    let graph_alerts = graph_x["value"].as_array().context("array")?;
    assert!(graph_alerts.iter().all(|a| a["tenantId"] == X));
    let mde_alerts = mde_x["value"].as_array().context("array")?;
    assert_eq!(mde_alerts.len(), 20);
    assert!(mde_alerts.iter().all(|a| a["aadTenantId"] == X));
    Ok(())
}

#[tokio::test]
async fn a_token_without_the_permission_gets_403_with_the_documented_body() -> Result<()> {
    let emu = start_x(3).await?;

    let (status, body) = get_json(
        &graph_url(&emu),
        &token(&emu, X, Api::Graph, &["User.Read.All"]),
        &[],
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(
        body["error"]["message"],
        "Missing application roles. API required roles: SecurityAlert.Read.All,SecurityAlert.ReadWrite.All, application roles: User.Read.All."
    );
    assert!(body["error"]["innerError"]["request-id"].is_string());

    let refused = error_of(&mde_url(&emu), &token(&emu, X, Api::Mde, &[]), &[]).await?;
    assert_eq!(refused, (StatusCode::FORBIDDEN, json!("Forbidden")));
    Ok(())
}

#[tokio::test]
async fn an_expired_token_gets_401() -> Result<()> {
    let emu = start_x(3).await?;
    let now = emu.state().now().timestamp();
    let expired = sign(
        &emu,
        Claims {
            aud: "https://graph.microsoft.com".into(),
            tid: X.into(),
            appid: Some(APP.into()),
            roles: Some(vec!["SecurityAlert.Read.All".into()]),
            nbf: now - 3600,
            exp: now,
            ..Claims::default()
        },
    );

    let r = get(&graph_url(&emu), &expired, &[]).await?;

    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        body["error"]["message"],
        "Access token has expired or is not yet valid."
    );

    let graph_token_sent_to_mde = token(&emu, X, Api::Graph, MDE_ROLE);
    let r = get(&mde_url(&emu), &graph_token_sent_to_mde, &[]).await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "wrong audience");
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], "Unauthorized");
    Ok(())
}

#[tokio::test]
async fn an_alert_appears_only_after_its_delay_and_the_ground_truth_follows_its_versions()
-> Result<()> {
    let emu = start(
        vec![json!({
            "id": X,
            "alerts": [{
                "id": "late-alert", "created": "+0s", "visible_after": "5m",
                "updates": [{ "at": "+10m", "status": "inProgress" }]
            }]
        })],
        json!({}),
    )
    .await?;
    let state = emu.state();
    let query = |emu: &RunningEmulator| {
        let tok = token(emu, X, Api::Graph, GRAPH_ROLE);
        let url = graph_url(emu);
        async move { get_json(&url, &tok, &[]).await }
    };
    let truth = || -> Result<Vec<(String, bool, bool)>> {
        let t = state.world().truth(X, state.now()).context("tenant")?;
        Ok(t.versions
            .into_iter()
            .map(|v| (v.version, v.latest, v.observed))
            .collect())
    };

    let (_, before) = query(&emu).await?;
    assert!(ids(&before).is_empty(), "not visible before its delay");
    assert!(truth()?.is_empty());

    state.clock.advance(Duration::minutes(5));
    let (_, after) = query(&emu).await?;
    assert_eq!(ids(&after), vec!["late-alert"]);
    assert_eq!(after["value"][0]["status"], "new");
    let v0 = "2026-01-01T00:00:00.0000000Z".to_string();
    assert_eq!(truth()?, vec![(v0.clone(), true, true)]);

    state.clock.advance(Duration::minutes(10));
    let v1 = "2026-01-01T00:10:00.0000000Z".to_string();
    assert_eq!(
        truth()?,
        vec![(v0.clone(), false, true), (v1.clone(), true, false)],
        "the update is latest but not yet observed"
    );
    let (_, updated) = query(&emu).await?;
    assert_eq!(updated["value"][0]["status"], "inProgress");
    assert_eq!(truth()?, vec![(v0, false, true), (v1, true, true)]);
    Ok(())
}

#[tokio::test]
async fn malformed_and_dropped_answers_fail_to_parse_as_json() -> Result<()> {
    let (emu, tok) = start_x_with_token(50, Api::Graph).await?;

    for kind in ["malformed", "drop"] {
        set_faults(&emu, json!([{ "api": "graph", "kind": kind, "count": 1 }]))?;
        let parsed = async {
            reqwest::Client::new()
                .get(graph_url(&emu))
                .bearer_auth(&tok)
                .send()
                .await?
                .json::<Value>()
                .await
        }
        .await;
        assert!(parsed.is_err(), "{kind} parsed: {parsed:?}");
    }
    let (status, page) = get_json(&graph_url(&emu), &tok, &[]).await?;
    assert_eq!(
        (status, ids(&page).len()),
        (StatusCode::OK, 50),
        "later answers are whole"
    );
    Ok(())
}
