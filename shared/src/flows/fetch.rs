//! Alert fetching (DESIGN §6 Fetch): per tenant, under the tenant's lease —
//!
//! 1. get an access token (cached, else refreshed or minted);
//! 2. query the window `[watermark − overlap, now)` on the API's update timestamp, split by count
//!    into chunks of at most [`FetchSettings::chunk_target`] alerts, each drained completely;
//! 3. drop versions already delivered (dedup key), deliver the rest to the sink page by page,
//!    and only then commit the cursor — after every complete chunk, conditional on the cursor
//!    version and the lease — so a run that hits its deadline keeps what it finished;
//! 4. never advance past a chunk that failed: a `206`, a 403, a malformed page or an exhausted
//!    retry budget leaves the watermark where it was and records the reason on the tenant.
//!
//! A run interrupted anywhere leaves its delivered objects in the sink under the uncommitted
//! cursor version; the next run reads their dedup keys back ([`AlertSink::attempt_contents`]),
//! so nothing is lost and nothing is delivered twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use tokio::time::Instant;

use super::Services;
use super::refresh::{RefreshError, access_token};
use crate::alerts::http::{RequestBudget, RetryPolicy};
use crate::alerts::odata::{Flavor, ODataSource};
use crate::alerts::siem::SiemSource;
use crate::alerts::{
    AlertSource, DrainStats, FetchError, PageHandler, SourceAlert, Window, dedup_key, fmt7, tick,
};
use crate::domain::{AlertApi, Outcome, Tenant, TenantId, TenantStatus};
use crate::ports::{
    AlertRecord, AlertSink, BatchId, Change, Cursor, CursorStore, LeaseError, StoreError,
};

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
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            overlap: Duration::hours(1),
            initial_lookback: Duration::days(7),
            lease_ttl: Duration::minutes(15),
            chunk_target: 20_000,
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
        }
    }
}

/// The fetch ports beside [`Services`].
#[derive(Clone)]
pub struct FetchPorts {
    /// Cursors and leases.
    pub cursors: Arc<dyn CursorStore>,
    /// Where records go.
    pub sink: Arc<dyn AlertSink>,
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
    /// Versions skipped as already delivered.
    pub duplicates_skipped: u64,
    /// Chunks committed.
    pub chunks_committed: u64,
    /// Chunks planned.
    pub chunks_planned: u64,
    /// How far the watermark trails now, in seconds.
    pub lag_s: i64,
    /// HTTP-level counts.
    pub http: crate::alerts::http::RequestStats,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
}

