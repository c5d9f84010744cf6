//! The record we deliver: one line per alert version (DESIGN §5, schema `mssp.alert/1`), and the
//! one place that builds it from what an API returned.

use chrono::{DateTime, Utc};
use std::io::{self, Write};

use crate::domain::{AlertApi, Tenant, TenantId};
use crate::microsoft::alerts::{RawAlert, SourceAlert, fmt7};

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
    pub alert: RawAlert,
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

/// Writes records as NDJSON lines, byte for byte as `serde_json` writes an [`AlertRecord`] (a
/// test holds the two to it), without its per-field overhead: the fields a batch shares (schema,
/// tenant, source, fetch time) are escaped once and reused, and the alert's bytes are copied as
/// they are. This is the sinks' encoder; it writes into whatever it is given (the compressor).
#[derive(Default)]
pub struct LineWriter {
    /// `{"schema":…,"tenant_id":…,"tenant_name":…,"source":…,"change":` of the last record.
    head: Vec<u8>,
    head_of: Option<(String, TenantId, String, AlertApi)>,
    /// `fetched_at` of the last record, and its JSON.
    fetched: Option<(DateTime<Utc>, Vec<u8>)>,
}

impl LineWriter {
    /// Writes `r` and a newline to `out`.
    ///
    /// # Errors
    ///
    /// What `out` returns.
    pub fn write(&mut self, out: &mut impl Write, r: &AlertRecord) -> io::Result<()> {
        self.head_for(r)?;
        let fetched = fetched_json(&mut self.fetched, r.fetched_at)?;
        out.write_all(&self.head)?;
        out.write_all(match r.change {
            Change::Created => b"\"created\"",
            Change::Updated => b"\"updated\"",
        })?;
        if r.first_seen {
            out.write_all(b",\"first_seen\":true")?;
        }
        if r.late {
            out.write_all(b",\"late\":true")?;
        }
        if let Some(delay) = r.delay_s {
            out.write_all(b",\"delay_s\":")?;
            out.write_all(delay.to_string().as_bytes())?;
        }
        out.write_all(b",\"alert_id\":")?;
        serde_json::to_writer(&mut *out, &r.alert_id)?;
        out.write_all(b",\"alert_version\":")?;
        serde_json::to_writer(&mut *out, &r.alert_version)?;
        out.write_all(b",\"dedup_key\":")?;
        serde_json::to_writer(&mut *out, &r.dedup_key)?;
        out.write_all(b",\"fetched_at\":")?;
        out.write_all(fetched)?;
        out.write_all(b",\"alert\":")?;
        out.write_all(r.alert.bytes())?;
        out.write_all(b"}\n")
    }

    /// Makes `head` the head of `r`, unless it already is (the last record's shared it).
    fn head_for(&mut self, r: &AlertRecord) -> io::Result<()> {
        let same_head = self
            .head_of
            .as_ref()
            .is_some_and(|(schema, tid, name, api)| {
                *schema == r.schema
                    && *tid == r.tenant_id
                    && *name == r.tenant_name
                    && *api == r.source
            });
        if same_head {
            return Ok(());
        }
        self.head.clear();
        self.head.extend_from_slice(b"{\"schema\":");
        serde_json::to_writer(&mut self.head, &r.schema)?;
        self.head.extend_from_slice(b",\"tenant_id\":");
        serde_json::to_writer(&mut self.head, r.tenant_id.as_str())?;
        self.head.extend_from_slice(b",\"tenant_name\":");
        serde_json::to_writer(&mut self.head, &r.tenant_name)?;
        self.head.extend_from_slice(b",\"source\":");
        serde_json::to_writer(&mut self.head, &r.source)?;
        self.head.extend_from_slice(b",\"change\":");
        self.head_of = Some((
            r.schema.clone(),
            r.tenant_id.clone(),
            r.tenant_name.clone(),
            r.source,
        ));
        Ok(())
    }
}

/// The JSON of `at`, from `cache` when the last record was fetched at the same time.
fn fetched_json(
    cache: &mut Option<(DateTime<Utc>, Vec<u8>)>,
    at: DateTime<Utc>,
) -> io::Result<&[u8]> {
    let entry = match cache.take() {
        Some(entry) if entry.0 == at => entry,
        _ => (at, serde_json::to_vec(&at)?),
    };
    Ok(&cache.insert(entry).1)
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
    let key = alert.dedup_key(&tenant.id);
    build_keyed(tenant, alert, key, fetched_at, labels)
}

/// [`build`] with the alert's dedup key, computed already ([`SourceAlert::dedup_key`]).
pub fn build_keyed(
    tenant: &Tenant,
    alert: SourceAlert,
    dedup_key: String,
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
        dedup_key,
        alert_id: alert.id,
        fetched_at,
        alert: alert.raw,
    }
}
