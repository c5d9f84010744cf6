//! What a command ends with: its exit code (documented in `mssp --help` and the README) and, on
//! failure, one error whose text names what to fix. No error text ever holds a secret: the
//! shared crate's errors name AADSTS codes and variables, never tokens or values of secrets.

use std::path::PathBuf;

use shared::config::ConfigError;
use shared::domain::{TenantId, TenantStatus};
use shared::flows::fetch::FetchFlowError;
use shared::flows::onboarding::ConsentError;
use shared::flows::refresh::RefreshError;
use shared::ports::StoreError;

/// The exit codes of `mssp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Ok = 0,
    /// 1: an operational failure (storage, network, Microsoft unavailable, the demo's emulator).
    Failure = 1,
    /// 2: a usage or configuration error (the message names the option, variable or key).
    Usage = 2,
    /// 3: the command ran, but some tenants failed or need attention (re-consent, failed fetch,
    /// alerts missing in the demo).
    TenantsFailed = 3,
    /// 4: the named tenant does not exist, or its status does not allow the command.
    Tenant = 4,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// The exit-code table shown by `mssp --help` and kept in the README.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  operational failure (storage, network, Microsoft or the emulator unavailable)
  2  usage or configuration error (the message names the option, variable or key)
  3  the command ran, but some tenants failed or need attention (re-consent, failed
     refresh or fetch; the demo: a tenant's alerts were not all delivered)
  4  the named tenant does not exist, or its status does not allow the command";

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A configuration variable (or its `mssp.toml` key) is missing or invalid.
    #[error("{error}{}", origin.as_ref().map(|o| format!(" (set {o})")).unwrap_or_default())]
    Config {
        /// The error, naming the variable (in the text, so not a `source`).
        error: ConfigError,
        /// Where the value came from when not the environment: `key` in `file`.
        origin: Option<String>,
    },
    /// The configuration file cannot be used.
    #[error("configuration file {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (a key name, a TOML syntax error with its line).
        reason: String,
    },
    /// An option or combination of options cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The app credentials are missing or still the template.
    #[error(
        "app credentials at {path}: {reason}; write the app registration's client_id and \
         client_secret there (`mssp init` makes a template), or point app_credentials_file / \
         MSSP_APP_CREDENTIALS_FILE at them"
    )]
    AppCredentials {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No such tenant.
    #[error("tenant {0} is not registered (see `mssp tenants list`)")]
    UnknownTenant(TenantId),
    /// The tenant's status does not allow the command.
    #[error("tenant {id} is {status}: cannot {action}")]
    NotAllowed {
        /// Tenant.
        id: TenantId,
        /// Its status.
        status: TenantStatus,
        /// What was asked.
        action: &'static str,
    },
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Onboarding or consent failed.
    #[error(transparent)]
    Consent(ConsentError),
    /// A refresh failed.
    #[error(transparent)]
    Refresh(RefreshError),
    /// A fetch failed.
    #[error(transparent)]
    Fetch(FetchFlowError),
    /// Local I/O (files, sockets).
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// The error (in the text, so not a `source`).
        error: std::io::Error,
    },
    /// The demo could not run (its emulator, its local server, a consent over HTTP).
    #[error("demo: {0}")]
    Demo(String),
}

impl CliError {
    /// The exit code this error ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Config { .. }
            | CliError::ConfigFile { .. }
            | CliError::Usage(_)
            | CliError::AppCredentials { .. } => Exit::Usage,
            CliError::UnknownTenant(_) | CliError::NotAllowed { .. } => Exit::Tenant,
            CliError::Consent(e) => match e {
                ConsentError::UnknownTenant
                | ConsentError::NotEligible(_)
                | ConsentError::AlreadyRegistered(_) => Exit::Tenant,
                _ => Exit::Failure,
            },
            CliError::Refresh(e) => match e {
                RefreshError::UnknownTenant | RefreshError::NotActive(_) => Exit::Tenant,
                RefreshError::ReconsentRequired { .. } => Exit::TenantsFailed,
                _ => Exit::Failure,
            },
            CliError::Fetch(e) => match e {
                FetchFlowError::UnknownTenant | FetchFlowError::NotActive(_) => Exit::Tenant,
                FetchFlowError::Token(RefreshError::ReconsentRequired { .. })
                | FetchFlowError::SiemRegion { .. } => Exit::TenantsFailed,
                _ => Exit::Failure,
            },
            CliError::Store(_) | CliError::Io { .. } | CliError::Demo(_) => Exit::Failure,
        }
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            what: what.into(),
            error: source,
        }
    }
}

