//! Error text for operators. Every error the product shows says what happened and what to do in
//! one sentence, and a wrapper never repeats its source's words: an error either shows its
//! source's text in its own (and does not return it as `source()`), or returns it as `source()`
//! and leaves it out of its text. [`chain`] renders an error with its sources the way `{:#}`
//! renderers do; [`repeated_phrase`] is the check the error tests apply to every variant.

use std::error::Error;

/// `error: source: source's source…`, each level's `Display` once.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

/// The first phrase of `words` words (compared without case and punctuation) that occurs twice
/// in `text`, if one does.
pub fn repeated_phrase(text: &str, words: usize) -> Option<String> {
    let tokens: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ')')
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let words = words.max(1);
    let mut seen = std::collections::HashSet::new();
    tokens
        .windows(words)
        .map(|w| w.join(" "))
        .find(|phrase| !seen.insert(phrase.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the store failed while reading")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("storage failed: {0}")]
    struct Repeats(#[source] Inner);

    #[test]
    fn a_chain_lists_each_level_once_and_repeats_are_found() {
        let e = Repeats(Inner);
        assert_eq!(
            chain(&e),
            "storage failed: the store failed while reading: the store failed while reading"
        );
        assert_eq!(
            repeated_phrase(&chain(&e), 3).as_deref(),
            Some("the store failed")
        );
        assert_eq!(repeated_phrase(&chain(&Inner), 3), None);
        assert_eq!(
            repeated_phrase("The App is broken. the app, is BROKEN", 3).as_deref(),
            Some("the app is")
        );
    }
}

/// Every error an operator can meet, each variant built (an exhaustive `match` per enum makes a
/// new variant fail to compile until it is counted here), rendered with its chain, and checked:
/// no phrase of three words twice, no transport jargon, no empty text.
#[cfg(test)]
mod every_error {
    use std::collections::BTreeSet;

    use chrono::{DateTime, Utc};

    use super::{chain, repeated_phrase};
    use crate::config::ConfigError;
    use crate::consent::state::StateError;
    use crate::domain::{AlertApi, SiemRegion, TenantStatus};
    use crate::flows::backfill::BackfillError;
    use crate::flows::fetch::{FetchFlowError, FetchReport, Interrupted};
    use crate::flows::onboarding::ConsentError;
    use crate::flows::refresh::RefreshError;
    use crate::microsoft::alerts::FetchError;
    use crate::microsoft::claims::ClaimsError;
    use crate::microsoft::identity::{AADSTS_CODES, IdentityError, Meaning, classify};
    use crate::ports::{LeaseError, StoreError};

    fn when() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    /// Asserts every sample of one enum was built (`index` maps a value to its variant's number;
    /// its `match` has no wildcard) and renders each.
    fn check<E: std::error::Error + 'static>(
        name: &str,
        samples: &[E],
        variants: usize,
        index: fn(&E) -> usize,
    ) {
        let covered: BTreeSet<usize> = samples.iter().map(index).collect();
        assert_eq!(
            covered,
            (0..variants).collect::<BTreeSet<_>>(),
            "{name}: build a sample of every variant"
        );
        for e in samples {
            let text = chain(e);
            assert!(!e.to_string().trim().is_empty(), "{name}: empty text");
            if let Some(p) = repeated_phrase(&text, 3) {
                panic!("{name}: {p:?} twice in: {text}");
            }
            for jargon in ["error sending request", "error decoding response body"] {
                assert!(!text.contains(jargon), "{name}: {jargon:?} in: {text}");
            }
        }
    }

    fn body(error: &str, code: u32) -> String {
        format!(
            r#"{{"error":"{error}","error_description":"AADSTS{code}: words.\r\nTrace ID: t","error_codes":[{code}]}}"#
        )
    }

    /// Every AADSTS code the product knows, unknown codes of each meaning, and transient
    /// failures.
    fn identity() -> Vec<IdentityError> {
        let mut out: Vec<IdentityError> = AADSTS_CODES
            .iter()
            .map(|a| {
                let (status, error) = match a.meaning {
                    Meaning::App => (401, "invalid_client"),
                    Meaning::Tenant => (400, "invalid_tenant"),
                    Meaning::Reconsent | Meaning::Rejected => (400, "invalid_grant"),
                };
                classify(status, &body(error, a.code), None)
            })
            .collect();
        for (status, error) in [
            (401, "invalid_client"),
            (400, "invalid_tenant"),
            (400, "interaction_required"),
            (400, "invalid_grant"),
            (400, "consent_required"),
        ] {
            out.push(classify(status, &body(error, 4242), None));
            out.push(classify(status, &format!(r#"{{"error":"{error}"}}"#), None));
        }
        out.push(classify(503, "<html>", None));
        out.push(classify(429, "", None));
        out.push(classify(400, &body("temporarily_unavailable", 0), None));
        for reason in [
            "dropped the connection before answering",
            "did not answer in time",
            "could not be reached",
            "dropped the connection in the middle of its answer",
            "answered with something that is not a token response",
        ] {
            out.push(IdentityError::Transient {
                reason: reason.into(),
                retry_after: None,
                source: None,
            });
        }
        out.push(IdentityError::ReconsentRequired {
            code: None,
            error: "no refresh token is stored".into(),
            body: String::new(),
        });
        out
    }

    fn store() -> Vec<StoreError> {
        let parse = serde_json::from_str::<u8>("x").expect_err("not a number");
        vec![
            StoreError::Conflict,
            StoreError::NotFound,
            StoreError::unavailable(
                "reading a tenant secret",
                std::io::Error::other("dispatch failure: timeout"),
            ),
            StoreError::Corrupt {
                what: "tenant 11111111-1111-4111-8111-111111111111".into(),
                source: Box::new(parse),
            },
        ]
    }

    fn refresh() -> Vec<RefreshError> {
        let mut out = vec![
            RefreshError::UnknownTenant,
            RefreshError::NotActive(TenantStatus::Suspended),
            RefreshError::Busy(when()),
        ];
        for e in identity() {
            out.push(match e {
                e @ IdentityError::AppMisconfigured { .. } => RefreshError::AppMisconfigured(e),
                e @ IdentityError::Transient { .. } => RefreshError::Transient(e),
                // What the refresh flow records when the grant is gone.
                e => RefreshError::ReconsentRequired {
                    reason: e.to_string(),
                    consent_link: None,
                },
            });
        }
        out.extend(store().into_iter().map(RefreshError::Store));
        out
    }

    fn fetch() -> Vec<FetchError> {
        let mut out = vec![
            FetchError::Deadline,
            FetchError::Throttled,
            FetchError::Transient("the API dropped the connection".into()),
            FetchError::Transient("the API answered HTTP 503 Service Unavailable".into()),
            FetchError::ShortListing {
                listed: 40,
                counted: 45,
            },
            FetchError::Unauthorized,
            FetchError::Forbidden(
                "Forbidden: Missing application roles. API required roles: \
                 SecurityAlert.Read.All"
                    .into(),
            ),
            FetchError::Gone(410),
            FetchError::Rejected {
                status: 400,
                detail: "BadRequest: Invalid filter clause".into(),
            },
            FetchError::Partial(r#"199 - "Microsoft/MDE/504/10000""#.into()),
            FetchError::Malformed("alerts carry no createdDateTime".into()),
            FetchError::Undrainable(
                "more than 1500 alerts share one createdDateTime inside one lastUpdateDateTime"
                    .into(),
            ),
            FetchError::Interrupted,
        ];
        out.extend(store().into_iter().map(FetchError::Delivery));
        out
    }

    fn flow() -> Vec<FetchFlowError> {
        let mut out = vec![
            FetchFlowError::UnknownTenant,
            FetchFlowError::NotActive(TenantStatus::ReconsentRequired),
            FetchFlowError::Busy(when()),
            FetchFlowError::SiemRegion {
                reading: SiemRegion::Us,
                holds: SiemRegion::Eu,
            },
            FetchFlowError::Interrupted(Interrupted),
        ];
        out.extend(refresh().into_iter().map(FetchFlowError::Token));
        out.extend(fetch().into_iter().map(|error| FetchFlowError::Incomplete {
            report: Box::new(FetchReport::default()),
            error,
        }));
        out.extend(store().into_iter().map(FetchFlowError::Store));
        out
    }

    fn claims() -> Vec<ClaimsError> {
        vec![
            ClaimsError::Unreadable,
            ClaimsError::WrongTenant,
            ClaimsError::MissingPermission {
                needed: "SecurityAlert.Read.All",
                api: AlertApi::Graph,
            },
        ]
    }

    fn states() -> Vec<StateError> {
        vec![
            StateError::Malformed,
            StateError::BadSignature,
            StateError::Expired,
        ]
    }

    fn consent() -> Vec<ConsentError> {
        let mut out = vec![
            ConsentError::Replayed,
            ConsentError::UnknownTenant,
            ConsentError::NotEligible(TenantStatus::Offboarded),
            ConsentError::AlreadyRegistered(TenantStatus::Active),
            ConsentError::Denied {
                error: "access_denied".into(),
                description: Some("the user canceled".into()),
            },
            ConsentError::Missing("code"),
            ConsentError::Malformed,
        ];
        out.extend(states().into_iter().map(ConsentError::InvalidState));
        out.extend(identity().into_iter().map(ConsentError::Identity));
        out.extend(claims().into_iter().map(ConsentError::Claims));
        out.extend(store().into_iter().map(ConsentError::Store));
        out
    }

    #[test]
    fn every_identity_error_is_one_sentence_naming_its_code() {
        let all = identity();
        check("IdentityError", &all, 5, |e| match e {
            IdentityError::ReconsentRequired { .. } => 0,
            IdentityError::AppMisconfigured { .. } => 1,
            IdentityError::TenantNotConsented { .. } => 2,
            IdentityError::Rejected { .. } => 3,
            IdentityError::Transient { .. } => 4,
        });
        for a in AADSTS_CODES {
            let e = all
                .iter()
                .find(|e| e.aadsts() == Some(a.code))
                .expect("classified");
            let text = e.to_string();
            assert_eq!(
                text,
                format!("{} (AADSTS{}): {}", a.what, a.code, a.next),
                "the table's sentence"
            );
        }
        let expired = classify(401, &body("invalid_client", 7000222), None).to_string();
        assert!(expired.starts_with("the app's client secret has expired"));
        let idle = classify(400, &body("invalid_grant", 700082), None).to_string();
        assert!(idle.contains("90 days"), "{idle}");
        let dropped = IdentityError::Transient {
            reason: "dropped the connection before answering".into(),
            retry_after: None,
            source: None,
        }
        .to_string();
        assert!(
            dropped.contains("dropped the connection") && dropped.contains("next run retries"),
            "{dropped}"
        );
    }

    #[test]
    fn every_flow_error_renders_without_repeating_itself() {
        check("StoreError", &store(), 4, |e| match e {
            StoreError::Conflict => 0,
            StoreError::NotFound => 1,
            StoreError::Unavailable { .. } => 2,
            StoreError::Corrupt { .. } => 3,
        });
        check("RefreshError", &refresh(), 7, |e| match e {
            RefreshError::UnknownTenant => 0,
            RefreshError::NotActive(_) => 1,
            RefreshError::ReconsentRequired { .. } => 2,
            RefreshError::AppMisconfigured(_) => 3,
            RefreshError::Transient(_) => 4,
            RefreshError::Busy(_) => 5,
            RefreshError::Store(_) => 6,
        });
        check("FetchError", &fetch(), 13, |e| match e {
            FetchError::Deadline => 0,
            FetchError::Throttled => 1,
            FetchError::Transient(_) => 2,
            FetchError::ShortListing { .. } => 3,
            FetchError::Unauthorized => 4,
            FetchError::Forbidden(_) => 5,
            FetchError::Gone(_) => 6,
            FetchError::Rejected { .. } => 7,
            FetchError::Partial(_) => 8,
            FetchError::Malformed(_) => 9,
            FetchError::Undrainable(_) => 10,
            FetchError::Delivery(_) => 11,
            FetchError::Interrupted => 12,
        });
        check("FetchFlowError", &flow(), 8, |e| match e {
            FetchFlowError::UnknownTenant => 0,
            FetchFlowError::NotActive(_) => 1,
            FetchFlowError::Busy(_) => 2,
            FetchFlowError::Token(_) => 3,
            FetchFlowError::Incomplete { .. } => 4,
            FetchFlowError::SiemRegion { .. } => 5,
            FetchFlowError::Interrupted(_) => 6,
            FetchFlowError::Store(_) => 7,
        });
        let leases: Vec<LeaseError> = std::iter::once(LeaseError::Held { until: when() })
            .chain(store().into_iter().map(LeaseError::Store))
            .collect();
        check("LeaseError", &leases, 2, |e| match e {
            LeaseError::Held { .. } => 0,
            LeaseError::Store(_) => 1,
        });
        let backfills: Vec<BackfillError> = std::iter::once(BackfillError::Empty {
            since: when() + chrono::Duration::hours(1),
            until: when(),
        })
        .chain(flow().into_iter().map(BackfillError::Fetch))
        .collect();
        check("BackfillError", &backfills, 2, |e| match e {
            BackfillError::Empty { .. } => 0,
            BackfillError::Fetch(_) => 1,
        });
    }

    #[test]
    fn every_consent_and_configuration_error_renders_without_repeating_itself() {
        check("ClaimsError", &claims(), 3, |e| match e {
            ClaimsError::Unreadable => 0,
            ClaimsError::WrongTenant => 1,
            ClaimsError::MissingPermission { .. } => 2,
        });
        check("StateError", &states(), 3, |e| match e {
            StateError::Malformed => 0,
            StateError::BadSignature => 1,
            StateError::Expired => 2,
        });
        check("ConsentError", &consent(), 11, |e| match e {
            ConsentError::InvalidState(_) => 0,
            ConsentError::Replayed => 1,
            ConsentError::UnknownTenant => 2,
            ConsentError::NotEligible(_) => 3,
            ConsentError::AlreadyRegistered(_) => 4,
            ConsentError::Denied { .. } => 5,
            ConsentError::Missing(_) => 6,
            ConsentError::Malformed => 7,
            ConsentError::Identity(_) => 8,
            ConsentError::Claims(_) => 9,
            ConsentError::Store(_) => 10,
        });
        // The customer's admin reads consent errors: no instruction meant for the operator.
        for e in consent() {
            assert!(!e.to_string().contains("mssp "), "{e}");
        }
        let config = vec![
            ConfigError::Missing {
                var: "MSSP_TABLE".into(),
            },
            ConfigError::Invalid {
                var: "MSSP_CLOUD".into(),
                reason: "unknown cloud; expected one of commercial, gcc, gcc-high, dod".into(),
            },
        ];
        check("ConfigError", &config, 2, |e| match e {
            ConfigError::Missing { .. } => 0,
            ConfigError::Invalid { .. } => 1,
        });
    }
}
