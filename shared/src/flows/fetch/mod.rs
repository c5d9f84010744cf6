//! Alert fetching (DESIGN §6 Fetch): per tenant, under the tenant's lease —
//!
//! 1. get an access token (cached, else refreshed or minted);
//! 2. plan the window `[watermark − overlap, now)` on the API's update timestamp, split by count
//!    into chunks of at most [`FetchSettings::chunk_target`] alerts ([`plan`]);
//! 3. drain each chunk completely, drop versions already delivered (dedup key), deliver the rest
//!    to the sink page by page, and only then commit the cursor — after every complete chunk,
//!    conditional on the cursor version and the lease — so a run that hits its deadline keeps
//!    what it finished ([`deliver`]);
//! 4. never advance past a chunk that failed: a `206`, a 403, a malformed page or an exhausted
//!    retry budget leaves the watermark where it was and records the reason on the tenant.
//!
//! A run interrupted anywhere leaves its delivered objects in the sink under the uncommitted
//! cursor version; the next run reads their dedup keys back ([`AlertSink::attempt_contents`]),
//! so nothing is lost and nothing is delivered twice.
//!
//! [`AlertSink::attempt_contents`]: crate::ports::AlertSink::attempt_contents

pub mod deliver;
pub mod drain;
pub mod idle;
pub mod job;
pub mod live;
pub mod plan;
pub mod session;

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::time::Instant;

use super::refresh::RefreshError;
use super::{Deps, region};
use crate::config::GzipLevel;
use crate::domain::{AlertApi, Outcome, SiemRegion, Tenant, TenantId, TenantStatus};
use crate::microsoft::alerts::odata::{Flavor, ODataSource};
use crate::microsoft::alerts::siem::SiemSource;
use crate::microsoft::alerts::{AlertSource, FetchError};
use crate::microsoft::http::{RequestBudget, RetryPolicy};
use crate::ports::{Cursor, LeaseError, StoreError};

/// Knobs of fetching.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// How far below the watermark each run looks again, for alerts that become visible late.
    pub overlap: Duration,
    /// Where the first run of a tenant starts, before now.
    pub initial_lookback: Duration,
    /// How long a fetch may hold a tenant.
    pub lease_ttl: Duration,
    /// Alerts per committed chunk; larger windows are split by count.
    pub chunk_target: u64,
    /// Pages between two checkpoints inside a window (a run that stops early checkpoints too).
    pub checkpoint_pages: u32,
    /// Graph page size (`$top`; Graph clamps at 1,000).
    pub graph_page: usize,
    /// MDE page size (`$top`; at most 10,000).
    pub mde_page: usize,
    /// Graph request budget per tenant: (requests, period) windows.
    pub graph_budget: Vec<(u32, StdDuration)>,
    /// MDE request budget per tenant.
    pub mde_budget: Vec<(u32, StdDuration)>,
    /// SIEM request budget per tenant (undocumented; kept modest).
    pub siem_budget: Vec<(u32, StdDuration)>,
    /// Retries of a request on 429/5xx/malformed answers.
    pub retry: RetryPolicy,
    /// Timeout of each API request.
    pub http_timeout: StdDuration,
    /// Tenants fetched at once (a local round, or the tenants of one SQS batch).
    pub concurrency: usize,
    /// How often the cursor of a tenant with nothing new is written (its watermark moves on).
    pub idle_write: Duration,
    /// How often each tenant is swept for versions that became visible late.
    pub sweep_interval: Duration,
    /// How far back a sweep looks (at most the API's retention).
    pub sweep_horizon: Duration,
    /// The share of a tenant's request budget a sweep may spend (0 to 1).
    pub sweep_share: f64,
    /// How long one slice of a sweep or backfill may hold a tenant.
    pub job_slice: StdDuration,
    /// gzip level of the alert objects. The sinks take it when they are built
    /// ([`crate::assemble`]): set it before, not after.
    pub gzip_level: GzipLevel,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            overlap: Duration::hours(1),
            initial_lookback: Duration::days(7),
            lease_ttl: Duration::minutes(15),
            chunk_target: 20_000,
            checkpoint_pages: 20,
            graph_page: 1000,
            mde_page: 10_000,
            graph_budget: vec![(150, StdDuration::from_secs(60))],
            mde_budget: vec![
                (100, StdDuration::from_secs(60)),
                (1500, StdDuration::from_secs(3600)),
            ],
            siem_budget: vec![(60, StdDuration::from_secs(60))],
            retry: RetryPolicy::default(),
            http_timeout: StdDuration::from_secs(60),
            concurrency: 4,
            idle_write: Duration::hours(1),
            sweep_interval: Duration::hours(6),
            sweep_horizon: Duration::days(7),
            sweep_share: 0.2,
            job_slice: StdDuration::from_secs(60),
            gzip_level: GzipLevel::DEFAULT,
        }
    }
}

