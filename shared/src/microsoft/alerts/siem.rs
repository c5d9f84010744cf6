//! The legacy SIEM API (`wdatp-alertexporter-*`, reference §1): deprecated by Microsoft since
//! 2023-12-31 and liable to be turned off; kept because existing MSSP customers still run on it.
//! It answers a bare JSON array of every detection whose `LastProcessedTimeUtc` lies in
//! `[sinceTimeUtc, untilTimeUtc]` (both inclusive), with no paging, so one request drains a
//! window. The answer is delivered as one batch: it arrives whole, so it is kept whole (a run
//! stopped half-way through handing it on would have dropped versions it was shown).

use std::sync::Once;

use async_trait::async_trait;
use serde_json::Value;
use url::Url;

use super::{
    AlertSource, DrainStats, FetchError, PageHandler, SourceAlert, Window, fmt7, parse_time, tick,
};
use crate::domain::AlertApi;
use crate::microsoft::http::{Getter, RequestBudget, RetryPolicy};
use crate::secret::AccessToken;

static DEPRECATION: Once = Once::new();

/// The SIEM API source of one tenant.
pub struct SiemSource {
    base: Url,
    http: reqwest::Client,
    budget: RequestBudget,
    policy: RetryPolicy,
}

impl SiemSource {
    /// A source at `base` (e.g. `https://wdatp-alertexporter-eu.windows.com`). Logs Microsoft's
    /// deprecation once per process.
    pub fn new(
        base: Url,
        http: reqwest::Client,
        budget: RequestBudget,
        policy: RetryPolicy,
    ) -> Self {
        DEPRECATION.call_once(|| {
            tracing::warn!(
                api = "siem",
                "the legacy SIEM API is deprecated since 2023-12-31 and Microsoft may turn it off at any time; move tenants to the graph API"
            );
        });
        SiemSource {
            base,
            http,
            budget,
            policy,
        }
    }

    fn parse(raw: Value) -> Result<SourceAlert, FetchError> {
        let id = raw
            .get("AlertId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| FetchError::Malformed("a detection has no AlertId".into()))?
            .to_string();
        let version = raw
            .get("LastProcessedTimeUtc")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .ok_or_else(|| {
                FetchError::Malformed(format!("detection {id} has no valid LastProcessedTimeUtc"))
            })?;
        let created = raw
            .get("AlertTime")
            .and_then(Value::as_str)
            .and_then(parse_time);
        Ok(SourceAlert {
            id,
            version,
            created,
            raw,
        })
    }
}

#[async_trait]
impl AlertSource for SiemSource {
    fn api(&self) -> AlertApi {
        AlertApi::Siem
    }

    async fn drain(
        &mut self,
        token: &AccessToken,
        window: Window,
        deadline: tokio::time::Instant,
        handler: &mut dyn PageHandler,
        stats: &mut DrainStats,
    ) -> Result<(), FetchError> {
        let mut u = super::join(&self.base, "api/alerts");
        u.query_pairs_mut()
            .append_pair("sinceTimeUtc", &fmt7(window.since))
            .append_pair("untilTimeUtc", &fmt7(window.until - tick()));
        let answer = Getter {
            http: &self.http,
            budget: &mut self.budget,
            deadline,
            policy: self.policy,
            stats: &mut stats.http,
        }
        .get(&u, token, |b| {
            serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok()
        })
        .await?;
        let Value::Array(items) = serde_json::from_slice(&answer.body)
            .map_err(|_| FetchError::Malformed("the answer is not JSON".into()))?
        else {
            return Err(FetchError::Malformed(
                "the answer is not a JSON array".into(),
            ));
        };
        let mut seen = std::collections::HashSet::new();
        let mut alerts = Vec::with_capacity(items.len());
        for raw in items {
            let a = Self::parse(raw)?;
            // Several detections may share an AlertId; one version per (id, time) is delivered.
            if seen.insert((a.id.clone(), a.version)) {
                alerts.push(a);
            }
        }
        stats.alerts += alerts.len() as u64;
        stats.pages += 1;
        handler.page(alerts).await?;
        Ok(())
    }
}
