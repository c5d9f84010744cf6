//! Scenarios: the data files that describe a Microsoft cloud for the emulator — the MSSP's app
//! registrations (with secrets and their expiry), customer tenants with users, consents already
//! granted, switches that reproduce reported API quirks, and alert streams in which alerts are
//! created, later updated, and become visible only after a per-alert delay — for a seeded
//! fraction of versions (`late_fraction`), hours late.
//!
//! Times are either absolute RFC 3339 (`2026-01-01T00:00:00Z`) or relative to the scenario's clock
//! start: `+5m`, `-3d`, `0s`. Durations are a sequence of number+unit: `500ms`, `30s`, `5m`, `2h`,
//! `90d`, `1h30m`. See `emulator/scenarios/sample.json` for a documented example.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Which Microsoft API a permission, token audience, switch or fault is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// Microsoft Graph `security/alerts_v2`.
    Graph,
    /// Defender for Endpoint `/api/alerts`.
    Mde,
    /// The legacy SIEM API (`wdatp-alertexporter-*`), audience `https://graph.windows.net`.
    Siem,
}

impl Api {
    /// Every API, in a fixed order.
    pub const ALL: [Api; 3] = [Api::Graph, Api::Mde, Api::Siem];

    /// The accepted audiences (App ID URIs, then the resource's app id). The first is what the
    /// emulator writes into `aud`.
    pub fn audiences(self) -> &'static [&'static str] {
        match self {
            Api::Graph => &[
                "https://graph.microsoft.com",
                "00000003-0000-0000-c000-000000000000",
            ],
            Api::Mde => &[
                "https://api.securitycenter.microsoft.com",
                "https://api.security.microsoft.com",
                "https://securitycenter.onmicrosoft.com/windowsatpservice",
                "fc780465-2017-40d4-a0c5-307022471b92",
            ],
            Api::Siem => &[
                "https://graph.windows.net",
                "00000002-0000-0000-c000-000000000000",
            ],
        }
    }

    /// The resource an App ID URI (v1 `resource=`, or the prefix of a v2 scope) names, if any.
    /// A trailing slash is ignored, and the comparison is case-insensitive.
    pub fn from_resource(resource: &str) -> Option<Api> {
        let r = resource.trim_end_matches('/').to_ascii_lowercase();
        Api::ALL
            .into_iter()
            .find(|api| api.audiences().iter().any(|a| a.eq_ignore_ascii_case(&r)))
    }

    /// The API named `graph`, `mde` or `siem`.
    pub fn named(name: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The lowercase name used in scenarios and the control API.
    pub fn name(self) -> &'static str {
        match self {
            Api::Graph => "graph",
            Api::Mde => "mde",
            Api::Siem => "siem",
        }
    }
}

/// A region of the legacy SIEM API's exporter, `wdatp-alertexporter-{eu,us,uk}` (reference
/// §1.4). A tenant's alerts are served only by its own region's exporter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// `wdatp-alertexporter-eu`.
    Eu,
    /// `wdatp-alertexporter-us` (the default).
    #[default]
    Us,
    /// `wdatp-alertexporter-uk`.
    Uk,
}

impl Region {
    /// Every region, in a fixed order.
    pub const ALL: [Region; 3] = [Region::Eu, Region::Us, Region::Uk];

    /// The lowercase name used in scenarios and URL prefixes (`/siem-eu`).
    pub fn name(self) -> &'static str {
        match self {
            Region::Eu => "eu",
            Region::Us => "us",
            Region::Uk => "uk",
        }
    }
}

/// A whole scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Free text shown by the emulator binary.
    pub description: String,
    /// Where the emulator's clock starts and whether it runs.
    pub clock: ClockSpec,
    /// Global behaviour knobs.
    pub settings: Settings,
    /// The MSSP's app registrations.
    pub apps: Vec<AppSpec>,
    /// Customer tenants.
    pub tenants: Vec<TenantSpec>,
}

