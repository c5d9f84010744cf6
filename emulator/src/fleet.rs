//! A generated fleet: one MSSP app and many customer tenants of mixed permission models, for
//! benchmarks and scale tests (`Scenario` JSON of 10,000 tenants is several megabytes; this
//! builds it in memory).
//!
//! Tenant `i` (ids from [`tenant_id`], domain `tenant{i}.onmicrosoft.com`, admin
//! `admin@tenant{i}.onmicrosoft.com`) uses, by `i % 3`:
//!
//! | `i % 3` | model | API | granted at load (`consents[]`) |
//! |---|---|---|---|
//! | 0 | application | Graph `alerts_v2` | the app's roles (Graph and MDE) |
//! | 1 | delegated v1 | legacy SIEM API (app in `siem_apps`, regions eu/us/uk in turn) | the delegated scopes |
//! | 2 | delegated v2 | Defender for Endpoint | the delegated scopes |
//!
//! except every tenant with `i % 10 == 9`, which has consented to nothing yet (onboarding still
//! to do). [`granted`] builds the other fleet an import starts from: every admin has granted the
//! app's roles. Each tenant has `alerts` generated alerts, one every 20 minutes from an hour before
//! the clock start, so later ones arrive while a benchmark runs; a third get an update.

use serde_json::json;

use crate::Scenario;

/// The fleet's app (client id).
pub const APP: &str = "f1ee7000-0000-4000-8000-00000000a001";
/// The app's client secret.
pub const SECRET: &str = "fleet-client-secret";
/// The app's redirect URI.
pub const REDIRECT: &str = "http://127.0.0.1:8080/consent/callback";

/// The permission model of fleet tenant `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Application permissions, Graph.
    Application,
    /// Delegated v1, the legacy SIEM API.
    DelegatedV1,
    /// Delegated v2, Defender for Endpoint.
    DelegatedV2,
}

/// The model of tenant `i`.
pub fn model(i: usize) -> Model {
    match i % 3 {
        0 => Model::Application,
        1 => Model::DelegatedV1,
        _ => Model::DelegatedV2,
    }
}

/// Whether tenant `i` has consented at load.
pub fn consented(i: usize) -> bool {
    i % 10 != 9
}

/// The id of tenant `i`: a GUID whose last group is `i`.
pub fn tenant_id(i: usize) -> String {
    format!("f1ee7000-0000-4000-8000-{i:012}")
}

/// The admin UPN of tenant `i`.
pub fn admin(i: usize) -> String {
    format!("admin@tenant{i}.onmicrosoft.com")
}

/// The application roles the fleet's app holds where it is granted.
fn app_roles() -> serde_json::Value {
    json!({ "graph": ["SecurityAlert.Read.All"], "mde": ["Alert.Read.All"] })
}

/// The delegated scopes the fleet's app holds where it is granted.
fn delegated_scopes() -> serde_json::Value {
    json!({
        "graph": ["SecurityAlert.Read.All"], "mde": ["Alert.Read"], "siem": ["user_impersonation"]
    })
}

/// The fleet's app registration.
fn app() -> serde_json::Value {
    json!({
        "client_id": APP,
        "name": "MSSP Fleet Connector",
        "secrets": [{ "value": SECRET }],
        "redirect_uris": [REDIRECT],
        "permissions": { "app_roles": app_roles(), "delegated": delegated_scopes() }
    })
}

/// A fleet of `tenants` tenants whose admins have all granted the app its roles (Graph and MDE)
/// and that have no alerts, clock frozen at `start`: every tenant can be onboarded as an
/// application tenant without a click (an import adopts them all). Ids from [`tenant_id`].
pub fn granted(tenants: usize, start: &str) -> anyhow::Result<Scenario> {
    let tenants: Vec<_> = (0..tenants)
        .map(|i| {
            json!({
                "id": tenant_id(i),
                "name": format!("Tenant {i}"),
                "domains": [format!("tenant{i}.onmicrosoft.com")],
                "users": [{ "upn": admin(i), "admin": true }],
                "consents": [{ "client_id": APP, "app_roles": app_roles() }],
            })
        })
        .collect();
    scenario(
        "A fleet whose admins granted the app's roles (emulator::fleet::granted)",
        start,
        tenants,
    )
}

/// A fleet of `tenants` tenants with `alerts` alerts each, clock frozen at `start` (RFC 3339).
pub fn fleet(tenants: usize, alerts: usize, start: &str) -> anyhow::Result<Scenario> {
    let roles = app_roles();
    let delegated = delegated_scopes();
    let tenants: Vec<_> = (0..tenants)
        .map(|i| {
            let model = model(i);
            let consents = match (consented(i), model) {
                (false, _) => json!([]),
                (true, Model::Application) => json!([{ "client_id": APP, "app_roles": roles }]),
                (true, _) => json!([{ "client_id": APP, "delegated": delegated }]),
            };
            let region = ["eu", "us", "uk"][(i / 3) % 3];
            json!({
                "id": tenant_id(i),
                "name": format!("Tenant {i}"),
                "domains": [format!("tenant{i}.onmicrosoft.com")],
                "users": [{ "upn": admin(i), "admin": true }],
                "consents": consents,
                "siem_apps": if model == Model::DelegatedV1 { json!([APP]) } else { json!([]) },
                "region": region,
                "generate": [{
                    "count": alerts, "start": "-1h", "every": "20m", "visible_after": "2m",
                    "update_fraction": 0.33, "update_after": "30m", "seed": i as u64 + 1
                }]
            })
        })
        .collect();
    scenario("A generated fleet (emulator::fleet)", start, tenants)
}

/// The scenario of the fleet's app and `tenants`, clock frozen at `start`, consents approved
/// without a click.
fn scenario(
    description: &str,
    start: &str,
    tenants: Vec<serde_json::Value>,
) -> anyhow::Result<Scenario> {
    let scenario = json!({
        "description": description,
        "clock": { "start": start, "frozen": true },
        "settings": { "auto_approve": true },
        "apps": [app()],
        "tenants": tenants,
    });
    Ok(serde_json::from_value(scenario)?)
}
