//! Hostile API Gateway v2 events handed straight to the `consent-callback` binary through the
//! Runtime API, with no HTTP client in front to tidy them: raw `"` `<` `>` and spaces, NUL,
//! broken or non-UTF-8 percent-encodings, 100 KB and 1 MB queries, repeated and empty parameters,
//! a missing or garbled `requestContext`, base64 bodies, every method, unknown paths, thousands of
//! headers. Every one answers a 4xx HTML page with the security headers (never a 5xx, a Lambda
//! error or a panic) and leaves the DynamoDB table and the Secrets Manager secrets as they were.
//! A payload that is not JSON at all is the runtime's error, and the process serves on.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use shared::domain::{AlertApi, AuthModel};
use shared::flows::onboarding::begin_consent;
use tests::apigw::event_for;

use crate::fixtures::CONTOSO;
use crate::lambda_world::{FnWorld, SECURITY_HEADERS, enc, link_param, raw_query};

const CB: &str = "/consent/callback";
const START: &str = "/consent/start";

struct Case {
    name: String,
    event: Value,
    status: u16,
}

fn ev(method: &str, path: &str, query: &str) -> Value {
    event_for(method, path, query, &[], b"").expect("the v2 fixture")
}

/// `event` changed by `change`.
fn with(mut event: Value, change: impl FnOnce(&mut Value)) -> Value {
    change(&mut event);
    event
}

fn case(name: impl Into<String>, event: Value, status: u16) -> Case {
    Case {
        name: name.into(),
        event,
        status,
    }
}

fn get(name: &str, path: &str, query: &str, status: u16) -> Case {
    case(name, ev("GET", path, query), status)
}

fn remove(field: &'static str) -> impl FnOnce(&mut Value) {
    move |e| {
        e.as_object_mut().expect("object").remove(field);
    }
}

fn headers(n: usize) -> Value {
    Value::Object(
        (0..n)
            .map(|i| (format!("x-h{i}"), json!("v")))
            .collect::<Map<_, _>>(),
    )
}

/// GETs with raw characters, NUL, broken or non-UTF-8 percent-encodings, repeated and empty
/// parameters: (what, path, raw query, status).
#[rustfmt::skip] // a table: one case a line
const GETS: &[(&str, &str, &str, u16)] = &[
    ("raw quote as state", CB, "state=\"&code=x", 400),
    ("markup as state", CB, "state=<script>alert(1)</script>&code=x", 400),
    ("raw spaces", CB, "state=a b&code=c d", 400),
    ("raw > and <", CB, "state=\">&code=<", 400),
    ("a lone quote", CB, "\"", 400),
    ("a lone <>", CB, "<>", 400),
    ("a lone space", CB, " ", 400),
    ("CRLF header injection", CB, "state=a\r\nSet-Cookie: x=1", 400),
    ("markup as link", START, "link=\"><img src=x onerror=alert(1)>", 400),
    ("<> as link", START, "link=<>", 400),
    ("raw NUL in state and code", CB, "state=\0&code=\0", 400),
    ("%00 as state", CB, "state=%00", 400),
    ("%00 as link", START, "link=%00", 400),
    ("a lone %", CB, "%", 400),
    ("state=%", CB, "state=%", 400),
    ("%zz", CB, "state=%zz&code=x", 400),
    ("truncated %4", CB, "state=%4", 400),
    ("%%41", CB, "state=%%41", 400),
    ("%FF%FE: not UTF-8", CB, "state=%FF%FE", 400),
    ("%C3%28: invalid UTF-8", CB, "state=%C3%28", 400),
    ("an encoded surrogate", CB, "state=%ED%A0%80", 400),
    ("an overlong encoding", CB, "state=%C0%AF", 400),
    ("a truncated multibyte link", START, "link=%E2%82", 400),
    ("unicode as state", CB, "state=ünï©ødé🙂&code=☃", 400),
    ("a repeated state", CB, "state=a&state=b", 400),
    ("only separators", CB, "&&&&", 400),
    ("a lone =", CB, "=", 400),
    ("an empty state", CB, "state=&code=", 400),
    ("names without values", CB, "state&code", 400),
    ("an empty link", START, "link=", 400),
];

