//! The two OData alert APIs — Microsoft Graph `security/alerts_v2` and Defender for Endpoint
//! `/api/alerts` — drained the same way (reference §2.3, §3.2):
//!
//! 1. Count the window (`$count`), then list it with `$filter` on the update timestamp and the
//!    largest page the API allows (Graph clamps `$top` at 1,000; MDE at 10,000).
//! 2. Follow `@odata.nextLink` when present (only to the API's own origin: the token never goes
//!    elsewhere).
//! 3. When a full page comes without a link — the link suppressed, cut off past a `$skip` depth,
//!    or never given (MDE with `$top`) — continue by time boundary instead of `$skip`: the APIs
//!    list newest-created first, so the rest of the window is `… and createdDateTime le <oldest
//!    creation time seen>`; alerts repeated at the boundary are dropped by id. A whole page that
//!    shares one creation time is paged through with `… eq <that time>` and `$skip` (Graph accepts
//!    `$skip` up to 500), then the drain continues `lt` it. Any number of alerts may share one
//!    update timestamp; a window where more than `$skip` limit + page share one creation time
//!    too is reported undrainable rather than silently cut.
//! 4. Check completeness: at least as many distinct alerts as counted (recounted once, since
//!    alerts updated meanwhile leave the window legitimately). Otherwise the drain fails and the
//!    watermark stays; the next run drains again and deduplicates.

use std::collections::HashSet;

use async_trait::async_trait;
use serde_json::Value;
use url::Url;

use super::{
    AlertSource, DrainStats, FetchError, PageHandler, SourceAlert, Window, fmt7, parse_time,
};
use crate::domain::AlertApi;
use crate::microsoft::http::{Getter, RequestBudget, RetryPolicy};
use crate::secret::AccessToken;

/// Which OData API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Graph `security/alerts_v2`.
    Graph,
    /// Defender for Endpoint `/api/alerts`.
    Mde,
}

impl Flavor {
    fn list_path(self) -> &'static str {
        match self {
            Flavor::Graph => "v1.0/security/alerts_v2",
            Flavor::Mde => "api/alerts",
        }
    }

    fn updated(self) -> &'static str {
        match self {
            Flavor::Graph => "lastUpdateDateTime",
            Flavor::Mde => "lastUpdateTime",
        }
    }

    /// The deepest `$skip` the API accepts (Graph: 500, per the security API's documented limit;
    /// MDE: no documented limit).
    fn max_skip(self) -> usize {
        match self {
            Flavor::Graph => 500,
            Flavor::Mde => usize::MAX / 2,
        }
    }

    fn created(self) -> &'static str {
        match self {
            Flavor::Graph => "createdDateTime",
            Flavor::Mde => "alertCreationTime",
        }
    }
}

/// How a drain continues when a full page comes without a next link.
#[derive(Debug, Clone, Copy)]
enum Continue {
    /// At or below this creation time (the first query is the same as at-or-below the end).
    AtOrBelow(chrono::DateTime<chrono::Utc>),
    /// Strictly below this creation time (after its tie group was paged through).
    Below(chrono::DateTime<chrono::Utc>),
    /// Inside the tie group of this creation time, from this `$skip`.
    Tie(chrono::DateTime<chrono::Utc>, usize),
}

/// A Graph or MDE alert source for one tenant.
pub struct ODataSource {
    flavor: Flavor,
    base: Url,
    http: reqwest::Client,
    budget: RequestBudget,
    page_size: usize,
    policy: RetryPolicy,
}

impl ODataSource {
    /// A source at `base` (e.g. `https://graph.microsoft.com`), with pages of `page_size`, a
    /// request `budget` and a retry `policy`.
    pub fn new(
        flavor: Flavor,
        base: Url,
        http: reqwest::Client,
        budget: RequestBudget,
        page_size: usize,
        policy: RetryPolicy,
    ) -> Self {
        ODataSource {
            flavor,
            base,
            http,
            budget,
            page_size: page_size.max(1),
            policy,
        }
    }

    fn url(&self, path: &str) -> Url {
        super::join(&self.base, path)
    }

