//! What every adapter of a port must do, written once and run against each adapter (the local
//! files and the AWS services behind moto).

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use shared::domain::{AlertApi, TenantId};
#[cfg(doc)]
use shared::ports::{ConsentNonces, TenantRegistry};
use shared::ports::{Cursor, CursorStore, DeliveryIndex, LeaseError, StoreError};

/// A day of March 2026.
pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).expect("date")
}

/// `h:m` on 1 March 2026, UTC.
pub fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0)
        .single()
        .expect("valid time")
}

/// The lease of every acquire here: five minutes.
pub fn ttl() -> Duration {
    Duration::minutes(5)
}

/// The cursor a run commits at the end: `keys` delivered up to 09:00, the attempt done.
pub fn progressed(mut cursor: Cursor, keys: &[&str]) -> Cursor {
    cursor.attempt_date = None;
    cursor.watermark = Some(at(9, 0));
    cursor.delivered = keys.iter().map(|k| (k.to_string(), at(8, 59))).collect();
    cursor
}

/// The [`CursorStore`] contract as one `#[tokio::test]` per check, for the adapter `$store`
/// makes: an `async fn() -> (store, guard)`, the guard keeping what the store lives on (a
/// directory, an emulator) until the test ends.
/// Each check a test, named after it; its arguments are the store and `tid(n)` of the `n`s
/// (the caller's `tid`).
#[macro_export]
macro_rules! cursor_store_contract {
    ($store:path) => {
        $crate::cursor_store_contract!(@tests $store;
            leases_are_held_renewed_and_taken_over(1),
            a_commit_that_lost_its_lease_conflicts_and_versions_never_go_backwards(2),
            a_commit_from_a_stale_version_conflicts(3, 33),
            the_attempt_date_is_set_once_and_cleared_by_a_commit(8),
            release_frees_only_the_owners_lease_and_delete_removes_every_cursor(5, 6),
        );
    };
    (@tests $store:path; $($check:ident($($n:expr),*),)*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (store, _guard) = $store().await;
                $crate::contract::cursor::$check(&store, $(&tid($n)),*).await;
            }
        )*
    };
}

/// The checks of [`cursor_store_contract!`], each named as the test that runs it.
pub mod cursor {
    use super::*;

    /// Asserts that `owner`'s commit of `next` at `now` conflicts (`why` says why it must).
    async fn commit_conflicts(
        store: &impl CursorStore,
        next: Cursor,
        owner: &str,
        now: DateTime<Utc>,
        why: &str,
    ) {
        let r = store.commit(&next, owner, now).await;
        assert!(matches!(r, Err(StoreError::Conflict)), "{why}: {r:?}");
    }

    /// A [`CursorStore`]'s first acquire of `t`'s cursor creates it at version 0 with today's
    /// attempt date; a live lease of another owner is held until its expiry, renewed by its owner,
    /// taken over once expired (keeping the attempt date); each API has its own lease.
    ///
    /// # Panics
    ///
    /// When the store does otherwise.
    pub async fn leases_are_held_renewed_and_taken_over(store: &impl CursorStore, t: &TenantId) {
        assert!(store.get(t, AlertApi::Graph).await.expect("get").is_none());

        let a = store
            .acquire(t, AlertApi::Graph, "run-a", at(9, 0), ttl())
            .await
            .expect("first acquire");
        assert_eq!(a.version, 0);
        assert_eq!(a.watermark, None);
        assert!(a.delivered.is_empty());
        assert_eq!(a.attempt_date.as_deref(), Some("2026-03-01"));
        let lease = a.lease.clone().expect("lease");
        assert_eq!(
            (lease.owner.as_str(), lease.expires_at),
            ("run-a", at(9, 5))
        );
        assert_eq!(store.get(t, AlertApi::Graph).await.expect("get"), Some(a));

        let refused = store
            .acquire(t, AlertApi::Graph, "run-b", at(9, 4), ttl())
            .await
            .expect_err("the lease is live");
        assert!(
            matches!(refused, LeaseError::Held { until } if until == at(9, 5)),
            "{refused:?}"
        );
        let renewed = store
            .acquire(t, AlertApi::Graph, "run-a", at(9, 4), ttl())
            .await
            .expect("its owner renews it");
        assert_eq!(renewed.lease.map(|l| l.expires_at), Some(at(9, 9)));

        let b = store
            .acquire(t, AlertApi::Graph, "run-b", at(9, 9), ttl())
            .await
            .expect("the lease expired at 09:09");
        assert_eq!(b.lease.map(|l| l.owner).as_deref(), Some("run-b"));
        assert_eq!(b.attempt_date.as_deref(), Some("2026-03-01"), "kept");
        store
            .acquire(t, AlertApi::Mde, "run-c", at(9, 9), ttl())
            .await
            .expect("each API has its own lease");
    }