/// The clock at load time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockSpec {
    /// Start time (RFC 3339); absent: the real time now, truncated to the second.
    pub start: Option<DateTime<Utc>>,
    /// A frozen clock moves only through the control API.
    pub frozen: bool,
}

/// Global behaviour knobs; the defaults are Microsoft's documented values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Authorize and admin-consent requests are answered at once, as if the tenant's first admin
    /// (or the `login_hint` user) clicked Accept, instead of showing the sign-in page.
    pub auto_approve: bool,
    /// Shortest access-token lifetime in seconds (Microsoft: 60–90 minutes at random; samples show 3599).
    pub access_token_min_secs: i64,
    /// Longest access-token lifetime in seconds.
    pub access_token_max_secs: i64,
    /// Authorization-code lifetime in seconds ("about 10 minutes").
    pub auth_code_lifetime_secs: i64,
    /// Refresh-token MaxInactiveTime in days (90).
    pub refresh_token_max_inactive_days: i64,
    /// Graph security API budget per app per tenant per minute (150).
    pub graph_per_minute: u32,
    /// Defender for Endpoint budget per app per tenant per minute (100).
    pub mde_per_minute: u32,
    /// Defender for Endpoint budget per app per tenant per hour (1,500).
    pub mde_per_hour: u32,
    /// Page size of Graph alerts_v2 when `$top` is absent.
    pub graph_default_page_size: usize,
    /// Largest Graph `$top` honoured; larger values are clamped (1,000).
    pub graph_max_top: usize,
    /// Largest Graph `$skip` accepted; larger values get 400 (500).
    pub graph_max_skip: usize,
    /// Defender for Endpoint page size and largest `$top` (10,000).
    pub mde_max_page: usize,
    /// Real-time delay, in milliseconds, added to every request of the identity platform and the
    /// three alert APIs before it is handled (0: none), as a network and service round trip
    /// would; per-tenant latency is a fault rule instead.
    pub latency_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            auto_approve: false,
            access_token_min_secs: 3599,
            access_token_max_secs: 3599,
            auth_code_lifetime_secs: 600,
            refresh_token_max_inactive_days: 90,
            graph_per_minute: 150,
            mde_per_minute: 100,
            mde_per_hour: 1500,
            graph_default_page_size: 1000,
            graph_max_top: 1000,
            graph_max_skip: 500,
            mde_max_page: 10_000,
            latency_ms: 0,
        }
    }
}

/// An app registration of the MSSP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppSpec {
    /// Application (client) id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Client secrets; any unexpired one authenticates the app.
    pub secrets: Vec<SecretSpec>,
    /// Registered redirect URIs (exact match, as Entra requires).
    pub redirect_uris: Vec<String>,
    /// Permissions the registration requests, granted on consent.
    pub permissions: PermissionSpec,
}

/// A client secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSpec {
    /// The secret value.
    pub value: String,
    /// Expiry (absolute or relative); absent: never.
    pub expires: Option<String>,
}

/// Permissions per API: application roles and delegated scopes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PermissionSpec {
    /// Application permissions (appear in `roles`), e.g. `graph: ["SecurityAlert.Read.All"]`.
    pub app_roles: BTreeMap<Api, Vec<String>>,
    /// Delegated permissions (appear in `scp`), e.g. `mde: ["Alert.Read"]`.
    pub delegated: BTreeMap<Api, Vec<String>>,
}

/// A customer tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSpec {
    /// Tenant id (GUID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Verified domains, usable in place of the id in authority URLs.
    pub domains: Vec<String>,
    /// Users who can sign in.
    pub users: Vec<UserSpec>,
    /// Consents already granted to apps in this tenant.
    pub consents: Vec<ConsentSpec>,
    /// Apps authorized in the Defender portal's SIEM › MSSP tab (the legacy SIEM API serves only these).
    pub siem_apps: Vec<String>,
    /// The SIEM exporter region that holds the tenant's alerts (`eu`, `us`, `uk`; default `us`).
    pub region: Region,
    /// Quirk switches for this tenant's APIs.
    pub switches: Switches,
    /// Hand-written alerts.
    pub alerts: Vec<AlertSpec>,
    /// Generated alert streams.
    pub generate: Vec<GenerateSpec>,
}

