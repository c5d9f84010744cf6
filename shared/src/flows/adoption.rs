//! Onboarding without a click, for one tenant or a fleet (DESIGN §10).
//!
//! An application tenant whose admin already granted the app its roles (in the Entra admin
//! center, or through an earlier consent) needs no consent link: a client-credentials token is
//! minted for it, and the tenant is **adopted** — activated with provenance
//! [`ConsentMethod::Adopted`], what was verified and when — only if the token's `tid` is the
//! tenant asked for and its `roles` hold one the tenant's alert API accepts (the same
//! [`claims::check`] as a consent callback). Otherwise the tenant is registered pending consent
//! with a consent link and the reason: the role that is missing, the app not granted in the
//! tenant yet, or a token issued for another tenant (never adopted). Delegated tenants always
//! need a user's sign-in.
//!
//! [`import`] onboards many tenants with bounded concurrency and is idempotent: a tenant that is
//! active or suspended is left as it is, and a pending one is written again only when the import
//! changes it, so importing the same file twice leaves the same registry.
//!
//! Concurrency and Microsoft's limits: each tenant costs one token request to its own tenant's
//! endpoint, so per-tenant limits are never approached. The identity platform documents no fixed
//! app-wide rate for the token endpoint (reference §4.10 lists its throttling codes only);
//! the only app-wide figure is Graph's 2,000 requests per second (§3.4). [`IMPORT_CONCURRENCY`]
//! requests in flight at 50 ms each is about 640 per second, and a 429 or 5xx is retried after
//! its `Retry-After` or with backoff (the refresh flow's policy).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use futures::StreamExt;
use url::Url;

use super::Deps;
use super::onboarding::{ConsentError, NewTenant, consent_link_with, sanitize, store_tokens};
use super::refresh::with_retries;
use crate::config::Cloud;
use crate::domain::{
    AlertApi, AuthModel, ConsentMethod, ConsentProvenance, Tenant, TenantId, TenantStatus,
};
use crate::microsoft::claims::{self, ClaimsError, TokenClaims};
use crate::microsoft::identity::{EntraClient, IdentityError, TokenResponse, default_scope};
use crate::ports::{AppCredentials, StoreError};

/// Tenants verified at once by an import, by default.
pub const IMPORT_CONCURRENCY: usize = 32;
/// The most tenants an import verifies at once.
pub const MAX_IMPORT_CONCURRENCY: usize = 64;

/// Why a tenant waits for its admin's (or a user's) click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingReason {
    /// Delegated access: a user of the tenant signs in and consents.
    Delegated,
    /// The app is not granted in the tenant: the identity platform mints no token for it.
    NotGranted {
        /// The AADSTS code, e.g. 700016.
        code: Option<u32>,
    },
    /// A token was minted, but it holds none of the roles the tenant's API accepts.
    MissingRole {
        /// The role to grant.
        needed: &'static str,
        /// The API.
        api: AlertApi,
        /// The roles the token holds.
        granted: Vec<String>,
    },
    /// A token minted for the tenant names another tenant in `tid`: never adopted.
    WrongTenant,
}

impl fmt::Display for PendingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PendingReason::Delegated => {
                f.write_str("delegated access: a user of the tenant signs in and consents")
            }
            PendingReason::NotGranted { code: Some(c) } => {
                write!(f, "the app is not granted in the tenant yet (AADSTS{c})")
            }
            PendingReason::NotGranted { code: None } => {
                f.write_str("the app is not granted in the tenant yet")
            }
            PendingReason::MissingRole {
                needed,
                api,
                granted,
            } => {
                let granted = if granted.is_empty() {
                    "none".to_string()
                } else {
                    granted.join(" ")
                };
                write!(
                    f,
                    "missing role {needed}, which the {api} API needs (granted: {granted})"
                )
            }
            PendingReason::WrongTenant => f.write_str(
                "a token minted for the tenant was issued for another tenant (tid): not adopted",
            ),
        }
    }
}

