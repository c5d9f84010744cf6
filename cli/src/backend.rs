//! The stores a command works on, through the same adapters the product runs on: the file
//! adapters under the data directory (local), or the Lambda deployment's Secrets Manager and
//! DynamoDB built by [`shared::wiring`] (`--backend aws`).

use std::path::PathBuf;
use std::sync::Arc;

use shared::adapters::aws::sdk_config;
use shared::adapters::aws_fetch::DynamoDbCursorStore;
use shared::adapters::file::{
    FileAppSecrets, FileConsentNonces, FileTenantRegistry, FileTokenStore,
};
use shared::adapters::file_fetch::{FileAlertSink, FileCursorStore};
use shared::clock::{Clock, SystemClock};
use shared::domain::{Tenant, TenantId};
use shared::flows::Services;
use shared::flows::fetch::FetchPorts;
use shared::ports::{CursorStore, StoreError};
use shared::wiring::{ServiceConfig, aws_services_with};
use url::Url;

use crate::config::{BackendKind, Config, Source};
use crate::error::CliError;

/// `client_id` of the template `mssp init` writes: refused until replaced.
pub const TEMPLATE_CLIENT_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The services of a command and the stores beside them.
#[derive(Clone)]
pub struct Backend {
    /// The flows' services.
    pub services: Services,
    /// Cursors (status, offboarding).
    pub cursors: Arc<dyn CursorStore>,
    /// The local sink and cursors (`mssp serve`, the demo); `None` on AWS.
    pub local: Option<LocalStores>,
    /// Where the app credentials are, for messages.
    app_location: String,
    app_file: Option<PathBuf>,
}

/// The local fetch ports, with the data directory they live in.
#[derive(Clone)]
pub struct LocalStores {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Cursors and the NDJSON sink.
    pub ports: FetchPorts,
    /// The sink, for reading records back.
    pub sink: FileAlertSink,
}

impl Backend {
    /// The file adapters under `config.data_dir` with `clock`, for a consent endpoint at
    /// `public_base_url`.
    pub fn local(config: &Config, public_base_url: Url, clock: Arc<dyn Clock>) -> Backend {
        let dir = &config.data_dir;
        let cursors: Arc<dyn CursorStore> = Arc::new(FileCursorStore::new(dir));
        let sink = FileAlertSink::new(dir);
        Backend {
            services: Services {
                registry: Arc::new(FileTenantRegistry::new(dir)),
                tokens: Arc::new(FileTokenStore::new(dir)),
                nonces: Arc::new(FileConsentNonces::new(dir)),
                app: Arc::new(FileAppSecrets::at(&config.app_credentials_file)),
                clock,
                settings: config.settings(public_base_url),
            },
            local: Some(LocalStores {
                data_dir: dir.clone(),
                ports: FetchPorts {
                    cursors: cursors.clone(),
                    sink: Arc::new(sink.clone()),
                },
                sink,
            }),
            cursors,
            app_location: config.app_credentials_file.display().to_string(),
            app_file: Some(config.app_credentials_file.clone()),
        }
    }

    /// The AWS deployment's stores (`MSSP_PUBLIC_BASE_URL`, `MSSP_SECRETS_PREFIX`, `MSSP_TABLE`…
    /// as the Lambda functions read them) with the configuration's knobs.
    pub async fn aws(src: &Source, config: &Config) -> Result<Backend, CliError> {
        let service = ServiceConfig::from_env(&src.env()).map_err(|e| src.error(e))?;
        let sdk = sdk_config().await;
        let mut services = aws_services_with(&service, &sdk);
        config.apply(&mut services.settings);
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        Ok(Backend {
            services,
            cursors: Arc::new(DynamoDbCursorStore::new(ddb, &service.table)),
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

    /// The local stores, or a usage error naming `command` for the AWS backend.
    pub fn require_local(&self, command: &str) -> Result<&LocalStores, CliError> {
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
        match self.services.app.app_credentials().await {
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
        self.services
            .registry
            .get(id)
            .await?
            .ok_or_else(|| CliError::UnknownTenant(id.clone()))
    }
}