/// A user of a tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSpec {
    /// User principal name.
    pub upn: String,
    /// Display name.
    pub name: String,
    /// Holds an admin role, so may grant admin consent.
    pub admin: bool,
}

/// A consent already granted to an app in a tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsentSpec {
    /// The app.
    pub client_id: String,
    /// What was granted.
    #[serde(flatten)]
    pub granted: PermissionSpec,
}

/// Switches reproducing API behaviours that users report, per tenant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Switches {
    /// Graph emits `@odata.nextLink` on non-final pages (users report it missing at times).
    pub graph_next_link: bool,
    /// Graph stops emitting `@odata.nextLink` once the next offset would pass this many alerts
    /// ("past a certain `$skip` offset the API stopped returning further pages").
    pub graph_next_link_max_offset: Option<usize>,
    /// Graph 429 answers carry `Retry-After` (turn off to exercise exponential backoff).
    pub graph_retry_after: bool,
    /// The legacy SIEM API is on (off: it answers 404 everywhere, as if retired).
    pub siem_enabled: bool,
    /// Tokens minted for this tenant carry this tenant id in `tid` (and `iss`) instead of the
    /// tenant's own, as a misconfigured proxy or a guest setup would answer. Resource APIs serve
    /// the `tid` tenant, so a client must check `tid` against the tenant it asked for.
    pub issue_tid: Option<String>,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            graph_next_link: true,
            graph_next_link_max_offset: None,
            graph_retry_after: true,
            siem_enabled: true,
            issue_tid: None,
        }
    }
}

/// A hand-written alert.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSpec {
    /// Alert id; absent: generated in Microsoft's `da…_…` form.
    pub id: Option<String>,
    /// Creation time (absolute or relative).
    pub created: String,
    /// Delay between a version's update time and its visibility in the APIs.
    pub visible_after: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Graph severity: informational, low, medium, high.
    pub severity: Option<String>,
    /// Category, e.g. `Malware`.
    pub category: Option<String>,
    /// Graph serviceSource; `microsoftDefenderForCloud` is an evolvable enum member.
    pub service_source: Option<String>,
    /// Device DNS name.
    pub device: Option<String>,
    /// Initial status: new, inProgress, resolved.
    pub status: Option<String>,
    /// Initial owner.
    pub assigned_to: Option<String>,
    /// How many records (`AlertPart` 0..parts) the SIEM API serves each version as, one per
    /// IOC (default 1).
    pub parts: Option<usize>,
    /// Later updates, in time order.
    pub updates: Vec<UpdateSpec>,
}

/// A change to an alert: a new version with a new last-update time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateSpec {
    /// When the change happened (absolute or relative).
    pub at: String,
    /// Visibility delay of this version (defaults to the alert's).
    pub visible_after: Option<String>,
    /// New status.
    pub status: Option<String>,
    /// New owner.
    pub assigned_to: Option<String>,
    /// New classification.
    pub classification: Option<String>,
    /// New determination.
    pub determination: Option<String>,
    /// A comment added.
    pub comment: Option<String>,
}

