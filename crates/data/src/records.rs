//! The records Trainyard ingests, how each pushed element is checked, and the reasons a record
//! is refused.
//!
//! Every pushed element is parsed and validated on its own; a refused element is reported with
//! its index, a numeric code in the spirit of the v3 API's table and a message naming the field,
//! while the good ones are kept. Normalisation is deliberate and documented: `biz_id` given as a
//! number is kept as its decimal text; string fields given as JSON numbers (ids often are) are
//! kept as their JSON text; other fields are kept exactly as pushed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The largest document (one pushed element of the documents endpoint), as upstream limits it.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// The largest behavior, item, user or query-log record. These are small by nature; a bigger one
/// is almost certainly a client bug.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Timestamps above this many seconds are taken for milliseconds sent by mistake.
const LARGEST_SECONDS: i64 = 100_000_000_000;
/// How far in the future an event time may be (clock skew of the sender).
const FUTURE_TOLERANCE_SECONDS: i64 = 86_400;

/// The kinds of data an app group holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    Documents,
    Behavior,
    ItemInfo,
    Users,
    QueryLog,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 5] = [
        DatasetKind::Documents,
        DatasetKind::Behavior,
        DatasetKind::ItemInfo,
        DatasetKind::Users,
        DatasetKind::QueryLog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Documents => "documents",
            DatasetKind::Behavior => "behavior",
            DatasetKind::ItemInfo => "item_info",
            DatasetKind::Users => "users",
            DatasetKind::QueryLog => "query_log",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            DatasetKind::Documents => 1,
            DatasetKind::Behavior => 2,
            DatasetKind::ItemInfo => 3,
            DatasetKind::Users => 4,
            DatasetKind::QueryLog => 5,
        }
    }

    pub fn from_code(code: u8) -> Option<DatasetKind> {
        DatasetKind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    pub fn parse(text: &str) -> Option<DatasetKind> {
        DatasetKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// The numeric codes of refused records (`errors[].code` of the v3 response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionCode {
    /// Not a JSON object, invalid JSON or invalid UTF-8 (upstream 4007).
    Unparsable,
    /// A required field is absent or empty.
    MissingField,
    /// A field has the wrong type or an invalid value.
    InvalidField,
    /// An event time that is not Unix seconds in a plausible range (upstream 4010).
    InvalidTimestamp,
    /// The record is larger than the per-record limit.
    TooLarge,
    /// The document has no primary key field (upstream 7301).
    MissingPrimaryKey,
    /// The document's primary key is empty (upstream 7304).
    EmptyPrimaryKey,
}

impl RejectionCode {
    pub fn number(self) -> u32 {
        match self {
            RejectionCode::Unparsable => 4007,
            RejectionCode::MissingField => 4008,
            RejectionCode::InvalidField => 4009,
            RejectionCode::InvalidTimestamp => 4010,
            RejectionCode::TooLarge => 4011,
            RejectionCode::MissingPrimaryKey => 7301,
            RejectionCode::EmptyPrimaryKey => 7304,
        }
    }
}

/// Why one pushed element was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRejection {
    /// Position of the element in the pushed array (0-based).
    pub index: usize,
    pub code: RejectionCode,
    pub message: String,
}

/// What a document command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentCommand {
    /// Insert, or replace every field of an existing document.
    Add,
    /// Change the given fields; a missing document is created from them (`upsert` is the same).
    Update,
    /// Remove the document; removing a missing one succeeds.
    Delete,
}

impl DocumentCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentCommand::Add => "add",
            DocumentCommand::Update => "update",
            DocumentCommand::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<DocumentCommand> {
        match text.to_ascii_lowercase().as_str() {
            "add" => Some(DocumentCommand::Add),
            "update" | "upsert" => Some(DocumentCommand::Update),
            "delete" => Some(DocumentCommand::Delete),
            _ => None,
        }
    }
}