/// Points where a run can be interrupted on purpose (tests simulate a process kill there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPoint {
    /// A batch was written to the sink.
    AfterDelivery,
    /// Everything of a chunk is delivered; its cursor commit comes next.
    BeforeCommit,
    /// A chunk's cursor was committed.
    AfterCommit,
}

/// Observes a run; returning `Err` stops it on the spot, like a killed process (no cleanup,
/// the lease is not released).
pub trait FetchHooks: Send + Sync {
    /// Called at `point`.
    fn at(&self, point: HookPoint) -> Result<(), Interrupted>;
}

/// A run stopped by a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the run was interrupted")]
pub struct Interrupted;

/// No hooks.
pub struct NoHooks;

impl FetchHooks for NoHooks {
    fn at(&self, _: HookPoint) -> Result<(), Interrupted> {
        Ok(())
    }
}

/// One scheduled fetch's options.
pub struct FetchOptions<'a> {
    /// Stop starting work and waiting after this.
    pub deadline: Instant,
    /// The lease owner (a unique run id).
    pub owner: String,
    /// Interruption hooks.
    pub hooks: &'a dyn FetchHooks,
}

/// What a fetch run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FetchReport {
    /// Tenant.
    pub tenant_id: String,
    /// API.
    pub api: String,
    /// Watermark before the run.
    pub watermark_before: Option<DateTime<Utc>>,
    /// Watermark after the run.
    pub watermark_after: Option<DateTime<Utc>>,
    /// Records delivered.
    pub delivered: u64,
    /// Of which `created`.
    pub created: u64,
    /// Of which `updated`.
    pub updated: u64,
    /// Of which found late by the reconciliation sweep.
    pub late: u64,
    /// Versions skipped as already delivered.
    pub duplicates_skipped: u64,
    /// Chunks committed.
    pub chunks_committed: u64,
    /// Chunks planned.
    pub chunks_planned: u64,
    /// How far the watermark trails now, in seconds.
    pub lag_s: i64,
    /// HTTP-level counts.
    pub http: crate::microsoft::http::RequestStats,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
}

/// Why a fetch did not run or did not finish. Each `Display` is its cause's sentence, first.
#[derive(Debug, thiserror::Error)]
pub enum FetchFlowError {
    /// No such tenant.
    #[error("no such tenant is registered (see `mssp tenants list`)")]
    UnknownTenant,
    /// The tenant is not active.
    #[error("the tenant is {0}, and only active tenants are fetched")]
    NotActive(TenantStatus),
    /// Another fetch holds the tenant.
    #[error("another fetch holds the tenant until {0}; try again after that")]
    Busy(DateTime<Utc>),
    /// No usable token.
    #[error(transparent)]
    Token(#[from] RefreshError),
    /// The window was not drained completely; what was complete is committed.
    #[error("{error}")]
    Incomplete {
        /// What the run did.
        report: Box<FetchReport>,
        /// Why it stopped.
        error: FetchError,
    },
    /// The tenant's SIEM alerts are served by another region's exporter than the one it is read
    /// at (its reconciliation sweep found them there): nothing is fetched until the region is set.
    #[error(
        "the SIEM exporter of region {reading} returns nothing for this tenant while the {holds} exporter holds its alerts: run `mssp tenants set-region TENANT {holds}`"
    )]
    SiemRegion {
        /// The region the tenant is read at.
        reading: SiemRegion,
        /// The region whose exporter holds its alerts.
        holds: SiemRegion,
    },
    /// The run was interrupted by a hook (tests).
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FetchFlowError {
    /// The report of a run that did something before it stopped.
    pub fn report(&self) -> Option<&FetchReport> {
        match self {
            FetchFlowError::Incomplete { report, .. } => Some(report),
            _ => None,
        }
    }
}

