//! The deployment end to end (the acceptance run): after `scripts/test` applied
//! `infra/ci/moto.tf` to the AWS emulator, the packaged function binaries (the `bootstrap` of
//! each zip Terraform uploaded) run with the environment Lambda holds for them (read back from
//! the emulator) against the resources Terraform created:
//!
//! 1. the operator writes the app secret's value into the secret Terraform created without one;
//! 2. every emulator tenant consents through `consent-callback` behind the API Gateway bridge;
//! 3. `token-refresh`'s scheduled run refreshes them all, and a tenant whose user was revoked is
//!    counted in the metric the re-consent alarm Terraform created watches (an Embedded Metric
//!    Format line, in the namespace Terraform gave the function);
//! 4. the fetcher's scheduled run dispatches one message per tenant into the created queue, the
//!    fetcher consumes them as an SQS event, and every tenant's alerts are in the created bucket,
//!    encrypted with the created key;
//! 5. the dashboard and the alarms Terraform created (read back from the emulator) show and
//!    watch the metrics the functions write: every metric of the functions is on the dashboard,
//!    nothing else is, and the lag alarm's threshold is three fetch periods;
//! 6. the bucket notified the alert-notification queue (`alert_notifications`, what a SIEM's S3
//!    input reads) once per object the fetcher wrote, and only the bucket may send to it;
//! 7. the `ocsf-exporter` (`security_lake`) gets the object-created event of every
//!    object the fetcher wrote — each twice, once also as an S3 notification — and the lake
//!    (a stand-in bucket and custom-source role: moto has no Security Lake) holds every record
//!    once, as valid OCSF in Parquet in its event day's partition, written with the custom
//!    source's role it assumed.
//!
//! One override: consent-callback's `MSSP_PUBLIC_BASE_URL` is the bridge's URL instead of the
//! API's invoke URL (the emulator redirects the browser to the registered redirect URI, which
//! must be reachable here). The test checks the applied value is the consent base URL output.
//!
//! Runs only when `MSSP_E2E_TF_OUTPUTS` (`terraform output -json` of infra/ci),
//! `MSSP_E2E_APPLIED` (the functions' configurations read back) and `MSSP_E2E_PACKAGES` (the
//! unzipped packages) are set, with `MOTO_URL` the emulator Terraform applied to; a plain
//! `cargo test` passes it by.
//!
//! Before that apply, the plan it applies (`terraform show -json`, `MSSP_E2E_PLAN`) is checked
//! against a fresh AWS account's concurrency quota: infra/ci/moto.tf leaves every function
//! setting at the module's defaults, as the root configuration (infra/main.tf) does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use serde_json::{Value, json};
use shared::adapters::aws::{S3AlertSink, s3_client};
use shared::assemble;
use shared::config::Env;
use shared::config::deployment::ServiceConfig;
use shared::domain::{AlertApi, AuthModel, TenantStatus};
use shared::flows::Deps;
use shared::flows::onboarding::{NewTenant, start_onboarding};
use tests::TestEnv;
use tests::apigw::ApiGateway;
use tests::aws::object_keys;
use tests::lambda::LambdaProcess;
use url::Url;

use crate::fixtures::{APP_ID, APP_SECRET, CONTOSO, FABRIKAM, NORTHWIND, WOODGROVE, tid};
use crate::infra_iam::{Arns, Call, allows, calls_of};
use crate::lambda_world::{STATE_KEY, scenario};

const SCHEDULED: &str = include_str!("../../fixtures/events/eventbridge-scheduled-event.json");

/// The emulator tenants and how each is onboarded: every consent model and every alert API.
const TENANTS: [(&str, &str, AuthModel, AlertApi); 4] = [
    (CONTOSO, "Contoso", AuthModel::DelegatedV1, AlertApi::Siem),
    (FABRIKAM, "Fabrikam", AuthModel::DelegatedV2, AlertApi::Mde),
    (
        NORTHWIND,
        "Northwind",
        AuthModel::Application,
        AlertApi::Graph,
    ),
    (
        WOODGROVE,
        "Woodgrove",
        AuthModel::DelegatedV2,
        AlertApi::Graph,
    ),
];

struct Deployment {
    outputs: Value,
    applied: Value,
    packages: PathBuf,
}

impl Deployment {
    fn from_env() -> Option<Deployment> {
        let read = |var: &str| -> Option<Value> {
            let path = std::env::var_os(var)?;
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{var}={}: {e}", path.to_string_lossy()));
            Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{var}: {e}")))
        };
        let outputs = read("MSSP_E2E_TF_OUTPUTS")?;
        let applied = read("MSSP_E2E_APPLIED").expect("MSSP_E2E_APPLIED with MSSP_E2E_TF_OUTPUTS");
        let packages = std::env::var_os("MSSP_E2E_PACKAGES")
            .map(PathBuf::from)
            .expect("MSSP_E2E_PACKAGES with MSSP_E2E_TF_OUTPUTS");
        Some(Deployment {
            outputs: outputs["outputs"]["value"].clone(),
            applied,
            packages,
        })
    }

    fn output(&self, name: &str) -> &str {
        self.outputs[name]
            .as_str()
            .unwrap_or_else(|| panic!("output {name}: {}", self.outputs))
    }

