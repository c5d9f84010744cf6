//! The interactive endpoints: v1/v2 authorize (sign-in and user consent, reference §4.2–§4.3) and
//! v1/v2 admin consent (§4.7), the page's `/_decide` form, and what accepting grants.
//!
//! A request is validated in Entra's order: what cannot be sent back to the app (unknown tenant,
//! unknown app, redirect URI not registered) gets the HTML error page and never a redirect;
//! everything after that is answered by redirecting to the app with `error` and
//! `error_description`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::errors::{self, AadError};
use super::pages::{self, ConsentView, UserOption};
use super::scopes::{self, Ask, ResourceScopes, ScopeError, ScopeRequest};
use super::token::Chain;
use super::{
    Params, TenantPath, Version, dotnet_url_encode, random_b64, random_guid, tenant_segment,
};
use crate::EmuState;
use crate::scenario::PermissionSpec;
use crate::world::{App, Endpoint as Counted, Tenant, User, World};

/// How long a sign-in page stays answerable.
const PENDING_LIFETIME_MINS: i64 = 60;

/// A PKCE challenge stored with a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pkce {
    challenge: String,
    s256: bool,
}

impl Pkce {
    /// Whether `verifier` answers the challenge: `BASE64URL(SHA256(verifier))` for S256, the
    /// verifier itself for `plain` (RFC 7636 §4.6).
    pub fn verifies(&self, verifier: &str) -> bool {
        if self.s256 {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == self.challenge
        } else {
            verifier == self.challenge
        }
    }
}

/// An authorization code: single use, short-lived, bound to its client, redirect URI and PKCE
/// challenge.
#[derive(Debug, Clone)]
pub(super) struct AuthCode {
    /// The app it was issued to.
    pub client_id: String,
    /// The chain it starts: the signed-in user, their home tenant, when they accepted (the
    /// code's issue time) and whether `offline_access` was asked for (v2 issues refresh tokens
    /// only then).
    pub chain: Chain,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
    /// Whether the authorize request named it (then the token request must repeat it).
    pub redirect_uri_sent: bool,
    /// What the authorize request asked for (v1: its `resource`, if any).
    pub resources: Vec<ResourceScopes>,
    /// The PKCE challenge, if any.
    pub pkce: Option<Pkce>,
    /// Redeemed already (AADSTS54005 on reuse).
    pub redeemed: bool,
}

/// How the answer travels back to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

impl ResponseMode {
    fn parse(mode: Option<&str>) -> ResponseMode {
        match mode {
            Some("fragment") => ResponseMode::Fragment,
            Some("form_post") => ResponseMode::FormPost,
            _ => ResponseMode::Query,
        }
    }
}

/// Where and how to answer the app.
#[derive(Debug, Clone)]
struct ReplyTo {
    uri: String,
    mode: ResponseMode,
    state: Option<String>,
}

