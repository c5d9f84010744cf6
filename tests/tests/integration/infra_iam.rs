//! Least privilege, checked on what the functions actually do: the AWS emulator records every
//! request (moto's recorder), each function binary signs with an access key of its own, and
//! every call a function made must be allowed by its role's policy as Terraform created it —
//! action, resource ARN and condition — evaluated here the way IAM evaluates identity policies
//! (an explicit Deny wins; otherwise some Allow statement must match).
//!
//! moto does not enforce IAM on resource ARNs itself (it authorizes most services against
//! `"*"`), hence this evaluator. It knows the condition keys the module uses on the calls the
//! functions make (`s3:prefix`); a statement with any other condition key never matches a call,
//! so an unknown condition fails the check rather than passing it.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

/// One AWS API call, as IAM authorizes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// `service:Action` as IAM names it (`sqs:SendMessageBatch` is authorized as
    /// `sqs:SendMessage`).
    pub action: String,
    /// The resource's ARN.
    pub resource: String,
    /// Condition keys the request carries (`s3:prefix`).
    pub context: BTreeMap<String, String>,
}

impl Call {
    pub fn new(action: &str, resource: &str) -> Call {
        Call {
            action: action.to_owned(),
            resource: resource.to_owned(),
            context: BTreeMap::new(),
        }
    }
}

/// `*` matches any run of characters, `?` one; case-insensitive when `fold` (actions).
pub fn glob(pattern: &str, value: &str, fold: bool) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = if fold {
        (
            pattern.to_lowercase().chars().collect(),
            value.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), value.chars().collect())
    };
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

fn conditions_hold(condition: Option<&Value>, call: &Call) -> bool {
    let Some(condition) = condition.and_then(Value::as_object) else {
        return true;
    };
    condition.iter().all(|(operator, keys)| {
        keys.as_object().is_some_and(|keys| {
            keys.iter().all(|(key, wanted)| {
                let Some(actual) = call.context.get(key) else {
                    return false;
                };
                let wanted = strings(wanted);
                match operator.as_str() {
                    "StringEquals" => wanted.contains(&actual.as_str()),
                    "StringLike" => wanted.iter().any(|w| glob(w, actual, false)),
                    _ => false,
                }
            })
        })
    })
}

fn statement_matches(statement: &Value, call: &Call) -> bool {
    strings(&statement["Action"])
        .iter()
        .any(|a| glob(a, &call.action, true))
        && strings(&statement["Resource"])
            .iter()
            .any(|r| glob(r, &call.resource, false))
        && conditions_hold(statement.get("Condition"), call)
}

/// Whether `policies` (identity policy documents) allow `call`.
pub fn allows(policies: &[Value], call: &Call) -> bool {
    let statements: Vec<&Value> = policies
        .iter()
        .flat_map(|p| match &p["Statement"] {
            Value::Array(a) => a.iter().collect::<Vec<_>>(),
            s @ Value::Object(_) => vec![s],
            _ => vec![],
        })
        .collect();
    let matching = |effect: &str| {
        statements
            .iter()
            .any(|s| s["Effect"] == effect && statement_matches(s, call))
    };
    !matching("Deny") && matching("Allow")
}

/// Where the emulator's resources live: ARNs are built in this account and region.
pub struct Arns {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Arns {
    /// From any ARN of the deployment (e.g. a function's).
    pub fn from_arn(arn: &str) -> Arns {
        let parts: Vec<&str> = arn.split(':').collect();
        assert!(parts.len() > 4, "not an ARN: {arn}");
        Arns {
            partition: parts[1].to_owned(),
            region: parts[3].to_owned(),
            account: parts[4].to_owned(),
        }
    }

    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }
}

