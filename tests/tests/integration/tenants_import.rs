//! Fleet onboarding: adoption of application tenants whose admin already granted the app's
//! roles (the flow, in-process against the emulator), and `mssp tenants import` / `tenants add`
//! as an operator runs them, on the local data directory and on the AWS deployment (moto).

use emulator::RunningEmulator;
use emulator::scenario::Api;
use serde_json::Value;

use shared::domain::{AlertApi, AuthModel, ConsentMethod, TenantStatus};
use shared::flows::adoption::{Adoption, Onboarding, PendingReason, onboard};
use shared::flows::onboarding::NewTenant;
use url::Url;

use crate::cli::{config_text, configured, configured_ok, free_port, link_in, mssp_ok, snapshot};
use crate::fixtures::{APP_ID, APP_SECRET, CONTOSO, FABRIKAM, NORTHWIND, WOODGROVE, World, tid};

/// The app's roles, as an admin grants them in the Entra admin center before onboarding.
fn grant(emu: &RunningEmulator, tenant: &str, api: Api, roles: &[&str]) {
    let mut world = emu.state().world();
    let t = world.tenants.get_mut(tenant).expect("tenant");
    t.consents
        .entry(APP_ID.to_string())
        .or_default()
        .app_roles
        .insert(api, roles.iter().map(|r| r.to_string()).collect());
}

/// Tokens minted for `tenant` name `other` in `tid`.
fn issue_tid(emu: &RunningEmulator, tenant: &str, other: &str) {
    let mut world = emu.state().world();
    world
        .tenants
        .get_mut(tenant)
        .expect("tenant")
        .switches
        .issue_tid = Some(other.to_string());
}

/// Requests to the authorize and admin-consent endpoints (a click) and the token endpoint.
async fn identity_requests(emu: &RunningEmulator, tenant: &str) -> (u64, u64) {
    let stats: Value = reqwest::get(format!("{}/stats/tenants", emu.urls().control))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    let t = &stats["tenants"][tenant];
    (
        t["authorize"].as_u64().unwrap_or(0),
        t["token"].as_u64().unwrap_or(0),
    )
}

fn app_tenant(id: &str, api: AlertApi) -> NewTenant {
    NewTenant::new(
        tid(id),
        format!("Customer {}", &id[..4]),
        AuthModel::Application,
        api,
    )
}

/// `mssp tenants add` of an application tenant: adopted, or registered pending consent.
async fn onboard_app(w: &World, id: &str, api: AlertApi) -> Onboarding {
    onboard(&w.services, app_tenant(id, api))
        .await
        .expect("onboarded")
}

#[tokio::test]
async fn a_tenant_whose_admin_granted_the_roles_is_adopted_without_a_click_and_fetched() {
    let w = World::start().await;
    grant(&w.emu, NORTHWIND, Api::Graph, &["SecurityAlert.Read.All"]);

    let on = onboard_app(&w, NORTHWIND, AlertApi::Graph).await;
    assert!(matches!(on.adoption, Adoption::Adopted), "{on:?}");
    assert!(on.created);
    let t = w.tenant(NORTHWIND).await;
    assert_eq!(t.status, TenantStatus::Active);
    let c = t.consent.expect("provenance");
    assert_eq!(c.method, ConsentMethod::Adopted);
    assert_eq!(c.consented_at, w.clock_now(), "when it was verified");
    assert_eq!(c.granted, vec!["SecurityAlert.Read.All".to_string()]);
    let verified = c.verified.expect("what was verified");
    assert!(
        verified.contains(NORTHWIND) && verified.contains("SecurityAlert.Read.All"),
        "{verified}"
    );
    assert!(
        w.has_tokens(NORTHWIND).await,
        "the verified token is stored as a consent's would be"
    );
    assert_eq!(
        identity_requests(&w.emu, NORTHWIND).await,
        (0, 1),
        "no consent page was opened: one token request"
    );

    let report = w
        .fetch(NORTHWIND)
        .await
        .expect("an adopted tenant is fetched");
    assert!(report.delivered > 0, "{report:?}");
    w.assert_exactly_once(NORTHWIND);
}

