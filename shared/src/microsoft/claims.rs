//! Checks on the claims of an access token right after the token endpoint issued it: the token is
//! for the tenant we bound in the consent state (`tid`), and it carries the permission the
//! tenant's alert API needs (`roles` for application tokens, `scp` for delegated ones).
//!
//! Reading the claims without verifying the signature is sound here: the token came straight from
//! the identity platform's token endpoint, over TLS, in answer to our own authenticated request, so
//! its origin is established by the channel, not by the signature. Microsoft asks clients to treat
//! access tokens as opaque for *authorization* (the resource verifies them); we only read them to
//! refuse a consent that would not work, and the resource still verifies every call. We never
//! accept a token from any other source.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::domain::{AlertApi, AuthModel, TenantId};
use crate::secret::AccessToken;

/// The claims we read.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct TokenClaims {
    /// Tenant the token is for.
    #[serde(default)]
    pub tid: String,
    /// Application permissions.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Delegated scopes, space separated.
    #[serde(default)]
    pub scp: Option<String>,
    /// The signed-in user (v1 `upn`, v2 `preferred_username`).
    #[serde(default)]
    pub upn: Option<String>,
    /// v2 user name.
    #[serde(default)]
    pub preferred_username: Option<String>,
    /// Expiry (Unix seconds).
    #[serde(default)]
    pub exp: Option<i64>,
}

impl TokenClaims {
    /// Granted permissions: the roles, else the scopes.
    pub fn granted(&self) -> Vec<String> {
        if !self.roles.is_empty() {
            return self.roles.clone();
        }
        self.scp
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// The user the token was issued to, if it is a user token.
    pub fn user(&self) -> Option<&str> {
        self.upn.as_deref().or(self.preferred_username.as_deref())
    }
}

/// A token that must not be used for the tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// Not a JWT we can read.
    #[error("the access token could not be read")]
    Unreadable,
    /// Issued for another tenant than the one being onboarded.
    #[error("the token was issued for another tenant than the one being onboarded")]
    WrongTenant,
    /// The needed permission was not granted.
    #[error("the consent did not grant {needed}, which the {api} alert API needs")]
    MissingPermission {
        /// The permission to grant.
        needed: &'static str,
        /// The API.
        api: AlertApi,
    },
}

/// Reads the claims of `token` (see the module docs for why no signature check).
pub fn read(token: &AccessToken) -> Result<TokenClaims, ClaimsError> {
    let payload = token
        .expose_secret()
        .split('.')
        .nth(1)
        .ok_or(ClaimsError::Unreadable)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| ClaimsError::Unreadable)?;
    serde_json::from_slice(&bytes).map_err(|_| ClaimsError::Unreadable)
}

/// Verifies that `token` is for `tenant` and carries a permission `api` accepts for `model`.
pub fn check(
    token: &AccessToken,
    tenant: &TenantId,
    api: AlertApi,
    model: AuthModel,
) -> Result<TokenClaims, ClaimsError> {
    let claims = read(token)?;
    if !claims.tid.eq_ignore_ascii_case(tenant.as_str()) {
        return Err(ClaimsError::WrongTenant);
    }
    let accepted = if model.is_delegated() {
        api.delegated_scopes()
    } else {
        api.app_roles()
    };
    let granted = claims.granted();
    let ok = accepted.is_empty() || granted.iter().any(|g| accepted.contains(&g.as_str()));
    if !ok {
        return Err(ClaimsError::MissingPermission {
            needed: api.needed_permission(model),
            api,
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: serde_json::Value) -> AccessToken {
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        AccessToken::new(format!("eyJhbGciOiJIUzI1NiJ9.{p}.sig"))
    }

    fn tid(s: &str) -> TenantId {
        TenantId::parse(s).expect("tid")
    }

    #[test]
    fn a_token_for_the_bound_tenant_with_the_role_passes() {
        let t = token(
            serde_json::json!({"tid": "11111111-1111-4111-8111-111111111111", "roles": ["SecurityAlert.Read.All"]}),
        );
        let c = check(
            &t,
            &tid("11111111-1111-4111-8111-111111111111"),
            AlertApi::Graph,
            AuthModel::Application,
        )
        .expect("passes");
        assert_eq!(c.granted(), vec!["SecurityAlert.Read.All".to_string()]);
    }

    #[test]
    fn another_tenant_or_a_missing_permission_is_refused() {
        let t = token(
            serde_json::json!({"tid": "22222222-2222-4222-8222-222222222222", "scp": "Alert.Read"}),
        );
        assert_eq!(
            check(
                &t,
                &tid("11111111-1111-4111-8111-111111111111"),
                AlertApi::Mde,
                AuthModel::DelegatedV2
            ),
            Err(ClaimsError::WrongTenant)
        );
        let t = token(
            serde_json::json!({"tid": "11111111-1111-4111-8111-111111111111", "scp": "User.Read"}),
        );
        let e = check(
            &t,
            &tid("11111111-1111-4111-8111-111111111111"),
            AlertApi::Mde,
            AuthModel::DelegatedV2,
        )
        .expect_err("refused");
        assert!(e.to_string().contains("Alert.Read"), "{e}");
        assert_eq!(
            read(&AccessToken::new("garbage".into())),
            Err(ClaimsError::Unreadable)
        );
    }
}
