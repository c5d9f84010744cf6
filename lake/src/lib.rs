//! OCSF for Amazon Security Lake. The records the fetcher writes (`alerts/…` NDJSON.gz, or their
//! OCSF rendering at `ocsf/…`) become Parquet files of OCSF Detection Findings (class 2004, OCSF
//! 1.1.0, [`shared::ocsf`]) in a Security Lake custom source's layout:
//!
//! `{prefix}/region={region}/accountId={account}/eventDay={YYYYMMDD}/{object}.parquet`
//!
//! with `{prefix}` the custom source's location (`ext/{source name}` in the lake's bucket), one
//! OCSF class per source. **Exactly once per record**: each alert object becomes one Parquet
//! file per event day of its records, named after the object (`{tenant}_{date}_{api}-{version}-
//! {seq}`), so a retried or duplicated event rewrites the same files with the same rows, and
//! every record is in exactly one alert object (the fetcher's own exactly-once).
//!
//! Who writes: the `ocsf-exporter` Lambda (S3 object-created events of the alerts bucket), and
//! locally [`LakeSink`] beside the file sink (`{data}/lake/…`). Parquet stays out of the other
//! functions: only the exporter and the `mssp` CLI depend on this crate.
//!
//! [`schema::Validator`] checks events against the vendored OCSF definitions.
#![warn(missing_docs)]

pub mod parquet;
pub mod schema;
mod schema_files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate};
use serde_json::Value;
use shared::adapters::{ndjson, ocsf_ndjson};
use shared::domain::{AlertApi, TenantId};
use shared::ports::{AlertSink, AttemptContents, BatchId, StoreError};
use shared::record::AlertRecord;

/// Where a custom source's files go: its prefix in the lake's bucket and the partition values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The custom source's prefix, e.g. `ext/mssp-alerts` (no trailing slash).
    pub prefix: String,
    /// The `region=` partition.
    pub region: String,
    /// The `accountId=` partition (the AWS account id, or the external id chosen for the source).
    pub account: String,
}

impl Location {
    /// `{prefix}/region={region}/accountId={account}/eventDay={YYYYMMDD}/{stem}.parquet`.
    pub fn key(&self, day: NaiveDate, stem: &str) -> String {
        format!(
            "{}/region={}/accountId={}/eventDay={}/{stem}.parquet",
            self.prefix.trim_end_matches('/'),
            self.region,
            self.account,
            day.format("%Y%m%d")
        )
    }
}

/// Why an object could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The object's content is not what its key says.
    #[error(transparent)]
    Corrupt(#[from] StoreError),
    /// The events could not be written as Parquet (a bug: the schema lacks an attribute).
    #[error(transparent)]
    Parquet(#[from] parquet::ParquetError),
}

/// What kind of alert object a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `alerts/…`: raw records.
    Raw,
    /// `ocsf/…`: OCSF events.
    Ocsf,
}

/// The input kind of an alert object key and the stem of its lake files
/// (`alerts/tenant={t}/date={d}/{api}-{v}-{seq}.ndjson.gz` → `{t}_{d}_{api}-{v}-{seq}`); `None`
/// for any other key.
pub fn stem(key: &str) -> Option<(Input, String)> {
    let (input, rest) = if let Some(r) = key.strip_prefix("alerts/") {
        (Input::Raw, r)
    } else if let Some(r) = key.strip_prefix("ocsf/") {
        (Input::Ocsf, r)
    } else {
        return None;
    };
    let mut parts = rest.split('/');
    let tenant = parts.next()?.strip_prefix("tenant=")?;
    let date = parts.next()?.strip_prefix("date=")?;
    let name = parts.next()?.strip_suffix(".ndjson.gz")?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    (parts.next().is_none() && ok(tenant) && ok(date) && ok(name))
        .then(|| (input, format!("{tenant}_{date}_{name}")))
}

/// One Parquet file of the lake.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeFile {
    /// Its key in the lake's bucket (below the data directory's `lake/` locally).
    pub key: String,
    /// How many events it holds.
    pub events: usize,
    /// The Parquet bytes.
    pub bytes: Vec<u8>,
}

/// The event day (UTC) of an OCSF event's `time` (milliseconds).
pub fn event_day(event: &Value) -> NaiveDate {
    event["time"]
        .as_i64()
        .and_then(DateTime::from_timestamp_millis)
        .map_or(NaiveDate::MIN, |t| t.date_naive())
}

/// The lake files of `events` (from the alert object of stem `stem`): one per event day, events
/// by time.
///
/// # Errors
///
/// [`ExportError::Parquet`] when an event does not fit the Parquet schema.
pub fn files_of(
    location: &Location,
    stem: &str,
    events: Vec<Value>,
) -> Result<Vec<LakeFile>, ExportError> {
    let mut days: BTreeMap<NaiveDate, Vec<Value>> = BTreeMap::new();
    for e in events {
        days.entry(event_day(&e)).or_default().push(e);
    }
    days.into_iter()
        .map(|(day, mut events)| {
            events.sort_by_key(|e| e["time"].as_i64());
            Ok(LakeFile {
                key: location.key(day, stem),
                events: events.len(),
                bytes: parquet::write(&events)?,
            })
        })
        .collect()
}

