//! The legacy SIEM API (`wdatp-alertexporter-*`, reference §1): deprecated by Microsoft since
//! 2023-12-31 and liable to be turned off; kept because existing MSSP customers still run on it.
//! It answers a bare JSON array of every detection whose `LastProcessedTimeUtc` lies in
//! `[sinceTimeUtc, untilTimeUtc]` (both inclusive), with no paging, so one request drains a
//! window. The answer is delivered as one batch: it arrives whole, so it is kept whole (a run
//! stopped half-way through handing it on would have dropped versions it was shown). A record is
//! keyed by its `FullId`: one alert has several records (one per detection part or IOC), which
//! may share a `LastProcessedTimeUtc`.

use std::sync::Once;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use url::Url;

use super::{
    AlertSource, DrainStats, FetchError, Page, Position, SourceAlert, Window, fmt7, raw, tick,
};
use crate::domain::AlertApi;
#[cfg(test)]
use crate::domain::TenantId;
use crate::microsoft::http::{OnPartial, RequestBudget, Requester, RetryPolicy, Unreadable};
use crate::secret::AccessToken;

static DEPRECATION: Once = Once::new();

/// The SIEM API source of one tenant.
pub struct SiemSource {
    base: Url,
    requests: Requester,
}

impl SiemSource {
    /// A source at `base` (e.g. `https://wdatp-alertexporter-eu.windows.com`). Logs Microsoft's
    /// deprecation once per process.
    pub fn new(
        base: Url,
        http: reqwest::Client,
        budget: RequestBudget,
        policy: RetryPolicy,
    ) -> Self {
        DEPRECATION.call_once(|| {
            tracing::warn!(
                api = "siem",
                "the legacy SIEM API is deprecated since 2023-12-31 and Microsoft may turn it off at any time; move tenants to the graph API"
            );
        });
        SiemSource {
            base,
            requests: Requester {
                http,
                budget,
                policy,
            },
        }
    }
}

impl SiemSource {
    /// `api/alerts` asking for the detections updated in `window` (`untilTimeUtc` is inclusive,
    /// so it names the window's last tick).
    fn window_url(&self, window: &Window) -> Url {
        let mut u = super::join(&self.base, "api/alerts");
        u.query_pairs_mut()
            .append_pair("sinceTimeUtc", &fmt7(window.since))
            .append_pair("untilTimeUtc", &fmt7(window.until - tick()));
        u
    }

    /// Whether this exporter holds any detection of the token's tenant updated in `window`
    /// (one request, `limit=1`): how a tenant read at the wrong region's exporter is told.
    pub async fn holds_any(
        &mut self,
        token: &AccessToken,
        window: Window,
        deadline: tokio::time::Instant,
        stats: &mut DrainStats,
    ) -> Result<bool, FetchError> {
        let mut u = self.window_url(&window);
        u.query_pairs_mut().append_pair("limit", "1");
        let answer = self
            .requests
            .getter(deadline, &mut stats.http)
            .get(&u, token, OnPartial::Retry, parse_answer)
            .await?;
        Ok(!answer.value.alerts.is_empty())
    }
}

/// The fields of a detection the fetch reads: `AlertId`, `FullId`, `LastProcessedTimeUtc`,
/// `AlertTime`.
const FIELDS: [&str; 4] = ["AlertId", "FullId", "LastProcessedTimeUtc", "AlertTime"];

/// A bare JSON array of detections, read in one pass, each kept verbatim. Records repeated in
/// one answer (same `FullId` and `LastProcessedTimeUtc`) are kept once.
fn parse_answer(body: Vec<u8>) -> Result<Page, Unreadable> {
    let page = Arc::new(String::from_utf8(body).map_err(|_| Unreadable::NotJson)?);
    let items = raw::array_page(&page, &FIELDS)?;
    let mut seen = HashSet::new();
    let mut alerts = Vec::with_capacity(items.len());
    for item in &items {
        let a = parse_detection(item, &page)?;
        if seen.insert((a.record_id.clone(), a.version)) {
            alerts.push(a);
        }
    }
    Ok(Page {
        alerts,
        next_link: None,
        full: false,
        partial: None,
    })
}

