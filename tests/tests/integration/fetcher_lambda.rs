//! The `alert-fetcher` binary through the Lambda Runtime API: the scheduled event dispatches one
//! SQS message per active tenant; an SQS batch fetches each tenant into S3 and reports only the
//! failed messages (a malformed record fails only its own); direct invokes page a large fetch
//! under 6 MB, fetch now, and answer status.

use serde_json::{Value, json};
use shared::adapters::aws::{S3AlertSink, s3_client};
use shared::domain::{AlertApi, AuthModel};

use crate::fixtures::{CONTOSO, FABRIKAM, NORTHWIND, WOODGROVE, tid};
use crate::lambda_world::FnWorld;

const SCHEDULED: &str = include_str!("../../fixtures/events/eventbridge-scheduled-event.json");

pub(crate) struct Fetcher {
    pub(crate) w: FnWorld,
    pub(crate) bucket: String,
    pub(crate) queue_url: String,
    sqs: aws_sdk_sqs::Client,
    pub(crate) sink: S3AlertSink,
}

impl Fetcher {
    pub(crate) async fn start() -> Fetcher {
        let w = FnWorld::start(true).await;
        let sdk = w.env.aws_config().await;
        let s3 = s3_client(&sdk);
        let bucket = w.env.unique_name("alerts");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket");
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name(w.env.unique_name("work"))
            .send()
            .await
            .expect("queue")
            .queue_url()
            .expect("url")
            .to_string();
        w.onboard_three().await;
        let sink = S3AlertSink::new(s3, &bucket, None);
        Fetcher {
            w,
            bucket,
            queue_url,
            sqs,
            sink,
        }
    }

    pub(crate) async fn spawn(&self) -> tests::lambda::LambdaProcess {
        let mut env = self.w.lambda_env();
        env.push(("MSSP_BUCKET".into(), self.bucket.clone()));
        env.push(("MSSP_QUEUE_URL".into(), self.queue_url.clone()));
        tests::lambda::LambdaProcess::spawn("alert-fetcher", env)
            .await
            .expect("alert-fetcher binary (run `cargo build --workspace --bins`)")
    }

