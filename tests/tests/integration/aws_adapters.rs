//! The AWS adapters at their wire boundary, against the AWS emulator (moto): Secrets Manager
//! token store and app secrets, DynamoDB tenant registry and consent nonces; the registry and
//! the nonces under the contracts of `tests::contract`, which the file adapters meet too.

use chrono::Utc;
use emulator::Scenario;
use shared::adapters::aws::{
    DynamoDbConsentNonces, DynamoDbTenantRegistry, SecretsManagerAppSecrets,
    SecretsManagerTokenStore,
};
use shared::adapters::local::{FileConsentNonces, FileTenantRegistry};
use shared::domain::{AlertApi, AuthModel, TenantId, TenantTokens};
use shared::ports::{AppSecrets, ConsentNonces, StoreError, TenantRegistry, TokenStore};
use shared::secret::{AccessToken, RefreshToken};
use tests::TestEnv;
use tests::contract::{nonces, registry};

fn tid(n: u32) -> TenantId {
    TenantId::parse(&format!("{n:08x}-0000-4000-8000-000000000000")).expect("tid")
}

fn tokens(t: &TenantId, rt: &str) -> TenantTokens {
    TenantTokens {
        tenant_id: t.clone(),
        auth_model: AuthModel::DelegatedV1,
        resource: "https://graph.windows.net".into(),
        refresh_token: Some(RefreshToken::new(rt.into())),
        access_token: Some(AccessToken::new("at".into())),
        expires_at: Some(Utc::now()),
        refresh_token_obtained_at: Some(Utc::now()),
        obtained_at: Utc::now(),
        rotated_at: None,
    }
}

#[tokio::test]
async fn secrets_manager_creates_on_first_write_then_adds_versions_with_tags_and_kms_key() {
    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let sm = aws_sdk_secretsmanager::Client::new(&env.aws_config().await);
    let prefix = env.unique_name("mssp");
    let key = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";
    let store = SecretsManagerTokenStore::new(sm.clone(), &prefix, Some(key.to_string()));
    let t = tid(1);
    assert!(
        store.get(&t).await.expect("get").is_none(),
        "not found is None"
    );

    store
        .put(&tokens(&t, "rt-1"))
        .await
        .expect("first write creates");
    let name = store.secret_name(&t);
    assert_eq!(name, format!("{prefix}/tenants/{t}"));
    let d = sm
        .describe_secret()
        .secret_id(&name)
        .send()
        .await
        .expect("describe");
    assert_eq!(d.kms_key_id(), Some(key));
    let tags: Vec<(String, String)> = d
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().into(),
                t.value().unwrap_or_default().into(),
            )
        })
        .collect();
    assert!(
        tags.contains(&("tenant_id".into(), t.to_string())),
        "{tags:?}"
    );

    let second = tokens(&t, "rt-2");
    store.put(&second).await.expect("later write versions");
    store
        .put(&second)
        .await
        .expect("a retried write is idempotent");
    assert_eq!(
        tests::aws::secret_versions(&sm, &name).await.len(),
        2,
        "one version per distinct value"
    );
    let back = store.get(&t).await.expect("get").expect("stored");
    assert_eq!(
        back.refresh_token.map(|r| r.into_exposed()).as_deref(),
        Some("rt-2")
    );

    store.delete(&t).await.expect("delete");
    assert!(store.get(&t).await.expect("get").is_none());
    store.delete(&t).await.expect("deleting nothing is fine");
    store
        .put(&tokens(&t, "rt-3"))
        .await
        .expect("onboarding again at once works");
}

