use serde_json::json;

use super::*;

const EVENTBRIDGE: &str =
    include_str!("../../../tests/fixtures/events/eventbridge-s3-object-created.json");
const S3: &str = include_str!("../../../tests/fixtures/events/s3-object-created.json");
const KEY: &str = "alerts/tenant=11111111-1111-4111-8111-111111111111/date=2026-03-02/graph-0000000007-00003.ndjson.gz";
const BUCKET: &str = "mssp-alerts-123456789012-us-east-1";

fn objects(payload: Value) -> Result<Vec<(String, String)>, String> {
    ObjectEvent::read(payload).and_then(|e| e.objects())
}

#[test]
fn both_fixtures_name_the_alert_object_with_its_key_decoded() {
    for fixture in [EVENTBRIDGE, S3] {
        let v: Value = serde_json::from_str(fixture).expect("json");
        assert_eq!(
            objects(v).expect("an object event"),
            [(BUCKET.to_owned(), KEY.to_owned())]
        );
    }
    let v: Value = serde_json::from_str(EVENTBRIDGE).expect("json");
    assert!(matches!(
        ObjectEvent::read(v),
        Ok(ObjectEvent::EventBridge(_))
    ));
}

#[test]
fn every_other_payload_says_what_it_is() {
    let eventbridge: Value = serde_json::from_str(EVENTBRIDGE).expect("json");
    let s3: Value = serde_json::from_str(S3).expect("json");
    let mut schedule = eventbridge.clone();
    schedule["source"] = json!("aws.events");
    schedule["detail-type"] = json!("Scheduled Event");
    let mut deleted = eventbridge.clone();
    deleted["detail-type"] = json!("Object Deleted");
    let mut no_key = eventbridge.clone();
    no_key["detail"]["object"] = json!({"size": 1});
    let mut no_bucket = s3.clone();
    no_bucket["Records"][0]["s3"]["bucket"] = json!({});
    let mut no_time = s3.clone();
    no_time["Records"][0]
        .as_object_mut()
        .expect("record")
        .remove("eventTime");
    for (bad, says) in [
        (json!(null), "not an object"),
        (json!({"hello": 1}), "without detail-type or Records"),
        (schedule, "source \"aws.events\""),
        (deleted, "detail-type \"Object Deleted\""),
        (no_key, "EventBridge event is malformed"),
        (no_bucket, "without s3.bucket.name"),
        (no_time, "S3 event is malformed"),
        (json!({"Records": {}}), "S3 event is malformed"),
    ] {
        let e = objects(bad.clone()).expect_err("refused");
        assert!(e.contains(says), "{bad}: {e}");
        let message = HandlerError::InvalidEvent(e).to_string();
        assert!(message.contains(ACCEPTED), "{message}");
    }
}

#[test]
fn the_module_table_documents_exactly_the_variables_read() {
    let documented: Vec<&str> = include_str!("lib.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| l.split('`').next())
        .filter(|v| v.starts_with("MSSP_"))
        .collect();
    assert_eq!(documented, ExporterConfig::VARIABLES);
}

/// Every variable the exporter needs, with a valid value.
const COMPLETE: [(&str, &str); 5] = [
    ("MSSP_BUCKET", "alerts"),
    ("MSSP_LAKE_BUCKET", "lake"),
    ("MSSP_LAKE_PREFIX", "ext/x"),
    ("MSSP_LAKE_ACCOUNT_ID", "1"),
    ("MSSP_LAKE_REGION", "r"),
];

#[test]
fn the_lake_location_is_read_whole_and_checked() {
    let env: Env = [
        ("MSSP_BUCKET", "alerts"),
        ("MSSP_LAKE_BUCKET", "lake"),
        ("MSSP_LAKE_PREFIX", "/ext/mssp-alerts/"),
        ("MSSP_LAKE_ACCOUNT_ID", "123456789012"),
        ("AWS_REGION", "eu-west-1"),
    ]
    .into_iter()
    .collect();
    let c = ExporterConfig::from_env(&env).expect("valid");
    assert_eq!(
        (c.location.prefix.as_str(), c.location.region.as_str()),
        ("ext/mssp-alerts", "eu-west-1")
    );
    for (var, _) in COMPLETE {
        let partial: Env = COMPLETE.into_iter().filter(|(k, _)| *k != var).collect();
        assert_eq!(
            ExporterConfig::from_env(&partial)
                .expect_err("missing")
                .var(),
            var
        );
    }
    let traversal: Env = COMPLETE
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                if k == "MSSP_LAKE_PREFIX" {
                    "ext/../x"
                } else {
                    v
                },
            )
        })
        .collect();
    assert_eq!(
        ExporterConfig::from_env(&traversal)
            .expect_err("invalid")
            .var(),
        "MSSP_LAKE_PREFIX"
    );
}
