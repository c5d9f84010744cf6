//! `token-refresh`: keeps every active tenant's tokens alive (DESIGN §6 Refresh).
//!
//! | event | flow | answer |
//! |---|---|---|
//! | `EventBridgeEvent`, the schedule (`"source": "aws.events"`, `"detail-type": "Scheduled Event"`) | `refresh_all`, stopping new work [`SAFETY_MARGIN_MAX`] or less before the Lambda deadline | [`Summary`] |
//! | direct invoke `{"tenant_id": "<GUID>", "force": true}` (`force` optional, default `true`) | `refresh_tenant` | [`TenantRefreshed`]: `{"tenant_id", "outcome": "refreshed" \| "fresh"}` |
//!
//! A scheduled run writes how many tenants it renewed, found needing re-consent and failed as
//! one CloudWatch Embedded Metric Format line on stdout, a direct invoke its tenant's outcome
//! ([`shared::metrics`]).
//!
//! The payload is told apart by [`shared::lambda::Event`]; anything else (another EventBridge
//! event, an SQS event, a malformed direct invoke, not an object) is an `InvalidEvent` saying
//! what it is and naming the accepted shapes. Failures become a `lambda_runtime::Diagnostic`
//! whose `error_type` is stable (see [`HandlerError::error_type`]). A scheduled run fails as a
//! whole only when the app secret or the registry cannot be read; per-tenant failures, and an
//! app registration that Microsoft refuses, are reported in the summary.

use std::time::SystemTime;

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::domain::TenantId;
use shared::flows::Deps;
use shared::flows::app_health::AppHealth;
use shared::flows::refresh::{
    RefreshError, RefreshOutcome, RefreshSummary, refresh_all, refresh_tenant,
};
use shared::lambda::Event;
pub use shared::lambda::{SAFETY_MARGIN_MAX, stop_at};
use shared::metrics::Observation;
use shared::ports::StoreError;

/// The event shapes this function accepts, quoted in [`HandlerError::InvalidEvent`].
pub const ACCEPTED: &str = "an EventBridge scheduled event ({\"source\": \"aws.events\", \
     \"detail-type\": \"Scheduled Event\", ...}) or a direct invoke \
     ({\"tenant_id\": \"<tenant GUID>\", \"force\": true|false})";

/// What one invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// The schedule: every active tenant.
    Scheduled,
    /// One tenant.
    Tenant {
        /// Which.
        tenant_id: TenantId,
        /// Refresh even when the tokens are fresh.
        force: bool,
    },
}

/// A direct invoke.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Direct {
    tenant_id: String,
    #[serde(default = "yes")]
    force: bool,
}

fn yes() -> bool {
    true
}

/// Why an invocation failed; [`HandlerError::error_type`] is the stable `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event is none of the accepted shapes.
    #[error("invalid event: {reason}; expected {ACCEPTED}")]
    InvalidEvent {
        /// What is wrong with it.
        reason: String,
    },
    /// The refresh failed.
    #[error(transparent)]
    Refresh(#[from] RefreshError),
}

impl HandlerError {
    fn invalid(reason: impl Into<String>) -> Self {
        HandlerError::InvalidEvent {
            reason: reason.into(),
        }
    }

    /// The stable `errorType` reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::InvalidEvent { .. } => "InvalidEvent",
            HandlerError::Refresh(e) => match e {
                RefreshError::UnknownTenant => "UnknownTenant",
                RefreshError::NotActive(_) => "TenantNotActive",
                RefreshError::ReconsentRequired { .. } => "ReconsentRequired",
                RefreshError::AppMisconfigured(_) => "AppMisconfigured",
                RefreshError::Transient(_) => "Transient",
                RefreshError::Busy(_) => "TenantBusy",
                RefreshError::Store(StoreError::Unavailable { .. } | StoreError::Conflict) => {
                    "StoreUnavailable"
                }
                RefreshError::Store(StoreError::NotFound) => "StoreRecordMissing",
                RefreshError::Store(StoreError::Corrupt { .. }) => "StoreCorrupt",
            },
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        let mut error_message = shared::explain::chain(&e);
        match &e {
            HandlerError::Refresh(RefreshError::ReconsentRequired {
                consent_link: Some(link),
                ..
            }) => error_message.push_str(&format!(" (the new link: {link})")),
            HandlerError::Refresh(RefreshError::Store(StoreError::NotFound)) => error_message
                .push_str(
                    " (the app secret named by MSSP_APP_SECRET_ID, or a tenant deleted meanwhile)",
                ),
            _ => {}
        }
        Diagnostic {
            error_type: e.error_type().to_string(),
            error_message,
        }
    }
}