/// The source of `tenant`'s API, with its request budget and retry policy.
pub fn source_for(d: &Deps, tenant: &Tenant) -> Result<Box<dyn AlertSource>, StoreError> {
    source_with_share(d, tenant, 1.0)
}

/// The source of `tenant`'s API spending at most `share` of the tenant's request budget (the
/// reconciliation sweep's).
pub fn source_with_share(
    d: &Deps,
    tenant: &Tenant,
    share: f64,
) -> Result<Box<dyn AlertSource>, StoreError> {
    let f = &d.settings.fetch;
    let ep = d.settings.endpoints.for_cloud(tenant.cloud);
    // Graph and MDE are one OData source, each with its own flavor, endpoint, budget and page.
    let (flavor, base, budget, page) = match tenant.alert_api {
        AlertApi::Graph => (Flavor::Graph, ep.graph, &f.graph_budget, f.graph_page),
        AlertApi::Mde => (Flavor::Mde, ep.mde, &f.mde_budget, f.mde_page),
        AlertApi::Siem => {
            return Ok(Box::new(siem_source(
                d,
                tenant,
                d.siem_region(tenant),
                share,
            )?));
        }
    };
    Ok(Box::new(ODataSource::new(
        flavor,
        base,
        api_client(d)?,
        shared_budget(budget, share),
        page,
        f.retry,
    )))
}

/// The SIEM source of `tenant` at `region`'s exporter, spending at most `share` of its budget.
pub fn siem_source(
    d: &Deps,
    tenant: &Tenant,
    region: SiemRegion,
    share: f64,
) -> Result<SiemSource, StoreError> {
    let f = &d.settings.fetch;
    let ep = d.settings.endpoints.for_cloud(tenant.cloud);
    Ok(SiemSource::new(
        ep.siem.for_region(region).clone(),
        api_client(d)?,
        shared_budget(&f.siem_budget, share),
        f.retry,
    ))
}

/// `share` of a request budget's windows (at least one request each).
fn shared_budget(windows: &[(u32, StdDuration)], share: f64) -> RequestBudget {
    RequestBudget::new(
        windows
            .iter()
            .map(|&(n, per)| (((f64::from(n) * share).floor() as u32).max(1), per))
            .collect(),
    )
}

/// The process's HTTP client of the alert APIs (shared by every tenant).
fn api_client(d: &Deps) -> Result<reqwest::Client, StoreError> {
    d.clients
        .apis(d.settings.fetch.http_timeout)
        .map_err(|e| StoreError::unavailable("building the API client", e))
}

/// The tenant `id`, if it exists and is active.
pub(crate) async fn active_tenant(d: &Deps, id: &TenantId) -> Result<Tenant, FetchFlowError> {
    d.active_tenant(id, FetchFlowError::UnknownTenant, FetchFlowError::NotActive)
        .await
}

/// Takes the tenant's fetch lease for `opts.owner` (a new attempt when the cursor was committed).
pub(crate) async fn lease(
    d: &Deps,
    tenant: &Tenant,
    opts: &FetchOptions<'_>,
) -> Result<Cursor, FetchFlowError> {
    let ttl = d.settings.fetch.lease_ttl;
    match d
        .cursors
        .acquire(
            &tenant.id,
            tenant.alert_api,
            &opts.owner,
            d.clock.now(),
            ttl,
        )
        .await
    {
        Ok(c) => Ok(c),
        Err(LeaseError::Held { until }) => Err(FetchFlowError::Busy(until)),
        Err(LeaseError::Store(e)) => Err(e.into()),
    }
}

