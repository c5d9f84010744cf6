//! DynamoDB: the tenant registry (items `TENANT#{id}` / `META`, writes conditional on
//! `version`) and the used consent nonces (items `NONCE#{nonce}`, written only if absent, expired
//! by the table's TTL).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::table::{ConditionalWriteError, Item, all_items, conditional};
use super::{n, s, sdk_err, tenant_pk};
use crate::domain::{Tenant, TenantId, TenantStatus};
use crate::ports::{ConsentNonces, StoreError, TenantRegistry};

pub(crate) fn tenant_key(id: &TenantId) -> Item {
    HashMap::from([
        ("pk".to_string(), tenant_pk(id)),
        ("sk".to_string(), s("META")),
    ])
}

fn tenant_item(t: &Tenant) -> Result<Item, StoreError> {
    let record = serde_json::to_string(t).map_err(|e| StoreError::Corrupt {
        what: format!("tenant {}", t.id),
        source: Box::new(e),
    })?;
    let mut item = tenant_key(&t.id);
    item.insert("record".into(), s(record));
    item.insert("version".into(), n(t.version));
    item.insert("status".into(), s(t.status.as_str()));
    item.insert("entity".into(), s("tenant"));
    Ok(item)
}

pub(crate) fn tenant_from(item: &Item) -> Result<Tenant, StoreError> {
    let record = item
        .get("record")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Corrupt {
            what: "tenant item without record".into(),
            source: "missing attribute".into(),
        })?;
    serde_json::from_str(record).map_err(|e| StoreError::Corrupt {
        what: "tenant record".into(),
        source: Box::new(e),
    })
}

/// The tenants of tenant items, by id.
fn tenants_from(items: &[Item]) -> Result<Vec<Tenant>, StoreError> {
    let mut out = items
        .iter()
        .map(tenant_from)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The global secondary index of tenant items by `status` (hash key `status`, range key `pk`,
/// projecting `record`); Terraform creates it with the table.
pub const STATUS_INDEX: &str = "by-status";

/// The tenant registry in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDbTenantRegistry {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbTenantRegistry {
    /// A registry in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbTenantRegistry {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl TenantRegistry for DynamoDbTenantRegistry {
    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(tenant_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err("reading a tenant", e.into_service_error()))?;
        out.item().map(tenant_from).transpose()
    }

    async fn list(&self) -> Result<Vec<Tenant>, StoreError> {
        let items = all_items(
            "listing tenants",
            self.client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :meta AND begins_with(pk, :tenant)")
                .expression_attribute_values(":meta", s("META"))
                .expression_attribute_values(":tenant", s("TENANT#"))
                .consistent_read(true),
        )
        .await?;
        tenants_from(&items)
    }

    /// A `Query` of the `by-status` index (tenant items by their `status` attribute, with their
    /// `record`), eventually consistent, paged by 1 MB: no other item of the table is read.
    async fn list_active(&self) -> Result<Vec<Tenant>, StoreError> {
        let items = all_items(
            "listing the active tenants",
            self.client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .key_condition_expression("#status = :active")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":active", s(TenantStatus::Active.as_str())),
        )
        .await?;
        tenants_from(&items)
    }

    async fn create(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(tenant_item(tenant)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        conditional("creating a tenant", r).map_err(|e| e.refused_as(StoreError::Conflict))?;
        Ok(())
    }

    async fn update(&self, tenant: &Tenant) -> Result<Tenant, StoreError> {
        let mut next = tenant.clone();
        next.version += 1;
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(tenant_item(&next)?))
            .condition_expression("attribute_exists(pk) AND version = :expected")
            .expression_attribute_values(":expected", n(tenant.version))
            .send()
            .await;
        match conditional("updating a tenant", r) {
            Ok(_) => Ok(next),
            Err(ConditionalWriteError::Refused { .. }) => match self.get(&tenant.id).await? {
                Some(_) => Err(StoreError::Conflict),
                None => Err(StoreError::NotFound),
            },
            Err(ConditionalWriteError::Failed(e)) => Err(e),
        }
    }
}

/// Used consent nonces in DynamoDB, expiring through the table's TTL attribute `ttl`.
#[derive(Debug, Clone)]
pub struct DynamoDbConsentNonces {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbConsentNonces {
    /// Nonces in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbConsentNonces {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl ConsentNonces for DynamoDbConsentNonces {
    async fn consume(
        &self,
        nonce: &str,
        _now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if nonce.is_empty() || nonce.len() > 128 {
            return Ok(false);
        }
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("NONCE#{nonce}")))
            .item("sk", s("NONCE"))
            .item("ttl", n(expires_at.timestamp() + 86_400))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match conditional("recording a nonce", r) {
            Ok(_) => Ok(true),
            Err(ConditionalWriteError::Refused { .. }) => Ok(false),
            Err(ConditionalWriteError::Failed(e)) => Err(e),
        }
    }
}
