//! SIEM records are keyed by `FullId`: one alert has several records (one per detection part or
//! IOC), which may share a `LastProcessedTimeUtc`. Cursors written when records were keyed by
//! `AlertId` keep working without delivering anything again.

use shared::domain::{AlertApi, AuthModel};

use crate::fixtures::{CONTOSO, World, tid};

#[tokio::test]
async fn a_cursor_with_alert_id_keys_migrates_without_delivering_anything_again() {
    let mut w = World::start().await;
    // The scenario's alerts are two hours old: an overlap of three lists them again.
    w.services.settings.fetch.overlap = chrono::Duration::hours(3);
    w.onboard(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem)
        .await;
    let first = w.fetch(CONTOSO).await.expect("fetched");
    assert_eq!(first.delivered, 5);
    let records = w.records(CONTOSO);
    assert!(
        records.iter().all(|r| r
            .dedup_key
            .contains(r.alert_json()["FullId"].as_str().unwrap_or("-"))),
        "keyed by FullId"
    );

    // The cursor as an earlier release stored it: keys by AlertId, no index, no coverage.
    let store = &w.services.cursors;
    let now = w.clock_now();
    let mut c = store
        .acquire(
            &tid(CONTOSO),
            AlertApi::Siem,
            "migration",
            now,
            chrono::Duration::minutes(5),
        )
        .await
        .expect("lease");
    c.delivered = records
        .iter()
        .map(|r| {
            let at = shared::microsoft::alerts::parse_time(&r.alert_version).expect("time");
            (format!("{CONTOSO}:{}:{}", r.alert_id, r.alert_version), at)
        })
        .collect();
    c.indexed_since = None;
    c.covered_since = None;
    c.attempt_date = None;
    store.commit(&c, "migration", now).await.expect("stored");
    store
        .release(&tid(CONTOSO), AlertApi::Siem, "migration")
        .await
        .expect("released");

    // The next fetch lists the same records again (they are inside the overlap).
    let again = w.fetch(CONTOSO).await.expect("fetched");
    assert_eq!(again.delivered, 0, "{again:?}");
    assert_eq!(again.duplicates_skipped, 5, "{again:?}");
    w.assert_exactly_once(CONTOSO);
    let migrated = w.cursor(CONTOSO, AlertApi::Siem).await;
    assert!(migrated.indexed_since.is_some(), "the index starts now");
}

#[tokio::test]
async fn two_records_of_one_alert_sharing_a_timestamp_are_both_delivered_once() {
    let w = World::onboarded(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem).await;
    w.add_alerts(CONTOSO, serde_json::json!([{"id": "da-two-parts", "created": "-10m", "parts": 2, "title": "Two detections"}])).await;
    w.fetch(CONTOSO).await.expect("fetched");
    w.fetch(CONTOSO).await.expect("fetched again");
    let parts: Vec<_> = w
        .records(CONTOSO)
        .into_iter()
        .filter(|r| r.alert_id == "da-two-parts")
        .collect();
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert_eq!(
        parts[0].alert_version, parts[1].alert_version,
        "one timestamp"
    );
    assert_ne!(parts[0].dedup_key, parts[1].dedup_key);
    w.assert_exactly_once(CONTOSO);
}