/// What onboarding did to one tenant.
#[derive(Debug, Clone)]
pub enum Adoption {
    /// Activated without a click: a token's `tid` and roles were verified.
    Adopted,
    /// Registered (or left) pending: the consent link to send, and why a click is needed.
    Pending {
        /// The link for the customer's admin.
        consent_link: Url,
        /// Why.
        reason: PendingReason,
    },
    /// Registered (or left) pending, but whether a click is needed could not be checked (the
    /// identity platform unavailable, the app registration misconfigured, a token unreadable):
    /// onboard it again later.
    Unverified {
        /// What went wrong (no secret).
        reason: String,
    },
    /// Already active or suspended: left as it is.
    AlreadyOnboarded,
}

/// One tenant's onboarding.
#[derive(Debug, Clone)]
pub struct Onboarding {
    /// The tenant as stored now.
    pub tenant: Tenant,
    /// Whether this onboarding created its record.
    pub created: bool,
    /// What happened.
    pub adoption: Adoption,
}

/// The app credentials and identity clients an onboarding run shares: read and built once, not
/// per tenant.
pub struct Onboarder {
    creds: AppCredentials,
    clients: Mutex<HashMap<Cloud, EntraClient>>,
    app_broken: Mutex<Option<String>>,
}

impl Onboarder {
    /// Reads the app credentials.
    pub async fn new(s: &Deps) -> Result<Onboarder, StoreError> {
        Ok(Onboarder {
            creds: s.app.app_credentials().await?,
            clients: Mutex::default(),
            app_broken: Mutex::default(),
        })
    }

    /// Set once the identity platform said the app registration itself is broken (every tenant
    /// is affected; the rest of the run does not ask again).
    pub fn app_misconfigured(&self) -> Option<String> {
        self.app_broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn entra(&self, s: &Deps, cloud: Cloud) -> Result<EntraClient, StoreError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&cloud) {
            return Ok(c.clone());
        }
        let c = s.entra(&self.creds, cloud)?;
        clients.insert(cloud, c.clone());
        Ok(c)
    }

    /// Mints a client-credentials token for an application tenant and checks it.
    async fn verify(&self, s: &Deps, new: &NewTenant) -> Result<Verified, StoreError> {
        if new.auth_model.is_delegated() {
            return Ok(Verified::Pending(PendingReason::Delegated));
        }
        if let Some(reason) = self.app_misconfigured() {
            return Ok(Verified::Unverified(format!(
                "not checked: the app registration is misconfigured ({reason})"
            )));
        }
        let entra = self.entra(s, new.cloud)?;
        let scope = default_scope(new.alert_api);
        let now = s.clock.now();
        let token = match with_retries(s, || entra.client_credentials(&new.id, &scope, now)).await {
            Ok(t) => t,
            Err(
                IdentityError::TenantNotConsented { code, .. }
                | IdentityError::ReconsentRequired { code, .. },
            ) => return Ok(Verified::Pending(PendingReason::NotGranted { code })),
            Err(e @ IdentityError::AppMisconfigured { .. }) => {
                let reason = e.to_string();
                *self.app_broken.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
                return Ok(Verified::Unverified(reason));
            }
            Err(e) => return Ok(Verified::Unverified(e.to_string())),
        };
        let checked = claims::check(
            &token.access_token,
            &new.id,
            new.alert_api,
            AuthModel::Application,
        );
        Ok(match checked {
            Ok(claims) => Verified::Granted {
                token,
                claims,
                scope,
            },
            Err(ClaimsError::WrongTenant) => {
                tracing::warn!(
                    tenant_id = %new.id,
                    "a token minted for the tenant names another tenant; not adopted"
                );
                Verified::Pending(PendingReason::WrongTenant)
            }
            Err(ClaimsError::MissingPermission { needed, api }) => {
                let granted = claims::read(&token.access_token)
                    .map(|c| c.granted().iter().map(|g| sanitize(g, 128)).collect())
                    .unwrap_or_default();
                Verified::Pending(PendingReason::MissingRole {
                    needed,
                    api,
                    granted,
                })
            }
            Err(e @ ClaimsError::Unreadable) => Verified::Unverified(e.to_string()),
        })
    }
}

/// What minting a token for a tenant found.
enum Verified {
    Granted {
        token: TokenResponse,
        claims: TokenClaims,
        scope: String,
    },
    Pending(PendingReason),
    Unverified(String),
}

