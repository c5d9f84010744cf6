//! What every run under a tenant's lease shares — the regular fetch ([`super::live`]) and the
//! jobs over the past ([`super::job`]): the access token (renewed once on a 401), the alert
//! source, the delivery attempt, the report, and the commit.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::deliver::{Attempt, Deliverer};
use super::drain::Drain;
use super::{FetchFlowError, FetchOptions, FetchReport, HookPoint, Interrupted, source_for};
use crate::domain::Tenant;
use crate::flows::Deps;
use crate::flows::refresh::{access_token, refresh_tenant};
use crate::microsoft::alerts::siem::SiemSource;
use crate::microsoft::alerts::{
    AlertSource, DrainStats, FetchError, Position, SourceAlert, Window,
};
use crate::ports::{Cursor, Lease};
use crate::secret::AccessToken;

/// One run under a tenant's lease.
pub struct Session<'a> {
    /// Dependencies.
    pub d: &'a Deps,
    /// Whose alerts.
    pub tenant: &'a Tenant,
    /// Deadline, lease owner, hooks.
    pub opts: &'a FetchOptions<'a>,
    /// When the run started.
    pub now: DateTime<Utc>,
    /// The cursor as last stored, less its delivered keys (the attempt holds them).
    pub cursor: Cursor,
    /// Where a cursor that predates the delivery index starts indexing: the run's window start.
    pub index_from: DateTime<Utc>,
    attempt: Attempt,
    token: AccessToken,
    renewed: bool,
    source: Box<dyn AlertSource>,
    stats: DrainStats,
    /// What the run did.
    pub report: FetchReport,
}

