//! The operator commands: tenants, consent links, refresh, on-demand fetch and status. Each
//! translates its arguments into one flow call (or a registry change) and prints the result.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::json;
use shared::domain::{
    AlertApi, ConsentMethod, ConsentProvenance, Outcome, SiemRegion, Tenant, TenantId, TenantStatus,
};
use shared::flows::app_health::AppHealth;
use shared::flows::fetch::{FetchOptions, NoHooks};
use shared::flows::onboarding::consent_link;
use shared::flows::range::fetch_range_observed;
use shared::flows::refresh::{
    RefreshError, RefreshOutcome, RefreshSummary, refresh_all, refresh_tenant,
};
use shared::flows::region::set_siem_region;
use shared::flows::status::{TenantHealth, status};
use shared::microsoft::alerts::Window;
use shared::record::AlertRecord;

use crate::args::Format;
use crate::backend::Backend;
use crate::config::parse_duration;
use crate::error::{CliError, Exit};
use crate::output::{print_json, seconds, table, time, wrap};

/// `mssp tenants list`: every tenant, offboarded ones included (they are the audit record).
pub async fn list(b: &Backend, json: bool) -> Result<Exit, CliError> {
    let tenants = b.deps.registry.list().await?;
    if json {
        print_json(&tenants)?;
        return Ok(Exit::Ok);
    }
    if tenants.is_empty() {
        println!("No tenants yet: `mssp tenants add ID --name NAME --model MODEL --api API`.");
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.display_name.clone(),
                t.auth_model.to_string(),
                t.alert_api.to_string(),
                t.cloud.to_string(),
                t.status.to_string(),
                time(Some(t.updated_at)),
                wrap(last_error(t).unwrap_or("-"), 60),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "TENANT ID",
                "NAME",
                "MODEL",
                "API",
                "CLOUD",
                "STATUS",
                "UPDATED",
                "LAST ERROR"
            ],
            &rows
        )
    );
    Ok(Exit::Ok)
}

/// The detail of the tenant's newest failed outcome (refresh or fetch), if any.
fn last_error(t: &Tenant) -> Option<&str> {
    [&t.last_fetch, &t.last_refresh]
        .into_iter()
        .flatten()
        .filter(|o| !o.ok)
        .max_by_key(|o| o.at)
        .and_then(|o| o.detail.as_deref())
}

/// An outcome, the cause first: `ok at T`, or the failure's sentence and `(failed at T)`.
fn outcome(o: &Option<Outcome>) -> String {
    match o {
        None => "-".into(),
        Some(o) => {
            let what = if o.ok { "ok" } else { "failed" };
            match &o.detail {
                Some(d) => wrap(&format!("{d} ({what} at {})", time(Some(o.at))), 90),
                None => format!("{what} at {}", time(Some(o.at))),
            }
        }
    }
}

/// `mssp tenants show`.
pub async fn show(b: &Backend, id: &TenantId, json: bool) -> Result<Exit, CliError> {
    let t = b.tenant(id).await?;
    let health = status(&b.deps, Some(id)).await?.into_iter().next();
    if json {
        print_json(&json!({"tenant": t, "health": health}))?;
        return Ok(Exit::Ok);
    }
    let mut rows = tenant_rows(b, &t);
    if let Some(c) = &t.consent {
        rows.extend(consent_rows(c));
    }
    rows.push(row("Last refresh", outcome(&t.last_refresh)));
    rows.push(row("Last fetch", outcome(&t.last_fetch)));
    if let Some(h) = &health {
        rows.extend(health_rows(h));
    }
    rows.push(row("Failures in a row", t.consecutive_failures.to_string()));
    let text = table(&["", ""], &rows);
    // The header row of a key/value table is empty.
    print!("{}", text.split_once('\n').map_or("", |(_, rest)| rest));
    Ok(Exit::Ok)
}

/// One row of a key/value table.
fn row(key: &str, value: String) -> Vec<String> {
    vec![key.into(), value]
}

