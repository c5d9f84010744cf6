//! The legacy Defender for Endpoint SIEM API, `GET /api/alerts` (reference §1, §6 items 26–28).
//!
//! The exporter is regional (`wdatp-alertexporter-{eu,us,uk}`, §1.4): `/siem-eu`, `/siem-us` and
//! `/siem-uk` serve a tenant's alerts only when it is the tenant's `region`; another region's
//! exporter authenticates the request as usual and answers 200 `[]` (counted, nothing marked
//! observed), which is how a client can tell it reads the wrong region. `/siem` answers as the
//! tenant's own region.
//! The path is case-insensitive with an optional trailing slash, and the singular `/api/alert` of
//! the doc's C# sample is accepted too (§1.4).
//!
//! - Tokens for `https://graph.windows.net` from the customer tenant; the calling app must be
//!   authorized in the tenant's SIEM › MSSP tab (§1.8), else 403. Error bodies are undocumented
//!   (§1.7), so 400/401/403/404/500 answers have empty bodies.
//! - A tenant whose `siem_enabled` switch is off answers 404 to everything, as if the API were
//!   turned off (§1.1; the real "off" behaviour is **UNCONFIRMED**).
//! - Parameters (names case-insensitive, as ASP.NET binds them): `sinceTimeUtc`, `untilTimeUtc`
//!   (a time without an offset is UTC, like the doc's `2016-09-12T00:00:00.000`), `ago` (ISO 8601
//!   duration), `limit` (keeps the most recent by `LastProcessedTimeUtc`), `machinegroups`
//!   (repeatable), `DeviceCreatedMachineTags` and `CloudCreatedMachineTags` (accepted, not
//!   applied: the model has no machine tags). Other parameters are ignored.
//! - The range applies to `LastProcessedTimeUtc` (the version's update time), **both bounds
//!   inclusive**: `sinceTimeUtc ≤ t ≤ untilTimeUtc`. Default: the last two hours up to now.
//!   `sinceTimeUtc` together with `ago` is refused (400), since the two name the lower bound.
//! - Each alert's version visible now, as one record per IOC (§1.5 "raw form", §1.6): `siem_parts`
//!   records with the same `AlertId` and `LastProcessedTimeUtc`, `AlertPart` 0.., distinct
//!   `IocUniqueId`, `FullId` = `{AlertId}:{IocUniqueId}` (stable across versions); one record by
//!   default. A bare JSON array, oldest `LastProcessedTimeUtc` first, then by `AlertId` and
//!   `AlertPart`. `limit` counts records.
//! - No rate limit is documented. The `throttle` fault answers 429 with a whole-seconds
//!   `Retry-After` (undocumented for this API); `server_error` answers its status; `partial` (no
//!   206 is documented here) answers 500; `malformed` and `drop` spoil the real answer.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value as Json;

use crate::EmuState;
use crate::faults::{self, FaultKind};
use crate::model::Alert;
use crate::odata::{parse_timestamp, query_pairs};
use crate::resource_auth::{AuthFailure, Stop, admit, signed_claims};
use crate::scenario::{Api, Region};
use crate::throttle::whole_seconds_retry_after;
use crate::wire::{ApiRequest, catch_all};
use crate::world::Tenant;

/// Routes of one exporter, nested under its prefix: `Some(region)` is that region's exporter
/// (`/siem-eu` …), `None` the exporter of each tenant's own region (`/siem`).
pub fn router(exporter: Option<Region>) -> Router<Arc<EmuState>> {
    catch_all(move |state: State<Arc<EmuState>>, req: ApiRequest| serve(state, req, exporter))
}

/// How far back the API looks when neither `sinceTimeUtc` nor `ago` is given (§1.5).
const DEFAULT_WINDOW_HOURS: i64 = 2;

fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

fn is_alerts_path(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(segs.as_slice(), [api, alerts]
        if api.eq_ignore_ascii_case("api")
            && (alerts.eq_ignore_ascii_case("alerts") || alerts.eq_ignore_ascii_case("alert")))
}

/// The request's parameters.
#[derive(Debug, Default, PartialEq)]
struct Params {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    ago: Option<Duration>,
    limit: Option<usize>,
    machine_groups: Vec<String>,
}

/// A SIEM time: ISO 8601 with or without offset (none means UTC), or a bare date.
fn parse_siem_time(s: &str) -> Option<DateTime<Utc>> {
    parse_timestamp(s).or_else(|| {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|n| n.and_utc())
    })
}

