//! Every log line and error message of a full consent and refresh run, captured and searched for
//! the tokens, codes and secrets the emulator issued: none may appear.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::Duration;
use shared::domain::{AlertApi, AuthModel};
use shared::flows::onboarding::complete_consent;
use shared::flows::refresh::{refresh_all, refresh_tenant};

use crate::fixtures::{APP_ID, APP_SECRET, CONTOSO, FABRIKAM, NORTHWIND, World, tid};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::ErrorKind::Other)?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn secrets_in_store(w: &World, out: &mut Vec<String>) {
    for id in [CONTOSO, FABRIKAM, NORTHWIND] {
        if let Some(t) = w.services.tokens.get(&tid(id)).await.expect("store") {
            if let Some(a) = t.access_token {
                out.push(a.into_exposed());
            }
            if let Some(r) = t.refresh_token {
                out.push(r.into_exposed());
            }
        }
    }
}

#[tokio::test]
async fn a_full_consent_and_refresh_run_logs_no_token_code_or_secret() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let w = World::start().await;
    let mut issued = vec![APP_SECRET.to_string()];
    let mut messages = Vec::new();
    for (id, model, api) in [
        (CONTOSO, AuthModel::DelegatedV1, AlertApi::Siem),
        (FABRIKAM, AuthModel::DelegatedV2, AlertApi::Mde),
        (NORTHWIND, AuthModel::Application, AlertApi::Graph),
    ] {
        let cb = w.signed_in(id, model, api).await;
        if let Some(code) = &cb.code {
            issued.push(code.clone());
        }
        let t = complete_consent(&w.services, &cb).await.expect("consent");
        messages.push(format!("{t:?}"));
        // A replay of the same callback fails; its message is captured too.
        let e = w.refused(&cb).await;
        messages.push(format!("{e} {e:?}"));
    }
    secrets_in_store(&w, &mut issued).await;
    for _ in 0..3 {
        w.advance(Duration::minutes(70));
        let s = refresh_all(&w.services, None).await.expect("refresh");
        messages.push(format!("{s:?}"));
        secrets_in_store(&w, &mut issued).await;
    }
    // Failure paths: an expired secret and a revoked user.
    let control = w.emu.urls().control.clone();
    w.http
        .post(format!(
            "{control}/tenants/{CONTOSO}/users/admin@contoso.onmicrosoft.com/revoke"
        ))
        .send()
        .await
        .expect("revoke");
    w.advance(Duration::minutes(1));
    let e = refresh_tenant(&w.services, &tid(CONTOSO), true)
        .await
        .expect_err("revoked");
    messages.push(format!("{e} {e:?}"));
    w.http
        .post(format!("{control}/apps/{APP_ID}/expire-secret"))
        .send()
        .await
        .expect("expire");
    w.advance(Duration::minutes(1));
    let s = refresh_all(&w.services, None).await.expect("refresh");
    messages.push(format!("{s:?}"));
    let e = refresh_tenant(&w.services, &tid(FABRIKAM), true)
        .await
        .expect_err("misconfigured");
    messages.push(format!("{e} {e:?}"));

    let logs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf8");
    assert!(logs.contains("tenant consented"), "the run did log: {logs}");
    assert!(issued.len() >= 12, "collected {} secrets", issued.len());
    let everything = format!("{logs}\n{}", messages.join("\n"));
    for secret in &issued {
        assert!(secret.len() >= 8);
        assert!(
            !everything.contains(secret.as_str()),
            "a secret leaked into logs or messages"
        );
    }
}
