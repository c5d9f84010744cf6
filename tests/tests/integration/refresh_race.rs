//! Token refreshes racing on one tenant, many times, over the local files and over the AWS
//! adapters on moto: each racer is its own process as far as the product can tell (its own
//! `Deps`, so its own token cache) over the one store. The emulator makes refresh tokens single
//! use here — stricter than Microsoft, which leaves a used one valid — so a racer that refreshed
//! with a token another had already rotated would be refused and mark the tenant for
//! re-consent. The tenant's refresh lease must prevent that: every racer succeeds, the tenant
//! stays active, and the refresh token stored at the end still works.

use std::sync::Arc;

use chrono::Duration;
use serde_json::json;
use shared::domain::{AlertApi, AuthModel, TenantStatus};
use shared::flows::Deps;
use shared::flows::refresh::{RefreshOutcome, refresh_tenant};

use crate::fixtures::{CONTOSO, FABRIKAM, World, tid};
use crate::lambda_world::FnWorld;

/// Refresh tokens stop working once redeemed.
async fn single_use(control: &url::Url, http: &reqwest::Client) {
    let url = tests::endpoint(control, "settings").expect("url");
    let r = http
        .patch(url)
        .json(&json!({"refresh_token_single_use": true}))
        .send()
        .await
        .expect("control");
    assert!(r.status().is_success(), "{}", r.status());
}

async fn refresh_token(d: &Deps, id: &str) -> String {
    d.tokens
        .get(&tid(id))
        .await
        .expect("store")
        .expect("tokens")
        .refresh_token
        .expect("a refresh token")
        .into_exposed()
}

/// A "process" over the stores of `services` with a token cache of its own.
fn process(services: &Deps) -> Deps {
    Deps {
        cache: Arc::default(),
        ..services.clone()
    }
}

/// `n` [`process`]es over the stores of `services`.
fn racers(services: &Deps, n: usize) -> Vec<Deps> {
    (0..n).map(|_| process(services)).collect()
}

/// `racers` refreshes of `id` at once, each over its own `Deps`; all must succeed, exactly one
/// renewing when they are due (the others use what it stored), and the stored refresh token
/// rotates.
async fn race(racers: &[Deps], id: &str, force: bool, round: usize) {
    let before = refresh_token(&racers[0], id).await;
    let calls: Vec<_> = racers
        .iter()
        .map(|d| {
            let d = d.clone();
            let id = tid(id);
            tokio::spawn(async move { refresh_tenant(&d, &id, force).await })
        })
        .collect();
    let mut renewed = 0;
    for call in calls {
        match call.await.expect("racer task") {
            Ok(RefreshOutcome::Refreshed) => renewed += 1,
            Ok(RefreshOutcome::Fresh) => {}
            Err(e) => panic!("round {round}: a racer failed: {e}"),
        }
    }
    if force {
        // A racer that read the tokens after another stored them renews again, as forced.
        assert!(renewed >= 1, "round {round}: someone renews");
    } else {
        assert_eq!(
            renewed, 1,
            "round {round}: one racer renews, the others use its tokens"
        );
    }
    let t = tests::local::registered(&racers[0], id).await;
    assert_eq!(
        t.status,
        TenantStatus::Active,
        "round {round}: no spurious re-consent"
    );
    assert!(
        t.refresh_lease.is_none(),
        "round {round}: every lease given back"
    );
    assert_ne!(
        refresh_token(&racers[0], id).await,
        before,
        "round {round}: rotated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refreshes_over_local_files_never_lose_the_rotated_refresh_token() {
    let w = World::start().await;
    single_use(&w.emu.urls().control, &w.http).await;
    w.onboard(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem)
        .await;
    w.onboard(FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde)
        .await;
    // Four "processes" over the one data directory, each with its own token cache.
    let racers = racers(&w.services, 4);
    for round in 0..25 {
        for id in [CONTOSO, FABRIKAM] {
            // Alternately forced (`mssp refresh --force`, a fetch's 401) and due (near expiry).
            let force = round % 2 == 0;
            if !force {
                w.advance(Duration::minutes(55));
            }
            race(&racers, id, force, round).await;
        }
    }
    // The stored refresh token works: one more refresh from a process that never raced.
    let fresh = process(&w.services);
    for id in [CONTOSO, FABRIKAM] {
        let r = refresh_tenant(&fresh, &tid(id), true).await.expect("works");
        assert_eq!(r, RefreshOutcome::Refreshed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refreshes_over_secrets_manager_and_dynamodb_never_lose_the_rotated_refresh_token() {
    let w = FnWorld::start(true).await;
    single_use(&w.env.emulator.urls().control, &w.env.http).await;
    w.onboard_in_process(CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem)
        .await;
    let racers = racers(&w.services, 6);
    for round in 0..15 {
        race(&racers, CONTOSO, true, round).await;
    }
    let fresh = process(&w.services);
    let r = refresh_tenant(&fresh, &tid(CONTOSO), true)
        .await
        .expect("the stored refresh token works");
    assert_eq!(r, RefreshOutcome::Refreshed);
}
