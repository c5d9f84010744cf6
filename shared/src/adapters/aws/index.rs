//! DynamoDB: the delivery index, beside the tenant's other items.
//!
//! | pk | sk | attributes |
//! |---|---|---|
//! | `TENANT#{id}` | `INDEX#{api}#{YYYY-MM-DD}#{shard:03}` | `d` (binary set of 8-byte digests), `entity` = `index` |
//!
//! A commit adds its digests with one `UpdateItem … ADD d :set` per day it touches (adding is
//! idempotent). An item holds at most 400 KB, about 40,000 digests: a day that outgrows its shard
//! continues in the next one. A sweep reads its whole horizon with one `Query` on the sort-key
//! range (paged by 1 MB). Cost per tenant: one write unit per day touched per commit while a
//! day's item is under 1 KB (~100 versions), a few more for busier days.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;

use super::{s, sdk_err, tenant_pk};
use crate::domain::{AlertApi, TenantId};
use crate::ports::{DeliveryIndex, StoreError};

/// The largest number of shards tried for one day before giving up.
const MAX_SHARDS: u32 = 64;

/// The delivery index in the registry's DynamoDB table.
#[derive(Debug)]
pub struct DynamoDbDeliveryIndex {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// The shard each (tenant, API, day) is written to now: learnt when a shard fills up.
    shards: Mutex<HashMap<(TenantId, AlertApi, NaiveDate), u32>>,
}

impl DynamoDbDeliveryIndex {
    /// The index in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbDeliveryIndex {
            client,
            table: table.into(),
            shards: Mutex::default(),
        }
    }

    fn shard_of(&self, key: &(TenantId, AlertApi, NaiveDate)) -> u32 {
        let shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        shards.get(key).copied().unwrap_or(0)
    }

    fn set_shard(&self, key: (TenantId, AlertApi, NaiveDate), shard: u32) {
        let mut shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        shards.insert(key, shard);
    }

    /// Adds one day's digests, moving on to the next shard while an item is full.
    async fn add_day(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        day: NaiveDate,
        digests: &[u64],
    ) -> Result<(), StoreError> {
        let unique: HashSet<u64> = digests.iter().copied().collect();
        let set: Vec<Blob> = unique
            .into_iter()
            .map(|d| Blob::new(d.to_be_bytes().to_vec()))
            .collect();
        let key = (tenant.clone(), api, day);
        let mut shard = self.shard_of(&key);
        loop {
            let r = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", tenant_pk(tenant))
                .key("sk", s(format!("INDEX#{api}#{day}#{shard:03}")))
                .update_expression("ADD d :set SET entity = :entity")
                .expression_attribute_values(":set", AttributeValue::Bs(set.clone()))
                .expression_attribute_values(":entity", s("index"))
                .send()
                .await;
            match r {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let e = e.into_service_error();
                    let full = e.meta().code() == Some("ValidationException")
                        && e.meta().message().is_some_and(|m| m.contains("size"));
                    if !full || shard + 1 >= MAX_SHARDS {
                        return Err(sdk_err("writing the delivery index", e));
                    }
                    shard += 1;
                    self.set_shard(key.clone(), shard);
                }
            }
        }
    }
}

fn digests_of(item: &HashMap<String, AttributeValue>, into: &mut HashSet<u64>) {
    if let Some(AttributeValue::Bs(set)) = item.get("d") {
        for b in set {
            if let Ok(bytes) = <[u8; 8]>::try_from(b.as_ref()) {
                into.insert(u64::from_be_bytes(bytes));
            }
        }
    }
}

#[async_trait]
impl DeliveryIndex for DynamoDbDeliveryIndex {
    async fn add(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        days: &[(NaiveDate, Vec<u64>)],
    ) -> Result<(), StoreError> {
        for (day, digests) in days.iter().filter(|(_, d)| !d.is_empty()) {
            self.add_day(tenant, api, *day, digests).await?;
        }
        Ok(())
    }

    async fn days(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HashSet<u64>, StoreError> {
        let mut out = HashSet::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", tenant_pk(tenant))
                .expression_attribute_values(":from", s(format!("INDEX#{api}#{from}")))
                .expression_attribute_values(":to", s(format!("INDEX#{api}#{to}#~")))
                .projection_expression("d")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("reading the delivery index", e.into_service_error()))?;
            for item in page.items() {
                digests_of(item, &mut out);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :index)")
                .expression_attribute_values(":pk", tenant_pk(tenant))
                .expression_attribute_values(":index", s("INDEX#"))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("listing the delivery index", e.into_service_error()))?;
            for key in page.items() {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key.clone()))
                    .send()
                    .await
                    .map_err(|e| sdk_err("deleting the delivery index", e.into_service_error()))?;
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(()),
            }
        }
    }
}
