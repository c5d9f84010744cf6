//! A small MSSP world for flow tests: the Microsoft emulator with one MSSP app and four customer
//! tenants, and the product's services over the file adapters in a temporary data directory,
//! with the product's clock and the emulator's moved together.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use emulator::{RunningEmulator, Scenario};
use serde_json::json;
use shared::clock::ManualClock;
use shared::domain::{AlertApi, AuthModel, Tenant, TenantId};
use shared::flows::Deps;
use shared::flows::onboarding::{
    Callback, ConsentError, NewTenant, complete_consent, start_onboarding,
};
use url::Url;

pub const APP_ID: &str = "7f3b2c1a-5d4e-4f60-9a8b-1c2d3e4f5a6b";
pub const APP_SECRET: &str = "test-client-secret-Zq8~value";
pub const PUBLIC_BASE: &str = "http://127.0.0.1:8080";
pub const CONTOSO: &str = "11111111-1111-4111-8111-111111111111";
pub const FABRIKAM: &str = "22222222-2222-4222-8222-222222222222";
pub const NORTHWIND: &str = "33333333-3333-4333-8333-333333333333";
pub const WOODGROVE: &str = "44444444-4444-4444-8444-444444444444";

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
        .expect("valid")
        .with_timezone(&Utc)
}

pub fn tid(s: &str) -> TenantId {
    TenantId::parse(s).expect("tenant id")
}

/// The scenario: auto-approving sign-ins, a frozen clock, no consents yet.
pub fn scenario() -> Scenario {
    let tenant = |id: &str, name: &str, domain: &str| {
        json!({
            "id": id, "name": name, "domains": [format!("{domain}.onmicrosoft.com")],
            "users": [{"upn": format!("admin@{domain}.onmicrosoft.com"), "name": format!("{name} Admin"), "admin": true}],
            "siem_apps": [APP_ID],
            "generate": [{"count": 5, "start": "-2h", "every": "10m", "seed": 3}]
        })
    };
    serde_json::from_value(json!({
        "clock": {"start": start_time(), "frozen": true},
        "settings": {"auto_approve": true},
        "apps": [{
            "client_id": APP_ID, "name": "MSSP Alert Connector",
            "secrets": [{"value": APP_SECRET, "expires": "+365d"}],
            "redirect_uris": [format!("{PUBLIC_BASE}/consent/callback")],
            "permissions": {
                "app_roles": {"graph": ["SecurityAlert.Read.All"], "mde": ["Alert.Read.All"]},
                "delegated": {"graph": ["SecurityAlert.Read.All"], "mde": ["Alert.Read"], "siem": ["user_impersonation"]}
            }
        }],
        "tenants": [
            tenant(CONTOSO, "Contoso", "contoso"),
            tenant(FABRIKAM, "Fabrikam", "fabrikam"),
            tenant(NORTHWIND, "Northwind", "northwind"),
            tenant(WOODGROVE, "Woodgrove", "woodgrove"),
        ]
    }))
    .expect("scenario")
}

/// [`scenario`] in which tenants `ids` hold the alerts `spec` generates (an emulator generator,
/// as JSON) instead, with `switches` applied to them.
pub fn generating(
    ids: &[&str],
    spec: serde_json::Value,
    switches: impl Fn(&mut emulator::scenario::Switches),
) -> Scenario {
    let mut sc = scenario();
    for t in sc
        .tenants
        .iter_mut()
        .filter(|t| ids.contains(&t.id.as_str()))
    {
        t.generate = vec![serde_json::from_value(spec.clone()).expect("generate")];
        switches(&mut t.switches);
    }
    sc
}

