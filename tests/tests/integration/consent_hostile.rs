//! Hostile and broken requests to the `consent-callback` binary, through the API Gateway bridge:
//! every one gets a 4xx with the security headers, echoes nothing it should not, and leaves the
//! stores as they were (DynamoDB table and Secrets Manager secrets compared before and after;
//! the only change allowed is the used nonce of a request whose state was genuine and complete,
//! which must stay spent).

use std::sync::Arc;

use chrono::{Duration, Utc};
use shared::clock::ManualClock;
use shared::config::Cloud;
use shared::domain::{AlertApi, AuthModel, Tenant};
use shared::flows::onboarding::{begin_consent, consent_link};

use crate::fixtures::{CONTOSO, FABRIKAM, NORTHWIND, WOODGROVE, tid};
use crate::lambda_world::{FnWorld, assert_security_headers, enc, link_param, raw_query};

struct Case {
    name: &'static str,
    method: &'static str,
    /// Path and query, appended to the bridge's URL.
    target: String,
    /// The exact status expected.
    status: u16,
    /// Whether a genuine state's nonce is spent (the one allowed change to the stores).
    spends_nonce: bool,
    /// Text the page must contain.
    shows: Option<&'static str>,
}

/// A GET of `target` that must get 400 (Bad Request).
fn bad(name: &'static str, target: impl Into<String>) -> Case {
    case(name, target, 400)
}

fn case(name: &'static str, target: impl Into<String>, status: u16) -> Case {
    Case {
        name,
        method: "GET",
        target: target.into(),
        status,
        spends_nonce: false,
        shows: None,
    }
}

