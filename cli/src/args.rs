//! The command line. clap answers `--help` and refuses bad usage with exit code 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::config::Cloud;
use shared::domain::{AlertApi, AuthModel, SiemRegion, TenantId, TenantStatus};
use shared::flows::adoption::{IMPORT_CONCURRENCY, MAX_IMPORT_CONCURRENCY};

use crate::config::BackendKind;
use crate::error::EXIT_CODES;

const AFTER_HELP: &str = "\
Configuration: mssp.toml (--config, MSSP_CONFIG, or ./mssp.toml), every key overridable by an
MSSP_* environment variable; `mssp init` writes a commented example.

Start here: `mssp demo` runs the whole product against a built-in Microsoft emulator.";

/// mssp-alerts: pull Microsoft Defender alerts from many customer tenants into your SIEM,
/// exactly once.
#[derive(Debug, Parser)]
#[command(name = "mssp", version, after_help = format!("{EXIT_CODES}\n\n{AFTER_HELP}"))]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file (default: ./mssp.toml when present) [env: MSSP_CONFIG]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where tenants, tokens and cursors live: the local data directory or the AWS deployment
    /// [env: MSSP_BACKEND]
    #[arg(long, global = true, value_enum)]
    pub backend: Option<BackendArg>,
    /// The local data directory [env: MSSP_DATA_DIR; default ./mssp-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print listings as JSON
    #[arg(long, global = true)]
    pub json: bool,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    /// Files under the data directory.
    Local,
    /// The Lambda deployment's Secrets Manager and DynamoDB (MSSP_SECRETS_PREFIX, MSSP_TABLE…).
    Aws,
}

impl From<BackendArg> for BackendKind {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Local => BackendKind::Local,
            BackendArg::Aws => BackendKind::Aws,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole product end to end against a built-in Microsoft emulator: three tenants
    /// consent over HTTP, tokens refresh, alerts are fetched and checked against the emulator's
    /// ground truth. Its data goes to a fresh temporary directory, or to --data-dir (new or empty)
    Demo,
    /// Run the single-machine deployment: the consent endpoint plus the refresh and fetch
    /// schedules, until SIGINT/SIGTERM
    Serve,
    /// Write a commented mssp.toml and an app credentials template (with a fresh state_key)
    Init {
        /// Folder to write mssp.toml into
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Replace existing files
        #[arg(long)]
        force: bool,
    },
    /// Add, list, show, suspend, resume and remove customer tenants
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Print a fresh consent link for a tenant
    ConsentLink {
        /// Tenant id (GUID)
        id: TenantId,
    },
    /// Refresh tokens now: every active tenant, or one
    Refresh {
        /// Tenant id (GUID); all active tenants when absent
        id: Option<TenantId>,
        /// Renew even when the tokens are fresh (every active tenant's without an id)
        #[arg(long)]
        force: bool,
    },
    /// One refresh + fetch cycle now, as `serve` runs on its schedule: cursors move, alerts go to
    /// the sink; progress on stderr, the status table at the end (exit 3 when a tenant needs
    /// attention). Without --once, a cycle every schedule.fetch_interval until Ctrl-C
    Run {
        /// One cycle, then exit
        #[arg(long)]
        once: bool,
        /// Tenant ids (GUIDs); every active tenant when none
        tenants: Vec<TenantId>,
    },
    /// Fetch one tenant's alerts of a time range now, without moving its cursor
    Fetch {
        /// Tenant id (GUID)
        id: TenantId,
        /// Start (inclusive): RFC 3339, or relative to now such as -2h or -7d
        #[arg(long, allow_hyphen_values = true)]
        since: String,
        /// End (exclusive): RFC 3339, relative (-1h), or now
        #[arg(long, default_value = "now", allow_hyphen_values = true)]
        until: String,
        /// Output format on stdout
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Deliver a tenant's alert history into the sink as ordinary records, exactly once (resumes
    /// where an interrupted backfill stopped; progress on stderr)
    Backfill {
        /// Tenant id (GUID)
        id: TenantId,
        /// Start: RFC 3339, or relative to now such as -180d
        #[arg(long, allow_hyphen_values = true)]
        since: String,
        /// End: RFC 3339 or relative; default: where the regular fetch's coverage starts
        #[arg(long, allow_hyphen_values = true)]
        until: Option<String>,
        /// The tenant's alert API (the backfill reads the API the tenant is read through)
        #[arg(long)]
        api: Option<AlertApi>,
    },
    /// The fleet's health: every tenant's row for up to 20 tenants, else a summary (counts by
    /// status and API, lag percentiles, late alerts found, the tenants that need attention)
    Status {
        /// One row per tenant, however many
        #[arg(long)]
        all: bool,
        /// Only tenants in this status: pending_consent, active, reconsent_required, suspended
        #[arg(long, value_name = "STATUS")]
        state: Option<TenantStatus>,
        /// Only tenants read through this API: graph, mde or siem
        #[arg(long)]
        api: Option<AlertApi>,
    },
}

/// `mssp fetch --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON array.
    Json,
    /// One record per line.
    Ndjson,
    /// One OCSF Detection Finding (class 2004, OCSF 1.1.0) per line, one per record.
    Ocsf,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Register a customer tenant: an application tenant whose admin already granted the app's
    /// roles is adopted (activated without a click); any other gets the consent link to send
    Add(AddTenant),
    /// Register many tenants from a CSV (with a header) or JSON-lines file, adopting those whose
    /// admin already granted the app's roles; a re-run skips what is done
    Import(ImportTenants),
    /// List tenants
    List,
    /// Show one tenant
    Show {
        /// Tenant id (GUID)
        id: TenantId,
    },
    /// Stop refreshing and fetching a tenant
    Suspend {
        /// Tenant id (GUID)
        id: TenantId,
    },
    /// Resume a suspended tenant
    Resume {
        /// Tenant id (GUID)
        id: TenantId,
    },
    /// Offboard a tenant: delete its tokens and cursor, keep its record (status offboarded)
    Remove {
        /// Tenant id (GUID)
        id: TenantId,
    },
    /// Set the SIEM exporter region of a SIEM API tenant (eu, us or uk); its alerts are then
    /// read again from where its coverage began
    SetRegion {
        /// Tenant id (GUID)
        id: TenantId,
        /// eu, us or uk
        region: SiemRegion,
    },
}

