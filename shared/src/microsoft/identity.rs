//! Client for the Microsoft identity platform (Entra ID) v1 and v2 endpoints: the consent URLs we
//! send customers to, code redemption, refresh with rotation, and client credentials per customer
//! tenant (reference §4).
//!
//! Hand-written rather than built on the `oauth2` crate because every request here departs from
//! plain RFC 6749 in a way that crate does not model: v1 wants `resource=` instead of `scope`, v1
//! answers numbers as strings (`"expires_in": "3599"`), the authority path carries the customer
//! tenant, and errors must be classified by their `error_codes` (AADSTS) rather than the OAuth
//! `error` alone. The habits from `oauth2` are kept: secrets are types, redirects are never
//! followed on the token client, and the raw error body is kept (redacted) for diagnosis.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use url::Url;

use crate::domain::{AlertApi, TenantId};
use crate::secret::{AccessToken, AuthCode, ClientSecret, RefreshToken};

/// What the token endpoint gave us.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: AccessToken,
    /// A new refresh token (delegated flows; Microsoft rotates on every use).
    pub refresh_token: Option<RefreshToken>,
    /// Absolute expiry computed from `expires_in` at receipt.
    pub expires_at: DateTime<Utc>,
    /// Granted scopes as the endpoint reports them, if it does.
    pub scope: Option<String>,
}

/// A token-endpoint failure, shaped by what the caller does next (reference §4.10). Its
/// `Display` is one sentence for the operator: what happened, with the AADSTS code, and what to do
/// next ([`IdentityError::what`] and [`IdentityError::next_step`] are the two halves).
#[derive(Debug)]
pub enum IdentityError {
    /// The grant no longer works (expired after 90 idle days, revoked, consent withdrawn,
    /// interaction required): the customer must consent again.
    ReconsentRequired {
        /// First AADSTS code.
        code: Option<u32>,
        /// OAuth `error`.
        error: String,
        /// Raw body, secrets redacted.
        body: String,
    },
    /// The MSSP app itself is broken (wrong or expired client secret): affects every tenant.
    AppMisconfigured {
        /// First AADSTS code.
        code: Option<u32>,
        /// OAuth `error`.
        error: String,
        /// Raw body, secrets redacted.
        body: String,
    },
    /// The tenant is unknown or has not consented to the app.
    TenantNotConsented {
        /// First AADSTS code.
        code: Option<u32>,
        /// OAuth `error`.
        error: String,
        /// Raw body, secrets redacted.
        body: String,
    },
    /// The request was refused for another reason (bad or used code, bad scope): not retryable.
    Rejected {
        /// First AADSTS code.
        code: Option<u32>,
        /// OAuth `error`.
        error: String,
        /// Raw body, secrets redacted.
        body: String,
    },
    /// Worth retrying: 5xx, 429, timeouts, dropped connections, unreadable answers.
    Transient {
        /// What happened, completing "Microsoft's sign-in service …" (no secret), e.g.
        /// "answered HTTP 503" or "dropped the connection".
        reason: String,
        /// `Retry-After`, when the server gave one.
        retry_after: Option<StdDuration>,
        /// The transport error, if any.
        source: Option<reqwest::Error>,
    },
}

/// What an identity error means for the product: which variant of [`IdentityError`] it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// [`IdentityError::ReconsentRequired`].
    Reconsent,
    /// [`IdentityError::AppMisconfigured`].
    App,
    /// [`IdentityError::TenantNotConsented`].
    Tenant,
    /// [`IdentityError::Rejected`].
    Rejected,
}

/// One AADSTS code the product classifies: what it means and the sentence it gives.
#[derive(Debug, Clone, Copy)]
pub struct Aadsts {
    /// The code (`AADSTSnnnn`).
    pub code: u32,
    /// How the product treats it.
    pub meaning: Meaning,
    /// What happened.
    pub what: &'static str,
    /// What the operator does next.
    pub next: &'static str,
}

