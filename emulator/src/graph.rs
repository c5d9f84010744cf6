//! Microsoft Graph `GET /v1.0/security/alerts_v2` and `GET /beta/security/alerts_v2`
//! (reference §3, §6 items 19–25).
//!
//! - Query options: `$filter` on the eight documented properties only (others, such as
//!   `investigationState`, are 400), `$top` clamped to 1,000, `$skip` up to 500 (`$skip=501` is
//!   400, as documented for the legacy `/security/alerts`), `$count=true`, and `$skiptoken` from our
//!   own `@odata.nextLink`. Every other `$` option (`$orderby`, `$select`, …) is 400.
//! - Newest alerts first (the world's serving order); each alert as its version visible now.
//! - `@odata.nextLink` on every non-final page: an absolute URL with the original query options
//!   (less `$skip`) plus a `$skiptoken` carrying the next offset and a hash of the tenant and
//!   `$filter`, so it is not subject to the `$skip` limit. Tenant switches suppress it entirely
//!   or past an offset (users' reports, §3.2).
//! - `Prefer: include-unknown-enum-members` reveals evolvable enum members (§6 item 23).
//! - Throttling: 150 requests per minute per app per tenant; 429 with the documented body and a
//!   fractional `Retry-After`, omitted when the tenant's `graph_retry_after` switch is off.
//! - Faults: `throttle`, `server_error`, `malformed`, `drop`, and `partial` (206 Partial Content
//!   with `Warning: 199 - "Microsoft/Microsoft Defender XDR/504/10000"` and half the page, §3.5).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use crate::EmuState;
use crate::faults::{self, Fault, FaultKind};
use crate::model::{Alert, AlertVersion};
use crate::odata::{
    BoundFilter, Kind, ODataError, Prop, Schema, SystemOptions, Value, encode_query, query_pairs,
};
use crate::resource_auth::{AuthFailure, Stop, admit};
use crate::scenario::{Api, Settings};
use crate::throttle::graph_retry_after;
use crate::wire::{ApiRequest, graph_error, json_response};
use crate::world::Tenant;

/// The filterable properties of `alerts_v2` (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GraphProp {
    AssignedTo,
    Classification,
    Determination,
    Created,
    Updated,
    Severity,
    ServiceSource,
    Status,
}

/// `$filter` schema of `alerts_v2`: exactly the eight documented properties, enums per §3.3.
const SCHEMA: Schema<GraphProp> = Schema {
    entity: "microsoft.graph.security.alert",
    props: &[
        Prop {
            names: &["assignedTo"],
            kind: Kind::Str,
            key: GraphProp::AssignedTo,
        },
        Prop {
            names: &["classification"],
            kind: Kind::Enum(&[
                "unknown",
                "falsePositive",
                "truePositive",
                "informationalExpectedActivity",
                "unknownFutureValue",
            ]),
            key: GraphProp::Classification,
        },
        Prop {
            names: &["determination"],
            kind: Kind::Enum(&[
                "unknown",
                "apt",
                "malware",
                "securityPersonnel",
                "securityTesting",
                "unwantedSoftware",
                "other",
                "multiStagedAttack",
                "compromisedUser",
                "phishing",
                "maliciousUserActivity",
                "clean",
                "insufficientData",
                "confirmedUserActivity",
                "lineOfBusinessApplication",
                "unknownFutureValue",
            ]),
            key: GraphProp::Determination,
        },
        Prop {
            names: &["createdDateTime"],
            kind: Kind::Time,
            key: GraphProp::Created,
        },
        Prop {
            names: &["lastUpdateDateTime"],
            kind: Kind::Time,
            key: GraphProp::Updated,
        },
        Prop {
            names: &["severity"],
            kind: Kind::Enum(&[
                "unknown",
                "informational",
                "low",
                "medium",
                "high",
                "unknownFutureValue",
            ]),
            key: GraphProp::Severity,
        },
        Prop {
            names: &["serviceSource"],
            kind: Kind::Enum(&[
                "unknown",
                "microsoftDefenderForEndpoint",
                "microsoftDefenderForIdentity",
                "microsoftDefenderForCloudApps",
                "microsoftDefenderForOffice365",
                "microsoft365Defender",
                "azureAdIdentityProtection",
                "microsoftAppGovernance",
                "dataLossPrevention",
                "unknownFutureValue",
                "microsoftDefenderForCloud",
            ]),
            key: GraphProp::ServiceSource,
        },
        Prop {
            names: &["status"],
            kind: Kind::Enum(&[
                "unknown",
                "new",
                "inProgress",
                "resolved",
                "unknownFutureValue",
            ]),
            key: GraphProp::Status,
        },
    ],
};

