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
pub mod s3;
pub mod schema;
mod schema_files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate};
use serde_json::Value;
use shared::adapters::local::write_atomic;
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
    /// The alert object could not be read (retry).
    #[error("reading the alert object")]
    Read(#[source] StoreError),
    /// The object's content is not what its key says.
    #[error(transparent)]
    Corrupt(StoreError),
    /// The events could not be written as Parquet (a bug: the schema lacks an attribute).
    #[error(transparent)]
    Parquet(#[from] parquet::ParquetError),
    /// A lake file could not be written (retry).
    #[error("writing the lake file {key}")]
    Write {
        /// The lake file.
        key: String,
        /// Why.
        #[source]
        source: StoreError,
    },
}

/// Objects by key: the alerts bucket the exporter reads, the lake it writes. Adapters:
/// [`s3::S3Objects`] (a bucket), [`DirObjects`] (files under a directory).
#[async_trait]
pub trait Objects: Send + Sync {
    /// The bytes of the object at `key`.
    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError>;
    /// Writes (or replaces) the object at `key`.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;
}

/// Objects as files under a directory, at their keys (written atomically).
#[derive(Debug, Clone)]
pub struct DirObjects {
    root: PathBuf,
}

impl DirObjects {
    /// The objects under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirObjects { root: root.into() }
    }
}

#[async_trait]
impl Objects for DirObjects {
    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.root.join(key);
        tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| StoreError::unavailable("a storage task", e))?
            .map_err(|e| StoreError::unavailable("reading an object", e))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.root.join(key);
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes, false))
            .await
            .map_err(|e| StoreError::unavailable("a storage task", e))?
            .map_err(|e| StoreError::unavailable("writing an object", e))
    }
}

/// A lake file written: its key and how many events it holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    /// Its key in the lake.
    pub key: String,
    /// Its events.
    pub events: usize,
}

/// The exporter's flow: reads the alert object `key` from `source` and writes its lake files
/// ([`export_object`]) to `lake`. `Ok(None)` when `key` is no alert object (nothing read).
///
/// # Errors
///
/// [`ExportError`]: reading, decoding, encoding or writing failed; writing again is harmless
/// (the same files, the same rows).
pub async fn export(
    source: &dyn Objects,
    lake: &dyn Objects,
    location: &Location,
    key: &str,
) -> Result<Option<Vec<Written>>, ExportError> {
    if stem(key).is_none() {
        return Ok(None);
    }
    let bytes = source.get(key).await.map_err(ExportError::Read)?;
    let Some(files) = export_object(location, key, &bytes)? else {
        return Ok(None);
    };
    write_files(lake, files).await.map(Some)
}

async fn write_files(
    lake: &dyn Objects,
    files: Vec<LakeFile>,
) -> Result<Vec<Written>, ExportError> {
    let mut written = Vec::with_capacity(files.len());
    for f in files {
        lake.put(&f.key, f.bytes)
            .await
            .map_err(|source| ExportError::Write {
                key: f.key.clone(),
                source,
            })?;
        written.push(Written {
            key: f.key,
            events: f.events,
        });
    }
    Ok(written)
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
        Input::Raw => ndjson::decode_batch(bytes)
            .map_err(ExportError::Corrupt)?
            .iter()
            .map(shared::ocsf::map)
            .collect(),
        Input::Ocsf => ocsf_ndjson::decode_batch(bytes).map_err(ExportError::Corrupt)?,
    };
    files_of(location, &stem, events).map(Some)
}

/// The local lake: files under `{data}/lake/`, at the keys of [`Location::key`].
#[derive(Debug, Clone)]
pub struct LocalLake {
    /// The data directory: its `alerts/` and `ocsf/` objects are the input.
    data: DirObjects,
    data_dir: PathBuf,
    root: PathBuf,
    location: Location,
}

impl LocalLake {
    /// The lake under `{data_dir}/lake/`, partitioned as `location` says.
    pub fn new(data_dir: &Path, location: Location) -> Self {
        LocalLake {
            data: DirObjects::new(data_dir),
            data_dir: data_dir.to_path_buf(),
            root: data_dir.join("lake"),
            location,
        }
    }

    /// Exports (again) every alert object, raw or OCSF, under the attempt `prefix`
    /// ([`BatchId::attempt_prefix`]) with the exporter's flow ([`export`]): a batch whose
    /// object was written but whose lake files were not (interrupted between the two) gets
    /// them; the others are rewritten unchanged.
    async fn repair(&self, prefix: &str) -> Result<(), StoreError> {
        let lake = DirObjects::new(&self.root);
        for prefix in [prefix.to_owned(), BatchId::ocsf(prefix)] {
            let (dir, name_prefix) = prefix.rsplit_once('/').unwrap_or(("", prefix.as_str()));
            let entries = match std::fs::read_dir(self.data_dir.join(dir)) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::unavailable("listing alerts", e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::unavailable("listing alerts", e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with(name_prefix) {
                    continue;
                }
                export(&self.data, &lake, &self.location, &format!("{dir}/{name}"))
                    .await
                    .map_err(store_error)?;
            }
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
        let Some((_, stem)) = stem(&batch.key()) else {
            return Ok(());
        };
        let events = records.iter().map(shared::ocsf::map).collect();
        let files = files_of(&self.location, &stem, events).map_err(store_error)?;
        write_files(&DirObjects::new(&self.root), files)
            .await
            .map_err(store_error)?;
        Ok(())
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

/// An export failure as the sink's error: the store's own, or a Parquet one as corrupt data.
fn store_error(e: ExportError) -> StoreError {
    match e {
        ExportError::Read(e) | ExportError::Corrupt(e) | ExportError::Write { source: e, .. } => e,
        ExportError::Parquet(e) => StoreError::Corrupt {
            what: "the lake files of a batch".into(),
            source: Box::new(e),
        },
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
