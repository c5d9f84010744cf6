//! The emulated world: apps, tenants, users, consents, alerts, and the state every endpoint
//! shares. One `World` lives behind a mutex in [`crate::EmuState`]; handlers lock it briefly.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::model::{Alert, AlertVersion, Comment, Device, fmt7};
use crate::scenario::{
    AlertSpec, Api, GenerateSpec, PermissionSpec, Region, Scenario, ScenarioError, Settings,
    Switches, UpdateSpec, parse_duration, parse_time,
};

/// An app registration.
#[derive(Debug, Clone)]
pub struct App {
    /// Client id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Secrets and their expiry.
    pub secrets: Vec<(String, Option<DateTime<Utc>>)>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Requested permissions.
    pub permissions: PermissionSpec,
    /// The tenant the app is registered in, if the scenario names it.
    pub home_tenant: Option<String>,
}

/// What an app has been granted in a tenant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Grant {
    /// Application permissions per API.
    pub app_roles: BTreeMap<Api, BTreeSet<String>>,
    /// Delegated permissions per API.
    pub delegated: BTreeMap<Api, BTreeSet<String>>,
    /// Who consented last (UPN), if interactive.
    pub consented_by: Option<String>,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

impl Grant {
    fn from_spec(p: &PermissionSpec) -> Grant {
        let conv = |m: &BTreeMap<Api, Vec<String>>| {
            m.iter()
                .map(|(k, v)| (*k, v.iter().cloned().collect()))
                .collect()
        };
        Grant {
            app_roles: conv(&p.app_roles),
            delegated: conv(&p.delegated),
            consented_by: None,
            at: None,
        }
    }

    /// Adds everything in `p` (application roles only when `app_roles`, delegated always).
    pub fn add(&mut self, p: &PermissionSpec, app_roles: bool) {
        if app_roles {
            for (api, roles) in &p.app_roles {
                self.app_roles
                    .entry(*api)
                    .or_default()
                    .extend(roles.iter().cloned());
            }
        }
        for (api, scopes) in &p.delegated {
            self.delegated
                .entry(*api)
                .or_default()
                .extend(scopes.iter().cloned());
        }
    }
}

/// A user.
#[derive(Debug, Clone)]
pub struct User {
    /// UPN.
    pub upn: String,
    /// Display name.
    pub name: String,
    /// Object id.
    pub oid: String,
    /// May grant admin consent.
    pub admin: bool,
    /// Refresh tokens issued before this instant are revoked (AADSTS50173).
    pub tokens_revoked_at: Option<DateTime<Utc>>,
}

/// A customer tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Tenant id (GUID).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Verified domains.
    pub domains: Vec<String>,
    /// Users.
    pub users: Vec<User>,
    /// Consents per client id.
    pub consents: BTreeMap<String, Grant>,
    /// Apps authorized for the SIEM API.
    pub siem_apps: BTreeSet<String>,
    /// The SIEM exporter region that serves the tenant's alerts.
    pub region: Region,
    /// Quirk switches.
    pub switches: Switches,
    /// Alerts, newest created first (ties by id), the order the list APIs serve.
    pub alerts: Vec<Alert>,
}

impl Tenant {
    /// Finds a user by UPN (case-insensitive).
    pub fn user(&self, upn: &str) -> Option<&User> {
        self.users.iter().find(|u| u.upn.eq_ignore_ascii_case(upn))
    }

    /// Marks the versions current at `now` of the alerts in `served` as observed: the ground
    /// truth of what a client was shown. Only versions actually returned in a readable answer
    /// count; a version current while the client's page did not include it (an offset the client
    /// never reached, the dropped half of a 206) cannot be expected of any client.
    pub fn observe_served<'a>(
        &mut self,
        served: impl IntoIterator<Item = &'a str>,
        now: DateTime<Utc>,
    ) {
        let ids: HashSet<&str> = served.into_iter().collect();
        if ids.is_empty() {
            return;
        }
        for a in &mut self.alerts {
            if ids.contains(a.id.as_str())
                && let Some(i) = a.current(now)
            {
                a.versions[i].observed = true;
            }
        }
    }

    /// Keeps the serving order after alerts were added.
    pub fn sort_alerts(&mut self) {
        self.alerts
            .sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
    }
}

