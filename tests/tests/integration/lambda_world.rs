//! A world for the function binaries: the Microsoft emulator, a DynamoDB table and a Secrets
//! Manager prefix of their own in moto (the app secret written as the operator would), the
//! "API Gateway" bridge whose URL is the public base URL, and the same configuration both for
//! the spawned binaries (as environment variables) and for in-process services over the same
//! stores (the operator's side: registering tenants, reading what the functions stored).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use emulator::Scenario;
use shared::assemble;
use shared::config::Env;
use shared::config::deployment::ServiceConfig;
use shared::domain::{AlertApi, AuthModel, Tenant, TenantTokens};
use shared::flows::Deps;
use shared::flows::onboarding::{NewTenant, begin_consent, complete_consent, start_onboarding};
use tests::TestEnv;
use tests::apigw::ApiGateway;
use tests::lambda::{LambdaProcess, function_config};
use url::Url;

use crate::fixtures::{APP_ID, APP_SECRET, CONTOSO, FABRIKAM, NORTHWIND, callback_of, tid};

/// The app's state-signing key, as the operator wrote it into `{prefix}/app`.
pub const STATE_KEY: &[u8] = b"function-tests-state-key-0123456789abcdef";

/// The fixtures' scenario, redirecting to `public_base` and running on real time (the binaries
/// use the system clock).
pub fn scenario(public_base: &Url, auto_approve: bool) -> Scenario {
    let mut sc = crate::fixtures::scenario();
    sc.clock = Default::default();
    sc.settings.auto_approve = auto_approve;
    sc.apps[0].redirect_uris = vec![format!(
        "{}/consent/callback",
        public_base.as_str().trim_end_matches('/')
    )];
    sc
}

pub struct FnWorld {
    pub env: TestEnv,
    pub gw: ApiGateway,
    pub config: Vec<(String, String)>,
    pub services: Deps,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    pub table: String,
    pub prefix: String,
}

impl FnWorld {
    pub async fn start(auto_approve: bool) -> FnWorld {
        FnWorld::start_with(auto_approve, |sc| sc).await
    }

    /// [`FnWorld::start`] with the scenario changed by `edit` first.
    pub async fn start_with(
        auto_approve: bool,
        edit: impl FnOnce(Scenario) -> Scenario,
    ) -> FnWorld {
        let gw = ApiGateway::bind().await.expect("bridge");
        let env = TestEnv::start(edit(scenario(gw.url(), auto_approve)))
            .await
            .expect("test env");
        let sdk = env.aws_config().await;
        let (ddb, table) = env.dynamodb_table("fn-table").await;
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        let prefix = env.unique_name("fn");
        let app = serde_json::json!({
            "client_id": APP_ID,
            "client_secret": APP_SECRET,
            "state_key": base64::engine::general_purpose::STANDARD.encode(STATE_KEY),
        });
        sm.create_secret()
            .name(format!("{prefix}/app"))
            .secret_string(app.to_string())
            .send()
            .await
            .expect("app secret");
        let config = function_config(gw.url().as_str(), &prefix, &table, env.emulator.urls());
        let cfg = ServiceConfig::from_env(&config.iter().cloned().collect::<Env>())
            .expect("the functions' configuration");
        let services = assemble::aws(&cfg, &sdk);
        FnWorld {
            env,
            gw,
            config,
            services,
            ddb,
            sm,
            table,
            prefix,
        }
    }