#[tokio::test]
async fn the_app_secret_is_read_once_and_a_missing_or_broken_one_is_reported_without_its_value() {
    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let sm = aws_sdk_secretsmanager::Client::new(&env.aws_config().await);
    let name = env.unique_name("mssp-app");
    let app = SecretsManagerAppSecrets::new(sm.clone(), &name);
    assert!(matches!(
        app.app_credentials().await,
        Err(StoreError::NotFound)
    ));
    sm.create_secret()
        .name(&name)
        .secret_string(r#"{"client_id":"app","client_secret":"s3cr3t-value","state_key":"c2lnbmluZy1rZXktc2lnbmluZy1rZXktc2lnbmluZy1rZXk="}"#)
        .send()
        .await
        .expect("create");
    let creds = app.app_credentials().await.expect("read");
    assert_eq!(creds.client_id, "app");
    assert_eq!(creds.client_secret.expose_secret(), "s3cr3t-value");
    sm.put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"client_id":"app","client_secret":"s3cr3t-value"}"#)
        .send()
        .await
        .expect("put");
    // A process reads the app secret once (for APP_SECRET_TTL): the one that read it keeps
    // what it read; a new one reads the broken value.
    let kept = app
        .app_credentials()
        .await
        .expect("kept from the first read");
    assert_eq!(kept.client_id, "app");
    let app = SecretsManagerAppSecrets::new(sm.clone(), &name);
    let e = app.app_credentials().await.expect_err("broken");
    let text = format!("{e} {e:?}");
    assert!(matches!(e, StoreError::Corrupt { .. }));
    assert!(!text.contains("s3cr3t-value"), "{text}");
}

#[tokio::test]
async fn the_dynamodb_registry_writes_conditionally_and_lists_every_tenant_and_the_active_ones() {
    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let (ddb, table) = env.dynamodb_table("mssp-table").await;
    let reg = DynamoDbTenantRegistry::new(ddb, &table);
    registry::writes_conditionally_and_lists_every_tenant_and_the_active_ones(&reg).await;
}

#[tokio::test]
async fn the_file_registry_writes_conditionally_and_lists_every_tenant_and_the_active_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = FileTenantRegistry::new(dir.path());
    registry::writes_conditionally_and_lists_every_tenant_and_the_active_ones(&reg).await;
}

#[tokio::test]
async fn a_dynamodb_nonce_is_consumed_once() {
    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let (ddb, table) = env.dynamodb_table("mssp-table").await;
    nonces::are_consumed_once(&DynamoDbConsentNonces::new(ddb, &table)).await;
}

#[tokio::test]
async fn a_file_nonce_is_consumed_once_and_hostile_nonces_never_touch_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = FileConsentNonces::new(dir.path());
    nonces::are_consumed_once(&n).await;
    let exp = Utc::now() + chrono::Duration::minutes(5);
    assert!(
        !n.consume("../../etc/passwd", Utc::now(), exp)
            .await
            .expect("hostile")
    );
}

#[tokio::test]
async fn an_unreachable_store_is_reported_as_unavailable() {
    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let conf = env.aws_config().await;
    let table = env.unique_name("missing-table");
    let reg = DynamoDbTenantRegistry::new(aws_sdk_dynamodb::Client::new(&conf), &table);
    assert!(matches!(
        reg.get(&tid(1)).await,
        Err(StoreError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn a_consent_over_the_aws_adapters_puts_tokens_in_the_secret_and_none_in_the_table() {
    use crate::fixtures::{NORTHWIND, World};
    let env = TestEnv::start(Scenario::default()).await.expect("env");
    let (ddb, table) = env.dynamodb_table("mssp-table").await;
    let sm = aws_sdk_secretsmanager::Client::new(&env.aws_config().await);
    let prefix = env.unique_name("mssp");
    let mut w = World::start().await;
    w.services.registry = std::sync::Arc::new(DynamoDbTenantRegistry::new(ddb.clone(), &table));
    w.services.nonces = std::sync::Arc::new(DynamoDbConsentNonces::new(ddb.clone(), &table));
    let store = SecretsManagerTokenStore::new(sm.clone(), &prefix, None);
    w.services.tokens = std::sync::Arc::new(store.clone());
    w.onboard(NORTHWIND, AuthModel::Application, AlertApi::Graph)
        .await;

    let id = TenantId::parse(NORTHWIND).expect("tid");
    let secret = sm
        .get_secret_value()
        .secret_id(store.secret_name(&id))
        .send()
        .await
        .expect("secret");
    let stored: TenantTokens =
        serde_json::from_str(secret.secret_string().expect("string")).expect("tokens");
    let access = stored.access_token.expect("access token").into_exposed();
    let items = ddb.scan().table_name(&table).send().await.expect("scan");
    let dump = format!("{:?}", items.items());
    assert!(
        dump.contains("\"active\""),
        "the tenant is active in the table"
    );
    assert!(!dump.contains(&access), "the table holds no token");
}
