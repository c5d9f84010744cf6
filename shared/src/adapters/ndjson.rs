//! The object format of the alert sinks (DESIGN §5): NDJSON, one [`AlertRecord`] per line, each
//! line ending in `\n`, the whole gzip-compressed. Encoding streams records one by one into the
//! compressor; decoding reads line by line, so neither holds the uncompressed text whole.

use std::io::{BufRead, BufReader, BufWriter};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::config::GzipLevel;
use crate::ports::StoreError;
use crate::record::{AlertRecord, LineWriter};

/// The media type of the uncompressed content. Objects are `.ndjson.gz` files, so the
/// compression is part of the object, not a transfer or content encoding.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// Bytes of serialized records handed to the compressor at once.
const WRITE_BUFFER: usize = 64 * 1024;

/// Encodes `records` as gzip-compressed NDJSON at `level`.
///
/// # Errors
///
/// [`StoreError::Corrupt`] when a record cannot be serialized or compressed (a bug: records are
/// plain JSON).
pub fn encode_batch(records: &[AlertRecord], level: GzipLevel) -> Result<Vec<u8>, StoreError> {
    let mut lines = LineWriter::default();
    encode_lines("NDJSON batch", records, level, |out, r| lines.write(out, r))
}

/// The compressor a batch's lines are written into.
pub(crate) type BatchWriter = BufWriter<GzEncoder<Vec<u8>>>;

/// `records`, each written as one line (JSON value and `\n`) by `write`, as gzip-compressed
/// NDJSON at `level`; errors name `kind`.
pub(crate) fn encode_lines(
    kind: &str,
    records: &[AlertRecord],
    level: GzipLevel,
    mut write: impl FnMut(&mut BatchWriter, &AlertRecord) -> std::io::Result<()>,
) -> Result<Vec<u8>, StoreError> {
    // The serializer writes token by token, a few bytes at a time, and the compressor pays a
    // fixed cost per write (flate2's miniz backend zeroes its whole 32 KiB output buffer on
    // every call): unbuffered, encoding took 88 % of a drain's CPU (tests/benches/drain.rs).
    let gz = GzEncoder::new(Vec::new(), Compression::new(level.get()));
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, gz);
    for record in records {
        write(&mut out, record).map_err(|e| corrupt_in(kind, &record.dedup_key, e))?;
    }
    out.into_inner()
        .map_err(|e| corrupt_in(kind, "the batch", e.into_error()))?
        .finish()
        .map_err(|e| corrupt_in(kind, "the batch", e))
}

/// Decodes gzip-compressed NDJSON written by [`encode_batch`] (blank lines are skipped, and
/// concatenated gzip members are read as one stream).
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the line when the data is not gzip, not UTF-8 JSON, or a line
/// is not an alert record.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<AlertRecord>, StoreError> {
    decode_lines("NDJSON batch", bytes)
}

/// The lines of gzip-compressed NDJSON as `T`s; errors name `kind` and the line.
pub(crate) fn decode_lines<T: serde::de::DeserializeOwned>(
    kind: &str,
    bytes: &[u8],
) -> Result<Vec<T>, StoreError> {
    let mut reader = BufReader::new(MultiGzDecoder::new(bytes));
    let mut out = Vec::new();
    let mut line = Vec::new();
    for number in 1usize.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| corrupt_in(kind, &format!("line {number}"), e))?;
        if read == 0 {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        out.push(
            serde_json::from_slice(&line)
                .map_err(|e| corrupt_in(kind, &format!("line {number}"), e))?,
        );
    }
    Ok(out)
}

pub(crate) fn corrupt_in(
    kind: &str,
    what: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Corrupt {
        what: format!("{kind}: {what}"),
        source: Box::new(e),
    }
}

/// The sequence number of an object of an attempt, from its key's `…-{seq:05}.ndjson.gz` suffix.
pub(crate) fn seq_of(key: &str) -> Result<u32, StoreError> {
    key.strip_suffix(".ndjson.gz")
        .and_then(|k| k.rsplit('-').next())
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| StoreError::Corrupt {
            what: format!("alert object {key}"),
            source: "the key has no sequence number".into(),
        })
}

