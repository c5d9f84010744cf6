//! The `mssp` CLI: operator commands over the product's stores (local files or the AWS
//! deployment), the single-machine deployment (`mssp serve`) and the demo (`mssp demo`).
//!
//! Each command translates its arguments into flow calls of the shared crate and prints the
//! result; [`run`] dispatches and answers the exit code ([`error::Exit`]).
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod app_health;
pub mod args;
pub mod backend;
pub mod backfill;
pub mod config;
pub mod demo;
pub mod error;
pub mod fleet_file;
pub mod init;
pub mod onboard;
pub mod operate;
pub mod output;
pub mod run;
pub mod serve;
pub mod server;
pub mod status;

use shared::config::Env;

use crate::args::{Cli, Command, TenantsCommand};
use crate::backend::Backend;
use crate::config::{BackendKind, Config, Source};
use crate::error::{CliError, Exit};

/// Whether the command is long-running and logs at `info` by default (others log warnings).
pub fn is_service(cli: &Cli) -> bool {
    matches!(cli.command, Command::Serve)
}

/// Reads the configuration the global options name.
fn load(g: &args::Global) -> Result<(Source, Config), CliError> {
    let src = Source::load(g.config.as_deref(), Env::process())?;
    let config = Config::read(
        &src,
        g.backend.map(BackendKind::from),
        g.data_dir.as_deref(),
    )?;
    Ok((src, config))
}

/// The configuration of a command that runs on the local backend only.
fn load_local(g: &args::Global, command: &str) -> Result<Config, CliError> {
    let (_, config) = load(g)?;
    match config.backend {
        BackendKind::Local => Ok(config),
        BackendKind::Aws => Err(CliError::Usage(format!(
            "`mssp {command}` runs on the local backend only; drop --backend aws / \
             MSSP_BACKEND=aws"
        ))),
    }
}

/// Runs the command `cli` names.
pub async fn run(cli: Cli) -> Result<Exit, CliError> {
    let g = &cli.global;
    let json = g.json;
    match cli.command {
        Command::Init { dir, force } => init::run(&dir, g.data_dir.as_deref(), force),
        Command::Demo => {
            let config = load_local(g, "demo")?;
            // Only an explicit --data-dir: the configured one holds real tenants.
            demo::run(&config, g.data_dir.as_deref()).await
        }
        Command::Serve => serve::run(&load_local(g, "serve")?).await,
        Command::Tenants(t) => tenants(&open(g).await?.0, t, json).await,
        Command::ConsentLink { id } => operate::link(&open(g).await?.0, &id, json).await,
        Command::Refresh { id, force } => {
            operate::refresh(&open(g).await?.0, id.as_ref(), force, json).await
        }
        Command::Fetch {
            id,
            since,
            until,
            format,
        } => {
            let (b, config) = open(g).await?;
            operate::fetch(&b, &id, &since, &until, format, config.fetch_run_deadline).await
        }
        Command::Backfill {
            id,
            since,
            until,
            api,
        } => {
            let range = backfill::Range {
                since: &since,
                until: until.as_deref(),
                api,
            };
            backfill::run(&open(g).await?.0, &id, range, json).await
        }
        Command::Run { once, tenants } => {
            let config = load_local(g, "run")?;
            let b = Backend::local(
                &config,
                config.public_base_url(),
                std::sync::Arc::new(shared::clock::SystemClock),
            );
            run::run(&b, &config, once, tenants, json).await
        }
        Command::Status { all, state, api } => {
            let sel = status::Selection {
                all,
                state,
                api,
                ..status::Selection::default()
            };
            status::run(&open(g).await?.0, sel, json).await
        }
    }
}

/// The backend the configuration names, opened, and the configuration.
async fn open(g: &args::Global) -> Result<(Backend, Config), CliError> {
    let (src, config) = load(g)?;
    let b = Backend::open(&src, &config).await?;
    Ok((b, config))
}

/// `mssp tenants …`.
async fn tenants(b: &Backend, t: TenantsCommand, json: bool) -> Result<Exit, CliError> {
    match t {
        TenantsCommand::Add(a) => onboard::add(b, a, json).await,
        TenantsCommand::Import(i) => onboard::import(b, i, json).await,
        TenantsCommand::List => operate::list(b, json).await,
        TenantsCommand::Show { id } => operate::show(b, &id, json).await,
        TenantsCommand::Suspend { id } => operate::suspend(b, &id, json).await,
        TenantsCommand::Resume { id } => operate::resume(b, &id, json).await,
        TenantsCommand::Remove { id } => operate::remove(b, &id, json).await,
        TenantsCommand::SetRegion { id, region } => operate::set_region(b, &id, region, json).await,
    }
}