/// One alert version in the ground truth.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TruthVersion {
    /// Alert id.
    pub alert_id: String,
    /// The version's last-update time, seven fractional digits.
    pub version: String,
    /// When it became visible.
    pub visible_at: String,
    /// It is the alert's current version now.
    pub latest: bool,
    /// It was returned to a client in a readable list answer (200 or 206).
    pub observed: bool,
    /// `latest || observed`: a complete client must have delivered it.
    pub exposed: bool,
    /// It became visible more than [`LATE_AFTER`] after its update time (a late version, or one
    /// held back by an earlier late version of its alert).
    pub late: bool,
    /// The `FullId` of each record the SIEM API serves this version as (`AlertPart` order); the
    /// same for every version of the alert.
    pub siem_full_ids: Vec<String>,
}

/// How long after its update time a version must wait to count as late in the ground truth.
pub const LATE_AFTER: Duration = Duration::hours(1);

/// Ground truth for one tenant: every alert version made visible so far.
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    /// Tenant id.
    pub tenant_id: String,
    /// Emulator time of the answer.
    pub now: String,
    /// Versions, by alert then time.
    pub versions: Vec<TruthVersion>,
}

impl Truth {
    /// Every record a complete client of `api` must have delivered, as `(alert id, record id,
    /// version)`: one per exposed version, or for the SIEM API one per `FullId` of the version
    /// (the records it serves the version as).
    pub fn exposed_records(&self, api: Api) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for v in self.versions.iter().filter(|v| v.exposed) {
            if api == Api::Siem && !v.siem_full_ids.is_empty() {
                for full_id in &v.siem_full_ids {
                    out.push((v.alert_id.clone(), full_id.clone(), v.version.clone()));
                }
            } else {
                out.push((v.alert_id.clone(), v.alert_id.clone(), v.version.clone()));
            }
        }
        out
    }

    /// Checks the dedup keys a client delivered for this tenant against the truth. Keys are
    /// `{tenant}:{record id}:{version}` (DESIGN §5).
    pub fn check<'a>(&self, api: Api, delivered: impl IntoIterator<Item = &'a str>) -> Check {
        let mut got: Vec<&str> = delivered.into_iter().collect();
        let records = got.len();
        got.sort_unstable();
        got.dedup();
        let expected: Vec<String> = self
            .exposed_records(api)
            .into_iter()
            .map(|(_, record, version)| format!("{}:{record}:{version}", self.tenant_id))
            .collect();
        let missing = expected
            .iter()
            .filter(|k| got.binary_search(&k.as_str()).is_err())
            .cloned()
            .collect();
        Check {
            records,
            duplicates: records - got.len(),
            expected: expected.len(),
            missing,
        }
    }
}

/// A client's deliveries for one tenant against the ground truth ([`Truth::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Records delivered.
    pub records: usize,
    /// Records whose key another record has too.
    pub duplicates: usize,
    /// Records a complete client must have delivered.
    pub expected: usize,
    /// Those of them not delivered.
    pub missing: Vec<String>,
}

/// Everything the emulator knows.
#[derive(Debug)]
pub struct World {
    /// Clock start of the scenario (base of relative times).
    pub epoch: DateTime<Utc>,
    /// Global knobs.
    pub settings: Settings,
    /// Apps by client id.
    pub apps: BTreeMap<String, App>,
    /// Tenants by id.
    pub tenants: BTreeMap<String, Tenant>,
    /// Authorization codes, refresh tokens and pending sign-ins.
    pub identity: crate::identity::IdentityState,
    /// Fault injection.
    pub faults: crate::faults::FaultPlan,
    /// Request-rate windows.
    pub throttle: crate::throttle::ThrottleState,
    /// Seeded randomness for ids and lifetimes.
    pub rng: StdRng,
    /// Requests served, by API.
    pub requests: BTreeMap<String, u64>,
    /// Requests per tenant (see [`TenantRequests`]).
    pub tenant_requests: HashMap<String, TenantRequests>,
    /// Tenant ids by their lowercase id and by lowercase verified domain, so that resolving a
    /// tenant costs the same in a world of three tenants or of ten thousand.
    index: TenantIndex,
}

