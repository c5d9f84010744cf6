//! The consent endpoint served locally with axum: every request goes to the same handler the
//! `consent-callback` Lambda serves ([`shared::consent::handler::handle`]) and the same translation
//! back to HTTP ([`shared::consent::web::http_response`]).

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use shared::consent::handler;
use shared::consent::web::{WebRequest, http_response};
use shared::flows::Deps;

/// The router: one fallback route; the consent handler decides (404 for unknown paths).
pub fn router(services: Deps) -> axum::Router {
    axum::Router::new().fallback(move |req: Request| {
        let services = services.clone();
        async move {
            let answer = handler::handle(&services, &web_request(&req)).await;
            http_response::<Body>(answer) as Response
        }
    })
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
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        axum::serve(listener, router(services))
            .with_graceful_shutdown(stop)
            .await
    })
}
