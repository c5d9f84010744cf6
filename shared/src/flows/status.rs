//! Tenant health at a glance: status, model, API, last refresh and fetch, lag, last error, and
//! the consent link to send when a tenant needs (re-)consent. One piece of code serves the CLI's
//! `mssp status` and the alert-fetcher's `{"action": "status"}`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Deps;
use super::onboarding::consent_link_with;
use crate::domain::{Tenant, TenantId, TenantStatus};
use crate::ports::{Cursor, Job, JobSummary, StoreError};

/// One tenant's health.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TenantHealth {
    /// Tenant id.
    pub tenant_id: TenantId,
    /// Customer name.
    pub display_name: String,
    /// `delegated-v1`, `delegated-v2`, `application`.
    pub auth_model: String,
    /// `graph`, `mde`, `siem`.
    pub alert_api: String,
    /// Lifecycle status.
    pub status: TenantStatus,
    /// When the last fetch finished, and whether it succeeded.
    pub last_fetch: Option<DateTime<Utc>>,
    /// Whether the last fetch succeeded.
    pub last_fetch_ok: Option<bool>,
    /// When tokens were last refreshed (or obtained).
    pub last_refresh: Option<DateTime<Utc>>,
    /// The watermark: every alert version updated before it has been delivered.
    pub watermark: Option<DateTime<Utc>>,
    /// Seconds the watermark trails now.
    pub lag_s: Option<i64>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// The last error of a refresh or fetch, newest first (no secret).
    pub last_error: Option<String>,
    /// A fresh consent link for tenants pending or needing re-consent.
    pub consent_link: Option<String>,
    /// The last finished reconciliation sweep: when, versions checked, late versions found.
    pub last_sweep: Option<JobSummary>,
    /// A backfill in progress: its range and how far it is.
    pub backfill: Option<Job>,
}

/// Health of one tenant, or of every tenant when `only` is `None` (offboarded ones left out).
pub async fn status(s: &Deps, only: Option<&TenantId>) -> Result<Vec<TenantHealth>, StoreError> {
    let tenants: Vec<Tenant> = match only {
        Some(id) => s.registry.get(id).await?.into_iter().collect(),
        None => s
            .registry
            .list()
            .await?
            .into_iter()
            .filter(|t| t.status != TenantStatus::Offboarded)
            .collect(),
    };
    let now = s.clock.now();
    // Read once: a fleet with thousands of tenants waiting for consent signs a link each.
    let creds = if tenants.iter().any(needs_consent) {
        s.app.app_credentials().await.ok()
    } else {
        None
    };
    let mut out = Vec::with_capacity(tenants.len());
    for t in tenants {
        let cursor = s.cursors.get(&t.id, t.alert_api).await?;
        let consent_link = match (&creds, needs_consent(&t)) {
            (Some(c), true) => Some(consent_link_with(s, c, &t).to_string()),
            _ => None,
        };
        out.push(health(t, cursor, consent_link, now));
    }
    Ok(out)
}

/// Whether the tenant waits for a consent (first or again).
fn needs_consent(t: &Tenant) -> bool {
    matches!(
        t.status,
        TenantStatus::PendingConsent | TenantStatus::ReconsentRequired
    )
}

/// The health of `t`, whose cursor is `cursor`, at `now`.
fn health(
    t: Tenant,
    cursor: Option<Cursor>,
    consent_link: Option<String>,
    now: DateTime<Utc>,
) -> TenantHealth {
    let watermark = cursor.as_ref().and_then(|c| c.watermark);
    let last_sweep = cursor.as_ref().and_then(|c| c.last_sweep.clone());
    let backfill = cursor.and_then(|c| c.backfill);
    let last_error = [&t.last_fetch, &t.last_refresh]
        .into_iter()
        .flatten()
        .filter(|o| !o.ok)
        .max_by_key(|o| o.at)
        .and_then(|o| o.detail.clone());
    TenantHealth {
        display_name: t.display_name.clone(),
        auth_model: t.auth_model.to_string(),
        alert_api: t.alert_api.to_string(),
        status: t.status,
        last_fetch: t.last_fetch.as_ref().map(|o| o.at),
        last_fetch_ok: t.last_fetch.as_ref().map(|o| o.ok),
        last_refresh: t.last_refresh.as_ref().map(|o| o.at),
        lag_s: watermark.map(|w| (now - w).num_seconds().max(0)),
        watermark,
        consecutive_failures: t.consecutive_failures,
        last_error,
        consent_link,
        last_sweep,
        backfill,
        tenant_id: t.id,
    }
}