/// Onboards one tenant (`mssp tenants add`): adopted when its admin already granted the app's
/// roles, else registered pending with a consent link. An active or suspended tenant is left as
/// it is ([`Adoption::AlreadyOnboarded`]).
pub async fn onboard(s: &Deps, new: NewTenant) -> Result<Onboarding, ConsentError> {
    let o = Onboarder::new(s).await?;
    let existing = s.registry.get(&new.id).await?;
    onboard_known(s, &o, new, existing).await
}

/// [`onboard`] with the tenant's stored record (if any) already read.
async fn onboard_known(
    s: &Deps,
    o: &Onboarder,
    new: NewTenant,
    existing: Option<Tenant>,
) -> Result<Onboarding, ConsentError> {
    if let Some(t) = existing.as_ref().filter(|t| done(t)) {
        return Ok(Onboarding {
            tenant: t.clone(),
            created: false,
            adoption: Adoption::AlreadyOnboarded,
        });
    }
    let (tenant, created, adoption) = match o.verify(s, &new).await? {
        Verified::Granted {
            token,
            claims,
            scope,
        } => {
            let (t, created) = adopt(s, &new, existing, token, &claims, scope).await?;
            (t, created, Adoption::Adopted)
        }
        Verified::Pending(reason) => {
            let (t, created) = register_pending(s, &new, existing).await?;
            let consent_link = consent_link_with(s, &o.creds, &t);
            (
                t,
                created,
                Adoption::Pending {
                    consent_link,
                    reason,
                },
            )
        }
        Verified::Unverified(reason) => {
            let (t, created) = register_pending(s, &new, existing).await?;
            (t, created, Adoption::Unverified { reason })
        }
    };
    // Another writer may have activated it meanwhile (a consent callback).
    let adoption = match adoption {
        Adoption::Adopted => Adoption::Adopted,
        _ if done(&tenant) => Adoption::AlreadyOnboarded,
        other => other,
    };
    Ok(Onboarding {
        tenant,
        created,
        adoption,
    })
}

fn done(t: &Tenant) -> bool {
    matches!(t.status, TenantStatus::Active | TenantStatus::Suspended)
}

/// Whether writing `new` onto `t` would change nothing.
fn unchanged(t: &Tenant, new: &NewTenant) -> bool {
    t.display_name == new.display_name
        && t.auth_model == new.auth_model
        && t.alert_api == new.alert_api
        && t.cloud == new.cloud
        && new.siem_region.is_none_or(|r| t.siem_region == Some(r))
        && new.backfill.is_none()
        && t.status != TenantStatus::Offboarded
}

/// A new record of `new`; a SIEM tenant without a region named gets the deployment's default
/// recorded, as `mssp tenants add` does.
fn new_record(s: &Deps, new: &NewTenant, now: chrono::DateTime<chrono::Utc>) -> Tenant {
    let mut t = new.pending(now);
    new.write_onto(&mut t, now);
    if t.alert_api == AlertApi::Siem && t.siem_region.is_none() {
        t.siem_region = Some(s.settings.siem_region);
    }
    t
}

/// Registers the tenant pending consent, or leaves its record as it is when nothing changes
/// (an offboarded tenant becomes pending again). Returns the record and whether it was created.
async fn register_pending(
    s: &Deps,
    new: &NewTenant,
    existing: Option<Tenant>,
) -> Result<(Tenant, bool), StoreError> {
    let now = s.clock.now();
    let existing = match existing {
        Some(t) => t,
        None => {
            let t = new_record(s, new, now);
            match s.registry.create(&t).await {
                Ok(()) => return Ok((t, true)),
                Err(StoreError::Conflict) => {
                    s.registry.get(&new.id).await?.ok_or(StoreError::Conflict)?
                }
                Err(e) => return Err(e),
            }
        }
    };
    if done(&existing) || unchanged(&existing, new) {
        return Ok((existing, false));
    }
    let t = s
        .update_tenant(&new.id, |t| {
            new.write_onto(t, now);
            if t.status == TenantStatus::Offboarded {
                t.status = TenantStatus::PendingConsent;
            }
        })
        .await?;
    Ok((t, false))
}

