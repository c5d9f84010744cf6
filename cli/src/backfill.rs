//! `mssp backfill TENANT --since T [--until T] [--api API]`: a tenant's history delivered into
//! the sink as ordinary records (`shared::flows::backfill`), in the foreground, slice after slice,
//! with progress on stderr. The request is stored on the tenant first, so an interrupted command
//! resumes where it stopped when run again (and `mssp serve` or the Lambda deployment carry it on
//! meanwhile); nothing is delivered twice.

use std::time::Duration;

use serde_json::json;
use shared::domain::{AlertApi, TenantId};
use shared::flows::backfill::{BackfillError, Backfilled, backfill_tenant, request};
use shared::flows::fetch::job::Slice;
use shared::flows::fetch::{FetchFlowError, FetchOptions, NoHooks, fetch_tenant};
use shared::ports::{Job, JobSummary};

use crate::backend::Backend;
use crate::error::{CliError, Exit};
use crate::operate::parse_time;
use crate::output::print_json;

/// How long one slice holds the tenant: short, for a lively progress line.
const SLICE: Duration = Duration::from_secs(5);

/// Failed slices in a row before the command gives up (the backfill stays recorded).
const ATTEMPTS: u32 = 5;

/// The command's range options.
pub struct Range<'a> {
    /// `--since`.
    pub since: &'a str,
    /// `--until`.
    pub until: Option<&'a str>,
    /// `--api`.
    pub api: Option<AlertApi>,
}

/// Runs the backfill to its end.
pub async fn run(
    b: &Backend,
    id: &TenantId,
    range: Range<'_>,
    json: bool,
) -> Result<Exit, CliError> {
    let now = b.deps.clock.now();
    let since = parse_time("--since", range.since, now)?;
    let until = range
        .until
        .map(|u| parse_time("--until", u, now))
        .transpose()?;
    b.check_app().await?;
    let tenant = b.tenant(id).await?;
    if let Some(api) = range.api
        && api != tenant.alert_api
    {
        return Err(CliError::Usage(format!(
            "--api {api}: {} is read through the {} API; a backfill reads that one",
            tenant.display_name, tenant.alert_api
        )));
    }
    request(&b.deps, id, since, until)
        .await
        .map_err(|e| match e {
            BackfillError::Empty { .. } => CliError::Usage(e.to_string()),
            BackfillError::Fetch(e) => e.into(),
        })?;
    let summary = slices(b, id).await?;
    if json {
        print_json(&json!({"tenant_id": id, "backfill": summary}))?;
    } else {
        println!(
            "Backfilled {} ({id}) from {} to {}: {} alert versions checked, {} delivered, {} requests.",
            tenant.display_name,
            summary.window.since.to_rfc3339(),
            summary.window.until.to_rfc3339(),
            summary.checked,
            summary.delivered,
            summary.requests
        );
    }
    Ok(Exit::Ok)
}

/// Runs slices until the backfill is finished, printing progress after each.
async fn slices(b: &Backend, id: &TenantId) -> Result<JobSummary, CliError> {
    let owner = format!("mssp-backfill-{}", uuid::Uuid::new_v4().simple());
    let mut failures = 0;
    loop {
        let opts = FetchOptions {
            deadline: tokio::time::Instant::now() + Duration::from_secs(300),
            owner: owner.clone(),
            hooks: &NoHooks,
        };
        match backfill_tenant(&b.deps, id, &opts, SLICE).await {
            Ok(Backfilled::Ran(Slice::Finished(summary))) => return Ok(summary),
            Ok(Backfilled::Ran(Slice::Continues(job))) => {
                failures = 0;
                progress(id, &job);
            }
            Ok(Backfilled::WaitingForFirstFetch) => {
                // The backfill ends where the regular fetch starts: that fetch comes first.
                eprintln!("mssp: backfill {id}: first, the tenant's regular fetch");
                fetch_tenant(&b.deps, id, &opts).await?;
            }
            Ok(Backfilled::NoneRequested) => {
                return Err(CliError::Usage(format!(
                    "{id} has no backfill recorded (removed by another command meanwhile?)"
                )));
            }
            Err(FetchFlowError::Busy(until)) => {
                eprintln!(
                    "mssp: backfill {id}: another run holds the tenant until {until}; waiting"
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e @ FetchFlowError::Incomplete { .. }) if failures + 1 < ATTEMPTS => {
                failures += 1;
                eprintln!("mssp: backfill {id}: {e}; trying again");
                tokio::time::sleep(Duration::from_secs(2 * u64::from(failures))).await;
            }
            Err(e) => {
                eprintln!(
                    "mssp: backfill {id} stopped; what was delivered stays, and the same command \
                     continues it"
                );
                return Err(e.into());
            }
        }
    }
}

fn progress(id: &TenantId, job: &Job) {
    let whole = (job.window.until - job.window.since).num_seconds().max(1) as f64;
    let done = (job.done_until - job.window.since).num_seconds().max(0) as f64;
    eprintln!(
        "mssp: backfill {id}: {:.0}% of the range (complete up to {}), {} checked, {} delivered, {} requests",
        100.0 * done / whole,
        job.done_until.to_rfc3339(),
        job.checked,
        job.delivered,
        job.requests
    );
}
