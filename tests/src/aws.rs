//! AWS-side pieces the tests and benches share: the DynamoDB table as the Terraform module
//! creates it, and a counting proxy in front of the AWS emulator.
//!
//! The proxy ([`CountingProxy`]) listens on 127.0.0.1, forwards every request unchanged to moto
//! and counts it by service and operation, read from the request itself: the credential scope
//! of its SigV4 `Authorization` header names the service; `X-Amz-Target` names the operation
//! of the JSON protocols (DynamoDB, Secrets Manager, SQS), an `Action=` form field that of the
//! query protocol, and the method, path and query that of S3's REST API. Moto keeps no per
//! operation counters of its own, so a client pointed at the proxy (`AWS_ENDPOINT_URL`) is
//! counted exactly, one per HTTP request: a batch call counts once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use url::Url;

/// The environment variables that point the AWS SDK (and so every AWS adapter and Lambda
/// binary) at `endpoint` (without a trailing slash: the SDK appends paths to it) with dummy
/// credentials; pass them to `Command::envs` or read them into an SDK config loader.
pub fn service_env(endpoint: &str) -> Vec<(&'static str, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

/// An SDK configuration for in-process clients of `endpoint`, with the credentials and region of
/// [`service_env`].
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    shared::adapters::aws::sdk_defaults()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

/// Every key under `prefix` of `bucket`, read to the last page of the listing.
///
/// # Panics
///
/// When the listing fails.
pub async fn object_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .expect("list");
    pages
        .iter()
        .flat_map(|page| page.contents())
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// The versions of secret `name`, each as its id and stages (`Some("…"):["AWSCURRENT"]`),
/// sorted.
///
/// # Panics
///
/// When the listing fails.
pub async fn secret_versions(sm: &aws_sdk_secretsmanager::Client, name: &str) -> Vec<String> {
    let listed = sm
        .list_secret_version_ids()
        .secret_id(name)
        .send()
        .await
        .expect("versions");
    let mut versions: Vec<String> = listed
        .versions()
        .iter()
        .map(|v| format!("{:?}:{:?}", v.version_id(), v.version_stages()))
        .collect();
    versions.sort();
    versions
}

/// Receives from `queue` (long polling, ten at a time) until `enough` holds for what arrived, a
/// receive comes back empty, or 30 s pass. Received messages stay in the queue, hidden for its
/// visibility timeout.
///
/// # Panics
///
/// When a receive fails.
pub async fn receive_until(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    enough: impl Fn(&[aws_sdk_sqs::types::Message]) -> bool,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !enough(&messages) && tokio::time::Instant::now() < deadline {
        let page = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if page.messages().is_empty() {
            break;
        }
        messages.extend(page.messages().iter().cloned());
    }
    messages
}

/// The key element `name` of `kind` (hash or range).
fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key")
}

/// The Terraform module's `by-status` index: tenant items by `status`, then `pk`, with `record`.
fn status_index() -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(shared::adapters::aws::dynamodb::STATUS_INDEX)
        .key_schema(key("status", KeyType::Hash))
        .key_schema(key("pk", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes("record")
                .build(),
        )
        .build()
        .expect("index")
}

/// Creates the table the Terraform module creates: `pk`/`sk` strings, on demand, with the
/// `by-status` index.
///
/// # Panics
///
/// When the table cannot be created (a test setup failure).
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attr")
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attr("status"))
        .global_secondary_indexes(status_index())
        .send()
        .await
        .expect("table created");
}

/// Calls of one operation, and the bytes they sent and received (bodies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    /// HTTP requests.
    pub n: u64,
    /// Request body bytes.
    pub sent: u64,
    /// Response body bytes.
    pub received: u64,
}

/// Calls counted by (service, operation), e.g. `("dynamodb", "GetItem")`.
pub type CallCounts = BTreeMap<(String, String), Calls>;

struct Proxy {
    upstream: Url,
    http: reqwest::Client,
    counts: Mutex<CallCounts>,
}