/// Genuine link, state and code with something hostile added; NUL in the path and the method;
/// huge queries and paths; many parameters.
fn built_cases(link: &str, state: &str, code: &str) -> Vec<Case> {
    let sc = format!("state={}&code={}", enc(state), enc(code));
    let kb100 = "A".repeat(100 * 1024);
    let mb1 = "B".repeat(1024 * 1024);
    let link_q = format!("link={link}");
    let many: String = (0..1000).map(|i| format!("p{i}=&")).collect();
    vec![
        get(
            "a genuine link, raw quote",
            START,
            &format!("{link_q}\""),
            400,
        ),
        get(
            "a genuine state, raw quote",
            CB,
            &format!("state={state}\"&code=x"),
            400,
        ),
        get(
            "genuine state and code, code repeated",
            CB,
            &format!("{sc}&code=x"),
            400,
        ),
        get(
            "a repeated genuine link",
            START,
            &format!("{link_q}&{link_q}"),
            400,
        ),
        get("NUL in the path", &format!("{CB}\0"), "", 404),
        case("NUL in the method", ev("GET\0", CB, ""), 400),
        get("a 100 KB query", CB, &format!("state={kb100}"), 414),
        get("a 1 MB query", CB, &format!("state={mb1}"), 414),
        get("a 1 MB query of %", START, &"%".repeat(1024 * 1024), 414),
        get(
            "a genuine link and 1 MB more",
            START,
            &format!("{link_q}&x={mb1}"),
            414,
        ),
        get(
            "genuine state and code and 1 MB more",
            CB,
            &format!("{sc}&x={mb1}"),
            414,
        ),
        get("a 1 MB query on an unknown path", "/nowhere", &mb1, 404),
        get("a 100 KB path", &format!("/{kb100}"), "", 404),
        get("a parameter 1,000 times", CB, &"a=1&".repeat(1000), 400),
        get("1,000 distinct empty parameters", CB, &many, 400),
    ]
}

/// Payloads that are not API Gateway requests, or only barely.
fn shape_cases() -> Vec<Case> {
    let http = |change: fn(&mut Value)| with(ev("GET", CB, ""), change);
    vec![
        case(
            "no requestContext",
            with(ev("GET", CB, ""), remove("requestContext")),
            400,
        ),
        case(
            "requestContext null",
            http(|e| e["requestContext"] = Value::Null),
            400,
        ),
        case(
            "requestContext a string",
            http(|e| e["requestContext"] = json!("x")),
            400,
        ),
        case(
            "requestContext without http",
            http(|e| e["requestContext"] = json!({})),
            400,
        ),
        case(
            "http null",
            http(|e| e["requestContext"]["http"] = Value::Null),
            400,
        ),
        case(
            "http an array",
            http(|e| e["requestContext"]["http"] = json!([])),
            400,
        ),
        case(
            "no method",
            http(|e| e["requestContext"]["http"] = json!({"path": CB})),
            400,
        ),
        case(
            "a number as method",
            http(|e| e["requestContext"]["http"]["method"] = json!(42)),
            400,
        ),
        case("GE T as method", ev("GE T", CB, ""), 400),
        case("markup as method", ev("<script>", CB, ""), 400),
        case(
            "timeEpoch a word",
            http(|e| e["requestContext"]["timeEpoch"] = json!("yesterday")),
            400,
        ),
        case(
            "rawQueryString a number",
            http(|e| e["rawQueryString"] = json!(42)),
            400,
        ),
        case(
            "rawPath an object",
            http(|e| e["rawPath"] = json!({"p": 1})),
            400,
        ),
        case(
            "stageVariables a string",
            http(|e| e["stageVariables"] = json!("x")),
            400,
        ),
        case("headers a string", http(|e| e["headers"] = json!("x")), 400),
        case(
            "isBase64Encoded a word",
            http(|e| e["isBase64Encoded"] = json!("yes")),
            400,
        ),
        case("an array", json!([1, 2, 3]), 400),
        case("a string", json!("GET /consent/callback"), 400),
        case("null", Value::Null, 400),
        case("a number", json!(1e308), 400),
        case("an empty object", json!({}), 400),
        case(
            "a REST API (v1) event",
            json!({"resource": "/", "path": CB, "httpMethod": "GET", "requestContext": {"stage": "prod"}}),
            400,
        ),
        case(
            "extra fields, one 100 deep",
            http(|e| {
                let mut deep = json!(1);
                for _ in 0..100 {
                    deep = json!([deep]);
                }
                e["evil"] = deep;
                e["version"] = json!("9.9");
            }),
            400,
        ),
        case(
            "rawPath missing",
            with(ev("GET", CB, ""), remove("rawPath")),
            404,
        ),
    ]
}

