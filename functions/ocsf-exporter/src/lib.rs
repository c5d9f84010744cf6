//! `ocsf-exporter`: the alerts bucket's objects as OCSF Detection Findings in Parquet,
//! in an Amazon Security Lake custom source ([`lake`] has the layout and the exactly-once
//! argument).
//!
//! | event | what it does | answer |
//! |---|---|---|
//! | `EventBridgeEvent<ObjectCreated>`: `"source": "aws.s3"`, `"detail-type": "Object Created"` of the alerts bucket (the deployed trigger) | `lake::export` of the object | [`Exported`] |
//! | `S3Event` (an S3 notification, `Records[].s3.bucket.name` and `.object.key`) | `lake::export` of each object | [`Exported`] |
//!
//! The payload is told apart by its keys ([`ObjectEvent::read`]), then read into the types of
//! `aws_lambda_events`. Keys are URL-decoded (S3 notifications encode them; our alert object keys
//! hold no `%` or `+`, so decoding an unencoded one changes nothing). An object of another bucket
//! or outside `alerts/` and `ocsf/` is skipped. Each object's lake files are named after it, so
//! an event delivered twice rewrites the same files with the same rows. A failure is a Lambda
//! error with a stable `errorType` (`InvalidEvent`, `ExportFailed`): an asynchronous invoke is
//! retried, then lands in the dead-letter queue.
//!
//! Configuration (read once per cold start; a missing or invalid variable stops the start,
//! named):
//!
//! | variable | required | default | meaning |
//! |---|---|---|---|
//! | `MSSP_BUCKET` | yes | | The alerts bucket (events of other buckets are skipped). |
//! | `MSSP_LAKE_BUCKET` | yes | | The Security Lake bucket. |
//! | `MSSP_LAKE_PREFIX` | yes | | The custom source's prefix in it, e.g. `ext/mssp-alerts`. |
//! | `MSSP_LAKE_ACCOUNT_ID` | yes | | The `accountId=` partition: the account (or external id) of the custom source. |
//! | `MSSP_LAKE_REGION` | no | `AWS_REGION` | The `region=` partition. |
//! | `MSSP_LAKE_ROLE_ARN` | no | the function's own role | The custom source's role, assumed to write. |
//! | `MSSP_LAKE_EXTERNAL_ID` | no | | The external id the role's trust policy asks for. |

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::s3::S3Event;
use lake::s3::S3Objects;
use lake::{ExportError, Location, Written};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::config::{ConfigError, Env};

/// The exporter's configuration.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// The alerts bucket.
    pub bucket: String,
    /// The lake's bucket.
    pub lake_bucket: String,
    /// Where and how files are partitioned.
    pub location: Location,
    /// The role to assume for writing, if any.
    pub role_arn: Option<String>,
    /// Its external id.
    pub external_id: Option<String>,
}

impl ExporterConfig {
    /// Every variable read, in the order of the module table.
    pub const VARIABLES: [&'static str; 7] = [
        "MSSP_BUCKET",
        "MSSP_LAKE_BUCKET",
        "MSSP_LAKE_PREFIX",
        "MSSP_LAKE_ACCOUNT_ID",
        "MSSP_LAKE_REGION",
        "MSSP_LAKE_ROLE_ARN",
        "MSSP_LAKE_EXTERNAL_ID",
    ];

    /// Reads the configuration; the error names the variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let prefix = env
            .required("MSSP_LAKE_PREFIX")?
            .trim()
            .trim_matches('/')
            .to_owned();
        if prefix.is_empty() || prefix.split('/').any(|s| s.is_empty() || s == "..") {
            return Err(ConfigError::Invalid {
                var: "MSSP_LAKE_PREFIX".into(),
                reason: "a key prefix such as ext/mssp-alerts".into(),
            });
        }
        let account = env.required("MSSP_LAKE_ACCOUNT_ID")?;
        let region = match env.optional("MSSP_LAKE_REGION") {
            Some(r) => r,
            None => env
                .required("AWS_REGION")
                .map_err(|_| ConfigError::Missing {
                    var: "MSSP_LAKE_REGION".into(),
                })?,
        };
        Ok(ExporterConfig {
            bucket: env.required("MSSP_BUCKET")?,
            lake_bucket: env.required("MSSP_LAKE_BUCKET")?,
            location: Location {
                prefix,
                region,
                account,
            },
            role_arn: env.optional("MSSP_LAKE_ROLE_ARN"),
            external_id: env.optional("MSSP_LAKE_EXTERNAL_ID"),
        })
    }
}

/// The adapters, built once per cold start.
pub struct Deps {
    /// The configuration.
    pub config: ExporterConfig,
    /// The alerts bucket (read with the function's role).
    pub source: S3Objects,
    /// The lake's bucket (written with the custom source's role when configured).
    pub lake: S3Objects,
}

