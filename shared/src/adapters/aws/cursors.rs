//! DynamoDB: fetch cursors with their leases, in the registry's table.
//!
//! Cursor items sit beside the tenant item:
//!
//! | pk | sk | attributes |
//! |---|---|---|
//! | `TENANT#{id}` | `CURSOR#{api}` | `version` (N), `lease_owner` (S), `lease_expires` (N, Unix ms), `attempt_date` (S, `YYYY-MM-DD`), `record` (B), `entity` = `cursor` |
//!
//! `record` is the gzip of the JSON `{"watermark", "delivered"}`: the delivered-keys map of a busy
//! tenant is large, and an item may hold at most 400 KB, so a record over
//! [`MAX_CURSOR_RECORD_BYTES`] compressed is refused rather than half-written.
//!
//! A lease is live while `lease_expires > now`. `acquire` is one conditional `UpdateItem`
//! (free, expired, or already ours); `commit` one `UpdateItem` conditional on the version and on
//! a live lease of the committer, so a fetcher that lost its lease can never move the cursor.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use chrono::{DateTime, Duration, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::dynamodb::{tenant_from, tenant_key};
use super::table::{
    ConditionalWriteError, Item, all_items, conditional, delete_keys, tenant_query,
};
use super::{n, s, sdk_err, tenant_pk};
use crate::domain::{AlertApi, TenantId};
use crate::ports::{
    Cursor, CursorStore, Job, JobSummary, Lease, LeaseError, Progress, StoreError, TenantState,
};

/// The largest compressed cursor `record` written: DynamoDB refuses items over 400 KB, and the
/// keys and other attributes need a little room.
pub const MAX_CURSOR_RECORD_BYTES: usize = 380_000;

/// Why a cursor could not be stored: its compressed record would not fit in a DynamoDB item.
/// The source of the [`StoreError::Corrupt`] a commit returns.
#[derive(Debug, thiserror::Error)]
#[error(
    "the cursor record is {bytes} bytes compressed, over the {limit}-byte limit of a DynamoDB \
     item; shorten the overlap window"
)]
pub struct CursorTooLarge {
    /// Compressed size of the record.
    pub bytes: usize,
    /// [`MAX_CURSOR_RECORD_BYTES`].
    pub limit: usize,
}

/// The part of a [`Cursor`] stored compressed in `record`: everything but the key, the version,
/// the lease and the attempt date (attributes of their own, which conditions test).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CursorRecord {
    watermark: Option<DateTime<Utc>>,
    #[serde(default)]
    delivered: BTreeMap<String, DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    progress: Option<Progress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    indexed_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    covered_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sweep: Option<Job>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_sweep: Option<JobSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backfill: Option<Job>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_backfill: Option<JobSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checked_at: Option<DateTime<Utc>>,
}

impl CursorRecord {
    fn of(c: &Cursor) -> CursorRecord {
        CursorRecord {
            watermark: c.watermark,
            delivered: c.delivered.clone(),
            progress: c.progress.clone(),
            indexed_since: c.indexed_since,
            covered_since: c.covered_since,
            sweep: c.sweep.clone(),
            last_sweep: c.last_sweep.clone(),
            backfill: c.backfill.clone(),
            last_backfill: c.last_backfill.clone(),
            checked_at: c.checked_at,
        }
    }
}

fn corrupt(what: String, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::Corrupt {
        what,
        source: e.into(),
    }
}

fn encode_record(record: &CursorRecord) -> Result<Vec<u8>, StoreError> {
    let what = || "cursor record".to_string();
    // Buffered: the encoder pays for every small write (see `ndjson::encode_batch`).
    let mut out = std::io::BufWriter::with_capacity(
        64 * 1024,
        GzEncoder::new(Vec::new(), Compression::default()),
    );
    serde_json::to_writer(&mut out, record).map_err(|e| corrupt(what(), e))?;
    let gz = out
        .into_inner()
        .map_err(|e| corrupt(what(), e.into_error()))?;
    let bytes = gz.finish().map_err(|e| corrupt(what(), e))?;
    if bytes.len() > MAX_CURSOR_RECORD_BYTES {
        return Err(corrupt(
            what(),
            CursorTooLarge {
                bytes: bytes.len(),
                limit: MAX_CURSOR_RECORD_BYTES,
            },
        ));
    }
    Ok(bytes)
}