impl ReplyTo {
    /// `params`, then `state` if the request had one.
    fn with(&self, mut params: Vec<(&'static str, String)>) -> Answer {
        if let Some(s) = &self.state {
            params.push(("state", s.clone()));
        }
        self.raw(params)
    }

    /// Exactly `params` (admin consent places `state` itself).
    fn raw(&self, params: Vec<(&'static str, String)>) -> Answer {
        Answer::Reply {
            uri: self.uri.clone(),
            mode: self.mode,
            params,
        }
    }

    /// The standard error redirect: `error`, `error_description`, `state`.
    fn error(&self, e: &AadError, description: String) -> Answer {
        self.with(vec![
            ("error", e.error.into()),
            ("error_description", description),
        ])
    }
}

/// A sign-in (authorize endpoint).
#[derive(Debug, Clone)]
struct SignIn {
    version: Version,
    /// v1: the `resource`, if any; v2: the resources of `scope`.
    resources: Vec<ResourceScopes>,
    offline_access: bool,
    pkce: Option<Pkce>,
    /// v1 `prompt=admin_consent`.
    admin_consent: bool,
    redirect_uri_sent: bool,
}

/// What a pending request is for.
#[derive(Debug, Clone)]
enum Flow {
    SignIn(SignIn),
    AdminConsent {
        version: Version,
        /// v2: the `scope` as given and its resources; v1: none (the whole registration).
        scope: Option<(String, Vec<ResourceScopes>)>,
    },
}

impl Flow {
    fn admin_only(&self) -> bool {
        match self {
            Flow::SignIn(s) => s.admin_consent,
            Flow::AdminConsent { .. } => true,
        }
    }

    /// What accepting grants.
    fn permissions(&self, app: &App) -> PermissionSpec {
        match self {
            Flow::SignIn(s) if s.version == Version::V1 && s.resources.is_empty() => {
                scopes::requested(app, Ask::Everything, s.admin_consent)
            }
            Flow::SignIn(s) if s.admin_consent => {
                // v1 admin consent through authorize covers the whole registration's roles.
                let mut spec = scopes::requested(app, Ask::Resources(&s.resources), false);
                spec.app_roles = scopes::requested(app, Ask::Everything, true).app_roles;
                spec
            }
            Flow::SignIn(s) => scopes::requested(app, Ask::Resources(&s.resources), false),
            Flow::AdminConsent { scope: None, .. } => scopes::requested(app, Ask::Everything, true),
            Flow::AdminConsent {
                scope: Some((_, rs)),
                ..
            } => scopes::requested(app, Ask::Resources(rs), true),
        }
    }
}

/// A sign-in waiting for the page's decision.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    created: DateTime<Utc>,
    client_id: String,
    /// The path's tenant, and its name as written (for messages).
    tenant: TenantPath,
    tenant_name: String,
    login_hint: Option<String>,
    reply: ReplyTo,
    flow: Flow,
}

/// What an interactive endpoint answers.
#[derive(Debug)]
enum Answer {
    /// The sign-in and consent page.
    Page(String),
    /// The error page (400): nothing can be sent back to the app.
    Failure(AadError),
    /// A redirect (or form post) to the app.
    Reply {
        uri: String,
        mode: ResponseMode,
        params: Vec<(&'static str, String)>,
    },
}

impl Answer {
    fn into_response(self, now: DateTime<Utc>) -> Response {
        match self {
            Answer::Page(html) => pages::html_response(StatusCode::OK, html),
            Answer::Failure(e) => {
                pages::html_response(StatusCode::BAD_REQUEST, pages::error(&e, now))
            }
            Answer::Reply { uri, mode, params } => {
                if mode == ResponseMode::FormPost {
                    return pages::html_response(StatusCode::OK, pages::form_post(&uri, &params));
                }
                let encoded = params
                    .iter()
                    .map(|(k, v)| format!("{k}={}", dotnet_url_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                let location = match mode {
                    ResponseMode::Fragment => format!("{uri}#{encoded}"),
                    _ if uri.contains('?') => format!("{uri}&{encoded}"),
                    _ => format!("{uri}?{encoded}"),
                };
                let Ok(value) = HeaderValue::from_str(&location) else {
                    let e = errors::invalid_request("The reply address is not a valid URL.");
                    return pages::html_response(StatusCode::BAD_REQUEST, pages::error(&e, now));
                };
                let mut r = pages::html_response(StatusCode::FOUND, String::new());
                r.headers_mut().insert(header::LOCATION, value);
                r
            }
        }
    }
}

/// Which interactive endpoint a request came to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Endpoint {
    /// `/{tenant}/oauth2/authorize` (v1) or `/{tenant}/oauth2/v2.0/authorize` (v2).
    SignIn(Version),
    /// `/{tenant}/adminconsent` (v1) or `/{tenant}/v2.0/adminconsent` (v2).
    AdminConsent(Version),
}

/// The `GET` handler of `endpoint`.
pub(super) fn handler(endpoint: Endpoint) -> MethodRouter<Arc<EmuState>> {
    get(
        move |State(state): State<Arc<EmuState>>,
              tenant: Result<Path<String>, PathRejection>,
              RawQuery(query): RawQuery| async move {
            begin(&state, &tenant_segment(tenant), query, endpoint)
        },
    )
}

/// `POST /_decide`: the page's form (`request`, `user`, `decision=accept|deny`).
pub(super) async fn decide(State(state): State<Arc<EmuState>>, body: Bytes) -> Response {
    let params = Params::parse(&body);
    let now = state.now();
    let answer = {
        let mut world = state.world();
        world.count_request("identity");
        decide_in(&mut world, &params, now)
    };
    answer.into_response(now)
}

fn begin(state: &EmuState, tenant: &str, query: Option<String>, endpoint: Endpoint) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let now = state.now();
    let action = format!(
        "{}/_decide",
        state.urls.authority.path().trim_end_matches('/')
    );
    let answer = {
        let mut world = state.world();
        world.count_request("identity");
        begin_in(&mut world, tenant, &params, endpoint, now, &action)
    };
    answer.into_response(now)
}

/// Whether `uri` may receive the answer: registered exactly; v1 admin consent also accepts
/// "additional path segments" (reference §4.7).
fn registered(app: &App, uri: &str, subpaths: bool) -> bool {
    app.redirect_uris.iter().any(|r| {
        r == uri
            || (subpaths
                && uri
                    .strip_prefix(r.as_str())
                    .is_some_and(|rest| r.ends_with('/') || rest.starts_with('/')))
    })
}

fn begin_in(
    world: &mut World,
    tenant_name: &str,
    p: &Params,
    endpoint: Endpoint,
    now: DateTime<Utc>,
    action: &str,
) -> Answer {
    let Some(tenant) = TenantPath::resolve(world, tenant_name) else {
        return Answer::Failure(errors::invalid_tenant(tenant_name));
    };
    world.count_tenant_request(tenant.counted_as(), Counted::Authorize);
    let Some(client_id) = p.get("client_id") else {
        return Answer::Failure(errors::missing_param("client_id"));
    };
    let Some(app) = world.apps.get(client_id) else {
        return Answer::Failure(errors::unknown_app(client_id, tenant_name));
    };
    let subpaths = matches!(endpoint, Endpoint::AdminConsent(Version::V1));
    let redirect_uri = match p.get("redirect_uri") {
        Some(u) if registered(app, u, subpaths) => u.to_string(),
        Some(u) => return Answer::Failure(errors::redirect_not_registered(u, client_id)),
        None => match app.redirect_uris.first() {
            Some(u) => u.clone(),
            None => return Answer::Failure(errors::no_reply_address()),
        },
    };
    let reply = ReplyTo {
        uri: redirect_uri,
        mode: ResponseMode::parse(p.get("response_mode")),
        state: p.get("state").map(str::to_string),
    };
    let flow = match endpoint {
        Endpoint::SignIn(v) => sign_in(v, p, tenant_name),
        Endpoint::AdminConsent(v) => admin_consent(v, p, tenant_name),
    };
    let flow = match flow {
        Ok(f) => f,
        Err(e) => {
            let description = e.traced(now);
            return reply.error(&e, description);
        }
    };
    if matches!(flow, Flow::SignIn(_))
        && p.get("prompt") == Some("none")
        && !world.settings.auto_approve
    {
        let e = errors::login_required();
        return reply.error(&e, e.traced(now));
    }
    let pending = Pending {
        created: now,
        client_id: client_id.to_string(),
        tenant,
        tenant_name: tenant_name.to_string(),
        login_hint: p.get("login_hint").map(str::to_string),
        reply,
        flow,
    };
    if world.settings.auto_approve {
        return match auto_user(world, &pending) {
            Some(who) => accept(world, pending, who, now),
            None => Answer::Failure(errors::unknown_user(
                pending.login_hint.as_deref().unwrap_or("(none)"),
                &pending.tenant_name,
            )),
        };
    }
    let request_id = random_b64(&mut world.rng, 24);
    let html = consent_page(world, &pending, &request_id, action);
    let identity = &mut world.identity;
    super::purge(
        &mut identity.pending,
        &mut identity.pending_purge_at,
        |_, p| now - p.created < Duration::minutes(PENDING_LIFETIME_MINS),
    );
    identity.pending.insert(request_id, pending);
    Answer::Page(html)
}

/// Validates an authorize request's own parameters.
fn sign_in(version: Version, p: &Params, tenant_name: &str) -> Result<Flow, AadError> {
    let response_type = p
        .get("response_type")
        .ok_or_else(|| errors::missing_param("response_type"))?;
    if !response_type.split_whitespace().any(|t| t == "code") {
        return Err(errors::unsupported_response_type(response_type));
    }
    let (resources, offline_access) = match version {
        // v1 ignores `scope` (reference §4.2) and always issues refresh tokens.
        Version::V1 => match p.get("resource") {
            Some(r) => (
                vec![
                    ResourceScopes::v1(r)
                        .ok_or_else(|| errors::unknown_resource(r, tenant_name))?,
                ],
                true,
            ),
            None => (Vec::new(), true),
        },
        Version::V2 => {
            if p.get("resource").is_some() {
                return Err(errors::resource_not_supported());
            }
            let (_, req) = required_scope(p, tenant_name)?;
            let offline = req.offline_access();
            (req.resources, offline)
        }
    };
    let pkce = match p.get("code_challenge") {
        None => None,
        Some(challenge) => {
            let s256 = match p.get("code_challenge_method") {
                None => false,
                Some(m) if m.eq_ignore_ascii_case("plain") => false,
                Some(m) if m.eq_ignore_ascii_case("S256") => true,
                Some(m) => {
                    return Err(errors::invalid_request(&format!(
                        "The code_challenge_method '{m}' isn't supported. Use 'S256' or 'plain'."
                    )));
                }
            };
            Some(Pkce {
                challenge: challenge.to_string(),
                s256,
            })
        }
    };
    Ok(Flow::SignIn(SignIn {
        version,
        resources,
        offline_access,
        pkce,
        admin_consent: version == Version::V1 && p.get("prompt") == Some("admin_consent"),
        redirect_uri_sent: p.get("redirect_uri").is_some(),
    }))
}

/// Validates an admin-consent request's own parameters.
fn admin_consent(version: Version, p: &Params, tenant_name: &str) -> Result<Flow, AadError> {
    let scope = match version {
        Version::V1 => None,
        Version::V2 => {
            let (scope, req) = required_scope(p, tenant_name)?;
            Some((scope.to_string(), req.resources))
        }
    };
    Ok(Flow::AdminConsent { version, scope })
}

/// A v2 request's `scope`, as given and parsed; it must name at least one resource.
fn required_scope<'a>(
    p: &'a Params,
    tenant_name: &str,
) -> Result<(&'a str, ScopeRequest), AadError> {
    let scope = p
        .get("scope")
        .ok_or_else(|| errors::missing_param("scope"))?;
    let req = parse_scope(scope, tenant_name)?;
    if req.resources.is_empty() {
        return Err(errors::invalid_scope(scope));
    }
    Ok((scope, req))
}

fn parse_scope(scope: &str, tenant_name: &str) -> Result<ScopeRequest, AadError> {
    ScopeRequest::parse(scope).map_err(|e| match e {
        ScopeError::UnknownResource(r) => errors::unknown_resource(&r, tenant_name),
        ScopeError::Invalid(_) => errors::invalid_scope(scope),
    })
}

/// A user who may sign in through the path's tenant: `(tenant id, user oid)`.
type Who = (String, String);

/// An account the page offers.
#[derive(Debug, Clone)]
struct Account {
    tenant_id: String,
    oid: String,
    upn: String,
    admin: bool,
    /// `Name (upn)`.
    label: String,
}

impl Account {
    /// The `<option>` value: `tenant:oid`.
    fn value(&self) -> String {
        format!("{}:{}", self.tenant_id, self.oid)
    }