fn lookup<'a>(a: &'a Alert, v: &'a AlertVersion) -> impl Fn(GraphProp) -> Value<'a> {
    move |p| match p {
        GraphProp::AssignedTo => Value::Str(v.assigned_to.as_deref()),
        GraphProp::Classification => {
            Value::Str(Some(v.classification.as_deref().unwrap_or("unknown")))
        }
        GraphProp::Determination => {
            Value::Str(Some(v.determination.as_deref().unwrap_or("unknown")))
        }
        GraphProp::Created => Value::Time(Some(a.created)),
        GraphProp::Updated => Value::Time(Some(v.updated)),
        GraphProp::Severity => Value::Str(Some(&a.severity)),
        GraphProp::ServiceSource => Value::Str(Some(&a.service_source)),
        GraphProp::Status => Value::Str(Some(&v.status)),
    }
}

/// A validated list request.
#[derive(Debug)]
struct ListQuery {
    /// The decoded query pairs, for the next link.
    pairs: Vec<(String, String)>,
    filter_src: String,
    filter: Option<BoundFilter<GraphProp>>,
    offset: usize,
    top: usize,
    count: bool,
}

const OPTIONS: &[&str] = &["$filter", "$top", "$skip", "$skiptoken", "$count"];

fn skiptoken_hash(tenant_id: &str, filter: &str) -> String {
    let digest = Sha256::digest(format!("{tenant_id}\n{filter}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// An opaque `$skiptoken`: the next offset and a hash binding it to the tenant and `$filter`.
fn skiptoken(offset: usize, tenant_id: &str, filter: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{offset}.{}", skiptoken_hash(tenant_id, filter)))
}

fn read_skiptoken(token: &str, tenant_id: &str, filter: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (offset, hash) = text.split_once('.')?;
    (hash == skiptoken_hash(tenant_id, filter))
        .then(|| offset.parse().ok())
        .flatten()
}

fn parse_query(
    pairs: Vec<(String, String)>,
    settings: &Settings,
    tenant_id: &str,
) -> Result<ListQuery, ODataError> {
    let opts = SystemOptions::from_pairs(&pairs, OPTIONS)?;
    let filter_src = opts.get("$filter").unwrap_or_default().to_string();
    let filter = match opts.get("$filter") {
        Some(src) => Some(
            BoundFilter::parse(src, &SCHEMA)
                .map_err(|e| ODataError(format!("Invalid filter clause: {e}")))?,
        ),
        None => None,
    };
    let top = opts
        .count_option("$top")?
        .unwrap_or(settings.graph_default_page_size)
        .min(settings.graph_max_top);
    let skip = opts.count_option("$skip")?.unwrap_or(0);
    if skip > settings.graph_max_skip {
        return Err(ODataError(format!(
            "Invalid value '{skip}' for $skip query option found. $skip is limited to {}.",
            settings.graph_max_skip
        )));
    }
    let offset = match opts.get("$skiptoken") {
        Some(t) => read_skiptoken(t, tenant_id, &filter_src)
            .ok_or_else(|| ODataError("The $skiptoken is invalid.".into()))?,
        None => skip,
    };
    let count = match opts.get("$count").map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ODataError(format!(
                "Invalid value '{other}' for $count query option found. Valid values are 'true', 'false'."
            )));
        }
    };
    Ok(ListQuery {
        pairs,
        filter_src,
        filter,
        offset,
        top,
        count,
    })
}

/// One page of matching alerts.
#[derive(Debug)]
struct Page {
    /// Copies of the page's alerts with the index of the version served, so the JSON is built
    /// after the world lock is released.
    rows: Vec<(Alert, usize)>,
    /// Offset of the next page, when more alerts match.
    next: Option<usize>,
    /// Number of matching alerts (`$count=true` only).
    count: Option<usize>,
}