/// Bodies, methods, paths and headers.
fn request_cases(link: &str, state: &str, code: &str) -> Vec<Case> {
    let sc = format!("state={}&code={}", enc(state), enc(code));
    let b64 = |e: &mut Value, body: String| {
        e["body"] = json!(body);
        e["isBase64Encoded"] = json!(true);
    };
    let form = STANDARD.encode(sc.as_bytes());
    let mut cases = vec![
        case(
            "GET with a base64 body",
            with(ev("GET", CB, "state=x"), |e| {
                b64(e, STANDARD.encode([0xff, 0, 1]))
            }),
            400,
        ),
        case(
            "POST of a genuine callback as a base64 form",
            with(ev("POST", CB, ""), |e| b64(e, form.clone())),
            405,
        ),
        case(
            "POST with a body that is not base64",
            with(ev("POST", START, ""), |e| b64(e, "!!!*".into())),
            405,
        ),
        case(
            "PUT with a 1 MB base64 body",
            with(ev("PUT", CB, ""), |e| {
                b64(e, STANDARD.encode(vec![7u8; 768 * 1024]))
            }),
            405,
        ),
        case("POST of genuine state and code", ev("POST", CB, &sc), 405),
        case(
            "PUT of a genuine link",
            ev("PUT", START, &format!("link={link}")),
            405,
        ),
        case("an empty method (read as GET)", ev("", CB, ""), 400),
    ];
    for m in [
        "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "PROPFIND", "get",
    ] {
        cases.push(case(
            format!("{m} of the callback"),
            ev(m, CB, "state=x"),
            405,
        ));
    }
    for p in [
        "/",
        "",
        "/consent",
        "/consent/callback/",
        "/CONSENT/CALLBACK",
        "/consent/%63allback",
        "/consent/start/../callback",
        "consent/callback",
        "//consent/callback",
        "/consent/callback;x=1",
        "/consent/callback\"<>",
        "/é/ü",
        "/consent/start%00",
    ] {
        cases.push(get(&format!("unknown path {p:?}"), p, &sc, 404));
    }
    let big = |e: &mut Value, n| e["headers"] = headers(n);
    cases.extend([
        case(
            "3,000 headers",
            with(ev("GET", CB, &sc), |e| big(e, 3_000)),
            431,
        ),
        case(
            "40,000 headers",
            with(ev("GET", CB, &sc), |e| big(e, 40_000)),
            431,
        ),
        case(
            "a 20 KB header",
            with(ev("GET", START, &format!("link={link}")), |e| {
                e["headers"]["x-big"] = json!("h".repeat(20_000))
            }),
            431,
        ),
        case(
            "12 KB of cookies",
            with(ev("GET", CB, &sc), |e| {
                e["cookies"] = json!(vec!["c=".repeat(3_000); 2])
            }),
            431,
        ),
        case(
            "200 headers on an unknown path",
            with(ev("GET", "/x", ""), |e| big(e, 200)),
            404,
        ),
        case(
            "headers with NUL, CRLF and bad names",
            with(ev("GET", CB, "state=x"), |e| {
                e["headers"]["x-nul"] = json!("a\0b");
                e["headers"]["x-crlf"] = json!("a\r\nx: y");
                e["headers"]["bad name"] = json!("v");
                e["headers"]["x-n"] = json!(1);
            }),
            400,
        ),
    ]);
    cases
}

