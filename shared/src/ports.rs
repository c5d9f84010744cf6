//! Ports: the narrow storage traits the flows need, in the product's own types. Each has a local
//! adapter (files under one data directory, the embedded default) and an AWS adapter (Secrets
//! Manager, DynamoDB); flows are tested through the local ones, adapters at their wire boundary.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Tenant, TenantId, TenantTokens};
use crate::secret::{ClientSecret, SigningKey};

/// Why a store call failed, shaped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: someone else wrote first (retry with fresh data, or give up).
    #[error("the record was changed by someone else")]
    Conflict,
    /// The record to change does not exist.
    #[error("no such record")]
    NotFound,
    /// The store could not be reached or refused for now (retry later).
    #[error("the store is unavailable: {what}")]
    Unavailable {
        /// Which operation.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The stored data cannot be read (a bug or a hand edit).
    #[error("stored data is not valid: {what}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The parse error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps an I/O or SDK error as [`StoreError::Unavailable`].
    pub fn unavailable(
        what: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable {
            what,
            source: Box::new(e),
        }
    }
}

/// Tokens per tenant: one secret each (DESIGN §5).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The tenant's tokens, if any are stored.
    async fn get(&self, tenant: &TenantId) -> Result<Option<TenantTokens>, StoreError>;
    /// Creates or replaces the tenant's tokens.
    async fn put(&self, tokens: &TenantTokens) -> Result<(), StoreError>;
    /// Deletes the tenant's tokens (offboarding); deleting nothing is fine.
    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError>;
}

/// The tenant registry: tenant records without secrets, written with optimistic concurrency.
#[async_trait]
pub trait TenantRegistry: Send + Sync {
    /// One tenant.
    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;
    /// Every tenant, in id order.
    async fn list(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Adds a tenant; [`StoreError::Conflict`] when it exists.
    async fn create(&self, tenant: &Tenant) -> Result<(), StoreError>;
    /// Writes `tenant` if the stored version is still `tenant.version`, and returns the stored
    /// record (its version bumped); [`StoreError::Conflict`] otherwise.
    async fn update(&self, tenant: &Tenant) -> Result<Tenant, StoreError>;
}

/// Single-use consent nonces.
#[async_trait]
pub trait ConsentNonces: Send + Sync {
    /// Records `nonce` as used, unless it already was: `Ok(true)` the first time, `Ok(false)`
    /// on a replay. The record may be forgotten once `expires_at` has passed (the state is dead
    /// by then); `now` is the caller's clock.
    async fn consume(
        &self,
        nonce: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// The MSSP app registration's credentials (`{prefix}/app`, written by the operator).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AppCredentials {
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: ClientSecret,
    /// Key signing consent `state` (HMAC-SHA256), at least 32 bytes; base64 in JSON.
    #[serde(with = "base64_key")]
    pub state_key: SigningKey,
}

mod base64_key {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::secret::SigningKey;

    pub fn serialize<S: Serializer>(k: &SigningKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(k.expose_secret()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SigningKey, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| serde::de::Error::custom("state_key is not base64"))?;
        if bytes.len() < 32 {
            return Err(serde::de::Error::custom(
                "state_key must be at least 32 bytes",
            ));
        }
        Ok(SigningKey::new(bytes))
    }
}

/// Where the app credentials come from.
#[async_trait]
pub trait AppSecrets: Send + Sync {
    /// The current app credentials.
    async fn app_credentials(&self) -> Result<AppCredentials, StoreError>;
}
