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
        let next = next.clone();
        locked(self.tenant_dir(&next.tenant_id), move |dir| {
            let path = cursor_path(dir, next.api);
            let current: Cursor = read_json(&path)?.ok_or(StoreError::Conflict)?;
            let stored = advance_onto(current, &next, now)?;
            write_json(&path, &stored, false)?;
            Ok(stored)
        })
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
        let (next, owner) = (next.clone(), owner.to_string());
        locked(self.tenant_dir(&next.tenant_id), move |dir| {
            let path = cursor_path(dir, next.api);
            // A cursor that is gone (offboarded mid-fetch) has no lease to commit under.
            let current: Cursor = read_json(&path)?.ok_or(StoreError::Conflict)?;
            let stored = commit_onto(current, &next, &owner, now)?;
            write_json(&path, &stored, false)?;
            Ok(stored)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;

    fn tid(n: u32) -> TenantId {
        TenantId::parse(&format!("{n:08x}-1111-4111-8111-111111111111")).expect("tid")
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0)
            .single()
            .expect("valid time")
    }

    fn minutes(n: i64) -> Duration {
        Duration::minutes(n)
    }

    fn progressed(mut c: Cursor, key: &str) -> Cursor {
        c.attempt_date = None;
        c.watermark = Some(at(9, 0));
        c.delivered = BTreeMap::from([(key.to_string(), at(8, 59))]);
        c
    }

    #[tokio::test]
    async fn the_first_acquire_creates_the_cursor_with_todays_attempt_date() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCursorStore::new(dir.path());
        assert!(
            store
                .get(&tid(1), AlertApi::Graph)
                .await
                .expect("get")
                .is_none()
        );
        let c = store
            .acquire(&tid(1), AlertApi::Graph, "run-a", at(23, 59), minutes(5))
            .await
            .expect("acquired");
        assert_eq!(c.version, 0);
        assert_eq!(c.watermark, None);
        assert_eq!(c.attempt_date.as_deref(), Some("2026-03-01"));
        assert_eq!(
            c.lease,
            Some(Lease {
                owner: "run-a".into(),
                expires_at: at(23, 59) + minutes(5)
            })
        );
        assert!(
            dir.path()
                .join(format!("cursors/{}/graph.json", tid(1)))
                .is_file()
        );
        assert_eq!(
            store.get(&tid(1), AlertApi::Graph).await.expect("get"),
            Some(c)
        );
    }

    #[tokio::test]
    async fn a_live_lease_of_another_owner_is_held_and_an_expired_one_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCursorStore::new(dir.path());
        store
            .acquire(&tid(1), AlertApi::Mde, "run-a", at(9, 0), minutes(5))
            .await
            .expect("a takes it");
        let held = store
            .acquire(&tid(1), AlertApi::Mde, "run-b", at(9, 4), minutes(5))
            .await
            .expect_err("b is refused");
        assert!(matches!(held, LeaseError::Held { until } if until == at(9, 5)));
        let again = store
            .acquire(&tid(1), AlertApi::Mde, "run-a", at(9, 4), minutes(5))
            .await
            .expect("its owner renews it");
        assert_eq!(again.lease.map(|l| l.expires_at), Some(at(9, 9)));
        let b = store
            .acquire(&tid(1), AlertApi::Mde, "run-b", at(9, 9), minutes(5))
            .await
            .expect("b takes the expired lease");
        assert_eq!(b.lease.map(|l| l.owner).as_deref(), Some("run-b"));
        store
            .acquire(&tid(1), AlertApi::Graph, "run-c", at(9, 9), minutes(5))
            .await
            .expect("another API of the tenant has its own lease");
    }

    #[tokio::test]
    async fn a_commit_after_losing_the_lease_conflicts_and_the_new_owner_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCursorStore::new(dir.path());
        let a = store
            .acquire(&tid(1), AlertApi::Graph, "run-a", at(9, 0), minutes(5))
            .await
            .expect("a");
        assert!(
            matches!(
                store
                    .commit(&progressed(a.clone(), "k-a"), "run-a", at(9, 5))
                    .await,
                Err(StoreError::Conflict)
            ),
            "a lease is dead at its expiry"
        );
        let b = store
            .acquire(&tid(1), AlertApi::Graph, "run-b", at(9, 6), minutes(5))
            .await
            .expect("b");
        assert_eq!(b.attempt_date, a.attempt_date, "b retries a's attempt");
        assert!(matches!(
            store.commit(&progressed(a, "k-a"), "run-a", at(9, 7)).await,
            Err(StoreError::Conflict)
        ));
        let stored = store
            .commit(&progressed(b, "k-b"), "run-b", at(9, 7))
            .await
            .expect("b commits");
        assert_eq!(stored.version, 1);
        assert_eq!(
            stored.lease.as_ref().map(|l| l.owner.as_str()),
            Some("run-b")
        );
        assert!(stored.delivered.contains_key("k-b"));
        assert_eq!(
            store.get(&tid(1), AlertApi::Graph).await.expect("get"),
            Some(stored)
        );
    }

    #[tokio::test]
    async fn a_commit_from_a_stale_version_conflicts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCursorStore::new(dir.path());
        let c = store
            .acquire(&tid(1), AlertApi::Graph, "run-a", at(9, 0), minutes(5))
            .await
            .expect("a");
        let first = store
            .commit(&progressed(c.clone(), "k1"), "run-a", at(9, 1))
            .await
            .expect("first commit");
        assert!(matches!(
            store.commit(&progressed(c, "k2"), "run-a", at(9, 2)).await,
            Err(StoreError::Conflict)
        ));
        let second = store
            .commit(&progressed(first, "k2"), "run-a", at(9, 2))
            .await
            .expect("from the stored version");
        assert_eq!(second.version, 2);
        assert!(
            matches!(
                store
                    .commit(&Cursor::new(tid(2), AlertApi::Graph), "run-a", at(9, 2))
                    .await,
                Err(StoreError::Conflict)
            ),
            "no cursor, no lease"
        );
    }

    #[tokio::test]
    async fn the_attempt_date_is_set_once_and_cleared_by_a_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCursorStore::new(dir.path());
        let day1 = at(23, 58);
        store
            .acquire(&tid(1), AlertApi::Siem, "run-a", day1, minutes(5))
            .await
            .expect("a");
        let next_day = day1 + minutes(10);
        let retried = store
            .acquire(&tid(1), AlertApi::Siem, "run-b", next_day, minutes(5))
            .await
            .expect("b after expiry");
        assert_eq!(retried.attempt_date.as_deref(), Some("2026-03-01"));
        let committed = store
            .commit(&progressed(retried, "k"), "run-b", next_day)
            .await
            .expect("commit");
        assert_eq!(committed.attempt_date, None);
        let next = store
            .acquire(&tid(1), AlertApi::Siem, "run-b", next_day, minutes(5))
            .await
            .expect("next attempt");
        assert_eq!(next.attempt_date.as_deref(), Some("2026-03-02"));
    }

    #[tokio::test]
    async fn release_frees_only_the_owners_lease_and_delete_removes_every_cursor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCursorStore::new(dir.path());
        for api in AlertApi::ALL {
            store
                .acquire(&tid(1), api, "run-a", at(9, 0), minutes(5))
                .await
                .expect("a");
        }
        store
            .release(&tid(1), AlertApi::Graph, "run-b")
            .await
            .expect("not b's: nothing happens");
        assert!(
            store
                .get(&tid(1), AlertApi::Graph)
                .await
                .expect("get")
                .and_then(|c| c.lease)
                .is_some()
        );
        store
            .release(&tid(1), AlertApi::Graph, "run-a")
            .await
            .expect("release");
        store
            .acquire(&tid(1), AlertApi::Graph, "run-b", at(9, 1), minutes(5))
            .await
            .expect("free after release");
        store
            .release(&tid(9), AlertApi::Graph, "run-a")
            .await
            .expect("releasing nothing is fine");
        store.delete(&tid(1)).await.expect("delete");
        for api in AlertApi::ALL {
            assert!(store.get(&tid(1), api).await.expect("get").is_none());
        }
        store
            .delete(&tid(1))
            .await
            .expect("deleting nothing is fine");
    }
}