    fn window_filter(&self, w: &Window) -> String {
        let p = self.flavor.updated();
        format!("{p} ge {} and {p} lt {}", fmt7(w.since), fmt7(w.until))
    }

    fn list_url(&self, filter: &str) -> Url {
        let mut u = self.url(self.flavor.list_path());
        u.query_pairs_mut()
            .append_pair("$filter", filter)
            .append_pair("$top", &self.page_size.to_string());
        u
    }

    /// Counts the alerts whose update time is in `window`.
    pub async fn count_window(
        &mut self,
        token: &AccessToken,
        window: Window,
        deadline: tokio::time::Instant,
        stats: &mut DrainStats,
    ) -> Result<u64, FetchError> {
        let filter = self.window_filter(&window);
        let mut u = match self.flavor {
            Flavor::Graph => {
                let mut u = self.url(self.flavor.list_path());
                u.query_pairs_mut()
                    .append_pair("$filter", &filter)
                    .append_pair("$count", "true")
                    .append_pair("$top", "1");
                u
            }
            Flavor::Mde => self.url("api/alerts/$count"),
        };
        if self.flavor == Flavor::Mde {
            u.query_pairs_mut().append_pair("$filter", &filter);
        }
        let mut g = Getter {
            http: &self.http,
            budget: &mut self.budget,
            deadline,
            policy: self.policy,
            stats: &mut stats.http,
        };
        let a = g.get(&u, token, is_json).await?;
        if a.status.as_u16() == 206 {
            return Err(FetchError::Partial(
                a.warning.unwrap_or_else(|| "no Warning header".into()),
            ));
        }
        let v: Value = serde_json::from_slice(&a.body)
            .map_err(|_| FetchError::Malformed("the count is not JSON".into()))?;
        let n = match self.flavor {
            Flavor::Graph => v.get("@odata.count").and_then(Value::as_u64),
            Flavor::Mde => v.as_u64(),
        };
        n.ok_or_else(|| FetchError::Malformed("the answer carries no count".into()))
    }

    fn parse_alert(&self, raw: Value) -> Result<SourceAlert, FetchError> {
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| FetchError::Malformed("an alert has no id".into()))?
            .to_string();
        let version = raw
            .get(self.flavor.updated())
            .and_then(Value::as_str)
            .and_then(parse_time)
            .ok_or_else(|| {
                FetchError::Malformed(format!("alert {id} has no valid {}", self.flavor.updated()))
            })?;
        let created = raw
            .get(self.flavor.created())
            .and_then(Value::as_str)
            .and_then(parse_time);
        Ok(SourceAlert {
            id,
            version,
            created,
            raw,
        })
    }
}

fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// A page's alerts and its next link.
fn split_page(body: &[u8]) -> Result<(Vec<Value>, Option<String>), FetchError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| FetchError::Malformed("the page is not JSON".into()))?;
    let Value::Object(mut m) = v else {
        return Err(FetchError::Malformed(
            "the page is not a JSON object".into(),
        ));
    };
    let next = m
        .get("@odata.nextLink")
        .and_then(Value::as_str)
        .map(str::to_string);
    match m.remove("value") {
        Some(Value::Array(items)) => Ok((items, next)),
        _ => Err(FetchError::Malformed("the page has no value array".into())),
    }
}

#[async_trait]
impl AlertSource for ODataSource {
    fn api(&self) -> AlertApi {
        match self.flavor {
            Flavor::Graph => AlertApi::Graph,
            Flavor::Mde => AlertApi::Mde,
        }
    }

    async fn count(
        &mut self,
        token: &AccessToken,
        window: Window,
        deadline: tokio::time::Instant,
        stats: &mut DrainStats,
    ) -> Result<Option<u64>, FetchError> {
        self.count_window(token, window, deadline, stats)
            .await
            .map(Some)
    }

