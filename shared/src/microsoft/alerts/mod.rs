//! Alert sources: Microsoft Graph `security/alerts_v2`, Defender for Endpoint `/api/alerts` and
//! the legacy SIEM API behind one [`AlertSource`] trait. A source answers one page of a time
//! window on the API's update timestamp at a time, from a [`Position`] that says where the page
//! starts, and says where the next one starts; the fetch flow drives the pages, so a drain can
//! stop after any page and resume there later (DESIGN §6 Fetch step 2), and memory does not grow
//! with the backlog. Pages are parsed once, without building a JSON tree: each alert's bytes are
//! kept verbatim ([`RawAlert`], a range of the page) and only its id and times are read
//! ([`raw`]).

pub mod odata;
pub mod raw;
pub mod siem;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use self::raw::RawAlert;
use crate::domain::{AlertApi, TenantId};
use crate::secret::AccessToken;

/// One alert version as an API returned it.
#[derive(Debug, Clone)]
pub struct SourceAlert {
    /// The API's alert id.
    pub id: String,
    /// What identifies the record uniquely within the alert's versions: the alert id, except for
    /// the SIEM API, whose records of one alert (one per detection part) each have a `FullId`.
    pub record_id: String,
    /// The version: the update timestamp (`lastUpdateDateTime`, `lastUpdateTime`,
    /// `LastProcessedTimeUtc`).
    pub version: DateTime<Utc>,
    /// Creation time, when the API gives one.
    pub created: Option<DateTime<Utc>>,
    /// The alert exactly as returned: its bytes, untouched.
    pub raw: RawAlert,
}

impl SourceAlert {
    /// `<tenant>:<record id>:<version>`, stable across runs: the record's dedup key.
    pub fn dedup_key(&self, tenant: &TenantId) -> String {
        dedup_key(tenant, &self.record_id, self.version)
    }

    /// The key an earlier release gave a SIEM record (`<tenant>:<AlertId>:<version>`), when it
    /// differs from [`SourceAlert::dedup_key`]: cursors written then hold keys of this form.
    pub fn legacy_key(&self, tenant: &TenantId) -> Option<String> {
        (self.record_id != self.id).then(|| dedup_key(tenant, &self.id, self.version))
    }
}

/// `<tenant>:<record id>:<version with 7 fractional digits>`.
pub fn dedup_key(tenant: &TenantId, id: &str, version: DateTime<Utc>) -> String {
    let tenant = tenant.as_str();
    let mut key = String::with_capacity(tenant.len() + id.len() + 30);
    key.push_str(tenant);
    key.push(':');
    key.push_str(id);
    key.push(':');
    push_fmt7(&mut key, version);
    key
}

/// A half-open window `[since, until)` on the update timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Inclusive start.
    pub since: DateTime<Utc>,
    /// Exclusive end.
    pub until: DateTime<Utc>,
}

/// Where a page of a window starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// The window's first page.
    Start,
    /// The API's own next link (Graph `@odata.nextLink`, full URL on the API's origin).
    Link(String),
    /// Alerts created at or before this time (the APIs list newest-created first).
    AtOrBelow(DateTime<Utc>),
    /// Alerts created strictly before this time (after their tie group was paged through).
    Below(DateTime<Utc>),
    /// Inside the tie group of this creation time, from this `$skip`.
    Tie(DateTime<Utc>, usize),
}

/// One page of a window, as the API answered it.
#[derive(Debug)]
pub struct Page {
    /// The alerts, in the API's order (repeats across pages are possible).
    pub alerts: Vec<SourceAlert>,
    /// The page's next link, if the API gave one.
    pub next_link: Option<String>,
    /// Whether the page is as large as asked: without a next link, more may follow.
    pub full: bool,
    /// `Some(warning)` for a `206 Partial Content` answer: some provider failed, the alerts it
    /// holds are real but the page is not whole; it is asked for again.
    pub partial: Option<String>,
}

