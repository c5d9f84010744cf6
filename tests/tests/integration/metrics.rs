//! Metrics (shared/src/metrics.rs), as their consumers read them:
//!
//! - the Lambda binaries' stdout, through the Runtime API harness: every line is a CloudWatch
//!   Embedded Metric Format document that passes [`emf_violations`], a check of every
//!   requirement of the specification, and its values are what the invocations did;
//! - `mssp serve`'s `GET /metrics` is read by [`parse_prometheus`], a strict reader of the
//!   Prometheus text format (`cli.rs` serves it and compares it with the sink);
//! - the Terraform dashboard shows every metric the functions write (the applied dashboard and
//!   alarms are checked against moto in `infra_e2e.rs`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use shared::metrics::Metric;
use tests::lambda::LambdaProcess;

use crate::fetcher_lambda::{Fetcher, sqs_event};
use crate::fixtures::{CONTOSO, FABRIKAM, NORTHWIND, tid};
use crate::lambda_world::FnWorld;

const SCHEDULED: &str = include_str!("../../fixtures/events/eventbridge-scheduled-event.json");
const NAMESPACE: &str = "MSSPAlerts/metrics-test";

/// The units CloudWatch accepts (the specification's JSON schema, `MetricDatum`).
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Every way `doc` breaks the Embedded Metric Format specification (CloudWatch User Guide,
/// "Specification: Embedded metric format"); empty when it is a valid document:
///
/// - the root is an object with an `_aws` object holding exactly `Timestamp` (an integer of
///   milliseconds since the epoch) and `CloudWatchMetrics` (an array of MetricDirectives);
/// - a MetricDirective holds exactly `Namespace` (a string of 1-255 characters), `Dimensions` (a
///   non-empty array of DimensionSets) and `Metrics` (at most 100 MetricDefinitions);
/// - a DimensionSet is an array of at most 30 strings, each naming a root member whose value is
///   a string of 1-1,024 characters;
/// - a MetricDefinition holds `Name` and optionally `Unit` (a CloudWatch unit) and
///   `StorageResolution` (1 or 60), nothing else; `Name` names a root member whose value is a
///   number, or an array of at most 100 numbers;
/// - no metric is declared twice in one document (CloudWatch would extract it twice).
pub(crate) fn emf_violations(doc: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let Some(root) = doc.as_object() else {
        return vec!["the root is not an object".into()];
    };
    let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
        return vec!["no _aws object".into()];
    };
    for k in aws.keys() {
        if k != "Timestamp" && k != "CloudWatchMetrics" {
            bad.push(format!("_aws has an extra member {k}"));
        }
    }
    match aws.get("Timestamp").and_then(Value::as_i64) {
        Some(ms) if ms > 1_000_000_000_000 => {}
        Some(ms) => bad.push(format!(
            "Timestamp {ms} is not milliseconds since the epoch"
        )),
        None => bad.push("Timestamp is missing or not an integer".into()),
    }
    let Some(directives) = aws.get("CloudWatchMetrics").and_then(Value::as_array) else {
        bad.push("CloudWatchMetrics is missing or not an array".into());
        return bad;
    };
    let mut declared = BTreeSet::new();
    for (i, d) in directives.iter().enumerate() {
        let Some(d) = d.as_object() else {
            bad.push(format!("directive {i} is not an object"));
            continue;
        };
        for k in d.keys() {
            if !["Namespace", "Dimensions", "Metrics"].contains(&k.as_str()) {
                bad.push(format!("directive {i} has an extra member {k}"));
            }
        }
        match d.get("Namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns.len() <= 255 => {}
            other => bad.push(format!("directive {i}: Namespace {other:?}")),
        }
        match d.get("Dimensions").and_then(Value::as_array) {
            Some(sets) if !sets.is_empty() => {
                for set in sets {
                    let Some(keys) = set.as_array() else {
                        bad.push(format!("directive {i}: a DimensionSet is not an array"));
                        continue;
                    };
                    if keys.len() > 30 {
                        bad.push(format!("directive {i}: {} dimension keys", keys.len()));
                    }
                    for key in keys {
                        let Some(key) = key.as_str().filter(|k| !k.is_empty() && k.len() <= 250)
                        else {
                            bad.push(format!("directive {i}: dimension key {key}"));
                            continue;
                        };
                        match root.get(key).and_then(Value::as_str) {
                            Some(v) if !v.is_empty() && v.chars().count() <= 1024 => {}
                            other => bad.push(format!(
                                "directive {i}: dimension {key} is {other:?}, not a string member"
                            )),
                        }
                    }
                }
            }
            _ => bad.push(format!(
                "directive {i}: Dimensions is missing, empty or not an array"
            )),
        }
        let Some(metrics) = d.get("Metrics").and_then(Value::as_array) else {
            bad.push(format!("directive {i}: Metrics is missing or not an array"));
            continue;
        };
        if metrics.len() > 100 {
            bad.push(format!("directive {i}: {} metrics", metrics.len()));
        }
        for m in metrics {
            let Some(m) = m.as_object() else {
                bad.push(format!(
                    "directive {i}: a MetricDefinition is not an object"
                ));
                continue;
            };
            for k in m.keys() {
                if !["Name", "Unit", "StorageResolution"].contains(&k.as_str()) {
                    bad.push(format!("directive {i}: a MetricDefinition has {k}"));
                }
            }
            let Some(name) = m
                .get("Name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty() && n.len() <= 1024)
            else {
                bad.push(format!("directive {i}: a MetricDefinition without a Name"));
                continue;
            };
            if !declared.insert(name.to_string()) {
                bad.push(format!("{name} is declared twice"));
            }
            if let Some(unit) = m.get("Unit")
                && !unit.as_str().is_some_and(|u| UNITS.contains(&u))
            {
                bad.push(format!("{name}: Unit {unit} is no CloudWatch unit"));
            }
            if let Some(r) = m.get("StorageResolution")
                && r != &json!(1)
                && r != &json!(60)
            {
                bad.push(format!("{name}: StorageResolution {r}"));
            }
            let number = match root.get(name) {
                Some(Value::Number(_)) => true,
                Some(Value::Array(a)) => a.len() <= 100 && a.iter().all(Value::is_number),
                _ => false,
            };
            if !number {
                bad.push(format!(
                    "{name}: the member is {:?}, not a number",
                    root.get(name)
                ));
            }
        }
    }
    bad
}

/// The EMF documents among `lines`, each checked by [`emf_violations`]; a line that is not one
/// fails the test (stdout carries nothing else).
fn emf_documents(function: &str, lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let doc: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{function} wrote a line that is not JSON ({e}): {l}"));
            let bad = emf_violations(&doc);
            assert!(bad.is_empty(), "{function}: {bad:?} in {l}");
            doc
        })
        .collect()
}

