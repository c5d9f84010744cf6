//! The Microsoft identity platform (Entra ID) as mssp-alerts meets it (reference §4, §6 items
//! 1–11): the v1 and v2 authorize endpoints with a small sign-in and consent page, the v1 and v2
//! admin-consent endpoints, and the v1 and v2 token endpoints (authorization code with PKCE,
//! refresh token, client credentials).
//!
//! Routes, relative to the `/login` prefix (`{tenant}` is a tenant id, a verified domain,
//! `common`, `organizations` or `consumers`):
//!
//! | route | what |
//! |---|---|
//! | `GET /{tenant}/oauth2/authorize`, `GET /{tenant}/oauth2/v2.0/authorize` | sign-in and consent |
//! | `GET /{tenant}/adminconsent`, `GET /{tenant}/v2.0/adminconsent` | tenant-wide admin consent |
//! | `POST /_decide` | the page's Accept / Cancel form |
//! | `POST /{tenant}/oauth2/token`, `POST /{tenant}/oauth2/v2.0/token` | tokens |
//!
//! Unless the scenario sets `auto_approve`, authorize and admin-consent requests answer with an
//! HTML page listing the tenant's users and the permissions asked for; a test or a person picks a
//! user and presses Accept or Cancel, which posts to `/_decide`. Consent lands in the world's
//! [`crate::world::Grant`]s, so the other APIs see exactly what was granted.
//!
//! Codes, refresh tokens and pending sign-ins live in [`IdentityState`], inside the world.

mod authorize;
mod errors;
mod pages;
mod scopes;
mod token;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};

use crate::EmuState;
use crate::scenario::Api;
use crate::world::World;

use authorize::{AuthCode, Endpoint, Pending};
use token::RefreshToken;

/// Authorization codes, refresh tokens and pending sign-ins.
#[derive(Debug, Default)]
pub struct IdentityState {
    /// Sign-ins waiting for the page's decision, by opaque request id.
    pending: HashMap<String, Pending>,
    /// Authorization codes, by code.
    codes: HashMap<String, AuthCode>,
    /// Refresh tokens, by token. Used ones stay valid (Microsoft does not revoke them).
    refresh_tokens: HashMap<String, RefreshToken>,
    /// Size of `pending` at which stale sign-ins are next dropped.
    pending_purge_at: usize,
    /// Size of `codes` at which expired codes are next dropped.
    codes_purge_at: usize,
}

/// Drops the entries of `map` that `keep` refuses, once the map has reached `*next` entries, and
/// sets `*next` to twice what is left: purging costs O(1) per insertion on average, however many
/// entries live (instead of a scan of every entry at each insertion).
fn purge<V>(
    map: &mut HashMap<String, V>,
    next: &mut usize,
    keep: impl FnMut(&String, &mut V) -> bool,
) {
    if map.len() >= *next {
        map.retain(keep);
        *next = (map.len() * 2).max(64);
    }
}

impl IdentityState {
    /// How many refresh tokens were issued so far.
    pub fn refresh_tokens_issued(&self) -> usize {
        self.refresh_tokens.len()
    }

    /// How many sign-ins wait for the page's decision.
    pub fn pending_sign_ins(&self) -> usize {
        self.pending.len()
    }
}

/// Routes of the identity platform, nested under `/login`.
pub fn router() -> Router<Arc<EmuState>> {
    // Each version's sign-in, admin consent and token paths.
    let paths = [
        (
            Version::V1,
            "/{tenant}/oauth2/authorize",
            "/{tenant}/adminconsent",
            "/{tenant}/oauth2/token",
        ),
        (
            Version::V2,
            "/{tenant}/oauth2/v2.0/authorize",
            "/{tenant}/v2.0/adminconsent",
            "/{tenant}/oauth2/v2.0/token",
        ),
    ];
    paths.into_iter().fold(
        Router::new().route("/_decide", post(authorize::decide)),
        |router, (version, sign_in, admin_consent, token_path)| {
            router
                .route(sign_in, authorize::handler(Endpoint::SignIn(version)))
                .route(
                    admin_consent,
                    authorize::handler(Endpoint::AdminConsent(version)),
                )
                .route(token_path, token::handler(version))
        },
    )
}

/// Which generation of the endpoints a request came to: v1 (`resource=`, string numbers, `appid`)
/// or v2 (`scope=`, integer numbers, `azp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The `{tenant}` segment of a URL, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TenantPath {
    /// `common`, `organizations` or `consumers` (the name as written, lowercase).
    Any(String),
    /// One tenant, by id.
    One(String),
}

impl TenantPath {
    /// Resolves a path segment; `None` when it names no tenant (AADSTS90002).
    fn resolve(world: &World, name: &str) -> Option<TenantPath> {
        let lower = name.to_ascii_lowercase();
        if matches!(lower.as_str(), "common" | "organizations" | "consumers") {
            return Some(TenantPath::Any(lower));
        }
        world
            .resolve_tenant(name)
            .map(|t| TenantPath::One(t.id.clone()))
    }

    /// The tenant id, when the path names one tenant.
    fn id(&self) -> Option<&str> {
        match self {
            TenantPath::Any(_) => None,
            TenantPath::One(id) => Some(id),
        }
    }

