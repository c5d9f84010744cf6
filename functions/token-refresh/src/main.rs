//! `token-refresh`: wiring only. The handler is [`token_refresh::handle`].

use lambda_runtime::{Error, run, service_fn};
use shared::assemble::{Function, lambda_function};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = lambda_function(Function::Service).await?;
    run(service_fn(|event| token_refresh::handle(&deps, event))).await
}
