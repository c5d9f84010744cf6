//! `alert-fetcher` (DESIGN §3, §6 Fetch and On demand).
//!
//! | event | flow | answer |
//! |---|---|---|
//! | `EventBridgeEvent`, the schedule | `dispatch`: one SQS message `{"tenant_id"}` per active tenant, and `{"tenant_id", "job": "backfill"}` per tenant with a backfill asked for | [`Dispatched`]: `{"dispatched": n, "tenants": […]}` |
//! | `{"action": "dispatch", "job": "sweep"}` (the sweep's schedule) | one `{"tenant_id", "job": "sweep"}` per active tenant | [`Dispatched`] |
//! | SQS event (`Records[].body` = `{"tenant_id", "job"?}`) | per record, bounded concurrency: `fetch_tenant`, or a slice of the tenant's sweep or backfill (an unfinished job puts its next slice on the queue) | `SqsBatchResponse`: `{"batchItemFailures": [{"itemIdentifier": messageId}]}` listing only the failed ones |
//! | `{"action": "backfill", "tenant_id", "since", "until"?}` | records the backfill and puts its first slice on the queue | [`BackfillRequested`] |
//! | `{"action": "fetch", "tenant_id", "since", "until"?, "limit"?, "page_token"?, "format"?}` | `fetch_range`, no cursor move | [`RangePage`]: `{"tenant_id", "since", "until", "count", "alerts": […], "next_page_token"}`, each answer under 6 MB; `"format": "ocsf"`: `alerts` are OCSF Detection Findings |
//! | `{"action": "fetch_now", "tenant_id"}` | `fetch_tenant` now | [`FetchedNow`]: `{"tenant_id", "report"}` |
//! | `{"action": "status", "tenant_id"?}` | tenant health | [`Health`]: `{"tenant_id"?, "tenants": […]}` |
//!
//! Every fetch (scheduled or `fetch_now`) and every finished sweep writes its metrics as one
//! CloudWatch Embedded Metric Format line on stdout ([`shared::metrics`]).
//!
//! The payload is told apart by [`shared::lambda::Event`]. The records of an SQS event are read
//! one by one: a malformed record, or one whose body is no work item, fails only its own message
//! (a record without a `messageId` cannot be named, and is dropped: an empty `itemIdentifier`
//! would make Lambda retry the whole batch). Every direct answer echoes the tenant. Failures
//! become a `Diagnostic` with a stable `error_type`; anything else is an `InvalidEvent` saying
//! what it is and naming the accepted shapes.

mod range;

use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::SqsBatchResponse;
use futures::StreamExt;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::domain::TenantId;
use shared::flows::Deps;
use shared::flows::backfill::{BackfillError, Backfilled, backfill_tenant, request};
use shared::flows::dispatch::round;
use shared::flows::fetch::job::Slice;
use shared::flows::fetch::{FetchFlowError, FetchOptions, FetchReport, NoHooks, fetch_tenant};
use shared::flows::refresh::RefreshError;
use shared::flows::status::{TenantHealth, status};
use shared::flows::sweep::{Swept, sweep_tenant};
use shared::lambda::{Event, SqsRecord, stop_at};
use shared::metrics::{self, Observation};
use shared::ports::{StoreError, WorkItem, WorkJob};

pub use range::{Alerts, MAX_ANSWER_BYTES, MAX_LIMIT, RangePage};

/// The event shapes this function accepts, quoted in [`HandlerError::InvalidEvent`].
pub const ACCEPTED: &str = "an EventBridge scheduled event, an SQS event whose bodies are \
     {\"tenant_id\": \"<GUID>\", \"job\"?: \"fetch\"|\"sweep\"|\"backfill\"}, or a direct invoke: \
     {\"action\": \"fetch\", \"tenant_id\", \"since\", \"until\", \"limit\", \"page_token\", \"format\": \"raw\"|\"ocsf\"}, \
     {\"action\": \"fetch_now\", \"tenant_id\"}, {\"action\": \"status\", \"tenant_id\"?}, \
     {\"action\": \"backfill\", \"tenant_id\", \"since\", \"until\"?} or \
     {\"action\": \"dispatch\", \"job\": \"fetch\"|\"sweep\"}";

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
                FetchFlowError::SiemRegion { .. } => "SiemRegionMismatch",
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
            error_message: shared::explain::chain(&e),
        }
    }
}

