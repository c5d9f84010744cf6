use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use shared::adapters::local::FileAlertSink;
use shared::domain::{AlertApi, TenantId};
use shared::record::{AlertRecord, Change};

use super::*;
use crate::schema::Validator;

fn tid() -> TenantId {
    TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid")
}

fn record(api: AlertApi, id: &str, version: &str, alert: Value) -> AlertRecord {
    AlertRecord {
        schema: "mssp.alert/1".into(),
        tenant_id: tid(),
        tenant_name: "Contoso — Zürich".into(),
        source: api,
        change: Change::Updated,
        first_seen: true,
        late: false,
        delay_s: None,
        alert_id: id.into(),
        alert_version: version.into(),
        dedup_key: format!("{}:{id}:{version}", tid()),
        fetched_at: Utc
            .with_ymd_and_hms(2026, 3, 2, 0, 5, 0)
            .single()
            .expect("time"),
        alert: serde_json::value::to_raw_value(&alert)
            .expect("json")
            .into(),
    }
}

fn records() -> Vec<AlertRecord> {
    vec![
        record(
            AlertApi::Graph,
            "g1",
            "2026-03-01T23:59:59.9990000Z",
            json!({"id": "g1", "title": "t", "severity": "high", "status": "resolved",
            "mitreTechniques": ["T1059.001"], "category": "Execution",
            "comments": [{"comment": "x"}], "weird": {"nested": [1, 2]},
            "evidence": [
              {"@odata.type": "#microsoft.graph.security.fileEvidence", "fileDetails": {"fileName": "a.exe", "filePath": "C:\\x", "sha1": "5f1e8acedc065031aad553b710838eb366cfee9a", "fileSize": 12}},
              {"@odata.type": "#microsoft.graph.security.deviceEvidence", "deviceDnsName": "h1.contoso.com", "mdeDeviceId": "m1", "osPlatform": "Windows11"},
              {"@odata.type": "#microsoft.graph.security.processEvidence", "processId": 5, "parentProcessId": 4, "imageFile": {"fileName": "p.exe"}, "userAccount": {"accountName": "u"}},
              {"@odata.type": "#microsoft.graph.security.userEvidence", "userAccount": {"accountName": "jdoe", "userPrincipalName": "jdoe@contoso.com"}},
              {"@odata.type": "#microsoft.graph.security.urlEvidence", "url": "http://x.example/"},
              {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "2001:db8::1"}
            ]}),
        ),
        record(
            AlertApi::Mde,
            "m1",
            "2026-03-02T00:00:00.0000000Z",
            json!({"id": "m1", "title": "t2", "severity": "UnSpecified", "status": "New",
                   "machineId": "abc", "computerDnsName": "pc_with_underscore", "evidence": []}),
        ),
        record(
            AlertApi::Siem,
            "s1",
            "2026-03-02T00:00:01.0000000Z",
            json!({"AlertId": "s1", "AlertTitle": "t3", "Severity": "Low", "FileName": "f.dll",
                   "Sha1": "aa", "IpAddress": "not an ip", "AlertPart": 1, "FullId": "s1:x"}),
        ),
    ]
}

/// The custom source's location in `region` of `account`.
fn location(region: &str, account: &str) -> Location {
    Location {
        prefix: "ext/mssp-alerts".into(),
        region: region.into(),
        account: account.into(),
    }
}

/// The key of a Graph alert object of [`tid`] dated 2026-03-02.
fn graph_object_key() -> String {
    format!(
        "alerts/tenant={}/date=2026-03-02/graph-0000000007-00003.ndjson.gz",
        tid()
    )
}

/// [`records`] as an alert object.
fn alert_object() -> Vec<u8> {
    ndjson::encode_batch(&records(), shared::config::GzipLevel::DEFAULT).expect("encode")
}

#[test]
fn every_rendering_validates_against_ocsf_1_1_0() {
    let v = Validator::ocsf_1_1("detection_finding").expect("schema");
    for r in records() {
        let e = shared::ocsf::map(&r);
        assert_eq!(v.validate(&e), Vec::<String>::new(), "{e:#}");
    }
}

#[test]
fn parquet_gives_back_the_same_events() {
    let events: Vec<Value> = records().iter().map(shared::ocsf::map).collect();
    let bytes = parquet::write(&events).expect("write");
    assert_eq!(&bytes[..4], b"PAR1");
    assert_eq!(parquet::read(&bytes).expect("read"), events);
    assert!(
        parquet::read(&parquet::write(&[]).expect("empty"))
            .expect("read")
            .is_empty()
    );
}

#[test]
fn an_attribute_the_parquet_schema_lacks_is_an_error_not_a_dropped_column() {
    let mut e = shared::ocsf::map(&records()[0]);
    e["finding_info"]["kill_chain"] = json!([{"phase": "x"}]);
    assert!(matches!(
        parquet::write(&[e]),
        Err(parquet::ParquetError::Schema(_))
    ));
}

