//! The product's services over the local file adapters, pointed at a Microsoft emulator, and the
//! consent round trip a customer's browser makes: what flow tests and benchmarks need to onboard
//! a tenant for real (begin consent, open Microsoft's URL, come back to our callback, complete)
//! and then fetch its alerts into a local sink.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use shared::adapters::local::FileAppSecrets;
use shared::clock::Clock;
use shared::config::{CloudEndpoints, Endpoints};
use shared::domain::Tenant;
use shared::flows::onboarding::{
    Callback, NewTenant, begin_consent, complete_consent, start_onboarding,
};
use shared::flows::{Deps, Settings};
use shared::ports::AppCredentials;
use shared::secret::{ClientSecret, SigningKey};
use url::Url;

/// The `state` signing key of every local world (a test value, not a secret).
const STATE_KEY: &[u8] = b"0123456789abcdef0123456789abcdef-state-key";

/// Stores the MSSP app's credentials under `dir`, as the operator does once per deployment.
///
/// # Errors
///
/// When the file cannot be written.
pub fn write_app_secret(dir: &Path, client_id: &str, client_secret: &str) -> anyhow::Result<()> {
    FileAppSecrets::new(dir)
        .write(&AppCredentials {
            client_id: client_id.into(),
            client_secret: ClientSecret::new(client_secret.into()),
            state_key: SigningKey::new(STATE_KEY.to_vec()),
            tenant_id: None,
            client_secret_expires: None,
        })
        .context("writing the app secret")
}

/// The product's Microsoft endpoints at the emulator's `urls` (its SIEM URL answering for every
/// region).
pub fn endpoints(urls: &emulator::Urls) -> CloudEndpoints {
    CloudEndpoints {
        authority: urls.authority.clone(),
        graph: urls.graph.clone(),
        mde: urls.mde.clone(),
        siem: shared::config::SiemEndpoint::fixed(urls.siem.clone()),
    }
}

/// The product's dependencies over the file adapters in `dir`, reaching Microsoft at
/// `endpoints`, with consent callbacks at `public_base` and time from `clock`.
pub fn file_deps(
    dir: &Path,
    endpoints: CloudEndpoints,
    public_base: Url,
    clock: Arc<dyn Clock>,
) -> Deps {
    shared::assemble::local(
        dir,
        &FileAppSecrets::default_path(dir),
        clock,
        Settings::new(Endpoints::Fixed(Box::new(endpoints)), public_base),
    )
}

/// The query parameters of a consent callback URL.
pub fn callback_of(u: &Url) -> Callback {
    let mut cb = Callback::default();
    for (k, v) in u.query_pairs() {
        let v = Some(v.into_owned());
        match k.as_ref() {
            "state" => cb.state = v,
            "code" => cb.code = v,
            "admin_consent" => cb.admin_consent = v,
            "tenant" => cb.tenant = v,
            "error" => cb.error = v,
            "error_description" => cb.error_description = v,
            _ => {}
        }
    }
    cb
}

/// GETs a Microsoft authorize or admin-consent URL (answered at once by an auto-approving
/// emulator) with `http`, which must not follow redirects, and returns the callback that
/// Microsoft's redirect carries back to `redirect_uri` ([`Settings::redirect_uri`]).
///
/// # Errors
///
/// When Microsoft does not redirect, or redirects anywhere but `redirect_uri`.
pub async fn follow_consent(
    http: &reqwest::Client,
    ms: Url,
    redirect_uri: &str,
) -> anyhow::Result<Callback> {
    let resp = http
        .get(ms)
        .send()
        .await
        .context("opening Microsoft's URL")?;
    ensure!(
        resp.status().as_u16() == 302,
        "Microsoft answered {} instead of redirecting",
        resp.status()
    );
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("the redirect has no Location")?;
    let back = Url::parse(location).context("the redirect is not a URL")?;
    let mut target = back.clone();
    target.set_query(None);
    if target.as_str() != redirect_uri {
        bail!("Microsoft redirected to {location}, not to {redirect_uri}");
    }
    Ok(callback_of(&back))
}

/// Opens a consent link the way the customer's browser does and returns the callback.
///
/// # Errors
///
/// When the link carries no `link` parameter, the flow refuses it, or Microsoft does not come
/// back (see [`follow_consent`]).
pub async fn sign_in(s: &Deps, http: &reqwest::Client, link: &Url) -> anyhow::Result<Callback> {
    let ms = microsoft_sign_in(s, link).await?;
    follow_consent(http, ms, &s.settings.redirect_uri()).await
}

/// Begins consent from a consent link, as our start route does: the Microsoft sign-in URL the
/// browser is sent to.
///
/// # Errors
///
/// When the link carries no `link` parameter or the flow refuses it.
pub async fn microsoft_sign_in(s: &Deps, link: &Url) -> anyhow::Result<Url> {
    let link_param = link
        .query_pairs()
        .find(|(k, _)| k == "link")
        .map(|(_, v)| v.into_owned())
        .context("the consent link has no link parameter")?;
    begin_consent(s, &link_param)
        .await
        .context("beginning consent")
}

/// Onboards `new` end to end: registers it, signs in through its consent link and completes
/// consent, so the tenant is active with tokens stored.
///
/// # Errors
///
/// When any step fails.
pub async fn onboard(s: &Deps, http: &reqwest::Client, new: NewTenant) -> anyhow::Result<Tenant> {
    let link = start_onboarding(s, new)
        .await
        .context("starting onboarding")?
        .consent_link;
    let cb = sign_in(s, http, &link).await?;
    complete_consent(s, &cb).await.context("completing consent")
}

/// The registry's record of tenant `id` (a tenant id in text), if any.
///
/// # Panics
///
/// When `id` is no tenant id or the registry cannot be read.
pub async fn tenant_record(s: &Deps, id: &str) -> Option<Tenant> {
    let id = shared::domain::TenantId::parse(id).expect("tenant id");
    s.registry.get(&id).await.expect("registry")
}

/// The registry's record of tenant `id`, which must be there.
///
/// # Panics
///
/// As [`tenant_record`], and when the tenant is not registered.
pub async fn registered(s: &Deps, id: &str) -> Tenant {
    tenant_record(s, id).await.expect("tenant")
}
