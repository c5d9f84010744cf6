//! On-demand fetch (DESIGN §6 On demand): every alert version of a time range now, for SOC
//! tooling, without touching the cursor.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::Deps;
use super::fetch::{FetchFlowError, FetchReport, active_tenant, source_for};
use super::refresh::access_token;
use crate::domain::{Tenant, TenantId};
use crate::microsoft::alerts::{DrainStats, FetchError, PageHandler, SourceAlert, Window};
use crate::record::{self, AlertRecord};

/// Collects every record of a window.
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
            // Nothing is known here of what was delivered before: no version is `first_seen`.
            self.out
                .push(record::build(&self.tenant, a, self.fetched_at, false));
        }
        Ok(())
    }
}

/// Fetches every alert version of `window` now, without touching the cursor (SOC tooling),
/// sorted by version then id.
pub async fn fetch_range(
    d: &Deps,
    id: &TenantId,
    window: Window,
    deadline: Instant,
) -> Result<Vec<AlertRecord>, FetchFlowError> {
    fetch_range_observed(d, id, window, deadline, &|_| {}).await
}

/// [`fetch_range`], calling `progress` with the number of alerts of each page as it arrives
/// (the CLI shows a counter during long fetches).
pub async fn fetch_range_observed(
    d: &Deps,
    id: &TenantId,
    window: Window,
    deadline: Instant,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<Vec<AlertRecord>, FetchFlowError> {
    let tenant = active_tenant(d, id).await?;
    let token = access_token(d, id).await?;
    let mut source = source_for(d, &tenant)?;
    let mut stats = DrainStats::default();
    let mut c = Collector {
        tenant,
        out: Vec::new(),
        fetched_at: d.clock.now(),
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
