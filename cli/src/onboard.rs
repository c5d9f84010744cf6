//! Onboarding commands: `mssp tenants add` (one tenant) and `mssp tenants import` (a fleet from a
//! file). Both adopt an application tenant whose admin already granted the app's roles (its
//! token's `tid` and roles verified, no click), and give every other tenant a consent link.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use shared::adapters::local::write_atomic;
use shared::domain::{AlertApi, AuthModel, Tenant};
use shared::flows::adoption::{self, Adoption, Onboarding, PendingReason};
use shared::flows::onboarding::{ConsentError, NewTenant, consent_link};

use crate::args::{AddTenant, ImportTenants};
use crate::backend::Backend;
use crate::config::parse_duration;
use crate::error::{CliError, Exit};
use crate::fleet_file::{self, csv_field};
use crate::output::print_json;

/// `mssp tenants add`.
pub async fn add(b: &Backend, a: AddTenant, json: bool) -> Result<Exit, CliError> {
    let backfill = backfill_of(a.backfill.as_deref())?;
    if a.siem_region.is_some() && a.api != AlertApi::Siem {
        return Err(CliError::Usage(
            "--siem-region applies to tenants read through the siem API only".into(),
        ));
    }
    let siem_region =
        (a.api == AlertApi::Siem).then(|| a.siem_region.unwrap_or(b.deps.settings.siem_region));
    b.check_app().await?;
    let on = adoption::onboard(
        &b.deps,
        NewTenant {
            id: a.id,
            display_name: a.name,
            auth_model: a.model,
            alert_api: a.api,
            cloud: a.cloud,
            backfill,
            siem_region,
        },
    )
    .await?;
    let t = &on.tenant;
    let (link, reason, exit) = match &on.adoption {
        Adoption::AlreadyOnboarded => {
            return Err(ConsentError::AlreadyRegistered(t.status).into());
        }
        Adoption::Adopted => (None, None, Exit::Ok),
        Adoption::Pending {
            consent_link,
            reason,
        } => (
            Some(consent_link.clone()),
            Some(reason.to_string()),
            Exit::Ok,
        ),
        Adoption::Unverified { reason } => (
            Some(consent_link(&b.deps, t).await?),
            Some(reason.clone()),
            Exit::TenantsFailed,
        ),
    };
    if json {
        print_json(&json!({
            "tenant": t,
            "adoption": kind(&on.adoption),
            "reason": reason,
            "consent_link": link.as_ref().map(|l| l.as_str()),
        }))?;
    } else {
        print_added(b, &on, link, reason);
    }
    Ok(exit)
}

/// `--backfill`: how far back the first fetch reads.
fn backfill_of(arg: Option<&str>) -> Result<Option<chrono::Duration>, CliError> {
    arg.map(|h| {
        parse_duration(h)
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--backfill {h:?}: expected a duration such as 180d"
                ))
            })
    })
    .transpose()
}

/// What `mssp tenants add` did, for the operator: adopted, or the consent link to send.
fn print_added(b: &Backend, on: &Onboarding, link: Option<url::Url>, reason: Option<String>) {
    let t = &on.tenant;
    let what = format!(
        "{} ({}): {}, {} API, {} cloud",
        t.display_name, t.id, t.auth_model, t.alert_api, t.cloud
    );
    match (&on.adoption, link) {
        (Adoption::Adopted, _) => {
            println!(
                "Adopted {what}; status {}: its admin had already granted the app's roles, so \
                 no consent link is needed.",
                t.status
            );
            if let Some(v) = t.consent.as_ref().and_then(|c| c.verified.as_deref()) {
                println!("Verified: {v}.");
            }
        }
        (adoption, Some(link)) => {
            println!("Registered {what}; status {}.", t.status);
            match (adoption, reason) {
                (Adoption::Unverified { .. }, Some(r)) => println!(
                    "Could not check whether its admin already granted the app's roles ({r}); \
                     run `mssp tenants add` again later, or send the link."
                ),
                (_, Some(r)) if t.auth_model == AuthModel::Application => {
                    println!("Not adopted without a click: {r}.")
                }
                _ => {}
            }
            println!(
                "Send this consent link to the customer's admin (valid {} days):",
                b.deps.settings.consent_link_ttl.num_days()
            );
            println!("{link}");
        }
        (_, None) => {}
    }
}

fn kind(a: &Adoption) -> &'static str {
    match a {
        Adoption::Adopted => "adopted",
        Adoption::Pending { .. } => "pending",
        Adoption::Unverified { .. } => "unverified",
        Adoption::AlreadyOnboarded => "done",
    }
}

/// What became of one line of an import.
#[derive(Debug)]
struct LineResult {
    line: usize,
    tenant: Option<Tenant>,
    created: bool,
    result: &'static str,
    reason: Option<String>,
    /// The pending reason's group, for the summary.
    group: Option<String>,
    consent_link: Option<String>,
}

