//! Secrets Manager: tenant tokens (`{prefix}/tenants/{tenant_id}`, one secret per tenant so IAM
//! and audit are per tenant, DESIGN §5) and the app credentials (`{prefix}/app`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_secretsmanager::operation::create_secret::CreateSecretError;
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
use aws_sdk_secretsmanager::types::Tag;
use sha2::{Digest, Sha256};

use super::sdk_err;
use crate::domain::{TenantId, TenantTokens};
use crate::ports::{AppCredentials, AppSecrets, StoreError, TokenStore};

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
        let secret = Secret {
            name: &name,
            value: &value,
            token: &token,
        };
        match self.put_value(&secret).await {
            Ok(()) => return Ok(()),
            Err(e) if !e.is_resource_not_found_exception() => {
                return Err(sdk_err("writing a tenant secret", e));
            }
            Err(_) => {}
        }
        match self.create(&tokens.tenant_id, &secret).await {
            Ok(()) => Ok(()),
            // Another writer created it between our two calls: write the value now.
            Err(e) if e.is_resource_exists_exception() => self
                .put_value(&secret)
                .await
                .map_err(|e| sdk_err("writing a tenant secret", e)),
            Err(e) => Err(sdk_err("creating a tenant secret", e)),
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

/// A tenant secret's write: its name, its value and the write's request token.
struct Secret<'a> {
    name: &'a str,
    value: &'a str,
    token: &'a str,
}

impl SecretsManagerTokenStore {
    /// A new version of an existing secret.
    async fn put_value(&self, secret: &Secret<'_>) -> Result<(), PutSecretValueError> {
        self.client
            .put_secret_value()
            .secret_id(secret.name)
            .secret_string(secret.value)
            .client_request_token(secret.token)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.into_service_error())
    }

    /// The tenant's secret, tagged with its tenant, under the configured KMS key.
    async fn create(
        &self,
        tenant: &TenantId,
        secret: &Secret<'_>,
    ) -> Result<(), CreateSecretError> {
        let mut create = self
            .client
            .create_secret()
            .name(secret.name)
            .description("mssp-alerts: OAuth tokens of one customer tenant")
            .secret_string(secret.value)
            .client_request_token(secret.token)
            .tags(
                Tag::builder()
                    .key("tenant_id")
                    .value(tenant.as_str())
                    .build(),
            )
            .tags(Tag::builder().key("app").value("mssp-alerts").build());
        if let Some(k) = &self.kms_key_id {
            create = create.kms_key_id(k);
        }
        create
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.into_service_error())
    }
}

/// How long a process keeps the app credentials it read: a warm Lambda execution environment
/// reads `{prefix}/app` once, not once per tenant (Secrets Manager bills each call), and sees a
/// secret the operator rotated within this time.
pub const APP_SECRET_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// The app credentials in Secrets Manager (`{prefix}/app`, JSON written by the operator:
/// `{"client_id", "client_secret", "state_key"}` with `state_key` base64 of ≥ 32 random bytes).
/// Kept in memory for [`APP_SECRET_TTL`] after each read; clones share what was read.
#[derive(Debug, Clone)]
pub struct SecretsManagerAppSecrets {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    read: Arc<Mutex<Option<(Instant, AppCredentials)>>>,
}

impl SecretsManagerAppSecrets {
    /// Reads the secret `secret_id` (name or ARN).
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerAppSecrets {
            client,
            secret_id: secret_id.into(),
            read: Arc::default(),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Option<(Instant, AppCredentials)>> {
        self.read.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AppSecrets for SecretsManagerAppSecrets {
    async fn app_credentials(&self) -> Result<AppCredentials, StoreError> {
        if let Some((at, creds)) = self.kept().as_ref()
            && at.elapsed() < APP_SECRET_TTL
        {
            return Ok(creds.clone());
        }
        let creds = self.read_secret().await?;
        *self.kept() = Some((Instant::now(), creds.clone()));
        Ok(creds)
    }
}

impl SecretsManagerAppSecrets {
    async fn read_secret(&self) -> Result<AppCredentials, StoreError> {
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
