//! An OCSF event validator built from the schema's own JSON definitions (the vendored OCSF
//! 1.1.0 files of [`crate::schema_files`]): the class's attributes resolved through `extends`
//! and `$include` (event classes, objects, includes and profiles), each attribute's definition
//! merged over the dictionary's. It checks, at every level of nesting:
//!
//! - every attribute is one the class or object defines (and, for a profile's attributes, the
//!   profile is declared in `metadata.profiles`);
//! - every `required` attribute is present (profile attributes only when the profile is
//!   declared), and an object's `at_least_one` / `just_one` constraints hold;
//! - every value has its dictionary type: the JSON kind of the type's base (`string_t`,
//!   `integer_t` 32-bit, `long_t`, `float_t`, `boolean_t`, `json_t`), arrays where `is_array`,
//!   the type's `regex`, `max_len`, `range` and `values`, and nested objects recursively;
//! - enum attributes hold a defined value, and a sibling (`severity` of `severity_id`) holds its
//!   caption unless the value is 99 Other;
//! - `class_uid` is the class's (`category_uid` × 1000 + its uid), `category_uid` its category's,
//!   and `type_uid` = `class_uid` × 100 + `activity_id`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

/// Why the schema could not be loaded (a bug in the vendored files).
#[derive(Debug, thiserror::Error)]
#[error("OCSF schema: {0}")]
pub struct SchemaError(String);

#[derive(Debug, Clone, Default)]
struct Attr {
    /// A dictionary type (`string_t`, …), `object` (any object), or an object's name.
    ty: String,
    is_array: bool,
    required: bool,
    /// Enum values by their key (`"1"`) and caption.
    values: Option<BTreeMap<String, String>>,
    sibling: Option<String>,
    profile: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Def {
    attrs: BTreeMap<String, Attr>,
    at_least_one: Vec<String>,
    just_one: Vec<String>,
}

#[derive(Debug, Clone)]
struct Type {
    base: &'static str,
    regex: Option<regex_lite::Regex>,
    max_len: Option<usize>,
    range: Option<(i64, i64)>,
    values: Option<Vec<Value>>,
}

/// One event class with everything it uses, ready to validate events.
#[derive(Debug)]
pub struct Validator {
    version: String,
    class_uid: i64,
    category_uid: i64,
    class: Def,
    objects: HashMap<String, Def>,
    types: HashMap<String, Type>,
}

fn parse(files: &HashMap<&str, &str>, path: &str) -> Result<Value, SchemaError> {
    let text = files
        .get(path)
        .ok_or_else(|| SchemaError(format!("{path} is not vendored")))?;
    serde_json::from_str(text).map_err(|e| SchemaError(format!("{path}: {e}")))
}

/// Deep merge of `over` into `base` (objects merge key by key; anything else replaces).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

struct Loader<'a> {
    files: HashMap<&'a str, &'a str>,
    dictionary: Map<String, Value>,
}