/// The tenant record after a fetch: written only when the outcome changes what it says — a
/// failure, a recovery, or a success more than a day after the last recorded one (status shows
/// it); a healthy tenant's routine fetch writes nothing.
async fn record_outcome(d: &Deps, tenant: &Tenant, result: &Result<FetchReport, FetchFlowError>) {
    let now = d.clock.now();
    let detail = result.as_ref().err().map(ToString::to_string);
    let ok = detail.is_none();
    let unchanged = ok
        && tenant.consecutive_failures == 0
        && tenant
            .last_fetch
            .as_ref()
            .is_some_and(|o| o.ok && now - o.at < Duration::days(1));
    if unchanged {
        return;
    }
    let written = d
        .update_tenant(&tenant.id, |t| {
            t.last_fetch = Some(Outcome {
                at: now,
                ok,
                detail: detail.clone(),
            });
            t.consecutive_failures = if ok { 0 } else { t.consecutive_failures + 1 };
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(tenant_id = %tenant.id, error = %e, "could not record the fetch outcome");
    }
}

/// Runs one scheduled fetch of a tenant (see the module docs): one read of its state; a glance
/// at its window without the lease ([`idle`]); the regular run under the lease when there is
/// something to do.
pub async fn fetch_tenant(
    d: &Deps,
    id: &TenantId,
    opts: &FetchOptions<'_>,
) -> Result<FetchReport, FetchFlowError> {
    let state = d.cursors.state(id).await?;
    let tenant = state.tenant.ok_or(FetchFlowError::UnknownTenant)?;
    if tenant.status != TenantStatus::Active {
        return Err(FetchFlowError::NotActive(tenant.status));
    }
    let now = d.clock.now();
    if let Some(l) = state.cursor.as_ref().and_then(|c| c.lease.as_ref())
        && l.owner != opts.owner
        && l.expires_at > now
    {
        return Err(FetchFlowError::Busy(l.expires_at));
    }
    if let Some(holds) = state
        .cursor
        .as_ref()
        .and_then(|c| region::misplaced(d, &tenant, c))
    {
        let reading = d.siem_region(&tenant);
        let result = Err(FetchFlowError::SiemRegion { reading, holds });
        record_outcome(d, &tenant, &result).await;
        log_result(&tenant, &result);
        return result;
    }
    if let Some(cursor) = &state.cursor
        && let idle::Glance::Idle(report) = idle::glance(d, &tenant, cursor, opts.deadline).await
    {
        let result = Ok(report);
        record_outcome(d, &tenant, &result).await;
        return result;
    }
    let cursor = lease(d, &tenant, opts).await?;
    let result = live::run(d, &tenant, cursor, opts).await;
    if matches!(result, Err(FetchFlowError::Interrupted(_))) {
        // A killed process releases nothing; the lease expires by itself.
        return result;
    }
    if result.is_err() {
        // A run that finished released the lease with its last commit.
        let _ = d.cursors.release(id, tenant.alert_api, &opts.owner).await;
    }
    record_outcome(d, &tenant, &result).await;
    log_result(&tenant, &result);
    result
}

fn log_result(tenant: &Tenant, result: &Result<FetchReport, FetchFlowError>) {
    let (id, api) = (&tenant.id, tenant.alert_api);
    match result {
        Ok(r) => tracing::info!(
            tenant_id = %id, api = %api, alerts = r.delivered, created = r.created,
            updated = r.updated, duplicates = r.duplicates_skipped, lag_s = r.lag_s,
            "tenant fetched"
        ),
        Err(e) => {
            tracing::warn!(tenant_id = %id, api = %api, error = %e, "tenant fetch stopped early")
        }
    }
}
