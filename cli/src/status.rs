//! `mssp status`: the fleet at a glance. A small fleet (or `--all`) gets one row per tenant; a
//! large one a summary that fits a screen — counts by status and API, lag percentiles, what the
//! last sweeps found late, and the tenants that need attention (the first [`ATTENTION_ROWS`]).
//! `--state` and `--api` narrow either view; `--json` prints every selected tenant's health.

use std::collections::BTreeMap;

use shared::domain::{AlertApi, TenantId, TenantStatus};
use shared::flows::cadence::Fit;
use shared::flows::status::{TenantHealth, status};

use crate::backend::Backend;
use crate::error::{CliError, Exit};
use crate::output::{print_json, seconds, table, time, truncate, wrap};

/// Up to this many tenants, `status` prints every one.
pub const FULL_TABLE_UP_TO: usize = 20;

/// Tenants needing attention listed in the summary.
pub const ATTENTION_ROWS: usize = 20;

/// Which tenants, and how.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these tenants (all when empty).
    pub ids: Vec<TenantId>,
    /// One row per tenant however many there are.
    pub all: bool,
    /// Only tenants in this status.
    pub state: Option<TenantStatus>,
    /// Only tenants read through this API.
    pub api: Option<AlertApi>,
}

impl Selection {
    fn keeps(&self, h: &TenantHealth) -> bool {
        (self.ids.is_empty() || self.ids.contains(&h.tenant_id))
            && self.state.is_none_or(|s| h.status == s)
            && self.api.is_none_or(|a| h.alert_api == a.as_str())
    }
}

/// Whether a tenant needs the operator: re-consent, or its last refresh or fetch failed.
pub fn needs_attention(h: &TenantHealth) -> bool {
    h.status == TenantStatus::ReconsentRequired || h.last_error.is_some()
}

/// `mssp status`: exit 3 when a selected tenant needs attention.
pub async fn run(b: &Backend, sel: Selection, json: bool) -> Result<Exit, CliError> {
    let health: Vec<TenantHealth> = status(&b.deps, None)
        .await?
        .into_iter()
        .filter(|h| sel.keeps(h))
        .collect();
    let schedule = b.local.as_ref().and_then(|l| last_fit(&l.data_dir));
    let unfit = schedule.as_ref().is_some_and(|f| !f.fits());
    let app = crate::app_health::current(b).await?;
    crate::app_health::print(&app, json);
    let bad = unfit || health.iter().any(needs_attention) || app.needs_attention();
    if json {
        print_json(&health)?;
    } else if health.is_empty() {
        println!("No tenants yet: `mssp tenants add ID --name NAME --model MODEL --api API`.");
    } else if sel.all || health.len() <= FULL_TABLE_UP_TO {
        print!("{}", full_table(&health));
        print_links(&health);
    } else {
        print!("{}", summary(&health));
    }
    if let (false, Some(fit)) = (json, &schedule) {
        println!(
            "\nSchedule of mssp serve ({}): {}",
            time(Some(fit.at)),
            fit.describe()
        );
    }
    Ok(if bad { Exit::TenantsFailed } else { Exit::Ok })
}

/// How `mssp serve`'s last scheduling interval went, if it recorded one in the last day.
fn last_fit(data_dir: &std::path::Path) -> Option<Fit> {
    let text = std::fs::read(crate::serve::schedule_file(data_dir)).ok()?;
    let fit: Fit = serde_json::from_slice(&text).ok()?;
    (chrono::Utc::now() - fit.at < chrono::Duration::days(1)).then_some(fit)
}

/// One row per tenant.
fn full_table(health: &[TenantHealth]) -> String {
    let rows: Vec<Vec<String>> = health
        .iter()
        .map(|h| {
            let last_fetch = match (h.last_fetch, h.last_fetch_ok) {
                (Some(at), Some(false)) => format!("{} (failed)", time(Some(at))),
                (at, _) => time(at),
            };
            vec![
                h.display_name.clone(),
                h.tenant_id.to_string(),
                h.auth_model.clone(),
                h.alert_api.clone(),
                h.status.to_string(),
                last_fetch,
                seconds(h.lag_s),
                late_found(h),
                wrap(h.last_error.as_deref().unwrap_or("-"), 60),
            ]
        })
        .collect();
    table(
        &[
            "TENANT",
            "ID",
            "MODEL",
            "API",
            "STATUS",
            "LAST FETCH",
            "LAG",
            "LATE",
            "LAST ERROR",
        ],
        &rows,
    )
}

/// Late versions the tenant's last sweep found, `-` before its first sweep.
fn late_found(h: &TenantHealth) -> String {
    h.last_sweep
        .as_ref()
        .map_or_else(|| "-".into(), |s| s.delivered.to_string())
}

