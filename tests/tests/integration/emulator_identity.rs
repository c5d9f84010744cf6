//! The emulator's identity platform at its wire boundary (reference §4, §6 items 1–11): the
//! authorize and admin-consent endpoints with their sign-in page, and the v1/v2 token endpoints
//! with Microsoft's answers and errors. Each test starts its own emulator with a frozen clock.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use emulator::faults::{FaultKind, FaultPlanSpec, FaultRule, FaultTarget};
use emulator::{RunningEmulator, Scenario};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use url::Url;

const CLIENT: &str = "7f3b2c1a-5d4e-4f60-9a8b-1c2d3e4f5a6b";
const SECRET: &str = "current-secret-value";
const EXPIRED_SECRET: &str = "expired-secret-value";
const REDIRECT: &str = "http://127.0.0.1:8080/consent/callback";
/// Users consent here interactively; nothing is granted at start.
const CONTOSO: &str = "11111111-1111-4111-8111-111111111111";
/// Contoso's administrator and an analyst (no admin role).
const CONTOSO_ADMIN: &str = "admin@contoso.onmicrosoft.com";
const ANALYST: &str = "analyst@contoso.onmicrosoft.com";
/// Admin consent already granted for Graph and MDE.
const FABRIKAM: &str = "22222222-2222-4222-8222-222222222222";
/// Never consented.
const NORTHWIND: &str = "33333333-3333-4333-8333-333333333333";
const NORTHWIND_ADMIN: &str = "admin@northwind.onmicrosoft.com";
const START: &str = "2026-03-01T12:00:00Z";
const GRAPH: &str = "https://graph.microsoft.com";
const MDE: &str = "https://api.securitycenter.microsoft.com";
const SIEM: &str = "https://graph.windows.net";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn scenario(auto_approve: bool) -> Scenario {
    serde_json::from_value(json!({
        "clock": { "start": START, "frozen": true },
        "settings": { "auto_approve": auto_approve },
        "apps": [{
            "client_id": CLIENT,
            "name": "MSSP Alert Connector",
            "secrets": [
                { "value": SECRET, "expires": "+365d" },
                { "value": EXPIRED_SECRET, "expires": "-1d" }
            ],
            "redirect_uris": [REDIRECT],
            "permissions": {
                "app_roles": { "graph": ["SecurityAlert.Read.All"], "mde": ["Alert.Read.All"] },
                "delegated": {
                    "graph": ["SecurityAlert.Read.All"],
                    "mde": ["Alert.Read"],
                    "siem": ["user_impersonation"]
                }
            }
        }],
        "tenants": [
            {
                "id": CONTOSO, "name": "Contoso", "domains": ["contoso.onmicrosoft.com"],
                "users": [
                    { "upn": CONTOSO_ADMIN, "name": "Contoso Admin", "admin": true },
                    { "upn": ANALYST, "name": "Contoso Analyst" }
                ]
            },
            {
                "id": FABRIKAM, "name": "Fabrikam", "domains": ["fabrikam.onmicrosoft.com"],
                "users": [ { "upn": "admin@fabrikam.onmicrosoft.com", "admin": true } ],
                "consents": [{
                    "client_id": CLIENT,
                    "app_roles": { "graph": ["SecurityAlert.Read.All"], "mde": ["Alert.Read.All"] }
                }]
            },
            {
                "id": NORTHWIND, "name": "Northwind", "domains": ["northwind.onmicrosoft.com"],
                "users": [ { "upn": NORTHWIND_ADMIN, "admin": true } ]
            }
        ]
    }))
    .expect("the test scenario is valid")
}

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(START)
        .expect("valid")
        .with_timezone(&Utc)
}

/// An emulator and a client that does not follow redirects.
struct Login {
    emu: RunningEmulator,
    http: reqwest::Client,
}

/// A token endpoint's answer.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn codes(&self) -> Vec<u64> {
        self.body["error_codes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    }

    fn str(&self, field: &str) -> &str {
        self.body[field].as_str().unwrap_or_default()
    }

    fn claims(&self) -> Value {
        claims_of(self.str("access_token"))
    }
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
}

/// The `Location` of an answer, if any.
fn location_of(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The query parameters of a redirect.
fn query_of(location: &str) -> HashMap<String, String> {
    Url::parse(location)
        .expect("absolute location")
        .query_pairs()
        .into_owned()
        .collect()
}

/// A token request's form: `grant_type`, `CLIENT` authenticated with `SECRET`, then `extra`.
fn with_credentials<'a>(
    grant_type: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let credentials = [
        ("grant_type", grant_type),
        ("client_id", CLIENT),
        ("client_secret", SECRET),
    ];
    [&credentials[..], extra].concat()
}

/// The value of the first `attr="…"` after `marker` in `html` (entities left as they are).
fn attr_after<'a>(html: &'a str, marker: &str, attr: &str) -> &'a str {
    let from = html.find(marker).expect("marker on the page") + marker.len();
    let rest = &html[from..];
    let start = rest.find(&format!("{attr}=\"")).expect("attribute") + attr.len() + 2;
    let end = rest[start..].find('"').expect("closing quote");
    &rest[start..start + end]
}