/// The dimension sets `doc` declares for `metric`, and its namespace.
fn declared(doc: &Value, metric: &str) -> Option<(String, Value)> {
    doc["_aws"]["CloudWatchMetrics"]
        .as_array()?
        .iter()
        .find(|d| {
            d["Metrics"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["Name"] == metric))
        })
        .map(|d| {
            (
                d["Namespace"].as_str().unwrap_or_default().to_string(),
                d["Dimensions"].clone(),
            )
        })
}

fn metric_env() -> Vec<(String, String)> {
    vec![
        ("MSSP_METRICS_NAMESPACE".into(), NAMESPACE.into()),
        ("MSSP_METRICS_PER_TENANT".into(), "true".into()),
    ]
}

#[tokio::test]
async fn the_fetchers_emf_lines_follow_the_specification_and_count_what_it_delivered() {
    let f = Fetcher::start().await;
    // Contoso's SIEM API is turned off: its fetch fails.
    f.w.siem_off(CONTOSO).await;
    let mut env = f.w.lambda_env();
    env.push(("MSSP_BUCKET".into(), f.bucket.clone()));
    env.push(("MSSP_QUEUE_URL".into(), f.queue_url.clone()));
    env.extend(metric_env());
    let fetcher = LambdaProcess::spawn("alert-fetcher", env)
        .await
        .expect("alert-fetcher binary (run `cargo build --workspace --bins`)");

    let scheduled: Value = serde_json::from_str(SCHEDULED).expect("fixture");
    fetcher.invoke(&scheduled).await.expect("dispatch");
    let messages = f.messages().await;
    assert_eq!(messages.len(), 3, "one message per active tenant");
    fetcher.invoke(&sqs_event(&messages)).await.expect("batch");
    let now = fetcher
        .invoke(&json!({"action": "fetch_now", "tenant_id": FABRIKAM}))
        .await
        .expect("fetch now");
    assert_eq!(now["report"]["delivered"], 0, "nothing new: {now}");

    let docs = emf_documents("alert-fetcher", &fetcher.stdout());
    let fetches: Vec<&Value> = docs.iter().filter(|d| d["Event"] == "fetch").collect();
    assert_eq!(fetches.len(), 4, "one line per fetch: {docs:?}");
    for (id, api) in [(CONTOSO, "siem"), (FABRIKAM, "mde"), (NORTHWIND, "graph")] {
        let lines: Vec<&&Value> = fetches.iter().filter(|d| d["TenantId"] == id).collect();
        assert!(!lines.is_empty(), "{id}: no metrics line");
        for d in &lines {
            assert_eq!(d["Api"], api, "{d}");
            assert!(d["LagSeconds"].as_f64().is_some_and(|l| l >= 0.0), "{d}");
            let (ns, sets) = declared(d, "LagSeconds").expect("lag declared");
            assert_eq!(ns, NAMESPACE);
            assert_eq!(
                sets,
                json!([["Api"], [], ["TenantId"]]),
                "lag per API, fleet, and tenant (MSSP_METRICS_PER_TENANT)"
            );
            let (_, sets) = declared(d, "AlertsDelivered").expect("delivered declared");
            assert_eq!(
                sets,
                json!([["Api"], []]),
                "no tenant dimension on deliveries"
            );
        }
        let delivered: f64 = lines
            .iter()
            .map(|d| d["AlertsDelivered"].as_f64().expect("a number"))
            .sum();
        let in_s3 = f.sink.records(Some(&tid(id))).await.expect("records").len();
        assert_eq!(delivered, in_s3 as f64, "{id}: EMF deliveries = objects");
        let failures: f64 = lines
            .iter()
            .map(|d| d["FetchFailures"].as_f64().expect("a number"))
            .sum();
        assert_eq!(failures, if id == CONTOSO { 1.0 } else { 0.0 }, "{id}");
    }
    let contoso = fetches
        .iter()
        .find(|d| d["TenantId"] == CONTOSO)
        .expect("contoso");
    assert_eq!(
        contoso["SiemRegionMismatches"], 0,
        "a SIEM tenant's failure that is not a region mismatch: {contoso}"
    );
    let idle = fetches.last().expect("the fetch_now line");
    assert_eq!(idle["TenantId"], FABRIKAM);
    assert_eq!(idle["AlertsDelivered"], 0);
    assert_eq!(
        idle["LagSeconds"], 0,
        "a fetch that found the window complete trails by nothing: {idle}"
    );
    // Nothing on stdout but metrics; the logs went to stderr.
    assert!(
        fetcher.logs().lines().count() > docs.len(),
        "tracing writes to stderr"
    );
}