    fn function(&self, crate_name: &str) -> &Value {
        &self.applied["functions"][crate_name]
    }

    /// The environment Lambda holds for the function.
    fn environment(&self, crate_name: &str) -> BTreeMap<String, String> {
        let vars = self.function(crate_name)["Environment"]["Variables"]
            .as_object()
            .unwrap_or_else(|| panic!("{crate_name} has no environment"));
        vars.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    fn package(&self, crate_name: &str) -> PathBuf {
        self.packages.join(crate_name).join("bootstrap")
    }

    /// Spawns the packaged `crate_name` as Lambda would run the deployed function: its
    /// deployed name, its applied environment (with `overrides`), the AWS emulator's variables.
    async fn spawn(
        &self,
        env: &TestEnv,
        crate_name: &str,
        overrides: &[(&str, String)],
    ) -> LambdaProcess {
        let mut vars: BTreeMap<String, String> = env
            .aws_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        vars.extend(self.environment(crate_name));
        // Its own access key, so the recorder tells its calls apart (moto accepts any key).
        vars.insert("AWS_ACCESS_KEY_ID".into(), access_key(crate_name));
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), v.clone());
        }
        let name = self.function(crate_name)["FunctionName"]
            .as_str()
            .expect("function name");
        LambdaProcess::spawn_binary(name, &self.package(crate_name), vars)
            .await
            .unwrap_or_else(|e| panic!("{crate_name}: {e}"))
    }
}

/// The access key a function binary signs with in this test.
fn access_key(crate_name: &str) -> String {
    format!("E2E{}", crate_name.replace('-', "").to_uppercase())
}

/// Drives moto's request recorder (`/moto-api/recorder/…`).
async fn recorder(env: &TestEnv, what: &str) -> String {
    let url = format!(
        "{}/moto-api/recorder/{what}",
        env.moto_url.as_str().trim_end_matches('/')
    );
    let req = if what == "download-recording" {
        env.http.get(url)
    } else {
        env.http.post(url)
    };
    let resp = req.send().await.expect("moto recorder");
    assert!(resp.status().is_success(), "{what}: {}", resp.status());
    resp.text().await.expect("recorder answer")
}

/// Every recorded call of each function is allowed by its role's policy; returns the calls per
/// function (action → count), for the log.
fn check_recorded_calls(
    d: &Deployment,
    recording: &str,
) -> BTreeMap<String, BTreeMap<String, usize>> {
    let arns = Arns::from_arn(d.output("alert_fetcher"));
    let by_key: BTreeMap<String, &str> = tests::lambda::FUNCTIONS
        .into_iter()
        .map(|c| (access_key(c), c))
        .collect();
    // The exporter writes the lake with the custom source's role: the temporary credentials STS
    // issued it (moto's start with ASIA) sign those calls, checked against that role's policy.
    let lake_role = "the custom source's role (assumed by ocsf-exporter)";
    let lake_policies = d.applied["lake_role_policies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut seen: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut denied = Vec::new();
    for line in recording.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).expect("a recorded request");
        let Some((key, calls)) = calls_of(&entry, &arns) else {
            continue;
        };
        let (function, policies) = match by_key.get(&key) {
            Some(function) => (
                *function,
                d.function(function)["Policies"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            ),
            None if key.starts_with("ASIA") => (lake_role, lake_policies.clone()),
            None => continue, // the operator's (this test's) own calls
        };
        for call in calls {
            *seen
                .entry((*function).to_owned())
                .or_default()
                .entry(call.action.clone())
                .or_default() += 1;
            if !allows(&policies, &call) {
                denied.push(format!("{function}: {} on {}", call.action, call.resource));
            }
        }
    }
    denied.sort();
    denied.dedup();
    assert!(
        denied.is_empty(),
        "calls the functions made that their roles do not allow:\n{}",
        denied.join("\n")
    );
    seen
}

fn scheduled() -> Value {
    serde_json::from_str(SCHEDULED).expect("fixture")
}

async fn follow(env: &TestEnv, url: &str) -> Url {
    tests::redirect_of(&env.http, url).await
}

