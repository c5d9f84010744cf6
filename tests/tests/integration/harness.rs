//! Smoke tests of the harness itself: both emulators come up on loopback and moto is shared.

use emulator::Scenario;
use reqwest::StatusCode;
use tests::{TestEnv, endpoint};

#[tokio::test]
async fn emulator_answers_health_on_loopback() -> anyhow::Result<()> {
    let env = TestEnv::start(Scenario::sample()).await?;
    assert_eq!(env.emulator.base_url().host_str(), Some("127.0.0.1"));

    let health = endpoint(&env.emulator.urls().control, "health")?;
    let response = env.http.get(health).send().await?;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await?, "ok");
    env.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn moto_is_reachable_and_creates_a_bucket() -> anyhow::Result<()> {
    let env = TestEnv::start(Scenario::sample()).await?;
    assert_eq!(env.moto_url.host_str(), Some("127.0.0.1"));
    let bucket = env.unique_name("smoke");

    // Plain S3 REST, path style: moto treats unsigned requests as S3.
    let created = env.http.put(env.moto_url.join(&bucket)?).send().await?;
    let status = created.status();
    assert_eq!(status, StatusCode::OK, "{}", created.text().await?);
    let listing = env.http.get(env.moto_url.clone()).send().await?;
    assert_eq!(listing.status(), StatusCode::OK);

    let body = listing.text().await?;
    assert!(
        body.contains(&format!("<Name>{bucket}</Name>")),
        "bucket {bucket} missing from the listing: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn two_envs_share_one_moto() -> anyhow::Result<()> {
    let first = TestEnv::start(Scenario::sample()).await?;
    let second = TestEnv::start(Scenario::sample()).await?;

    assert_eq!(first.moto_url, second.moto_url);
    assert_ne!(first.emulator.base_url(), second.emulator.base_url());
    assert_ne!(first.unique_name("x"), second.unique_name("x"));
    let endpoint_of = |env: &TestEnv| {
        env.aws_env()
            .into_iter()
            .find(|(name, _)| *name == "AWS_ENDPOINT_URL")
            .map(|(_, value)| value)
    };
    assert_eq!(endpoint_of(&first), endpoint_of(&second));
    Ok(())
}
