//! The identity platform's errors, one constructor per AADSTS code, with Microsoft's messages
//! (reference §4.10 and the AADSTS catalogue it cites). The same value becomes a token-endpoint
//! JSON body ([`crate::wire::aad_error`]), an error redirect to the client, or the HTML error page.

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::wire;

/// One identity-platform error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AadError {
    /// HTTP status on the token endpoint (pages always answer 400).
    pub status: StatusCode,
    /// OAuth `error` value.
    pub error: &'static str,
    /// AADSTS code.
    pub code: u32,
    /// The message after `AADSTSnnnnn: `.
    pub message: String,
}

impl AadError {
    fn new(status: StatusCode, error: &'static str, code: u32, message: String) -> AadError {
        AadError {
            status,
            error,
            code,
            message,
        }
    }

    fn bad(error: &'static str, code: u32, message: String) -> AadError {
        AadError::new(StatusCode::BAD_REQUEST, error, code, message)
    }

    /// The token endpoint's JSON answer.
    pub fn response(&self, now: DateTime<Utc>) -> Response {
        wire::aad_error(self.status, self.error, &[self.code], &self.message, now)
    }

    /// `AADSTSnnnnn: message`.
    pub fn headline(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.message)
    }

    /// The headline followed by Entra's `\r\n` Trace ID / Correlation ID / Timestamp lines, as
    /// error redirects carry it.
    pub fn traced(&self, now: DateTime<Utc>) -> String {
        format!(
            "{}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.headline(),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            now.format("%Y-%m-%d %H:%M:%SZ")
        )
    }
}

/// AADSTS90002: the `{tenant}` segment names no tenant.
pub(super) fn invalid_tenant(name: &str) -> AadError {
    AadError::bad(
        "invalid_tenant",
        90002,
        format!(
            "Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are \
             signing into the correct cloud. Check with your subscription administrator, this may \
             happen if there are no active subscriptions for the tenant."
        ),
    )
}

/// AADSTS700016: no such app, or the app is unknown in that tenant (never consented).
pub(super) fn unknown_app(client_id: &str, directory: &str) -> AadError {
    AadError::bad(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory \
             '{directory}'. This can happen if the application has not been installed by the \
             administrator of the tenant or consented to by any user in the tenant. You may have \
             sent your authentication request to the wrong tenant."
        ),
    )
}

/// AADSTS900144: a required parameter is missing.
pub(super) fn missing_param(name: &str) -> AadError {
    AadError::bad(
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// AADSTS9000411: a parameter is given twice.
pub(super) fn duplicated_param(name: &str) -> AadError {
    AadError::bad(
        "invalid_request",
        9000411,
        format!("The request is not properly formatted. The parameter '{name}' is duplicated."),
    )
}

/// AADSTS90023: a request the endpoint cannot read.
pub(super) fn invalid_request(detail: &str) -> AadError {
    AadError::bad(
        "invalid_request",
        90023,
        format!("InvalidRequest - {detail}"),
    )
}

/// AADSTS900561: the token endpoint takes POST only.
pub(super) fn post_only(method: &str) -> AadError {
    AadError::bad(
        "invalid_request",
        900561,
        format!("The endpoint only accepts POST, OPTIONS requests. Received a {method} request."),
    )
}

/// AADSTS7000218: a confidential client sent no credential.
pub(super) fn missing_secret() -> AadError {
    AadError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or \
         'client_secret'."
            .into(),
    )
}

/// AADSTS7000215: the secret is not one of the app's.
pub(super) fn wrong_secret(client_id: &str) -> AadError {
    AadError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the \
             client secret value, not the client secret ID, for a secret added to app \
             '{client_id}'."
        ),
    )
}

/// AADSTS7000222: the secret matches only expired keys.
pub(super) fn expired_secret(client_id: &str) -> AadError {
    AadError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000222,
        format!(
            "The provided client secret keys for app '{client_id}' are expired. Visit the Azure \
             portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider \
             using certificate credentials for added security: https://aka.ms/certCreds."
        ),
    )
}

/// AADSTS901002: `resource=` on a v2 endpoint.
pub(super) fn resource_not_supported() -> AadError {
    AadError::bad(
        "invalid_request",
        901002,
        "The 'resource' request parameter isn't supported.".into(),
    )
}

/// AADSTS70003: a grant type the endpoint does not know.
pub(super) fn unsupported_grant(grant_type: &str) -> AadError {
    AadError::bad(
        "unsupported_grant_type",
        70003,
        format!("The app requested an unsupported grant type '{grant_type}'."),
    )
}

/// AADSTS9002313: a code or refresh token that was never issued.
pub(super) fn malformed_grant() -> AadError {
    AadError::bad(
        "invalid_grant",
        9002313,
        "Invalid request. Request is malformed or invalid.".into(),
    )
}

