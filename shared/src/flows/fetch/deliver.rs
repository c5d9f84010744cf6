//! Steps 2 and 3 of a fetch: drain and deduplicate each page, deliver the new versions to the
//! sink, and commit the cursor once a chunk is complete.
//!
//! A delivery *attempt* is everything written under one cursor version: its objects are keyed
//! `…/{api}-{version}-{seq}` ([`BatchId`]), so an attempt interrupted anywhere (a crash, a lost
//! lease, a deadline) is found again by the next run, which reads the dedup keys back
//! ([`AlertSink::attempt_contents`]) and numbers its own objects after them: nothing is lost and
//! nothing is delivered twice.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use super::{FetchHooks, FetchReport, HookPoint};
use crate::domain::Tenant;
use crate::microsoft::alerts::{FetchError, SourceAlert, Window};
use crate::ports::{AlertSink, BatchId, Cursor, StoreError};
use crate::record::{self, Change};

/// What one attempt has delivered so far, and where its next object goes.
pub struct Attempt {
    /// Delivered dedup keys with their version times: the cursor's overlap keys, what an
    /// interrupted attempt of the same cursor version left, and what this run wrote.
    pub delivered: BTreeMap<String, DateTime<Utc>>,
    /// Alert ids with a delivered version among `delivered` (rebuilt when it is pruned).
    known_ids: HashSet<String>,
    /// The next object of the attempt.
    pub batch: BatchId,
}

impl Attempt {
    /// Starts the attempt of `cursor`, or resumes it when an earlier run left objects under its
    /// version (`cursor.attempt_date` is set until a commit clears it).
    pub async fn resume(
        sink: &dyn AlertSink,
        cursor: &Cursor,
        now: DateTime<Utc>,
    ) -> Result<Attempt, StoreError> {
        let mut delivered = cursor.delivered.clone();
        let mut seq = 0;
        if let Some(date) = &cursor.attempt_date {
            let prior = sink
                .attempt_contents(&cursor.tenant_id, cursor.api, date, cursor.version)
                .await?;
            seq = prior.next_seq;
            delivered.extend(prior.delivered);
        }
        let mut attempt = Attempt {
            known_ids: ids_of(&delivered),
            delivered,
            batch: batch_of(cursor, now),
        };
        attempt.batch.seq = seq;
        Ok(attempt)
    }

    /// Moves on to the attempt of `cursor`, the cursor a commit just stored: the delivered keys
    /// are kept, objects are numbered afresh under the new version.
    pub fn restart(&mut self, cursor: &Cursor, now: DateTime<Utc>) {
        self.batch = batch_of(cursor, now);
    }

    /// The cursor to commit once everything below `until` is delivered: the watermark moves
    /// there (never backwards) and only the keys inside the overlap below it are kept.
    pub fn progressed(
        &mut self,
        cursor: &Cursor,
        until: DateTime<Utc>,
        overlap: chrono::Duration,
    ) -> Cursor {
        let watermark = cursor.watermark.map_or(until, |w| w.max(until));
        let keep_from = watermark - overlap;
        let before = self.delivered.len();
        self.delivered.retain(|_, at| *at >= keep_from);
        if self.delivered.len() < before {
            self.known_ids = ids_of(&self.delivered);
        }
        Cursor {
            watermark: Some(watermark),
            delivered: self.delivered.clone(),
            ..cursor.clone()
        }
    }
}

fn batch_of(cursor: &Cursor, now: DateTime<Utc>) -> BatchId {
    BatchId {
        tenant_id: cursor.tenant_id.clone(),
        api: cursor.api,
        cursor_version: cursor.version,
        date: cursor
            .attempt_date
            .clone()
            .unwrap_or_else(|| now.date_naive().to_string()),
        seq: 0,
    }
}

fn ids_of(delivered: &BTreeMap<String, DateTime<Utc>>) -> HashSet<String> {
    delivered
        .keys()
        .filter_map(|k| alert_id_of(k).map(str::to_string))
        .collect()
}