/// Who the tenant is, how it is read, and where it is in its life.
fn tenant_rows(b: &Backend, t: &Tenant) -> Vec<Vec<String>> {
    let mut rows = vec![
        row("Tenant", format!("{} ({})", t.display_name, t.id)),
        row("Model", t.auth_model.to_string()),
        row("API", t.alert_api.to_string()),
        row("Cloud", t.cloud.to_string()),
    ];
    if t.alert_api == AlertApi::Siem {
        rows.push(row("SIEM region", b.deps.siem_region(t).to_string()));
    }
    rows.extend([
        row("Status", t.status.to_string()),
        row("Created", time(Some(t.created_at))),
        row("Updated", time(Some(t.updated_at))),
    ]);
    rows
}

/// When and by whom the tenant consented, and what an adopted grant was verified by.
fn consent_rows(c: &ConsentProvenance) -> Vec<Vec<String>> {
    let mut rows = vec![row(
        "Consented",
        format!(
            "{} by {} ({})",
            time(Some(c.consented_at)),
            c.consented_by.as_deref().unwrap_or("?"),
            c.granted.join(", ")
        ),
    )];
    if c.method == ConsentMethod::Adopted {
        rows.push(row(
            "Provenance",
            format!(
                "adopted without a click at {}: {}",
                time(Some(c.consented_at)),
                c.verified.as_deref().unwrap_or("-")
            ),
        ));
    }
    rows
}

/// The tenant's progress: watermark, consent link, last sweep and backfill.
fn health_rows(h: &TenantHealth) -> Vec<Vec<String>> {
    let mut rows = vec![row(
        "Watermark",
        format!("{} (lag {})", time(h.watermark), seconds(h.lag_s)),
    )];
    if let Some(link) = &h.consent_link {
        rows.push(row("Consent link", link.clone()));
    }
    if let Some(sw) = &h.last_sweep {
        rows.push(row(
            "Last sweep",
            format!(
                "{}: {} versions checked, {} found late ({} requests)",
                time(Some(sw.finished)),
                sw.checked,
                sw.delivered,
                sw.requests
            ),
        ));
    }
    if let Some(job) = &h.backfill {
        rows.push(row(
            "Backfill",
            format!(
                "{} to {}: complete up to {}, {} checked, {} delivered",
                time(Some(job.window.since)),
                time(Some(job.window.until)),
                time(Some(job.done_until)),
                job.checked,
                job.delivered
            ),
        ));
    }
    rows
}

/// `mssp tenants suspend`: refresh and fetch skip the tenant until it is resumed.
pub async fn suspend(b: &Backend, id: &TenantId, json: bool) -> Result<Exit, CliError> {
    let t = b.tenant(id).await?;
    if t.status == TenantStatus::Offboarded {
        return Err(CliError::NotAllowed {
            id: id.clone(),
            status: t.status,
            action: "suspend an offboarded tenant (add it again instead)",
        });
    }
    let t = b
        .deps
        .update_tenant(id, |t| t.status = TenantStatus::Suspended)
        .await?;
    changed(&t, "suspended", json)
}

/// `mssp tenants resume`: back to active when it holds tokens, else to pending consent.
pub async fn resume(b: &Backend, id: &TenantId, json: bool) -> Result<Exit, CliError> {
    let t = b.tenant(id).await?;
    if t.status != TenantStatus::Suspended {
        return Err(CliError::NotAllowed {
            id: id.clone(),
            status: t.status,
            action: "resume a tenant that is not suspended",
        });
    }
    let has_tokens = b.deps.tokens.get(id).await?.is_some();
    let next = if has_tokens && t.consent.is_some() {
        TenantStatus::Active
    } else {
        TenantStatus::PendingConsent
    };
    let t = b.deps.update_tenant(id, |t| t.status = next).await?;
    changed(&t, "resumed", json)
}

