//! `mssp`'s configuration: an optional TOML file (`mssp.toml`) whose every key has an `MSSP_*`
//! environment variable that overrides it, and command-line flags over both.
//!
//! The file is `--config PATH` (or `MSSP_CONFIG`); without either, `./mssp.toml` when it exists.
//! Relative paths in the file are relative to the file's folder. An unknown key is an error, so
//! a typo is never silently ignored. Every value is read through the shared crate's [`Env`] (the
//! same reader the Lambda functions use): an invalid value fails naming its variable, and the
//! file key when it came from the file.
//!
//! | key | variable | default | meaning |
//! |---|---|---|---|
//! | `backend` | `MSSP_BACKEND` | `local` | `local` (files under `data_dir`) or `aws` (the Lambda deployment's stores) |
//! | `data_dir` | `MSSP_DATA_DIR` | `./mssp-data` | local stores: registry, secrets (0600), cursors, alerts |
//! | `public_base_url` | `MSSP_PUBLIC_BASE_URL` | `http://{listen}` | consent links are `{base}/consent/start`; the redirect URI is `{base}/consent/callback` |
//! | `listen` | `MSSP_LISTEN` | `127.0.0.1:8080` | where `mssp serve` serves the consent endpoint |
//! | `app_credentials_file` | `MSSP_APP_CREDENTIALS_FILE` | `{data_dir}/secrets/app.json` | the app registration's `client_id`, `client_secret`, `state_key` |
//! | `cloud` | `MSSP_CLOUD` | `commercial` | `commercial`, `gcc`, `gcc-high`, `dod` |
//! | `endpoints.authority` | `MSSP_AUTHORITY_URL` | per tenant cloud | Entra ID authority (any endpoint set: one fixed set for every tenant, e.g. the emulator) |
//! | `endpoints.graph` | `MSSP_GRAPH_URL` | per tenant cloud | Microsoft Graph |
//! | `endpoints.mde` | `MSSP_MDE_URL` | per tenant cloud | Defender for Endpoint API |
//! | `endpoints.siem` | `MSSP_SIEM_URL` | per tenant cloud | legacy SIEM API (`{region}` in it stands for the tenant's SIEM region) |
//! | `siem_region` | `MSSP_SIEM_REGION` | `us` | SIEM exporter region of a tenant added without `--siem-region` |
//! | `schedule.refresh_interval` | `MSSP_REFRESH_INTERVAL` | `15m` | `mssp serve`: time between token refresh runs |
//! | `schedule.fetch_interval` | `MSSP_FETCH_INTERVAL` | `5m` | `mssp serve`: time between fetch runs |
//! | `schedule.shutdown_grace` | `MSSP_SHUTDOWN_GRACE` | `30s` | `mssp serve`: how long in-flight fetches may finish after SIGINT/SIGTERM |
//! | `refresh.concurrency` | `MSSP_REFRESH_CONCURRENCY` | `8` | tenants refreshed at once |
//! | `fetch.concurrency` | `MSSP_FETCH_CONCURRENCY` | `16` | tenants fetched at once (each tenant keeps to its own Microsoft request budget) |
//! | `fetch.run_deadline` | `MSSP_FETCH_RUN_DEADLINE` | `10m` | one fetch stops starting work after this and commits what it delivered |
//! | `fetch.overlap` | `MSSP_FETCH_OVERLAP` | `1h` | how far below the watermark each run looks again |
//! | `fetch.initial_lookback` | `MSSP_FETCH_INITIAL_LOOKBACK` | `7d` | where a tenant's first fetch starts |
//! | `fetch.chunk_target` | `MSSP_FETCH_CHUNK_TARGET` | `20000` | alerts per committed chunk |
//! | `fetch.http_timeout` | `MSSP_HTTP_TIMEOUT` | `60s` | timeout of each Microsoft request |
//! | `fetch.output_format` | `MSSP_OUTPUT_FORMAT` | `raw` | local sink: `raw` (`alerts/…`), `ocsf` (`ocsf/…`, one OCSF Detection Finding per line) or `raw+ocsf`; the lake's Parquet files (`lake/…`) are written whatever it is |
//! | `fetch.gzip_level` | `MSSP_GZIP_LEVEL` | `6` | gzip level of the alert objects, 1 (fastest) to 9 (smallest) |
//! | `aws.secrets_prefix` | `MSSP_SECRETS_PREFIX` | | `--backend aws`: Secrets Manager prefix |
//! | `aws.app_secret_id` | `MSSP_APP_SECRET_ID` | `{prefix}/app` | `--backend aws`: the app secret |
//! | `aws.table` | `MSSP_TABLE` | | `--backend aws`: DynamoDB table |
//! | `aws.kms_key_id` | `MSSP_KMS_KEY_ID` | account default | `--backend aws`: KMS key of new tenant secrets |
//!
//! Durations read `30s`, `5m`, `1h30m`, `7d`, or a number of seconds. The AWS SDK reads its own
//! variables (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shared::adapters::local::FileAppSecrets;
use shared::config::Endpoints;
use shared::config::deployment::{
    FetcherConfig, ServiceConfig, check_public_base, endpoints_from_env,
};
use shared::config::output::OutputFormat;
use shared::config::{ConfigError, Env, GzipLevel};
use shared::domain::SiemRegion;
use shared::flows::Settings;
use url::Url;

