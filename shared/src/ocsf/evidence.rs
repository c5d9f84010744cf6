//! The alert's evidence as OCSF `evidences` (MAPPING.md, "Evidence"): Graph `evidence[]` by
//! `@odata.type`, MDE `evidence[]` by `entityType`, and the SIEM record's flat fields. What an
//! item has beyond what is mapped goes to `unmapped.evidence[]` with the item's index and type.

use serde_json::{Map, Value, json};

use super::{Obj, Source};
use crate::domain::AlertApi;

/// What the evidence became.
#[derive(Debug, Default)]
pub(crate) struct Evidences {
    /// `evidences[]`.
    pub evidences: Vec<Value>,
    /// The rest of each item: `{"index", "type", …fields}`.
    pub unmapped: Vec<Value>,
    /// The first device, for the finding's `device`.
    pub device: Option<Obj>,
}

impl Evidences {
    fn push(&mut self, evidence: Obj) {
        if !evidence.is_empty() {
            self.evidences.push(evidence.into_value());
        }
    }

    fn rest(&mut self, index: Option<usize>, kind: &str, rest: Map<String, Value>) {
        if rest.is_empty() {
            return;
        }
        let mut entry = Map::new();
        if let Some(i) = index {
            entry.insert("index".into(), json!(i));
        }
        entry.insert("type".into(), json!(kind));
        entry.extend(rest);
        self.unmapped.push(Value::Object(entry));
    }
}

/// A host name OCSF's `hostname_t` accepts (labels of letters, digits and inner hyphens).
fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Sets `hostname` when `name` is a host name, else `name`.
fn host(o: &mut Obj, name: Option<String>) {
    if let Some(n) = name {
        if is_hostname(&n) {
            o.set("hostname", n);
        } else {
            o.set("name", n);
        }
    }
}

fn ip(o: &mut Obj, addr: Option<String>) -> Option<String> {
    let a = addr?;
    if a.trim().parse::<std::net::IpAddr>().is_ok() {
        o.set("ip", a.trim().to_owned());
        None
    } else {
        Some(a)
    }
}

fn os(platform: Option<String>) -> Option<Value> {
    let name = platform?;
    let lower = name.to_ascii_lowercase();
    let (id, caption) = if lower.starts_with("windows") {
        (100, "Windows")
    } else if lower.starts_with("linux") || lower.starts_with("ubuntu") {
        (200, "Linux")
    } else if lower.starts_with("android") {
        (201, "Android")
    } else if lower.starts_with("mac") {
        (300, "macOS")
    } else if lower.starts_with("ios") {
        (301, "iOS")
    } else {
        (99, "Other")
    };
    Some(json!({"name": name, "type_id": id, "type": caption}))
}

/// A `device` (the affected host) and the same as a `dst_endpoint`-shaped endpoint.
fn device(hostname: Option<String>, uid: Option<String>, os_platform: Option<String>) -> Obj {
    let mut d = Obj::new();
    host(&mut d, hostname);
    d.set("uid", uid);
    if let Some(os) = os(os_platform) {
        d.set("os", os);
    }
    d
}

fn as_device(endpoint: &Obj) -> Obj {
    let mut d = Obj(endpoint.0.clone());
    d.set("type_id", 0).set("type", "Unknown");
    d
}

fn hashes(md5: Option<String>, sha1: Option<String>, sha256: Option<String>) -> Value {
    let mut out = Vec::new();
    for (id, caption, value) in [(1, "MD5", md5), (2, "SHA-1", sha1), (3, "SHA-256", sha256)] {
        if let Some(v) = value {
            out.push(json!({"algorithm_id": id, "algorithm": caption, "value": v}));
        }
    }
    Value::Array(out)
}

