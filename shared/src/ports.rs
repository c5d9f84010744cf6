//! Ports: the narrow storage traits the flows need, in the product's own types. Each has a local
//! adapter (files under one data directory, the embedded default) and an AWS adapter (Secrets
//! Manager, DynamoDB); flows are tested through the local ones, adapters at their wire boundary.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{Tenant, TenantId, TenantTokens};
use crate::microsoft::alerts::{Position, Window};
use crate::record::AlertRecord;
use crate::secret::{ClientSecret, SigningKey};

/// Why a store call failed, shaped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: someone else wrote first (retry with fresh data, or give up).
    #[error("the record was changed by someone else")]
    Conflict,
    /// The record to change does not exist.
    #[error("no such record")]
    NotFound,
    /// The store could not be reached or refused for now (retry later).
    #[error("the store is unavailable: {what}")]
    Unavailable {
        /// Which operation.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The stored data cannot be read (a bug or a hand edit).
    #[error("stored data is not valid: {what}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The parse error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps an I/O or SDK error as [`StoreError::Unavailable`].
    pub fn unavailable(
        what: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable {
            what,
            source: Box::new(e),
        }
    }
}

/// Tokens per tenant: one secret each (DESIGN §5).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The tenant's tokens, if any are stored.
    async fn get(&self, tenant: &TenantId) -> Result<Option<TenantTokens>, StoreError>;
    /// Creates or replaces the tenant's tokens.
    async fn put(&self, tokens: &TenantTokens) -> Result<(), StoreError>;
    /// Deletes the tenant's tokens (offboarding); deleting nothing is fine.
    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError>;
}

/// The tenant registry: tenant records without secrets, written with optimistic concurrency.
#[async_trait]
pub trait TenantRegistry: Send + Sync {
    /// One tenant.
    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;
    /// Every tenant, in id order.
    async fn list(&self) -> Result<Vec<Tenant>, StoreError>;
    /// The active tenants (what a scheduled round works on), in id order; where the store
    /// keeps an index by status it reads only that, not every item.
    async fn list_active(&self) -> Result<Vec<Tenant>, StoreError> {
        let all = self.list().await?;
        let active = crate::domain::TenantStatus::Active;
        Ok(all.into_iter().filter(|t| t.status == active).collect())
    }
    /// Adds a tenant; [`StoreError::Conflict`] when it exists.
    async fn create(&self, tenant: &Tenant) -> Result<(), StoreError>;
    /// Writes `tenant` if the stored version is still `tenant.version`, and returns the stored
    /// record (its version bumped); [`StoreError::Conflict`] otherwise.
    async fn update(&self, tenant: &Tenant) -> Result<Tenant, StoreError>;
}

/// Single-use consent nonces.
#[async_trait]
pub trait ConsentNonces: Send + Sync {
    /// Records `nonce` as used, unless it already was: `Ok(true)` the first time, `Ok(false)`
    /// on a replay. The record may be forgotten once `expires_at` has passed (the state is dead
    /// by then); `now` is the caller's clock.
    async fn consume(
        &self,
        nonce: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// The MSSP app registration's credentials (`{prefix}/app`, written by the operator).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AppCredentials {
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: ClientSecret,
    /// Key signing consent `state` (HMAC-SHA256), at least 32 bytes; base64 in JSON.
    #[serde(with = "base64_key")]
    pub state_key: SigningKey,
}

mod base64_key {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::secret::SigningKey;

    pub fn serialize<S: Serializer>(k: &SigningKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(k.expose_secret()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SigningKey, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| serde::de::Error::custom("state_key is not base64"))?;
        if bytes.len() < 32 {
            return Err(serde::de::Error::custom(
                "state_key must be at least 32 bytes",
            ));
        }
        Ok(SigningKey::new(bytes))
    }
}

/// Where the app credentials come from.
#[async_trait]
pub trait AppSecrets: Send + Sync {
    /// The current app credentials.
    async fn app_credentials(&self) -> Result<AppCredentials, StoreError>;
}

/// Where a tenant's alert fetching stands for one API (DESIGN §5 cursor).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// Tenant.
    pub tenant_id: TenantId,
    /// API.
    pub api: crate::domain::AlertApi,
    /// Every alert version updated before this instant has been delivered (exclusive bound of
    /// the last committed window); absent before the first commit.
    pub watermark: Option<DateTime<Utc>>,
    /// Dedup keys delivered whose version time is inside the overlap window below the
    /// watermark, with that time (so they can be pruned as the watermark moves on).
    pub delivered: std::collections::BTreeMap<String, DateTime<Utc>>,
    /// Bumped by every commit; object keys of a delivery attempt derive from it.
    pub version: u64,
    /// The fetcher holding the tenant now, if any.
    pub lease: Option<Lease>,
    /// The UTC date (`YYYY-MM-DD`) the current, uncommitted delivery attempt writes under, so a
    /// retried attempt replaces its own objects.
    pub attempt_date: Option<String>,
    /// A checkpoint inside a window: the pages delivered so far are committed (their keys are in
    /// `delivered`), and the next run continues the window here. The watermark stays below it.
    pub progress: Option<Progress>,
    /// Since when every version delivered under this cursor is in the [`DeliveryIndex`] (set by
    /// the first commit of this release: a cursor's older deliveries are not indexed).
    pub indexed_since: Option<DateTime<Utc>>,
    /// Where the regular fetch's coverage starts: every version updated since then was or will be
    /// delivered by it. A backfill delivers what lies before.
    pub covered_since: Option<DateTime<Utc>>,
    /// The reconciliation sweep in progress, if one is.
    pub sweep: Option<Job>,
    /// What the last finished sweep found.
    pub last_sweep: Option<JobSummary>,
    /// The backfill in progress, if one is.
    pub backfill: Option<Job>,
    /// What the last finished backfill delivered.
    pub last_backfill: Option<JobSummary>,
    /// When the regular fetch last found everything before `watermark` delivered (the run's
    /// start); a tenant with nothing new has it written at most every `idle_write`.
    pub checked_at: Option<DateTime<Utc>>,
}

