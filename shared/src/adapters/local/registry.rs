//! The tenant registry and the used consent nonces on local files.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{locked, read_json, write_json};
use crate::domain::{Tenant, TenantId};
use crate::ports::{ConsentNonces, StoreError, TenantRegistry};

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

/// The file of tenant `id`'s record under `data_dir` (read without the registry's lock by the
/// cursor store: records are replaced whole, by rename).
pub(crate) fn tenant_file(data_dir: &Path, id: &TenantId) -> PathBuf {
    tenant_path(&data_dir.join("registry").join("tenants"), id)
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
