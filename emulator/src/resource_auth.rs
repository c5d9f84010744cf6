//! What every resource API checks before serving data: a bearer access token signed by the
//! emulator, valid now on the emulated clock, issued for this API's audience, by a tenant the
//! emulator knows, with the API's permission (reference §2.2, §3.1, §1.8, §6 items 5, 13, 22, 28).
//!
//! A token carries no choice of tenant beyond its `tid`: every API serves the `tid` tenant's data
//! and nothing else (tenant isolation, §6 item 13).
//!
//! | API | 401 (token unusable) | 403 (token lacks permission) |
//! |---|---|---|
//! | Graph | `InvalidAuthenticationToken` | `Forbidden`, "Missing application roles…" (§3.5) |
//! | MDE | `Unauthorized` (§2.6) | `Forbidden` (§2.6) |
//! | SIEM | empty body (undocumented, §1.7) | empty body; the app must be authorized in the tenant's SIEM › MSSP tab (§1.8) |
//!
//! Every 401 carries `WWW-Authenticate: Bearer …` (RFC 6750 §3).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::EmuState;
use crate::faults::{Fault, FaultKind, FaultTarget};
use crate::jwt::{self, Claims, JwtError};
use crate::scenario::Api;
use crate::throttle::Limit;
use crate::wire::{graph_error, mde_error};
use crate::world::Endpoint;

/// Graph permissions that allow listing alerts, application or delegated (§3.1).
pub const GRAPH_PERMISSIONS: &[&str] = &["SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"];
/// Defender for Endpoint application permissions that allow listing alerts (§2.2).
pub const MDE_APP_ROLES: &[&str] = &["Alert.Read.All", "Alert.ReadWrite.All"];
/// Defender for Endpoint delegated permissions that allow listing alerts (§2.2).
pub const MDE_SCOPES: &[&str] = &["Alert.Read", "Alert.ReadWrite"];

/// An authenticated and authorized caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant whose data the caller may read (the token's `tid`, as the world spells it).
    pub tenant_id: String,
    /// The calling app (`appid` or `azp`).
    pub client_id: String,
    /// The verified claims.
    pub claims: Claims,
}

/// Why a request was refused before any data was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No `Authorization: Bearer …` header.
    #[error("no bearer token")]
    Missing,
    /// The token is not a JWT.
    #[error("the token is malformed")]
    Malformed,
    /// The signature does not verify.
    #[error("the token signature is invalid")]
    BadSignature,
    /// `exp` has passed or `nbf` lies ahead on the emulated clock.
    #[error("the token has expired or is not yet valid")]
    Lifetime,
    /// `aud` is not one of the API's audiences.
    #[error("the token was issued for another audience")]
    Audience,
    /// `tid` names no tenant of the emulated world.
    #[error("the token's tenant is unknown")]
    UnknownTenant,
    /// The token holds none of the API's permissions.
    #[error("the token lacks the API's permissions")]
    MissingPermission {
        /// A user token (`scp`) rather than an app token (`roles`).
        delegated: bool,
        /// What the token holds: roles comma-joined, or the `scp` string.
        held: String,
    },
    /// The app is not authorized for the SIEM API in the tenant's Defender portal.
    #[error("the app is not authorized for the SIEM API in this tenant")]
    SiemAppNotAuthorized,
}

impl AuthFailure {
    /// 401 for an unusable token, 403 for a usable one without permission.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthFailure::MissingPermission { .. } | AuthFailure::SiemAppNotAuthorized => {
                StatusCode::FORBIDDEN
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The answer `api` gives.
    pub fn respond(&self, api: Api, now: DateTime<Utc>) -> Response {
        let status = self.status();
        let mut response = match api {
            Api::Graph => {
                let code = if status == StatusCode::FORBIDDEN {
                    "Forbidden"
                } else {
                    "InvalidAuthenticationToken"
                };
                graph_error(status, code, &self.graph_message(), now)
            }
            Api::Mde => {
                let code = if status == StatusCode::FORBIDDEN {
                    "Forbidden"
                } else {
                    "Unauthorized"
                };
                mde_error(status, code, &self.mde_message())
            }
            Api::Siem => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = status;
                r
            }
        };
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if *self == AuthFailure::Missing {
                "Bearer"
            } else {
                "Bearer error=\"invalid_token\""
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }

