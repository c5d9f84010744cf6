//! `mssp serve`: the single-machine deployment. One process runs what the Lambda deployment
//! spreads over functions and schedules: the consent endpoint (axum, the shared handler), the
//! token refresh schedule and the fetch schedule, over the file stores of one data directory.
//! Every fetch, refresh run and scheduling interval is added to one metrics registry, served as
//! Prometheus text at `GET /metrics` on the same address ([`shared::metrics`]: the numbers the
//! Lambda functions write as EMF lines).
//!
//! On SIGINT or SIGTERM it starts no new work, lets in-flight fetches finish for at most
//! `schedule.shutdown_grace` (each commits its cursor after every complete chunk), then exits 0.
//! A fetch still running at the end of the grace is dropped like a killed process — its
//! delivered objects are picked up by the next run, exactly once — and its lease is released so
//! the next start does not wait for it to expire.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shared::clock::SystemClock;
use shared::domain::{AlertApi, Tenant, TenantId};
use shared::flows::Deps;
use shared::flows::cadence::{self, Cadence, Fit};
use shared::flows::dispatch::dispatch;
use shared::flows::fetch::{FetchFlowError, FetchOptions, NoHooks};
use shared::flows::refresh::refresh_all;
use shared::flows::schedule::tenant_work;
use shared::metrics::{Observation, Registry};
use tokio::sync::watch;
use tokio::time::Instant;
use url::Url;

use crate::backend::Backend;
use crate::config::Config;
use crate::error::{CliError, Exit};
use crate::server;

/// The fetches running now: (tenant, API) under this process's lease owner.
type InFlight = Arc<Mutex<HashSet<(TenantId, AlertApi)>>>;

/// Runs until SIGINT/SIGTERM.
pub async fn run(config: &Config) -> Result<Exit, CliError> {
    let (listener, addr, public) = listen(config).await?;
    let backend = Backend::local(config, public.clone(), Arc::new(SystemClock));
    backend.check_app().await?;
    let data_dir = backend.require_local("serve")?.data_dir.clone();
    let services = backend.deps.clone();

    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics = Arc::new(Registry::new());
    let server = server::spawn(
        listener,
        services.clone(),
        Some(metrics.clone()),
        stopped(stop_rx.clone()),
    );
    banner(config, &services, &public, addr, &data_dir);

    let owner = format!("mssp-serve-{}", uuid::Uuid::new_v4().simple());
    let in_flight: InFlight = Arc::default();
    let refresh = tokio::spawn(refresh_loop(
        services.clone(),
        config.refresh_interval,
        metrics.clone(),
        stop_rx.clone(),
    ));
    let fetch = tokio::spawn(fetch_loop(
        services.clone(),
        config.clone(),
        owner.clone(),
        in_flight.clone(),
        metrics,
        stop_rx.clone(),
    ));

    shutdown_signal().await?;
    println!(
        "mssp serve: stopping; no new work, in-flight fetches finish (at most {})",
        human(config.shutdown_grace)
    );
    let _ = stop_tx.send(true);
    let deadline = Instant::now() + config.shutdown_grace;
    for (what, task) in [("fetch", fetch), ("refresh", refresh)] {
        finish_by(deadline, what, task).await;
    }
    release_leases(&services, &in_flight, &owner).await;
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the consent endpoint failed"),
        Err(_) => tracing::warn!("the consent endpoint did not stop in time"),
        _ => {}
    }
    println!("mssp serve: stopped");
    Ok(Exit::Ok)
}

/// The consent endpoint's listener, its address, and the public base URL (configured, else
/// that address).
async fn listen(
    config: &Config,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr, Url), CliError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| CliError::io(format!("listening on {}", config.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::io("reading the listening address", e))?;
    let public = match &config.public_base_url {
        Some(u) => u.clone(),
        None => Url::parse(&format!("http://{addr}"))
            .map_err(|e| CliError::Usage(format!("listening address {addr}: {e}")))?,
    };
    Ok((listener, addr, public))
}

/// Lets a schedule's task finish until `deadline`, then stops it.
async fn finish_by(deadline: Instant, what: &str, mut task: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
        task.abort();
        tracing::warn!(
            schedule = what,
            "still running at the end of the grace; stopped"
        );
    }
}

/// What `mssp serve` serves, where, and on which schedules.
fn banner(
    config: &Config,
    s: &Deps,
    public: &Url,
    addr: std::net::SocketAddr,
    data_dir: &std::path::Path,
) {
    println!(
        "mssp serve: consent endpoint {public} listening on {addr} (redirect URI {})",
        s.settings.redirect_uri()
    );
    println!("mssp serve: metrics for Prometheus at http://{addr}/metrics");
    println!(
        "mssp serve: data in {}; refresh every {}, fetch each tenant every {}; SIGINT/SIGTERM stops \
         (in-flight fetches get {})",
        data_dir.display(),
        human(config.refresh_interval),
        human(config.fetch_interval),
        human(config.shutdown_grace)
    );
}