/// A counting HTTP proxy in front of the AWS emulator (see the module docs); stops when dropped.
pub struct CountingProxy {
    url: Url,
    proxy: Arc<Proxy>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Starts a proxy on 127.0.0.1 forwarding to `upstream` (moto's base URL).
    ///
    /// # Errors
    ///
    /// When it cannot bind.
    pub async fn start(upstream: &Url) -> anyhow::Result<CountingProxy> {
        let proxy = Arc::new(Proxy {
            upstream: upstream.clone(),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("the proxy's client")?,
            counts: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the counting proxy")?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(forward)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(proxy.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CountingProxy {
            url: Url::parse(&format!("http://{addr}"))?,
            proxy,
            task,
        })
    }

    /// The proxy's base URL, without a trailing slash (for `AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }

    /// The calls counted so far.
    pub fn counts(&self) -> CallCounts {
        self.proxy
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `after − before`, per key, leaving out zeros.
pub fn calls_between(before: &CallCounts, after: &CallCounts) -> CallCounts {
    after
        .iter()
        .filter_map(|(k, &c)| {
            let b = before.get(k).copied().unwrap_or_default();
            let d = Calls {
                n: c.n - b.n,
                sent: c.sent - b.sent,
                received: c.received - b.received,
            };
            (d.n > 0).then(|| (k.clone(), d))
        })
        .collect()
}

async fn forward(State(p): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let key = operation(&parts.method, &parts.headers, &path_and_query, &body);
    let sent = body.len() as u64;
    let target = format!(
        "{}{}",
        p.upstream.as_str().trim_end_matches('/'),
        path_and_query
    );
    let mut out = p.http.request(parts.method.clone(), target).body(body);
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding"
        ) {
            out = out.header(name, value);
        }
    }
    match out.send().await {
        Ok(r) => {
            let status = r.status();
            let mut headers = r.headers().clone();
            headers.remove("transfer-encoding");
            headers.remove("content-length");
            let bytes = r.bytes().await.unwrap_or_default();
            {
                let mut counts = p.counts.lock().unwrap_or_else(PoisonError::into_inner);
                let c = counts.entry(key).or_default();
                c.n += 1;
                c.sent += sent;
                c.received += bytes.len() as u64;
            }
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            resp
        }
        Err(e) => {
            p.counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default()
                .n += 1;
            (StatusCode::BAD_GATEWAY, format!("moto: {e}")).into_response()
        }
    }
}

/// (service, operation) of one AWS API request.
fn operation(
    method: &Method,
    headers: &HeaderMap,
    path_and_query: &str,
    body: &[u8],
) -> (String, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // `Credential=AKID/20260101/us-east-1/dynamodb/aws4_request`
    let service = header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned();
    if let Some(target) = header("x-amz-target") {
        let op = target.rsplit('.').next().unwrap_or(target);
        return (service, op.to_owned());
    }
    if let Some(action) = std::str::from_utf8(body)
        .ok()
        .and_then(|b| b.split('&').find_map(|kv| kv.strip_prefix("Action=")))
    {
        return (service, action.to_owned());
    }
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let has_key = path.trim_start_matches('/').contains('/');
    let has = |q: &str| {
        query
            .split('&')
            .any(|kv| kv == q || kv.starts_with(&format!("{q}=")))
    };
    let op = match (method.as_str(), has_key) {
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) => "ListObjects",
        ("GET", true) => "GetObject",
        ("HEAD", true) => "HeadObject",
        ("HEAD", false) => "HeadBucket",
        ("PUT", true) if header("x-amz-copy-source").is_some() => "CopyObject",
        ("PUT", true) => "PutObject",
        ("PUT", false) => "CreateBucket",
        ("DELETE", true) => "DeleteObject",
        ("POST", false) if has("delete") => "DeleteObjects",
        (m, _) => return (service, format!("{m} {path}")),
    };
    (service, op.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(service: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00")
                .parse()
                .unwrap(),
        );
        h
    }

    #[test]
    fn operations_are_read_from_each_protocol() {
        // (service, X-Amz-Target, method, path and query, body, operation)
        let cases = [
            (
                "dynamodb",
                Some("DynamoDB_20120810.GetItem"),
                Method::POST,
                "/",
                "{}",
                "GetItem",
            ),
            (
                "s3",
                None,
                Method::PUT,
                "/bucket/alerts/x.ndjson.gz?x-id=PutObject",
                "",
                "PutObject",
            ),
            (
                "s3",
                None,
                Method::GET,
                "/bucket?list-type=2&prefix=a",
                "",
                "ListObjectsV2",
            ),
            (
                "sqs",
                None,
                Method::POST,
                "/",
                "Action=SendMessageBatch&Version=2012-11-05",
                "SendMessageBatch",
            ),
        ];
        for (service, target, method, path, body, op) in cases {
            let mut h = signed(service);
            if let Some(target) = target {
                h.insert("x-amz-target", target.parse().unwrap());
            }
            assert_eq!(
                operation(&method, &h, path, body.as_bytes()),
                (service.into(), op.into()),
                "{method} {path}"
            );
        }
    }
}
