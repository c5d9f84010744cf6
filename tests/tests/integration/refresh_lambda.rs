//! The `token-refresh` binary through the Lambda Runtime API: the scheduled event (the real
//! EventBridge fixture) refreshes every active tenant and persists the rotated tokens in Secrets
//! Manager; a direct invoke refreshes one tenant; unknown payloads and an expired app secret are
//! reported with stable error types and in the summary.

use chrono::Utc;
use serde_json::{Value, json};
use shared::domain::{AlertApi, AuthModel};

use crate::fixtures::{APP_ID, APP_SECRET, CONTOSO, FABRIKAM, NORTHWIND, WOODGROVE};
use crate::lambda_world::FnWorld;

const SCHEDULED: &str = include_str!("../../fixtures/events/eventbridge-scheduled-event.json");

fn scheduled() -> Value {
    serde_json::from_str(SCHEDULED).expect("fixture")
}

/// Three active tenants (v1, v2, application) and a pending one.
async fn world() -> FnWorld {
    let w = FnWorld::start(true).await;
    w.onboard_three().await;
    w.register(
        WOODGROVE,
        "Woodgrove",
        AuthModel::DelegatedV1,
        AlertApi::Siem,
    )
    .await;
    w
}

/// Makes the stored access tokens of `ids` expire in a minute, as they do between two runs.
async fn near_expiry(w: &FnWorld, ids: &[&str]) {
    for id in ids {
        let mut t = w.tokens(id).await.expect("tokens");
        t.expires_at = Some(Utc::now() + chrono::Duration::minutes(1));
        w.services.tokens.put(&t).await.expect("put");
    }
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("id").to_owned())
        .collect();
    out.sort();
    out
}

fn secrets_of(t: &shared::domain::TenantTokens) -> Vec<String> {
    let mut out = vec![];
    if let Some(a) = &t.access_token {
        out.push(a.expose_secret().clone());
    }
    if let Some(r) = &t.refresh_token {
        out.push(r.expose_secret().clone());
    }
    out
}

#[tokio::test]
async fn a_scheduled_event_refreshes_every_active_tenant_and_persists_the_rotated_tokens() {
    let w = world().await;
    let all = [CONTOSO, FABRIKAM, NORTHWIND];
    near_expiry(&w, &all).await;
    let mut before = Vec::new();
    for id in all {
        before.push(w.tokens(id).await.expect("tokens"));
    }
    let f = w.spawn("token-refresh").await;

    let summary = f.invoke(&scheduled()).await.expect("summary");

    assert_eq!(ids(&summary["refreshed"]), all.to_vec(), "{summary}");
    for empty in ["fresh", "reconsent", "failed", "skipped"] {
        assert_eq!(summary[empty], json!([]), "{empty}: {summary}");
    }
    assert_eq!(summary["app_misconfigured"], Value::Null);
    let mut leaked = vec![APP_SECRET.to_owned()];
    for (id, old) in all.iter().zip(&before) {
        let new = w.tokens(id).await.expect("tokens");
        leaked.extend(secrets_of(old));
        leaked.extend(secrets_of(&new));
        if *id == NORTHWIND {
            // An application tenant's token is minted and kept in memory: its secret, read at
            // no refresh, is not written either.
            assert_eq!(
                new.access_token.as_ref().map(|t| t.expose_secret()),
                old.access_token.as_ref().map(|t| t.expose_secret()),
                "{id}: nothing written"
            );
            continue;
        }
        assert_ne!(
            new.access_token.as_ref().map(|t| t.expose_secret()),
            old.access_token.as_ref().map(|t| t.expose_secret()),
            "{id}: a new access token"
        );
        assert!(new.expires_at > old.expires_at);
        if let Some(old_rt) = &old.refresh_token {
            let new_rt = new.refresh_token.as_ref().expect("refresh token");
            assert_ne!(
                new_rt.expose_secret(),
                old_rt.expose_secret(),
                "{id}: the rotated refresh token is persisted"
            );
        }
    }
    // A second run finds everything fresh.
    let again = f.invoke(&scheduled()).await.expect("summary");
    assert_eq!(ids(&again["fresh"]), all.to_vec(), "{again}");

    let logs = f.logs();
    assert!(logs.contains("refresh run finished"), "{logs}");
    assert!(
        logs.lines().all(|l| l.starts_with('{')),
        "JSON logs in Lambda"
    );
    for s in &leaked {
        assert!(!logs.contains(s.as_str()), "the logs leak a secret");
        assert!(!summary.to_string().contains(s.as_str()));
    }
}

