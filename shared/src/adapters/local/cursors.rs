//! Fetch cursors with their leases on local files: `{data}/cursors/{tid}/{api}.json`.
//!
//! Reads and read-check-writes hold the lock `{data}/cursors/{tid}/.lock`, so leases and
//! conditional commits are atomic across tasks and processes.

use std::fs;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::registry::tenant_file;
use super::{locked, read_json, removed, write_json};
use crate::domain::{AlertApi, Tenant, TenantId};
use crate::ports::{Cursor, CursorStore, Lease, LeaseError, StoreError, TenantState};

/// Cursors under `{data}/cursors/`, one JSON file per (tenant, API).

#[derive(Debug, Clone)]
pub struct FileCursorStore {
    data_dir: PathBuf,
    dir: PathBuf,
}

impl FileCursorStore {
    /// A store under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        FileCursorStore {
            data_dir: data_dir.to_path_buf(),
            dir: data_dir.join("cursors"),
        }
    }

    /// The tenant's directory, which holds its cursors and their lock. (TenantId is a validated
    /// GUID, so it is a safe file name.)
    fn tenant_dir(&self, tenant: &TenantId) -> PathBuf {
        self.dir.join(tenant.as_str())
    }

    /// Stores what `merge` makes of the stored cursor and `next`. A cursor that is gone
    /// (offboarded mid-fetch) is a conflict: there is no lease to write under.
    async fn replace(
        &self,
        next: &Cursor,
        merge: impl FnOnce(Cursor, &Cursor) -> Result<Cursor, StoreError> + Send + 'static,
    ) -> Result<Cursor, StoreError> {
        let next = next.clone();
        locked(self.tenant_dir(&next.tenant_id), move |dir| {
            let path = cursor_path(dir, next.api);
            let current: Cursor = read_json(&path)?.ok_or(StoreError::Conflict)?;
            let stored = merge(current, &next)?;
            write_json(&path, &stored, false)?;
            Ok(stored)
        })
        .await
    }
}

fn cursor_path(tenant_dir: &Path, api: AlertApi) -> PathBuf {
    tenant_dir.join(format!("{api}.json"))
}

/// Whether `lease` still excludes everyone but its owner at `now`: a lease is live strictly
/// before its expiry (the DynamoDB adapter uses the same bound).
fn is_live(lease: &Lease, now: DateTime<Utc>) -> bool {
    lease.expires_at > now
}

/// The lease transition of [`CursorStore::acquire`] on a loaded (or new) cursor.
fn take_lease(
    mut cursor: Cursor,
    owner: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Cursor, LeaseError> {
    if let Some(lease) = &cursor.lease {
        if lease.owner != owner && is_live(lease, now) {
            return Err(LeaseError::Held {
                until: lease.expires_at,
            });
        }
        if lease.owner != owner {
            tracing::info!(
                tenant_id = %cursor.tenant_id,
                api = %cursor.api,
                previous_owner = %lease.owner,
                owner,
                "taking over an expired fetch lease"
            );
        }
    }
    cursor.lease = Some(Lease {
        owner: owner.to_string(),
        expires_at: now + ttl,
    });
    if cursor.attempt_date.is_none() {
        cursor.attempt_date = Some(now.date_naive().to_string());
    }
    Ok(cursor)
}

/// The transition of [`CursorStore::advance`]: `next` on `current`, if nobody holds or left it.
fn advance_onto(current: Cursor, next: &Cursor, now: DateTime<Utc>) -> Result<Cursor, StoreError> {
    let held = current.lease.as_ref().is_some_and(|l| is_live(l, now));
    if current.version != next.version || held || current.attempt_date.is_some() {
        return Err(StoreError::Conflict);
    }
    Ok(Cursor {
        watermark: next.watermark,
        delivered: next.delivered.clone(),
        checked_at: next.checked_at,
        version: current.version + 1,
        ..current
    })
}

/// The transition of [`CursorStore::commit`]: `next`'s progress on `current`, if `owner` may.
fn commit_onto(
    current: Cursor,
    next: &Cursor,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Cursor, StoreError> {
    let holds = current
        .lease
        .as_ref()
        .is_some_and(|l| l.owner == owner && is_live(l, now));
    let keeps_own = next.lease.as_ref().is_none_or(|l| l.owner == owner);
    if current.version != next.version || !holds || !keeps_own {
        return Err(StoreError::Conflict);
    }
    Ok(Cursor {
        version: current.version + 1,
        tenant_id: current.tenant_id,
        api: current.api,
        ..next.clone()
    })
}

#[async_trait]
impl CursorStore for FileCursorStore {
    async fn get(&self, tenant: &TenantId, api: AlertApi) -> Result<Option<Cursor>, StoreError> {
        locked(self.tenant_dir(tenant), move |dir| {
            read_json(&cursor_path(dir, api))
        })
        .await
    }

    async fn state(&self, tenant: &TenantId) -> Result<TenantState, StoreError> {
        // Both files are replaced whole, by rename: a read without the locks sees one version.
        let tenant_file = tenant_file(&self.data_dir, tenant);
        let tenant_dir = self.tenant_dir(tenant);
        tokio::task::spawn_blocking(move || {
            let tenant: Option<Tenant> = read_json(&tenant_file)?;
            let cursor = match &tenant {
                Some(t) => read_json(&cursor_path(&tenant_dir, t.alert_api))?,
                None => None,
            };
            Ok(TenantState { tenant, cursor })
        })
        .await
        .map_err(|e| StoreError::unavailable("a storage task", e))?
    }

    async fn advance(&self, next: &Cursor, now: DateTime<Utc>) -> Result<Cursor, StoreError> {
        self.replace(next, move |current, next| advance_onto(current, next, now))
            .await
    }

    async fn acquire(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        owner: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Cursor, LeaseError> {
        let (tenant, owner) = (tenant.clone(), owner.to_string());
        locked(self.tenant_dir(&tenant), move |dir| {
            let path = cursor_path(dir, api);
            let current = read_json(&path)?.unwrap_or_else(|| Cursor::new(tenant, api));
            let cursor = match take_lease(current, &owner, now, ttl) {
                Ok(c) => c,
                Err(held) => return Ok(Err(held)),
            };
            write_json(&path, &cursor, false)?;
            Ok(Ok(cursor))
        })
        .await?
    }

    async fn commit(
        &self,
        next: &Cursor,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Cursor, StoreError> {
        let owner = owner.to_string();
        self.replace(next, move |current, next| {
            commit_onto(current, next, &owner, now)
        })
        .await
    }

    async fn release(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        owner: &str,
    ) -> Result<(), StoreError> {
        let owner = owner.to_string();
        locked(self.tenant_dir(tenant), move |dir| {
            let path = cursor_path(dir, api);
            let Some(mut cursor) = read_json::<Cursor>(&path)? else {
                return Ok(());
            };
            if cursor.lease.as_ref().is_some_and(|l| l.owner == owner) {
                cursor.lease = None;
                write_json(&path, &cursor, false)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError> {
        // The directory and its lock file stay: removing the lock another process may be
        // waiting on would let two processes hold "the" lock at once.
        locked(self.tenant_dir(tenant), |dir| {
            for api in AlertApi::ALL {
                removed(fs::remove_file(cursor_path(dir, api)), "deleting a cursor")?;
            }
            Ok(())
        })
        .await
    }
}
