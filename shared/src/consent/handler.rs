//! The consent endpoint (DESIGN §6 Consent) as a framework-agnostic handler.
//!
//! | route | answer |
//! |---|---|
//! | `GET {base}/consent/start?link=…` | `302` to Microsoft's sign-in ([`begin_consent`]) |
//! | `GET {base}/consent/callback?…` | Microsoft's redirect back: [`complete_consent`], then a small HTML page naming the tenant, or saying what went wrong and what to do next |
//! | another method on those paths | `405`, `Allow: GET` |
//! | any other path | `404` |
//!
//! `{base}` is the path of the public base URL; the routes also match without it, so the
//! handler works behind an API Gateway stage or a custom domain alike.
//!
//! Hostile input is refused before any flow runs: a query longer than [`MAX_QUERY_LEN`] (`414`),
//! a malformed percent-encoding, bytes that are not UTF-8 or a repeated parameter (`400`). Bad
//! input gets a 4xx and leaves nothing stored (the flows guarantee it); a store or identity
//! platform that fails for now gets a 502/503 "try again" page. Pages never echo a token, code
//! or state; everything rendered is HTML-escaped. Every answer carries `Cache-Control: no-store`,
//! `Referrer-Policy: no-referrer` (the link in the URL never travels to Microsoft in a
//! `Referer`), a CSP that allows no script, form, frame or base, and `nosniff`.

use std::collections::BTreeMap;

use super::web::{WebRequest, WebResponse, escape_html};
use crate::consent::state::StateError;
use crate::domain::Tenant;
use crate::flows::Deps;
use crate::flows::onboarding::{Callback, ConsentError, begin_consent, complete_consent};
use crate::microsoft::claims::ClaimsError;
use crate::microsoft::identity::IdentityError;
use crate::ports::StoreError;

/// Longest raw query string accepted (8 KiB); longer ones get `414 URI Too Long`.
pub const MAX_QUERY_LEN: usize = 8 * 1024;

/// The Content-Security-Policy of every answer: no script, no form, no frame, inline styles only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const START: &str = "/consent/start";
const CALLBACK: &str = "/consent/callback";

const ASK_NEW_LINK: &str = "Ask your provider for a new consent link and open it.";
const TRY_AGAIN: &str = "Nothing was stored. Please try again in a few minutes by opening the \
     consent link from your provider again.";
const CONTACT_PROVIDER: &str = "Nothing was stored. This is a problem on your provider's side; \
     please let them know.";

/// Serves one request to the consent endpoint.
pub async fn handle(services: &Deps, req: &WebRequest) -> WebResponse {
    let Some(route) = route(services, &req.path) else {
        tracing::info!(status = 404u16, "consent endpoint: unknown path");
        return page(
            404,
            "Page not found",
            &[Text::Plain(
                "There is nothing here. Open the consent link your provider sent you.",
            )],
        );
    };
    if req.method != "GET" {
        tracing::info!(
            route,
            status = 405u16,
            "consent endpoint: method not allowed"
        );
        let mut r = page(
            405,
            "Method not allowed",
            &[Text::Plain("Open the consent link in a browser.")],
        );
        r.headers.push(("allow".into(), "GET".into()));
        return r;
    }
    let params = match parse_query(&req.query) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(
                route,
                status = e.status(),
                kind = e.kind(),
                "consent request refused"
            );
            return page(
                e.status(),
                "This address is not valid",
                &[Text::Plain(e.message()), Text::Plain(ASK_NEW_LINK)],
            );
        }
    };
    match route {
        START => start(services, &params).await,
        _ => callback(services, &params).await,
    }
}

/// The answer to a request an edge could not turn into a [`WebRequest`] (for the Lambda: an
/// event that is not an API Gateway request, or headers beyond API Gateway's own limit): the
/// refusal page every bad address gets, with `status` (a 4xx; anything else becomes 400).
pub fn unrepresentable(status: u16) -> WebResponse {
    let status = if (400..500).contains(&status) {
        status
    } else {
        400
    };
    page(
        status,
        "This address is not valid",
        &[
            Text::Plain("The request could not be read."),
            Text::Plain(ASK_NEW_LINK),
        ],
    )
}

