//! Metrics: one model, two renderings, so the two cannot drift apart.
//!
//! What the product counts is a closed set ([`Metric`]). Each flow result becomes an
//! [`Observation`]: the values of one fetch, sweep, refresh run or scheduling interval, with the
//! tenant and API they are about. The Lambda functions write an observation as one CloudWatch
//! Embedded Metric Format line on stdout ([`Observation::emit`]). CloudWatch Logs extracts the
//! metrics from the log event, so no `PutMetricData` call and no IAM permission is needed beyond
//! the log group the function already writes. `mssp serve` adds every observation to a
//! [`Registry`] and serves it as Prometheus text ([`Registry::render`]): counters add each value,
//! gauges keep the last one. A tenant's EMF `AlertsDelivered` values summed over its lines are its
//! `mssp_alerts_delivered_total`.
//!
//! | CloudWatch (EMF) | Prometheus | unit | kind | published by |
//! |---|---|---|---|---|
//! | `AlertsDelivered` | `mssp_alerts_delivered_total` | Count | counter | fetch |
//! | `LateAlerts` | `mssp_late_alerts_total` | Count | counter | sweep (when one finishes) |
//! | `FetchFailures` | `mssp_fetch_failures_total` | Count | counter | fetch |
//! | `SiemRegionMismatches` | `mssp_siem_region_mismatches_total` | Count | counter | fetch |
//! | `LagSeconds` | `mssp_lag_seconds` | Seconds | gauge | fetch |
//! | `TenantsNeedingReconsent` | `mssp_tenants_needing_reconsent_total` | Count | counter | token refresh |
//! | `TokensRefreshed` | `mssp_tokens_refreshed_total` | Count | counter | token refresh |
//! | `RefreshFailures` | `mssp_refresh_failures_total` | Count | counter | token refresh |
//! | `AppCredentialsRefused` | `mssp_app_credentials_refused` | None | gauge | token refresh run (1: Microsoft refused the app's credentials) |
//! | `ClientSecretDaysLeft` | `mssp_client_secret_days_left` | None | gauge | token refresh run, when the app secret has `client_secret_expires` |
//! | `Schedule…` | `mssp_schedule_…` | | gauges | `mssp serve`'s fixed-rate schedule, each interval |
//!
//! The Prometheus name is always `mssp_` + the CloudWatch name in snake case, plus `_total` for a
//! counter.
//!
//! # Dimensions, and what they cost
//!
//! CloudWatch bills every distinct name × dimension values as one custom metric ($0.30 a month
//! each for the first 10,000, $0.10 beyond, at list price). One metric per tenant at 10,000
//! tenants is about $2,000 a month per metric name; two such names cost as much as the tenants'
//! secrets, the fleet's largest cost by design (DESIGN §10). So:
//!
//! - every metric about tenants is published per API (`Api`: `graph`, `mde`, `siem`) and for the
//!   whole fleet (the empty dimension set, which the alarms watch): fewer than 25 metrics in all,
//!   a few dollars a month;
//! - the tenant is in every line as the `TenantId` member, not as a dimension. CloudWatch Logs
//!   Insights answers per-tenant questions from the log events (`stats max(LagSeconds) by
//!   TenantId`) without any custom metric;
//! - `MSSP_METRICS_PER_TENANT=true` ([`MetricsConfig::per_tenant`]) adds a `TenantId` dimension set
//!   to the two metrics an operator would alarm on per tenant, `LagSeconds` and `FetchFailures`,
//!   and to nothing else: two metrics per tenant, about $4,000 a month at 10,000 tenants.
//!
//! Lines cost only log ingestion: one line of about 400 bytes per tenant fetch, about 1.2 GB a
//! day at 10,000 tenants every 5 minutes.
//!
//! Prometheus labels the tenant metrics with `api` and `tenant`. A series costs nothing there,
//! and `mssp serve` runs one machine's fleet; `sum by (api)` gives the CloudWatch `Api` numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::config::deployment::MetricsConfig;
use crate::domain::{AlertApi, Tenant, TenantId};
use crate::flows::Deps;
use crate::flows::app_health::Credentials;
use crate::flows::cadence::Fit;
use crate::flows::fetch::job::Slice;
use crate::flows::fetch::{FetchFlowError, FetchReport};
use crate::flows::refresh::{RefreshError, RefreshOutcome, RefreshSummary};
use crate::flows::schedule::TenantWork;
use crate::flows::sweep::Swept;

/// How a metric's values combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Each value is an increment; the total only grows (EMF: use the `Sum` statistic).
    Counter,
    /// Each value replaces the last (EMF: `Maximum` or `Average`).
    Gauge,
}

/// A CloudWatch unit (the EMF `Unit` member); Prometheus carries the unit in the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of things.
    Count,
    /// A duration.
    Seconds,
    /// A ratio or a flag.
    None,
}

impl Unit {
    /// The CloudWatch spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::None => "None",
        }
    }
}

