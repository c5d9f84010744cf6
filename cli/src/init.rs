//! `mssp init`: a commented `mssp.toml` and an app credentials template whose `state_key` is
//! freshly generated (the operator fills in `client_id` and `client_secret`). Existing app
//! credentials are never replaced: a new state key would void every consent link sent.

use std::path::Path;

use rand::RngCore;
use shared::adapters::local::FileAppSecrets;
use shared::ports::AppCredentials;
use shared::secret::{ClientSecret, SigningKey};

use crate::backend::TEMPLATE_CLIENT_ID;
use crate::error::{CliError, Exit};

/// The client secret of the template: refused until replaced (the client id is checked).
pub const TEMPLATE_CLIENT_SECRET: &str = "REPLACE-with-the-app-registration-client-secret";

/// 32 random bytes for signing consent state.
pub fn fresh_state_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

/// The commented example configuration, with `data_dir` filled in.
// One template, kept whole: it reads as the file it writes.
pub fn example(data_dir: &str) -> String {
    format!(
        r#"# mssp.toml: configuration of the `mssp` CLI and `mssp serve`.
# Every key can be overridden by the environment variable named beside it.
# Durations read 30s, 5m, 1h30m, 7d (or a number of seconds).

# local: files under data_dir (the single-machine deployment). aws: the Lambda deployment's
# Secrets Manager and DynamoDB (see [aws]).                                      MSSP_BACKEND
backend = "local"

# Tenant records, tokens (mode 0600), cursors and alerts (NDJSON.gz). Relative paths are
# relative to this file's folder.                                                MSSP_DATA_DIR
data_dir = "{data_dir}"

# The app registration's client_id, client_secret and state_key (JSON, mode 0600).
# Default: {{data_dir}}/secrets/app.json                               MSSP_APP_CREDENTIALS_FILE
# app_credentials_file = "{data_dir}/secrets/app.json"

# Where customers' admins reach the consent endpoint: links are {{base}}/consent/start and the
# redirect URI to register in Entra is {{base}}/consent/callback. https, or http on a
# loopback host. Default: http://{{listen}}                                MSSP_PUBLIC_BASE_URL
# public_base_url = "https://consent.example.com"

# Where `mssp serve` listens for the consent endpoint.                            MSSP_LISTEN
listen = "127.0.0.1:8080"

# commercial, gcc, gcc-high or dod: the cloud of the endpoints below.            MSSP_CLOUD
cloud = "commercial"

# eu, us or uk: the SIEM exporter region of a tenant added without --siem-region.
# A tenant's legacy SIEM alerts are served only by its own region.            MSSP_SIEM_REGION
siem_region = "us"

# Microsoft endpoints. Leave them out to reach every tenant in its own cloud; set any to use
# one fixed set for every tenant (a single sovereign cloud, or the emulator:
# `cargo run -p emulator -- --scenario emulator/scenarios/sample.json` prints its URLs).
[endpoints]
# authority = "https://login.microsoftonline.com"                         MSSP_AUTHORITY_URL
# graph = "https://graph.microsoft.com"                                       MSSP_GRAPH_URL
# mde = "https://api.security.microsoft.com"                                    MSSP_MDE_URL
# siem = "https://wdatp-alertexporter-{{region}}.windows.com"                    MSSP_SIEM_URL

# `mssp serve` schedules.
[schedule]
refresh_interval = "15m"    #                                            MSSP_REFRESH_INTERVAL
fetch_interval = "5m"       #                                              MSSP_FETCH_INTERVAL
shutdown_grace = "30s"      # in-flight fetches may finish this long    MSSP_SHUTDOWN_GRACE

[refresh]
concurrency = 8             # tenants refreshed at once              MSSP_REFRESH_CONCURRENCY

[fetch]
concurrency = 16            # tenants fetched at once                  MSSP_FETCH_CONCURRENCY
run_deadline = "10m"        # one fetch stops starting work after this MSSP_FETCH_RUN_DEADLINE
overlap = "1h"              # look again below the watermark              MSSP_FETCH_OVERLAP
initial_lookback = "7d"     # a tenant's first fetch starts here   MSSP_FETCH_INITIAL_LOOKBACK
chunk_target = 20000        # alerts per committed chunk              MSSP_FETCH_CHUNK_TARGET
http_timeout = "60s"        # each Microsoft request                       MSSP_HTTP_TIMEOUT
gzip_level = 6              # alert objects: 1 fastest .. 9 smallest         MSSP_GZIP_LEVEL

# --backend aws: the deployment's stores, named as the Lambda functions read them. The AWS SDK
# reads AWS_REGION, credentials and AWS_ENDPOINT_URL from the environment.
[aws]
# secrets_prefix = "mssp"                                               MSSP_SECRETS_PREFIX
# app_secret_id = "mssp/app"                                             MSSP_APP_SECRET_ID
# table = "mssp-alerts"                                                          MSSP_TABLE
# kms_key_id = "alias/mssp"                                                 MSSP_KMS_KEY_ID
"#
    )
}

/// Writes `{dir}/mssp.toml` and, unless present, the app credentials template.
pub fn run(dir: &Path, data_dir: Option<&Path>, force: bool) -> Result<Exit, CliError> {
    let config_path = dir.join("mssp.toml");
    if config_path.exists() && !force {
        return Err(CliError::Usage(format!(
            "{} exists; --force replaces it",
            config_path.display()
        )));
    }
    let data_dir_text = data_dir
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "mssp-data".into());
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::io(format!("creating {}", dir.display()), e))?;
    shared::adapters::local::write_atomic(&config_path, example(&data_dir_text).as_bytes(), false)
        .map_err(|e| CliError::io(format!("writing {}", config_path.display()), e))?;
    println!("Wrote {}", config_path.display());

    let data_path = if Path::new(&data_dir_text).is_relative() {
        dir.join(&data_dir_text)
    } else {
        Path::new(&data_dir_text).to_path_buf()
    };
    let app = FileAppSecrets::new(&data_path);
    if app.path().exists() {
        println!(
            "Kept the app credentials at {} (never replaced: a new state key would void the \
             consent links already sent)",
            app.path().display()
        );
    } else {
        app.write(&AppCredentials {
            client_id: TEMPLATE_CLIENT_ID.into(),
            client_secret: ClientSecret::new(TEMPLATE_CLIENT_SECRET.into()),
            state_key: SigningKey::new(fresh_state_key()),
            tenant_id: None,
            client_secret_expires: None,
        })?;
        println!(
            "Wrote {} (mode 0600): a fresh state_key; fill in client_id and client_secret of \
             your app registration, and add tenant_id (its Directory (tenant) ID: the \
             credentials are then checked every refresh cycle) and client_secret_expires \
             (RFC 3339: warnings 30, 14 and 7 days ahead)",
            app.path().display()
        );
    }
    println!("Next: `mssp tenants add ID --name NAME --model MODEL --api API`, then `mssp serve`.");
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_is_read_without_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mssp.toml");
        std::fs::write(&path, example("data")).expect("write");
        let src = crate::config::Source::load(
            Some(&path),
            std::iter::empty::<(String, String)>().collect(),
        )
        .expect("the example parses");
        let c = crate::config::Config::read(&src, None, None).expect("the example is valid");
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert!(matches!(c.endpoints, shared::config::Endpoints::PerCloud));
    }
}
