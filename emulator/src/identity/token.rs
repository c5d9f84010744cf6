//! The token endpoints, v1 `POST /{tenant}/oauth2/token` and v2 `POST /{tenant}/oauth2/v2.0/token`
//! (reference §4.4–§4.10, §6 items 1–8, 10): authorization code (with PKCE), refresh token and
//! client credentials grants; client authentication by form fields or HTTP Basic; Microsoft's
//! error bodies; access tokens as JWTs with `tid`, `iss`, `aud`, `roles`/`scp`, `appid`/`azp`.
//!
//! v1 answers carry the numbers as strings (`"expires_in": "3599"`), v2 as integers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::errors::{self, AadError};
use super::scopes::{ResourceScopes, ScopeError, ScopeRequest};
use super::{
    Params, TenantPath, Version, iso7, pairwise_sub, random_b64, resource_uri,
    service_principal_oid, tenant_segment, timespan_days,
};
use crate::EmuState;
use crate::faults::{self, Fault, FaultKind, FaultTarget};
use crate::jwt::{self, Claims};
use crate::scenario::Api;
use crate::wire::json_response;
use crate::world::{App, Endpoint as Counted, Grant, World};

/// A refresh token. Each tracks its own last use; using one issues a new one and leaves the old
/// one valid (reference §4.6).
#[derive(Debug, Clone)]
pub(super) struct RefreshToken {
    client_id: String,
    /// The chain it continues.
    chain: Chain,
    /// When this token was issued.
    issued: DateTime<Utc>,
    /// Last redemption of this token (its issue time until then).
    last_used: DateTime<Utc>,
    /// Whether it was redeemed (refused again when refresh tokens are single use).
    redeemed: bool,
    /// The resource of the last access token of the chain: the default target.
    resource: Target,
}

/// The resource an access token is for, and its App ID URI as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    api: Api,
    uri: String,
}

impl From<&ResourceScopes> for Target {
    fn from(r: &ResourceScopes) -> Self {
        Target {
            api: r.api,
            uri: r.uri.clone(),
        }
    }
}

/// The grant types the endpoints serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    fn parse(s: &str) -> Option<GrantType> {
        match s {
            "authorization_code" => Some(GrantType::AuthorizationCode),
            "refresh_token" => Some(GrantType::RefreshToken),
            "client_credentials" => Some(GrantType::ClientCredentials),
            _ => None,
        }
    }
}

/// A body standing in for a token answer when a fault cuts it short.
const CUT_BODY: &[u8] = br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiIsImtpZCI6ImVtdWxhdG9yIn0.eyJhdWQiOiJodHRwczovL2dyYXBoLm1pY3Jvc29mdC5jb20ifQ.c2lnbmF0dXJl"}"#;

/// The handler of the token endpoint of `version`: `POST` serves, `GET` is refused.
pub(super) fn handler(version: Version) -> MethodRouter<Arc<EmuState>> {
    post(
        move |State(state): State<Arc<EmuState>>,
              tenant: Result<Path<String>, PathRejection>,
              headers: HeaderMap,
              body: Bytes| token(state, version, tenant_segment(tenant), headers, body),
    )
    .get(not_post)
}

/// `GET` on a token endpoint (AADSTS900561).
async fn not_post(State(state): State<Arc<EmuState>>) -> Response {
    no_store(errors::post_only("GET").response(state.now()))
}

async fn token(
    state: Arc<EmuState>,
    version: Version,
    tenant: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let drawn = {
        let mut world = state.world();
        world.count_request("identity");
        let path = TenantPath::resolve(&world, &tenant);
        if let Some(p) = &path {
            world.count_tenant_request(p.counted_as(), Counted::Token);
        }
        world.faults.draw(
            FaultTarget::Identity,
            path.as_ref().and_then(TenantPath::id),
        )
    };
    if !drawn.delay.is_zero() {
        tokio::time::sleep(drawn.delay).await;
    }
    let now = state.now();
    if let Some(r) = drawn.fault.and_then(|f| fault_response(&f, now)) {
        return no_store(r);
    }
    let params = Params::parse(&body);
    let result = {
        let mut world = state.world();
        let req = TokenRequest {
            state: &state,
            version,
            tenant_name: &tenant,
            params: &params,
            headers: &headers,
            now,
        };
        req.handle(&mut world)
    };
    no_store(match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => e.response(now),
    })
}

