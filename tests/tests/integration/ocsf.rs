//! OCSF: every record rendered as an OCSF Detection Finding validates against the vendored OCSF
//! 1.1.0 definitions (`lake::schema::Validator`), and the lake's Parquet files, read back with
//! the parquet crate's row reader (independent of the Arrow path the lake crate writes with),
//! hold the same events. The chaos test calls [`check_delivered`] on everything it delivered;
//! the demo, `mssp fetch --format ocsf` and the moto end-to-end run use the rest.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use lake::schema::Validator;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::{Map, Value};
use shared::record::AlertRecord;

/// The validator of Detection Finding, OCSF 1.1.0.
pub static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
    Validator::ocsf_1_1("detection_finding").expect("the vendored OCSF 1.1.0 schema loads")
});

/// Panics naming the first invalid events (by `metadata.uid`); returns how many were checked.
pub fn validate_all(events: &[Value]) -> usize {
    let invalid: Vec<String> = events
        .iter()
        .filter_map(|e| {
            let errors = VALIDATOR.validate(e);
            (!errors.is_empty()).then(|| format!("{}: {errors:?}", e["metadata"]["uid"]))
        })
        .collect();
    assert!(
        invalid.is_empty(),
        "{} of {} OCSF events are invalid, e.g. {:?}",
        invalid.len(),
        events.len(),
        &invalid[..invalid.len().min(3)]
    );
    events.len()
}

/// The rows of a Parquet file as JSON, read with the parquet crate's record API (absent values
/// omitted; `unmapped` values and `evidences[].data` stay the JSON text they are stored as).
pub fn parquet_rows(bytes: &[u8]) -> Vec<Value> {
    let reader =
        SerializedFileReader::new(bytes::Bytes::copy_from_slice(bytes)).expect("a Parquet file");
    reader
        .get_row_iter(None)
        .expect("rows")
        .map(|row| object(&row.expect("a row")))
        .collect()
}

fn object(row: &Row) -> Value {
    Value::Object(
        row.get_column_iter()
            .filter(|(_, f)| !matches!(f, Field::Null))
            .map(|(k, f)| (k.clone(), value(f)))
            .collect(),
    )
}

fn value(f: &Field) -> Value {
    match f {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Int(n) => Value::from(*n),
        Field::Long(n) => Value::from(*n),
        Field::Str(s) => Value::String(s.clone()),
        Field::Group(row) => object(row),
        Field::ListInternal(list) => Value::Array(list.elements().iter().map(value).collect()),
        Field::MapInternal(map) => Value::Object(
            map.entries()
                .iter()
                .map(|(k, v)| match k {
                    Field::Str(k) => (k.clone(), value(v)),
                    other => panic!("a map key the lake never writes: {other:?}"),
                })
                .collect(),
        ),
        other => panic!("a Parquet value the lake never writes: {other:?}"),
    }
}

/// `event` as the lake stores it: `unmapped` values and `evidences[].data` as JSON text.
pub fn as_stored(event: &Value) -> Value {
    let as_text = |v: &mut Value| *v = Value::String(v.to_string());
    let mut e = event.clone();
    if let Some(unmapped) = e.get_mut("unmapped").and_then(Value::as_object_mut) {
        unmapped.values_mut().for_each(as_text);
    }
    if let Some(evidences) = e.get_mut("evidences").and_then(Value::as_array_mut) {
        evidences
            .iter_mut()
            .filter_map(|ev| ev.get_mut("data"))
            .for_each(as_text);
    }
    e
}

/// The lake's rows (`partition path → rows`) against `events`: every event exactly once (by
/// `metadata.uid`), equal to what was mapped, in the `eventDay=` partition of its `time`.
/// Returns the number of rows.
pub fn check_lake(files: &BTreeMap<String, Vec<Value>>, events: &[Value]) -> usize {
    let mut want: BTreeMap<String, Value> = BTreeMap::new();
    for e in events {
        let uid = e["metadata"]["uid"]
            .as_str()
            .expect("metadata.uid")
            .to_owned();
        assert!(
            want.insert(uid, as_stored(e)).is_none(),
            "one event per uid"
        );
    }
    let mut seen = 0;
    let mut found: Map<String, Value> = Map::new();
    for (path, rows) in files {
        for row in rows {
            seen += 1;
            let uid = row["metadata"]["uid"].as_str().expect("metadata.uid");
            let day = format!("/eventDay={}/", lake::event_day(row).format("%Y%m%d"));
            assert!(path.contains(&day), "{uid} is in {path}, not {day}");
            assert!(
                found.insert(uid.to_owned(), row.clone()).is_none(),
                "{uid} is in the lake twice"
            );
            assert_eq!(Some(row), want.get(uid), "{uid} as read back from {path}");
        }
    }
    assert_eq!(seen, want.len(), "every event in the lake, no other");
    seen
}

/// Every Parquet file under `dir` (path → rows, read with [`parquet_rows`]).
pub fn lake_files(dir: &std::path::Path) -> BTreeMap<String, Vec<Value>> {
    fn walk(dir: &std::path::Path, out: &mut BTreeMap<String, Vec<Value>>) {
        for entry in std::fs::read_dir(dir).expect("a lake directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                assert_eq!(path.extension().and_then(|x| x.to_str()), Some("parquet"));
                let bytes = std::fs::read(&path).expect("read");
                out.insert(path.display().to_string(), parquet_rows(&bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// Every event of the OCSF NDJSON objects under `dir`.
pub fn ocsf_objects(dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(ocsf_objects(&path));
        } else {
            let bytes = std::fs::read(&path).expect("read");
            out.extend(shared::adapters::ocsf_ndjson::decode_batch(&bytes).expect("OCSF NDJSON"));
        }
    }
    out
}

/// [`validate_all`] over the renderings of every record the sink of `w` holds for `ids`, and
/// their Parquet file read back with [`parquet_rows`].
pub fn check_delivered(w: &crate::fixtures::World, ids: &[String]) {
    let records: Vec<AlertRecord> = ids.iter().flat_map(|id| w.records(id)).collect();
    let events: Vec<Value> = records.iter().map(shared::ocsf::map).collect();
    let checked = validate_all(&events);
    let bytes = lake::parquet::write(&events).expect("Parquet");
    let rows = parquet_rows(&bytes);
    let want: Vec<Value> = events.iter().map(as_stored).collect();
    assert_eq!(rows, want, "the Parquet rows are the events");
    println!(
        "ocsf: {checked} records rendered as OCSF {} Detection Findings, each valid, and read \
         back from Parquet by the parquet crate's row reader unchanged",
        VALIDATOR.version()
    );
}