/// What a metric is about, which decides its dimensions and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One tenant's fetch or sweep: dimensions `[Api]` and `[]` (plus `[TenantId]` when
    /// configured and [`Metric::per_tenant_dimension`]); labels `api`, `tenant`.
    Tenant,
    /// The whole deployment: dimension set `[]`; no labels.
    Fleet,
}

/// Everything the product measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Alert records the regular fetch delivered.
    AlertsDelivered,
    /// Alert versions the reconciliation sweep found after the fetch had passed them.
    LateAlerts,
    /// Fetches that failed or stopped early.
    FetchFailures,
    /// Fetches refused because another region's SIEM exporter holds the tenant's alerts.
    SiemRegionMismatches,
    /// How far the tenant's coverage trails now.
    LagSeconds,
    /// Tenants a token refresh found needing re-consent.
    TenantsNeedingReconsent,
    /// Tenants whose tokens a refresh renewed.
    TokensRefreshed,
    /// Tenants whose token refresh failed for now.
    RefreshFailures,
    /// 1 when Microsoft refused the app registration's own credentials in a refresh cycle.
    AppCredentialsRefused,
    /// Whole days until the app's client secret expires (when the app secret says).
    ClientSecretDaysLeft,
    /// Tenants on `mssp serve`'s schedule.
    ScheduleTenants,
    /// Fetches the last interval started.
    ScheduleFetchesStarted,
    /// Of which started more than a tenth of the interval after their turn.
    ScheduleLateStarts,
    /// Turns skipped because the tenant's previous fetch still ran.
    ScheduleSkippedTurns,
    /// The longest wait between a turn and its fetch's start.
    ScheduleMaxDelaySeconds,
    /// The share of the fetch slots' time spent fetching.
    ScheduleUtilization,
    /// The concurrency that would fetch the last interval's work at 80 % utilization.
    ScheduleConcurrencyNeeded,
    /// 1 when the fleet fitted the interval, else 0.
    ScheduleFits,
}

impl Metric {
    /// Every metric, in the order they are rendered.
    pub const ALL: [Metric; 18] = [
        Metric::AlertsDelivered,
        Metric::LateAlerts,
        Metric::FetchFailures,
        Metric::SiemRegionMismatches,
        Metric::LagSeconds,
        Metric::TenantsNeedingReconsent,
        Metric::TokensRefreshed,
        Metric::RefreshFailures,
        Metric::AppCredentialsRefused,
        Metric::ClientSecretDaysLeft,
        Metric::ScheduleTenants,
        Metric::ScheduleFetchesStarted,
        Metric::ScheduleLateStarts,
        Metric::ScheduleSkippedTurns,
        Metric::ScheduleMaxDelaySeconds,
        Metric::ScheduleUtilization,
        Metric::ScheduleConcurrencyNeeded,
        Metric::ScheduleFits,
    ];

