//! The columnar form of each kind of record: its Arrow schema (the Parquet files' schema), and
//! conversion between records and Arrow record batches.
//!
//! Every file has `sequence` (the ingest order, unique per app group) and `received_ms` (arrival
//! time) first. Fields the trainers read are typed columns; everything else a record carried is
//! kept as JSON text (`*_json`), so nothing pushed is lost and an outside engine can still read
//! it (e.g. DuckDB `json_extract`).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{BooleanBuilder, Int64Builder, StringBuilder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};

use crate::error::DataError;
use crate::records::{
    BehaviorEvent, CollectionRecord, DatasetKind, DocumentCommand, DocumentRecord, IngestRecord, QueryLogEntry,
};

/// A record with the place and time the log gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub sequence: u64,
    pub received_ms: i64,
    pub record: IngestRecord,
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn integer(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Int64, nullable)
}

fn base_fields() -> Vec<Field> {
    vec![Field::new("sequence", DataType::UInt64, false), integer("received_ms", false)]
}

/// The schema of a kind's files.
pub fn schema(kind: DatasetKind) -> SchemaRef {
    static SCHEMAS: OnceLock<BTreeMap<DatasetKind, SchemaRef>> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            DatasetKind::ALL
                .into_iter()
                .map(|kind| {
                    let mut fields = base_fields();
                    fields.extend(match kind {
                        DatasetKind::Documents => vec![
                            text("table_name", false),
                            text("primary_key", false),
                            text("command", false),
                            integer("timestamp_ms", true),
                            text("fields_json", false),
                        ],
                        DatasetKind::Behavior => vec![
                            text("user_id", true),
                            text("imei", true),
                            text("biz_id", false),
                            text("trace_id", false),
                            text("trace_info", true),
                            text("rn", false),
                            text("item_id", false),
                            text("item_type", false),
                            text("bhv_type", false),
                            integer("bhv_time", false),
                            text("bhv_value", true),
                            text("bhv_detail", true),
                            text("attributes_json", true),
                        ],
                        DatasetKind::ItemInfo | DatasetKind::Users => {
                            vec![text("key", false), text("fields_json", false)]
                        }
                        DatasetKind::QueryLog => vec![
                            text("query", false),
                            Field::new("raw_query", DataType::Boolean, false),
                            text("rn", true),
                            text("user_id", true),
                            integer("hits", false),
                            integer("timestamp", false),
                            text("biz_id", true),
                            text("attributes_json", true),
                        ],
                    });
                    (kind, Arc::new(Schema::new(fields)))
                })
                .collect()
        })
        .get(&kind)
        .cloned()
        .expect("every kind has a schema")
}

fn attributes_json(attributes: &BTreeMap<String, Value>) -> Option<String> {
    if attributes.is_empty() { None } else { Some(serde_json::to_string(attributes).expect("json")) }
}

fn object_json(fields: &Map<String, Value>) -> String {
    serde_json::to_string(fields).expect("json")
}