#[tokio::test]
async fn infra_e2e_the_packaged_functions_run_against_what_terraform_applied() {
    let Some(d) = Deployment::from_env() else {
        eprintln!(
            "infra_e2e: MSSP_E2E_TF_OUTPUTS is not set, nothing to run (scripts/test sets it \
             after applying infra/ci/moto.tf)"
        );
        return;
    };

    // --- what Terraform deployed ---------------------------------------------------------------
    for crate_name in tests::lambda::FUNCTIONS {
        let f = d.function(crate_name);
        assert_eq!(f["Runtime"], "provided.al2023", "{crate_name}");
        assert_eq!(f["Handler"], "bootstrap", "{crate_name}");
        assert_eq!(f["Architectures"], json!(["x86_64"]), "{crate_name}");
    }
    let consent_env = d.environment("consent-callback");
    assert_eq!(
        consent_env["MSSP_PUBLIC_BASE_URL"],
        d.output("consent_base_url"),
        "the consent function's base URL is the API's invoke URL"
    );
    assert_eq!(
        consent_env["MSSP_APP_SECRET_ID"],
        d.output("app_secret_arn")
    );
    assert_eq!(consent_env["MSSP_TABLE"], d.output("table"));
    assert_eq!(consent_env["MSSP_KMS_KEY_ID"], d.output("kms_key_arn"));
    // The bucket refuses plain HTTP (read back, then removed from the emulator by scripts/test:
    // moto applies a Deny statement without its condition).
    let bucket_arn = format!("arn:aws:s3:::{}", d.output("alerts_bucket"));
    assert_eq!(
        d.applied["bucket_policy"]["Statement"],
        json!([{
            "Sid": "TLSOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, format!("{bucket_arn}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }]),
        "the alerts bucket's policy"
    );
    let authority = Url::parse(&consent_env["MSSP_AUTHORITY_URL"]).expect("authority URL");
    let port = authority.port().expect("the emulator's port");

    // --- the world: the Microsoft emulator where Terraform's endpoints point ------------------
    let mut gw = ApiGateway::bind().await.expect("bridge");
    let env = TestEnv::start_on(([127, 0, 0, 1], port).into(), scenario(gw.url(), true))
        .await
        .expect("test env on the applied emulator port");
    let urls = env.emulator.urls().clone();
    for (var, url) in [
        ("MSSP_AUTHORITY_URL", &urls.authority),
        ("MSSP_GRAPH_URL", &urls.graph),
        ("MSSP_MDE_URL", &urls.mde),
        ("MSSP_SIEM_URL", &urls.siem),
    ] {
        assert_eq!(
            consent_env[var].trim_end_matches('/'),
            url.as_str().trim_end_matches('/'),
            "{var}"
        );
    }
    let sdk = env.aws_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);

    // --- 1. the operator writes the app secret -------------------------------------------------
    let app_secret = d.output("app_secret_arn");
    let before = sm.get_secret_value().secret_id(app_secret).send().await;
    assert!(
        before.is_err(),
        "Terraform created the app secret without a value"
    );
    let value = json!({
        "client_id": APP_ID,
        "client_secret": APP_SECRET,
        "state_key": base64::engine::general_purpose::STANDARD.encode(STATE_KEY),
    });
    sm.put_secret_value()
        .secret_id(app_secret)
        .secret_string(value.to_string())
        .send()
        .await
        .expect("put-secret-value");

    // From here on, every request is recorded: the functions' calls are checked against their
    // roles at the end.
    recorder(&env, "reset-recording").await;
    recorder(&env, "start-recording").await;

    // The operator's side (`mssp tenants add`): the consent function's configuration, as the
    // bridge serves it.
    let public_base = gw.url().as_str().trim_end_matches('/').to_owned();
    let mut operator_env = consent_env.clone();
    operator_env.insert("MSSP_PUBLIC_BASE_URL".into(), public_base.clone());
    let operator_config = ServiceConfig::from_env(&operator_env.into_iter().collect::<Env>())
        .expect("the applied configuration");
    let operator: Deps = assemble::aws(&operator_config, &sdk);

    // --- 2. consent through consent-callback ---------------------------------------------------
    let consent = std::sync::Arc::new(
        d.spawn(
            &env,
            "consent-callback",
            &[("MSSP_PUBLIC_BASE_URL", public_base.clone())],
        )
        .await,
    );
    gw.serve(consent.clone()).expect("bridge serves");
    for (id, name, model, api) in TENANTS {
        let link = start_onboarding(&operator, NewTenant::new(tid(id), name, model, api))
            .await
            .expect("onboarding starts")
            .consent_link;
        let microsoft = follow(&env, link.as_str()).await;
        let back = follow(&env, microsoft.as_str()).await;
        assert_eq!(back.path(), "/consent/callback", "{name}");
        let page = env.http.get(back).send().await.expect("callback");
        assert_eq!(page.status().as_u16(), 200, "{name}: {}", consent.logs());
        let tenant = tests::local::registered(&operator, id).await;
        assert_eq!(tenant.status, TenantStatus::Active, "{name}");
        // The tenant's secret, under the prefix, encrypted with the key Terraform created.
        let secret = sm
            .describe_secret()
            .secret_id(format!(
                "{}/tenants/{id}",
                consent_env["MSSP_SECRETS_PREFIX"]
            ))
            .send()
            .await
            .expect("the tenant's secret");
        assert_eq!(secret.kms_key_id(), Some(d.output("kms_key_arn")), "{name}");
        assert!(
            secret
                .tags()
                .iter()
                .any(|t| t.key() == Some("tenant_id") && t.value() == Some(id)),
            "{name}: tagged with the tenant id"
        );
    }

    // --- 3. token-refresh on its schedule ------------------------------------------------------
    for (id, ..) in TENANTS {
        let mut t = operator
            .tokens
            .get(&tid(id))
            .await
            .expect("store")
            .expect("tokens");
        t.expires_at = Some(Utc::now() + chrono::Duration::minutes(1));
        operator.tokens.put(&t).await.expect("put");
    }
    let refresh = d.spawn(&env, "token-refresh", &[]).await;
    let summary = refresh.invoke(&scheduled()).await.expect("a summary");
    let refreshed: BTreeSet<&str> = summary["refreshed"]
        .as_array()
        .expect("refreshed")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let all: BTreeSet<&str> = TENANTS.iter().map(|t| t.0).collect();
    assert_eq!(refreshed, all, "{summary}");
    eprintln!(
        "infra_e2e: {} tenants consented through consent-callback (tokens in {}/tenants/*, \
         encrypted with the created key) and refreshed by token-refresh",
        TENANTS.len(),
        consent_env["MSSP_SECRETS_PREFIX"]
    );

    // --- 4. dispatch and fetch -----------------------------------------------------------------
    let fetcher_stdout = fetch_every_tenant(&d, &env, &sdk).await;

    // --- 7. the Security Lake export -----------------------------------------------------------
    export_to_lake(&d, &env, &sdk).await;

    // --- a tenant needing re-consent ----------------------------------------------------------
    let revoke = tests::endpoint(
        &urls.control,
        &format!("tenants/{WOODGROVE}/users/admin@woodgrove.onmicrosoft.com/revoke"),
    )
    .expect("url");
    let r = env.http.post(revoke).send().await.expect("revoke");
    assert!(r.status().is_success());
    let e = refresh
        .invoke(&json!({"tenant_id": WOODGROVE}))
        .await
        .expect_err("re-consent needed");
    assert_eq!(e.error_type, "ReconsentRequired", "{e}");

    // --- 5. the dashboard and alarms watch what the functions write -----------------------------
    check_dashboard_and_alarms(&d, &refresh.stdout(), &fetcher_stdout);

    // --- least privilege: every call made was allowed by the caller's own role ---------------
    recorder(&env, "stop-recording").await;
    let recording = recorder(&env, "download-recording").await;
    let seen = check_recorded_calls(&d, &recording);
    for function in tests::lambda::FUNCTIONS {
        assert!(
            seen.contains_key(function),
            "{function} made no recorded call: {seen:?}"
        );
    }
    // The SQS event source polls with the fetcher's role.
    let fetcher_policies = d.function("alert-fetcher")["Policies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let queue_arn = format!(
        "arn:aws:sqs:{}:{}:{}",
        Arns::from_arn(d.output("alert_fetcher")).region,
        Arns::from_arn(d.output("alert_fetcher")).account,
        d.output("queue_url").rsplit('/').next().unwrap_or_default()
    );
    for action in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ] {
        assert!(
            allows(&fetcher_policies, &Call::new(action, &queue_arn)),
            "the event source needs {action} on {queue_arn}"
        );
    }
    for (function, calls) in &seen {
        eprintln!("infra_e2e: {function} made {calls:?}, each allowed by its role");
    }

    // --- 6. the SIEM's notification queue --------------------------------------------------------
    check_alert_notifications(&d, &sdk, &recording).await;
}

