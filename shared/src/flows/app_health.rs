//! The app registration's own health: its credentials, checked once per refresh cycle with a
//! client-credentials token in the tenant it is registered in (the app secret's `tenant_id`), so
//! a wrong or expired client secret is one app-wide problem found within a cycle — even while
//! every tenant's cached access token still works — instead of a failure of each tenant at its
//! next token; and the client secret's expiry (the app secret's `client_secret_expires`), with
//! warnings 30, 14 and 7 days ahead. The refresh flow logs it and puts it in its summary; `mssp
//! status` shows it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Deps;
use super::refresh::attempts;
use crate::config::Cloud;
use crate::domain::{AlertApi, Tenant, TenantId};
use crate::microsoft::identity::{IdentityError, default_scope};
use crate::ports::AppCredentials;

/// Days before the client secret's expiry at which a warning starts, then gets louder.
pub const EXPIRY_WARNINGS: [i64; 3] = [30, 14, 7];

/// What the credential check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Credentials {
    /// Microsoft issued a token: the client id and secret work.
    Accepted {
        /// The home tenant it was checked in.
        tenant_id: TenantId,
    },
    /// Microsoft refused the app's credentials: every tenant is affected.
    Refused {
        /// The AADSTS code (7000222 expired, 7000215 wrong…).
        code: Option<u32>,
        /// The sentence: what happened and what to do.
        problem: String,
    },
    /// The check could not tell (Microsoft unavailable, the home tenant wrong).
    Unchecked {
        /// Why, and what to do.
        reason: String,
    },
    /// The check is not set up: the app secret names no home tenant, or there is no app secret.
    NotConfigured {
        /// What to add, and where.
        reason: String,
    },
}

/// The app registration's health at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppHealth {
    /// When it was checked.
    pub checked_at: DateTime<Utc>,
    /// The credential check.
    pub credentials: Credentials,
    /// When the client secret expires, as the app secret says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires: Option<DateTime<Utc>>,
    /// Whole days until then (negative once past).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_days_left: Option<i64>,
    /// The warning reached: 30, 14 or 7 (days ahead), 0 once expired; absent before 30 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_warning_days: Option<i64>,
    /// What the operator should act on, most urgent first (one sentence each).
    pub warnings: Vec<String>,
}

impl Default for AppHealth {
    fn default() -> Self {
        AppHealth {
            checked_at: DateTime::<Utc>::UNIX_EPOCH,
            credentials: Credentials::NotConfigured {
                reason: "the app registration was not checked".into(),
            },
            client_secret_expires: None,
            client_secret_days_left: None,
            expiry_warning_days: None,
            warnings: Vec::new(),
        }
    }
}

/// Why the credentials are not checked when the app secret names no home tenant.
const NO_HOME_TENANT: &str = "the app's credentials are not checked each cycle: add tenant_id \
     (Entra admin center › App registrations › Overview › Directory (tenant) ID) to the app secret";

/// What to do about a client secret that expires soon or has expired.
const RENEW_SECRET: &str = "create a new one (Entra admin center › App registrations › \
     Certificates & secrets) and write its Value and expiry into the app secret's client_secret \
     and client_secret_expires";

