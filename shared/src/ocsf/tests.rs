//! The mapping on the documented examples of each API (reference §1.6, §2.5, §3.3); their
//! validation against the OCSF schema is in the integration tests (`tests/…/ocsf.rs`).

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::domain::TenantId;

pub(crate) fn record(api: AlertApi, change: Change, alert: Value) -> AlertRecord {
    let tenant = TenantId::parse("b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c").expect("tid");
    let version = "2021-05-02T14:19:01.3266667Z";
    AlertRecord {
        schema: "mssp.alert/1".into(),
        tenant_id: tenant.clone(),
        tenant_name: "Contoso".into(),
        source: api,
        change,
        first_seen: false,
        late: true,
        delay_s: Some(7200),
        alert_id: "da637551227677560813_-961444813".into(),
        alert_version: version.into(),
        dedup_key: format!("{tenant}:da637551227677560813_-961444813:{version}"),
        fetched_at: Utc
            .with_ymd_and_hms(2021, 5, 2, 16, 19, 1)
            .single()
            .expect("time"),
        alert: serde_json::value::to_raw_value(&alert)
            .expect("json")
            .into(),
    }
}

/// Graph's documented example (reference §3.3), with a process, a user, an IP, a URL and a
/// registry key evidence added.
pub(crate) fn graph_alert(status: &str) -> Value {
    let mut v: Value = serde_json::from_str(
        r##"{
        "@odata.type": "#microsoft.graph.security.alert",
        "id": "da637551227677560813_-961444813",
        "providerAlertId": "da637551227677560813_-961444813",
        "incidentId": "28282", "status": "STATUS", "severity": "low",
        "classification": "unknown", "determination": "unknown",
        "serviceSource": "microsoftDefenderForEndpoint", "detectionSource": "antivirus",
        "detectorId": "e0da400f-affd-43ef-b1d5-afc2eb6f2756",
        "tenantId": "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
        "title": "Suspicious execution of hidden file",
        "description": "A hidden file has been launched.",
        "recommendedActions": "...", "category": "DefenseEvasion", "assignedTo": null,
        "alertWebUrl": "https://security.microsoft.com/alerts/da637551227677560813_-961444813?tid=b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
        "incidentWebUrl": "https://security.microsoft.com/incidents/28282?tid=b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c",
        "actorDisplayName": null, "threatDisplayName": null, "threatFamilyName": null,
        "mitreTechniques": ["T1564.001", "T1059"],
        "createdDateTime": "2021-04-27T12:19:27.7211305Z",
        "lastUpdateDateTime": "2021-05-02T14:19:01.3266667Z",
        "resolvedDateTime": null,
        "firstActivityDateTime": "2021-04-26T07:45:50.116Z",
        "lastActivityDateTime": "2021-05-02T07:56:58.222Z",
        "comments": [],
        "evidence": [
            {"@odata.type": "#microsoft.graph.security.fileEvidence", "createdDateTime": "2021-04-27T12:19:27.7211305Z", "verdict": "unknown", "remediationStatus": "none", "remediationStatusDetails": null, "detectionStatus": "detected", "mdeDeviceId": "73e7e2de709dff64ef64b1d0c30e67fab63279db", "roles": [], "detailedRoles": ["Referred in command line"], "tags": [], "fileDetails": {"sha1": "5f1e8acedc065031aad553b710838eb366cfee9a", "sha256": "8963a19fb992ad9a76576c5638fd68292cffb9aaac29eb8285f9abf6196a7dec", "fileName": "MsSense.exe", "filePath": "C:\\Program Files\\temp", "fileSize": 6136392, "filePublisher": "Microsoft Corporation", "signer": null, "issuer": null}},
            {"@odata.type": "#microsoft.graph.security.deviceEvidence", "mdeDeviceId": "73e7e2de709dff64ef64b1d0c30e67fab63279db", "deviceDnsName": "tempDns.contoso.com", "osPlatform": "Windows10", "osBuild": 22424, "rbacGroupName": "UnassignedGroup", "loggedOnUsers": [{"accountName": "tempUser", "domainName": "CONTOSO"}], "ipInterfaces": ["1.1.1.1"]},
            {"@odata.type": "#microsoft.graph.security.processEvidence", "processId": 4780, "parentProcessId": 668, "processCommandLine": "\"MsSense.exe\"", "processCreationDateTime": "2021-08-12T12:43:19.0772577Z", "parentProcessCreationDateTime": "2021-08-12T07:39:09.0909239Z", "imageFile": {"fileName": "MsSense.exe", "filePath": "C:\\Program Files\\temp", "sha1": "5f1e8acedc065031aad553b710838eb366cfee9a"}, "parentProcessImageFile": {"fileName": "services.exe", "filePath": "C:\\Windows\\System32"}, "userAccount": {"accountName": "SYSTEM", "domainName": "NT AUTHORITY", "userSid": "S-1-5-18", "azureAdUserId": null, "userPrincipalName": null}},
            {"@odata.type": "#microsoft.graph.security.userEvidence", "userAccount": {"accountName": "jdoe", "domainName": "CONTOSO", "userSid": "S-1-5-21-1", "azureAdUserId": "a1b2", "userPrincipalName": "jdoe@contoso.com", "displayName": "J Doe"}},
            {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "203.0.113.7", "countryLetterCode": "NL"},
            {"@odata.type": "#microsoft.graph.security.urlEvidence", "url": "http://malicious.example/x"},
            {"@odata.type": "#microsoft.graph.security.registryKeyEvidence", "registryKey": "SYSTEM\\X", "registryHive": "HKEY_LOCAL_MACHINE"}
        ],
        "systemTags": ["Defender Experts"]
    }"##,
    )
    .expect("JSON");
    v["status"] = json!(status);
    v
}

