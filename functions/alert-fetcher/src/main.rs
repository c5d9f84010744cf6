//! `alert-fetcher`: wiring only. The handler is [`alert_fetcher::handle`].

use lambda_runtime::{Error, run, service_fn};
use shared::config::Env;
use shared::telemetry::{self, Mode};
use shared::wiring::{FetcherConfig, aws_fetcher};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init(Mode::detect());
    let config = FetcherConfig::from_env(&Env::process()).inspect_err(|e| {
        tracing::error!(variable = e.var(), error = %e, "configuration is invalid");
    })?;
    let deps = aws_fetcher(&config).await;
    run(service_fn(|event| alert_fetcher::handle(&deps, event))).await
}