/// Adds one object of an attempt to `into`: its sequence number (from the key's
/// `…-{seq:05}.ndjson.gz` suffix) and the dedup keys of its records with their version times.
pub fn add_to_attempt(
    into: &mut crate::ports::AttemptContents,
    key: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let seq = seq_of(key)?;
    into.next_seq = into.next_seq.max(seq.saturating_add(1));
    for r in decode_batch(bytes)? {
        let at = crate::microsoft::alerts::parse_time(&r.alert_version).ok_or_else(|| {
            StoreError::Corrupt {
                what: format!("alert object {key}"),
                source: "a record's alert_version is not a time".into(),
            }
        })?;
        into.delivered.push((r.dedup_key, at));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::domain::{AlertApi, TenantId};
    use crate::record::Change;

    /// A record of `tenant` with `alert` as the raw alert.
    pub(crate) fn record(
        tenant: &TenantId,
        alert_id: &str,
        alert: serde_json::Value,
    ) -> AlertRecord {
        let version = "2026-03-01T09:00:00.0000000Z";
        AlertRecord {
            schema: "mssp.alert/1".into(),
            tenant_id: tenant.clone(),
            tenant_name: "Contoso — Zürich 東京".into(),
            source: AlertApi::Graph,
            change: Change::Created,
            first_seen: false,
            late: false,
            delay_s: None,
            alert_id: alert_id.into(),
            alert_version: version.into(),
            dedup_key: format!("{tenant}:{alert_id}:{version}"),
            fetched_at: Utc
                .with_ymd_and_hms(2026, 3, 1, 9, 5, 0)
                .single()
                .expect("valid time"),
            alert: serde_json::value::to_raw_value(&alert)
                .expect("json")
                .into(),
        }
    }

    fn tid() -> TenantId {
        TenantId::parse("11111111-1111-4111-8111-111111111111").expect("tid")
    }

    #[test]
    fn a_batch_round_trips_with_unicode_and_large_raw_alerts() {
        let big: String = "évidence 🛡️ \u{2028} \"quoted\"\n".repeat(40_000);
        let records = vec![
            record(
                &tid(),
                "a1",
                json!({"title": "Ransomware 勒索软件", "evidence": big}),
            ),
            record(
                &tid(),
                "a2",
                json!({"nested": {"list": [1, 2.5, null, true]}}),
            ),
        ];
        let bytes = encode_batch(&records, GzipLevel::DEFAULT).expect("encode");
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        assert!(bytes.len() < big.len() / 10, "compressed");
        assert_eq!(decode_batch(&bytes).expect("decode"), records);
    }

    #[test]
    fn each_record_is_one_newline_terminated_line() {
        let records = vec![
            record(&tid(), "a1", json!({"text": "line\nbreak"})),
            record(&tid(), "a2", json!({})),
        ];
        let bytes = encode_batch(&records, GzipLevel::DEFAULT).expect("encode");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut MultiGzDecoder::new(&bytes[..]), &mut text)
            .expect("gunzip");
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().count(), 2);
        let first: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("line")).expect("json");
        assert_eq!(first["schema"], "mssp.alert/1");
        assert_eq!(first["change"], "created");
        assert_eq!(first["source"], "graph");
    }

    #[test]
    fn lines_are_written_byte_for_byte_as_serde_writes_records() {
        let other = TenantId::parse("22222222-2222-4222-8222-222222222222").expect("tid");
        let mut records = vec![
            record(
                &tid(),
                "a1",
                json!({"text": "line\nbreak", "n": [1, 2.5, null]}),
            ),
            record(&tid(), "id \"quoted\" \\ \u{1} é", json!({})),
            record(&other, "a3", json!({"x": "y"})),
        ];
        let mut late = record(&tid(), "a4", json!({"late": true}));
        (late.change, late.first_seen, late.late, late.delay_s) =
            (Change::Updated, true, true, Some(-0));
        records.push(late);
        let mut renamed = record(&tid(), "a5", json!({}));
        renamed.tenant_name = "Contoso\t\"new\"".into();
        renamed.source = AlertApi::Siem;
        renamed.fetched_at += chrono::Duration::nanoseconds(123_456_700);
        renamed.delay_s = Some(86_400);
        records.push(renamed);
        // A raw alert written with whitespace stays as written.
        let spaced: Box<serde_json::value::RawValue> =
            serde_json::from_str("{ \"a\" : [ 1 , 2 ] }").expect("raw");
        let mut spaced_record = record(&tid(), "a6", json!({}));
        spaced_record.alert = spaced.into();
        records.push(spaced_record);
        let mut lines = LineWriter::default();
        for r in records.iter().chain(records.iter().rev()) {
            let mut fast = Vec::new();
            lines.write(&mut fast, r).expect("write");
            let mut serde = serde_json::to_vec(r).expect("serde");
            serde.push(b'\n');
            assert_eq!(
                String::from_utf8(fast).expect("utf-8"),
                String::from_utf8(serde).expect("utf-8")
            );
        }
    }

    #[test]
    fn an_empty_batch_round_trips_and_garbage_is_reported_as_corrupt() {
        let empty = encode_batch(&[], GzipLevel::DEFAULT).expect("encode");
        assert!(decode_batch(&empty).expect("decode").is_empty());
        assert!(matches!(
            decode_batch(b"not gzip at all"),
            Err(StoreError::Corrupt { .. })
        ));
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(b"{\"schema\":1}\n").expect("write");
        let bad = gz.finish().expect("finish");
        let e = decode_batch(&bad).expect_err("not a record");
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