fn decode_record(bytes: &[u8]) -> Result<CursorRecord, StoreError> {
    serde_json::from_reader(GzDecoder::new(bytes))
        .map_err(|e| corrupt("cursor record".to_string(), e))
}

fn cursor_sk(api: AlertApi) -> AttributeValue {
    s(format!("CURSOR#{api}"))
}

fn cursor_key(tenant: &TenantId, api: AlertApi) -> Item {
    HashMap::from([
        ("pk".to_string(), tenant_pk(tenant)),
        ("sk".to_string(), cursor_sk(api)),
    ])
}

/// The cursor a write returned (`ReturnValue::AllNew`).
fn returned(tenant: &TenantId, api: AlertApi, item: Option<&Item>) -> Result<Cursor, StoreError> {
    let item =
        item.ok_or_else(|| corrupt(format!("cursor {tenant}/{api}"), "no attributes returned"))?;
    cursor_from(tenant, api, item)
}

/// Reads a cursor item back (the key is the caller's: it asked for it).
fn cursor_from(tenant: &TenantId, api: AlertApi, item: &Item) -> Result<Cursor, StoreError> {
    let what = || format!("cursor {tenant}/{api}");
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| corrupt(what(), "missing or invalid version"))?;
    let record = match item.get("record") {
        Some(AttributeValue::B(b)) => decode_record(b.as_ref())?,
        Some(_) => return Err(corrupt(what(), "record is not binary")),
        None => CursorRecord::default(),
    };
    let lease = match (item.get("lease_owner"), item.get("lease_expires")) {
        (Some(AttributeValue::S(owner)), Some(AttributeValue::N(ms))) => Some(Lease {
            owner: owner.clone(),
            expires_at: ms
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .ok_or_else(|| corrupt(what(), "invalid lease_expires"))?,
        }),
        _ => None,
    };
    let attempt_date = item
        .get("attempt_date")
        .and_then(|v| v.as_s().ok())
        .cloned();
    Ok(Cursor {
        tenant_id: tenant.clone(),
        api,
        watermark: record.watermark,
        delivered: record.delivered,
        progress: record.progress,
        indexed_since: record.indexed_since,
        covered_since: record.covered_since,
        sweep: record.sweep,
        last_sweep: record.last_sweep,
        backfill: record.backfill,
        last_backfill: record.last_backfill,
        checked_at: record.checked_at,
        version,
        lease,
        attempt_date,
    })
}

/// Cursors with leases in the registry's DynamoDB table (items `TENANT#{id}` / `CURSOR#{api}`).
#[derive(Debug, Clone)]
pub struct DynamoDbCursorStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbCursorStore {
    /// Cursors in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbCursorStore {
            client,
            table: table.into(),
        }
    }

    /// The conditional `UpdateItem` of a commit: the record and version, the attempt date and the
    /// lease as `next` has them (set, or removed when absent), if `owner` still holds the cursor
    /// at `next.version`.
    fn commit_request(
        &self,
        next: &Cursor,
        owner: &str,
        now: DateTime<Utc>,
        record: Vec<u8>,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let mut set = vec!["#record = :record", "version = :next"];
        let mut remove = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(&next.tenant_id, next.api)))
            .condition_expression("version = :v AND lease_owner = :me AND lease_expires > :now")
            .expression_attribute_names("#record", "record")
            .expression_attribute_values(":record", AttributeValue::B(Blob::new(record)))
            .expression_attribute_values(":next", n(next.version + 1))
            .expression_attribute_values(":v", n(next.version))
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":now", n(now.timestamp_millis()));
        match &next.attempt_date {
            Some(date) => {
                set.push("attempt_date = :date");
                req = req.expression_attribute_values(":date", s(date));
            }
            None => remove.push("attempt_date"),
        }
        match &next.lease {
            Some(lease) => {
                set.push("lease_expires = :exp");
                req =
                    req.expression_attribute_values(":exp", n(lease.expires_at.timestamp_millis()));
            }
            None => remove.push("lease_owner, lease_expires"),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        req.update_expression(expression)
            .return_values(ReturnValue::AllNew)
    }

    /// The expiry of whoever holds the lease now, after a refused `acquire`: from the item the
    /// refusal returned, else read again; `now` if the lease has been freed since.
    async fn held_until(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        refused: Option<&Item>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let lease = match refused {
            Some(item) => cursor_from(tenant, api, item)?.lease,
            None => self.get(tenant, api).await?.and_then(|c| c.lease),
        };
        Ok(lease.map_or(now, |l| l.expires_at))
    }
}