/// One pushed document command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRecord {
    pub table: String,
    pub primary_key: String,
    pub command: DocumentCommand,
    /// The client's `timestamp` (ms): orders versions of one document; absent = arrival time.
    pub timestamp_ms: Option<i64>,
    pub fields: Map<String, Value>,
}

/// One behavior event (data collection 2.0, type `BEHAVIOR`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BehaviorEvent {
    pub user_id: Option<String>,
    pub imei: Option<String>,
    pub biz_id: String,
    pub trace_id: String,
    pub trace_info: Option<String>,
    /// The search request id the event belongs to.
    pub rn: String,
    pub item_id: String,
    pub item_type: String,
    pub bhv_type: String,
    /// Unix seconds.
    pub bhv_time: i64,
    pub bhv_value: Option<String>,
    pub bhv_detail: Option<String>,
    /// Every other field, as pushed (`login`, `ip`, `session_id`, `reach_time`, ...).
    pub attributes: BTreeMap<String, Value>,
}

impl BehaviorEvent {
    /// The user the event counts for: `user_id`, else the device id.
    pub fn user_key(&self) -> &str {
        self.user_id.as_deref().filter(|user| !user.is_empty()).or(self.imei.as_deref()).unwrap_or("")
    }
}

/// An `ITEM_INFO` or `USER` record of data collection 2.0, keyed by `item_id` / `user_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionRecord {
    pub key: String,
    pub fields: Map<String, Value>,
}

/// One search of the query log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryLogEntry {
    pub query: String,
    /// True when the query is what the user typed (upstream's `raw_query` search parameter).
    pub raw_query: bool,
    pub rn: Option<String>,
    pub user_id: Option<String>,
    /// How many results the search returned.
    pub hits: i64,
    /// Unix seconds.
    pub timestamp: i64,
    pub biz_id: Option<String>,
    /// Every other field, as pushed.
    pub attributes: BTreeMap<String, Value>,
}

/// A validated record of any kind, as appended to the log.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestRecord {
    Document(DocumentRecord),
    Behavior(BehaviorEvent),
    ItemInfo(CollectionRecord),
    User(CollectionRecord),
    QueryLog(QueryLogEntry),
}

impl IngestRecord {
    pub fn kind(&self) -> DatasetKind {
        match self {
            IngestRecord::Document(_) => DatasetKind::Documents,
            IngestRecord::Behavior(_) => DatasetKind::Behavior,
            IngestRecord::ItemInfo(_) => DatasetKind::ItemInfo,
            IngestRecord::User(_) => DatasetKind::Users,
            IngestRecord::QueryLog(_) => DatasetKind::QueryLog,
        }
    }

    /// The record's line in the log (JSON, no newline).
    pub fn to_log_line(&self) -> Vec<u8> {
        let encoded = match self {
            IngestRecord::Document(record) => serde_json::to_vec(record),
            IngestRecord::Behavior(record) => serde_json::to_vec(record),
            IngestRecord::ItemInfo(record) | IngestRecord::User(record) => serde_json::to_vec(record),
            IngestRecord::QueryLog(record) => serde_json::to_vec(record),
        };
        encoded.expect("records serialize")
    }

    /// Reads a log line back.
    pub fn from_log_line(kind: DatasetKind, line: &[u8]) -> Result<IngestRecord, serde_json::Error> {
        Ok(match kind {
            DatasetKind::Documents => IngestRecord::Document(serde_json::from_slice(line)?),
            DatasetKind::Behavior => IngestRecord::Behavior(serde_json::from_slice(line)?),
            DatasetKind::ItemInfo => IngestRecord::ItemInfo(serde_json::from_slice(line)?),
            DatasetKind::Users => IngestRecord::User(serde_json::from_slice(line)?),
            DatasetKind::QueryLog => IngestRecord::QueryLog(serde_json::from_slice(line)?),
        })
    }
}

/// The data collection 2.0 types (`{type}` of the path, case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionType {
    Behavior,
    ItemInfo,
    User,
}