pub struct World {
    pub emu: RunningEmulator,
    pub services: Deps,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl World {
    pub async fn start() -> World {
        World::start_with(scenario()).await
    }

    pub async fn start_with(scenario: Scenario) -> World {
        let emu = emulator::start(scenario).await.expect("emulator");
        let dir = tempfile::tempdir().expect("tempdir");
        tests::local::write_app_secret(dir.path(), APP_ID, APP_SECRET).expect("app secret");
        let endpoints = tests::local::endpoints(emu.urls());
        let clock = ManualClock::new(start_time());
        let mut services = tests::local::file_deps(
            dir.path(),
            endpoints,
            Url::parse(PUBLIC_BASE).expect("url"),
            Arc::new(clock.clone()),
        );
        services.settings.http_timeout = std::time::Duration::from_secs(10);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("http");
        World {
            emu,
            services,
            clock,
            dir,
            http,
        }
    }

    /// A world of [`scenario`] in which tenant `id` is onboarded with `model` and `api`.
    pub async fn onboarded(id: &str, model: AuthModel, api: AlertApi) -> World {
        let w = World::start().await;
        w.onboard(id, model, api).await;
        w
    }

    /// A world of [`scenario`] in which tenant `id` is registered and signed in: the world and
    /// the callback Microsoft sends back, not yet completed.
    pub async fn signed_in_to(id: &str, model: AuthModel, api: AlertApi) -> (World, Callback) {
        let w = World::start().await;
        let cb = w.signed_in(id, model, api).await;
        (w, cb)
    }

    /// A world of [`scenario`] in which tenant `id` is registered and its consent link opened:
    /// the world and the Microsoft sign-in URL it leads to.
    pub async fn at_microsoft(id: &str, model: AuthModel, api: AlertApi) -> (World, Url) {
        let w = World::start().await;
        let link = w.register(id, model, api).await;
        let ms = w.microsoft_sign_in(&link).await;
        (w, ms)
    }

    /// [`World::onboarded`], then fetched once: the tenant's backlog delivered, its cursor set.
    pub async fn caught_up(id: &str, model: AuthModel, api: AlertApi) -> World {
        let w = World::onboarded(id, model, api).await;
        w.fetch(id).await.expect("first fetch");
        w
    }

    /// The product's clock.
    pub fn clock_now(&self) -> DateTime<Utc> {
        use shared::clock::Clock;
        self.clock.now()
    }

    /// Moves the product's clock and the emulator's together.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.emu.state().clock.advance(by);
    }

    /// Registers a pending tenant and returns its consent link.
    pub async fn register(&self, id: &str, model: AuthModel, api: AlertApi) -> Url {
        start_onboarding(&self.services, new_tenant(id, model, api))
            .await
            .expect("onboarding starts")
            .consent_link
    }

    /// Opens a consent link the way a browser does and returns the callback Microsoft sends back.
    pub async fn sign_in(&self, link: &Url) -> Callback {
        tests::local::sign_in(&self.services, &self.http, link)
            .await
            .expect("signed in")
    }

    /// Registers a pending tenant and signs in through its consent link: the callback Microsoft
    /// sends back, not yet completed.
    pub async fn signed_in(&self, id: &str, model: AuthModel, api: AlertApi) -> Callback {
        let link = self.register(id, model, api).await;
        self.sign_in(&link).await
    }

    /// Completes consent with `cb`, which the flow must refuse; its error.
    pub async fn refused(&self, cb: &Callback) -> ConsentError {
        complete_consent(&self.services, cb)
            .await
            .expect_err("consent refused")
    }

    /// The Microsoft sign-in URL a consent link leads to.
    pub async fn microsoft_sign_in(&self, link: &Url) -> Url {
        tests::local::microsoft_sign_in(&self.services, link)
            .await
            .expect("consent begins")
    }

    /// The tenant's record.
    pub async fn tenant(&self, id: &str) -> Tenant {
        tests::local::registered(&self.services, id).await
    }

    /// The tenant's stored tokens.
    pub async fn tokens(&self, id: &str) -> shared::domain::TenantTokens {
        self.stored_tokens(id).await.expect("tokens stored")
    }

    /// Whether the tenant has tokens stored.
    pub async fn has_tokens(&self, id: &str) -> bool {
        self.stored_tokens(id).await.is_some()
    }

    async fn stored_tokens(&self, id: &str) -> Option<shared::domain::TenantTokens> {
        self.services
            .tokens
            .get(&tid(id))
            .await
            .expect("token store")
    }

    /// Onboards Contoso (delegated v1, SIEM), Fabrikam (delegated v2, MDE) and Northwind
    /// (application, Graph).
    pub async fn onboard_three(&self) {
        self.onboard(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem)
            .await;
        self.onboard(FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde)
            .await;
        self.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
            .await;
    }

    /// POSTs `body` (none when `None`) to the emulator's control API at `path` and asserts it
    /// was accepted.
    pub async fn control(&self, path: &str, body: Option<serde_json::Value>) {
        tests::control(&self.http, &self.emu, reqwest::Method::POST, path, body).await;
    }

