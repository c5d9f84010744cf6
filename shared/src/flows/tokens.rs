//! This process's cache of access tokens: a warm process (a Lambda execution environment, or
//! `mssp serve`) asks no store for a tenant's token while the one it holds is valid. Entries hold
//! what deciding "fresh" needs: the token, its absolute expiry, and when the refresh token in
//! hand was obtained (delegated tenants use theirs at least every `refresh_token_max_idle`).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::domain::TenantId;
use crate::secret::AccessToken;

/// A cached access token.
#[derive(Debug, Clone)]
pub struct Cached {
    /// The token.
    pub token: AccessToken,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When the refresh token in hand was obtained (delegated tenants).
    pub refresh_token_obtained_at: Option<DateTime<Utc>>,
}

/// Access tokens by tenant.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<TenantId, Cached>>,
}

impl TokenCache {
    /// The cached entry of `tenant`, if any.
    pub fn entry(&self, tenant: &TenantId) -> Option<Cached> {
        self.lock().get(tenant).cloned()
    }

    /// The cached token of `tenant` if it is valid for at least `margin` more at `now`.
    pub fn get(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
        margin: Duration,
    ) -> Option<AccessToken> {
        self.entry(tenant)
            .filter(|c| c.expires_at - margin > now)
            .map(|c| c.token)
    }

    /// Keeps `entry` for `tenant`.
    pub fn put(&self, tenant: &TenantId, entry: Cached) {
        self.lock().insert(tenant.clone(), entry);
    }

    /// Forgets `tenant`'s token (refused by the API, or renewed on purpose).
    pub fn forget(&self, tenant: &TenantId) {
        self.lock().remove(tenant);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Cached>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
