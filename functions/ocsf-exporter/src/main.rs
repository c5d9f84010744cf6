//! `ocsf-exporter`: wiring only. The handler is [`ocsf_exporter::handle`].

use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = ocsf_exporter::start().await?;
    run(service_fn(|event| ocsf_exporter::handle(&deps, event))).await
}
