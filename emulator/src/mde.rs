//! Defender for Endpoint `GET /api/alerts`, `GET /api/alerts/{id}` and `GET /api/alerts/$count`,
//! also under `/api/v1.0/` (reference §2, §6 items 12–18). Paths are case-insensitive with an
//! optional trailing slash, as the docs spell them variously.
//!
//! - Query options: `$filter` on the documented properties (§2.3, including the doc's typo
//!   `asssignedTo`; names case-insensitive), `$top` up to 10,000 (above: 400 `ODataError`, one
//!   of the two behaviours §6 item 14 allows), `$skip`, `$expand=evidence` (else
//!   `"evidence": []`). Every other `$` option is 400 `ODataError`.
//! - Newest created first. `@odata.nextLink` only when `$top` is absent and more than 10,000
//!   alerts match, with `$skip` advanced (§2.3 "practical contract", §6 item 15).
//! - 100 calls per minute and 1,500 per hour per app per tenant; 429 `TooManyRequests` with a
//!   whole-seconds `Retry-After`.
//! - Faults: `throttle`, `server_error` (500 `InternalServerError`, empty message, §6 item 18),
//!   `malformed`, `drop`. A 206 is not documented for this API, so `partial` is served as that
//!   documented 500 instead.
//! - Ground truth: list answers mark what was visible as observed; `$count` and single-alert
//!   answers do not (they are not list queries).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};

use crate::EmuState;
use crate::faults::{self, Fault, FaultKind};
use crate::model::{Alert, AlertVersion};
use crate::odata::{
    BoundFilter, Kind, ODataError, Prop, Schema, SystemOptions, Value, encode_query, query_pairs,
};
use crate::resource_auth::{AuthFailure, Stop, admit};
use crate::scenario::{Api, Settings};
use crate::throttle::whole_seconds_retry_after;
use crate::wire::{ApiRequest, mde_error};
use crate::world::Tenant;

/// The filterable properties of an MDE alert (§2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MdeProp {
    Created,
    Updated,
    IncidentId,
    InvestigationId,
    Id,
    AssignedTo,
    DetectionSource,
    LastEventTime,
    Status,
    Severity,
    Category,
}

const SCHEMA: Schema<MdeProp> = Schema {
    entity: "Alert",
    props: &[
        Prop {
            names: &["alertCreationTime"],
            kind: Kind::Time,
            key: MdeProp::Created,
        },
        Prop {
            names: &["lastUpdateTime"],
            kind: Kind::Time,
            key: MdeProp::Updated,
        },
        Prop {
            names: &["incidentId"],
            kind: Kind::Int,
            key: MdeProp::IncidentId,
        },
        Prop {
            names: &["InvestigationId"],
            kind: Kind::Int,
            key: MdeProp::InvestigationId,
        },
        Prop {
            names: &["id"],
            kind: Kind::Str,
            key: MdeProp::Id,
        },
        Prop {
            names: &["assignedTo", "asssignedTo"],
            kind: Kind::Str,
            key: MdeProp::AssignedTo,
        },
        Prop {
            names: &["detectionSource"],
            kind: Kind::Str,
            key: MdeProp::DetectionSource,
        },
        Prop {
            names: &["lastEventTime"],
            kind: Kind::Time,
            key: MdeProp::LastEventTime,
        },
        Prop {
            names: &["status"],
            kind: Kind::Enum(&["Unknown", "New", "InProgress", "Resolved"]),
            key: MdeProp::Status,
        },
        Prop {
            names: &["severity"],
            kind: Kind::Enum(&["UnSpecified", "Informational", "Low", "Medium", "High"]),
            key: MdeProp::Severity,
        },
        Prop {
            names: &["category"],
            kind: Kind::Str,
            key: MdeProp::Category,
        },
    ],
};

/// Property values as MDE renders them (§2.5). MDE capitalizes Graph's enum spellings
/// (`inProgress` → `InProgress`); comparisons ignore case, so the model's values serve as they
/// are, except `unknown` severity, which MDE calls `UnSpecified`.
fn lookup<'a>(a: &'a Alert, v: &'a AlertVersion) -> impl Fn(MdeProp) -> Value<'a> {
    move |p| match p {
        MdeProp::Created | MdeProp::LastEventTime => Value::Time(Some(a.created)),
        MdeProp::Updated => Value::Time(Some(v.updated)),
        MdeProp::IncidentId => Value::Int(Some(a.incident_id)),
        MdeProp::InvestigationId => Value::Int(None),
        MdeProp::Id => Value::Str(Some(&a.id)),
        MdeProp::AssignedTo => Value::Str(v.assigned_to.as_deref()),
        MdeProp::DetectionSource => Value::Str(Some(&a.detection_source)),
        MdeProp::Status => Value::Str(Some(&v.status)),
        MdeProp::Severity => Value::Str(Some(if a.severity == "unknown" {
            "UnSpecified"
        } else {
            &a.severity
        })),
        MdeProp::Category => Value::Str(Some(&a.category)),
    }
}