    /// The CloudWatch metric name (and the EMF member holding its value).
    pub fn name(self) -> &'static str {
        match self {
            Metric::AlertsDelivered => "AlertsDelivered",
            Metric::LateAlerts => "LateAlerts",
            Metric::FetchFailures => "FetchFailures",
            Metric::SiemRegionMismatches => "SiemRegionMismatches",
            Metric::LagSeconds => "LagSeconds",
            Metric::TenantsNeedingReconsent => "TenantsNeedingReconsent",
            Metric::TokensRefreshed => "TokensRefreshed",
            Metric::RefreshFailures => "RefreshFailures",
            Metric::AppCredentialsRefused => "AppCredentialsRefused",
            Metric::ClientSecretDaysLeft => "ClientSecretDaysLeft",
            Metric::ScheduleTenants => "ScheduleTenants",
            Metric::ScheduleFetchesStarted => "ScheduleFetchesStarted",
            Metric::ScheduleLateStarts => "ScheduleLateStarts",
            Metric::ScheduleSkippedTurns => "ScheduleSkippedTurns",
            Metric::ScheduleMaxDelaySeconds => "ScheduleMaxDelaySeconds",
            Metric::ScheduleUtilization => "ScheduleUtilization",
            Metric::ScheduleConcurrencyNeeded => "ScheduleConcurrencyNeeded",
            Metric::ScheduleFits => "ScheduleFits",
        }
    }

    /// The Prometheus metric name: `mssp_` + [`Metric::name`] in snake case (+ `_total` for a
    /// counter).
    pub fn prometheus_name(self) -> String {
        let mut out = String::from("mssp");
        for c in self.name().chars() {
            if c.is_ascii_uppercase() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        if self.kind() == Kind::Counter {
            out.push_str("_total");
        }
        out
    }

    /// Counter or gauge.
    pub fn kind(self) -> Kind {
        match self {
            Metric::AlertsDelivered
            | Metric::LateAlerts
            | Metric::FetchFailures
            | Metric::SiemRegionMismatches
            | Metric::TenantsNeedingReconsent
            | Metric::TokensRefreshed
            | Metric::RefreshFailures => Kind::Counter,
            _ => Kind::Gauge,
        }
    }

    /// The CloudWatch unit.
    pub fn unit(self) -> Unit {
        match self {
            Metric::LagSeconds | Metric::ScheduleMaxDelaySeconds => Unit::Seconds,
            Metric::ScheduleUtilization
            | Metric::ScheduleFits
            | Metric::AppCredentialsRefused
            | Metric::ClientSecretDaysLeft => Unit::None,
            _ => Unit::Count,
        }
    }

    /// Tenant or fleet.
    pub fn scope(self) -> Scope {
        match self {
            Metric::AlertsDelivered
            | Metric::LateAlerts
            | Metric::FetchFailures
            | Metric::SiemRegionMismatches
            | Metric::LagSeconds => Scope::Tenant,
            _ => Scope::Fleet,
        }
    }

    /// Whether `MSSP_METRICS_PER_TENANT` adds a `TenantId` dimension set to this metric: only
    /// the two worth a per-tenant alarm (see the module docs for the cost).
    pub fn per_tenant_dimension(self) -> bool {
        matches!(self, Metric::LagSeconds | Metric::FetchFailures)
    }

    /// Whether the Lambda deployment publishes it (the schedule's figures are `mssp serve`'s).
    pub fn on_lambda(self) -> bool {
        !self.name().starts_with("Schedule")
    }

    /// One sentence for people (the Prometheus `HELP`).
    pub fn help(self) -> &'static str {
        match self {
            Metric::AlertsDelivered => "Alert records the regular fetch delivered to the sink.",
            Metric::LateAlerts => {
                "Alert versions a finished reconciliation sweep found after the fetch had passed them, delivered marked late."
            }
            Metric::FetchFailures => {
                "Fetches that failed or stopped early (token, API, storage or SIEM region); the watermark stays where the failure was."
            }
            Metric::SiemRegionMismatches => {
                "Fetches refused because another region's SIEM exporter holds the tenant's alerts (run mssp tenants set-region)."
            }
            Metric::LagSeconds => {
                "Seconds between now and the point up to which the tenant's alerts were fetched completely, at its last fetch."
            }
            Metric::TenantsNeedingReconsent => {
                "Tenants a token refresh found needing re-consent (each counted once, when marked); send them a fresh consent link."
            }
            Metric::TokensRefreshed => "Tenants whose tokens a token refresh renewed.",
            Metric::RefreshFailures => {
                "Tenants whose token refresh failed for now (identity platform, storage, or the app registration refused)."
            }
            Metric::AppCredentialsRefused => {
                "1 when Microsoft refused the app registration's client id and secret in the last refresh cycle (no tenant's token can be renewed), else 0."
            }
            Metric::ClientSecretDaysLeft => {
                "Whole days until the app's client secret expires, from client_secret_expires in the app secret (negative once expired)."
            }
            Metric::ScheduleTenants => "Tenants on the fetch schedule in the last interval.",
            Metric::ScheduleFetchesStarted => "Fetches started in the last interval.",
            Metric::ScheduleLateStarts => {
                "Fetches of the last interval that started more than a tenth of the interval after their turn."
            }
            Metric::ScheduleSkippedTurns => {
                "Turns of the last interval skipped because the tenant's previous fetch was still running."
            }
            Metric::ScheduleMaxDelaySeconds => {
                "The longest wait in the last interval between a tenant's turn and its fetch's start."
            }
            Metric::ScheduleUtilization => {
                "The share of the fetch slots' time spent fetching in the last interval (above 1: the fleet does not fit)."
            }
            Metric::ScheduleConcurrencyNeeded => {
                "The fetch concurrency that would have fetched the last interval's work at 80 % utilization."
            }
            Metric::ScheduleFits => {
                "1 when every tenant of the last interval started within a tenth of the interval of its turn and none skipped, else 0."
            }
        }
    }
}

/// The values one flow result produced, with the tenant and API they are about.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// What produced it: `fetch`, `sweep`, `refresh` or `schedule` (the `Event` member of an EMF
    /// line, for Logs Insights).
    pub event: &'static str,
    /// The tenant's API, when known.
    pub api: Option<AlertApi>,
    /// The tenant, when the observation is about one.
    pub tenant: Option<TenantId>,
    /// The values, each metric at most once.
    pub values: Vec<(Metric, f64)>,
}

impl Observation {
    fn new(event: &'static str, api: Option<AlertApi>, tenant: Option<&TenantId>) -> Self {
        Observation {
            event,
            api,
            tenant: tenant.cloned(),
            values: Vec::new(),
        }
    }

    fn with(mut self, metric: Metric, value: impl Into<f64>) -> Self {
        self.values.push((metric, value.into()));
        self
    }

    /// [`Observation::with`] when there is a value.
    fn with_some(self, metric: Metric, value: Option<f64>) -> Self {
        match value {
            Some(v) => self.with(metric, v),
            None => self,
        }
    }