#[tokio::test]
async fn token_refreshs_emf_lines_count_renewed_tenants_and_each_that_needs_reconsent() {
    let w = FnWorld::start(true).await;
    w.onboard_three().await;
    for id in [CONTOSO, FABRIKAM, NORTHWIND] {
        let mut t = w.tokens(id).await.expect("tokens");
        t.expires_at = Some(chrono::Utc::now() + chrono::Duration::minutes(1));
        w.services.tokens.put(&t).await.expect("put");
    }
    let mut env = w.lambda_env();
    env.extend(metric_env());
    let refresh = LambdaProcess::spawn("token-refresh", env)
        .await
        .expect("token-refresh binary");
    let scheduled: Value = serde_json::from_str(SCHEDULED).expect("fixture");
    let summary = refresh.invoke(&scheduled).await.expect("summary");
    assert_eq!(
        summary["refreshed"].as_array().map(Vec::len),
        Some(3),
        "{summary}"
    );

    w.control(
        reqwest::Method::POST,
        &format!("tenants/{CONTOSO}/users/admin@contoso.onmicrosoft.com/revoke"),
        None,
    )
    .await;
    let e = refresh
        .invoke(&json!({"tenant_id": CONTOSO}))
        .await
        .expect_err("re-consent needed");
    assert_eq!(e.error_type, "ReconsentRequired", "{e}");

    let docs = emf_documents("token-refresh", &refresh.stdout());
    assert_eq!(docs.len(), 2, "{docs:?}");
    let run = &docs[0];
    assert_eq!(run["TokensRefreshed"], 3, "{run}");
    assert_eq!(run["TenantsNeedingReconsent"], 0, "{run}");
    assert_eq!(run["RefreshFailures"], 0, "{run}");
    assert_eq!(
        declared(run, "TokensRefreshed"),
        Some((NAMESPACE.to_string(), json!([[]]))),
        "a fleet metric, no dimension"
    );
    let one = &docs[1];
    assert_eq!(one["TenantsNeedingReconsent"], 1, "{one}");
    assert_eq!(one["TenantId"], CONTOSO, "the tenant, as a member: {one}");
    assert_eq!(
        declared(one, "TenantsNeedingReconsent"),
        Some((NAMESPACE.to_string(), json!([[]]))),
        "the alarm's metric: the fleet's count"
    );
}

