//! The product's own types: tenants, how we are authorized in them, which alert API we read, and
//! the tokens we hold. Values are validated once, at the edge, and trusted afterwards.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Cloud;
use crate::secret::{AccessToken, RefreshToken};

/// `Display` as `as_str()`, and `FromStr` of any of `ALL` by that name (ASCII case and outer
/// white space ignored), refusing anything else with `$expected`.
macro_rules! named_by_as_str {
    ($t:ty, $expected:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t>::ALL
                    .into_iter()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
                    .ok_or_else(|| $expected.to_string())
            }
        }
    };
}

/// A customer's Entra tenant id: a GUID, kept lowercase.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

/// A tenant id that is not a GUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tenant id is a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47")]
pub struct InvalidTenantId;

impl TenantId {
    /// Parses a GUID (any case; stored lowercase).
    pub fn parse(s: &str) -> Result<Self, InvalidTenantId> {
        let s = s.trim();
        let ok = s.len() == 36
            && s.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        if ok {
            Ok(TenantId(s.to_ascii_lowercase()))
        } else {
            Err(InvalidTenantId)
        }
    }

    /// The GUID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TenantId {
    type Err = InvalidTenantId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::parse(s)
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TenantId::parse(&s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

/// How the MSSP is authorized in a customer tenant (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthModel {
    /// Authorization-code flow on the v1 endpoint with `resource=` (the seed's MSSP script).
    DelegatedV1,
    /// Authorization-code flow on the v2 endpoint with `scope=… offline_access` and PKCE.
    DelegatedV2,
    /// Admin consent once, then client-credentials tokens per customer tenant.
    Application,
}

impl AuthModel {
    /// Every model.
    pub const ALL: [AuthModel; 3] = [
        AuthModel::DelegatedV1,
        AuthModel::DelegatedV2,
        AuthModel::Application,
    ];

    /// `delegated-v1`, `delegated-v2`, `application`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthModel::DelegatedV1 => "delegated-v1",
            AuthModel::DelegatedV2 => "delegated-v2",
            AuthModel::Application => "application",
        }
    }

    /// Whether we hold a user's refresh token for this tenant.
    pub fn is_delegated(self) -> bool {
        !matches!(self, AuthModel::Application)
    }
}

named_by_as_str!(
    AuthModel,
    "expected delegated-v1, delegated-v2 or application"
);

/// Which alert API a tenant is read through (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertApi {
    /// Microsoft Graph `security/alerts_v2` (default).
    Graph,
    /// Defender for Endpoint `/api/alerts`.
    Mde,
    /// The legacy SIEM API (deprecated; works, and warns).
    Siem,
}

impl AlertApi {
    /// Every API.
    pub const ALL: [AlertApi; 3] = [AlertApi::Graph, AlertApi::Mde, AlertApi::Siem];

    /// `graph`, `mde`, `siem`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertApi::Graph => "graph",
            AlertApi::Mde => "mde",
            AlertApi::Siem => "siem",
        }
    }

    /// The App ID URI of the API's resource, used as v1 `resource=` and v2 scope prefix.
    pub fn resource(self) -> &'static str {
        match self {
            AlertApi::Graph => "https://graph.microsoft.com",
            AlertApi::Mde => "https://api.securitycenter.microsoft.com",
            AlertApi::Siem => "https://graph.windows.net",
        }
    }

    /// Application permissions that let us list alerts (any one suffices).
    pub fn app_roles(self) -> &'static [&'static str] {
        match self {
            AlertApi::Graph => &["SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"],
            AlertApi::Mde => &["Alert.Read.All", "Alert.ReadWrite.All"],
            // The SIEM exporter authorizes the app in the Defender portal's MSSP tab, not by
            // role; an app-only token is accepted without one.
            AlertApi::Siem => &[],
        }
    }

    /// Delegated permissions that let us list alerts (any one suffices).
    pub fn delegated_scopes(self) -> &'static [&'static str] {
        match self {
            AlertApi::Graph => &["SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"],
            AlertApi::Mde => &["Alert.Read", "Alert.ReadWrite"],
            // The seed's MSSP flow requests `resource=https://graph.windows.net` and stores the
            // user's token; v1 grants it the resource's `user_impersonation` scope.
            AlertApi::Siem => &["user_impersonation"],
        }
    }

    /// The permission named in messages when a token lacks every accepted one.
    pub fn needed_permission(self, model: AuthModel) -> &'static str {
        if model.is_delegated() {
            self.delegated_scopes().first().copied().unwrap_or_default()
        } else {
            self.app_roles().first().copied().unwrap_or_default()
        }
    }
}

