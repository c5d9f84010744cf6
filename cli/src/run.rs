//! `mssp run [--once] [TENANT…]`: the cycle `mssp serve` runs on its schedule — refresh the
//! tokens that need it, then fetch every active tenant (a sweep or backfill slice after each
//! fetch when one is due) and move its cursor — in the foreground, without the consent endpoint.
//! A progress line per tenant on stderr (a bar per tenant in flight on a terminal, plain lines
//! otherwise), the status table at the end, exit 0 when every tenant is fine and 3 when one needs
//! attention. Without `--once` it runs a cycle every `schedule.fetch_interval` until interrupted.

use std::io::IsTerminal;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use shared::domain::{Tenant, TenantId, TenantStatus};
use shared::flows::fetch::{FetchFlowError, FetchOptions, NoHooks};
use shared::flows::refresh::{refresh_all, refresh_tenant};
use shared::flows::schedule::{TenantWork, tenant_work};
use tokio::time::Instant;

use crate::backend::Backend;
use crate::config::Config;
use crate::error::{CliError, Exit};
use crate::output::seconds;
use crate::status::{self, Selection};

/// `mssp run`.
pub async fn run(
    b: &Backend,
    config: &Config,
    once: bool,
    only: Vec<TenantId>,
    json: bool,
) -> Result<Exit, CliError> {
    b.check_app().await?;
    loop {
        cycle(b, config, &only).await?;
        let sel = Selection {
            ids: only.clone(),
            ..Selection::default()
        };
        let exit = status::run(b, sel, json).await?;
        if once {
            return Ok(exit);
        }
        eprintln!(
            "next cycle in {} (Ctrl-C stops)",
            crate::serve::human(config.fetch_interval)
        );
        tokio::select! {
            () = tokio::time::sleep(config.fetch_interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(exit),
        }
    }
}

/// One refresh + fetch cycle of `only` (every active tenant when empty).
async fn cycle(b: &Backend, config: &Config, only: &[TenantId]) -> Result<(), CliError> {
    let tenants = selected(b, only).await?;
    if only.is_empty() {
        let r = refresh_all(&b.deps, None).await?;
        if let Some(app) = r.app_misconfigured {
            eprintln!("refresh: {app}");
        }
    } else {
        for t in &tenants {
            // Failures are recorded on the tenant and shown by the status below.
            let _ = refresh_tenant(&b.deps, &t.id, false).await;
        }
    }
    let progress = Progress::new(tenants.len());
    let owner = format!("mssp-run-{}", uuid::Uuid::new_v4().simple());
    futures::stream::iter(&tenants)
        .map(|t| {
            let (progress, owner) = (&progress, &owner);
            async move {
                let bar = progress.start(t);
                let opts = FetchOptions {
                    deadline: Instant::now() + config.fetch_run_deadline,
                    owner: owner.clone(),
                    hooks: &NoHooks,
                };
                let work = tenant_work(&b.deps, t, &opts).await;
                progress.finish(bar, t, &work);
            }
        })
        .buffer_unordered(b.deps.settings.fetch.concurrency)
        .collect::<Vec<()>>()
        .await;
    progress.done();
    Ok(())
}

/// The active tenants to fetch: `only`, each of which must exist and be active, or all.
async fn selected(b: &Backend, only: &[TenantId]) -> Result<Vec<Tenant>, CliError> {
    if only.is_empty() {
        return Ok(shared::flows::dispatch::dispatch(&b.deps).await?);
    }
    let mut out = Vec::with_capacity(only.len());
    for id in only {
        let t = b.tenant(id).await?;
        if t.status != TenantStatus::Active {
            return Err(CliError::Fetch(FetchFlowError::NotActive(t.status)));
        }
        out.push(t);
    }
    Ok(out)
}

/// A tenant's outcome in one line.
fn outcome(t: &Tenant, work: &TenantWork) -> String {
    let name = &t.display_name;
    match &work.fetch {
        Ok(r) => {
            let late = match &work.sweep {
                Some(Ok(shared::flows::sweep::Swept::Ran(
                    shared::flows::fetch::job::Slice::Finished(s),
                ))) if s.delivered > 0 => format!(", {} found late", s.delivered),
                _ => String::new(),
            };
            format!(
                "{name}: {} alerts delivered{late}, lag {}",
                r.delivered,
                seconds(Some(r.lag_s))
            )
        }
        Err(e) => format!("{name}: failed: {e}"),
    }
}

/// Progress on stderr: on a terminal a bar for the cycle and a spinner per tenant in flight,
/// each finished tenant's line printed above them; otherwise one plain line per tenant.
struct Progress {
    bars: Option<(MultiProgress, ProgressBar)>,
}

impl Progress {
    fn new(tenants: usize) -> Self {
        if !std::io::stderr().is_terminal() {
            eprintln!("fetching {tenants} tenants");
            return Progress { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(tenants as u64));
        total.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} tenants, {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress {
            bars: Some((multi, total)),
        }
    }

    fn start(&self, t: &Tenant) -> Option<ProgressBar> {
        let (multi, _) = self.bars.as_ref()?;
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_message(format!("{}: fetching", t.display_name));
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    }

    fn finish(&self, bar: Option<ProgressBar>, t: &Tenant, work: &TenantWork) {
        let line = outcome(t, work);
        match (&self.bars, bar) {
            (Some((multi, total)), Some(bar)) => {
                bar.finish_and_clear();
                multi.remove(&bar);
                let _ = multi.println(line);
                total.inc(1);
            }
            _ => eprintln!("{line}"),
        }
    }

    fn done(self) {
        if let Some((_, total)) = self.bars {
            total.finish_and_clear();
        }
    }
}
