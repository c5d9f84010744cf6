//! A stand-in for API Gateway (HTTP API, payload format 2.0) in front of a [`LambdaProcess`], so
//! a browser or an HTTP client can talk to the real function binary.
//!
//! Each HTTP request becomes an event built on the real fixture
//! `tests/fixtures/events/apigw-http-v2-request.json` (method, `rawPath`, `rawQueryString`
//! verbatim, lowercased headers joined with commas, `queryStringParameters` with repeated
//! values joined by commas as API Gateway does, `cookies`, a fresh `requestId`), and the
//! function's answer (`statusCode`, `headers`, `multiValueHeaders`, `cookies`, `body`,
//! `isBase64Encoded`) becomes the HTTP response. A function error answers
//! `500 {"message":"Internal Server Error"}`, as API Gateway does.
//!
//! The gateway is bound before the function starts ([`ApiGateway::bind`]), because the
//! function's configuration and the emulator's registered redirect URI need its URL.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use url::Url;

use crate::lambda::LambdaProcess;

/// The API Gateway HTTP API v2 event fixture every request is built on.
pub const EVENT_TEMPLATE: &str = include_str!("../fixtures/events/apigw-http-v2-request.json");

/// How long API Gateway waits for an HTTP API integration (30 s).
const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// An "API Gateway" on `127.0.0.1`, bound but not serving until [`ApiGateway::serve`].
pub struct ApiGateway {
    url: Url,
    listener: Option<tokio::net::TcpListener>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ApiGateway {
    /// Binds a free loopback port.
    ///
    /// # Errors
    ///
    /// When no port can be bound.
    pub async fn bind() -> anyhow::Result<ApiGateway> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the API Gateway bridge")?;
        let url = Url::parse(&format!("http://{}", listener.local_addr()?))?;
        Ok(ApiGateway {
            url,
            listener: Some(listener),
            task: None,
        })
    }

    /// `http://127.0.0.1:PORT/`: the public base URL of the function behind it.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Starts forwarding every request to `function`.
    ///
    /// # Errors
    ///
    /// When already serving.
    pub fn serve(&mut self, function: Arc<LambdaProcess>) -> anyhow::Result<()> {
        let listener = self
            .listener
            .take()
            .context("the API Gateway bridge is already serving")?;
        let app = axum::Router::new().fallback(forward).with_state(function);
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        Ok(())
    }
}

impl Drop for ApiGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The API Gateway v2 event for an HTTP request.
///
/// # Errors
///
/// When the fixture cannot be read (never, short of a broken checkout).
pub fn event_for(
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> anyhow::Result<Value> {
    let mut event: Value = serde_json::from_str(EVENT_TEMPLATE).context("the v2 fixture")?;
    let mut joined: Map<String, Value> = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(value.split("; ").map(|c| Value::String(c.to_owned())));
            continue;
        }
        match joined.get_mut(&name) {
            Some(Value::String(v)) => {
                v.push(',');
                v.push_str(value);
            }
            _ => {
                joined.insert(name, Value::String(value.clone()));
            }
        }
    }
    let host = joined
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("127.0.0.1")
        .to_owned();
    let user_agent = joined
        .get("user-agent")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    joined.insert("x-forwarded-for".into(), json!("127.0.0.1"));
    joined.insert("x-forwarded-proto".into(), json!("http"));
    let mut params: Map<String, Value> = Map::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match params.get_mut(k.as_ref()) {
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(&v);
            }
            _ => {
                params.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let now = chrono::Utc::now();
    let e = event
        .as_object_mut()
        .context("the v2 fixture is an object")?;
    e.insert("rawPath".into(), json!(path));
    e.insert("rawQueryString".into(), json!(raw_query));
    e.insert("headers".into(), Value::Object(joined));
    if params.is_empty() {
        e.remove("queryStringParameters");
    } else {
        e.insert("queryStringParameters".into(), Value::Object(params));
    }
    if cookies.is_empty() {
        e.remove("cookies");
    } else {
        e.insert("cookies".into(), Value::Array(cookies));
    }
    if body.is_empty() {
        e.remove("body");
        e.insert("isBase64Encoded".into(), json!(false));
    } else {
        match std::str::from_utf8(body) {
            Ok(text) => {
                e.insert("body".into(), json!(text));
                e.insert("isBase64Encoded".into(), json!(false));
            }
            Err(_) => {
                e.insert("body".into(), json!(STANDARD.encode(body)));
                e.insert("isBase64Encoded".into(), json!(true));
            }
        }
    }
    let ctx = e
        .get_mut("requestContext")
        .and_then(Value::as_object_mut)
        .context("requestContext")?;
    ctx.insert("domainName".into(), json!(host));
    ctx.insert(
        "requestId".into(),
        json!(uuid::Uuid::new_v4().simple().to_string()[..16]),
    );
    ctx.insert(
        "time".into(),
        json!(now.format("%d/%b/%Y:%H:%M:%S %z").to_string()),
    );
    ctx.insert("timeEpoch".into(), json!(now.timestamp_millis()));
    let http = ctx
        .get_mut("http")
        .and_then(Value::as_object_mut)
        .context("requestContext.http")?;
    http.insert("method".into(), json!(method));
    http.insert("path".into(), json!(path));
    http.insert("sourceIp".into(), json!("127.0.0.1"));
    http.insert("userAgent".into(), json!(user_agent));
    Ok(event)
}

/// The HTTP response for a function's API Gateway v2 answer.
pub fn response_for(answer: &Value) -> Response {
    let Some(obj) = answer.as_object().filter(|o| o.contains_key("statusCode")) else {
        // Payload v2: an answer without statusCode is the body of a 200 JSON response.
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            answer.to_string(),
        )
            .into_response();
    };
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let text = obj.get("body").and_then(Value::as_str).unwrap_or_default();
    let body = if obj.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        STANDARD.decode(text).unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let mut add = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    };
    if let Some(h) = obj.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            if let Some(v) = v.as_str() {
                add(k, v);
            }
        }
    }
    if let Some(h) = obj.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vs) in h {
            for v in vs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                add(k, v);
            }
        }
    }
    for c in obj
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        add("set-cookie", c);
    }
    resp
}

async fn forward(State(function): State<Arc<LambdaProcess>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 10 << 20)
        .await
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let event = match event_for(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
        &headers,
        &body,
    ) {
        Ok(e) => e,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    match function
        .invoke_with_timeout(&event, INTEGRATION_TIMEOUT)
        .await
    {
        Ok(answer) => response_for(&answer),
        Err(e) => {
            tracing::warn!(error_type = %e.error_type, "the function failed behind the bridge");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/json")],
                r#"{"message":"Internal Server Error"}"#,
            )
                .into_response()
        }
    }
}
