//! The alert model: one underlying alert with a list of versions, served by all three APIs in
//! their own shapes (Graph `alerts_v2` per reference §3.3, MDE per §2.5, SIEM per §1.6, mapped
//! per §1.9). An alert's *current* version at time `t` is its last version visible at `t`.
//!
//! A version never becomes visible before the previous version of its alert: a version whose
//! own delay would make it visible earlier (because the previous one is late) becomes visible
//! with it, at the same instant. Then the later version is current from that instant on, so the
//! earlier one is never served: it shows in the ground truth as neither latest nor observed, and
//! no client can be expected to deliver it.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Graph `serviceSource` values that are evolvable enum members, returned only with
/// `Prefer: include-unknown-enum-members` (reference §3.2, §6 item 23).
pub const EVOLVABLE_SERVICE_SOURCES: &[&str] = &["microsoftDefenderForCloud"];

/// A device the alert is about.
#[derive(Debug, Clone)]
pub struct Device {
    /// MDE machine id (40 hex).
    pub machine_id: String,
    /// DNS name.
    pub dns_name: String,
    /// Device group.
    pub rbac_group: String,
}

/// A comment on an alert.
#[derive(Debug, Clone)]
pub struct Comment {
    /// Text.
    pub text: String,
    /// Author.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// One version of an alert: what its mutable fields were after one change.
#[derive(Debug, Clone)]
pub struct AlertVersion {
    /// Last-update time of this version (Graph lastUpdateDateTime, MDE lastUpdateTime, SIEM
    /// LastProcessedTimeUtc).
    pub updated: DateTime<Utc>,
    /// When the version becomes visible in the APIs (never before the previous version's).
    pub visible_at: DateTime<Utc>,
    /// Graph status: new, inProgress, resolved.
    pub status: String,
    /// Owner.
    pub assigned_to: Option<String>,
    /// Graph classification.
    pub classification: Option<String>,
    /// Graph determination.
    pub determination: Option<String>,
    /// Comments so far.
    pub comments: Vec<Comment>,
    /// Was current at the moment some list query of this tenant was answered (ground truth).
    pub observed: bool,
}

/// An alert and its versions, oldest first.
#[derive(Debug, Clone)]
pub struct Alert {
    /// Alert id (`da…_…` for MDE alerts; Graph `id` and `providerAlertId` are equal).
    pub id: String,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Incident id (a string in Graph, a number in MDE).
    pub incident_id: i64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Graph severity (lowercase enum).
    pub severity: String,
    /// Category, e.g. `Malware`.
    pub category: String,
    /// Graph serviceSource.
    pub service_source: String,
    /// Graph detectionSource.
    pub detection_source: String,
    /// Detector id (GUID).
    pub detector_id: String,
    /// MITRE techniques.
    pub mitre: Vec<String>,
    /// The device.
    pub device: Device,
    /// The user account (name, domain).
    pub user: (String, String),
    /// The SHA-1 of the file evidence.
    pub sha1: String,
    /// Versions, oldest first.
    pub versions: Vec<AlertVersion>,
}

/// Formats a time as Graph does: seven fractional digits and `Z`.
pub fn fmt7(t: DateTime<Utc>) -> String {
    format!("{}Z", seven(t))
}

fn seven(t: DateTime<Utc>) -> String {
    let ticks = t.timestamp_subsec_nanos() / 100;
    format!("{}.{ticks:07}", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// Formats a time as MDE does: fractional digits vary, trailing zeros dropped (`…50.19Z`).
pub fn fmt_trimmed(t: DateTime<Utc>) -> String {
    let s = seven(t);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}Z")
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn mde_severity(graph: &str) -> String {
    match graph {
        "unknown" => "UnSpecified".into(),
        other => capitalize(other),
    }
}

impl Alert {
    /// Index of the version current at `now`, if the alert is visible at all.
    pub fn current(&self, now: DateTime<Utc>) -> Option<usize> {
        self.versions.iter().rposition(|v| v.visible_at <= now)
    }

    /// The Graph `alerts_v2` representation of version `v` in tenant `tenant_id`.
    pub fn graph_json(&self, tenant_id: &str, v: &AlertVersion, include_unknown: bool) -> Value {
        let service_source = if !include_unknown
            && EVOLVABLE_SERVICE_SOURCES.contains(&self.service_source.as_str())
        {
            "unknownFutureValue"
        } else {
            self.service_source.as_str()
        };
        let resolved = (v.status == "resolved").then(|| fmt7(v.updated));
        json!({
            "@odata.type": "#microsoft.graph.security.alert",
            "id": self.id,
            "providerAlertId": self.id,
            "incidentId": self.incident_id.to_string(),
            "status": v.status,
            "severity": self.severity,
            "classification": v.classification.clone().unwrap_or_else(|| "unknown".into()),
            "determination": v.determination.clone().unwrap_or_else(|| "unknown".into()),
            "serviceSource": service_source,
            "detectionSource": self.detection_source,
            "detectorId": self.detector_id,
            "tenantId": tenant_id,
            "title": self.title,
            "description": self.description,
            "recommendedActions": "Isolate the device and collect an investigation package.",
            "category": self.category,
            "assignedTo": v.assigned_to,
            "alertWebUrl": format!("https://security.microsoft.com/alerts/{}?tid={tenant_id}", self.id),
            "incidentWebUrl": format!("https://security.microsoft.com/incidents/{}?tid={tenant_id}", self.incident_id),
            "actorDisplayName": null,
            "threatDisplayName": null,
            "threatFamilyName": null,
            "mitreTechniques": self.mitre,
            "createdDateTime": fmt7(self.created),
            "lastUpdateDateTime": fmt7(v.updated),
            "resolvedDateTime": resolved,
            "firstActivityDateTime": fmt7(self.created),
            "lastActivityDateTime": fmt7(self.created),
            "comments": v.comments.iter().map(|c| json!({
                "@odata.type": "microsoft.graph.security.alertComment",
                "comment": c.text, "createdByDisplayName": c.by, "createdDateTime": fmt7(c.at)
            })).collect::<Vec<_>>(),
            "evidence": [
                {"@odata.type": "#microsoft.graph.security.deviceEvidence",
                 "createdDateTime": fmt7(self.created), "verdict": "unknown", "remediationStatus": "none",
                 "remediationStatusDetails": null, "roles": [], "detailedRoles": [], "tags": [],
                 "mdeDeviceId": self.device.machine_id, "azureAdDeviceId": null,
                 "deviceDnsName": self.device.dns_name, "osPlatform": "Windows10", "osBuild": 19045,
                 "healthStatus": "active", "riskScore": "medium", "rbacGroupId": 75,
                 "rbacGroupName": self.device.rbac_group, "onboardingStatus": "onboarded",
                 "defenderAvStatus": "updated", "ipInterfaces": [], "loggedOnUsers": [
                     {"accountName": self.user.0, "domainName": self.user.1}], "vmMetadata": null},
                {"@odata.type": "#microsoft.graph.security.fileEvidence",
                 "createdDateTime": fmt7(self.created), "verdict": "suspicious", "remediationStatus": "none",
                 "remediationStatusDetails": null, "detectionStatus": "detected",
                 "mdeDeviceId": self.device.machine_id, "roles": [], "detailedRoles": [], "tags": [],
                 "fileDetails": {"sha1": self.sha1, "sha256": null, "fileName": "payload.exe",
                     "filePath": "C:\\Users\\Public", "fileSize": 6136392, "filePublisher": null,
                     "signer": null, "issuer": null}}
            ],
            "systemTags": []
        })
    }

    /// The Defender for Endpoint `/api/alerts` representation of version `v`.
    pub fn mde_json(&self, tenant_id: &str, v: &AlertVersion, expand_evidence: bool) -> Value {
        let evidence = if expand_evidence {
            json!([{
                "entityType": "File", "evidenceCreationTime": fmt_trimmed(self.created),
                "sha1": self.sha1, "sha256": null, "fileName": "payload.exe",
                "filePath": "C:\\Users\\Public", "processId": null, "processCommandLine": null,
                "processCreationTime": null, "parentProcessId": null, "parentProcessCreationTime": null,
                "parentProcessFileName": null, "parentProcessFilePath": null, "ipAddress": null,
                "url": null, "registryKey": null, "registryHive": null, "registryValueType": null,
                "registryValue": null, "accountName": null, "domainName": null, "userSid": null,
                "aadUserId": null, "userPrincipalName": null, "detectionStatus": "Detected"
            }])
        } else {
            json!([])
        };
        let classification = v.classification.as_deref().map(|c| match c {
            "informationalExpectedActivity" => "Informational, expected activity".to_string(),
            other => capitalize(other),
        });
        json!({
            "id": self.id,
            "incidentId": self.incident_id,
            "investigationId": null,
            "assignedTo": v.assigned_to,
            "severity": mde_severity(&self.severity),
            "status": capitalize(&v.status),
            "classification": classification,
            "determination": v.determination.as_deref().map(capitalize),
            "investigationState": "Queued",
            "detectionSource": capitalize(&self.detection_source),
            "detectorId": self.detector_id,
            "category": self.category,
            "threatFamilyName": null,
            "title": self.title,
            "description": self.description,
            "alertCreationTime": fmt_trimmed(self.created),
            "firstEventTime": fmt_trimmed(self.created),
            "lastEventTime": fmt_trimmed(self.created),
            "lastUpdateTime": fmt_trimmed(v.updated),
            "resolvedTime": (v.status == "resolved").then(|| fmt_trimmed(v.updated)),
            "machineId": self.device.machine_id,
            "computerDnsName": self.device.dns_name,
            "rbacGroupName": self.device.rbac_group,
            "aadTenantId": tenant_id,
            "threatName": null,
            "mitreTechniques": self.mitre,
            "relatedUser": {"userName": self.user.0, "domainName": self.user.1},
            "comments": v.comments.iter().map(|c| json!({
                "comment": c.text, "createdBy": c.by, "createdTime": fmt_trimmed(c.at)
            })).collect::<Vec<_>>(),
            "evidence": evidence
        })
    }

    /// The legacy SIEM API representation (flat detection record) of version `v`.
    pub fn siem_json(&self, v: &AlertVersion) -> Value {
        let host = self.device.dns_name.split('.').next().unwrap_or_default();
        let domain = self
            .device
            .dns_name
            .split_once('.')
            .map(|(_, d)| d)
            .unwrap_or_default();
        json!({
            "AlertTime": fmt7(self.created),
            "ComputerDnsName": self.device.dns_name,
            "AlertTitle": self.title,
            "Category": self.category,
            "Severity": mde_severity(&self.severity),
            "AlertId": self.id,
            "Actor": "",
            "LinkToWDATP": format!("https://securitycenter.windows.com/alert/{}", self.id),
            "IocName": "", "IocValue": "", "CreatorIocName": "", "CreatorIocValue": "",
            "Sha1": self.sha1,
            "FileName": "payload.exe",
            "FilePath": "C:\\Users\\Public",
            "IpAddress": "", "Url": "",
            "IoaDefinitionId": self.detector_id,
            "UserName": self.user.0,
            "AlertPart": 0,
            "FullId": format!("{}:{}", self.id, self.sha1),
            "LastProcessedTimeUtc": fmt7(v.updated),
            "ThreatCategory": "", "ThreatFamily": "", "ThreatName": "",
            "RemediationAction": "", "RemediationIsSuccess": null,
            "Source": "EDR",
            "Md5": "", "Sha256": "",
            "WasExecutingWhileDetected": null,
            "UserDomain": self.user.1,
            "LogOnUsers": format!("{}\\{}", self.user.1, self.user.0),
            "MachineDomain": domain,
            "MachineName": host,
            "InternalIPv4List": "", "InternalIPv6List": "",
            "FileHash": self.sha1,
            "DeviceID": self.device.machine_id,
            "MachineGroup": self.device.rbac_group,
            "Description": self.description,
            "DeviceCreatedMachineTags": "", "CloudCreatedMachineTags": "",
            "CommandLine": "",
            "IncidentLinkToWDATP": format!("https://securitycenter.windows.com/incidents/byalert?alertId={}&source=SIEM", self.id),
            "ReportID": self.incident_id,
            "LinkToMTP": format!("https://security.microsoft.com/alert/{}", self.id),
            "IncidentLinkToMTP": format!("https://security.microsoft.com/incidents/byalert?alertId={}&source=SIEM", self.id),
            "ExternalId": self.sha1.to_ascii_uppercase(),
            "IocUniqueId": self.sha1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mde_times_drop_trailing_zeros_and_graph_times_keep_seven_digits() {
        let t = DateTime::parse_from_rfc3339("2020-07-20T10:53:50.19Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(fmt_trimmed(t), "2020-07-20T10:53:50.19Z");
        assert_eq!(fmt7(t), "2020-07-20T10:53:50.1900000Z");
        let whole = DateTime::parse_from_rfc3339("2020-07-20T10:53:50Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(fmt_trimmed(whole), "2020-07-20T10:53:50Z");
    }
}
