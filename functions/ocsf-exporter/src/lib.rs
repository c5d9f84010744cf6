//! `ocsf-exporter` (issue K): the alerts bucket's objects as OCSF Detection Findings in Parquet,
//! in an Amazon Security Lake custom source ([`lake`] has the layout and the exactly-once
//! argument).
//!
//! | event | what it does | answer |
//! |---|---|---|
//! | EventBridge `Object Created` of the alerts bucket (`detail.bucket.name`, `detail.object.key`) | exports the object | [`Exported`] |
//! | S3 notification (`Records[].s3.bucket.name`, `.object.key`, URL-encoded) | exports each object | [`Exported`] |
//!
//! An object of another bucket or outside `alerts/` and `ocsf/` is skipped. Each object's lake
//! files are named after it, so an event delivered twice rewrites the same files with the same
//! rows. A failure is a Lambda error (`ExportFailed`, `InvalidEvent`): the event is retried.
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

use aws_sdk_s3::primitives::ByteStream;
use lake::Location;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
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

/// The clients, built once per cold start.
pub struct Deps {
    /// The configuration.
    pub config: ExporterConfig,
    /// Reads the alerts bucket (the function's role).
    pub source: aws_sdk_s3::Client,
    /// Writes the lake (the custom source's role when configured).
    pub lake: aws_sdk_s3::Client,
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
        config,
        source,
        lake,
    })
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Not an S3 or EventBridge object event.
    #[error(
        "invalid event: {0}; expected an EventBridge \"Object Created\" event or an S3 notification"
    )]
    InvalidEvent(String),
    /// Reading, converting or writing failed (retried).
    #[error("exporting {key} failed: {reason}")]
    ExportFailed {
        /// The alert object.
        key: String,
        /// What failed.
        reason: String,
    },
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: match e {
                HandlerError::InvalidEvent(_) => "InvalidEvent",
                HandlerError::ExportFailed { .. } => "ExportFailed",
            }
            .into(),
            error_message: e.to_string(),
        }
    }
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

/// The (bucket, key) of each object an event names.
pub fn objects_of(event: &Value) -> Result<Vec<(String, String)>, HandlerError> {
    if event["detail-type"] == "Object Created" {
        let d = &event["detail"];
        return match (d["bucket"]["name"].as_str(), d["object"]["key"].as_str()) {
            (Some(b), Some(k)) => Ok(vec![(b.to_owned(), k.to_owned())]),
            _ => Err(HandlerError::InvalidEvent(
                "an Object Created event without detail.bucket.name and detail.object.key".into(),
            )),
        };
    }
    let Some(records) = event["Records"].as_array() else {
        return Err(HandlerError::InvalidEvent(
            "neither detail-type nor Records".into(),
        ));
    };
    records
        .iter()
        .map(|r| {
            let s3 = &r["s3"];
            match (s3["bucket"]["name"].as_str(), s3["object"]["key"].as_str()) {
                // Keys in S3 notifications are URL-encoded as in a form (a space is `+`).
                (Some(b), Some(k)) => Ok((
                    b.to_owned(),
                    url::form_urlencoded::parse(format!("k={k}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default(),
                )),
                _ => Err(HandlerError::InvalidEvent(
                    "a record without s3.bucket.name and s3.object.key".into(),
                )),
            }
        })
        .collect()
}

/// Serves one invocation.
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Exported, HandlerError> {
    let objects = objects_of(&event.payload)?;
    let mut out = Exported::default();
    for (bucket, key) in objects {
        if bucket != deps.config.bucket || lake::stem(&key).is_none() {
            out.skipped += 1;
            continue;
        }
        let failed = |reason: String| HandlerError::ExportFailed {
            key: key.clone(),
            reason,
        };
        let body = deps
            .source
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| failed(format!("reading: {}", e.into_service_error())))?
            .body
            .collect()
            .await
            .map_err(|e| failed(format!("reading: {e}")))?
            .into_bytes();
        let files = lake::export_object(&deps.config.location, &key, &body)
            .map_err(|e| failed(e.to_string()))?
            .unwrap_or_default();
        for f in files {
            deps.lake
                .put_object()
                .bucket(&deps.config.lake_bucket)
                .key(&f.key)
                .content_type("application/vnd.apache.parquet")
                .body(ByteStream::from(f.bytes))
                .send()
                .await
                .map_err(|e| failed(format!("writing {}: {}", f.key, e.into_service_error())))?;
            out.events += f.events;
            out.files.push(f.key);
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
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn both_event_shapes_name_their_objects() {
        let eb = json!({"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "alerts/tenant=t/date=d/x.ndjson.gz"}}});
        assert_eq!(
            objects_of(&eb).expect("eventbridge"),
            [("b".into(), "alerts/tenant=t/date=d/x.ndjson.gz".into())]
        );
        let s3 = json!({"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "alerts/tenant%3Dt/a+b.ndjson.gz"}}}]});
        assert_eq!(
            objects_of(&s3).expect("s3"),
            [("b".into(), "alerts/tenant=t/a b.ndjson.gz".into())]
        );
        for bad in [
            json!({}),
            json!({"Records": [{}]}),
            json!({"detail-type": "Object Created"}),
        ] {
            assert!(objects_of(&bad).is_err(), "{bad}");
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
        for var in [
            "MSSP_BUCKET",
            "MSSP_LAKE_BUCKET",
            "MSSP_LAKE_PREFIX",
            "MSSP_LAKE_ACCOUNT_ID",
        ] {
            let partial: Env = [
                ("MSSP_BUCKET", "alerts"),
                ("MSSP_LAKE_BUCKET", "lake"),
                ("MSSP_LAKE_PREFIX", "ext/x"),
                ("MSSP_LAKE_ACCOUNT_ID", "1"),
                ("MSSP_LAKE_REGION", "r"),
            ]
            .into_iter()
            .filter(|(k, _)| *k != var)
            .collect();
            assert_eq!(
                ExporterConfig::from_env(&partial)
                    .expect_err("missing")
                    .var(),
                var
            );
        }
    }
}
