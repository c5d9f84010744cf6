//! The two OData alert APIs — Microsoft Graph `security/alerts_v2` and Defender for Endpoint
//! `/api/alerts` — paged the same way (reference §2.3, §3.2):
//!
//! 1. List the window with `$filter` on the update timestamp and the largest page the API allows
//!    (Graph clamps `$top` at 1,000; MDE at 10,000). A page without a next link that is not full
//!    ends the window: one request drains an idle window.
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
//! 4. `$count` tells how many alerts a window holds: the fetch flow plans chunks with it and
//!    checks a drain that took more than one page against it.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use url::Url;

use super::{AlertSource, DrainStats, FetchError, Page, Position, SourceAlert, Window, fmt7, raw};
use crate::domain::AlertApi;
use crate::microsoft::http::{OnPartial, RequestBudget, Requester, RetryPolicy, Unreadable};
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

/// A Graph or MDE alert source for one tenant.
pub struct ODataSource {
    flavor: Flavor,
    base: Url,
    requests: Requester,
    page_size: usize,
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
            requests: Requester {
                http,
                budget,
                policy,
            },
            page_size: page_size.max(1),
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
        let flavor = self.flavor;
        self.requests
            .getter(deadline, &mut stats.http)
            .get(&u, token, OnPartial::Retry, |body| {
                parse_count(flavor, &body)
            })
            .await
            .map(|a| a.value)
    }

    fn page_url(&self, window: &Window, at: &Position) -> Result<Url, FetchError> {
        let base_filter = self.window_filter(window);
        let created = self.flavor.created();
        Ok(match at {
            Position::Start => self.list_url(&base_filter),
            Position::Link(link) => {
                let next = Url::parse(link)
                    .map_err(|_| FetchError::Malformed("the next link is not a URL".into()))?;
                if next.origin() != self.base.origin() {
                    return Err(FetchError::Malformed(
                        "the next link points to another host".into(),
                    ));
                }
                next
            }
            Position::AtOrBelow(c) => {
                self.list_url(&format!("{base_filter} and {created} le {}", fmt7(*c)))
            }
            Position::Below(c) => {
                self.list_url(&format!("{base_filter} and {created} lt {}", fmt7(*c)))
            }
            Position::Tie(c, skip) => {
                let mut u = self.list_url(&format!("{base_filter} and {created} eq {}", fmt7(*c)));
                u.query_pairs_mut().append_pair("$skip", &skip.to_string());
                u
            }
        })
    }
}

/// A count: Graph's `@odata.count` beside the page, MDE's bare number of `/alerts/$count`.
fn parse_count(flavor: Flavor, body: &[u8]) -> Result<u64, Unreadable> {
    #[derive(serde::Deserialize)]
    struct Counted {
        #[serde(rename = "@odata.count")]
        count: u64,
    }
    let missing = "the answer carries no count";
    match flavor {
        Flavor::Graph => serde_json::from_slice::<Counted>(body).map(|c| c.count),
        Flavor::Mde => serde_json::from_slice::<u64>(body),
    }
    .map_err(|e| Unreadable::of(&e, missing))
}

/// The fields of an alert the drain reads, by [`Flavor`]: id, update time, creation time.
const GRAPH_FIELDS: [&str; 3] = ["id", "lastUpdateDateTime", "createdDateTime"];
const MDE_FIELDS: [&str; 3] = ["id", "lastUpdateTime", "alertCreationTime"];

/// Parses a page of `flavor` asked with `$top` = `page_size`, in one pass: each alert's bytes
/// are kept verbatim and only its id and times are read (public so that the drain bench's lean
/// floor parses exactly as the product does).
///
/// # Errors
///
/// [`Unreadable::NotJson`] for a body that is not JSON (or not UTF-8), [`Unreadable::Shape`] for
/// one without a `value` array of alerts that carry an id and an update time.
pub fn parse_page(flavor: Flavor, body: Vec<u8>, page_size: usize) -> Result<Page, Unreadable> {
    let page = Arc::new(String::from_utf8(body).map_err(|_| Unreadable::NotJson)?);
    let names = match flavor {
        Flavor::Graph => &GRAPH_FIELDS,
        Flavor::Mde => &MDE_FIELDS,
    };
    let read = raw::odata_page(&page, names)?;
    let full = read.items.len() >= page_size;
    let alerts = read
        .items
        .iter()
        .map(|item| parse_alert(flavor, item, &page))
        .collect::<Result<_, _>>()?;
    Ok(Page {
        alerts,
        next_link: read.next_link.map(Cow::into_owned),
        full,
        partial: None,
    })
}