use crate::error::CliError;

/// Every file key and the variable that overrides it, in the order of the module table.
pub const KEYS: [(&str, &str); 28] = [
    ("backend", "MSSP_BACKEND"),
    ("data_dir", "MSSP_DATA_DIR"),
    ("public_base_url", ServiceConfig::PUBLIC_BASE_URL_VAR),
    ("listen", "MSSP_LISTEN"),
    ("app_credentials_file", "MSSP_APP_CREDENTIALS_FILE"),
    ("cloud", "MSSP_CLOUD"),
    ("endpoints.authority", "MSSP_AUTHORITY_URL"),
    ("endpoints.graph", "MSSP_GRAPH_URL"),
    ("endpoints.mde", "MSSP_MDE_URL"),
    ("endpoints.siem", "MSSP_SIEM_URL"),
    ("siem_region", ServiceConfig::SIEM_REGION_VAR),
    ("schedule.refresh_interval", "MSSP_REFRESH_INTERVAL"),
    ("schedule.fetch_interval", "MSSP_FETCH_INTERVAL"),
    ("schedule.shutdown_grace", "MSSP_SHUTDOWN_GRACE"),
    (
        "refresh.concurrency",
        ServiceConfig::REFRESH_CONCURRENCY_VAR,
    ),
    ("fetch.concurrency", "MSSP_FETCH_CONCURRENCY"),
    ("fetch.run_deadline", "MSSP_FETCH_RUN_DEADLINE"),
    ("fetch.overlap", "MSSP_FETCH_OVERLAP"),
    ("fetch.initial_lookback", "MSSP_FETCH_INITIAL_LOOKBACK"),
    ("fetch.chunk_target", "MSSP_FETCH_CHUNK_TARGET"),
    ("fetch.http_timeout", "MSSP_HTTP_TIMEOUT"),
    ("fetch.output_format", FetcherConfig::OUTPUT_FORMAT_VAR),
    ("fetch.gzip_level", FetcherConfig::GZIP_LEVEL_VAR),
    ("aws.secrets_prefix", ServiceConfig::SECRETS_PREFIX_VAR),
    ("aws.app_secret_id", ServiceConfig::APP_SECRET_ID_VAR),
    ("aws.table", ServiceConfig::TABLE_VAR),
    ("aws.kms_key_id", ServiceConfig::KMS_KEY_ID_VAR),
    // Not a file key: names the file itself.
    ("", "MSSP_CONFIG"),
];

/// The variable naming the configuration file.
pub const CONFIG_VAR: &str = "MSSP_CONFIG";

/// Keys whose relative paths are resolved against the file's folder.
const PATH_KEYS: [&str; 2] = ["data_dir", "app_credentials_file"];

/// Where `mssp` keeps and finds things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Files under the data directory (the embedded default).
    Local,
    /// The AWS deployment's Secrets Manager and DynamoDB.
    Aws,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(BackendKind::Local),
            "aws" => Ok(BackendKind::Aws),
            _ => Err("expected local or aws".into()),
        }
    }
}

