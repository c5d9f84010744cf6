//! Flows (use cases): onboarding and consent, token refresh. Each takes its dependencies through
//! [`Services`] — ports, the clock and settings — so the Lambda handlers, the CLI and the tests run
//! the same code over different adapters.

pub mod fetch;
pub mod onboarding;
pub mod refresh;
pub mod status;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use url::Url;

use crate::clock::Clock;
use crate::config::{Cloud, CloudEndpoints};
use crate::domain::{Tenant, TenantId};
use crate::entra::EntraClient;
use crate::ports::{
    AppCredentials, AppSecrets, ConsentNonces, StoreError, TenantRegistry, TokenStore,
};

/// Which Microsoft endpoints a tenant is reached at.
#[derive(Debug, Clone)]
pub enum Endpoints {
    /// Microsoft's real endpoints of each tenant's own cloud.
    PerCloud,
    /// One set for every tenant (an emulator, or a single sovereign cloud with overrides).
    Fixed(Box<CloudEndpoints>),
}

impl Endpoints {
    /// The endpoints for a tenant in `cloud`.
    pub fn for_cloud(&self, cloud: Cloud) -> CloudEndpoints {
        match self {
            Endpoints::PerCloud => CloudEndpoints::for_cloud(cloud),
            Endpoints::Fixed(e) => (**e).clone(),
        }
    }
}

/// Knobs of the onboarding and refresh flows.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Microsoft endpoints.
    pub endpoints: Endpoints,
    /// Public base URL of the consent endpoint (`{base}/consent/start`, `{base}/consent/callback`).
    pub public_base_url: Url,
    /// How long a consent link sent to a customer stays valid.
    pub consent_link_ttl: Duration,
    /// How long a sign-in started from a link may take.
    pub state_ttl: Duration,
    /// Refresh an access token this long before it expires.
    pub refresh_margin: Duration,
    /// Use a refresh token at least this often (Microsoft expires it after 90 idle days).
    pub refresh_token_max_idle: Duration,
    /// Tenants refreshed at once.
    pub refresh_concurrency: usize,
    /// Attempts per token request when the identity platform fails transiently.
    pub identity_attempts: u32,
    /// Timeout of each identity request.
    pub http_timeout: StdDuration,
    /// Knobs of alert fetching.
    pub fetch: fetch::FetchSettings,
}

impl Settings {
    /// Defaults for a deployment whose consent endpoint is at `public_base_url`.
    pub fn new(endpoints: Endpoints, public_base_url: Url) -> Self {
        Settings {
            endpoints,
            public_base_url,
            consent_link_ttl: Duration::days(7),
            state_ttl: Duration::minutes(30),
            refresh_margin: Duration::minutes(10),
            refresh_token_max_idle: Duration::days(14),
            refresh_concurrency: 8,
            identity_attempts: 4,
            http_timeout: StdDuration::from_secs(20),
            fetch: fetch::FetchSettings::default(),
        }
    }

    /// `{public_base_url}/consent/callback`: the redirect URI registered in Entra.
    pub fn redirect_uri(&self) -> String {
        join(&self.public_base_url, "consent/callback").to_string()
    }
}

pub(crate) use crate::alerts::join;

/// Everything a flow needs.
#[derive(Clone)]
pub struct Services {
    /// Tenant records.
    pub registry: Arc<dyn TenantRegistry>,
    /// Tokens per tenant.
    pub tokens: Arc<dyn TokenStore>,
    /// Used consent nonces.
    pub nonces: Arc<dyn ConsentNonces>,
    /// The app registration's credentials.
    pub app: Arc<dyn AppSecrets>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Knobs.
    pub settings: Settings,
}

impl Services {
    /// The identity client for a tenant's cloud with the app's credentials.
    pub(crate) fn entra(
        &self,
        creds: &AppCredentials,
        cloud: Cloud,
    ) -> Result<EntraClient, StoreError> {
        EntraClient::new(
            self.settings.endpoints.for_cloud(cloud).authority,
            creds.client_id.clone(),
            creds.client_secret.clone(),
            self.settings.http_timeout,
        )
        .map_err(|e| StoreError::unavailable("building the identity client", e))
    }

    /// Reads, changes and writes a tenant record, retrying when another writer won the race.
    pub async fn update_tenant(
        &self,
        id: &TenantId,
        mut change: impl FnMut(&mut Tenant),
    ) -> Result<Tenant, StoreError> {
        for _ in 0..5 {
            let mut t = self.registry.get(id).await?.ok_or(StoreError::NotFound)?;
            change(&mut t);
            t.updated_at = self.clock.now();
            match self.registry.update(&t).await {
                Err(StoreError::Conflict) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }
}
