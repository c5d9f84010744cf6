//! The delivery index on local files: `{data}/index/{tid}/{api}/{YYYY-MM-DD}.bin`, each an
//! append-only run of 8-byte little-endian digests. Appends hold the tenant's index lock; a crash
//! mid-append leaves at most a partial last digest, which reads ignore and the next append cuts
//! off (the commit that wrote it is retried, and adding is idempotent: a day reads back as a set).

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::NaiveDate;

use super::{locked, removed};
use crate::domain::{AlertApi, TenantId};
use crate::ports::{DeliveryIndex, StoreError};

/// The index under `{data}/index/`.
#[derive(Debug, Clone)]
pub struct FileDeliveryIndex {
    dir: PathBuf,
}

impl FileDeliveryIndex {
    /// An index under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        FileDeliveryIndex {
            dir: data_dir.join("index"),
        }
    }

    /// The tenant's directory (a validated GUID is a safe file name).
    fn tenant_dir(&self, tenant: &TenantId) -> PathBuf {
        self.dir.join(tenant.as_str())
    }
}

fn day_path(tenant_dir: &Path, api: AlertApi, day: NaiveDate) -> PathBuf {
    tenant_dir.join(api.as_str()).join(format!("{day}.bin"))
}

fn append(path: &Path, digests: &[u64]) -> Result<(), StoreError> {
    let unavailable = |e| StoreError::unavailable("writing the delivery index", e);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(unavailable)?;
    }
    let bytes: Vec<u8> = digests.iter().flat_map(|d| d.to_le_bytes()).collect();
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(unavailable)?;
    // A crash mid-append may have left a partial digest: cut it, so digests stay aligned.
    let len = f.metadata().map_err(unavailable)?.len();
    let whole = len - len % 8;
    if whole != len {
        f.set_len(whole).map_err(unavailable)?;
    }
    f.seek(SeekFrom::Start(whole)).map_err(unavailable)?;
    f.write_all(&bytes).map_err(unavailable)?;
    f.sync_data().map_err(unavailable)
}

fn read_day(path: &Path, into: &mut HashSet<u64>) -> Result<(), StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::unavailable("reading the delivery index", e)),
    };
    for chunk in bytes.chunks_exact(8) {
        let mut d = [0u8; 8];
        d.copy_from_slice(chunk);
        into.insert(u64::from_le_bytes(d));
    }
    Ok(())
}

#[async_trait]
impl DeliveryIndex for FileDeliveryIndex {
    async fn add(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        days: &[(NaiveDate, Vec<u64>)],
    ) -> Result<(), StoreError> {
        let days = days.to_vec();
        locked(self.tenant_dir(tenant), move |dir| {
            for (day, digests) in days.iter().filter(|(_, d)| !d.is_empty()) {
                append(&day_path(dir, api, *day), digests)?;
            }
            Ok(())
        })
        .await
    }

    async fn days(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<HashSet<u64>, StoreError> {
        locked(self.tenant_dir(tenant), move |dir| {
            let mut out = HashSet::new();
            let mut day = from;
            while day <= to {
                read_day(&day_path(dir, api, day), &mut out)?;
                day = day.succ_opt().unwrap_or(NaiveDate::MAX);
                if day == NaiveDate::MAX {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError> {
        // The tenant directory and its lock stay (see the cursor store); the days go.
        locked(self.tenant_dir(tenant), |dir| {
            for api in AlertApi::ALL {
                removed(
                    fs::remove_dir_all(dir.join(api.as_str())),
                    "deleting the index",
                )?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).expect("date")
    }

    /// The contract every delivery index keeps is tested for this one with the others (tests
    /// crate, `fetch_adapters`); what is left here is the file format's own.
    #[tokio::test]
    async fn a_partial_digest_left_by_a_crash_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = FileDeliveryIndex::new(dir.path());
        let t = TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid");
        index
            .add(&t, AlertApi::Graph, &[(day(3), vec![3])])
            .await
            .expect("add");
        // A crash mid-append leaves a partial digest: it is ignored.
        let path = day_path(&index.tenant_dir(&t), AlertApi::Graph, day(3));
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(&[7, 7, 7]).expect("partial");
        let day3 = index
            .days(&t, AlertApi::Graph, day(3), day(3))
            .await
            .expect("day 3");
        assert_eq!(day3, HashSet::from([3]));
        index
            .add(&t, AlertApi::Graph, &[(day(3), vec![5])])
            .await
            .expect("append after a partial digest");
        let day3 = index
            .days(&t, AlertApi::Graph, day(3), day(3))
            .await
            .expect("day 3");
        assert_eq!(day3, HashSet::from([3, 5]));
    }
}