/// Provenance "adopted": the roles the admin had granted, and what the client-credentials
/// token showed about them.
fn adopted_provenance(
    new: &NewTenant,
    claims: &TokenClaims,
    now: chrono::DateTime<chrono::Utc>,
) -> ConsentProvenance {
    let granted: Vec<String> = claims.granted().iter().map(|g| sanitize(g, 128)).collect();
    let accepted = new.alert_api.app_roles();
    let roles = if accepted.is_empty() {
        format!("the {} API needs no role", new.alert_api)
    } else {
        let held: Vec<&str> = granted
            .iter()
            .map(String::as_str)
            .filter(|g| accepted.contains(g))
            .collect();
        format!(
            "roles hold {} (the {} API accepts {})",
            held.join(", "),
            new.alert_api,
            accepted.join(" or ")
        )
    };
    let verified = format!("client-credentials token: tid is {}; {roles}", new.id);
    ConsentProvenance {
        consented_by: Some("tenant administrator (granted before onboarding)".into()),
        consented_at: now,
        granted,
        auth_model: AuthModel::Application,
        method: ConsentMethod::Adopted,
        verified: Some(verified),
    }
}

/// Stores the verified token and activates the tenant with provenance "adopted".
async fn adopt(
    s: &Deps,
    new: &NewTenant,
    existing: Option<Tenant>,
    token: TokenResponse,
    claims: &TokenClaims,
    scope: String,
) -> Result<(Tenant, bool), StoreError> {
    let now = s.clock.now();
    store_tokens(s, &new.id, AuthModel::Application, token, scope).await?;
    let provenance = adopted_provenance(new, claims, now);
    let activate = |t: &mut Tenant| {
        new.write_onto(t, now);
        t.activate(provenance.clone(), now, "token minted at adoption");
    };
    let created = if existing.is_none() {
        let mut t = new_record(s, new, now);
        activate(&mut t);
        match s.registry.create(&t).await {
            Ok(()) => Some(t),
            Err(StoreError::Conflict) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let (tenant, was_created) = match created {
        Some(t) => (t, true),
        None => (s.update_tenant(&new.id, activate).await?, false),
    };
    tracing::info!(
        tenant_id = %tenant.id,
        alert_api = %tenant.alert_api,
        "tenant adopted: its admin had granted the app's roles"
    );
    Ok((tenant, was_created))
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    /// Each tenant's onboarding, in the order given.
    pub results: Vec<Result<Onboarding, ConsentError>>,
    /// Set when the app registration itself is broken (every application tenant is affected).
    pub app_misconfigured: Option<String>,
}

/// Onboards `tenants`, up to `concurrency` at once (at most [`MAX_IMPORT_CONCURRENCY`]), calling
/// `done` as each finishes. The registry is listed once; one tenant's failure never stops
/// another. Fails as a whole only when the app credentials or the registry cannot be read.
pub async fn import(
    s: &Deps,
    tenants: Vec<NewTenant>,
    concurrency: usize,
    done: &(dyn Fn(&Result<Onboarding, ConsentError>) + Sync),
) -> Result<ImportReport, StoreError> {
    let o = Onboarder::new(s).await?;
    let mut known: HashMap<TenantId, Tenant> = s
        .registry
        .list()
        .await?
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
    let jobs: Vec<_> = tenants
        .into_iter()
        .enumerate()
        .map(|(i, new)| {
            let existing = known.remove(&new.id);
            (i, new, existing)
        })
        .collect();
    let o = &o;
    let mut results: Vec<(usize, Result<Onboarding, ConsentError>)> = futures::stream::iter(jobs)
        .map(|(i, new, existing)| async move { (i, onboard_known(s, o, new, existing).await) })
        .buffer_unordered(concurrency.clamp(1, MAX_IMPORT_CONCURRENCY))
        .inspect(|(_, r)| done(r))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    Ok(ImportReport {
        results: results.into_iter().map(|(_, r)| r).collect(),
        app_misconfigured: o.app_misconfigured(),
    })
}
