//! The embedded default: every port backed by files under one data directory.
//!
//! ```text
//! {data}/secrets/app.json                 app credentials (mode 0600)
//! {data}/secrets/tenants/{tid}.json       one tenant's tokens (mode 0600)
//! {data}/registry/tenants/{tid}.json      tenant records (no secrets)
//! {data}/registry/nonces/{nonce}.json     used consent nonces, until their expiry
//! ```
//!
//! Every write goes to a temporary file in the same directory, is flushed to disk, then renamed
//! over the target, so a reader or a crash never sees half a record. Read-check-write sequences
//! (the registry's optimistic concurrency) hold an exclusive lock on `{dir}/.lock`, which also
//! serializes separate processes (the `mssp` CLI beside `mssp serve`).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::{Tenant, TenantId, TenantTokens};
use crate::ports::{
    AppCredentials, AppSecrets, ConsentNonces, StoreError, TenantRegistry, TokenStore,
};

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

/// Tokens under `{data}/secrets/tenants/`, one 0600 file per tenant.
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    dir: PathBuf,
}

impl FileTokenStore {
    /// A store under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        FileTokenStore {
            dir: data_dir.join("secrets").join("tenants"),
        }
    }

    fn path(&self, t: &TenantId) -> PathBuf {
        // TenantId is a validated GUID, so it is a safe file name.
        self.dir.join(format!("{t}.json"))
    }
}

#[async_trait]
impl TokenStore for FileTokenStore {
    async fn get(&self, tenant: &TenantId) -> Result<Option<TenantTokens>, StoreError> {
        let path = self.path(tenant);
        locked(self.dir.clone(), move |_| read_json(&path)).await
    }

    async fn put(&self, tokens: &TenantTokens) -> Result<(), StoreError> {
        let path = self.path(&tokens.tenant_id);
        let tokens = tokens.clone();
        locked(self.dir.clone(), move |_| write_json(&path, &tokens, true)).await
    }

    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let path = self.path(tenant);
        locked(self.dir.clone(), move |_| match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::unavailable("deleting tokens", e)),
        })
        .await
    }
}

/// Tenant records under `{data}/registry/tenants/`.
#[derive(Debug, Clone)]
pub struct FileTenantRegistry {
    dir: PathBuf,
}

impl FileTenantRegistry {
    /// A registry under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        FileTenantRegistry {
            dir: data_dir.join("registry").join("tenants"),
        }
    }
}

fn tenant_path(dir: &Path, id: &TenantId) -> PathBuf {
    dir.join(format!("{id}.json"))
}

#[async_trait]
impl TenantRegistry for FileTenantRegistry {
    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let id = id.clone();
        locked(self.dir.clone(), move |dir| {
            read_json(&tenant_path(dir, &id))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Tenant>, StoreError> {
        locked(self.dir.clone(), |dir| {
            let mut out = Vec::new();
            let entries =
                fs::read_dir(dir).map_err(|e| StoreError::unavailable("listing tenants", e))?;
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::unavailable("listing tenants", e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') || !name.ends_with(".json") {
                    continue;
                }
                if let Some(t) = read_json::<Tenant>(&entry.path())? {
                    out.push(t);
                }
            }
            out.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(out)
        })
        .await
    }

    async fn create(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let tenant = tenant.clone();
        locked(self.dir.clone(), move |dir| {
            let path = tenant_path(dir, &tenant.id);
            if path.exists() {
                return Err(StoreError::Conflict);
            }
            write_json(&path, &tenant, false)
        })
        .await
    }

    async fn update(&self, tenant: &Tenant) -> Result<Tenant, StoreError> {
        let mut tenant = tenant.clone();
        locked(self.dir.clone(), move |dir| {
            let path = tenant_path(dir, &tenant.id);
            let current: Tenant = read_json(&path)?.ok_or(StoreError::NotFound)?;
            if current.version != tenant.version {
                return Err(StoreError::Conflict);
            }
            tenant.version += 1;
            write_json(&path, &tenant, false)?;
            Ok(tenant)
        })
        .await
    }
}

/// Used consent nonces under `{data}/registry/nonces/`, created exclusively (`O_EXCL`).
#[derive(Debug, Clone)]
pub struct FileConsentNonces {
    dir: PathBuf,
}

impl FileConsentNonces {
    /// Nonces under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        FileConsentNonces {
            dir: data_dir.join("registry").join("nonces"),
        }
    }
}