/// The next step of every error that needs the customer to consent again.
pub const NEW_CONSENT_LINK: &str =
    "send the customer's admin a new consent link (`mssp consent-link ID`)";
const CONDITIONAL_ACCESS_NEXT: &str = "ask the customer to exempt this app in that policy (Entra \
     admin center › Protection › Conditional Access), then send their admin a new consent link \
     (`mssp consent-link ID`)";

/// Every AADSTS code the product classifies (reference §4.6, §4.10; DESIGN §6 Refresh), with its
/// sentence. README's "Errors and what to do" table is this table (a test compares them).
pub const AADSTS_CODES: &[Aadsts] = &[
    Aadsts {
        code: 700082,
        meaning: Meaning::Reconsent,
        what: "the refresh token expired after 90 days without use",
        next: NEW_CONSENT_LINK,
    },
    Aadsts {
        code: 70008,
        meaning: Meaning::Reconsent,
        what: "the refresh token or authorization code expired or was revoked",
        next: NEW_CONSENT_LINK,
    },
    Aadsts {
        code: 700084,
        meaning: Meaning::Reconsent,
        what: "the refresh token reached the 24-hour limit Microsoft sets for single-page apps",
        next: "register the redirect URI as Web, not SPA (Entra admin center › App registrations \
               › Authentication), then send the customer's admin a new consent link \
               (`mssp consent-link ID`)",
    },
    Aadsts {
        code: 50173,
        meaning: Meaning::Reconsent,
        what: "the user's sessions were revoked or the password was reset in the customer's tenant",
        next: NEW_CONSENT_LINK,
    },
    Aadsts {
        code: 65001,
        meaning: Meaning::Reconsent,
        what: "the consent for this API was removed in the customer's tenant",
        next: NEW_CONSENT_LINK,
    },
    Aadsts {
        code: 70043,
        meaning: Meaning::Reconsent,
        what: "a Conditional Access sign-in frequency policy in the customer's tenant ended the \
               session",
        next: CONDITIONAL_ACCESS_NEXT,
    },
    Aadsts {
        code: 53003,
        meaning: Meaning::Reconsent,
        what: "a Conditional Access policy in the customer's tenant blocked the sign-in",
        next: CONDITIONAL_ACCESS_NEXT,
    },
    Aadsts {
        code: 50076,
        meaning: Meaning::Reconsent,
        what: "the customer's tenant now requires multi-factor authentication for the user who \
               consented",
        next: NEW_CONSENT_LINK,
    },
    Aadsts {
        code: 50079,
        meaning: Meaning::Reconsent,
        what: "the user who consented must now enroll in multi-factor authentication",
        next: NEW_CONSENT_LINK,
    },
    Aadsts {
        code: 50078,
        meaning: Meaning::Reconsent,
        what: "the multi-factor authentication of the user who consented has expired",
        next: NEW_CONSENT_LINK,
    },
    Aadsts {
        code: 700003,
        meaning: Meaning::Reconsent,
        what: "the device the user consented from is no longer registered in the customer's \
               tenant",
        next: NEW_CONSENT_LINK,
    },
    Aadsts {
        code: 7000222,
        meaning: Meaning::App,
        what: "the app's client secret has expired",
        next: "create a new one (Entra admin center › App registrations › Certificates & \
               secrets), write its Value into the app secret's client_secret (and \
               client_secret_expires), then run `mssp refresh`",
    },
    Aadsts {
        code: 7000215,
        meaning: Meaning::App,
        what: "Microsoft does not recognize the app's client secret",
        next: "write the secret's Value, not its Secret ID (Entra admin center › App \
               registrations › Certificates & secrets), into the app secret's client_secret, \
               then run `mssp refresh`",
    },
    Aadsts {
        code: 7000218,
        meaning: Meaning::App,
        what: "no client secret was sent",
        next: "write client_secret into the app secret, then run `mssp refresh`",
    },
    Aadsts {
        code: 7000112,
        meaning: Meaning::App,
        what: "the app registration is disabled",
        next: "enable it (Entra admin center › Enterprise applications › Properties › Enabled \
               for users to sign in), then run `mssp refresh`",
    },
    Aadsts {
        code: 700027,
        meaning: Meaning::App,
        what: "Microsoft could not verify the app's credential",
        next: "write a current client secret into the app secret (Entra admin center › App \
               registrations › Certificates & secrets), then run `mssp refresh`",
    },
    Aadsts {
        code: 700016,
        meaning: Meaning::Tenant,
        what: "the customer's tenant has not consented to the app, or has removed it",
        next: NEW_CONSENT_LINK,
    },
    Aadsts {
        code: 90002,
        meaning: Meaning::Tenant,
        what: "Microsoft knows no tenant with this id",
        next: "check the id with the customer (Entra admin center › Overview › Tenant ID), then \
               `mssp tenants remove ID` and add it again",
    },
    Aadsts {
        code: 500011,
        meaning: Meaning::Tenant,
        what: "the customer's tenant has no service principal for the alert API, as when its \
               Defender product is not provisioned",
        next: "ask the customer to enable that product, or remove the tenant and add it again \
               with another `--api`",
    },
    Aadsts {
        code: 90099,
        meaning: Meaning::Tenant,
        what: "the app is not authorized for partner access in the customer's tenant",
        next: NEW_CONSENT_LINK,
    },
    Aadsts {
        code: 54005,
        meaning: Meaning::Rejected,
        what: "the authorization code was already redeemed",
        next: "have the customer's admin open the consent link again (`mssp consent-link ID`)",
    },
    Aadsts {
        code: 50011,
        meaning: Meaning::Rejected,
        what: "the redirect URI is not registered on the app",
        next: "add the deployment's redirect URI (its public base URL followed by \
               /consent/callback) under Web redirect URIs (Entra admin center › App \
               registrations › Authentication)",
    },
    Aadsts {
        code: 70011,
        meaning: Meaning::Rejected,
        what: "Microsoft refused the requested scope",
        next: "check the permissions the app requests (Entra admin center › App registrations \
               › API permissions)",
    },
];

