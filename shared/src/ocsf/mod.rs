#![doc = include_str!("MAPPING.md")]

mod evidence;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::domain::AlertApi;
use crate::microsoft::alerts::parse_time;
use crate::record::{AlertRecord, Change};

/// The OCSF schema version every rendering targets: the one Amazon Security Lake validates
/// custom sources against (MAPPING.md, "Version").
pub const VERSION: &str = "1.1.0";
/// Detection Finding.
pub const CLASS_UID: i64 = 2004;
/// Findings.
pub const CATEGORY_UID: i64 = 2;
/// `class_name` of [`CLASS_UID`].
pub const CLASS_NAME: &str = "Detection Finding";

/// An OCSF object under construction: attributes are only set when they carry a value.
#[derive(Debug, Default, Clone)]
pub(crate) struct Obj(Map<String, Value>);

impl Obj {
    pub(crate) fn new() -> Self {
        Obj(Map::new())
    }

    /// Sets `key` when `value` is not null, `""`, `[]` or `{}`.
    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        if !is_empty(&value) {
            self.0.insert(key.to_owned(), value);
        }
        self
    }

    pub(crate) fn set_obj(&mut self, key: &str, obj: Obj) -> &mut Self {
        self.set(key, obj.into_value())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub(crate) fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// Whether a source value carries no information (null, `""`, `[]`, `{}`): such values are not
/// rendered and not kept in `unmapped`.
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// What is left of a source object as the mapping takes fields out of it; the rest goes to
/// `unmapped`.
#[derive(Debug, Default)]
pub(crate) struct Source(Map<String, Value>);

impl Source {
    pub(crate) fn of(v: &Value) -> Self {
        Source(v.as_object().cloned().unwrap_or_default())
    }

    /// Takes field `k` (absent, null, `""`, `[]` and `{}` are `None`).
    pub(crate) fn take(&mut self, k: &str) -> Option<Value> {
        self.0.remove(k).filter(|v| !is_empty(v))
    }

    /// Takes a string field.
    pub(crate) fn str(&mut self, k: &str) -> Option<String> {
        match self.0.get(k) {
            Some(Value::String(s)) if !s.is_empty() => {
                let s = s.clone();
                self.0.remove(k);
                Some(s)
            }
            Some(Value::Null) => {
                self.0.remove(k);
                None
            }
            Some(Value::String(_)) => {
                self.0.remove(k);
                None
            }
            _ => None,
        }
    }

    /// Takes a number field (an integer, or a string holding one).
    pub(crate) fn int(&mut self, k: &str) -> Option<i64> {
        let n = match self.0.get(k)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Null => None,
            _ => return None,
        };
        if n.is_some() || self.0.get(k).is_some_and(Value::is_null) {
            self.0.remove(k);
        }
        n
    }

    /// Takes a time field as OCSF `timestamp_t` (milliseconds since the epoch); a value that is
    /// no time stays for `unmapped`.
    pub(crate) fn time(&mut self, k: &str) -> Option<i64> {
        let t = self.0.get(k)?.as_str().and_then(parse_time)?;
        self.0.remove(k);
        Some(millis(t))
    }

    /// What is left, without the values that carry nothing.
    pub(crate) fn rest(self) -> Map<String, Value> {
        self.0.into_iter().filter(|(_, v)| !is_empty(v)).collect()
    }
}

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `(id, caption)` of an OCSF enum value.
type Enum = (i64, &'static str);

/// The OCSF `severity_id` of an API severity (Graph `unknown|informational|low|medium|high`, MDE
/// and SIEM `UnSpecified|Informational|Low|Medium|High`); anything else is `99` Other.
pub fn severity(s: &str) -> Enum {
    match s.to_ascii_lowercase().as_str() {
        "unknown" | "unspecified" => (0, "Unknown"),
        "informational" => (1, "Informational"),
        "low" => (2, "Low"),
        "medium" => (3, "Medium"),
        "high" => (4, "High"),
        _ => (99, "Other"),
    }
}

/// The OCSF Finding `status_id` of an API status (Graph `new|inProgress|resolved|unknown`, MDE
/// `New|InProgress|Resolved|Unknown`); anything else is `99` Other.
pub fn status(s: &str) -> Enum {
    match s.to_ascii_lowercase().as_str() {
        "unknown" => (0, "Unknown"),
        "new" => (1, "New"),
        "inprogress" => (2, "In Progress"),
        "resolved" => (4, "Resolved"),
        _ => (99, "Other"),
    }
}

/// The Finding `activity_id`: `1` Create for a `created` record, `3` Close for a later version
/// of a resolved alert, else `2` Update.
pub fn activity(change: Change, status_id: Option<i64>) -> Enum {
    match (change, status_id) {
        (Change::Created, _) => (1, "Create"),
        (Change::Updated, Some(4)) => (3, "Close"),
        (Change::Updated, _) => (2, "Update"),
    }
}

/// The product that raised the alert, by Graph `serviceSource`.
fn service_product(service: &str) -> Option<&'static str> {
    Some(match service {
        "microsoftDefenderForEndpoint" => "Microsoft Defender for Endpoint",
        "microsoftDefenderForIdentity" => "Microsoft Defender for Identity",
        "microsoftDefenderForCloudApps" => "Microsoft Defender for Cloud Apps",
        "microsoftDefenderForOffice365" => "Microsoft Defender for Office 365",
        "microsoft365Defender" => "Microsoft Defender XDR",
        "azureAdIdentityProtection" => "Microsoft Entra ID Protection",
        "microsoftAppGovernance" => "Microsoft App Governance",
        "dataLossPrevention" => "Microsoft Purview Data Loss Prevention",
        "microsoftDefenderForCloud" => "Microsoft Defender for Cloud",
        _ => return None,
    })
}