named_by_as_str!(AlertApi, "expected graph, mde or siem");

/// The regional exporter that serves a tenant's legacy SIEM API (reference §1.4): a tenant's
/// detections are served only by its own region's `wdatp-alertexporter-{eu,us,uk}`; another
/// region's exporter answers an empty list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SiemRegion {
    /// `wdatp-alertexporter-eu`.
    Eu,
    /// `wdatp-alertexporter-us` (the only exporter of the US Government clouds).
    #[default]
    Us,
    /// `wdatp-alertexporter-uk`.
    Uk,
}

impl SiemRegion {
    /// Every region.
    pub const ALL: [SiemRegion; 3] = [SiemRegion::Eu, SiemRegion::Us, SiemRegion::Uk];

    /// `eu`, `us`, `uk`.
    pub fn as_str(self) -> &'static str {
        match self {
            SiemRegion::Eu => "eu",
            SiemRegion::Us => "us",
            SiemRegion::Uk => "uk",
        }
    }
}

named_by_as_str!(SiemRegion, "expected eu, us or uk");

/// Where a tenant stands (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Created by the operator; the customer's admin has not consented yet.
    PendingConsent,
    /// Tokens work; alerts are fetched.
    Active,
    /// Our grant no longer works (expired, revoked, consent withdrawn): a new consent is needed.
    ReconsentRequired,
    /// Paused by the operator.
    Suspended,
    /// Removed; kept as an audit record.
    Offboarded,
}

impl TenantStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TenantStatus; 5] = [
        TenantStatus::PendingConsent,
        TenantStatus::Active,
        TenantStatus::ReconsentRequired,
        TenantStatus::Suspended,
        TenantStatus::Offboarded,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::PendingConsent => "pending_consent",
            TenantStatus::Active => "active",
            TenantStatus::ReconsentRequired => "reconsent_required",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Offboarded => "offboarded",
        }
    }
}

named_by_as_str!(
    TenantStatus,
    "expected pending_consent, active, reconsent_required, suspended or offboarded"
);

/// Who granted us access, when, and what was granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentProvenance {
    /// The consenting user's UPN (delegated) or the admin-consent marker (application).
    pub consented_by: Option<String>,
    /// When the consent was completed (adopted: when the grant was verified; the admin's own
    /// grant is older).
    pub consented_at: DateTime<Utc>,
    /// Roles (application) or scopes (delegated) in the verified token.
    pub granted: Vec<String>,
    /// The model consented to.
    pub auth_model: AuthModel,
    /// How the grant was established.
    #[serde(default)]
    pub method: ConsentMethod,
    /// What was verified before the tenant was activated without a click (adopted only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
}

/// How a tenant's grant was established.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMethod {
    /// The customer's admin or user went through our consent link.
    #[default]
    Consent,
    /// The admin had already granted the app's roles: a client-credentials token's `tid` and
    /// `roles` were verified and the tenant activated without a click.
    Adopted,
}

impl ConsentMethod {
    /// `consent` or `adopted`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentMethod::Consent => "consent",
            ConsentMethod::Adopted => "adopted",
        }
    }
}

impl fmt::Display for ConsentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of the last refresh or fetch of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// Whether it succeeded.
    pub ok: bool,
    /// What went wrong, in words an operator can act on (never a secret).
    pub detail: Option<String>,
}