    fn graph_message(&self) -> String {
        match self {
            AuthFailure::Missing => "Access token is empty.".into(),
            AuthFailure::Malformed => {
                "CompactToken parsing failed with error code: 80049217".into()
            }
            AuthFailure::BadSignature => "Access token validation failure.".into(),
            AuthFailure::Lifetime => "Access token has expired or is not yet valid.".into(),
            AuthFailure::Audience => "Access token validation failure. Invalid audience.".into(),
            AuthFailure::UnknownTenant => "Access token validation failure. Invalid issuer.".into(),
            AuthFailure::MissingPermission {
                delegated: false,
                held,
            } => format!(
                "Missing application roles. API required roles: {}, application roles: {held}.",
                GRAPH_PERMISSIONS.join(",")
            ),
            AuthFailure::MissingPermission {
                delegated: true,
                held,
            } => format!(
                "Missing scope permissions on the request. API requires one of '{}'. Scopes on the request '{held}'",
                GRAPH_PERMISSIONS.join(", ")
            ),
            AuthFailure::SiemAppNotAuthorized => "Forbidden".into(),
        }
    }

    fn mde_message(&self) -> String {
        match self {
            AuthFailure::MissingPermission { .. } | AuthFailure::SiemAppNotAuthorized => {
                // §2.6: "Forbidden (valid token but insufficient permission for the action)."
                "The application does not have any of the required application roles (Alert.Read.All, Alert.ReadWrite.All) or scopes (Alert.Read, Alert.ReadWrite) to perform the action.".into()
            }
            other => format!("Unauthorized: {other}."),
        }
    }
}

/// The bearer token of a request.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthFailure::Missing)?
        .to_str()
        .map_err(|_| AuthFailure::Malformed)?
        .trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthFailure::Missing);
    }
    Ok(token.trim())
}

/// The claims of the request's token if it was signed by this emulator (nothing else checked).
pub fn signed_claims(state: &EmuState, headers: &HeaderMap) -> Result<Claims, AuthFailure> {
    let token = bearer_token(headers)?;
    jwt::verify(&state.signing_key, token).map_err(|e| match e {
        JwtError::Malformed => AuthFailure::Malformed,
        JwtError::BadSignature => AuthFailure::BadSignature,
    })
}

fn holds_any(claims: &Claims, roles: &[&str], scopes: &[&str]) -> bool {
    let role_ok = claims
        .roles
        .iter()
        .flatten()
        .any(|r| roles.contains(&r.as_str()));
    let scope_ok = claims
        .scp
        .iter()
        .flat_map(|s| s.split_whitespace())
        .any(|s| scopes.contains(&s));
    role_ok || scope_ok
}

fn check_permission(api: Api, claims: &Claims) -> Result<(), AuthFailure> {
    let ok = match api {
        Api::Graph => holds_any(claims, GRAPH_PERMISSIONS, GRAPH_PERMISSIONS),
        Api::Mde => holds_any(claims, MDE_APP_ROLES, MDE_SCOPES),
        // The SIEM API authorizes apps per tenant instead (checked by the caller).
        Api::Siem => true,
    };
    if ok {
        return Ok(());
    }
    Err(match &claims.scp {
        Some(scp) => AuthFailure::MissingPermission {
            delegated: true,
            held: scp.clone(),
        },
        None => AuthFailure::MissingPermission {
            delegated: false,
            held: claims.roles.clone().unwrap_or_default().join(","),
        },
    })
}

/// Authenticates and authorizes a request to `api` at emulated time `now`.
pub fn authorize(
    state: &EmuState,
    headers: &HeaderMap,
    api: Api,
    now: DateTime<Utc>,
) -> Result<Caller, AuthFailure> {
    let claims = signed_claims(state, headers)?;
    // The tenant the token names, counted whatever the answer.
    let tenant = {
        let mut world = state.world();
        let tenant = world.tenant_by_id(&claims.tid).map(|t| {
            let allowed = t
                .siem_apps
                .iter()
                .any(|a| a.eq_ignore_ascii_case(claims.client_id()));
            (t.id.clone(), allowed)
        });
        if let Some((id, _)) = &tenant {
            world.count_tenant_request(id, Endpoint::Alerts(api));
        }
        tenant
    };
    let t = now.timestamp();
    if claims.exp <= t || claims.nbf > t {
        return Err(AuthFailure::Lifetime);
    }
    if !api
        .audiences()
        .iter()
        .any(|a| a.eq_ignore_ascii_case(claims.aud.trim_end_matches('/')))
    {
        return Err(AuthFailure::Audience);
    }
    let (tenant_id, siem_allowed) = tenant.ok_or(AuthFailure::UnknownTenant)?;
    check_permission(api, &claims)?;
    if api == Api::Siem && !siem_allowed {
        return Err(AuthFailure::SiemAppNotAuthorized);
    }
    Ok(Caller {
        tenant_id,
        client_id: claims.client_id().to_string(),
        claims,
    })
}

/// A request that may be served: who asks, when (emulated, after any injected latency), and
/// the fault that will spoil its answer (malformed, dropped or partial), if any.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The caller.
    pub caller: Caller,
    /// Emulated time of the answer.
    pub now: DateTime<Utc>,
    /// A fault that needs the real answer first (`malformed`, `drop`, `partial`).
    pub fault: Option<Fault>,
}