/// Requests one tenant made, per Microsoft endpoint family: alert API requests are counted for
/// the tenant their token's `tid` names (whatever the answer), identity requests for the tenant
/// their URL names (`common`, `organizations` and `consumers` count under that name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TenantRequests {
    /// Graph `alerts_v2`.
    pub graph: u64,
    /// Defender for Endpoint `/api/alerts`.
    pub mde: u64,
    /// The legacy SIEM API (any region's exporter).
    pub siem: u64,
    /// Token endpoint (v1 and v2).
    pub token: u64,
    /// Authorize and admin-consent endpoints and the sign-in page's decisions.
    pub authorize: u64,
}

/// Which counter of [`TenantRequests`] a request adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// An alert API.
    Alerts(Api),
    /// The token endpoint.
    Token,
    /// The authorize and admin-consent endpoints.
    Authorize,
}

#[derive(Debug, Default)]
struct TenantIndex {
    ids: HashMap<String, String>,
    domains: HashMap<String, String>,
    /// Lowercase UPN → the user's tenant id.
    upns: HashMap<String, String>,
}

impl TenantIndex {
    fn of(tenants: &BTreeMap<String, Tenant>) -> TenantIndex {
        let mut index = TenantIndex::default();
        for t in tenants.values() {
            index.ids.insert(t.id.to_ascii_lowercase(), t.id.clone());
            for d in &t.domains {
                index
                    .domains
                    .entry(d.to_ascii_lowercase())
                    .or_insert_with(|| t.id.clone());
            }
            for u in &t.users {
                index
                    .upns
                    .entry(u.upn.to_ascii_lowercase())
                    .or_insert_with(|| t.id.clone());
            }
        }
        index
    }
}

fn time_of(field: &str, s: &str, base: DateTime<Utc>) -> Result<DateTime<Utc>, ScenarioError> {
    parse_time(s, base).ok_or_else(|| ScenarioError::BadTime {
        field: field.into(),
        value: s.into(),
        what: "a time (RFC 3339 or +/-duration)",
    })
}

fn duration_of(field: &str, s: &str) -> Result<Duration, ScenarioError> {
    parse_duration(s).ok_or_else(|| ScenarioError::BadTime {
        field: field.into(),
        value: s.into(),
        what: "a duration (e.g. 30s, 5m, 90d)",
    })
}

/// Deterministic pseudo-random 64-bit mix (splitmix64), for stable generated content.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Truncates a time to Microsoft's 100 ns precision.
pub fn to_ticks(t: DateTime<Utc>) -> DateTime<Utc> {
    let ns = t.timestamp_subsec_nanos();
    t - Duration::nanoseconds(i64::from(ns % 100))
}

const TITLES: &[(&str, &str, &str)] = &[
    (
        "Suspicious execution of hidden file",
        "DefenseEvasion",
        "medium",
    ),
    (
        "Suspicious 'Meterpreter' behavior was detected",
        "SuspiciousActivity",
        "high",
    ),
    (
        "Ransomware behavior detected in the file system",
        "Ransomware",
        "high",
    ),
    ("Suspicious PowerShell command line", "Execution", "medium"),
    ("Credential theft activity", "CredentialAccess", "high"),
    ("Unwanted software was detected", "Malware", "low"),
    (
        "Suspicious sign-in from an unusual location",
        "InitialAccess",
        "informational",
    ),
];
const SOURCES: &[(&str, &str)] = &[
    ("microsoftDefenderForEndpoint", "antivirus"),
    (
        "microsoftDefenderForEndpoint",
        "microsoftDefenderForEndpoint",
    ),
    (
        "microsoftDefenderForIdentity",
        "microsoftDefenderForIdentity",
    ),
    (
        "microsoftDefenderForOffice365",
        "microsoftDefenderForOffice365",
    ),
    ("microsoftDefenderForCloud", "microsoftDefenderForCloud"),
];