impl AppHealth {
    /// The app-wide problem, when Microsoft refused the credentials.
    pub fn problem(&self) -> Option<&str> {
        match &self.credentials {
            Credentials::Refused { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// Whether the operator must act: refused credentials, or a secret at its last warning
    /// (7 days) or past its expiry.
    pub fn needs_attention(&self) -> bool {
        self.problem().is_some() || self.expiry_warning_days.is_some_and(|d| d <= 7)
    }

    /// Whether a listing should show it: Microsoft refused the credentials, the check could not
    /// tell, or the secret's expiry is near. (A working, or not configured, check is quiet.)
    pub fn notable(&self) -> bool {
        !self.warnings.is_empty() || matches!(self.credentials, Credentials::Unchecked { .. })
    }

    /// One line about the credentials for a listing: the check's result.
    pub fn credentials_line(&self) -> String {
        match &self.credentials {
            Credentials::Accepted { tenant_id } => {
                format!("credentials accepted by Microsoft in tenant {tenant_id}")
            }
            Credentials::Refused { problem, .. } => problem.clone(),
            Credentials::Unchecked { reason } | Credentials::NotConfigured { reason } => {
                reason.clone()
            }
        }
    }

    /// Logs what an operator should see: the warnings (louder as the expiry nears), or why the
    /// check did not run. The refused credentials are the caller's to log (once, loudly).
    pub fn log(&self) {
        match &self.credentials {
            Credentials::Unchecked { reason } => {
                tracing::warn!(reason = %reason, "app credentials not checked");
            }
            Credentials::NotConfigured { reason } => {
                tracing::info!(reason = %reason, "app credentials not checked");
            }
            _ => {}
        }
        for warning in &self.warnings {
            if self.problem() == Some(warning.as_str()) {
                continue;
            }
            match self.expiry_warning_days {
                Some(d) if d <= 7 => tracing::error!(
                    client_secret_days_left = self.client_secret_days_left,
                    expiry_warning_days = d,
                    warning = %warning,
                    "app client secret expires soon"
                ),
                d => tracing::warn!(
                    client_secret_days_left = self.client_secret_days_left,
                    expiry_warning_days = d,
                    warning = %warning,
                    "app client secret expires soon"
                ),
            }
        }
    }
}

/// The cloud the app's home tenant is reached in: the active tenants' (an app registration
/// serves the tenants of its own cloud), commercial when there are none.
pub fn cloud_of(active: &[Tenant]) -> Cloud {
    active.first().map_or(Cloud::default(), |t| t.cloud)
}

/// Checks the app's credentials once in its home tenant (retrying a transient failure as every
/// identity request does) and reads the client secret's expiry.
pub async fn check(s: &Deps, creds: &AppCredentials, cloud: Cloud) -> AppHealth {
    check_with(s, creds, cloud, s.settings.identity_attempts).await
}

/// [`check`] with at most `tries` requests (`mssp status` asks once: it must answer quickly).
pub async fn check_with(s: &Deps, creds: &AppCredentials, cloud: Cloud, tries: u32) -> AppHealth {
    let now = s.clock.now();
    let credentials = match &creds.tenant_id {
        None => Credentials::NotConfigured {
            reason: NO_HOME_TENANT.into(),
        },
        Some(home) => check_in(s, creds, home, cloud, tries).await,
    };
    with_expiry(credentials, creds.client_secret_expires, now)
}

async fn check_in(
    s: &Deps,
    creds: &AppCredentials,
    home: &TenantId,
    cloud: Cloud,
    tries: u32,
) -> Credentials {
    let entra = match s.entra(creds, cloud) {
        Ok(e) => e,
        Err(e) => {
            return Credentials::Unchecked {
                reason: format!("the app's credentials could not be checked: {e}"),
            };
        }
    };
    let scope = default_scope(AlertApi::Graph);
    let now = s.clock.now();
    match attempts(tries, || entra.client_credentials(home, &scope, now)).await {
        Ok(_) => Credentials::Accepted {
            tenant_id: home.clone(),
        },
        Err(e @ IdentityError::AppMisconfigured { .. }) => Credentials::Refused {
            code: e.aadsts(),
            problem: e.to_string(),
        },
        Err(e @ IdentityError::Transient { .. }) => Credentials::Unchecked {
            reason: format!("the app's credentials could not be checked: {e}"),
        },
        Err(e) => Credentials::Unchecked {
            reason: format!(
                "the app's credentials could not be checked in tenant {home}, which the app \
                 secret's tenant_id names ({}): set it to the app registration's Directory \
                 (tenant) ID (Entra admin center › App registrations › Overview)",
                e.what()
            ),
        },
    }
}

/// Adds the client secret's expiry, and the warnings, to the credential check's result.
fn with_expiry(
    credentials: Credentials,
    expires: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> AppHealth {
    let mut warnings = Vec::new();
    if let Credentials::Refused { problem, .. } = &credentials {
        warnings.push(problem.clone());
    }
    let left = expires.map(|e| e - now);
    let level = left.and_then(|left| {
        if left <= chrono::Duration::zero() {
            Some(0)
        } else {
            EXPIRY_WARNINGS
                .iter()
                .rev()
                .copied()
                .find(|d| left <= chrono::Duration::days(*d))
        }
    });
    if let (Some(expires), Some(level)) = (expires, level) {
        let date = expires.format("%Y-%m-%d %H:%MZ");
        let refused = matches!(credentials, Credentials::Refused { .. });
        match (level, &credentials) {
            // Microsoft's refusal already says it (AADSTS7000222).
            (0, _) if refused => {}
            (0, Credentials::Accepted { .. }) => warnings.push(format!(
                "the app secret's client_secret_expires says the client secret expired at \
                 {date}, but Microsoft still accepts it: write the current secret's expiry into \
                 client_secret_expires"
            )),
            (0, _) => warnings.push(format!(
                "the app's client secret expired at {date}: {RENEW_SECRET}, then run `mssp \
                 refresh`"
            )),
            _ => {
                let days = left.map_or(0, |l| l.num_days());
                let when = match days {
                    0 => "in less than a day".to_string(),
                    1 => "in 1 day".to_string(),
                    n => format!("in {n} days"),
                };
                warnings.push(format!(
                    "the app's client secret expires at {date} ({when}): {RENEW_SECRET} before \
                     then"
                ));
            }
        }
    }
    AppHealth {
        checked_at: now,
        credentials,
        client_secret_expires: expires,
        client_secret_days_left: left.map(|l| l.num_days()),
        expiry_warning_days: level,
        warnings,
    }
}

/// The app's health now, for a status listing: the app secret read, the credentials checked
/// with one request in the home tenant (in the cloud of the first tenant listed). An app secret
/// that cannot be read is the health's finding, not a failure of the listing.
pub async fn current(s: &Deps, tenants: &[Tenant]) -> AppHealth {
    use crate::ports::StoreError;
    match s.app.app_credentials().await {
        Ok(creds) => check_with(s, &creds, cloud_of(tenants), 1).await,
        Err(e) => {
            let credentials = match e {
                StoreError::NotFound => Credentials::NotConfigured {
                    reason: "no app credentials are stored: write the app registration's \
                         client_id and client_secret, and a state_key, into the app secret \
                         (`mssp init` makes a template)"
                        .into(),
                },
                StoreError::Corrupt { .. } => Credentials::Unchecked {
                    reason: "the app secret is not valid: it needs client_id, client_secret \
                         and a base64 state_key of 32 or more bytes"
                        .into(),
                },
                e => Credentials::Unchecked {
                    reason: format!("the app secret could not be read: {e}"),
                },
            };
            with_expiry(credentials, None, s.clock.now())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn accepted() -> Credentials {
        Credentials::Accepted {
            tenant_id: TenantId::parse("99999999-9999-4999-8999-999999999999").expect("tid"),
        }
    }

    #[test]
    fn warnings_start_30_days_ahead_and_grow_at_14_and_7() {
        let expires = at("2026-04-01T00:00:00Z");
        let level = |before: Duration| {
            with_expiry(accepted(), Some(expires), expires - before).expiry_warning_days
        };
        assert_eq!(level(Duration::days(31)), None);
        assert_eq!(level(Duration::days(30)), Some(30));
        assert_eq!(level(Duration::days(15)), Some(30));
        assert_eq!(level(Duration::days(14)), Some(14));
        assert_eq!(level(Duration::days(8)), Some(14));
        assert_eq!(level(Duration::days(7)), Some(7));
        assert_eq!(level(Duration::hours(1)), Some(7));
        assert_eq!(level(Duration::zero()), Some(0));
        let h = with_expiry(accepted(), Some(expires), expires - Duration::days(12));
        assert_eq!(h.client_secret_days_left, Some(12));
        assert_eq!(h.warnings.len(), 1);
        assert!(h.warnings[0].contains("in 12 days"), "{:?}", h.warnings);
        assert!(h.warnings[0].contains("Certificates & secrets"));
        assert!(!h.needs_attention());
        let h = with_expiry(accepted(), Some(expires), expires - Duration::days(3));
        assert!(h.needs_attention());
    }

    #[test]
    fn no_expiry_means_no_warning_and_a_refusal_is_the_one_warning() {
        let now = at("2026-03-01T00:00:00Z");
        assert!(with_expiry(accepted(), None, now).warnings.is_empty());
        let refused = Credentials::Refused {
            code: Some(7000222),
            problem: "the app's client secret has expired (AADSTS7000222): …".into(),
        };
        let h = with_expiry(refused, Some(now - Duration::days(1)), now);
        assert_eq!(h.warnings.len(), 1, "{:?}", h.warnings);
        assert!(h.problem().is_some() && h.needs_attention());
    }

    #[test]
    fn a_past_expiry_microsoft_still_accepts_asks_for_the_date_to_be_corrected() {
        let now = at("2026-03-01T00:00:00Z");
        let h = with_expiry(accepted(), Some(now - Duration::days(2)), now);
        assert_eq!(h.expiry_warning_days, Some(0));
        assert!(h.warnings[0].contains("still accepts"), "{:?}", h.warnings);
    }
}