/// The alert id inside a dedup key `<tenant>:<id>:<28-character version>`.
fn alert_id_of(key: &str) -> Option<&str> {
    let rest = key.split_once(':')?.1;
    rest.len().checked_sub(29).map(|end| &rest[..end])
}

/// Turns the pages of one chunk into records, skipping delivered versions, and writes one object
/// per page.
pub struct Deliverer<'a> {
    /// Whose alerts.
    pub tenant: &'a Tenant,
    /// Where they go.
    pub sink: &'a dyn AlertSink,
    /// Interruption points (tests).
    pub hooks: &'a dyn FetchHooks,
    /// The attempt being written.
    pub attempt: &'a mut Attempt,
    /// Where the run's window starts: an alert created inside it has all its versions in hand.
    pub window_start: DateTime<Utc>,
    /// The records' `fetched_at`.
    pub fetched_at: DateTime<Utc>,
    /// Counts.
    pub report: &'a mut FetchReport,
}

impl<'a> Deliverer<'a> {
    /// A deliverer for the chunk `window` of a run whose window starts at `window_start`.
    pub fn new(
        tenant: &'a Tenant,
        sink: &'a dyn AlertSink,
        hooks: &'a dyn FetchHooks,
        attempt: &'a mut Attempt,
        window: Window,
        fetched_at: DateTime<Utc>,
        report: &'a mut FetchReport,
    ) -> Self {
        Deliverer {
            tenant,
            sink,
            hooks,
            attempt,
            window_start: window.since,
            fetched_at,
            report,
        }
    }

    /// Whether `a` is an update of an alert none of whose versions was delivered: its creation
    /// lies inside the window (so every earlier version would be in hand) and none is.
    fn first_seen(&self, a: &SourceAlert) -> bool {
        !self.attempt.known_ids.contains(&a.id) && a.created.is_some_and(|c| c >= self.window_start)
    }

    /// Whether `a` was delivered already: by its key, or by the key an earlier release gave it.
    fn delivered(&self, a: &SourceAlert, key: &str) -> bool {
        let delivered = &self.attempt.delivered;
        delivered.contains_key(key)
            || a.legacy_key(&self.tenant.id)
                .is_some_and(|k| delivered.contains_key(&k))
    }

    /// Delivers the alerts of one page not delivered before, as one object.
    pub async fn deliver(&mut self, alerts: Vec<SourceAlert>) -> Result<(), FetchError> {
        let mut records = Vec::with_capacity(alerts.len());
        for a in alerts {
            let key = a.dedup_key(&self.tenant.id);
            if self.delivered(&a, &key) {
                self.report.duplicates_skipped += 1;
                continue;
            }
            let first_seen = self.first_seen(&a);
            self.attempt.known_ids.insert(a.id.clone());
            self.attempt.delivered.insert(key, a.version);
            records.push(record::build(self.tenant, a, self.fetched_at, first_seen));
        }
        if records.is_empty() {
            return Ok(());
        }
        self.sink
            .write_batch(&self.attempt.batch, &records)
            .await
            .map_err(FetchError::Delivery)?;
        self.attempt.batch.seq += 1;
        self.report.count(&records);
        self.hooks
            .at(HookPoint::AfterDelivery)
            .map_err(|_| FetchError::Interrupted)
    }
}

impl FetchReport {
    /// Counts delivered records.
    fn count(&mut self, records: &[record::AlertRecord]) {
        for r in records {
            match r.change {
                Change::Created => self.created += 1,
                Change::Updated => self.updated += 1,
            }
        }
        self.delivered += records.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_id_is_read_back_from_a_dedup_key() {
        let k = "11111111-1111-4111-8111-111111111111:da637_-1:2021-05-02T14:19:01.3266667Z";
        assert_eq!(alert_id_of(k), Some("da637_-1"));
        let k = "t:id:with:colons:2021-05-02T14:19:01.3266667Z";
        assert_eq!(alert_id_of(k), Some("id:with:colons"));
        assert_eq!(alert_id_of("garbage"), None);
    }
}