    /// The value of `metric`, if the observation has one.
    pub fn value(&self, metric: Metric) -> Option<f64> {
        self.values
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|(_, v)| *v)
    }

    /// A fetch of `tenant` (through `api` when the caller knows it). `None` when the fetch did
    /// not run for a reason that is no failure: another run holds the tenant, the tenant is not
    /// active or unknown, or a test interrupted it.
    pub fn fetch(
        tenant: &TenantId,
        api: Option<AlertApi>,
        result: &Result<FetchReport, FetchFlowError>,
    ) -> Option<Observation> {
        let from_report = |r: &FetchReport| r.api.parse::<AlertApi>().ok();
        let (report, failed) = match result {
            Ok(r) => (Some(r), false),
            Err(e) => match e {
                FetchFlowError::Busy(_)
                | FetchFlowError::NotActive(_)
                | FetchFlowError::UnknownTenant
                | FetchFlowError::Interrupted(_) => return None,
                FetchFlowError::Incomplete { report, .. } => (Some(report.as_ref()), true),
                FetchFlowError::SiemRegion { .. }
                | FetchFlowError::Token(_)
                | FetchFlowError::Store(_) => (None, true),
            },
        };
        let api = api
            .or_else(|| report.and_then(from_report))
            .or(match result {
                Err(FetchFlowError::SiemRegion { .. }) => Some(AlertApi::Siem),
                _ => None,
            });
        let mut o = Observation::new("fetch", api, Some(tenant));
        if let Some(r) = report {
            o = o
                .with(Metric::AlertsDelivered, r.delivered as f64)
                .with(Metric::LagSeconds, r.lag_s.max(0) as f64);
        }
        o = o.with(Metric::FetchFailures, u8::from(failed));
        if api == Some(AlertApi::Siem) {
            let refused = matches!(result, Err(FetchFlowError::SiemRegion { .. }));
            o = o.with(Metric::SiemRegionMismatches, u8::from(refused));
        }
        Some(o)
    }

    /// A sweep slice of `tenant`: the late versions it found, once the sweep finished. `None`
    /// for a slice that left the sweep unfinished, or none ran.
    pub fn sweep(
        tenant: &TenantId,
        api: Option<AlertApi>,
        result: &Result<Swept, FetchFlowError>,
    ) -> Option<Observation> {
        match result {
            Ok(Swept::Ran(Slice::Finished(s))) => Some(
                Observation::new("sweep", api, Some(tenant))
                    .with(Metric::LateAlerts, s.delivered as f64),
            ),
            _ => None,
        }
    }

    /// One tenant's scheduled work on one machine (`mssp serve`): its fetch and, when a sweep
    /// finished, the late versions it found.
    pub fn work(tenant: &Tenant, work: &TenantWork) -> Option<Observation> {
        let api = Some(tenant.alert_api);
        let mut o = Observation::fetch(&tenant.id, api, &work.fetch)?;
        if let Some(s) = work
            .sweep
            .as_ref()
            .and_then(|r| Observation::sweep(&tenant.id, api, r))
        {
            o.values.extend(s.values);
        }
        Some(o)
    }

    /// A token refresh run over every active tenant.
    pub fn refresh_run(summary: &RefreshSummary) -> Observation {
        Observation::new("refresh", None, None)
            .with(Metric::TokensRefreshed, summary.refreshed.len() as f64)
            .with(
                Metric::TenantsNeedingReconsent,
                summary.reconsent.len() as f64,
            )
            .with(Metric::RefreshFailures, summary.failed.len() as f64)
            .with(
                Metric::AppCredentialsRefused,
                u8::from(
                    summary.app_misconfigured.is_some()
                        || matches!(summary.app.credentials, Credentials::Refused { .. }),
                ),
            )
            .with_some(
                Metric::ClientSecretDaysLeft,
                summary.app.client_secret_days_left.map(|d| d as f64),
            )
    }

    /// The refresh of one tenant (a direct invoke). `None` when nothing was refreshed and
    /// nothing failed: fresh tokens, or an unknown or inactive tenant.
    pub fn refresh_tenant(
        tenant: &TenantId,
        result: &Result<RefreshOutcome, RefreshError>,
    ) -> Option<Observation> {
        let metric = match result {
            Ok(RefreshOutcome::Refreshed) => Metric::TokensRefreshed,
            Ok(RefreshOutcome::Fresh)
            | Err(
                RefreshError::UnknownTenant | RefreshError::NotActive(_) | RefreshError::Busy(_),
            ) => return None,
            Err(RefreshError::ReconsentRequired { .. }) => Metric::TenantsNeedingReconsent,
            Err(
                RefreshError::AppMisconfigured(_)
                | RefreshError::Transient(_)
                | RefreshError::Store(_),
            ) => Metric::RefreshFailures,
        };
        Some(Observation::new("refresh", None, Some(tenant)).with(metric, 1u8))
    }

    /// How the last interval of `mssp serve`'s fixed-rate schedule went.
    pub fn fit(fit: &Fit) -> Observation {
        Observation::new("schedule", None, None)
            .with(Metric::ScheduleTenants, fit.tenants as f64)
            .with(Metric::ScheduleFetchesStarted, fit.started as f64)
            .with(Metric::ScheduleLateStarts, fit.late as f64)
            .with(Metric::ScheduleSkippedTurns, fit.skipped as f64)
            .with(Metric::ScheduleMaxDelaySeconds, fit.max_delay_s)
            .with(Metric::ScheduleUtilization, fit.utilization)
            .with(
                Metric::ScheduleConcurrencyNeeded,
                fit.concurrency_needed() as f64,
            )
            .with(Metric::ScheduleFits, u8::from(fit.fits()))
    }

    /// The EMF dimension sets of `metric` in this observation: only sets whose keys this
    /// observation has.
    fn dimension_sets(&self, metric: Metric, config: &MetricsConfig) -> Vec<Vec<&'static str>> {
        let mut sets = Vec::new();
        if metric.scope() == Scope::Tenant && self.api.is_some() {
            sets.push(vec!["Api"]);
        }
        sets.push(vec![]);
        if metric.scope() == Scope::Tenant
            && config.per_tenant
            && metric.per_tenant_dimension()
            && self.tenant.is_some()
        {
            sets.push(vec!["TenantId"]);
        }
        sets
    }

    /// The observation as one Embedded Metric Format document (CloudWatch's specification):
    /// the `_aws` metadata (`Timestamp` in milliseconds, one `MetricDirective` per distinct list
    /// of dimension sets, each naming its metrics with their unit), the dimension values `Api`
    /// and `TenantId` as string members, each metric's value as a number member, and `Event`.
    /// Values that are not finite numbers are left out (EMF takes numbers only).
    pub fn emf(&self, config: &MetricsConfig, at: DateTime<Utc>) -> Value {
        let mut root = Map::new();
        let mut directives: Vec<(Vec<Vec<&'static str>>, Vec<Value>)> = Vec::new();
        for &(metric, value) in &self.values {
            if !value.is_finite() || root.contains_key(metric.name()) {
                continue;
            }
            let sets = self.dimension_sets(metric, config);
            let definition = json!({"Name": metric.name(), "Unit": metric.unit().as_str()});
            match directives.iter_mut().find(|(s, _)| *s == sets) {
                Some((_, metrics)) => metrics.push(definition),
                None => directives.push((sets, vec![definition])),
            }
            root.insert(metric.name().into(), number(value));
        }
        let directives: Vec<Value> = directives
            .into_iter()
            .map(|(sets, metrics)| {
                json!({
                    "Namespace": config.namespace,
                    "Dimensions": sets,
                    "Metrics": metrics,
                })
            })
            .collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": at.timestamp_millis(),
                "CloudWatchMetrics": directives,
            }),
        );
        root.insert("Event".into(), json!(self.event));
        if let Some(api) = self.api {
            root.insert("Api".into(), json!(api.as_str()));
        }
        if let Some(t) = &self.tenant {
            root.insert("TenantId".into(), json!(t.as_str()));
        }
        Value::Object(root)
    }

    /// Writes [`Observation::emf`] as one line on stdout, where Lambda hands it to CloudWatch
    /// Logs as one log event (tracing writes to stderr; the two never share a line). Nothing is
    /// written for an observation without values.
    pub fn emit(&self, config: &MetricsConfig, at: DateTime<Utc>) {
        if self.values.is_empty() {
            return;
        }
        let line = self.emf(config, at).to_string();
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            tracing::warn!(event = self.event, "could not write a metrics line");
        }
    }
}