/// The keys of the objects the fetcher wrote (its recorded `s3:PutObject` calls), one per write.
fn fetcher_writes(d: &Deployment, recording: &str) -> Vec<String> {
    let arns = Arns::from_arn(d.output("alert_fetcher"));
    let prefix = format!("arn:{}:s3:::{}/", arns.partition, d.output("alerts_bucket"));
    let fetcher = access_key("alert-fetcher");
    let mut keys = Vec::new();
    for line in recording.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).expect("a recorded request");
        let Some((key, calls)) = calls_of(&entry, &arns) else {
            continue;
        };
        if key != fetcher {
            continue;
        }
        keys.extend(
            calls
                .iter()
                .filter(|c| c.action == "s3:PutObject")
                .filter_map(|c| c.resource.strip_prefix(&prefix).map(str::to_owned)),
        );
    }
    keys
}

/// The alert-notification queue holds one S3 `ObjectCreated` event per object the fetcher wrote
/// (besides S3's test event when the configuration was written), each naming the alerts bucket
/// and the object; its policy lets only the alerts bucket of this account send, and failures go
/// to its dead-letter queue.
async fn check_alert_notifications(d: &Deployment, sdk: &aws_config::SdkConfig, recording: &str) {
    use aws_sdk_sqs::types::QueueAttributeName;

    let queue = d.output("notifications");
    let bucket = d.output("alerts_bucket");
    let arns = Arns::from_arn(d.output("alert_fetcher"));
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .cloned()
        .unwrap_or_default();
    let attribute = |name: QueueAttributeName| {
        attributes
            .get(&name)
            .unwrap_or_else(|| panic!("{name:?} of {queue}: {attributes:?}"))
            .clone()
    };
    let policy: Value = serde_json::from_str(&attribute(QueueAttributeName::Policy)).expect("JSON");
    assert_eq!(
        policy["Statement"],
        json!([{
            "Sid": "AlertsBucketNotifications",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": attribute(QueueAttributeName::QueueArn),
            "Condition": {
                "ArnEquals": {"aws:SourceArn": format!("arn:{}:s3:::{bucket}", arns.partition)},
                "StringEquals": {"aws:SourceAccount": arns.account},
            },
        }]),
        "the notification queue's policy"
    );
    let redrive: Value =
        serde_json::from_str(&attribute(QueueAttributeName::RedrivePolicy)).expect("JSON");
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .is_some_and(|a| a.ends_with("-alert-notifications-dlq")),
        "{redrive}"
    );

    // The notifications are of alerts/ (the fetcher also writes OCSF twins under ocsf/).
    let mut written: Vec<String> = fetcher_writes(d, recording)
        .into_iter()
        .filter(|k| k.starts_with("alerts/"))
        .collect();
    assert!(!written.is_empty(), "the fetcher wrote objects");
    // Everything the queue holds: until a receive comes back empty.
    let bodies: Vec<String> = tests::aws::receive_until(&sqs, queue, |_| false)
        .await
        .iter()
        .map(|m| m.body().unwrap_or_default().to_owned())
        .collect();
    let mut notified = Vec::new();
    let mut test_events = 0;
    for body in &bodies {
        let event: Value = serde_json::from_str(body).expect("a JSON notification");
        if event["Event"] == "s3:TestEvent" {
            test_events += 1;
            continue;
        }
        for record in event["Records"].as_array().expect("S3 event records") {
            assert_eq!(record["eventSource"], "aws:s3", "{record}");
            assert!(
                record["eventName"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("ObjectCreated:")),
                "{record}"
            );
            assert_eq!(record["s3"]["bucket"]["name"], bucket, "{record}");
            // Keys in S3 events are URL-encoded as in a form (a space is `+`).
            let encoded = record["s3"]["object"]["key"].as_str().expect("key");
            let key = url::form_urlencoded::parse(format!("k={encoded}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .expect("a key");
            notified.push(key);
        }
    }
    assert!(test_events <= 1, "{bodies:?}");
    written.sort();
    notified.sort();
    assert_eq!(
        notified, written,
        "one notification per object the fetcher wrote"
    );
    eprintln!(
        "infra_e2e: the alert-notification queue received {} notifications, one per object the \
         fetcher wrote, and its policy admits only {bucket}",
        notified.len()
    );
}

/// The dashboard and the alarms as applied (read back from the emulator by scripts/test) against
/// the EMF lines the packaged functions wrote: one namespace, the functions' own; every metric the
/// functions publish on the dashboard and nothing else; the re-consent and lag alarms on metrics
/// the lines declare without dimensions, notifying the alarm topic, the lag's threshold three
/// fetch periods (infra/ci/moto.tf keeps the default schedule, rate(5 minutes)).
fn check_dashboard_and_alarms(
    d: &Deployment,
    refresh_stdout: &[String],
    fetcher_stdout: &[String],
) {
    let namespace = d.environment("token-refresh")["MSSP_METRICS_NAMESPACE"].clone();
    assert_eq!(
        d.environment("alert-fetcher")["MSSP_METRICS_NAMESPACE"],
        namespace
    );
    let lines: Vec<Value> = refresh_stdout
        .iter()
        .chain(fetcher_stdout)
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for doc in &lines {
        let bad = crate::metrics::emf_violations(doc);
        assert!(bad.is_empty(), "{bad:?}: {doc}");
    }
    let reconsent: f64 = lines
        .iter()
        .filter_map(|l| l["TenantsNeedingReconsent"].as_f64())
        .sum();
    assert_eq!(reconsent, 1.0, "the revoked tenant, once: {lines:?}");
    // What the lines declare: (namespace, metric) → its dimension sets.
    let mut declared: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for doc in &lines {
        for directive in doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for m in directive["Metrics"].as_array().into_iter().flatten() {
                let key = (
                    directive["Namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    m["Name"].as_str().unwrap_or_default().to_owned(),
                );
                for set in directive["Dimensions"].as_array().into_iter().flatten() {
                    declared
                        .entry(key.clone())
                        .or_default()
                        .insert(set.to_string());
                }
            }
        }
    }

    let dashboards = d.applied["dashboards"]
        .as_object()
        .expect("the dashboards read back");
    assert_eq!(dashboards.len(), 1, "{dashboards:?}");
    let body = dashboards.values().next().expect("the dashboard");
    let mut shown: BTreeSet<String> = BTreeSet::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        for m in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(ns) = m[0].as_str() else {
                continue; // an expression
            };
            assert_eq!(ns, namespace, "{widget}");
            shown.insert(m[1].as_str().expect("a metric name").to_owned());
        }
    }
    let published: BTreeSet<String> = shared::metrics::Metric::ALL
        .into_iter()
        .filter(|m| m.on_lambda())
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(
        shown, published,
        "the dashboard shows exactly the functions' metrics"
    );

    let alarms = d.applied["alarms"]
        .as_array()
        .expect("the alarms read back");
    let alarm = |metric: &str| -> &Value {
        alarms
            .iter()
            .find(|a| a["MetricName"] == metric)
            .unwrap_or_else(|| panic!("no alarm on {metric}: {alarms:?}"))
    };
    let topic = alarm("TenantsNeedingReconsent")["AlarmActions"].clone();
    for (metric, statistic, threshold, comparison) in [
        (
            "TenantsNeedingReconsent",
            "Sum",
            0.0,
            "GreaterThanThreshold",
        ),
        ("LagSeconds", "Maximum", 900.0, "GreaterThanThreshold"),
        (
            "AppCredentialsRefused",
            "Maximum",
            0.0,
            "GreaterThanThreshold",
        ),
        ("ClientSecretDaysLeft", "Minimum", 30.0, "LessThanThreshold"),
    ] {
        let a = alarm(metric);
        assert_eq!(a["Namespace"], namespace, "{a}");
        assert_eq!(a["Statistic"], statistic, "{a}");
        assert_eq!(a["Threshold"].as_f64(), Some(threshold), "{a}");
        assert_eq!(a["ComparisonOperator"], comparison, "{a}");
        assert!(
            a["Dimensions"].as_array().is_none_or(Vec::is_empty),
            "a fleet alarm: {a}"
        );
        assert!(
            a["AlarmActions"]
                .as_array()
                .is_some_and(|t| t.len() == 1 && t[0].as_str().is_some_and(|t| t.contains(":sns:"))),
            "{a}"
        );
        assert_eq!(a["AlarmActions"], topic, "one alarm topic");
        if metric == "ClientSecretDaysLeft" {
            continue; // written only when the app secret has client_secret_expires
        }
        let sets = declared
            .get(&(namespace.clone(), metric.to_owned()))
            .unwrap_or_else(|| panic!("no function wrote {metric}: {declared:?}"));
        assert!(
            sets.contains("[]"),
            "{metric} is published without dimensions: {sets:?}"
        );
    }
    eprintln!(
        "infra_e2e: the dashboard shows the {} metrics the functions write ({namespace}); the \
         re-consent, lag and app-credential alarms watch metrics their EMF lines declare",
        shown.len()
    );
}