/// Builds one batch from records of one kind (in the order given).
pub fn records_to_batch(kind: DatasetKind, records: &[StoredRecord]) -> Result<RecordBatch, DataError> {
    let mut sequence = UInt64Builder::with_capacity(records.len());
    let mut received = Int64Builder::with_capacity(records.len());
    for stored in records {
        sequence.append_value(stored.sequence);
        received.append_value(stored.received_ms);
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(sequence.finish()), Arc::new(received.finish())];
    let strings = |count: usize| -> Vec<StringBuilder> { (0..count).map(|_| StringBuilder::new()).collect() };
    match kind {
        DatasetKind::Documents => {
            let mut texts = strings(4);
            let mut timestamps = Int64Builder::new();
            for stored in records {
                let IngestRecord::Document(document) = &stored.record else { return Err(mixed(kind)) };
                texts[0].append_value(&document.table);
                texts[1].append_value(&document.primary_key);
                texts[2].append_value(document.command.as_str());
                timestamps.append_option(document.timestamp_ms);
                texts[3].append_value(object_json(&document.fields));
            }
            let [table, key, command, fields] = <[StringBuilder; 4]>::try_from(texts).expect("4 builders");
            columns.extend([
                finish(table),
                finish(key),
                finish(command),
                Arc::new(timestamps.finish()) as ArrayRef,
                finish(fields),
            ]);
        }
        DatasetKind::Behavior => {
            let mut texts = strings(12);
            let mut times = Int64Builder::new();
            for stored in records {
                let IngestRecord::Behavior(event) = &stored.record else { return Err(mixed(kind)) };
                texts[0].append_option(event.user_id.as_deref());
                texts[1].append_option(event.imei.as_deref());
                texts[2].append_value(&event.biz_id);
                texts[3].append_value(&event.trace_id);
                texts[4].append_option(event.trace_info.as_deref());
                texts[5].append_value(&event.rn);
                texts[6].append_value(&event.item_id);
                texts[7].append_value(&event.item_type);
                texts[8].append_value(&event.bhv_type);
                times.append_value(event.bhv_time);
                texts[9].append_option(event.bhv_value.as_deref());
                texts[10].append_option(event.bhv_detail.as_deref());
                texts[11].append_option(attributes_json(&event.attributes));
            }
            let mut built: Vec<ArrayRef> = texts.into_iter().map(finish).collect();
            let tail = built.split_off(9);
            columns.extend(built);
            columns.push(Arc::new(times.finish()));
            columns.extend(tail);
        }
        DatasetKind::ItemInfo | DatasetKind::Users => {
            let mut texts = strings(2);
            for stored in records {
                let (IngestRecord::ItemInfo(record) | IngestRecord::User(record)) = &stored.record else {
                    return Err(mixed(kind));
                };
                texts[0].append_value(&record.key);
                texts[1].append_value(object_json(&record.fields));
            }
            columns.extend(texts.into_iter().map(finish));
        }
        DatasetKind::QueryLog => {
            let mut query = StringBuilder::new();
            let mut raw_query = BooleanBuilder::new();
            let mut rn = StringBuilder::new();
            let mut user_id = StringBuilder::new();
            let mut hits = Int64Builder::new();
            let mut timestamp = Int64Builder::new();
            let mut biz_id = StringBuilder::new();
            let mut attributes = StringBuilder::new();
            for stored in records {
                let IngestRecord::QueryLog(entry) = &stored.record else { return Err(mixed(kind)) };
                query.append_value(&entry.query);
                raw_query.append_value(entry.raw_query);
                rn.append_option(entry.rn.as_deref());
                user_id.append_option(entry.user_id.as_deref());
                hits.append_value(entry.hits);
                timestamp.append_value(entry.timestamp);
                biz_id.append_option(entry.biz_id.as_deref());
                attributes.append_option(attributes_json(&entry.attributes));
            }
            columns.extend([
                finish(query),
                Arc::new(raw_query.finish()) as ArrayRef,
                finish(rn),
                finish(user_id),
                Arc::new(hits.finish()),
                Arc::new(timestamp.finish()),
                finish(biz_id),
                finish(attributes),
            ]);
        }
    }
    Ok(RecordBatch::try_new(schema(kind), columns)?)
}

fn finish(mut builder: StringBuilder) -> ArrayRef {
    Arc::new(builder.finish())
}