/// A JSON number: an integer when the value is one.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// The observation of a fetch of `id` in a process that knows only the tenant id (the fetcher's
/// work items). The API comes from the result, else from the tenant record, read only when the
/// fetch failed before it could report (one read per such failure).
pub async fn observe_fetch(
    d: &Deps,
    id: &TenantId,
    result: &Result<FetchReport, FetchFlowError>,
) -> Option<Observation> {
    let o = Observation::fetch(id, None, result)?;
    if o.api.is_some() {
        return Some(o);
    }
    Observation::fetch(id, tenant_api(d, id).await, result)
}

/// The observation of a sweep slice of `id` (the fetcher's work items); the tenant record is
/// read for its API only when a sweep finished.
pub async fn observe_sweep(
    d: &Deps,
    id: &TenantId,
    result: &Result<Swept, FetchFlowError>,
) -> Option<Observation> {
    Observation::sweep(id, None, result)?;
    Observation::sweep(id, tenant_api(d, id).await, result)
}

async fn tenant_api(d: &Deps, id: &TenantId) -> Option<AlertApi> {
    match d.registry.get(id).await {
        Ok(t) => t.map(|t| t.alert_api),
        Err(e) => {
            tracing::warn!(tenant_id = %id, error = %e, "no API for the tenant's metrics");
            None
        }
    }
}