/// The exporter's part: every alert object's event delivered to the packaged
/// exporter twice (and once more as an S3 notification); the lake then holds each record once.
async fn export_to_lake(d: &Deployment, env: &TestEnv, sdk: &aws_config::SdkConfig) {
    let bucket = d.output("alerts_bucket");
    let lake_bucket = d.output("lake_bucket");
    let exporter_env = d.environment("ocsf-exporter");
    assert_eq!(exporter_env["MSSP_BUCKET"], bucket);
    assert_eq!(exporter_env["MSSP_LAKE_BUCKET"], lake_bucket);
    assert_eq!(
        exporter_env["MSSP_LAKE_ROLE_ARN"],
        d.output("lake_role_arn")
    );
    assert_eq!(exporter_env["MSSP_LAKE_PREFIX"], "ext/mssp-alerts");
    assert_eq!(
        d.environment("alert-fetcher")["MSSP_OUTPUT_FORMAT"],
        "raw+ocsf"
    );
    let s3 = s3_client(sdk);
    let objects = object_keys(&s3, bucket, "alerts/").await;
    assert!(!objects.is_empty(), "the fetcher wrote alert objects");
    // raw+ocsf: each alert object has its OCSF twin.
    let mut twins = object_keys(&s3, bucket, "ocsf/").await;
    twins.sort();
    let mut want: Vec<String> = objects
        .iter()
        .map(|k| shared::ports::BatchId::ocsf(k))
        .collect();
    want.sort();
    assert_eq!(twins, want, "one OCSF object beside each raw one");

    // The rule invokes the exporter (as applied; scripts/test then removed that target from
    // moto, which invokes no Lambda target), and its second target is the test's queue.
    let targets = &d.applied["lake_rule_targets"];
    let has_target = |suffix: &str| {
        targets
            .as_array()
            .expect("the rule's targets")
            .iter()
            .any(|t| t["Arn"].as_str().is_some_and(|a| a.ends_with(suffix)))
    };
    assert!(
        has_target(":function:mssp-ci-ocsf-exporter") && has_target(":mssp-ci-lake-events"),
        "{targets}"
    );
    // The object-created events moto emitted for what the fetcher wrote, as the exporter's rule
    // matched them.
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let events: Vec<Value> = tests::aws::receive_until(&sqs, d.output("lake_events_url"), |m| {
        m.len() >= objects.len()
    })
    .await
    .iter()
    .map(|m| serde_json::from_str(m.body().unwrap_or_default()).expect("an EventBridge event"))
    .collect();
    let mut evented: Vec<String> = events
        .iter()
        .map(|e| {
            assert_eq!(
                (
                    &e["source"],
                    &e["detail-type"],
                    &e["detail"]["bucket"]["name"]
                ),
                (&json!("aws.s3"), &json!("Object Created"), &json!(bucket)),
                "{e}"
            );
            e["detail"]["object"]["key"]
                .as_str()
                .expect("key")
                .to_owned()
        })
        .collect();
    evented.sort();
    evented.dedup();
    let mut raw = objects.clone();
    raw.sort();
    assert_eq!(
        evented, raw,
        "one event per alert object (the rule's pattern leaves ocsf/ out)"
    );

    let exporter = d.spawn(env, "ocsf-exporter", &[]).await;
    let mut files = BTreeSet::new();
    // Every event twice: EventBridge delivers at least once.
    for _ in 0..2 {
        for event in &events {
            let answer = exporter
                .invoke(event)
                .await
                .unwrap_or_else(|e| panic!("{event}: {e}\n{}", exporter.logs()));
            assert_eq!(answer["objects"], 1, "{answer}");
            for f in answer["files"].as_array().expect("files") {
                files.insert(f.as_str().expect("key").to_owned());
            }
        }
    }
    // The first object again as an S3 notification (the key URL-encoded, as S3 sends it), with
    // another bucket's object, which is skipped.
    let mut notification: Value =
        serde_json::from_str(include_str!("../../fixtures/events/s3-object-created.json"))
            .expect("fixture");
    let mut other = notification["Records"][0].clone();
    let encoded: String = url::form_urlencoded::byte_serialize(objects[0].as_bytes()).collect();
    notification["Records"][0]["s3"]["bucket"]["name"] = json!(bucket);
    notification["Records"][0]["s3"]["object"]["key"] = json!(encoded);
    other["s3"]["bucket"]["name"] = json!("another-bucket");
    notification["Records"]
        .as_array_mut()
        .expect("records")
        .push(other);
    let answer = exporter
        .invoke(&notification)
        .await
        .expect("S3 notification");
    assert_eq!(
        (answer["objects"].clone(), answer["skipped"].clone()),
        (json!(1), json!(1))
    );

    // The lake, read back with the parquet crate's row reader: exactly the files named, each
    // record once, equal to its mapping, in its event day's partition.
    let lake_keys: BTreeSet<String> = object_keys(&s3, lake_bucket, "ext/mssp-alerts/")
        .await
        .into_iter()
        .collect();
    assert_eq!(lake_keys, files, "the files the exporter named, no others");
    let mut rows = BTreeMap::new();
    for key in &lake_keys {
        assert!(
            key.starts_with("ext/mssp-alerts/region=us-east-1/accountId=123456789012/eventDay="),
            "{key}"
        );
        let body = s3
            .get_object()
            .bucket(lake_bucket)
            .key(key)
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        rows.insert(format!("/{key}"), crate::ocsf::parquet_rows(&body));
    }
    let sink = S3AlertSink::new(s3.clone(), bucket, None);
    let records = sink.records(None).await.expect("records");
    let mapped: Vec<Value> = records.iter().map(shared::ocsf::map).collect();
    let validated = crate::ocsf::validate_all(&mapped);
    let read_back = crate::ocsf::check_lake(&rows, &mapped);
    eprintln!(
        "infra_e2e: {} object-created events moto emitted for the fetcher's {} alert objects, each \
         delivered twice to ocsf-exporter (and one as an S3 notification): {} Parquet files in \
         {lake_bucket}/ext/mssp-alerts/region=us-east-1/accountId=123456789012/eventDay=…/, \
         {read_back} rows read back, each of the {validated} records once, valid OCSF {}",
        events.len(),
        objects.len(),
        lake_keys.len(),
        crate::ocsf::VALIDATOR.version()
    );
}