/// The opaque request id the sign-in page posts back.
fn request_of(html: &str) -> &str {
    attr_after(html, "name=\"request\"", "value")
}

/// The `value` of the `<option>` whose label starts with `label`.
fn option_for<'a>(html: &'a str, label: &str) -> &'a str {
    let at = html
        .find(&format!(">{label}"))
        .expect("the option is on the page");
    let open = html[..at].rfind("<option value=\"").expect("an option") + 15;
    let end = html[open..].find('"').expect("closing quote");
    &html[open..open + end]
}

impl Login {
    async fn start(auto_approve: bool) -> Login {
        let emu = emulator::start(scenario(auto_approve))
            .await
            .expect("emulator starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .expect("client");
        Login { emu, http }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/{path}",
            self.emu.urls().authority.as_str().trim_end_matches('/')
        )
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send(self.http.post(self.url(path)).form(form)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let r = request.send().await.expect("the emulator answers");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn v1_token(&self, tenant: &str, form: &[(&str, &str)]) -> Answer {
        self.post(&format!("{tenant}/oauth2/token"), form).await
    }

    async fn v2_token(&self, tenant: &str, form: &[(&str, &str)]) -> Answer {
        self.post(&format!("{tenant}/oauth2/v2.0/token"), form)
            .await
    }

    /// A v1 token request of `CLIENT` with `SECRET` (see [`with_credentials`]).
    async fn v1_grant(&self, tenant: &str, grant_type: &str, extra: &[(&str, &str)]) -> Answer {
        self.v1_token(tenant, &with_credentials(grant_type, extra))
            .await
    }

    /// A v2 token request of `CLIENT` with `SECRET` (see [`with_credentials`]).
    async fn v2_grant(&self, tenant: &str, grant_type: &str, extra: &[(&str, &str)]) -> Answer {
        self.v2_token(tenant, &with_credentials(grant_type, extra))
            .await
    }

    async fn client_credentials_v2(&self, tenant: &str, scope: &str, secret: &str) -> Answer {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", secret),
            ("scope", scope),
        ];
        self.v2_token(tenant, &form).await
    }

    /// GETs an interactive endpoint; returns the status, the `Location` if any, and the body.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        let url = Url::parse_with_params(&self.url(path), query).expect("url");
        let r = self.http.get(url).send().await.expect("answer");
        let (status, location) = (r.status(), location_of(&r));
        (status, location, r.text().await.expect("body"))
    }

    /// Posts the sign-in page's form.
    async fn decide(
        &self,
        request: &str,
        user: &str,
        decision: &str,
    ) -> (StatusCode, Option<String>) {
        let r = self
            .http
            .post(self.url("_decide"))
            .form(&[("request", request), ("user", user), ("decision", decision)])
            .send()
            .await
            .expect("answer");
        (r.status(), location_of(&r))
    }

    /// Answers the sign-in page `html` as `user` pressing `decision` (`accept` or `deny`).
    async fn decide_on(
        &self,
        html: &str,
        user: &str,
        decision: &str,
    ) -> (StatusCode, Option<String>) {
        self.decide(request_of(html), user, decision).await
    }

    /// GETs an authorize endpoint (`path`) as `CLIENT` asking for a code sent to `REDIRECT`, with
    /// `extra` parameters.
    async fn authorize(
        &self,
        path: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        let client = [
            ("client_id", CLIENT),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
        ];
        self.get(path, &[&client[..], extra].concat()).await
    }

    /// GETs an admin-consent endpoint (`path`) as `CLIENT` answering to `REDIRECT`, with `extra`
    /// parameters.
    async fn admin_consent(
        &self,
        path: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        let client = [("client_id", CLIENT), ("redirect_uri", REDIRECT)];
        self.get(path, &[&client[..], extra].concat()).await
    }

    /// With auto-approve: the query of the redirect an authorize request (see [`Self::authorize`])
    /// answers with.
    async fn approved(&self, path: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let (status, location, body) = self.authorize(path, extra).await;
        assert_eq!(status, StatusCode::FOUND, "{body}");
        query_of(&location.expect("a redirect"))
    }

    /// With auto-approve: a code for `login_hint` from the v1 authorize endpoint.
    async fn v1_code(&self, resource: &str, user: &str) -> String {
        let path = format!("{CONTOSO}/oauth2/authorize");
        let extra = [
            ("resource", resource),
            ("login_hint", user),
            ("state", "s1"),
        ];
        let q = self.approved(&path, &extra).await;
        q.get("code").expect("a code").clone()
    }