impl CollectionType {
    pub fn parse(text: &str) -> Option<CollectionType> {
        match text.to_ascii_uppercase().as_str() {
            "BEHAVIOR" => Some(CollectionType::Behavior),
            "ITEM_INFO" => Some(CollectionType::ItemInfo),
            "USER" => Some(CollectionType::User),
            _ => None,
        }
    }
}

struct Refusal {
    code: RejectionCode,
    message: String,
}

impl Refusal {
    fn new(code: RejectionCode, message: impl Into<String>) -> Refusal {
        Refusal { code, message: message.into() }
    }
}

/// Validates every element; returns the good records (in order) and the refusals.
pub fn validate_elements(
    elements: &[&[u8]],
    mut validate_one: impl FnMut(&[u8]) -> Result<IngestRecord, RecordRejectionReason>,
) -> (Vec<IngestRecord>, Vec<RecordRejection>) {
    let mut accepted = Vec::with_capacity(elements.len());
    let mut rejected = Vec::new();
    for (index, element) in elements.iter().enumerate() {
        match validate_one(element) {
            Ok(record) => accepted.push(record),
            Err(reason) => rejected.push(RecordRejection { index, code: reason.code, message: reason.message }),
        }
    }
    (accepted, rejected)
}

/// A refusal before its index is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRejectionReason {
    pub code: RejectionCode,
    pub message: String,
}

impl From<Refusal> for RecordRejectionReason {
    fn from(refusal: Refusal) -> RecordRejectionReason {
        RecordRejectionReason { code: refusal.code, message: refusal.message }
    }
}

/// A pushed element's parts: the command word, the fields and the optional timestamp (ms).
type ParsedCommand = (String, Map<String, Value>, Option<i64>);

/// Parses `{"cmd": ..., "fields": {...}[, "timestamp": ms]}`, checking size and shape.
fn parse_command(element: &[u8], max_bytes: usize, allow_timestamp: bool) -> Result<ParsedCommand, Refusal> {
    if element.len() > max_bytes {
        return Err(Refusal::new(
            RejectionCode::TooLarge,
            format!("the record is {} bytes, the limit is {max_bytes}", element.len()),
        ));
    }
    let value: Value = serde_json::from_slice(element).map_err(|error| {
        let reason = if std::str::from_utf8(element).is_err() {
            "the record is not valid UTF-8".to_string()
        } else {
            format!("the record is not valid JSON: {error}")
        };
        Refusal::new(RejectionCode::Unparsable, reason)
    })?;
    let Value::Object(mut command) = value else {
        return Err(Refusal::new(
            RejectionCode::Unparsable,
            "the record must be a JSON object {\"cmd\": ..., \"fields\": {...}}",
        ));
    };
    let cmd = match command.remove("cmd") {
        Some(Value::String(cmd)) => cmd,
        Some(_) => return Err(Refusal::new(RejectionCode::InvalidField, "cmd must be a string")),
        None => return Err(Refusal::new(RejectionCode::MissingField, "cmd is required")),
    };
    let fields = match command.remove("fields") {
        Some(Value::Object(fields)) => fields,
        Some(_) => return Err(Refusal::new(RejectionCode::InvalidField, "fields must be a JSON object")),
        None => return Err(Refusal::new(RejectionCode::MissingField, "fields is required")),
    };
    let timestamp = match command.remove("timestamp") {
        None | Some(Value::Null) => None,
        Some(_) if !allow_timestamp => {
            return Err(Refusal::new(RejectionCode::InvalidField, "timestamp is not accepted here"));
        }
        Some(Value::Number(number)) => match number.as_i64() {
            Some(milliseconds) if milliseconds >= 0 => Some(milliseconds),
            _ => {
                return Err(Refusal::new(
                    RejectionCode::InvalidTimestamp,
                    "timestamp must be non-negative epoch milliseconds",
                ));
            }
        },
        Some(_) => {
            return Err(Refusal::new(
                RejectionCode::InvalidTimestamp,
                "timestamp must be a number (epoch milliseconds)",
            ));
        }
    };
    if let Some(unknown) = command.keys().next() {
        return Err(Refusal::new(
            RejectionCode::InvalidField,
            format!(
                "unknown key \"{}\" (a record has cmd, fields and timestamp)",
                trainyard_core::names::printable(unknown)
            ),
        ));
    }
    Ok((cmd, fields, timestamp))
}