/// `mssp tenants remove`: offboards. The record stays (status offboarded) as the audit trail;
/// the tokens and the cursor are deleted. Marked first, so no run starts on it meanwhile; every
/// step is idempotent, so a failed removal is finished by running it again.
pub async fn remove(b: &Backend, id: &TenantId, json: bool) -> Result<Exit, CliError> {
    b.tenant(id).await?;
    let t = b
        .deps
        .update_tenant(id, |t| t.status = TenantStatus::Offboarded)
        .await?;
    b.deps.tokens.delete(id).await?;
    b.deps.cursors.delete(id).await?;
    tracing::info!(tenant_id = %id, "tenant offboarded");
    changed(
        &t,
        "offboarded (tokens and cursor deleted; record kept)",
        json,
    )
}

fn changed(t: &Tenant, what: &str, json: bool) -> Result<Exit, CliError> {
    if json {
        print_json(t)?;
    } else {
        println!("{} ({}) {what}; status {}.", t.display_name, t.id, t.status);
    }
    Ok(Exit::Ok)
}

/// `mssp tenants set-region`.
pub async fn set_region(
    b: &Backend,
    id: &TenantId,
    region: SiemRegion,
    json: bool,
) -> Result<Exit, CliError> {
    let t = b.tenant(id).await?;
    if t.alert_api != AlertApi::Siem {
        return Err(CliError::Usage(format!(
            "{id} is read through the {} API; a SIEM region applies to siem tenants only",
            t.alert_api
        )));
    }
    let opts = FetchOptions {
        deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(60),
        owner: format!("mssp-set-region-{}", uuid::Uuid::new_v4().simple()),
        hooks: &NoHooks,
    };
    let t = set_siem_region(&b.deps, id, region, &opts).await?;
    changed(&t, &format!("now read at the {region} SIEM exporter"), json)
}

/// `mssp consent-link`.
pub async fn link(b: &Backend, id: &TenantId, json: bool) -> Result<Exit, CliError> {
    b.check_app().await?;
    let t = b.tenant(id).await?;
    if matches!(t.status, TenantStatus::Suspended | TenantStatus::Offboarded) {
        return Err(CliError::NotAllowed {
            id: id.clone(),
            status: t.status,
            action: "make a consent link (resume or add it first)",
        });
    }
    let link = consent_link(&b.deps, &t).await?;
    if json {
        print_json(&json!({"tenant_id": t.id, "consent_link": link.as_str()}))?;
    } else {
        println!("{link}");
    }
    Ok(Exit::Ok)
}