    fn who(self) -> Who {
        (self.tenant_id, self.oid)
    }
}

impl Account {
    fn of(t: &Tenant, u: &User) -> Account {
        Account {
            tenant_id: t.id.clone(),
            oid: u.oid.clone(),
            upn: u.upn.clone(),
            admin: u.admin,
            label: format!("{} ({})", u.name, u.upn),
        }
    }
}

/// Every account the page offers, lazily: the tenant's users, or everyone's for `common` (only
/// that page costs in proportion to the number of tenants).
fn candidates<'a>(world: &'a World, tenant: &TenantPath) -> impl Iterator<Item = Account> + 'a {
    let tenants: Box<dyn Iterator<Item = &'a Tenant> + 'a> = match tenant.id() {
        Some(id) => Box::new(world.tenants.get(id).into_iter()),
        None => Box::new(world.tenants.values()),
    };
    tenants.flat_map(|t| t.users.iter().map(move |u| Account::of(t, u)))
}

/// The account of user `upn` (any case) who may sign in through the path.
fn account_by_upn(world: &World, tenant: &TenantPath, upn: &str) -> Option<Account> {
    let tenant_id = match tenant.id() {
        Some(id) => id,
        None => world.tenant_of_user(upn)?,
    };
    let t = world.tenants.get(tenant_id)?;
    t.users
        .iter()
        .find(|u| u.upn.eq_ignore_ascii_case(upn))
        .map(|u| Account::of(t, u))
}