#[async_trait]
impl CursorStore for DynamoDbCursorStore {
    /// One `BatchGetItem` of the tenant item and its cursor items (one per API; the tenant's
    /// own API picks its cursor), eventually consistent: a read that lags a commit sees an older
    /// cursor, the run then finds versions "new" that were delivered, and its conditional lease
    /// or commit sorts it out.
    async fn state(&self, tenant: &TenantId) -> Result<TenantState, StoreError> {
        let mut keys = KeysAndAttributes::builder().keys(tenant_key(tenant));
        for api in AlertApi::ALL {
            keys = keys.keys(cursor_key(tenant, api));
        }
        let keys = keys.build().map_err(|e| sdk_err("building a read", e))?;
        let mut unprocessed = HashMap::from([(self.table.clone(), keys)]);
        let mut state = TenantState::default();
        let mut cursors = Vec::new();
        for _ in 0..5 {
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(unprocessed))
                .send()
                .await
                .map_err(|e| sdk_err("reading a tenant's state", e.into_service_error()))?;
            for item in out
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                let sk = item.get("sk").and_then(|v| v.as_s().ok());
                match sk.map(String::as_str) {
                    Some("META") => state.tenant = Some(tenant_from(item)?),
                    Some(sk) => {
                        let api = AlertApi::ALL
                            .into_iter()
                            .find(|a| cursor_sk(*a).as_s().ok().map(String::as_str) == Some(sk));
                        if let Some(api) = api {
                            cursors.push(cursor_from(tenant, api, item)?);
                        }
                    }
                    None => {}
                }
            }
            match out.unprocessed_keys() {
                Some(rest) if !rest.is_empty() => unprocessed = rest.clone(),
                _ => {
                    let api = state.tenant.as_ref().map(|t| t.alert_api);
                    state.cursor = cursors.into_iter().find(|c| Some(c.api) == api);
                    return Ok(state);
                }
            }
        }
        Err(StoreError::unavailable(
            "reading a tenant's state",
            std::io::Error::other("DynamoDB left keys unprocessed five times"),
        ))
    }

    async fn advance(&self, next: &Cursor, now: DateTime<Utc>) -> Result<Cursor, StoreError> {
        let record = encode_record(&CursorRecord::of(next))?;
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(&next.tenant_id, next.api)))
            .update_expression("SET #record = :record, version = :next")
            .condition_expression(
                "version = :v AND attribute_not_exists(attempt_date) \
                 AND (attribute_not_exists(lease_owner) OR lease_expires <= :now)",
            )
            .expression_attribute_names("#record", "record")
            .expression_attribute_values(":record", AttributeValue::B(Blob::new(record)))
            .expression_attribute_values(":next", n(next.version + 1))
            .expression_attribute_values(":v", n(next.version))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let out =
            conditional("advancing a cursor", r).map_err(|e| e.refused_as(StoreError::Conflict))?;
        returned(&next.tenant_id, next.api, out.attributes())
    }

    async fn get(&self, tenant: &TenantId, api: AlertApi) -> Result<Option<Cursor>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(tenant, api)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err("reading a cursor", e.into_service_error()))?;
        out.item().map(|i| cursor_from(tenant, api, i)).transpose()
    }

    async fn acquire(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Cursor, LeaseError> {
        let empty = encode_record(&CursorRecord::default())?;
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(tenant, api)))
            .update_expression(
                "SET lease_owner = :me, lease_expires = :exp, \
                 version = if_not_exists(version, :zero), \
                 #record = if_not_exists(#record, :empty), \
                 attempt_date = if_not_exists(attempt_date, :today), entity = :entity",
            )
            .condition_expression(
                "attribute_not_exists(pk) OR attribute_not_exists(lease_owner) \
                 OR lease_expires <= :now OR lease_owner = :me",
            )
            .expression_attribute_names("#record", "record")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":exp", n((now + ttl).timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":empty", AttributeValue::B(Blob::new(empty)))
            .expression_attribute_values(":today", s(now.date_naive().to_string()))
            .expression_attribute_values(":entity", s("cursor"))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match conditional("taking a fetch lease", r) {
            Ok(out) => Ok(returned(tenant, api, out.attributes())?),
            Err(ConditionalWriteError::Refused { item }) => {
                let until = self.held_until(tenant, api, item.as_ref(), now).await?;
                tracing::debug!(tenant_id = %tenant, api = %api, %until, "fetch lease is held");
                Err(LeaseError::Held { until })
            }
            Err(ConditionalWriteError::Failed(e)) => Err(e.into()),
        }
    }

    async fn commit(
        &self,
        next: &Cursor,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Cursor, StoreError> {
        if next.lease.as_ref().is_some_and(|l| l.owner != owner) {
            return Err(StoreError::Conflict);
        }
        let record = encode_record(&CursorRecord::of(next)).inspect_err(|e| {
            tracing::error!(
                tenant_id = %next.tenant_id,
                api = %next.api,
                delivered = next.delivered.len(),
                error = %e,
                "cursor could not be encoded for storage"
            );
        })?;
        let r = self.commit_request(next, owner, now, record).send().await;
        let out = conditional("committing a cursor", r)
            .map_err(|e| e.refused_as(StoreError::Conflict))?;
        returned(&next.tenant_id, next.api, out.attributes())
    }

    async fn release(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        owner: &str,
    ) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(tenant, api)))
            .update_expression("REMOVE lease_owner, lease_expires")
            .condition_expression("lease_owner = :me")
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match conditional("releasing a fetch lease", r) {
            // Refused: not ours any more (or no cursor), nothing to give up.
            Ok(_) | Err(ConditionalWriteError::Refused { .. }) => Ok(()),
            Err(ConditionalWriteError::Failed(e)) => Err(e),
        }
    }

    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let keys = all_items(
            "listing cursors",
            tenant_query(
                &self.client,
                &self.table,
                tenant,
                "begins_with(sk, :cursor)",
            )
            .expression_attribute_values(":cursor", s("CURSOR#"))
            .projection_expression("pk, sk")
            .consistent_read(true),
        )
        .await?;
        // At most one cursor per API.
        delete_keys(&self.client, &self.table, "deleting a cursor", keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_record_round_trips_compressed() {
        let delivered: BTreeMap<String, DateTime<Utc>> = (0..5_000)
            .map(|i| (format!("11111111-1111-4111-8111-111111111111:da{i:016}:2026-03-01T09:00:00.0000000Z"), Utc::now()))
            .collect();
        let record = CursorRecord {
            watermark: Some(Utc::now()),
            delivered: delivered.clone(),
            ..CursorRecord::default()
        };
        let bytes = encode_record(&record).expect("fits");
        assert!(bytes.len() < MAX_CURSOR_RECORD_BYTES);
        let back = decode_record(&bytes).expect("decodes");
        assert_eq!(back.delivered, delivered);
        assert_eq!(back.watermark, record.watermark);
    }

    #[test]
    fn a_cursor_record_too_large_for_an_item_is_refused_with_its_size() {
        use rand::Rng;
        let mut rng = rand::rng();
        let delivered = (0..20_000)
            .map(|_| {
                let key: String = (0..40)
                    .map(|_| char::from(rng.random_range(b'a'..=b'z')))
                    .collect();
                (key, Utc::now())
            })
            .collect();
        let e = encode_record(&CursorRecord {
            delivered,
            ..CursorRecord::default()
        })
        .expect_err("too large");
        let StoreError::Corrupt { source, .. } = e else {
            panic!("not Corrupt: {e:?}");
        };
        let too_large = source
            .downcast_ref::<CursorTooLarge>()
            .expect("CursorTooLarge");
        assert!(too_large.bytes > MAX_CURSOR_RECORD_BYTES);
    }
}