impl<'a> Session<'a> {
    /// Opens a run on `cursor` (just leased): an access token, the attempt (reading back what
    /// an interrupted one left), and the tenant's alert source.
    pub async fn open(
        d: &'a Deps,
        tenant: &'a Tenant,
        mut cursor: Cursor,
        opts: &'a FetchOptions<'a>,
        index_from: DateTime<Utc>,
    ) -> Result<Session<'a>, FetchFlowError> {
        let now = d.clock.now();
        let token = access_token(d, tenant).await?;
        // The attempt holds the delivered keys from here on (`cursor.delivered` stays empty).
        let attempt = Attempt::resume(d.sink.as_ref(), &mut cursor, now).await?;
        Ok(Session {
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
            index_from,
            attempt,
            token,
        })
    }

    /// Uses `source` instead of the tenant's default one (a job with its own request budget).
    pub fn with_source(mut self, source: Box<dyn AlertSource>) -> Self {
        self.source = source;
        self
    }

    /// How many versions an interrupted attempt, read back at the start, had delivered inside
    /// `window` (a job counts them as its own).
    pub fn resumed_in(&self, window: Window) -> u64 {
        let inside = |at: &&DateTime<Utc>| window.since <= **at && **at < window.until;
        self.attempt.resumed.iter().filter(inside).count() as u64
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.stats.http.requests
    }

    /// Whether another SIEM exporter (`other`) holds any of the tenant's detections in `window`.
    pub async fn holds_any(
        &mut self,
        other: &mut SiemSource,
        window: Window,
    ) -> Result<bool, FetchFlowError> {
        let held = other
            .holds_any(&self.token, window, self.opts.deadline, &mut self.stats)
            .await;
        held.map_err(|e| self.incomplete(e))
    }

    /// How many alerts `window` holds, if the API counts.
    pub async fn count(&mut self, window: Window) -> Result<Option<u64>, FetchFlowError> {
        let counted = self
            .source
            .count(&self.token, window, self.opts.deadline, &mut self.stats)
            .await;
        counted.map_err(|e| self.incomplete(e))
    }

    /// Reads the drain's next page: its alerts not listed before in the window. A 401 renews the
    /// token once; a stored next link the API refuses starts the window over.
    pub async fn page(&mut self, drain: &mut Drain) -> Result<Vec<SourceAlert>, FetchFlowError> {
        let deadline = self.opts.deadline;
        self.after_partial(drain).await?;
        let page = loop {
            let read = drain.page(self.source.as_mut(), &self.token, deadline, &mut self.stats);
            match read.await {
                Ok(page) => break page,
                Err(FetchError::Unauthorized) if !self.renewed => {
                    // The token may have been revoked or the clocks disagree: renew once, retry.
                    self.renewed = true;
                    refresh_tenant(self.d, &self.tenant.id, true).await?;
                    self.token = access_token(self.d, self.tenant).await?;
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
        drain
            .take(self.source.as_ref(), page, &mut self.stats)
            .map_err(|e| self.incomplete(e))
    }

    /// Before asking again for a page that came back partial (206): backs off, or fails the window
    /// once the retry policy's attempts are spent.
    async fn after_partial(&mut self, drain: &Drain) -> Result<(), FetchFlowError> {
        let (streak, warning) = drain.partial_streak();
        if streak == 0 {
            return Ok(());
        }
        let policy = self.d.settings.fetch.retry;
        if streak >= policy.max_attempts.max(1) {
            let e = FetchError::Partial(warning.to_string());
            return Err(self.incomplete(e));
        }
        let wait = policy.backoff(streak);
        if tokio::time::Instant::now() + wait > self.opts.deadline {
            return Err(self.incomplete(FetchError::Deadline));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Delivers `alerts` (of a run over `window`) not delivered before. A job passes the index
    /// of the window's days, and whether its finds are late.
    pub async fn deliver(
        &mut self,
        alerts: Vec<SourceAlert>,
        window: Window,
        index: Option<&mut HashSet<u64>>,
        late: bool,
    ) -> Result<(), FetchFlowError> {
        let mut deliverer = Deliverer::new(
            self.tenant,
            self.d.sink.as_ref(),
            self.opts.hooks,
            &mut self.attempt,
            window,
            self.now,
            &mut self.report,
        );
        deliverer.index = index;
        deliverer.late = late;
        match deliverer.deliver(alerts).await {
            Ok(()) => Ok(()),
            Err(FetchError::Interrupted) => Err(Interrupted.into()),
            Err(e) => Err(self.incomplete(e)),
        }
    }

    /// Checks a drain is complete (see [`Drain::check_complete`]).
    pub async fn check_complete(
        &mut self,
        drain: &Drain,
        expected: Option<u64>,
    ) -> Result<(), FetchFlowError> {
        let checked = drain.check_complete(
            expected,
            self.source.as_mut(),
            &self.token,
            self.opts.deadline,
            &mut self.stats,
        );
        checked.await.map_err(|e| self.incomplete(e))
    }

    /// Commits the cursor as `change` leaves it: what was delivered goes into the delivery index
    /// first, then the cursor keeps the keys inside the overlap, renews the lease, and a new
    /// attempt starts under the new version.
    pub async fn commit(&mut self, change: impl FnOnce(&mut Cursor)) -> Result<(), FetchFlowError> {
        self.commit_as(change, false).await
    }

    /// Commits as [`Session::commit`] does, as the run's last write: nothing is pending after it
    /// (no attempt date) and the lease is released with it.
    pub async fn commit_last(
        &mut self,
        change: impl FnOnce(&mut Cursor),
    ) -> Result<(), FetchFlowError> {
        self.commit_as(change, true).await
    }

    async fn commit_as(
        &mut self,
        change: impl FnOnce(&mut Cursor),
        last: bool,
    ) -> Result<(), FetchFlowError> {
        self.opts.hooks.at(HookPoint::BeforeCommit)?;
        let fs = &self.d.settings.fetch;
        let now = self.d.clock.now();
        let mut next = self.cursor.clone();
        change(&mut next);
        if next.indexed_since.is_none() {
            next.indexed_since = Some(self.index_from);
            self.attempt.index_all();
        }
        if next.covered_since.is_none() {
            next.covered_since = Some(self.covered_since());
        }
        next.attempt_date = (!last).then(|| now.date_naive().to_string());
        next.lease = (!last).then(|| Lease {
            owner: self.opts.owner.clone(),
            expires_at: now + fs.lease_ttl,
        });
        let (tenant, api) = (&self.tenant.id, self.tenant.alert_api);
        self.d
            .index
            .add(tenant, api, &self.attempt.pending())
            .await?;
        self.attempt.keep_in(&mut next, fs.overlap);
        let committed = self.d.cursors.commit(&next, &self.opts.owner, now).await;
        self.attempt.take_back(&mut next);
        let mut committed = committed?;
        // The attempt holds the keys; the store's copy of them is not kept twice.
        committed.delivered.clear();
        self.cursor = committed;
        self.attempt.restart(&self.cursor, now);
        self.report.chunks_committed += 1;
        self.report.watermark_after = self.cursor.watermark;
        self.opts.hooks.at(HookPoint::AfterCommit)?;
        Ok(())
    }

    /// Where the regular fetch's coverage starts, for a cursor that does not say: its first
    /// window's start for a new cursor; for one of an earlier release, the earliest start its
    /// first fetch can have had (consent time minus the initial lookback and the overlap), so a
    /// backfill never repeats what that fetch delivered.
    fn covered_since(&self) -> DateTime<Utc> {
        let fs = &self.d.settings.fetch;
        match (&self.cursor.watermark, &self.tenant.consent) {
            (Some(_), Some(c)) => c.consented_at - fs.initial_lookback - fs.overlap,
            _ => self.index_from,
        }
    }

    /// The report of a run stopped by `error`: what was complete is committed.
    pub fn incomplete(&mut self, error: FetchError) -> FetchFlowError {
        let mut report = std::mem::take(&mut self.report);
        report.http = self.stats.http.clone();
        report.lag_s = self.lag_s();
        report.stopped = Some(error.to_string());
        FetchFlowError::Incomplete {
            report: Box::new(report),
            error,
        }
    }

    /// Seconds the watermark trails the run's start.
    pub fn lag_s(&self) -> i64 {
        let watermark = self.cursor.watermark.unwrap_or(self.index_from);
        (self.now - watermark).num_seconds().max(0)
    }

    /// The run's report.
    pub fn finish(mut self) -> FetchReport {
        self.report.http = self.stats.http.clone();
        self.report.lag_s = self.lag_s();
        self.report
    }
}
