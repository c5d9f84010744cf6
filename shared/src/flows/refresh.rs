//! Token refresh (DESIGN §6 Refresh): keeps every active tenant's tokens alive.
//!
//! A delegated tenant's refresh token is used whenever its access token nears expiry or the
//! refresh token has been idle for [`super::Settings::refresh_token_max_idle`] (Microsoft expires
//! it after 90 idle days); the NEW refresh token Microsoft returns is persisted every time. An
//! application tenant gets a fresh client-credentials token and its roles are checked again.
//! Failures are classified: re-consent needed (the tenant becomes `reconsent_required` and gets a
//! fresh consent link), the app itself misconfigured (reported once, loudly: it affects every
//! tenant), transient (retried with backoff, then recorded; status unchanged). One tenant's
//! failure never stops another.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use rand::Rng;
use url::Url;

use super::Deps;
use super::app_health::{self, AppHealth};
use super::onboarding::consent_link;
use super::tokens::Cached;
use crate::domain::{
    AuthModel, Outcome, RefreshHolder, Tenant, TenantId, TenantStatus, TenantTokens,
};
use crate::microsoft::claims::{self, ClaimsError};
use crate::microsoft::identity::{
    EntraClient, IdentityError, NEW_CONSENT_LINK, TokenResponse, default_scope,
};
use crate::ports::{AppCredentials, StoreError};
use crate::secret::AccessToken;

/// Why a tenant's tokens could not be refreshed. Each `Display` is its cause's sentence (what
/// happened and what to do), never a wrapper around another's words.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No such tenant.
    #[error("no such tenant is registered (see `mssp tenants list`)")]
    UnknownTenant,
    /// The tenant is not active (pending, suspended, offboarded, or already needing re-consent).
    #[error("the tenant is {0}, and only active tenants are refreshed")]
    NotActive(TenantStatus),
    /// The grant is gone: the customer must consent again (the tenant was marked so).
    #[error("{reason}")]
    ReconsentRequired {
        /// The sentence: what happened (e.g. the AADSTS code) and what to do.
        reason: String,
        /// A fresh consent link to send.
        consent_link: Option<Url>,
    },
    /// The app registration is broken (e.g. an expired client secret): every tenant is affected.
    #[error(transparent)]
    AppMisconfigured(IdentityError),
    /// Still failing after retries; try again later.
    #[error(transparent)]
    Transient(IdentityError),
    /// Another refresh of the tenant held it for longer than a refresh may take.
    #[error(
        "another refresh of the tenant holds it until {0} and did not finish; the next run \
         tries again"
    )]
    Busy(DateTime<Utc>),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happened to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// New tokens obtained and stored.
    Refreshed,
    /// The tokens are fresh enough; nothing done.
    Fresh,
}

/// The result of a refresh run over every active tenant.
#[derive(Debug, Default)]
pub struct RefreshSummary {
    /// Tenants whose tokens were renewed.
    pub refreshed: Vec<TenantId>,
    /// Tenants whose tokens were fresh.
    pub fresh: Vec<TenantId>,
    /// Tenants that now need re-consent, with their new consent link.
    pub reconsent: Vec<(TenantId, Option<Url>)>,
    /// Tenants that failed for now (reason without secrets).
    pub failed: Vec<(TenantId, String)>,
    /// Tenants not attempted (deadline, or the app is misconfigured).
    pub skipped: Vec<TenantId>,
    /// Set when the app registration itself is broken: the one thing to fix.
    pub app_misconfigured: Option<String>,
    /// The app's own health this cycle: its credentials checked once in its home tenant, and
    /// the client secret's expiry.
    pub app: AppHealth,
}

/// Whether `tokens` need renewing at `now`.
fn needs_refresh(s: &Deps, tokens: &TenantTokens) -> bool {
    let now = s.clock.now();
    let expiring = match (tokens.expires_at, &tokens.access_token) {
        (Some(exp), Some(_)) => exp - s.settings.refresh_margin <= now,
        _ => true,
    };
    let idle = tokens.auth_model.is_delegated()
        && tokens
            .refresh_token_obtained_at
            .is_none_or(|t| now - t >= s.settings.refresh_token_max_idle);
    expiring || idle
}