/// The fetcher's part: dispatch on the schedule, then the work items as an SQS event. Returns what
/// the fetcher wrote to stdout (its metrics).
async fn fetch_every_tenant(
    d: &Deployment,
    env: &TestEnv,
    sdk: &aws_config::SdkConfig,
) -> Vec<String> {
    let fetcher_env = d.environment("alert-fetcher");
    let fetcher = d.spawn(env, "alert-fetcher", &[]).await;

    // The schedule: dispatch sends one work item per active tenant into the created queue.
    let answer = fetcher
        .invoke(&scheduled())
        .await
        .expect("dispatch answers");
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queue = d.output("queue_url");
    assert_eq!(fetcher_env["MSSP_QUEUE_URL"], queue);
    let arn = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue ARN");
    let messages = tests::aws::receive_until(&sqs, queue, |m| m.len() >= TENANTS.len()).await;
    let dispatched: BTreeSet<String> = messages
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap_or_default()).expect("JSON");
            body["tenant_id"].as_str().expect("tenant_id").to_owned()
        })
        .collect();
    let all: BTreeSet<String> = TENANTS.iter().map(|t| t.0.to_owned()).collect();
    assert_eq!(dispatched, all, "dispatch answered {answer}");

    // The SQS event source: the work items as one event, partial failures reported.
    let now_ms = Utc::now().timestamp_millis().to_string();
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    let answer = fetcher
        .invoke_with_timeout(&json!({ "Records": records }), Duration::from_secs(240))
        .await
        .expect("the batch answer");
    assert_eq!(
        answer,
        json!({"batchItemFailures": []}),
        "{}",
        fetcher.logs()
    );
    for m in &messages {
        // What the event source does with the messages of a successful batch.
        sqs.delete_message()
            .queue_url(queue)
            .receipt_handle(m.receipt_handle().unwrap_or_default())
            .send()
            .await
            .expect("delete");
    }

    // Every tenant's alerts, in the created bucket, encrypted with the created key.
    let bucket = d.output("alerts_bucket");
    assert_eq!(fetcher_env["MSSP_BUCKET"], bucket);
    let s3 = s3_client(sdk);
    let sink = S3AlertSink::new(s3.clone(), bucket, Some(d.output("kms_key_arn").to_owned()));
    let now = env.emulator.state().now();
    for (id, name, _, api) in TENANTS {
        let records = sink.records(Some(&tid(id))).await.expect("records");
        let truth = env
            .emulator
            .state()
            .world()
            .truth(id, now)
            .expect("tenant truth");
        let api = emulator::scenario::Api::named(api.as_str()).expect("api");
        let c = truth.check(api, records.iter().map(|r| r.dedup_key.as_str()));
        assert!(c.expected > 0, "{name} has alerts");
        assert!(
            c.duplicates == 0 && c.missing.is_empty() && c.records == c.expected,
            "{name}: every exposed alert version, once: {c:?}"
        );
    }
    let objects = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("alerts/")
        .send()
        .await
        .expect("list");
    for o in objects.contents() {
        let head = s3
            .head_object()
            .bucket(bucket)
            .key(o.key().unwrap_or_default())
            .send()
            .await
            .expect("head");
        assert_eq!(
            head.ssekms_key_id(),
            Some(d.output("kms_key_arn")),
            "{:?}",
            o.key()
        );
    }
    eprintln!(
        "infra_e2e: dispatch queued {} work items; the fetcher delivered every tenant's alerts \
         into {bucket} ({} objects, SSE-KMS with the created key)",
        messages.len(),
        objects.contents().len()
    );
    fetcher.stdout()
}

