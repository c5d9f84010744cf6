//! The HTTP layer every alert source shares: a per-tenant request budget, `Retry-After` in all
//! three forms, exponential backoff with jitter, and a deadline that bounds all waiting
//! (DESIGN §6 Fetch step 4).

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::time::Instant;
use url::Url;

use super::alerts::FetchError;
use crate::secret::AccessToken;

/// The process's HTTP clients toward Microsoft, each built on first use and then shared by every
/// tenant: connections (and their TLS sessions) stay open across tenants and rounds instead of
/// being opened for each tenant's fetch. Neither follows redirects (a token never follows one);
/// every request is bounded by the timeout the first use gives.
#[derive(Debug, Default)]
pub struct Clients {
    apis: OnceLock<reqwest::Client>,
    identity: OnceLock<reqwest::Client>,
}

impl Clients {
    /// The client of the three alert APIs.
    pub fn apis(&self, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        shared_client(&self.apis, timeout)
    }

    /// The client of the identity platform (token requests).
    pub fn identity(&self, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        shared_client(&self.identity, timeout)
    }
}

fn shared_client(
    cell: &OnceLock<reqwest::Client>,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    if let Some(client) = cell.get() {
        return Ok(client.clone());
    }
    let client = client(timeout)?;
    Ok(cell.get_or_init(|| client).clone())
}

/// A client toward Microsoft: no redirects, `timeout` on every request, at most 10 s to connect.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
}

/// A request budget: at most `limit` requests in any `per` window, for every window given
/// (Graph: 150 per minute; MDE: 100 per minute and 1,500 per hour).
#[derive(Debug)]
pub struct RequestBudget {
    windows: Vec<(u32, Duration)>,
    sent: VecDeque<Instant>,
}

impl RequestBudget {
    /// A budget over `windows` of (requests, period).
    pub fn new(windows: Vec<(u32, Duration)>) -> Self {
        RequestBudget {
            windows,
            sent: VecDeque::new(),
        }
    }

    /// When the next request may go, given what was sent.
    fn next_slot(&mut self, now: Instant) -> Instant {
        let longest = self.windows.iter().map(|w| w.1).max().unwrap_or_default();
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= longest)
        {
            self.sent.pop_front();
        }
        let mut at = now;
        for &(limit, per) in &self.windows {
            let limit = limit.max(1) as usize;
            let recent: Vec<&Instant> = self
                .sent
                .iter()
                .filter(|t| now.duration_since(**t) < per)
                .collect();
            if recent.len() >= limit {
                // The oldest request that must leave the window before we may send.
                let oldest = recent[recent.len() - limit];
                at = at.max(*oldest + per);
            }
        }
        at
    }

    /// Waits for a slot, or fails with [`FetchError::Deadline`] if it comes too late.
    pub async fn acquire(&mut self, deadline: Instant) -> Result<(), FetchError> {
        let now = Instant::now();
        let at = self.next_slot(now);
        if at > deadline {
            return Err(FetchError::Deadline);
        }
        if at > now {
            tracing::debug!(
                wait_ms = (at - now).as_millis() as u64,
                "request budget spent; waiting"
            );
            tokio::time::sleep_until(at).await;
        }
        self.sent.push_back(at.max(now));
        Ok(())
    }
}

/// Reads `Retry-After`: integer seconds, fractional seconds (Graph: `2.128`) or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of an answer, in any of its three forms, if it has a usable one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()))
}

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it (capped at 30 s), plus up to 50 % jitter.
    pub backoff_base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            backoff_base: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry `attempt` (1-based): base × 2^(n−1), capped at 30 s, plus jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .backoff_base
            .saturating_mul(1 << attempt.saturating_sub(1).min(6))
            .min(Duration::from_secs(30));
        let jitter = rand::rng().random_range(0..=base.as_millis() as u64 / 2);
        base + Duration::from_millis(jitter)
    }
}

/// Why a body could not be read, for a [`Getter::get`] parser.
#[derive(Debug)]
pub enum Unreadable {
    /// Not JSON at all (cut off, garbled): worth asking again.
    NotJson,
    /// JSON, but not the API's shape: asking again would give the same; the window fails.
    Shape(String),
}

impl Unreadable {
    /// Sorts a `serde_json` error: syntax and end-of-input are [`Unreadable::NotJson`], a JSON
    /// of the wrong shape is [`Unreadable::Shape`] with `what`.
    pub fn of(e: &serde_json::Error, what: &str) -> Unreadable {
        match e.classify() {
            serde_json::error::Category::Data => Unreadable::Shape(what.to_string()),
            _ => Unreadable::NotJson,
        }
    }
}