/// Writes a fetch's or sweep's metrics as an Embedded Metric Format line ([`shared::metrics`]).
fn emit(deps: &Deps, observation: Option<Observation>) {
    if let Some(o) = observation {
        o.emit(&deps.settings.metrics, deps.clock.now());
    }
}

pub(crate) fn invalid(reason: impl Into<String>) -> HandlerError {
    HandlerError::InvalidEvent(reason.into())
}

pub(crate) fn tenant(s: &str) -> Result<TenantId, HandlerError> {
    TenantId::parse(s).map_err(|_| invalid("tenant_id is not a tenant GUID"))
}

/// A direct invoke.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum Direct {
    Fetch(range::FetchRange),
    FetchNow {
        tenant_id: String,
    },
    Status {
        tenant_id: Option<String>,
    },
    Backfill {
        tenant_id: String,
        since: String,
        until: Option<String>,
    },
    Dispatch {
        job: WorkJob,
    },
}

/// The answer to an invocation.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// To the schedule.
    Dispatched(Dispatched),
    /// To an SQS event.
    Batch(SqsBatchResponse),
    /// To `fetch`.
    Range(RangePage),
    /// To `fetch_now`.
    FetchedNow(FetchedNow),
    /// To `status`.
    Health(Health),
    /// To `backfill`.
    BackfillRequested(BackfillRequested),
}

/// A backfill asked for: its range, its first slice on the queue.
#[derive(Debug, Serialize)]
pub struct BackfillRequested {
    /// The tenant asked for.
    pub tenant_id: TenantId,
    /// From this update time.
    pub since: chrono::DateTime<chrono::Utc>,
    /// Up to this one (absent: up to where the regular fetch's coverage starts).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The tenants a scheduled round put on the queue.
#[derive(Debug, Serialize)]
pub struct Dispatched {
    /// Messages the queue accepted.
    pub dispatched: usize,
    /// The active tenants.
    pub tenants: Vec<TenantId>,
}

/// A `fetch_now`'s report.
#[derive(Debug, Serialize)]
pub struct FetchedNow {
    /// The tenant asked for.
    pub tenant_id: TenantId,
    /// What the fetch did.
    pub report: FetchReport,
}

/// Tenant health.
#[derive(Debug, Serialize)]
pub struct Health {
    /// The tenant asked for, if one was.
    pub tenant_id: Option<TenantId>,
    /// Each tenant's health.
    pub tenants: Vec<TenantHealth>,
}

/// Serves one invocation.
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Answer, HandlerError> {
    let (payload, context) = event.into_parts();
    let stop = stop_at(context.deadline, SystemTime::now())
        .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(840));
    let event = Event::<Direct>::read(payload, "action")
        .map_err(invalid)
        .inspect_err(|e| tracing::warn!(error_type = e.error_type(), "event refused"))?;
    match event {
        Event::Schedule(_) => dispatch_round(deps, WorkJob::Fetch)
            .await
            .map(Answer::Dispatched),
        Event::Sqs(records) => Ok(Answer::Batch(
            sqs_batch(deps, records, stop, &context.request_id).await,
        )),
        Event::Direct(direct) => direct_invoke(deps, direct, stop, &context.request_id).await,
    }
}

async fn dispatch_round(deps: &Deps, job: WorkJob) -> Result<Dispatched, HandlerError> {
    let items = round(deps, job).await?;
    let now: Vec<(WorkItem, Duration)> = items.into_iter().map(|i| (i, Duration::ZERO)).collect();
    let dispatched = deps.queue.enqueue(&now).await?;
    let mut tenants: Vec<TenantId> = now.into_iter().map(|(i, _)| i.tenant_id).collect();
    tenants.dedup();
    tracing::info!(tenants = tenants.len(), dispatched, job = ?job, "work dispatched");
    Ok(Dispatched {
        dispatched,
        tenants,
    })
}