#[test]
fn the_validator_refuses_what_the_specification_forbids() {
    let good = json!({
        "_aws": {"Timestamp": 1_700_000_000_000_i64, "CloudWatchMetrics": [{
            "Namespace": "N", "Dimensions": [["Api"], []],
            "Metrics": [{"Name": "M", "Unit": "Count"}, {"Name": "V", "StorageResolution": 60}]
        }]},
        "Api": "graph", "M": 1, "V": [1, 2.5]
    });
    assert_eq!(emf_violations(&good), Vec::<String>::new());
    let broken: Vec<(&str, Value)> = vec![
        ("/_aws/Timestamp", json!(1_700_000_000)),
        ("/_aws/Timestamp", json!("now")),
        ("/_aws/Extra", json!(1)),
        ("/_aws/CloudWatchMetrics/0/Namespace", json!("")),
        ("/_aws/CloudWatchMetrics/0/Dimensions", json!([])),
        (
            "/_aws/CloudWatchMetrics/0/Dimensions",
            json!([(0..31).map(|i| format!("d{i}")).collect::<Vec<_>>()]),
        ),
        ("/_aws/CloudWatchMetrics/0/Dimensions", json!([["Missing"]])),
        ("/Api", json!(3)),
        ("/_aws/CloudWatchMetrics/0/Metrics/0/Unit", json!("Parsecs")),
        (
            "/_aws/CloudWatchMetrics/0/Metrics/0/StorageResolution",
            json!(5),
        ),
        ("/_aws/CloudWatchMetrics/0/Metrics/0/Extra", json!(1)),
        ("/_aws/CloudWatchMetrics/0/Extra", json!(1)),
        ("/M", json!("1")),
        ("/V", json!((0..101).collect::<Vec<_>>())),
        (
            "/_aws/CloudWatchMetrics/0/Metrics",
            json!(
                (0..101)
                    .map(|i| json!({"Name": format!("m{i}")}))
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "/_aws/CloudWatchMetrics/0/Metrics/1",
            json!({"Name": "M", "Unit": "Count"}),
        ),
    ];
    for (pointer, value) in broken {
        let mut doc = good.clone();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        let target = doc.pointer_mut(parent).expect("parent");
        match target {
            Value::Object(o) => {
                o.insert(key.to_string(), value.clone());
            }
            Value::Array(a) => a[key.parse::<usize>().expect("index")] = value.clone(),
            _ => panic!("{pointer}"),
        }
        assert!(
            !emf_violations(&doc).is_empty(),
            "{pointer} = {value} passed"
        );
    }
    assert!(!emf_violations(&json!({"M": 1})).is_empty());
}

/// One metric family of a Prometheus text page.
#[derive(Debug, Default)]
pub(crate) struct Family {
    /// `counter` or `gauge` (the only types the product serves).
    pub(crate) kind: String,
    /// The `# HELP` text, unescaped.
    pub(crate) help: String,
    /// Each series: labels, value.
    pub(crate) samples: Vec<(BTreeMap<String, String>, f64)>,
}

impl Family {
    /// The value of the series with exactly `labels`.
    pub(crate) fn value(&self, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(l, _)| *l == want)
            .map(|(_, v)| *v)
    }
}

fn metric_name_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

fn unescape(s: &str, quotes: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            other => return Err(format!("bad escape \\{other:?} in {s:?}")),
        }
    }
    Ok(out)
}

/// `{a="x",b="y"}` → labels, strictly: names valid and unique, values quoted and escaped only
/// as `\\`, `\"`, `\n`.
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("no =\" in {rest:?}"))?;
        if !label_name_ok(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, '\n') => return Err("a raw line feed in a label value".into()),
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unterminated label value in {s:?}"))?;
        let value = unescape(&after[..end], true)?;
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.is_empty() {
            return Err(format!("junk after a label value: {rest:?}"));
        }
    }
    Ok(labels)
}

