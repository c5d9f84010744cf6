//! `mssp`: wiring only. Commands live in the `cli` library; exit codes in [`cli::error::Exit`].

use std::process::ExitCode;

use clap::Parser;
use shared::telemetry::{self, Mode};
use tracing_subscriber::filter::LevelFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::args::Cli::parse();
    let level = if cli::is_service(&args) {
        LevelFilter::INFO
    } else {
        LevelFilter::WARN
    };
    telemetry::init_with_default(Mode::detect(), level);
    match cli::run(args).await {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("mssp: error: {}", shared::explain::chain(&e));
            e.exit().into()
        }
    }
}