/// Why a drain stopped. Variants are shaped by what the fetch flow does next; none of them
/// advances the watermark past what was completely drained. Each `Display` is one sentence for
/// the operator: what happened, and what happens or what to do next.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The deadline came before the window was drained: commit what is complete, continue later.
    #[error(
        "the run's deadline came before the window was drained; what was delivered is committed \
         and the next run continues"
    )]
    Deadline,
    /// Still throttled after every retry.
    #[error(
        "the API kept answering 429 Too Many Requests after every retry; the next run continues \
         where this one stopped"
    )]
    Throttled,
    /// Server errors, timeouts, dropped connections or unreadable pages after every retry. The
    /// text is a clause about the API ("the API dropped the connection").
    #[error("{0}; the next run retries")]
    Transient(String),
    /// The API ended the listing of a window with fewer alerts than it counts in it: a page
    /// shorter than asked for came without a next link. The window is listed again.
    #[error(
        "the API ended the listing after {listed} of the {counted} alerts it counts in the window \
         (a short page without a next link); the next run lists the window again"
    )]
    ShortListing {
        /// Distinct alerts listed.
        listed: u64,
        /// What the API's count said.
        counted: u64,
    },
    /// The access token was refused (401).
    #[error(
        "the API refused the access token (401): run `mssp refresh ID --force`, and if that does \
         not help, send the customer's admin a new consent link (`mssp consent-link ID`)"
    )]
    Unauthorized,
    /// The token lacks the permission (403): the tenant must grant it.
    #[error(
        "the API refused access (403, {0}): the customer's admin must grant the app this API's \
         permission, so send them a new consent link (`mssp consent-link ID`)"
    )]
    Forbidden(String),
    /// The API is gone for this tenant (404/410; e.g. the SIEM API turned off).
    #[error(
        "the API answered {0}, so it is not available for this tenant (Microsoft may have turned \
         the SIEM API off): remove the tenant and add it again with `--api graph`"
    )]
    Gone(u16),
    /// The API refused our query (4xx).
    #[error(
        "the API rejected the query (HTTP {status}, {detail}); the next run tries again, and if \
         it keeps failing, report it with the tenant's API"
    )]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Excerpt of the error body.
        detail: String,
    },
    /// A `206 Partial Content` answer: some provider failed; the window is not complete.
    #[error(
        "the API kept answering 206 Partial Content (a Microsoft provider failed: {0}); what \
         arrived is delivered and the next run asks again"
    )]
    Partial(String),
    /// A page parsed as JSON but not as the API's shape.
    #[error(
        "a page did not have the API's shape ({0}); nothing after it is committed, the next run \
         tries again, and if it keeps failing, report it with the tenant's API"
    )]
    Malformed(String),
    /// The API cannot be made to list every alert of the window (e.g. more alerts share one
    /// timestamp than its paging can reach).
    #[error(
        "the API's paging cannot reach every alert of the window ({0}), so the tenant's fetch \
         stops at it: report it with the tenant's API"
    )]
    Undrainable(String),
    /// The page handler (the sink) failed.
    #[error("the alerts could not be written: {0}")]
    Delivery(crate::ports::StoreError),
    /// The page handler stopped the drain on purpose (a simulated process kill in tests).
    #[error("the run was interrupted")]
    Interrupted,
}

/// Counts of one drain.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DrainStats {
    /// Alerts received (distinct within the drain).
    pub alerts: u64,
    /// Pages received.
    pub pages: u64,
    /// HTTP-level counts.
    pub http: crate::microsoft::http::RequestStats,
}

/// One alert API of one tenant.
#[async_trait]
pub trait AlertSource: Send + Sync {
    /// Which API.
    fn api(&self) -> AlertApi;

    /// How many alerts `window` holds, if the API can count (Graph and MDE can; SIEM cannot).
    async fn count(
        &mut self,
        token: &AccessToken,
        window: Window,
        deadline: tokio::time::Instant,
        stats: &mut DrainStats,
    ) -> Result<Option<u64>, FetchError>;