/// The values of the file (by variable name) and the process environment, the environment first.
#[derive(Clone)]
pub struct Source {
    file: Option<PathBuf>,
    /// Variable name → (value, file key).
    from_file: Arc<HashMap<String, (String, &'static str)>>,
    process: Env,
}

impl Source {
    /// Reads the file named by `explicit`, else `MSSP_CONFIG`, else `./mssp.toml` if present.
    pub fn load(explicit: Option<&Path>, process: Env) -> Result<Source, CliError> {
        let named = explicit
            .map(Path::to_path_buf)
            .or_else(|| process.optional(CONFIG_VAR).map(PathBuf::from));
        let file = match named {
            Some(p) => Some(p),
            None => Some(PathBuf::from("mssp.toml")).filter(|p| p.is_file()),
        };
        let from_file = match &file {
            Some(path) => read_file(path)?,
            None => HashMap::new(),
        };
        Ok(Source {
            file,
            from_file: Arc::new(from_file),
            process,
        })
    }

    /// No file: the environment only.
    pub fn env_only(process: Env) -> Source {
        Source {
            file: None,
            from_file: Arc::new(HashMap::new()),
            process,
        }
    }

    /// The configuration file read, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// One reader over both: a variable set in the environment wins over the file's key.
    pub fn env(&self) -> Env {
        let process = self.process.clone();
        let file = self.from_file.clone();
        Env::from_fn(move |name| {
            process
                .optional(name)
                .or_else(|| file.get(name).map(|(v, _)| v.clone()))
        })
    }

    /// `e` with where its value came from when that was the file.
    pub fn error(&self, e: ConfigError) -> CliError {
        let origin = match (&self.file, self.from_file.get(e.var())) {
            (Some(path), Some((_, key))) if self.process.optional(e.var()).is_none() => {
                Some(format!("as `{key}` in {}", path.display()))
            }
            _ => None,
        };
        CliError::Config { error: e, origin }
    }
}

fn read_file(path: &Path) -> Result<HashMap<String, (String, &'static str)>, CliError> {
    let bad = |reason: String| CliError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(format!("is not valid TOML: {}", e.message().trim())))?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let mut out = HashMap::new();
    let mut leaves = Vec::new();
    flatten("", &table, &mut leaves);
    for (key, value) in leaves {
        let Some((known, var)) = KEYS.iter().find(|(k, _)| !k.is_empty() && *k == key) else {
            return Err(bad(format!(
                "unknown key `{key}` (known keys: {})",
                KEYS.iter()
                    .map(|(k, _)| *k)
                    .filter(|k| !k.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => return Err(bad(format!("`{key}` must be a string or a number"))),
        };
        let text = if PATH_KEYS.contains(known) && Path::new(&text).is_relative() {
            base.join(&text).display().to_string()
        } else {
            text
        };
        out.insert((*var).to_string(), (text, *known));
    }
    Ok(out)
}

fn flatten<'a>(prefix: &str, table: &'a toml::Table, out: &mut Vec<(String, &'a toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            leaf => out.push((key, leaf)),
        }
    }
}

/// A duration: `30s`, `5m`, `1h30m`, `7d`, `500ms`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            _ => return None,
        };
        total = total.checked_add(unit)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn duration(env: &Env, var: &str, default: Duration) -> Result<Duration, ConfigError> {
    let Some(text) = env.optional(var) else {
        return Ok(default);
    };
    match parse_duration(&text) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(ConfigError::Invalid {
            var: var.into(),
            reason: format!("{text:?}: expected a duration such as 30s, 5m, 1h30m or 7d"),
        }),
    }
}

fn at_least_one(env: &Env, var: &str, default: usize) -> Result<usize, ConfigError> {
    let n = env.parse_or(var, default)?;
    if n == 0 {
        return Err(ConfigError::Invalid {
            var: var.into(),
            reason: "\"0\": must be at least 1".into(),
        });
    }
    Ok(n)
}

