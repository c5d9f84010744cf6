//! The deployment's configuration: the variables every Lambda function reads.
//!
//! Every function reads the same variables, once per cold start, and fails fast naming the
//! variable ([`ConfigError`]). The Terraform module sets exactly these (the table below is
//! compared with [`ServiceConfig::VARIABLES`] by a test):
//!
//! | variable | required | default | meaning |
//! |---|---|---|---|
//! | `MSSP_PUBLIC_BASE_URL` | yes | | Public base URL of the consent endpoint; links are `{base}/consent/start`, the redirect URI registered in Entra is `{base}/consent/callback`. `https`, or `http` on a loopback host (tests). |
//! | `MSSP_SECRETS_PREFIX` | yes | | Secrets Manager name prefix; tenant tokens live in `{prefix}/tenants/{tenant_id}`. |
//! | `MSSP_APP_SECRET_ID` | no | `{prefix}/app` | Name or ARN of the secret holding the app's `client_id`, `client_secret` and `state_key`. |
//! | `MSSP_TABLE` | yes | | DynamoDB table of tenant records and consent nonces. |
//! | `MSSP_KMS_KEY_ID` | no | the account's default key | KMS key encrypting new tenant secrets. |
//! | `MSSP_CLOUD` | no | `commercial` | `commercial`, `gcc`, `gcc-high` or `dod`: the cloud whose endpoints fill in any override below that is not set. |
//! | `MSSP_AUTHORITY_URL` | no | per tenant cloud | Entra ID authority host. |
//! | `MSSP_GRAPH_URL` | no | per tenant cloud | Microsoft Graph base URL. |
//! | `MSSP_MDE_URL` | no | per tenant cloud | Defender for Endpoint API base URL. |
//! | `MSSP_SIEM_URL` | no | per tenant cloud | Legacy SIEM API base URL; `{region}` in it stands for the tenant's SIEM region. |
//! | `MSSP_SIEM_REGION` | no | `us` | `eu`, `us` or `uk`: the SIEM exporter region of a tenant that records none. |
//! | `MSSP_REFRESH_CONCURRENCY` | no | `8` | Tenants refreshed at once (at least 1). |
//! | `MSSP_METRICS_NAMESPACE` | no | `MSSPAlerts` | CloudWatch namespace of the metrics the functions write as Embedded Metric Format lines (`crate::metrics`). |
//! | `MSSP_METRICS_PER_TENANT` | no | `false` | Also publish lag and fetch failures per tenant (a `TenantId` dimension: two custom metrics per tenant). |
//!
//! When none of the four URL overrides is set, every tenant is reached at Microsoft's endpoints
//! of its own cloud ([`Endpoints::PerCloud`]); when any is set, every tenant uses one fixed set
//! ([`Endpoints::Fixed`]: the `MSSP_CLOUD` endpoints with the overrides applied), which is how a
//! single sovereign-cloud deployment or the emulator is configured.
//!
//! The AWS SDK reads its own variables (`AWS_REGION`, credentials, and `AWS_ENDPOINT_URL`, which
//! tests point at the AWS emulator).

use url::Url;

use super::{CloudEndpoints, ConfigError, Endpoints, Env, GzipLevel};
use crate::domain::SiemRegion;

/// Configuration shared by the Lambda functions, read once per cold start.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Public base URL of the consent endpoint.
    pub public_base_url: Url,
    /// Secrets Manager name prefix (no trailing slash).
    pub secrets_prefix: String,
    /// Name or ARN of the app secret.
    pub app_secret_id: String,
    /// DynamoDB table.
    pub table: String,
    /// KMS key for new tenant secrets.
    pub kms_key_id: Option<String>,
    /// Microsoft endpoints.
    pub endpoints: Endpoints,
    /// The SIEM exporter region of a tenant that records none.
    pub siem_region: SiemRegion,
    /// Tenants refreshed at once.
    pub refresh_concurrency: usize,
    /// Where and how finely the functions publish their metrics.
    pub metrics: MetricsConfig,
}

/// The metrics' CloudWatch namespace and whether a per-tenant dimension is published
/// (`crate::metrics` says what each costs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// CloudWatch namespace (1-255 printable ASCII characters, not `AWS/…`).
    pub namespace: String,
    /// Publish lag and fetch failures per tenant too.
    pub per_tenant: bool,
}

impl MetricsConfig {
    /// The namespace when none is configured.
    pub const DEFAULT_NAMESPACE: &'static str = "MSSPAlerts";

