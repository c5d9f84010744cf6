//! DynamoDB: the delivery index, beside the tenant's other items.
//!
//! | pk | sk | attributes |
//! |---|---|---|
//! | `TENANT#{id}` | `INDEX#{api}#{YYYY-MM-DD}#{commit}#{part}` | `d` (B: 8-byte digests, packed), `ttl` (N), `entity` = `index` |
//!
//! Each commit writes the digests it adds with one `PutItem` per version day it touches (a day's
//! digests of one commit are split into parts of at most 40,000, 320 KB, under DynamoDB's 400 KB
//! item limit). The item's key derives from the digests it holds, so a retried commit writes the
//! same item again, never a second one. A sweep reads its whole
//! horizon with one `Query` on the sort-key range (paged by 1 MB). Items expire through the
//! table's TTL [`RETENTION`] after they are written: longer than a sweep's horizon, or a backfill.
//!
//! Cost per tenant: one write per commit that delivered something (per version day it touches;
//! a write unit per KB, ~125 versions); a sweep's read is a few read units for a quiet tenant.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{NaiveDate, Utc};

use super::table::{Item, all_items, delete_keys, tenant_query};
use super::{n, s, sdk_err, tenant_pk};
use crate::domain::{AlertApi, TenantId};
use crate::ports::{DeliveryIndex, StoreError};

/// How long an index item lives after it is written (through the table's TTL attribute).
pub const RETENTION: chrono::Duration = chrono::Duration::days(30);

/// Digests per item: 320 KB of the 400 KB an item may hold.
const PART: usize = 40_000;

/// The delivery index in the registry's DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoDbDeliveryIndex {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbDeliveryIndex {
    /// The index in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbDeliveryIndex {
            client,
            table: table.into(),
        }
    }

    /// Queries the items of `tenant` whose sort key lies in `from..=to`, with `projection`.
    async fn items(
        &self,
        tenant: &TenantId,
        from: String,
        to: String,
        projection: &str,
    ) -> Result<Vec<Item>, StoreError> {
        all_items(
            "reading the delivery index",
            tenant_query(
                &self.client,
                &self.table,
                tenant,
                "sk BETWEEN :from AND :to",
            )
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(to))
            .projection_expression(projection),
        )
        .await
    }
}

/// The item key of a day's sorted digests: the SHA-256 of their bytes (hex, 16 digits). The
/// same set makes the same key, so a retried commit rewrites its item instead of adding one.
fn commit_key(sorted: &[u64]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for d in sorted {
        h.update(d.to_be_bytes());
    }
    let d = h.finalize();
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl DeliveryIndex for DynamoDbDeliveryIndex {
    async fn add(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        days: &[(NaiveDate, Vec<u64>)],
    ) -> Result<(), StoreError> {
        let expires = (Utc::now() + RETENTION).timestamp();
        for (day, digests) in days.iter().filter(|(_, d)| !d.is_empty()) {
            let mut unique: Vec<u64> = digests
                .iter()
                .copied()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            unique.sort_unstable();
            let commit = commit_key(&unique);
            for (part, chunk) in unique.chunks(PART).enumerate() {
                let bytes: Vec<u8> = chunk.iter().flat_map(|d| d.to_be_bytes()).collect();
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", tenant_pk(tenant))
                    .item("sk", s(format!("INDEX#{api}#{day}#{commit}#{part:03}")))
                    .item("d", AttributeValue::B(Blob::new(bytes)))
                    .item("ttl", n(expires))
                    .item("entity", s("index"))
                    .send()
                    .await
                    .map_err(|e| sdk_err("writing the delivery index", e.into_service_error()))?;
            }
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
        let items = self
            .items(
                tenant,
                format!("INDEX#{api}#{from}"),
                format!("INDEX#{api}#{to}#~"),
                "d",
            )
            .await?;
        let mut out = HashSet::new();
        for item in &items {
            if let Some(AttributeValue::B(b)) = item.get("d") {
                for chunk in b.as_ref().chunks_exact(8) {
                    let mut d = [0u8; 8];
                    d.copy_from_slice(chunk);
                    out.insert(u64::from_be_bytes(d));
                }
            }
        }
        Ok(out)
    }

    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let keys = self
            .items(tenant, "INDEX#".into(), "INDEX#~".into(), "pk, sk")
            .await?;
        delete_keys(
            &self.client,
            &self.table,
            "deleting the delivery index",
            keys,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_names_its_item_by_what_it_adds() {
        assert_eq!(commit_key(&[1, 2, 3]), commit_key(&[1, 2, 3]));
        assert_ne!(commit_key(&[1, 2, 3]), commit_key(&[1, 2, 4]));
        assert_ne!(commit_key(&[1, 2]), commit_key(&[1, 2, 0]));
    }
}
