//! Secrets on local files, mode 0600: the tenants' tokens and the app's credentials.

use std::fs;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{locked, read_json, removed, write_json};
use crate::domain::{TenantId, TenantTokens};
use crate::ports::{AppCredentials, AppSecrets, StoreError, TokenStore};

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
        locked(self.dir.clone(), move |_| {
            removed(fs::remove_file(&path), "deleting tokens")
        })
        .await
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
    use chrono::Utc;

    use super::*;
    use crate::domain::AuthModel;

    fn tid() -> TenantId {
        TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid")
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
}
