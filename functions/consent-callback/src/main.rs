//! `consent-callback`: wiring only. The handler is [`consent_callback::handle`].

use lambda_runtime::{Error, run, service_fn};
use shared::assemble::{Function, lambda_function};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = lambda_function(Function::Service).await?;
    run(service_fn(|event| consent_callback::handle(&deps, event))).await
}