/// The API's field names for what every alert has.
struct Fields {
    id: &'static str,
    title: &'static str,
    description: &'static str,
    severity: &'static str,
    status: Option<&'static str>,
    category: &'static str,
    created: &'static str,
    modified: &'static str,
    first_seen: &'static str,
    last_seen: Option<&'static str>,
    detection_source: &'static str,
    detector: &'static str,
    mitre: Option<&'static str>,
    link: &'static str,
    evidence: Option<&'static str>,
}

const GRAPH: Fields = Fields {
    id: "id",
    title: "title",
    description: "description",
    severity: "severity",
    status: Some("status"),
    category: "category",
    created: "createdDateTime",
    modified: "lastUpdateDateTime",
    first_seen: "firstActivityDateTime",
    last_seen: Some("lastActivityDateTime"),
    detection_source: "detectionSource",
    detector: "detectorId",
    mitre: Some("mitreTechniques"),
    link: "alertWebUrl",
    evidence: Some("evidence"),
};

/// MDE names only the times differently from Graph.
const MDE: Fields = Fields {
    created: "alertCreationTime",
    modified: "lastUpdateTime",
    first_seen: "firstEventTime",
    last_seen: Some("lastEventTime"),
    ..GRAPH
};

const SIEM: Fields = Fields {
    id: "AlertId",
    title: "AlertTitle",
    description: "Description",
    severity: "Severity",
    status: None,
    category: "Category",
    created: "AlertTime",
    modified: "LastProcessedTimeUtc",
    first_seen: "AlertTime",
    last_seen: None,
    detection_source: "Source",
    detector: "IoaDefinitionId",
    mitre: None,
    link: "LinkToMTP",
    evidence: None,
};

/// The OCSF Detection Finding (class 2004, OCSF [`VERSION`]) of `record`: one event per record,
/// whatever the API. The mapping is MAPPING.md's table; every alert field it does not place
/// stays, under its API name, in `unmapped`.
pub fn map(record: &AlertRecord) -> Value {
    let alert = record.alert_json();
    let mut src = Source::of(&alert);
    let f = match record.source {
        AlertApi::Graph => &GRAPH,
        AlertApi::Mde => &MDE,
        AlertApi::Siem => &SIEM,
    };
    let version_time = parse_time(&record.alert_version).map(millis);
    let finding = Finding::take(&mut src, f, record, version_time);
    let verdict = Verdict::take(&mut src, f, record.change);
    let product = product(&mut src, record.source, finding.detection_source.as_deref());
    let metadata = metadata(record, product);
    let ev = match (record.source, f.evidence) {
        (AlertApi::Siem, _) => evidence::siem(&mut src),
        (api, Some(k)) => evidence::items(api, src.take(k)),
        _ => evidence::Evidences::default(),
    };
    let device = match record.source {
        AlertApi::Mde => evidence::mde_device(&mut src),
        _ => ev.device.clone(),
    };
    let unmapped = unmapped(src, ev.unmapped, record);

    let mut event = Obj::new();
    event
        .set("class_uid", CLASS_UID)
        .set("class_name", CLASS_NAME)
        .set("category_uid", CATEGORY_UID)
        .set("category_name", "Findings");
    verdict.activity_and_severity(&mut event);
    event
        .set("time", version_time.or(finding.modified).unwrap_or(0))
        .set("message", finding.title)
        .set_obj("metadata", metadata)
        .set("cloud", cloud(record))
        .set_obj("finding_info", finding.info)
        .set("evidences", ev.evidences);
    verdict.status(&mut event);
    if let Some(d) = device {
        event.set_obj("device", d);
    }
    event.set("unmapped", Value::Object(unmapped));
    event.into_value()
}