/// The OCSF rendering of Graph's documented example, in progress.
fn graph_finding() -> Value {
    map(&record(
        AlertApi::Graph,
        Change::Updated,
        graph_alert("inProgress"),
    ))
}

#[test]
fn a_graph_alert_is_a_detection_finding_with_its_finding_and_metadata_placed() {
    let e = graph_finding();
    assert_eq!(e["class_uid"], 2004);
    assert_eq!(e["category_uid"], 2);
    assert_eq!(
        (e["activity_id"].clone(), e["type_uid"].clone()),
        (json!(2), json!(200402))
    );
    assert_eq!(
        (e["severity_id"].clone(), e["severity"].clone()),
        (json!(2), json!("Low"))
    );
    assert_eq!(
        (e["status_id"].clone(), e["status"].clone()),
        (json!(2), json!("In Progress"))
    );
    let info = &e["finding_info"];
    assert_eq!(info["uid"], "da637551227677560813_-961444813");
    assert_eq!(info["types"], json!(["DefenseEvasion"]));
    assert_eq!(info["analytic"]["name"], "antivirus");
    assert_eq!(info["created_time"], 1_619_525_967_721_i64);
    assert_eq!(
        info["attacks"],
        json!([{"technique": {"uid": "T1564"}, "sub_technique": {"uid": "T1564.001"}}, {"technique": {"uid": "T1059"}}])
    );
    let meta = &e["metadata"];
    assert_eq!(meta["version"], "1.1.0");
    assert_eq!(
        meta["uid"],
        record(AlertApi::Graph, Change::Updated, json!({})).dedup_key
    );
    assert_eq!(meta["original_time"], "2021-05-02T14:19:01.3266667Z");
    assert_eq!(meta["product"]["name"], "Microsoft Defender for Endpoint");
    assert_eq!(meta["labels"], json!(["late"]));
    assert_eq!(
        e["cloud"]["account"]["uid"],
        "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"
    );
}