/// An OCSF `file` from a name, a folder and hashes; `None` without a name (OCSF requires one).
fn file(
    name: Option<String>,
    folder: Option<String>,
    hashes: Value,
    size: Option<i64>,
) -> Option<Obj> {
    let name = name?;
    let mut f = Obj::new();
    if let Some(folder) = &folder {
        let sep = if folder.contains('\\') { '\\' } else { '/' };
        f.set(
            "path",
            format!("{}{sep}{name}", folder.trim_end_matches(['\\', '/'])),
        );
    }
    f.set("name", name)
        .set("parent_folder", folder)
        .set("hashes", hashes)
        .set("size", size)
        .set("type_id", 1)
        .set("type", "Regular File");
    Some(f)
}

/// A Graph `fileDetails` object as an OCSF `file`, and what is left of it.
fn graph_file(details: Option<Value>) -> (Option<Obj>, Map<String, Value>) {
    let Some(details) = details else {
        return (None, Map::new());
    };
    let mut s = Source::of(&details);
    let name = s.str("fileName");
    let hashes = hashes(s.str("md5"), s.str("sha1"), s.str("sha256"));
    let f = file(name, s.str("filePath"), hashes, s.int("fileSize"));
    if f.is_none() {
        return (None, Source::of(&details).rest());
    }
    (f, s.rest())
}

/// A Graph `userAccount` as an OCSF `user`, and what is left of it.
fn graph_user(account: Option<Value>) -> (Option<Obj>, Map<String, Value>) {
    let Some(account) = account else {
        return (None, Map::new());
    };
    let mut s = Source::of(&account);
    let mut u = Obj::new();
    u.set("name", s.str("accountName"))
        .set("domain", s.str("domainName"))
        .set("uid", s.str("userSid").or_else(|| s.str("azureAdUserId")))
        .set("full_name", s.str("displayName"));
    if let Some(upn) = s.str("userPrincipalName") {
        u.set("uid_alt", upn);
    }
    if !(u.has("name") || u.has("uid")) {
        return (None, Source::of(&account).rest());
    }
    (Some(u), s.rest())
}

fn with_rest(rest: &mut Map<String, Value>, key: &str, left: Map<String, Value>) {
    if !left.is_empty() {
        rest.insert(key.to_owned(), Value::Object(left));
    }
}

/// Graph or MDE `evidence[]`.
pub(crate) fn items(api: AlertApi, list: Option<Value>) -> Evidences {
    let mut out = Evidences::default();
    let Some(Value::Array(items)) = list else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        match api {
            AlertApi::Graph => graph_item(&mut out, i, item),
            _ => mde_item(&mut out, i, item),
        }
    }
    out
}

/// One evidence item being mapped: what is left of the source item, the OCSF evidence, and
/// what was mapped but cannot stand in OCSF (it joins the item's rest in `unmapped.evidence[]`).
struct Item {
    s: Source,
    e: Obj,
    extra: Map<String, Value>,
}

impl Item {
    fn of(item: &Value) -> Self {
        Item {
            s: Source::of(item),
            e: Obj::new(),
            extra: Map::new(),
        }
    }

    /// The affected host as `dst_endpoint`; the first one is also the finding's `device`.
    fn device(&mut self, out: &mut Evidences, mut d: Obj) {
        if !d.is_empty() {
            if out.device.is_none() {
                out.device = Some(as_device(&d));
            }
            d.set("type", "Device");
            self.e.set_obj("dst_endpoint", d);
        }
    }

    /// A process with its image file, its parent (and the parent's file) and its user.
    fn process(
        &mut self,
        mut process: Obj,
        file: Option<Obj>,
        (mut parent, parent_file): (Obj, Option<Obj>),
        user: Option<Obj>,
    ) {
        if let Some(f) = file {
            process.set_obj("file", f);
        }
        if let Some(pf) = parent_file {
            parent.set_obj("file", pf);
        }
        let extra = &mut self.extra;
        place_with_pid(
            &mut process,
            "parent_process",
            parent,
            extra,
            "parentProcess",
        );
        if let Some(u) = user {
            process.set_obj("user", u);
        }
        place_with_pid(&mut self.e, "process", process, extra, "process");
    }

    fn actor(&mut self, user: Option<Obj>) {
        if let Some(u) = user {
            self.e.set("actor", json!({"user": u.into_value()}));
        }
    }

