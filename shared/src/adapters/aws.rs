//! AWS adapters: tokens and app credentials in Secrets Manager (one secret per tenant, DESIGN §5),
//! the tenant registry and consent nonces in one DynamoDB table.
//!
//! DynamoDB items (partition key `pk`, sort key `sk`, both strings):
//!
//! | item | pk | sk | other attributes |
//! |---|---|---|---|
//! | tenant | `TENANT#{id}` | `META` | `record` (JSON of [`Tenant`]), `version` (N), `status` |
//! | used nonce | `NONCE#{nonce}` | `NONCE` | `ttl` (N, Unix seconds; the table's TTL attribute) |
//! | fetch cursor | `TENANT#{id}` | `CURSOR#{api}` | see [`super::aws_fetch`] |
//!
//! Tenant writes are conditional on `version` (optimistic concurrency); nonce writes on the item
//! not existing (single use).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_secretsmanager::types::Tag;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::{Tenant, TenantId, TenantTokens};
use crate::ports::{
    AppCredentials, AppSecrets, ConsentNonces, StoreError, TenantRegistry, TokenStore,
};

/// Loads the AWS SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL`, which is how tests point the SDK at moto).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

pub(crate) fn sdk_err<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
    e: E,
) -> StoreError {
    StoreError::unavailable(what, e)
}

/// A `ClientRequestToken` derived from the content, so retrying the same write is idempotent
/// (Secrets Manager ignores a repeated token with the same value) while a different value always
/// makes a new version.
fn request_token(name: &str, content: &str) -> String {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(content.as_bytes());
    let d = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&d[..16]);
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// Tenant tokens in Secrets Manager: `{prefix}/tenants/{tenant_id}`, encrypted with a customer
/// KMS key, tagged with the tenant id.
#[derive(Debug, Clone)]
pub struct SecretsManagerTokenStore {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    kms_key_id: Option<String>,
}

impl SecretsManagerTokenStore {
    /// A store writing under `prefix` (no trailing slash) with `kms_key_id` for new secrets.
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        prefix: impl Into<String>,
        kms_key_id: Option<String>,
    ) -> Self {
        SecretsManagerTokenStore {
            client,
            prefix: prefix.into().trim_end_matches('/').to_string(),
            kms_key_id,
        }
    }

    /// The secret name of a tenant.
    pub fn secret_name(&self, tenant: &TenantId) -> String {
        format!("{}/tenants/{tenant}", self.prefix)
    }
}

#[async_trait]
impl TokenStore for SecretsManagerTokenStore {
    async fn get(&self, tenant: &TenantId) -> Result<Option<TenantTokens>, StoreError> {
        let name = self.secret_name(tenant);
        match self.client.get_secret_value().secret_id(&name).send().await {
            Ok(out) => {
                let text = out.secret_string().unwrap_or_default();
                serde_json::from_str(text)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        what: name,
                        source: Box::new(e),
                    })
            }
            Err(e) => {
                let e = e.into_service_error();
                if e.is_resource_not_found_exception() {
                    Ok(None)
                } else {
                    Err(sdk_err("reading a tenant secret", e))
                }
            }
        }
    }

    async fn put(&self, tokens: &TenantTokens) -> Result<(), StoreError> {
        let name = self.secret_name(&tokens.tenant_id);
        let value = serde_json::to_string(tokens).map_err(|e| StoreError::Corrupt {
            what: name.clone(),
            source: Box::new(e),
        })?;
        let token = request_token(&name, &value);
        let put = self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(&value)
            .client_request_token(&token)
            .send()
            .await;
        match put {
            Ok(_) => return Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if !e.is_resource_not_found_exception() {
                    return Err(sdk_err("writing a tenant secret", e));
                }
            }
        }
        let mut create = self
            .client
            .create_secret()
            .name(&name)
            .description("mssp-alerts: OAuth tokens of one customer tenant")
            .secret_string(&value)
            .client_request_token(&token)
            .tags(
                Tag::builder()
                    .key("tenant_id")
                    .value(tokens.tenant_id.as_str())
                    .build(),
            )
            .tags(Tag::builder().key("app").value("mssp-alerts").build());
        if let Some(k) = &self.kms_key_id {
            create = create.kms_key_id(k);
        }
        match create.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_resource_exists_exception() {
                    // Another writer created it between our two calls: write the value now.
                    self.client
                        .put_secret_value()
                        .secret_id(&name)
                        .secret_string(&value)
                        .client_request_token(&token)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| sdk_err("writing a tenant secret", e.into_service_error()))
                } else {
                    Err(sdk_err("creating a tenant secret", e))
                }
            }
        }
    }

    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let name = self.secret_name(tenant);
        match self
            .client
            .delete_secret()
            .secret_id(&name)
            // Offboarding must leave no usable token behind, and a tenant may be onboarded
            // again at once, which a pending deletion would block.
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_resource_not_found_exception() {
                    Ok(())
                } else {
                    Err(sdk_err("deleting a tenant secret", e))
                }
            }
        }
    }
}

/// The app credentials in Secrets Manager (`{prefix}/app`, JSON written by the operator:
/// `{"client_id", "client_secret", "state_key"}` with `state_key` base64 of ≥ 32 random bytes).
#[derive(Debug, Clone)]
pub struct SecretsManagerAppSecrets {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerAppSecrets {
    /// Reads the secret `secret_id` (name or ARN).
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerAppSecrets {
            client,
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl AppSecrets for SecretsManagerAppSecrets {
    async fn app_credentials(&self) -> Result<AppCredentials, StoreError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                let e = e.into_service_error();
                if e.is_resource_not_found_exception() {
                    StoreError::NotFound
                } else {
                    sdk_err("reading the app secret", e)
                }
            })?;
        serde_json::from_str(out.secret_string().unwrap_or_default()).map_err(|e| {
            // The parse error never quotes the value (serde_json reports positions only).
            StoreError::Corrupt {
                what: format!("app secret {}", self.secret_id),
                source: Box::new(e),
            }
        })
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The partition key of every item about one tenant (its record, its cursors).
pub(crate) fn tenant_pk(id: &TenantId) -> AttributeValue {
    s(format!("TENANT#{id}"))
}

fn tenant_key(id: &TenantId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), tenant_pk(id)),
        ("sk".to_string(), s("META")),
    ])
}

fn tenant_item(t: &Tenant) -> Result<HashMap<String, AttributeValue>, StoreError> {
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

fn tenant_from(item: &HashMap<String, AttributeValue>) -> Result<Tenant, StoreError> {
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
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :meta AND begins_with(pk, :tenant)")
                .expression_attribute_values(":meta", s("META"))
                .expression_attribute_values(":tenant", s("TENANT#"))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("listing tenants", e.into_service_error()))?;
            for item in page.items() {
                out.push(tenant_from(item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
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
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Err(StoreError::Conflict)
                } else {
                    Err(sdk_err("creating a tenant", e))
                }
            }
        }
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
        match r {
            Ok(_) => Ok(next),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    match self.get(&tenant.id).await? {
                        Some(_) => Err(StoreError::Conflict),
                        None => Err(StoreError::NotFound),
                    }
                } else {
                    Err(sdk_err("updating a tenant", e))
                }
            }
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
        match r {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Ok(false)
                } else {
                    Err(sdk_err("recording a nonce", e))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_tokens_are_stable_per_content_and_valid_for_secrets_manager() {
        let a = request_token("p/tenants/x", "{1}");
        assert_eq!(a, request_token("p/tenants/x", "{1}"));
        assert_ne!(a, request_token("p/tenants/x", "{2}"));
        assert!((32..=64).contains(&a.len()));
    }
}