/// Counts for the progress line.
#[derive(Default)]
struct Progress {
    done: AtomicUsize,
    adopted: AtomicUsize,
    pending: AtomicUsize,
    failed: AtomicUsize,
}

impl Progress {
    fn record(&self, r: &Result<Onboarding, ConsentError>) {
        let counter = match r.as_ref().map(|o| &o.adoption) {
            Ok(Adoption::Adopted) => Some(&self.adopted),
            Ok(Adoption::Pending { .. }) => Some(&self.pending),
            Ok(Adoption::AlreadyOnboarded) => None,
            Ok(Adoption::Unverified { .. }) | Err(_) => Some(&self.failed),
        };
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// The summary's group of a pending reason.
fn group(reason: &PendingReason) -> String {
    match reason {
        PendingReason::Delegated => "delegated: a user of the tenant signs in and consents".into(),
        PendingReason::NotGranted { .. } => "the app is not granted in the tenant yet".into(),
        PendingReason::MissingRole { needed, api, .. } => {
            format!("missing role {needed} ({api} API)")
        }
        PendingReason::WrongTenant => {
            "a token for the tenant named another tenant (tid): never adopted".into()
        }
    }
}

/// `mssp tenants import FILE`.
pub async fn import(b: &Backend, a: ImportTenants, json: bool) -> Result<Exit, CliError> {
    let shown = a.file.display().to_string();
    let text = std::fs::read_to_string(&a.file)
        .map_err(|e| CliError::io(format!("reading {shown}"), e))?;
    let parsed =
        fleet_file::parse(&a.file, &text).map_err(|r| CliError::Usage(format!("{shown}: {r}")))?;
    drop(text);
    b.check_app().await?;
    let links_path = a
        .links
        .clone()
        .unwrap_or_else(|| fleet_file::default_links(&a.file));
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let ticker = progress.report_every_2s(shown.clone(), parsed.tenants.len(), started);
    let numbers: Vec<usize> = parsed.tenants.iter().map(|l| l.number).collect();
    let requests: Vec<NewTenant> = parsed.tenants.into_iter().map(|l| l.tenant).collect();
    let counter = progress.clone();
    let report = adoption::import(&b.deps, requests, a.concurrency.into(), &move |r| {
        counter.record(r)
    })
    .await;
    ticker.abort();
    let report = report?;

    let mut rows: Vec<LineResult> = parsed.bad.into_iter().map(LineResult::bad).collect();
    rows.extend(
        numbers
            .into_iter()
            .zip(report.results)
            .map(|(line, r)| LineResult::of(line, r)),
    );
    rows.sort_by_key(|r| r.line);
    write_links(&links_path, &rows)?;

    let summary = ImportSummary {
        file: shown,
        links_file: links_path.display().to_string(),
        app_misconfigured: report.app_misconfigured,
        rows,
    };
    if json {
        summary.print_json()?;
    } else {
        summary.print(started.elapsed());
    }
    Ok(if summary.count("failed") > 0 {
        Exit::TenantsFailed
    } else {
        Exit::Ok
    })
}

impl Progress {
    /// Prints the progress line to stderr every two seconds until the task is aborted.
    fn report_every_2s(
        self: &Arc<Self>,
        file: String,
        total: usize,
        started: Instant,
    ) -> tokio::task::JoinHandle<()> {
        let p = self.clone();
        crate::output::progress_every_2s(move || {
            format!(
                "mssp: importing {file}: {}/{total} tenants ({} adopted, {} pending, {} failed), \
                 {}s",
                p.done.load(Ordering::Relaxed),
                p.adopted.load(Ordering::Relaxed),
                p.pending.load(Ordering::Relaxed),
                p.failed.load(Ordering::Relaxed),
                started.elapsed().as_secs()
            )
        })
    }
}

impl LineResult {
    /// A line the file could not give a tenant from.
    fn bad(bad: fleet_file::BadLine) -> Self {
        LineResult {
            line: bad.number,
            tenant: None,
            created: false,
            result: "failed",
            reason: Some(bad.reason),
            group: None,
            consent_link: None,
        }
    }

    /// What the onboarding of line `line`'s tenant came to.
    fn of(line: usize, r: Result<Onboarding, ConsentError>) -> Self {
        let on = match r {
            Ok(on) => on,
            Err(e) => {
                return LineResult {
                    line,
                    tenant: None,
                    created: false,
                    result: "failed",
                    reason: Some(e.to_string()),
                    group: None,
                    consent_link: None,
                };
            }
        };
        let (result, reason, group, link) = match on.adoption {
            Adoption::Adopted => ("adopted", None, None, None),
            Adoption::AlreadyOnboarded => ("done", None, None, None),
            Adoption::Pending {
                consent_link,
                reason,
            } => (
                "pending",
                Some(reason.to_string()),
                Some(self::group(&reason)),
                Some(consent_link.to_string()),
            ),
            Adoption::Unverified { reason } => (
                "failed",
                Some(format!(
                    "registered pending, not verified: {reason}; import again to check"
                )),
                None,
                None,
            ),
        };
        LineResult {
            line,
            tenant: Some(on.tenant),
            created: on.created,
            result,
            reason,
            group,
            consent_link: link,
        }
    }
}

/// What an import did, line by line, for the operator.
struct ImportSummary {
    file: String,
    links_file: String,
    app_misconfigured: Option<String>,
    /// In file order.
    rows: Vec<LineResult>,
}

impl ImportSummary {
    /// How many lines came to `result` (`adopted`, `pending`, `done`, `failed`).
    fn count(&self, result: &str) -> usize {
        self.rows.iter().filter(|r| r.result == result).count()
    }

    /// How many tenants this run added to the registry.
    fn added(&self) -> usize {
        self.rows.iter().filter(|r| r.created).count()
    }

    fn print_json(&self) -> Result<(), CliError> {
        let tenants: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "line": r.line,
                    "tenant_id": r.tenant.as_ref().map(|t| &t.id),
                    "status": r.tenant.as_ref().map(|t| t.status),
                    "result": r.result,
                    "created": r.created,
                    "reason": r.reason,
                    "consent_link": r.consent_link,
                })
            })
            .collect();
        print_json(&json!({
            "file": self.file,
            "links_file": self.links_file,
            "added": self.added(),
            "adopted": self.count("adopted"),
            "pending": self.count("pending"),
            "done": self.count("done"),
            "failed": self.count("failed"),
            "app_misconfigured": self.app_misconfigured,
            "tenants": tenants,
        }))
    }

    fn print(&self, took: Duration) {
        if let Some(reason) = &self.app_misconfigured {
            println!(
                "THE APP REGISTRATION IS MISCONFIGURED (every application tenant is affected): \
                 {reason}"
            );
        }
        let (adopted, pending, done, failed) = (
            self.count("adopted"),
            self.count("pending"),
            self.count("done"),
            self.count("failed"),
        );
        println!(
            "Imported {}: {} tenants in {:.1}s.",
            self.file,
            self.rows.len(),
            took.as_secs_f64()
        );
        println!("  adopted  {adopted:>6}  active without a click (token tid and roles verified)");
        println!(
            "  pending  {pending:>6}  waiting for a click; consent links in {}",
            self.links_file
        );
        let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
        for g in self.rows.iter().filter_map(|r| r.group.as_deref()) {
            *groups.entry(g).or_default() += 1;
        }
        for (g, n) in groups {
            println!("           {n:>6}    {g}");
        }
        println!("  done     {done:>6}  already active or suspended, left as they are");
        println!(
            "  failed   {failed:>6}  {}",
            if failed == 0 {
                "-"
            } else {
                "listed below: fix them and import again (the rest is kept)"
            }
        );
        println!(
            "{} tenants were added to the registry by this run.",
            self.added()
        );
        self.print_failures();
    }

    /// The first failed lines with their reasons.
    fn print_failures(&self) {
        const LISTED: usize = 20;
        let failures: Vec<&LineResult> =
            self.rows.iter().filter(|r| r.result == "failed").collect();
        if failures.is_empty() {
            return;
        }
        println!();
        println!("Failed:");
        for r in failures.iter().take(LISTED) {
            let who = r
                .tenant
                .as_ref()
                .map(|t| format!(" (tenant {})", t.id))
                .unwrap_or_default();
            println!(
                "  line {}{who}: {}",
                r.line,
                r.reason.as_deref().unwrap_or("-")
            );
        }
        if failures.len() > LISTED {
            println!(
                "  … and {} more (--json lists every line)",
                failures.len() - LISTED
            );
        }
    }
}

/// Writes the consent links of this run's pending tenants to `path` (CSV; a header only when
/// none needs a click, so an older file never lingers).
fn write_links(path: &Path, rows: &[LineResult]) -> Result<(), CliError> {
    let mut out = String::from("line,tenant_id,name,model,api,reason,consent_link\n");
    for r in rows {
        let (Some(t), Some(link)) = (&r.tenant, &r.consent_link) else {
            continue;
        };
        let fields = [
            r.line.to_string(),
            t.id.to_string(),
            csv_field(&t.display_name),
            t.auth_model.to_string(),
            t.alert_api.to_string(),
            csv_field(r.reason.as_deref().unwrap_or_default()),
            csv_field(link),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    write_atomic(path, out.as_bytes(), false).map_err(|e| {
        CliError::io(
            format!("writing the consent links to {}", path.display()),
            e,
        )
    })
}
