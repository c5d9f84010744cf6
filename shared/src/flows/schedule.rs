//! One tenant's scheduled work on one machine (`mssp serve`, `mssp run`): the regular fetch, then
//! a slice of its reconciliation sweep when one is due, then a slice of its backfill when one is
//! asked for — each under the tenant's lease in turn. (On AWS the three are separate work items
//! on the queue.)

use super::Deps;
use super::backfill::{Backfilled, backfill_tenant};
use super::fetch::{FetchFlowError, FetchOptions, FetchReport, fetch_tenant};
use super::sweep::{Swept, sweep_tenant};
use crate::domain::Tenant;

/// What one tenant's work did.
#[derive(Debug)]
pub struct TenantWork {
    /// The regular fetch.
    pub fetch: Result<FetchReport, FetchFlowError>,
    /// The sweep slice, when one ran or was looked at.
    pub sweep: Option<Result<Swept, FetchFlowError>>,
    /// The backfill slice, when the tenant has a backfill asked for.
    pub backfill: Option<Result<Backfilled, FetchFlowError>>,
}

/// Fetches `tenant`, then runs a slice of its sweep (if due) and of its backfill (if any).
/// The jobs wait for a fetch that completed; a killed run stops everything.
pub async fn tenant_work(d: &Deps, tenant: &Tenant, opts: &FetchOptions<'_>) -> TenantWork {
    let fetch = fetch_tenant(d, &tenant.id, opts).await;
    let mut work = TenantWork {
        sweep: None,
        backfill: None,
        fetch,
    };
    if work.fetch.is_err() {
        return work;
    }
    let swept = sweep_tenant(d, &tenant.id, opts).await;
    let killed = matches!(swept, Err(FetchFlowError::Interrupted(_)));
    work.sweep = Some(swept);
    if killed || tenant.backfill.is_none() {
        return work;
    }
    let slice = d.settings.fetch.job_slice;
    work.backfill = Some(backfill_tenant(d, &tenant.id, opts, slice).await);
    work
}