/// The route `path` names, with the public base URL's path prefix removed when present.
fn route(services: &Deps, path: &str) -> Option<&'static str> {
    let prefix = services
        .settings
        .public_base_url
        .path()
        .trim_end_matches('/');
    let local = if prefix.is_empty() {
        path
    } else {
        match path.strip_prefix(prefix) {
            Some(rest) if rest.starts_with('/') => rest,
            _ => path,
        }
    };
    [START, CALLBACK].into_iter().find(|r| *r == local)
}

async fn start(services: &Deps, params: &BTreeMap<String, String>) -> WebResponse {
    let Some(link) = params.get("link").filter(|l| !l.is_empty()) else {
        tracing::warn!(
            route = START,
            status = 400u16,
            kind = "incomplete",
            "consent request refused"
        );
        return page(
            400,
            "This consent link is incomplete",
            &[
                Text::Plain("The link lacks its signed part; it may have been cut when copied."),
                Text::Plain(ASK_NEW_LINK),
            ],
        );
    };
    match begin_consent(services, link).await {
        Ok(microsoft) => {
            tracing::info!(route = START, status = 302u16, "consent started");
            let mut r = page(
                302,
                "Continuing to Microsoft",
                &[Text::Plain("Continuing to the Microsoft sign-in page…")],
            );
            r.headers.push(("location".into(), microsoft.to_string()));
            r
        }
        Err(e) => failure(START, &e),
    }
}

async fn callback(services: &Deps, params: &BTreeMap<String, String>) -> WebResponse {
    let get = |k: &str| params.get(k).cloned();
    let cb = Callback {
        state: get("state"),
        code: get("code"),
        admin_consent: get("admin_consent"),
        tenant: get("tenant"),
        error: get("error"),
        error_description: get("error_description"),
    };
    match complete_consent(services, &cb).await {
        Ok(tenant) => {
            tracing::info!(
                route = CALLBACK,
                status = 200u16,
                tenant_id = %tenant.id,
                "consent completed"
            );
            success(&tenant)
        }
        Err(e) => failure(CALLBACK, &e),
    }
}

fn success(t: &Tenant) -> WebResponse {
    let granted = t
        .consent
        .as_ref()
        .map(|c| c.granted.join(", "))
        .filter(|g| !g.is_empty());
    let mut text = vec![
        Text::Html(format!(
            "Consent was recorded for <strong>{}</strong> (tenant <code>{}</code>).",
            escape_html(&t.display_name),
            escape_html(t.id.as_str()),
        )),
        Text::Plain(
            "Your provider can now read your Microsoft Defender security alerts. \
             You can close this window.",
        ),
    ];
    if let Some(g) = granted {
        text.push(Text::Html(format!(
            "Permissions granted: {}.",
            escape_html(&g)
        )));
    }
    page(200, "Consent recorded", &text)
}

/// What a failure means for the person in front of the browser.
struct Failure {
    status: u16,
    kind: &'static str,
    title: &'static str,
    next: &'static str,
}

impl Failure {
    fn new(status: u16, kind: &'static str, title: &'static str, next: &'static str) -> Failure {
        Failure {
            status,
            kind,
            title,
            next,
        }
    }
}