/// Everything the commands read from the configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Local files or AWS.
    pub backend: BackendKind,
    /// The local data directory.
    pub data_dir: PathBuf,
    /// The configured public base URL of the consent endpoint.
    pub public_base_url: Option<Url>,
    /// Where `mssp serve` listens.
    pub listen: SocketAddr,
    /// The app credentials file (local backend).
    pub app_credentials_file: PathBuf,
    /// Microsoft endpoints.
    pub endpoints: Endpoints,
    /// The SIEM exporter region of a tenant that records none.
    pub siem_region: SiemRegion,
    /// `mssp serve`: time between refresh runs.
    pub refresh_interval: Duration,
    /// `mssp serve`: time between fetch runs.
    pub fetch_interval: Duration,
    /// `mssp serve`: how long in-flight work may finish after a signal.
    pub shutdown_grace: Duration,
    /// Tenants refreshed at once.
    pub refresh_concurrency: usize,
    /// Tenants fetched at once.
    pub fetch_concurrency: usize,
    /// Deadline of one fetch.
    pub fetch_run_deadline: Duration,
    /// Fetch overlap.
    pub overlap: Duration,
    /// First fetch lookback.
    pub initial_lookback: Duration,
    /// Alerts per committed chunk.
    pub chunk_target: u64,
    /// Timeout of each Microsoft request.
    pub http_timeout: Duration,
    /// What the local sink writes.
    pub output_format: OutputFormat,
    /// gzip level of the alert objects.
    pub gzip_level: GzipLevel,
}

impl Config {
    /// Reads every key; `backend` and `data_dir` given on the command line win.
    pub fn read(
        src: &Source,
        backend: Option<BackendKind>,
        data_dir: Option<&Path>,
    ) -> Result<Config, CliError> {
        Self::read_env(&src.env(), backend, data_dir).map_err(|e| src.error(e))
    }

    fn read_env(
        env: &Env,
        backend: Option<BackendKind>,
        data_dir: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let backend = match backend {
            Some(b) => b,
            None => env.parse_or("MSSP_BACKEND", BackendKind::Local)?,
        };
        let data_dir = match data_dir {
            Some(d) => d.to_path_buf(),
            None => env
                .optional("MSSP_DATA_DIR")
                .map_or_else(|| PathBuf::from("mssp-data"), PathBuf::from),
        };
        let public_base_url = env.optional_url(ServiceConfig::PUBLIC_BASE_URL_VAR)?;
        if let Some(u) = &public_base_url {
            check_public_base(u)?;
        }
        let listen = env.parse_or("MSSP_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        let app_credentials_file = env
            .optional("MSSP_APP_CREDENTIALS_FILE")
            .map_or_else(|| FileAppSecrets::default_path(&data_dir), PathBuf::from);
        Ok(Config {
            backend,
            public_base_url,
            listen,
            app_credentials_file,
            endpoints: endpoints_from_env(env)?,
            siem_region: env.parse_or(ServiceConfig::SIEM_REGION_VAR, SiemRegion::default())?,
            refresh_interval: duration(env, "MSSP_REFRESH_INTERVAL", mins(15))?,
            fetch_interval: duration(env, "MSSP_FETCH_INTERVAL", mins(5))?,
            shutdown_grace: duration(env, "MSSP_SHUTDOWN_GRACE", Duration::from_secs(30))?,
            refresh_concurrency: at_least_one(env, ServiceConfig::REFRESH_CONCURRENCY_VAR, 8)?,
            fetch_concurrency: at_least_one(env, "MSSP_FETCH_CONCURRENCY", 16)?,
            fetch_run_deadline: duration(env, "MSSP_FETCH_RUN_DEADLINE", mins(10))?,
            overlap: duration(env, "MSSP_FETCH_OVERLAP", mins(60))?,
            initial_lookback: duration(env, "MSSP_FETCH_INITIAL_LOOKBACK", mins(7 * 24 * 60))?,
            chunk_target: env.parse_or("MSSP_FETCH_CHUNK_TARGET", 20_000u64)?,
            http_timeout: duration(env, "MSSP_HTTP_TIMEOUT", Duration::from_secs(60))?,
            output_format: env.parse_or(FetcherConfig::OUTPUT_FORMAT_VAR, OutputFormat::Raw)?,
            gzip_level: env.parse_or(FetcherConfig::GZIP_LEVEL_VAR, GzipLevel::DEFAULT)?,
            data_dir,
        })
    }

    /// The public base URL: configured, else `http://{listen}`.
    pub fn public_base_url(&self) -> Url {
        self.public_base_url.clone().unwrap_or_else(|| {
            Url::parse(&format!("http://{}", self.listen))
                .unwrap_or_else(|_| unreachable!("a socket address makes a valid URL"))
        })
    }

    /// The flows' settings for a consent endpoint at `public_base_url`.
    pub fn settings(&self, public_base_url: Url) -> Settings {
        let mut s = Settings::new(self.endpoints.clone(), public_base_url);
        self.apply(&mut s);
        s
    }

    /// Applies the knobs of this configuration to `s` (also to the AWS settings).
    pub fn apply(&self, s: &mut Settings) {
        s.refresh_concurrency = self.refresh_concurrency;
        s.siem_region = self.siem_region;
        s.fetch.overlap = chrono_of(self.overlap);
        s.fetch.initial_lookback = chrono_of(self.initial_lookback);
        s.fetch.chunk_target = self.chunk_target;
        s.fetch.http_timeout = self.http_timeout;
        s.fetch.concurrency = self.fetch_concurrency;
        s.fetch.gzip_level = self.gzip_level;
    }
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn the_module_table_documents_every_key_and_variable() {
        let source = include_str!("config.rs");
        let documented: Vec<(String, String)> = source
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| {
                let mut parts = l.split('`');
                let key = parts.next()?.to_string();
                let var = parts.nth(1)?.to_string();
                Some((key, var))
            })
            .collect();
        let keys: Vec<(String, String)> = KEYS
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(documented, keys);
    }