/// Why a fetch did not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum FetchFlowError {
    /// No such tenant.
    #[error("no such tenant")]
    UnknownTenant,
    /// The tenant is not active.
    #[error("the tenant is {0}")]
    NotActive(TenantStatus),
    /// Another fetch holds the tenant.
    #[error("another fetch holds the tenant until {0}")]
    Busy(DateTime<Utc>),
    /// No usable token.
    #[error("no access token: {0}")]
    Token(#[from] RefreshError),
    /// The window was not drained completely; what was complete is committed.
    #[error("the fetch stopped early: {error}")]
    Incomplete {
        /// What the run did.
        report: Box<FetchReport>,
        /// Why it stopped.
        error: FetchError,
    },
    /// The run was interrupted by a hook (tests).
    #[error(transparent)]
    Interrupted(#[from] Interrupted),
    /// A store failed.
    #[error("storage failed: {0}")]
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

/// The source of `tenant`'s API.
pub fn source_for(s: &Services, tenant: &Tenant) -> Result<Box<dyn AlertSource>, StoreError> {
    let f = &s.settings.fetch;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(f.http_timeout)
        .connect_timeout(StdDuration::from_secs(10))
        .build()
        .map_err(|e| StoreError::unavailable("building the API client", e))?;
    let ep = s.settings.endpoints.for_cloud(tenant.cloud);
    Ok(match tenant.alert_api {
        AlertApi::Graph => Box::new(ODataSource::new(
            Flavor::Graph,
            ep.graph,
            http,
            RequestBudget::new(f.graph_budget.clone()),
            f.graph_page,
            f.retry,
        )),
        AlertApi::Mde => Box::new(ODataSource::new(
            Flavor::Mde,
            ep.mde,
            http,
            RequestBudget::new(f.mde_budget.clone()),
            f.mde_page,
            f.retry,
        )),
        AlertApi::Siem => Box::new(SiemSource::new(
            ep.siem,
            http,
            RequestBudget::new(f.siem_budget.clone()),
            f.retry,
        )),
    })
}

/// The alert id inside a dedup key `<tenant>:<id>:<28-character version>`.
fn alert_id_of(key: &str) -> Option<&str> {
    let rest = key.split_once(':')?.1;
    rest.len().checked_sub(29).map(|end| &rest[..end])
}

/// Turns pages into records, skipping delivered versions, and writes one object per page.
struct Deliverer<'a> {
    tenant: &'a Tenant,
    sink: &'a dyn AlertSink,
    hooks: &'a dyn FetchHooks,
    /// Known delivered keys with their version times.
    delivered: &'a mut BTreeMap<String, DateTime<Utc>>,
    /// Alert ids with a delivered version.
    known_ids: &'a mut HashSet<String>,
    window_start: DateTime<Utc>,
    batch: BatchId,
    fetched_at: DateTime<Utc>,
    report: &'a mut FetchReport,
}

#[async_trait]
impl PageHandler for Deliverer<'_> {
    async fn page(&mut self, alerts: Vec<SourceAlert>) -> Result<(), FetchError> {
        let mut records = Vec::with_capacity(alerts.len());
        for a in alerts {
            let key = a.dedup_key(&self.tenant.id);
            if self.delivered.contains_key(&key) {
                self.report.duplicates_skipped += 1;
                continue;
            }
            let created = a.created.unwrap_or(a.version);
            let change = if !self.known_ids.contains(&a.id) && created >= self.window_start {
                Change::Created
            } else {
                Change::Updated
            };
            self.known_ids.insert(a.id.clone());
            self.delivered.insert(key.clone(), a.version);
            records.push(AlertRecord {
                schema: "mssp.alert/1".into(),
                tenant_id: self.tenant.id.clone(),
                tenant_name: self.tenant.display_name.clone(),
                source: self.tenant.alert_api,
                change,
                alert_version: fmt7(a.version),
                alert_id: a.id,
                dedup_key: key,
                fetched_at: self.fetched_at,
                alert: a.raw,
            });
        }
        if records.is_empty() {
            return Ok(());
        }
        self.sink
            .write_batch(&self.batch, &records)
            .await
            .map_err(|e| FetchError::Delivery(e.to_string()))?;
        self.batch.seq += 1;
        for r in &records {
            match r.change {
                Change::Created => self.report.created += 1,
                Change::Updated => self.report.updated += 1,
            }
        }
        self.report.delivered += records.len() as u64;
        self.hooks
            .at(HookPoint::AfterDelivery)
            .map_err(|_| FetchError::Interrupted)
    }
}

/// Splits `window` into chunks of at most `target` alerts by counting, oldest first.
async fn plan(
    source: &mut dyn AlertSource,
    token: &crate::secret::AccessToken,
    window: Window,
    target: u64,
    deadline: Instant,
    stats: &mut DrainStats,
) -> Result<Vec<Window>, FetchError> {
    let mut out = Vec::new();
    let mut todo = vec![window];
    while let Some(w) = todo.pop() {
        let n = source.count(token, w, deadline, stats).await?;
        let splittable = w.until - w.since >= tick() * 2;
        match n {
            Some(n) if n > target && splittable => {
                let half = (w.until - w.since) / 2;
                let mid = w.since + half - Duration::nanoseconds(half.subsec_nanos() as i64 % 100);
                // Pushed newest first so the oldest half is drained first.
                todo.push(Window {
                    since: mid,
                    until: w.until,
                });
                todo.push(Window {
                    since: w.since,
                    until: mid,
                });
            }
            _ => out.push(w),
        }
    }
    Ok(out)
}

fn record_outcome(t: &mut Tenant, now: DateTime<Utc>, ok: bool, detail: Option<String>) {
    t.last_fetch = Some(Outcome {
        at: now,
        ok,
        detail,
    });
    if ok {
        t.consecutive_failures = 0;
    } else {
        t.consecutive_failures += 1;
    }
}

/// Runs one scheduled fetch of a tenant (see the module docs).
pub async fn fetch_tenant(
    s: &Services,
    f: &FetchPorts,
    id: &TenantId,
    opts: &FetchOptions<'_>,
) -> Result<FetchReport, FetchFlowError> {
    let tenant = s
        .registry
        .get(id)
        .await?
        .ok_or(FetchFlowError::UnknownTenant)?;
    if tenant.status != TenantStatus::Active {
        return Err(FetchFlowError::NotActive(tenant.status));
    }
    let api = tenant.alert_api;
    let now = s.clock.now();
    let cursor = match f
        .cursors
        .acquire(id, api, &opts.owner, now, s.settings.fetch.lease_ttl)
        .await
    {
        Ok(c) => c,
        Err(LeaseError::Held { until }) => return Err(FetchFlowError::Busy(until)),
        Err(LeaseError::Store(e)) => return Err(e.into()),
    };
    let result = run(s, f, &tenant, cursor, now, opts).await;
    if matches!(result, Err(FetchFlowError::Interrupted(_))) {
        // A killed process releases nothing; the lease expires by itself.
        return result;
    }
    let _ = f.cursors.release(id, api, &opts.owner).await;
    let finished = s.clock.now();
    let (ok, detail) = match &result {
        Ok(_) => (true, None),
        Err(e) => (false, Some(e.to_string())),
    };
    if let Err(e) = s
        .update_tenant(id, |t| record_outcome(t, finished, ok, detail.clone()))
        .await
    {
        tracing::warn!(tenant_id = %id, error = %e, "could not record the fetch outcome");
    }
    match &result {
        Ok(r) => tracing::info!(
            tenant_id = %id, api = %api, alerts = r.delivered, created = r.created,
            updated = r.updated, duplicates = r.duplicates_skipped, lag_s = r.lag_s,
            "tenant fetched"
        ),
        Err(e) => {
            tracing::warn!(tenant_id = %id, api = %api, error = %e, "tenant fetch stopped early")
        }
    }
    result
}

