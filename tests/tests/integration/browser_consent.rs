//! A customer's admin consents in a real browser (headless Chromium over WebDriver): the consent
//! link on the API Gateway bridge, the emulator's sign-in page (auto-approve off), Accept, and
//! the `consent-callback` binary's success page.

use std::time::Duration;

use shared::domain::{AlertApi, AuthModel, TenantStatus};
use tests::browser::Browser;

use crate::fixtures::FABRIKAM;
use crate::lambda_world::FnWorld;

#[tokio::test]
async fn an_admin_consents_in_a_real_browser_and_lands_on_the_success_page() {
    let Some(browser) = Browser::start().await.expect("browser") else {
        return;
    };
    let mut w = FnWorld::start(false).await;
    w.serve_consent().await;
    let link = w
        .register(
            FABRIKAM,
            "Fabrikam & Sons",
            AuthModel::DelegatedV2,
            AlertApi::Mde,
        )
        .await;

    browser.goto(link.as_str()).await.expect("open the link");
    let signin = browser.url().await.expect("url");
    assert!(
        signin.starts_with(w.env.emulator.urls().authority.as_str()),
        "the link leads to Microsoft's sign-in: {signin}"
    );
    browser
        .find("select[name=user]")
        .await
        .expect("account picker");
    browser.click("#accept").await.expect("Accept");

    // The callback exchanges the code and stores the tokens before it answers: on a loaded
    // machine (the whole suite in parallel on 2 cores) that has taken more than 10 s.
    let mut landed = (String::new(), String::new());
    for _ in 0..600 {
        landed = (
            browser.url().await.unwrap_or_default(),
            browser.text("body").await.unwrap_or_default(),
        );
        if landed.1.contains("Consent recorded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (url, text) = landed;
    assert!(
        url.starts_with(&format!("{}consent/callback?", w.gw.url())),
        "{url}"
    );
    assert!(text.contains("Consent recorded"), "{text}");
    assert!(text.contains("Fabrikam & Sons"), "names the tenant: {text}");
    assert!(text.contains(FABRIKAM), "{text}");
    browser.quit().await;

    let t = w.tenant(FABRIKAM).await.expect("tenant");
    assert_eq!(t.status, TenantStatus::Active);
    assert!(
        w.tokens(FABRIKAM)
            .await
            .is_some_and(|t| t.refresh_token.is_some())
    );
}