/// One row per failure the consent flow can meet: tables, one per kind of cause, so each reads
/// better whole.
fn classify(e: &ConsentError) -> Failure {
    let invalid = "This consent link is not valid";
    match e {
        ConsentError::InvalidState(StateError::Expired) => Failure::new(
            410,
            "expired",
            "This consent link has expired",
            ASK_NEW_LINK,
        ),
        ConsentError::InvalidState(_) => Failure::new(400, "invalid_state", invalid, ASK_NEW_LINK),
        ConsentError::Replayed => Failure::new(
            409,
            "replayed",
            "This sign-in was already used",
            "If you completed the consent a moment ago, nothing more is needed. \
             Otherwise ask your provider for a new consent link.",
        ),
        ConsentError::UnknownTenant => Failure::new(
            410,
            "unknown_tenant",
            invalid,
            "If your organization should be onboarded, tell your provider.",
        ),
        ConsentError::NotEligible(_) => Failure::new(
            403,
            "not_eligible",
            "This tenant cannot be consented now",
            "Ask your provider to reactivate your tenant and send a new link.",
        ),
        ConsentError::AlreadyRegistered(_) => Failure::new(
            409,
            "already_registered",
            "This tenant is already registered",
            "Nothing more is needed.",
        ),
        ConsentError::Denied { .. } => Failure::new(
            400,
            "denied",
            "Consent was not given",
            "No permission was granted and nothing was stored. If this was a mistake, open the \
             consent link from your provider again and choose Accept.",
        ),
        ConsentError::Missing(_) | ConsentError::Malformed => Failure::new(
            400,
            "incomplete",
            "The sign-in answer is incomplete",
            "Nothing was stored. Open the consent link from your provider again.",
        ),
        ConsentError::Identity(e) => identity_failure(e),
        ConsentError::Claims(e) => claims_failure(e),
        ConsentError::Store(e) => store_failure(e),
    }
}

/// Microsoft's identity platform refused or failed the code exchange.
fn identity_failure(e: &IdentityError) -> Failure {
    match e {
        IdentityError::Transient { .. } => Failure::new(
            502,
            "identity_unavailable",
            "Microsoft could not be reached",
            TRY_AGAIN,
        ),
        IdentityError::AppMisconfigured { .. } => Failure::new(
            500,
            "app_misconfigured",
            "The provider's app registration is misconfigured",
            CONTACT_PROVIDER,
        ),
        IdentityError::TenantNotConsented { .. } => Failure::new(
            403,
            "not_consented",
            "Your organization has not consented",
            "Sign in with an administrator of the organization your provider registered, \
             accept, or ask your provider for a new link.",
        ),
        _ => Failure::new(
            400,
            "identity_rejected",
            "Microsoft did not accept the sign-in",
            "Nothing was stored. Open the consent link from your provider again.",
        ),
    }
}

/// The tokens Microsoft returned do not grant what the product needs.
fn claims_failure(e: &ClaimsError) -> Failure {
    match e {
        ClaimsError::MissingPermission { .. } => Failure::new(
            403,
            "missing_permission",
            "A needed permission was not granted",
            "Nothing was stored. Sign in with an administrator who can grant admin consent, \
             accept every permission requested, or ask your provider for help.",
        ),
        ClaimsError::WrongTenant => Failure::new(
            400,
            "wrong_tenant",
            "The sign-in was for another organization",
            "Nothing was stored. Sign in with an account of the organization your provider \
             registered, or ask your provider for a new link.",
        ),
        ClaimsError::Unreadable => Failure::new(
            502,
            "identity_unavailable",
            "Microsoft's answer could not be read",
            TRY_AGAIN,
        ),
    }
}

fn store_failure(e: &StoreError) -> Failure {
    match e {
        StoreError::Unavailable { .. } | StoreError::Conflict => {
            Failure::new(503, "store_unavailable", "The service is busy", TRY_AGAIN)
        }
        _ => Failure::new(
            500,
            "misconfigured",
            "The service is not set up correctly",
            CONTACT_PROVIDER,
        ),
    }
}

fn failure(route: &'static str, e: &ConsentError) -> WebResponse {
    let f = classify(e);
    if f.status >= 500 {
        // ConsentError's text holds no secret (the flows keep tokens and codes out of it).
        let error = crate::explain::chain(e);
        tracing::error!(route, status = f.status, kind = f.kind, error = %error, "consent request failed");
    } else {
        let error = crate::explain::chain(e);
        tracing::warn!(route, status = f.status, kind = f.kind, error = %error, "consent request refused");
    }
    let mut text = vec![Text::Html(format!(
        "What happened: {}.",
        escape_html(&e.to_string())
    ))];
    if let ConsentError::Denied {
        description: Some(d),
        ..
    } = e
    {
        text.push(Text::Html(format!(
            "Microsoft said: <q>{}</q>",
            escape_html(d)
        )));
    }
    text.push(Text::Plain(f.next));
    page(f.status, f.title, &text)
}