async fn run(
    s: &Services,
    f: &FetchPorts,
    tenant: &Tenant,
    mut cursor: Cursor,
    now: DateTime<Utc>,
    opts: &FetchOptions<'_>,
) -> Result<FetchReport, FetchFlowError> {
    let fs = &s.settings.fetch;
    let mut report = FetchReport {
        tenant_id: tenant.id.to_string(),
        api: tenant.alert_api.to_string(),
        watermark_before: cursor.watermark,
        watermark_after: cursor.watermark,
        ..FetchReport::default()
    };
    let mut token = access_token(s, &tenant.id).await?;

    // What an interrupted attempt of this cursor version already delivered.
    let mut delivered = cursor.delivered.clone();
    let mut next_seq = 0;
    if let Some(date) = cursor.attempt_date.clone() {
        let prior = f
            .sink
            .attempt_contents(&tenant.id, tenant.alert_api, &date, cursor.version)
            .await?;
        next_seq = prior.next_seq;
        delivered.extend(prior.delivered);
    }
    let mut known_ids: HashSet<String> = delivered
        .keys()
        .filter_map(|k| alert_id_of(k).map(str::to_string))
        .collect();

    let watermark = cursor.watermark.unwrap_or(now - fs.initial_lookback);
    let window = Window {
        since: watermark - fs.overlap,
        until: now,
    };
    let mut source = source_for(s, tenant)?;
    let mut stats = DrainStats::default();
    let chunks = match plan(
        source.as_mut(),
        &token,
        window,
        fs.chunk_target,
        opts.deadline,
        &mut stats,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            report.http = stats.http;
            return Err(FetchFlowError::Incomplete {
                report: Box::new(report),
                error: e,
            });
        }
    };
    report.chunks_planned = chunks.len() as u64;
    let mut refreshed_after_401 = false;
    let mut i = 0;
    while i < chunks.len() {
        let chunk = chunks[i];
        let date = cursor
            .attempt_date
            .clone()
            .unwrap_or_else(|| now.format("%Y-%m-%d").to_string());
        let drained = {
            let mut handler = Deliverer {
                tenant,
                sink: f.sink.as_ref(),
                hooks: opts.hooks,
                delivered: &mut delivered,
                known_ids: &mut known_ids,
                window_start: window.since,
                batch: BatchId {
                    tenant_id: tenant.id.clone(),
                    api: tenant.alert_api,
                    cursor_version: cursor.version,
                    date,
                    seq: next_seq,
                },
                fetched_at: now,
                report: &mut report,
            };
            let r = source
                .drain(&token, chunk, opts.deadline, &mut handler, &mut stats)
                .await;
            next_seq = handler.batch.seq;
            r
        };
        match drained {
            Ok(()) => {}
            Err(FetchError::Interrupted) => return Err(Interrupted.into()),
            Err(FetchError::Unauthorized) if !refreshed_after_401 => {
                // The token may have been revoked or the clocks disagree: renew once, retry.
                refreshed_after_401 = true;
                super::refresh::refresh_tenant(s, &tenant.id, true).await?;
                token = access_token(s, &tenant.id).await?;
                continue;
            }
            Err(e) => {
                report.http = stats.http;
                report.lag_s = (now - cursor.watermark.unwrap_or(watermark)).num_seconds();
                report.stopped = Some(e.to_string());
                return Err(FetchFlowError::Incomplete {
                    report: Box::new(report),
                    error: e,
                });
            }
        }
        opts.hooks.at(HookPoint::BeforeCommit)?;
        let new_watermark = cursor.watermark.map_or(chunk.until, |w| w.max(chunk.until));
        let keep_from = new_watermark - fs.overlap;
        delivered.retain(|_, at| *at >= keep_from);
        let mut next = cursor.clone();
        next.watermark = Some(new_watermark);
        next.delivered = delivered.clone();
        cursor = f.cursors.commit(&next, &opts.owner, s.clock.now()).await?;
        report.chunks_committed += 1;
        report.watermark_after = cursor.watermark;
        opts.hooks.at(HookPoint::AfterCommit)?;
        next_seq = 0;
        i += 1;
        if i < chunks.len() {
            // A new attempt (new cursor version) for the next chunk, with a fresh lease.
            cursor = match f
                .cursors
                .acquire(
                    &tenant.id,
                    tenant.alert_api,
                    &opts.owner,
                    s.clock.now(),
                    fs.lease_ttl,
                )
                .await
            {
                Ok(c) => c,
                Err(LeaseError::Held { until }) => return Err(FetchFlowError::Busy(until)),
                Err(LeaseError::Store(e)) => return Err(e.into()),
            };
        }
    }
    report.http = stats.http;
    report.lag_s = report
        .watermark_after
        .map_or(0, |w| (now - w).num_seconds().max(0));
    Ok(report)
}