/// A GET with the budget, retries and deadline: 429, 5xx, transport errors and bodies that are
/// not JSON are retried, up to `max_attempts`, after `Retry-After` or an exponential backoff with
/// jitter; 401/403/404/4xx are returned as errors at once. A `206 Partial Content` answer is
/// either retried likewise ([`OnPartial::Retry`], for counts) or returned with its `Warning`
/// ([`OnPartial::Return`], for pages: the alerts it holds are real, and the caller delivers them
/// before asking again).
pub struct Getter<'a> {
    /// HTTP client (timeouts set, no redirects).
    pub http: &'a reqwest::Client,
    /// Budget of this tenant and API.
    pub budget: &'a mut RequestBudget,
    /// Stop waiting after this.
    pub deadline: Instant,
    /// Retries.
    pub policy: RetryPolicy,
    /// Counts of what happened, for the run's report.
    pub stats: &'a mut RequestStats,
}

/// What [`Getter::get`] does with a `206 Partial Content` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPartial {
    /// Retry it like a 5xx.
    Retry,
    /// Parse it and return it, marked partial.
    Return,
}

/// A parsed answer, and the `Warning` of a `206 Partial Content` one.
#[derive(Debug)]
pub struct Answer<T> {
    /// The parsed body.
    pub value: T,
    /// `Some(warning)` when the answer was partial (206).
    pub partial: Option<String>,
}

/// What the HTTP layer saw in a run.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequestStats {
    /// Requests sent.
    pub requests: u64,
    /// 429 answers.
    pub throttled: u64,
    /// 206 Partial Content answers.
    pub partial: u64,
    /// 5xx answers, dropped connections, timeouts and unreadable bodies, retried.
    pub retried: u64,
}

/// The outcome of one attempt: a parsed answer, or a failure with the wait the server asked for
/// and whether another attempt may help.
enum Attempt<T> {
    Done(Answer<T>),
    Retry(Option<Duration>, FetchError),
    Fail(FetchError),
}

/// What the requests of one source share: its HTTP client, its request budget and its retry
/// policy.
pub struct Requester {
    /// HTTP client (timeouts set, no redirects).
    pub http: reqwest::Client,
    /// Budget of this tenant and API.
    pub budget: RequestBudget,
    /// Retries.
    pub policy: RetryPolicy,
}

impl Requester {
    /// A getter for one request, waiting no later than `deadline`, counted in `stats`.
    pub fn getter<'a>(&'a mut self, deadline: Instant, stats: &'a mut RequestStats) -> Getter<'a> {
        Getter {
            http: &self.http,
            budget: &mut self.budget,
            deadline,
            policy: self.policy,
            stats,
        }
    }
}

impl Getter<'_> {
    /// GETs `url` with `token` and parses the body with `parse`; see [`Getter`] for what is
    /// retried. A body `parse` finds [`Unreadable::NotJson`] is retried, a wrong shape fails.
    pub async fn get<T>(
        &mut self,
        url: &Url,
        token: &AccessToken,
        on_partial: OnPartial,
        parse: impl Fn(Vec<u8>) -> Result<T, Unreadable>,
    ) -> Result<Answer<T>, FetchError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.budget.acquire(self.deadline).await?;
            self.stats.requests += 1;
            let (wait, failure) = match self.once(url, token, on_partial, &parse).await? {
                Attempt::Done(answer) => {
                    self.stats.partial += u64::from(answer.partial.is_some());
                    return Ok(answer);
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(wait, e) => (wait, e),
            };
            match &failure {
                FetchError::Throttled => self.stats.throttled += 1,
                FetchError::Partial(_) => self.stats.partial += 1,
                _ => self.stats.retried += 1,
            }
            if attempt >= self.policy.max_attempts.max(1) {
                return Err(failure);
            }
            let wait = wait.unwrap_or_else(|| self.policy.backoff(attempt));
            if Instant::now() + wait > self.deadline {
                return Err(FetchError::Deadline);
            }
            tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, reason = %failure, "retrying a page");
            tokio::time::sleep(wait).await;
        }
    }

    /// One request.
    async fn once<T>(
        &mut self,
        url: &Url,
        token: &AccessToken,
        on_partial: OnPartial,
        parse: &impl Fn(Vec<u8>) -> Result<T, Unreadable>,
    ) -> Result<Attempt<T>, FetchError> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(FetchError::Deadline);
        }
        let sent = self
            .http
            .get(url.clone())
            .bearer_auth(token.expose_secret())
            .header("Prefer", "include-unknown-enum-members")
            .timeout(remaining.min(Duration::from_secs(60)))
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => return Ok(Attempt::Retry(None, FetchError::Transient(transport(&e)))),
        };
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let partial = (status.as_u16() == 206).then(|| warning(resp.headers()));
        Ok(match status.as_u16() {
            206 if on_partial == OnPartial::Retry => {
                Attempt::Retry(wait, FetchError::Partial(partial.unwrap_or_default()))
            }
            200 | 206 => match read_body(resp).await {
                Ok(body) => match parse(body) {
                    Ok(value) => Attempt::Done(Answer { value, partial }),
                    Err(Unreadable::NotJson) => Attempt::Retry(
                        None,
                        FetchError::Transient(
                            "the API answered a page that is not valid JSON".into(),
                        ),
                    ),
                    Err(Unreadable::Shape(what)) => Attempt::Fail(FetchError::Malformed(what)),
                },
                Err(e) => Attempt::Retry(None, FetchError::Transient(transport(&e))),
            },
            429 => Attempt::Retry(wait, FetchError::Throttled),
            401 => Attempt::Fail(FetchError::Unauthorized),
            403 => Attempt::Fail(FetchError::Forbidden(body_snippet(resp).await)),
            404 | 410 => Attempt::Fail(FetchError::Gone(status.as_u16())),
            400..=499 => Attempt::Fail(FetchError::Rejected {
                status: status.as_u16(),
                detail: body_snippet(resp).await,
            }),
            _ => Attempt::Retry(
                wait,
                FetchError::Transient(format!("the API answered HTTP {status}")),
            ),
        })
    }
}

