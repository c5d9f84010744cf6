//! The fetch adapters at their wire boundary, against the AWS emulator (moto): the DynamoDB
//! cursor store (leases, conditional commits, compressed records) and the S3 alert sink
//! (deterministic keys, SSE-KMS, what an interrupted attempt left). The cursor stores and the
//! delivery indexes, DynamoDB and file alike, run the contracts of `tests::contract`.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::types::ServerSideEncryption;
use chrono::{DateTime, Duration, Utc};
use emulator::Scenario;
use serde_json::json;
use shared::adapters::aws::DynamoDbTenantRegistry;
use shared::adapters::aws::{DynamoDbCursorStore, S3AlertSink, s3_client};
use shared::config::Cloud;
use shared::domain::{AlertApi, AuthModel, Tenant, TenantId};
use shared::ports::{AlertSink, BatchId, CursorStore, TenantRegistry};
use shared::record::{AlertRecord, Change};
use tests::TestEnv;
use tests::aws::object_keys;
use tests::contract::{
    at, day, delivery_index_deletes_one_tenant, delivery_index_keeps_days_as_sets, ttl,
};

const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";

fn tid(n: u32) -> TenantId {
    TenantId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).expect("tid")
}

async fn cursor_store(env: &TestEnv) -> (DynamoDbCursorStore, aws_sdk_dynamodb::Client, String) {
    let (ddb, table) = env.dynamodb_table("mssp-table").await;
    (DynamoDbCursorStore::new(ddb.clone(), &table), ddb, table)
}

fn record(tenant: &TenantId, alert_id: &str, n: u32) -> AlertRecord {
    let version = format!("2026-03-01T09:00:{n:02}.0000000Z");
    AlertRecord {
        schema: "mssp.alert/1".into(),
        tenant_id: tenant.clone(),
        tenant_name: "Contoso — Zürich".into(),
        source: AlertApi::Graph,
        change: Change::Updated,
        first_seen: false,
        late: false,
        delay_s: None,
        alert_id: alert_id.into(),
        dedup_key: format!("{tenant}:{alert_id}:{version}"),
        alert_version: version,
        fetched_at: at(9, 5),
        alert: serde_json::value::to_raw_value(
            &json!({"id": alert_id, "title": "Suspicious sign-in 可疑登录", "n": n}),
        )
        .expect("json")
        .into(),
    }
}

/// Batch `seq` of `tenant`'s `api` at cursor version `version`, on 2026-03-01.
fn batch(tenant: &TenantId, api: AlertApi, version: u64, seq: u32) -> BatchId {
    BatchId {
        tenant_id: tenant.clone(),
        api,
        cursor_version: version,
        date: "2026-03-01".into(),
        seq,
    }
}

async fn alert_sink(
    env: &TestEnv,
    kms_key: Option<&str>,
) -> (S3AlertSink, aws_sdk_s3::Client, String) {
    let s3 = s3_client(&env.aws_config().await);
    let bucket = env.unique_name("mssp-alerts");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket created");
    (
        S3AlertSink::new(s3.clone(), &bucket, kms_key.map(str::to_string)),
        s3,
        bucket,
    )
}

/// The DynamoDB adapter of [`CursorStore`] under the contract every adapter meets.
mod dynamodb_cursor_store {
    use super::tid;

    async fn store() -> (super::DynamoDbCursorStore, super::TestEnv) {
        let env = super::TestEnv::start(super::Scenario::default())
            .await
            .expect("env");
        (super::cursor_store(&env).await.0, env)
    }

    tests::cursor_store_contract!(store);
}

/// The file adapter of [`CursorStore`] under the same contract.
mod file_cursor_store {
    use shared::adapters::local::FileCursorStore;

    use super::{at, tid, ttl};
    use shared::domain::AlertApi;
    use shared::ports::CursorStore;

    async fn store() -> (FileCursorStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        (FileCursorStore::new(dir.path()), dir)
    }

    tests::cursor_store_contract!(store);

    #[tokio::test]
    async fn a_cursor_is_a_json_file_per_tenant_and_api() {
        let (store, dir) = store().await;
        store
            .acquire(&tid(1), AlertApi::Graph, "run-a", at(9, 0), ttl())
            .await
            .expect("acquire");
        assert!(
            dir.path()
                .join(format!("cursors/{}/graph.json", tid(1)))
                .is_file()
        );
    }
}