/// Builds an alert's static part from a seed.
pub fn synth_alert(
    tenant_id: &str,
    seed: u64,
    id: Option<String>,
    created: DateTime<Utc>,
) -> Alert {
    let r = mix(seed);
    let (title, category, severity) = TITLES[(r % TITLES.len() as u64) as usize];
    let (service, detection) = SOURCES[((r >> 8) % SOURCES.len() as u64) as usize];
    let host = format!("host-{:04}", (r >> 16) % 10_000);
    let domain = tenant_id.split('-').next().unwrap_or("corp");
    let ticks = (created.timestamp() + 62_135_596_800) * 10_000_000
        + i64::from(created.timestamp_subsec_nanos() / 100);
    Alert {
        id: id.unwrap_or_else(|| format!("da{ticks}_{}", (r >> 32) as i32)),
        created,
        incident_id: ((r >> 40) % 90_000 + 1_000) as i64,
        title: title.into(),
        description: format!("{title} on {host}. Investigate the device and the user."),
        severity: severity.into(),
        category: category.into(),
        service_source: service.into(),
        detection_source: detection.into(),
        detector_id: uuid::Uuid::from_u64_pair(mix(r), mix(r ^ 1)).to_string(),
        mitre: vec![format!("T{}", 1000 + (r >> 20) % 600)],
        device: Device {
            machine_id: format!(
                "{:016x}{:016x}{:08x}",
                mix(r ^ 2),
                mix(r ^ 3),
                (r >> 3) as u32
            ),
            dns_name: format!("{host}.{domain}.corp.example"),
            rbac_group: "Servers".into(),
        },
        user: (
            format!("user{}", (r >> 24) % 500),
            domain.to_ascii_uppercase(),
        ),
        sha1: format!(
            "{:016x}{:016x}{:08x}",
            mix(r ^ 4),
            mix(r ^ 5),
            (r >> 5) as u32
        ),
        siem_parts: 1,
        versions: Vec::new(),
    }
}

/// Appends a version, keeping visibility monotonic.
pub fn push_version(alert: &mut Alert, mut v: AlertVersion) {
    if let Some(prev) = alert.versions.last() {
        if v.visible_at < prev.visible_at {
            v.visible_at = prev.visible_at;
        }
        if v.updated < prev.updated {
            v.updated = prev.updated;
        }
    }
    alert.versions.push(v);
}

/// Applies an update to a copy of the last version.
pub fn next_version(
    alert: &Alert,
    updated: DateTime<Utc>,
    visible_at: DateTime<Utc>,
    u: &UpdateSpec,
) -> AlertVersion {
    let mut v = alert
        .versions
        .last()
        .cloned()
        .unwrap_or_else(|| AlertVersion::first(updated, visible_at));
    v.updated = to_ticks(updated);
    v.visible_at = visible_at;
    v.observed = false;
    if let Some(s) = &u.status {
        v.status = s.clone();
    }
    if u.assigned_to.is_some() {
        v.assigned_to = u.assigned_to.clone();
    }
    if u.classification.is_some() {
        v.classification = u.classification.clone();
    }
    if u.determination.is_some() {
        v.determination = u.determination.clone();
    }
    if let Some(c) = &u.comment {
        v.comments.push(Comment {
            text: c.clone(),
            by: v
                .assigned_to
                .clone()
                .unwrap_or_else(|| "soc@mssp.example".into()),
            at: updated,
        });
    }
    v
}