/// One detection: `AlertId` is the alert, `FullId` the record's unique key (reference §1.6;
/// several records — `AlertPart`s, IOCs — share one `AlertId`), `LastProcessedTimeUtc` the
/// version.
fn parse_detection(item: &raw::Item<'_, 4>, page: &Arc<String>) -> Result<SourceAlert, Unreadable> {
    let id = item
        .key(0, 256)
        .ok_or_else(|| Unreadable::Shape("a detection has no AlertId".into()))?;
    let version = item.time(2).ok_or_else(|| {
        Unreadable::Shape(format!("detection {id} has no valid LastProcessedTimeUtc"))
    })?;
    let record_id = item.key(1, 512).unwrap_or_else(|| id.clone());
    Ok(SourceAlert {
        record_id,
        id,
        version,
        created: item.time(3),
        raw: item.raw(page),
    })
}

#[async_trait]
impl AlertSource for SiemSource {
    fn api(&self) -> AlertApi {
        AlertApi::Siem
    }

    async fn count(
        &mut self,
        _: &AccessToken,
        _: Window,
        _: tokio::time::Instant,
        _: &mut DrainStats,
    ) -> Result<Option<u64>, FetchError> {
        Ok(None)
    }

    /// The whole window in one request: the API has no paging.
    async fn page(
        &mut self,
        token: &AccessToken,
        window: Window,
        _: &Position,
        deadline: tokio::time::Instant,
        stats: &mut DrainStats,
    ) -> Result<Page, FetchError> {
        let u = self.window_url(&window);
        let answer = self
            .requests
            .getter(deadline, &mut stats.http)
            .get(&u, token, OnPartial::Retry, parse_answer)
            .await?;
        stats.pages += 1;
        Ok(answer.value)
    }

    fn next(
        &self,
        _: &Position,
        _: &Page,
        _: usize,
        _: Option<DateTime<Utc>>,
    ) -> Result<Option<Position>, FetchError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_one_alert_are_keyed_by_their_full_id() {
        let body = br#"[
            {"AlertId":"da1","FullId":"da1:ioc-a","AlertPart":0,"LastProcessedTimeUtc":"2020-09-30T14:11:44.0779765Z","AlertTime":"2020-09-30T14:09:20.35743Z"},
            {"AlertId":"da1","FullId":"da1:ioc-b","AlertPart":1,"LastProcessedTimeUtc":"2020-09-30T14:11:44.0779765Z","AlertTime":"2020-09-30T14:09:20.35743Z"},
            {"AlertId":"da1","FullId":"da1:ioc-b","AlertPart":1,"LastProcessedTimeUtc":"2020-09-30T14:11:44.0779765Z","AlertTime":"2020-09-30T14:09:20.35743Z"},
            {"AlertId":"da2","LastProcessedTimeUtc":"2020-09-30T14:11:44.0779765Z"}
        ]"#;
        let page = parse_answer(body.to_vec()).expect("ok");
        assert!(
            page.alerts[0]
                .raw
                .get()
                .starts_with(r#"{"AlertId":"da1","FullId":"da1:ioc-a""#)
        );
        assert!(page.alerts[2].raw.get().ends_with(r#"14:11:44.0779765Z"}"#));
        let ids: Vec<_> = page
            .alerts
            .iter()
            .map(|a| (a.id.as_str(), a.record_id.as_str()))
            .collect();
        assert_eq!(
            ids,
            [("da1", "da1:ioc-a"), ("da1", "da1:ioc-b"), ("da2", "da2")]
        );
        let tid = TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid");
        assert_eq!(
            page.alerts[0].legacy_key(&tid).as_deref(),
            Some("11111111-1111-4111-8111-111111111111:da1:2020-09-30T14:11:44.0779765Z")
        );
        assert_eq!(page.alerts[2].legacy_key(&tid), None);
        assert!(matches!(
            parse_answer(b"{}".to_vec()),
            Err(Unreadable::Shape(_))
        ));
        assert!(matches!(
            parse_answer(b"[{".to_vec()),
            Err(Unreadable::NotJson)
        ));
    }
}