/// What the path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    List,
    Count,
    One(String),
}

/// `api[/v1.0]/alerts[/$count | /{id}]`, any case, optional trailing slash.
fn resolve_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segs.as_slice() {
        [api, v, alerts, rest @ ..]
            if api.eq_ignore_ascii_case("api")
                && v.eq_ignore_ascii_case("v1.0")
                && alerts.eq_ignore_ascii_case("alerts") =>
        {
            rest
        }
        [api, alerts, rest @ ..]
            if api.eq_ignore_ascii_case("api") && alerts.eq_ignore_ascii_case("alerts") =>
        {
            rest
        }
        _ => return None,
    };
    match rest {
        [] => Some(Target::List),
        [c] if c.eq_ignore_ascii_case("$count") => Some(Target::Count),
        [id] => Some(Target::One(id.to_string())),
        _ => None,
    }
}

/// A validated request.
#[derive(Debug)]
struct Query {
    pairs: Vec<(String, String)>,
    filter: Option<BoundFilter<MdeProp>>,
    top: Option<usize>,
    skip: usize,
    expand_evidence: bool,
}

fn parse_query(
    pairs: Vec<(String, String)>,
    settings: &Settings,
    target: &Target,
) -> Result<Query, ODataError> {
    let allowed: &[&str] = match target {
        Target::One(_) => &["$expand"],
        Target::List | Target::Count => &["$filter", "$top", "$skip", "$expand"],
    };
    let opts = SystemOptions::from_pairs(&pairs, allowed)?;
    let filter = opts
        .get("$filter")
        .map(|src| BoundFilter::parse(src, &SCHEMA))
        .transpose()?;
    let top = opts.count_option("$top")?;
    if let Some(top) = top
        && top > settings.mde_max_page
    {
        return Err(ODataError(format!(
            "The limit of '{}' for Top query has been exceeded. The value from the incoming request is '{top}'.",
            settings.mde_max_page
        )));
    }
    let skip = opts.count_option("$skip")?.unwrap_or(0);
    let expand_evidence = match opts.get("$expand") {
        None => false,
        Some(e) if e.trim().eq_ignore_ascii_case("evidence") => true,
        Some(e) => {
            return Err(ODataError(format!(
                "Could not find a property named '{}' on type 'Alert'.",
                e.trim()
            )));
        }
    };
    Ok(Query {
        pairs,
        filter,
        top,
        skip,
        expand_evidence,
    })
}

