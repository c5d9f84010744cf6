//! The reconciliation sweep (DESIGN §10 Lateness): an alert version can become visible long
//! after its update time — later than the regular fetch's overlap below its watermark — and
//! Microsoft documents no bound on that delay. Every `sweep_interval` (6 h by default) each
//! tenant's trailing `sweep_horizon` (7 days) is listed again by update time, up to where the
//! regular fetch looks again itself (`watermark − overlap`); every version listed is looked up in
//! the delivery index, and a missing one is delivered as an ordinary record marked `late` with
//! the delay observed. A sweep spends at most `sweep_share` (20 %) of the tenant's request budget
//! and runs in slices of at most `job_slice` under the tenant's lease, so the regular fetch never
//! waits long. Only versions updated since the index began (the cursor's `indexed_since`) can be
//! told missing: a sweep never starts before that.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::fetch::job::{self, Kind, Slice};
use super::fetch::session::Session;
use super::fetch::{FetchFlowError, FetchOptions, active_tenant, lease, source_with_share};
use super::{Deps, region};
use crate::domain::{AlertApi, Tenant, TenantId};
use crate::microsoft::alerts::Window;
use crate::ports::Cursor;

/// What a sweep call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swept {
    /// No sweep is due yet (the last one finished less than an interval ago).
    NotDue,
    /// Nothing can be checked yet: the cursor predates the index, or covers too little.
    NothingToCheck,
    /// A slice ran; the job goes on or is finished.
    Ran(Slice),
}

/// The window a new sweep of `cursor` covers at `now`, if any.
pub fn window(d: &Deps, cursor: &Cursor, now: DateTime<Utc>) -> Option<Window> {
    let fs = &d.settings.fetch;
    let indexed = cursor.indexed_since?;
    let since = (now - fs.sweep_horizon).max(indexed);
    let until = cursor.watermark? - fs.overlap;
    (since < until).then_some(Window { since, until })
}

/// Whether `cursor`'s tenant is due a sweep (or has one in progress) at `now`.
pub fn due(d: &Deps, cursor: &Cursor, now: DateTime<Utc>) -> bool {
    cursor.sweep.is_some()
        || cursor
            .last_sweep
            .as_ref()
            .is_none_or(|s| s.finished + d.settings.fetch.sweep_interval <= now)
}

/// Runs one slice of the tenant's sweep when one is due: starts it, or continues it.
pub async fn sweep_tenant(
    d: &Deps,
    id: &TenantId,
    opts: &FetchOptions<'_>,
) -> Result<Swept, FetchFlowError> {
    let tenant = active_tenant(d, id).await?;
    let now = d.clock.now();
    let Some(cursor) = d.cursors.get(id, tenant.alert_api).await? else {
        return Ok(Swept::NothingToCheck);
    };
    if !due(d, &cursor, now) {
        return Ok(Swept::NotDue);
    }
    if cursor.sweep.is_none() && window(d, &cursor, now).is_none() {
        return Ok(Swept::NothingToCheck);
    }
    let cursor = lease(d, &tenant, opts).await?;
    let result = slice(d, &tenant, cursor, opts).await;
    if !matches!(result, Err(FetchFlowError::Interrupted(_))) {
        let _ = d.cursors.release(id, tenant.alert_api, &opts.owner).await;
    }
    if let Ok(Swept::Ran(Slice::Finished(s))) = &result {
        tracing::info!(
            tenant_id = %id, api = %tenant.alert_api, checked = s.checked, late = s.delivered,
            requests = s.requests, "tenant swept"
        );
    }
    result
}

async fn slice(
    d: &Deps,
    tenant: &Tenant,
    cursor: Cursor,
    opts: &FetchOptions<'_>,
) -> Result<Swept, FetchFlowError> {
    let now = d.clock.now();
    let Some(window) = cursor
        .sweep
        .as_ref()
        .map(|j| j.window)
        .or_else(|| window(d, &cursor, now))
    else {
        return Ok(Swept::NothingToCheck);
    };
    let source = source_with_share(d, tenant, d.settings.fetch.sweep_share)?;
    let mut s = Session::open(d, tenant, cursor, opts, window.since)
        .await?
        .with_source(source);
    if s.cursor.sweep.is_none() {
        s.cursor.sweep = Some(job::start(window, now));
    }
    let slice_end = (Instant::now() + d.settings.fetch.job_slice).min(opts.deadline);
    let mut ran = job::run_slice(&mut s, Kind::Sweep, slice_end).await?;
    if let Slice::Finished(summary) = &mut ran
        && summary.checked == 0
        && tenant.alert_api == AlertApi::Siem
    {
        summary.elsewhere = region::probe(&mut s, summary.window).await?;
    }
    Ok(Swept::Ran(ran))
}
