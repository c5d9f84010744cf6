//! Alert objects on local files: `{data}/alerts/tenant={tid}/date={date}/{api}-{v:010}-{seq:05}.ndjson.gz`.
//!
//! Every object is written to a temporary file and renamed over its target, so neither a reader
//! nor a crash ever sees half of one; an object of a retried delivery replaces the earlier one
//! whole.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::write_atomic;
use crate::adapters::ndjson::{self, decode_batch, encode_batch};
use crate::adapters::ocsf_ndjson;
use crate::config::GzipLevel;
use crate::config::output::OutputFormat;
use crate::domain::{AlertApi, TenantId};
use crate::ports::{AlertSink, AttemptContents, BatchId, StoreError};
use crate::record::AlertRecord;

/// Alert objects under `{data}/alerts/`, at the keys of [`BatchId::key`], and/or their OCSF
/// rendering under `{data}/ocsf/` ([`BatchId::ocsf_key`]), as its [`OutputFormat`] says.
#[derive(Debug, Clone)]
pub struct FileAlertSink {
    data_dir: PathBuf,
    format: OutputFormat,
    gzip_level: GzipLevel,
}

impl FileAlertSink {
    /// A sink writing raw records under `data_dir`, at the default gzip level.
    pub fn new(data_dir: &Path) -> Self {
        FileAlertSink {
            data_dir: data_dir.to_path_buf(),
            format: OutputFormat::Raw,
            gzip_level: GzipLevel::DEFAULT,
        }
    }

    /// The same sink writing its objects at `level`.
    pub fn with_gzip_level(self, level: GzipLevel) -> Self {
        FileAlertSink {
            gzip_level: level,
            ..self
        }
    }

    /// The same sink writing `format`.
    pub fn with_format(mut self, format: OutputFormat) -> Self {
        self.format = format;
        self
    }

    /// Every record of every object (of `tenant` only, when given), in key order then line
    /// order: for tests, the CLI and the demo, not for production volumes.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when a directory or file cannot be read,
    /// [`StoreError::Corrupt`] when an object does not decode.
    pub fn records(&self, tenant: Option<&TenantId>) -> Result<Vec<AlertRecord>, StoreError> {
        let root = match tenant {
            Some(t) => self.data_dir.join("alerts").join(format!("tenant={t}")),
            None => self.data_dir.join("alerts"),
        };
        let mut objects = Vec::new();
        collect_objects(&root, &mut objects)?;
        objects.sort();
        let mut out = Vec::new();
        for path in objects {
            let bytes =
                fs::read(&path).map_err(|e| StoreError::unavailable("reading alerts", e))?;
            out.extend(decode_batch(&bytes).map_err(|e| StoreError::Corrupt {
                what: path.display().to_string(),
                source: Box::new(e),
            })?);
        }
        Ok(out)
    }
}

/// The `.ndjson.gz` files under `dir`, recursively (temporary files, which start with a dot,
/// are skipped); a missing `dir` holds none.
fn collect_objects(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::unavailable("listing alerts", e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::unavailable("listing alerts", e))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| StoreError::unavailable("listing alerts", e))?;
        if kind.is_dir() {
            collect_objects(&path, out)?;
        } else if name.ends_with(".ndjson.gz") {
            out.push(path);
        }
    }
    Ok(())
}

/// Writes an object atomically.
async fn write_object(path: PathBuf, bytes: Vec<u8>) -> Result<(), StoreError> {
    tokio::task::spawn_blocking(move || write_atomic(&path, &bytes, false))
        .await
        .map_err(|e| StoreError::unavailable("a storage task", e))?
        .map_err(|e| StoreError::unavailable("writing alerts", e))
}