/// The start: JSON logs, the configuration, the clients.
///
/// # Errors
///
/// [`ConfigError`] naming the variable.
pub async fn start() -> Result<Deps, ConfigError> {
    shared::telemetry::init(shared::telemetry::Mode::detect());
    let env = Env::process();
    let config = ExporterConfig::from_env(&env).inspect_err(|e| {
        tracing::error!(variable = e.var(), error = %e, "configuration is invalid");
    })?;
    let sdk = shared::adapters::aws::sdk_config().await;
    let source = shared::adapters::aws::s3_client(&sdk);
    let lake = match &config.role_arn {
        Some(role) => {
            let mut p = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("mssp-ocsf-exporter")
                .configure(&sdk);
            if let Some(id) = &config.external_id {
                p = p.external_id(id);
            }
            let provider = p.build().await;
            let conf = aws_sdk_s3::config::Builder::from(&sdk)
                .credentials_provider(provider)
                .force_path_style(sdk.endpoint_url().is_some())
                .build();
            aws_sdk_s3::Client::from_conf(conf)
        }
        None => source.clone(),
    };
    Ok(Deps {
        source: S3Objects::new(source, &config.bucket),
        lake: S3Objects::new(lake, &config.lake_bucket),
        config,
    })
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Not an S3 object-created event.
    #[error("invalid event: {0}; expected {ACCEPTED}")]
    InvalidEvent(String),
    /// Reading, converting or writing an object failed (the event is retried).
    #[error("exporting {key} failed")]
    ExportFailed {
        /// The alert object.
        key: String,
        /// What failed.
        #[source]
        source: ExportError,
    },
}

/// The event shapes this function accepts, quoted in [`HandlerError::InvalidEvent`].
pub const ACCEPTED: &str = "an EventBridge \"Object Created\" event of S3 (source aws.s3) or an S3 \
     event notification (Records[].s3.bucket.name, Records[].s3.object.key)";

impl HandlerError {
    /// The stable `errorType` reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::InvalidEvent(_) => "InvalidEvent",
            HandlerError::ExportFailed { .. } => "ExportFailed",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Diagnostic {
            error_type: e.error_type().into(),
            error_message: message,
        }
    }
}

/// The `detail` of S3's `Object Created` EventBridge event: the fields the exporter reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCreated {
    /// `{"name"}`.
    pub bucket: Bucket,
    /// `{"key", …}`.
    pub object: Object,
}

/// The bucket of an [`ObjectCreated`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Its name.
    pub name: String,
}

/// The object of an [`ObjectCreated`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    /// Its key.
    pub key: String,
}

/// An invocation's payload.
#[derive(Debug)]
pub enum ObjectEvent {
    /// S3's `Object Created` event through EventBridge (the deployed trigger).
    EventBridge(Box<EventBridgeEvent<ObjectCreated>>),
    /// An S3 event notification.
    S3(S3Event),
}

impl ObjectEvent {
    /// Reads `payload`: `detail-type` or `source` make it an EventBridge event (which must be
    /// S3's `Object Created`), `Records` an S3 notification. The error says why it is neither.
    pub fn read(payload: Value) -> Result<Self, String> {
        let Value::Object(fields) = &payload else {
            return Err("the event is not an object".into());
        };
        if fields.contains_key("detail-type") || fields.contains_key("source") {
            let e: EventBridgeEvent<ObjectCreated> =
                shared::lambda::decode(payload, "the EventBridge event")?;
            if e.source != "aws.s3" || e.detail_type != "Object Created" {
                return Err(format!(
                    "an EventBridge event of source {:?} and detail-type {:?}",
                    shared::flows::onboarding::sanitize(&e.source, 64),
                    shared::flows::onboarding::sanitize(&e.detail_type, 64)
                ));
            }
            return Ok(ObjectEvent::EventBridge(Box::new(e)));
        }
        if fields.contains_key("Records") {
            return shared::lambda::decode(payload, "the S3 event").map(ObjectEvent::S3);
        }
        Err("an object without detail-type or Records".into())
    }

    /// The (bucket, key) of each object the event names, keys URL-decoded.
    ///
    /// # Errors
    ///
    /// A record without a bucket name or an object key.
    pub fn objects(&self) -> Result<Vec<(String, String)>, String> {
        match self {
            ObjectEvent::EventBridge(e) => Ok(vec![(
                e.detail.bucket.name.clone(),
                url_decoded(&e.detail.object.key),
            )]),
            ObjectEvent::S3(e) => e
                .records
                .iter()
                .map(|r| match (&r.s3.bucket.name, &r.s3.object.key) {
                    (Some(b), Some(k)) => Ok((b.clone(), url_decoded(k))),
                    _ => Err("an S3 event record without s3.bucket.name or s3.object.key".into()),
                })
                .collect(),
        }
    }
}

/// A key as S3 event notifications encode it (form encoding: a space is `+`), decoded.
fn url_decoded(key: &str) -> String {
    url::form_urlencoded::parse(format!("k={key}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// What an invocation wrote.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Exported {
    /// Alert objects exported.
    pub objects: usize,
    /// Lake files written (keys).
    pub files: Vec<String>,
    /// OCSF events in them.
    pub events: usize,
    /// Objects skipped (another bucket or prefix).
    pub skipped: usize,
}

/// Serves one invocation: each object the event names through `lake::export`.
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Exported, HandlerError> {
    let objects = ObjectEvent::read(event.payload)
        .and_then(|e| e.objects())
        .map_err(HandlerError::InvalidEvent)
        .inspect_err(|e| tracing::warn!(error_type = e.error_type(), "event refused"))?;
    let mut out = Exported::default();
    for (bucket, key) in objects {
        let exported = if bucket == deps.config.bucket {
            lake::export(&deps.source, &deps.lake, &deps.config.location, &key)
                .await
                .map_err(|source| HandlerError::ExportFailed {
                    key: key.clone(),
                    source,
                })
                .inspect_err(|e| tracing::error!(error = %e, "export failed"))?
        } else {
            None
        };
        let Some(files) = exported else {
            out.skipped += 1;
            continue;
        };
        for Written { key, events } in files {
            out.events += events;
            out.files.push(key);
        }
        out.objects += 1;
    }
    tracing::info!(
        objects = out.objects,
        files = out.files.len(),
        events = out.events,
        skipped = out.skipped,
        "exported"
    );
    Ok(out)
}

#[cfg(test)]
mod tests;
