//! `alert-fetcher` (DESIGN §3, §6 Fetch and On demand).
//!
//! | event | flow | answer |
//! |---|---|---|
//! | EventBridge scheduled event | `dispatch`: one SQS message `{"tenant_id"}` per active tenant | `{"dispatched": n, "tenants": […]}` |
//! | SQS event (`Records[].body` = `{"tenant_id"}`) | `fetch_tenant` per record, bounded concurrency | `{"batchItemFailures": [{"itemIdentifier": messageId}]}` listing only the failed ones |
//! | `{"action": "fetch", "tenant_id", "since", "until"?, "limit"?, "page_token"?}` | `fetch_range`, no cursor move | `{"tenant_id", "since", "until", "count", "alerts": […], "next_page_token"}`, each answer under 6 MB |
//! | `{"action": "fetch_now", "tenant_id"}` | `fetch_tenant` now | the fetch report |
//! | `{"action": "status", "tenant_id"?}` | tenant health | `{"tenant_id"?, "tenants": […]}` |
//!
//! Every direct answer echoes the tenant. Failures become a `Diagnostic` with a stable
//! `error_type`.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::domain::TenantId;
use shared::flows::Deps;
use shared::flows::dispatch::dispatch;
use shared::flows::fetch::{FetchFlowError, FetchOptions, NoHooks, fetch_tenant};
use shared::flows::range::fetch_range;
use shared::flows::refresh::RefreshError;
use shared::flows::status::status;
use shared::lambda::{scheduled_event, stop_at};
use shared::microsoft::alerts::{Window, parse_time};
use shared::ports::{StoreError, WorkItem};
use shared::record::AlertRecord;

/// The event shapes this function accepts, quoted in [`HandlerError::InvalidEvent`].
pub const ACCEPTED: &str = "an EventBridge scheduled event, an SQS event whose bodies are \
     {\"tenant_id\": \"<GUID>\"}, or a direct invoke: {\"action\": \"fetch\", \"tenant_id\", \
     \"since\", \"until\", \"limit\", \"page_token\"}, {\"action\": \"fetch_now\", \"tenant_id\"} \
     or {\"action\": \"status\", \"tenant_id\"?}";

/// A direct answer stays under this many bytes of JSON (Lambda's response limit is 6 MB).
pub const MAX_ANSWER_BYTES: usize = 5_500_000;

/// Largest `limit` of one `fetch` page.
pub const MAX_LIMIT: usize = 10_000;

/// Why an invocation failed; [`HandlerError::error_type`] is the stable `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event is none of the accepted shapes.
    #[error("invalid event: {0}; expected {ACCEPTED}")]
    InvalidEvent(String),
    /// The fetch failed.
    #[error(transparent)]
    Fetch(#[from] FetchFlowError),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HandlerError {
    /// The stable `errorType` reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::InvalidEvent(_) => "InvalidEvent",
            HandlerError::Fetch(e) => match e {
                FetchFlowError::UnknownTenant => "UnknownTenant",
                FetchFlowError::NotActive(_) => "TenantNotActive",
                FetchFlowError::Busy(_) => "TenantBusy",
                FetchFlowError::Token(RefreshError::ReconsentRequired { .. }) => {
                    "ReconsentRequired"
                }
                FetchFlowError::Token(RefreshError::AppMisconfigured(_)) => "AppMisconfigured",
                FetchFlowError::Token(_) => "TokenUnavailable",
                FetchFlowError::Incomplete { .. } => "FetchIncomplete",
                FetchFlowError::Interrupted(_) => "Interrupted",
                FetchFlowError::Store(_) => "StoreUnavailable",
            },
            HandlerError::Store(_) => "StoreUnavailable",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

fn invalid(reason: impl Into<String>) -> HandlerError {
    HandlerError::InvalidEvent(reason.into())
}

/// A direct invoke.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Direct {
    Fetch {
        tenant_id: String,
        since: Option<String>,
        until: Option<String>,
        limit: Option<usize>,
        page_token: Option<String>,
    },
    FetchNow {
        tenant_id: String,
    },
    Status {
        tenant_id: Option<String>,
    },
}

