//! On-demand fetch (DESIGN §6 On demand): every alert version of a time range now, for SOC
//! tooling, without touching the cursor.

use tokio::time::Instant;

use super::Deps;
use super::fetch::drain::Drain;
use super::fetch::{FetchFlowError, FetchReport, active_tenant, source_for};
use super::refresh::access_token;
use crate::domain::TenantId;
use crate::microsoft::alerts::{DrainStats, FetchError, Window};
use crate::record::{self, AlertRecord, Labels};

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
    let token = access_token(d, &tenant).await?;
    let mut source = source_for(d, &tenant)?;
    let mut stats = DrainStats::default();
    let fetched_at = d.clock.now();
    let mut drain = Drain::new(window);
    let mut out = Vec::new();
    while !drain.done() {
        let taken = match drain
            .page(source.as_mut(), &token, deadline, &mut stats)
            .await
        {
            Ok(page) => drain.take(source.as_ref(), page, &mut stats),
            Err(e) => Err(e),
        };
        let alerts = taken.map_err(|e| incomplete(id, &stats, e))?;
        progress(alerts.len());
        // Nothing is known here of what was delivered before: no version is `first_seen`.
        out.extend(
            alerts
                .into_iter()
                .map(|a| record::build(&tenant, a, fetched_at, Labels::default())),
        );
    }
    drain
        .check_complete(None, source.as_mut(), &token, deadline, &mut stats)
        .await
        .map_err(|e| incomplete(id, &stats, e))?;
    out.sort_by(|a, b| {
        a.alert_version
            .cmp(&b.alert_version)
            .then_with(|| a.alert_id.cmp(&b.alert_id))
    });
    Ok(out)
}

fn incomplete(id: &TenantId, stats: &DrainStats, e: FetchError) -> FetchFlowError {
    FetchFlowError::Incomplete {
        report: Box::new(FetchReport {
            tenant_id: id.to_string(),
            http: stats.http.clone(),
            stopped: Some(e.to_string()),
            ..FetchReport::default()
        }),
        error: e,
    }
}