/// With `auto_approve`: the `login_hint` user, else the first admin, else the first user.
fn auto_user(world: &World, pending: &Pending) -> Option<Who> {
    let hinted = pending
        .login_hint
        .as_deref()
        .and_then(|h| account_by_upn(world, &pending.tenant, h));
    hinted
        .or_else(|| candidates(world, &pending.tenant).find(|a| a.admin))
        .or_else(|| candidates(world, &pending.tenant).next())
        .map(Account::who)
}

/// The account chosen on the page: `tenant:oid` (the option values) or a UPN.
fn chosen_user(world: &World, tenant: &TenantPath, choice: &str) -> Option<Who> {
    let by_value = choice.split_once(':').and_then(|(tenant_id, oid)| {
        let t = world
            .tenants
            .get(tenant_id)
            .filter(|t| tenant.admits(&t.id))?;
        let u = t.users.iter().find(|u| u.oid == oid)?;
        Some(Account::of(t, u))
    });
    by_value
        .or_else(|| account_by_upn(world, tenant, choice))
        .map(Account::who)
}

fn consent_page(world: &World, pending: &Pending, request_id: &str, action: &str) -> String {
    let (app_name, permissions) = match world.apps.get(&pending.client_id) {
        Some(app) => (
            app.name.as_str(),
            scopes::describe(&pending.flow.permissions(app)),
        ),
        None => ("", Vec::new()),
    };
    let multi = pending.tenant.id().is_none();
    let tenant_label = match pending.tenant.id().and_then(|id| world.tenants.get(id)) {
        Some(t) => t.name.clone(),
        None => "your organization".to_string(),
    };
    let users = candidates(world, &pending.tenant)
        .map(|a| {
            let mut label = a.label.clone();
            if a.admin {
                label.push_str(" \u{2014} administrator");
            }
            if multi && let Some(t) = world.tenants.get(&a.tenant_id) {
                label.push_str(&format!(" \u{2014} {}", t.name));
            }
            UserOption {
                value: a.value(),
                label,
                selected: pending
                    .login_hint
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&a.upn)),
            }
        })
        .collect();
    pages::consent(&ConsentView {
        action,
        request_id,
        app_name: if app_name.is_empty() {
            &pending.client_id
        } else {
            app_name
        },
        client_id: &pending.client_id,
        tenant_label: &tenant_label,
        admin_only: pending.flow.admin_only(),
        permissions,
        users,
    })
}