/// `finding_info`, and the values of it the event uses again.
struct Finding {
    info: Obj,
    title: Option<String>,
    modified: Option<i64>,
    detection_source: Option<String>,
}

impl Finding {
    fn take(
        src: &mut Source,
        f: &Fields,
        record: &AlertRecord,
        version_time: Option<i64>,
    ) -> Finding {
        let mut info = Obj::new();
        info.set(
            "uid",
            src.str(f.id).unwrap_or_else(|| record.alert_id.clone()),
        );
        let title = src.str(f.title);
        info.set(
            "title",
            title.clone().unwrap_or_else(|| record.alert_id.clone()),
        );
        info.set("desc", src.str(f.description));
        // SIEM's one time is both: read it here, take it as `first_seen_time`.
        let created = if f.created == f.first_seen {
            src.0
                .get(f.created)
                .and_then(Value::as_str)
                .and_then(parse_time)
                .map(millis)
        } else {
            src.time(f.created)
        };
        info.set("created_time", created);
        let modified = src.time(f.modified).or(version_time);
        info.set("modified_time", modified);
        info.set("first_seen_time", src.time(f.first_seen));
        if let Some(k) = f.last_seen {
            info.set("last_seen_time", src.time(k));
        }
        if let Some(category) = src.str(f.category) {
            info.set("types", json!([category]));
        }
        let detection_source = src.str(f.detection_source);
        let mut analytic = Obj::new();
        analytic.set("name", detection_source.clone());
        analytic.set("uid", src.str(f.detector));
        if !analytic.is_empty() {
            analytic.set("type_id", 0).set("type", "Unknown");
            info.set_obj("analytic", analytic);
        }
        info.set("src_url", src.str(f.link));
        if let Some(k) = f.mitre
            && let Some(Value::Array(ids)) = src.take(k)
        {
            let attacks: Vec<Value> = ids.iter().filter_map(Value::as_str).map(attack).collect();
            info.set("attacks", attacks);
        }
        Finding {
            info,
            title,
            modified,
            detection_source,
        }
    }
}

/// Severity, status and the activity the status implies.
struct Verdict {
    severity_raw: Option<String>,
    severity: Enum,
    status_raw: Option<String>,
    status: Option<Enum>,
    activity: Enum,
}

impl Verdict {
    fn take(src: &mut Source, f: &Fields, change: Change) -> Verdict {
        let severity_raw = src.str(f.severity);
        let severity = severity_raw.as_deref().map_or((0, "Unknown"), severity);
        let status_raw = f.status.and_then(|k| src.str(k));
        let status = status_raw.as_deref().map(status);
        let activity = activity(change, status.map(|s| s.0));
        Verdict {
            severity_raw,
            severity,
            status_raw,
            status,
            activity,
        }
    }

    /// `activity_*`, `type_*` and `severity*` (an Other severity keeps the API's word).
    fn activity_and_severity(&self, event: &mut Obj) {
        let (activity_id, activity_name) = self.activity;
        let (severity_id, severity_caption) = self.severity;
        event
            .set("activity_id", activity_id)
            .set("activity_name", activity_name)
            .set("type_uid", CLASS_UID * 100 + activity_id)
            .set("type_name", format!("{CLASS_NAME}: {activity_name}"))
            .set("severity_id", severity_id)
            .set(
                "severity",
                self.severity_raw
                    .clone()
                    .filter(|_| severity_id == 99)
                    .unwrap_or_else(|| severity_caption.to_owned()),
            );
    }