/// AADSTS54005: the code was redeemed before.
pub(super) fn code_redeemed() -> AadError {
    AadError::bad(
        "invalid_grant",
        54005,
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or \
         use an existing refresh token."
            .into(),
    )
}

/// AADSTS70008: the code is older than its lifetime.
pub(super) fn code_expired() -> AadError {
    AadError::bad(
        "invalid_grant",
        70008,
        "The provided authorization code or refresh token is expired. Send a new interactive \
         authorization request for this user and resource."
            .into(),
    )
}

/// AADSTS700005: the code belongs to another tenant than the path names.
pub(super) fn code_for_other_tenant() -> AadError {
    AadError::bad(
        "invalid_grant",
        700005,
        "Provided Authorization Code is intended to use against other tenant, thus rejected."
            .into(),
    )
}

/// AADSTS70000: a code or refresh token issued to another client.
pub(super) fn grant_of_other_client() -> AadError {
    AadError::bad(
        "invalid_grant",
        70000,
        "Provided grant is invalid or malformed.".into(),
    )
}

/// AADSTS70000: v1 `resource` at redemption differs from the authorize request's.
pub(super) fn resource_differs(given: &str, authorized: &str) -> AadError {
    AadError::bad(
        "invalid_grant",
        70000,
        format!(
            "Provided grant is invalid or malformed. The resource '{given}' does not match the \
             resource '{authorized}' of the authorization request."
        ),
    )
}

/// AADSTS50011 at the authorize endpoint: the redirect URI is not registered.
pub(super) fn redirect_not_registered(uri: &str, client_id: &str) -> AadError {
    AadError::bad(
        "invalid_request",
        50011,
        format!(
            "The redirect URI '{uri}' specified in the request does not match the redirect URIs \
             configured for the application '{client_id}'. Make sure the redirect URI sent in the \
             request matches one added to your application in the Azure portal. Navigate to \
             https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
        ),
    )
}

/// AADSTS50011 at the token endpoint: the redirect URI differs from the authorize request's.
pub(super) fn redirect_differs(given: &str, authorized: &str, client_id: &str) -> AadError {
    AadError::bad(
        "invalid_grant",
        50011,
        format!(
            "The redirect URI '{given}' specified in the request does not match the redirect URI \
             '{authorized}' used in the authorization request for the application '{client_id}'."
        ),
    )
}

/// AADSTS500113: the app has no redirect URI to answer to.
pub(super) fn no_reply_address() -> AadError {
    AadError::bad(
        "invalid_request",
        500113,
        "No reply address is registered for the application.".into(),
    )
}

/// AADSTS501481: PKCE verifier missing or not matching the challenge.
pub(super) fn pkce_mismatch() -> AadError {
    AadError::bad(
        "invalid_grant",
        501481,
        "The Code_Verifier does not match the code_challenge supplied in the authorization \
         request."
            .into(),
    )
}

/// AADSTS50173: the user's tokens were revoked after this grant was issued.
pub(super) fn grant_revoked(issued: &str, valid_from: &str) -> AadError {
    AadError::bad(
        "invalid_grant",
        50173,
        format!(
            "The provided grant has expired due to it being revoked, a fresh auth token is \
             needed. The user might have changed or reset their password. The grant was issued \
             on '{issued}' and the TokensValidFrom date (before which tokens are not valid) for \
             this user is '{valid_from}'."
        ),
    )
}

/// AADSTS70008: the grant expired or was revoked (a single-use refresh token used again).
pub(super) fn grant_expired_or_revoked() -> AadError {
    AadError::bad(
        "invalid_grant",
        70008,
        "The provided authorization code or refresh token has expired due to inactivity. Send a \
         new interactive authorization request for this user and resource."
            .into(),
    )
}

/// AADSTS700082: the refresh token was not used for MaxInactiveTime (reference §4.6).
pub(super) fn refresh_inactive(issued: &str, max_inactive: &str) -> AadError {
    AadError::bad(
        "invalid_grant",
        700082,
        format!(
            "The refresh token has expired due to inactivity. The token was issued on {issued} \
             and was inactive for {max_inactive}."
        ),
    )
}

/// AADSTS65001: no delegated consent for the resource in the user's tenant.
pub(super) fn no_consent(client_id: &str, app_name: &str) -> AadError {
    AadError::bad(
        "invalid_grant",
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID \
             '{client_id}' named '{app_name}'. Send an interactive authorization request for this \
             user and resource."
        ),
    )
}

/// AADSTS50020: the user has no account in the tenant the path names.
pub(super) fn user_not_in_tenant(
    upn: &str,
    home_tenant: &str,
    tenant: &str,
    client_id: &str,
    app_name: &str,
) -> AadError {
    AadError::bad(
        "invalid_grant",
        50020,
        format!(
            "User account '{upn}' from identity provider 'https://sts.windows.net/{home_tenant}/' \
             does not exist in tenant '{tenant}' and cannot access the application \
             '{client_id}'({app_name}) in that tenant. The account needs to be added as an \
             external user in the tenant first. Sign out and sign in again with a different Azure \
             Active Directory user account."
        ),
    )
}