impl FileAlertSink {
    /// The objects (file name, bytes) whose key starts with `prefix` (`{dir}/{name prefix}`).
    async fn objects(&self, prefix: String) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        // The prefix is `{dir}/{file name prefix}`; its directory part is a path below data.
        let (dir, name_prefix) = prefix.rsplit_once('/').unwrap_or(("", prefix.as_str()));
        let dir = self.data_dir.join(dir);
        let object_prefix = name_prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(StoreError::unavailable("listing alerts", e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::unavailable("listing alerts", e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !(name.starts_with(&object_prefix) && name.ends_with(".ndjson.gz")) {
                    continue;
                }
                let bytes = fs::read(entry.path())
                    .map_err(|e| StoreError::unavailable("reading alerts", e))?;
                out.push((name.to_owned(), bytes));
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::unavailable("a storage task", e))?
    }
}

/// The attempt date becomes a directory name: only a real `YYYY-MM-DD` may.
fn check_date(date: &str) -> Result<(), StoreError> {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .filter(|_| date.len() == 10)
        .map(|_| ())
        .ok_or_else(|| StoreError::Corrupt {
            what: format!("attempt date {date:?}"),
            source: "an attempt date is YYYY-MM-DD".into(),
        })
}

#[async_trait]
impl AlertSink for FileAlertSink {
    async fn write_batch(
        &self,
        batch: &BatchId,
        records: &[AlertRecord],
    ) -> Result<(), StoreError> {
        check_date(&batch.date)?;
        // Raw first: a retry repairs a missing OCSF twin of a raw object (attempt_contents).
        if self.format.raw() {
            write_object(
                self.data_dir.join(batch.key()),
                encode_batch(records, self.gzip_level)?,
            )
            .await?;
        }
        if self.format.ocsf() {
            let bytes = ocsf_ndjson::encode_batch(records, self.gzip_level)?;
            write_object(self.data_dir.join(batch.ocsf_key()), bytes).await?;
        }
        Ok(())
    }

    async fn attempt_contents(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        date: &str,
        cursor_version: u64,
    ) -> Result<AttemptContents, StoreError> {
        check_date(date)?;
        let prefix = BatchId::attempt_prefix(tenant, api, date, cursor_version);
        if !self.format.raw() {
            let objects = self.objects(BatchId::ocsf(&prefix)).await?;
            let mut contents = AttemptContents::default();
            for (name, bytes) in &objects {
                ocsf_ndjson::add_to_attempt(&mut contents, name, bytes)?;
            }
            return Ok(contents);
        }
        let objects = self.objects(prefix.clone()).await?;
        let mut contents = AttemptContents::default();
        for (name, bytes) in &objects {
            ndjson::add_to_attempt(&mut contents, name, bytes)?;
        }
        if self.format.ocsf() {
            // A raw object whose OCSF twin was not written (interrupted between the two) gets
            // it now: the twin is a function of the raw records.
            let (dir, _) = prefix.rsplit_once('/').unwrap_or(("", prefix.as_str()));
            let ocsf_dir = self.data_dir.join(BatchId::ocsf(dir));
            for (name, bytes) in objects {
                let twin = ocsf_dir.join(&name);
                if !twin.exists() {
                    let records = decode_batch(&bytes)?;
                    write_object(twin, ocsf_ndjson::encode_batch(&records, self.gzip_level)?)
                        .await?;
                }
            }
        }
        Ok(contents)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::adapters::ndjson::tests::record;

    fn tid(n: u32) -> TenantId {
        TenantId::parse(&format!("{n:08x}-1111-4111-8111-111111111111")).expect("tid")
    }

    fn batch(tenant: &TenantId, version: u64, seq: u32) -> BatchId {
        BatchId {
            tenant_id: tenant.clone(),
            api: AlertApi::Graph,
            cursor_version: version,
            date: "2026-03-01".into(),
            seq,
        }
    }

    #[tokio::test]
    async fn ocsf_objects_are_written_read_back_and_repaired_beside_raw_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = tid(2);
        let records = [
            record(&t, "a1", json!({"id": "a1", "title": "x"})),
            record(&t, "a2", json!({})),
        ];
        // raw+ocsf: both objects, at the same key below their prefixes.
        let both = FileAlertSink::new(dir.path()).with_format(OutputFormat::RawAndOcsf);
        both.write_batch(&batch(&t, 7, 0), &records)
            .await
            .expect("write");
        let twin = |seq: u32| {
            dir.path().join(format!(
                "ocsf/tenant={t}/date=2026-03-01/graph-0000000007-{seq:05}.ndjson.gz"
            ))
        };
        let events = ocsf_ndjson::decode_batch(&fs::read(twin(0)).expect("twin")).expect("OCSF");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["metadata"]["uid"], records[0].dedup_key.as_str());
        // Interrupted between the raw object and its twin: the retry's read-back writes it.
        FileAlertSink::new(dir.path())
            .write_batch(&batch(&t, 7, 1), &records[..1])
            .await
            .expect("raw only");
        assert!(!twin(1).exists());
        let contents = both
            .attempt_contents(&t, AlertApi::Graph, "2026-03-01", 7)
            .await
            .expect("contents");
        assert_eq!((contents.next_seq, contents.delivered.len()), (2, 3));
        assert!(twin(1).exists(), "the missing twin is written");
        // ocsf only: the attempt is read back from the OCSF objects.
        let ocsf = FileAlertSink::new(dir.path()).with_format(OutputFormat::Ocsf);
        let from_ocsf = ocsf
            .attempt_contents(&t, AlertApi::Graph, "2026-03-01", 7)
            .await
            .expect("contents");
        assert_eq!(from_ocsf.next_seq, 2);
        let sorted = |mut d: Vec<(String, chrono::DateTime<chrono::Utc>)>| {
            d.sort();
            d
        };
        assert_eq!(sorted(from_ocsf.delivered), sorted(contents.delivered));
    }