/// Reads the event.
pub fn parse_event(payload: Value) -> Result<Invocation, HandlerError> {
    let direct = match Event::<Direct>::read(payload, "tenant_id").map_err(HandlerError::invalid)? {
        Event::Schedule(_) => return Ok(Invocation::Scheduled),
        Event::Sqs(_) => {
            return Err(HandlerError::invalid(
                "an SQS event (this function consumes no queue)",
            ));
        }
        Event::Direct(d) => d,
    };
    let tenant_id = TenantId::parse(&direct.tenant_id)
        .map_err(|_| HandlerError::invalid("tenant_id is not a tenant GUID"))?;
    Ok(Invocation::Tenant {
        tenant_id,
        force: direct.force,
    })
}

/// A tenant that needs re-consent, with the link to send.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Reconsent {
    /// Tenant.
    pub tenant_id: TenantId,
    /// The fresh consent link (absent when it could not be made).
    pub consent_link: Option<String>,
}

/// A tenant whose refresh failed for now.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Failed {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Why (no secret).
    pub reason: String,
}

/// The answer to a scheduled run.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Tenants whose tokens were renewed.
    pub refreshed: Vec<TenantId>,
    /// Tenants whose tokens were fresh.
    pub fresh: Vec<TenantId>,
    /// Tenants that now need re-consent.
    pub reconsent: Vec<Reconsent>,
    /// Tenants that failed for now.
    pub failed: Vec<Failed>,
    /// Tenants not attempted (deadline, or the app registration is broken).
    pub skipped: Vec<TenantId>,
    /// Set when Microsoft refuses the app registration itself: the one thing to fix.
    pub app_misconfigured: Option<String>,
    /// The app registration's health this run: its credentials checked in its home tenant, the
    /// client secret's expiry and days left, and the warnings (30, 14, 7 days ahead).
    pub app: AppHealth,
}

impl From<RefreshSummary> for Summary {
    fn from(s: RefreshSummary) -> Summary {
        Summary {
            refreshed: s.refreshed,
            fresh: s.fresh,
            reconsent: s
                .reconsent
                .into_iter()
                .map(|(tenant_id, link)| Reconsent {
                    tenant_id,
                    consent_link: link.map(String::from),
                })
                .collect(),
            failed: s
                .failed
                .into_iter()
                .map(|(tenant_id, reason)| Failed { tenant_id, reason })
                .collect(),
            skipped: s.skipped,
            app_misconfigured: s.app_misconfigured,
            app: s.app,
        }
    }
}

/// The answer to an invocation.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Answer {
    /// To the schedule.
    Run(Box<Summary>),
    /// To a direct invoke.
    Tenant(TenantRefreshed),
}

/// The answer to a direct invoke.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TenantRefreshed {
    /// Tenant.
    pub tenant_id: TenantId,
    /// `refreshed` or `fresh`.
    pub outcome: &'static str,
}