#[tokio::test]
async fn a_direct_invoke_refreshes_one_tenant_forced_by_default() {
    let w = world().await;
    let f = w.spawn("token-refresh").await;
    let before = w.tokens(CONTOSO).await.expect("tokens");

    let r = f
        .invoke(&json!({"tenant_id": CONTOSO}))
        .await
        .expect("refreshed");
    assert_eq!(r, json!({"tenant_id": CONTOSO, "outcome": "refreshed"}));
    let after = w.tokens(CONTOSO).await.expect("tokens");
    assert_ne!(
        after.refresh_token.expect("rt").into_exposed(),
        before.refresh_token.expect("rt").into_exposed()
    );
    // An application tenant's token lives in the process: this one has none yet, and mints one
    // (without reading Secrets Manager); the next call finds it fresh.
    let r = f
        .invoke(&json!({"tenant_id": NORTHWIND, "force": false}))
        .await
        .expect("minted");
    assert_eq!(r, json!({"tenant_id": NORTHWIND, "outcome": "refreshed"}));
    let r = f
        .invoke(&json!({"tenant_id": NORTHWIND, "force": false}))
        .await
        .expect("fresh");
    assert_eq!(r, json!({"tenant_id": NORTHWIND, "outcome": "fresh"}));

    let e = f
        .invoke(&json!({"tenant_id": "99999999-9999-4999-8999-999999999999"}))
        .await
        .expect_err("unknown");
    assert_eq!(e.error_type, "UnknownTenant", "{e}");
    let e = f
        .invoke(&json!({"tenant_id": WOODGROVE}))
        .await
        .expect_err("pending");
    assert_eq!(e.error_type, "TenantNotActive", "{e}");
    assert!(e.error_message.contains("pending"), "{e}");
}

#[tokio::test]
async fn an_unknown_payload_is_an_invalid_event_listing_the_accepted_shapes() {
    let w = FnWorld::start(true).await;
    let f = w.spawn("token-refresh").await;
    for bad in [
        json!({"action": "refresh"}),
        json!({"tenant_id": "contoso"}),
        json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}),
        json!([1, 2]),
        json!(null),
    ] {
        let e = f.invoke(&bad).await.expect_err("refused");
        assert_eq!(e.error_type, "InvalidEvent", "{bad}: {e}");
        assert!(
            e.error_message.contains("Scheduled Event") && e.error_message.contains("tenant_id"),
            "{e}"
        );
    }
    // The process is still serving.
    let r = f.invoke(&scheduled()).await.expect("empty run");
    assert_eq!(r["refreshed"], json!([]));
}

#[tokio::test]
async fn an_expired_app_secret_is_reported_as_app_misconfigured() {
    let w = world().await;
    let all = [CONTOSO, FABRIKAM, NORTHWIND];
    near_expiry(&w, &all).await;
    let expire = tests::endpoint(
        &w.env.emulator.urls().control,
        &format!("apps/{APP_ID}/expire-secret"),
    )
    .expect("url");
    let r = w.env.http.post(expire).send().await.expect("expire");
    assert!(r.status().is_success());
    let f = w.spawn("token-refresh").await;

    let summary = f
        .invoke(&scheduled())
        .await
        .expect("a summary, not an error");

    let reason = summary["app_misconfigured"]
        .as_str()
        .expect("app_misconfigured");
    assert!(reason.contains("7000222"), "{reason}");
    assert_eq!(summary["refreshed"], json!([]));
    let mut touched = ids(&summary["skipped"]);
    for f in summary["failed"].as_array().expect("failed") {
        touched.push(f["tenant_id"].as_str().expect("id").to_owned());
    }
    touched.sort();
    assert_eq!(touched, all.to_vec(), "{summary}");
    assert!(!summary.to_string().contains(APP_SECRET));

    let e = f
        .invoke(&json!({"tenant_id": CONTOSO}))
        .await
        .expect_err("misconfigured");
    assert_eq!(e.error_type, "AppMisconfigured", "{e}");
    let logs = f.logs();
    assert!(logs.contains("APP REGISTRATION MISCONFIGURED"), "{logs}");
    assert!(!logs.contains(APP_SECRET));
}