    /// `status_id` and `status` (an Other status keeps the API's word), when the API has one.
    fn status(self, event: &mut Obj) {
        if let Some((id, caption)) = self.status {
            event.set("status_id", id).set(
                "status",
                if id == 99 {
                    self.status_raw.unwrap_or_default()
                } else {
                    caption.to_owned()
                },
            );
        }
    }
}

/// `metadata.product`: Graph names the product; MDE and SIEM alerts are Defender for Endpoint's.
fn product(src: &mut Source, api: AlertApi, detection_source: Option<&str>) -> Obj {
    let service = (api == AlertApi::Graph)
        .then(|| src.str("serviceSource"))
        .flatten();
    let product_name = match api {
        AlertApi::Graph => service.as_deref().and_then(service_product),
        AlertApi::Mde | AlertApi::Siem => Some("Microsoft Defender for Endpoint"),
    }
    .unwrap_or("Microsoft Defender XDR");
    let mut product = Obj::new();
    product
        .set("name", product_name)
        .set("vendor_name", "Microsoft");
    if let Some(s) = service {
        product.set("uid", s);
    }
    if let Some(ds) = detection_source {
        product.set("feature", json!({"name": ds}));
    }
    product
}

fn metadata(record: &AlertRecord, product: Obj) -> Obj {
    let mut metadata = Obj::new();
    metadata
        .set("version", VERSION)
        .set_obj("product", product)
        .set("uid", record.dedup_key.clone())
        .set("original_time", record.alert_version.clone())
        .set("tenant_uid", record.tenant_id.to_string())
        .set("logged_time", millis(record.fetched_at))
        .set("log_name", log_name(record.source))
        .set("log_provider", "mssp-alerts")
        .set("profiles", json!(["cloud"]));
    let mut labels = Vec::new();
    if record.late {
        labels.push("late");
    }
    if record.first_seen {
        labels.push("first_seen");
    }
    metadata.set("labels", json!(labels));
    metadata
}

/// `cloud`: the customer's Entra tenant.
fn cloud(record: &AlertRecord) -> Value {
    json!({
        "provider": "Microsoft",
        "account": {
            "uid": record.tenant_id.to_string(),
            "name": record.tenant_name,
            "type_id": 6,
            "type": "Azure AD Account",
        },
    })
}

/// `unmapped`: the alert fields not placed, the evidence items' rest, and our own record fields
/// under `mssp`.
fn unmapped(src: Source, evidence: Vec<Value>, record: &AlertRecord) -> Map<String, Value> {
    let mut unmapped = src.rest();
    if !evidence.is_empty() {
        unmapped.insert("evidence".into(), Value::Array(evidence));
    }
    let mut ours = Map::new();
    ours.insert("schema".into(), json!(record.schema));
    ours.insert("source".into(), json!(record.source.as_str()));
    ours.insert("change".into(), json!(record.change));
    ours.insert("alert_version".into(), json!(record.alert_version));
    if record.first_seen {
        ours.insert("first_seen".into(), json!(true));
    }
    if record.late {
        ours.insert("late".into(), json!(true));
    }
    if let Some(d) = record.delay_s {
        ours.insert("delay_s".into(), json!(d));
    }
    unmapped.insert("mssp".into(), Value::Object(ours));
    unmapped
}

/// `metadata.log_name`: the API the record was read from.
fn log_name(api: AlertApi) -> &'static str {
    match api {
        AlertApi::Graph => "Microsoft Graph security/alerts_v2",
        AlertApi::Mde => "Defender for Endpoint /api/alerts",
        AlertApi::Siem => "Defender for Endpoint SIEM API",
    }
}

/// An `attack` of a MITRE ATT&CK technique id: `T1564` is a technique, `T1564.001` a
/// sub-technique of `T1564`.
fn attack(id: &str) -> Value {
    match id.split_once('.') {
        Some((technique, _)) => json!({
            "technique": {"uid": technique},
            "sub_technique": {"uid": id},
        }),
        None => json!({"technique": {"uid": id}}),
    }
}

#[cfg(test)]
mod tests;