impl Loader<'_> {
    /// The attribute definitions of `path` (its `$include`s first, then its own), each with the
    /// profile it came from, and its `extends`.
    fn raw_attrs(
        &self,
        path: &str,
        profile: Option<&str>,
        out: &mut Vec<(String, Value, Option<String>)>,
    ) -> Result<Value, SchemaError> {
        let doc = parse(&self.files, path)?;
        let doc_profile = (doc["meta"] == "profile")
            .then(|| doc["name"].as_str().map(str::to_owned))
            .flatten()
            .or(profile.map(str::to_owned));
        if let Some(attrs) = doc["attributes"].as_object() {
            if let Some(inc) = attrs.get("$include") {
                let list: Vec<&str> = match inc {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                for p in list {
                    self.raw_attrs(p, doc_profile.as_deref(), out)?;
                }
            }
            for (k, v) in attrs {
                if k != "$include" {
                    out.push((k.clone(), v.clone(), doc_profile.clone()));
                }
            }
        }
        Ok(doc)
    }

    /// `path` resolved through its `extends` chain (parents first; children override).
    fn resolve(
        &self,
        path: &str,
        dir: &str,
        merged: &mut BTreeMap<String, (Value, Option<String>)>,
    ) -> Result<Value, SchemaError> {
        let mut own = Vec::new();
        let doc = self.raw_attrs(path, None, &mut own)?;
        if let Some(parent) = doc["extends"].as_str() {
            let parent_path = if dir == "objects" {
                format!("objects/{parent}.json")
            } else {
                self.class_path(parent)?
            };
            self.resolve(&parent_path, dir, merged)?;
        }
        for (k, v, profile) in own {
            match merged.get_mut(&k) {
                Some((existing, p)) => {
                    merge(existing, &v);
                    // The latest definition decides: a class that defines an attribute a
                    // profile it includes also has (Finding's `device`, host profile) makes it
                    // the class's own.
                    *p = profile;
                }
                None => {
                    merged.insert(k, (v, profile));
                }
            }
        }
        Ok(doc)
    }

    fn class_path(&self, name: &str) -> Result<String, SchemaError> {
        self.files
            .keys()
            .find(|p| p.starts_with("events/") && p.ends_with(&format!("/{name}.json")))
            .map(|p| (*p).to_owned())
            .ok_or_else(|| SchemaError(format!("class {name} is not vendored")))
    }

    fn def(&self, path: &str, dir: &str) -> Result<(Def, Value), SchemaError> {
        let mut merged = BTreeMap::new();
        let doc = self.resolve(path, dir, &mut merged)?;
        let mut def = Def::default();
        for (name, (local, profile)) in merged {
            let mut full =
                self.dictionary.get(&name).cloned().ok_or_else(|| {
                    SchemaError(format!("{path}: {name} is not in the dictionary"))
                })?;
            merge(&mut full, &local);
            let values = full["enum"].as_object().map(|e| {
                e.iter()
                    .map(|(k, v)| (k.clone(), v["caption"].as_str().unwrap_or("").to_owned()))
                    .collect()
            });
            def.attrs.insert(
                name,
                Attr {
                    ty: full["type"].as_str().unwrap_or("string_t").to_owned(),
                    is_array: full["is_array"] == true,
                    required: full["requirement"] == "required",
                    values,
                    sibling: full["sibling"].as_str().map(str::to_owned),
                    profile,
                },
            );
        }
        let list = |k: &str| -> Vec<String> {
            doc["constraints"][k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        def.at_least_one = list("at_least_one");
        def.just_one = list("just_one");
        Ok((def, doc))
    }
}

fn base_of(name: &str, types: &Map<String, Value>) -> Option<&'static str> {
    let mut name = name.to_owned();
    for _ in 0..8 {
        match name.as_str() {
            "string_t" => return Some("string"),
            "integer_t" => return Some("integer"),
            "long_t" => return Some("long"),
            "float_t" => return Some("float"),
            "boolean_t" => return Some("boolean"),
            "json_t" => return Some("json"),
            _ => name = types.get(&name)?["type"].as_str()?.to_owned(),
        }
    }
    None
}

impl Validator {
    /// The validator of `class` (e.g. `detection_finding`) over the vendored OCSF 1.1.0 files.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] when a definition it needs is not vendored or does not parse.
    pub fn ocsf_1_1(class: &str) -> Result<Validator, SchemaError> {
        Validator::from_files(crate::schema_files::FILES, class)
    }

    /// The validator of `class` over `files` (path below the schema root → contents).
    ///
    /// # Errors
    ///
    /// [`SchemaError`] when a definition it needs is missing or does not parse.
    pub fn from_files(files: &[(&str, &str)], class: &str) -> Result<Validator, SchemaError> {
        let files: HashMap<&str, &str> = files.iter().copied().collect();
        let dict = parse(&files, "dictionary.json")?;
        let version = parse(&files, "version.json")?["version"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let loader = Loader {
            dictionary: dict["attributes"].as_object().cloned().unwrap_or_default(),
            files,
        };
        let raw_types = dict["types"]["attributes"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut types = HashMap::new();
        for (name, t) in &raw_types {
            let base = base_of(name, &raw_types)
                .ok_or_else(|| SchemaError(format!("type {name} has no base type")))?;
            let regex = t["regex"]
                .as_str()
                .map(|r| {
                    regex_lite::Regex::new(r)
                        .map_err(|e| SchemaError(format!("type {name}: regex: {e}")))
                })
                .transpose()?;
            types.insert(
                name.clone(),
                Type {
                    base,
                    regex,
                    max_len: t["max_len"].as_u64().map(|n| n as usize),
                    range: t["range"]
                        .as_array()
                        .and_then(|r| Some((r.first()?.as_i64()?, r.get(1)?.as_i64()?))),
                    values: t["values"].as_array().cloned(),
                },
            );
        }
        let class_path = loader.class_path(class)?;
        let (mut class_def, doc) = loader.def(&class_path, "events")?;
        // The categories of OCSF 1.1.0 (categories.json), by name: uid and caption.
        let (category_uid, category_caption) = match doc["category"].as_str().unwrap_or_default() {
            "system" => (1, "System Activity"),
            "findings" => (2, "Findings"),
            "iam" => (3, "Identity & Access Management"),
            "network" => (4, "Network Activity"),
            "discovery" => (5, "Discovery"),
            "application" => (6, "Application Activity"),
            _ => (0, "Uncategorized"),
        };
        let class_uid = category_uid * 1000 + doc["uid"].as_i64().unwrap_or(0);
        // The classification include enumerates only the base event's 0; a class's own are its
        // uid and its category's (as the schema compiler sets them).
        let caption = doc["caption"].as_str().unwrap_or_default().to_owned();
        for (attr, uid, caption) in [
            ("class_uid", class_uid, caption),
            ("category_uid", category_uid, category_caption.to_owned()),
        ] {
            if let Some(a) = class_def.attrs.get_mut(attr) {
                a.values = Some(BTreeMap::from([(uid.to_string(), caption)]));
            }
        }
        // Every object reachable from the class.
        let mut objects = HashMap::new();
        let mut todo: Vec<String> = class_def.attrs.values().map(|a| a.ty.clone()).collect();
        while let Some(ty) = todo.pop() {
            if types.contains_key(&ty) || ty == "object" || objects.contains_key(&ty) {
                continue;
            }
            let (def, _) = loader.def(&format!("objects/{ty}.json"), "objects")?;
            todo.extend(def.attrs.values().map(|a| a.ty.clone()));
            objects.insert(ty, def);
        }
        Ok(Validator {
            version,
            class_uid,
            category_uid,
            class: class_def,
            objects,
            types,
        })
    }

    /// The schema version (`1.1.0`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The class's `class_uid`.
    pub fn class_uid(&self) -> i64 {
        self.class_uid
    }

    /// Every violation in `event`, each naming the attribute's path; empty when it is valid.
    pub fn validate(&self, event: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let profiles: Vec<String> = event["metadata"]["profiles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if event["class_uid"].as_i64() != Some(self.class_uid) {
            errors.push(format!(
                "class_uid: {} is not {}",
                event["class_uid"], self.class_uid
            ));
        }
        if event["category_uid"].as_i64() != Some(self.category_uid) {
            errors.push(format!(
                "category_uid: {} is not {}",
                event["category_uid"], self.category_uid
            ));
        }
        if let (Some(t), Some(a)) = (event["type_uid"].as_i64(), event["activity_id"].as_i64())
            && t != self.class_uid * 100 + a
        {
            errors.push(format!(
                "type_uid: {t} is not class_uid × 100 + activity_id"
            ));
        }
        if event["metadata"]["version"].as_str() != Some(self.version.as_str()) {
            errors.push(format!(
                "metadata.version: {} is not {}",
                event["metadata"]["version"], self.version
            ));
        }
        self.object(&self.class, event, "", &profiles, &mut errors);
        errors
    }

    fn object(&self, def: &Def, v: &Value, path: &str, profiles: &[String], e: &mut Vec<String>) {
        let Some(obj) = v.as_object() else {
            e.push(format!("{}: {v} is not an object", display(path)));
            return;
        };
        let active = |a: &Attr| a.profile.as_ref().is_none_or(|p| profiles.contains(p));
        for (k, value) in obj {
            let at = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match def.attrs.get(k) {
                None => e.push(format!("{at}: not an attribute of this class or object")),
                Some(a) if !active(a) => e.push(format!(
                    "{at}: belongs to the {} profile, which metadata.profiles does not declare",
                    a.profile.as_deref().unwrap_or_default()
                )),
                Some(a) => {
                    self.attr(a, value, &at, profiles, e);
                    if let (Some(values), Some(sibling)) = (&a.values, &a.sibling)
                        && let Some(caption) = values.get(&value.to_string())
                        && value.as_i64() != Some(99)
                        && let Some(given) = obj.get(sibling)
                        && given.as_str() != Some(caption.as_str())
                    {
                        e.push(format!(
                            "{}: {given} is not the caption of {k} {value} ({caption:?})",
                            if path.is_empty() {
                                sibling.clone()
                            } else {
                                format!("{path}.{sibling}")
                            }
                        ));
                    }
                }
            }
        }
        for (k, a) in &def.attrs {
            if a.required && active(a) && !obj.contains_key(k) {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                e.push(format!("{at}: required, missing"));
            }
        }
        if !def.at_least_one.is_empty() && !def.at_least_one.iter().any(|k| obj.contains_key(k)) {
            e.push(format!(
                "{}: needs at least one of {:?}",
                display(path),
                def.at_least_one
            ));
        }
        if !def.just_one.is_empty()
            && def.just_one.iter().filter(|k| obj.contains_key(*k)).count() != 1
        {
            e.push(format!(
                "{}: needs exactly one of {:?}",
                display(path),
                def.just_one
            ));
        }
    }

    fn attr(&self, a: &Attr, v: &Value, path: &str, profiles: &[String], e: &mut Vec<String>) {
        if a.is_array {
            match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.one(a, item, &format!("{path}[{i}]"), profiles, e);
                    }
                }
                None => e.push(format!("{path}: {v} is not an array")),
            }
        } else {
            self.one(a, v, path, profiles, e);
        }
    }

    fn one(&self, a: &Attr, v: &Value, path: &str, profiles: &[String], e: &mut Vec<String>) {
        if a.ty == "object" {
            if !v.is_object() {
                e.push(format!("{path}: {v} is not an object"));
            }
            return;
        }
        if let Some(def) = self.objects.get(&a.ty) {
            self.object(def, v, path, profiles, e);
            return;
        }
        let Some(t) = self.types.get(&a.ty) else {
            e.push(format!("{path}: unknown type {}", a.ty));
            return;
        };
        let kind_ok = match t.base {
            "string" => v.is_string(),
            "integer" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            "long" => v.is_i64() || v.is_u64(),
            "float" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => true,
        };
        if !kind_ok {
            e.push(format!("{path}: {v} is not of type {} ({})", a.ty, t.base));
            return;
        }
        if let Some(s) = v.as_str() {
            if let Some(max) = t.max_len
                && s.chars().count() > max
            {
                e.push(format!("{path}: longer than {max} characters ({})", a.ty));
            }
            if let Some(re) = &t.regex
                && !re.is_match(s)
            {
                e.push(format!("{path}: {s:?} does not match {}'s pattern", a.ty));
            }
        }
        if let (Some((lo, hi)), Some(n)) = (t.range, v.as_i64())
            && (n < lo || n > hi)
        {
            e.push(format!("{path}: {n} is outside {lo}..={hi}"));
        }
        if let Some(values) = &t.values
            && !values.contains(v)
        {
            e.push(format!("{path}: {v} is not one of {values:?}"));
        }
        if let Some(values) = &a.values {
            let key = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !values.contains_key(&key) {
                e.push(format!(
                    "{path}: {v} is not a defined value ({:?})",
                    values.keys().collect::<Vec<_>>()
                ));
            }
        }
    }
}