/// What a failed transfer was, completing "<the service> …" (never the URL: it may carry a
/// query we built; never reqwest's "error sending request", which names no cause).
pub fn transport_failure(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "did not answer in time"
    } else if e.is_connect() {
        "could not be reached"
    } else if e.is_body() || e.is_decode() {
        "dropped the connection in the middle of its answer"
    } else {
        "dropped the connection before answering"
    }
}

/// [`transport_failure`] of an alert API, logged with the transport's own words for diagnosis.
fn transport(e: &reqwest::Error) -> String {
    let what = transport_failure(e);
    tracing::debug!(error = %e, cause = ?std::error::Error::source(e), "alert API transfer failed");
    format!("the API {what}")
}

/// The `Warning` header of a 206 (`199 - "{Vendor}/{Provider}/{Status}/{LatencyMs}"`), capped.
fn warning(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(reqwest::header::WARNING)
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || "no Warning header".into(),
            |s| s.chars().take(300).collect(),
        )
}

async fn body_snippet(resp: reqwest::Response) -> String {
    snippet(&resp.text().await.unwrap_or_default())
}

/// The whole body, read chunk by chunk into one buffer sized by `Content-Length` when the
/// server sends it (a page is several megabytes: growing a buffer by doubling copies it again).
async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    /// A hint, not a promise: never reserve more than this up front.
    const MAX_HINT: u64 = 64 * 1024 * 1024;
    let hint = resp.content_length().unwrap_or(0).min(MAX_HINT);
    let mut body = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A short, single-line excerpt of an error body for the tenant's record: the message of a
/// Graph or Defender error object (`{"error": {"code", "message"}}`), else the body's start (no
/// secrets are in error bodies of these APIs; capped anyway).
fn snippet(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let text = match serde_json::from_str::<Wrapper>(body) {
        Ok(Wrapper { error }) if !error.message.is_empty() => {
            format!("{}: {}", error.code, error.message)
        }
        _ => body.to_string(),
    };
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_integers_fractions_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("2.128", now),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        assert!(p.backoff(1) >= Duration::from_millis(500));
        assert!(p.backoff(1) <= Duration::from_millis(750));
        assert!(p.backoff(3) >= Duration::from_secs(2));
        assert!(p.backoff(20) <= Duration::from_secs(45));
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_spaces_requests_to_its_windows() {
        let mut b = RequestBudget::new(vec![(3, Duration::from_secs(60))]);
        let start = Instant::now();
        let deadline = start + Duration::from_secs(600);
        for _ in 0..3 {
            b.acquire(deadline).await.expect("slot");
        }
        assert_eq!(Instant::now(), start);
        b.acquire(deadline).await.expect("slot");
        assert_eq!(Instant::now(), start + Duration::from_secs(60));
        let mut tight = RequestBudget::new(vec![(1, Duration::from_secs(60))]);
        tight.acquire(deadline).await.expect("slot");
        assert!(matches!(
            tight
                .acquire(Instant::now() + Duration::from_secs(10))
                .await,
            Err(FetchError::Deadline)
        ));
    }
}