#[test]
fn a_graph_alerts_evidence_and_device_are_placed_and_the_rest_kept() {
    let e = graph_finding();
    let ev = e["evidences"].as_array().expect("evidences");
    assert_eq!(
        ev.len(),
        6,
        "the registry key has no OCSF 1.1.0 evidence attribute: {ev:?}"
    );
    assert_eq!(ev[0]["file"]["hashes"][0]["algorithm_id"], 2);
    assert_eq!(
        ev[0]["file"]["path"],
        "C:\\Program Files\\temp\\MsSense.exe"
    );
    assert_eq!(ev[1]["dst_endpoint"]["hostname"], "tempDns.contoso.com");
    assert_eq!(ev[2]["process"]["parent_process"]["pid"], 668);
    assert_eq!(ev[2]["process"]["user"]["uid"], "S-1-5-18");
    assert_eq!(ev[3]["actor"]["user"]["uid_alt"], "jdoe@contoso.com");
    assert_eq!(ev[4]["dst_endpoint"]["ip"], "203.0.113.7");
    assert_eq!(ev[5]["data"]["url"], "http://malicious.example/x");
    assert_eq!(
        e["device"]["uid"],
        "73e7e2de709dff64ef64b1d0c30e67fab63279db"
    );
    let u = &e["unmapped"];
    for kept in [
        "incidentId",
        "classification",
        "recommendedActions",
        "incidentWebUrl",
        "systemTags",
        "tenantId",
        "providerAlertId",
    ] {
        assert!(u.get(kept).is_some(), "{kept} kept in unmapped: {u}");
    }
    assert!(u.get("assignedTo").is_none(), "null carries nothing");
    let kinds: Vec<&str> = u["evidence"]
        .as_array()
        .expect("evidence rest")
        .iter()
        .filter_map(|x| x["type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"#microsoft.graph.security.registryKeyEvidence"),
        "{kinds:?}"
    );
    assert_eq!(u["mssp"]["delay_s"], 7200);
}

#[test]
fn activity_follows_our_labels_and_the_alerts_status() {
    let a = |change, status: &str| {
        map(&record(AlertApi::Graph, change, graph_alert(status)))["activity_id"].clone()
    };
    assert_eq!(a(Change::Created, "new"), 1);
    assert_eq!(a(Change::Created, "resolved"), 1);
    assert_eq!(a(Change::Updated, "new"), 2);
    assert_eq!(a(Change::Updated, "resolved"), 3);
    let other = map(&record(
        AlertApi::Graph,
        Change::Updated,
        graph_alert("unknownFutureValue"),
    ));
    assert_eq!(
        (other["status_id"].clone(), other["status"].clone()),
        (json!(99), json!("unknownFutureValue"))
    );
}

#[test]
fn an_mde_record_maps_its_own_fields() {
    let mde = json!({
        "id": "da637308392288907382_-880718168", "incidentId": 7587, "severity": "Medium",
        "status": "Resolved", "detectionSource": "WindowsDefenderAv", "category": "SuspiciousActivity",
        "title": "Suspicious 'Meterpreter' behavior was detected", "description": "d",
        "alertCreationTime": "2020-07-20T10:53:48.7657932Z", "firstEventTime": "2020-07-20T10:52:17.6654369Z",
        "lastEventTime": "2020-07-20T10:52:18.1362905Z", "lastUpdateTime": "2020-07-20T10:53:50.19Z",
        "machineId": "12ee6dd8c833c8a052ea231ec1b19adaf497b625", "computerDnsName": "temp123.middleeast.corp.microsoft.com",
        "mitreTechniques": ["T1064"], "relatedUser": {"userName": "temp123", "domainName": "DOMAIN"},
        "evidence": [{"entityType": "Process", "sha1": "ff836cfb1af40252bd2a2ea843032e99a5b262ed", "fileName": "rundll32.exe", "filePath": "C:\\Windows\\SysWOW64", "processId": 3276, "processCommandLine": "rundll32.exe c:\\temp\\suspicious.dll,RepeatAfterMe", "processCreationTime": "2021-01-26T20:31:32.9581596Z", "parentProcessId": 8420, "parentProcessFileName": "rundll32.exe", "parentProcessFilePath": "C:\\Windows\\System32", "ipAddress": null, "detectionStatus": "Detected"}]
    });
    let e = map(&record(AlertApi::Mde, Change::Updated, mde));
    assert_eq!(
        (
            e["activity_id"].clone(),
            e["status_id"].clone(),
            e["severity_id"].clone()
        ),
        (json!(3), json!(4), json!(3))
    );
    assert_eq!(
        e["device"]["hostname"],
        "temp123.middleeast.corp.microsoft.com"
    );
    assert_eq!(e["evidences"][0]["process"]["pid"], 3276);
    assert_eq!(
        e["evidences"][0]["process"]["parent_process"]["file"]["name"],
        "rundll32.exe"
    );
    assert_eq!(e["unmapped"]["relatedUser"]["userName"], "temp123");
}

#[test]
fn a_siem_record_maps_its_own_fields() {
    let siem = json!({
        "AlertTime": "2020-09-30T14:09:20.35743Z", "ComputerDnsName": "mymachine1.domain.com",
        "AlertTitle": "Suspicious File Activity", "Category": "Malware", "Severity": "High",
        "AlertId": "da637370718981685665_16349121", "Actor": "", "IocName": "", "Sha1": "aabbccddee1122334455aabbccddee1122334455",
        "FileName": "cmdParent.exe", "FilePath": "C:\\WINDOWS\\SysWOW64\\boo3\\qwerty", "IpAddress": "10.1.2.3",
        "Url": "http://x.example/a", "IoaDefinitionId": "b20af1d2-5990-4672-87f1-acc2a8ff7725", "UserName": "liz",
        "UserDomain": "contoso", "AlertPart": 0, "FullId": "da637370718981685665_16349121:R4x=",
        "LastProcessedTimeUtc": "2020-09-30T14:11:44.0779765Z", "RemediationIsSuccess": null, "Source": "EDR",
        "Md5": "854b85cbff2752fcb88606bca76f83c6", "MachineDomain": "domain.com", "MachineName": "mymachine1",
        "FileHash": "aabbccddee1122334455aabbccddee1122334455", "DeviceID": "deadbeef000040830ee54503926f556dcaf82bb0",
        "LinkToMTP": "https://security.microsoft.com/alert/da637370718981685665_16349121", "ReportID": 1053729833
    });
    let e = map(&record(AlertApi::Siem, Change::Created, siem));
    assert_eq!(
        (e["activity_id"].clone(), e["severity_id"].clone()),
        (json!(1), json!(4))
    );
    assert!(e.get("status_id").is_none(), "a SIEM record has no status");
    assert_eq!(e["finding_info"]["uid"], "da637370718981685665_16349121");
    assert_eq!(
        e["finding_info"]["first_seen_time"],
        e["finding_info"]["created_time"]
    );
    let ev = e["evidences"].as_array().expect("evidences");
    assert_eq!(ev.len(), 5, "{ev:?}");
    assert_eq!(ev[1]["file"]["hashes"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        e["unmapped"]["FullId"],
        "da637370718981685665_16349121:R4x="
    );
    assert_eq!(e["unmapped"]["AlertPart"], 0);
    assert!(
        e["unmapped"].get("FileHash").is_none(),
        "FileHash equals Sha1: mapped"
    );
    assert!(e["unmapped"].get("Actor").is_none(), "\"\" carries nothing");
}