async fn sqs_batch(
    deps: &Deps,
    records: Vec<SqsRecord>,
    stop: tokio::time::Instant,
    request_id: &str,
) -> SqsBatchResponse {
    let failed: Vec<Option<String>> = futures::stream::iter(records.into_iter().enumerate())
        .map(|(i, record)| work_item(deps, record, stop, format!("{request_id}-{i}")))
        .buffer_unordered(deps.settings.fetch.concurrency.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed.into_iter().flatten());
    response
}

/// Fetches the tenant of one SQS record; `Some(messageId)` when SQS must deliver it again.
async fn work_item(
    deps: &Deps,
    record: SqsRecord,
    stop: tokio::time::Instant,
    owner: String,
) -> Option<String> {
    let (message_id, item) = match record {
        Ok(m) => {
            let item = m
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<WorkItem>(b).ok());
            (m.message_id, item)
        }
        Err(malformed) => (malformed.message_id, None),
    };
    let message_id = message_id.filter(|id| !id.is_empty());
    let retry = match item {
        Some(item) => run_item(deps, &item, stop, owner).await,
        None => {
            tracing::warn!(message_id = ?message_id, "a work item is not {{\"tenant_id\": GUID}}");
            true
        }
    };
    if retry && message_id.is_none() {
        tracing::warn!("a failed SQS record has no messageId to be retried by; dropped");
    }
    message_id.filter(|_| retry)
}

/// Whether the work of `item` failed for now (SQS retries it). An unfinished sweep or backfill
/// puts its next slice on the queue (a sweep's a minute later, so its budget share holds).
async fn run_item(deps: &Deps, item: &WorkItem, stop: tokio::time::Instant, owner: String) -> bool {
    let opts = FetchOptions {
        deadline: stop,
        owner,
        hooks: &NoHooks,
    };
    let id = &item.tenant_id;
    let next = match item.job {
        WorkJob::Fetch => {
            let fetched = fetch_tenant(deps, id, &opts).await;
            emit(deps, metrics::observe_fetch(deps, id, &fetched).await);
            fetched.map(|_| None)
        }
        WorkJob::Sweep => {
            let swept = sweep_tenant(deps, id, &opts).await;
            emit(deps, metrics::observe_sweep(deps, id, &swept).await);
            swept.map(|s| match s {
                Swept::Ran(Slice::Continues(_)) => Some(Duration::from_secs(60)),
                _ => None,
            })
        }
        WorkJob::Backfill => {
            let slice = deps.settings.fetch.job_slice;
            backfill_tenant(deps, id, &opts, slice)
                .await
                .map(|b| match b {
                    Backfilled::Ran(Slice::Continues(_)) => Some(Duration::ZERO),
                    _ => None,
                })
        }
    };
    match next {
        Ok(None) => false,
        Ok(Some(delay)) => {
            let again = [(item.clone(), delay)];
            if let Err(e) = deps.queue.enqueue(&again).await {
                tracing::warn!(tenant_id = %id, error = %e, "next slice not enqueued; the next dispatch continues it");
            }
            false
        }
        // Another run is on the tenant, or there is nothing to do: done with this message.
        Err(
            FetchFlowError::Busy(_) | FetchFlowError::NotActive(_) | FetchFlowError::UnknownTenant,
        ) => false,
        Err(e) => {
            tracing::warn!(tenant_id = %id, job = ?item.job, error = %e, "tenant work failed; SQS will retry it");
            true
        }
    }
}

async fn direct_invoke(
    deps: &Deps,
    direct: Direct,
    stop: tokio::time::Instant,
    request_id: &str,
) -> Result<Answer, HandlerError> {
    match direct {
        Direct::Status { tenant_id } => {
            let tenant_id = tenant_id.as_deref().map(tenant).transpose()?;
            let tenants = status(deps, tenant_id.as_ref()).await?;
            Ok(Answer::Health(Health { tenant_id, tenants }))
        }
        Direct::FetchNow { tenant_id } => fetch_now(deps, &tenant_id, stop, request_id)
            .await
            .map(Answer::FetchedNow),
        Direct::Fetch(req) => range::fetch(deps, req, stop).await.map(Answer::Range),
        Direct::Dispatch { job } => dispatch_round(deps, job).await.map(Answer::Dispatched),
        Direct::Backfill {
            tenant_id,
            since,
            until,
        } => request_backfill(deps, &tenant_id, &since, until.as_deref())
            .await
            .map(Answer::BackfillRequested),
    }
}