/// A series' labels, by name.
type Labels = Vec<(&'static str, String)>;

/// The numbers of `mssp serve` since it started, served as Prometheus text. Counters only grow
/// over the process's life; gauges keep their last value until their tenant leaves the schedule.
pub struct Registry {
    series: Mutex<BTreeMap<Metric, BTreeMap<Labels, f64>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry whose fleet counters read 0 (a counter should exist before its first
    /// increment, so a rate over it starts right).
    pub fn new() -> Self {
        let mut series: BTreeMap<Metric, BTreeMap<Labels, f64>> = BTreeMap::new();
        for m in Metric::ALL {
            if m.kind() == Kind::Counter && m.scope() == Scope::Fleet {
                series.entry(m).or_default().insert(Vec::new(), 0.0);
            }
        }
        Registry {
            series: Mutex::new(series),
        }
    }

    /// Adds `o`: a counter grows by the value (negative or non-finite values are ignored), a
    /// gauge takes it.
    pub fn record(&self, o: &Observation) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        for &(metric, value) in &o.values {
            if !value.is_finite() {
                continue;
            }
            let mut labels = Labels::new();
            if metric.scope() == Scope::Tenant {
                if let Some(api) = o.api {
                    labels.push(("api", api.as_str().to_string()));
                }
                if let Some(t) = &o.tenant {
                    labels.push(("tenant", t.as_str().to_string()));
                }
            }
            let slot = series.entry(metric).or_default().entry(labels).or_default();
            match metric.kind() {
                Kind::Counter if value >= 0.0 => *slot += value,
                Kind::Counter => {}
                Kind::Gauge => *slot = value,
            }
        }
    }

    /// Forgets the gauges of tenants no longer on the schedule (an offboarded tenant's lag would
    /// otherwise stay forever); counters stay.
    pub fn retain_tenants<'a>(&self, listed: impl IntoIterator<Item = &'a TenantId>) {
        let listed: std::collections::HashSet<&str> =
            listed.into_iter().map(TenantId::as_str).collect();
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        for (metric, by_labels) in series.iter_mut() {
            if metric.kind() == Kind::Gauge {
                by_labels.retain(|labels, _| {
                    labels
                        .iter()
                        .all(|(k, v)| *k != "tenant" || listed.contains(v.as_str()))
                });
            }
        }
    }

    /// The Prometheus text exposition format (version 0.0.4): per metric with a series, its
    /// `# HELP` and `# TYPE` lines, then every series, label values escaped.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for metric in Metric::ALL {
            let Some(by_labels) = series.get(&metric).filter(|s| !s.is_empty()) else {
                continue;
            };
            let name = metric.prometheus_name();
            let kind = match metric.kind() {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", escape_help(metric.help()));
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in by_labels {
                out.push_str(&name);
                if !labels.is_empty() {
                    let pairs: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
                        .collect();
                    let _ = write!(out, "{{{}}}", pairs.join(","));
                }
                let _ = writeln!(out, " {}", prometheus_number(*value));
            }
        }
        out
    }
}