#[test]
fn an_object_becomes_one_file_per_event_day_named_after_it() {
    let location = location("eu-west-1", "123456789012");
    let key = graph_object_key();
    let bytes = alert_object();
    let files = export_object(&location, &key, &bytes)
        .expect("export")
        .expect("an alert object");
    let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
    let stem = format!("{}_2026-03-02_graph-0000000007-00003", tid());
    assert_eq!(
        keys,
        [
            format!(
                "ext/mssp-alerts/region=eu-west-1/accountId=123456789012/eventDay=20260301/{stem}.parquet"
            ),
            format!(
                "ext/mssp-alerts/region=eu-west-1/accountId=123456789012/eventDay=20260302/{stem}.parquet"
            ),
        ]
    );
    assert_eq!(files.iter().map(|f| f.events).collect::<Vec<_>>(), [1, 2]);
    // The same object's OCSF twin gives the same files, byte for byte.
    let twin =
        ocsf_ndjson::encode_batch(&records(), shared::config::GzipLevel::DEFAULT).expect("encode");
    let again = export_object(&location, &BatchId::ocsf(&key), &twin)
        .expect("export")
        .expect("an OCSF object");
    assert_eq!(again, files);
    for other in [
        "alerts/",
        "lake/x.parquet",
        "alerts/tenant=x/date=y/../../z.ndjson.gz",
        "ocsf/tenant=a/date=b/c/d.ndjson.gz",
    ] {
        assert!(
            export_object(&location, other, &bytes)
                .expect("ignored")
                .is_none(),
            "{other}"
        );
    }
}

#[tokio::test]
async fn the_local_lake_sink_writes_beside_the_file_sink_and_repairs_an_interrupted_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = location("local", "000000000000");
    let files = Arc::new(FileAlertSink::new(dir.path()));
    let lake = LocalLake::new(dir.path(), location);
    let sink = LakeSink::new(files.clone(), lake.clone());
    let batch = |seq| BatchId {
        tenant_id: tid(),
        api: AlertApi::Graph,
        cursor_version: 3,
        date: "2026-03-02".into(),
        seq,
    };
    sink.write_batch(&batch(0), &records())
        .await
        .expect("write");
    sink.write_batch(&batch(0), &records())
        .await
        .expect("rewrite");
    // Interrupted after the object, before the lake files: the retry's read-back repairs it.
    files
        .write_batch(&batch(1), &records()[..1])
        .await
        .expect("object only");
    let contents = sink
        .attempt_contents(&tid(), AlertApi::Graph, "2026-03-02", 3)
        .await
        .expect("contents");
    assert_eq!(contents.next_seq, 2);
    let rows: usize = lake
        .files()
        .expect("files")
        .iter()
        .map(|(_, b)| parquet::read(b).expect("parquet").len())
        .sum();
    assert_eq!(rows, 4, "3 records of batch 0 once, 1 of batch 1");
    assert!(lake.source_dir().starts_with(dir.path().join("lake")));
}

#[tokio::test]
async fn exporting_an_object_twice_rewrites_the_same_files_with_the_same_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = DirObjects::new(dir.path().join("bucket"));
    let lake = DirObjects::new(dir.path().join("lake"));
    let location = location("eu-west-1", "123456789012");
    let key = graph_object_key();
    source.put(&key, alert_object()).await.expect("put");
    let first = export(&source, &lake, &location, &key)
        .await
        .expect("export")
        .expect("an alert object");
    let files = LocalLake::new(dir.path(), location.clone())
        .files()
        .expect("files");
    let again = export(&source, &lake, &location, &key)
        .await
        .expect("export again")
        .expect("an alert object");
    assert_eq!(again, first);
    assert_eq!(
        LocalLake::new(dir.path(), location.clone())
            .files()
            .expect("files"),
        files,
        "the same files, byte for byte"
    );
    assert_eq!(first.iter().map(|w| w.events).sum::<usize>(), 3);
    // Another key is not read (it does not exist) and writes nothing.
    assert_eq!(
        export(&source, &lake, &location, "elsewhere/x.ndjson.gz")
            .await
            .expect("skipped"),
        None
    );
    // A missing alert object is a read error (retried), not a skip.
    let missing = key.replace("00003", "00004");
    assert!(matches!(
        export(&source, &lake, &location, &missing).await,
        Err(ExportError::Read(_))
    ));
}

#[tokio::test]
async fn with_ocsf_objects_only_the_local_lake_repairs_from_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = location("local", "local");
    let files = Arc::new(
        FileAlertSink::new(dir.path()).with_format(shared::config::output::OutputFormat::Ocsf),
    );
    let lake = LocalLake::new(dir.path(), location);
    let sink = LakeSink::new(files.clone(), lake.clone());
    let batch = BatchId {
        tenant_id: tid(),
        api: AlertApi::Siem,
        cursor_version: 9,
        date: "2026-03-02".into(),
        seq: 0,
    };
    // Interrupted after the OCSF object, before the lake files.
    files.write_batch(&batch, &records()).await.expect("object");
    assert!(lake.files().expect("files").is_empty());
    assert!(!dir.path().join("alerts").exists(), "no raw object");
    let contents = sink
        .attempt_contents(&tid(), AlertApi::Siem, "2026-03-02", 9)
        .await
        .expect("contents");
    assert_eq!(contents.delivered.len(), 3);
    let rows: Vec<Value> = lake
        .files()
        .expect("files")
        .iter()
        .flat_map(|(_, b)| parquet::read(b).expect("parquet"))
        .collect();
    let mut uids: Vec<&str> = rows
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().expect("uid"))
        .collect();
    uids.sort_unstable();
    let records = records();
    let mut want: Vec<&str> = records.iter().map(|r| r.dedup_key.as_str()).collect();
    want.sort_unstable();
    assert_eq!(uids, want);
}