    /// Reads `MSSP_METRICS_NAMESPACE` and `MSSP_METRICS_PER_TENANT`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let var = ServiceConfig::METRICS_NAMESPACE_VAR;
        let namespace = env
            .optional(var)
            .map(|n| n.trim().to_string())
            .unwrap_or_else(|| Self::DEFAULT_NAMESPACE.to_string());
        let printable = namespace.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        if namespace.is_empty() || namespace.len() > 255 || !printable {
            return Err(ConfigError::Invalid {
                var: var.into(),
                reason: format!("{namespace:?}: 1 to 255 printable ASCII characters"),
            });
        }
        if namespace.starts_with("AWS/") {
            return Err(ConfigError::Invalid {
                var: var.into(),
                reason: format!("{namespace:?}: namespaces starting with AWS/ are AWS's own"),
            });
        }
        let per_tenant = env.bool(ServiceConfig::METRICS_PER_TENANT_VAR, false)?;
        Ok(MetricsConfig {
            namespace,
            per_tenant,
        })
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            namespace: Self::DEFAULT_NAMESPACE.to_string(),
            per_tenant: false,
        }
    }
}

impl ServiceConfig {
    /// See the module table.
    pub const PUBLIC_BASE_URL_VAR: &'static str = "MSSP_PUBLIC_BASE_URL";
    /// See the module table.
    pub const SECRETS_PREFIX_VAR: &'static str = "MSSP_SECRETS_PREFIX";
    /// See the module table.
    pub const APP_SECRET_ID_VAR: &'static str = "MSSP_APP_SECRET_ID";
    /// See the module table.
    pub const TABLE_VAR: &'static str = "MSSP_TABLE";
    /// See the module table.
    pub const KMS_KEY_ID_VAR: &'static str = "MSSP_KMS_KEY_ID";
    /// See the module table.
    pub const SIEM_REGION_VAR: &'static str = "MSSP_SIEM_REGION";
    /// See the module table.
    pub const REFRESH_CONCURRENCY_VAR: &'static str = "MSSP_REFRESH_CONCURRENCY";
    /// See the module table.
    pub const METRICS_NAMESPACE_VAR: &'static str = "MSSP_METRICS_NAMESPACE";
    /// See the module table.
    pub const METRICS_PER_TENANT_VAR: &'static str = "MSSP_METRICS_PER_TENANT";

    /// Every variable read by [`ServiceConfig::from_env`], in the order of the module table.
    pub const VARIABLES: [&'static str; 14] = [
        Self::PUBLIC_BASE_URL_VAR,
        Self::SECRETS_PREFIX_VAR,
        Self::APP_SECRET_ID_VAR,
        Self::TABLE_VAR,
        Self::KMS_KEY_ID_VAR,
        CloudEndpoints::CLOUD_VAR,
        CloudEndpoints::AUTHORITY_VAR,
        CloudEndpoints::GRAPH_VAR,
        CloudEndpoints::MDE_VAR,
        CloudEndpoints::SIEM_VAR,
        Self::SIEM_REGION_VAR,
        Self::REFRESH_CONCURRENCY_VAR,
        Self::METRICS_NAMESPACE_VAR,
        Self::METRICS_PER_TENANT_VAR,
    ];

    /// Reads the configuration; the error names the first variable that is missing or invalid.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let public_base_url = env.url(Self::PUBLIC_BASE_URL_VAR)?;
        check_public_base(&public_base_url)?;
        let secrets_prefix = env
            .required(Self::SECRETS_PREFIX_VAR)?
            .trim()
            .trim_end_matches('/')
            .to_string();
        if secrets_prefix.is_empty() {
            return Err(ConfigError::Invalid {
                var: Self::SECRETS_PREFIX_VAR.into(),
                reason: "the prefix is only slashes".into(),
            });
        }
        let app_secret_id = env
            .optional(Self::APP_SECRET_ID_VAR)
            .unwrap_or_else(|| format!("{secrets_prefix}/app"));
        let table = env.required(Self::TABLE_VAR)?;
        let kms_key_id = env.optional(Self::KMS_KEY_ID_VAR);
        let endpoints = endpoints_from_env(env)?;
        let siem_region = env.parse_or(Self::SIEM_REGION_VAR, SiemRegion::default())?;
        let refresh_concurrency = env.parse_or(Self::REFRESH_CONCURRENCY_VAR, 8usize)?;
        if refresh_concurrency == 0 {
            return Err(ConfigError::Invalid {
                var: Self::REFRESH_CONCURRENCY_VAR.into(),
                reason: "\"0\": at least one tenant must be refreshed at a time".into(),
            });
        }
        let metrics = MetricsConfig::from_env(env)?;
        Ok(ServiceConfig {
            public_base_url,
            secrets_prefix,
            app_secret_id,
            table,
            kms_key_id,
            endpoints,
            siem_region,
            refresh_concurrency,
            metrics,
        })
    }
}