// --- a fresh account's concurrency quota -------------------------------------------------------

/// Concurrent executions a fresh AWS account may run, all functions together.
const FRESH_ACCOUNT_QUOTA: i64 = 10;
/// What AWS keeps unreserved of the quota: a reservation that would leave less fails.
const UNRESERVED_MINIMUM: i64 = 10;

/// The concurrency a plan reserves, by resource address: each function's
/// `reserved_concurrent_executions` (-1: none) and each provisioned concurrency configuration,
/// of every resource the plan keeps or creates.
fn reserved_concurrency(plan: &Value) -> BTreeMap<String, i64> {
    let mut reserved = BTreeMap::new();
    for change in plan["resource_changes"].as_array().into_iter().flatten() {
        if change["change"]["actions"] == json!(["delete"]) {
            continue;
        }
        let after = &change["change"]["after"];
        let count = match change["type"].as_str() {
            Some("aws_lambda_function") => after["reserved_concurrent_executions"].as_i64(),
            Some("aws_lambda_provisioned_concurrency_config") => {
                after["provisioned_concurrent_executions"].as_i64()
            }
            _ => None,
        };
        if let (Some(count), Some(address)) = (count, change["address"].as_str())
            && count > 0
        {
            reserved.insert(address.to_owned(), count);
        }
    }
    reserved
}