#[async_trait]
impl ConsentNonces for FileConsentNonces {
    async fn consume(
        &self,
        nonce: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Nonces we issue are base64url; anything else cannot be ours and must not become a path.
        if nonce.is_empty()
            || nonce.len() > 128
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Ok(false);
        }
        let nonce = nonce.to_string();
        locked(self.dir.clone(), move |dir| {
            prune_expired(dir, now);
            let path = dir.join(format!("{nonce}.json"));
            let record = serde_json::json!({ "expires_at": expires_at });
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(record.to_string().as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| StoreError::unavailable("recording a nonce", e))?;
                    Ok(true)
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(StoreError::unavailable("recording a nonce", e)),
            }
        })
        .await
    }
}

/// Removes nonce records whose state has expired (the TTL of the DynamoDB adapter).
fn prune_expired(dir: &Path, now: DateTime<Utc>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let expired = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("expires_at")?.as_str().map(str::to_string))
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .is_some_and(|t| t < now);
        if expired {
            let _ = fs::remove_file(path);
        }
    }
}

/// App credentials from `{data}/secrets/app.json` (written by `mssp init` or the operator).
#[derive(Debug, Clone)]
pub struct FileAppSecrets {
    path: PathBuf,
}

impl FileAppSecrets {
    /// Credentials under `data_dir` (`{data}/secrets/app.json`).
    pub fn new(data_dir: &Path) -> Self {
        Self::at(&Self::default_path(data_dir))
    }

    /// Credentials in the file at `path` (the operator chose where they live).
    pub fn at(path: &Path) -> Self {
        FileAppSecrets {
            path: path.to_path_buf(),
        }
    }

    /// `{data}/secrets/app.json`: where the credentials live unless configured otherwise.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join("secrets").join("app.json")
    }

    /// The file the credentials are read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the credentials (mode 0600).
    pub fn write(&self, creds: &AppCredentials) -> Result<(), StoreError> {
        write_json(&self.path, creds, true)
    }
}

#[async_trait]
impl AppSecrets for FileAppSecrets {
    async fn app_credentials(&self) -> Result<AppCredentials, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read_json::<AppCredentials>(&path))
            .await
            .map_err(|e| StoreError::unavailable("a storage task", e))??
            .ok_or(StoreError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cloud;
    use crate::domain::{AlertApi, AuthModel};

    fn tid() -> TenantId {
        TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid")
    }

    fn tenant() -> Tenant {
        Tenant::pending(
            tid(),
            "Contoso".into(),
            AuthModel::Application,
            AlertApi::Graph,
            Cloud::Commercial,
            Utc::now(),
        )
    }

    #[tokio::test]
    async fn the_registry_refuses_a_stale_update_and_a_duplicate_create() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = FileTenantRegistry::new(dir.path());
        let t = tenant();
        reg.create(&t).await.expect("created");
        assert!(matches!(reg.create(&t).await, Err(StoreError::Conflict)));
        let mut a = reg.get(&t.id).await.expect("get").expect("exists");
        a.display_name = "Contoso Ltd".into();
        let stored = reg.update(&a).await.expect("first update wins");
        assert_eq!(stored.version, 1);
        assert!(matches!(reg.update(&a).await, Err(StoreError::Conflict)));
        assert_eq!(reg.list().await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn token_files_are_private_and_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileTokenStore::new(dir.path());
        let tokens = TenantTokens {
            tenant_id: tid(),
            auth_model: AuthModel::DelegatedV1,
            resource: "https://graph.windows.net".into(),
            refresh_token: Some(crate::secret::RefreshToken::new("rt-1".into())),
            access_token: None,
            expires_at: None,
            refresh_token_obtained_at: None,
            obtained_at: Utc::now(),
            rotated_at: None,
        };
        store.put(&tokens).await.expect("put");
        let path = dir
            .path()
            .join("secrets/tenants/11111111-1111-4111-8111-111111111111.json");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = store.get(&tid()).await.expect("get").expect("some");
        assert_eq!(
            back.refresh_token.map(|r| r.into_exposed()),
            Some("rt-1".to_string())
        );
        store.delete(&tid()).await.expect("delete");
        store
            .delete(&tid())
            .await
            .expect("deleting nothing is fine");
        assert!(store.get(&tid()).await.expect("get").is_none());
    }

    #[tokio::test]
    async fn a_nonce_is_consumed_once_and_hostile_nonces_never_touch_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = FileConsentNonces::new(dir.path());
        let exp = Utc::now() + chrono::Duration::minutes(5);
        assert!(
            n.consume("abc_DEF-1", Utc::now(), exp)
                .await
                .expect("first")
        );
        assert!(
            !n.consume("abc_DEF-1", Utc::now(), exp)
                .await
                .expect("replay")
        );
        assert!(
            !n.consume("../../etc/passwd", Utc::now(), exp)
                .await
                .expect("hostile")
        );
        assert!(!n.consume("", Utc::now(), exp).await.expect("empty"));
    }
}