/// The row of `code` in [`AADSTS_CODES`].
pub fn aadsts(code: u32) -> Option<&'static Aadsts> {
    AADSTS_CODES.iter().find(|a| a.code == code)
}

/// `(error, AADSTSnnnn)`, `(AADSTSnnnn)` when `error` is empty, `(error)` without a code.
fn codes(code: &Option<u32>, error: &str) -> String {
    match (code, error.is_empty()) {
        (Some(c), false) => format!("({error}, AADSTS{c})"),
        (Some(c), true) => format!("(AADSTS{c})"),
        (None, false) => format!("({error})"),
        (None, true) => String::new(),
    }
}

impl IdentityError {
    /// The AADSTS code, if the endpoint gave one.
    pub fn aadsts(&self) -> Option<u32> {
        match self {
            IdentityError::ReconsentRequired { code, .. }
            | IdentityError::AppMisconfigured { code, .. }
            | IdentityError::TenantNotConsented { code, .. }
            | IdentityError::Rejected { code, .. } => *code,
            IdentityError::Transient { .. } => None,
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, IdentityError::Transient { .. })
    }

    fn known(&self) -> Option<&'static Aadsts> {
        self.aadsts().and_then(aadsts)
    }

    /// What happened, with the code: the first half of the sentence, safe to show the
    /// customer's admin too (no instruction to the operator).
    pub fn what(&self) -> String {
        let (code, error, generic) = match self {
            IdentityError::Transient { reason, .. } => {
                return format!("Microsoft's sign-in service {reason}");
            }
            IdentityError::ReconsentRequired { code, error, .. } => (
                code,
                error,
                "Microsoft no longer accepts the customer's grant",
            ),
            IdentityError::AppMisconfigured { code, error, .. } => {
                (code, error, "Microsoft refused the app's credentials")
            }
            IdentityError::TenantNotConsented { code, error, .. } => (
                code,
                error,
                "the customer's tenant is unknown or has not consented to the app",
            ),
            IdentityError::Rejected { code, error, .. } => {
                (code, error, "Microsoft refused the token request")
            }
        };
        let what = self.known().map_or(generic, |a| a.what);
        let known = self.known().is_some();
        // A known code names itself; an unknown one shows Microsoft's words too.
        let detail = if known {
            codes(code, "")
        } else {
            codes(code, error)
        };
        if detail.is_empty() {
            what.to_string()
        } else {
            format!("{what} {detail}")
        }
    }

    /// What the operator does next: the second half of the sentence.
    pub fn next_step(&self) -> &'static str {
        if let Some(a) = self.known() {
            return a.next;
        }
        match self {
            IdentityError::Transient { .. } => "the next run retries",
            IdentityError::ReconsentRequired { .. } | IdentityError::TenantNotConsented { .. } => {
                NEW_CONSENT_LINK
            }
            IdentityError::AppMisconfigured { .. } => {
                "check the client secret (Entra admin center › App registrations › Certificates \
                 & secrets), write its Value into the app secret, then run `mssp refresh`"
            }
            IdentityError::Rejected { .. } => {
                "run `mssp refresh ID --force`; if Microsoft refuses again, report the code with \
                 the tenant's model and API"
            }
        }
    }
}

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.is_transient() { "; " } else { ": " };
        write!(f, "{}{sep}{}", self.what(), self.next_step())
    }
}

