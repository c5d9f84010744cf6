//! The AWS SDK's HTTP client: the same reqwest stack (rustls over ring, the webpki root
//! certificates compiled into the binary) that talks to Microsoft.
//!
//! Why not the SDK's own client: it reads the platform's root certificates when a client is
//! built — on a Debian host that is one bundle and 290 more files, 15 ms of a function's 20 ms
//! cold start (`cargo bench -p tests --bench lambda_startup`) — and it links a second hyper/rustls
//! connector beside reqwest's. The SDK's connect and read timeouts carry over; a response body
//! streams through as it arrives.

use std::sync::Mutex;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// The HTTP client every SDK configuration gets ([`super::sdk_defaults`]).
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

/// One reqwest client per distinct pair of SDK timeouts (in practice one), built on first use.
#[derive(Debug, Default)]
struct ReqwestHttpClient {
    clients: Mutex<Vec<(Timeouts, reqwest::Client)>>,
}

type Timeouts = (Option<Duration>, Option<Duration>);

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let client = match clients.iter().find(|(k, _)| *k == key) {
            Some((_, client)) => Ok(client.clone()),
            None => build_client(key).inspect(|c| clients.push((key, c.clone()))),
        };
        SharedHttpConnector::new(ReqwestConnector { client })
    }
}

fn build_client((connect, read): Timeouts) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip();
    if let Some(t) = connect {
        builder = builder.connect_timeout(t);
    }
    if let Some(t) = read {
        builder = builder.read_timeout(t);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the AWS HTTP client: {e}"))
}

#[derive(Debug)]
struct ReqwestConnector {
    client: Result<reqwest::Client, String>,
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => {
                let e = ConnectorError::other(e.clone().into(), None);
                return HttpConnectorFuture::ready(Err(e));
            }
        };
        HttpConnectorFuture::new(async move {
            let request = to_reqwest(request)?;
            let response = client.execute(request).await.map_err(connector_error)?;
            let response: http::Response<reqwest::Body> = response.into();
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

fn to_reqwest(request: HttpRequest) -> Result<reqwest::Request, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let request = request.map(|body| match body.bytes() {
        // In-memory bodies (every request the product makes) go as they are; anything else streams.
        Some(bytes) => reqwest::Body::from(bytes.to_vec()),
        None => reqwest::Body::wrap(body),
    });
    reqwest::Request::try_from(request).map_err(|e| ConnectorError::user(e.into()))
}

/// Shapes a transport failure the way the SDK's retry logic reads it.
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_goes_out_and_its_answer_streams_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            socket
                .write_all(b"HTTP/1.1 201 Created\r\nx-amz-id: 7\r\ncontent-length: 5\r\n\r\nhello")
                .await
                .unwrap();
            head
        });
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_secs(2))
            .build();
        let connector = ReqwestConnector {
            client: build_client((settings.connect_timeout(), settings.read_timeout())),
        };
        let request = http::Request::builder()
            .method("PUT")
            .uri(format!("http://{addr}/bucket/key"))
            .header("content-length", "4")
            .body(SdkBody::from("data"))
            .unwrap();
        let response = connector
            .call(HttpRequest::try_from(request).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        assert_eq!(response.headers().get("x-amz-id"), Some("7"));
        let body = aws_smithy_types::byte_stream::ByteStream::new(response.into_body());
        assert_eq!(&body.collect().await.unwrap().into_bytes()[..], b"hello");
        let head = server.await.unwrap();
        assert!(head.starts_with("PUT /bucket/key HTTP/1.1"), "{head}");
        assert!(head.ends_with("\r\n\r\ndata"), "{head}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let connector = ReqwestConnector {
            client: build_client((None, None)),
        };
        let request = http::Request::builder()
            .uri(format!("http://{addr}/"))
            .body(SdkBody::empty())
            .unwrap();
        let err = connector
            .call(HttpRequest::try_from(request).unwrap())
            .await
            .unwrap_err();
        assert!(err.is_io(), "{err:?}");
    }
}
