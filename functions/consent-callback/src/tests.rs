use serde_json::json;

use super::*;

const EVENT: &str = include_str!("../../../tests/fixtures/events/apigw-http-v2-request.json");

fn fixture() -> Value {
    serde_json::from_str(EVENT).expect("json")
}

#[test]
fn the_fixture_is_a_request_read_from_its_raw_fields() {
    let raw = fixture();
    let req = request(raw.clone()).expect("a v2 request");
    let web = web_request(&req);
    assert_eq!(web.method, "GET");
    assert_eq!(web.path, "/consent/callback");
    assert_eq!(
        web.query,
        raw["rawQueryString"].as_str().expect("raw query")
    );
    assert_eq!(
        req.headers.len(),
        raw["headers"].as_object().expect("headers").len()
    );
}

#[test]
fn hostile_text_reaches_the_handler_verbatim() {
    for (path, query) in [
        ("/consent/callback", "state=\"><script>alert(1)</script>"),
        ("/consent/callback", "a b=c d&e<f>g"),
        ("/consent/start", "link=%zz%FF%00\u{0}"),
        ("/con sent/<x>\"", ""),
        ("", "x"),
    ] {
        let mut e = fixture();
        e["rawPath"] = json!(path);
        e["rawQueryString"] = json!(query);
        let web = web_request(&request(e).expect("a request"));
        assert_eq!((web.path.as_str(), web.query.as_str()), (path, query));
    }
}

#[test]
fn payloads_that_are_no_request_are_refused_not_failed() {
    let mut no_context = fixture();
    no_context
        .as_object_mut()
        .expect("object")
        .remove("requestContext");
    let mut bad_method = fixture();
    bad_method["requestContext"]["http"]["method"] = json!("GE T");
    let mut query_number = fixture();
    query_number["rawQueryString"] = json!(42);
    for bad in [
        json!(null),
        json!([1, 2]),
        json!("GET /consent/callback"),
        json!({}),
        no_context,
        bad_method,
        query_number,
    ] {
        assert_eq!(
            request(bad.clone()).map(|_| ()),
            Err(Unrepresentable::NotARequest),
            "{bad:.80}"
        );
    }
}

#[test]
fn headers_beyond_api_gateways_limit_get_431_without_panicking() {
    for count in [3_000, 40_000] {
        let mut e = fixture();
        let headers: serde_json::Map<String, Value> = (0..count)
            .map(|i| (format!("x-h{i}"), json!("v")))
            .collect();
        e["headers"] = Value::Object(headers);
        assert_eq!(
            request(e).map(|_| ()),
            Err(Unrepresentable::HeadersTooLarge)
        );
    }
    let mut e = fixture();
    e["cookies"] = json!(vec!["c=".repeat(6000)]);
    assert_eq!(
        request(e).map(|_| ()),
        Err(Unrepresentable::HeadersTooLarge)
    );
}

#[test]
fn headers_the_http_types_refuse_are_dropped_not_the_request() {
    let mut e = fixture();
    e["headers"]["x-nul"] = json!("a\u{0}b");
    e["headers"]["x-newline"] = json!("a\r\nx-injected: 1");
    e["headers"]["x-utf8"] = json!("café");
    e["headers"]["bad name"] = json!("v");
    e["headers"]["x-list"] = json!(["a", "b"]);
    let req = request(e).expect("still a request");
    for dropped in ["x-nul", "x-newline", "x-list", "bad name"] {
        assert!(!req.headers.contains_key(dropped), "{dropped}");
    }
    assert!(req.headers.contains_key("user-agent") && req.headers.contains_key("x-utf8"));
}

#[test]
fn an_answer_becomes_an_api_gateway_response() {
    let resp = api_gateway_response(WebResponse {
        status: 302,
        headers: vec![
            (
                "location".into(),
                "https://login.microsoftonline.com/x".into(),
            ),
            ("cache-control".into(), "no-store".into()),
        ],
        body: "<p>hi</p>".into(),
    });
    let v = serde_json::to_value(&resp).expect("serializes");
    assert_eq!(v["statusCode"], 302);
    assert_eq!(
        v["headers"]["location"],
        "https://login.microsoftonline.com/x"
    );
    assert_eq!(v["headers"]["cache-control"], "no-store");
    assert_eq!(v["body"], "<p>hi</p>");
    assert_eq!(v["isBase64Encoded"], false);
}

#[test]
fn an_unrepresentable_header_becomes_a_bare_500() {
    let resp = api_gateway_response(WebResponse {
        status: 200,
        headers: vec![("x".into(), "a\nb".into())],
        body: "secret-free".into(),
    });
    assert_eq!(resp.status_code, 500);
    assert!(resp.headers.is_empty());
    assert!(matches!(resp.body, Some(Body::Text(ref t)) if t.is_empty()));
}