/// Refuses a plan that reserves more than a fresh account can: AWS fails the apply.
fn check_fits_fresh_account(plan: &Value) -> Result<(), String> {
    let reserved = reserved_concurrency(plan);
    let total: i64 = reserved.values().sum();
    if total > FRESH_ACCOUNT_QUOTA - UNRESERVED_MINIMUM {
        return Err(format!(
            "the plan reserves {total} concurrent executions ({reserved:?}); a fresh account's \
             quota is {FRESH_ACCOUNT_QUOTA} and AWS keeps {UNRESERVED_MINIMUM} unreserved, so \
             `terraform apply` would fail there"
        ));
    }
    Ok(())
}

#[test]
fn infra_e2e_the_plan_applied_fits_a_fresh_accounts_concurrency_quota() {
    let Some(path) = std::env::var_os("MSSP_E2E_PLAN") else {
        eprintln!("infra_e2e: MSSP_E2E_PLAN is not set, no plan to check (scripts/test sets it)");
        return;
    };
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("MSSP_E2E_PLAN={}: {e}", path.to_string_lossy()));
    let plan: Value = serde_json::from_str(&text).expect("terraform show -json output");
    let functions = plan["resource_changes"]
        .as_array()
        .expect("resource_changes")
        .iter()
        .filter(|c| c["type"] == "aws_lambda_function")
        .count();
    assert_eq!(
        functions,
        tests::lambda::FUNCTIONS.len(),
        "the plan holds the functions, the exporter with them"
    );
    check_fits_fresh_account(&plan).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "infra_e2e: the plan reserves no concurrency ({functions} functions): it applies on a \
         fresh account (quota {FRESH_ACCOUNT_QUOTA})"
    );
}

#[test]
fn infra_e2e_the_quota_check_counts_reservations_and_provisioned_concurrency() {
    let function = |address: &str, actions: Value, reserved: i64| {
        json!({"address": address, "type": "aws_lambda_function",
               "change": {"actions": actions, "after": {"reserved_concurrent_executions": reserved}}})
    };
    // The module's defaults before issue J: 10 + 1 + 20 reserved.
    let old_defaults = json!({"resource_changes": [
        function("f[\"consent-callback\"]", json!(["create"]), 10),
        function("f[\"token-refresh\"]", json!(["create"]), 1),
        function("f[\"alert-fetcher\"]", json!(["create"]), 20),
    ]});
    assert_eq!(
        reserved_concurrency(&old_defaults).values().sum::<i64>(),
        31
    );
    assert!(check_fits_fresh_account(&old_defaults).is_err());
    let unreserved = json!({"resource_changes": [
        function("f[\"consent-callback\"]", json!(["update"]), -1),
        function("gone", json!(["delete"]), 5),
        function("zero", json!(["no-op"]), 0),
    ]});
    assert!(reserved_concurrency(&unreserved).is_empty());
    assert!(check_fits_fresh_account(&unreserved).is_ok());
    let provisioned = json!({"resource_changes": [{
        "address": "p", "type": "aws_lambda_provisioned_concurrency_config",
        "change": {"actions": ["create"], "after": {"provisioned_concurrent_executions": 2}},
    }]});
    assert!(check_fits_fresh_account(&provisioned).is_err());
}
