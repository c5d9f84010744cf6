//! The embedded default: every port backed by files under one data directory.
//!
//! ```text
//! {data}/secrets/app.json                 app credentials (mode 0600)          secrets.rs
//! {data}/secrets/tenants/{tid}.json       one tenant's tokens (mode 0600)      secrets.rs
//! {data}/registry/tenants/{tid}.json      tenant records (no secrets)          registry.rs
//! {data}/registry/nonces/{nonce}.json     used consent nonces, until expiry    registry.rs
//! {data}/cursors/{tid}/{api}.json         one fetch cursor with its lease      cursors.rs
//! {data}/index/{tid}/{api}/{day}.bin      digests delivered per version day    index.rs
//! {data}/alerts/tenant={tid}/date={d}/…   alert objects (NDJSON.gz)            sink.rs
//! ```
//!
//! Every write goes to a temporary file in the same directory, is flushed to disk, then renamed
//! over the target, so a reader or a crash never sees half a record. Read-check-write sequences
//! (the registry's optimistic concurrency, leases, cursor commits) hold an exclusive lock on
//! `{dir}/.lock`, which also serializes separate processes (the `mssp` CLI beside `mssp serve`).

pub mod cursors;
pub mod index;
pub mod registry;
pub mod secrets;
pub mod sink;

pub use cursors::FileCursorStore;
pub use index::FileDeliveryIndex;
pub use registry::{FileConsentNonces, FileTenantRegistry};
pub use secrets::{FileAppSecrets, FileTokenStore};
pub use sink::FileAlertSink;

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ports::StoreError;

/// Writes `bytes` to `path` atomically (temp file, fsync, rename); `secret` files get mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "path has no parent"))?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("record"),
        uuid::Uuid::new_v4().simple()
    ));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The result of a removal (`fs::remove_file`, `fs::remove_dir_all`): what was already gone is
/// removed too.
pub(crate) fn removed(r: std::io::Result<()>, what: &'static str) -> Result<(), StoreError> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::unavailable(what, e)),
    }
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                what: path.display().to_string(),
                source: Box::new(e),
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::unavailable("reading a record", e)),
    }
}

pub(crate) fn write_json<T: Serialize>(
    path: &Path,
    value: &T,
    secret: bool,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Corrupt {
        what: path.display().to_string(),
        source: Box::new(e),
    })?;
    write_atomic(path, &bytes, secret).map_err(|e| StoreError::unavailable("writing a record", e))
}

/// Runs `f` holding an exclusive lock on `{dir}/.lock`, on a blocking thread.
pub(crate) async fn locked<T: Send + 'static>(
    dir: PathBuf,
    f: impl FnOnce(&Path) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(move || {
        fs::create_dir_all(&dir).map_err(|e| StoreError::unavailable("creating a directory", e))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))
            .map_err(|e| StoreError::unavailable("opening a lock file", e))?;
        lock.lock()
            .map_err(|e| StoreError::unavailable("locking", e))?;
        let out = f(&dir);
        let _ = lock.unlock();
        out
    })
    .await
    .map_err(|e| StoreError::unavailable("a storage task", e))?
}