#[tokio::test]
async fn hostile_consent_requests_get_a_4xx_and_change_nothing() {
    let mut w = FnWorld::start(true).await;
    let function = w.serve_consent().await;
    let gw = w.gw.url().as_str().trim_end_matches('/').to_owned();

    let link_a = w
        .register(CONTOSO, "Contoso", AuthModel::DelegatedV1, AlertApi::Siem)
        .await;
    let link_b = w
        .register(FABRIKAM, "Fabrikam", AuthModel::DelegatedV2, AlertApi::Mde)
        .await;
    let link_c = w
        .register(
            NORTHWIND,
            "Northwind",
            AuthModel::Application,
            AlertApi::Graph,
        )
        .await;
    let link_d = w
        .register(
            WOODGROVE,
            "Woodgrove",
            AuthModel::DelegatedV1,
            AlertApi::Siem,
        )
        .await;

    // Genuine answers from Microsoft, not yet sent to the callback.
    let callback = |u: &url::Url| -> (String, String) {
        let get = |k: &str| {
            u.query_pairs()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        (get("state"), get("code"))
    };
    let ms_a = w.redirect_of(link_a.as_str()).await;
    let (state_a, code_a) = callback(&w.redirect_of(ms_a.as_str()).await);
    let ms_b = w.redirect_of(link_b.as_str()).await;
    let (state_b, code_b) = callback(&w.redirect_of(ms_b.as_str()).await);
    // Northwind's admin never signs in: only the state of the redirect to Microsoft.
    let ms_c = w.redirect_of(link_c.as_str()).await;
    let (state_c, _) = callback(&ms_c);
    assert!(!state_a.is_empty() && !code_a.is_empty() && !state_b.is_empty());
    assert!(!state_c.is_empty() && !code_b.is_empty());

    // Woodgrove consents for real; its callback is replayed below.
    let ms_d = w.redirect_of(link_d.as_str()).await;
    let back_d = w.redirect_of(ms_d.as_str()).await;
    let ok = w
        .env
        .http
        .get(back_d.clone())
        .send()
        .await
        .expect("consent");
    assert_eq!(
        ok.status().as_u16(),
        200,
        "{}",
        ok.text().await.unwrap_or_default()
    );

    // A sign-in that began 8 days ago (links live 7 days, states 30 minutes).
    let mut old = w.services.clone();
    old.clock = Arc::new(ManualClock::new(Utc::now() - Duration::days(8)));
    let contoso = w.tenant(CONTOSO).await.expect("contoso");
    let old_link = consent_link(&old, &contoso).await.expect("old link");
    let old_ms = begin_consent(&old, &link_param(&old_link))
        .await
        .expect("valid back then");
    let old_back = w.redirect_of(old_ms.as_str()).await;
    // A link signed by us for a tenant that is not registered.
    let ghost = Tenant::pending(
        tid("55555555-5555-4555-8555-555555555555"),
        "Ghost".into(),
        AuthModel::DelegatedV1,
        AlertApi::Siem,
        Cloud::Commercial,
        Utc::now(),
    );
    let ghost_link = consent_link(&w.services, &ghost).await.expect("link");

    let (payload_a, _) = state_a.split_once('.').expect("signed state");
    let forged = format!("{payload_a}.{}", "A".repeat(43));
    let script = "<script>alert(document.cookie)</script>";
    let cb = |q: String| format!("/consent/callback?{q}");
    let st = |q: String| format!("/consent/start?{q}");
    let sa = enc(&state_a);
    let mut cases = vec![
        bad("missing state", cb(format!("code={}", enc(&code_a)))),
        bad(
            "forged state",
            cb(format!("code={}&state={}", enc(&code_a), enc(&forged))),
        ),
        bad(
            "garbage state",
            cb(format!("code={}&state=not-a-state", enc(&code_a))),
        ),
        bad(
            "state far too long",
            cb(format!("code=x&state={}", "A".repeat(2000))),
        ),
        bad(
            "markup as state",
            cb(format!("code=x&state={}", enc(script))),
        ),
        case("expired state", cb(raw_query(&old_back)), 410),
        bad(
            "error=access_denied",
            cb(format!(
                "state={sa}&error=access_denied&error_description={}",
                enc("AADSTS65004: User declined to consent to access the app.")
            )),
        ),
        Case {
            shows: Some("&lt;script&gt;alert(document.cookie)&lt;/script&gt;"),
            ..case(
                "markup in error_description",
                cb(format!(
                    "state={sa}&error=access_denied&error_description={}",
                    enc(&format!("AADSTS65004 {script}<img src=x onerror=alert(1)>"))
                )),
                400,
            )
        },
        bad(
            "markup in error",
            cb(format!("state={sa}&error={}", enc(script))),
        ),
        bad("missing code", cb(format!("state={sa}"))),
        bad(
            "code far too long",
            cb(format!("state={sa}&code={}", "c".repeat(5000))),
        ),
        bad(
            "admin_consent missing",
            cb(format!("state={}&tenant={NORTHWIND}", enc(&state_c))),
        ),
        bad(
            "admin_consent=False",
            cb(format!(
                "state={}&tenant={NORTHWIND}&admin_consent=False",
                enc(&state_c)
            )),
        ),
        case(
            "oversized query",
            cb(format!("state={sa}&code={}", "q".repeat(9000))),
            414,
        ),
        bad(
            "malformed percent-encoding",
            cb(format!("state=%zz{sa}&code=x")),
        ),
        bad("truncated percent-encoding", cb(format!("state={sa}%4"))),
        bad("not UTF-8", cb(format!("state={sa}&code=%FF%FE%C3%28"))),
        bad(
            "duplicated state",
            cb(format!("state={sa}&state={}&code=x", enc(&state_b))),
        ),
        bad(
            "duplicated code",
            cb(format!(
                "state={sa}&code={}&code={}",
                enc(&code_a),
                enc(&code_b)
            )),
        ),
        Case {
            spends_nonce: true,
            ..bad(
                "a code from another tenant",
                cb(format!("state={sa}&code={}", enc(&code_b))),
            )
        },
        Case {
            spends_nonce: true,
            ..bad(
                "other-tenant state",
                cb(format!("state={}&code={}", enc(&state_b), enc(&code_a))),
            )
        },
        Case {
            spends_nonce: true,
            ..case(
                "admin consent claimed in another tenant",
                cb(format!(
                    "state={}&admin_consent=True&tenant={FABRIKAM}",
                    enc(&state_c)
                )),
                403,
            )
        },
        case("replayed state", cb(raw_query(&back_d)), 409),
        case("unknown path", "/consent/other", 404),
        case("root path", "/", 404),
        case("trailing slash", "/consent/callback/?state=x", 404),
        case("path traversal", "/consent/start/../../admin", 404),
        Case {
            method: "POST",
            ..case("POST to the callback", cb(format!("state={sa}")), 405)
        },
        Case {
            method: "PUT",
            ..case(
                "PUT to start",
                st(format!("link={}", enc(&link_param(&link_a)))),
                405,
            )
        },
        Case {
            method: "DELETE",
            ..case("DELETE the callback", "/consent/callback", 405)
        },
        Case {
            method: "HEAD",
            ..case("HEAD of start", "/consent/start", 405)
        },
        bad("start without link", "/consent/start"),
        bad("start with a garbage link", st("link=bogus".into())),
        bad(
            "start with markup as link",
            st(format!("link={}", enc(script))),
        ),
        bad("start with a state as link", st(format!("link={sa}"))),
        bad(
            "start with a duplicated link",
            st(format!(
                "link={}&link={}",
                enc(&link_param(&link_a)),
                enc(&link_param(&link_b))
            )),
        ),
        case(
            "start with an expired link",
            st(format!("link={}", enc(&link_param(&old_link)))),
            410,
        ),
        case(
            "start with a link for an unknown tenant",
            st(format!("link={}", enc(&link_param(&ghost_link)))),
            410,
        ),
    ];
    assert!(cases.len() >= 20);

    let never_echoed = [
        state_a.as_str(),
        state_b.as_str(),
        state_c.as_str(),
        code_a.as_str(),
        code_b.as_str(),
        "<script",
        "<img",
    ];
    let mut failures = Vec::new();
    for c in cases.drain(..) {
        let before = w.snapshot().await;
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
        let resp = w
            .env
            .http
            .request(method, format!("{gw}{}", c.target))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        assert_security_headers(&resp, c.name);
        if status == 405 {
            assert_eq!(
                resp.headers().get("allow").and_then(|v| v.to_str().ok()),
                Some("GET"),
                "{}",
                c.name
            );
        }
        let body = resp.text().await.unwrap_or_default();
        let after = w.snapshot().await;
        if status != c.status {
            failures.push(format!("{}: {status}, expected {}", c.name, c.status));
        }
        if c.method != "HEAD" {
            assert!(body.contains("<h1>"), "{}: a page: {body}", c.name);
        }
        for s in never_echoed {
            assert!(!body.contains(s), "{}: the page echoes {s:.12}…", c.name);
        }
        if let Some(text) = c.shows {
            assert!(body.contains(text), "{}: {body}", c.name);
        }
        if c.spends_nonce {
            assert_eq!(
                after.without_nonces(),
                before.without_nonces(),
                "{}: stores changed",
                c.name
            );
            assert_eq!(after.nonces(), before.nonces() + 1, "{}", c.name);
        } else {
            assert_eq!(after, before, "{}: stores changed", c.name);
        }
    }
    assert!(
        failures.is_empty(),
        "unexpected statuses:\n{}",
        failures.join("\n")
    );

    for id in [CONTOSO, FABRIKAM, NORTHWIND] {
        let t = w.tenant(id).await.expect("tenant");
        assert_ne!(t.status, shared::domain::TenantStatus::Active, "{id}");
        assert!(w.tokens(id).await.is_none(), "{id}: no tokens");
    }
    let logs = function.logs();
    for s in never_echoed.iter().take(5) {
        assert!(!logs.contains(s), "the function logs a state or code");
    }
    assert!(logs.contains("consent request refused"), "{logs}");
}