/// A job over a past window — a reconciliation sweep or a backfill — that runs in slices under
/// the tenant's lease, between regular fetches, and resumes where the last slice stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Job {
    /// The whole window the job covers.
    pub window: Window,
    /// Every version of the window updated before this was checked (and delivered if missing).
    pub done_until: DateTime<Utc>,
    /// Inside the chunk being drained.
    pub progress: Option<Progress>,
    /// When the job started.
    pub started: DateTime<Utc>,
    /// Versions listed so far.
    pub checked: u64,
    /// Versions delivered so far (for a sweep: the late ones).
    pub delivered: u64,
    /// Requests sent so far.
    pub requests: u64,
}

/// What a finished job did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobSummary {
    /// The window it covered.
    pub window: Window,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// Versions listed.
    pub checked: u64,
    /// Versions delivered (for a sweep: the late ones).
    pub delivered: u64,
    /// Requests sent.
    pub requests: u64,
}

/// Where the drain of a window stands, as a checkpoint stores it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// The window being drained.
    pub window: Window,
    /// Where its next page starts.
    pub at: Position,
    /// Distinct alerts listed so far (the completeness check compares it with the count).
    pub listed: u64,
    /// Ids listed at a keyset boundary, which the next page lists again.
    #[serde(default)]
    pub boundary: Vec<String>,
}

impl Cursor {
    /// A cursor before any fetch.
    pub fn new(tenant_id: TenantId, api: crate::domain::AlertApi) -> Self {
        Cursor {
            tenant_id,
            api,
            watermark: None,
            delivered: Default::default(),
            version: 0,
            lease: None,
            attempt_date: None,
            progress: None,
            indexed_since: None,
            covered_since: None,
            sweep: None,
            last_sweep: None,
            backfill: None,
            last_backfill: None,
            checked_at: None,
        }
    }
}

/// A tenant's record and the cursor of the API it is read through, read together.
#[derive(Debug, Clone, Default)]
pub struct TenantState {
    /// The tenant record.
    pub tenant: Option<Tenant>,
    /// Its cursor.
    pub cursor: Option<Cursor>,
}

/// A per-tenant lease: one fetch per tenant at a time, scheduled or on demand.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// Who holds it (a fetch run id).
    pub owner: String,
    /// Until when.
    pub expires_at: DateTime<Utc>,
}

