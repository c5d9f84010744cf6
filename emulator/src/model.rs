//! The alert model: one underlying alert with a list of versions, served by all three APIs in
//! their own shapes (Graph `alerts_v2` per reference §3.3, MDE per §2.5, SIEM per §1.6, mapped
//! per §1.9). An alert's *current* version at time `t` is its last version visible at `t`.
//!
//! A version never becomes visible before the previous version of its alert: a version whose
//! own delay would make it visible earlier (because the previous one is late) becomes visible
//! with it, at the same instant. Then the later version is current from that instant on, so the
//! earlier one is never served: it shows in the ground truth as neither latest nor observed, and
//! no client can be expected to deliver it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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

impl AlertVersion {
    /// An alert's first version: `new`, unassigned, unclassified, no comments, not yet observed.
    pub fn first(updated: DateTime<Utc>, visible_at: DateTime<Utc>) -> AlertVersion {
        AlertVersion {
            updated,
            visible_at,
            status: "new".into(),
            assigned_to: None,
            classification: None,
            determination: None,
            comments: Vec::new(),
            observed: false,
        }
    }
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
    /// How many records (`AlertPart` 0..n) the SIEM API serves each version as (at least 1).
    pub siem_parts: usize,
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

    /// The SIEM records' `FullId`s, `AlertPart` order: `{AlertId}:{IocUniqueId}`, the same for
    /// every version.
    pub fn siem_full_ids(&self) -> Vec<String> {
        (0..self.siem_parts.max(1))
            .map(|part| format!("{}:{}", self.id, self.siem_ioc(part).unique_id))
            .collect()
    }

    /// The indicator that record `part` carries. Part 0 is the file evidence (the record every
    /// alert has, `IocUniqueId` = its SHA-1); further parts carry, in turn, a remote IP, a URL and
    /// another file, each with a `IocUniqueId` of 32 hashed bytes in base64 like the documented
    /// sample's. The SIEM API splits a detection with several IOCs into one record per IOC with a
    /// running `AlertPart` counter, and `FullId` is "unique … for each combination of IOC and
    /// Alert ID" (the WDATP alert API fields page); what `IocName`/`IocValue` hold is not
    /// documented, so the emulator names the IOC field and repeats its value.
    fn siem_ioc(&self, part: usize) -> SiemIoc {
        if part == 0 {
            return SiemIoc {
                unique_id: self.sha1.clone(),
                ..SiemIoc::default()
            };
        }
        let digest = Sha256::digest(format!("{}:{part}", self.id).as_bytes());
        let h = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
        let mut ioc = SiemIoc {
            unique_id: STANDARD.encode(digest),
            ..SiemIoc::default()
        };
        match part % 3 {
            1 => {
                ioc.ip = format!("203.0.113.{}", 1 + h % 254);
                ioc.name = "IpAddress";
                ioc.value = ioc.ip.clone();
            }
            2 => {
                ioc.url = format!(
                    "http://cdn-{:06x}.contoso-update.example/stage{part}.bin",
                    h & 0xff_ffff
                );
                ioc.name = "Url";
                ioc.value = ioc.url.clone();
            }
            _ => {
                ioc.file = (
                    format!("stage{part}.dll"),
                    format!("C:\\ProgramData\\{:08x}", h >> 32),
                    digest[8..28].iter().map(|b| format!("{b:02x}")).collect(),
                );
                ioc.name = "Sha1";
                ioc.value = ioc.file.2.clone();
            }
        }
        ioc
    }

    /// The legacy SIEM API record (a flat detection record) `part` of version `v`; parts
    /// `0..siem_parts` exist.
    pub fn siem_record(&self, v: &AlertVersion, part: usize) -> Value {
        let ioc = self.siem_ioc(part);
        let (file_name, file_path, sha1) = if part == 0 {
            (
                "payload.exe".to_string(),
                "C:\\Users\\Public".to_string(),
                self.sha1.clone(),
            )
        } else {
            ioc.file.clone()
        };
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
            "IocName": ioc.name, "IocValue": ioc.value, "CreatorIocName": "", "CreatorIocValue": "",
            "Sha1": sha1,
            "FileName": file_name,
            "FilePath": file_path,
            "IpAddress": ioc.ip, "Url": ioc.url,
            "IoaDefinitionId": self.detector_id,
            "UserName": self.user.0,
            "AlertPart": part,
            "FullId": format!("{}:{}", self.id, ioc.unique_id),
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
            "FileHash": sha1,
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
            "IocUniqueId": ioc.unique_id
        })
    }
}

/// The indicator one SIEM record carries (empty strings where it has none).
#[derive(Debug, Clone, Default)]
struct SiemIoc {
    unique_id: String,
    name: &'static str,
    value: String,
    ip: String,
    url: String,
    /// File name, path and SHA-1.
    file: (String, String, String),
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

    #[test]
    fn siem_parts_share_the_alert_and_differ_in_their_ioc() {
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let mut a = crate::world::synth_alert("tid", 7, Some("da1_2".into()), t);
        let v = AlertVersion::first(t, t);
        let single = a.siem_record(&v, 0);
        assert_eq!(a.siem_full_ids(), vec![format!("da1_2:{}", a.sha1)]);
        assert_eq!(single["IocUniqueId"], a.sha1.as_str());

        a.siem_parts = 4;
        let records: Vec<Value> = (0..4).map(|p| a.siem_record(&v, p)).collect();
        assert_eq!(records[0], single, "part 0 is the one-part record");
        let full_ids = a.siem_full_ids();
        for (part, r) in records.iter().enumerate() {
            assert_eq!(r["AlertId"], "da1_2");
            assert_eq!(r["AlertPart"], part);
            assert_eq!(r["LastProcessedTimeUtc"], single["LastProcessedTimeUtc"]);
            let ioc = r["IocUniqueId"].as_str().expect("string");
            assert_eq!(r["FullId"], format!("da1_2:{ioc}"));
            assert_eq!(r["FullId"], full_ids[part].as_str());
        }
        let iocs: std::collections::BTreeSet<&str> = records
            .iter()
            .filter_map(|r| r["IocUniqueId"].as_str())
            .collect();
        assert_eq!(iocs.len(), 4);
        assert_eq!(records[1]["IocName"], "IpAddress");
        assert_eq!(records[1]["IpAddress"], records[1]["IocValue"]);
        assert_eq!(records[1]["FileName"], "");
        assert_eq!(records[2]["IocName"], "Url");
        assert!(
            records[2]["Url"]
                .as_str()
                .is_some_and(|u| u.starts_with("http://"))
        );
        assert_eq!(records[3]["IocName"], "Sha1");
        assert_eq!(records[3]["Sha1"].as_str().map(str::len), Some(40));
        assert_eq!(records[1]["IocUniqueId"].as_str().map(str::len), Some(44));
    }
}