/// Where the next page of a `fetch` starts: after (version, id), inside the same window.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct PageToken {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    after_version: String,
    after_id: String,
}

fn tenant(s: &str) -> Result<TenantId, HandlerError> {
    TenantId::parse(s).map_err(|_| invalid("tenant_id is not a tenant GUID"))
}

fn time(field: &str, s: &str) -> Result<DateTime<Utc>, HandlerError> {
    parse_time(s).ok_or_else(|| invalid(format!("{field} is not an RFC 3339 time")))
}

/// Serves one invocation.
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
    let stop = stop_at(event.context.deadline, SystemTime::now())
        .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(840));
    let payload = event.payload;
    if let Some(scheduled) = scheduled_event(&payload) {
        scheduled.map_err(invalid)?;
        let tenants: Vec<TenantId> = dispatch(deps).await?.into_iter().map(|t| t.id).collect();
        let sent = deps.queue.enqueue(&tenants).await?;
        tracing::info!(
            tenants = tenants.len(),
            dispatched = sent,
            "fetches dispatched"
        );
        return Ok(json!({"dispatched": sent, "tenants": tenants}));
    }
    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        return Ok(sqs_batch(deps, records, stop, &event.context.request_id).await);
    }
    if payload.get("action").is_some() {
        let direct: Direct = serde_json::from_value(payload)
            .map_err(|e| invalid(format!("the direct invoke is malformed ({e})")))?;
        return direct_invoke(deps, direct, stop, &event.context.request_id).await;
    }
    Err(invalid("unrecognized event"))
}

async fn sqs_batch(
    deps: &Deps,
    records: &[Value],
    stop: tokio::time::Instant,
    request_id: &str,
) -> Value {
    let results: Vec<Option<String>> = futures::stream::iter(records.iter().enumerate())
        .map(|(i, r)| async move {
            let message_id = r.get("messageId").and_then(Value::as_str).unwrap_or_default().to_string();
            let item = r
                .get("body")
                .and_then(Value::as_str)
                .and_then(|b| serde_json::from_str::<WorkItem>(b).ok());
            let Some(item) = item else {
                tracing::warn!(message_id = %message_id, "a work item is not {{\"tenant_id\": GUID}}");
                return Some(message_id);
            };
            let opts = FetchOptions {
                deadline: stop,
                owner: format!("{request_id}-{i}"),
                hooks: &NoHooks,
            };
            match fetch_tenant(deps, &item.tenant_id, &opts).await {
                Ok(_) => None,
                // Another fetch is on it, or there is nothing to fetch: done with this message.
                Err(FetchFlowError::Busy(_) | FetchFlowError::NotActive(_) | FetchFlowError::UnknownTenant) => None,
                Err(e) => {
                    tracing::warn!(tenant_id = %item.tenant_id, error = %e, "tenant fetch failed; SQS will retry it");
                    Some(message_id)
                }
            }
        })
        .buffer_unordered(deps.settings.fetch.concurrency.max(1))
        .collect()
        .await;
    let failures: Vec<Value> = results
        .into_iter()
        .flatten()
        .map(|id| json!({"itemIdentifier": id}))
        .collect();
    json!({"batchItemFailures": failures})
}