    /// With auto-approve: a code for a Contoso user from the v2 authorize endpoint, with PKCE S256.
    async fn v2_code(&self, scope: &str, user: &str) -> String {
        let path = format!("{CONTOSO}/oauth2/v2.0/authorize");
        let extra = [
            ("scope", scope),
            ("login_hint", user),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        let q = self.approved(&path, &extra).await;
        assert!(
            !q.contains_key("session_state"),
            "v2 sends no session_state"
        );
        q.get("code").expect("a code").clone()
    }

    async fn redeem_v2(&self, code: &str, verifier: &str) -> Answer {
        self.v2_grant(
            CONTOSO,
            "authorization_code",
            &[
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    async fn refresh_v2(&self, refresh_token: &str, scope: &str) -> Answer {
        self.v2_grant(
            CONTOSO,
            "refresh_token",
            &[("refresh_token", refresh_token), ("scope", scope)],
        )
        .await
    }

    /// A fresh v2 refresh token of the Contoso analyst for MDE.
    async fn analyst_refresh_token(&self) -> String {
        let code = self
            .v2_code(&format!("{MDE}/Alert.Read offline_access"), ANALYST)
            .await;
        let t = self.redeem_v2(&code, VERIFIER).await;
        assert_eq!(t.status, StatusCode::OK, "{:?}", t.body);
        t.str("refresh_token").to_string()
    }
}

fn assert_error(a: &Answer, status: StatusCode, error: &str, code: u64) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(a.str("error"), error, "{:?}", a.body);
    assert_eq!(a.codes(), vec![code], "{:?}", a.body);
    assert!(
        a.str("error_description")
            .starts_with(&format!("AADSTS{code}: ")),
        "{:?}",
        a.body
    );
}

#[tokio::test]
async fn v1_answers_carry_numbers_as_strings_and_v2_answers_as_integers() {
    let login = Login::start(true).await;
    let code = login.v1_code(SIEM, ANALYST).await;
    let v1 = login
        .v1_grant(
            CONTOSO,
            "authorization_code",
            &[
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("resource", SIEM),
            ],
        )
        .await;
    assert_eq!(v1.status, StatusCode::OK, "{:?}", v1.body);
    let now = start_time().timestamp();
    assert_eq!(v1.body["token_type"], "Bearer");
    assert_eq!(v1.body["expires_in"], "3599");
    assert_eq!(v1.body["ext_expires_in"], "3599");
    assert_eq!(v1.body["expires_on"], json!((now + 3599).to_string()));
    assert_eq!(v1.body["not_before"], json!(now.to_string()));
    assert_eq!(v1.body["resource"], SIEM);
    assert_eq!(v1.body["scope"], "user_impersonation");
    assert!(v1.str("refresh_token").starts_with("0.A"));
    let id_token = v1.str("id_token");
    assert!(id_token.ends_with('.'), "the v1 id_token is unsigned");
    assert_eq!(claims_of(id_token)["upn"], ANALYST);
    let claims = v1.claims();
    assert_eq!(claims["aud"], SIEM);
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{CONTOSO}/"));
    assert_eq!(claims["appid"], CLIENT);
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["scp"], "user_impersonation");
    assert_eq!(claims["exp"], json!(now + 3599));
    assert_eq!(v1.headers["cache-control"], "no-store");
    assert_eq!(
        v1.headers["content-type"],
        "application/json; charset=utf-8"
    );

    let v2 = login
        .client_credentials_v2(FABRIKAM, &format!("{GRAPH}/.default"), SECRET)
        .await;
    assert_eq!(v2.status, StatusCode::OK, "{:?}", v2.body);
    assert_eq!(v2.body["expires_in"], json!(3599));
    assert_eq!(v2.body["ext_expires_in"], json!(3599));
    assert_eq!(v2.body["token_type"], "Bearer");
    assert!(
        v2.body.get("refresh_token").is_none(),
        "never with client credentials"
    );
    assert!(v2.body.get("expires_on").is_none());
    assert_eq!(v2.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn an_authorization_code_redeems_once_and_then_fails_with_54005() {
    let login = Login::start(true).await;
    let code = login
        .v2_code(&format!("{MDE}/Alert.Read offline_access"), ANALYST)
        .await;
    let first = login.redeem_v2(&code, VERIFIER).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert!(first.body["expires_in"].is_i64());
    assert_eq!(first.str("scope"), format!("{MDE}/Alert.Read"));
    let claims = first.claims();
    assert_eq!(claims["aud"], MDE);
    assert_eq!(claims["tid"], CONTOSO);
    assert_eq!(claims["azp"], CLIENT);
    assert_eq!(claims["scp"], "Alert.Read");
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(
        claims["iss"],
        format!(
            "{}/{CONTOSO}/v2.0",
            login.emu.urls().authority.as_str().trim_end_matches('/')
        )
    );
    assert!(claims.get("roles").is_none());

    let second = login.redeem_v2(&code, VERIFIER).await;
    assert_error(&second, StatusCode::BAD_REQUEST, "invalid_grant", 54005);

    let unknown = login.redeem_v2("AwABAAAAnot-a-code", VERIFIER).await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "invalid_grant", 9002313);
}

#[tokio::test]
async fn an_authorization_code_expires_after_its_lifetime_with_70008() {
    let login = Login::start(true).await;
    let code = login
        .v2_code(&format!("{MDE}/.default"), CONTOSO_ADMIN)
        .await;
    login.emu.state().clock.advance(Duration::minutes(11));
    let late = login.redeem_v2(&code, VERIFIER).await;
    assert_error(&late, StatusCode::BAD_REQUEST, "invalid_grant", 70008);
}

#[tokio::test]
async fn a_pkce_verifier_that_does_not_match_the_challenge_is_refused_with_501481() {
    let login = Login::start(true).await;
    let code = login.v2_code(&format!("{MDE}/Alert.Read"), ANALYST).await;
    let wrong = login
        .redeem_v2(&code, "ThisIsntTheVerifierButItIs43CharactersLong0")
        .await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "invalid_grant", 501481);
    let missing = login
        .v2_grant(
            CONTOSO,
            "authorization_code",
            &[("code", &code), ("redirect_uri", REDIRECT)],
        )
        .await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "invalid_grant", 501481);

    let right = login.redeem_v2(&code, VERIFIER).await;
    assert_eq!(right.status, StatusCode::OK, "{:?}", right.body);
    assert!(
        right.body.get("refresh_token").is_none(),
        "v2 issues refresh tokens only with offline_access"
    );
}

#[tokio::test]
async fn a_redirect_uri_differing_from_the_authorize_request_is_refused_with_50011() {
    let login = Login::start(true).await;
    let code = login.v2_code(&format!("{MDE}/Alert.Read"), ANALYST).await;
    let other = login
        .v2_grant(
            CONTOSO,
            "authorization_code",
            &[
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:8080/consent/callback/"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_error(&other, StatusCode::BAD_REQUEST, "invalid_grant", 50011);
}

#[tokio::test]
async fn authorize_shows_an_error_page_and_never_redirects_to_an_unregistered_uri() {
    let login = Login::start(true).await;
    let (status, location, html) = login
        .get(
            &format!("{CONTOSO}/oauth2/v2.0/authorize"),
            &[
                ("client_id", CLIENT),
                ("response_type", "code"),
                ("redirect_uri", "https://attacker.example/steal"),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(location, None);
    assert!(
        html.contains("AADSTS50011: The redirect URI &#39;https://attacker.example/steal&#39;")
    );

    let (status, location, html) = login
        .get(
            &format!("{CONTOSO}/oauth2/authorize"),
            &[
                ("client_id", "00000000-0000-0000-0000-000000000bad"),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(location, None);
    assert!(html.contains("AADSTS700016: Application with identifier"));

    let (status, _, html) = login
        .get(
            "nowhere.example/oauth2/authorize",
            &[("client_id", CLIENT), ("response_type", "code")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("AADSTS90002"));
}

#[tokio::test]
async fn v2_authorize_with_resource_redirects_with_901002() {
    let login = Login::start(true).await;
    let (status, location, _) = login
        .authorize(
            &format!("{CONTOSO}/oauth2/v2.0/authorize"),
            &[("resource", GRAPH), ("state", "st")],
        )
        .await;
    assert_eq!(status, StatusCode::FOUND);
    let q = query_of(&location.expect("redirect"));
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].starts_with("AADSTS901002: "));
    assert_eq!(q["state"], "st");
}

#[tokio::test]
async fn refresh_rotates_the_token_and_the_old_one_keeps_working() {
    let login = Login::start(true).await;
    let first = login.analyst_refresh_token().await;
    let scope = format!("{MDE}/Alert.Read offline_access");
    let a = login.refresh_v2(&first, &scope).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let second = a.str("refresh_token");
    assert!(!second.is_empty());
    assert_ne!(second, first, "a new refresh token every time");
    let again = login.refresh_v2(&first, &scope).await;
    assert_eq!(again.status, StatusCode::OK, "the old token is not revoked");
    let third = login.refresh_v2(second, &scope).await;
    assert_eq!(third.status, StatusCode::OK);
    assert_eq!(third.claims()["upn"], ANALYST);
}

#[tokio::test]
async fn a_refresh_token_idle_for_91_days_expires_with_700082() {
    let login = Login::start(true).await;
    let idle = login.analyst_refresh_token().await;
    // A token used at day 45 stays alive; the idle one does not.
    login.emu.state().clock.advance(Duration::days(45));
    let busy = login.analyst_refresh_token().await;
    login.emu.state().clock.advance(Duration::days(46));
    let busy_answer = login.refresh_v2(&busy, &format!("{MDE}/.default")).await;
    assert_eq!(busy_answer.status, StatusCode::OK, "{:?}", busy_answer.body);

    let a = login.refresh_v2(&idle, &format!("{MDE}/.default")).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_grant", 700082);
    let first_line = a
        .str("error_description")
        .split("\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        first_line,
        "AADSTS700082: The refresh token has expired due to inactivity. The token was issued on \
         2026-03-01T12:00:00.0000000Z and was inactive for 90.00:00:00."
    );
}

#[tokio::test]
async fn a_revoked_user_cannot_refresh_and_gets_50173() {
    let login = Login::start(true).await;
    let rt = login.analyst_refresh_token().await;
    // Revoked at the very instant of sign-in (the clock is frozen): still revoked.
    {
        let now = login.emu.state().now();
        let mut world = login.emu.state().world();
        let contoso = world.tenants.get_mut(CONTOSO).expect("tenant");
        for u in &mut contoso.users {
            if u.upn.starts_with("analyst@") {
                u.tokens_revoked_at = Some(now);
            }
        }
    }
    let a = login.refresh_v2(&rt, &format!("{MDE}/.default")).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_grant", 50173);

    // Signing in again after the revocation works.
    let fresh = login.analyst_refresh_token().await;
    let b = login.refresh_v2(&fresh, &format!("{MDE}/.default")).await;
    assert_eq!(b.status, StatusCode::OK, "{:?}", b.body);
}

#[tokio::test]
async fn a_refresh_token_serves_another_consented_resource_but_not_an_unconsented_one() {
    let login = Login::start(true).await;
    let rt = login.analyst_refresh_token().await;
    let graph = login.refresh_v2(&rt, &format!("{GRAPH}/.default")).await;
    assert_error(&graph, StatusCode::BAD_REQUEST, "invalid_grant", 65001);
    assert!(graph.str("error_description").contains(&format!(
        "the application with ID '{CLIENT}' named 'MSSP Alert Connector'"
    )));

    // Consent to Graph through a second sign-in, then the first refresh token reaches it.
    let _ = login.v2_code(&format!("{GRAPH}/.default"), ANALYST).await;
    let graph = login.refresh_v2(&rt, &format!("{GRAPH}/.default")).await;
    assert_eq!(graph.status, StatusCode::OK, "{:?}", graph.body);
    assert_eq!(graph.claims()["aud"], GRAPH);
    assert_eq!(graph.claims()["scp"], "SecurityAlert.Read.All");

    // Refresh tokens are bound to the user, who has no account in Fabrikam.
    let elsewhere = login
        .v2_grant(FABRIKAM, "refresh_token", &[("refresh_token", &rt)])
        .await;
    assert_error(&elsewhere, StatusCode::BAD_REQUEST, "invalid_grant", 50020);
}

#[tokio::test]
async fn client_credentials_for_an_unconsented_tenant_fails_with_700016() {
    let login = Login::start(true).await;
    let a = login
        .client_credentials_v2(NORTHWIND, &format!("{GRAPH}/.default"), SECRET)
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "unauthorized_client", 700016);
    assert!(a.str("error_description").contains(&format!(
        "Application with identifier '{CLIENT}' was not found in the directory '{NORTHWIND}'."
    )));
}

#[tokio::test]
async fn client_credentials_over_common_fails_with_9001023() {
    let login = Login::start(true).await;
    for alias in ["common", "organizations", "consumers"] {
        let a = login
            .client_credentials_v2(alias, &format!("{GRAPH}/.default"), SECRET)
            .await;
        assert_error(&a, StatusCode::BAD_REQUEST, "invalid_request", 9001023);
    }
    let v1 = login
        .v1_grant("common", "client_credentials", &[("resource", MDE)])
        .await;
    assert_error(&v1, StatusCode::BAD_REQUEST, "invalid_request", 9001023);
}

#[tokio::test]
async fn client_credentials_scopes_must_name_one_resource_with_dot_default() {
    let login = Login::start(true).await;
    let two = login
        .client_credentials_v2(
            FABRIKAM,
            &format!("{GRAPH}/.default {MDE}/.default"),
            SECRET,
        )
        .await;
    assert_error(&two, StatusCode::BAD_REQUEST, "invalid_scope", 700022);
    let named = login
        .client_credentials_v2(FABRIKAM, &format!("{GRAPH}/SecurityAlert.Read.All"), SECRET)
        .await;
    assert_error(&named, StatusCode::BAD_REQUEST, "invalid_scope", 70011);
    let unknown = login
        .client_credentials_v2(FABRIKAM, "https://example.com/.default", SECRET)
        .await;
    assert_error(
        &unknown,
        StatusCode::BAD_REQUEST,
        "invalid_resource",
        500011,
    );
    let resource = login
        .v2_grant(FABRIKAM, "client_credentials", &[("resource", GRAPH)])
        .await;
    assert_error(
        &resource,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        901002,
    );
}

#[tokio::test]
async fn a_wrong_secret_gets_401_7000215_and_an_expired_one_7000222() {
    let login = Login::start(true).await;
    let scope = format!("{GRAPH}/.default");
    let wrong = login
        .client_credentials_v2(FABRIKAM, &scope, "not-the-secret")
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_client", 7000215);
    let expired = login
        .client_credentials_v2(FABRIKAM, &scope, EXPIRED_SECRET)
        .await;
    assert_error(
        &expired,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000222,
    );
    assert!(expired.str("error_description").contains(&format!(
        "The provided client secret keys for app '{CLIENT}' are expired."
    )));
    let missing = login
        .v2_token(
            FABRIKAM,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", &scope),
            ],
        )
        .await;
    assert_error(
        &missing,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000218,
    );
}

#[tokio::test]
async fn http_basic_client_authentication_is_accepted() {
    let login = Login::start(true).await;
    let basic = STANDARD.encode(format!("{CLIENT}:{SECRET}"));
    let a = login
        .send(
            login
                .http
                .post(login.url(&format!("{FABRIKAM}/oauth2/v2.0/token")))
                .header("authorization", format!("Basic {basic}"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "https://api.securitycenter.microsoft.com/.default"),
                ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.claims()["roles"], json!(["Alert.Read.All"]));
}

#[tokio::test]
async fn error_bodies_carry_every_documented_field_in_microsofts_formats() {
    let login = Login::start(true).await;
    let a = login
        .client_credentials_v2(FABRIKAM, &format!("{GRAPH}/.default"), "wrong")
        .await;
    let body = a.body.as_object().expect("an object");
    for field in [
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    ] {
        assert!(body.contains_key(field), "{field} missing: {body:?}");
    }
    assert_eq!(a.str("timestamp"), "2026-03-01 12:00:00Z");
    let lines: Vec<&str> = a.str("error_description").split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].starts_with("AADSTS7000215: Invalid client secret provided."));
    assert_eq!(lines[1], format!("Trace ID: {}", a.str("trace_id")));
    assert_eq!(
        lines[2],
        format!("Correlation ID: {}", a.str("correlation_id"))
    );
    assert_eq!(lines[3], "Timestamp: 2026-03-01 12:00:00Z");
    assert!(uuid::Uuid::parse_str(a.str("trace_id")).is_ok());
    assert_eq!(
        a.str("error_uri"),
        "https://login.microsoftonline.com/error?code=7000215"
    );
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(a.headers["content-type"], "application/json; charset=utf-8");
}

#[tokio::test]
async fn unknown_tenants_get_90002_and_bad_requests_get_microsoft_errors_not_server_errors() {
    let login = Login::start(true).await;
    let a = login
        .client_credentials_v2(
            "nowhere.onmicrosoft.com",
            &format!("{GRAPH}/.default"),
            SECRET,
        )
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_tenant", 90002);

    let garbage = login
        .send(
            login
                .http
                .post(login.url(&format!("{CONTOSO}/oauth2/v2.0/token")))
                .body(vec![0xff, 0x00, b'%', b'=', b'&', 0xc3]),
        )
        .await;
    assert_error(&garbage, StatusCode::BAD_REQUEST, "invalid_request", 900144);

    let twice = login
        .v2_token(
            CONTOSO,
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "refresh_token"),
            ],
        )
        .await;
    assert_error(&twice, StatusCode::BAD_REQUEST, "invalid_request", 9000411);

    let grant = login
        .v2_token(
            CONTOSO,
            &[("grant_type", "password"), ("client_id", CLIENT)],
        )
        .await;
    assert_error(
        &grant,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        70003,
    );

    let get = login
        .send(
            login
                .http
                .get(login.url(&format!("{CONTOSO}/oauth2/token"))),
        )
        .await;
    assert_error(&get, StatusCode::BAD_REQUEST, "invalid_request", 900561);

    let (status, _, _) = login
        .get(
            &format!("{CONTOSO}/oauth2/v2.0/authorize"),
            &[("client_id", "\u{0}<x>")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = login.decide("no-such-request", "x", "accept").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_sign_in_page_posts_accept_and_redirects_with_code_and_state() {
    let login = Login::start(false).await;
    let state = "a b&c=d/é";
    let (status, location, html) = login
        .authorize(
            &format!("{CONTOSO}/oauth2/v2.0/authorize"),
            &[
                ("scope", &format!("{MDE}/Alert.Read offline_access")),
                ("state", state),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(location, None);
    for shown in [
        "<form method=\"post\" action=\"/login/_decide\">",
        "<select name=\"user\"",
        "id=\"accept\"",
        "id=\"deny\"",
        "MSSP Alert Connector",
        "Contoso",
        "Alert.Read (delegated permission",
    ] {
        assert!(
            html.contains(shown),
            "the sign-in page shows {shown}: {html}"
        );
    }
    assert!(
        !html.contains("Fabrikam"),
        "only the tenant's users are offered"
    );
    let request = request_of(&html);
    let analyst = option_for(&html, "Contoso Analyst (analyst@contoso.onmicrosoft.com)");
    assert_eq!(
        analyst.split(':').next(),
        Some(CONTOSO),
        "options are tenant:oid"
    );

    let (status, location) = login.decide(request, analyst, "accept").await;
    assert_eq!(status, StatusCode::FOUND);
    let location = location.expect("redirect");
    assert!(
        location.starts_with(&format!("{REDIRECT}?code=")),
        "{location}"
    );
    let q = query_of(&location);
    assert_eq!(q["state"], state, "state is echoed verbatim");
    let token = login.redeem_v2(&q["code"], VERIFIER).await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    assert_eq!(token.claims()["upn"], ANALYST);
    assert!(!token.str("refresh_token").is_empty());

    let (status, _) = login.decide(request, analyst, "accept").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a page request is answered once"
    );

    let consent = login.emu.state().world().tenants[CONTOSO].consents[CLIENT].clone();
    assert_eq!(consent.consented_by.as_deref(), Some(ANALYST));
    assert_eq!(consent.at, Some(start_time()));
}

#[tokio::test]
async fn cancelling_on_the_sign_in_page_redirects_with_access_denied() {
    let login = Login::start(false).await;
    let (_, _, html) = login
        .authorize(
            &format!("{CONTOSO}/oauth2/authorize"),
            &[("resource", SIEM), ("state", "xyz")],
        )
        .await;
    let user = attr_after(&html, "<option", "value");
    let (status, location) = login.decide_on(&html, user, "deny").await;
    assert_eq!(status, StatusCode::FOUND);
    let location = location.expect("redirect");
    let q = query_of(&location);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(
        q["error_description"],
        "AADSTS65004: User declined to consent to access the app."
    );
    assert_eq!(q["state"], "xyz");
    assert!(!q.contains_key("code"));
    assert!(
        !login.emu.state().world().tenants[CONTOSO]
            .consents
            .contains_key(CLIENT),
        "nothing was granted"
    );
}

#[tokio::test]
async fn the_common_endpoint_offers_every_tenants_users_and_tokens_are_for_the_users_home_tenant() {
    let login = Login::start(false).await;
    let (status, _, html) = login
        .authorize("common/oauth2/authorize", &[("resource", MDE)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(NORTHWIND_ADMIN));
    assert!(html.contains(CONTOSO_ADMIN));
    let (status, location) = login.decide_on(&html, NORTHWIND_ADMIN, "accept").await;
    assert_eq!(status, StatusCode::FOUND);
    let q = query_of(&location.expect("redirect"));
    assert!(
        uuid::Uuid::parse_str(&q["session_state"]).is_ok(),
        "v1 adds session_state"
    );
    let token = login
        .v1_grant(
            "common",
            "authorization_code",
            &[("code", &q["code"]), ("redirect_uri", REDIRECT)],
        )
        .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    assert_eq!(token.body["resource"], MDE);
    assert_eq!(token.claims()["tid"], NORTHWIND);
    assert_eq!(token.claims()["scp"], "Alert.Read");
}

#[tokio::test]
async fn v1_admin_consent_redirects_with_the_admins_tenant_then_client_credentials_carry_the_roles()
{
    let login = Login::start(false).await;
    let (status, _, html) = login
        .admin_consent("common/adminconsent", &[("state", "12345")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"admin-only\""));
    let (status, location) = login.decide_on(&html, NORTHWIND_ADMIN, "accept").await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(
        location.as_deref(),
        Some(format!("{REDIRECT}?tenant={NORTHWIND}&state=12345&admin_consent=True").as_str())
    );

    let token = login
        .v1_grant(NORTHWIND, "client_credentials", &[("resource", MDE)])
        .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    assert_eq!(token.body["expires_in"], "3599");
    assert!(token.body.get("refresh_token").is_none());
    let claims = token.claims();
    assert_eq!(claims["tid"], NORTHWIND);
    assert_eq!(claims["aud"], MDE);
    assert_eq!(claims["roles"], json!(["Alert.Read.All"]));
    assert_eq!(claims["appid"], CLIENT);
    assert!(claims.get("scp").is_none());
    assert!(claims.get("upn").is_none());
}

#[tokio::test]
async fn v2_admin_consent_redirects_with_scope_then_the_token_has_the_granted_roles() {
    let login = Login::start(false).await;
    let scope = format!("{GRAPH}/.default");
    let (status, _, html) = login
        .admin_consent(
            &format!("{NORTHWIND}/v2.0/adminconsent"),
            &[("scope", &scope), ("state", "st-2")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("SecurityAlert.Read.All (application permission"));
    let (status, location) = login.decide_on(&html, NORTHWIND_ADMIN, "accept").await;
    assert_eq!(status, StatusCode::FOUND);
    let location = location.expect("redirect");
    assert_eq!(
        location,
        format!(
            "{REDIRECT}?admin_consent=True&tenant={NORTHWIND}&scope=https%3a%2f%2fgraph.microsoft.com%2f.default&state=st-2"
        )
    );

    let graph = login.client_credentials_v2(NORTHWIND, &scope, SECRET).await;
    assert_eq!(graph.status, StatusCode::OK, "{:?}", graph.body);
    let claims = graph.claims();
    assert_eq!(claims["tid"], NORTHWIND);
    assert_eq!(claims["aud"], GRAPH);
    assert_eq!(claims["roles"], json!(["SecurityAlert.Read.All"]));
    assert_eq!(claims["azp"], CLIENT);

    // Only Graph was named: MDE's application permission was not granted.
    let mde = login
        .client_credentials_v2(NORTHWIND, &format!("{MDE}/.default"), SECRET)
        .await;
    assert_eq!(mde.status, StatusCode::OK);
    assert!(
        mde.claims().get("roles").is_none(),
        "no roles claim without roles"
    );
}

#[tokio::test]
async fn admin_consent_refusals_redirect_as_microsoft_documents() {
    let login = Login::start(false).await;
    let page = |path: String, scope: Option<&'static str>| {
        let login = &login;
        async move {
            let mut q = vec![("state", "s")];
            if let Some(s) = scope {
                q.push(("scope", s));
            }
            let (_, _, html) = login.admin_consent(&path, &q).await;
            request_of(&html).to_string()
        }
    };

    let r = page(format!("{CONTOSO}/adminconsent"), None).await;
    let (_, location) = login.decide(&r, CONTOSO_ADMIN, "deny").await;
    assert_eq!(
        location.as_deref(),
        Some(
            format!(
                "{REDIRECT}?error=permission_denied&error_description=The+admin+canceled+the+request&state=s"
            )
            .as_str()
        )
    );

    let r = page(
        format!("{CONTOSO}/v2.0/adminconsent"),
        Some("https://graph.microsoft.com/.default"),
    )
    .await;
    let (_, location) = login.decide(&r, CONTOSO_ADMIN, "deny").await;
    let location = location.expect("redirect");
    assert!(
        location.starts_with(&format!(
            "{REDIRECT}?admin_consent=True&error=consent_required&error_description=AADSTS65004%3a+The+resource+owner+or+authorization+server+denied+the+request.%0d%0aTrace+ID%3a+"
        )),
        "{location}"
    );
    assert!(location.ends_with("&state=s"), "{location}");

    let r = page(format!("{CONTOSO}/adminconsent"), None).await;
    let (_, location) = login.decide(&r, ANALYST, "accept").await;
    let q = query_of(&location.expect("redirect"));
    assert_eq!(q["error"], "permission_denied");
    assert!(q["error_description"].starts_with("AADSTS90094: "));
    assert!(
        !login.emu.state().world().tenants[CONTOSO]
            .consents
            .contains_key(CLIENT),
        "a non-admin grants nothing"
    );
}

#[tokio::test]
async fn an_injected_throttle_answers_429_with_retry_after_and_90055() {
    let login = Login::start(true).await;
    login.emu.state().world().faults.replace(FaultPlanSpec {
        seed: 1,
        rules: vec![FaultRule {
            tenant: Some(FABRIKAM.into()),
            count: Some(1),
            retry_after: Some(2.5),
            ..FaultRule::new(FaultTarget::Identity, FaultKind::Throttle)
        }],
    });
    let scope = format!("{GRAPH}/.default");
    let throttled = login.client_credentials_v2(FABRIKAM, &scope, SECRET).await;
    assert_error(
        &throttled,
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        90055,
    );
    assert_eq!(throttled.headers["retry-after"], "3");
    let next = login.client_credentials_v2(FABRIKAM, &scope, SECRET).await;
    assert_eq!(next.status, StatusCode::OK, "the burst is over");
}

#[tokio::test]
async fn v1_authorize_with_prompt_admin_consent_needs_an_admin_and_grants_the_app_roles() {
    let login = Login::start(false).await;
    let query = [
        ("resource", MDE),
        ("prompt", "admin_consent"),
        ("state", "p"),
    ];
    let path = format!("{CONTOSO}/oauth2/authorize");
    let (_, _, html) = login.authorize(&path, &query).await;
    assert!(html.contains("Alert.Read.All (application permission"));
    let (_, location) = login.decide_on(&html, ANALYST, "accept").await;
    let q = query_of(&location.expect("redirect"));
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].starts_with("AADSTS90094: "));

    let (_, _, html) = login.authorize(&path, &query).await;
    let (_, location) = login.decide_on(&html, CONTOSO_ADMIN, "accept").await;
    let q = query_of(&location.expect("redirect"));
    assert!(q.contains_key("code"));
    let app_only = login
        .client_credentials_v2(CONTOSO, &format!("{MDE}/.default"), SECRET)
        .await;
    assert_eq!(app_only.status, StatusCode::OK, "{:?}", app_only.body);
    assert_eq!(app_only.claims()["roles"], json!(["Alert.Read.All"]));
}

#[tokio::test]
async fn the_issue_tid_switch_mints_tokens_carrying_another_tenants_tid() {
    let login = Login::start(true).await;
    let switches = format!("{}/tenants/{FABRIKAM}/switches", login.emu.urls().control);
    let patch = |value: Value| {
        let request = login
            .http
            .patch(&switches)
            .json(&json!({ "issue_tid": value }));
        async move { request.send().await.expect("answer").status() }
    };
    let scope = format!("{GRAPH}/.default");
    assert_eq!(patch(json!(NORTHWIND)).await, StatusCode::OK);
    let proxied = login.client_credentials_v2(FABRIKAM, &scope, SECRET).await;
    assert_eq!(proxied.status, StatusCode::OK, "{:?}", proxied.body);
    let claims = proxied.claims();
    assert_eq!(claims["tid"], NORTHWIND);
    assert_eq!(
        claims["iss"],
        format!(
            "{}/{NORTHWIND}/v2.0",
            login.emu.urls().authority.as_str().trim_end_matches('/')
        )
    );
    assert_eq!(
        claims["roles"],
        json!(["SecurityAlert.Read.All"]),
        "Fabrikam's grant"
    );

    let v1 = login
        .v1_grant(FABRIKAM, "client_credentials", &[("resource", MDE)])
        .await;
    assert_eq!(v1.claims()["tid"], NORTHWIND);
    assert_eq!(
        v1.claims()["iss"],
        format!("https://sts.windows.net/{NORTHWIND}/")
    );

    assert_eq!(patch(Value::Null).await, StatusCode::OK);
    let own = login.client_credentials_v2(FABRIKAM, &scope, SECRET).await;
    assert_eq!(own.claims()["tid"], FABRIKAM);
}

#[tokio::test]
async fn tenants_are_found_by_verified_domain_and_undecodable_segments_get_90002() {
    let login = Login::start(true).await;
    let by_domain = login
        .client_credentials_v2(
            "FABRIKAM.onmicrosoft.com",
            &format!("{GRAPH}/.default"),
            SECRET,
        )
        .await;
    assert_eq!(by_domain.status, StatusCode::OK, "{:?}", by_domain.body);
    assert_eq!(by_domain.claims()["tid"], FABRIKAM);
    let bad = login
        .send(
            login
                .http
                .post(login.url("%FF%FE/oauth2/v2.0/token"))
                .body("grant_type=client_credentials"),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_tenant", 90002);
}
