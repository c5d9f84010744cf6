//! Helpers of the Lambda edges: when to stop starting new work before the invocation's deadline,
//! and what an invocation's payload is — an EventBridge schedule, an SQS event or a direct invoke
//! — read into the types of `aws_lambda_events` with a reason, fit for an `InvalidEvent`, when it
//! is none of them.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsMessage;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::flows::onboarding::sanitize;

/// Upper bound of the time kept in reserve before the Lambda deadline (a fifth of the time
/// left, at least 1 s, at most this): in-flight work finishes and the answer is returned.
pub const SAFETY_MARGIN_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// The instant to stop starting new work: the Lambda deadline (milliseconds since the Unix
/// epoch, as the Runtime API gives it) minus the safety margin; `None` without a deadline (0).
pub fn stop_at(deadline_ms: u64, now: std::time::SystemTime) -> Option<tokio::time::Instant> {
    use std::time::{Duration, UNIX_EPOCH};
    if deadline_ms == 0 {
        return None;
    }
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline.duration_since(now).unwrap_or_default();
    let margin = (left / 5).clamp(Duration::from_secs(1), SAFETY_MARGIN_MAX);
    Some(tokio::time::Instant::now() + left.saturating_sub(margin))
}

/// An invocation's payload, told apart by the key only its shape has: `detail-type` or `source`
/// (an EventBridge event, which must be the schedule), `Records` (an SQS event), or the key of
/// the function's direct invokes (`D`).
#[derive(Debug)]
pub enum Event<D> {
    /// The EventBridge scheduled event (`"source": "aws.events"`, `"detail-type": "Scheduled
    /// Event"`).
    Schedule(Box<EventBridgeEvent>),
    /// An SQS event's records, each read on its own.
    Sqs(Vec<SqsRecord>),
    /// A direct invoke.
    Direct(D),
}

/// One record of an SQS event, read on its own: a malformed record fails only itself (an
/// `SqsEvent` is all or nothing).
pub type SqsRecord = Result<SqsMessage, MalformedRecord>;

/// A record of an SQS event that is not an SQS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRecord {
    /// Its `messageId`, when it has a string one.
    pub message_id: Option<String>,
    /// What is wrong with it.
    pub reason: String,
}

/// How much of a decoding error's text a reason quotes (the payload may be megabytes).
const QUOTED: usize = 200;

impl<D: DeserializeOwned> Event<D> {
    /// Reads `payload`, a direct invoke being recognized by `direct_key`. The error says what the
    /// payload is and why it is none of the shapes, quoting at most a few printable characters.
    pub fn read(payload: Value, direct_key: &str) -> Result<Self, String> {
        let Value::Object(fields) = &payload else {
            return Err(format!(
                "the event is {}, not an object",
                json_kind(&payload)
            ));
        };
        if fields.contains_key("detail-type") || fields.contains_key("source") {
            return schedule(payload).map(|e| Event::Schedule(Box::new(e)));
        }
        if fields.contains_key("Records") {
            return sqs_records(payload).map(Event::Sqs);
        }
        if fields.contains_key(direct_key) {
            return decode(payload, "the direct invoke").map(Event::Direct);
        }
        Err(format!(
            "an object without detail-type, Records or {direct_key} (its keys: {})",
            keys(fields)
        ))
    }
}

/// The EventBridge event in `payload`, when it is the schedule.
pub fn schedule(payload: Value) -> Result<EventBridgeEvent, String> {
    let e: EventBridgeEvent = decode(payload, "the EventBridge event")?;
    if e.source == "aws.events" && e.detail_type == "Scheduled Event" {
        return Ok(e);
    }
    Err(format!(
        "an EventBridge event of source {:?} and detail-type {:?}, not the schedule",
        sanitize(&e.source, 64),
        sanitize(&e.detail_type, 64)
    ))
}