/// A field as text: strings as they are, numbers as their JSON text; anything else is refused.
fn text_field(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, Refusal> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other) => {
            Err(Refusal::new(RejectionCode::InvalidField, format!("{name} must be a string, not {}", json_type(other))))
        }
    }
}

fn required_text(fields: &Map<String, Value>, name: &str) -> Result<String, Refusal> {
    match text_field(fields, name)? {
        Some(text) if !text.trim().is_empty() => Ok(text),
        Some(_) => Err(Refusal::new(RejectionCode::MissingField, format!("{name} is empty"))),
        None => Err(Refusal::new(RejectionCode::MissingField, format!("{name} is required"))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Unix seconds from an integer or a string of digits, in a plausible range.
fn unix_seconds(fields: &Map<String, Value>, name: &str, now_seconds: i64) -> Result<i64, Refusal> {
    let seconds = match fields.get(name) {
        None | Some(Value::Null) => {
            return Err(Refusal::new(RejectionCode::MissingField, format!("{name} is required")));
        }
        Some(Value::Number(number)) => number.as_i64().ok_or_else(|| {
            Refusal::new(RejectionCode::InvalidTimestamp, format!("{name} must be whole Unix seconds, got {number}"))
        })?,
        Some(Value::String(text)) if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) => text
            .parse::<i64>()
            .map_err(|_| Refusal::new(RejectionCode::InvalidTimestamp, format!("{name} is out of range")))?,
        Some(other) => {
            return Err(Refusal::new(
                RejectionCode::InvalidTimestamp,
                format!("{name} must be Unix seconds (an integer), not {}", json_type(other)),
            ));
        }
    };
    if seconds <= 0 {
        return Err(Refusal::new(
            RejectionCode::InvalidTimestamp,
            format!("{name} must be a positive Unix time in seconds"),
        ));
    }
    if seconds >= LARGEST_SECONDS {
        return Err(Refusal::new(
            RejectionCode::InvalidTimestamp,
            format!("{name} {seconds} looks like milliseconds; send Unix seconds"),
        ));
    }
    if seconds > now_seconds + FUTURE_TOLERANCE_SECONDS {
        return Err(Refusal::new(
            RejectionCode::InvalidTimestamp,
            format!("{name} {seconds} is more than a day in the future"),
        ));
    }
    Ok(seconds)
}

/// Bytes upstream reserves as separators: a record containing them is refused (upstream drops it).
fn reserved_separator(text: &str) -> Option<&'static str> {
    if text.contains('\u{1C}') {
        return Some("\\x1C");
    }
    if text.contains('\u{1D}') {
        return Some("\\x1D");
    }
    if text.contains('\u{03}') {
        return Some("\\x03");
    }
    if text.contains("\u{1E}\n") {
        return Some("\\x1E\\n");
    }
    if text.contains("\u{1F}\n") {
        return Some("\\x1F\\n");
    }
    None
}

fn check_reserved(fields: &Map<String, Value>) -> Result<(), Refusal> {
    fn visit(value: &Value, field: &str) -> Result<(), Refusal> {
        match value {
            Value::String(text) => match reserved_separator(text) {
                Some(separator) => Err(Refusal::new(
                    RejectionCode::InvalidField,
                    format!("{field} contains the reserved separator {separator}"),
                )),
                None => Ok(()),
            },
            Value::Array(items) => items.iter().try_for_each(|item| visit(item, field)),
            Value::Object(members) => members.values().try_for_each(|member| visit(member, field)),
            _ => Ok(()),
        }
    }
    fields.iter().try_for_each(|(name, value)| visit(value, name))
}

/// Validates one element pushed to a document table whose primary key field is `primary_key_field`.
pub fn validate_document(
    element: &[u8],
    table: &str,
    primary_key_field: &str,
) -> Result<IngestRecord, RecordRejectionReason> {
    let (cmd, fields, timestamp_ms) = parse_command(element, MAX_DOCUMENT_BYTES, true)?;
    let command = DocumentCommand::parse(&cmd).ok_or_else(|| {
        Refusal::new(
            RejectionCode::InvalidField,
            format!("cmd \"{}\" is not one of add, update, delete, upsert", trainyard_core::names::printable(&cmd)),
        )
    })?;
    let primary_key = match fields.get(primary_key_field) {
        None | Some(Value::Null) => {
            return Err(Refusal::new(
                RejectionCode::MissingPrimaryKey,
                format!("the primary key field {primary_key_field} is missing"),
            )
            .into());
        }
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(other) => {
            return Err(Refusal::new(
                RejectionCode::InvalidField,
                format!("the primary key {primary_key_field} must be a string or a number, not {}", json_type(other)),
            )
            .into());
        }
    };
    if primary_key.is_empty() {
        return Err(Refusal::new(
            RejectionCode::EmptyPrimaryKey,
            format!("the primary key {primary_key_field} is empty"),
        )
        .into());
    }
    check_reserved(&fields)?;
    Ok(IngestRecord::Document(DocumentRecord { table: table.to_string(), primary_key, command, timestamp_ms, fields }))
}

const BEHAVIOR_TYPED_FIELDS: [&str; 12] = [
    "user_id",
    "imei",
    "biz_id",
    "trace_id",
    "trace_info",
    "rn",
    "item_id",
    "item_type",
    "bhv_type",
    "bhv_time",
    "bhv_value",
    "bhv_detail",
];

/// Validates one element pushed to a data collection of `collection_type`.
pub fn validate_collection_record(
    element: &[u8],
    collection_type: CollectionType,
    now_seconds: i64,
) -> Result<IngestRecord, RecordRejectionReason> {
    let (cmd, fields, _) = parse_command(element, MAX_EVENT_BYTES, false)?;
    if !cmd.eq_ignore_ascii_case("add") {
        return Err(Refusal::new(
            RejectionCode::InvalidField,
            format!(
                "cmd \"{}\" is not accepted: data collection takes ADD only",
                trainyard_core::names::printable(&cmd)
            ),
        )
        .into());
    }
    check_reserved(&fields)?;
    match collection_type {
        CollectionType::Behavior => {
            validate_behavior(fields, now_seconds).map(IngestRecord::Behavior).map_err(Into::into)
        }
        CollectionType::ItemInfo => {
            Ok(IngestRecord::ItemInfo(CollectionRecord { key: required_text(&fields, "item_id")?, fields }))
        }
        CollectionType::User => {
            Ok(IngestRecord::User(CollectionRecord { key: required_text(&fields, "user_id")?, fields }))
        }
    }
}

fn validate_behavior(fields: Map<String, Value>, now_seconds: i64) -> Result<BehaviorEvent, Refusal> {
    let user_id = text_field(&fields, "user_id")?.filter(|user| !user.is_empty());
    let imei = text_field(&fields, "imei")?.filter(|device| !device.is_empty());
    if user_id.is_none() && imei.is_none() {
        return Err(Refusal::new(RejectionCode::MissingField, "user_id or imei is required (both are empty)"));
    }
    let bhv_type = required_text(&fields, "bhv_type")?;
    if bhv_type.len() > 64 || !bhv_type.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_') {
        return Err(Refusal::new(
            RejectionCode::InvalidField,
            format!(
                "bhv_type \"{}\" must be a word of letters, digits and underscores",
                trainyard_core::names::printable(&bhv_type)
            ),
        ));
    }
    let event = BehaviorEvent {
        user_id,
        imei,
        biz_id: required_text(&fields, "biz_id")?,
        trace_id: required_text(&fields, "trace_id")?,
        trace_info: text_field(&fields, "trace_info")?,
        rn: required_text(&fields, "rn")?,
        item_id: required_text(&fields, "item_id")?,
        item_type: required_text(&fields, "item_type")?,
        bhv_type,
        bhv_time: unix_seconds(&fields, "bhv_time", now_seconds)?,
        bhv_value: text_field(&fields, "bhv_value")?,
        bhv_detail: text_field(&fields, "bhv_detail")?,
        attributes: fields.into_iter().filter(|(name, _)| !BEHAVIOR_TYPED_FIELDS.contains(&name.as_str())).collect(),
    };
    Ok(event)
}

