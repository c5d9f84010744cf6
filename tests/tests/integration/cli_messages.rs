//! What `mssp` tells an operator, through the built binary against the emulator (real time: the
//! CLI uses the system clock): the app registration's health above `status` and `refresh` — the
//! client secret's expiry ahead, then Microsoft refusing it, as one app-wide problem — and a
//! tenant's failure shown cause first, whole and wrapped, in `status` and `tenants list`.

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::json;
use shared::clock::SystemClock;
use shared::domain::{AlertApi, AuthModel};
use shared::flows::onboarding::NewTenant;
use url::Url;

use crate::app_health::{HOME, with_home};
use crate::cli::{config_text, free_port, mssp};
use crate::fixtures::{APP_ID, APP_SECRET, CONTOSO, NORTHWIND, tid};

/// The lines of `text` from the one starting with `header` up to the next blank line.
fn block<'a>(text: &'a str, header: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| !l.starts_with(header))
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_refresh_show_the_app_registrations_health_and_each_cause_whole() {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let sc = crate::lambda_world::scenario(&Url::parse(&public).expect("url"), true);
    let emu = emulator::start(with_home(sc, "+10d"))
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("mssp.toml"), config_text(&emu, port)).expect("config");
    let data = root.join("mssp-data");
    tests::local::write_app_secret(&data, APP_ID, APP_SECRET).expect("app secret");
    // The operator adds the app's home tenant and the secret's expiry from the Entra portal.
    let app_path = shared::adapters::local::FileAppSecrets::default_path(&data);
    let mut app: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&app_path).expect("app")).expect("json");
    app["tenant_id"] = json!(HOME);
    app["client_secret_expires"] = json!((Utc::now() + Duration::days(10)).to_rfc3339());
    std::fs::write(&app_path, app.to_string()).expect("app");

    // Two tenants onboarded in-process over the same data directory.
    let u = emu.urls().clone();
    let services = tests::local::file_deps(
        &data,
        tests::local::endpoints(&u),
        Url::parse(&public).expect("url"),
        Arc::new(SystemClock),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("http");
    for (id, name, model, api) in [
        (CONTOSO, "Contoso", AuthModel::DelegatedV1, AlertApi::Siem),
        (
            NORTHWIND,
            "Northwind",
            AuthModel::Application,
            AlertApi::Graph,
        ),
    ] {
        let new = NewTenant::new(tid(id), name, model, api);
        tests::local::onboard(&services, &http, new)
            .await
            .expect("onboarded");
    }
    let cfg = |args: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["--config", "mssp.toml"];
        v.extend_from_slice(args);
        v
    };

    // Ten days ahead: the credentials work, and the expiry is announced above the table.
    let status = mssp(root, &cfg(&["status"]), &[]).await;
    assert_eq!(
        status.code,
        Some(0),
        "a 14-day warning needs no action yet: {status:?}"
    );
    let app_block = block(&status.stdout, "App registration:");
    assert!(
        app_block[0].contains(&format!(
            "credentials accepted by Microsoft in tenant {HOME}"
        )),
        "{status:?}"
    );
    let warning = app_block[1..].join(" ");
    assert!(warning.contains("(in 9 days)"), "{status:?}");
    assert!(warning.contains("Certificates & secrets"), "{status:?}");
    let json = mssp(root, &cfg(&["status", "--json"]), &[]).await;
    assert!(json.json().is_array(), "stdout stays the JSON listing");
    assert!(json.stderr.contains("in 9 days"), "{json:?}");

    // A tenant's failure: Contoso's user revoked their sessions. The cause comes first and whole.
    let revoke = format!("tenants/{CONTOSO}/users/admin@contoso.onmicrosoft.com/revoke");
    tests::control(&http, &emu, reqwest::Method::POST, &revoke, None).await;
    let refused = mssp(root, &cfg(&["refresh", CONTOSO, "--force"]), &[]).await;
    assert_eq!(refused.code, Some(3), "{refused:?}");
    for args in [&["status"][..], &["tenants", "list"][..]] {
        let out = mssp(root, &cfg(args), &[]).await;
        let text = out.stdout.clone();
        assert!(!text.contains('…'), "nothing cut: {out:?}");
        let row = text
            .lines()
            .position(|l| l.contains("Contoso"))
            .expect("Contoso's row");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[row].contains("the user's sessions were revoked"),
            "the cause first: {out:?}"
        );
        assert!(text.contains("(AADSTS50173):"), "the code whole: {out:?}");
        let table = block(&text, "TENANT");
        let width = table.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(width <= 200, "the cell wraps: {width} columns in {out:?}");
        assert!(
            table.len() > 3,
            "Contoso's cause takes lines of its own: {out:?}"
        );
    }

    // The secret expires at Microsoft: status and the next refresh cycle say so once, app-wide,
    // while the tenants' access tokens are still valid.
    let expire = format!("apps/{APP_ID}/expire-secret");
    tests::control(&http, &emu, reqwest::Method::POST, &expire, None).await;
    let status = mssp(root, &cfg(&["status"]), &[]).await;
    assert_eq!(status.code, Some(3), "{status:?}");
    assert!(
        status
            .stdout
            .starts_with("App registration: the app's client secret has expired (AADSTS7000222)"),
        "{status:?}"
    );
    let cycle = mssp(root, &cfg(&["refresh"]), &[]).await;
    assert_eq!(cycle.code, Some(3), "{cycle:?}");
    assert!(
        cycle
            .stdout
            .contains("THE APP REGISTRATION IS MISCONFIGURED")
            && cycle.stdout.matches("AADSTS7000222").count() == 1,
        "once, app-wide: {cycle:?}"
    );
    let json = mssp(root, &cfg(&["refresh", "--json"]), &[]).await;
    let v = json.json();
    assert!(
        v["app_misconfigured"]
            .as_str()
            .is_some_and(|p| p.contains("AADSTS7000222")),
        "{v}"
    );
    assert_eq!(v["app"]["credentials"]["state"], "refused", "{v}");
    assert!(
        v["tenants"]
            .as_array()
            .expect("tenants")
            .iter()
            .all(|t| t["result"] == "skipped"),
        "no tenant tried: {v}"
    );
    let northwind = tests::local::registered(&services, NORTHWIND).await;
    assert!(
        northwind.last_refresh.as_ref().is_none_or(|o| o.ok),
        "nothing recorded on the tenant: {northwind:?}"
    );
}
