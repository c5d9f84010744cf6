//! The stand-in for a port a process was not configured with: the consent-callback and
//! token-refresh functions get no alert bucket and no work queue (their flows never deliver or
//! dispatch), so their [`crate::flows::Deps`] carry this instead, and a call names what is
//! missing rather than writing anywhere.

use async_trait::async_trait;

use crate::domain::{AlertApi, TenantId};
use crate::ports::{AlertSink, AttemptContents, BatchId, StoreError, WorkItem, WorkQueue};
use crate::record::AlertRecord;

/// A port whose configuration variable is not set in this process.
#[derive(Debug, Clone, Copy)]
pub struct NotConfigured {
    /// The variable that would configure it, e.g. `MSSP_BUCKET`.
    pub variable: &'static str,
}

/// The error of every call: names the variable.
#[derive(Debug, thiserror::Error)]
#[error("this process is not configured with {0}")]
pub struct MissingVariable(&'static str);

impl NotConfigured {
    fn refuse<T>(&self, what: &'static str) -> Result<T, StoreError> {
        Err(StoreError::unavailable(
            what,
            MissingVariable(self.variable),
        ))
    }
}

#[async_trait]
impl AlertSink for NotConfigured {
    async fn write_batch(&self, _: &BatchId, _: &[AlertRecord]) -> Result<(), StoreError> {
        self.refuse("writing alerts")
    }

    async fn attempt_contents(
        &self,
        _: &TenantId,
        _: AlertApi,
        _: &str,
        _: u64,
    ) -> Result<AttemptContents, StoreError> {
        self.refuse("reading alerts")
    }
}

#[async_trait]
impl WorkQueue for NotConfigured {
    async fn enqueue(&self, _: &[(WorkItem, std::time::Duration)]) -> Result<usize, StoreError> {
        self.refuse("enqueueing work")
    }
}