/// A paragraph: plain text (escaped here) or HTML already built from escaped parts.
enum Text<'a> {
    Plain(&'a str),
    Html(String),
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;\
     background:#f5f5f5;color:#1b1b1b;margin:0}main{max-width:36rem;margin:10vh auto;\
     background:#fff;padding:2rem 2.5rem;border-radius:6px;box-shadow:0 1px 4px #0002}\
     h1{font-size:1.4rem;margin-top:0}p{line-height:1.5}code{font-size:.95em}";

/// A small HTML page with the security headers every answer carries.
fn page(status: u16, title: &str, text: &[Text<'_>]) -> WebResponse {
    let mut body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{t}</title>\
         <style>{STYLE}</style></head>\n<body><main><h1>{t}</h1>\n",
        t = escape_html(title)
    );
    for p in text {
        let html = match p {
            Text::Plain(s) => escape_html(s),
            Text::Html(h) => h.clone(),
        };
        body.push_str(&format!("<p>{html}</p>\n"));
    }
    body.push_str("</main></body></html>\n");
    WebResponse {
        status,
        headers: vec![
            ("content-type".into(), "text/html; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
            ("referrer-policy".into(), "no-referrer".into()),
            (
                "content-security-policy".into(),
                CONTENT_SECURITY_POLICY.into(),
            ),
            ("x-content-type-options".into(), "nosniff".into()),
            ("x-frame-options".into(), "DENY".into()),
        ],
        body,
    }
}

/// Why a raw query string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// Longer than [`MAX_QUERY_LEN`].
    TooLong,
    /// A `%` not followed by two hex digits.
    BadEncoding,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// A parameter appears twice.
    Duplicate,
}

impl QueryError {
    fn status(self) -> u16 {
        match self {
            QueryError::TooLong => 414,
            _ => 400,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            QueryError::TooLong => "query_too_long",
            QueryError::BadEncoding => "bad_percent_encoding",
            QueryError::NotUtf8 => "not_utf8",
            QueryError::Duplicate => "duplicate_parameter",
        }
    }

    fn message(self) -> &'static str {
        match self {
            QueryError::TooLong => "The address is far longer than any consent link.",
            QueryError::BadEncoding | QueryError::NotUtf8 => {
                "The address is damaged: it is not encoded the way a browser encodes it."
            }
            QueryError::Duplicate => "The address repeats a parameter.",
        }
    }
}

