//! Assembly: configuration in, the one dependency bundle ([`Deps`]) out — over the AWS adapters
//! for the Lambda functions and `mssp --backend aws`, over local files for `mssp` on one machine.
//! Nothing else in the crate builds adapters.

use std::path::Path;
use std::sync::Arc;

use crate::adapters::aws::{
    DynamoDbConsentNonces, DynamoDbCursorStore, DynamoDbDeliveryIndex, DynamoDbTenantRegistry,
    SecretsManagerAppSecrets, SecretsManagerTokenStore, sdk_config,
};
#[cfg(all(feature = "aws-s3", feature = "aws-sqs"))]
use crate::adapters::aws::{S3AlertSink, SqsWorkQueue, s3_client};
use crate::adapters::local::{
    FileAlertSink, FileAppSecrets, FileConsentNonces, FileCursorStore, FileDeliveryIndex,
    FileTenantRegistry, FileTokenStore,
};
use crate::adapters::unconfigured::NotConfigured;
use crate::clock::{Clock, SystemClock};
use crate::config::deployment::{FetcherConfig, ServiceConfig};
use crate::config::{ConfigError, Env};
use crate::flows::{Deps, Settings};
use crate::telemetry::{self, Mode};

/// The flows' settings of a deployment: the defaults of [`Settings::new`] with `config` applied.
pub fn settings(config: &ServiceConfig) -> Settings {
    let mut settings = Settings::new(config.endpoints.clone(), config.public_base_url.clone());
    settings.refresh_concurrency = config.refresh_concurrency;
    settings.siem_region = config.siem_region;
    settings.metrics = config.metrics.clone();
    settings
}

/// The dependencies over the AWS adapters with an explicit SDK configuration (tests point it
/// at the AWS emulator) and the system clock. No alert bucket and no work queue: those are the
/// fetcher's ([`aws_fetcher`]).
pub fn aws(config: &ServiceConfig, sdk: &aws_config::SdkConfig) -> Deps {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    Deps {
        registry: Arc::new(DynamoDbTenantRegistry::new(ddb.clone(), &config.table)),
        tokens: Arc::new(SecretsManagerTokenStore::new(
            sm.clone(),
            &config.secrets_prefix,
            config.kms_key_id.clone(),
        )),
        nonces: Arc::new(DynamoDbConsentNonces::new(ddb.clone(), &config.table)),
        app: Arc::new(SecretsManagerAppSecrets::new(sm, &config.app_secret_id)),
        cursors: Arc::new(DynamoDbCursorStore::new(ddb.clone(), &config.table)),
        index: Arc::new(DynamoDbDeliveryIndex::new(ddb, &config.table)),
        sink: Arc::new(NotConfigured {
            variable: FetcherConfig::BUCKET_VAR,
        }),
        queue: Arc::new(NotConfigured {
            variable: FetcherConfig::QUEUE_URL_VAR,
        }),
        clock: Arc::new(SystemClock),
        cache: Arc::default(),
        clients: Arc::default(),
        settings: settings(config),
    }
}

/// The alert-fetcher's dependencies: [`aws`] plus the alerts bucket and the work queue (features
/// `aws-s3` and `aws-sqs`).
#[cfg(all(feature = "aws-s3", feature = "aws-sqs"))]
pub fn aws_fetcher(config: &FetcherConfig, sdk: &aws_config::SdkConfig) -> Deps {
    let mut deps = aws(&config.service, sdk);
    deps.sink = Arc::new(
        S3AlertSink::new(
            s3_client(sdk),
            &config.bucket,
            config.alerts_kms_key_id.clone(),
        )
        .with_format(config.output_format)
        .with_gzip_level(config.gzip_level),
    );
    deps.queue = Arc::new(SqsWorkQueue::new(
        aws_sdk_sqs::Client::new(sdk),
        &config.queue_url,
    ));
    deps.settings.fetch.concurrency = config.fetch_concurrency;
    deps.settings.fetch.gzip_level = config.gzip_level;
    deps
}

/// The dependencies over the files of `data_dir` (the embedded default), with the app's
/// credentials at `app_file`, time from `clock` and `settings` (the sink writes objects at
/// `settings.fetch.gzip_level`). No work queue: one process schedules its own fetches.
pub fn local(data_dir: &Path, app_file: &Path, clock: Arc<dyn Clock>, settings: Settings) -> Deps {
    Deps {
        registry: Arc::new(FileTenantRegistry::new(data_dir)),
        tokens: Arc::new(FileTokenStore::new(data_dir)),
        nonces: Arc::new(FileConsentNonces::new(data_dir)),
        app: Arc::new(FileAppSecrets::at(app_file)),
        cursors: Arc::new(FileCursorStore::new(data_dir)),
        sink: Arc::new(FileAlertSink::new(data_dir).with_gzip_level(settings.fetch.gzip_level)),
        index: Arc::new(FileDeliveryIndex::new(data_dir)),
        queue: Arc::new(NotConfigured {
            variable: FetcherConfig::QUEUE_URL_VAR,
        }),
        clock,
        cache: Arc::default(),
        clients: Arc::default(),
        settings,
    }
}

/// Which Lambda function is starting, for [`lambda_function`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `consent-callback` and `token-refresh`: [`ServiceConfig`].
    Service,
    /// `alert-fetcher`: [`FetcherConfig`] (features `aws-s3` and `aws-sqs`).
    #[cfg(all(feature = "aws-s3", feature = "aws-sqs"))]
    Fetcher,
}

/// A Lambda function's start: JSON logs, its configuration from the process environment (a
/// missing or invalid variable is logged by name and returned), the AWS SDK from the environment,
/// and the dependencies built once for every invocation of this execution environment.
pub async fn lambda_function(function: Function) -> Result<Deps, ConfigError> {
    telemetry::init(Mode::detect());
    let env = Env::process();
    let logged = |e: ConfigError| {
        tracing::error!(variable = e.var(), error = %e, "configuration is invalid");
        e
    };
    Ok(match function {
        Function::Service => aws(
            &ServiceConfig::from_env(&env).map_err(logged)?,
            &sdk_config().await,
        ),
        #[cfg(all(feature = "aws-s3", feature = "aws-sqs"))]
        Function::Fetcher => aws_fetcher(
            &FetcherConfig::from_env(&env).map_err(logged)?,
            &sdk_config().await,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployments_settings_carry_its_base_url_and_concurrency() {
        let env: Env = [
            ("MSSP_PUBLIC_BASE_URL", "https://consent.example.com/prod"),
            ("MSSP_SECRETS_PREFIX", "mssp"),
            ("MSSP_TABLE", "mssp-alerts"),
            ("MSSP_REFRESH_CONCURRENCY", "3"),
        ]
        .into_iter()
        .collect();
        let s = settings(&ServiceConfig::from_env(&env).expect("valid"));
        assert_eq!(
            s.redirect_uri(),
            "https://consent.example.com/prod/consent/callback"
        );
        assert_eq!(s.refresh_concurrency, 3);
    }
}
