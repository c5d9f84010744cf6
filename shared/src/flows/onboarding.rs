//! Onboarding and consent (DESIGN §6 Consent).
//!
//! 1. The operator registers a pending tenant and gets a consent link
//!    (`{base}/consent/start?link=…`, signed, valid for days) to send to the customer's admin.
//! 2. Opening the link ([`begin_consent`]) makes a short-lived signed `state` with a nonce and
//!    answers with Microsoft's authorize (delegated) or admin-consent (application) URL.
//! 3. Microsoft redirects back to `{base}/consent/callback`; [`complete_consent`] verifies the
//!    state, consumes its nonce, redeems the code or mints a client-credentials token, verifies
//!    the token's `tid` against the tenant bound in the state (never the `tenant` query parameter)
//!    and its permission, and only then stores tokens and marks the tenant active.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use super::tokens::Cached;
use super::{Deps, join};
use crate::config::Cloud;
use crate::consent::state::{ConsentState, StateError};
use crate::domain::{
    AlertApi, AuthModel, BackfillRequest, ConsentMethod, ConsentProvenance, Tenant, TenantId,
    TenantStatus, TenantTokens,
};
use crate::microsoft::claims::{self, ClaimsError};
use crate::microsoft::identity::{IdentityError, TokenResponse, default_scope, delegated_scope};
use crate::ports::{AppCredentials, StoreError};
use crate::secret::{AuthCode, hmac_sha256};

/// Longest code, error or parameter we accept from a callback; anything longer is hostile.
pub const MAX_PARAM_LEN: usize = 4096;

/// A tenant to onboard.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Tenant id.
    pub id: TenantId,
    /// Customer name.
    pub display_name: String,
    /// How we will be authorized.
    pub auth_model: AuthModel,
    /// Which API we will read.
    pub alert_api: AlertApi,
    /// Which cloud.
    pub cloud: Cloud,
    /// How much history to backfill once the tenant is onboarded (from now − this).
    pub backfill: Option<chrono::Duration>,
    /// The SIEM exporter region (SIEM tenants; `None`: the deployment's default).
    pub siem_region: Option<crate::domain::SiemRegion>,
}

impl NewTenant {
    /// A tenant of the commercial cloud, with no backfill and (SIEM) the deployment's region.
    pub fn new(
        id: TenantId,
        display_name: impl Into<String>,
        auth_model: AuthModel,
        alert_api: AlertApi,
    ) -> NewTenant {
        NewTenant {
            id,
            display_name: display_name.into(),
            auth_model,
            alert_api,
            cloud: Cloud::Commercial,
            backfill: None,
            siem_region: None,
        }
    }

    /// Writes what the operator said about the tenant onto its record `t` (a region or a
    /// backfill left out keeps the record's).
    pub(crate) fn write_onto(&self, t: &mut Tenant, now: chrono::DateTime<chrono::Utc>) {
        t.display_name = self.display_name.clone();
        t.auth_model = self.auth_model;
        t.alert_api = self.alert_api;
        t.cloud = self.cloud;
        if self.siem_region.is_some() {
            t.siem_region = self.siem_region;
        }
        if let Some(b) = backfill_of(self, now) {
            t.backfill = Some(b);
        }
    }

    /// The record of this tenant pending consent, as registered at `now` (before any of the
    /// request's options are applied).
    pub(crate) fn pending(&self, now: chrono::DateTime<chrono::Utc>) -> Tenant {
        Tenant::pending(
            self.id.clone(),
            self.display_name.clone(),
            self.auth_model,
            self.alert_api,
            self.cloud,
            now,
        )
    }
}

/// The query parameters of a consent callback, as received.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    /// `state`.
    pub state: Option<String>,
    /// `code` (delegated).
    pub code: Option<String>,
    /// `admin_consent` (application).
    pub admin_consent: Option<String>,
    /// `tenant` as claimed by the redirect (informational only; never trusted).
    pub tenant: Option<String>,
    /// `error`.
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