fn mixed(kind: DatasetKind) -> DataError {
    DataError::Corrupt(format!("a batch of {} records holds another kind", kind.as_str()))
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, DataError> {
    batch.column_by_name(name).ok_or_else(|| DataError::Corrupt(format!("column {name} is missing")))
}

fn json_object(text: &str) -> Result<Map<String, Value>, DataError> {
    serde_json::from_str(text)
        .map_err(|error| DataError::Corrupt(format!("a stored JSON column does not decode: {error}")))
}

fn json_attributes(text: Option<String>) -> Result<BTreeMap<String, Value>, DataError> {
    match text {
        None => Ok(BTreeMap::new()),
        Some(text) => Ok(json_object(&text)?.into_iter().collect()),
    }
}

/// The string column `name` of a batch.
fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::StringArray, DataError> {
    Ok(column(batch, name)?.as_string::<i32>())
}

fn optional_text(array: &arrow_array::StringArray, row: usize) -> Option<String> {
    if array.is_null(row) { None } else { Some(array.value(row).to_string()) }
}

fn required_text(array: &arrow_array::StringArray, row: usize, name: &str) -> Result<String, DataError> {
    optional_text(array, row).ok_or_else(|| DataError::Corrupt(format!("column {name} is null")))
}

/// Decodes a full (unprojected) batch of `kind` back into records. Columns are looked up once
/// per batch, not per row.
pub fn batch_to_records(kind: DatasetKind, batch: &RecordBatch) -> Result<Vec<StoredRecord>, DataError> {
    let sequences = column(batch, "sequence")?.as_primitive::<UInt64Type>();
    let received = column(batch, "received_ms")?.as_primitive::<Int64Type>();
    let rows = batch.num_rows();
    let mut decoded: Vec<IngestRecord> = Vec::with_capacity(rows);
    match kind {
        DatasetKind::Documents => {
            let (tables, keys, commands, fields) = (
                strings(batch, "table_name")?,
                strings(batch, "primary_key")?,
                strings(batch, "command")?,
                strings(batch, "fields_json")?,
            );
            let timestamps = column(batch, "timestamp_ms")?.as_primitive::<Int64Type>();
            for row in 0..rows {
                let command_text = commands.value(row);
                decoded.push(IngestRecord::Document(DocumentRecord {
                    table: required_text(tables, row, "table_name")?,
                    primary_key: required_text(keys, row, "primary_key")?,
                    command: DocumentCommand::parse(command_text)
                        .ok_or_else(|| DataError::Corrupt(format!("unknown command {command_text}")))?,
                    timestamp_ms: if timestamps.is_null(row) { None } else { Some(timestamps.value(row)) },
                    fields: json_object(fields.value(row))?,
                }));
            }
        }
        DatasetKind::Behavior => {
            let user_ids = strings(batch, "user_id")?;
            let devices = strings(batch, "imei")?;
            let biz_ids = strings(batch, "biz_id")?;
            let trace_ids = strings(batch, "trace_id")?;
            let trace_infos = strings(batch, "trace_info")?;
            let request_ids = strings(batch, "rn")?;
            let item_ids = strings(batch, "item_id")?;
            let item_types = strings(batch, "item_type")?;
            let behavior_types = strings(batch, "bhv_type")?;
            let times = column(batch, "bhv_time")?.as_primitive::<Int64Type>();
            let values = strings(batch, "bhv_value")?;
            let details = strings(batch, "bhv_detail")?;
            let attributes = strings(batch, "attributes_json")?;
            for row in 0..rows {
                decoded.push(IngestRecord::Behavior(BehaviorEvent {
                    user_id: optional_text(user_ids, row),
                    imei: optional_text(devices, row),
                    biz_id: required_text(biz_ids, row, "biz_id")?,
                    trace_id: required_text(trace_ids, row, "trace_id")?,
                    trace_info: optional_text(trace_infos, row),
                    rn: required_text(request_ids, row, "rn")?,
                    item_id: required_text(item_ids, row, "item_id")?,
                    item_type: required_text(item_types, row, "item_type")?,
                    bhv_type: required_text(behavior_types, row, "bhv_type")?,
                    bhv_time: times.value(row),
                    bhv_value: optional_text(values, row),
                    bhv_detail: optional_text(details, row),
                    attributes: json_attributes(optional_text(attributes, row))?,
                }));
            }
        }
        DatasetKind::ItemInfo | DatasetKind::Users => {
            let (keys, fields) = (strings(batch, "key")?, strings(batch, "fields_json")?);
            for row in 0..rows {
                let record =
                    CollectionRecord { key: required_text(keys, row, "key")?, fields: json_object(fields.value(row))? };
                decoded.push(if kind == DatasetKind::ItemInfo {
                    IngestRecord::ItemInfo(record)
                } else {
                    IngestRecord::User(record)
                });
            }
        }
        DatasetKind::QueryLog => {
            let queries = strings(batch, "query")?;
            let raw = column(batch, "raw_query")?.as_boolean();
            let request_ids = strings(batch, "rn")?;
            let user_ids = strings(batch, "user_id")?;
            let hits = column(batch, "hits")?.as_primitive::<Int64Type>();
            let timestamps = column(batch, "timestamp")?.as_primitive::<Int64Type>();
            let biz_ids = strings(batch, "biz_id")?;
            let attributes = strings(batch, "attributes_json")?;
            for row in 0..rows {
                decoded.push(IngestRecord::QueryLog(QueryLogEntry {
                    query: required_text(queries, row, "query")?,
                    raw_query: raw.value(row),
                    rn: optional_text(request_ids, row),
                    user_id: optional_text(user_ids, row),
                    hits: hits.value(row),
                    timestamp: timestamps.value(row),
                    biz_id: optional_text(biz_ids, row),
                    attributes: json_attributes(optional_text(attributes, row))?,
                }));
            }
        }
    }
    Ok(decoded
        .into_iter()
        .enumerate()
        .map(|(row, record)| StoredRecord { sequence: sequences.value(row), received_ms: received.value(row), record })
        .collect())
}

/// Encodes batches as one Parquet file (Snappy-compressed).
pub fn write_parquet(kind: DatasetKind, batches: &[RecordBatch]) -> Result<Vec<u8>, DataError> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(128 * 1024))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema(kind), Some(properties))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(bytes)
}