    /// A commit under a lease that expired (at its expiry, or taken over since) conflicts; the new
    /// owner's commit stands, and versions never go backwards.
    ///
    /// # Panics
    ///
    /// When the store does otherwise.
    pub async fn a_commit_that_lost_its_lease_conflicts_and_versions_never_go_backwards(
        store: &impl CursorStore,
        t: &TenantId,
    ) {
        let a = store
            .acquire(t, AlertApi::Mde, "run-a", at(9, 0), ttl())
            .await
            .expect("a");
        commit_conflicts(
            store,
            progressed(a.clone(), &["k-a"]),
            "run-a",
            at(9, 5),
            "a lease is dead at its expiry",
        )
        .await;
        let b = store
            .acquire(t, AlertApi::Mde, "run-b", at(9, 6), ttl())
            .await
            .expect("b takes a's expired lease");
        assert_eq!(b.attempt_date, a.attempt_date, "b retries a's attempt");

        commit_conflicts(
            store,
            progressed(a.clone(), &["k-a"]),
            "run-a",
            at(9, 7),
            "a lost its lease to b",
        )
        .await;
        let committed = store
            .commit(&progressed(b, &["k-b"]), "run-b", at(9, 7))
            .await
            .expect("b commits");
        assert_eq!(committed.version, 1);
        assert_eq!(committed.attempt_date, None);
        assert_eq!(
            committed.lease.as_ref().map(|l| l.owner.as_str()),
            Some("run-b")
        );

        commit_conflicts(
            store,
            progressed(a, &["k-a"]),
            "run-a",
            at(9, 8),
            "a is late after b committed",
        )
        .await;
        let stored = store
            .get(t, AlertApi::Mde)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(stored, committed, "b's commit stands, untouched by a");
        assert!(stored.delivered.contains_key("k-b") && !stored.delivered.contains_key("k-a"));

        commit_conflicts(
            store,
            progressed(stored.clone(), &["k-c"]),
            "run-b",
            at(9, 11),
            "a lease is dead at its expiry",
        )
        .await;
        let again = store
            .acquire(t, AlertApi::Mde, "run-a", at(9, 12), ttl())
            .await
            .expect("a again");
        assert!(again.version >= stored.version);
        assert_eq!(
            again.attempt_date.as_deref(),
            Some("2026-03-01"),
            "a new attempt"
        );
    }

    /// A commit from a version that is no longer stored conflicts, and so does one of a cursor
    /// that does not exist (`absent`'s), which creates nothing.
    ///
    /// # Panics
    ///
    /// When the store does otherwise.
    pub async fn a_commit_from_a_stale_version_conflicts(
        store: &impl CursorStore,
        t: &TenantId,
        absent: &TenantId,
    ) {
        let c = store
            .acquire(t, AlertApi::Siem, "run-a", at(9, 0), ttl())
            .await
            .expect("acquire");
        let first = store
            .commit(&progressed(c.clone(), &["k1"]), "run-a", at(9, 1))
            .await
            .expect("first");
        commit_conflicts(
            store,
            progressed(c, &["k2"]),
            "run-a",
            at(9, 2),
            "version 0 is stale",
        )
        .await;
        let second = store
            .commit(&progressed(first, &["k2"]), "run-a", at(9, 2))
            .await
            .expect("from the stored version");
        assert_eq!(second.version, 2);
        let never = Cursor::new(absent.clone(), AlertApi::Siem);
        commit_conflicts(store, never, "run-a", at(9, 2), "no cursor, no lease").await;
        assert!(
            store
                .get(absent, AlertApi::Siem)
                .await
                .expect("get")
                .is_none(),
            "a refused commit creates nothing"
        );
    }