    /// The binaries' environment: moto's variables and the `MSSP_*` configuration.
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .env
            .aws_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        env.extend(self.config.iter().cloned());
        env
    }

    pub async fn spawn(&self, name: &str) -> LambdaProcess {
        LambdaProcess::spawn(name, self.lambda_env())
            .await
            .expect("function binary (run `cargo build --workspace --bins`)")
    }

    /// Starts `consent-callback` behind the bridge.
    pub async fn serve_consent(&mut self) -> Arc<LambdaProcess> {
        let f = Arc::new(self.spawn("consent-callback").await);
        self.gw.serve(f.clone()).expect("bridge serves");
        f
    }

    /// Sends `body` with `method` to the emulator's control API at `path`; asserts it was
    /// accepted.
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) {
        tests::control(&self.env.http, &self.env.emulator, method, path, body).await;
    }

    /// The operator registers a pending tenant; returns the consent link to send.
    pub async fn register(&self, id: &str, name: &str, model: AuthModel, api: AlertApi) -> Url {
        start_onboarding(&self.services, NewTenant::new(tid(id), name, model, api))
            .await
            .expect("onboarding starts")
            .consent_link
    }

    /// Onboards a tenant in-process (auto-approving emulator), without the consent binary.
    pub async fn onboard_in_process(&self, id: &str, model: AuthModel, api: AlertApi) -> Tenant {
        let link = self
            .register(id, &format!("Customer {}", &id[..4]), model, api)
            .await;
        let ms = begin_consent(&self.services, &link_param(&link))
            .await
            .expect("consent begins");
        let back = self.redirect_of(ms.as_str()).await;
        complete_consent(&self.services, &callback_of(&back))
            .await
            .expect("consent completes")
    }

    /// Onboards the three active tenants of the fixtures in-process: Contoso (delegated v1,
    /// SIEM API), Fabrikam (delegated v2, MDE API), Northwind (application, Graph).
    pub async fn onboard_three(&self) {
        for (id, model, api) in [
            (CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem),
            (FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde),
            (NORTHWIND, AuthModel::Application, AlertApi::Graph),
        ] {
            self.onboard_in_process(id, model, api).await;
        }
    }

    /// GETs `url` and returns the `Location` it redirects to.
    pub async fn redirect_of(&self, url: &str) -> Url {
        tests::redirect_of(&self.env.http, url).await
    }

    /// Turns the tenant's SIEM API off in the emulator: every fetch of it fails.
    pub async fn siem_off(&self, id: &str) {
        self.control(
            reqwest::Method::PATCH,
            &format!("tenants/{id}/switches"),
            Some(serde_json::json!({"siem_enabled": false})),
        )
        .await;
    }

    pub async fn tenant(&self, id: &str) -> Option<Tenant> {
        tests::local::tenant_record(&self.services, id).await
    }

    pub async fn tokens(&self, id: &str) -> Option<TenantTokens> {
        self.services
            .tokens
            .get(&tid(id))
            .await
            .expect("token store")
    }

    /// Everything this world's stores hold: every DynamoDB item of the table, and the name and
    /// versions of every secret under the prefix.
    pub async fn snapshot(&self) -> Snapshot {
        let scan = self
            .ddb
            .scan()
            .table_name(&self.table)
            .consistent_read(true);
        let scanned = scan.into_paginator().items().send().try_collect().await;
        let mut items = BTreeMap::new();
        for item in scanned.expect("scan") {
            let key = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            let attrs: BTreeMap<_, _> = item
                .iter()
                .map(|(k, v)| (k.clone(), format!("{v:?}")))
                .collect();
            items.insert(format!("{}|{}", key("pk"), key("sk")), format!("{attrs:?}"));
        }
        let mut secrets = BTreeMap::new();
        let mut token = None;
        loop {
            let page = self
                .sm
                .list_secrets()
                .filters(
                    aws_sdk_secretsmanager::types::Filter::builder()
                        .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                        .values(&self.prefix)
                        .build(),
                )
                .set_next_token(token.take())
                .send()
                .await
                .expect("list secrets");
            for s in page.secret_list() {
                let name = s.name().unwrap_or_default().to_owned();
                if !name.starts_with(&format!("{}/", self.prefix)) {
                    continue;
                }
                let versions = tests::aws::secret_versions(&self.sm, &name).await;
                secrets.insert(name, versions);
            }
            match page.next_token() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        Snapshot { items, secrets }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `pk|sk` → attributes.
    pub items: BTreeMap<String, String>,
    /// Secret name → versions.
    pub secrets: BTreeMap<String, Vec<String>>,
}

impl Snapshot {
    /// The snapshot without the used-nonce items.
    pub fn without_nonces(&self) -> Snapshot {
        Snapshot {
            items: self
                .items
                .iter()
                .filter(|(k, _)| !k.starts_with("NONCE#"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            secrets: self.secrets.clone(),
        }
    }

    pub fn nonces(&self) -> usize {
        self.items
            .keys()
            .filter(|k| k.starts_with("NONCE#"))
            .count()
    }
}

/// The `link` parameter of a consent link.
pub fn link_param(link: &Url) -> String {
    link.query_pairs()
        .find(|(k, _)| k == "link")
        .map(|(_, v)| v.into_owned())
        .expect("link parameter")
}

/// The raw query of `url`.
pub fn raw_query(url: &Url) -> String {
    url.query().unwrap_or_default().to_owned()
}

/// `s` percent-encoded as a form value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The security headers every consent answer carries.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("content-type", "text/html; charset=utf-8"),
];

/// Asserts the [`SECURITY_HEADERS`] of an HTTP answer.
pub fn assert_security_headers(resp: &reqwest::Response, what: &str) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            resp.headers().get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{what}: header {name}"
        );
    }
}
