//! Tracing setup shared by every binary: JSON lines in Lambda, readable text locally.
//!
//! Output goes to stderr in both modes: Lambda sends stderr to CloudWatch like stdout, and
//! locally it keeps stdout free for command output (e.g. `mssp fetch` printing alerts as JSON).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::config::Env;

/// Output format of the tracing subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One JSON object per line, no ANSI colours, event fields flattened, current span included.
    /// For Lambda / CloudWatch.
    Json,
    /// Human-readable lines (coloured on a terminal), for running locally.
    Pretty,
}

impl Mode {
    /// Variable the Lambda runtime always sets.
    pub const LAMBDA_VAR: &'static str = "AWS_LAMBDA_FUNCTION_NAME";

    /// [`Mode::Json`] when running in Lambda, else [`Mode::Pretty`], judged from the process
    /// environment.
    pub fn detect() -> Self {
        Self::from_env(&Env::process())
    }

    /// [`Mode::Json`] when `AWS_LAMBDA_FUNCTION_NAME` is set in `env`, else [`Mode::Pretty`].
    pub fn from_env(env: &Env) -> Self {
        if env.optional(Self::LAMBDA_VAR).is_some() {
            Self::Json
        } else {
            Self::Pretty
        }
    }
}

/// Crates whose debug/trace output can carry request bodies, URLs with codes, or tokens.
pub const SECRET_BEARING_TARGETS: &[&str] = &[
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "hyper",
    "hyper_util",
    "reqwest",
    "h2",
    "aws_smithy_runtime",
    "aws_smithy_http",
    "aws_smithy_runtime_api",
    "aws_sdk_secretsmanager",
];

/// Installs the global tracing subscriber, filtered by `RUST_LOG` (default `info`; invalid
/// directives are skipped).
///
/// Safe to call more than once: only the first call installs a subscriber. Returns whether this
/// call did.
pub fn init(mode: Mode) -> bool {
    init_with_default(mode, LevelFilter::INFO)
}

/// [`init`] with another level than `info` when `RUST_LOG` is unset (the `mssp` operator
/// commands keep stderr to warnings).
pub fn init_with_default(mode: Mode, default: LevelFilter) -> bool {
    let mut filter = EnvFilter::builder()
        .with_default_directive(default.into())
        .from_env_lossy();
    // Dependencies log raw events and requests at debug/trace (the Lambda runtime logs the whole
    // event, which for the consent callback holds the authorization code and state): they stay
    // at info whatever RUST_LOG asks, so no level of ours can put a secret in a log line.
    for capped in SECRET_BEARING_TARGETS {
        if let Ok(d) = format!("{capped}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match mode {
        Mode::Json => builder
            .json()
            .with_ansi(false)
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        Mode::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    installed.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_picks_json_inside_lambda() {
        let lambda: Env = [("AWS_LAMBDA_FUNCTION_NAME", "alert-fetcher")]
            .into_iter()
            .collect();
        assert_eq!(Mode::from_env(&lambda), Mode::Json);
    }

    #[test]
    fn detect_picks_pretty_elsewhere() {
        let local: Env = std::iter::empty::<(String, String)>().collect();
        assert_eq!(Mode::from_env(&local), Mode::Pretty);
    }

    #[test]
    fn init_twice_is_harmless() {
        // The only test that installs the global subscriber, so the first call wins.
        assert!(init(Mode::Json));
        assert!(!init(Mode::Pretty));
    }
}
