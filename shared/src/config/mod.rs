//! Configuration: the typed environment reader ([`Env`], [`ConfigError`]), the Microsoft clouds
//! and their endpoints ([`cloud`]), the deployment's variables ([`deployment`]), and the gzip
//! level of alert objects ([`GzipLevel`]).
//!
//! Every binary builds its configuration from an [`Env`] once at start-up and fails fast with the
//! variable's name ([`ConfigError`]). Tests build an [`Env`] from a map instead of touching the
//! process environment.

pub mod cloud;
pub mod deployment;
pub mod output;

pub use cloud::{Cloud, CloudEndpoints, Endpoints, SiemEndpoint};

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

/// Why a configuration variable could not be used. Every variant names the variable.
///
/// The reason is kept as text rather than a `#[source]` so that redaction can be enforced: the
/// value of a variable whose name looks secret (contains `SECRET`, `TOKEN`, `KEY` or `PASSWORD`)
/// never appears in the message, nor in an error chain hanging off it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The variable is unset or empty.
    #[error("environment variable {var} is not set")]
    Missing {
        /// Name of the variable.
        var: String,
    },
    /// The variable is set but its value cannot be used.
    #[error("environment variable {var} is invalid: {reason}")]
    Invalid {
        /// Name of the variable.
        var: String,
        /// What is wrong with the value (without the value itself when the name looks secret).
        reason: String,
    },
}

impl ConfigError {
    /// Name of the variable this error is about.
    pub fn var(&self) -> &str {
        match self {
            Self::Missing { var } | Self::Invalid { var, .. } => var,
        }
    }

    fn invalid(var: &str, value: &str, detail: impl fmt::Display) -> Self {
        let reason = if is_secret_name(var) {
            // The detail may quote the input, so it is withheld too.
            "value rejected (not shown: the variable holds a secret)".to_owned()
        } else {
            format!("{value:?}: {detail}")
        };
        Self::Invalid {
            var: var.to_owned(),
            reason,
        }
    }
}

/// Whether a variable's value must never be echoed, judged by its name.
fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["SECRET", "TOKEN", "KEY", "PASSWORD"]
        .iter()
        .any(|marker| upper.contains(marker))
}

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A source of configuration variables: the process environment, or a map in tests.
///
/// An empty value counts as unset, so `FOO=` behaves like a missing `FOO` (deploy tooling often
/// renders an unset optional as an empty string).
#[derive(Clone)]
pub struct Env {
    lookup: Arc<Lookup>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

impl Env {
    /// Reads the process environment. A value that is not valid Unicode is read lossily, so it
    /// fails validation with the variable's name instead of silently counting as unset.
    pub fn process() -> Self {
        Self::from_fn(|name| {
            std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
        })
    }

    /// Reads from a fixed map (for tests and for embedding).
    pub fn from_map(map: HashMap<String, String>) -> Self {
        Self::from_fn(move |name| map.get(name).cloned())
    }

    /// Reads through an arbitrary lookup function.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Arc::new(lookup),
        }
    }

    /// The variable's value, or `None` when it is unset or empty.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.is_empty())
    }

    /// The variable's value; [`ConfigError::Missing`] when unset or empty.
    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name).ok_or_else(|| ConfigError::Missing {
            var: name.to_owned(),
        })
    }

    /// The variable parsed with [`FromStr`], or `None` when unset.
    pub fn optional_parse<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.optional(name)
            .map(|value| {
                value
                    .trim()
                    .parse()
                    .map_err(|err| ConfigError::invalid(name, &value, err))
            })
            .transpose()
    }

    /// The variable parsed with [`FromStr`]; missing or unparsable is an error.
    pub fn parse<T>(&self, name: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.optional_parse(name)?
            .ok_or_else(|| ConfigError::Missing {
                var: name.to_owned(),
            })
    }

    /// The variable parsed with [`FromStr`], or `default` when unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        Ok(self.optional_parse(name)?.unwrap_or(default))
    }

    /// The variable as an absolute `http`/`https` URL, or `None` when unset.
    pub fn optional_url(&self, name: &str) -> Result<Option<Url>, ConfigError> {
        let Some(url) = self.optional_parse::<Url>(name)? else {
            return Ok(None);
        };
        match url.scheme() {
            "http" | "https" => Ok(Some(url)),
            other => Err(ConfigError::invalid(
                name,
                url.as_str(),
                format_args!("scheme `{other}` is not http or https"),
            )),
        }
    }

    /// The variable as an absolute `http`/`https` URL; missing or invalid is an error.
    pub fn url(&self, name: &str) -> Result<Url, ConfigError> {
        self.optional_url(name)?
            .ok_or_else(|| ConfigError::Missing {
                var: name.to_owned(),
            })
    }

    /// The variable as a whole number of seconds, or `default` when unset.
    pub fn duration_secs(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self
            .optional_parse::<u64>(name)?
            .map_or(default, Duration::from_secs))
    }

    /// The variable as a boolean (`true/false`, `1/0`, `yes/no`, `on/off`, any case), or
    /// `default` when unset.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(value) = self.optional(name) else {
            return Ok(default);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::invalid(
                name,
                &value,
                "expected true/false, 1/0, yes/no or on/off",
            )),
        }
    }
}