/// The lake files of the alert object `key` holding `bytes`; `Ok(None)` when `key` is no alert
/// object (an S3 event for another prefix).
///
/// # Errors
///
/// [`ExportError::Corrupt`] when the object does not decode, [`ExportError::Parquet`] as
/// [`files_of`].
pub fn export_object(
    location: &Location,
    key: &str,
    bytes: &[u8],
) -> Result<Option<Vec<LakeFile>>, ExportError> {
    let Some((input, stem)) = stem(key) else {
        return Ok(None);
    };
    let events = match input {
        Input::Raw => ndjson::decode_batch(bytes)?
            .iter()
            .map(shared::ocsf::map)
            .collect(),
        Input::Ocsf => ocsf_ndjson::decode_batch(bytes)?,
    };
    files_of(location, &stem, events).map(Some)
}

/// The local lake: files under `{data}/lake/`, at the keys of [`Location::key`].
#[derive(Debug, Clone)]
pub struct LocalLake {
    data_dir: PathBuf,
    root: PathBuf,
    location: Location,
}

impl LocalLake {
    /// The lake under `{data_dir}/lake/`, partitioned as `location` says.
    pub fn new(data_dir: &Path, location: Location) -> Self {
        LocalLake {
            data_dir: data_dir.to_path_buf(),
            root: data_dir.join("lake"),
            location,
        }
    }

    /// Rewrites the lake files of every raw alert object under the attempt `prefix`
    /// ([`BatchId::attempt_prefix`]): a batch whose object was written but whose lake files were
    /// not (interrupted between the two) gets them.
    async fn repair(&self, prefix: &str) -> Result<(), StoreError> {
        let (dir, name_prefix) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let entries = match std::fs::read_dir(self.data_dir.join(dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::unavailable("listing alerts", e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::unavailable("listing alerts", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(name_prefix) && name.ends_with(".ndjson.gz")) {
                continue;
            }
            let bytes = std::fs::read(entry.path())
                .map_err(|e| StoreError::unavailable("reading alerts", e))?;
            self.write_key(&format!("{dir}/{name}"), &ndjson::decode_batch(&bytes)?)
                .await?;
        }
        Ok(())
    }

    /// The directory the lake's files are in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The custom source's directory (`{data}/lake/{prefix}`).
    pub fn source_dir(&self) -> PathBuf {
        self.root.join(&self.location.prefix)
    }

    /// Writes the lake files of a batch (replacing those of an earlier write of the same batch).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when a file cannot be written, [`StoreError::Corrupt`] when
    /// the events do not fit the Parquet schema (a bug).
    pub async fn write(&self, batch: &BatchId, records: &[AlertRecord]) -> Result<(), StoreError> {
        self.write_key(&batch.key(), records).await
    }

    async fn write_key(&self, key: &str, records: &[AlertRecord]) -> Result<(), StoreError> {
        let Some((_, stem)) = stem(key) else {
            return Ok(());
        };
        let events = records.iter().map(shared::ocsf::map).collect();
        let files = files_of(&self.location, &stem, events).map_err(|e| StoreError::Corrupt {
            what: format!("the lake files of {key}"),
            source: Box::new(e),
        })?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            for f in files {
                let path = root.join(&f.key);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let tmp = path.with_extension("parquet.tmp");
                std::fs::write(&tmp, &f.bytes)?;
                std::fs::rename(&tmp, &path)?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|e| StoreError::unavailable("a storage task", e))?
        .map_err(|e| StoreError::unavailable("writing the lake", e))
    }

    /// Every Parquet file under the lake (path, bytes), in path order.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when a directory or file cannot be read.
    pub fn files(&self) -> Result<Vec<(PathBuf, Vec<u8>)>, StoreError> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let path = entry?.path();
                if path.is_dir() {
                    walk(&path, out)?;
                } else if path.extension().is_some_and(|x| x == "parquet") {
                    out.push(path);
                }
            }
            Ok(())
        }
        let mut paths = Vec::new();
        walk(&self.root, &mut paths).map_err(|e| StoreError::unavailable("listing the lake", e))?;
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p)
                    .map_err(|e| StoreError::unavailable("reading the lake", e))?;
                Ok((p, bytes))
            })
            .collect()
    }
}

/// An [`AlertSink`] that also writes each batch's lake files: the local backend's Security Lake
/// output (the exporter's work, done at delivery). `inner` must write raw objects under the same
/// data directory (the local file sink). The lake files of a batch are written after its object;
/// a retried attempt rewrites the lake files of every object it finds (an interruption between
/// the two writes loses nothing), and a rewrite replaces files, never adds rows.
pub struct LakeSink {
    inner: Arc<dyn AlertSink>,
    lake: LocalLake,
}

impl LakeSink {
    /// `inner` (the file sink of the lake's data directory) plus `lake`.
    pub fn new(inner: Arc<dyn AlertSink>, lake: LocalLake) -> Self {
        LakeSink { inner, lake }
    }
}

#[async_trait]
impl AlertSink for LakeSink {
    async fn write_batch(
        &self,
        batch: &BatchId,
        records: &[AlertRecord],
    ) -> Result<(), StoreError> {
        self.inner.write_batch(batch, records).await?;
        self.lake.write(batch, records).await
    }

    async fn attempt_contents(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        date: &str,
        cursor_version: u64,
    ) -> Result<AttemptContents, StoreError> {
        let contents = self
            .inner
            .attempt_contents(tenant, api, date, cursor_version)
            .await?;
        if !contents.delivered.is_empty() {
            self.lake
                .repair(&BatchId::attempt_prefix(tenant, api, date, cursor_version))
                .await?;
        }
        Ok(contents)
    }
}

#[cfg(test)]
mod tests;