fn decide_in(world: &mut World, p: &Params, now: DateTime<Utc>) -> Answer {
    let accepted = match p.get("decision") {
        Some("accept") => true,
        Some("deny") => false,
        _ => return Answer::Failure(errors::missing_param("decision")),
    };
    let Some(pending) = p
        .get("request")
        .and_then(|id| world.identity.pending.remove(id))
        .filter(|pd| now - pd.created < Duration::minutes(PENDING_LIFETIME_MINS))
    else {
        return Answer::Failure(errors::malformed_grant());
    };
    world.count_tenant_request(pending.tenant.counted_as(), Counted::Authorize);
    if !accepted {
        return declined(&pending, now);
    }
    let choice = p.get("user").unwrap_or_default();
    match chosen_user(world, &pending.tenant, choice) {
        Some(who) => accept(world, pending, who, now),
        None => Answer::Failure(errors::unknown_user(choice, &pending.tenant_name)),
    }
}

/// The app's answer when the user pressed Cancel.
fn declined(pending: &Pending, now: DateTime<Utc>) -> Answer {
    match &pending.flow {
        Flow::SignIn(_) => {
            let e = errors::user_declined();
            refused(pending, &e, e.headline())
        }
        Flow::AdminConsent {
            version: Version::V1,
            ..
        } => pending.reply.with(vec![
            ("error", "permission_denied".into()),
            ("error_description", "The admin canceled the request".into()),
        ]),
        Flow::AdminConsent {
            version: Version::V2,
            ..
        } => {
            let e = errors::admin_declined();
            refused(pending, &e, e.traced(now))
        }
    }
}