fn parse_alert(
    flavor: Flavor,
    item: &raw::Item<'_, 3>,
    page: &Arc<String>,
) -> Result<SourceAlert, Unreadable> {
    let id = item
        .key(0, 256)
        .ok_or_else(|| Unreadable::Shape("an alert has no id".into()))?;
    let version = item.time(1).ok_or_else(|| {
        Unreadable::Shape(format!("alert {id} has no valid {}", flavor.updated()))
    })?;
    Ok(SourceAlert {
        record_id: id.clone(),
        id,
        version,
        created: item.time(2),
        raw: item.raw(page),
    })
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

    async fn page(
        &mut self,
        token: &AccessToken,
        window: Window,
        at: &Position,
        deadline: tokio::time::Instant,
        stats: &mut DrainStats,
    ) -> Result<Page, FetchError> {
        let url = self.page_url(&window, at)?;
        let (flavor, page_size) = (self.flavor, self.page_size);
        let answer = self
            .requests
            .getter(deadline, &mut stats.http)
            .get(&url, token, OnPartial::Return, |body| {
                parse_page(flavor, body, page_size)
            })
            .await?;
        stats.pages += 1;
        Ok(Page {
            partial: answer.partial,
            ..answer.value
        })
    }

    fn next(
        &self,
        at: &Position,
        page: &Page,
        fresh: usize,
        oldest_created: Option<DateTime<Utc>>,
    ) -> Result<Option<Position>, FetchError> {
        if let Some(link) = &page.next_link {
            return Ok(Some(Position::Link(link.clone())));
        }
        let created = self.flavor.created();
        let next = match (at, page.full) {
            // The tie group is exhausted: continue below it.
            (Position::Tie(c, _), false) => Position::Below(*c),
            (_, false) => return Ok(None),
            (Position::Tie(c, skip), true) => Position::Tie(*c, skip + self.page_size),
            (_, true) => {
                let Some(oldest) = oldest_created else {
                    return Err(FetchError::Malformed(format!("alerts carry no {created}")));
                };
                if fresh == 0 {
                    // A whole page of alerts sharing `oldest`: page through that tie group.
                    Position::Tie(oldest, self.page_size)
                } else {
                    Position::AtOrBelow(oldest)
                }
            }
        };
        if let Position::Tie(_, skip) = next
            && skip > self.flavor.max_skip()
        {
            return Err(FetchError::Undrainable(format!(
                "more than {} alerts share one {created} inside one {}",
                self.flavor.max_skip() + self.page_size,
                self.flavor.updated()
            )));
        }
        Ok(Some(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_without_reshaping_the_alerts() {
        let body = br#"{"value":[{"id":"a","lastUpdateDateTime":"2021-05-02T14:19:01.3266667Z",
            "createdDateTime":"2021-04-27T12:19:27.72Z","title":"x \u00e9","n":[1,2.50,null]}],
            "@odata.nextLink":"https://x/y"}"#;
        let page = parse_page(Flavor::Graph, body.to_vec(), 1).expect("ok");
        assert!(page.full);
        assert_eq!(page.next_link.as_deref(), Some("https://x/y"));
        let a = &page.alerts[0];
        assert_eq!((a.id.as_str(), a.record_id.as_str()), ("a", "a"));
        assert_eq!(fmt7(a.version), "2021-05-02T14:19:01.3266667Z");
        assert!(
            a.raw
                .get()
                .contains(r#""title":"x \u00e9","n":[1,2.50,null]"#)
        );
        assert!(
            !parse_page(Flavor::Graph, body.to_vec(), 2)
                .expect("ok")
                .full
        );
    }

    #[test]
    fn pages_without_a_value_array_or_json_are_refused_by_kind() {
        assert!(matches!(
            parse_page(Flavor::Graph, b"[]".to_vec(), 10),
            Err(Unreadable::Shape(_))
        ));
        assert!(matches!(
            parse_page(Flavor::Graph, b"{\"value\":3}".to_vec(), 10),
            Err(Unreadable::Shape(_))
        ));
        assert!(matches!(
            parse_page(Flavor::Graph, b"{\"val".to_vec(), 10),
            Err(Unreadable::NotJson)
        ));
        assert!(matches!(
            parse_page(Flavor::Mde, br#"{"value":[{"id":"a"}]}"#.to_vec(), 10),
            Err(Unreadable::Shape(_))
        ));
        assert_eq!(parse_count(Flavor::Mde, b"42").ok(), Some(42));
        assert_eq!(
            parse_count(Flavor::Graph, br#"{"@odata.count":7,"value":[]}"#).ok(),
            Some(7)
        );
    }
}