/// The answer an injected fault replaces the real one with; `None` for kinds that do not apply
/// to the token endpoint.
fn fault_response(f: &Fault, now: DateTime<Utc>) -> Option<Response> {
    match f.kind {
        FaultKind::Throttle => {
            let mut r = errors::throttled().response(now);
            let secs = f.retry_after.ceil().max(0.0) as u64;
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            Some(r)
        }
        FaultKind::ServerError => Some(errors::service_error(f.status).response(now)),
        FaultKind::Malformed => Some(faults::malformed(CUT_BODY)),
        FaultKind::Drop => Some(faults::dropped(CUT_BODY)),
        FaultKind::Latency | FaultKind::Partial => None,
    }
}

/// Token answers are never cached.
fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// Decodes `application/x-www-form-urlencoded` text (RFC 6749 §2.3.1 encodes Basic credentials
/// so); invalid escapes are kept literally.
fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`; `None` when absent or unreadable.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Whether `secret` authenticates `app` now: a match with an unexpired secret; AADSTS7000222 when
/// only expired ones match, AADSTS7000215 when none. Apps without secrets are public clients and
/// need none, except for client credentials.
fn authenticate(
    app: &App,
    secret: Option<&str>,
    confidential_flow: bool,
    now: DateTime<Utc>,
) -> Result<(), AadError> {
    if app.secrets.is_empty() && !confidential_flow {
        return Ok(());
    }
    let secret = secret.ok_or_else(errors::missing_secret)?;
    let mut matched = app.secrets.iter().filter(|(v, _)| v == secret).peekable();
    if matched.peek().is_none() {
        return Err(errors::wrong_secret(&app.client_id));
    }
    if matched.any(|(_, exp)| exp.is_none_or(|e| e > now)) {
        Ok(())
    } else {
        Err(errors::expired_secret(&app.client_id))
    }
}

/// The grant (authorization code or refresh token) `value` names among `grants`, if it was issued
/// to `app`: AADSTS9002313 when unknown, AADSTS70000 when another client's.
fn own_grant<T: Clone>(
    grants: &HashMap<String, T>,
    value: &str,
    app: &App,
    client_of: impl Fn(&T) -> &String,
) -> Result<T, AadError> {
    let grant = grants.get(value).ok_or_else(errors::malformed_grant)?;
    if *client_of(grant) != app.client_id {
        return Err(errors::grant_of_other_client());
    }
    Ok(grant.clone())
}

/// Who an access token is for.
struct Subject {
    oid: String,
    sub: String,
    upn: Option<String>,
    roles: Option<Vec<String>>,
    scp: Option<String>,
}

/// The user's side of a delegated token chain: who signed in where and when. An authorization
/// code starts a chain; every refresh token redeemed from it carries it on.
#[derive(Debug, Clone)]
pub(super) struct Chain {
    /// The user's home tenant.
    pub tenant_id: String,
    /// The signed-in user.
    pub user_oid: String,
    /// When the user signed in (accepted the sign-in page).
    pub auth_time: DateTime<Utc>,
    /// The user's revocation mark (`tokens_revoked_at`) at sign-in.
    pub revocation_seen: Option<DateTime<Utc>>,
    /// The chain asked for `offline_access` (always true for v1 chains).
    pub offline_access: bool,
}

impl Chain {
    /// The chain as a token request continues it: asking for `offline_access` now keeps it.
    fn continued(&self, asked_offline: bool) -> Chain {
        Chain {
            offline_access: self.offline_access || asked_offline,
            ..self.clone()
        }
    }
}

/// Whether revoking the user's tokens at `revoked` ends `chain` (AADSTS50173): the revocation
/// is not before the sign-in and was made after it. Comparing with the mark seen at sign-in
/// keeps a revocation at the very instant of sign-in (a frozen clock) effective, and a sign-in
/// right after a revocation valid.
fn revoked_since_sign_in(revoked: DateTime<Utc>, chain: &Chain) -> bool {
    revoked >= chain.auth_time && chain.revocation_seen != Some(revoked)
}

/// A token endpoint's success body, or the error it answers.
type Issued = Result<Value, AadError>;

/// One token request, with everything the grants need besides the world.
struct TokenRequest<'a> {
    state: &'a EmuState,
    version: Version,
    tenant_name: &'a str,
    params: &'a Params,
    headers: &'a HeaderMap,
    now: DateTime<Utc>,
}

impl TokenRequest<'_> {
    fn handle(&self, world: &mut World) -> Result<Value, AadError> {
        let p = self.params;
        if let Some(name) = p.duplicated() {
            return Err(errors::duplicated_param(name));
        }
        let tenant = TenantPath::resolve(world, self.tenant_name)
            .ok_or_else(|| errors::invalid_tenant(self.tenant_name))?;
        if self.version == Version::V2 && p.get("resource").is_some() {
            return Err(errors::resource_not_supported());
        }
        let grant_name = p
            .get("grant_type")
            .ok_or_else(|| errors::missing_param("grant_type"))?;
        let grant =
            GrantType::parse(grant_name).ok_or_else(|| errors::unsupported_grant(grant_name))?;
        let (client_id, secret) = self.client()?;
        let app = world
            .apps
            .get(&client_id)
            .ok_or_else(|| errors::unknown_app(&client_id, self.tenant_name))?;
        authenticate(
            app,
            secret.as_deref(),
            grant == GrantType::ClientCredentials,
            self.now,
        )?;
        let app = app.clone();
        match grant {
            GrantType::AuthorizationCode => self.redeem_code(world, &app, &tenant),
            GrantType::RefreshToken => self.refresh(world, &app, &tenant),
            GrantType::ClientCredentials => self.client_credentials(world, &app, &tenant),
        }
    }

    /// The client id and secret, from the form or HTTP Basic.
    fn client(&self) -> Result<(String, Option<String>), AadError> {
        let form_id = self.params.get("client_id");
        let form_secret = self.params.get("client_secret").map(str::to_string);
        match (basic_credentials(self.headers), form_id) {
            (Some((id, _)), Some(fid)) if id != fid => Err(errors::invalid_request(
                "The client_id in the Authorization header does not match the client_id in the \
                 request body.",
            )),
            (Some((id, secret)), _) => Ok((id, Some(secret).filter(|s| !s.is_empty()))),
            (None, Some(id)) => Ok((id.to_string(), form_secret)),
            (None, None) => Err(errors::missing_param("client_id")),
        }
    }

    /// `grant_type=authorization_code`.
    fn redeem_code(&self, world: &mut World, app: &App, tenant: &TenantPath) -> Issued {
        let p = self.params;
        let code_value = p.get("code").ok_or_else(|| errors::missing_param("code"))?;
        let code = own_grant(&world.identity.codes, code_value, app, |c| &c.client_id)?;
        if !tenant.admits(&code.chain.tenant_id) {
            return Err(errors::code_for_other_tenant());
        }
        if code.redeemed {
            return Err(errors::code_redeemed());
        }
        if self.now - code.chain.auth_time
            > Duration::seconds(world.settings.auth_code_lifetime_secs)
        {
            return Err(errors::code_expired());
        }
        match p.get("redirect_uri") {
            Some(u) if u != code.redirect_uri => {
                return Err(errors::redirect_differs(
                    u,
                    &code.redirect_uri,
                    &app.client_id,
                ));
            }
            None if code.redirect_uri_sent => return Err(errors::missing_param("redirect_uri")),
            _ => {}
        }
        if let Some(pkce) = &code.pkce
            && !p.get("code_verifier").is_some_and(|v| pkce.verifies(v))
        {
            return Err(errors::pkce_mismatch());
        }
        let authorized = code.resources.first().map(Target::from);
        let (target, asked_offline) = match self.version {
            Version::V1 => match (p.get("resource"), authorized) {
                (Some(given), authorized) => {
                    let t = self.v1_target(given)?;
                    if let Some(a) = authorized
                        && a.api != t.api
                    {
                        return Err(errors::resource_differs(given, &a.uri));
                    }
                    (t, false)
                }
                (None, Some(a)) => (a, false),
                (None, None) => return Err(errors::missing_param("resource")),
            },
            Version::V2 => {
                let (asked, offline) = self.v2_target()?;
                match asked.or(authorized) {
                    Some(t) => (t, offline),
                    None => return Err(errors::missing_param("scope")),
                }
            }
        };
        let body =
            self.issue_delegated(world, app, &code.chain.continued(asked_offline), target)?;
        if let Some(c) = world.identity.codes.get_mut(code_value) {
            c.redeemed = true;
        }
        Ok(body)
    }

    /// `grant_type=refresh_token`.
    fn refresh(&self, world: &mut World, app: &App, tenant: &TenantPath) -> Issued {
        let p = self.params;
        let value = p
            .get("refresh_token")
            .ok_or_else(|| errors::missing_param("refresh_token"))?;
        let rt = own_grant(&world.identity.refresh_tokens, value, app, |t| &t.client_id)?;
        if rt.redeemed && world.settings.refresh_token_single_use {
            return Err(errors::grant_expired_or_revoked());
        }
        let max_days = world.settings.refresh_token_max_inactive_days;
        if self.now - rt.last_used > Duration::days(max_days) {
            return Err(errors::refresh_inactive(
                &iso7(rt.issued),
                &timespan_days(max_days),
            ));
        }
        if let Some(id) = tenant.id()
            && id != rt.chain.tenant_id
        {
            // Refresh tokens work in any tenant where the user has an account; emulated users
            // have one only in their home tenant.
            let upn = world
                .tenants
                .get(&rt.chain.tenant_id)
                .and_then(|t| t.users.iter().find(|u| u.oid == rt.chain.user_oid))
                .map(|u| u.upn.clone())
                .unwrap_or_default();
            let name = world
                .tenants
                .get(id)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            return Err(errors::user_not_in_tenant(
                &upn,
                &rt.chain.tenant_id,
                &name,
                &app.client_id,
                &app.name,
            ));
        }
        let (target, asked_offline) = match self.version {
            Version::V1 => match p.get("resource") {
                Some(r) => (self.v1_target(r)?, false),
                None => (rt.resource.clone(), false),
            },
            Version::V2 => {
                let (asked, offline) = self.v2_target()?;
                (asked.unwrap_or_else(|| rt.resource.clone()), offline)
            }
        };
        let body = self.issue_delegated(world, app, &rt.chain.continued(asked_offline), target)?;
        if let Some(used) = world.identity.refresh_tokens.get_mut(value) {
            used.last_used = self.now;
            used.redeemed = true;
        }
        Ok(body)
    }

    /// `grant_type=client_credentials` (reference §4.8).
    fn client_credentials(&self, world: &mut World, app: &App, tenant: &TenantPath) -> Issued {
        let tenant_id = tenant
            .id()
            .ok_or_else(errors::client_credentials_over_alias)?;
        let target = match self.version {
            Version::V1 => {
                let r = self
                    .params
                    .get("resource")
                    .ok_or_else(|| errors::missing_param("resource"))?;
                self.v1_target(r)?
            }
            Version::V2 => {
                let scope = self
                    .params
                    .get("scope")
                    .ok_or_else(|| errors::missing_param("scope"))?;
                let req = self.parse_scope(scope)?;
                if req.resources.len() > 1 {
                    return Err(errors::scope_spans_resources(scope));
                }
                match req.resources.first() {
                    Some(r) if req.is_default_only() => Target::from(r),
                    _ => return Err(errors::invalid_scope(scope)),
                }
            }
        };
        let home = Grant::default();
        let grant = world
            .tenants
            .get(tenant_id)
            .and_then(|t| t.consents.get(&app.client_id))
            .or_else(|| {
                // The app's own service principal exists in its home tenant without consent.
                (app.home_tenant.as_deref() == Some(tenant_id)
                    && world.tenants.contains_key(tenant_id))
                .then_some(&home)
            })
            .ok_or_else(|| errors::unknown_app(&app.client_id, tenant_id))?;
        let roles = grant
            .app_roles
            .get(&target.api)
            .filter(|r| !r.is_empty())
            .map(|r| r.iter().cloned().collect());
        let oid = service_principal_oid(&app.client_id, tenant_id);
        let subject = Subject {
            sub: oid.clone(),
            oid,
            upn: None,
            roles,
            scp: None,
        };
        let (access_token, lifetime) =
            self.access_token(world, tenant_id, &app.client_id, target.api, subject);
        Ok(self.body(lifetime, &target, access_token, None, None, None))
    }

    /// A v1 `resource`, known to the emulator (else AADSTS500011).
    fn v1_target(&self, resource: &str) -> Result<Target, AadError> {
        ResourceScopes::v1(resource)
            .map(|r| Target::from(&r))
            .ok_or_else(|| errors::unknown_resource(resource, self.tenant_name))
    }

    /// The first resource of a v2 `scope`, if one is given, and whether it asks for
    /// `offline_access`.
    fn v2_target(&self) -> Result<(Option<Target>, bool), AadError> {
        match self.params.get("scope") {
            None => Ok((None, false)),
            Some(scope) => {
                let req = self.parse_scope(scope)?;
                Ok((
                    req.resources.first().map(Target::from),
                    req.offline_access(),
                ))
            }
        }
    }

    fn parse_scope(&self, scope: &str) -> Result<ScopeRequest, AadError> {
        ScopeRequest::parse(scope).map_err(|e| match e {
            ScopeError::UnknownResource(r) => errors::unknown_resource(&r, self.tenant_name),
            ScopeError::Invalid(_) => errors::invalid_scope(scope),
        })
    }

    /// Issues a user's tokens for `target`: the access token carries every delegated permission
    /// consented in the user's tenant for that resource (AADSTS65001 when none); a new refresh
    /// token (v1 always, v2 when the chain asked for `offline_access`); v1 adds an unsigned
    /// `id_token`.
    fn issue_delegated(
        &self,
        world: &mut World,
        app: &App,
        chain: &Chain,
        target: Target,
    ) -> Result<Value, AadError> {
        let tenant = world
            .tenants
            .get(&chain.tenant_id)
            .ok_or_else(errors::malformed_grant)?;
        let user = tenant
            .users
            .iter()
            .find(|u| u.oid == chain.user_oid)
            .ok_or_else(errors::malformed_grant)?
            .clone();
        if let Some(revoked) = user.tokens_revoked_at
            && revoked_since_sign_in(revoked, chain)
        {
            return Err(errors::grant_revoked(
                &iso7(chain.auth_time),
                &iso7(revoked),
            ));
        }
        let scopes: Vec<String> = tenant
            .consents
            .get(&app.client_id)
            .and_then(|g| g.delegated.get(&target.api))
            .map(|s| s.iter().cloned().collect())
            .filter(|s: &Vec<String>| !s.is_empty())
            .ok_or_else(|| errors::no_consent(&app.client_id, &app.name))?;
        let subject = Subject {
            oid: user.oid.clone(),
            sub: pairwise_sub(&user.oid, &app.client_id),
            upn: Some(user.upn.clone()),
            roles: None,
            scp: Some(scopes.join(" ")),
        };
        let (access_token, lifetime) =
            self.access_token(world, &chain.tenant_id, &app.client_id, target.api, subject);
        let refresh_token = (self.version == Version::V1 || chain.offline_access).then(|| {
            let value = format!("0.A{}", random_b64(&mut world.rng, 192));
            world.identity.refresh_tokens.insert(
                value.clone(),
                RefreshToken {
                    client_id: app.client_id.clone(),
                    chain: chain.clone(),
                    issued: self.now,
                    last_used: self.now,
                    redeemed: false,
                    resource: target.clone(),
                },
            );
            value
        });
        let scope = match self.version {
            Version::V1 => scopes.join(" "),
            Version::V2 => {
                let base = target.uri.trim_end_matches('/');
                scopes
                    .iter()
                    .map(|s| format!("{base}/{s}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let id_token = (self.version == Version::V1).then(|| {
            id_token_v1(
                &app.client_id,
                &issued_tid(world, &chain.tenant_id),
                &user.oid,
                &user.upn,
                &user.name,
                self.now,
                lifetime,
            )
        });
        Ok(self.body(
            lifetime,
            &target,
            access_token,
            refresh_token,
            Some(scope),
            id_token,
        ))
    }

    /// Signs an access token for `tenant_id`; returns it and its lifetime in seconds (random
    /// within the scenario's bounds, reference §4.9). The token's `tid` and `iss` name the
    /// tenant's `issue_tid` switch instead, when set.
    fn access_token(
        &self,
        world: &mut World,
        tenant_id: &str,
        client_id: &str,
        api: Api,
        subject: Subject,
    ) -> (String, i64) {
        let tenant_id = &issued_tid(world, tenant_id);
        let (lo, hi) = (
            world.settings.access_token_min_secs,
            world.settings.access_token_max_secs,
        );
        let lifetime = world.rng.random_range(lo.min(hi)..=hi.max(lo)).max(1);
        let iat = self.now.timestamp();
        let (iss, appid, azp, ver) = match self.version {
            Version::V1 => (
                format!("https://sts.windows.net/{tenant_id}/"),
                Some(client_id.to_string()),
                None,
                "1.0",
            ),
            Version::V2 => (
                format!(
                    "{}/{tenant_id}/v2.0",
                    self.state.urls.authority.as_str().trim_end_matches('/')
                ),
                None,
                Some(client_id.to_string()),
                "2.0",
            ),
        };
        let claims = Claims {
            aud: resource_uri(api).to_string(),
            iss,
            tid: tenant_id.to_string(),
            appid,
            azp,
            roles: subject.roles,
            scp: subject.scp,
            iat,
            nbf: iat,
            exp: iat + lifetime,
            ver: ver.to_string(),
            oid: subject.oid,
            sub: subject.sub,
            upn: subject.upn,
            uti: random_b64(&mut world.rng, 16),
        };
        (jwt::sign(&self.state.signing_key, &claims), lifetime)
    }

    /// The success body: v1 with string numbers, `not_before`, `expires_on` and `resource`; v2
    /// with integers.
    fn body(
        &self,
        lifetime: i64,
        target: &Target,
        access_token: String,
        refresh_token: Option<String>,
        scope: Option<String>,
        id_token: Option<String>,
    ) -> Value {
        let mut m = Map::new();
        m.insert("token_type".into(), json!("Bearer"));
        match self.version {
            Version::V1 => {
                let now = self.now.timestamp();
                m.insert("expires_in".into(), json!(lifetime.to_string()));
                m.insert("ext_expires_in".into(), json!(lifetime.to_string()));
                m.insert("expires_on".into(), json!((now + lifetime).to_string()));
                m.insert("not_before".into(), json!(now.to_string()));
                m.insert("resource".into(), json!(target.uri));
            }
            Version::V2 => {
                m.insert("expires_in".into(), json!(lifetime));
                m.insert("ext_expires_in".into(), json!(lifetime));
            }
        }
        if let Some(s) = scope {
            m.insert("scope".into(), json!(s));
        }
        m.insert("access_token".into(), json!(access_token));
        if let Some(r) = refresh_token {
            m.insert("refresh_token".into(), json!(r));
        }
        if let Some(i) = id_token {
            m.insert("id_token".into(), json!(i));
        }
        Value::Object(m)
    }
}

/// The `tid` written into tokens minted for `tenant_id`: its `issue_tid` switch (a misconfigured
/// proxy or a guest setup answering with another tenant's tokens), else the tenant itself.
fn issued_tid(world: &World, tenant_id: &str) -> String {
    world
        .tenants
        .get(tenant_id)
        .and_then(|t| t.switches.issue_tid.clone())
        .unwrap_or_else(|| tenant_id.to_string())
}

/// The v1 `id_token`: unsigned (`alg: none`, empty signature), reference §4.4.
fn id_token_v1(
    client_id: &str,
    tenant_id: &str,
    oid: &str,
    upn: &str,
    name: &str,
    now: DateTime<Utc>,
    lifetime: i64,
) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"none"}"#);
    let iat = now.timestamp();
    let claims = json!({
        "aud": client_id,
        "iss": format!("https://sts.windows.net/{tenant_id}/"),
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "amr": ["pwd"],
        "name": name,
        "oid": oid,
        "sub": pairwise_sub(oid, client_id),
        "tid": tenant_id,
        "unique_name": upn,
        "upn": upn,
        "ver": "1.0",
    });
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    format!("{header}.{payload}.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::PermissionSpec;

    fn app(secrets: Vec<(&str, Option<DateTime<Utc>>)>) -> App {
        App {
            client_id: "c".into(),
            name: "n".into(),
            secrets: secrets
                .into_iter()
                .map(|(v, e)| (v.to_string(), e))
                .collect(),
            redirect_uris: vec![],
            permissions: PermissionSpec::default(),
            home_tenant: None,
        }
    }

    #[test]
    fn secrets_authenticate_unless_wrong_or_only_expired() {
        let now = Utc::now();
        let past = Some(now - Duration::days(1));
        let future = Some(now + Duration::days(1));
        let a = app(vec![
            ("old", past),
            ("cur", future),
            ("dup", past),
            ("dup", None),
        ]);
        assert_eq!(authenticate(&a, Some("cur"), false, now), Ok(()));
        assert_eq!(authenticate(&a, Some("dup"), false, now), Ok(()));
        assert_eq!(
            authenticate(&a, Some("old"), false, now).map_err(|e| e.code),
            Err(7000222)
        );
        assert_eq!(
            authenticate(&a, Some("nope"), false, now).map_err(|e| e.code),
            Err(7000215)
        );
        assert_eq!(
            authenticate(&a, None, false, now).map_err(|e| e.code),
            Err(7000218)
        );
        let public = app(vec![]);
        assert_eq!(authenticate(&public, None, false, now), Ok(()));
        assert_eq!(
            authenticate(&public, None, true, now).map_err(|e| e.code),
            Err(7000218)
        );
    }

    #[test]
    fn a_revocation_ends_chains_signed_in_before_it_even_at_the_same_instant() {
        let t0 = Utc::now();
        let chain = |seen: Option<DateTime<Utc>>| Chain {
            tenant_id: "t".into(),
            user_oid: "o".into(),
            auth_time: t0,
            revocation_seen: seen,
            offline_access: true,
        };
        assert!(revoked_since_sign_in(t0, &chain(None)));
        assert!(revoked_since_sign_in(
            t0 + Duration::minutes(1),
            &chain(None)
        ));
        assert!(!revoked_since_sign_in(
            t0 - Duration::minutes(1),
            &chain(None)
        ));
        // Signed in at the instant of the revocation, after it.
        assert!(!revoked_since_sign_in(t0, &chain(Some(t0))));
        // Revoked again later.
        assert!(revoked_since_sign_in(
            t0 + Duration::seconds(1),
            &chain(Some(t0))
        ));
    }

    #[test]
    fn injected_faults_answer_like_the_token_endpoint() {
        let now = Utc::now();
        let fault = |kind, status| Fault {
            kind,
            retry_after: 0.2,
            status,
        };
        let r = fault_response(&fault(FaultKind::Throttle, StatusCode::OK), now).expect("some");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = fault_response(
            &fault(FaultKind::ServerError, StatusCode::SERVICE_UNAVAILABLE),
            now,
        )
        .expect("some");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(fault_response(&fault(FaultKind::Latency, StatusCode::OK), now).is_none());
        assert!(fault_response(&fault(FaultKind::Partial, StatusCode::OK), now).is_none());
        let r = fault_response(&fault(FaultKind::Malformed, StatusCode::OK), now).expect("some");
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let raw = STANDARD.encode("my%20app:s%3Acr+t");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {raw}")).expect("ascii"),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("my app".into(), "s:cr t".into()))
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&h), None);
    }

    #[test]
    fn form_decoding_keeps_invalid_escapes() {
        assert_eq!(form_decode("a%2Bb+c"), "a+b c");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz%4"), "%zz%4");
        assert_eq!(form_decode("%C3%A9"), "é");
    }

    #[test]
    fn the_v1_id_token_is_unsigned() {
        let t = id_token_v1("c", "t", "o", "u@x", "U", Utc::now(), 60);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "");
        let header = URL_SAFE_NO_PAD.decode(parts[0]).expect("b64");
        assert_eq!(header, br#"{"typ":"JWT","alg":"none"}"#);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["aud"], "c");
        assert_eq!(claims["upn"], "u@x");
    }
}