/// The `Content-Type` of [`Registry::render`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A label value in the text format: backslash, double quote and line feed escaped.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn prometheus_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::TimeZone;

    use super::*;
    use crate::domain::SiemRegion;
    use crate::microsoft::alerts::{FetchError, Window};
    use crate::ports::{JobSummary, StoreError};

    const A: &str = "11111111-1111-4111-8111-111111111111";
    const B: &str = "22222222-2222-4222-8222-222222222222";

    fn id(s: &str) -> TenantId {
        TenantId::parse(s).expect("guid")
    }

    fn report(api: &str, delivered: u64, lag_s: i64) -> FetchReport {
        FetchReport {
            tenant_id: A.into(),
            api: api.into(),
            delivered,
            lag_s,
            ..FetchReport::default()
        }
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("time")
    }

    fn config(per_tenant: bool) -> MetricsConfig {
        MetricsConfig {
            namespace: "MSSPAlerts/test".into(),
            per_tenant,
        }
    }

    #[test]
    fn names_are_unique_and_prometheus_names_follow_the_cloudwatch_names() {
        let names: HashSet<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Metric::ALL.len());
        assert_eq!(
            Metric::AlertsDelivered.prometheus_name(),
            "mssp_alerts_delivered_total"
        );
        assert_eq!(Metric::LagSeconds.prometheus_name(), "mssp_lag_seconds");
        assert_eq!(
            Metric::ScheduleMaxDelaySeconds.prometheus_name(),
            "mssp_schedule_max_delay_seconds"
        );
        for m in Metric::ALL {
            let p = m.prometheus_name();
            assert!(
                p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{p}"
            );
            assert_eq!(p.ends_with("_total"), m.kind() == Kind::Counter, "{p}");
            assert!(!m.help().contains('\n'), "{}", m.name());
            // The table in the module docs names every metric.
            assert!(
                include_str!("metrics.rs").contains(&format!("`{}`", m.name()))
                    || m.name().starts_with("Schedule"),
                "{} is not in the module table",
                m.name()
            );
        }
        // The EMF limit: at most 100 metric definitions in a directive.
        assert!(Metric::ALL.len() <= 100);
    }

    #[test]
    fn a_fetch_is_one_emf_document_per_api_and_fleet_with_the_tenant_as_a_member() {
        let o = Observation::fetch(&id(A), None, &Ok(report("graph", 5, 12))).expect("observed");
        let v = o.emf(&config(false), at());
        assert_eq!(v["_aws"]["Timestamp"], at().timestamp_millis());
        let directives = v["_aws"]["CloudWatchMetrics"].as_array().expect("array");
        assert_eq!(directives.len(), 1, "{v}");
        assert_eq!(directives[0]["Namespace"], "MSSPAlerts/test");
        assert_eq!(directives[0]["Dimensions"], json!([["Api"], []]));
        assert_eq!(
            directives[0]["Metrics"],
            json!([
                {"Name": "AlertsDelivered", "Unit": "Count"},
                {"Name": "LagSeconds", "Unit": "Seconds"},
                {"Name": "FetchFailures", "Unit": "Count"},
            ])
        );
        assert_eq!(v["AlertsDelivered"], 5);
        assert_eq!(v["LagSeconds"], 12);
        assert_eq!(v["FetchFailures"], 0);
        assert_eq!(v["Api"], "graph");
        assert_eq!(v["TenantId"], A);
        assert_eq!(v["Event"], "fetch");
        assert!(v.get("SiemRegionMismatches").is_none(), "only SIEM tenants");
    }

    #[test]
    fn the_per_tenant_switch_adds_a_tenant_dimension_to_lag_and_failures_only() {
        let o = Observation::fetch(&id(A), None, &Ok(report("siem", 1, 3))).expect("observed");
        let v = o.emf(&config(true), at());
        let directives = v["_aws"]["CloudWatchMetrics"].as_array().expect("array");
        assert_eq!(directives.len(), 2, "{v}");
        let names = |d: &Value| -> Vec<String> {
            d["Metrics"]
                .as_array()
                .expect("metrics")
                .iter()
                .map(|m| m["Name"].as_str().expect("name").to_string())
                .collect()
        };
        assert_eq!(directives[0]["Dimensions"], json!([["Api"], []]));
        assert_eq!(
            names(&directives[0]),
            ["AlertsDelivered", "SiemRegionMismatches"]
        );
        assert_eq!(
            directives[1]["Dimensions"],
            json!([["Api"], [], ["TenantId"]])
        );
        assert_eq!(names(&directives[1]), ["LagSeconds", "FetchFailures"]);
    }

    #[test]
    fn failures_are_counted_and_the_api_is_found_where_the_result_tells_it() {
        let incomplete = Err(FetchFlowError::Incomplete {
            report: Box::new(report("mde", 7, 4000)),
            error: FetchError::Throttled,
        });
        let o = Observation::fetch(&id(A), None, &incomplete).expect("observed");
        assert_eq!(o.api, Some(AlertApi::Mde));
        assert_eq!(o.value(Metric::AlertsDelivered), Some(7.0));
        assert_eq!(o.value(Metric::LagSeconds), Some(4000.0));
        assert_eq!(o.value(Metric::FetchFailures), Some(1.0));

        let region = Err(FetchFlowError::SiemRegion {
            reading: SiemRegion::Us,
            holds: SiemRegion::Eu,
        });
        let o = Observation::fetch(&id(A), None, &region).expect("observed");
        assert_eq!(o.api, Some(AlertApi::Siem));
        assert_eq!(o.value(Metric::SiemRegionMismatches), Some(1.0));
        assert_eq!(o.value(Metric::FetchFailures), Some(1.0));
        assert_eq!(o.value(Metric::LagSeconds), None, "no report, no lag");

        let store = Err(FetchFlowError::Store(StoreError::NotFound));
        let o = Observation::fetch(&id(A), None, &store).expect("observed");
        assert_eq!(o.api, None);
        assert_eq!(
            o.emf(&config(true), at())["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[], ["TenantId"]]),
            "without the API, the fleet (and the tenant when asked for)"
        );
        let o = Observation::fetch(&id(A), Some(AlertApi::Graph), &store).expect("observed");
        assert_eq!(o.api, Some(AlertApi::Graph));

        for not_a_failure in [
            FetchFlowError::Busy(at()),
            FetchFlowError::UnknownTenant,
            FetchFlowError::NotActive(crate::domain::TenantStatus::ReconsentRequired),
        ] {
            assert_eq!(Observation::fetch(&id(A), None, &Err(not_a_failure)), None);
        }
    }

    fn finished(late: u64) -> Result<Swept, FetchFlowError> {
        Ok(Swept::Ran(Slice::Finished(JobSummary {
            window: Window {
                since: at(),
                until: at(),
            },
            started: at(),
            finished: at(),
            checked: 10,
            delivered: late,
            requests: 1,
            elsewhere: None,
        })))
    }

    #[test]
    fn a_finished_sweep_reports_its_late_versions() {
        let o = Observation::sweep(&id(A), Some(AlertApi::Graph), &finished(3)).expect("swept");
        assert_eq!(o.value(Metric::LateAlerts), Some(3.0));
        assert_eq!(o.event, "sweep");
        assert_eq!(Observation::sweep(&id(A), None, &Ok(Swept::NotDue)), None);
    }

    #[test]
    fn a_refused_app_and_its_secrets_days_left_are_reported() {
        let mut summary = RefreshSummary::default();
        summary.app.credentials = Credentials::Refused {
            code: Some(7_000_222),
            problem: "the app's client secret has expired".into(),
        };
        summary.app.client_secret_days_left = Some(-2);
        let o = Observation::refresh_run(&summary);
        assert_eq!(o.value(Metric::AppCredentialsRefused), Some(1.0));
        assert_eq!(o.value(Metric::ClientSecretDaysLeft), Some(-2.0));
        let misconfigured = RefreshSummary {
            app_misconfigured: Some("the app registration is disabled".into()),
            ..RefreshSummary::default()
        };
        assert_eq!(
            Observation::refresh_run(&misconfigured).value(Metric::AppCredentialsRefused),
            Some(1.0)
        );
    }

    #[test]
    fn refreshes_count_renewed_reconsent_and_failed_tenants() {
        let summary = RefreshSummary {
            refreshed: vec![id(A), id(B)],
            reconsent: vec![(id(B), None)],
            failed: vec![(id(A), "x".into())],
            ..RefreshSummary::default()
        };
        let o = Observation::refresh_run(&summary);
        assert_eq!(o.value(Metric::TokensRefreshed), Some(2.0));
        assert_eq!(o.value(Metric::TenantsNeedingReconsent), Some(1.0));
        assert_eq!(o.value(Metric::RefreshFailures), Some(1.0));
        assert_eq!(o.value(Metric::AppCredentialsRefused), Some(0.0));
        assert_eq!(
            o.value(Metric::ClientSecretDaysLeft),
            None,
            "no expiry known"
        );
        let v = o.emf(&config(true), at());
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]]),
            "fleet metrics have no dimension"
        );
        let gone = Err(RefreshError::ReconsentRequired {
            reason: "AADSTS700082".into(),
            consent_link: None,
        });
        let o = Observation::refresh_tenant(&id(A), &gone).expect("observed");
        assert_eq!(o.value(Metric::TenantsNeedingReconsent), Some(1.0));
        assert_eq!(o.emf(&config(false), at())["TenantId"], A);
        assert_eq!(
            Observation::refresh_tenant(&id(A), &Ok(RefreshOutcome::Fresh)),
            None
        );
    }

    #[test]
    fn values_that_are_not_numbers_are_left_out_of_emf() {
        let o = Observation::new("schedule", None, None)
            .with(Metric::ScheduleUtilization, f64::NAN)
            .with(Metric::ScheduleTenants, 3u8);
        let v = o.emf(&config(false), at());
        assert!(v.get("ScheduleUtilization").is_none());
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "ScheduleTenants", "Unit": "Count"}])
        );
    }

    #[test]
    fn prometheus_counters_add_gauges_replace_and_leaving_tenants_lose_only_gauges() {
        let r = Registry::new();
        let before = r.render();
        assert!(
            before.contains("mssp_tokens_refreshed_total 0\n"),
            "{before}"
        );
        for (t, delivered, lag) in [(A, 5, 30), (A, 2, 10), (B, 1, 7)] {
            let mut rep = report("graph", delivered, lag);
            rep.tenant_id = t.into();
            r.record(&Observation::fetch(&id(t), None, &Ok(rep)).expect("observed"));
        }
        let text = r.render();
        assert!(
            text.contains(&format!(
                "mssp_alerts_delivered_total{{api=\"graph\",tenant=\"{A}\"}} 7\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "mssp_lag_seconds{{api=\"graph\",tenant=\"{A}\"}} 10\n"
            )),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE mssp_lag_seconds gauge\n").count(), 1);
        assert_eq!(
            text.matches("# HELP mssp_alerts_delivered_total ").count(),
            1
        );
        r.retain_tenants([&id(A)]);
        let text = r.render();
        assert!(!text.contains(&format!("mssp_lag_seconds{{api=\"graph\",tenant=\"{B}\"}}")));
        assert!(
            text.contains(&format!(
                "mssp_alerts_delivered_total{{api=\"graph\",tenant=\"{B}\"}} 1\n"
            )),
            "counters stay: {text}"
        );
    }

    #[test]
    fn schedule_figures_are_gauges_of_the_last_interval() {
        let fit = Fit {
            at: at(),
            interval_s: 60.0,
            concurrency: 2,
            tenants: 600,
            started: 120,
            late: 100,
            skipped: 3,
            max_delay_s: 42.5,
            utilization: 5.0,
        };
        let r = Registry::new();
        r.record(&Observation::fit(&fit));
        let text = r.render();
        for line in [
            "mssp_schedule_fits 0\n",
            "mssp_schedule_late_starts 100\n",
            "mssp_schedule_skipped_turns 3\n",
            "mssp_schedule_utilization 5\n",
            "mssp_schedule_max_delay_seconds 42.5\n",
            "mssp_schedule_concurrency_needed 13\n",
            "# TYPE mssp_schedule_fits gauge\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x\\y\nz"), "x\\\\y\\nz");
    }
}
