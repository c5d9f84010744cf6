//! The control API under `/_emulator`: load a scenario, drive the clock, inject faults, flip
//! quirk switches, revoke a user's refresh tokens, expire the app secret, add alerts and updates
//! at run time, and read the ground truth and request statistics.
//!
//! | method and path | body | effect |
//! |---|---|---|
//! | `GET /health` | | `ok` |
//! | `PUT /scenario` | scenario JSON | replaces the world, resets the clock |
//! | `GET /clock` | | `{"now","frozen"}` |
//! | `POST /clock` | `{"advance":"90d"}`, `{"set":"2026-…Z"}`, `{"freeze":true}` | moves the clock |
//! | `GET /faults`, `PUT /faults`, `DELETE /faults` | `{"seed":1,"rules":[…]}` | fault plan |
//! | `GET /stats` | | requests per API, faults served per kind, how many tenants made requests |
//! | `GET /stats/tenants` | | requests per tenant: `{"tenants":{"<tid>":{"graph","mde","siem","token","authorize"}}}` (alert APIs by the token's `tid`, identity by the URL's tenant; `common` & co. under their name) |
//! | `PATCH /settings` | partial settings | e.g. `{"auto_approve":true}`, `{"latency_ms":50}` (every Microsoft request waits 50 ms) |
//! | `PATCH /tenants/{tid}/switches` | partial switches | e.g. `{"graph_next_link":false}`, `{"issue_tid":"<other tenant id>"}` (tokens minted for `tid` carry the other `tid`; `null` undoes it) |
//! | `GET /tenants/{tid}/consents` | | grants per app |
//! | `POST /tenants/{tid}/users/{upn}/revoke` | | revokes the user's refresh tokens |
//! | `POST /apps/{client_id}/expire-secret` | | every secret of the app expires now |
//! | `POST /tenants/{tid}/alerts` | `[alert spec]`, times relative to now | adds alerts |
//! | `POST /tenants/{tid}/alerts/{id}/updates` | update spec, `at` relative to now (default now) | a new version |
//! | `GET /truth/{tid}` | | every alert version visible so far (`alert_id`, `version`, `visible_at`), flagged `latest`/`observed`/`exposed`/`late` (visible over an hour after its update), with the `siem_full_ids` of its SIEM records |

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::EmuState;
use crate::faults::FaultPlanSpec;
use crate::scenario::{AlertSpec, Scenario, UpdateSpec, parse_duration, parse_time};
use crate::world::{alert_from_spec, mix, next_version, push_version};

/// Routes of the control API, nested under `/_emulator`.
pub fn router() -> Router<Arc<EmuState>> {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/scenario", axum::routing::put(put_scenario))
        .route("/clock", get(get_clock).post(post_clock))
        .route(
            "/faults",
            get(get_faults).put(put_faults).delete(delete_faults),
        )
        .route("/stats", get(get_stats))
        .route("/stats/tenants", get(get_tenant_stats))
        .route("/settings", axum::routing::patch(patch_settings))
        .route(
            "/tenants/{tid}/switches",
            axum::routing::patch(patch_switches),
        )
        .route("/tenants/{tid}/consents", get(get_consents))
        .route("/tenants/{tid}/users/{upn}/revoke", post(revoke_user))
        .route("/apps/{client_id}/expire-secret", post(expire_secret))
        .route("/tenants/{tid}/alerts", post(add_alerts))
        .route("/tenants/{tid}/alerts/{id}/updates", post(add_update))
        .route("/truth/{tid}", get(get_truth))
}