#[tokio::test]
async fn hostile_api_gateway_events_get_a_4xx_page_and_change_nothing() {
    let w = FnWorld::start(true).await;
    let f = w.spawn("consent-callback").await;
    let genuine = w
        .register(CONTOSO, "Contoso", AuthModel::DelegatedV1, AlertApi::Siem)
        .await;
    let link = enc(&link_param(&genuine));
    // A genuine answer from Microsoft, never sent to the callback as it is.
    let ms = begin_consent(&w.services, &link_param(&genuine))
        .await
        .expect("consent begins");
    let back = w.redirect_of(ms.as_str()).await;
    let pairs: Map<String, Value> = back
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), json!(v)))
        .collect();
    let (state, code) = (
        pairs["state"].as_str().expect("state"),
        pairs["code"].as_str().expect("code"),
    );
    assert!(!raw_query(&back).is_empty());

    let mut cases: Vec<Case> = GETS.iter().map(|&(n, p, q, s)| get(n, p, q, s)).collect();
    cases.extend(built_cases(&link, state, code));
    cases.extend(shape_cases());
    cases.extend(request_cases(&link, state, code));
    assert!(cases.len() >= 60, "{} cases", cases.len());

    let mut failures = Vec::new();
    for c in &cases {
        let before = w.snapshot().await;
        let answer = f.invoke(&c.event).await;
        let after = w.snapshot().await;
        if after != before {
            failures.push(format!("{}: the stores changed", c.name));
        }
        match answer {
            Err(e) => failures.push(format!("{}: a Lambda error: {e:.300}", c.name)),
            Ok(a) => {
                failures.extend(page_problem(&a, c.status).map(|p| format!("{}: {p}", c.name)))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let logs = f.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(
        !logs.contains(state) && !logs.contains(code),
        "the logs hold the state or code"
    );
    println!(
        "{} hostile API Gateway events: 4xx pages, stores unchanged",
        cases.len()
    );
}

/// What is wrong with `answer` as the 4xx page `status`, if anything.
fn page_problem(answer: &Value, status: u16) -> Option<String> {
    let got = answer["statusCode"].as_u64();
    if got != Some(u64::from(status)) {
        return Some(format!("status {got:?}, expected {status}"));
    }
    for (name, value) in SECURITY_HEADERS {
        if answer["headers"][name].as_str() != Some(value) {
            return Some(format!("header {name}: {}", answer["headers"][name]));
        }
    }
    let body = answer["body"].as_str().unwrap_or_default();
    if answer["isBase64Encoded"] != json!(false) || !body.contains("<h1>") {
        return Some(format!("not an HTML page: {answer:.300}"));
    }
    ["<script", "<img"]
        .iter()
        .find(|s| body.contains(*s))
        .map(|s| format!("the page echoes {s}"))
}

#[tokio::test]
async fn a_payload_that_is_not_json_is_the_runtimes_error_and_the_function_serves_on() {
    let w = FnWorld::start(true).await;
    let f = w.spawn("consent-callback").await;
    let mut nested = "[".repeat(1000);
    nested.push_str(&"]".repeat(1000));
    let payloads: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        Vec::new(),
        b"{\"rawPath\": \"/consent/callback\",".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        b"GET /consent/callback?state=\" HTTP/1.1\r\n\r\n".to_vec(),
        nested.into_bytes(),
    ];
    for p in &payloads {
        let e = f
            .invoke_raw(p.clone(), Duration::from_secs(30))
            .await
            .expect_err("not an event");
        assert!(e.error_type.contains("DeserializeError"), "{e:.300}");
    }
    let a = f
        .invoke(&ev("GET", "/nowhere", ""))
        .await
        .expect("still serving");
    assert_eq!(a["statusCode"], 404);
    assert!(!f.logs().contains("panicked"));
}