fn sqs_records(payload: Value) -> Result<Vec<SqsRecord>, String> {
    let Value::Object(mut fields) = payload else {
        return Err("an SQS event that is not an object".into());
    };
    let Some(Value::Array(records)) = fields.remove("Records") else {
        return Err("an SQS event whose Records is not an array".into());
    };
    Ok(records
        .into_iter()
        .map(|record| {
            let message_id = record
                .get("messageId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            decode(record, "the record").map_err(|reason| MalformedRecord { message_id, reason })
        })
        .collect())
}

/// `payload` as a `T`, or why not (`what` names it, the decoder's message is quoted printable and
/// short).
pub fn decode<T: DeserializeOwned>(payload: Value, what: &str) -> Result<T, String> {
    serde_json::from_value(payload)
        .map_err(|e| format!("{what} is malformed ({})", sanitize(&e.to_string(), QUOTED)))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first few keys of `fields`, printable.
fn keys(fields: &Map<String, Value>) -> String {
    let mut shown: Vec<String> = fields.keys().take(5).map(|k| sanitize(k, 32)).collect();
    if fields.len() > 5 {
        shown.push(format!("… {} in all", fields.len()));
    }
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SCHEDULED: &str =
        include_str!("../../tests/fixtures/events/eventbridge-scheduled-event.json");
    const SQS: &str = include_str!("../../tests/fixtures/events/sqs-event.json");

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Direct {
        go: String,
    }

    fn read(v: Value) -> Result<Event<Direct>, String> {
        Event::read(v, "go")
    }

    #[test]
    fn the_fixtures_are_the_schedule_and_an_sqs_event() {
        let v: Value = serde_json::from_str(SCHEDULED).expect("json");
        let Ok(Event::Schedule(e)) = read(v) else {
            panic!("the schedule")
        };
        assert_eq!(e.resources.expect("resources").len(), 1);
        let v: Value = serde_json::from_str(SQS).expect("json");
        let whole: aws_lambda_events::sqs::SqsEvent =
            serde_json::from_value(v.clone()).expect("an SqsEvent");
        let Ok(Event::Sqs(records)) = read(v) else {
            panic!("an SQS event")
        };
        let read: Vec<SqsMessage> = records.into_iter().map(|r| r.expect("valid")).collect();
        assert_eq!(read, whole.records);
        assert_eq!(read.len(), 2);
    }

    #[test]
    fn a_malformed_record_fails_alone_keeping_its_message_id() {
        let v = json!({"Records": [
            {"messageId": "a", "body": "{}"},
            {"messageId": "b", "attributes": "not a map"},
            {"messageId": 7},
            "a string",
        ]});
        let Ok(Event::Sqs(records)) = read(v) else {
            panic!("an SQS event")
        };
        assert_eq!(
            records[0].as_ref().expect("ok").message_id.as_deref(),
            Some("a")
        );
        assert_eq!(
            records[1].as_ref().expect_err("bad").message_id.as_deref(),
            Some("b")
        );
        assert_eq!(records[2].as_ref().expect_err("bad").message_id, None);
        assert!(
            records[3]
                .as_ref()
                .expect_err("bad")
                .reason
                .contains("record")
        );
    }

    #[test]
    fn every_other_payload_says_what_it_is() {
        let huge = "x".repeat(1 << 20);
        for (bad, says) in [
            (json!(null), "null, not an object"),
            (json!([1]), "an array"),
            (
                json!({"detail-type": "Scheduled Event"}),
                "EventBridge event is malformed",
            ),
            (
                json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change", "detail": {}}),
                "source \"aws.ec2\"",
            ),
            (json!({"Records": {}}), "Records is not an array"),
            (json!({"go": 1}), "direct invoke is malformed"),
            (json!({"go": "x", "extra": 1}), "unknown field"),
            (json!({"nothing": 1, "here": 2}), "its keys: here, nothing"),
            (
                json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}, "resources": huge}),
                "EventBridge event is malformed (invalid type: string \"xxx",
            ),
            (
                json!({"source": "aws.events", "detail-type": huge, "detail": {}}),
                "not the schedule",
            ),
        ] {
            let e = read(bad).expect_err("refused");
            assert!(e.contains(says), "{e}");
            assert!(e.len() < 400, "{} bytes", e.len());
        }
        assert!(matches!(
            read(json!({"go": "x"})),
            Ok(Event::Direct(Direct { .. }))
        ));
    }
}
