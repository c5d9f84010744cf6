//! Backfill: a tenant's history range delivered into the sink as ordinary records, exactly once.
//!
//! The operator asks for a range ([`request`]; `mssp backfill`, the fetcher's `backfill` invoke,
//! or a horizon at onboarding); the tenant record keeps the request until it is done. The range
//! ends where the regular fetch's coverage starts (the cursor's `covered_since`; never later), so
//! the two never deliver the same version, and a backfill waits for the tenant's first fetch.
//! It runs in slices of at most `job_slice` under the tenant's lease, inside the tenant's request
//! budget, each continuing where the last one stopped: a crash or a killed process loses nothing
//! (the attempt is read back) and delivers nothing twice (every version is looked up in the
//! delivery index, which every commit feeds).

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::Deps;
use super::fetch::job::{self, Kind, Slice};
use super::fetch::session::Session;
use super::fetch::{FetchFlowError, FetchOptions, active_tenant, lease};
use crate::domain::{BackfillRequest, Tenant, TenantId};
use crate::microsoft::alerts::Window;
use crate::ports::Cursor;

/// Why a backfill cannot be asked for.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The range is empty or reversed.
    #[error("the range is empty: since ({since}) must be before until ({until})")]
    Empty {
        /// Start.
        since: DateTime<Utc>,
        /// End.
        until: DateTime<Utc>,
    },
    /// The fetch flow failed (unknown or inactive tenant, storage).
    #[error(transparent)]
    Fetch(#[from] FetchFlowError),
}

/// Asks for a backfill of `since..until` (until: where the regular fetch's coverage starts when
/// absent). A request replaces an unfinished one's range; what was delivered stays delivered.
pub async fn request(
    d: &Deps,
    id: &TenantId,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> Result<Tenant, BackfillError> {
    let tenant = active_tenant(d, id).await?;
    let end = until.unwrap_or_else(|| d.clock.now());
    if since >= end {
        return Err(BackfillError::Empty { since, until: end });
    }
    let req = BackfillRequest { since, until };
    let updated = d
        .update_tenant(&tenant.id, |t| t.backfill = Some(req))
        .await
        .map_err(FetchFlowError::from)?;
    tracing::info!(tenant_id = %id, %since, until = ?until, "backfill requested");
    Ok(updated)
}

/// What a backfill call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backfilled {
    /// The tenant has no backfill to do.
    NoneRequested,
    /// The tenant has not been fetched yet: its coverage, where the backfill ends, is unknown.
    WaitingForFirstFetch,
    /// A slice ran (the range clamped to the regular fetch's coverage).
    Ran(Slice),
}

/// Runs one slice of the tenant's backfill, until it is done or `slice` is over.
pub async fn backfill_tenant(
    d: &Deps,
    id: &TenantId,
    opts: &FetchOptions<'_>,
    slice: std::time::Duration,
) -> Result<Backfilled, FetchFlowError> {
    let tenant = active_tenant(d, id).await?;
    let Some(req) = tenant.backfill else {
        return Ok(Backfilled::NoneRequested);
    };
    let cursor = lease(d, &tenant, opts).await?;
    let result = run(d, &tenant, req, cursor, opts, slice).await;
    if !matches!(result, Err(FetchFlowError::Interrupted(_))) {
        let _ = d.cursors.release(id, tenant.alert_api, &opts.owner).await;
    }
    if let Ok(Backfilled::Ran(Slice::Finished(s))) = &result {
        d.update_tenant(id, |t| t.backfill = None).await?;
        tracing::info!(
            tenant_id = %id, api = %tenant.alert_api, checked = s.checked,
            delivered = s.delivered, requests = s.requests, "backfill finished"
        );
    }
    result
}

async fn run(
    d: &Deps,
    tenant: &Tenant,
    req: BackfillRequest,
    cursor: Cursor,
    opts: &FetchOptions<'_>,
    slice: std::time::Duration,
) -> Result<Backfilled, FetchFlowError> {
    let Some(covered) = cursor.covered_since else {
        return Ok(Backfilled::WaitingForFirstFetch);
    };
    let now = d.clock.now();
    let window = Window {
        since: req.since,
        until: req.until.map_or(covered, |u| u.min(covered)),
    };
    let mut s = Session::open(d, tenant, cursor, opts, window.since).await?;
    match &s.cursor.backfill {
        Some(job) if job.window == window => {}
        // A new request, or a new range: what the old one delivered is in the index.
        _ => s.cursor.backfill = Some(job::start(window, now)),
    }
    // A range wholly inside the regular fetch's coverage has nothing to do: it finishes at once.
    let slice_end = (Instant::now() + slice).min(opts.deadline);
    Ok(Backfilled::Ran(
        job::run_slice(&mut s, Kind::Backfill, slice_end).await?,
    ))
}