/// The visible alerts matching the filter, newest created first, with the index of the version
/// visible at `now`.
fn matching<'a>(
    tenant: &'a Tenant,
    q: &'a Query,
    now: DateTime<Utc>,
) -> impl Iterator<Item = (&'a Alert, usize)> + 'a {
    tenant.alerts.iter().filter_map(move |a| {
        let i = a.current(now)?;
        q.filter
            .as_ref()
            .is_none_or(|f| f.matches(lookup(a, &a.versions[i])))
            .then_some((a, i))
    })
}

/// A list page (copies of the alerts with the index of the version served, so the JSON is built
/// after the world lock is released) and the offset of the next page, looked for only without
/// `$top`.
fn build_page(
    tenant: &Tenant,
    q: &Query,
    now: DateTime<Utc>,
    settings: &Settings,
) -> (Vec<(Alert, usize)>, Option<usize>) {
    let size = q.top.unwrap_or(settings.mde_max_page);
    let mut rows = matching(tenant, q, now).skip(q.skip);
    let page: Vec<(Alert, usize)> = rows
        .by_ref()
        .take(size)
        .map(|(a, i)| (a.clone(), i))
        .collect();
    let next = (q.top.is_none() && page.len() == size && rows.next().is_some())
        .then(|| q.skip.saturating_add(size));
    (page, next)
}

fn throttled(wait: Duration) -> Response {
    let secs = whole_seconds_retry_after(wait);
    let mut r = mde_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        &format!("Rate limit is exceeded. Try again in {secs} seconds."),
    );
    if let Ok(v) = HeaderValue::from_str(&secs) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn server_error(status: StatusCode) -> Response {
    let code = if status == StatusCode::SERVICE_UNAVAILABLE {
        "ServiceUnavailable"
    } else {
        "InternalServerError"
    };
    mde_error(status, code, "")
}

fn refuse(stop: Stop, now: DateTime<Utc>) -> Response {
    match stop {
        Stop::Auth(failure) => failure.respond(Api::Mde, now),
        Stop::Throttled { wait, .. } => throttled(wait),
        Stop::Fault {
            fault:
                Fault {
                    kind: FaultKind::Throttle,
                    retry_after,
                    ..
                },
            ..
        } => throttled(Duration::try_from_secs_f64(retry_after).unwrap_or_default()),
        Stop::Fault { fault, .. } => server_error(fault.status),
    }
}

/// Serves `GET api/alerts`, `api/alerts/$count` and `api/alerts/{id}`; 404 elsewhere.
pub async fn serve(State(state): State<Arc<EmuState>>, req: ApiRequest) -> Response {
    let Some(target) = resolve_path(&req.path) else {
        return mde_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "No resource was found that matches the request URI '/{}'.",
                req.path
            ),
        );
    };
    let admitted = match admit(&state, &req.headers, Api::Mde).await {
        Ok(a) => a,
        Err(stop) => return refuse(stop, state.now()),
    };
    let (tenant_id, now, fault) = admitted.into_parts();
    if fault == Some(FaultKind::Partial) {
        return server_error(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let mde_base = state.urls.mde.as_str().trim_end_matches('/').to_string();

    let mut world = state.world();
    let q = match parse_query(query_pairs(req.query.as_deref()), &world.settings, &target) {
        Ok(q) => q,
        Err(e) => return mde_error(StatusCode::BAD_REQUEST, "ODataError", &e.0),
    };
    let settings = world.settings.clone();
    let Some(tenant) = world.tenants.get_mut(&tenant_id) else {
        return AuthFailure::UnknownTenant.respond(Api::Mde, now);
    };
    match target {
        Target::Count => {
            let n = matching(tenant, &q, now).count();
            drop(world);
            match fault {
                Some(FaultKind::Malformed) => faults::malformed(n.to_string().as_bytes()),
                Some(FaultKind::Drop) => faults::dropped(n.to_string().as_bytes()),
                _ => {
                    let mut r = (StatusCode::OK, n.to_string()).into_response();
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    r
                }
            }
        }
        Target::One(id) => {
            let found = tenant
                .alerts
                .iter()
                .find(|a| a.id == id)
                .and_then(|a| a.current(now).map(|i| (a, &a.versions[i])))
                .map(|(a, v)| a.mde_json(&tenant.id, v, q.expand_evidence));
            drop(world);
            let Some(Json::Object(mut alert)) = found else {
                return mde_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    &format!("Alert {id} was not found"),
                );
            };
            alert.insert(
                "@odata.context".into(),
                json!(format!("{mde_base}/api/$metadata#Alerts/$entity")),
            );
            faults::serve_json(&Json::Object(alert), fault)
        }
        Target::List => {
            let (page, next) = build_page(tenant, &q, now, &settings);
            if fault.is_none() {
                tenant.observe_served(page.iter().map(|(a, _)| a.id.as_str()), now);
            }
            drop(world);
            let value = page
                .iter()
                .map(|(a, i)| a.mde_json(&tenant_id, &a.versions[*i], q.expand_evidence))
                .collect();
            let mut body = serde_json::Map::new();
            body.insert(
                "@odata.context".into(),
                json!(format!("{mde_base}/api/$metadata#Alerts")),
            );
            body.insert("value".into(), Json::Array(value));
            if let Some(next) = next {
                let mut pairs: Vec<(String, String)> = q
                    .pairs
                    .into_iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("$skip"))
                    .collect();
                pairs.push(("$skip".into(), next.to_string()));
                body.insert(
                    "@odata.nextLink".into(),
                    json!(format!(
                        "{mde_base}/{}?{}",
                        req.path.trim_matches('/'),
                        encode_query(&pairs)
                    )),
                );
            }
            faults::serve_json(&Json::Object(body), fault)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_case_insensitive_with_optional_version_and_slash() {
        assert_eq!(resolve_path("api/alerts"), Some(Target::List));
        assert_eq!(resolve_path("/API/Alerts/"), Some(Target::List));
        assert_eq!(resolve_path("api/v1.0/alerts"), Some(Target::List));
        assert_eq!(resolve_path("api/alerts/$count"), Some(Target::Count));
        assert_eq!(
            resolve_path("api/alerts/da123_-4"),
            Some(Target::One("da123_-4".into()))
        );
        assert_eq!(resolve_path("api/machines"), None);
        assert_eq!(resolve_path("api/alerts/a/b"), None);
    }

    #[test]
    fn top_is_capped_at_the_page_limit_and_unknown_options_refused() {
        let s = Settings::default();
        let q = |raw: &str| parse_query(query_pairs(Some(raw)), &s, &Target::List);
        assert_eq!(q("$top=10000").expect("ok").top, Some(10_000));
        let e = q("$top=10001").expect_err("refused");
        assert!(e.0.starts_with("The limit of '10000' for Top query has been exceeded."));
        assert_eq!(q("$skip=123456").expect("ok").skip, 123_456);
        assert!(q("$expand=evidence").expect("ok").expand_evidence);
        assert!(q("$expand=machine").is_err());
        assert!(q("$orderby=alertCreationTime").is_err());
        assert!(q("$filter=lastUpdateTime+ge+2019-11-22T00:00:00Z").is_ok());
        assert!(q("$filter=asssignedTo eq 'a@b.c' and Status eq 'InProgress'").is_ok());
        assert!(q("$filter=status eq 'inProgress'").is_ok());
        assert!(q("$filter=investigationState eq 'Queued'").is_err());
        assert!(q("$filter=severity eq 'Severe'").is_err());
    }
}