/// Builds an alert from a hand-written spec; relative times are relative to `base`.
pub fn alert_from_spec(
    tenant_id: &str,
    seed: u64,
    spec: &AlertSpec,
    base: DateTime<Utc>,
) -> Result<Alert, ScenarioError> {
    let created = to_ticks(time_of("alerts[].created", &spec.created, base)?);
    let delay = match &spec.visible_after {
        Some(d) => duration_of("alerts[].visible_after", d)?,
        None => Duration::zero(),
    };
    let mut a = synth_alert(tenant_id, seed, spec.id.clone(), created);
    if let Some(t) = &spec.title {
        a.title = t.clone();
    }
    if let Some(s) = &spec.severity {
        a.severity = s.clone();
    }
    if let Some(c) = &spec.category {
        a.category = c.clone();
    }
    if let Some(s) = &spec.service_source {
        a.service_source = s.clone();
    }
    if let Some(d) = &spec.device {
        a.device.dns_name = d.clone();
    }
    a.siem_parts = match spec.parts {
        Some(0) => {
            return Err(ScenarioError::Invalid(
                "alerts[].parts must be at least 1".into(),
            ));
        }
        Some(n) => n,
        None => 1,
    };
    let first = UpdateSpec {
        status: Some(spec.status.clone().unwrap_or_else(|| "new".into())),
        assigned_to: spec.assigned_to.clone(),
        ..UpdateSpec::default()
    };
    let v0 = next_version(&a, created, created + delay, &first);
    push_version(&mut a, v0);
    for u in &spec.updates {
        let at = time_of("alerts[].updates[].at", &u.at, base)?;
        let d = match &u.visible_after {
            Some(d) => duration_of("alerts[].updates[].visible_after", d)?,
            None => delay,
        };
        let v = next_version(&a, at, at + d, u);
        push_version(&mut a, v);
    }
    Ok(a)
}

/// Draws which generated versions are late and by how much (`generate[].late_*`), from its own
/// seeded source, so that turning lateness on changes nothing else a stream draws.
struct Lateness {
    rng: StdRng,
    fraction: f64,
    min: Duration,
    max: Duration,
}

impl Lateness {
    fn new(tenant_id: &str, g: &GenerateSpec) -> Result<Lateness, ScenarioError> {
        if !(0.0..=1.0).contains(&g.late_fraction) {
            return Err(ScenarioError::Invalid(format!(
                "generate.late_fraction must lie in 0..=1, not {}",
                g.late_fraction
            )));
        }
        let min = duration_of("generate.late_min", &g.late_min)?;
        let max = duration_of("generate.late_max", &g.late_max)?;
        if max < min || min < Duration::zero() {
            return Err(ScenarioError::Invalid(
                "generate.late_min must not be negative nor exceed late_max".into(),
            ));
        }
        let salt = tenant_id
            .bytes()
            .fold(0x4c41_5445u64, |h, b| mix(h ^ u64::from(b)));
        Ok(Lateness {
            rng: StdRng::seed_from_u64(mix(g.seed) ^ salt),
            fraction: g.late_fraction,
            min,
            max,
        })
    }

    /// When a version updated at `updated` becomes visible: late, or at `normal`.
    fn visible_at(&mut self, updated: DateTime<Utc>, normal: DateTime<Utc>) -> DateTime<Utc> {
        if self.fraction <= 0.0 || !self.rng.random_bool(self.fraction) {
            return normal;
        }
        let span = (self.max - self.min).num_milliseconds();
        updated + self.min + Duration::milliseconds(self.rng.random_range(0..=span))
    }
}

