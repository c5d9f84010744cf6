//! `token-refresh`: wiring only. The handler is [`token_refresh::handle`].

use lambda_runtime::{Error, run, service_fn};
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
    run(service_fn(|event| token_refresh::handle(&services, event))).await
}