/// Why a lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Someone else holds it.
    #[error("another fetch holds the tenant until {until}")]
    Held {
        /// Their lease expiry.
        until: DateTime<Utc>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Cursors per (tenant, API), with leases; writes are conditional on version and lease.
#[async_trait]
pub trait CursorStore: Send + Sync {
    /// The cursor, if any.
    async fn get(
        &self,
        tenant: &TenantId,
        api: crate::domain::AlertApi,
    ) -> Result<Option<Cursor>, StoreError>;

    /// The tenant's record and the cursor of the API it is read through, in one read where the
    /// store can (the regular fetch reads nothing else of a tenant with nothing new).
    async fn state(&self, tenant: &TenantId) -> Result<TenantState, StoreError>;

    /// Writes `next` (watermark, delivered keys, `checked_at`) without a lease, for a run that
    /// found nothing new: only if the stored cursor is still at `next.version`, no lease is live
    /// at `now`, and no delivery attempt is pending (a run holding the tenant, or an interrupted
    /// one, must not have its version moved from under it). [`StoreError::Conflict`] otherwise.
    async fn advance(&self, next: &Cursor, now: DateTime<Utc>) -> Result<Cursor, StoreError>;

    /// Takes the lease for `owner` until `now + ttl` when it is free, expired or already
    /// `owner`'s, creating the cursor on first use; returns the cursor with the lease. When the
    /// cursor has no `attempt_date`, it is set to `now`'s UTC date.
    async fn acquire(
        &self,
        tenant: &TenantId,
        api: crate::domain::AlertApi,
        owner: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<Cursor, LeaseError>;

    /// Writes `next` — watermark, delivered keys, progress, `attempt_date`, and its `lease`
    /// (renewed, or `None` to release it with the commit) — if the stored cursor is still at
    /// `next.version` and `owner` holds an unexpired lease at `now`; returns the stored cursor with
    /// its version bumped. [`StoreError::Conflict`] when the lease was lost or another commit won.
    async fn commit(
        &self,
        next: &Cursor,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Cursor, StoreError>;

    /// Gives the lease up (if still `owner`'s).
    async fn release(
        &self,
        tenant: &TenantId,
        api: crate::domain::AlertApi,
        owner: &str,
    ) -> Result<(), StoreError>;

    /// Deletes the tenant's cursors (offboarding).
    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError>;
}

/// Identifies one object of a delivery attempt: deterministic for a cursor version, so a retried
/// delivery overwrites instead of adding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchId {
    /// Tenant.
    pub tenant_id: TenantId,
    /// API.
    pub api: crate::domain::AlertApi,
    /// The cursor version the attempt commits from.
    pub cursor_version: u64,
    /// The attempt's date (`YYYY-MM-DD`).
    pub date: String,
    /// Sequence number within the attempt, from 0.
    pub seq: u32,
}

impl BatchId {
    /// `alerts/tenant={id}/date={date}/{api}-{version:010}-{seq:05}.ndjson.gz`.
    pub fn key(&self) -> String {
        format!(
            "{}{:05}.ndjson.gz",
            Self::attempt_prefix(&self.tenant_id, self.api, &self.date, self.cursor_version),
            self.seq
        )
    }

    /// The common prefix of every object of one attempt.
    pub fn attempt_prefix(
        tenant: &TenantId,
        api: crate::domain::AlertApi,
        date: &str,
        cursor_version: u64,
    ) -> String {
        format!("alerts/tenant={tenant}/date={date}/{api}-{cursor_version:010}-")
    }
}

/// Where alert records go: NDJSON.gz objects (DESIGN §5).
#[async_trait]
pub trait AlertSink: Send + Sync {
    /// Writes `records` as the object `batch.key()`, replacing any object of that key.
    async fn write_batch(&self, batch: &BatchId, records: &[AlertRecord])
    -> Result<(), StoreError>;

    /// What an earlier, uncommitted attempt of this cursor version already delivered (objects
    /// under [`BatchId::attempt_prefix`]): a retry keeps those objects — the versions in them may
    /// no longer be visible in the API — skips their dedup keys, and numbers its own objects
    /// after them.
    async fn attempt_contents(
        &self,
        tenant: &TenantId,
        api: crate::domain::AlertApi,
        date: &str,
        cursor_version: u64,
    ) -> Result<AttemptContents, StoreError>;
}

/// What an uncommitted delivery attempt left in the sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptContents {
    /// The sequence number the next object of the attempt takes.
    pub next_seq: u32,
    /// Dedup keys already delivered, with their version time.
    pub delivered: Vec<(String, DateTime<Utc>)>,
}

/// What was delivered, per tenant, API and UTC day of the version's update time: a compact set
/// of 64-bit digests of dedup keys ([`crate::record::digest`]). The reconciliation sweep and
/// backfill look in it for what is missing; every delivery adds to it before its cursor commit.
#[async_trait]
pub trait DeliveryIndex: Send + Sync {
    /// Adds the digests of each day (idempotent: adding one twice keeps it once).
    async fn add(
        &self,
        tenant: &TenantId,
        api: crate::domain::AlertApi,
        days: &[(NaiveDate, Vec<u64>)],
    ) -> Result<(), StoreError>;

    /// The digests of every day from `from` to `to`, both included.
    async fn days(
        &self,
        tenant: &TenantId,
        api: crate::domain::AlertApi,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<std::collections::HashSet<u64>, StoreError>;

    /// Deletes the tenant's index (offboarding).
    async fn delete(&self, tenant: &TenantId) -> Result<(), StoreError>;
}

/// Where a scheduled dispatch puts one work item per active tenant (DESIGN §3: SQS in AWS).
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Enqueues each work item, to be delivered after its delay (at most 15 minutes); returns
    /// how many were accepted.
    async fn enqueue(&self, items: &[(WorkItem, std::time::Duration)])
    -> Result<usize, StoreError>;
}

/// The body of a work item: `{"tenant_id": "…"}`, and `"job"` when it is not the regular fetch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkItem {
    /// The tenant.
    pub tenant_id: TenantId,
    /// What to do for it.
    #[serde(default, skip_serializing_if = "WorkJob::is_fetch")]
    pub job: WorkJob,
}

impl WorkItem {
    /// The regular fetch of `tenant_id`.
    pub fn fetch(tenant_id: TenantId) -> Self {
        WorkItem {
            tenant_id,
            job: WorkJob::Fetch,
        }
    }
}

/// What a work item asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkJob {
    /// The regular fetch.
    #[default]
    Fetch,
    /// A slice of the reconciliation sweep.
    Sweep,
    /// A slice of the tenant's backfill.
    Backfill,
}

impl WorkJob {
    fn is_fetch(&self) -> bool {
        *self == WorkJob::Fetch
    }
}