    /// The attempt date is set by the first acquire of an attempt, kept by a retry on the next
    /// day, and cleared by a commit; the next attempt gets its own day's.
    ///
    /// # Panics
    ///
    /// When the store does otherwise.
    pub async fn the_attempt_date_is_set_once_and_cleared_by_a_commit(
        store: &impl CursorStore,
        t: &TenantId,
    ) {
        let day1 = at(23, 58);
        store
            .acquire(t, AlertApi::Siem, "run-a", day1, ttl())
            .await
            .expect("a");
        let next_day = day1 + Duration::minutes(10);
        let retried = store
            .acquire(t, AlertApi::Siem, "run-b", next_day, ttl())
            .await
            .expect("b after expiry");
        assert_eq!(retried.attempt_date.as_deref(), Some("2026-03-01"));
        let committed = store
            .commit(&progressed(retried, &["k"]), "run-b", next_day)
            .await
            .expect("commit");
        assert_eq!(committed.attempt_date, None);
        let next = store
            .acquire(t, AlertApi::Siem, "run-b", next_day, ttl())
            .await
            .expect("next attempt");
        assert_eq!(next.attempt_date.as_deref(), Some("2026-03-02"));
    }

    /// `release` frees only its owner's lease (and of nothing is fine); `delete` removes every
    /// cursor of `t` and none of `other`'s, and of nothing is fine.
    ///
    /// # Panics
    ///
    /// When the store does otherwise.
    pub async fn release_frees_only_the_owners_lease_and_delete_removes_every_cursor(
        store: &impl CursorStore,
        t: &TenantId,
        other: &TenantId,
    ) {
        for api in AlertApi::ALL {
            store
                .acquire(t, api, "run-a", at(9, 0), ttl())
                .await
                .expect("acquire");
        }
        store
            .acquire(other, AlertApi::Graph, "run-z", at(9, 0), ttl())
            .await
            .expect("another tenant");

        store
            .release(t, AlertApi::Graph, "run-b")
            .await
            .expect("not b's: nothing happens");
        assert!(matches!(
            store
                .acquire(t, AlertApi::Graph, "run-b", at(9, 1), ttl())
                .await,
            Err(LeaseError::Held { .. })
        ));
        store
            .release(t, AlertApi::Graph, "run-a")
            .await
            .expect("release");
        let released = store
            .get(t, AlertApi::Graph)
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(released.lease, None);
        store
            .acquire(t, AlertApi::Graph, "run-b", at(9, 1), ttl())
            .await
            .expect("free after release");
        let nobody = TenantId::parse("77777777-0000-4000-8000-000000000000").expect("tid");
        store
            .release(&nobody, AlertApi::Graph, "run-a")
            .await
            .expect("releasing nothing is fine");

        store.delete(t).await.expect("delete");
        for api in AlertApi::ALL {
            assert!(store.get(t, api).await.expect("get").is_none(), "{api}");
        }
        assert!(
            store
                .get(other, AlertApi::Graph)
                .await
                .expect("get")
                .is_some(),
            "other tenants keep theirs"
        );
        store.delete(t).await.expect("deleting nothing is fine");
    }
}

/// A [`DeliveryIndex`] keeps each day's digests as a set, and APIs and tenants apart: `t`'s
/// Graph days 1 to 3 read back as `{1, 2, 4, u64::MAX}` (day 3 holds `u64::MAX`); `other`'s
/// Graph day 1 holds `8`.
///
/// # Panics
///
/// When the index does otherwise.
pub async fn delivery_index_keeps_days_as_sets(
    index: &impl DeliveryIndex,
    t: &TenantId,
    other: &TenantId,
) {
    index
        .add(
            t,
            AlertApi::Graph,
            &[(day(1), vec![1, 2, 2]), (day(3), vec![u64::MAX])],
        )
        .await
        .expect("add");
    index
        .add(
            t,
            AlertApi::Graph,
            &[(day(1), vec![2, 4]), (day(2), vec![])],
        )
        .await
        .expect("adding again keeps a set");
    index
        .add(t, AlertApi::Mde, &[(day(1), vec![9])])
        .await
        .expect("another api");
    index
        .add(other, AlertApi::Graph, &[(day(1), vec![8])])
        .await
        .expect("another tenant");
    let week = index
        .days(t, AlertApi::Graph, day(1), day(7))
        .await
        .expect("days");
    assert_eq!(week, HashSet::from([1, 2, 4, u64::MAX]));
    let first = index
        .days(t, AlertApi::Graph, day(1), day(2))
        .await
        .expect("days");
    assert_eq!(first, HashSet::from([1, 2, 4]));
}