fn display(path: &str) -> &str {
    if path.is_empty() { "the event" } else { path }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid() -> Value {
        json!({
            "class_uid": 2004, "class_name": "Detection Finding",
            "category_uid": 2, "category_name": "Findings",
            "activity_id": 1, "activity_name": "Create",
            "type_uid": 200401, "type_name": "Detection Finding: Create",
            "time": 1_700_000_000_000_i64, "severity_id": 3, "severity": "Medium",
            "metadata": {"version": "1.1.0", "product": {"name": "Defender", "vendor_name": "Microsoft"}, "profiles": ["cloud"]},
            "cloud": {"provider": "Microsoft"},
            "finding_info": {"uid": "a1", "title": "t"},
        })
    }

    fn errors(v: &Value) -> Vec<String> {
        Validator::ocsf_1_1("detection_finding")
            .expect("schema")
            .validate(v)
    }

    #[test]
    fn the_class_is_2004_of_ocsf_1_1_0() {
        let v = Validator::ocsf_1_1("detection_finding").expect("schema");
        assert_eq!((v.class_uid(), v.version()), (2004, "1.1.0"));
        assert_eq!(errors(&valid()), Vec::<String>::new());
    }

    #[test]
    fn each_kind_of_violation_is_reported_with_its_path() {
        let cases: [(&str, Value, &str); 10] = [
            (
                "/finding_info/uid",
                Value::Null,
                "finding_info.uid: required",
            ),
            (
                "/severity_id",
                json!(7),
                "severity_id: 7 is not a defined value",
            ),
            (
                "/severity",
                json!("High"),
                "is not the caption of severity_id",
            ),
            (
                "/time",
                json!("yesterday"),
                "time: \"yesterday\" is not of type timestamp_t",
            ),
            (
                "/finding_info/bogus",
                json!(1),
                "finding_info.bogus: not an attribute",
            ),
            (
                "/evidences",
                json!([{"dst_endpoint": {"ip": "999.1.1.1"}}]),
                "does not match ip_t",
            ),
            ("/evidences", json!([{}]), "needs at least one of"),
            (
                "/metadata/profiles",
                json!([]),
                "cloud: belongs to the cloud profile",
            ),
            ("/type_uid", json!(200402), "type_uid"),
            (
                "/finding_info/attacks",
                json!([{"technique": {"uid": 5}}]),
                "is not of type string_t",
            ),
        ];
        for (pointer, value, says) in cases {
            let mut v = valid();
            let (parent, key) = pointer.rsplit_once('/').expect("pointer");
            let target = if parent.is_empty() {
                &mut v
            } else {
                v.pointer_mut(parent).expect("parent")
            };
            if value.is_null() {
                target.as_object_mut().expect("object").remove(key);
            } else {
                target[key] = value;
            }
            let e = errors(&v);
            assert!(e.iter().any(|m| m.contains(says)), "{pointer}: {e:?}");
        }
    }
}