/// `mssp tenants add`.
#[derive(Debug, Args)]
pub struct AddTenant {
    /// Tenant id (GUID)
    pub id: TenantId,
    /// Customer name
    #[arg(long)]
    pub name: String,
    /// Authorization model: delegated-v1, delegated-v2 or application
    #[arg(long)]
    pub model: AuthModel,
    /// Alert API: graph, mde or siem
    #[arg(long)]
    pub api: AlertApi,
    /// Microsoft cloud: commercial, gcc, gcc-high or dod
    #[arg(long, default_value = "commercial")]
    pub cloud: Cloud,
    /// SIEM exporter region of a siem API tenant: eu, us or uk (default: the configured
    /// siem_region). A tenant's SIEM alerts are served only by its own region's exporter
    #[arg(long, value_name = "REGION")]
    pub siem_region: Option<SiemRegion>,
    /// Once onboarded, backfill this much history (e.g. 180d): delivered as ordinary records,
    /// before what the regular fetch covers
    #[arg(long, value_name = "HORIZON")]
    pub backfill: Option<String>,
}

/// `mssp tenants import`.
#[derive(Debug, Args)]
pub struct ImportTenants {
    /// The tenants: CSV with a header naming the columns id, name, model, api and optionally
    /// siem_region (or region) and cloud (values as `tenants add` takes them), or JSON lines
    /// with those fields.
    /// Told apart by the extension (.csv; .jsonl, .ndjson, .json) or else the first character
    pub file: PathBuf,
    /// Where to write the consent links of the tenants that need a click (CSV) [default: beside
    /// FILE, named FILE's stem + .consent-links.csv]
    #[arg(long, value_name = "FILE")]
    pub links: Option<PathBuf>,
    /// Tenants verified at once (one token request each)
    #[arg(
        long,
        default_value_t = IMPORT_CONCURRENCY as u16,
        value_parser = clap::value_parser!(u16).range(1..=MAX_IMPORT_CONCURRENCY as i64)
    )]
    pub concurrency: u16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_help_documents_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("3  the command ran"), "{help}");
    }
}
