//! What a scheduled round asks for (DESIGN §3: one work item per active tenant): the regular
//! fetch of every active tenant, a slice of the backfill of those that asked for one, or — on the
//! sweep's own schedule — a sweep slice of every active tenant (each checks whether it is due).

use super::Deps;
use crate::domain::Tenant;
use crate::ports::{StoreError, WorkItem, WorkJob};

/// The active tenants a scheduled run should fetch (one work item each).
pub async fn dispatch(d: &Deps) -> Result<Vec<Tenant>, StoreError> {
    d.registry.list_active().await
}

/// The work items of a round of `job`: for the regular round, a fetch of every active tenant
/// and a backfill slice of each with a backfill asked for; for a sweep round, a sweep slice of
/// every active tenant. A backfill round is part of the regular one.
pub async fn round(d: &Deps, job: WorkJob) -> Result<Vec<WorkItem>, StoreError> {
    let tenants = dispatch(d).await?;
    let item = |t: &Tenant, job| WorkItem {
        tenant_id: t.id.clone(),
        job,
    };
    Ok(match job {
        WorkJob::Sweep => tenants.iter().map(|t| item(t, WorkJob::Sweep)).collect(),
        WorkJob::Fetch | WorkJob::Backfill => tenants
            .iter()
            .map(|t| item(t, WorkJob::Fetch))
            .chain(
                tenants
                    .iter()
                    .filter(|t| t.backfill.is_some())
                    .map(|t| item(t, WorkJob::Backfill)),
            )
            .collect(),
    })
}
