//! Step 3 of a fetch: deduplicate each page, deliver the new versions to the sink, and hand the
//! commit what it stores.
//!
//! A delivery *attempt* is everything written under one cursor version: its objects are keyed
//! `…/{api}-{version}-{seq}` ([`BatchId`]), so an attempt interrupted anywhere (a crash, a lost
//! lease, a deadline) is found again by the next run, which reads the dedup keys back
//! ([`AlertSink::attempt_contents`]) and numbers its own objects after them: nothing is lost and
//! nothing is delivered twice. What an attempt delivered goes into the delivery index at the
//! next commit, before the cursor: both writes are idempotent, so a crash between them repeats
//! the index write and nothing else.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use super::{FetchHooks, FetchReport, HookPoint};
use crate::domain::Tenant;
use crate::microsoft::alerts::{FetchError, SourceAlert, Window};
use crate::ports::{AlertSink, BatchId, Cursor, StoreError};
use crate::record::{self, Change, Labels, digest};

/// What one attempt has delivered so far, and where its next object goes.
pub struct Attempt {
    /// Delivered dedup keys with their version times: the cursor's overlap keys, what an
    /// interrupted attempt of the same cursor version left, and what this run wrote.
    pub delivered: BTreeMap<String, DateTime<Utc>>,
    /// Alert ids with a delivered version among `delivered` (rebuilt when it is pruned).
    known_ids: foldhash::HashSet<String>,
    /// Digests delivered since the last commit, with their version day, for the index.
    pending: Vec<(NaiveDate, u64)>,
    /// Version times of what an interrupted attempt had delivered (read back at the start).
    pub resumed: Vec<DateTime<Utc>>,
    /// The next object of the attempt.
    pub batch: BatchId,
}

impl Attempt {
    /// Starts the attempt of `cursor`, or resumes it when an earlier run left objects under its
    /// version (`cursor.attempt_date` is set until a commit clears it).
    ///
    /// The attempt takes the cursor's delivered keys: it holds them from here on, and lends them
    /// to each commit ([`Attempt::keep_in`]).
    pub async fn resume(
        sink: &dyn AlertSink,
        cursor: &mut Cursor,
        now: DateTime<Utc>,
    ) -> Result<Attempt, StoreError> {
        let delivered = std::mem::take(&mut cursor.delivered);
        let mut attempt = Attempt {
            known_ids: ids_of(&delivered),
            delivered,
            pending: Vec::new(),
            resumed: Vec::new(),
            batch: batch_of(cursor, now),
        };
        if let Some(date) = &cursor.attempt_date {
            let prior = sink
                .attempt_contents(&cursor.tenant_id, cursor.api, date, cursor.version)
                .await?;
            attempt.batch.seq = prior.next_seq;
            for (key, at) in prior.delivered {
                attempt.note(&key, at);
                attempt.resumed.push(at);
                attempt.delivered.insert(key, at);
            }
        }
        Ok(attempt)
    }

    /// Records a delivered key for the index and the first-seen test; returns its digest.
    fn note(&mut self, key: &str, version: DateTime<Utc>) -> u64 {
        if let Some(id) = alert_id_of(key) {
            self.known_ids.insert(id.to_string());
        }
        let d = digest(key);
        self.pending.push((version.date_naive(), d));
        d
    }

    /// Queues every key in hand for the index: the first commit of a cursor that predates the
    /// index seeds it with the overlap's keys.
    pub fn index_all(&mut self) {
        let keys: Vec<(String, DateTime<Utc>)> = self
            .delivered
            .iter()
            .map(|(k, at)| (k.clone(), *at))
            .collect();
        for (key, at) in keys {
            self.pending.push((at.date_naive(), digest(&key)));
        }
    }

    /// The digests to add to the index before the next commit, by day.
    pub fn pending(&self) -> Vec<(NaiveDate, Vec<u64>)> {
        let mut days: HashMap<NaiveDate, Vec<u64>> = HashMap::new();
        for (day, d) in &self.pending {
            days.entry(*day).or_default().push(*d);
        }
        let mut out: Vec<_> = days.into_iter().collect();
        out.sort_by_key(|(day, _)| *day);
        out
    }