/// Walks the tenant's alerts once, newest first, as visible at `now`: O(alerts) per page.
fn build_page(tenant: &Tenant, q: &ListQuery, now: DateTime<Utc>) -> Page {
    let end = q.offset.saturating_add(q.top);
    let mut rows = Vec::with_capacity(q.top.min(tenant.alerts.len()));
    let mut matched = 0usize;
    let mut more = false;
    for a in &tenant.alerts {
        let Some(i) = a.current(now) else { continue };
        let v = &a.versions[i];
        if q.filter.as_ref().is_some_and(|f| !f.matches(lookup(a, v))) {
            continue;
        }
        if matched >= q.offset && matched < end {
            rows.push((a.clone(), i));
        } else if matched >= end {
            more = true;
            if !q.count {
                break;
            }
        }
        matched += 1;
    }
    Page {
        rows,
        // A page of `$top=0` makes no progress, so it gets no link.
        next: (more && q.top > 0).then_some(end),
        count: q.count.then_some(matched),
    }
}

fn wants_unknown_enum_members(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| {
            p.trim()
                .eq_ignore_ascii_case("include-unknown-enum-members")
        })
}

/// The documented 429 (§3.4), with `Retry-After` when given.
fn too_many_requests(now: DateTime<Utc>, retry_after: Option<Duration>) -> Response {
    let body = json!({
        "error": {
            "code": "TooManyRequests",
            "innerError": {
                "code": "429",
                "date": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "message": "Please retry after",
                "request-id": uuid::Uuid::new_v4().to_string(),
                "status": "429"
            },
            "message": "Please retry again later."
        }
    });
    let mut r = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
    if let Some(wait) = retry_after
        && let Ok(v) = HeaderValue::from_str(&graph_retry_after(wait))
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn server_error(fault: &Fault, now: DateTime<Utc>) -> Response {
    let code = if fault.status == StatusCode::SERVICE_UNAVAILABLE {
        "ServiceUnavailable"
    } else {
        "InternalServerError"
    };
    graph_error(
        fault.status,
        code,
        "The service encountered an internal error. Please retry the request.",
        now,
    )
}

fn refuse(state: &EmuState, stop: Stop) -> Response {
    let now = state.now();
    let retry_after_switch = |tenant_id: &str| {
        state
            .world()
            .tenants
            .get(tenant_id)
            .is_none_or(|t| t.switches.graph_retry_after)
    };
    match stop {
        Stop::Auth(failure) => failure.respond(Api::Graph, now),
        Stop::Throttled { tenant_id, wait } => {
            too_many_requests(now, retry_after_switch(&tenant_id).then_some(wait))
        }
        Stop::Fault { tenant_id, fault } => match fault.kind {
            FaultKind::Throttle => {
                let wait = Duration::try_from_secs_f64(fault.retry_after).unwrap_or_default();
                too_many_requests(now, retry_after_switch(&tenant_id).then_some(wait))
            }
            _ => server_error(&fault, now),
        },
    }
}

/// `{version}/security/alerts_v2` (any case, optional trailing slash) → `Ok(version)`, else the
/// first segment Graph cannot resolve.
fn resolve_path(path: &str) -> Result<&str, String> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [v, s, c]
            if (v.eq_ignore_ascii_case("v1.0") || v.eq_ignore_ascii_case("beta"))
                && s.eq_ignore_ascii_case("security")
                && c.eq_ignore_ascii_case("alerts_v2") =>
        {
            Ok(v)
        }
        [v, ..] if !(v.eq_ignore_ascii_case("v1.0") || v.eq_ignore_ascii_case("beta")) => {
            Err(v.to_string())
        }
        [_, s, ..] if !s.eq_ignore_ascii_case("security") => Err(s.to_string()),
        [_, _, c, ..] if !c.eq_ignore_ascii_case("alerts_v2") => Err(c.to_string()),
        [_, _, _, extra, ..] => Err(extra.to_string()),
        _ => Err(path.to_string()),
    }
}