/// One row of `mssp refresh`: (tenant, result, detail, consent link).
type RefreshRow = (TenantId, &'static str, String, Option<String>);

/// `mssp refresh [ID] [--force]`: one tenant, or every active tenant (`--force` renews each
/// even when its tokens are fresh).
pub async fn refresh(
    b: &Backend,
    id: Option<&TenantId>,
    force: bool,
    json: bool,
) -> Result<Exit, CliError> {
    b.check_app().await?;
    let (rows, app_broken, app) = match id {
        Some(id) => (vec![refresh_one(b, id, force).await?], None, None),
        None if force => {
            let active = b.deps.registry.list_active().await?;
            let rows = futures::stream::iter(&active)
                .map(|t| refresh_one(b, &t.id, true))
                .buffer_unordered(b.deps.settings.refresh_concurrency)
                .collect::<Vec<_>>()
                .await;
            (rows.into_iter().collect::<Result<Vec<_>, _>>()?, None, None)
        }
        None => summary_rows(refresh_all(&b.deps, None).await?),
    };
    let bad = rows
        .iter()
        .any(|(_, r, _, _)| matches!(*r, "reconsent_required" | "failed" | "skipped"))
        || app.as_ref().is_some_and(AppHealth::needs_attention);
    print_refresh(b, &rows, app_broken.as_deref(), app.as_ref(), json).await?;
    Ok(if bad { Exit::TenantsFailed } else { Exit::Ok })
}

async fn refresh_one(b: &Backend, id: &TenantId, force: bool) -> Result<RefreshRow, CliError> {
    Ok(match refresh_tenant(&b.deps, id, force).await {
        Ok(RefreshOutcome::Refreshed) => (id.clone(), "refreshed", String::new(), None),
        Ok(RefreshOutcome::Fresh) => (
            id.clone(),
            "fresh",
            "tokens are fresh; --force renews them anyway".into(),
            None,
        ),
        Err(RefreshError::ReconsentRequired {
            reason,
            consent_link,
        }) => (
            id.clone(),
            "reconsent_required",
            reason,
            consent_link.map(|u| u.to_string()),
        ),
        Err(e @ (RefreshError::Transient(_) | RefreshError::AppMisconfigured(_))) => {
            (id.clone(), "failed", e.to_string(), None)
        }
        Err(e) => return Err(e.into()),
    })
}

fn summary_rows(summary: RefreshSummary) -> (Vec<RefreshRow>, Option<String>, Option<AppHealth>) {
    let mut rows: Vec<RefreshRow> = Vec::new();
    for id in summary.refreshed {
        rows.push((id, "refreshed", String::new(), None));
    }
    for id in summary.fresh {
        rows.push((id, "fresh", String::new(), None));
    }
    for (id, link) in summary.reconsent {
        rows.push((
            id,
            "reconsent_required",
            String::new(),
            link.map(|u| u.to_string()),
        ));
    }
    for (id, reason) in summary.failed {
        rows.push((id, "failed", reason, None));
    }
    for id in summary.skipped {
        rows.push((id, "skipped", String::new(), None));
    }
    (rows, summary.app_misconfigured, Some(summary.app))
}

async fn print_refresh(
    b: &Backend,
    rows: &[RefreshRow],
    app_broken: Option<&str>,
    app: Option<&AppHealth>,
    json: bool,
) -> Result<(), CliError> {
    let names = names(b).await?;
    let name = |id: &TenantId| names.iter().find(|(i, _)| i == id).map(|(_, n)| n.clone());
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|(id, result, detail, link)| {
                json!({"tenant_id": id, "name": name(id), "result": result,
                       "detail": (!detail.is_empty()).then_some(detail), "consent_link": link})
            })
            .collect();
        return print_json(&json!({"tenants": items, "app_misconfigured": app_broken, "app": app}));
    }
    if let Some(reason) = app_broken {
        println!("THE APP REGISTRATION IS MISCONFIGURED (every tenant is affected): {reason}");
    } else if let Some(app) = app {
        crate::app_health::print(app, false);
    }
    if rows.is_empty() {
        println!("No active tenants to refresh.");
    } else {
        let table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|(id, result, detail, _)| {
                vec![
                    name(id).unwrap_or_default(),
                    id.to_string(),
                    result.to_string(),
                    wrap(detail, 70),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["TENANT", "ID", "RESULT", "DETAIL"], &table_rows)
        );
    }
    print_links(rows.iter().filter_map(|(id, _, _, link)| {
        link.as_ref()
            .map(|l| (name(id).unwrap_or_default(), id.clone(), l.clone()))
    }));
    Ok(())
}

async fn names(b: &Backend) -> Result<Vec<(TenantId, String)>, CliError> {
    Ok(b.deps
        .registry
        .list()
        .await?
        .into_iter()
        .map(|t| (t.id, t.display_name))
        .collect())
}

pub(crate) fn print_links(links: impl Iterator<Item = (String, TenantId, String)>) {
    let links: Vec<_> = links.collect();
    if links.is_empty() {
        return;
    }
    println!();
    println!("Consent links to send (each tenant's admin opens theirs):");
    for (name, id, link) in links {
        println!("  {name} ({id}):");
        println!("    {link}");
    }
}