/// A fetch of the tenant now, as a scheduled one would run, observed like one.
async fn fetch_now(
    deps: &Deps,
    tenant_id: &str,
    stop: tokio::time::Instant,
    request_id: &str,
) -> Result<FetchedNow, HandlerError> {
    let tenant_id = tenant(tenant_id)?;
    let opts = FetchOptions {
        deadline: stop,
        owner: format!("fetch-now-{request_id}"),
        hooks: &NoHooks,
    };
    let fetched = fetch_tenant(deps, &tenant_id, &opts).await;
    emit(
        deps,
        metrics::observe_fetch(deps, &tenant_id, &fetched).await,
    );
    Ok(FetchedNow {
        tenant_id,
        report: fetched?,
    })
}

/// Records the backfill asked for and queues its first slice.
async fn request_backfill(
    deps: &Deps,
    tenant_id: &str,
    since: &str,
    until: Option<&str>,
) -> Result<BackfillRequested, HandlerError> {
    let tenant_id = tenant(tenant_id)?;
    let since = range::time("since", since)?;
    let until = until.map(|u| range::time("until", u)).transpose()?;
    request(deps, &tenant_id, since, until)
        .await
        .map_err(|e| match e {
            BackfillError::Fetch(e) => HandlerError::Fetch(e),
            e @ BackfillError::Empty { .. } => invalid(e.to_string()),
        })?;
    let first = [(
        WorkItem {
            tenant_id: tenant_id.clone(),
            job: WorkJob::Backfill,
        },
        Duration::ZERO,
    )];
    deps.queue.enqueue(&first).await?;
    Ok(BackfillRequested {
        tenant_id,
        since,
        until,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SQS: &str = include_str!("../../../tests/fixtures/events/sqs-event.json");
    const SCHEDULED: &str =
        include_str!("../../../tests/fixtures/events/eventbridge-scheduled-event.json");

    fn read(v: Value) -> Result<Event<Direct>, String> {
        Event::read(v, "action")
    }

    #[test]
    fn the_fixtures_are_a_schedule_and_a_batch_of_work_items() {
        let v: Value = serde_json::from_str(SCHEDULED).expect("json");
        assert!(matches!(read(v), Ok(Event::Schedule(_))));
        let v: Value = serde_json::from_str(SQS).expect("json");
        let Ok(Event::Sqs(records)) = read(v) else {
            panic!("an SQS event")
        };
        for r in records {
            let body = r.expect("a message").body.expect("body");
            serde_json::from_str::<WorkItem>(&body).expect("a work item");
        }
    }

    #[test]
    fn direct_invokes_parse_and_unknown_fields_are_refused() {
        let d = read(json!({"action": "status"}));
        assert!(matches!(
            d,
            Ok(Event::Direct(Direct::Status { tenant_id: None }))
        ));
        let d = read(json!({"action": "fetch", "tenant_id": "x", "since": "s"}));
        assert!(matches!(d, Ok(Event::Direct(Direct::Fetch(_)))), "{d:?}");
        for bad in [
            json!({"action": "fetch_now", "tenant_id": "x", "x": 1}),
            json!({"action": "fetch", "tenant_id": "x", "x": 1}),
            json!({"action": "delete"}),
            json!({"action": 1}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
        let e = read(json!({"action": "delete"})).expect_err("unknown");
        assert!(e.contains("unknown variant `delete`"), "{e}");
    }

    #[test]
    fn answers_serialize_as_documented() {
        let mut batch = SqsBatchResponse::default();
        batch.add_failure("m-1");
        assert_eq!(
            serde_json::to_value(Answer::Batch(batch)).expect("json"),
            json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]})
        );
        let d = Answer::Dispatched(Dispatched {
            dispatched: 0,
            tenants: vec![],
        });
        assert_eq!(
            serde_json::to_value(d).expect("json"),
            json!({"dispatched": 0, "tenants": []})
        );
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