impl Admitted {
    /// The kind of the fault that will spoil the answer, if any.
    pub fn fault_kind(&self) -> Option<FaultKind> {
        self.fault.as_ref().map(|f| f.kind)
    }

    /// What serving needs: the caller's tenant, the time of the answer and the kind of the fault
    /// that will spoil it.
    pub fn into_parts(self) -> (String, DateTime<Utc>, Option<FaultKind>) {
        let kind = self.fault_kind();
        (self.caller.tenant_id, self.now, kind)
    }
}

/// Why a request is answered without data.
#[derive(Debug, Clone)]
pub enum Stop {
    /// The token was refused.
    Auth(AuthFailure),
    /// An injected fault replaces the answer (`throttle`, `server_error`).
    Fault {
        /// The caller's tenant.
        tenant_id: String,
        /// The fault.
        fault: Fault,
    },
    /// The caller's request budget is spent; room appears after `wait` (real time).
    Throttled {
        /// The caller's tenant.
        tenant_id: String,
        /// Time until a request would be admitted.
        wait: std::time::Duration,
    },
}

/// Runs the steps every alert API takes before reading data, in order: count the request,
/// authenticate and authorize (§6 items 13, 22), draw injected faults and sleep any injected
/// latency (without holding the world lock), then charge the caller's request budget (refused
/// requests are not charged).
pub async fn admit(state: &EmuState, headers: &HeaderMap, api: Api) -> Result<Admitted, Stop> {
    state.world().count_request(api.name());
    let caller = authorize(state, headers, api, state.now()).map_err(Stop::Auth)?;
    let target = match api {
        Api::Graph => FaultTarget::Graph,
        Api::Mde => FaultTarget::Mde,
        Api::Siem => FaultTarget::Siem,
    };
    let drawn = state
        .world()
        .faults
        .draw(target, Some(caller.tenant_id.as_str()));
    if !drawn.delay.is_zero() {
        tokio::time::sleep(drawn.delay).await;
    }
    if let Some(fault) = &drawn.fault
        && matches!(fault.kind, FaultKind::Throttle | FaultKind::ServerError)
    {
        return Err(Stop::Fault {
            tenant_id: caller.tenant_id,
            fault: fault.clone(),
        });
    }
    {
        let mut world = state.world();
        let limits = Limit::for_api(api, &world.settings);
        if let Err(wait) = world.throttle.admit(
            &caller.client_id,
            &caller.tenant_id,
            api,
            &limits,
            std::time::Instant::now(),
        ) {
            return Err(Stop::Throttled {
                tenant_id: caller.tenant_id,
                wait,
            });
        }
    }
    Ok(Admitted {
        caller,
        now: state.now(),
        fault: drawn.fault,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(roles: Option<&[&str]>, scp: Option<&str>) -> Claims {
        Claims {
            roles: roles.map(|r| r.iter().map(|s| s.to_string()).collect()),
            scp: scp.map(str::to_string),
            ..Claims::default()
        }
    }

    #[test]
    fn graph_accepts_the_alert_permission_as_role_or_scope() {
        assert!(
            check_permission(Api::Graph, &claims(Some(&["SecurityAlert.Read.All"]), None)).is_ok()
        );
        assert!(
            check_permission(
                Api::Graph,
                &claims(None, Some("User.Read SecurityAlert.ReadWrite.All"))
            )
            .is_ok()
        );
        assert_eq!(
            check_permission(Api::Graph, &claims(Some(&["A", "B"]), None)),
            Err(AuthFailure::MissingPermission {
                delegated: false,
                held: "A,B".into()
            })
        );
    }

    #[test]
    fn mde_needs_alert_roles_or_alert_scopes() {
        assert!(check_permission(Api::Mde, &claims(Some(&["Alert.Read.All"]), None)).is_ok());
        assert!(check_permission(Api::Mde, &claims(None, Some("Alert.Read"))).is_ok());
        // The application role name is not a delegated scope.
        assert!(check_permission(Api::Mde, &claims(None, Some("Alert.Read.All"))).is_err());
        assert!(check_permission(Api::Mde, &claims(None, None)).is_err());
    }

    #[test]
    fn the_graph_403_message_names_required_and_held_roles() {
        let f = AuthFailure::MissingPermission {
            delegated: false,
            held: String::new(),
        };
        assert_eq!(
            f.graph_message(),
            "Missing application roles. API required roles: SecurityAlert.Read.All,SecurityAlert.ReadWrite.All, application roles: ."
        );
    }

    #[test]
    fn only_bearer_headers_carry_a_token() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), Err(AuthFailure::Missing));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), Err(AuthFailure::Missing));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  x.y.z "),
        );
        assert_eq!(bearer_token(&h), Ok("x.y.z"));
    }
}