/// The app's answer when someone who is not an administrator accepted an admin-only request:
/// AADSTS90094 under the `error` each endpoint uses; only v1 admin consent sends the bare headline.
fn not_admin(pending: &Pending, now: DateTime<Utc>) -> Answer {
    let (error, traced) = match &pending.flow {
        Flow::SignIn(_) => ("access_denied", true),
        Flow::AdminConsent {
            version: Version::V1,
            ..
        } => ("permission_denied", false),
        Flow::AdminConsent {
            version: Version::V2,
            ..
        } => ("consent_required", true),
    };
    let e = errors::admin_required(error);
    let description = if traced { e.traced(now) } else { e.headline() };
    refused(pending, &e, description)
}

/// An error redirect: `error`, `error_description`, `state`; v2 admin consent puts
/// `admin_consent=True` first (reference §4.7).
fn refused(pending: &Pending, e: &AadError, description: String) -> Answer {
    let reply = &pending.reply;
    match &pending.flow {
        Flow::AdminConsent {
            version: Version::V2,
            ..
        } => reply.with(vec![
            ("admin_consent", "True".into()),
            ("error", e.error.into()),
            ("error_description", description),
        ]),
        _ => reply.error(e, description),
    }
}

/// `who` accepted: record the consent in their home tenant and answer the app.
fn accept(world: &mut World, pending: Pending, who: Who, now: DateTime<Utc>) -> Answer {
    let (tenant_id, oid) = who;
    let Some(user) = world
        .tenants
        .get(&tenant_id)
        .and_then(|t| t.users.iter().find(|u| u.oid == oid))
        .cloned()
    else {
        return Answer::Failure(errors::unknown_user(&oid, &pending.tenant_name));
    };
    if pending.flow.admin_only() && !user.admin {
        return not_admin(&pending, now);
    }
    let Some(spec) = world
        .apps
        .get(&pending.client_id)
        .map(|app| pending.flow.permissions(app))
    else {
        return Answer::Failure(errors::unknown_app(
            &pending.client_id,
            &pending.tenant_name,
        ));
    };
    if let Some(t) = world.tenants.get_mut(&tenant_id) {
        let grant = t.consents.entry(pending.client_id.clone()).or_default();
        grant.add(&spec, true);
        grant.consented_by = Some(user.upn.clone());
        grant.at = Some(now);
    }
    let reply = &pending.reply;
    match pending.flow {
        Flow::SignIn(s) => {
            let code = format!("AwABAAAA{}", random_b64(&mut world.rng, 96));
            let keep = Duration::seconds(world.settings.auth_code_lifetime_secs) * 2;
            let identity = &mut world.identity;
            super::purge(&mut identity.codes, &mut identity.codes_purge_at, |_, c| {
                now - c.chain.auth_time < keep
            });
            world.identity.codes.insert(
                code.clone(),
                AuthCode {
                    client_id: pending.client_id.clone(),
                    chain: Chain {
                        tenant_id,
                        user_oid: oid,
                        auth_time: now,
                        revocation_seen: user.tokens_revoked_at,
                        offline_access: s.offline_access,
                    },
                    redirect_uri: reply.uri.clone(),
                    redirect_uri_sent: s.redirect_uri_sent,
                    resources: s.resources,
                    pkce: s.pkce,
                    redeemed: false,
                },
            );
            let mut params = vec![("code", code)];
            if s.version == Version::V1 {
                params.push(("session_state", random_guid(&mut world.rng)));
            }
            reply.with(params)
        }
        Flow::AdminConsent {
            version: Version::V1,
            ..
        } => {
            let mut params = vec![("tenant", tenant_id)];
            if let Some(s) = &reply.state {
                params.push(("state", s.clone()));
            }
            params.push(("admin_consent", "True".into()));
            reply.raw(params)
        }
        Flow::AdminConsent {
            version: Version::V2,
            scope,
        } => {
            let mut params = vec![("admin_consent", "True".into()), ("tenant", tenant_id)];
            if let Some((raw, _)) = scope {
                params.push(("scope", raw));
            }
            reply.with(params)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_and_plain_verify_per_rfc_7636() {
        // RFC 7636 appendix B.
        let s256 = Pkce {
            challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            s256: true,
        };
        assert!(s256.verifies("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!s256.verifies("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"));
        let plain = Pkce {
            challenge: "abc".into(),
            s256: false,
        };
        assert!(plain.verifies("abc"));
        assert!(!plain.verifies("abd"));
    }

    #[test]
    fn redirect_uris_match_exactly_except_v1_admin_consent_subpaths() {
        let app = App {
            client_id: "c".into(),
            name: "n".into(),
            secrets: vec![],
            redirect_uris: vec!["https://app.example/cb".into()],
            permissions: PermissionSpec::default(),
            home_tenant: None,
        };
        assert!(registered(&app, "https://app.example/cb", false));
        assert!(!registered(&app, "https://app.example/cb/", false));
        assert!(!registered(&app, "https://APP.example/cb", false));
        assert!(!registered(&app, "https://app.example/cb/more", false));
        assert!(registered(&app, "https://app.example/cb/more", true));
        assert!(!registered(&app, "https://app.example/cbx", true));
    }

    #[test]
    fn replies_append_to_an_existing_query_and_encode_like_dotnet() {
        let now = Utc::now();
        let r = Answer::Reply {
            uri: "https://app.example/cb?x=1".into(),
            mode: ResponseMode::Query,
            params: vec![("code", "a b".into()), ("state", "s&t=u".into())],
        }
        .into_response(now);
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(
            r.headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some("https://app.example/cb?x=1&code=a+b&state=s%26t%3du")
        );
    }
}