/// Calls the identity platform, retrying transient failures with exponential backoff and jitter
/// (or the server's `Retry-After`), at most `identity_attempts` times.
pub(crate) async fn with_retries<F, Fut>(s: &Deps, call: F) -> Result<TokenResponse, IdentityError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<TokenResponse, IdentityError>>,
{
    attempts(s.settings.identity_attempts, call).await
}

/// [`with_retries`] with at most `attempts` attempts.
pub(crate) async fn attempts<F, Fut>(
    attempts: u32,
    mut call: F,
) -> Result<TokenResponse, IdentityError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<TokenResponse, IdentityError>>,
{
    let attempts = attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(IdentityError::Transient { retry_after, .. }) if attempt < attempts => {
                let backoff = StdDuration::from_millis(200 * 2u64.pow(attempt - 1));
                let jitter = StdDuration::from_millis(rand::rng().random_range(0..100));
                let wait = retry_after
                    .unwrap_or(backoff + jitter)
                    .min(StdDuration::from_secs(10));
                tracing::warn!(
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "identity platform unavailable; retrying"
                );
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

async fn renew(
    s: &Deps,
    entra: &EntraClient,
    tenant: &Tenant,
    tokens: &TenantTokens,
) -> Result<TokenResponse, IdentityError> {
    let now = s.clock.now();
    match tenant.auth_model {
        AuthModel::Application => {
            with_retries(s, || {
                entra.client_credentials(&tenant.id, &tokens.resource, now)
            })
            .await
        }
        model => {
            let Some(rt) = &tokens.refresh_token else {
                return Err(IdentityError::ReconsentRequired {
                    code: None,
                    error: "no refresh token is stored".into(),
                    body: String::new(),
                });
            };
            let v2 = model == AuthModel::DelegatedV2;
            with_retries(s, || {
                entra.refresh(&tenant.id, rt, v2, &tokens.resource, now)
            })
            .await
        }
    }
}

/// The operator-facing reason: the error's sentence, which names the AADSTS code and what to do,
/// and no secret.
fn reason_of(e: &IdentityError) -> String {
    e.to_string()
}

async fn mark_reconsent(
    s: &Deps,
    tenant: &Tenant,
    reason: String,
) -> Result<RefreshError, StoreError> {
    let now = s.clock.now();
    let updated = s
        .update_tenant(&tenant.id, |t| {
            t.status = TenantStatus::ReconsentRequired;
            t.consecutive_failures += 1;
            t.last_refresh = Some(Outcome {
                at: now,
                ok: false,
                detail: Some(reason.clone()),
            });
        })
        .await?;
    let link = consent_link(s, &updated).await.ok();
    tracing::warn!(tenant_id = %tenant.id, reason = %reason, "tenant needs re-consent");
    Ok(RefreshError::ReconsentRequired {
        reason,
        consent_link: link,
    })
}

async fn record_failure(s: &Deps, tenant: &TenantId, detail: String) -> Result<(), StoreError> {
    let now = s.clock.now();
    s.update_tenant(tenant, |t| {
        t.consecutive_failures += 1;
        t.last_refresh = Some(Outcome {
            at: now,
            ok: false,
            detail: Some(detail.clone()),
        });
    })
    .await
    .map(|_| ())
}

async fn refresh_with(
    s: &Deps,
    creds: &AppCredentials,
    tenant: &Tenant,
    force: bool,
) -> Result<(RefreshOutcome, AccessToken), RefreshError> {
    let now = s.clock.now();
    if !force
        && let Some(c) = s.cache.entry(&tenant.id)
        && !stale(
            s,
            tenant.auth_model,
            c.expires_at,
            c.refresh_token_obtained_at,
            now,
        )
    {
        return Ok((RefreshOutcome::Fresh, c.token));
    }
    let entra = s.entra(creds, tenant.cloud)?;
    match tenant.auth_model {
        AuthModel::Application => {
            // Nothing to keep alive: a client-credentials token is minted, never read from store.
            let scope = default_scope(tenant.alert_api);
            let got = with_retries(s, || entra.client_credentials(&tenant.id, &scope, now)).await;
            let got = refused(s, tenant, got).await?;
            verified(s, tenant, &got).await?;
            remember(s, tenant, &got, None);
            record_success(s, tenant).await?;
            Ok((RefreshOutcome::Refreshed, got.access_token))
        }
        _ => refresh_delegated(s, &entra, tenant, force).await,
    }
}

/// A delegated tenant's tokens: the stored access token while fresh, else renewed with the
/// refresh token (the new refresh token Microsoft rotates in is persisted). One refresh of a
/// tenant runs at a time — two processes, or the schedule and a fetch, may want one at once —
/// under the tenant's refresh lease ([`RefreshLease`]); the one that waited uses the tokens the
/// other stored. When Microsoft refuses the refresh token, the store is read again first: another
/// process may have rotated it meanwhile, and then its tokens are used, not a re-consent.
async fn refresh_delegated(
    s: &Deps,
    entra: &EntraClient,
    tenant: &Tenant,
    force: bool,
) -> Result<(RefreshOutcome, AccessToken), RefreshError> {
    let id = &tenant.id;
    let seen = stored_tokens(s, tenant).await?;
    if !force && let Some(at) = usable(s, tenant, &seen) {
        return Ok((RefreshOutcome::Fresh, at));
    }
    let lease = RefreshLease::take(s, id).await?;
    let result = renew_delegated(s, entra, tenant, &seen, force).await;
    lease.release(s).await;
    result
}

/// [`refresh_delegated`] once the tenant's refresh lease is ours.
async fn renew_delegated(
    s: &Deps,
    entra: &EntraClient,
    tenant: &Tenant,
    seen: &TenantTokens,
    force: bool,
) -> Result<(RefreshOutcome, AccessToken), RefreshError> {
    let id = &tenant.id;
    // The refresh that held the lease before us may have renewed the tokens: read them again.
    let tokens = stored_tokens(s, tenant).await?;
    let renewed_meanwhile =
        (tokens.rotated_at, tokens.obtained_at) != (seen.rotated_at, seen.obtained_at);
    if (renewed_meanwhile || !force)
        && let Some(at) = usable(s, tenant, &tokens)
    {
        return Ok((RefreshOutcome::Fresh, at));
    }
    let got = match renew(s, entra, tenant, &tokens).await {
        Err(e) if e.aadsts().is_some() && !e.is_transient() => {
            match rotated_meanwhile(s, id, &tokens).await? {
                Some(theirs) => return Ok(theirs),
                None => refused(s, tenant, Err(e)).await?,
            }
        }
        other => refused(s, tenant, other).await?,
    };
    verified(s, tenant, &got).await?;
    store_renewed(s, tenant, tokens, got).await
}

/// The stored access token of `tokens` when it is fresh enough (kept in this process's cache).
fn usable(s: &Deps, tenant: &Tenant, tokens: &TenantTokens) -> Option<AccessToken> {
    let at = tokens.access_token.as_ref()?;
    if needs_refresh(s, tokens) {
        return None;
    }
    let got = TokenResponse {
        access_token: at.clone(),
        refresh_token: None,
        expires_at: tokens.expires_at.unwrap_or_default(),
        scope: None,
    };
    remember(s, tenant, &got, tokens.refresh_token_obtained_at);
    Some(at.clone())
}

/// The tenant's stored tokens; without any, the tenant needs a new consent.
async fn stored_tokens(s: &Deps, tenant: &Tenant) -> Result<TenantTokens, RefreshError> {
    match s.tokens.get(&tenant.id).await? {
        Some(tokens) => Ok(tokens),
        None => {
            let reason = format!("no tokens are stored for the tenant: {NEW_CONSENT_LINK}");
            Err(mark_reconsent(s, tenant, reason).await?)
        }
    }
}

/// A tenant's refresh lease, held in its record (written conditionally on the record's version,
/// like every registry write): while one refresh holds it, another waits, then reads the tokens
/// the first stored. It expires by itself after [`RefreshLease::ttl`] when its holder dies.
struct RefreshLease {
    tenant: TenantId,
    owner: String,
}

impl RefreshLease {
    /// How long a refresh may hold its tenant: every attempt's timeout and backoff, and a margin.
    fn ttl(s: &Deps) -> StdDuration {
        let per_attempt = s.settings.http_timeout + StdDuration::from_secs(10);
        per_attempt * s.settings.identity_attempts.max(1) + StdDuration::from_secs(30)
    }

    /// Takes the lease of `tenant`, waiting while another refresh holds it, at most
    /// [`RefreshLease::ttl`] (then [`RefreshError::Busy`]).
    async fn take(s: &Deps, tenant: &TenantId) -> Result<RefreshLease, RefreshError> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let ttl = Self::ttl(s);
        let give_up = tokio::time::Instant::now() + ttl;
        let ttl = Duration::from_std(ttl).unwrap_or_else(|_| Duration::minutes(5));
        loop {
            let now = s.clock.now();
            let mut t = s.registered(tenant, RefreshError::UnknownTenant).await?;
            if let Some(held) = &t.refresh_lease
                && held.expires_at > now
            {
                if tokio::time::Instant::now() >= give_up {
                    return Err(RefreshError::Busy(held.expires_at));
                }
                let pause = rand::rng().random_range(20..120);
                tokio::time::sleep(StdDuration::from_millis(pause)).await;
                continue;
            }
            t.refresh_lease = Some(RefreshHolder {
                owner: owner.clone(),
                expires_at: now + ttl,
            });
            match s.registry.update(&t).await {
                Ok(_) => {
                    return Ok(RefreshLease {
                        tenant: tenant.clone(),
                        owner,
                    });
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Gives the lease up (a failure to is logged: the lease then expires by itself).
    async fn release(self, s: &Deps) {
        for _ in 0..5 {
            let mut t = match s.registry.get(&self.tenant).await {
                Ok(Some(t)) => t,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(tenant_id = %self.tenant, error = %e, "could not release the refresh lease");
                    return;
                }
            };
            if t.refresh_lease
                .as_ref()
                .is_none_or(|l| l.owner != self.owner)
            {
                return;
            }
            t.refresh_lease = None;
            match s.registry.update(&t).await {
                Err(StoreError::Conflict) => continue,
                Err(e) => {
                    tracing::warn!(tenant_id = %self.tenant, error = %e, "could not release the refresh lease");
                    return;
                }
                Ok(_) => return,
            }
        }
    }
}

/// The tokens another process stored since `ours` was read, if the refresh token changed.
async fn rotated_meanwhile(
    s: &Deps,
    id: &TenantId,
    ours: &TenantTokens,
) -> Result<Option<(RefreshOutcome, AccessToken)>, RefreshError> {
    let Some(now) = s.tokens.get(id).await? else {
        return Ok(None);
    };
    let changed = now.rotated_at != ours.rotated_at;
    Ok(match (changed, &now.access_token) {
        (true, Some(at)) => {
            tracing::info!(tenant_id = %id, "another refresh rotated the tokens meanwhile; using them");
            Some((RefreshOutcome::Fresh, at.clone()))
        }
        _ => None,
    })
}

/// Whether a cached token must be renewed at `now`.
fn stale(
    s: &Deps,
    model: AuthModel,
    expires_at: DateTime<Utc>,
    refresh_token_obtained_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let expiring = expires_at - s.settings.refresh_margin <= now;
    let idle = model.is_delegated()
        && refresh_token_obtained_at.is_none_or(|t| now - t >= s.settings.refresh_token_max_idle);
    expiring || idle
}

/// Sorts a token endpoint failure: the app broken, a transient failure (recorded, status kept),
/// or the grant gone (the tenant is marked for re-consent).
async fn refused(
    s: &Deps,
    tenant: &Tenant,
    got: Result<TokenResponse, IdentityError>,
) -> Result<TokenResponse, RefreshError> {
    match got {
        Ok(t) => Ok(t),
        Err(e @ IdentityError::AppMisconfigured { .. }) => {
            record_failure(s, &tenant.id, reason_of(&e)).await?;
            Err(RefreshError::AppMisconfigured(e))
        }
        Err(e @ IdentityError::Transient { .. }) => {
            record_failure(s, &tenant.id, reason_of(&e)).await?;
            Err(RefreshError::Transient(e))
        }
        // Reconsent, tenant not consented (consent withdrawn), and any other refusal of our
        // grant (e.g. invalid_grant for an unknown token): discard the grant, ask for consent.
        Err(e) => Err(mark_reconsent(s, tenant, reason_of(&e)).await?),
    }
}

/// Checks a new token's tenant and permission; a token without them means re-consent.
async fn verified(s: &Deps, tenant: &Tenant, got: &TokenResponse) -> Result<(), RefreshError> {
    let checked = claims::check(
        &got.access_token,
        &tenant.id,
        tenant.alert_api,
        tenant.auth_model,
    );
    match checked {
        Ok(_) => Ok(()),
        Err(e) => {
            let what = match e {
                ClaimsError::MissingPermission { .. } => e.to_string(),
                ClaimsError::WrongTenant => {
                    "Microsoft issued the new access token for another tenant".into()
                }
                ClaimsError::Unreadable => "the new access token could not be read".into(),
            };
            let reason = format!("{what}: {NEW_CONSENT_LINK}");
            Err(mark_reconsent(s, tenant, reason).await?)
        }
    }
}

/// Keeps a token in this process's cache.
fn remember(
    s: &Deps,
    tenant: &Tenant,
    got: &TokenResponse,
    refresh_token_obtained_at: Option<DateTime<Utc>>,
) {
    s.cache.put(
        &tenant.id,
        Cached {
            token: got.access_token.clone(),
            expires_at: got.expires_at,
            refresh_token_obtained_at,
        },
    );
}

/// Records a successful refresh on the tenant when it changes what the record says: after a
/// failure, or when the last success is more than a day old (status shows it); otherwise the
/// record is not written.
async fn record_success(s: &Deps, tenant: &Tenant) -> Result<(), StoreError> {
    let now = s.clock.now();
    let current = tenant.consecutive_failures == 0
        && tenant
            .last_refresh
            .as_ref()
            .is_some_and(|o| o.ok && now - o.at < Duration::days(1));
    if current {
        return Ok(());
    }
    s.update_tenant(&tenant.id, |t| {
        t.consecutive_failures = 0;
        t.last_refresh = Some(Outcome {
            at: now,
            ok: true,
            detail: None,
        });
    })
    .await
    .map(|_| ())
}

/// Persists renewed tokens — the NEW refresh token Microsoft rotated in, always — and records
/// the success on the tenant.
async fn store_renewed(
    s: &Deps,
    tenant: &Tenant,
    mut stored: TenantTokens,
    got: TokenResponse,
) -> Result<(RefreshOutcome, AccessToken), RefreshError> {
    let now = s.clock.now();
    if let Some(rt) = got.refresh_token.clone() {
        stored.refresh_token = Some(rt);
        stored.refresh_token_obtained_at = Some(now);
    }
    stored.access_token = Some(got.access_token.clone());
    stored.expires_at = Some(got.expires_at);
    stored.rotated_at = Some(now);
    s.tokens.put(&stored).await?;
    remember(s, tenant, &got, stored.refresh_token_obtained_at);
    record_success(s, tenant).await?;
    tracing::info!(tenant_id = %tenant.id, auth_model = %tenant.auth_model, "tokens refreshed");
    Ok((RefreshOutcome::Refreshed, got.access_token))
}

/// Refreshes one tenant's tokens when they need it (always, with `force`).
pub async fn refresh_tenant(
    s: &Deps,
    id: &TenantId,
    force: bool,
) -> Result<RefreshOutcome, RefreshError> {
    let tenant = s
        .active_tenant(id, RefreshError::UnknownTenant, RefreshError::NotActive)
        .await?;
    if force {
        s.cache.forget(id);
    }
    let creds = s.app.app_credentials().await?;
    refresh_with(s, &creds, &tenant, force)
        .await
        .map(|(o, _)| o)
}

/// A usable access token for `tenant`: from this process's cache while it is valid (no store
/// is read), else the stored one, or a renewed one.
pub async fn access_token(s: &Deps, tenant: &Tenant) -> Result<AccessToken, RefreshError> {
    let now = s.clock.now();
    if let Some(token) = s.cache.get(&tenant.id, now, s.settings.refresh_margin) {
        return Ok(token);
    }
    let creds = s.app.app_credentials().await?;
    refresh_with(s, &creds, tenant, false).await.map(|(_, t)| t)
}

/// Refreshes every active tenant with bounded concurrency, stopping new work at `deadline`.
/// Fails as a whole only when the app credentials or the registry cannot be read.
pub async fn refresh_all(
    s: &Deps,
    deadline: Option<tokio::time::Instant>,
) -> Result<RefreshSummary, RefreshError> {
    let mut summary = RefreshSummary::default();
    let creds = s.app.app_credentials().await?;
    let listed = s.registry.list_active().await?;
    summary.app = app_health::check(s, &creds, app_health::cloud_of(&listed)).await;
    summary.app.log();
    if let Some(problem) = summary.app.problem() {
        // One app-wide problem: no tenant is tried (each would fail the same way) or marked.
        summary.app_misconfigured = Some(problem.to_string());
        summary.skipped = listed.into_iter().map(|t| t.id).collect();
        tracing::error!(
            reason = %problem,
            tenants_not_refreshed = summary.skipped.len(),
            "APP REGISTRATION MISCONFIGURED: every tenant is affected; fix the app's client secret"
        );
        return Ok(summary);
    }
    let results = refresh_each(s, creds, listed, deadline).await;
    for (id, r) in results {
        summary.count(id, r);
    }
    if let Some(reason) = &summary.app_misconfigured {
        tracing::error!(
            reason = %reason,
            tenants_not_refreshed = summary.skipped.len() + summary.failed.len(),
            "APP REGISTRATION MISCONFIGURED: every tenant is affected; fix the app's client secret"
        );
    }
    Ok(summary)
}

/// What one tenant's refresh came to; `None`: not tried (the deadline passed, or the app was
/// found misconfigured, so every later tenant would fail the same way).
type TenantRefresh = (TenantId, Option<Result<RefreshOutcome, RefreshError>>);

/// Refreshes `listed` with bounded concurrency, stopping new work at `deadline` or once one
/// tenant finds the app misconfigured.
async fn refresh_each(
    s: &Deps,
    creds: AppCredentials,
    listed: Vec<Tenant>,
    deadline: Option<tokio::time::Instant>,
) -> Vec<TenantRefresh> {
    let app_broken = Arc::new(AtomicBool::new(false));
    let creds = Arc::new(creds);
    futures::stream::iter(listed)
        .map(|tenant| {
            let broken = app_broken.clone();
            let creds = creds.clone();
            async move {
                let late = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                if late || broken.load(Ordering::SeqCst) {
                    return (tenant.id, None);
                }
                let r = refresh_with(s, &creds, &tenant, false)
                    .await
                    .map(|(o, _)| o);
                if matches!(r, Err(RefreshError::AppMisconfigured(_))) {
                    broken.store(true, Ordering::SeqCst);
                }
                (tenant.id, Some(r))
            }
        })
        .buffer_unordered(s.settings.refresh_concurrency.max(1))
        .collect()
        .await
}

impl RefreshSummary {
    /// Logs the run's counts, one line a run.
    pub fn log_finished(&self) {
        tracing::info!(
            refreshed = self.refreshed.len(),
            fresh = self.fresh.len(),
            reconsent = self.reconsent.len(),
            failed = self.failed.len(),
            skipped = self.skipped.len(),
            app_misconfigured = self.app_misconfigured.is_some(),
            client_secret_days_left = self.app.client_secret_days_left,
            expiry_warning_days = self.app.expiry_warning_days,
            "refresh run finished"
        );
    }

    /// Files one tenant's result under what it came to.
    fn count(&mut self, id: TenantId, r: Option<Result<RefreshOutcome, RefreshError>>) {
        match r {
            None => self.skipped.push(id),
            Some(Ok(RefreshOutcome::Refreshed)) => self.refreshed.push(id),
            Some(Ok(RefreshOutcome::Fresh)) => self.fresh.push(id),
            Some(Err(RefreshError::ReconsentRequired { consent_link, .. })) => {
                self.reconsent.push((id, consent_link))
            }
            Some(Err(RefreshError::AppMisconfigured(e))) => {
                if self.app_misconfigured.is_none() {
                    self.app_misconfigured = Some(e.to_string());
                }
                self.failed.push((id, e.to_string()));
            }
            Some(Err(e)) => self.failed.push((id, e.to_string())),
        }
    }
}