const QUERY_LOG_TYPED_FIELDS: [&str; 7] = ["query", "raw_query", "rn", "user_id", "hits", "timestamp", "biz_id"];
/// The longest query kept, in characters.
pub const MAX_QUERY_CHARACTERS: usize = 1000;

/// Validates one element pushed to the query log.
pub fn validate_query_log_entry(element: &[u8], now_seconds: i64) -> Result<IngestRecord, RecordRejectionReason> {
    let (cmd, fields, _) = parse_command(element, MAX_EVENT_BYTES, false)?;
    if !cmd.eq_ignore_ascii_case("add") {
        return Err(Refusal::new(
            RejectionCode::InvalidField,
            format!("cmd \"{}\" is not accepted: the query log takes ADD only", trainyard_core::names::printable(&cmd)),
        )
        .into());
    }
    let query = match fields.get("query") {
        Some(Value::String(query)) if !query.trim().is_empty() => query.clone(),
        Some(Value::String(_)) => return Err(Refusal::new(RejectionCode::MissingField, "query is empty").into()),
        Some(other) => {
            return Err(Refusal::new(
                RejectionCode::InvalidField,
                format!("query must be a string, not {}", json_type(other)),
            )
            .into());
        }
        None => return Err(Refusal::new(RejectionCode::MissingField, "query is required").into()),
    };
    if query.chars().count() > MAX_QUERY_CHARACTERS {
        return Err(Refusal::new(
            RejectionCode::InvalidField,
            format!("query is longer than {MAX_QUERY_CHARACTERS} characters"),
        )
        .into());
    }
    let raw_query = match fields.get("raw_query") {
        Some(Value::Bool(flag)) => *flag,
        Some(other) => {
            return Err(Refusal::new(
                RejectionCode::InvalidField,
                format!("raw_query must be true or false, not {}", json_type(other)),
            )
            .into());
        }
        None => {
            return Err(Refusal::new(
                RejectionCode::MissingField,
                "raw_query is required (true when the user typed the query)",
            )
            .into());
        }
    };
    let hits = match fields.get("hits") {
        Some(Value::Number(number)) => match number.as_i64() {
            Some(hits) if hits >= 0 => hits,
            _ => return Err(Refusal::new(RejectionCode::InvalidField, "hits must be a non-negative integer").into()),
        },
        Some(other) => {
            return Err(Refusal::new(
                RejectionCode::InvalidField,
                format!("hits must be an integer, not {}", json_type(other)),
            )
            .into());
        }
        None => {
            return Err(Refusal::new(RejectionCode::MissingField, "hits is required (the number of results)").into());
        }
    };
    check_reserved(&fields)?;
    let entry = QueryLogEntry {
        query,
        raw_query,
        rn: text_field(&fields, "rn")?,
        user_id: text_field(&fields, "user_id")?,
        hits,
        timestamp: unix_seconds(&fields, "timestamp", now_seconds)?,
        biz_id: text_field(&fields, "biz_id")?,
        attributes: fields.into_iter().filter(|(name, _)| !QUERY_LOG_TYPED_FIELDS.contains(&name.as_str())).collect(),
    };
    Ok(IngestRecord::QueryLog(entry))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_795_900_000;

    fn behavior(fields: Value) -> Result<IngestRecord, RecordRejectionReason> {
        let element = serde_json::to_vec(&json!({"cmd": "ADD", "fields": fields})).unwrap();
        validate_collection_record(&element, CollectionType::Behavior, NOW)
    }

    fn good_behavior() -> Value {
        json!({"user_id": "u1", "biz_id": 123, "trace_id": "Alibaba", "rn": "r1", "bhv_type": "click",
               "bhv_time": "1795800000", "item_id": 42, "item_type": "goods", "login": "1", "reach_time": "20261129101010"})
    }

    #[test]
    fn a_good_behavior_event_is_normalised() {
        let IngestRecord::Behavior(event) = behavior(good_behavior()).unwrap() else { panic!("behavior") };
        assert_eq!(event.biz_id, "123");
        assert_eq!(event.item_id, "42");
        assert_eq!(event.bhv_time, 1_795_800_000);
        assert_eq!(event.attributes.get("login"), Some(&json!("1")));
        assert_eq!(event.user_key(), "u1");
        let line = IngestRecord::Behavior(event.clone()).to_log_line();
        assert_eq!(IngestRecord::from_log_line(DatasetKind::Behavior, &line).unwrap(), IngestRecord::Behavior(event));
    }

    #[test]
    fn behavior_refusals_name_the_field() {
        let cases: Vec<(Value, RejectionCode, &str)> = vec![
            (json!({"user_id": "", "imei": null}), RejectionCode::MissingField, "user_id or imei"),
            (json!({"bhv_type": null}), RejectionCode::MissingField, "bhv_type is required"),
            (json!({"user_id": {"a": 1}}), RejectionCode::InvalidField, "user_id must be a string"),
            (json!({"bhv_time": 1795800000123i64}), RejectionCode::InvalidTimestamp, "milliseconds"),
            (json!({"bhv_time": "yesterday"}), RejectionCode::InvalidTimestamp, "bhv_time"),
            (json!({"bhv_time": 1.5}), RejectionCode::InvalidTimestamp, "bhv_time"),
            (json!({"bhv_time": NOW + 200_000}), RejectionCode::InvalidTimestamp, "future"),
            (json!({"rn": ""}), RejectionCode::MissingField, "rn is empty"),
            (json!({"bhv_type": "cl ick"}), RejectionCode::InvalidField, "bhv_type"),
            (json!({"item_type": null}), RejectionCode::MissingField, "item_type is required"),
            (json!({"session_id": "a\u{1C}b"}), RejectionCode::InvalidField, "reserved separator"),
        ];
        for (patch, code, words) in cases {
            let mut fields = good_behavior();
            for (name, value) in patch.as_object().unwrap() {
                fields[name] = value.clone();
            }
            let refusal = behavior(fields.clone()).unwrap_err();
            assert_eq!(refusal.code, code, "{patch}: {refusal:?}");
            assert!(refusal.message.contains(words), "{patch}: {}", refusal.message);
        }
    }

    #[test]
    fn envelopes_are_checked() {
        let too_big = format!("{{\"cmd\":\"ADD\",\"fields\":{{\"user_id\":\"{}\"}}}}", "x".repeat(MAX_EVENT_BYTES));
        assert_eq!(
            validate_collection_record(too_big.as_bytes(), CollectionType::Behavior, NOW).unwrap_err().code,
            RejectionCode::TooLarge
        );
        assert_eq!(
            validate_collection_record(b"[1]", CollectionType::Behavior, NOW).unwrap_err().code,
            RejectionCode::Unparsable
        );
        assert_eq!(
            validate_collection_record(b"{\"cmd\":\"ADD\",\"fields\":{\"a\":\"\xff\"}}", CollectionType::Behavior, NOW)
                .unwrap_err()
                .message,
            "the record is not valid UTF-8"
        );
        assert_eq!(
            validate_collection_record(b"{\"cmd\":\"DELETE\",\"fields\":{}}", CollectionType::Behavior, NOW)
                .unwrap_err()
                .code,
            RejectionCode::InvalidField
        );
        assert_eq!(
            validate_collection_record(b"{\"fields\":{}}", CollectionType::Behavior, NOW).unwrap_err().code,
            RejectionCode::MissingField
        );
        let extra_key =
            validate_collection_record(b"{\"cmd\":\"ADD\",\"fields\":{},\"op\":1}", CollectionType::Behavior, NOW)
                .unwrap_err();
        assert!(extra_key.message.contains("unknown key \"op\""));
        let item = validate_collection_record(
            b"{\"cmd\":\"add\",\"fields\":{\"item_id\":\"i1\",\"price\":3}}",
            CollectionType::ItemInfo,
            NOW,
        )
        .unwrap();
        assert!(matches!(item, IngestRecord::ItemInfo(CollectionRecord { ref key, .. }) if key == "i1"));
        assert!(
            validate_collection_record(b"{\"cmd\":\"add\",\"fields\":{\"name\":\"x\"}}", CollectionType::User, NOW)
                .is_err()
        );
    }

    #[test]
    fn documents_need_their_primary_key() {
        let add = validate_document(
            br#"{"cmd":"ADD","fields":{"id":7,"title":"t"},"timestamp":1795800000000}"#,
            "main",
            "id",
        )
        .unwrap();
        let IngestRecord::Document(document) = add else { panic!("document") };
        assert_eq!(
            (document.primary_key.as_str(), document.command, document.timestamp_ms),
            ("7", DocumentCommand::Add, Some(1_795_800_000_000))
        );
        assert_eq!(
            validate_document(br#"{"cmd":"UPSERT","fields":{"id":"a"}}"#, "main", "id").map(|record| matches!(
                record,
                IngestRecord::Document(DocumentRecord { command: DocumentCommand::Update, .. })
            )),
            Ok(true)
        );
        assert_eq!(
            validate_document(br#"{"cmd":"add","fields":{"title":"t"}}"#, "main", "id").unwrap_err().code,
            RejectionCode::MissingPrimaryKey
        );
        assert_eq!(
            validate_document(br#"{"cmd":"add","fields":{"id":""}}"#, "main", "id").unwrap_err().code,
            RejectionCode::EmptyPrimaryKey
        );
        assert_eq!(
            validate_document(br#"{"cmd":"add","fields":{"id":[1]}}"#, "main", "id").unwrap_err().code,
            RejectionCode::InvalidField
        );
        assert_eq!(
            validate_document(br#"{"cmd":"merge","fields":{"id":"1"}}"#, "main", "id").unwrap_err().code,
            RejectionCode::InvalidField
        );
        assert_eq!(
            validate_document(br#"{"cmd":"add","fields":{"id":"1"},"timestamp":"soon"}"#, "main", "id")
                .unwrap_err()
                .code,
            RejectionCode::InvalidTimestamp
        );
    }

    #[test]
    fn query_log_entries_are_checked() {
        let good = br#"{"cmd":"ADD","fields":{"query":"red shoes","raw_query":true,"hits":12,"timestamp":1795800000,"user_id":"u1","biz_id":3,"page":2}}"#;
        let IngestRecord::QueryLog(entry) = validate_query_log_entry(good, NOW).unwrap() else { panic!("query log") };
        assert_eq!(entry.biz_id.as_deref(), Some("3"));
        assert_eq!(entry.attributes.get("page"), Some(&json!(2)));
        for (bad, words) in [
            (&br#"{"cmd":"ADD","fields":{"raw_query":true,"hits":1,"timestamp":1795800000}}"#[..], "query is required"),
            (br#"{"cmd":"ADD","fields":{"query":"a","hits":1,"timestamp":1795800000}}"#, "raw_query is required"),
            (
                br#"{"cmd":"ADD","fields":{"query":"a","raw_query":"yes","hits":1,"timestamp":1795800000}}"#,
                "raw_query must be true or false",
            ),
            (br#"{"cmd":"ADD","fields":{"query":"a","raw_query":true,"hits":-1,"timestamp":1795800000}}"#, "hits"),
            (br#"{"cmd":"ADD","fields":{"query":"a","raw_query":true,"hits":1}}"#, "timestamp is required"),
        ] {
            let refusal = validate_query_log_entry(bad, NOW).unwrap_err();
            assert!(refusal.message.contains(words), "{}", refusal.message);
        }
    }
}