    /// Adds `alerts` (the emulator's alert specs, as a JSON array) to tenant `id`.
    pub async fn add_alerts(&self, id: &str, alerts: serde_json::Value) {
        self.control(&format!("tenants/{id}/alerts"), Some(alerts))
            .await;
    }

    /// GETs a Microsoft URL and parses the redirect back to our callback.
    pub async fn follow(&self, ms: Url) -> Callback {
        tests::local::follow_consent(&self.http, ms, &self.services.settings.redirect_uri())
            .await
            .expect("redirected back to our callback")
    }

    /// Full onboarding: register, sign in, complete.
    pub async fn onboard(&self, id: &str, model: AuthModel, api: AlertApi) -> Tenant {
        tests::local::onboard(&self.services, &self.http, new_tenant(id, model, api))
            .await
            .expect("onboarded")
    }
}

fn new_tenant(id: &str, model: AuthModel, api: AlertApi) -> NewTenant {
    NewTenant::new(tid(id), format!("Customer {}", &id[..4]), model, api)
}

pub use tests::local::callback_of;

/// Options of one fetch run by a fresh owner with a minute to run.
fn a_minute() -> shared::flows::fetch::FetchOptions<'static> {
    shared::flows::fetch::FetchOptions {
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(60),
        owner: uuid::Uuid::new_v4().to_string(),
        hooks: &shared::flows::fetch::NoHooks,
    }
}

/// A tenant's records in the sink against the emulator's ground truth.
pub type Delivery = emulator::world::Check;

impl World {
    /// One slice of a tenant's sweep, with a minute to run.
    pub async fn sweep(
        &self,
        id: &str,
    ) -> Result<shared::flows::sweep::Swept, shared::flows::fetch::FetchFlowError> {
        shared::flows::sweep::sweep_tenant(&self.services, &tid(id), &a_minute()).await
    }

    /// One slice of a tenant's sweep that must run to the end: its summary.
    pub async fn sweep_finished(&self, id: &str) -> shared::ports::JobSummary {
        use shared::flows::{fetch::job::Slice, sweep::Swept};
        let swept = self.sweep(id).await.expect("swept");
        let Swept::Ran(Slice::Finished(summary)) = swept else {
            panic!("expected a finished sweep, got {swept:?}");
        };
        summary
    }

    /// The tenant's cursor of `api`.
    pub async fn cursor(&self, id: &str, api: AlertApi) -> shared::ports::Cursor {
        self.services
            .cursors
            .get(&tid(id), api)
            .await
            .expect("cursor store")
            .expect("a cursor")
    }

    /// One scheduled fetch of a tenant, with a minute to run.
    pub async fn fetch(
        &self,
        id: &str,
    ) -> Result<shared::flows::fetch::FetchReport, shared::flows::fetch::FetchFlowError> {
        shared::flows::fetch::fetch_tenant(&self.services, &tid(id), &a_minute()).await
    }

    /// Every record delivered for a tenant.
    pub fn records(&self, id: &str) -> Vec<shared::record::AlertRecord> {
        shared::adapters::local::FileAlertSink::new(self.dir.path())
            .records(Some(&tid(id)))
            .expect("records")
    }

    /// What the sink holds for a tenant against the emulator's ground truth (records of the
    /// tenant's API: one per exposed version, or per `FullId` on the SIEM API).
    pub fn delivery(&self, id: &str) -> Delivery {
        let records = self.records(id);
        let api = records.first().map_or(AlertApi::Graph, |r| r.source);
        let api = emulator::scenario::Api::named(api.as_str()).expect("api");
        let now = self.emu.state().now();
        let truth = self.emu.state().world().truth(id, now).expect("tenant");
        truth.check(api, records.iter().map(|r| r.dedup_key.as_str()))
    }

    /// Asserts the sink holds exactly the exposed versions, each once.
    pub fn assert_exactly_once(&self, id: &str) {
        let d = self.delivery(id);
        assert_eq!(d.duplicates, 0, "{} duplicated records", d.duplicates);
        assert!(
            d.missing.is_empty(),
            "{} missing, e.g. {:?}",
            d.missing.len(),
            d.missing.first()
        );
    }
}