    async fn drain(
        &mut self,
        token: &AccessToken,
        window: Window,
        deadline: tokio::time::Instant,
        handler: &mut dyn PageHandler,
        stats: &mut DrainStats,
    ) -> Result<(), FetchError> {
        let expected = self.count_window(token, window, deadline, stats).await?;
        let base_filter = self.window_filter(&window);
        let mut url = self.list_url(&base_filter);
        let mut mode = Continue::AtOrBelow(window.until);
        let mut seen: HashSet<String> = HashSet::new();
        loop {
            let answer = {
                let mut g = Getter {
                    http: &self.http,
                    budget: &mut self.budget,
                    deadline,
                    policy: self.policy,
                    stats: &mut stats.http,
                };
                g.get(&url, token, is_json).await?
            };
            let (items, next) = split_page(&answer.body)?;
            let full = items.len() >= self.page_size;
            let mut fresh = Vec::with_capacity(items.len());
            let mut oldest_created = None;
            for raw in items {
                let a = self.parse_alert(raw)?;
                if let Some(c) = a.created {
                    oldest_created =
                        Some(oldest_created.map_or(c, |o: chrono::DateTime<chrono::Utc>| o.min(c)));
                }
                if seen.insert(a.id.clone()) {
                    fresh.push(a);
                }
            }
            stats.pages += 1;
            stats.alerts += fresh.len() as u64;
            let fresh_count = fresh.len();
            handler.page(fresh).await?;
            if answer.status.as_u16() == 206 {
                return Err(FetchError::Partial(
                    answer.warning.unwrap_or_else(|| "no Warning header".into()),
                ));
            }
            if let Some(next) = next {
                let next = Url::parse(&next)
                    .map_err(|_| FetchError::Malformed("the next link is not a URL".into()))?;
                if next.origin() != self.base.origin() {
                    return Err(FetchError::Malformed(
                        "the next link points to another host".into(),
                    ));
                }
                url = next;
                continue;
            }
            let created = self.flavor.created();
            mode = match (mode, full) {
                // The tie group is exhausted: continue below it.
                (Continue::Tie(c, _), false) => Continue::Below(c),
                (_, false) => break,
                (Continue::Tie(c, skip), true) => Continue::Tie(c, skip + self.page_size),
                (_, true) => {
                    let Some(oldest) = oldest_created else {
                        return Err(FetchError::Malformed(format!("alerts carry no {created}")));
                    };
                    if fresh_count == 0 {
                        // A whole page of alerts sharing `oldest`: page through that tie group.
                        Continue::Tie(oldest, self.page_size)
                    } else {
                        Continue::AtOrBelow(oldest)
                    }
                }
            };
            url = match mode {
                Continue::AtOrBelow(c) => {
                    self.list_url(&format!("{base_filter} and {created} le {}", fmt7(c)))
                }
                Continue::Below(c) => {
                    self.list_url(&format!("{base_filter} and {created} lt {}", fmt7(c)))
                }
                Continue::Tie(c, skip) => {
                    if skip > self.flavor.max_skip() {
                        return Err(FetchError::Undrainable(format!(
                            "more than {} alerts share one {created} inside one {}",
                            self.flavor.max_skip() + self.page_size,
                            self.flavor.updated()
                        )));
                    }
                    let mut u =
                        self.list_url(&format!("{base_filter} and {created} eq {}", fmt7(c)));
                    u.query_pairs_mut().append_pair("$skip", &skip.to_string());
                    u
                }
            };
        }
        let got = seen.len() as u64;
        if got < expected {
            let now = self.count_window(token, window, deadline, stats).await?;
            if got < now {
                return Err(FetchError::Transient(format!(
                    "the window listed {got} alerts but counts {now}; it changed while draining"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_without_a_value_array_or_json_are_malformed() {
        assert!(matches!(split_page(b"[]"), Err(FetchError::Malformed(_))));
        assert!(matches!(
            split_page(b"{\"value\":3}"),
            Err(FetchError::Malformed(_))
        ));
        assert!(matches!(
            split_page(b"{\"val"),
            Err(FetchError::Malformed(_))
        ));
        let (items, next) =
            split_page(br#"{"value":[{"id":"a"}],"@odata.nextLink":"https://x/y"}"#).expect("ok");
        assert_eq!(items.len(), 1);
        assert_eq!(next.as_deref(), Some("https://x/y"));
    }
}