/// The summary of a large fleet: at most 12 + [`ATTENTION_ROWS`] lines.
fn summary(health: &[TenantHealth]) -> String {
    let mut out = String::new();
    let by_status = counts(health.iter().map(|h| h.status.as_str()));
    out.push_str(&format!("{} tenants: {by_status}\n", health.len()));
    out.push_str(&format!(
        "APIs: {}\n",
        counts(health.iter().map(|h| h.alert_api.as_str()))
    ));
    out.push_str(&lag_line(health));
    out.push_str(&sweeps_line(health));
    let links = health.iter().filter(|h| h.consent_link.is_some()).count();
    if links > 0 {
        out.push_str(&format!(
            "{links} tenants wait for a (re-)consent: `mssp status --all --state pending_consent` \
             (or reconsent_required) prints their links\n"
        ));
    }
    out.push_str(&attention(health));
    out
}

/// The lag percentiles of the active tenants fetched; empty when none was.
fn lag_line(health: &[TenantHealth]) -> String {
    let mut lags: Vec<i64> = health
        .iter()
        .filter(|h| h.status == TenantStatus::Active)
        .filter_map(|h| h.lag_s)
        .collect();
    lags.sort_unstable();
    if lags.is_empty() {
        return String::new();
    }
    let p = |q: f64| seconds(Some(percentile(&lags, q)));
    format!(
        "Lag of {} fetched tenants: p50 {}, p90 {}, p99 {}, max {}\n",
        lags.len(),
        p(0.50),
        p(0.90),
        p(0.99),
        p(1.0)
    )
}

/// What the tenants' last sweeps found late; empty before any sweep.
fn sweeps_line(health: &[TenantHealth]) -> String {
    let swept: Vec<_> = health
        .iter()
        .filter_map(|h| h.last_sweep.as_ref())
        .collect();
    if swept.is_empty() {
        return String::new();
    }
    let checked: u64 = swept.iter().map(|s| s.checked).sum();
    let late: u64 = swept.iter().map(|s| s.delivered).sum();
    let with_late = swept.iter().filter(|s| s.delivered > 0).count();
    format!(
        "Last sweeps of {} tenants: {checked} versions checked, {late} found late (in {with_late} tenants)\n",
        swept.len()
    )
}

/// The tenants that need attention, the first [`ATTENTION_ROWS`] of them with their cause.
fn attention(health: &[TenantHealth]) -> String {
    let attention: Vec<&TenantHealth> = health.iter().filter(|h| needs_attention(h)).collect();
    if attention.is_empty() {
        return "No tenant needs attention.\n".into();
    }
    let mut out = format!("\n{} tenants need attention:\n", attention.len());
    let rows: Vec<Vec<String>> = attention
        .iter()
        .take(ATTENTION_ROWS)
        .map(|h| {
            vec![
                truncate(&h.display_name, 24),
                h.tenant_id.to_string(),
                h.alert_api.clone(),
                h.status.to_string(),
                truncate(cause(h.last_error.as_deref().unwrap_or("-")), 100),
            ]
        })
        .collect();
    out.push_str(&table(
        &["TENANT", "ID", "API", "STATUS", "LAST ERROR"],
        &rows,
    ));
    if attention.len() > ATTENTION_ROWS {
        out.push_str(&format!(
            "… and {} more: `mssp status --all` lists every tenant (--state, --api narrow it)\n",
            attention.len() - ATTENTION_ROWS
        ));
    }
    out
}

/// The cause of an error sentence, with its code (what comes before the first `: ` outside
/// parentheses): one line of the summary; the whole sentence is in the full table and `mssp
/// tenants show`.
fn cause(sentence: &str) -> &str {
    let mut depth = 0i32;
    for (i, c) in sentence.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ':' if depth == 0 && sentence[i + 1..].starts_with(' ') => return &sentence[..i],
            _ => {}
        }
    }
    sentence
}

/// `3 active, 1 suspended`: counts by name, largest first.
fn counts<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for n in names {
        *by.entry(n).or_default() += 1;
    }
    let mut by: Vec<_> = by.into_iter().collect();
    by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    by.iter()
        .map(|(n, c)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `q` quantile of sorted `xs` (nearest rank).
fn percentile(xs: &[i64], q: f64) -> i64 {
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

fn print_links(health: &[TenantHealth]) {
    crate::operate::print_links(health.iter().filter_map(|h| {
        h.consent_link
            .as_ref()
            .map(|l| (h.display_name.clone(), h.tenant_id.clone(), l.clone()))
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_row_shows_the_cause_with_its_code() {
        assert_eq!(
            cause("the app's client secret has expired (AADSTS7000222): create a new one"),
            "the app's client secret has expired (AADSTS7000222)"
        );
        assert_eq!(
            cause("the API refused access (403, Forbidden: Missing roles): send a link"),
            "the API refused access (403, Forbidden: Missing roles)"
        );
        assert_eq!(cause("the run was interrupted"), "the run was interrupted");
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let xs: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&xs, 0.5), 50);
        assert_eq!(percentile(&xs, 0.99), 99);
        assert_eq!(percentile(&xs, 1.0), 100);
        assert_eq!(percentile(&[7], 0.5), 7);
    }

    #[test]
    fn counts_list_the_largest_first() {
        let names = ["active", "suspended", "active", "pending_consent", "active"];
        assert_eq!(
            counts(names.into_iter()),
            "3 active, 1 pending_consent, 1 suspended"
        );
    }
}
