//! The legacy SIEM API's regional exporters (reference §1.4): a tenant's detections are served
//! only by its own region's exporter (`wdatp-alertexporter-{eu,us,uk}`), and another region's
//! answers an empty list. A tenant recorded in the wrong region would read nothing, every fetch
//! "ok". The reconciliation sweep tells: when a SIEM tenant's sweep lists nothing, it asks the
//! other regions' exporters whether they hold anything in the same window (one request each,
//! `limit=1`, at most once per sweep interval); when one does, the sweep records that region, and
//! every fetch of the tenant fails with [`FetchFlowError::SiemRegion`] — the status, the logs and
//! the exit codes say so — until the operator sets the region ([`set_siem_region`]). The tenant's
//! watermark then goes back to where its coverage began, so what the wrong exporter hid is
//! fetched from the right one (nothing was delivered from the empty one, so nothing twice).

use super::Deps;
use super::fetch::session::Session;
use super::fetch::{FetchFlowError, FetchOptions, lease, siem_source};
use crate::domain::{AlertApi, SiemRegion, Tenant, TenantId};
use crate::microsoft::alerts::Window;
use crate::ports::{Cursor, StoreError};

/// The region whose exporter the last sweep found holding `tenant`'s alerts, when it is not the
/// region the tenant is read at.
pub fn misplaced(d: &Deps, tenant: &Tenant, cursor: &Cursor) -> Option<SiemRegion> {
    let found = cursor.last_sweep.as_ref()?.elsewhere?;
    (tenant.alert_api == AlertApi::Siem && found != d.siem_region(tenant)).then_some(found)
}

/// After a sweep of a SIEM tenant that listed nothing in `window`: the first other region whose
/// exporter holds something of the tenant there, if any (recorded on the last sweep).
pub async fn probe(
    s: &mut Session<'_>,
    window: Window,
) -> Result<Option<SiemRegion>, FetchFlowError> {
    let reading = s.d.siem_region(s.tenant);
    for region in SiemRegion::ALL.into_iter().filter(|r| *r != reading) {
        let mut other = siem_source(s.d, s.tenant, region, s.d.settings.fetch.sweep_share)?;
        if s.holds_any(&mut other, window).await? {
            tracing::warn!(
                tenant_id = %s.tenant.id, reading = %reading, holds = %region,
                "the tenant's SIEM alerts are served by another region's exporter"
            );
            s.commit(|c| {
                if let Some(last) = c.last_sweep.as_mut() {
                    last.elsewhere = Some(region);
                }
            })
            .await?;
            return Ok(Some(region));
        }
    }
    Ok(None)
}

/// Sets the SIEM exporter region of tenant `id`. When it changes for a tenant already fetched,
/// its watermark goes back to where its coverage began and its last sweep is forgotten, so the
/// next fetch reads that whole range from the new region's exporter.
pub async fn set_siem_region(
    d: &Deps,
    id: &TenantId,
    region: SiemRegion,
    opts: &FetchOptions<'_>,
) -> Result<Tenant, FetchFlowError> {
    let tenant = d.registered(id, FetchFlowError::UnknownTenant).await?;
    let before = d.siem_region(&tenant);
    let tenant = d
        .update_tenant(id, |t| t.siem_region = Some(region))
        .await?;
    if before == region || tenant.alert_api != AlertApi::Siem {
        return Ok(tenant);
    }
    if d.cursors.get(id, AlertApi::Siem).await?.is_none() {
        return Ok(tenant);
    }
    let mut next = lease(d, &tenant, opts).await?;
    if let Some(since) = next.covered_since {
        next.watermark = next.watermark.map(|w| w.min(since));
    }
    next.progress = None;
    next.sweep = None;
    next.last_sweep = None;
    next.lease = None;
    let now = d.clock.now();
    d.cursors
        .commit(&next, &opts.owner, now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => FetchFlowError::Busy(now),
            e => FetchFlowError::Store(e),
        })?;
    tracing::info!(tenant_id = %id, from = %before, to = %region, "SIEM region set; the tenant is read again from where its coverage began");
    Ok(tenant)
}
