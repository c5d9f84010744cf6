//! `consent-callback`: the consent endpoint behind API Gateway (HTTP API, payload format 2.0).
//!
//! | event | answer |
//! |---|---|
//! | `ApiGatewayV2httpRequest` | the shared consent handler's answer ([`shared::consent::handler`], the one `mssp serve` serves too) as an `ApiGatewayV2httpResponse`: status, headers, HTML body, `isBase64Encoded: false`. Routes, statuses and pages are documented there. |
//! | a request whose headers and cookies exceed API Gateway's own limit ([`MAX_HEADER_BYTES`]) | `431` refusal page |
//! | any other JSON payload (API Gateway never sends one) | `400` refusal page |
//!
//! The request is read from its raw fields — `requestContext.http.method`, `rawPath`,
//! `rawQueryString` — and never made into a URI, so no text a browser can send makes the function
//! fail. The endpoint is public: every answer is a page, never a Lambda error, which would count
//! in the function's Errors alarm for any passer-by to raise. Hence also the `400` page, rather
//! than an `InvalidEvent` error, for a payload that is not a request. A payload that is not JSON
//! at all never reaches [`handle`]: the runtime reports it (and Lambda's Invoke API refuses it).

use std::convert::Infallible;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::consent::handler;
use shared::consent::web::{WebRequest, WebResponse};
use shared::flows::Deps;

/// API Gateway's limit on an HTTP API request's "request line and header values" (10,240
/// bytes). Headers and cookies beyond it cannot come through API Gateway; they get a `431`.
pub const MAX_HEADER_BYTES: usize = 10_240;

/// Serves one invocation; never fails.
pub async fn handle(
    deps: &Deps,
    event: LambdaEvent<Value>,
) -> Result<ApiGatewayV2httpResponse, Infallible> {
    Ok(respond(deps, event.payload).await)
}

/// The answer to one payload: the consent handler's for a request, a refusal page otherwise.
pub async fn respond(deps: &Deps, payload: Value) -> ApiGatewayV2httpResponse {
    let answer = match request(payload) {
        Ok(req) => handler::handle(deps, &web_request(&req)).await,
        Err(e) => {
            tracing::warn!(
                status = e.status(),
                kind = e.kind(),
                "consent event refused"
            );
            handler::unrepresentable(e.status())
        }
    };
    api_gateway_response(answer)
}

/// Why a payload is not a request the consent handler can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrepresentable {
    /// Headers and cookies beyond [`MAX_HEADER_BYTES`].
    HeadersTooLarge,
    /// Not an API Gateway v2 request: not an object, no `requestContext.http.method` that is an
    /// HTTP method token, a field of the wrong type…
    NotARequest,
}

impl Unrepresentable {
    /// The status of the refusal page.
    pub fn status(self) -> u16 {
        match self {
            Unrepresentable::HeadersTooLarge => 431,
            Unrepresentable::NotARequest => 400,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Unrepresentable::HeadersTooLarge => "headers_too_large",
            Unrepresentable::NotARequest => "not_a_request",
        }
    }
}

/// The API Gateway request in `payload`. The headers' size is checked first (the typed header
/// map panics past 32,768 names); a header the `http` types cannot hold (a control character, a
/// name that is no token, a value that is no string) is dropped rather than the request, as the
/// consent handler reads no header.
pub fn request(mut payload: Value) -> Result<ApiGatewayV2httpRequest, Unrepresentable> {
    if header_bytes(&payload) > MAX_HEADER_BYTES {
        return Err(Unrepresentable::HeadersTooLarge);
    }
    if let Some(Value::Object(headers)) = payload.get_mut("headers") {
        headers.retain(|name, value| {
            http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && value
                    .as_str()
                    .is_some_and(|v| v.parse::<http::HeaderValue>().is_ok())
        });
    }
    serde_json::from_value(payload).map_err(|_| Unrepresentable::NotARequest)
}

/// The bytes of the headers and cookies as a browser sent them (`name: value` and separators).
fn header_bytes(payload: &Value) -> usize {
    let text = |v: &Value| v.as_str().map_or(0, str::len);
    let headers = payload
        .get("headers")
        .and_then(Value::as_object)
        .map_or(0, |h| h.iter().map(|(n, v)| n.len() + text(v) + 4).sum());
    let cookies = payload
        .get("cookies")
        .and_then(Value::as_array)
        .map_or(0, |c| c.iter().map(|v| text(v) + 2).sum());
    headers + cookies
}

/// The method, raw path and raw query string of `req`, as received.
pub fn web_request(req: &ApiGatewayV2httpRequest) -> WebRequest {
    WebRequest {
        method: req.request_context.http.method.as_str().to_owned(),
        path: req.raw_path.clone().unwrap_or_default(),
        query: req.raw_query_string.clone().unwrap_or_default(),
    }
}

/// `answer` as API Gateway's response (payload format 2.0), through the translation the local
/// server uses too: a header the `http` crate refuses (never produced by the consent handler)
/// makes the answer a bare 500 rather than a Lambda error.
pub fn api_gateway_response(answer: WebResponse) -> ApiGatewayV2httpResponse {
    let (parts, body) = shared::consent::web::http_response::<String>(answer).into_parts();
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(parts.status.as_u16());
    response.headers = parts.headers;
    response.body = Some(Body::Text(body));
    response.is_base64_encoded = false;
    response
}

#[cfg(test)]
mod tests;
