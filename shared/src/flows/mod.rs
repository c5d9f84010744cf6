//! Flows: the product's use cases, one module each. A flow takes [`Deps`] — the ports, the clock
//! and the settings — and nothing else, so the Lambda handlers, the CLI and the tests run the same
//! code over the AWS or the local adapters ([`crate::assemble`] builds them).
//!
//! | flow | use case |
//! |---|---|
//! | [`onboarding`] | register a tenant, consent links, the consent callback |
//! | [`adoption`] | onboard a tenant or a fleet, adopting those whose admin already granted the app |
//! | [`refresh`] | keep every tenant's tokens alive |
//! | [`app_health`] | the app registration's own credentials and client secret expiry |
//! | [`fetch`] | a tenant's alerts into the sink, exactly once, under its lease |
//! | [`sweep`] | find versions that became visible after the fetch passed them, deliver them late |
//! | [`backfill`] | deliver a history range as ordinary records |
//! | [`range`] | alerts of a time range now, for SOC tooling (no cursor move) |
//! | [`dispatch`] | which tenants a scheduled round fetches (AWS: work items) |
//! | [`schedule`] | one tenant's scheduled work on one machine: fetch, sweep, backfill |
//! | [`status`] | tenant health at a glance |

pub mod adoption;
pub mod app_health;
pub mod backfill;
pub mod cadence;
pub mod dispatch;
pub mod fetch;
pub mod onboarding;
pub mod range;
pub mod refresh;
pub mod region;
pub mod schedule;
pub mod status;
pub mod sweep;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use url::Url;

use crate::clock::Clock;
use crate::config::{Cloud, Endpoints};
use crate::domain::{Tenant, TenantId, TenantStatus};
use crate::microsoft::identity::EntraClient;
use crate::ports::{
    AlertSink, AppCredentials, AppSecrets, ConsentNonces, CursorStore, DeliveryIndex, StoreError,
    TenantRegistry, TokenStore, WorkQueue,
};

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
    /// The SIEM exporter region of a tenant that records none.
    pub siem_region: crate::domain::SiemRegion,
    /// Tenants refreshed at once.
    pub refresh_concurrency: usize,
    /// Attempts per token request when the identity platform fails transiently.
    pub identity_attempts: u32,
    /// Timeout of each identity request.
    pub http_timeout: StdDuration,
    /// Knobs of alert fetching.
    pub fetch: fetch::FetchSettings,
    /// Where the Lambda functions publish their metrics (`crate::metrics`).
    pub metrics: crate::config::deployment::MetricsConfig,
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
            siem_region: crate::domain::SiemRegion::default(),
            refresh_concurrency: 8,
            identity_attempts: 4,
            http_timeout: StdDuration::from_secs(20),
            fetch: fetch::FetchSettings::default(),
            metrics: Default::default(),
        }
    }

    /// `{public_base_url}/consent/callback`: the redirect URI registered in Entra.
    pub fn redirect_uri(&self) -> String {
        join(&self.public_base_url, "consent/callback").to_string()
    }
}

pub(crate) use crate::microsoft::alerts::join;

/// Everything a flow may use: the ports, the clock and the settings. One bundle, built by
/// [`crate::assemble`] for the Lambda functions (AWS adapters) and for the CLI (local files or
/// AWS) alike.
#[derive(Clone)]
pub struct Deps {
    /// Tenant records.
    pub registry: Arc<dyn TenantRegistry>,
    /// Tokens per tenant.
    pub tokens: Arc<dyn TokenStore>,
    /// Used consent nonces.
    pub nonces: Arc<dyn ConsentNonces>,
    /// The app registration's credentials.
    pub app: Arc<dyn AppSecrets>,
    /// Fetch cursors and their leases.
    pub cursors: Arc<dyn CursorStore>,
    /// Where alert records go.
    pub sink: Arc<dyn AlertSink>,
    /// What was delivered, per version day (the sweep and backfill look in it).
    pub index: Arc<dyn DeliveryIndex>,
    /// Where a scheduled dispatch puts one work item per tenant (AWS: SQS).
    pub queue: Arc<dyn WorkQueue>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// This process's access tokens.
    pub cache: Arc<tokens::TokenCache>,
    /// This process's HTTP clients toward Microsoft (connections shared by every tenant).
    pub clients: Arc<crate::microsoft::http::Clients>,
    /// Knobs.
    pub settings: Settings,
}

impl Deps {
    /// The SIEM exporter region `tenant` is read at: its own, else the deployment's default.
    pub fn siem_region(&self, tenant: &Tenant) -> crate::domain::SiemRegion {
        tenant.siem_region.unwrap_or(self.settings.siem_region)
    }

    /// The identity client for a tenant's cloud with the app's credentials.
    pub(crate) fn entra(
        &self,
        creds: &AppCredentials,
        cloud: Cloud,
    ) -> Result<EntraClient, StoreError> {
        let http = self
            .clients
            .identity(self.settings.http_timeout)
            .map_err(|e| StoreError::unavailable("building the identity client", e))?;
        Ok(EntraClient::with_http(
            http,
            self.settings.endpoints.for_cloud(cloud).authority,
            creds.client_id.clone(),
            creds.client_secret.clone(),
        ))
    }

    /// The tenant `id`, or `unknown` when it is not registered.
    pub(crate) async fn registered<E: From<StoreError>>(
        &self,
        id: &TenantId,
        unknown: E,
    ) -> Result<Tenant, E> {
        self.registry.get(id).await?.ok_or(unknown)
    }

    /// The tenant `id` if it is registered (else `unknown`) and active (else `not_active` of its
    /// status).
    pub(crate) async fn active_tenant<E: From<StoreError>>(
        &self,
        id: &TenantId,
        unknown: E,
        not_active: fn(TenantStatus) -> E,
    ) -> Result<Tenant, E> {
        let tenant = self.registered(id, unknown).await?;
        if tenant.status != TenantStatus::Active {
            return Err(not_active(tenant.status));
        }
        Ok(tenant)
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