/// Parses a raw `application/x-www-form-urlencoded` query strictly: `+` is a space, `%XX` must
/// be two hex digits, the result must be UTF-8, and no name may repeat. Empty pieces
/// (`a=1&&b=2`) are skipped; a name without `=` has the empty value.
pub fn parse_query(raw: &str) -> Result<BTreeMap<String, String>, QueryError> {
    if raw.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong);
    }
    let mut out = BTreeMap::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let name = decode(name)?;
        let value = decode(value)?;
        if out.insert(name, value).is_some() {
            return Err(QueryError::Duplicate);
        }
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, QueryError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => return Err(QueryError::BadEncoding),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| QueryError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_decoded_like_a_form() {
        let q = parse_query("code=a%2Bb+c&state=x.y&&flag&e=%C3%A9").unwrap();
        assert_eq!(q["code"], "a+b c");
        assert_eq!(q["state"], "x.y");
        assert_eq!(q["flag"], "");
        assert_eq!(q["e"], "é");
        assert!(parse_query("").unwrap().is_empty());
    }

    #[test]
    fn hostile_queries_are_refused() {
        assert_eq!(parse_query("a=%zz"), Err(QueryError::BadEncoding));
        assert_eq!(parse_query("a=%4"), Err(QueryError::BadEncoding));
        assert_eq!(parse_query("a=%"), Err(QueryError::BadEncoding));
        assert_eq!(parse_query("a=%FF%FE"), Err(QueryError::NotUtf8));
        assert_eq!(parse_query("a=1&a=2"), Err(QueryError::Duplicate));
        assert_eq!(parse_query("a=1&%61=2"), Err(QueryError::Duplicate));
        let long = format!("a={}", "x".repeat(MAX_QUERY_LEN));
        assert_eq!(parse_query(&long), Err(QueryError::TooLong));
        let just = format!("a={}", "x".repeat(MAX_QUERY_LEN - 2));
        assert!(parse_query(&just).is_ok());
    }

    #[test]
    fn every_page_carries_the_security_headers_and_escapes_its_text() {
        let r = page(400, "<b>t</b>", &[Text::Plain("<script>x</script>")]);
        for (name, value) in [
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
            ("content-security-policy", CONTENT_SECURITY_POLICY),
            ("x-content-type-options", "nosniff"),
            ("content-type", "text/html; charset=utf-8"),
        ] {
            assert_eq!(r.header(name), Some(value), "{name}");
        }
        assert!(!r.body.contains("<script"), "{}", r.body);
        assert!(!r.body.contains("<b>"), "{}", r.body);
        assert!(r.body.contains("&lt;script&gt;"));
    }

    #[test]
    fn an_unrepresentable_request_gets_a_4xx_refusal_page() {
        for (asked, got) in [(400, 400), (431, 431), (500, 400), (200, 400)] {
            let r = unrepresentable(asked);
            assert_eq!(r.status, got);
            assert_eq!(r.header("cache-control"), Some("no-store"));
            assert!(r.body.contains("<h1>This address is not valid</h1>"));
        }
    }

    #[test]
    fn a_denial_shows_microsofts_description_inert() {
        let e = ConsentError::Denied {
            error: "access_denied".into(),
            description: Some("<img src=x onerror=alert(1)>".into()),
        };
        let r = failure(CALLBACK, &e);
        assert_eq!(r.status, 400);
        assert!(
            r.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{}",
            r.body
        );
        assert!(!r.body.contains("<img"), "{}", r.body);
    }

    fn services(dir: &std::path::Path, base: &str) -> Deps {
        crate::assemble::local(
            dir,
            &crate::adapters::local::FileAppSecrets::default_path(dir),
            std::sync::Arc::new(crate::clock::SystemClock),
            crate::flows::Settings::new(
                crate::config::Endpoints::PerCloud,
                url::Url::parse(base).unwrap(),
            ),
        )
    }

    #[tokio::test]
    async fn routes_match_with_or_without_the_base_path_and_only_for_get() {
        let dir = tempfile::tempdir().unwrap();
        let s = services(dir.path(), "https://consent.example.com/prod");
        let status = |method: &str, path: &str| {
            let req = WebRequest {
                method: method.into(),
                path: path.into(),
                query: String::new(),
            };
            let s = s.clone();
            async move { handle(&s, &req).await }
        };
        // Without `link`, start is refused before any store is read.
        assert_eq!(status("GET", "/prod/consent/start").await.status, 400);
        assert_eq!(status("GET", "/consent/start").await.status, 400);
        assert_eq!(status("GET", "/prodx/consent/start").await.status, 404);
        assert_eq!(status("GET", "/prod/consent/start/").await.status, 404);
        assert_eq!(status("GET", "/prod").await.status, 404);
        let r = status("POST", "/prod/consent/callback").await;
        assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
        let r = status("GET", "/nowhere").await;
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }

    #[test]
    fn failures_map_to_statuses_by_whose_fault_they_are() {
        let cases: Vec<(ConsentError, u16)> = vec![
            (StateError::Malformed.into(), 400),
            (StateError::BadSignature.into(), 400),
            (StateError::Expired.into(), 410),
            (ConsentError::Replayed, 409),
            (ConsentError::Missing("code"), 400),
            (ConsentError::Malformed, 400),
            (ClaimsError::WrongTenant.into(), 400),
            (
                StoreError::unavailable("x", std::io::Error::other("down")).into(),
                503,
            ),
            (
                ConsentError::Identity(IdentityError::Transient {
                    reason: "timeout".into(),
                    retry_after: None,
                    source: None,
                }),
                502,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(classify(&e).status, status, "{e}");
        }
    }
}
