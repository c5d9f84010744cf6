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
    /// Set on a version the reconciliation sweep found: it became visible after the regular
    /// fetch had passed its update time. Absent otherwise.
    #[serde(default, skip_serializing_if = "is_false")]
    pub late: bool,
    /// For a `late` record: seconds from the version's update time to when we fetched it (the
    /// delay observed; the version became visible somewhere in between).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_s: Option<i64>,
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
            && self.late == other.late
            && self.delay_s == other.delay_s
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

/// The 64-bit digest of a dedup key the delivery index keeps: the first eight bytes of its
/// SHA-256. A tenant's index holds thousands of keys a day; two distinct keys share a digest with
/// a probability near 2⁻⁶⁴ per pair.
pub fn digest(dedup_key: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(dedup_key.as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
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

/// What the fetch knows of a version beyond the API's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Labels {
    /// An `updated` version that is the first of its alert we deliver (ignored for `created`).
    pub first_seen: bool,
    /// Found by the reconciliation sweep.
    pub late: bool,
}

/// Builds the record of `alert`, fetched from `tenant` at `fetched_at`.
pub fn build(
    tenant: &Tenant,
    alert: SourceAlert,
    fetched_at: DateTime<Utc>,
    labels: Labels,
) -> AlertRecord {
    let change = Change::of(tenant.alert_api, &alert);
    let first_seen = labels.first_seen;
    AlertRecord {
        late: labels.late,
        delay_s: labels
            .late
            .then(|| (fetched_at - alert.version).num_seconds().max(0)),
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