#[tokio::test]
async fn five_thousand_delivered_keys_round_trip_compressed() {
    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let (store, ddb, table) = cursor_store(&env).await;
    let t = tid(4);
    let mut c = store
        .acquire(&t, AlertApi::Graph, "run-a", at(9, 0), ttl())
        .await
        .expect("acquire");
    let delivered: BTreeMap<String, DateTime<Utc>> = (0..5_000)
        .map(|i| {
            let version = at(8, 0) + Duration::milliseconds(i * 700);
            (
                format!(
                    "{t}:da{i:018}_{:08x}:{}",
                    i * 7919,
                    version.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
                version,
            )
        })
        .collect();
    c.watermark = Some(at(9, 0));
    c.delivered = delivered.clone();
    c.attempt_date = None;
    let stored = store.commit(&c, "run-a", at(9, 1)).await.expect("commit");
    assert_eq!(stored.delivered, delivered);
    let back = store
        .get(&t, AlertApi::Graph)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(back.delivered, delivered);
    assert_eq!(back.watermark, Some(at(9, 0)));

    let item = ddb
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("TENANT#{t}")))
        .key("sk", AttributeValue::S("CURSOR#graph".into()))
        .send()
        .await
        .expect("raw item")
        .item
        .expect("item");
    let AttributeValue::B(blob) = &item["record"] else {
        panic!("record is not binary: {:?}", item["record"]);
    };
    let json_len = serde_json::to_vec(&delivered).expect("json").len();
    assert!(
        blob.as_ref().len() * 3 < json_len,
        "compressed {} of {json_len} bytes",
        blob.as_ref().len()
    );
    assert_eq!(item["version"], AttributeValue::N("1".into()));
    assert_eq!(item["lease_owner"], AttributeValue::S("run-a".into()));
    assert!(!item.contains_key("attempt_date"), "cleared by the commit");
}

#[tokio::test]
async fn delete_removes_every_cursor_but_the_tenant() {
    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let (store, ddb, table) = cursor_store(&env).await;
    let t = tid(5);
    let registry = DynamoDbTenantRegistry::new(ddb, &table);
    registry
        .create(&Tenant::pending(
            t.clone(),
            "Contoso".into(),
            AuthModel::Application,
            AlertApi::Graph,
            Cloud::Commercial,
            at(8, 0),
        ))
        .await
        .expect("tenant");
    for api in AlertApi::ALL {
        store
            .acquire(&t, api, "run-a", at(9, 0), ttl())
            .await
            .expect("acquire");
    }
    store.delete(&t).await.expect("delete");
    for api in AlertApi::ALL {
        assert!(store.get(&t, api).await.expect("get").is_none(), "{api}");
    }
    assert!(
        registry.get(&t).await.expect("get").is_some(),
        "tenant kept"
    );
}

#[tokio::test]
async fn alert_objects_land_at_their_keys_with_sse_kms_and_a_rewrite_replaces_them() {
    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let (sink, s3, bucket) = alert_sink(&env, Some(KMS_KEY)).await;
    let t = tid(8);
    let first = vec![record(&t, "a1", 1), record(&t, "a2", 2)];
    sink.write_batch(&batch(&t, AlertApi::Graph, 12, 0), &first)
        .await
        .expect("write");
    let key = format!("alerts/tenant={t}/date=2026-03-01/graph-0000000012-00000.ndjson.gz");
    assert_eq!(
        object_keys(&s3, &bucket, "").await,
        std::slice::from_ref(&key)
    );

    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some(KMS_KEY));
    assert_eq!(head.content_type(), Some("application/x-ndjson"));
    assert_eq!(head.content_encoding(), None, "a .gz file, not an encoding");
    assert_eq!(sink.records(Some(&t)).await.expect("records"), first);

    let retried = vec![
        record(&t, "a1", 1),
        record(&t, "a2", 3),
        record(&t, "a3", 4),
    ];
    sink.write_batch(&batch(&t, AlertApi::Graph, 12, 0), &retried)
        .await
        .expect("rewrite");
    assert_eq!(
        object_keys(&s3, &bucket, "").await,
        [key],
        "replaced, not added"
    );
    assert_eq!(sink.records(Some(&t)).await.expect("records"), retried);
}

