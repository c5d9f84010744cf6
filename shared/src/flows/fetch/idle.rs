//! A glance before the lease: most rounds find nothing new, and those cost one read of the
//! tenant's state and one Microsoft request — no lease, no sink, no write. The window's first page
//! is read with the cached access token; when it ends the window and every version on it was
//! delivered, the round is done. The cursor is written then only when its last check is older
//! than `idle_write` (the watermark moves on, the overlap's keys are pruned), conditionally: never
//! under a run that holds the tenant or left an attempt. Anything else — something new, a next
//! page, a refusal — goes to the regular run under the lease.

use chrono::{DateTime, Utc};

use super::drain::Drain;
use super::{FetchReport, plan, source_for};
use crate::domain::Tenant;
use crate::flows::Deps;
use crate::flows::refresh::access_token;
use crate::microsoft::alerts::{DrainStats, SourceAlert};
use crate::ports::{Cursor, StoreError};

/// What the glance found.
pub enum Glance {
    /// Nothing new: the round is done.
    Idle(FetchReport),
    /// Something to do under the lease.
    Work,
}

/// Glances at `tenant`'s window from `cursor`.
pub async fn glance(
    d: &Deps,
    tenant: &Tenant,
    cursor: &Cursor,
    deadline: tokio::time::Instant,
) -> Glance {
    let now = d.clock.now();
    // A first run, a half-drained window, or a cursor that predates the delivery index (its
    // first commit seeds the index) need the regular run.
    if cursor.watermark.is_none() || cursor.progress.is_some() || cursor.indexed_since.is_none() {
        return Glance::Work;
    }
    let Ok(token) = access_token(d, tenant).await else {
        return Glance::Work;
    };
    let Ok(mut source) = source_for(d, tenant) else {
        return Glance::Work;
    };
    let window = plan::window(cursor, now, &d.settings.fetch);
    let mut stats = DrainStats::default();
    let mut drain = Drain::new(window);
    let page = drain
        .page(source.as_mut(), &token, deadline, &mut stats)
        .await;
    let fresh = match page.and_then(|p| drain.take(source.as_ref(), p, &mut stats)) {
        Ok(fresh) => fresh,
        Err(_) => return Glance::Work,
    };
    if !drain.done() || !fresh.iter().all(|a| delivered(tenant, cursor, a)) {
        return Glance::Work;
    }
    let mut report = FetchReport {
        tenant_id: tenant.id.to_string(),
        api: tenant.alert_api.to_string(),
        watermark_before: cursor.watermark,
        watermark_after: cursor.watermark,
        duplicates_skipped: fresh.len() as u64,
        http: stats.http,
        ..FetchReport::default()
    };
    if let Ok(Some(c)) = record_check(d, cursor, now).await {
        report.watermark_after = c.watermark;
    }
    report.lag_s = report
        .watermark_after
        .map_or(0, |w| (now - w).num_seconds().max(0));
    Glance::Idle(report)
}

fn delivered(tenant: &Tenant, cursor: &Cursor, a: &SourceAlert) -> bool {
    let key = a.dedup_key(&tenant.id);
    cursor.delivered.contains_key(&key)
        || a.legacy_key(&tenant.id)
            .is_some_and(|k| cursor.delivered.contains_key(&k))
}

/// Moves the watermark to `now` when the last check is older than `idle_write`; `Ok(None)` when
/// not due, or when another run holds the cursor (it records its own progress).
async fn record_check(
    d: &Deps,
    cursor: &Cursor,
    now: DateTime<Utc>,
) -> Result<Option<Cursor>, StoreError> {
    let fs = &d.settings.fetch;
    let last = cursor.checked_at.or(cursor.watermark);
    if last.is_some_and(|t| now - t < fs.idle_write) {
        return Ok(None);
    }
    let mut next = cursor.clone();
    next.watermark = Some(cursor.watermark.map_or(now, |w| w.max(now)));
    next.checked_at = Some(now);
    let keep_from = now - fs.overlap;
    next.delivered.retain(|_, at| *at >= keep_from);
    match d.cursors.advance(&next, now).await {
        Ok(c) => Ok(Some(c)),
        Err(StoreError::Conflict) => Ok(None),
        Err(e) => Err(e),
    }
}