    /// The name the request statistics count the path's requests under: the tenant id, or the
    /// alias.
    fn counted_as(&self) -> &str {
        match self {
            TenantPath::Any(alias) => alias,
            TenantPath::One(id) => id,
        }
    }

    /// Whether a grant made in `tenant_id` may be used through this path.
    fn admits(&self, tenant_id: &str) -> bool {
        self.id().is_none_or(|id| id == tenant_id)
    }
}

/// Request parameters (query string or form body), decoded leniently: bytes that are not valid
/// percent-encoding or UTF-8 are replaced rather than refused, so hostile input meets Microsoft's
/// "missing or invalid parameter" errors and never a panic.
#[derive(Debug, Clone, Default)]
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    fn parse(input: &[u8]) -> Params {
        Params {
            pairs: url::form_urlencoded::parse(input).into_owned().collect(),
        }
    }

    /// The first value of `name`; an empty value counts as absent, as Entra treats it.
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The first parameter name given more than once (AADSTS9000411).
    fn duplicated(&self) -> Option<&str> {
        self.pairs.iter().enumerate().find_map(|(i, (k, _))| {
            self.pairs[..i]
                .iter()
                .any(|(prev, _)| prev == k)
                .then_some(k.as_str())
        })
    }
}

/// The `{tenant}` path segment; one that does not decode reads as empty, so it meets
/// AADSTS90002 like any unknown tenant.
fn tenant_segment(segment: Result<Path<String>, PathRejection>) -> String {
    segment.map(|Path(t)| t).unwrap_or_default()
}

/// `n` random bytes from the world's seeded generator, base64url without padding.
fn random_b64(rng: &mut StdRng, n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rng.fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random GUID from the world's seeded generator.
fn random_guid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

/// A GUID derived from `seed`: stable ids such as an app's service principal in a tenant.
fn stable_guid(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The object id of `client_id`'s service principal in `tenant_id` (the `oid` of app-only
/// tokens): the same for every token of that app in that tenant.
fn service_principal_oid(client_id: &str, tenant_id: &str) -> String {
    stable_guid(&format!("sp:{client_id}:{tenant_id}"))
}

/// A user's pairwise `sub` for one app: 43 base64url characters, like Entra's.
fn pairwise_sub(user_oid: &str, client_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{user_oid}:{client_id}").as_bytes()))
}

/// The App ID URI written for `api` when the client named none (its first audience).
fn resource_uri(api: Api) -> &'static str {
    api.audiences().first().copied().unwrap_or_default()
}

/// Escapes text for HTML element content and attribute values.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes like .NET's `HttpUtility.UrlEncode`, which Entra's redirects show: space as
/// `+`, lowercase hex (`AADSTS65004%3a+The+resource…%0d%0a…`), `-_.!*()` and alphanumerics kept.
fn dotnet_url_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'*'
            | b'('
            | b')' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    out
}

/// A .NET `TimeSpan` of whole days as Entra prints it: `90.00:00:00`.
fn timespan_days(days: i64) -> String {
    format!("{days}.00:00:00")
}

/// Microsoft's 7-digit ISO timestamp (`2020-02-26T21:52:54.2810613Z`).
fn iso7(t: DateTime<Utc>) -> String {
    crate::model::fmt7(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parameters_decode_leniently_and_treat_empty_values_as_absent() {
        let p = Params::parse(b"a=1&b=&c=%ZZ&a=2&d=x+y%20z&%FF=v");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("%ZZ"));
        assert_eq!(p.get("d"), Some("x y z"));
        assert_eq!(p.duplicated(), Some("a"));
        assert_eq!(Params::parse(b"a=1&b=2").duplicated(), None);
    }

    #[test]
    fn dotnet_encoding_uses_plus_and_lowercase_hex() {
        assert_eq!(
            dotnet_url_encode("AADSTS65004: The owner.\r\nTrace ID: x"),
            "AADSTS65004%3a+The+owner.%0d%0aTrace+ID%3a+x"
        );
        assert_eq!(
            dotnet_url_encode("https://graph.microsoft.com/.default"),
            "https%3a%2f%2fgraph.microsoft.com%2f.default"
        );
        assert_eq!(dotnet_url_encode("é"), "%c3%a9");
    }

    #[test]
    fn html_escaping_neutralises_markup() {
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn stable_ids_are_stable_and_random_ones_are_not() {
        assert_eq!(
            service_principal_oid("c", "t"),
            service_principal_oid("c", "t")
        );
        assert_ne!(
            service_principal_oid("c", "t"),
            service_principal_oid("c", "u")
        );
        assert!(uuid::Uuid::parse_str(&service_principal_oid("c", "t")).is_ok());
        assert_eq!(pairwise_sub("u", "c").len(), 43);
        let mut rng = StdRng::seed_from_u64(1);
        assert_ne!(random_guid(&mut rng), random_guid(&mut rng));
        assert_eq!(random_b64(&mut rng, 16).len(), 22);
    }

    #[test]
    fn timespans_print_like_dotnet() {
        assert_eq!(timespan_days(90), "90.00:00:00");
    }
}