impl From<ConsentError> for CliError {
    fn from(e: ConsentError) -> Self {
        CliError::Consent(e)
    }
}

impl From<RefreshError> for CliError {
    fn from(e: RefreshError) -> Self {
        CliError::Refresh(e)
    }
}

impl From<FetchFlowError> for CliError {
    fn from(e: FetchFlowError) -> Self {
        CliError::Fetch(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::explain::{chain, repeated_phrase};
    use shared::microsoft::identity::classify;

    fn tid() -> TenantId {
        TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid")
    }

    fn expired_secret() -> shared::microsoft::identity::IdentityError {
        classify(
            401,
            r#"{"error":"invalid_client","error_codes":[7000222]}"#,
            None,
        )
    }

    /// One error of every variant, as `mssp` meets them.
    fn samples() -> Vec<CliError> {
        vec![
            CliError::Config {
                error: ConfigError::Missing {
                    var: "MSSP_DATA_DIR".into(),
                },
                origin: Some("data_dir in mssp.toml".into()),
            },
            CliError::ConfigFile {
                path: "mssp.toml".into(),
                reason: "unknown key `fetch.overlapp`".into(),
            },
            CliError::Usage("--since must be before --until".into()),
            CliError::AppCredentials {
                path: "mssp-data/secrets/app.json".into(),
                reason: "still the template".into(),
            },
            CliError::UnknownTenant(tid()),
            CliError::NotAllowed {
                id: tid(),
                status: TenantStatus::Offboarded,
                action: "resume a tenant that is not suspended",
            },
            CliError::Store(StoreError::unavailable(
                "reading a tenant secret",
                std::io::Error::other("dispatch failure"),
            )),
            CliError::Consent(ConsentError::Replayed),
            CliError::Refresh(RefreshError::AppMisconfigured(expired_secret())),
            CliError::Refresh(RefreshError::ReconsentRequired {
                reason: classify(
                    400,
                    r#"{"error":"invalid_grant","error_codes":[700082]}"#,
                    None,
                )
                .to_string(),
                consent_link: None,
            }),
            CliError::Fetch(FetchFlowError::Token(RefreshError::AppMisconfigured(
                expired_secret(),
            ))),
            CliError::Fetch(FetchFlowError::Store(StoreError::NotFound)),
            CliError::io(
                "listening on 127.0.0.1:8080",
                std::io::Error::other("in use"),
            ),
            CliError::Demo("the emulator did not start".into()),
        ]
    }

    /// Every variant (the `match` has no wildcard: a new one must be counted here), rendered as
    /// `mssp` prints it: the chain, one sentence per level, no phrase of three words twice.
    #[test]
    fn every_cli_error_renders_its_cause_once() {
        let samples = samples();
        let index = |e: &CliError| match e {
            CliError::Config { .. } => 0,
            CliError::ConfigFile { .. } => 1,
            CliError::Usage(_) => 2,
            CliError::AppCredentials { .. } => 3,
            CliError::UnknownTenant(_) => 4,
            CliError::NotAllowed { .. } => 5,
            CliError::Store(_) => 6,
            CliError::Consent(_) => 7,
            CliError::Refresh(_) => 8,
            CliError::Fetch(_) => 9,
            CliError::Io { .. } => 10,
            CliError::Demo(_) => 11,
        };
        let covered: std::collections::BTreeSet<usize> = samples.iter().map(index).collect();
        assert_eq!(covered, (0..12).collect());
        for e in &samples {
            let text = chain(e);
            if let Some(p) = repeated_phrase(&text, 3) {
                panic!("{p:?} twice in: {text}");
            }
        }
        let expired = chain(&samples[8]);
        assert!(
            expired.starts_with("the app's client secret has expired (AADSTS7000222)"),
            "the cause first: {expired}"
        );
    }
}