    /// The page of `window` that starts `at`. Waiting (budget, `Retry-After`, backoff) never
    /// runs past `deadline`.
    async fn page(
        &mut self,
        token: &AccessToken,
        window: Window,
        at: &Position,
        deadline: tokio::time::Instant,
        stats: &mut DrainStats,
    ) -> Result<Page, FetchError>;

    /// Where the page after `page` (which started `at`) starts, or `None` when the window is
    /// drained. `fresh` is how many of its alerts the drain had not listed before, and
    /// `oldest_created` the oldest creation time on the page.
    fn next(
        &self,
        at: &Position,
        page: &Page,
        fresh: usize,
        oldest_created: Option<DateTime<Utc>>,
    ) -> Result<Option<Position>, FetchError>;
}

/// Formats a time as Microsoft does in alert payloads: 7 fractional digits and `Z`.
pub fn fmt7(t: DateTime<Utc>) -> String {
    let mut s = String::with_capacity(28);
    push_fmt7(&mut s, t);
    s
}

/// Appends [`fmt7`] of `t` to `out`. Years 0 to 9999 (every time an API sends) are written digit
/// by digit — this runs several times per alert — and any other time (or a leap second) through
/// `chrono`.
pub fn push_fmt7(out: &mut String, t: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let ticks = t.timestamp_subsec_nanos() / 100;
    let year = t.year();
    if !(0..=9999).contains(&year) || ticks >= 10_000_000 {
        out.push_str(&format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S")));
        return;
    }
    let mut push = |sep: Option<char>, n: u32, width: u32| {
        out.extend(sep);
        for p in (0..width).rev() {
            out.push(char::from(b'0' + (n / 10u32.pow(p) % 10) as u8));
        }
    };
    push(None, year as u32, 4);
    push(Some('-'), t.month(), 2);
    push(Some('-'), t.day(), 2);
    push(Some('T'), t.hour(), 2);
    push(Some(':'), t.minute(), 2);
    push(Some(':'), t.second(), 2);
    push(Some('.'), ticks, 7);
    out.push('Z');
}

/// Parses an API timestamp: RFC 3339 with any number of fractional digits; a timestamp without
/// an offset (the SIEM API's samples) is UTC.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// `base` joined with `path`, keeping any path prefix of `base` (e.g. an emulator's `/graph`).
pub fn join(base: &url::Url, path: &str) -> url::Url {
    let mut u = base.clone();
    let prefix = u.path().trim_end_matches('/').to_string();
    u.set_path(&format!("{prefix}/{path}"));
    u.set_query(None);
    u
}

/// The smallest step of Microsoft timestamps (100 ns).
pub fn tick() -> chrono::Duration {
    chrono::Duration::nanoseconds(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_of_any_precision_normalize_to_seven_digits() {
        let t = parse_time("2020-07-20T10:53:50.19Z").expect("t");
        assert_eq!(fmt7(t), "2020-07-20T10:53:50.1900000Z");
        let t = parse_time("2016-09-12T00:00:00.000").expect("no offset is UTC");
        assert_eq!(fmt7(t), "2016-09-12T00:00:00.0000000Z");
        assert!(parse_time("yesterday").is_none());
        for s in [
            "0001-01-01T00:00:00.0000000Z",
            "1999-12-31T23:59:59.9999999Z",
            "2026-03-01T09:05:07.0000100Z",
        ] {
            assert_eq!(fmt7(parse_time(s).expect("t")), s);
        }
        let far = chrono::NaiveDate::from_ymd_opt(12345, 1, 2)
            .and_then(|d| d.and_hms_nano_opt(3, 4, 5, 500_000_000))
            .expect("t")
            .and_utc();
        assert_eq!(fmt7(far), "+12345-01-02T03:04:05.5000000Z");
        let tid = TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid");
        assert_eq!(
            dedup_key(
                &tid,
                "da1",
                parse_time("2021-05-02T14:19:01.3266667Z").expect("t")
            ),
            "11111111-1111-4111-8111-111111111111:da1:2021-05-02T14:19:01.3266667Z"
        );
    }
}
