//! The record we deliver: one line per alert version (DESIGN §5, schema `mssp.alert/1`), and the
//! one place that builds it from what an API returned.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use crate::domain::{AlertApi, Tenant, TenantId};
use crate::microsoft::alerts::{SourceAlert, fmt7};

/// The value of [`AlertRecord::schema`].
pub const SCHEMA: &str = "mssp.alert/1";

/// One alert version as delivered to the SIEM.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AlertRecord {
    /// Always `mssp.alert/1`.
    pub schema: String,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Tenant display name.
    pub tenant_name: String,
    /// `graph`, `mde` or `siem`.
    pub source: AlertApi,
    /// `created` for the alert's creation version, else `updated` ([`Change::of`]).
    pub change: Change,
    /// Set on an `updated` record when no earlier version of the alert was delivered before it
    /// (the creation version was never seen): absent otherwise.
    #[serde(default, skip_serializing_if = "is_false")]
    pub first_seen: bool,
    /// The API's alert id.
    pub alert_id: String,
    /// The version: the API's update timestamp, normalized to RFC 3339 UTC with 7 fractional digits.
    pub alert_version: String,
    /// `<tenant>:<alert_id>:<alert_version>`: stable across retries and runs.
    pub dedup_key: String,
    /// When we fetched it.
    pub fetched_at: DateTime<Utc>,
    /// The alert exactly as the API returned it: its bytes, written verbatim.
    pub alert: Box<RawValue>,
}

impl PartialEq for AlertRecord {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema
            && self.tenant_id == other.tenant_id
            && self.tenant_name == other.tenant_name
            && self.source == other.source
            && self.change == other.change
            && self.first_seen == other.first_seen
            && self.alert_id == other.alert_id
            && self.alert_version == other.alert_version
            && self.dedup_key == other.dedup_key
            && self.fetched_at == other.fetched_at
            && self.alert.get() == other.alert.get()
    }
}

impl AlertRecord {
    /// The alert parsed into a JSON tree, for the few readers that look inside it.
    pub fn alert_json(&self) -> serde_json::Value {
        serde_json::from_str(self.alert.get()).unwrap_or(serde_json::Value::Null)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Whether a record is an alert's creation version or a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The alert's creation version.
    Created,
    /// A later version.
    Updated,
}

impl Change {
    /// The one rule. Graph and MDE: a version is the alert's creation version when its update
    /// time is its creation time (`lastUpdateDateTime` = `createdDateTime`, `lastUpdateTime` =
    /// `alertCreationTime`); without a creation time it cannot be told, and is `updated`. SIEM:
    /// the API's own signal — its records are "immutable records of detections" (reference §1.5,
    /// §1.9), each emitted when the detection is processed, so every record is `created`.
    pub fn of(api: AlertApi, alert: &SourceAlert) -> Change {
        if api == AlertApi::Siem || alert.created.is_some_and(|c| c >= alert.version) {
            Change::Created
        } else {
            Change::Updated
        }
    }
}

/// Builds the record of `alert`, fetched from `tenant` at `fetched_at`. `first_seen` tells an
/// `updated` version that is the first of its alert we deliver (ignored for `created`).
pub fn build(
    tenant: &Tenant,
    alert: SourceAlert,
    fetched_at: DateTime<Utc>,
    first_seen: bool,
) -> AlertRecord {
    let change = Change::of(tenant.alert_api, &alert);
    AlertRecord {
        schema: SCHEMA.into(),
        tenant_id: tenant.id.clone(),
        tenant_name: tenant.display_name.clone(),
        source: tenant.alert_api,
        change,
        first_seen: first_seen && change == Change::Updated,
        alert_version: fmt7(alert.version),
        dedup_key: alert.dedup_key(&tenant.id),
        alert_id: alert.id,
        fetched_at,
        alert: alert.raw,
    }
}