/// A customer tenant in the registry. Holds no secret (tokens live in the [`crate::ports::TokenStore`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Tenant id.
    pub id: TenantId,
    /// Customer name for people.
    pub display_name: String,
    /// How we are authorized.
    pub auth_model: AuthModel,
    /// Which API we read.
    pub alert_api: AlertApi,
    /// Which Microsoft cloud.
    pub cloud: Cloud,
    /// Lifecycle state.
    pub status: TenantStatus,
    /// Consent provenance, once consented.
    pub consent: Option<ConsentProvenance>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Last token refresh.
    pub last_refresh: Option<Outcome>,
    /// Last alert fetch.
    pub last_fetch: Option<Outcome>,
    /// Failures in a row (refresh or fetch); reset on success.
    pub consecutive_failures: u32,
    /// A backfill asked for and not finished yet (its progress is in the cursor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillRequest>,
    /// The token refresh holding the tenant now, if any: one refresh of a tenant at a time, so
    /// the refresh token one of them rotates in is stored before the next reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_lease: Option<RefreshHolder>,
    /// The SIEM exporter region, for a tenant read through the SIEM API (absent: the
    /// deployment's default, `MSSP_SIEM_REGION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siem_region: Option<SiemRegion>,
    /// Optimistic-concurrency version, bumped on every write.
    pub version: u64,
}

/// Who holds a tenant's token refresh, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshHolder {
    /// The refresh holding it (a random id per refresh).
    pub owner: String,
    /// When the hold lapses if its holder never gives it up.
    pub expires_at: DateTime<Utc>,
}

/// A history range to deliver into the sink as ordinary records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillRequest {
    /// From this update time.
    pub since: DateTime<Utc>,
    /// Up to this update time; absent: up to where the regular fetch's coverage starts.
    pub until: Option<DateTime<Utc>>,
}

impl Tenant {
    /// Makes the tenant active on `provenance` with its tokens just obtained (`how`): failures
    /// are reset and that is its last, successful, refresh.
    pub fn activate(&mut self, provenance: ConsentProvenance, now: DateTime<Utc>, how: &str) {
        self.status = TenantStatus::Active;
        self.consent = Some(provenance);
        self.consecutive_failures = 0;
        self.last_refresh = Some(Outcome {
            at: now,
            ok: true,
            detail: Some(how.into()),
        });
    }

    /// A new tenant waiting for consent.
    pub fn pending(
        id: TenantId,
        display_name: String,
        auth_model: AuthModel,
        alert_api: AlertApi,
        cloud: Cloud,
        now: DateTime<Utc>,
    ) -> Tenant {
        Tenant {
            id,
            display_name,
            auth_model,
            alert_api,
            cloud,
            status: TenantStatus::PendingConsent,
            consent: None,
            created_at: now,
            updated_at: now,
            last_refresh: None,
            last_fetch: None,
            consecutive_failures: 0,
            backfill: None,
            refresh_lease: None,
            siem_region: None,
            version: 0,
        }
    }
}

/// The tokens we hold for one tenant (stored as one secret per tenant, DESIGN §5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantTokens {
    /// Tenant id.
    pub tenant_id: TenantId,
    /// Model the tokens belong to.
    pub auth_model: AuthModel,
    /// The resource (v1 `resource=`) or scope (v2) the access token is for.
    pub resource: String,
    /// The refresh token (delegated only). Rotated on every use; always persist the new one.
    pub refresh_token: Option<RefreshToken>,
    /// The cached access token.
    pub access_token: Option<AccessToken>,
    /// Absolute expiry of the access token.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the refresh token in hand was obtained (its 90-day inactivity clock starts here).
    pub refresh_token_obtained_at: Option<DateTime<Utc>>,
    /// When tokens were first obtained (consent).
    pub obtained_at: DateTime<Utc>,
    /// When they were last rotated.
    pub rotated_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_guids_kept_lowercase() {
        let t = TenantId::parse("72F988BF-86F1-41AF-91AB-2D7CD011DB47").expect("valid");
        assert_eq!(t.as_str(), "72f988bf-86f1-41af-91ab-2d7cd011db47");
        assert!(TenantId::parse("common").is_err());
        assert!(TenantId::parse("72f988bf-86f1-41af-91ab-2d7cd011db4").is_err());
        assert!(TenantId::parse("72f988bf_86f1-41af-91ab-2d7cd011db47").is_err());
        assert!(serde_json::from_str::<TenantId>("\"../etc/passwd\"").is_err());
    }

    #[test]
    fn models_and_apis_read_their_names() {
        assert_eq!(
            "delegated-v2".parse::<AuthModel>(),
            Ok(AuthModel::DelegatedV2)
        );
        assert_eq!("MDE".parse::<AlertApi>(), Ok(AlertApi::Mde));
        assert!("x".parse::<AlertApi>().is_err());
    }
}
