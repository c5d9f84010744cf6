//! `consent-callback`: the consent endpoint behind API Gateway (HTTP API, payload format 2.0).
//!
//! Translates a `lambda_http` request into a [`WebRequest`], serves it with the shared consent
//! handler ([`shared::consent::handler`], the same one the local server uses) and translates the
//! [`WebResponse`] back. Routes, statuses and pages are documented there.

use lambda_http::{Body, Error, Request, Response};
use shared::consent::handler;
use shared::consent::web::{WebRequest, WebResponse};
use shared::flows::Deps;

/// Serves one API Gateway request.
pub async fn handle(services: &Deps, req: Request) -> Result<Response<Body>, Error> {
    let answer = handler::handle(services, &web_request(&req)).await;
    Ok(http_response(answer))
}

/// The method, path and raw query string of `req`.
pub fn web_request(req: &Request) -> WebRequest {
    WebRequest {
        method: req.method().as_str().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or_default().to_string(),
    }
}

/// `answer` as an HTTP response (the shared translation the local server uses too). A header
/// the `http` crate refuses (never produced by the consent handler) turns the answer into a bare
/// 500 rather than a Lambda error.
pub fn http_response(answer: WebResponse) -> Response<Body> {
    shared::consent::web::http_response(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = include_str!("../../../tests/fixtures/events/apigw-http-v2-request.json");

    #[test]
    fn an_api_gateway_v2_event_becomes_a_web_request_with_the_raw_query() {
        let req = lambda_http::request::from_str(EVENT).expect("a v2 event");
        let web = web_request(&req);
        assert_eq!(web.method, "GET");
        assert_eq!(web.path, "/consent/callback");
        let raw: serde_json::Value = serde_json::from_str(EVENT).expect("json");
        assert_eq!(
            web.query,
            raw["rawQueryString"].as_str().expect("raw query")
        );
    }

    #[test]
    fn a_web_response_keeps_status_headers_and_body() {
        let resp = http_response(WebResponse {
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
        assert_eq!(resp.status(), 302);
        assert_eq!(
            resp.headers()["location"],
            "https://login.microsoftonline.com/x"
        );
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert!(matches!(resp.body(), Body::Text(t) if t == "<p>hi</p>"));
    }

    #[test]
    fn an_unrepresentable_header_becomes_a_bare_500() {
        let resp = http_response(WebResponse {
            status: 200,
            headers: vec![("x".into(), "a\nb".into())],
            body: "secret-free".into(),
        });
        assert_eq!(resp.status(), 500);
        assert!(matches!(resp.body(), Body::Empty));
    }
}