/// AADSTS50034: the chosen account does not exist where the request asked.
pub(super) fn unknown_user(who: &str, directory: &str) -> AadError {
    AadError::bad(
        "invalid_request",
        50034,
        format!(
            "The user account {who} does not exist in the '{directory}' directory. To sign into \
             this application, the account must be added to the directory."
        ),
    )
}

/// AADSTS9001023: client credentials over `/common`, `/organizations` or `/consumers`.
pub(super) fn client_credentials_over_alias() -> AadError {
    AadError::bad(
        "invalid_request",
        9001023,
        "The grant type isn't supported over the /common or /consumers endpoints.".into(),
    )
}

/// AADSTS70011: a scope the flow does not accept.
pub(super) fn invalid_scope(scope: &str) -> AadError {
    AadError::bad(
        "invalid_scope",
        70011,
        format!(
            "The provided value for the input parameter 'scope' isn't valid. The scope {scope} \
             isn't valid."
        ),
    )
}

/// AADSTS700022: client-credentials scopes naming more than one resource.
pub(super) fn scope_spans_resources(scope: &str) -> AadError {
    AadError::bad(
        "invalid_scope",
        700022,
        format!(
            "The provided value for the input parameter scope is not valid because it contains \
             more than one resource. Scope {scope} is not valid."
        ),
    )
}

/// AADSTS500011: the resource has no service principal here.
pub(super) fn unknown_resource(resource: &str, tenant: &str) -> AadError {
    AadError::bad(
        "invalid_resource",
        500011,
        format!(
            "The resource principal named {resource} was not found in the tenant named {tenant}. \
             This can happen if the application has not been installed by the administrator of \
             the tenant or consented to by any user in the tenant. You might have sent your \
             authentication request to the wrong tenant."
        ),
    )
}

/// AADSTS90055: throttled.
pub(super) fn throttled() -> AadError {
    AadError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        90055,
        "TenantThrottlingError - There are too many incoming requests. This exception is thrown \
         for blocked tenants."
            .into(),
    )
}

/// AADSTS50000: the service failed (an injected 5xx).
pub(super) fn service_error(status: StatusCode) -> AadError {
    AadError::new(
        status,
        "temporarily_unavailable",
        50000,
        "There was an error issuing a token or an issue with our sign-in service. Please try \
         again."
            .into(),
    )
}

/// AADSTS70005: a `response_type` without `code`.
pub(super) fn unsupported_response_type(response_type: &str) -> AadError {
    AadError::bad(
        "unsupported_response_type",
        70005,
        format!("response_type '{response_type}' is not enabled for the application."),
    )
}

/// AADSTS50058: `prompt=none` without a signed-in session.
pub(super) fn login_required() -> AadError {
    AadError::bad(
        "login_required",
        50058,
        "A silent sign-in request was sent but no user is signed in.".into(),
    )
}

/// AADSTS65004: the user pressed Cancel on the consent page.
pub(super) fn user_declined() -> AadError {
    AadError::bad(
        "access_denied",
        65004,
        "User declined to consent to access the app.".into(),
    )
}

/// AADSTS65004 on the v2 admin-consent endpoint.
pub(super) fn admin_declined() -> AadError {
    AadError::bad(
        "consent_required",
        65004,
        "The resource owner or authorization server denied the request.".into(),
    )
}

/// AADSTS90094: a non-admin tried to grant admin consent.
pub(super) fn admin_required(error: &'static str) -> AadError {
    AadError::bad(error, 90094, "The grant requires admin permission.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traced_description_has_crlf_lines_and_a_space_separated_timestamp() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T10:20:30Z")
            .expect("valid")
            .with_timezone(&Utc);
        let d = admin_declined().traced(now);
        let lines: Vec<&str> = d.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "AADSTS65004: The resource owner or authorization server denied the request."
        );
        assert!(lines[1].starts_with("Trace ID: "));
        assert!(lines[2].starts_with("Correlation ID: "));
        assert_eq!(lines[3], "Timestamp: 2026-03-01 10:20:30Z");
    }

    #[test]
    fn credential_errors_are_401_and_grant_errors_400() {
        assert_eq!(wrong_secret("c").status, StatusCode::UNAUTHORIZED);
        assert_eq!(expired_secret("c").status, StatusCode::UNAUTHORIZED);
        assert_eq!(missing_secret().status, StatusCode::UNAUTHORIZED);
        assert_eq!(code_redeemed().status, StatusCode::BAD_REQUEST);
        assert_eq!(
            refresh_inactive("2020-02-26T21:52:54.2810613Z", "90.00:00:00").headline(),
            "AADSTS700082: The refresh token has expired due to inactivity. The token was issued \
             on 2020-02-26T21:52:54.2810613Z and was inactive for 90.00:00:00."
        );
    }
}