/// The Unix day (UTC) a record belongs to: the event day for events and searches, the arrival
/// day for everything else. It decides the `dt=` partition.
pub fn partition_day(stored: &StoredRecord) -> i64 {
    let seconds = match &stored.record {
        IngestRecord::Behavior(event) => event.bhv_time,
        IngestRecord::QueryLog(entry) => entry.timestamp,
        IngestRecord::Document(_) | IngestRecord::ItemInfo(_) | IngestRecord::User(_) => {
            stored.received_ms.div_euclid(1000)
        }
    };
    seconds.div_euclid(86_400)
}

/// `YYYY-MM-DD` of a Unix day.
pub fn day_text(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|time| time.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| day.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::records::{CollectionType, validate_collection_record, validate_document, validate_query_log_entry};

    fn stored(sequence: u64, record: IngestRecord) -> StoredRecord {
        StoredRecord { sequence, received_ms: 1_795_800_000_000 + sequence as i64, record }
    }

    #[test]
    fn every_kind_round_trips_through_arrow_and_parquet() {
        let now = 1_795_900_000;
        let behavior = validate_collection_record(
            json!({"cmd": "ADD", "fields": {"imei": "d1", "biz_id": "pc", "trace_id": "Alibaba", "rn": "r", "bhv_type": "expose", "bhv_time": 1795800000, "item_id": "i", "item_type": "goods", "ip": "10.0.0.1"}}).to_string().as_bytes(),
            CollectionType::Behavior,
            now,
        )
        .unwrap();
        let samples = vec![
            (DatasetKind::Behavior, behavior),
            (DatasetKind::Documents, validate_document(br#"{"cmd":"add","fields":{"id":"1","tags":["a","b"],"n":1.5}}"#, "main", "id").unwrap()),
            (DatasetKind::QueryLog, validate_query_log_entry(br#"{"cmd":"ADD","fields":{"query":"q","raw_query":false,"hits":0,"timestamp":1795800000,"lang":"en"}}"#, now).unwrap()),
            (DatasetKind::ItemInfo, validate_collection_record(br#"{"cmd":"ADD","fields":{"item_id":"i","price":2}}"#, CollectionType::ItemInfo, now).unwrap()),
            (DatasetKind::Users, validate_collection_record(br#"{"cmd":"ADD","fields":{"user_id":"u","age":30}}"#, CollectionType::User, now).unwrap()),
        ];
        for (kind, record) in samples {
            let records = vec![stored(1, record.clone()), stored(2, record)];
            let batch = records_to_batch(kind, &records).unwrap();
            assert_eq!(batch_to_records(kind, &batch).unwrap(), records, "{kind:?} through Arrow");
            let bytes = write_parquet(kind, &[batch]).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
                    .unwrap()
                    .build()
                    .unwrap();
            let read: Vec<StoredRecord> =
                reader.flat_map(|batch| batch_to_records(kind, &batch.unwrap()).unwrap()).collect();
            assert_eq!(read, records, "{kind:?} through Parquet");
        }
    }

    #[test]
    fn partitions_follow_event_time() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_text(20_786), "2026-11-29");
    }
}