/// The Microsoft endpoints from `MSSP_CLOUD` and the four URL overrides: [`Endpoints::PerCloud`]
/// when no override is set, else one [`Endpoints::Fixed`] set (the cloud's endpoints with the
/// overrides applied). The local `mssp` reads its endpoints here too.
pub fn endpoints_from_env(env: &Env) -> Result<Endpoints, ConfigError> {
    let fixed = CloudEndpoints::from_env(env)?;
    let overridden = [
        CloudEndpoints::AUTHORITY_VAR,
        CloudEndpoints::GRAPH_VAR,
        CloudEndpoints::MDE_VAR,
        CloudEndpoints::SIEM_VAR,
    ]
    .iter()
    .any(|var| env.optional(var).is_some());
    Ok(if overridden {
        Endpoints::Fixed(Box::new(fixed))
    } else {
        Endpoints::PerCloud
    })
}

/// Customers' admins open the consent link in a browser: it must be `https`, except on a
/// loopback host (local runs and tests). A query or fragment would be dropped from every link.
/// The error names `MSSP_PUBLIC_BASE_URL` (the local `mssp serve` checks its URL here too).
pub fn check_public_base(url: &Url) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        var: ServiceConfig::PUBLIC_BASE_URL_VAR.into(),
        reason: format!("{:?}: {reason}", url.as_str()),
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() != "https" && !loopback {
        return Err(invalid(
            "must be https (http is allowed on a loopback host only)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not hold credentials"));
    }
    Ok(())
}

/// The alert-fetcher's configuration: every [`ServiceConfig`] variable plus:
///
/// | variable | required | default | meaning |
/// |---|---|---|---|
/// | `MSSP_BUCKET` | yes | | S3 bucket the alert objects go to. |
/// | `MSSP_ALERTS_KMS_KEY_ID` | no | the bucket's default encryption | KMS key requested for alert objects (SSE-KMS). |
/// | `MSSP_QUEUE_URL` | yes | | SQS queue of per-tenant work items (dispatch writes, the fetcher consumes). |
/// | `MSSP_FETCH_CONCURRENCY` | no | `4` | Tenants of one SQS batch fetched at once (at least 1). |
/// | `MSSP_OUTPUT_FORMAT` | no | `raw` | What a delivery writes: `raw` (`alerts/…`, records `mssp.alert/1`), `ocsf` (`ocsf/…`, OCSF Detection Findings, `shared::ocsf`) or `raw+ocsf` (both, same keys below the prefix). |
/// | `MSSP_GZIP_LEVEL` | no | `6` | gzip level of the alert objects, 1 (fastest) to 9 (smallest); see [`GzipLevel`]. |
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// The shared configuration.
    pub service: ServiceConfig,
    /// Alerts bucket.
    pub bucket: String,
    /// KMS key for alert objects.
    pub alerts_kms_key_id: Option<String>,
    /// Work queue URL.
    pub queue_url: String,
    /// Tenants fetched at once.
    pub fetch_concurrency: usize,
    /// What the sink writes.
    pub output_format: super::output::OutputFormat,
    /// gzip level of the alert objects.
    pub gzip_level: GzipLevel,
}

impl FetcherConfig {
    /// See the table.
    pub const BUCKET_VAR: &'static str = "MSSP_BUCKET";
    /// See the table.
    pub const ALERTS_KMS_KEY_ID_VAR: &'static str = "MSSP_ALERTS_KMS_KEY_ID";
    /// See the table.
    pub const QUEUE_URL_VAR: &'static str = "MSSP_QUEUE_URL";
    /// See the table.
    pub const FETCH_CONCURRENCY_VAR: &'static str = "MSSP_FETCH_CONCURRENCY";
    /// See the table.
    pub const OUTPUT_FORMAT_VAR: &'static str = "MSSP_OUTPUT_FORMAT";
    /// See the table.
    pub const GZIP_LEVEL_VAR: &'static str = "MSSP_GZIP_LEVEL";
    /// The variables the fetcher reads beyond [`ServiceConfig::VARIABLES`].
    pub const OWN_VARIABLES: [&'static str; 6] = [
        Self::BUCKET_VAR,
        Self::ALERTS_KMS_KEY_ID_VAR,
        Self::QUEUE_URL_VAR,
        Self::FETCH_CONCURRENCY_VAR,
        Self::OUTPUT_FORMAT_VAR,
        Self::GZIP_LEVEL_VAR,
    ];