#[tokio::test]
async fn a_tenant_without_the_roles_stays_pending_with_a_link_naming_the_missing_role() {
    let w = World::start().await;
    // The admin granted the Defender for Endpoint role, not Graph's.
    grant(&w.emu, WOODGROVE, Api::Mde, &["Alert.Read.All"]);

    let on = onboard_app(&w, WOODGROVE, AlertApi::Graph).await;
    let Adoption::Pending {
        consent_link,
        reason,
    } = &on.adoption
    else {
        panic!("pending: {on:?}");
    };
    assert!(
        matches!(reason, PendingReason::MissingRole { needed, .. } if *needed == "SecurityAlert.Read.All"),
        "{reason:?}"
    );
    assert!(
        reason.to_string().contains("SecurityAlert.Read.All"),
        "{reason}"
    );
    assert!(consent_link.as_str().contains("/consent/start?link="));
    assert_eq!(on.tenant.status, TenantStatus::PendingConsent);
    assert!(on.tenant.consent.is_none());
    assert!(
        w.services
            .tokens
            .get(&tid(WOODGROVE))
            .await
            .expect("token store")
            .is_none()
    );

    // Nothing granted at all: pending too, the app not granted in the tenant.
    let on = onboard_app(&w, CONTOSO, AlertApi::Mde).await;
    assert!(
        matches!(
            &on.adoption,
            Adoption::Pending {
                reason: PendingReason::NotGranted { .. },
                ..
            }
        ),
        "{on:?}"
    );

    // Once the admin grants Graph's role, onboarding again adopts it.
    grant(&w.emu, WOODGROVE, Api::Graph, &["SecurityAlert.Read.All"]);
    let on = onboard_app(&w, WOODGROVE, AlertApi::Graph).await;
    assert!(matches!(on.adoption, Adoption::Adopted), "{on:?}");
    assert!(!on.created);
}

#[tokio::test]
async fn a_token_issued_for_another_tenant_is_never_adopted() {
    let w = World::start().await;
    grant(&w.emu, NORTHWIND, Api::Graph, &["SecurityAlert.Read.All"]);
    grant(&w.emu, FABRIKAM, Api::Graph, &["SecurityAlert.Read.All"]);
    // Tokens minted for Northwind carry Fabrikam's tid (and roles that would pass).
    issue_tid(&w.emu, NORTHWIND, FABRIKAM);

    for _ in 0..2 {
        let on = onboard_app(&w, NORTHWIND, AlertApi::Graph).await;
        assert!(
            matches!(
                &on.adoption,
                Adoption::Pending {
                    reason: PendingReason::WrongTenant,
                    ..
                }
            ),
            "{on:?}"
        );
        assert_eq!(on.tenant.status, TenantStatus::PendingConsent);
    }
    let t = w.tenant(NORTHWIND).await;
    assert_eq!(t.status, TenantStatus::PendingConsent);
    assert!(t.consent.is_none());
    assert!(
        !w.has_tokens(NORTHWIND).await,
        "no token of another tenant is kept"
    );
    assert!(
        !w.has_tokens(FABRIKAM).await,
        "nor filed under the tenant it names"
    );
}

/// A fresh directory holding a config file for the fixtures' emulator, on real time with consent
/// callbacks to `public`: the directory, the emulator and `public`.
async fn local_world() -> (tempfile::TempDir, RunningEmulator, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let sc = crate::lambda_world::scenario(&Url::parse(&public).expect("url"), true);
    let emu = emulator::start(sc).await.expect("emulator");
    std::fs::write(root.join("mssp.toml"), config_text(&emu, port)).expect("config");
    tests::local::write_app_secret(&root.join("mssp-data"), APP_ID, APP_SECRET)
        .expect("app secret");
    (dir, emu, public)
}

