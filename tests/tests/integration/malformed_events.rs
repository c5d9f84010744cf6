//! Malformed events to the `token-refresh` and `alert-fetcher` binaries through the Runtime API:
//! wrong types, unknown actions, extra fields, other AWS events, truncated schedules, huge
//! payloads. Each is an `InvalidEvent` whose message says what is wrong (quoting at most a few
//! hundred printable characters of it) and names the accepted shapes; the process serves on.
//! (Malformed SQS records: `fetcher_lambda::a_malformed_sqs_record_fails_only_its_own_message`.)

use serde_json::{Map, Value, json};
use tests::lambda::LambdaProcess;

use crate::fetcher_lambda::Fetcher;
use crate::fixtures::CONTOSO;
use crate::lambda_world::FnWorld;

const SCHEDULED: &str = include_str!("../../fixtures/events/eventbridge-scheduled-event.json");
const API_GATEWAY: &str = include_str!("../../fixtures/events/apigw-http-v2-request.json");
const SQS: &str = include_str!("../../fixtures/events/sqs-event.json");

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture")
}

/// The schedule with `change` made.
fn schedule(change: impl FnOnce(&mut Value)) -> Value {
    let mut e = fixture(SCHEDULED);
    change(&mut e);
    e
}

/// Shapes neither function accepts, and what the refusal says about each.
fn common() -> Vec<(Value, &'static str)> {
    let many_keys: Map<String, Value> = (0..10_000).map(|i| (format!("k{i}"), json!(i))).collect();
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!({ "d": deep });
    }
    vec![
        (json!(null), "the event is null"),
        (json!(true), "the event is a boolean"),
        (json!(42), "the event is a number"),
        (json!("refresh"), "the event is a string"),
        (json!([]), "the event is an array"),
        (json!([{"tenant_id": CONTOSO}]), "the event is an array"),
        (json!({}), "an object without detail-type"),
        (
            json!({"detail-type": "Scheduled Event"}),
            "EventBridge event is malformed",
        ),
        (
            json!({"source": "aws.events"}),
            "EventBridge event is malformed",
        ),
        (
            json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}),
            "source \"aws.ec2\"",
        ),
        (
            schedule(|e| e["detail-type"] = json!("Scheduled Event ")),
            "not the schedule",
        ),
        (
            schedule(|e| e["source"] = json!(42)),
            "EventBridge event is malformed",
        ),
        (
            schedule(|e| e["time"] = json!("yesterday")),
            "EventBridge event is malformed",
        ),
        (
            schedule(|e| e["resources"] = json!("arn")),
            "EventBridge event is malformed",
        ),
        (
            schedule(|e| e["detail-type"] = json!("x".repeat(1 << 20))),
            "not the schedule",
        ),
        (
            schedule(|e| e["resources"] = json!("<script>".repeat(100_000))),
            "invalid type: string",
        ),
        (json!({"junk": "x".repeat(1 << 20)}), "its keys: junk"),
        (Value::Object(many_keys), "10000 in all"),
        (json!({"deep": deep}), "its keys: deep"),
        (fixture(API_GATEWAY), "its keys:"),
        (json!({"Records": {}}), "Records is not an array"),
    ]
}