    /// The messages waiting in the work queue, as (message id, body).
    pub(crate) async fn messages(&self) -> Vec<(String, String)> {
        tests::aws::receive_until(&self.sqs, &self.queue_url, |_| false)
            .await
            .iter()
            .map(|m| {
                (
                    m.message_id().unwrap_or_default().to_string(),
                    m.body().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Tenant `id`'s records in the bucket.
    async fn records(&self, id: &str) -> Vec<shared::record::AlertRecord> {
        self.sink.records(Some(&tid(id))).await.expect("records")
    }
}

/// Invokes `lambda` with `messages` as an SQS batch, which must fail none of them.
async fn batch_ok(
    lambda: &tests::lambda::LambdaProcess,
    messages: &[(String, String)],
    what: &str,
) {
    let batch = lambda.invoke(&sqs_event(messages)).await.expect(what);
    assert!(failed_ids(&batch).is_empty(), "{what}: {batch}");
}

pub(crate) fn sqs_event(messages: &[(String, String)]) -> Value {
    json!({"Records": messages.iter().map(|(id, body)| json!({
        "messageId": id, "receiptHandle": "rh", "body": body,
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work", "awsRegion": "us-east-1"
    })).collect::<Vec<_>>()})
}

/// The `itemIdentifier`s of a batch answer's `batchItemFailures`, sorted.
fn failed_ids(answer: &Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["batchItemFailures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|x| x["itemIdentifier"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn dispatch_then_an_sqs_batch_lands_alerts_in_s3_and_reports_only_the_poisoned_tenant() {
    let f = Fetcher::start().await;
    // Contoso's SIEM API has been turned off: its fetch fails every time (a poisoned tenant).
    f.w.siem_off(CONTOSO).await;
    let fetcher = f.spawn().await;

    let scheduled: Value = serde_json::from_str(SCHEDULED).expect("fixture");
    let d = fetcher.invoke(&scheduled).await.expect("dispatch");
    assert_eq!(d["dispatched"], 3, "{d}");
    let mut messages = f.messages().await;
    assert_eq!(messages.len(), 3, "one message per active tenant");
    messages.push(("garbage-1".into(), "{\"tenant\": 1}".into()));
    let contoso_msg = messages
        .iter()
        .find(|(_, b)| b.contains(CONTOSO))
        .expect("contoso's message")
        .0
        .clone();

    let answer = fetcher.invoke(&sqs_event(&messages)).await.expect("batch");
    let failed = failed_ids(&answer);
    let mut want = vec![contoso_msg, "garbage-1".to_string()];
    want.sort();
    assert_eq!(failed, want);
    for id in [FABRIKAM, NORTHWIND] {
        let records = f.records(id).await;
        assert_eq!(records.len(), 5, "{id}");
    }
    assert!(f.records(CONTOSO).await.is_empty());
    let logs = fetcher.logs();
    assert!(
        logs.contains(FABRIKAM),
        "log lines about a tenant carry its id"
    );
}

#[tokio::test]
async fn a_direct_fetch_larger_than_six_megabytes_is_paged() {
    let f = Fetcher::start().await;
    let specs: Vec<Value> = (0..3000)
        .map(|i| json!({"created": format!("-{}s", 3600 + i), "title": format!("Bulk alert {i} {}", "x".repeat(1500))}))
        .collect();
    for chunk in specs.chunks(500) {
        f.w.control(
            reqwest::Method::POST,
            &format!("tenants/{NORTHWIND}/alerts"),
            Some(json!(chunk)),
        )
        .await;
    }
    let fetcher = f.spawn().await;
    let since = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let mut token: Option<String> = None;
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let mut ev =
            json!({"action": "fetch", "tenant_id": NORTHWIND, "since": since, "limit": 10000});
        if let Some(t) = &token {
            ev["page_token"] = json!(t);
        }
        let a = fetcher.invoke(&ev).await.expect("page");
        let size = serde_json::to_vec(&a).expect("json").len();
        assert!(size < 6_000_000, "an answer of {size} bytes");
        assert_eq!(a["tenant_id"], NORTHWIND);
        pages += 1;
        for r in a["alerts"].as_array().expect("alerts") {
            ids.push(r["dedup_key"].as_str().expect("key").to_string());
        }
        match a["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert!(pages >= 2, "{pages} pages");
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no alert twice across pages");
    assert_eq!(total, 3005, "every alert once");
    assert!(
        f.sink.records(None).await.expect("records").is_empty(),
        "an on-demand fetch moves no cursor and writes nothing"
    );
}

#[tokio::test]
async fn a_direct_fetch_in_ocsf_format_answers_one_valid_detection_finding_per_record() {
    let f = Fetcher::start().await;
    let fetcher = f.spawn().await;
    let since = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    for tenant in [CONTOSO, FABRIKAM, NORTHWIND] {
        let raw = fetcher
            .invoke(
                &json!({"action": "fetch", "tenant_id": tenant, "since": since, "format": "raw"}),
            )
            .await
            .expect("raw");
        let ocsf = fetcher
            .invoke(&json!({"action": "fetch", "tenant_id": tenant, "since": since, "until": raw["until"], "format": "ocsf"}))
            .await
            .expect("ocsf");
        assert_eq!(ocsf["tenant_id"], tenant);
        let events = ocsf["alerts"].as_array().expect("alerts").clone();
        assert!(!events.is_empty(), "{tenant}");
        assert_eq!(ocsf["count"], events.len());
        crate::ocsf::validate_all(&events);
        let uids: Vec<&Value> = events.iter().map(|e| &e["metadata"]["uid"]).collect();
        let keys: Vec<&Value> = raw["alerts"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| &r["dedup_key"])
            .collect();
        assert_eq!(uids, keys, "{tenant}: the same records, in the same order");
        assert!(
            events
                .iter()
                .all(|e| e["cloud"]["account"]["uid"] == tenant),
            "{tenant}"
        );
    }
}

#[tokio::test]
async fn fetch_now_status_and_unknown_payloads() {
    let f = Fetcher::start().await;
    f.w.register(
        WOODGROVE,
        "Woodgrove",
        AuthModel::Application,
        AlertApi::Graph,
    )
    .await;
    let fetcher = f.spawn().await;
    let r = fetcher
        .invoke(&json!({"action": "fetch_now", "tenant_id": FABRIKAM}))
        .await
        .expect("fetch now");
    assert_eq!(r["tenant_id"], FABRIKAM);
    assert_eq!(r["report"]["delivered"], 5);
    let s = fetcher
        .invoke(&json!({"action": "status"}))
        .await
        .expect("status");
    let tenants = s["tenants"].as_array().expect("tenants");
    assert_eq!(tenants.len(), 4);
    let fab = tenants
        .iter()
        .find(|t| t["tenant_id"] == FABRIKAM)
        .expect("fabrikam");
    assert!(
        fab["lag_s"].as_i64().is_some() && fab["last_fetch_ok"] == true,
        "{fab}"
    );
    let wood = tenants
        .iter()
        .find(|t| t["tenant_id"] == WOODGROVE)
        .expect("woodgrove");
    assert_eq!(wood["status"], "pending_consent");
    assert!(
        wood["consent_link"]
            .as_str()
            .is_some_and(|l| l.contains("/consent/start?link="))
    );
    let one = fetcher
        .invoke(&json!({"action": "status", "tenant_id": NORTHWIND}))
        .await
        .expect("status");
    assert_eq!(one["tenant_id"], NORTHWIND);
    for bad in [
        json!({}),
        json!({"action": "delete"}),
        json!({"action": "fetch", "tenant_id": "x", "since": "2026-01-01T00:00:00Z"}),
    ] {
        let e = fetcher.invoke(&bad).await.expect_err("refused");
        assert_eq!(e.error_type, "InvalidEvent", "{bad}");
        assert!(
            e.error_message.contains("fetch_now"),
            "lists the accepted shapes"
        );
    }
}

#[tokio::test]
async fn a_malformed_sqs_record_fails_only_its_own_message() {
    let f = Fetcher::start().await;
    let fetcher = f.spawn().await;
    let work = |id: &str| format!("{{\"tenant_id\":\"{id}\"}}");
    let named: Vec<(String, String)> = [
        ("good-fabrikam", work(FABRIKAM)),
        ("good-northwind", work(NORTHWIND)),
        ("body-not-json", "not json".into()),
        ("body-another-shape", "{\"tenant\": 1}".into()),
        ("body-not-a-guid", work("contoso")),
        (
            "body-extra-field",
            format!("{{\"tenant_id\":\"{FABRIKAM}\",\"x\":1}}"),
        ),
        ("body-1-mb", "x".repeat(1 << 20)),
        ("body-an-array", "[1,2]".into()),
    ]
    .into_iter()
    .map(|(id, body)| (id.to_owned(), body))
    .collect();
    let mut event = sqs_event(&named);
    let records = event["Records"].as_array_mut().expect("records");
    let mut truncated = records[0].clone();
    truncated
        .as_object_mut()
        .expect("record")
        .retain(|k, _| k == "messageId");
    truncated["messageId"] = json!("truncated-no-body");
    let mut bad_attributes = records[0].clone();
    bad_attributes["messageId"] = json!("attributes-a-string");
    bad_attributes["attributes"] = json!("ApproximateReceiveCount=1");
    let mut null_body = records[0].clone();
    null_body["messageId"] = json!("body-null");
    null_body["body"] = Value::Null;
    // Contoso's: two messages of one tenant in one batch would race for its lease.
    let mut nameless = records[1].clone();
    nameless
        .as_object_mut()
        .expect("record")
        .remove("messageId");
    nameless["body"] = json!(work(CONTOSO));
    let mut numbered = records[2].clone();
    numbered["messageId"] = json!(7);
    records.extend([
        truncated,
        bad_attributes,
        null_body,
        // None of these can be named in batchItemFailures (an empty itemIdentifier fails the
        // whole batch): the nameless one is still a work item and fetched, the others dropped.
        nameless,
        numbered,
        json!("a record that is a string"),
        json!(null),
    ]);

    let answer = fetcher.invoke(&event).await.expect("a batch answer");
    let failed = failed_ids(&answer);
    let mut want: Vec<String> = named
        .iter()
        .map(|(id, _)| id.clone())
        .filter(|id| !id.starts_with("good-"))
        .chain(["truncated-no-body", "attributes-a-string", "body-null"].map(String::from))
        .collect();
    want.sort();
    assert_eq!(failed, want, "{answer}");
    for id in [FABRIKAM, NORTHWIND, CONTOSO] {
        let records = f.records(id).await;
        assert_eq!(records.len(), 5, "{id}: the good work items were fetched");
    }
    let logs = fetcher.logs();
    assert!(logs.contains("has no messageId"), "{logs:.2000}");
    assert!(!logs.contains("panicked"));
}

#[tokio::test]
async fn a_backfill_invoke_continues_through_the_queue_and_the_sweep_schedule_dispatches_sweeps() {
    let f = Fetcher::start().await;
    let lambda = f.spawn().await;
    // History older than the regular fetch's 7-day lookback.
    let old: Vec<Value> = (0..25)
        .map(|i| json!({"created": format!("-{}h", 200 + 10 * i), "title": format!("History {i}")}))
        .collect();
    f.w.control(
        reqwest::Method::POST,
        &format!("tenants/{NORTHWIND}/alerts"),
        Some(json!(old)),
    )
    .await;
    // The regular fetch first: it sets where the regular coverage starts.
    let first = json!({"tenant_id": NORTHWIND});
    batch_ok(&lambda, &[("m-1".into(), first.to_string())], "fetch batch").await;
    let regular = f.records(NORTHWIND).await.len();

    let since = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();
    let asked = lambda
        .invoke(&json!({"action": "backfill", "tenant_id": NORTHWIND, "since": since}))
        .await
        .expect("backfill asked");
    assert_eq!(asked["tenant_id"], NORTHWIND, "{asked}");
    let queued = f.messages().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(queued[0].1.contains("\"job\":\"backfill\""), "{queued:?}");
    batch_ok(&lambda, &queued, "backfill batch").await;
    let records = f.records(NORTHWIND).await;
    assert_eq!(records.len(), regular + 25, "the history, once");
    let mut keys: Vec<&str> = records.iter().map(|r| r.dedup_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), records.len(), "no duplicate");
    let health = lambda
        .invoke(&json!({"action": "status", "tenant_id": NORTHWIND}))
        .await
        .expect("status");
    assert!(
        health["tenants"][0]["backfill"].is_null(),
        "finished: {health}"
    );

    // The sweep's schedule: a sweep item per active tenant, each a slice of its sweep.
    let dispatched = lambda
        .invoke(&json!({"action": "dispatch", "job": "sweep"}))
        .await
        .expect("sweep dispatch");
    assert_eq!(dispatched["dispatched"], 3, "{dispatched}");
    let sweeps = f.messages().await;
    assert!(
        sweeps.iter().all(|(_, b)| b.contains("\"job\":\"sweep\"")),
        "{sweeps:?}"
    );
    batch_ok(&lambda, &sweeps, "sweep batch").await;
    let after = f.records(NORTHWIND).await;
    assert_eq!(after.len(), records.len(), "nothing is late here");
}