/// Serves one invocation.
pub async fn handle(services: &Deps, event: LambdaEvent<Value>) -> Result<Answer, HandlerError> {
    let invocation = parse_event(event.payload).inspect_err(|e| {
        tracing::warn!(error_type = e.error_type(), "event refused");
    })?;
    match invocation {
        Invocation::Scheduled => {
            let stop = stop_at(event.context.deadline, SystemTime::now());
            let run = refresh_all(services, stop).await.inspect_err(|e| {
                tracing::error!(error = %e, "refresh run failed");
            })?;
            let metrics = &services.settings.metrics;
            Observation::refresh_run(&run).emit(metrics, services.clock.now());
            run.log_finished();
            let summary = Summary::from(run);
            Ok(Answer::Run(Box::new(summary)))
        }
        Invocation::Tenant { tenant_id, force } => {
            let refreshed = refresh_tenant(services, &tenant_id, force).await;
            if let Some(o) = Observation::refresh_tenant(&tenant_id, &refreshed) {
                o.emit(&services.settings.metrics, services.clock.now());
            }
            let outcome = refreshed.inspect_err(|e| {
                tracing::warn!(tenant_id = %tenant_id, error = %e, "tenant refresh failed");
            })?;
            Ok(Answer::Tenant(TenantRefreshed {
                tenant_id,
                outcome: match outcome {
                    RefreshOutcome::Refreshed => "refreshed",
                    RefreshOutcome::Fresh => "fresh",
                },
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEDULED: &str =
        include_str!("../../../tests/fixtures/events/eventbridge-scheduled-event.json");
    const TENANT: &str = "11111111-1111-4111-8111-111111111111";

    #[test]
    fn the_scheduled_event_fixture_is_a_scheduled_run() {
        let v: Value = serde_json::from_str(SCHEDULED).unwrap();
        assert_eq!(parse_event(v).unwrap(), Invocation::Scheduled);
    }

    #[test]
    fn a_direct_invoke_names_one_tenant_and_forces_by_default() {
        let tid = TenantId::parse(TENANT).unwrap();
        assert_eq!(
            parse_event(json!({"tenant_id": TENANT})).unwrap(),
            Invocation::Tenant {
                tenant_id: tid.clone(),
                force: true
            }
        );
        assert_eq!(
            parse_event(json!({"tenant_id": TENANT.to_uppercase(), "force": false})).unwrap(),
            Invocation::Tenant {
                tenant_id: tid,
                force: false
            }
        );
    }

    #[test]
    fn other_payloads_are_invalid_events_listing_the_accepted_shapes() {
        for bad in [
            json!({}),
            json!([]),
            json!("refresh"),
            json!({"action": "refresh"}),
            json!({"tenant_id": "contoso"}),
            json!({"tenant_id": TENANT, "force": "yes"}),
            json!({"tenant_id": TENANT, "extra": 1}),
            json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}}),
            json!({"detail-type": "Scheduled Event"}),
            json!({"Records": []}),
        ] {
            let e = parse_event(bad.clone()).unwrap_err();
            assert_eq!(e.error_type(), "InvalidEvent", "{bad}");
            let d = Diagnostic::from(e);
            assert!(
                d.error_message.contains("Scheduled Event"),
                "{}",
                d.error_message
            );
            assert!(d.error_message.contains("tenant_id"), "{}", d.error_message);
        }
    }

    #[test]
    fn refresh_errors_have_stable_error_types() {
        let cases = [
            (RefreshError::UnknownTenant, "UnknownTenant"),
            (
                RefreshError::NotActive(shared::domain::TenantStatus::Suspended),
                "TenantNotActive",
            ),
            (
                RefreshError::ReconsentRequired {
                    reason: "AADSTS700082".into(),
                    consent_link: None,
                },
                "ReconsentRequired",
            ),
            (
                RefreshError::Store(StoreError::unavailable("x", std::io::Error::other("down"))),
                "StoreUnavailable",
            ),
            (
                RefreshError::Store(StoreError::NotFound),
                "StoreRecordMissing",
            ),
        ];
        for (e, t) in cases {
            assert_eq!(Diagnostic::from(HandlerError::from(e)).error_type, t);
        }
    }

    #[test]
    fn the_run_stops_before_the_deadline_with_a_margin() {
        use std::time::{Duration, UNIX_EPOCH};
        let now = SystemTime::now();
        let ms = |d: Duration| (now + d).duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let start = tokio::time::Instant::now();
        let at = stop_at(ms(Duration::from_secs(300)), now).unwrap();
        let left = at - start;
        assert!(
            left <= Duration::from_secs(290) && left > Duration::from_secs(289),
            "{left:?}"
        );
        let at = stop_at(ms(Duration::from_secs(10)), now).unwrap();
        let left = at - start;
        assert!(
            left <= Duration::from_secs(8) && left > Duration::from_secs(7),
            "{left:?}"
        );
        let past = stop_at(ms(Duration::ZERO) - 5_000, now).unwrap();
        assert!(past <= tokio::time::Instant::now());
        assert_eq!(stop_at(0, now), None);
    }
}
