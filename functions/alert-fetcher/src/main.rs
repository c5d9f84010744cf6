//! `alert-fetcher`: wiring only. The handler is [`alert_fetcher::handle`].

use lambda_runtime::{Error, run, service_fn};
use shared::assemble::{Function, lambda_function};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = lambda_function(Function::Fetcher).await?;
    run(service_fn(|event| alert_fetcher::handle(&deps, event))).await
}
