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

/// A token-endpoint failure, shaped by what the caller does next (reference §4.10).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The grant no longer works (expired after 90 idle days, revoked, consent withdrawn,
    /// interaction required): the customer must consent again.
    #[error("the customer must consent again ({})", describe(.code, .error))]
    ReconsentRequired {
        /// First AADSTS code.
        code: Option<u32>,
        /// OAuth `error`.
        error: String,
        /// Raw body, secrets redacted.
        body: String,
    },
    /// The MSSP app itself is broken (wrong or expired client secret): affects every tenant.
    #[error("the app registration is misconfigured ({})", describe(.code, .error))]
    AppMisconfigured {
        /// First AADSTS code.
        code: Option<u32>,
        /// OAuth `error`.
        error: String,
        /// Raw body, secrets redacted.
        body: String,
    },
    /// The tenant is unknown or has not consented to the app.
    #[error("the tenant is unknown or has not consented to the app ({})", describe(.code, .error))]
    TenantNotConsented {
        /// First AADSTS code.
        code: Option<u32>,
        /// OAuth `error`.
        error: String,
        /// Raw body, secrets redacted.
        body: String,
    },
    /// The request was refused for another reason (bad or used code, bad scope): not retryable.
    #[error("the identity platform refused the request ({})", describe(.code, .error))]
    Rejected {
        /// First AADSTS code.
        code: Option<u32>,
        /// OAuth `error`.
        error: String,
        /// Raw body, secrets redacted.
        body: String,
    },
    /// Worth retrying: 5xx, 429, timeouts, dropped connections, unreadable answers.
    #[error("the identity platform is unavailable for now: {reason}")]
    Transient {
        /// What happened (no secret).
        reason: String,
        /// `Retry-After`, when the server gave one.
        retry_after: Option<StdDuration>,
        /// The transport error, if any.
        #[source]
        source: Option<reqwest::Error>,
    },
}

fn describe(code: &Option<u32>, error: &str) -> String {
    match code {
        Some(c) => format!("{error}, AADSTS{c}"),
        None => error.to_string(),
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
}

/// Codes meaning the user's grant is gone (reference §4.6, §4.10; DESIGN §6 Refresh).
const RECONSENT_CODES: &[u32] = &[
    70008, 700082, 700084, 50173, 65001, 70043, 50076, 50079, 53003, 50078, 700003,
];
/// Codes meaning the app's own credentials are wrong.
const APP_CODES: &[u32] = &[7000215, 7000222, 7000218, 7000112, 700027];
/// Codes meaning the tenant is unknown or never consented.
const TENANT_CODES: &[u32] = &[700016, 90002, 500011, 90099];

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
            reason: format!("token endpoint answered HTTP {status}"),
            retry_after,
            source: None,
        };
    }
    let code = codes.first().copied();
    let body = redact_body(body);
    let any = |set: &[u32]| codes.iter().any(|c| set.contains(c));
    if any(APP_CODES) || error == "invalid_client" {
        IdentityError::AppMisconfigured { code, error, body }
    } else if any(TENANT_CODES) || error == "invalid_tenant" {
        IdentityError::TenantNotConsented { code, error, body }
    } else if any(RECONSENT_CODES) || error == "interaction_required" || error == "consent_required"
    {
        IdentityError::ReconsentRequired { code, error, body }
    } else if error == "temporarily_unavailable" {
        IdentityError::Transient {
            reason: format!("token endpoint said temporarily_unavailable (HTTP {status})"),
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
    /// A client for `authority` (e.g. `https://login.microsoftonline.com`), never following
    /// redirects, with `timeout` on every request.
    pub fn new(
        authority: Url,
        client_id: String,
        client_secret: ClientSecret,
        timeout: StdDuration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(StdDuration::from_secs(10)))
            .build()?;
        Ok(EntraClient {
            http,
            authority,
            client_id,
            client_secret,
        })
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
        let resp =
            self.http
                .post(url)
                .form(&all)
                .send()
                .await
                .map_err(|e| IdentityError::Transient {
                    reason: "the token endpoint could not be reached".into(),
                    retry_after: None,
                    source: Some(e.without_url()),
                })?;
        let status = resp.status().as_u16();
        let retry_after = crate::microsoft::http::retry_after(resp.headers());
        let body = resp.text().await.map_err(|e| IdentityError::Transient {
            reason: "the token endpoint's answer was cut off".into(),
            retry_after: None,
            source: Some(e.without_url()),
        })?;
        if status != 200 {
            return Err(classify(status, &body, retry_after));
        }
        let raw: RawToken = serde_json::from_str(&body).map_err(|_| IdentityError::Transient {
            reason: "the token endpoint's answer is not a token response".into(),
            retry_after: None,
            source: None,
        })?;
        let secs = raw
            .expires_in
            .value()
            .ok_or_else(|| IdentityError::Transient {
                reason: "the token endpoint's expires_in is not a number".into(),
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
        let c = EntraClient::new(
            Url::parse("https://login.microsoftonline.com").expect("url"),
            "app".into(),
            ClientSecret::new("s".into()),
            StdDuration::from_secs(5),
        )
        .expect("client");
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