fn generate(
    tenant_id: &str,
    g: &GenerateSpec,
    base: DateTime<Utc>,
    out: &mut Vec<Alert>,
) -> Result<(), ScenarioError> {
    let start = time_of("generate.start", &g.start, base)?;
    let every = duration_of("generate.every", &g.every)?;
    let delay = duration_of("generate.visible_after", &g.visible_after)?;
    let jitter = duration_of("generate.visible_jitter", &g.visible_jitter)?;
    let update_after = duration_of("generate.update_after", &g.update_after)?;
    let update_at = match &g.update_at {
        Some(s) => Some(time_of("generate.update_at", s, base)?),
        None => None,
    };
    let mut rng = StdRng::seed_from_u64(g.seed ^ mix(tenant_id.len() as u64));
    let mut late = Lateness::new(tenant_id, g)?;
    if g.siem_parts_max == 0 {
        return Err(ScenarioError::Invalid(
            "generate.siem_parts_max must be at least 1".into(),
        ));
    }
    let mut seen = HashSet::new();
    for i in 0..g.count {
        let created = to_ticks(start + every * i32::try_from(i).unwrap_or(i32::MAX));
        let seed = mix(g.seed.wrapping_mul(1_000_003) ^ i as u64);
        let mut a = synth_alert(tenant_id, seed, None, created);
        a.siem_parts = 1 + (mix(seed ^ 0x5041_5254) % g.siem_parts_max as u64) as usize;
        let mut n = 0u32;
        while !seen.insert(a.id.clone()) {
            n += 1;
            a.id = format!("{}{n}", a.id);
        }
        let jit = |rng: &mut StdRng| {
            let ms = jitter.num_milliseconds();
            if ms > 0 {
                Duration::milliseconds(rng.random_range(0..=ms))
            } else {
                Duration::zero()
            }
        };
        // The version `change` makes at `at`: visible after the delay and its jitter, or late.
        let mut add_version = |a: &mut Alert, rng: &mut StdRng, at, change: &UpdateSpec| {
            let normal = at + delay + jit(rng);
            let v = next_version(a, at, late.visible_at(at, normal), change);
            push_version(a, v);
        };
        let created_as = UpdateSpec {
            status: Some("new".into()),
            ..UpdateSpec::default()
        };
        add_version(&mut a, &mut rng, created, &created_as);
        if g.update_fraction > 0.0 && rng.random_bool(g.update_fraction.clamp(0.0, 1.0)) {
            let updated = UpdateSpec {
                status: Some(g.update_status.clone()),
                assigned_to: Some("analyst@mssp.example".into()),
                ..UpdateSpec::default()
            };
            let at = update_at.unwrap_or(created + update_after);
            add_version(&mut a, &mut rng, at, &updated);
        }
        a.versions.shrink_to_fit();
        out.push(a);
    }
    Ok(())
}

impl World {
    /// Builds the world a scenario describes; `real_now` is the clock start when the scenario
    /// gives none.
    pub fn from_scenario(s: &Scenario, epoch: DateTime<Utc>) -> Result<World, ScenarioError> {
        let mut apps = BTreeMap::new();
        for a in &s.apps {
            if a.client_id.is_empty() {
                return Err(ScenarioError::Invalid("an app has no client_id".into()));
            }
            let mut secrets = Vec::new();
            for sec in &a.secrets {
                let exp = match &sec.expires {
                    Some(e) => Some(time_of("apps[].secrets[].expires", e, epoch)?),
                    None => None,
                };
                secrets.push((sec.value.clone(), exp));
            }
            apps.insert(
                a.client_id.clone(),
                App {
                    client_id: a.client_id.clone(),
                    name: a.name.clone(),
                    secrets,
                    redirect_uris: a.redirect_uris.clone(),
                    permissions: a.permissions.clone(),
                    home_tenant: a.home_tenant.as_ref().map(|t| t.to_ascii_lowercase()),
                },
            );
        }
        let mut tenants = BTreeMap::new();
        for (ti, t) in s.tenants.iter().enumerate() {
            if t.id.is_empty() {
                return Err(ScenarioError::Invalid(format!("tenant #{ti} has no id")));
            }
            let mut alerts = Vec::new();
            for (i, spec) in t.alerts.iter().enumerate() {
                alerts.push(alert_from_spec(
                    &t.id,
                    mix(ti as u64 * 7919 + i as u64),
                    spec,
                    epoch,
                )?);
            }
            for g in &t.generate {
                generate(&t.id, g, epoch, &mut alerts)?;
            }
            let users = t
                .users
                .iter()
                .enumerate()
                .map(|(i, u)| User {
                    upn: u.upn.clone(),
                    name: if u.name.is_empty() {
                        u.upn.clone()
                    } else {
                        u.name.clone()
                    },
                    oid: uuid::Uuid::from_u64_pair(mix(ti as u64), mix(i as u64 + 77)).to_string(),
                    admin: u.admin,
                    tokens_revoked_at: None,
                })
                .collect();
            let mut tenant = Tenant {
                id: t.id.clone(),
                name: t.name.clone(),
                domains: t.domains.clone(),
                users,
                consents: t
                    .consents
                    .iter()
                    .map(|c| (c.client_id.clone(), Grant::from_spec(&c.granted)))
                    .collect(),
                siem_apps: t.siem_apps.iter().cloned().collect(),
                region: t.region,
                switches: t.switches.clone(),
                alerts,
            };
            tenant.sort_alerts();
            tenants.insert(t.id.clone(), tenant);
        }
        Ok(World {
            epoch,
            settings: s.settings.clone(),
            apps,
            identity: Default::default(),
            faults: Default::default(),
            throttle: Default::default(),
            rng: StdRng::seed_from_u64(mix(epoch.timestamp() as u64)),
            requests: BTreeMap::new(),
            tenant_requests: HashMap::new(),
            index: TenantIndex::of(&tenants),
            tenants,
        })
    }