async fn direct_invoke(
    deps: &Deps,
    direct: Direct,
    stop: tokio::time::Instant,
    request_id: &str,
) -> Result<Value, HandlerError> {
    match direct {
        Direct::Status { tenant_id } => {
            let id = tenant_id.as_deref().map(tenant).transpose()?;
            let health = status(deps, id.as_ref()).await?;
            Ok(json!({"tenant_id": id, "tenants": health}))
        }
        Direct::FetchNow { tenant_id } => {
            let id = tenant(&tenant_id)?;
            let opts = FetchOptions {
                deadline: stop,
                owner: format!("fetch-now-{request_id}"),
                hooks: &NoHooks,
            };
            let report = fetch_tenant(deps, &id, &opts).await?;
            Ok(json!({"tenant_id": id, "report": report}))
        }
        Direct::Fetch {
            tenant_id,
            since,
            until,
            limit,
            page_token,
        } => {
            let id = tenant(&tenant_id)?;
            let limit = limit.unwrap_or(1000);
            if limit == 0 || limit > MAX_LIMIT {
                return Err(invalid(format!("limit must be 1..={MAX_LIMIT}")));
            }
            let token = match page_token {
                Some(t) => Some(
                    URL_SAFE_NO_PAD
                        .decode(t.as_bytes())
                        .ok()
                        .and_then(|b| serde_json::from_slice::<PageToken>(&b).ok())
                        .ok_or_else(|| invalid("page_token is not one this function issued"))?,
                ),
                None => None,
            };
            let (since, until) = match &token {
                Some(t) => (t.since, t.until),
                None => {
                    let since = time(
                        "since",
                        since
                            .as_deref()
                            .ok_or_else(|| invalid("since is required"))?,
                    )?;
                    let until = match until.as_deref() {
                        Some(u) => time("until", u)?,
                        None => deps.clock.now(),
                    };
                    (since, until)
                }
            };
            if since >= until {
                return Err(invalid("since must be before until"));
            }
            let from = match &token {
                Some(t) => parse_time(&t.after_version).unwrap_or(since).max(since),
                None => since,
            };
            let all = fetch_range(deps, &id, Window { since: from, until }, stop).await?;
            let after = token
                .as_ref()
                .map(|t| (t.after_version.clone(), t.after_id.clone()));
            let mut alerts = Vec::new();
            let mut size = 256;
            let mut next = None;
            for r in all.into_iter().filter(|r| {
                after
                    .as_ref()
                    .is_none_or(|(v, i)| (&r.alert_version, &r.alert_id) > (v, i))
            }) {
                let bytes = serde_json::to_vec(&r).map(|b| b.len()).unwrap_or(0) + 1;
                if alerts.len() >= limit || size + bytes > MAX_ANSWER_BYTES {
                    let last: &AlertRecord = match alerts.last() {
                        Some(l) => l,
                        None => return Err(invalid("one alert is larger than an answer may be")),
                    };
                    let t = PageToken {
                        since,
                        until,
                        after_version: last.alert_version.clone(),
                        after_id: last.alert_id.clone(),
                    };
                    next = serde_json::to_vec(&t)
                        .ok()
                        .map(|b| URL_SAFE_NO_PAD.encode(b));
                    break;
                }
                size += bytes;
                alerts.push(r);
            }
            Ok(json!({
                "tenant_id": id,
                "since": since,
                "until": until,
                "count": alerts.len(),
                "alerts": alerts,
                "next_page_token": next,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_invokes_parse_and_unknown_fields_are_refused() {
        let d: Direct = serde_json::from_value(json!({"action": "status"})).expect("status");
        assert!(matches!(d, Direct::Status { tenant_id: None }));
        assert!(
            serde_json::from_value::<Direct>(
                json!({"action": "fetch_now", "tenant_id": "x", "x": 1})
            )
            .is_err()
        );
        assert!(serde_json::from_value::<Direct>(json!({"action": "delete"})).is_err());
    }

    #[test]
    fn error_types_are_stable() {
        assert_eq!(invalid("x").error_type(), "InvalidEvent");
        assert_eq!(
            HandlerError::Fetch(FetchFlowError::UnknownTenant).error_type(),
            "UnknownTenant"
        );
        let d = Diagnostic::from(invalid("x"));
        assert!(d.error_message.contains("fetch_now"));
    }
}
