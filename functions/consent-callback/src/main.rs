//! `consent-callback`: wiring only. The handler is [`consent_callback::handle`].

use lambda_http::{Error, run, service_fn};
use shared::config::Env;
use shared::telemetry::{self, Mode};
use shared::wiring::{ServiceConfig, aws_services};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(Mode::detect());
    let config = ServiceConfig::from_env(&Env::process()).inspect_err(|e| {
        tracing::error!(variable = e.var(), error = %e, "configuration is invalid");
    })?;
    let services = aws_services(&config).await;
    run(service_fn(|req| consent_callback::handle(&services, req))).await
}