/// The gzip level of the alert objects the sinks write: 1 (fastest) to 9 (smallest), validated
/// once when read. Objects stay gzip whatever the level; only CPU time and size change.
///
/// The default, 6, was chosen by measurement (`tests/benches/drain.rs`, and the comparison in
/// the commit that introduced this type): on 100,000 Graph alerts (290 MB of NDJSON), zlib-rs
/// compresses at level 1 in 0.55 CPU s to a ratio of 8.5 and at level 6 in 1.3 CPU s to 14.7.
/// Level 1 saves about 7.5 µs of CPU per alert but writes objects 73 % larger, which S3 stores
/// and the SIEM downloads for as long as they are kept; at Lambda's and S3's prices the bytes cost
/// more than the CPU within the first month. Level 9 is slower than 6 and no smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzipLevel(u8);

impl GzipLevel {
    /// Level 6 (see the type's docs).
    pub const DEFAULT: GzipLevel = GzipLevel(6);

    /// The level `level`, if it is 1 to 9.
    pub fn new(level: u32) -> Option<GzipLevel> {
        u8::try_from(level)
            .ok()
            .filter(|l| (1..=9).contains(l))
            .map(GzipLevel)
    }

    /// The level, 1 to 9.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl Default for GzipLevel {
    fn default() -> Self {
        GzipLevel::DEFAULT
    }
}

impl fmt::Display for GzipLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for GzipLevel {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse()
            .ok()
            .and_then(GzipLevel::new)
            .ok_or("expected a gzip level from 1 (fastest) to 9 (smallest)")
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        Self::from_map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration source holding exactly `pairs`.
    pub(super) fn env<const N: usize>(pairs: [(&str, &str); N]) -> Env {
        pairs.into_iter().collect()
    }

    #[test]
    fn gzip_levels_are_one_to_nine() {
        assert_eq!(GzipLevel::default().get(), 6);
        assert_eq!(
            env([("L", " 1 ")]).parse::<GzipLevel>("L").unwrap().get(),
            1
        );
        assert_eq!(env([("L", "9")]).parse::<GzipLevel>("L").unwrap().get(), 9);
        for bad in ["0", "10", "-1", "fast", "6.5"] {
            let e = env([("L", bad)]).parse::<GzipLevel>("L").unwrap_err();
            assert_eq!(e.var(), "L", "{bad}");
        }
    }

