//! The work queue on SQS: `SendMessageBatch` in batches of at most 10 messages (SQS's limit), one
//! [`WorkItem`] body each, with its own `DelaySeconds` (at most 900, SQS's limit). Failed entries
//! are retried once, then reported.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::ports::{StoreError, WorkItem, WorkQueue};

/// SQS takes at most this many entries per batch.
const BATCH: usize = 10;

/// SQS delays a message at most this long.
const MAX_DELAY_S: u64 = 900;

/// Work items on one SQS queue.
#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsWorkQueue {
    /// Items go to `queue_url`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        SqsWorkQueue {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Sends one batch; returns the entries SQS did not take.
    async fn send(
        &self,
        chunk: &[(WorkItem, Duration)],
    ) -> Result<Vec<(WorkItem, Duration)>, StoreError> {
        let mut entries = Vec::with_capacity(chunk.len());
        for (i, (item, delay)) in chunk.iter().enumerate() {
            let body = serde_json::to_string(item).map_err(|e| StoreError::Corrupt {
                what: "a work item".into(),
                source: Box::new(e),
            })?;
            let delay = delay.as_secs().min(MAX_DELAY_S) as i32;
            entries.push(
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(body)
                    .delay_seconds(delay)
                    .build()
                    .map_err(|e| StoreError::unavailable("building a work item", e))?,
            );
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| StoreError::unavailable("enqueueing work", e.into_service_error()))?;
        Ok(out
            .failed()
            .iter()
            .filter_map(|f| f.id().strip_prefix('m')?.parse::<usize>().ok())
            .filter_map(|i| chunk.get(i).cloned())
            .collect())
    }
}

#[async_trait]
impl WorkQueue for SqsWorkQueue {
    async fn enqueue(&self, items: &[(WorkItem, Duration)]) -> Result<usize, StoreError> {
        let mut sent = 0;
        for chunk in items.chunks(BATCH) {
            let mut failed = self.send(chunk).await?;
            if !failed.is_empty() {
                failed = self.send(&failed).await?;
            }
            if let Some((first, _)) = failed.first() {
                tracing::error!(tenant_id = %first.tenant_id, failed = failed.len(), "work items not enqueued");
            }
            sent += chunk.len() - failed.len();
        }
        Ok(sent)
    }
}