/// Releases the leases of the fetches stopped at the end of the grace, so the next start does
/// not wait for them to expire.
async fn release_leases(s: &Deps, in_flight: &InFlight, owner: &str) {
    let left: Vec<_> = in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .drain()
        .collect();
    for (id, api) in left {
        if let Err(e) = s.cursors.release(&id, api, owner).await {
            tracing::warn!(tenant_id = %id, error = %e, "could not release a lease");
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits `every`, or less when stopping; whether to go on.
async fn pause(every: Duration, stop: &watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(every) => {}
        _ = stopped(stop.clone()) => {}
    }
    !*stop.borrow()
}

async fn refresh_loop(
    s: Deps,
    every: Duration,
    metrics: Arc<Registry>,
    stop: watch::Receiver<bool>,
) {
    loop {
        match refresh_all(&s, Some(Instant::now() + every)).await {
            Ok(sum) => {
                metrics.record(&Observation::refresh_run(&sum));
                sum.log_finished();
            }
            Err(e) => tracing::error!(error = %e, "refresh run failed"),
        }
        if !pause(every, &stop).await {
            return;
        }
    }
}

/// The fetch schedule: each tenant every `fetch_interval` from its own phase
/// ([`shared::flows::cadence`]), `fetch.concurrency` at a time; none started once stopping. How
/// each interval went is logged, kept in `{data_dir}/schedule.json` for `mssp status`, and added
/// to `metrics` with every tenant's work.
async fn fetch_loop(
    s: Deps,
    config: Config,
    owner: String,
    in_flight: InFlight,
    metrics: Arc<Registry>,
    stop: watch::Receiver<bool>,
) {
    let cadence = Cadence {
        interval: config.fetch_interval,
        concurrency: s.settings.fetch.concurrency,
    };
    let lister = s.clone();
    let listed_metrics = metrics.clone();
    let list = move || list_tenants(lister.clone(), listed_metrics.clone());
    let work_metrics = metrics.clone();
    let deadline = config.fetch_run_deadline;
    let work = move |t: Tenant| {
        let running = Running {
            owner: owner.clone(),
            deadline,
            in_flight: in_flight.clone(),
            metrics: work_metrics.clone(),
        };
        fetch_one(s.clone(), t, running)
    };
    let file = schedule_file(&config.data_dir);
    let report = move |fit: Fit| report_fit(&metrics, &file, &fit);
    cadence::run(cadence, list, work, report, stop).await;
}

/// The tenants to fetch this interval; the metrics forget the others.
async fn list_tenants(s: Deps, metrics: Arc<Registry>) -> Vec<Tenant> {
    match dispatch(&s).await {
        Ok(tenants) => {
            metrics.retain_tenants(tenants.iter().map(|t| &t.id));
            tenants
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot list the tenants to fetch");
            Vec::new()
        }
    }
}

/// What a tenant's work of the interval runs with.
struct Running {
    /// This process's lease owner.
    owner: String,
    /// How long the work may run from when it starts.
    deadline: Duration,
    in_flight: InFlight,
    metrics: Arc<Registry>,
}

/// One tenant's work of the interval, known as in flight while it runs.
async fn fetch_one(s: Deps, t: Tenant, r: Running) {
    let Running {
        owner,
        deadline,
        in_flight,
        metrics,
    } = r;
    let key = (t.id.clone(), t.alert_api);
    let opts = FetchOptions {
        deadline: Instant::now() + deadline,
        owner,
        hooks: &NoHooks,
    };
    in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key.clone());
    let work = tenant_work(&s, &t, &opts).await;
    if let Some(o) = Observation::work(&t, &work) {
        metrics.record(&o);
    }
    if let Err(FetchFlowError::Busy(until)) = work.fetch {
        tracing::info!(tenant_id = %t.id, until = %until, "another fetch holds the tenant")
    }
    // The flows logged and recorded any failure on the tenant.
    in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&key);
}

/// How the interval went: logged, added to the metrics and kept in `file` for `mssp status`.
fn report_fit(metrics: &Registry, file: &std::path::Path, fit: &Fit) {
    metrics.record(&Observation::fit(fit));
    if fit.fits() {
        tracing::info!(
            tenants = fit.tenants,
            utilization = fit.utilization,
            "{}",
            fit.describe()
        );
    } else {
        tracing::warn!(
            tenants = fit.tenants,
            late = fit.late,
            skipped = fit.skipped,
            utilization = fit.utilization,
            "{}",
            fit.describe()
        );
    }
    if let Err(e) = write_fit(file, fit) {
        tracing::warn!(error = %e, "could not record how the schedule went");
    }
}

/// Where `serve` keeps how its last scheduling interval went.
pub fn schedule_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("schedule.json")
}

fn write_fit(path: &std::path::Path, fit: &Fit) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(fit).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, path)
}

#[cfg(unix)]
async fn shutdown_signal() -> Result<(), CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| CliError::io("installing the SIGTERM handler", e))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| CliError::io("waiting for SIGINT", e)),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() -> Result<(), CliError> {
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| CliError::io("waiting for Ctrl-C", e))
}

/// `30s`, `5m`, `1h30m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 && s < 60 {
        return format!("{}ms", d.as_millis());
    }
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_configured() {
        assert_eq!(human(Duration::from_secs(30)), "30s");
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(3600)), "1h");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
    }
}