/// Invokes `f` with each of `cases`; every one must be an `InvalidEvent` saying its reason and
/// holding every one of `accepted`.
async fn assert_refused(f: &LambdaProcess, cases: &[(Value, &str)], accepted: &[&str]) {
    let mut failures = Vec::new();
    for (event, says) in cases {
        let what = format!("{event:.80}");
        match f.invoke(event).await {
            Ok(a) => failures.push(format!("{what}: answered {a:.200}")),
            Err(e) if e.error_type != "InvalidEvent" => failures.push(format!("{what}: {e:.300}")),
            Err(e) => {
                let m = &e.error_message;
                if !m.contains(says) || accepted.iter().any(|a| !m.contains(a)) || m.len() > 2000 {
                    failures.push(format!("{what}: {m:.600}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} malformed events:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(!f.logs().contains("panicked"));
}

#[tokio::test]
async fn malformed_events_to_token_refresh_are_invalid_events_naming_the_accepted_shapes() {
    let w = FnWorld::start(true).await;
    let f = w.spawn("token-refresh").await;
    let mut cases = common();
    cases.extend([
        (json!({"tenant_id": 42}), "direct invoke is malformed"),
        (json!({"tenant_id": null}), "direct invoke is malformed"),
        (json!({"tenant_id": "contoso"}), "not a tenant GUID"),
        (
            json!({"tenant_id": CONTOSO, "force": "yes"}),
            "direct invoke is malformed",
        ),
        (
            json!({"tenant_id": CONTOSO, "force": null}),
            "direct invoke is malformed",
        ),
        (
            json!({"tenant_id": CONTOSO, "extra": 1}),
            "unknown field `extra`",
        ),
        (
            json!({"tenant_id": "x".repeat(1 << 20)}),
            "not a tenant GUID",
        ),
        (json!({"action": "refresh"}), "its keys: action"),
        (json!({"tenant": CONTOSO}), "its keys: tenant"),
        (
            fixture(SQS),
            "an SQS event (this function consumes no queue)",
        ),
    ]);
    assert!(cases.len() >= 20);
    assert_refused(&f, &cases, &["Scheduled Event", "tenant_id"]).await;
    let r = f.invoke(&fixture(SCHEDULED)).await.expect("still serving");
    assert_eq!(r["refreshed"], json!([]));
}

#[tokio::test]
async fn malformed_events_to_alert_fetcher_are_invalid_events_naming_the_accepted_shapes() {
    let f = Fetcher::start().await;
    let fetcher = f.spawn().await;
    let since = "2026-01-01T00:00:00Z";
    let mut cases = common();
    cases.extend([
        (json!({"action": "delete"}), "unknown variant `delete`"),
        (json!({"action": "FETCH"}), "unknown variant `FETCH`"),
        (json!({"action": 1}), "direct invoke is malformed"),
        (json!({"action": null}), "direct invoke is malformed"),
        (json!({"action": "fetch"}), "missing field `tenant_id`"),
        (
            json!({"action": "fetch", "tenant_id": CONTOSO, "since": "yesterday"}),
            "since is not an RFC 3339 time",
        ),
        (
            json!({"action": "fetch", "tenant_id": CONTOSO, "since": since, "limit": -1}),
            "direct invoke is malformed",
        ),
        (
            json!({"action": "fetch", "tenant_id": CONTOSO, "since": since, "limit": 0}),
            "limit must be 1..=10000",
        ),
        (
            json!({"action": "fetch", "tenant_id": CONTOSO, "page_token": "garbage"}),
            "page_token is not one",
        ),
        (
            json!({"action": "fetch", "tenant_id": CONTOSO, "since": since, "x": 1}),
            "unknown field `x`",
        ),
        (
            json!({"action": "fetch", "tenant_id": CONTOSO, "since": since, "format": "xml"}),
            "format must be raw or ocsf",
        ),
        (json!({"action": "fetch_now"}), "missing field `tenant_id`"),
        (
            json!({"action": "fetch_now", "tenant_id": CONTOSO, "extra": 1}),
            "unknown field `extra`",
        ),
        (
            json!({"action": "status", "tenant_id": 5}),
            "direct invoke is malformed",
        ),
        (
            json!({"action": "status", "tenant_id": "nope"}),
            "not a tenant GUID",
        ),
        (
            json!({"action": "status", "junk": "x".repeat(1 << 20)}),
            "unknown field `junk`",
        ),
        (json!({"Records": "x"}), "Records is not an array"),
        (json!({"Records": null}), "Records is not an array"),
        (json!({"tenant_id": CONTOSO}), "its keys: tenant_id"),
    ]);
    assert!(cases.len() >= 20);
    assert_refused(&fetcher, &cases, &["SQS event", "fetch_now", "status"]).await;
    let s = fetcher
        .invoke(&json!({"action": "status"}))
        .await
        .expect("still serving");
    assert_eq!(s["tenants"].as_array().map(Vec::len), Some(3));
}
