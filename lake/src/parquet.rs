//! OCSF Detection Findings ([`shared::ocsf::map`]) as Parquet: one explicit Arrow schema — every
//! attribute the mapping renders, nested as OCSF nests it — so every file of the source has the
//! same columns, whatever its records hold (Security Lake's Glue crawler reads one table per
//! source). Two OCSF values have no fixed shape and are stored as JSON text: `unmapped`, as a
//! `map<string, string>` (each value JSON-encoded, the convention of Security Lake's own
//! tables), and `evidences[].data`. The decoder runs in strict mode: an attribute the schema
//! lacks is an error, never a silently dropped column.

use std::sync::{Arc, LazyLock};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};

/// Why events could not be written or read as Parquet.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// An event does not fit the schema (an attribute the mapping renders but the schema lacks).
    #[error("an OCSF event does not fit the Parquet schema: {0}")]
    Schema(#[from] arrow_schema::ArrowError),
    /// The Parquet encoder or decoder failed.
    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}
fn long(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
fn strukt(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}
fn list(name: &str, item: DataType) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("element", item, true))),
        true,
    )
}
fn list_of(name: &str, fields: Vec<Field>) -> Field {
    list(name, DataType::Struct(Fields::from(fields)))
}

fn os() -> Field {
    strukt("os", vec![utf8("name"), int("type_id"), utf8("type")])
}

fn file() -> Field {
    strukt(
        "file",
        vec![
            utf8("name"),
            utf8("parent_folder"),
            utf8("path"),
            long("size"),
            list_of(
                "hashes",
                vec![int("algorithm_id"), utf8("algorithm"), utf8("value")],
            ),
            int("type_id"),
            utf8("type"),
        ],
    )
}

fn user() -> Field {
    strukt(
        "user",
        vec![
            utf8("name"),
            utf8("domain"),
            utf8("uid"),
            utf8("uid_alt"),
            utf8("full_name"),
        ],
    )
}

fn endpoint(name: &str, device: bool) -> Field {
    let mut fields = vec![
        utf8("hostname"),
        utf8("name"),
        utf8("uid"),
        utf8("domain"),
        utf8("ip"),
        os(),
        utf8("type"),
    ];
    if device {
        fields.push(int("type_id"));
    }
    strukt(name, fields)
}

/// The Arrow schema of a Detection Finding as [`shared::ocsf::map`] renders it.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let process = |name: &str, parent: bool| {
            let mut fields = vec![int("pid"), utf8("cmd_line"), long("created_time"), file()];
            if parent {
                fields.push(strukt(
                    "parent_process",
                    vec![int("pid"), long("created_time"), file()],
                ));
                fields.push(user());
            }
            strukt(name, fields)
        };
        Arc::new(Schema::new(vec![
            int("activity_id"),
            utf8("activity_name"),
            int("category_uid"),
            utf8("category_name"),
            int("class_uid"),
            utf8("class_name"),
            long("type_uid"),
            utf8("type_name"),
            long("time"),
            int("severity_id"),
            utf8("severity"),
            int("status_id"),
            utf8("status"),
            utf8("message"),
            strukt(
                "metadata",
                vec![
                    utf8("version"),
                    strukt(
                        "product",
                        vec![
                            utf8("name"),
                            utf8("vendor_name"),
                            utf8("uid"),
                            strukt("feature", vec![utf8("name")]),
                        ],
                    ),
                    utf8("uid"),
                    utf8("original_time"),
                    utf8("tenant_uid"),
                    long("logged_time"),
                    utf8("log_name"),
                    utf8("log_provider"),
                    list("profiles", DataType::Utf8),
                    list("labels", DataType::Utf8),
                ],
            ),
            strukt(
                "cloud",
                vec![
                    utf8("provider"),
                    strukt(
                        "account",
                        vec![utf8("uid"), utf8("name"), int("type_id"), utf8("type")],
                    ),
                ],
            ),
            strukt(
                "finding_info",
                vec![
                    utf8("uid"),
                    utf8("title"),
                    utf8("desc"),
                    long("created_time"),
                    long("modified_time"),
                    long("first_seen_time"),
                    long("last_seen_time"),
                    list("types", DataType::Utf8),
                    strukt(
                        "analytic",
                        vec![utf8("name"), utf8("uid"), int("type_id"), utf8("type")],
                    ),
                    utf8("src_url"),
                    list_of(
                        "attacks",
                        vec![
                            strukt("technique", vec![utf8("uid")]),
                            strukt("sub_technique", vec![utf8("uid")]),
                        ],
                    ),
                ],
            ),
            endpoint("device", true),
            list_of(
                "evidences",
                vec![
                    endpoint("dst_endpoint", false),
                    file(),
                    process("process", true),
                    strukt("actor", vec![user()]),
                    utf8("data"),
                ],
            ),
            Field::new(
                "unmapped",
                DataType::Map(
                    Arc::new(Field::new(
                        "key_value",
                        DataType::Struct(Fields::from(vec![
                            Field::new("key", DataType::Utf8, false),
                            Field::new("value", DataType::Utf8, true),
                        ])),
                        false,
                    )),
                    false,
                ),
                true,
            ),
        ]))
    });
    SCHEMA.clone()
}