/// After [`delivery_index_keeps_days_as_sets`]: deleting `t` empties its days and leaves
/// `other`'s.
///
/// # Panics
///
/// When the index does otherwise.
pub async fn delivery_index_deletes_one_tenant(
    index: &impl DeliveryIndex,
    t: &TenantId,
    other: &TenantId,
) {
    index.delete(t).await.expect("delete");
    assert!(
        index
            .days(t, AlertApi::Graph, day(1), day(31))
            .await
            .expect("days")
            .is_empty()
    );
    assert_eq!(
        index
            .days(other, AlertApi::Graph, day(1), day(1))
            .await
            .expect("other"),
        HashSet::from([8])
    );
}

/// The [`TenantRegistry`] contract.
pub mod registry {
    use chrono::Utc;
    use shared::config::Cloud;
    use shared::domain::{AlertApi, AuthModel, Tenant, TenantId, TenantStatus};
    use shared::ports::{StoreError, TenantRegistry};

    fn tid(n: u32) -> TenantId {
        TenantId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).expect("tid")
    }

    /// Creates refuse a duplicate, updates a stale version ([`StoreError::Conflict`]) or an
    /// absent tenant ([`StoreError::NotFound`]); `list` returns every tenant by id, and
    /// `list_active` only the active ones, as stored.
    ///
    /// # Panics
    ///
    /// When the registry (empty at the start) does otherwise.
    pub async fn writes_conditionally_and_lists_every_tenant_and_the_active_ones(
        reg: &impl TenantRegistry,
    ) {
        assert!(reg.get(&tid(1)).await.expect("get").is_none());
        let mut all = Vec::new();
        for n in 0..30 {
            let t = Tenant::pending(
                tid(n),
                format!("Customer {n}"),
                AuthModel::Application,
                AlertApi::Graph,
                Cloud::Commercial,
                Utc::now(),
            );
            reg.create(&t).await.expect("create");
            all.push(t);
        }
        assert!(matches!(
            reg.create(&all[0]).await,
            Err(StoreError::Conflict)
        ));
        let listed = reg.list().await.expect("list");
        assert_eq!(listed.len(), 30);
        assert_eq!(listed, all);

        let mut a = reg.get(&tid(3)).await.expect("get").expect("exists");
        a.display_name = "Renamed".into();
        let stored = reg.update(&a).await.expect("first writer wins");
        assert_eq!(stored.version, 1);
        assert!(
            matches!(reg.update(&a).await, Err(StoreError::Conflict)),
            "stale version"
        );
        let ghost = Tenant::pending(
            tid(999),
            "Ghost".into(),
            AuthModel::Application,
            AlertApi::Graph,
            Cloud::Commercial,
            Utc::now(),
        );
        assert!(matches!(
            reg.update(&ghost).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            reg.get(&tid(3))
                .await
                .expect("get")
                .expect("exists")
                .display_name,
            "Renamed"
        );

        // The active tenants come from the status index: only the tenants made active, as stored.
        assert!(reg.list_active().await.expect("none active").is_empty());
        let mut active = Vec::new();
        for n in [4, 7, 20] {
            let mut t = reg.get(&tid(n)).await.expect("get").expect("exists");
            t.status = TenantStatus::Active;
            active.push(reg.update(&t).await.expect("activate"));
        }
        assert_eq!(reg.list_active().await.expect("active"), active);
    }
}

/// The [`ConsentNonces`] contract.
pub mod nonces {
    use chrono::Utc;
    use shared::ports::ConsentNonces;

    /// A nonce is consumed once, others stay fresh, and an empty one never counts.
    ///
    /// # Panics
    ///
    /// When the nonces do otherwise.
    pub async fn are_consumed_once(nonces: &impl ConsentNonces) {
        let now = Utc::now();
        let exp = now + chrono::Duration::minutes(30);
        assert!(nonces.consume("n0nce-A", now, exp).await.expect("first"));
        assert!(!nonces.consume("n0nce-A", now, exp).await.expect("replay"));
        assert!(nonces.consume("n0nce-B", now, exp).await.expect("another"));
        assert!(!nonces.consume("", now, exp).await.expect("empty"));
    }
}
