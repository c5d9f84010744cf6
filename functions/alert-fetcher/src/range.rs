//! The `fetch` direct invoke: the alerts of a time range now, without moving the cursor, paged
//! under Lambda's 6 MB answer limit with an opaque `page_token`; `"format": "ocsf"` answers each
//! record's OCSF Detection Finding ([`shared::ocsf::map`]) instead of the record.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::domain::TenantId;
use shared::flows::Deps;
use shared::flows::range::fetch_range;
use shared::microsoft::alerts::{Window, parse_time};
use shared::record::AlertRecord;

use crate::{HandlerError, invalid, tenant};

/// A direct answer stays under this many bytes of JSON (Lambda's response limit is 6 MB).
pub const MAX_ANSWER_BYTES: usize = 5_500_000;

/// Largest `limit` of one `fetch` page.
pub const MAX_LIMIT: usize = 10_000;

/// `limit` when the invoke names none.
const DEFAULT_LIMIT: usize = 1000;

/// `{"action": "fetch", "tenant_id", "since", "until"?, "limit"?, "page_token"?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRange {
    tenant_id: String,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    page_token: Option<String>,
    /// `raw` (the records, default) or `ocsf`.
    format: Option<String>,
}

/// The alerts of a page: the records, or their OCSF rendering.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Alerts {
    /// `mssp.alert/1` records.
    Raw(Vec<AlertRecord>),
    /// OCSF Detection Findings, one per record.
    Ocsf(Vec<serde_json::Value>),
}

impl Alerts {
    /// How many.
    pub fn len(&self) -> usize {
        match self {
            Alerts::Raw(a) => a.len(),
            Alerts::Ocsf(a) => a.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One page of a range: at most `limit` records after the previous page's last.
#[derive(Debug, Serialize)]
pub struct RangePage {
    /// The tenant asked for.
    pub tenant_id: TenantId,
    /// Start of the range (inclusive).
    pub since: DateTime<Utc>,
    /// End of the range (exclusive).
    pub until: DateTime<Utc>,
    /// `alerts.len()`.
    pub count: usize,
    /// The records of this page, by (version, id), or their OCSF rendering.
    pub alerts: Alerts,
    /// Pass it back as `page_token` for the next page; `None` on the last.
    pub next_page_token: Option<String>,
}

/// Where the next page starts: after (version, id), inside the same window.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct PageToken {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    after_version: String,
    after_id: String,
}

impl PageToken {
    fn decode(token: &str) -> Result<PageToken, HandlerError> {
        URL_SAFE_NO_PAD
            .decode(token.as_bytes())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("page_token is not one this function issued"))
    }

    fn encode(&self) -> Option<String> {
        serde_json::to_vec(self)
            .ok()
            .map(|b| URL_SAFE_NO_PAD.encode(b))
    }
}

/// A checked `fetch`: whose, which window, how many, and after which record.
struct Query {
    tenant_id: TenantId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
    after: Option<PageToken>,
    ocsf: bool,
}

impl Query {
    /// `req` checked; `until` defaults to `now`, a page token brings its own window.
    fn new(req: FetchRange, now: DateTime<Utc>) -> Result<Query, HandlerError> {
        let tenant_id = tenant(&req.tenant_id)?;
        let ocsf = match req.format.as_deref() {
            None | Some("raw") => false,
            Some("ocsf") => true,
            Some(_) => return Err(invalid("format must be raw or ocsf")),
        };
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(invalid(format!("limit must be 1..={MAX_LIMIT}")));
        }
        let after = req
            .page_token
            .as_deref()
            .map(PageToken::decode)
            .transpose()?;
        let (since, until) = match &after {
            Some(t) => (t.since, t.until),
            None => {
                let since = req
                    .since
                    .as_deref()
                    .ok_or_else(|| invalid("since is required"))?;
                let since = time("since", since)?;
                let until = req.until.as_deref().map(|u| time("until", u)).transpose()?;
                (since, until.unwrap_or(now))
            }
        };
        if since >= until {
            return Err(invalid("since must be before until"));
        }
        Ok(Query {
            tenant_id,
            since,
            until,
            limit,
            after,
            ocsf,
        })
    }

    /// The window to read: from the last page's version on (alerts are ordered by it).
    fn window(&self) -> Window {
        let from = self
            .after
            .as_ref()
            .and_then(|t| parse_time(&t.after_version))
            .map_or(self.since, |v| v.max(self.since));
        Window {
            since: from,
            until: self.until,
        }
    }

    fn is_new(&self, r: &AlertRecord) -> bool {
        self.after
            .as_ref()
            .is_none_or(|t| (&r.alert_version, &r.alert_id) > (&t.after_version, &t.after_id))
    }