/// The active tenants a scheduled run should fetch (one work item each).
pub async fn dispatch(s: &Services) -> Result<Vec<Tenant>, StoreError> {
    Ok(s.registry
        .list()
        .await?
        .into_iter()
        .filter(|t| t.status == TenantStatus::Active)
        .collect())
}

/// Collects every record of a window, for on-demand queries.
struct Collector<'a> {
    tenant: Tenant,
    out: Vec<AlertRecord>,
    fetched_at: DateTime<Utc>,
    progress: &'a (dyn Fn(usize) + Send + Sync),
}

#[async_trait]
impl PageHandler for Collector<'_> {
    async fn page(&mut self, alerts: Vec<SourceAlert>) -> Result<(), FetchError> {
        (self.progress)(alerts.len());
        for a in alerts {
            self.out.push(AlertRecord {
                schema: "mssp.alert/1".into(),
                tenant_id: self.tenant.id.clone(),
                tenant_name: self.tenant.display_name.clone(),
                source: self.tenant.alert_api,
                change: if a.created.is_some_and(|c| c >= a.version) {
                    Change::Created
                } else {
                    Change::Updated
                },
                alert_version: fmt7(a.version),
                dedup_key: dedup_key(&self.tenant.id, &a.id, a.version),
                alert_id: a.id,
                fetched_at: self.fetched_at,
                alert: a.raw,
            });
        }
        Ok(())
    }
}

/// Fetches every alert version of `window` now, without touching the cursor (SOC tooling),
/// sorted by version then id.
pub async fn fetch_range(
    s: &Services,
    id: &TenantId,
    window: Window,
    deadline: Instant,
) -> Result<Vec<AlertRecord>, FetchFlowError> {
    fetch_range_observed(s, id, window, deadline, &|_| {}).await
}

/// [`fetch_range`], calling `progress` with the number of alerts of each page as it arrives
/// (the CLI shows a counter during long fetches).
pub async fn fetch_range_observed(
    s: &Services,
    id: &TenantId,
    window: Window,
    deadline: Instant,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<Vec<AlertRecord>, FetchFlowError> {
    let tenant = s
        .registry
        .get(id)
        .await?
        .ok_or(FetchFlowError::UnknownTenant)?;
    if tenant.status != TenantStatus::Active {
        return Err(FetchFlowError::NotActive(tenant.status));
    }
    let token = access_token(s, id).await?;
    let mut source = source_for(s, &tenant)?;
    let mut stats = DrainStats::default();
    let mut c = Collector {
        tenant,
        out: Vec::new(),
        fetched_at: s.clock.now(),
        progress,
    };
    if let Err(e) = source
        .drain(&token, window, deadline, &mut c, &mut stats)
        .await
    {
        return Err(FetchFlowError::Incomplete {
            report: Box::new(FetchReport {
                tenant_id: id.to_string(),
                http: stats.http,
                stopped: Some(e.to_string()),
                ..FetchReport::default()
            }),
            error: e,
        });
    }
    c.out.sort_by(|a, b| {
        a.alert_version
            .cmp(&b.alert_version)
            .then_with(|| a.alert_id.cmp(&b.alert_id))
    });
    Ok(c.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_id_is_read_back_from_a_dedup_key() {
        let k = "11111111-1111-4111-8111-111111111111:da637_-1:2021-05-02T14:19:01.3266667Z";
        assert_eq!(alert_id_of(k), Some("da637_-1"));
        let k = "t:id:with:colons:2021-05-02T14:19:01.3266667Z";
        assert_eq!(alert_id_of(k), Some("id:with:colons"));
        assert_eq!(alert_id_of("garbage"), None);
    }
}