/// The two JSON-valued attributes as text (see the module docs).
fn to_row(event: &Value) -> Value {
    let mut row = event.clone();
    if let Some(Value::Object(unmapped)) = row.get_mut("unmapped") {
        for v in unmapped.values_mut() {
            *v = Value::String(v.to_string());
        }
    }
    if let Some(Value::Array(evidences)) = row.get_mut("evidences") {
        for e in evidences {
            if let Some(data) = e.get_mut("data") {
                *data = Value::String(data.to_string());
            }
        }
    }
    row
}

/// The inverse of [`to_row`].
fn from_row(mut row: Value) -> Value {
    if let Some(Value::Object(unmapped)) = row.get_mut("unmapped") {
        for v in unmapped.values_mut() {
            if let Some(parsed) = v.as_str().and_then(|s| serde_json::from_str(s).ok()) {
                *v = parsed;
            }
        }
    }
    if let Some(Value::Array(evidences)) = row.get_mut("evidences") {
        for e in evidences {
            if let Some(data) = e.get_mut("data")
                && let Some(parsed) = data.as_str().and_then(|s| serde_json::from_str(s).ok())
            {
                *data = parsed;
            }
        }
    }
    row
}

/// `events` (OCSF Detection Findings) as one Parquet file, Snappy-compressed, in their order.
///
/// # Errors
///
/// [`ParquetError::Schema`] when an event has an attribute the schema lacks or a value of the
/// wrong type.
pub fn write(events: &[Value]) -> Result<Vec<u8>, ParquetError> {
    let schema = schema();
    let rows: Vec<Value> = events.iter().map(to_row).collect();
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_strict_mode(true)
        .with_batch_size(rows.len().max(1))
        .build_decoder()?;
    decoder.serialize(&rows)?;
    let batch = decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(out)
}

/// The events of a Parquet file written by [`write`], as OCSF JSON (absent values omitted).
///
/// # Errors
///
/// [`ParquetError`] when the bytes are not such a file.
pub fn read(bytes: &[u8]) -> Result<Vec<Value>, ParquetError> {
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let mut buf = Vec::new();
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(false)
            .build::<_, arrow_json::writer::JsonArray>(&mut buf);
        writer.write(&batch)?;
        writer.finish()?;
        drop(writer);
        let rows: Vec<Map<String, Value>> = if buf.is_empty() {
            Vec::new()
        } else {
            serde_json::from_slice(&buf).map_err(|e| {
                arrow_schema::ArrowError::JsonError(format!("reading rows back: {e}"))
            })?
        };
        out.extend(rows.into_iter().map(|r| from_row(Value::Object(r))));
    }
    Ok(out)
}
