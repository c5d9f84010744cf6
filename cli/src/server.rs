//! The consent endpoint served locally with axum: every request goes to the same handler the
//! `consent-callback` Lambda serves ([`shared::consent::handler::handle`]) and the same translation
//! back to HTTP ([`shared::consent::web::http_response`]). With a metrics registry (`mssp serve`),
//! `GET /metrics` serves it as Prometheus text ([`shared::metrics::Registry::render`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use shared::consent::handler;
use shared::consent::web::{WebRequest, http_response};
use shared::flows::Deps;
use shared::metrics::{PROMETHEUS_CONTENT_TYPE, Registry};

/// The router: `GET /metrics` when there is a registry, and one fallback route where the
/// consent handler decides (404 for unknown paths).
pub fn router(services: Deps, metrics: Option<Arc<Registry>>) -> axum::Router {
    let consent = axum::Router::new().fallback(move |req: Request| {
        let services = services.clone();
        async move {
            let answer = handler::handle(&services, &web_request(&req)).await;
            http_response::<Body>(answer) as Response
        }
    });
    match metrics {
        Some(registry) => consent.route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)],
                        registry.render(),
                    )
                }
            }),
        ),
        None => consent,
    }
}

fn web_request(req: &Request) -> WebRequest {
    WebRequest {
        method: req.method().as_str().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or_default().to_string(),
    }
}

/// Serves [`router`] on `listener` until `stop` resolves, in a task.
pub fn spawn(
    listener: tokio::net::TcpListener,
    services: Deps,
    metrics: Option<Arc<Registry>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        axum::serve(listener, router(services, metrics))
            .with_graceful_shutdown(stop)
            .await
    })
}
