//! Microsoft's error bodies, exactly as documented, for every emulated service, and what the
//! alert APIs' handlers read from a request.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::EmuState;

/// Waits the `latency_ms` setting (real time, without holding the world lock), then handles the
/// request.
pub async fn latency(State(state): State<Arc<EmuState>>, request: Request, next: Next) -> Response {
    let ms = state.world().settings.latency_ms;
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    next.run(request).await
}

/// The routes of an alert API: `handler` serves every path under the API's prefix.
pub fn catch_all<H, T>(handler: H) -> Router<Arc<EmuState>>
where
    H: Handler<T, Arc<EmuState>>,
    T: 'static,
{
    Router::new().route("/{*path}", get(handler))
}

/// A request to one of the alert APIs, each served by one catch-all route (`/{*path}`): the path
/// below the API's prefix (percent-decoded), the headers and the raw query string.
#[derive(Debug)]
pub struct ApiRequest {
    /// The path below the API's prefix, without the leading `/`.
    pub path: String,
    /// The request headers (the bearer token, `Prefer`).
    pub headers: HeaderMap,
    /// The raw query string, if any.
    pub query: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ApiRequest {
    type Rejection = PathRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(path) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(ApiRequest {
            path,
            headers: parts.headers.clone(),
            query: parts.uri.query().map(str::to_string),
        })
    }
}

/// An identity-platform error (reference §4.10, §6 item 8): `error`, `error_description` with the
/// `AADSTSnnnnn: ` prefix and `\r\n` Trace ID / Correlation ID / Timestamp lines, `error_codes`,
/// `timestamp` (`YYYY-MM-DD HH:MM:SSZ`), `trace_id`, `correlation_id`, `error_uri`.
pub fn aad_error(
    status: StatusCode,
    error: &str,
    codes: &[u32],
    message: &str,
    now: DateTime<Utc>,
) -> Response {
    let trace = uuid::Uuid::new_v4().to_string();
    let corr = uuid::Uuid::new_v4().to_string();
    let ts = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let first = codes.first().copied().unwrap_or(0);
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{first}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"
        ),
        "error_codes": codes,
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": format!("https://login.microsoftonline.com/error?code={first}"),
    });
    json_response(status, &body)
}

/// A Microsoft Graph error (reference §3.4, §3.5): `{"error":{"code","message","innerError":{…}}}`.
pub fn graph_error(status: StatusCode, code: &str, message: &str, now: DateTime<Utc>) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": uuid::Uuid::new_v4().to_string(),
                "client-request-id": uuid::Uuid::new_v4().to_string(),
            }
        }
    });
    json_response(status, &body)
}

/// A Defender for Endpoint API error (reference §2.6): `{"error":{"code","message","target"}}`,
/// `target` being the request's correlation id.
pub fn mde_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "error": {"code": code, "message": message, "target": uuid::Uuid::new_v4().to_string()}
    });
    json_response(status, &body)
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}