    /// `ipAddress` as `dst_endpoint.ip`; a value that is no IP address stays unmapped.
    fn ip(&mut self) {
        let mut ep = Obj::new();
        if let Some(bad) = ip(&mut ep, self.s.str("ipAddress")) {
            self.extra.insert("ipAddress".into(), json!(bad));
        }
        if !ep.is_empty() {
            self.e.set_obj("dst_endpoint", ep);
        }
    }

    fn url(&mut self) {
        if let Some(url) = self.s.str("url") {
            self.e.set("data", json!({ "url": url }));
        }
    }

    /// Pushes the evidence, and the rest of the item under its index and type.
    fn finish(self, out: &mut Evidences, i: usize, kind: &str) {
        let mut rest = self.s.rest();
        rest.extend(self.extra);
        out.push(self.e);
        out.rest(Some(i), kind, rest);
    }
}

/// Places `obj` at `key` of `into` when it has a `pid` (OCSF requires one); else it stays
/// unmapped under `unmapped_key`.
fn place_with_pid(
    into: &mut Obj,
    key: &str,
    obj: Obj,
    extra: &mut Map<String, Value>,
    unmapped_key: &str,
) {
    if obj.has("pid") {
        into.set_obj(key, obj);
    } else if !obj.is_empty() {
        extra.insert(unmapped_key.into(), obj.into_value());
    }
}

/// A process's `pid`, `cmd_line` and `created_time`, and its parent's `pid` and `created_time`,
/// from the API's field names.
fn pids(s: &mut Source, created: &str, parent_created: &str) -> (Obj, Obj) {
    let mut p = Obj::new();
    p.set("pid", s.int("processId"))
        .set("cmd_line", s.str("processCommandLine"))
        .set("created_time", s.time(created));
    let mut parent = Obj::new();
    parent
        .set("pid", s.int("parentProcessId"))
        .set("created_time", s.time(parent_created));
    (p, parent)
}

fn graph_item(out: &mut Evidences, i: usize, item: &Value) {
    let mut it = Item::of(item);
    let kind = it.s.str("@odata.type").unwrap_or_default();
    match kind.rsplit('.').next().unwrap_or_default() {
        "deviceEvidence" => {
            let d = device(
                it.s.str("deviceDnsName"),
                it.s.str("mdeDeviceId"),
                it.s.str("osPlatform"),
            );
            it.device(out, d);
        }
        "fileEvidence" => {
            let f = graph_file_of(&mut it, "fileDetails");
            if let Some(f) = f {
                it.e.set_obj("file", f);
            }
        }
        "processEvidence" => {
            let (process, parent) = pids(
                &mut it.s,
                "processCreationDateTime",
                "parentProcessCreationDateTime",
            );
            let image = graph_file_of(&mut it, "imageFile");
            let parent_file = graph_file_of(&mut it, "parentProcessImageFile");
            let user = graph_user_of(&mut it);
            it.process(process, image, (parent, parent_file), user);
        }
        "userEvidence" => {
            let user = graph_user_of(&mut it);
            it.actor(user);
        }
        "ipEvidence" => it.ip(),
        "urlEvidence" => it.url(),
        _ => {}
    }
    it.finish(out, i, &kind);
}

/// The Graph `fileDetails`-shaped object at `key` as an OCSF `file`; the rest of it stays.
fn graph_file_of(it: &mut Item, key: &str) -> Option<Obj> {
    let (f, left) = graph_file(it.s.take(key));
    with_rest(&mut it.extra, key, left);
    f
}

/// The Graph `userAccount` as an OCSF `user`; the rest of it stays.
fn graph_user_of(it: &mut Item) -> Option<Obj> {
    let (u, left) = graph_user(it.s.take("userAccount"));
    with_rest(&mut it.extra, "userAccount", left);
    u
}

/// An MDE evidence item's flat user fields as an OCSF `user` (it needs a name or a uid).
fn mde_user(s: &mut Source) -> Option<Obj> {
    let mut u = Obj::new();
    u.set("name", s.str("accountName"))
        .set("domain", s.str("domainName"))
        .set("uid", s.str("userSid").or_else(|| s.str("aadUserId")))
        .set("uid_alt", s.str("userPrincipalName"));
    (u.has("name") || u.has("uid")).then_some(u)
}