/// A Prometheus text page (exposition format 0.0.4) read strictly: `\n` line ends including
/// the last; `# HELP` and `# TYPE` at most once per family and before its samples; every sample
/// of a family together; valid metric and label names, label values escaped, values numbers; no
/// series twice; every family typed `counter` or `gauge`, a counter's name ending in `_total` and
/// its values not negative.
pub(crate) fn parse_prometheus(text: &str) -> Result<BTreeMap<String, Family>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line does not end with a line feed".into());
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut switch_to = |name: &str, current: &mut Option<String>| -> Result<(), String> {
        if current.as_deref() != Some(name) {
            if finished.contains(name) {
                return Err(format!("the lines of {name} are not together"));
            }
            if let Some(c) = current.take() {
                finished.insert(c);
            }
            *current = Some(name.to_string());
        }
        Ok(())
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            switch_to(name, &mut current)?;
            let f = families.entry(name.to_string()).or_default();
            if !f.help.is_empty() || !f.samples.is_empty() {
                return Err(format!("HELP of {name} twice or after its samples"));
            }
            f.help = unescape(help, false)?;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| format!("TYPE without a type: {line}"))?;
            switch_to(name, &mut current)?;
            if !["counter", "gauge"].contains(&kind) {
                return Err(format!("{name}: type {kind}"));
            }
            let f = families.entry(name.to_string()).or_default();
            if !f.kind.is_empty() || !f.samples.is_empty() {
                return Err(format!("TYPE of {name} twice or after its samples"));
            }
            f.kind = kind.to_string();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("a sample without a value: {line}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("unclosed labels: {line}"))?;
                (name, parse_labels(inner)?)
            }
            None => (series, BTreeMap::new()),
        };
        if !metric_name_ok(name) {
            return Err(format!("bad metric name {name:?}"));
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|e| format!("value {v:?}: {e}"))?,
        };
        switch_to(name, &mut current)?;
        let f = families.entry(name.to_string()).or_default();
        if f.kind.is_empty() {
            return Err(format!("{name} has a sample before its TYPE"));
        }
        if f.kind == "counter" && (!name.ends_with("_total") || value < 0.0 || value.is_nan()) {
            return Err(format!("counter {name} = {value}"));
        }
        if f.samples.iter().any(|(l, _)| *l == labels) {
            return Err(format!("{name}{labels:?} twice"));
        }
        f.samples.push((labels, value));
    }
    Ok(families)
}

#[test]
fn the_prometheus_reader_refuses_what_the_format_forbids() {
    let good = "# HELP a_total Things, \\\\ and \\n.\n# TYPE a_total counter\n\
                a_total{x=\"q\\\"\\\\\\n\",y=\"2\"} 3\na_total 1.5\n# TYPE b gauge\nb -2\n";
    let f = parse_prometheus(good).expect("valid");
    assert_eq!(f["a_total"].help, "Things, \\ and \n.");
    assert_eq!(
        f["a_total"].value(&[("x", "q\"\\\n"), ("y", "2")]),
        Some(3.0)
    );
    assert_eq!(f["b"].value(&[]), Some(-2.0));
    for bad in [
        "# TYPE a counter\na 1\n",
        "# TYPE a_total counter\na_total -1\n",
        "# TYPE b gauge\nb 1",
        "b 1\n",
        "# TYPE b gauge\n# TYPE b gauge\nb 1\n",
        "# TYPE b gauge\nb{x=\"1\"} 1\nb{x=\"1\"} 2\n",
        "# TYPE b gauge\nb{x=\"a\\q\"} 1\n",
        "# TYPE b gauge\nb{x=\"a} 1\n",
        "# TYPE b gauge\nb{1x=\"a\"} 1\n",
        "# TYPE b gauge\nb one\n",
        "# TYPE b gauge\nb 1\n# TYPE c gauge\nc 1\nb 2\n",
        "# TYPE b histogram\nb 1\n",
        "# TYPE b-c gauge\nb-c 1\n",
    ] {
        assert!(parse_prometheus(bad).is_err(), "{bad:?} passed");
    }
}

#[test]
fn the_dashboard_shows_every_metric_the_functions_write() {
    let dir = tests::workspace_root().join("infra/modules/mssp-alerts");
    let dashboard = std::fs::read_to_string(dir.join("dashboard.tf")).expect("dashboard.tf");
    let alarms = std::fs::read_to_string(dir.join("alarms.tf")).expect("alarms.tf");
    for m in Metric::ALL.into_iter().filter(|m| m.on_lambda()) {
        assert!(
            dashboard.contains(&format!("\"{}\"", m.name())),
            "dashboard.tf does not show {}",
            m.name()
        );
    }
    for alarmed in [
        Metric::LagSeconds,
        Metric::TenantsNeedingReconsent,
        Metric::AppCredentialsRefused,
        Metric::ClientSecretDaysLeft,
    ] {
        assert!(
            alarms.contains(&format!("metric      = \"{}\"", alarmed.name())),
            "alarms.tf has no alarm on {}",
            alarmed.name()
        );
    }
}
