//! The OCSF object format of the alert sinks: gzip-compressed NDJSON like [`super::ndjson`],
//! one OCSF Detection Finding ([`crate::ocsf::map`]) per line, at `ocsf/…` keys
//! ([`BatchId::ocsf_key`]). A retried delivery reads an interrupted attempt's dedup keys back
//! from these objects too: `metadata.uid` is the record's dedup key and
//! `metadata.original_time` its version.

use std::io::Write;

use serde_json::Value;

use crate::config::GzipLevel;

use crate::ports::{AttemptContents, StoreError};
use crate::record::AlertRecord;

/// Encodes the OCSF rendering of `records` as gzip-compressed NDJSON.
///
/// # Errors
///
/// [`StoreError::Corrupt`] when an event cannot be serialized or compressed (a bug).
pub fn encode_batch(records: &[AlertRecord], level: GzipLevel) -> Result<Vec<u8>, StoreError> {
    super::ndjson::encode_lines(KIND, records, level, |out, r| {
        serde_json::to_writer(&mut *out, &crate::ocsf::map(r))?;
        out.write_all(b"\n")
    })
}

/// The events of an object written by [`encode_batch`].
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the line when the data is not gzip or a line not JSON.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Value>, StoreError> {
    super::ndjson::decode_lines(KIND, bytes)
}

/// Adds one OCSF object of an attempt to `into` (see [`super::ndjson::add_to_attempt`]).
pub fn add_to_attempt(
    into: &mut AttemptContents,
    key: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let seq = super::ndjson::seq_of(key)?;
    into.next_seq = into.next_seq.max(seq.saturating_add(1));
    for event in decode_batch(bytes)? {
        let meta = &event["metadata"];
        let (Some(uid), Some(at)) = (
            meta["uid"].as_str(),
            meta["original_time"]
                .as_str()
                .and_then(crate::microsoft::alerts::parse_time),
        ) else {
            return Err(StoreError::Corrupt {
                what: format!("OCSF object {key}"),
                source: "an event has no metadata.uid or metadata.original_time".into(),
            });
        };
        into.delivered.push((uid.to_owned(), at));
    }
    Ok(())
}

/// What the errors of this format name.
const KIND: &str = "OCSF NDJSON batch";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::adapters::ndjson::tests::record;
    use crate::domain::TenantId;

    #[test]
    fn an_ocsf_object_gives_back_the_dedup_keys_and_versions_of_its_records() {
        let t = TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid");
        let records = [
            record(&t, "a1", json!({"id": "a1", "title": "x"})),
            record(&t, "a2", json!({})),
        ];
        let bytes = encode_batch(&records, GzipLevel::DEFAULT).expect("encode");
        let events = decode_batch(&bytes).expect("decode");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["class_uid"], 2004);
        let mut got = AttemptContents::default();
        add_to_attempt(
            &mut got,
            "ocsf/tenant=x/date=2026-03-01/graph-0000000007-00004.ndjson.gz",
            &bytes,
        )
        .expect("read back");
        assert_eq!(got.next_seq, 5);
        let want: Vec<(String, _)> = records
            .iter()
            .map(|r| {
                let at = crate::microsoft::alerts::parse_time(&r.alert_version).expect("time");
                (r.dedup_key.clone(), at)
            })
            .collect();
        assert_eq!(got.delivered, want);
    }
}