    #[tokio::test]
    async fn objects_land_at_their_keys_and_a_rewrite_replaces_the_object() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = FileAlertSink::new(dir.path());
        let t = tid(1);
        sink.write_batch(&batch(&t, 7, 0), &[record(&t, "a1", json!({"v": 1}))])
            .await
            .expect("write");
        let path = dir.path().join(format!(
            "alerts/tenant={t}/date=2026-03-01/graph-0000000007-00000.ndjson.gz"
        ));
        assert!(path.is_file());
        let again = [
            record(&t, "a1", json!({"v": 2})),
            record(&t, "a2", json!({})),
        ];
        sink.write_batch(&batch(&t, 7, 0), &again)
            .await
            .expect("rewrite");
        assert_eq!(sink.records(Some(&t)).expect("records"), again);
    }

    #[tokio::test]
    async fn an_attempts_contents_are_exactly_its_own_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = FileAlertSink::new(dir.path());
        let (t, other) = (tid(1), tid(2));
        let kept_before = record(&t, "v6", json!({}));
        let kept_other = record(&other, "o7", json!({}));
        write_one(&sink, &batch(&t, 6, 0), &kept_before).await;
        for seq in 0..3 {
            let r = record(&t, &format!("v7-{seq}"), json!({}));
            write_one(&sink, &batch(&t, 7, seq), &r).await;
        }
        write_one(&sink, &batch(&other, 7, 0), &kept_other).await;
        let mut mde = batch(&t, 7, 0);
        mde.api = AlertApi::Mde;
        write_one(&sink, &mde, &record(&t, "m7", json!({}))).await;
        let day = dir
            .path()
            .join(format!("alerts/tenant={t}/date=2026-03-01"));
        fs::write(
            day.join(".graph-0000000007-00003.ndjson.gz.crashed.tmp"),
            b"x",
        )
        .expect("tmp");

        let got = sink
            .attempt_contents(&t, AlertApi::Graph, "2026-03-01", 7)
            .await
            .expect("contents");
        assert_eq!(
            got.next_seq, 3,
            "a retry numbers its objects after the earlier ones"
        );
        let mut keys: Vec<String> = got.delivered.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        let want: Vec<String> = (0..3)
            .map(|seq| record(&t, &format!("v7-{seq}"), json!({})).dedup_key)
            .collect();
        assert_eq!(keys, want);
        let none = sink
            .attempt_contents(&t, AlertApi::Graph, "2026-02-28", 7)
            .await
            .expect("an attempt with no objects");
        assert_eq!(none, AttemptContents::default());
        assert_eq!(
            sink.records(None).expect("all").len(),
            6,
            "nothing is deleted"
        );
        assert_eq!(sink.records(Some(&other)).expect("other"), [kept_other]);
    }

    /// Writes `r` alone as batch `b`.
    async fn write_one(sink: &FileAlertSink, b: &BatchId, r: &AlertRecord) {
        sink.write_batch(b, std::slice::from_ref(r))
            .await
            .expect("a batch of one");
    }

    #[tokio::test]
    async fn an_attempt_date_that_is_not_a_date_never_becomes_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = FileAlertSink::new(dir.path());
        let mut b = batch(&tid(1), 1, 0);
        b.date = "../../etc".into();
        assert!(matches!(
            sink.write_batch(&b, &[]).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            sink.attempt_contents(&tid(1), AlertApi::Graph, "2026-3-1", 1)
                .await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(sink.records(None).expect("records").is_empty());
    }
}