/// An MDE evidence item's own file (`fileName`, `filePath`, `sha1`, `sha256`).
fn mde_file(s: &mut Source) -> Option<Obj> {
    let h = hashes(None, s.str("sha1"), s.str("sha256"));
    file(s.str("fileName"), s.str("filePath"), h, None)
}

fn mde_item(out: &mut Evidences, i: usize, item: &Value) {
    let mut it = Item::of(item);
    let kind = it.s.str("entityType").unwrap_or_default();
    match kind.as_str() {
        "File" => {
            if let Some(f) = mde_file(&mut it.s) {
                it.e.set_obj("file", f);
            }
        }
        "Process" => {
            let image = mde_file(&mut it.s);
            let (process, parent) = pids(
                &mut it.s,
                "processCreationTime",
                "parentProcessCreationTime",
            );
            let parent_file = file(
                it.s.str("parentProcessFileName"),
                it.s.str("parentProcessFilePath"),
                Value::Null,
                None,
            );
            let user = mde_user(&mut it.s);
            it.process(process, image, (parent, parent_file), user);
        }
        "User" => {
            let user = mde_user(&mut it.s);
            it.actor(user);
        }
        "Ip" => it.ip(),
        "Url" => it.url(),
        _ => {}
    }
    it.finish(out, i, &kind);
}

/// The MDE alert's own device fields (`computerDnsName`, `machineId`) as the finding's `device`.
pub(crate) fn mde_device(src: &mut Source) -> Option<Obj> {
    let d = device(src.str("computerDnsName"), src.str("machineId"), None);
    (!d.is_empty()).then(|| as_device(&d))
}

/// A SIEM record's flat fields: a device, a file, a user, an IP address and a URL.
pub(crate) fn siem(src: &mut Source) -> Evidences {
    let mut out = Evidences::default();
    let mut d = device(src.str("ComputerDnsName"), src.str("DeviceID"), None);
    d.set("domain", src.str("MachineDomain"));
    if let Some(m) = src.str("MachineName") {
        d.set("name", m);
    }
    if !d.is_empty() {
        out.device = Some(as_device(&d));
        d.set("type", "Device");
        let mut e = Obj::new();
        e.set_obj("dst_endpoint", d);
        out.push(e);
    }
    let sha1 = src.str("Sha1");
    if src.0.get("FileHash").and_then(Value::as_str) == sha1.as_deref() {
        src.0.remove("FileHash");
    }
    let h = hashes(src.str("Md5"), sha1, src.str("Sha256"));
    if let Some(f) = file(src.str("FileName"), src.str("FilePath"), h.clone(), None) {
        let mut e = Obj::new();
        e.set_obj("file", f);
        out.push(e);
    } else if let Value::Array(hs) = h
        && !hs.is_empty()
    {
        // Hashes without a file name: OCSF's file needs a name, so they stay unmapped.
        out.rest(
            None,
            "file",
            Map::from_iter([("hashes".to_owned(), Value::Array(hs))]),
        );
    }
    let mut u = Obj::new();
    u.set("name", src.str("UserName"))
        .set("domain", src.str("UserDomain"));
    if u.has("name") {
        let mut e = Obj::new();
        e.set("actor", json!({"user": u.into_value()}));
        out.push(e);
    } else if !u.is_empty() {
        out.rest(None, "user", u.0);
    }
    let mut ep = Obj::new();
    if let Some(bad) = ip(&mut ep, src.str("IpAddress")) {
        src.0.insert("IpAddress".into(), json!(bad));
    }
    if !ep.is_empty() {
        let mut e = Obj::new();
        e.set_obj("dst_endpoint", ep);
        out.push(e);
    }
    if let Some(url) = src.str("Url") {
        let mut e = Obj::new();
        e.set("data", json!({ "url": url }));
        out.push(e);
    }
    out
}