/// A generated stream of alerts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateSpec {
    /// How many alerts.
    pub count: usize,
    /// Creation time of the first.
    pub start: String,
    /// Spacing of creation times (`0s`: all share one timestamp).
    pub every: String,
    /// Visibility delay of every version; `visible_jitter` adds a seeded random part up to it.
    pub visible_after: String,
    /// Upper bound of a seeded random extra visibility delay.
    pub visible_jitter: String,
    /// Fraction (0..=1) of alerts that get one update.
    pub update_fraction: f64,
    /// Update time relative to creation.
    pub update_after: String,
    /// Update time for every updated alert at once (absolute or relative); overrides `update_after`.
    pub update_at: Option<String>,
    /// Status set by the update.
    pub update_status: String,
    /// Fraction (0..=1) of the generated versions (creation and update versions alike) that are
    /// *late*: visible `late_min..=late_max` (seeded, uniform) after their update time instead of
    /// `visible_after` + jitter. Microsoft documents no upper bound on this delay; connected
    /// products (Defender for Identity, Cloud Apps, Office 365) surface alerts hours late. A late
    /// version also holds back the later versions of its alert (see [`crate::model::Alert`]).
    pub late_fraction: f64,
    /// Shortest delay of a late version.
    pub late_min: String,
    /// Longest delay of a late version.
    pub late_max: String,
    /// Each alert is served by the SIEM API as a seeded 1..=`siem_parts_max` records, one per
    /// IOC (`AlertPart` 0.., distinct `IocUniqueId`, `FullId` = `{AlertId}:{IocUniqueId}`).
    /// Graph and MDE serve one alert regardless.
    pub siem_parts_max: usize,
    /// Seed of the generator (titles, severities, ids, jitter, lateness).
    pub seed: u64,
}

impl Default for GenerateSpec {
    fn default() -> Self {
        GenerateSpec {
            count: 0,
            start: "+0s".into(),
            every: "1s".into(),
            visible_after: "0s".into(),
            visible_jitter: "0s".into(),
            update_fraction: 0.0,
            update_after: "1h".into(),
            update_at: None,
            update_status: "inProgress".into(),
            late_fraction: 0.0,
            late_min: "2h".into(),
            late_max: "6h".into(),
            siem_parts_max: 1,
            seed: 1,
        }
    }
}

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A time or duration could not be read.
    #[error("{field}: cannot read {value:?} as {what}")]
    BadTime {
        /// Where.
        field: String,
        /// What was there.
        value: String,
        /// Time or duration.
        what: &'static str,
    },
    /// Something else is inconsistent.
    #[error("{0}")]
    Invalid(String),
}

impl Scenario {
    /// Reads a scenario from a JSON file.
    pub fn from_json_file(path: &std::path::Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read scenario {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("scenario {} is not valid: {e}", path.display()))
    }

    /// The sample scenario shipped in `emulator/scenarios/sample.json`.
    pub fn sample() -> Scenario {
        // The file is part of the crate and tested, so it always parses.
        serde_json::from_str(include_str!("../scenarios/sample.json")).unwrap_or_default()
    }
}

/// Parses a duration such as `90d`, `1h30m`, `2.5s` or `500ms`; a leading `-` negates.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::zero();
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::microseconds((value * unit_ms * 1_000.0).round() as i64);
    }
    Some(if neg { -total } else { total })
}

/// Parses an absolute RFC 3339 time, or a duration relative to `base`.
pub fn parse_time(s: &str, base: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    parse_duration(s).map(|d| base + d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("90d"), Some(Duration::days(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("-2s"), Some(Duration::seconds(-2)));
        assert_eq!(parse_duration("500ms"), Some(Duration::milliseconds(500)));
        assert_eq!(parse_duration("2.5s"), Some(Duration::milliseconds(2500)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn the_sample_scenario_parses() {
        let s: Scenario =
            serde_json::from_str(include_str!("../scenarios/sample.json")).expect("sample parses");
        assert!(s.tenants.len() >= 3);
    }

    #[test]
    fn resources_are_recognised_by_any_audience() {
        assert_eq!(
            Api::from_resource("https://graph.windows.net/"),
            Some(Api::Siem)
        );
        assert_eq!(
            Api::from_resource("https://api.securitycenter.microsoft.com"),
            Some(Api::Mde)
        );
        assert_eq!(Api::from_resource("https://example.com"), None);
    }
}