    /// Moves on to the attempt of `cursor`, the cursor a commit just stored: the delivered keys
    /// are kept, the index is up to date, objects are numbered afresh under the new version.
    pub fn restart(&mut self, cursor: &Cursor, now: DateTime<Utc>) {
        self.pending.clear();
        self.batch = batch_of(cursor, now);
    }

    /// Lends `next` the delivered keys it keeps: those inside the overlap below its watermark
    /// (older ones are in the index). They are moved, not copied — a cursor of a dense backlog
    /// holds tens of thousands — and taken back with [`Attempt::take_back`] after the commit.
    pub fn keep_in(&mut self, next: &mut Cursor, overlap: chrono::Duration) {
        if let Some(watermark) = next.watermark {
            let keep_from = watermark - overlap;
            let before = self.delivered.len();
            self.delivered.retain(|_, at| *at >= keep_from);
            if self.delivered.len() < before {
                self.known_ids = ids_of(&self.delivered);
            }
        }
        next.delivered = std::mem::take(&mut self.delivered);
    }

    /// Takes back the keys [`Attempt::keep_in`] lent `next`.
    pub fn take_back(&mut self, next: &mut Cursor) {
        self.delivered = std::mem::take(&mut next.delivered);
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

fn ids_of(delivered: &BTreeMap<String, DateTime<Utc>>) -> foldhash::HashSet<String> {
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

/// Turns the pages of a window into records, skipping delivered versions, and writes one object
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
    /// The delivery index of the window's days, for a job over the past (the cursor's keys
    /// cover only the overlap): delivered versions are skipped, new ones added.
    pub index: Option<&'a mut HashSet<u64>>,
    /// Where the run's window starts: an alert created inside it has all its versions in hand.
    pub window_start: DateTime<Utc>,
    /// The records' `fetched_at`.
    pub fetched_at: DateTime<Utc>,
    /// Whether records are late finds (the reconciliation sweep).
    pub late: bool,
    /// Counts.
    pub report: &'a mut FetchReport,
}

impl<'a> Deliverer<'a> {
    /// A deliverer for a run whose window is `window`.
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
            index: None,
            window_start: window.since,
            fetched_at,
            late: false,
            report,
        }
    }

    /// Whether `a` is an update of an alert none of whose versions was delivered: its creation
    /// lies inside the window (so every earlier version would be in hand) and none is.
    fn first_seen(&self, a: &SourceAlert) -> bool {
        a.created.is_some_and(|c| c >= self.window_start) && !self.attempt.known_ids.contains(&a.id)
    }

    /// Whether `a` was delivered already: by its key, or by the key an earlier release gave it,
    /// in the keys in hand or in the index.
    fn delivered(&self, a: &SourceAlert, key: &str) -> bool {
        let legacy = a.legacy_key(&self.tenant.id);
        let keys = std::iter::once(key).chain(legacy.as_deref());
        keys.into_iter().any(|k| {
            self.attempt.delivered.contains_key(k)
                || self.index.as_ref().is_some_and(|i| i.contains(&digest(k)))
        })
    }

    /// Delivers the alerts of one page not delivered before, as one object. Only once the
    /// object is written are its keys counted as delivered.
    pub async fn deliver(&mut self, alerts: Vec<SourceAlert>) -> Result<(), FetchError> {
        let mut records = Vec::with_capacity(alerts.len());
        let mut versions = Vec::with_capacity(alerts.len());
        for a in alerts {
            let key = a.dedup_key(&self.tenant.id);
            if self.delivered(&a, &key) {
                self.report.duplicates_skipped += 1;
                continue;
            }
            let labels = Labels {
                first_seen: self.first_seen(&a),
                late: self.late,
            };
            versions.push(a.version);
            records.push(record::build_keyed(
                self.tenant,
                a,
                key,
                self.fetched_at,
                labels,
            ));
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
        for (r, version) in records.into_iter().zip(versions) {
            let d = self.attempt.note(&r.dedup_key, version);
            if let Some(index) = self.index.as_mut() {
                index.insert(d);
            }
            self.attempt.delivered.insert(r.dedup_key, version);
        }
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
            self.late += u64::from(r.late);
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