    /// The records of this page and, when more remain, the token of the next.
    fn page(&self, all: Vec<AlertRecord>) -> Result<(Alerts, Option<PageToken>), HandlerError> {
        let (raw, next) = if self.ocsf {
            self.page_of(all, |r| serde_json::to_vec(&shared::ocsf::map(r)))?
        } else {
            self.page_of(all, serde_json::to_vec)?
        };
        let alerts = if self.ocsf {
            Alerts::Ocsf(raw.iter().map(shared::ocsf::map).collect())
        } else {
            Alerts::Raw(raw)
        };
        Ok((alerts, next))
    }

    /// The records of this page, `rendered` measuring each as it will be answered.
    fn page_of(
        &self,
        all: Vec<AlertRecord>,
        rendered: impl Fn(&AlertRecord) -> serde_json::Result<Vec<u8>>,
    ) -> Result<(Vec<AlertRecord>, Option<PageToken>), HandlerError> {
        let mut alerts: Vec<AlertRecord> = Vec::new();
        let mut size = 256;
        for r in all.into_iter().filter(|r| self.is_new(r)) {
            let bytes = rendered(&r).map(|b| b.len()).unwrap_or(0) + 1;
            if alerts.len() >= self.limit || size + bytes > MAX_ANSWER_BYTES {
                let last = alerts
                    .last()
                    .ok_or_else(|| invalid("one alert is larger than an answer may be"))?;
                let next = PageToken {
                    since: self.since,
                    until: self.until,
                    after_version: last.alert_version.clone(),
                    after_id: last.alert_id.clone(),
                };
                return Ok((alerts, Some(next)));
            }
            size += bytes;
            alerts.push(r);
        }
        Ok((alerts, None))
    }
}

pub(crate) fn time(field: &str, s: &str) -> Result<DateTime<Utc>, HandlerError> {
    parse_time(s).ok_or_else(|| invalid(format!("{field} is not an RFC 3339 time")))
}

/// Serves a `fetch`: reads the window (no cursor move) and answers one page of it.
pub async fn fetch(
    deps: &Deps,
    req: FetchRange,
    stop: tokio::time::Instant,
) -> Result<RangePage, HandlerError> {
    let query = Query::new(req, deps.clock.now())?;
    let all = fetch_range(deps, &query.tenant_id, query.window(), stop).await?;
    let (alerts, next) = query.page(all)?;
    Ok(RangePage {
        tenant_id: query.tenant_id,
        since: query.since,
        until: query.until,
        count: alerts.len(),
        alerts,
        next_page_token: next.and_then(|t| t.encode()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "11111111-1111-4111-8111-111111111111";

    fn req(json: serde_json::Value) -> Result<FetchRange, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn a_fetch_is_checked_before_anything_is_read() {
        let now = Utc::now();
        let ok = |v| Query::new(req(v).expect("shape"), now);
        let q = ok(serde_json::json!({"tenant_id": TENANT, "since": "2026-01-01T00:00:00Z"}))
            .expect("valid");
        assert_eq!((q.limit, q.until), (DEFAULT_LIMIT, now));
        for (bad, says) in [
            (
                serde_json::json!({"tenant_id": "x", "since": "2026-01-01T00:00:00Z"}),
                "GUID",
            ),
            (
                serde_json::json!({"tenant_id": TENANT}),
                "since is required",
            ),
            (
                serde_json::json!({"tenant_id": TENANT, "since": "yesterday"}),
                "RFC 3339",
            ),
            (
                serde_json::json!({"tenant_id": TENANT, "since": "2026-01-01T00:00:00Z", "limit": 0}),
                "limit",
            ),
            (
                serde_json::json!({"tenant_id": TENANT, "since": "2026-01-01T00:00:00Z", "limit": 10_001}),
                "limit",
            ),
            (
                serde_json::json!({"tenant_id": TENANT, "page_token": "garbage"}),
                "page_token",
            ),
            (
                serde_json::json!({"tenant_id": TENANT, "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
                "before until",
            ),
        ] {
            let e = ok(bad).map(|_| ()).expect_err("refused");
            assert_eq!(e.error_type(), "InvalidEvent");
            assert!(e.to_string().contains(says), "{e}");
        }
        assert!(req(serde_json::json!({"tenant_id": TENANT, "extra": 1})).is_err());
    }

    #[test]
    fn a_page_token_round_trips_and_carries_its_window() {
        let t = PageToken {
            since: "2026-01-01T00:00:00Z".parse().expect("time"),
            until: "2026-01-02T00:00:00Z".parse().expect("time"),
            after_version: "2026-01-01T12:00:00Z".into(),
            after_id: "a-1".into(),
        };
        let token = t.encode().expect("encodes");
        assert_eq!(PageToken::decode(&token).expect("decodes"), t);
        let q = Query::new(
            req(serde_json::json!({"tenant_id": TENANT, "page_token": token, "since": "1999-01-01T00:00:00Z"}))
                .expect("shape"),
            Utc::now(),
        )
        .expect("valid");
        assert_eq!((q.since, q.until), (t.since, t.until));
        assert_eq!(
            q.window().since,
            "2026-01-01T12:00:00Z"
                .parse::<DateTime<Utc>>()
                .expect("time")
        );
    }
}