/// A `--since`/`--until` value: RFC 3339, `now`, or `-DURATION` before `now`.
pub fn parse_time(option: &str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, CliError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(ago) = text.strip_prefix('-')
        && let Some(d) = parse_duration(ago)
        && let Ok(d) = chrono::Duration::from_std(d)
    {
        return Ok(now - d);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            CliError::Usage(format!(
                "{option} {text:?}: expected RFC 3339 (2026-03-01T09:00:00Z), now, or a time \
                 before now such as -2h or -7d"
            ))
        })
}

/// `mssp fetch`: alerts of a range on stdout, progress on stderr; the cursor does not move.
pub async fn fetch(
    b: &Backend,
    id: &TenantId,
    since: &str,
    until: &str,
    format: Format,
    run_deadline: Duration,
) -> Result<Exit, CliError> {
    let window = window(since, until, b.deps.clock.now())?;
    b.check_app().await?;
    b.tenant(id).await?;
    let started = std::time::Instant::now();
    let records = fetch_with_progress(b, id, window, run_deadline, started).await?;
    print_records(&records, format)?;
    eprintln!(
        "mssp: {} alert versions of {id} from {} to {} in {:.1}s",
        records.len(),
        window.since.to_rfc3339(),
        window.until.to_rfc3339(),
        started.elapsed().as_secs_f64()
    );
    Ok(Exit::Ok)
}

/// The window `--since` and `--until` name, refused when it is empty.
fn window(since: &str, until: &str, now: DateTime<Utc>) -> Result<Window, CliError> {
    let window = Window {
        since: parse_time("--since", since, now)?,
        until: parse_time("--until", until, now)?,
    };
    if window.since >= window.until {
        return Err(CliError::Usage(format!(
            "--since ({}) must be before --until ({})",
            window.since, window.until
        )));
    }
    Ok(window)
}

/// The alerts of `window`, with the count so far on stderr every two seconds.
async fn fetch_with_progress(
    b: &Backend,
    id: &TenantId,
    window: Window,
    run_deadline: Duration,
    started: std::time::Instant,
) -> Result<Vec<AlertRecord>, CliError> {
    let seen = Arc::new(AtomicU64::new(0));
    let ticker = {
        let seen = seen.clone();
        let id = id.clone();
        crate::output::progress_every_2s(move || {
            format!(
                "mssp: fetching {id}: {} alerts so far ({}s)",
                seen.load(Ordering::Relaxed),
                started.elapsed().as_secs()
            )
        })
    };
    let result = fetch_range_observed(
        &b.deps,
        id,
        window,
        tokio::time::Instant::now() + run_deadline,
        &move |n| {
            seen.fetch_add(n as u64, Ordering::Relaxed);
        },
    )
    .await;
    ticker.abort();
    Ok(result?)
}

/// `records` on stdout in `format`.
fn print_records(records: &[AlertRecord], format: Format) -> Result<(), CliError> {
    let line: fn(&AlertRecord) -> Result<String, CliError> = match format {
        Format::Json => return print_json(records),
        Format::Ndjson => |r| {
            serde_json::to_string(r)
                .map_err(|e| CliError::io("writing NDJSON", std::io::Error::other(e)))
        },
        Format::Ocsf => |r| Ok(shared::ocsf::map(r).to_string()),
    };
    let mut out = String::new();
    for r in records {
        out.push_str(&line(r)?);
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_absolute_relative_or_now() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(parse_time("--until", "now", now).expect("now"), now);
        assert_eq!(
            parse_time("--since", "-2h", now).expect("relative"),
            now - chrono::Duration::hours(2)
        );
        assert_eq!(
            parse_time("--since", "2026-02-28T09:00:00+01:00", now).expect("absolute"),
            now - chrono::Duration::hours(25)
        );
        let e = parse_time("--since", "yesterday", now).unwrap_err();
        assert!(e.to_string().contains("--since"), "{e}");
        assert_eq!(e.exit(), Exit::Usage);
    }
}
