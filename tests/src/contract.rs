//! What every adapter of a port must do, written once and run against each adapter (the local
//! files and the AWS services behind moto).

use std::collections::HashSet;

use chrono::NaiveDate;
use shared::domain::{AlertApi, TenantId};
use shared::ports::DeliveryIndex;

/// A day of March 2026.
pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).expect("date")
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