/// No `source`: the transport error of a transient failure is in the text already, in words an
/// operator can act on ("dropped the connection"), and reqwest's own ("error sending request")
/// says less; it is kept in the value for `Debug` and logged at debug level.
impl std::error::Error for IdentityError {}

/// Whether a code means `meaning`.
fn coded(meaning: Meaning) -> impl Fn(&u32) -> bool {
    move |c| aadsts(*c).is_some_and(|a| a.meaning == meaning)
}

/// Classifies an error answer of the token endpoint.
pub fn classify(status: u16, body: &str, retry_after: Option<StdDuration>) -> IdentityError {
    #[derive(Deserialize)]
    struct Body {
        error: Option<String>,
        #[serde(default)]
        error_codes: Vec<u32>,
    }
    let parsed: Option<Body> = serde_json::from_str(body).ok();
    let (error, codes) = match parsed {
        Some(b) => (b.error.unwrap_or_default(), b.error_codes),
        None => (String::new(), Vec::new()),
    };
    if status >= 500 || status == 429 || (error.is_empty() && status != 400 && status != 401) {
        return IdentityError::Transient {
            reason: format!("answered HTTP {status}"),
            retry_after,
            source: None,
        };
    }
    // The first code the product knows names the error (Microsoft may send several).
    let code = codes
        .iter()
        .copied()
        .find(|c| aadsts(*c).is_some())
        .or_else(|| codes.first().copied());
    let body = redact_body(body);
    let any = |m: Meaning| codes.iter().any(coded(m));
    if any(Meaning::App) || error == "invalid_client" {
        IdentityError::AppMisconfigured { code, error, body }
    } else if any(Meaning::Tenant) || error == "invalid_tenant" {
        IdentityError::TenantNotConsented { code, error, body }
    } else if any(Meaning::Reconsent)
        || error == "interaction_required"
        || error == "consent_required"
    {
        IdentityError::ReconsentRequired { code, error, body }
    } else if error == "temporarily_unavailable" {
        IdentityError::Transient {
            reason: format!("is temporarily unavailable (HTTP {status}, temporarily_unavailable)"),
            retry_after,
            source: None,
        }
    } else {
        IdentityError::Rejected { code, error, body }
    }
}

/// Keeps an error body for diagnosis without anything that could be a credential: known secret
/// fields are blanked, and the result is capped at 2 KiB.
pub fn redact_body(body: &str) -> String {
    const SECRET_FIELDS: &[&str] = &[
        "access_token",
        "refresh_token",
        "id_token",
        "code",
        "client_secret",
        "client_assertion",
    ];
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut m)) => {
            for f in SECRET_FIELDS {
                if let Some(v) = m.get_mut(*f) {
                    *v = serde_json::Value::String("[REDACTED]".into());
                }
            }
            serde_json::Value::Object(m).to_string()
        }
        _ => "[non-JSON body omitted]".to_string(),
    };
    text.chars().take(2048).collect()
}

