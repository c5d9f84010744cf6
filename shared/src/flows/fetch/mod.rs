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
pub mod plan;

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::time::Instant;

use self::deliver::{Attempt, Deliverer};
use self::drain::Drain;
use super::Deps;
use super::refresh::{RefreshError, access_token, refresh_tenant};
use crate::domain::{AlertApi, Outcome, Tenant, TenantId, TenantStatus};
use crate::microsoft::alerts::odata::{Flavor, ODataSource};
use crate::microsoft::alerts::siem::SiemSource;
use crate::microsoft::alerts::{AlertSource, DrainStats, FetchError, Position, Window};
use crate::microsoft::http::{RequestBudget, RetryPolicy};
use crate::ports::{Cursor, Lease, LeaseError, Progress, StoreError};
use crate::secret::AccessToken;

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

/// The source of `tenant`'s API, with its request budget and retry policy.
pub fn source_for(d: &Deps, tenant: &Tenant) -> Result<Box<dyn AlertSource>, StoreError> {
    let f = &d.settings.fetch;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(f.http_timeout)
        .connect_timeout(StdDuration::from_secs(10))
        .build()
        .map_err(|e| StoreError::unavailable("building the API client", e))?;
    let ep = d.settings.endpoints.for_cloud(tenant.cloud);
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

/// The tenant `id`, if it exists and is active.
pub(crate) async fn active_tenant(d: &Deps, id: &TenantId) -> Result<Tenant, FetchFlowError> {
    let tenant = d
        .registry
        .get(id)
        .await?
        .ok_or(FetchFlowError::UnknownTenant)?;
    if tenant.status != TenantStatus::Active {
        return Err(FetchFlowError::NotActive(tenant.status));
    }
    Ok(tenant)
}

/// Takes the tenant's fetch lease for `opts.owner` (a new attempt when the cursor was committed).
async fn lease(
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
    d: &Deps,
    id: &TenantId,
    opts: &FetchOptions<'_>,
) -> Result<FetchReport, FetchFlowError> {
    let tenant = active_tenant(d, id).await?;
    let cursor = lease(d, &tenant, opts).await?;
    let result = run(d, &tenant, cursor, opts).await;
    if matches!(result, Err(FetchFlowError::Interrupted(_))) {
        // A killed process releases nothing; the lease expires by itself.
        return result;
    }
    let _ = d.cursors.release(id, tenant.alert_api, &opts.owner).await;
    let finished = d.clock.now();
    let (ok, detail) = match &result {
        Ok(_) => (true, None),
        Err(e) => (false, Some(e.to_string())),
    };
    if let Err(e) = d
        .update_tenant(id, |t| record_outcome(t, finished, ok, detail.clone()))
        .await
    {
        tracing::warn!(tenant_id = %id, error = %e, "could not record the fetch outcome");
    }
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

/// One run, from the lease to the last commit.
struct Run<'a> {
    d: &'a Deps,
    tenant: &'a Tenant,
    opts: &'a FetchOptions<'a>,
    now: DateTime<Utc>,
    cursor: Cursor,
    window: Window,
    attempt: Attempt,
    token: AccessToken,
    renewed: bool,
    source: Box<dyn AlertSource>,
    stats: DrainStats,
    report: FetchReport,
}

async fn run(
    d: &Deps,
    tenant: &Tenant,
    cursor: Cursor,
    opts: &FetchOptions<'_>,
) -> Result<FetchReport, FetchFlowError> {
    let now = d.clock.now();
    let token = access_token(d, &tenant.id).await?;
    let attempt = Attempt::resume(d.sink.as_ref(), &cursor, now).await?;
    let mut run = Run {
        window: plan::window(&cursor, now, &d.settings.fetch),
        report: FetchReport {
            tenant_id: tenant.id.to_string(),
            api: tenant.alert_api.to_string(),
            watermark_before: cursor.watermark,
            watermark_after: cursor.watermark,
            ..FetchReport::default()
        },
        source: source_for(d, tenant)?,
        stats: DrainStats::default(),
        renewed: false,
        d,
        tenant,
        opts,
        now,
        cursor,
        attempt,
        token,
    };
    if let Some(progress) = run.cursor.progress.clone() {
        // A checkpoint left a window half drained: finish it first, then what followed it.
        run.drain_window(Drain::resume(progress), None).await?;
        run.window = plan::window(&run.cursor, now, &d.settings.fetch);
    }
    run.fetch_window().await?;
    Ok(run.finish())
}

impl Run<'_> {
    /// Fetches the run's window. Its first page decides: a page that ends the window completes
    /// it (one request for an idle tenant); otherwise the window is counted, and drained whole
    /// or split into chunks of at most `chunk_target` alerts.
    async fn fetch_window(&mut self) -> Result<(), FetchFlowError> {
        let mut first = Drain::new(self.window);
        self.next_page(&mut first).await?;
        if first.done() {
            return self.commit(first.window().until, None).await;
        }
        let target = self.d.settings.fetch.chunk_target;
        let counted = self.source.count(
            &self.token,
            self.window,
            self.opts.deadline,
            &mut self.stats,
        );
        let count = counted.await.map_err(|e| self.incomplete(e))?;
        if count.is_none_or(|n| n <= target) {
            self.report.chunks_planned = 1;
            return self.drain_window(first, count).await;
        }
        let planned = plan::chunks(
            self.source.as_mut(),
            &self.token,
            self.window,
            count,
            target,
            self.opts.deadline,
            &mut self.stats,
        )
        .await;
        let chunks = planned.map_err(|e| self.incomplete(e))?;
        self.report.chunks_planned = chunks.len() as u64;
        for (chunk, expected) in chunks {
            self.drain_window(Drain::new(chunk), expected).await?;
        }
        Ok(())
    }

    /// Drains `drain` to the end of its window, delivering page by page and checkpointing every
    /// `checkpoint_pages` pages and when it stops early; then checks it is complete and commits.
    async fn drain_window(
        &mut self,
        mut drain: Drain,
        expected: Option<u64>,
    ) -> Result<(), FetchFlowError> {
        let every = self.d.settings.fetch.checkpoint_pages.max(1);
        let mut pages = 0u32;
        while !drain.done() {
            let before = drain.progress.clone();
            if let Err(e) = self.next_page(&mut drain).await {
                if !matches!(e, FetchFlowError::Interrupted(_)) && drain.progress != before {
                    self.checkpoint(&drain).await?;
                }
                return Err(e);
            }
            pages += 1;
            if !drain.done() && pages.is_multiple_of(every) {
                self.checkpoint(&drain).await?;
            }
        }
        let checked = drain.check_complete(
            expected,
            self.source.as_mut(),
            &self.token,
            self.opts.deadline,
            &mut self.stats,
        );
        if let Err(e) = checked.await {
            // What was delivered stays committed; the window is listed again from its start.
            self.commit(self.window.since, None).await?;
            return Err(self.incomplete(e));
        }
        self.commit(drain.window().until, None).await
    }

    /// Reads the drain's next page and delivers its new versions. A 401 renews the token once;
    /// a stored next link the API refuses starts the window over.
    async fn next_page(&mut self, drain: &mut Drain) -> Result<(), FetchFlowError> {
        let deadline = self.opts.deadline;
        let page = loop {
            match drain
                .page(self.source.as_mut(), &self.token, deadline, &mut self.stats)
                .await
            {
                Ok(page) => break page,
                Err(FetchError::Unauthorized) if !self.renewed => {
                    // The token may have been revoked or the clocks disagree: renew once, retry.
                    self.renewed = true;
                    refresh_tenant(self.d, &self.tenant.id, true).await?;
                    self.token = access_token(self.d, &self.tenant.id).await?;
                }
                Err(FetchError::Rejected { .. } | FetchError::Gone(_))
                    if matches!(drain.progress.at, Position::Link(_))
                        && drain.progress.listed > 0 =>
                {
                    drain.restart();
                }
                Err(e) => return Err(self.incomplete(e)),
            }
        };
        let fresh = drain
            .take(self.source.as_ref(), page, &mut self.stats)
            .map_err(|e| self.incomplete(e))?;
        let mut deliverer = Deliverer::new(
            self.tenant,
            self.d.sink.as_ref(),
            self.opts.hooks,
            &mut self.attempt,
            self.window,
            self.now,
            &mut self.report,
        );
        match deliverer.deliver(fresh).await {
            Ok(()) => Ok(()),
            Err(FetchError::Interrupted) => Err(Interrupted.into()),
            Err(e) => Err(self.incomplete(e)),
        }
    }

    /// Commits what was delivered with the drain's position, the watermark where it was.
    async fn checkpoint(&mut self, drain: &Drain) -> Result<(), FetchFlowError> {
        let at = self.cursor.watermark.unwrap_or(self.window.since);
        self.commit(at, Some(drain.progress.clone())).await
    }

    /// Commits the cursor: the watermark moves up to `until` (never back), with `progress` if a
    /// window is half drained. The lease is renewed and a new attempt starts under the new
    /// version.
    async fn commit(
        &mut self,
        until: DateTime<Utc>,
        progress: Option<Progress>,
    ) -> Result<(), FetchFlowError> {
        self.opts.hooks.at(HookPoint::BeforeCommit)?;
        let fs = &self.d.settings.fetch;
        let now = self.d.clock.now();
        let mut next = self.attempt.progressed(&self.cursor, until, fs.overlap);
        next.progress = progress;
        next.attempt_date = Some(now.date_naive().to_string());
        next.lease = Some(Lease {
            owner: self.opts.owner.clone(),
            expires_at: now + fs.lease_ttl,
        });
        self.cursor = self.d.cursors.commit(&next, &self.opts.owner, now).await?;
        self.attempt.restart(&self.cursor, now);
        self.report.chunks_committed += 1;
        self.report.watermark_after = self.cursor.watermark;
        self.opts.hooks.at(HookPoint::AfterCommit)?;
        Ok(())
    }

    /// The report of a run stopped by `error`: what was complete is committed.
    fn incomplete(&mut self, error: FetchError) -> FetchFlowError {
        let mut report = std::mem::take(&mut self.report);
        report.http = self.stats.http.clone();
        report.lag_s = self.lag_s();
        report.stopped = Some(error.to_string());
        FetchFlowError::Incomplete {
            report: Box::new(report),
            error,
        }
    }

    fn lag_s(&self) -> i64 {
        let overlap = self.d.settings.fetch.overlap;
        let watermark = self.cursor.watermark.unwrap_or(self.window.since + overlap);
        (self.now - watermark).num_seconds().max(0)
    }

    fn finish(mut self) -> FetchReport {
        self.report.http = self.stats.http.clone();
        self.report.lag_s = self.lag_s();
        self.report
    }
}