#[tokio::test]
async fn an_s3_attempts_contents_are_exactly_its_objects_across_listing_pages() {
    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let (sink, s3, bucket) = alert_sink(&env, None).await;
    let (t, other) = (tid(9), tid(10));
    // More objects than one ListObjectsV2 page holds.
    const ATTEMPT: u32 = 1_003;
    let mut writes = tokio::task::JoinSet::new();
    for seq in 0..ATTEMPT {
        let (sink, t) = (sink.clone(), t.clone());
        writes.spawn(async move {
            sink.write_batch(
                &batch(&t, AlertApi::Graph, 7, seq),
                &[record(&t, &format!("a{seq}"), 0)],
            )
            .await
        });
        if writes.len() >= 16 {
            writes
                .join_next()
                .await
                .expect("task")
                .expect("join")
                .expect("write");
        }
    }
    while let Some(w) = writes.join_next().await {
        w.expect("join").expect("write");
    }
    // Batches beside the attempt, each with a record the attempt must not read.
    let beside = [
        ("v6", &t, AlertApi::Graph, 6),
        (
            "v70: its key shares no prefix with v7's",
            &t,
            AlertApi::Graph,
            70,
        ),
        ("mde", &t, AlertApi::Mde, 7),
        ("other tenant", &other, AlertApi::Graph, 7),
    ];
    for (n, (what, tenant, api, version)) in (1..).zip(beside) {
        let kept = record(tenant, &format!("kept-{n}"), n);
        sink.write_batch(&batch(tenant, api, version, 0), &[kept])
            .await
            .expect(what);
    }
    assert_eq!(
        object_keys(&s3, &bucket, "").await.len(),
        ATTEMPT as usize + 4
    );

    let got = sink
        .attempt_contents(&t, AlertApi::Graph, "2026-03-01", 7)
        .await
        .expect("contents");
    assert_eq!(got.next_seq, ATTEMPT);
    let mut ids: Vec<String> = got.delivered.iter().map(|(k, _)| k.clone()).collect();
    ids.sort();
    let mut want: Vec<String> = (0..ATTEMPT)
        .map(|seq| record(&t, &format!("a{seq}"), 0).dedup_key)
        .collect();
    want.sort();
    assert_eq!(
        ids, want,
        "exactly the attempt's records, nothing of v6, v70, mde or another tenant"
    );
    assert_eq!(
        object_keys(&s3, &bucket, "").await.len(),
        ATTEMPT as usize + 4,
        "nothing is deleted"
    );
}

#[tokio::test]
async fn the_delivery_index_keeps_digests_per_day_as_sets_and_reads_a_horizon_in_one_query() {
    use shared::adapters::aws::DynamoDbDeliveryIndex;
    use shared::ports::DeliveryIndex;

    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let (ddb, table) = env.dynamodb_table("mssp-index").await;
    let index = DynamoDbDeliveryIndex::new(ddb.clone(), &table);
    let (t, other) = (tid(1), tid(2));
    delivery_index_keeps_days_as_sets(&index, &t, &other).await;
    // A busy day: more digests than one item holds are spread over shards.
    let busy: Vec<u64> = (0..60_000u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    for part in busy.chunks(10_000) {
        index
            .add(&t, AlertApi::Graph, &[(day(5), part.to_vec())])
            .await
            .expect("a busy day");
    }
    let day5 = index.days(&t, AlertApi::Graph, day(5), day(5)).await;
    assert_eq!(day5.expect("day 5").len(), busy.len());
    delivery_index_deletes_one_tenant(&index, &t, &other).await;
}

#[tokio::test]
async fn the_file_delivery_index_keeps_the_same_days() {
    let dir = tempfile::tempdir().expect("tempdir");
    let index = shared::adapters::local::FileDeliveryIndex::new(dir.path());
    let (t, other) = (tid(1), tid(2));
    delivery_index_keeps_days_as_sets(&index, &t, &other).await;
    delivery_index_deletes_one_tenant(&index, &t, &other).await;
}
