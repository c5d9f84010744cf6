//! Which tenants a scheduled round fetches (DESIGN §3: one work item per active tenant).

use super::Deps;
use crate::domain::{Tenant, TenantStatus};
use crate::ports::StoreError;

/// The active tenants a scheduled run should fetch (one work item each).
pub async fn dispatch(d: &Deps) -> Result<Vec<Tenant>, StoreError> {
    Ok(d.registry
        .list()
        .await?
        .into_iter()
        .filter(|t| t.status == TenantStatus::Active)
        .collect())
}