    /// Resolves a tenant named in a URL path: its id (any case) or a verified domain. Tenants,
    /// their domains and users are indexed when the scenario loads; tenants inserted into
    /// `tenants` later are found by their exact id only.
    pub fn resolve_tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenant_by_id(name).or_else(|| {
            let id = self.index.domains.get(&name.to_ascii_lowercase())?;
            self.tenants.get(id)
        })
    }

    /// The tenant with id `id`, in any case (a token's `tid`).
    pub fn tenant_by_id(&self, id: &str) -> Option<&Tenant> {
        self.tenants.get(id).or_else(|| {
            let id = self.index.ids.get(&id.to_ascii_lowercase())?;
            self.tenants.get(id)
        })
    }

    /// The id of the tenant that has a user `upn` (any case).
    pub fn tenant_of_user(&self, upn: &str) -> Option<&str> {
        self.index
            .upns
            .get(&upn.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Counts a request of `tenant` (an id or an alias such as `common`) to `endpoint`.
    pub fn count_tenant_request(&mut self, tenant: &str, endpoint: Endpoint) {
        let counts = match self.tenant_requests.get_mut(tenant) {
            Some(c) => c,
            None => self.tenant_requests.entry(tenant.to_string()).or_default(),
        };
        let counter = match endpoint {
            Endpoint::Alerts(Api::Graph) => &mut counts.graph,
            Endpoint::Alerts(Api::Mde) => &mut counts.mde,
            Endpoint::Alerts(Api::Siem) => &mut counts.siem,
            Endpoint::Token => &mut counts.token,
            Endpoint::Authorize => &mut counts.authorize,
        };
        *counter += 1;
    }

    /// Ground truth for a tenant at `now`.
    pub fn truth(&self, tenant_id: &str, now: DateTime<Utc>) -> Option<Truth> {
        let t = self.tenants.get(tenant_id)?;
        let mut versions = Vec::new();
        for a in &t.alerts {
            let current = a.current(now);
            let full_ids = a.siem_full_ids();
            for (i, v) in a.versions.iter().enumerate() {
                if v.visible_at > now {
                    break;
                }
                let latest = current == Some(i);
                versions.push(TruthVersion {
                    alert_id: a.id.clone(),
                    version: fmt7(v.updated),
                    visible_at: fmt7(v.visible_at),
                    latest,
                    observed: v.observed,
                    exposed: latest || v.observed,
                    late: v.visible_at - v.updated > LATE_AFTER,
                    siem_full_ids: full_ids.clone(),
                });
            }
        }
        versions.sort_by(|a, b| a.alert_id.cmp(&b.alert_id).then(a.version.cmp(&b.version)));
        Some(Truth {
            tenant_id: t.id.clone(),
            now: fmt7(now),
            versions,
        })
    }

    /// Counts a request for the stats.
    pub fn count_request(&mut self, api: &str) {
        match self.requests.get_mut(api) {
            Some(n) => *n += 1,
            None => {
                self.requests.insert(api.to_string(), 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    }

    #[test]
    fn truth_shows_only_visible_versions_and_marks_the_latest() {
        let epoch = t("2026-01-01T00:00:00Z");
        let mut a = alert_from_spec(
            "tid",
            1,
            &AlertSpec {
                created: "+0s".into(),
                visible_after: Some("5m".into()),
                updates: vec![UpdateSpec {
                    at: "+1h".into(),
                    status: Some("inProgress".into()),
                    ..UpdateSpec::default()
                }],
                ..AlertSpec::default()
            },
            epoch,
        )
        .expect("valid");
        assert_eq!(a.current(epoch + Duration::minutes(4)), None);
        assert_eq!(a.current(epoch + Duration::minutes(5)), Some(0));
        assert_eq!(a.current(epoch + Duration::minutes(66)), Some(1));
        a.versions[0].observed = true;
        assert_eq!(a.versions.len(), 2);
    }

    fn stream(late_fraction: f64) -> Vec<Alert> {
        let g = GenerateSpec {
            count: 400,
            start: "-1d".into(),
            every: "3m".into(),
            visible_after: "2m".into(),
            visible_jitter: "1m".into(),
            update_fraction: 0.5,
            update_after: "30m".into(),
            late_fraction,
            late_min: "2h".into(),
            late_max: "5h".into(),
            seed: 9,
            ..GenerateSpec::default()
        };
        let mut out = Vec::new();
        generate("tid", &g, t("2026-01-01T00:00:00Z"), &mut out).expect("valid");
        out
    }

    #[test]
    fn late_versions_are_a_seeded_fraction_and_never_overtake_earlier_ones() {
        let punctual = stream(0.0);
        let late = stream(0.25);
        let versions: usize = late.iter().map(|a| a.versions.len()).sum();
        let mut own_late = 0;
        for (a, p) in late.iter().zip(&punctual) {
            // Lateness draws from its own source: the same alerts and updates either way.
            assert_eq!(a.id, p.id);
            assert_eq!(a.versions.len(), p.versions.len());
            for (i, v) in a.versions.iter().enumerate() {
                assert_eq!(v.updated, p.versions[i].updated);
                let delay = v.visible_at - v.updated;
                if delay >= Duration::hours(2) && delay <= Duration::hours(5) {
                    own_late += 1;
                }
                if i > 0 {
                    assert!(v.visible_at >= a.versions[i - 1].visible_at, "{}", a.id);
                }
            }
        }
        // 25% of about 600 versions, give or take the seeded draw.
        assert!((100..=200).contains(&own_late), "{own_late} of {versions}");
        assert!(punctual.iter().flat_map(|a| &a.versions).all(|v| {
            let d = v.visible_at - v.updated;
            d >= Duration::minutes(2) && d <= Duration::minutes(3)
        }));
        assert_eq!(stream(0.25).len(), late.len());
        assert!(
            stream(0.25).iter().zip(&late).all(|(a, b)| a
                .versions
                .iter()
                .zip(&b.versions)
                .all(|(x, y)| x.visible_at == y.visible_at)),
            "seeded"
        );
    }

    #[test]
    fn a_late_fraction_outside_zero_to_one_is_refused() {
        let g = GenerateSpec {
            count: 1,
            late_fraction: 1.5,
            ..GenerateSpec::default()
        };
        let mut out = Vec::new();
        assert!(generate("tid", &g, t("2026-01-01T00:00:00Z"), &mut out).is_err());
    }

    #[test]
    fn the_truth_counts_versions_visible_over_an_hour_after_their_update_as_late() {
        let epoch = t("2026-01-01T00:00:00Z");
        let scenario: Scenario = serde_json::from_value(serde_json::json!({
            "tenants": [{ "id": "tid", "alerts": [
                { "id": "a", "created": "-10h", "visible_after": "61m",
                  "updates": [{ "at": "-9h55m", "visible_after": "1m" }] },
                { "id": "b", "created": "-10h", "visible_after": "1h" }
            ]}]
        }))
        .expect("valid");
        let w = World::from_scenario(&scenario, epoch).expect("valid");
        let truth = w.truth("tid", epoch).expect("tenant");
        let late: Vec<(&str, bool, bool)> = truth
            .versions
            .iter()
            .map(|v| (v.alert_id.as_str(), v.late, v.latest))
            .collect();
        // a's update waits for its late first version (visible at -8h59m, 56 minutes after
        // the update): not late itself, and the first version is never current.
        assert_eq!(
            late,
            vec![("a", true, false), ("a", false, true), ("b", false, true)]
        );
    }
}