/// A number that v1 sends as a string and v2 as an integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    Int(i64),
    Str(String),
}

impl Num {
    fn value(&self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(*i),
            Num::Str(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct RawToken {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    expires_in: Num,
    #[serde(default)]
    scope: Option<String>,
}

/// The Entra ID client for one app registration.
#[derive(Clone)]
pub struct EntraClient {
    http: reqwest::Client,
    authority: Url,
    client_id: String,
    client_secret: ClientSecret,
}

impl std::fmt::Debug for EntraClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntraClient")
            .field("authority", &self.authority.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A v2 scope string for delegated access to `api`, with `offline_access` for a refresh token.
pub fn delegated_scope(api: AlertApi) -> String {
    let perms = api.delegated_scopes();
    let first = perms.first().copied().unwrap_or("user_impersonation");
    format!("{}/{first} offline_access", api.resource())
}

/// The v2 `.default` scope of `api` (application permissions).
pub fn default_scope(api: AlertApi) -> String {
    format!("{}/.default", api.resource())
}

/// The PKCE S256 challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

impl EntraClient {
    /// A client for `authority` (e.g. `https://login.microsoftonline.com`) over `http` (the
    /// process's shared identity client, [`super::http::Clients::identity`]).
    pub fn with_http(
        http: reqwest::Client,
        authority: Url,
        client_id: String,
        client_secret: ClientSecret,
    ) -> Self {
        EntraClient {
            http,
            authority,
            client_id,
            client_secret,
        }
    }

    /// The app's client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    fn endpoint(&self, tenant: &str, path: &str) -> Url {
        let mut u = self.authority.clone();
        let base = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{base}/{tenant}/{path}"));
        u.set_query(None);
        u
    }

    /// The v1 authorize URL exactly as the seed's MSSP script builds it
    /// (`prompt=select_account&response_type=code&client_id&redirect_uri&resource`), plus `state`.
    pub fn authorize_url_v1(
        &self,
        tenant: &TenantId,
        redirect_uri: &str,
        resource: &str,
        state: &str,
    ) -> Url {
        let mut u = self.endpoint(tenant.as_str(), "oauth2/authorize");
        u.query_pairs_mut()
            .append_pair("prompt", "select_account")
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("resource", resource)
            .append_pair("state", state);
        u
    }

    /// The v2 authorize URL with `scope`, `response_mode=query` and PKCE S256.
    pub fn authorize_url_v2(
        &self,
        tenant: &TenantId,
        redirect_uri: &str,
        scope: &str,
        state: &str,
        pkce_verifier: &str,
    ) -> Url {
        let mut u = self.endpoint(tenant.as_str(), "oauth2/v2.0/authorize");
        u.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", scope)
            .append_pair("state", state)
            .append_pair("code_challenge", &pkce_challenge(pkce_verifier))
            .append_pair("code_challenge_method", "S256");
        u
    }

    /// The v1 admin-consent URL (`/{tenant}/adminconsent`).
    pub fn admin_consent_url_v1(&self, tenant: &TenantId, redirect_uri: &str, state: &str) -> Url {
        let mut u = self.endpoint(tenant.as_str(), "adminconsent");
        u.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("state", state)
            .append_pair("redirect_uri", redirect_uri);
        u
    }

    /// The v2 admin-consent URL (`/{tenant}/v2.0/adminconsent`) for `scope` (`…/.default`).
    pub fn admin_consent_url_v2(
        &self,
        tenant: &TenantId,
        redirect_uri: &str,
        scope: &str,
        state: &str,
    ) -> Url {
        let mut u = self.endpoint(tenant.as_str(), "v2.0/adminconsent");
        u.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", scope)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        u
    }

    async fn token(
        &self,
        tenant: &TenantId,
        v2: bool,
        form: &[(&str, &str)],
        now: DateTime<Utc>,
    ) -> Result<TokenResponse, IdentityError> {
        let path = if v2 {
            "oauth2/v2.0/token"
        } else {
            "oauth2/token"
        };
        let url = self.endpoint(tenant.as_str(), path);
        let mut all: Vec<(&str, &str)> = vec![
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret().as_str()),
        ];
        all.extend_from_slice(form);
        let resp = self.http.post(url).form(&all).send().await.map_err(|e| {
            tracing::debug!(error = ?std::error::Error::source(&e), "token request failed");
            IdentityError::Transient {
                reason: crate::microsoft::http::transport_failure(&e).into(),
                retry_after: None,
                source: Some(e.without_url()),
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = crate::microsoft::http::retry_after(resp.headers());
        let body = resp.text().await.map_err(|e| IdentityError::Transient {
            reason: crate::microsoft::http::transport_failure(&e).into(),
            retry_after: None,
            source: Some(e.without_url()),
        })?;
        if status != 200 {
            return Err(classify(status, &body, retry_after));
        }
        let raw: RawToken = serde_json::from_str(&body).map_err(|_| IdentityError::Transient {
            reason: "answered with something that is not a token response".into(),
            retry_after: None,
            source: None,
        })?;
        let secs = raw
            .expires_in
            .value()
            .ok_or_else(|| IdentityError::Transient {
                reason: "answered a token whose expires_in is not a number".into(),
                retry_after: None,
                source: None,
            })?;
        Ok(TokenResponse {
            access_token: AccessToken::new(raw.access_token),
            refresh_token: raw.refresh_token.map(RefreshToken::new),
            expires_at: now + Duration::seconds(secs.max(0)),
            scope: raw.scope,
        })
    }

    /// Redeems an authorization code on the v1 endpoint for `resource`.
    pub async fn redeem_code_v1(
        &self,
        tenant: &TenantId,
        code: &AuthCode,
        redirect_uri: &str,
        resource: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenResponse, IdentityError> {
        self.token(
            tenant,
            false,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.expose_secret()),
                ("redirect_uri", redirect_uri),
                ("resource", resource),
            ],
            now,
        )
        .await
    }

    /// Redeems an authorization code on the v2 endpoint with the PKCE verifier.
    pub async fn redeem_code_v2(
        &self,
        tenant: &TenantId,
        code: &AuthCode,
        redirect_uri: &str,
        scope: &str,
        pkce_verifier: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenResponse, IdentityError> {
        self.token(
            tenant,
            true,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.expose_secret()),
                ("redirect_uri", redirect_uri),
                ("scope", scope),
                ("code_verifier", pkce_verifier),
            ],
            now,
        )
        .await
    }

    /// Uses a refresh token (v1 with `resource`, v2 with `scope`). The answer carries a NEW
    /// refresh token that must be persisted.
    pub async fn refresh(
        &self,
        tenant: &TenantId,
        refresh_token: &RefreshToken,
        v2: bool,
        resource_or_scope: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenResponse, IdentityError> {
        let key = if v2 { "scope" } else { "resource" };
        self.token(
            tenant,
            v2,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
                (key, resource_or_scope),
            ],
            now,
        )
        .await
    }

    /// Mints an app-only token in the customer `tenant` (v2, `scope = <resource>/.default`).
    pub async fn client_credentials(
        &self,
        tenant: &TenantId,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenResponse, IdentityError> {
        self.token(
            tenant,
            true,
            &[("grant_type", "client_credentials"), ("scope", scope)],
            now,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY_700082: &str = r#"{"error":"invalid_grant","error_description":"AADSTS700082: The refresh token has expired due to inactivity.\r\nTrace ID: x","error_codes":[700082],"timestamp":"2020-07-06 22:31:52Z","trace_id":"x","correlation_id":"y"}"#;

    #[test]
    fn errors_are_classified_by_what_the_caller_does_next() {
        assert!(matches!(
            classify(400, BODY_700082, None),
            IdentityError::ReconsentRequired {
                code: Some(700082),
                ..
            }
        ));
        let secret = r#"{"error":"invalid_client","error_codes":[7000222]}"#;
        assert!(matches!(
            classify(401, secret, None),
            IdentityError::AppMisconfigured {
                code: Some(7000222),
                ..
            }
        ));
        let tenant = r#"{"error":"unauthorized_client","error_codes":[700016]}"#;
        assert!(matches!(
            classify(400, tenant, None),
            IdentityError::TenantNotConsented { .. }
        ));
        assert!(classify(503, "<html>", None).is_transient());
        assert!(classify(429, "", None).is_transient());
        let used = r#"{"error":"invalid_grant","error_codes":[54005]}"#;
        assert!(matches!(
            classify(400, used, None),
            IdentityError::Rejected {
                code: Some(54005),
                ..
            }
        ));
    }

    /// README's "Errors and what to do" holds one row per code of [`AADSTS_CODES`], with the
    /// sentence the product gives.
    #[test]
    fn the_readme_lists_every_aadsts_code_with_its_sentence() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        let meaning = |m: Meaning| match m {
            Meaning::Reconsent => "re-consent",
            Meaning::App => "app-wide",
            Meaning::Tenant => "tenant",
            Meaning::Rejected => "refused",
        };
        let missing: Vec<String> = AADSTS_CODES
            .iter()
            .map(|a| {
                let e = classify(
                    400,
                    &format!(r#"{{"error":"x","error_codes":[{}]}}"#, a.code),
                    None,
                );
                format!("| {} | {} | {e} |", a.code, meaning(a.meaning))
            })
            .filter(|row| !readme.contains(row.as_str()))
            .collect();
        assert!(missing.is_empty(), "README lacks:\n{}", missing.join("\n"));
    }

    #[test]
    fn redacted_bodies_keep_the_diagnosis_and_drop_credentials() {
        let b = redact_body(r#"{"error":"x","refresh_token":"0.SECRET","code":"C0DE"}"#);
        assert!(b.contains("\"error\":\"x\""));
        assert!(!b.contains("SECRET") && !b.contains("C0DE"));
        assert_eq!(
            redact_body("<html>secret</html>"),
            "[non-JSON body omitted]"
        );
    }

    #[test]
    fn v1_authorize_url_matches_the_seed_script() {
        let c = EntraClient::with_http(
            super::super::http::client(StdDuration::from_secs(5)).expect("client"),
            Url::parse("https://login.microsoftonline.com").expect("url"),
            "app".into(),
            ClientSecret::new("s".into()),
        );
        let t = TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid");
        let u = c.authorize_url_v1(
            &t,
            "https://SiemMsspConnector",
            "https://graph.windows.net",
            "st",
        );
        assert_eq!(
            u.as_str(),
            "https://login.microsoftonline.com/11111111-1111-4111-8111-111111111111/oauth2/authorize?prompt=select_account&response_type=code&client_id=app&redirect_uri=https%3A%2F%2FSiemMsspConnector&resource=https%3A%2F%2Fgraph.windows.net&state=st"
        );
        let v2 = c.authorize_url_v2(
            &t,
            "https://x/cb",
            &delegated_scope(AlertApi::Mde),
            "st",
            "verifier",
        );
        assert!(v2.as_str().contains("code_challenge_method=S256"));
        assert!(v2.as_str().contains("offline_access"));
    }

    #[test]
    fn expires_in_is_read_as_string_or_number() {
        let v1: RawToken =
            serde_json::from_str(r#"{"access_token":"a","expires_in":"3599"}"#).expect("v1");
        let v2: RawToken =
            serde_json::from_str(r#"{"access_token":"a","expires_in":3599}"#).expect("v2");
        assert_eq!(v1.expires_in.value(), Some(3599));
        assert_eq!(v2.expires_in.value(), Some(3599));
    }
}