/// Serves `GET {version}/security/alerts_v2` and answers 400 for any other path.
pub async fn serve(State(state): State<Arc<EmuState>>, req: ApiRequest) -> Response {
    let version = match resolve_path(&req.path) {
        Ok(v) => v.to_ascii_lowercase(),
        Err(segment) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Resource not found for the segment '{segment}'."),
                state.now(),
            );
        }
    };
    let admitted = match admit(&state, &req.headers, Api::Graph).await {
        Ok(a) => a,
        Err(stop) => return refuse(&state, stop),
    };
    let (tenant_id, now, fault) = admitted.into_parts();
    let include_unknown = wants_unknown_enum_members(&req.headers);

    let (page, q, switches) = {
        let mut world = state.world();
        let q = match parse_query(
            query_pairs(req.query.as_deref()),
            &world.settings,
            &tenant_id,
        ) {
            Ok(q) => q,
            Err(e) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &e.0, now),
        };
        let Some(tenant) = world.tenants.get_mut(&tenant_id) else {
            return AuthFailure::UnknownTenant.respond(Api::Graph, now);
        };
        let mut page = build_page(tenant, &q, now);
        if fault == Some(FaultKind::Partial) {
            page.rows.truncate(page.rows.len() / 2);
        }
        if matches!(fault, None | Some(FaultKind::Partial)) {
            tenant.observe_served(page.rows.iter().map(|(a, _)| a.id.as_str()), now);
        }
        (page, q, tenant.switches.clone())
    };

    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/{version}/$metadata#security/alerts_v2",
            state.urls.graph.as_str().trim_end_matches('/')
        )),
    );
    if let Some(c) = page.count {
        body.insert("@odata.count".into(), json!(c));
    }
    let partial = fault == Some(FaultKind::Partial);
    let rows = page.rows;
    let value = rows
        .iter()
        .map(|(a, i)| a.graph_json(&tenant_id, &a.versions[*i], include_unknown))
        .collect();
    body.insert("value".into(), Json::Array(value));
    let link_allowed = |next: usize| {
        switches.graph_next_link
            && switches
                .graph_next_link_max_offset
                .is_none_or(|max| next <= max)
    };
    if let Some(next) = page.next
        && !partial
        && link_allowed(next)
    {
        let mut pairs: Vec<(String, String)> = q
            .pairs
            .into_iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("$skip") && !k.eq_ignore_ascii_case("$skiptoken")
            })
            .collect();
        pairs.push((
            "$skiptoken".into(),
            skiptoken(next, &tenant_id, &q.filter_src),
        ));
        let link = format!(
            "{}/{}?{}",
            state.urls.graph.as_str().trim_end_matches('/'),
            req.path.trim_matches('/'),
            encode_query(&pairs)
        );
        body.insert("@odata.nextLink".into(), json!(link));
    }
    let body = Json::Object(body);
    if partial {
        let mut r = json_response(StatusCode::PARTIAL_CONTENT, &body);
        r.headers_mut().insert(
            header::WARNING,
            HeaderValue::from_static("199 - \"Microsoft/Microsoft Defender XDR/504/10000\""),
        );
        return r;
    }
    faults::serve_json(&body, fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skiptoken_is_bound_to_its_tenant_and_filter() {
        let t = skiptoken(1000, "t1", "status eq 'new'");
        assert_eq!(read_skiptoken(&t, "t1", "status eq 'new'"), Some(1000));
        assert_eq!(read_skiptoken(&t, "t2", "status eq 'new'"), None);
        assert_eq!(read_skiptoken(&t, "t1", ""), None);
        assert_eq!(read_skiptoken("garbage!", "t1", ""), None);
    }

    #[test]
    fn query_options_are_validated_per_the_documented_limits() {
        let s = Settings::default();
        let q = |raw: &str| parse_query(query_pairs(Some(raw)), &s, "t");
        assert_eq!(q("$top=5000").expect("ok").top, 1000);
        assert_eq!(q("").expect("ok").top, 1000);
        assert_eq!(q("$top=10&$skip=500").expect("ok").offset, 500);
        assert!(q("$skip=501").is_err());
        assert!(q("$top=-1").is_err());
        assert!(q("$top=ten").is_err());
        assert!(q("$orderby=createdDateTime desc").is_err());
        assert!(q("$select=id").is_err());
        assert!(q("$count=maybe").is_err());
        assert!(q("$count=true").expect("ok").count);
        let e = q("$filter=investigationState eq 'running'").expect_err("refused");
        assert!(e.0.starts_with("Invalid filter clause:"), "{e}");
        assert!(q("$filter=createdDateTime ge 2024-01-01T00:00:00Z and status eq 'new'").is_ok());
        assert!(q("$skiptoken=abc").is_err());
        let token = skiptoken(3000, "t", "");
        assert_eq!(q(&format!("$skiptoken={token}")).expect("ok").offset, 3000);
    }

    #[test]
    fn only_the_alerts_v2_collection_resolves() {
        assert_eq!(resolve_path("v1.0/security/alerts_v2"), Ok("v1.0"));
        assert_eq!(resolve_path("/beta/Security/alerts_V2/"), Ok("beta"));
        assert_eq!(resolve_path("v2.0/security/alerts_v2"), Err("v2.0".into()));
        assert_eq!(resolve_path("v1.0/security/alerts"), Err("alerts".into()));
        assert_eq!(resolve_path("v1.0/security/alerts_v2/x"), Err("x".into()));
    }
}