/// A fleet file of the four fixtures' tenants: Northwind granted Graph's role (adopted),
/// Woodgrove only MDE's while its row reads Graph (missing role), Contoso's tokens name another
/// tenant (never adopted), Fabrikam delegated on the SIEM API in the EU (a user signs in).
fn fleet_csv(emu: &RunningEmulator) -> String {
    grant(emu, NORTHWIND, Api::Graph, &["SecurityAlert.Read.All"]);
    grant(emu, WOODGROVE, Api::Mde, &["Alert.Read.All"]);
    grant(emu, CONTOSO, Api::Graph, &["SecurityAlert.Read.All"]);
    issue_tid(emu, CONTOSO, NORTHWIND);
    format!(
        "id,name,model,api,siem_region,cloud\n\
         {NORTHWIND},\"Northwind, Inc\",application,graph,,\n\
         {WOODGROVE},Woodgrove,application,graph,,commercial\n\
         {CONTOSO},Contoso,application,graph,,\n\
         {FABRIKAM},Fabrikam,delegated-v1,siem,eu,\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_the_same_file_twice_leaves_the_same_registry_and_exits_0() {
    let (dir, emu, public) = local_world().await;
    let root = dir.path();
    std::fs::write(root.join("fleet.csv"), fleet_csv(&emu)).expect("fleet file");

    let first = configured_ok(root, &["tenants", "import", "fleet.csv"]).await;
    let out = &first.stdout;
    for line in [
        "adopted       1",
        "pending       3",
        "done          0",
        "failed        0",
        "4 tenants were added",
        "missing role SecurityAlert.Read.All",
        "never adopted",
        "delegated",
        "fleet.consent-links.csv",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    let links = std::fs::read_to_string(root.join("fleet.consent-links.csv")).expect("links");
    let rows: Vec<&str> = links.lines().collect();
    assert_eq!(
        rows.len(),
        4,
        "a header and the three pending tenants: {links}"
    );
    let woodgrove = rows
        .iter()
        .find(|r| r.contains(WOODGROVE))
        .expect("Woodgrove's link");
    assert!(
        woodgrove.contains("missing role SecurityAlert.Read.All")
            && woodgrove.contains(&format!("{public}/consent/start?link=")),
        "{woodgrove}"
    );
    assert!(
        !links.contains(NORTHWIND),
        "the adopted tenant needs no link"
    );
    assert!(!links.contains(APP_SECRET));

    let show = configured_ok(root, &["tenants", "show", NORTHWIND]).await;
    assert!(
        show.stdout.contains("adopted without a click") && show.stdout.contains("Northwind, Inc"),
        "{show:?}"
    );
    let list = configured(root, &["tenants", "list", "--json"]).await;
    let status = |id: &str| {
        list.json()
            .as_array()
            .expect("array")
            .iter()
            .find(|t| t["id"] == id)
            .map(|t| (t["status"].clone(), t["siem_region"].clone()))
            .expect("listed")
    };
    assert_eq!(status(NORTHWIND), ("active".into(), Value::Null));
    assert_eq!(status(CONTOSO).0, "pending_consent");
    assert_eq!(status(FABRIKAM), ("pending_consent".into(), "eu".into()));

    let registry = snapshot(&root.join("mssp-data/registry/tenants"));
    let tokens = snapshot(&root.join("mssp-data/secrets/tenants"));
    let again = configured_ok(root, &["tenants", "import", "fleet.csv"]).await;
    for line in [
        "adopted       0",
        "pending       3",
        "done          1",
        "0 tenants were added",
    ] {
        assert!(again.stdout.contains(line), "{line:?} in {again:?}");
    }
    assert_eq!(
        snapshot(&root.join("mssp-data/registry/tenants")),
        registry,
        "the same registry"
    );
    assert_eq!(snapshot(&root.join("mssp-data/secrets/tenants")), tokens);
    let links = std::fs::read_to_string(root.join("fleet.consent-links.csv")).expect("links");
    assert_eq!(links.lines().count(), 4, "{links}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_line_fails_alone_and_the_rest_is_imported() {
    let (dir, emu, _) = local_world().await;
    let root = dir.path();
    grant(&emu, NORTHWIND, Api::Graph, &["SecurityAlert.Read.All"]);
    let text = format!(
        "{{\"id\":\"{NORTHWIND}\",\"name\":\"Northwind\",\"model\":\"application\",\"api\":\"graph\"}}\n\
         {{\"id\":\"northwind\",\"name\":\"Typo\",\"model\":\"application\",\"api\":\"graph\"}}\n\
         {{\"id\":\"{FABRIKAM}\",\"name\":\"Fabrikam\",\"model\":\"delegated-v2\",\"api\":\"mdee\"}}\n\
         this is not JSON\n\
         {{\"id\":\"{FABRIKAM}\",\"name\":\"Fabrikam\",\"model\":\"delegated-v2\",\"api\":\"mde\"}}\n"
    );
    std::fs::write(root.join("fleet.jsonl"), text).expect("fleet file");
    let links = root.join("out/links.csv");
    let run = configured(
        root,
        &[
            "tenants",
            "import",
            "fleet.jsonl",
            "--links",
            links.to_str().expect("utf-8"),
            "--json",
        ],
    )
    .await;
    assert_eq!(run.code, Some(3), "some lines failed: {run:?}");
    let report = run.json();
    assert_eq!(report["adopted"], 1, "{report}");
    assert_eq!(report["pending"], 1, "{report}");
    assert_eq!(report["failed"], 3, "{report}");
    let failed: Vec<(u64, String)> = report["tenants"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|t| t["result"] == "failed")
        .map(|t| {
            (
                t["line"].as_u64().expect("line"),
                t["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();
    assert_eq!(
        failed.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert!(failed[0].1.contains("GUID"), "{failed:?}");
    assert!(failed[1].1.contains("api"), "{failed:?}");
    assert!(
        std::fs::read_to_string(&links)
            .expect("links")
            .contains(FABRIKAM)
    );
    let text = configured(root, &["tenants", "import", "fleet.jsonl"]).await;
    assert_eq!(text.code, Some(3), "{text:?}");
    assert!(text.stdout.contains("line 2: id \"northwind\""), "{text:?}");
    assert!(text.stdout.contains("done          1"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_add_adopts_a_granted_tenant_and_links_the_others() {
    let (dir, emu, public) = local_world().await;
    let root = dir.path();
    grant(&emu, NORTHWIND, Api::Graph, &["SecurityAlert.Read.All"]);
    grant(&emu, WOODGROVE, Api::Graph, &["SecurityAlert.Read.All"]);

    let add = |id: &'static str, api: &'static str| {
        [
            "tenants",
            "add",
            id,
            "--name",
            "Customer",
            "--model",
            "application",
            "--api",
            api,
        ]
    };
    let adopted = configured_ok(root, &add(NORTHWIND, "graph")).await;
    assert!(adopted.stdout.contains("Adopted"), "{adopted:?}");
    assert!(
        !adopted.stdout.contains("/consent/start"),
        "no link to send: {adopted:?}"
    );
    let again = configured(root, &add(NORTHWIND, "graph")).await;
    assert_eq!(again.code, Some(4), "already active: {again:?}");

    let pending = configured_ok(root, &add(WOODGROVE, "mde")).await;
    assert!(
        pending.stdout.contains("missing role Alert.Read.All"),
        "{pending:?}"
    );
    assert!(link_in(&pending.stdout).starts_with(&public), "{pending:?}");

    let show = configured(root, &["tenants", "show", NORTHWIND, "--json"]).await;
    let consent = &show.json()["tenant"]["consent"];
    assert_eq!(consent["method"], "adopted", "{show:?}");
    assert!(consent["verified"].as_str().is_some(), "{show:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_on_the_aws_deployment_is_idempotent() {
    let w = crate::lambda_world::FnWorld::start(true).await;
    let emu = &w.env.emulator;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(root.join("fleet.csv"), fleet_csv(emu)).expect("fleet file");
    let env = w.lambda_env();
    let args = ["--backend", "aws", "tenants", "import", "fleet.csv"];

    let first = mssp_ok(root, &args, &env).await;
    assert!(
        first.stdout.contains("adopted       1") && first.stdout.contains("pending       3"),
        "{first:?}"
    );
    let northwind = w.tenant(NORTHWIND).await.expect("registered");
    assert_eq!(northwind.status, TenantStatus::Active);
    assert_eq!(
        northwind.consent.as_ref().map(|c| c.method),
        Some(ConsentMethod::Adopted)
    );
    assert!(w.tokens(NORTHWIND).await.is_some(), "its secret is written");
    assert!(w.tokens(CONTOSO).await.is_none());
    let registry = |list: Vec<shared::domain::Tenant>| {
        list.into_iter()
            .map(|t| serde_json::to_string(&t).expect("json"))
            .collect::<Vec<_>>()
    };
    let before = registry(w.services.registry.list().await.expect("list"));
    assert_eq!(before.len(), 4);

    let again = mssp_ok(root, &args, &env).await;
    assert!(again.stdout.contains("done          1"), "{again:?}");
    assert_eq!(
        registry(w.services.registry.list().await.expect("list")),
        before,
        "the same registry"
    );
    assert!(!first.all().contains(APP_SECRET) && !again.all().contains(APP_SECRET));
}