    #[test]
    fn durations_read_units_and_plain_seconds() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "m", "5x", "-5s", "1.5h", "h1"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = Config::read_env(&env(&[]), None, None).expect("defaults");
        assert_eq!(c.backend, BackendKind::Local);
        assert_eq!(c.data_dir, PathBuf::from("mssp-data"));
        assert_eq!(c.public_base_url().as_str(), "http://127.0.0.1:8080/");
        assert_eq!(
            c.app_credentials_file,
            PathBuf::from("mssp-data/secrets/app.json")
        );
        assert!(matches!(c.endpoints, Endpoints::PerCloud));
        assert_eq!(c.fetch_interval, Duration::from_secs(300));
        assert_eq!(c.gzip_level, GzipLevel::DEFAULT);
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (var, value) in [
            ("MSSP_FETCH_INTERVAL", "soon"),
            ("MSSP_FETCH_INTERVAL", "0s"),
            ("MSSP_FETCH_CONCURRENCY", "0"),
            ("MSSP_GZIP_LEVEL", "0"),
            ("MSSP_BACKEND", "azure"),
            ("MSSP_LISTEN", "localhost"),
            ("MSSP_PUBLIC_BASE_URL", "http://consent.example.com"),
            ("MSSP_GRAPH_URL", "ftp://x"),
        ] {
            let e = Config::read_env(&env(&[(var, value)]), None, None).unwrap_err();
            assert_eq!(e.var(), var, "{value}: {e}");
        }
    }

    #[test]
    fn the_environment_overrides_the_file_and_errors_name_the_file_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mssp.toml");
        std::fs::write(
            &path,
            "data_dir = \"data\"\n[schedule]\nfetch_interval = \"2m\"\nrefresh_interval = \"x\"\n",
        )
        .expect("write");
        let src = Source::load(Some(&path), env(&[("MSSP_REFRESH_INTERVAL", "1m")])).expect("load");
        let c = Config::read(&src, None, None).expect("env wins over the bad file value");
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(c.fetch_interval, Duration::from_secs(120));
        assert_eq!(c.refresh_interval, Duration::from_secs(60));

        let src = Source::load(Some(&path), env(&[])).expect("load");
        let e = Config::read(&src, None, None).unwrap_err().to_string();
        assert!(e.contains("MSSP_REFRESH_INTERVAL"), "{e}");
        assert!(e.contains("schedule.refresh_interval"), "{e}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mssp.toml");
        std::fs::write(&path, "[fetch]\noverlapp = \"1h\"\n").expect("write");
        let e = Source::load(Some(&path), env(&[])).err().expect("refused");
        assert!(e.to_string().contains("fetch.overlapp"), "{e}");
        assert_eq!(e.exit(), crate::error::Exit::Usage);
    }
}