    /// Every variable the fetcher reads.
    pub fn variables() -> Vec<&'static str> {
        ServiceConfig::VARIABLES
            .iter()
            .chain(Self::OWN_VARIABLES.iter())
            .copied()
            .collect()
    }

    /// Reads the configuration; the error names the variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_env(env)?;
        let bucket = env.required(Self::BUCKET_VAR)?;
        let alerts_kms_key_id = env.optional(Self::ALERTS_KMS_KEY_ID_VAR);
        let queue_url = env.url(Self::QUEUE_URL_VAR)?.to_string();
        let fetch_concurrency = env.parse_or(Self::FETCH_CONCURRENCY_VAR, 4usize)?;
        if fetch_concurrency == 0 {
            return Err(ConfigError::Invalid {
                var: Self::FETCH_CONCURRENCY_VAR.into(),
                reason: "\"0\": at least one tenant must be fetched at a time".into(),
            });
        }
        let output_format = env.parse_or(Self::OUTPUT_FORMAT_VAR, Default::default())?;
        let gzip_level = env.parse_or(Self::GZIP_LEVEL_VAR, GzipLevel::DEFAULT)?;
        Ok(FetcherConfig {
            service,
            bucket,
            alerts_kms_key_id,
            queue_url,
            fetch_concurrency,
            output_format,
            gzip_level,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    const MINIMAL: [(&str, &str); 3] = [
        ("MSSP_PUBLIC_BASE_URL", "https://consent.example.com/prod"),
        ("MSSP_SECRETS_PREFIX", "mssp/"),
        ("MSSP_TABLE", "mssp-alerts"),
    ];

    #[test]
    fn the_module_table_documents_exactly_the_variables_read() {
        let source = include_str!("deployment.rs");
        let documented: Vec<&str> = source
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        assert_eq!(documented, ServiceConfig::VARIABLES.to_vec());
    }

    #[test]
    fn the_fetcher_table_documents_exactly_its_own_variables() {
        let source = include_str!("deployment.rs");
        let table = source
            .split("/// The alert-fetcher's configuration")
            .nth(1)
            .expect("the fetcher's docs");
        let documented: Vec<&str> = table
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("///"))
            .filter_map(|l| l.strip_prefix("/// | `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        assert_eq!(documented, FetcherConfig::OWN_VARIABLES.to_vec());
    }

    #[test]
    fn the_fetchers_gzip_level_is_optional_and_validated() {
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            ("MSSP_BUCKET", "alerts"),
            (
                "MSSP_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/1/work",
            ),
        ]);
        let c = FetcherConfig::from_env(&env(&pairs)).unwrap();
        assert_eq!(c.gzip_level, GzipLevel::DEFAULT);
        pairs.push(("MSSP_GZIP_LEVEL", "1"));
        let c = FetcherConfig::from_env(&env(&pairs)).unwrap();
        assert_eq!(c.gzip_level.get(), 1);
        *pairs.last_mut().unwrap() = ("MSSP_GZIP_LEVEL", "0");
        let e = FetcherConfig::from_env(&env(&pairs)).unwrap_err();
        assert_eq!(e.var(), "MSSP_GZIP_LEVEL");
    }

    #[test]
    fn minimal_configuration_uses_the_defaults() {
        let c = ServiceConfig::from_env(&env(&MINIMAL)).unwrap();
        assert_eq!(c.secrets_prefix, "mssp");
        assert_eq!(c.app_secret_id, "mssp/app");
        assert_eq!(c.table, "mssp-alerts");
        assert_eq!(c.kms_key_id, None);
        assert_eq!(c.refresh_concurrency, 8);
        assert_eq!(c.metrics, MetricsConfig::default());
        assert!(matches!(c.endpoints, Endpoints::PerCloud));
        assert_eq!(
            c.public_base_url.as_str(),
            "https://consent.example.com/prod"
        );
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for missing in ["MSSP_PUBLIC_BASE_URL", "MSSP_SECRETS_PREFIX", "MSSP_TABLE"] {
            let pairs: Vec<_> = MINIMAL.into_iter().filter(|(k, _)| *k != missing).collect();
            let e = ServiceConfig::from_env(&env(&pairs)).unwrap_err();
            assert_eq!(e.var(), missing);
            assert!(e.to_string().contains(missing), "{e}");
        }
    }

    #[test]
    fn optional_variables_are_applied() {
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            (
                "MSSP_APP_SECRET_ID",
                "arn:aws:secretsmanager:us-east-1:1:secret:app",
            ),
            ("MSSP_KMS_KEY_ID", "alias/mssp"),
            ("MSSP_REFRESH_CONCURRENCY", "3"),
            ("MSSP_METRICS_NAMESPACE", "MSSPAlerts/prod"),
            ("MSSP_METRICS_PER_TENANT", "true"),
        ]);
        let c = ServiceConfig::from_env(&env(&pairs)).unwrap();
        assert_eq!(
            c.metrics,
            MetricsConfig {
                namespace: "MSSPAlerts/prod".into(),
                per_tenant: true
            }
        );
        assert_eq!(
            c.app_secret_id,
            "arn:aws:secretsmanager:us-east-1:1:secret:app"
        );
        assert_eq!(c.kms_key_id.as_deref(), Some("alias/mssp"));
        assert_eq!(c.refresh_concurrency, 3);
    }

    #[test]
    fn any_endpoint_override_fixes_the_endpoints_for_every_tenant() {
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            ("MSSP_CLOUD", "gcc"),
            ("MSSP_MDE_URL", "http://127.0.0.1:9/mde"),
        ]);
        let c = ServiceConfig::from_env(&env(&pairs)).unwrap();
        let Endpoints::Fixed(e) = &c.endpoints else {
            panic!("expected fixed endpoints, got {:?}", c.endpoints);
        };
        assert_eq!(e.mde.as_str(), "http://127.0.0.1:9/mde");
        assert_eq!(
            e.authority,
            CloudEndpoints::for_cloud(crate::config::Cloud::Gcc).authority
        );
    }

    #[test]
    fn the_cloud_alone_keeps_per_tenant_endpoints_but_is_validated() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("MSSP_CLOUD", "dod"));
        let c = ServiceConfig::from_env(&env(&pairs)).unwrap();
        assert!(matches!(c.endpoints, Endpoints::PerCloud));
        let mut bad = MINIMAL.to_vec();
        bad.push(("MSSP_CLOUD", "mars"));
        assert_eq!(
            ServiceConfig::from_env(&env(&bad)).unwrap_err().var(),
            "MSSP_CLOUD"
        );
    }

    #[test]
    fn invalid_values_are_refused_naming_the_variable() {
        let cases: [(&str, &str); 11] = [
            ("MSSP_REFRESH_CONCURRENCY", "0"),
            ("MSSP_METRICS_NAMESPACE", "AWS/Lambda"),
            ("MSSP_METRICS_NAMESPACE", "  "),
            ("MSSP_METRICS_NAMESPACE", "tab\there"),
            ("MSSP_METRICS_PER_TENANT", "sometimes"),
            ("MSSP_REFRESH_CONCURRENCY", "many"),
            ("MSSP_PUBLIC_BASE_URL", "http://consent.example.com"),
            ("MSSP_PUBLIC_BASE_URL", "https://consent.example.com/?a=b"),
            (
                "MSSP_PUBLIC_BASE_URL",
                "https://user:pw@consent.example.com/",
            ),
            ("MSSP_PUBLIC_BASE_URL", "not a url"),
            ("MSSP_GRAPH_URL", "ftp://graph"),
        ];
        for (var, value) in cases {
            let mut pairs: Vec<_> = MINIMAL.into_iter().filter(|(k, _)| *k != var).collect();
            pairs.push((var, value));
            let e = ServiceConfig::from_env(&env(&pairs)).unwrap_err();
            assert_eq!(e.var(), var, "{value}: {e}");
        }
    }

    #[test]
    fn http_is_allowed_on_loopback_hosts() {
        for base in [
            "http://127.0.0.1:8080",
            "http://localhost:3000/x",
            "http://[::1]:1",
        ] {
            let mut pairs: Vec<_> = MINIMAL
                .into_iter()
                .filter(|(k, _)| *k != "MSSP_PUBLIC_BASE_URL")
                .collect();
            pairs.push(("MSSP_PUBLIC_BASE_URL", base));
            ServiceConfig::from_env(&env(&pairs)).unwrap();
        }
    }
}