fn bad(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

fn not_found(what: &str) -> Response {
    bad(StatusCode::NOT_FOUND, format!("{what} not found"))
}

/// Applies a JSON merge patch (object keys only) to a serializable value.
fn merge<T: serde::Serialize + DeserializeOwned>(current: &T, patch: Value) -> Result<T, String> {
    let mut v = serde_json::to_value(current).map_err(|e| e.to_string())?;
    match (&mut v, patch) {
        (Value::Object(cur), Value::Object(p)) => {
            for (k, val) in p {
                if !cur.contains_key(&k) {
                    return Err(format!("unknown field {k:?}"));
                }
                cur.insert(k, val);
            }
        }
        _ => return Err("expected a JSON object".into()),
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

async fn put_scenario(State(s): State<Arc<EmuState>>, Json(sc): Json<Scenario>) -> Response {
    match s.reload(&sc) {
        Ok(()) => Json(json!({"loaded": true, "now": s.now()})).into_response(),
        Err(e) => bad(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn get_clock(State(s): State<Arc<EmuState>>) -> Json<Value> {
    Json(json!({"now": s.now(), "frozen": s.clock.is_frozen()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    advance: Option<String>,
    set: Option<String>,
    freeze: Option<bool>,
}

async fn post_clock(State(s): State<Arc<EmuState>>, Json(c): Json<ClockChange>) -> Response {
    if let Some(to) = &c.set {
        match parse_time(to, s.now()) {
            Some(t) => s.clock.set(t),
            None => return bad(StatusCode::BAD_REQUEST, format!("cannot read time {to:?}")),
        }
    }
    if let Some(by) = &c.advance {
        match parse_duration(by) {
            Some(d) => s.clock.advance(d),
            None => {
                return bad(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read duration {by:?}"),
                );
            }
        }
    }
    if let Some(f) = c.freeze {
        s.clock.freeze(f);
    }
    get_clock(State(s)).await.into_response()
}

async fn get_faults(State(s): State<Arc<EmuState>>) -> Json<Value> {
    let w = s.world();
    Json(json!({"plan": w.faults.spec(), "served": w.faults.served()}))
}

async fn put_faults(State(s): State<Arc<EmuState>>, Json(spec): Json<FaultPlanSpec>) -> Response {
    s.world().faults.replace(spec);
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_faults(State(s): State<Arc<EmuState>>) -> Response {
    let mut w = s.world();
    let seed = w.faults.spec().seed;
    w.faults.replace(FaultPlanSpec {
        seed,
        rules: Vec::new(),
    });
    StatusCode::NO_CONTENT.into_response()
}

async fn get_stats(State(s): State<Arc<EmuState>>) -> Json<Value> {
    let w = s.world();
    Json(json!({
        "requests": w.requests,
        "faults_served": w.faults.served(),
        "tenants_with_requests": w.tenant_requests.len(),
    }))
}

async fn get_tenant_stats(State(s): State<Arc<EmuState>>) -> Json<Value> {
    let w = s.world();
    let sorted: std::collections::BTreeMap<_, _> = w.tenant_requests.iter().collect();
    Json(json!({ "tenants": sorted }))
}

async fn patch_settings(State(s): State<Arc<EmuState>>, Json(p): Json<Value>) -> Response {
    let mut w = s.world();
    match merge(&w.settings, p) {
        Ok(new) => {
            w.settings = new;
            Json(json!(w.settings)).into_response()
        }
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn patch_switches(
    State(s): State<Arc<EmuState>>,
    Path(tid): Path<String>,
    Json(p): Json<Value>,
) -> Response {
    let mut w = s.world();
    let Some(t) = w.tenants.get_mut(&tid) else {
        return not_found("tenant");
    };
    match merge(&t.switches, p) {
        Ok(new) => {
            t.switches = new;
            Json(json!(t.switches)).into_response()
        }
        Err(e) => bad(StatusCode::BAD_REQUEST, e),
    }
}

async fn get_consents(State(s): State<Arc<EmuState>>, Path(tid): Path<String>) -> Response {
    let w = s.world();
    match w.tenants.get(&tid) {
        Some(t) => Json(json!(t.consents)).into_response(),
        None => not_found("tenant"),
    }
}

async fn revoke_user(
    State(s): State<Arc<EmuState>>,
    Path((tid, upn)): Path<(String, String)>,
) -> Response {
    let now = s.now();
    let mut w = s.world();
    let Some(t) = w.tenants.get_mut(&tid) else {
        return not_found("tenant");
    };
    match t
        .users
        .iter_mut()
        .find(|u| u.upn.eq_ignore_ascii_case(&upn))
    {
        Some(u) => {
            u.tokens_revoked_at = Some(now);
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found("user"),
    }
}

async fn expire_secret(State(s): State<Arc<EmuState>>, Path(client_id): Path<String>) -> Response {
    let now = s.now();
    let mut w = s.world();
    match w.apps.get_mut(&client_id) {
        Some(app) => {
            for (_, exp) in &mut app.secrets {
                *exp = Some(now);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found("app"),
    }
}

async fn add_alerts(
    State(s): State<Arc<EmuState>>,
    Path(tid): Path<String>,
    Json(specs): Json<Vec<AlertSpec>>,
) -> Response {
    let now = s.now();
    let mut w = s.world();
    let Some(t) = w.tenants.get_mut(&tid) else {
        return not_found("tenant");
    };
    let mut ids = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let seed = mix(now.timestamp_nanos_opt().unwrap_or_default() as u64 ^ i as u64);
        match alert_from_spec(&tid, seed, spec, now) {
            Ok(a) => {
                if t.alerts.iter().any(|x| x.id == a.id) {
                    return bad(StatusCode::CONFLICT, format!("alert {} exists", a.id));
                }
                ids.push(a.id.clone());
                t.alerts.push(a);
            }
            Err(e) => return bad(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
    t.sort_alerts();
    (StatusCode::CREATED, Json(json!({"ids": ids}))).into_response()
}

async fn add_update(
    State(s): State<Arc<EmuState>>,
    Path((tid, id)): Path<(String, String)>,
    Json(mut u): Json<UpdateSpec>,
) -> Response {
    let now = s.now();
    if u.at.is_empty() {
        u.at = "+0s".into();
    }
    let Some(at) = parse_time(&u.at, now) else {
        return bad(
            StatusCode::BAD_REQUEST,
            format!("cannot read time {:?}", u.at),
        );
    };
    let delay = match u.visible_after.as_deref().map(parse_duration) {
        None => chrono::Duration::zero(),
        Some(Some(d)) => d,
        Some(None) => return bad(StatusCode::BAD_REQUEST, "cannot read visible_after"),
    };
    let mut w = s.world();
    let Some(t) = w.tenants.get_mut(&tid) else {
        return not_found("tenant");
    };
    let Some(a) = t.alerts.iter_mut().find(|a| a.id == id) else {
        return not_found("alert");
    };
    let v = next_version(a, at, at + delay, &u);
    push_version(a, v);
    let last = a.versions.len() - 1;
    Json(json!({"version": crate::model::fmt7(a.versions[last].updated)})).into_response()
}

async fn get_truth(State(s): State<Arc<EmuState>>, Path(tid): Path<String>) -> Response {
    let now = s.now();
    match s.world().truth(&tid, now) {
        Some(t) => Json(t).into_response(),
        None => not_found("tenant"),
    }
}