/// An ISO 8601 duration such as `PT10M`, `P1D`, `PT1H30M`, `P1W`, `PT0.5S`. Years and months
/// have no fixed length and are refused.
pub fn parse_iso_duration(s: &str) -> Option<Duration> {
    let rest = s.trim().strip_prefix(['P', 'p'])?;
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return None;
    }
    fn components(part: &str, units: &[(char, f64)]) -> Option<f64> {
        let mut total = 0.0;
        let mut num = String::new();
        let mut last_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let idx = units.iter().position(|(u, _)| u.eq_ignore_ascii_case(&c))?;
            // Units appear at most once, largest first.
            if idx < last_unit || num.is_empty() {
                return None;
            }
            last_unit = idx + 1;
            total += num.parse::<f64>().ok()? * units[idx].1;
            num.clear();
        }
        num.is_empty().then_some(total)
    }
    let mut secs = components(date, &[('W', 604_800.0), ('D', 86_400.0)])?;
    if let Some(t) = time {
        secs += components(t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    // A century is more than any retention period; larger values are refused, not overflowed.
    if !secs.is_finite() || secs > 3_153_600_000.0 {
        return None;
    }
    Some(Duration::milliseconds((secs * 1000.0).round() as i64))
}

fn parse_params(pairs: &[(String, String)]) -> Option<Params> {
    let mut p = Params::default();
    let once = |slot: bool| (!slot).then_some(());
    for (k, v) in pairs {
        match k.to_ascii_lowercase().as_str() {
            "sincetimeutc" => {
                once(p.since.is_some())?;
                p.since = Some(parse_siem_time(v)?);
            }
            "untiltimeutc" => {
                once(p.until.is_some())?;
                p.until = Some(parse_siem_time(v)?);
            }
            "ago" => {
                once(p.ago.is_some())?;
                p.ago = Some(parse_iso_duration(v)?);
            }
            "limit" => {
                once(p.limit.is_some())?;
                p.limit = Some(v.trim().parse().ok()?);
            }
            "machinegroups" => p.machine_groups.push(v.clone()),
            // Accepted and not applied: the model carries no machine tags.
            "devicecreatedmachinetags" | "cloudcreatedmachinetags" => {}
            _ => {}
        }
    }
    if p.since.is_some() && p.ago.is_some() {
        return None;
    }
    Some(p)
}

/// One record to serve: a copy of the alert (so the JSON is built after the world lock is
/// released), the index of the version served and the record's `AlertPart`.
type Record = (Alert, usize, usize);

/// The records the parameters select at `now`, oldest `LastProcessedTimeUtc` first (then by
/// alert id and `AlertPart`). `None` when the window cannot be computed (a bound outside the
/// calendar).
fn select(tenant: &Tenant, p: &Params, now: DateTime<Utc>) -> Option<Vec<Record>> {
    let since = match (p.since, p.ago) {
        (Some(s), _) => s,
        (None, Some(ago)) => now.checked_sub_signed(ago)?,
        (None, None) => now.checked_sub_signed(Duration::hours(DEFAULT_WINDOW_HOURS))?,
    };
    let until = p.until.unwrap_or(now);
    let mut rows: Vec<_> = tenant
        .alerts
        .iter()
        .filter_map(|a| a.current(now).map(|i| (a, i)))
        .filter(|(a, i)| (since..=until).contains(&a.versions[*i].updated))
        .filter(|(a, _)| {
            p.machine_groups.is_empty()
                || p.machine_groups
                    .iter()
                    .any(|g| g.eq_ignore_ascii_case(&a.device.rbac_group))
        })
        .collect();
    rows.sort_by(|(a, i), (b, j)| {
        (a.versions[*i].updated, &a.id).cmp(&(b.versions[*j].updated, &b.id))
    });
    let parts: Vec<(&Alert, usize, usize)> = rows
        .into_iter()
        .flat_map(|(a, i)| (0..a.siem_parts.max(1)).map(move |part| (a, i, part)))
        .collect();
    // "Most recent alerts will be retrieved based on the number defined" (§1.5): the limit
    // counts records, as the answer is "an array of alert objects" (**UNCONFIRMED** for
    // multi-part alerts), so it may keep only the last parts of the oldest alert kept.
    let skip = p.limit.map_or(0, |limit| parts.len().saturating_sub(limit));
    Some(
        parts[skip..]
            .iter()
            .map(|(a, i, part)| ((*a).clone(), *i, *part))
            .collect(),
    )
}

fn throttled(wait: StdDuration) -> Response {
    let mut r = empty(StatusCode::TOO_MANY_REQUESTS);
    if let Ok(v) = HeaderValue::from_str(&whole_seconds_retry_after(wait)) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Whether the token's tenant has the API turned off (a token that names no known tenant is
/// left to the regular checks).
fn switched_off(state: &EmuState, headers: &HeaderMap) -> bool {
    let Ok(claims) = signed_claims(state, headers) else {
        return false;
    };
    let world = state.world();
    world
        .tenant_by_id(&claims.tid)
        .is_some_and(|t| !t.switches.siem_enabled)
}

async fn serve(
    State(state): State<Arc<EmuState>>,
    req: ApiRequest,
    exporter: Option<Region>,
) -> Response {
    if !is_alerts_path(&req.path) {
        return empty(StatusCode::NOT_FOUND);
    }
    if switched_off(&state, &req.headers) {
        state.world().count_request(Api::Siem.name());
        return empty(StatusCode::NOT_FOUND);
    }
    let admitted = match admit(&state, &req.headers, Api::Siem).await {
        Ok(a) => a,
        Err(Stop::Auth(failure)) => return failure.respond(Api::Siem, state.now()),
        Err(Stop::Throttled { wait, .. }) => return throttled(wait),
        Err(Stop::Fault { fault, .. }) if fault.kind == FaultKind::Throttle => {
            return throttled(
                StdDuration::try_from_secs_f64(fault.retry_after).unwrap_or_default(),
            );
        }
        Err(Stop::Fault { fault, .. }) => return empty(fault.status),
    };
    let now = admitted.now;
    let fault = admitted.fault_kind();
    if fault == Some(FaultKind::Partial) {
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let Some(params) = parse_params(&query_pairs(req.query.as_deref())) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let records = {
        let mut world = state.world();
        let Some(tenant) = world.tenants.get_mut(&admitted.caller.tenant_id) else {
            return AuthFailure::UnknownTenant.respond(Api::Siem, now);
        };
        let Some(mut records) = select(tenant, &params, now) else {
            return empty(StatusCode::BAD_REQUEST);
        };
        if exporter.is_some_and(|r| r != tenant.region) {
            // Another region's exporter holds nothing of this tenant.
            records.clear();
        }
        if fault.is_none() {
            tenant.observe_served(records.iter().map(|(a, _, _)| a.id.as_str()), now);
        }
        records
    };
    let body = Json::Array(
        records
            .iter()
            .map(|(a, i, part)| a.siem_record(&a.versions[*i], *part))
            .collect(),
    );
    faults::serve_json(&body, fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations_read_as_documented() {
        assert_eq!(parse_iso_duration("PT10M"), Some(Duration::minutes(10)));
        assert_eq!(parse_iso_duration("P1D"), Some(Duration::days(1)));
        assert_eq!(parse_iso_duration("PT1H30M"), Some(Duration::minutes(90)));
        assert_eq!(parse_iso_duration("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(parse_iso_duration("P2W"), Some(Duration::days(14)));
        assert_eq!(
            parse_iso_duration("PT0.5S"),
            Some(Duration::milliseconds(500))
        );
        for bad in [
            "",
            "P",
            "PT",
            "10M",
            "PT10",
            "PTM",
            "P1Y",
            "P1M",
            "PT1M1H",
            "PT1H1H",
            "P1e9W",
            "P99999999999D",
        ] {
            assert_eq!(parse_iso_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_without_an_offset_are_utc() {
        let t = parse_siem_time("2016-09-12T00:00:00.000").expect("parses");
        assert_eq!(t.to_rfc3339(), "2016-09-12T00:00:00+00:00");
        assert_eq!(parse_siem_time("2016-09-12"), Some(t));
        assert_eq!(parse_siem_time("2016-09-12T02:00:00+02:00"), Some(t));
        assert_eq!(parse_siem_time("yesterday"), None);
    }

    #[test]
    fn parameters_are_case_insensitive_and_checked() {
        let p = |raw: &str| parse_params(&query_pairs(Some(raw)));
        let got = p(
            "SinceTimeUtc=2016-09-12T00:00:00.000&limit=20&machinegroups=A&machinegroups=B&foo=1",
        )
        .expect("valid");
        assert_eq!(got.limit, Some(20));
        assert_eq!(got.machine_groups, vec!["A".to_string(), "B".to_string()]);
        assert!(got.since.is_some());
        for (raw, valid) in [
            ("ago=PT10M", true),
            ("ago=PT10M&sinceTimeUtc=2016-09-12", false),
            ("limit=-1", false),
            ("limit=x", false),
            ("sinceTimeUtc=nope", false),
            ("ago=10 minutes", false),
            ("DeviceCreatedMachineTags=x&CloudCreatedMachineTags=y", true),
        ] {
            assert_eq!(p(raw).is_some(), valid, "{raw}");
        }
    }

    #[test]
    fn only_the_alerts_path_resolves() {
        assert!(is_alerts_path("api/alerts"));
        assert!(is_alerts_path("/API/Alerts/"));
        assert!(is_alerts_path("api/alert"));
        assert!(!is_alerts_path("api/alerts/x"));
        assert!(!is_alerts_path("alerts"));
    }
}