    #[test]
    fn required_names_the_missing_variable() {
        let err = env([]).required("MSSP_TABLE").unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                var: "MSSP_TABLE".into()
            }
        );
        assert!(err.to_string().contains("MSSP_TABLE"));
    }

    #[test]
    fn empty_value_counts_as_missing() {
        let env = env([("MSSP_TABLE", "")]);
        assert_eq!(env.optional("MSSP_TABLE"), None);
        assert_eq!(env.required("MSSP_TABLE").unwrap_err().var(), "MSSP_TABLE");
    }

    #[test]
    fn required_and_optional_return_the_value() {
        let env = env([("A", "x")]);
        assert_eq!(env.required("A").unwrap(), "x");
        assert_eq!(env.optional("A").as_deref(), Some("x"));
        assert_eq!(env.optional("B"), None);
    }

    #[test]
    fn from_map_reads_a_hash_map() {
        let map = HashMap::from([("A".to_owned(), "1".to_owned())]);
        assert_eq!(Env::from_map(map).parse::<u8>("A").unwrap(), 1);
    }

    #[test]
    fn parse_reports_invalid_values_with_the_variable_name() {
        let env = env([("MSSP_CONCURRENCY", "many")]);
        let err = env.parse::<u32>("MSSP_CONCURRENCY").unwrap_err();
        assert_eq!(err.var(), "MSSP_CONCURRENCY");
        assert!(matches!(err, ConfigError::Invalid { .. }));
        assert!(err.to_string().contains("MSSP_CONCURRENCY"));
        assert!(err.to_string().contains("many"), "non-secret values help");
    }

    #[test]
    fn parse_variants_handle_missing_values() {
        let env = env([("N", " 7 ")]);
        assert_eq!(env.parse::<u32>("N").unwrap(), 7);
        assert_eq!(env.parse_or("M", 3u32).unwrap(), 3);
        assert_eq!(env.optional_parse::<u32>("M").unwrap(), None);
        assert_eq!(env.parse::<u32>("M").unwrap_err().var(), "M");
    }

    #[test]
    fn url_accepts_http_and_https() {
        let env = env([
            ("A", "http://127.0.0.1:8080/x"),
            ("B", "https://example.com"),
        ]);
        assert_eq!(env.url("A").unwrap().as_str(), "http://127.0.0.1:8080/x");
        assert_eq!(env.url("B").unwrap().host_str(), Some("example.com"));
    }

    #[test]
    fn invalid_url_names_the_variable() {
        let env = env([("MSSP_GRAPH_URL", "not a url"), ("MSSP_MDE_URL", "ftp://x")]);
        for var in ["MSSP_GRAPH_URL", "MSSP_MDE_URL"] {
            let err = env.url(var).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
            assert_eq!(err.var(), var);
            assert!(err.to_string().contains(var));
        }
        assert_eq!(env.url("MSSP_SIEM_URL").unwrap_err().var(), "MSSP_SIEM_URL");
    }

    #[test]
    fn secret_looking_values_never_appear_in_errors() {
        let value = "hunter2-very-secret-value";
        for var in [
            "MSSP_CLIENT_SECRET",
            "MSSP_REFRESH_TOKEN",
            "MSSP_SIGNING_KEY",
            "DB_PASSWORD",
            "api_key",
        ] {
            let env = env([(var, value)]);
            let errors = [
                env.parse::<u32>(var).unwrap_err(),
                env.url(var).unwrap_err(),
                env.bool(var, false).unwrap_err(),
                env.duration_secs(var, Duration::ZERO).unwrap_err(),
            ];
            for err in errors {
                assert!(err.to_string().contains(var), "{err}");
                assert!(!err.to_string().contains("hunter2"), "{err}");
                assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
            }
        }
    }

    #[test]
    fn secret_looking_url_values_are_withheld_even_with_a_bad_scheme() {
        let env = env([("MSSP_TOKEN_URL", "ftp://user:hunter2@host")]);
        let err = env.url("MSSP_TOKEN_URL").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn duration_secs_parses_whole_seconds_or_defaults() {
        let env = env([("T", "90"), ("BAD", "1.5")]);
        let default = Duration::from_secs(5);
        assert_eq!(
            env.duration_secs("T", default).unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(env.duration_secs("U", default).unwrap(), default);
        assert_eq!(env.duration_secs("BAD", default).unwrap_err().var(), "BAD");
    }

    #[test]
    fn bool_accepts_common_spellings() {
        let env = env([
            ("A", "TRUE"),
            ("B", "0"),
            ("C", "yes"),
            ("D", "off"),
            ("E", "maybe"),
        ]);
        assert!(env.bool("A", false).unwrap());
        assert!(!env.bool("B", true).unwrap());
        assert!(env.bool("C", false).unwrap());
        assert!(!env.bool("D", true).unwrap());
        assert!(env.bool("Z", true).unwrap());
        let err = env.bool("E", false).unwrap_err();
        assert_eq!(err.var(), "E");
        assert!(err.to_string().contains("maybe"));
    }
}
