//! Property: whatever method, path and query string an API Gateway request carries (arbitrary
//! unicode, `%` sequences valid or not, control characters, lengths up to a megabyte), the
//! function's translation and the shared consent handler answer it without panicking, with a
//! 2xx, 3xx or 4xx page. 100,000 cases through [`consent_callback::respond`], the whole path a
//! Lambda invocation takes after the runtime: the typed parse, the route, the query parser, and
//! the consent flows (which read the app's credentials from a local file and verify what they
//! are given) over local stores in a temporary directory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use shared::adapters::local::FileAppSecrets;
use shared::clock::SystemClock;
use shared::config::Endpoints;
use shared::flows::{Deps, Settings};
use shared::ports::AppCredentials;
use shared::secret::{ClientSecret, SigningKey};

const CASES: u32 = 100_000;
const EVENT: &str = include_str!("../../../tests/fixtures/events/apigw-http-v2-request.json");
const ROUTES: &[&str] = &[
    "/consent/start",
    "/consent/callback",
    "/prod/consent/start",
    "/prod/consent/callback",
];
/// Pieces of queries and paths that reach the parsers' edges.
const PIECES: &[&str] = &[
    "state",
    "code",
    "link",
    "admin_consent",
    "tenant",
    "error",
    "error_description",
    "=",
    "&",
    "%",
    "%2",
    "%zz",
    "%41",
    "%FF",
    "%C3%A9",
    "%ED%A0%80",
    "%C0%AF",
    "%00",
    "+",
    "\"",
    "<",
    ">",
    " ",
    "\0",
    "\r\n",
    "\t",
    "\u{7f}",
    "é",
    "🙂",
    "\u{202e}",
    "True",
    "x.y",
    ".",
    "/",
    "..",
];

fn deps(dir: &std::path::Path) -> Deps {
    let app = dir.join("app.json");
    FileAppSecrets::at(&app)
        .write(&AppCredentials {
            client_id: "00000000-0000-4000-8000-000000000000".into(),
            client_secret: ClientSecret::new("property-test-secret".into()),
            state_key: SigningKey::new(vec![7; 32]),
            tenant_id: None,
            client_secret_expires: None,
        })
        .expect("app credentials");
    let base = url::Url::parse("https://consent.example.com/prod").expect("url");
    shared::assemble::local(
        dir,
        &app,
        Arc::new(SystemClock),
        Settings::new(Endpoints::PerCloud, base),
    )
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => prop::collection::vec(select(PIECES), 0..24).prop_map(|v| v.concat()),
        15 => any::<String>(),
        1 => (select(PIECES), 4_000..200_000usize).prop_map(|(p, n)| p.repeat(n)),
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("GET".to_owned()),
        2 => select(&["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", ""][..])
            .prop_map(str::to_owned),
        1 => "[A-Z]{1,12}",
        1 => any::<String>(),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(ROUTES).prop_map(str::to_owned),
        2 => (select(ROUTES), text()).prop_map(|(r, t)| format!("{r}{t}")),
        1 => text(),
    ]
}

#[test]
fn any_method_path_and_query_gets_a_page_below_500() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deps = deps(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let template: Value = serde_json::from_str(EVENT).expect("fixture");
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    let statuses = Mutex::new(BTreeMap::<i64, u32>::new());
    let started = Instant::now();
    let result = runner.run(&(method(), path(), text()), |(method, path, query)| {
        let mut event = template.clone();
        event["rawPath"] = json!(path);
        event["rawQueryString"] = json!(query);
        event["requestContext"]["http"]["method"] = json!(method);
        let answer = rt.block_on(consent_callback::respond(&deps, event));
        *statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(answer.status_code)
            .or_default() += 1;
        prop_assert!(
            (200..500).contains(&answer.status_code),
            "{} for {method:?} {path:.80?} {query:.80?}",
            answer.status_code
        );
        prop_assert_eq!(
            answer.headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"text/html; charset=utf-8"[..])
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "{CASES} requests in {:.1?}, by status: {:?}",
        started.elapsed(),
        statuses.into_inner().unwrap_or_else(|e| e.into_inner())
    );
}
