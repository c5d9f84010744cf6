//! The stores a command works on, through the same adapters the product runs on: the file
//! adapters under the data directory (local), or the Lambda deployment's Secrets Manager and
//! DynamoDB built by [`shared::wiring`] (`--backend aws`).

use std::path::PathBuf;
use std::sync::Arc;

use shared::adapters::aws::sdk_config;
use shared::adapters::local::FileAlertSink;
use shared::assemble;
use shared::clock::{Clock, SystemClock};
use shared::config::deployment::ServiceConfig;
use shared::domain::{Tenant, TenantId};
use shared::flows::Deps;
use shared::ports::StoreError;
use url::Url;

use crate::config::{BackendKind, Config, Source};
use crate::error::CliError;

/// `client_id` of the template `mssp init` writes: refused until replaced.
pub const TEMPLATE_CLIENT_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The dependencies of a command, and where they live (for messages).
#[derive(Clone)]
pub struct Backend {
    /// The flows' dependencies.
    pub deps: Deps,
    /// The local data directory and its alert files, for reading records back (`mssp serve`,
    /// the demo); `None` on AWS.
    pub local: Option<LocalFiles>,
    /// Where the app credentials are, for messages.
    app_location: String,
    app_file: Option<PathBuf>,
}

/// The local data directory and the alert files in it.
#[derive(Clone)]
pub struct LocalFiles {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The sink's files, for reading records back.
    pub sink: FileAlertSink,
}

/// The local lake (`{data}/lake/ext/mssp-alerts/region=local/accountId=local/…`): the layout of
/// the Security Lake custom source the exporter writes, with placeholder partition values.
pub fn local_lake(data_dir: &std::path::Path) -> lake::LocalLake {
    lake::LocalLake::new(
        data_dir,
        lake::Location {
            prefix: "ext/mssp-alerts".into(),
            region: "local".into(),
            account: "local".into(),
        },
    )
}

impl Backend {
    /// The file adapters under `config.data_dir` with `clock`, for a consent endpoint at
    /// `public_base_url`.
    pub fn local(config: &Config, public_base_url: Url, clock: Arc<dyn Clock>) -> Backend {
        let dir = &config.data_dir;
        let mut deps = assemble::local(
            dir,
            &config.app_credentials_file,
            clock,
            config.settings(public_base_url),
        );
        // The objects the configured format asks for, and the Security Lake files of every
        // batch, as the ocsf-exporter Lambda writes them.
        let files = FileAlertSink::new(dir)
            .with_format(config.output_format)
            .with_gzip_level(config.gzip_level);
        deps.sink = Arc::new(lake::LakeSink::new(Arc::new(files), local_lake(dir)));
        Backend {
            deps,
            local: Some(LocalFiles {
                data_dir: dir.clone(),
                sink: FileAlertSink::new(dir),
            }),
            app_location: config.app_credentials_file.display().to_string(),
            app_file: Some(config.app_credentials_file.clone()),
        }
    }

    /// The AWS deployment's stores (`MSSP_PUBLIC_BASE_URL`, `MSSP_SECRETS_PREFIX`, `MSSP_TABLE`…
    /// as the Lambda functions read them) with the configuration's knobs.
    pub async fn aws(src: &Source, config: &Config) -> Result<Backend, CliError> {
        let service = ServiceConfig::from_env(&src.env()).map_err(|e| src.error(e))?;
        let mut deps = assemble::aws(&service, &sdk_config().await);
        config.apply(&mut deps.settings);
        Ok(Backend {
            deps,
            local: None,
            app_location: format!("Secrets Manager secret {}", service.app_secret_id),
            app_file: None,
        })
    }

    /// The backend `config` names, with the system clock.
    pub async fn open(src: &Source, config: &Config) -> Result<Backend, CliError> {
        match config.backend {
            BackendKind::Local => Ok(Backend::local(
                config,
                config.public_base_url(),
                Arc::new(SystemClock),
            )),
            BackendKind::Aws => Backend::aws(src, config).await,
        }
    }

    /// The local files, or a usage error naming `command` for the AWS backend.
    pub fn require_local(&self, command: &str) -> Result<&LocalFiles, CliError> {
        self.local.as_ref().ok_or_else(|| {
            CliError::Usage(format!(
                "`mssp {command}` runs on the local backend only (it is the single-machine \
                 deployment); drop --backend aws / MSSP_BACKEND=aws"
            ))
        })
    }

    /// Checks that the app credentials can be read and are not the `mssp init` template.
    pub async fn check_app(&self) -> Result<(), CliError> {
        let path = self
            .app_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(&self.app_location));
        let bad = |reason: &str| CliError::AppCredentials {
            path: path.clone(),
            reason: reason.into(),
        };
        match self.deps.app.app_credentials().await {
            Ok(c) if c.client_id == TEMPLATE_CLIENT_ID => Err(bad("still the template")),
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => Err(bad("not found")),
            Err(StoreError::Corrupt { .. }) => Err(bad(
                "not valid (client_id, client_secret, and a base64 state_key of 32+ bytes)",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant `id`, or [`CliError::UnknownTenant`].
    pub async fn tenant(&self, id: &TenantId) -> Result<Tenant, CliError> {
        self.deps
            .registry
            .get(id)
            .await?
            .ok_or_else(|| CliError::UnknownTenant(id.clone()))
    }
}
