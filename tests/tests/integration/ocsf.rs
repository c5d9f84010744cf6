//! OCSF (issue K): every record rendered as an OCSF Detection Finding validates against the
//! vendored OCSF 1.1.0 definitions (`lake::schema::Validator`), and its Parquet file reads back
//! as the same events. The chaos test calls [`check_records`] on everything it delivered.

use std::sync::LazyLock;

use lake::schema::Validator;
use serde_json::Value;
use shared::record::AlertRecord;

static VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
    Validator::ocsf_1_1("detection_finding").expect("the vendored OCSF 1.1.0 schema loads")
});

/// Maps every record, validates each event and reads them back from Parquet; panics naming the
/// first invalid events. Returns how many were checked.
pub fn check_records(records: &[AlertRecord]) -> usize {
    let events: Vec<Value> = records.iter().map(shared::ocsf::map).collect();
    let invalid: Vec<String> = records
        .iter()
        .zip(&events)
        .filter_map(|(r, e)| {
            let errors = VALIDATOR.validate(e);
            (!errors.is_empty()).then(|| format!("{}: {errors:?}", r.dedup_key))
        })
        .collect();
    assert!(
        invalid.is_empty(),
        "{} of {} OCSF events are invalid, e.g. {:?}",
        invalid.len(),
        events.len(),
        &invalid[..invalid.len().min(3)]
    );
    let bytes = lake::parquet::write(&events).expect("Parquet");
    assert_eq!(lake::parquet::read(&bytes).expect("read back"), events);
    events.len()
}

/// [`check_records`] over every record the sink of `w` holds for `ids`, with a line of figures.
pub fn check_delivered(w: &crate::fixtures::World, ids: &[String]) {
    let records: Vec<AlertRecord> = ids.iter().flat_map(|id| w.records(id)).collect();
    let checked = check_records(&records);
    println!(
        "ocsf: {checked} records rendered as OCSF {} Detection Findings, each valid, and read \
         back from Parquet unchanged",
        VALIDATOR.version()
    );
}