/// A recorded request: the access key that signed it and the calls IAM authorizes for it
/// (one request can need two permissions, e.g. CreateSecret with tags).
pub fn calls_of(entry: &Value, arns: &Arns) -> Option<(String, Vec<Call>)> {
    let headers = entry["headers"].as_object()?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    };
    let auth = header("authorization")?;
    let credential = auth.split("Credential=").nth(1)?;
    let mut scope = credential.split(',').next()?.split('/');
    let key = scope.next()?.to_owned();
    let service = scope.nth(2)?.to_owned();
    let raw = entry["body"].as_str().unwrap_or_default();
    let body_bytes = if entry["body_encoded"] == true {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap_or_default()
    } else {
        raw.as_bytes().to_vec()
    };
    let body: Value = serde_json::from_slice(&body_bytes).unwrap_or(Value::Null);
    let url = url::Url::parse(entry["url"].as_str()?).ok()?;
    let method = entry["method"].as_str()?;
    let mut calls = Vec::new();
    match header("x-amz-target") {
        Some(target) => {
            let operation = target.rsplit('.').next()?.to_owned();
            match service.as_str() {
                "secretsmanager" => {
                    let id = body["SecretId"].as_str().or(body["Name"].as_str())?;
                    let resource = if id.starts_with("arn:") {
                        id.to_owned()
                    } else {
                        // Secrets Manager appends a dash and six characters to a secret's ARN.
                        arns.arn("secretsmanager", &format!("secret:{id}-AbCdEf"))
                    };
                    calls.push(Call::new(&format!("secretsmanager:{operation}"), &resource));
                    if operation == "CreateSecret" && body.get("Tags").is_some() {
                        calls.push(Call::new("secretsmanager:TagResource", &resource));
                    }
                }
                "dynamodb" => {
                    let table = body["TableName"].as_str()?;
                    // A Query of an index is authorized on the index's ARN.
                    let resource = match body["IndexName"].as_str() {
                        Some(index) => format!("table/{table}/index/{index}"),
                        None => format!("table/{table}"),
                    };
                    calls.push(Call::new(
                        &format!("dynamodb:{operation}"),
                        &arns.arn("dynamodb", &resource),
                    ));
                }
                "sqs" => {
                    let queue = body["QueueUrl"].as_str()?.rsplit('/').next()?.to_owned();
                    let action = operation
                        .strip_suffix("Batch")
                        .unwrap_or(&operation)
                        .to_owned();
                    calls.push(Call::new(
                        &format!("sqs:{action}"),
                        &arns.arn("sqs", &queue),
                    ));
                }
                other => calls.push(Call::new(&format!("{other}:{operation}"), "?")),
            }
        }
        None if service == "s3" => {
            // Path-style: /{bucket}/{key}.
            let path = url.path().trim_start_matches('/');
            let (bucket, object) = path.split_once('/').unwrap_or((path, ""));
            let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
            if object.is_empty() {
                let mut call = Call::new(
                    if method == "GET" && query.contains_key("list-type") {
                        "s3:ListBucket"
                    } else {
                        "s3:UnknownBucketOperation"
                    },
                    &format!("arn:{}:s3:::{bucket}", arns.partition),
                );
                if let Some(prefix) = query.get("prefix") {
                    call.context.insert("s3:prefix".into(), prefix.clone());
                }
                calls.push(call);
            } else {
                let key = percent_decode(object);
                let action = match method {
                    "GET" | "HEAD" => "s3:GetObject",
                    "PUT" => "s3:PutObject",
                    "DELETE" => "s3:DeleteObject",
                    _ => "s3:UnknownObjectOperation",
                };
                calls.push(Call::new(
                    action,
                    &format!("arn:{}:s3:::{bucket}/{key}", arns.partition),
                ));
            }
        }
        None if service == "sts" => {
            // Query protocol: the form body names the action and, for AssumeRole, the role.
            let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body_bytes)
                .into_owned()
                .collect();
            let action = form.get("Action").cloned().unwrap_or_default();
            let resource = form.get("RoleArn").cloned().unwrap_or_else(|| "?".into());
            calls.push(Call::new(&format!("sts:{action}"), &resource));
        }
        None => calls.push(Call::new(
            &format!("{service}:{method} {}", url.path()),
            "?",
        )),
    }
    Some((key, calls))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("k={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_match_like_iam() {
        assert!(glob(
            "arn:aws:secretsmanager:*:1:secret:p/tenants/*",
            "arn:aws:secretsmanager:us-east-1:1:secret:p/tenants/abc-XyZ123",
            false
        ));
        assert!(!glob(
            "arn:aws:secretsmanager:*:1:secret:p/tenants/*",
            "arn:aws:secretsmanager:us-east-1:1:secret:p/app-XyZ123",
            false
        ));
        assert!(glob("s3:Get*", "S3:GETOBJECT", true));
        assert!(glob("a?c", "abc", false) && !glob("a?c", "abbc", false));
        assert!(glob("*", "", false) && !glob("", "x", false));
    }

    #[test]
    fn allow_needs_action_resource_and_condition_and_deny_wins() {
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::b",
             "Condition": {"StringLike": {"s3:prefix": ["alerts/*"]}}},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/alerts/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/alerts/secret"},
        ]});
        let policies = [policy];
        let mut list = Call::new("s3:ListBucket", "arn:aws:s3:::b");
        assert!(
            !allows(&policies, &list),
            "no prefix: the condition key is absent"
        );
        list.context
            .insert("s3:prefix".into(), "alerts/tenant=1/".into());
        assert!(allows(&policies, &list));
        list.context.insert("s3:prefix".into(), "other/".into());
        assert!(!allows(&policies, &list));
        assert!(allows(
            &policies,
            &Call::new("s3:GetObject", "arn:aws:s3:::b/alerts/x")
        ));
        assert!(!allows(
            &policies,
            &Call::new("s3:GetObject", "arn:aws:s3:::b/alerts/secret")
        ));
        assert!(!allows(
            &policies,
            &Call::new("s3:PutObject", "arn:aws:s3:::b/alerts/x")
        ));
    }

    #[test]
    fn recorded_requests_become_the_calls_iam_authorizes() {
        let arns = Arns::from_arn("arn:aws:lambda:us-east-1:123456789012:function:f");
        let auth = |service: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential=KEY1/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
            )
        };
        let create = json!({
            "headers": {"Authorization": auth("secretsmanager"), "X-Amz-Target": "secretsmanager.CreateSecret"},
            "method": "POST", "url": "http://127.0.0.1:1/",
            "body": json!({"Name": "p/tenants/t1", "Tags": [{"Key": "tenant_id", "Value": "t1"}]}).to_string(),
            "body_encoded": false,
        });
        let (key, calls) = calls_of(&create, &arns).expect("a call");
        assert_eq!(key, "KEY1");
        let actions: Vec<&str> = calls.iter().map(|c| c.action.as_str()).collect();
        assert_eq!(
            actions,
            ["secretsmanager:CreateSecret", "secretsmanager:TagResource"]
        );
        assert!(
            calls[0]
                .resource
                .starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:p/tenants/t1-")
        );
        let batch = json!({
            "headers": {"authorization": auth("sqs"), "x-amz-target": "AmazonSQS.SendMessageBatch"},
            "method": "POST", "url": "http://127.0.0.1:1/",
            "body": base64::engine::general_purpose::STANDARD.encode(json!({"QueueUrl": "http://127.0.0.1:1/123456789012/q"}).to_string()),
            "body_encoded": true,
        });
        let (_, calls) = calls_of(&batch, &arns).expect("a call");
        assert_eq!(
            calls,
            [Call::new(
                "sqs:SendMessage",
                "arn:aws:sqs:us-east-1:123456789012:q"
            )]
        );
        let list = json!({
            "headers": {"Authorization": auth("s3")},
            "method": "GET", "url": "http://127.0.0.1:1/bucket?list-type=2&prefix=alerts%2Ftenant%3D1%2F",
            "body": "", "body_encoded": false,
        });
        let (_, calls) = calls_of(&list, &arns).expect("a call");
        assert_eq!(calls[0].action, "s3:ListBucket");
        assert_eq!(calls[0].context["s3:prefix"], "alerts/tenant=1/");
        let put = json!({
            "headers": {"Authorization": auth("s3")},
            "method": "PUT", "url": "http://127.0.0.1:1/bucket/alerts/tenant%3D1/date%3D2026-01-01/x.ndjson.gz",
            "body": "", "body_encoded": false,
        });
        let (_, calls) = calls_of(&put, &arns).expect("a call");
        assert_eq!(
            calls,
            [Call::new(
                "s3:PutObject",
                "arn:aws:s3:::bucket/alerts/tenant=1/date=2026-01-01/x.ndjson.gz"
            )]
        );
    }
}