/// Why onboarding or consent failed. The `Display` text is safe to show the customer's admin.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// The link or state is malformed, forged, altered or expired.
    #[error(transparent)]
    InvalidState(#[from] StateError),
    /// The state was already used.
    #[error("this consent link was already used; ask your provider for a new one")]
    Replayed,
    /// No such tenant is being onboarded.
    #[error("this tenant is not being onboarded; ask your provider for a new consent link")]
    UnknownTenant,
    /// The tenant cannot consent in its current state.
    #[error("this tenant is {0}; ask your provider to reactivate it")]
    NotEligible(TenantStatus),
    /// The tenant is already onboarded and active.
    #[error("the tenant is already registered ({0})")]
    AlreadyRegistered(TenantStatus),
    /// Microsoft reported an error (the user cancelled, consent was refused…).
    #[error("Microsoft reported that consent was not given ({error})")]
    Denied {
        /// The OAuth `error` (sanitized).
        error: String,
        /// Microsoft's description (sanitized, truncated).
        description: Option<String>,
    },
    /// The callback lacks what the flow needs.
    #[error("the sign-in answer is incomplete: {0} is missing")]
    Missing(&'static str),
    /// A parameter is too long or not text.
    #[error("the sign-in answer is malformed")]
    Malformed,
    /// The token endpoint refused or failed. The text is what happened only (the customer's
    /// admin reads it); the operator's next step is the refresh's and status's.
    #[error("Microsoft did not issue a token: {}", .0.what())]
    Identity(IdentityError),
    /// The token is for another tenant or lacks the needed permission.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    /// A store failed (its sentence, meant for the operator, is the `source`: the customer's
    /// admin reads this text).
    #[error("the provider's service could not read or store the consent")]
    Store(#[from] StoreError),
}

impl ConsentError {
    /// Whether the failure is the caller's (a 4xx at the HTTP edge) rather than ours (5xx).
    pub fn is_client_error(&self) -> bool {
        match self {
            ConsentError::Store(_) => false,
            ConsentError::Identity(e) => !e.is_transient(),
            _ => true,
        }
    }
}

/// What onboarding gives the operator.
#[derive(Debug, Clone)]
pub struct Onboarded {
    /// The pending tenant.
    pub tenant: Tenant,
    /// The link to send to the customer's admin.
    pub consent_link: Url,
}

/// A key derived from the app's state key for one purpose, so a link can never pass as a state.
fn derive(key: &[u8], purpose: &str) -> [u8; 32] {
    hmac_sha256(key, purpose.as_bytes())
}

/// The PKCE verifier of a v2 consent, derived from the nonce and the app's key: never stored,
/// never in a URL.
fn pkce_verifier(creds: &AppCredentials, nonce: &str) -> String {
    URL_SAFE_NO_PAD.encode(derive(
        creds.state_key.expose_secret(),
        &format!("mssp pkce v1:{nonce}"),
    ))
}

fn link_key(creds: &AppCredentials) -> [u8; 32] {
    derive(creds.state_key.expose_secret(), "mssp consent link v1")
}

fn state_key(creds: &AppCredentials) -> [u8; 32] {
    derive(creds.state_key.expose_secret(), "mssp consent state v1")
}

fn clean(s: &Option<String>) -> Result<Option<&str>, ConsentError> {
    match s.as_deref() {
        Some(v) if v.len() > MAX_PARAM_LEN => Err(ConsentError::Malformed),
        Some("") => Ok(None),
        other => Ok(other),
    }
}

/// Keeps printable ASCII, at most `max` characters: safe to log or render (after escaping).
pub fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

/// Registers a pending tenant and returns the consent link to send. A tenant that is pending,
/// needs re-consent or was offboarded gets a fresh link; an active or suspended one is refused.
pub async fn start_onboarding(s: &Deps, new: NewTenant) -> Result<Onboarded, ConsentError> {
    let now = s.clock.now();
    let tenant = match s.registry.get(&new.id).await? {
        None => {
            let mut t = new.pending(now);
            t.backfill = backfill_of(&new, now);
            t.siem_region = new.siem_region;
            s.registry.create(&t).await?;
            t
        }
        Some(t) => match t.status {
            TenantStatus::Active | TenantStatus::Suspended => {
                return Err(ConsentError::AlreadyRegistered(t.status));
            }
            _ => {
                s.update_tenant(&new.id, |t| {
                    new.write_onto(t, now);
                    if t.status == TenantStatus::Offboarded {
                        t.status = TenantStatus::PendingConsent;
                    }
                })
                .await?
            }
        },
    };
    let consent_link = consent_link(s, &tenant).await?;
    Ok(Onboarded {
        tenant,
        consent_link,
    })
}

/// The backfill a new tenant asks for: its horizon before `now`, up to where the regular fetch's
/// coverage starts.
pub(crate) fn backfill_of(
    new: &NewTenant,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<BackfillRequest> {
    new.backfill.map(|h| BackfillRequest {
        since: now - h,
        until: None,
    })
}

/// A fresh consent link for an existing tenant (`{base}/consent/start?link=…`).
pub async fn consent_link(s: &Deps, tenant: &Tenant) -> Result<Url, ConsentError> {
    let creds = s.app.app_credentials().await?;
    Ok(consent_link_with(s, &creds, tenant))
}

/// [`consent_link`] with the app credentials in hand (an import signs thousands).
pub fn consent_link_with(s: &Deps, creds: &AppCredentials, tenant: &Tenant) -> Url {
    let link = ConsentState::new(
        tenant.id.clone(),
        tenant.auth_model,
        s.clock.now(),
        s.settings.consent_link_ttl,
    )
    .sign(&link_key(creds));
    let mut u = join(&s.settings.public_base_url, "consent/start");
    u.query_pairs_mut().append_pair("link", &link);
    u
}

/// Opens a consent link: answers the Microsoft URL to send the browser to.
pub async fn begin_consent(s: &Deps, link: &str) -> Result<Url, ConsentError> {
    let creds = s.app.app_credentials().await?;
    let now = s.clock.now();
    let bound = ConsentState::verify(link, &link_key(&creds), now)?;
    let tenant = consentable(s, &bound.tid).await?;
    let state = ConsentState::new(
        tenant.id.clone(),
        tenant.auth_model,
        now,
        s.settings.state_ttl,
    );
    let signed = state.sign(&state_key(&creds));
    let entra = s.entra(&creds, tenant.cloud)?;
    let redirect = s.settings.redirect_uri();
    let api = tenant.alert_api;
    Ok(match tenant.auth_model {
        AuthModel::DelegatedV1 => {
            entra.authorize_url_v1(&tenant.id, &redirect, api.resource(), &signed)
        }
        AuthModel::DelegatedV2 => entra.authorize_url_v2(
            &tenant.id,
            &redirect,
            &delegated_scope(api),
            &signed,
            &pkce_verifier(&creds, &state.nonce),
        ),
        AuthModel::Application => {
            entra.admin_consent_url_v2(&tenant.id, &redirect, &default_scope(api), &signed)
        }
    })
}

/// Completes a consent from the callback's query parameters; returns the now active tenant.
pub async fn complete_consent(s: &Deps, cb: &Callback) -> Result<Tenant, ConsentError> {
    let creds = s.app.app_credentials().await?;
    let now = s.clock.now();
    let (st, tenant, code) = verify_callback(s, &creds, cb, now).await?;
    if !s.nonces.consume(&st.nonce, now, st.expires_at()).await? {
        return Err(ConsentError::Replayed);
    }
    let (token, resource) = redeem(s, &creds, &st, tenant.alert_api, tenant.cloud, code).await?;
    let claims = claims::check(&token.access_token, &st.tid, tenant.alert_api, st.model)?;
    if st.model.is_delegated() && token.refresh_token.is_none() {
        return Err(ConsentError::Missing("refresh_token"));
    }
    activate(s, &st, token, resource, &claims).await
}

/// Checks a callback before anything is spent: its parameters, the signed state, Microsoft's
/// error if any, the tenant bound in the state, and what the flow needs (the code of a delegated
/// consent, `admin_consent=True` of an application one). A truncated answer can be retried.
async fn verify_callback(
    s: &Deps,
    creds: &AppCredentials,
    cb: &Callback,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(ConsentState, Tenant, Option<AuthCode>), ConsentError> {
    let state = clean(&cb.state)?.ok_or(ConsentError::Missing("state"))?;
    let code = clean(&cb.code)?;
    let error = clean(&cb.error)?;
    let description = clean(&cb.error_description)?;
    let admin_consent = clean(&cb.admin_consent)?;
    clean(&cb.tenant)?;
    let st = ConsentState::verify(state, &state_key(creds), now)?;
    if let Some(error) = error {
        return Err(ConsentError::Denied {
            error: sanitize(error, 64),
            description: description.map(|d| sanitize(d, 300)),
        });
    }
    let tenant = consentable(s, &st.tid).await?;
    if tenant.auth_model != st.model {
        // The operator changed the model after the link was made; that sign-in is void.
        return Err(ConsentError::InvalidState(StateError::BadSignature));
    }
    let code = match st.model {
        AuthModel::Application => {
            if !admin_consent.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                return Err(ConsentError::Missing("admin_consent"));
            }
            None
        }
        _ => Some(AuthCode::new(
            code.ok_or(ConsentError::Missing("code"))?.to_string(),
        )),
    };
    Ok((st, tenant, code))
}

/// The tenant a consent is for, unless it is suspended or offboarded.
async fn consentable(s: &Deps, id: &TenantId) -> Result<Tenant, ConsentError> {
    let tenant = s.registered(id, ConsentError::UnknownTenant).await?;
    match tenant.status {
        TenantStatus::Suspended | TenantStatus::Offboarded => {
            Err(ConsentError::NotEligible(tenant.status))
        }
        _ => Ok(tenant),
    }
}

/// The first tokens of a consent: the code redeemed (delegated) or a client-credentials token
/// minted (application), with the resource or scope they are for.
async fn redeem(
    s: &Deps,
    creds: &AppCredentials,
    st: &ConsentState,
    api: AlertApi,
    cloud: Cloud,
    code: Option<AuthCode>,
) -> Result<(TokenResponse, String), ConsentError> {
    let entra = s.entra(creds, cloud)?;
    let redirect = s.settings.redirect_uri();
    let now = s.clock.now();
    let got = match (st.model, code) {
        (AuthModel::DelegatedV1, Some(code)) => {
            let resource = api.resource().to_string();
            let t = entra.redeem_code_v1(&st.tid, &code, &redirect, &resource, now);
            (t.await, resource)
        }
        (AuthModel::DelegatedV2, Some(code)) => {
            let scope = delegated_scope(api);
            let verifier = pkce_verifier(creds, &st.nonce);
            let t = entra.redeem_code_v2(&st.tid, &code, &redirect, &scope, &verifier, now);
            (t.await, scope)
        }
        _ => {
            let scope = default_scope(api);
            (entra.client_credentials(&st.tid, &scope, now).await, scope)
        }
    };
    Ok((got.0.map_err(ConsentError::Identity)?, got.1))
}

/// Stores the verified tokens and marks the tenant active with its consent provenance.
async fn activate(
    s: &Deps,
    st: &ConsentState,
    token: TokenResponse,
    resource: String,
    claims: &claims::TokenClaims,
) -> Result<Tenant, ConsentError> {
    let now = s.clock.now();
    store_tokens(s, &st.tid, st.model, token, resource).await?;
    let provenance = ConsentProvenance {
        consented_by: Some(
            claims
                .user()
                .map(|u| sanitize(u, 256))
                .unwrap_or_else(|| "tenant administrator (admin consent)".into()),
        ),
        consented_at: now,
        granted: claims.granted().iter().map(|g| sanitize(g, 128)).collect(),
        auth_model: st.model,
        method: ConsentMethod::Consent,
        verified: None,
    };
    let tenant = s
        .update_tenant(&st.tid, |t| {
            t.activate(provenance.clone(), now, "tokens obtained at consent")
        })
        .await?;
    tracing::info!(
        tenant_id = %tenant.id,
        auth_model = %tenant.auth_model,
        alert_api = %tenant.alert_api,
        "tenant consented"
    );
    Ok(tenant)
}

/// Stores the first tokens of a verified grant (consent or adoption) and keeps the access token
/// in this process's cache.
pub(crate) async fn store_tokens(
    s: &Deps,
    tenant: &TenantId,
    model: AuthModel,
    token: TokenResponse,
    resource: String,
) -> Result<(), StoreError> {
    let now = s.clock.now();
    let tokens = TenantTokens {
        tenant_id: tenant.clone(),
        auth_model: model,
        resource,
        refresh_token_obtained_at: token.refresh_token.as_ref().map(|_| now),
        refresh_token: token.refresh_token,
        access_token: Some(token.access_token),
        expires_at: Some(token.expires_at),
        obtained_at: now,
        rotated_at: None,
    };
    s.tokens.put(&tokens).await?;
    if let (Some(at), Some(exp)) = (&tokens.access_token, tokens.expires_at) {
        s.cache.put(
            tenant,
            Cached {
                token: at.clone(),
                expires_at: exp,
                refresh_token_obtained_at: tokens.refresh_token_obtained_at,
            },
        );
    }
    Ok(())
}
