//! `trainyard import`: load CSV, JSON Lines or Parquet files of documents, behavior events,
//! item or user records, or query-log searches into an app group of a running server.
//!
//! Rows become records through the column mapping (`--map field=column`, `--set field=value`;
//! unmapped columns keep their names; empty CSV cells are left out), are sent in batches through
//! the same bulk endpoints as any client, and every batch carries an idempotency key made of the
//! file's content hash and the batch's first row (`import:<sha256 prefix>:<row>`). Re-running an
//! interrupted import (with the same files and `--batch-size`) therefore skips what already went
//! in instead of duplicating it. CSV values are text; the fields the server needs typed
//! (`hits`, `timestamp`, `raw_query`, `bhv_time`) are converted.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinSet;

use crate::client::{Client, ClientArgs, encode_segment};

/// The most bytes of records put in one batch (the server takes 2 MiB per request).
const MAX_BATCH_BYTES: usize = 1536 * 1024;
/// How many refused rows are printed (all are counted).
const REJECTIONS_SHOWN: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportKind {
    Documents,
    Behavior,
    ItemInfo,
    Users,
    QueryLog,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// From the file extension: .csv, .jsonl/.ndjson/.json, .parquet.
    Auto,
    Csv,
    Jsonl,
    Parquet,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// App group (name or id).
    #[arg(long)]
    pub app: String,
    /// What the files hold.
    #[arg(long, value_enum)]
    pub kind: ImportKind,
    /// Document table (with --kind documents).
    #[arg(long)]
    pub table: Option<String>,
    /// Declare the table with this primary key field first (with --kind documents).
    #[arg(long)]
    pub primary_key: Option<String>,
    #[arg(long, value_enum, default_value = "auto")]
    pub format: InputFormat,
    /// Take field FIELD from column COLUMN (repeatable): --map item_id=movie_id.
    #[arg(long = "map", value_name = "FIELD=COLUMN", value_parser = parse_assignment)]
    pub mappings: Vec<(String, String)>,
    /// Set field FIELD to VALUE on every record (repeatable): --set biz_id=web.
    #[arg(long = "set", value_name = "FIELD=VALUE", value_parser = parse_assignment)]
    pub constants: Vec<(String, String)>,
    /// Records per request (at most 1000). Keep it the same when resuming an import.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch_size: u16,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub concurrency: u8,
    /// Compact the app group's log into Parquet files when done.
    #[arg(long)]
    pub compact: bool,
    /// Files to load.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((field, value)) if !field.is_empty() => Ok((field.to_string(), value.to_string())),
        _ => Err(format!("\"{text}\" is not FIELD=VALUE")),
    }
}

/// The totals of one import.
#[derive(Debug, Default, Clone)]
struct Totals {
    rows: u64,
    accepted: u64,
    rejected: u64,
    duplicate_batches: u64,
    batches: u64,
    shown_rejections: Vec<String>,
}

/// A batch on its way: its first row (for keys and messages) and its encoded body.
struct Batch {
    first_row: u64,
    rows: u64,
    body: Vec<u8>,
}

struct Target {
    action: &'static str,
    path: String,
}

fn target(arguments: &ImportArgs) -> anyhow::Result<Target> {
    let app = encode_segment(&arguments.app);
    let collection = |collection_type: &str| Target {
        action: "PushCollectionData",
        path: format!(
            "/v3/openapi/app-groups/{app}/data-collections/{app}/data-collection-type/{collection_type}/actions/bulk"
        ),
    };
    Ok(match arguments.kind {
        ImportKind::Documents => {
            let table = arguments.table.as_deref().context("--kind documents needs --table")?;
            Target {
                action: "PushDocuments",
                path: format!("/v3/openapi/apps/{app}/{}/actions/bulk", encode_segment(table)),
            }
        }
        ImportKind::Behavior => collection("BEHAVIOR"),
        ImportKind::ItemInfo => collection("ITEM_INFO"),
        ImportKind::Users => collection("USER"),
        ImportKind::QueryLog => {
            Target { action: "PushQueryLog", path: format!("/v3/openapi/app-groups/{app}/query-logs/actions/bulk") }
        }
    })
}

/// Runs the import; the summary goes to stdout, progress and details to stderr.
pub async fn run(arguments: ImportArgs) -> anyhow::Result<()> {
    let client = Client::new(&arguments.client)?;
    let target = target(&arguments)?;
    if let (ImportKind::Documents, Some(primary_key)) = (arguments.kind, &arguments.primary_key) {
        let table = arguments.table.as_deref().context("--kind documents needs --table")?;
        let path =
            format!("/v4/openapi/app-groups/{}/data-tables/{}", encode_segment(&arguments.app), encode_segment(table));
        client
            .call_ok("PutDataTable", "PUT", &path, Some(serde_json::to_vec(&json!({"primaryKey": primary_key}))?))
            .await?;
    }
    let started = Instant::now();
    let mut totals = Totals::default();
    for file in &arguments.files {
        import_file(&client, &target, &arguments, file, &mut totals)
            .await
            .with_context(|| format!("importing {}", file.display()))?;
    }
    if arguments.compact {
        let path = format!("/v4/openapi/app-groups/{}/dataset/actions/compact", encode_segment(&arguments.app));
        client.call_ok("CompactDataset", "POST", &path, None).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    for rejection in &totals.shown_rejections {
        eprintln!("refused: {rejection}");
    }
    if totals.rejected as usize > totals.shown_rejections.len() {
        eprintln!("refused: ... and {} more", totals.rejected as usize - totals.shown_rejections.len());
    }
    println!(
        "imported {} rows from {} file(s) in {seconds:.1} s ({:.0} rows/s): {} accepted, {} refused, {} batches already applied (skipped)",
        totals.rows,
        arguments.files.len(),
        totals.rows as f64 / seconds.max(1e-9),
        totals.accepted,
        totals.rejected,
        totals.duplicate_batches
    );
    Ok(())
}

fn detect_format(format: InputFormat, path: &Path) -> anyhow::Result<InputFormat> {
    if format != InputFormat::Auto {
        return Ok(format);
    }
    let extension = path.extension().and_then(|extension| extension.to_str()).unwrap_or("").to_ascii_lowercase();
    match extension.as_str() {
        "csv" => Ok(InputFormat::Csv),
        "jsonl" | "ndjson" | "json" => Ok(InputFormat::Jsonl),
        "parquet" => Ok(InputFormat::Parquet),
        _ => anyhow::bail!("cannot tell the format of {} from its extension; pass --format", path.display()),
    }
}

fn file_digest(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize())[..16].to_string())
}

/// Turns one input row into the fields of a record.
fn map_row(row: Map<String, Value>, arguments: &ImportArgs) -> Map<String, Value> {
    let mut fields = Map::new();
    let mapped_sources: Vec<&str> = arguments.mappings.iter().map(|(_, column)| column.as_str()).collect();
    for (field, column) in &arguments.mappings {
        if let Some(value) = row.get(column) {
            fields.insert(field.clone(), value.clone());
        }
    }
    for (column, value) in row {
        if !mapped_sources.contains(&column.as_str()) && !fields.contains_key(&column) {
            fields.insert(column, value);
        }
    }
    for (field, value) in &arguments.constants {
        fields.insert(field.clone(), Value::String(value.clone()));
    }
    coerce_types(&mut fields, arguments.kind);
    fields
}

/// Converts text to the JSON types the server requires for a few fields.
fn coerce_types(fields: &mut Map<String, Value>, kind: ImportKind) {
    let integers: &[&str] = match kind {
        ImportKind::QueryLog => &["hits", "timestamp"],
        ImportKind::Behavior => &["bhv_time"],
        _ => &[],
    };
    for name in integers {
        if let Some(Value::String(text)) = fields.get(*name)
            && let Ok(number) = text.trim().parse::<i64>()
        {
            fields.insert((*name).to_string(), Value::from(number));
        }
    }
    if kind == ImportKind::QueryLog
        && let Some(Value::String(text)) = fields.get("raw_query")
    {
        let flag = match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        };
        if let Some(flag) = flag {
            fields.insert("raw_query".into(), Value::Bool(flag));
        }
    }
}

fn record_element(fields: Map<String, Value>, kind: ImportKind) -> Value {
    let mut fields = fields;
    let command = match (kind, fields.remove("cmd")) {
        (ImportKind::Documents, Some(Value::String(command))) => command,
        _ => "ADD".to_string(),
    };
    json!({"cmd": command, "fields": fields})
}

/// Rows of an input file, one at a time.
enum Rows {
    Csv(csv::StringRecordsIntoIter<std::fs::File>, csv::StringRecord),
    Jsonl(std::io::Lines<BufReader<std::fs::File>>, u64),
    Parquet(parquet::arrow::arrow_reader::ParquetRecordBatchReader, std::vec::IntoIter<Map<String, Value>>),
}

impl Rows {
    fn open(path: &Path, format: InputFormat) -> anyhow::Result<(Rows, u64)> {
        let size = std::fs::metadata(path)?.len();
        Ok(match format {
            InputFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new().flexible(false).from_path(path)?;
                let headers = reader.headers()?.clone();
                (Rows::Csv(reader.into_records(), headers), size)
            }
            InputFormat::Jsonl => (Rows::Jsonl(BufReader::new(std::fs::File::open(path)?).lines(), 0), size),
            InputFormat::Parquet => {
                let builder =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
                let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
                (Rows::Parquet(builder.with_batch_size(4096).build()?, Vec::new().into_iter()), rows)
            }
            InputFormat::Auto => unreachable!("resolved before opening"),
        })
    }

    /// The next row, with its line or row number for messages.
    fn next_row(&mut self) -> anyhow::Result<Option<Map<String, Value>>> {
        match self {
            Rows::Csv(records, headers) => {
                let Some(record) = records.next() else {
                    return Ok(None);
                };
                let record = record?;
                let mut row = Map::new();
                for (header, value) in headers.iter().zip(record.iter()) {
                    if !value.is_empty() {
                        row.insert(header.to_string(), Value::String(value.to_string()));
                    }
                }
                Ok(Some(row))
            }
            Rows::Jsonl(lines, line_number) => loop {
                let Some(line) = lines.next() else {
                    return Ok(None);
                };
                *line_number += 1;
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let value: Value =
                    serde_json::from_str(&line).with_context(|| format!("line {line_number} is not JSON"))?;
                let Value::Object(row) = value else {
                    anyhow::bail!("line {line_number} is not a JSON object");
                };
                return Ok(Some(row));
            },
            Rows::Parquet(batches, pending) => loop {
                if let Some(row) = pending.next() {
                    return Ok(Some(row));
                }
                let Some(batch) = batches.next() else {
                    return Ok(None);
                };
                let batch = batch?;
                let mut encoded = Vec::new();
                let mut writer = arrow_json::LineDelimitedWriter::new(&mut encoded);
                writer.write(&batch)?;
                writer.finish()?;
                drop(writer);
                let rows: Vec<Map<String, Value>> = encoded
                    .split(|byte| *byte == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(serde_json::from_slice::<Map<String, Value>>)
                    .collect::<Result<_, _>>()?;
                *pending = rows.into_iter();
            },
        }
    }

    /// How far through the file (bytes for text, rows for Parquet).
    fn progress(&self, rows_read: u64) -> Option<u64> {
        match self {
            Rows::Csv(records, _) => Some(records.reader().position().byte()),
            Rows::Jsonl(..) => None,
            Rows::Parquet(..) => Some(rows_read),
        }
    }
}

async fn import_file(
    client: &Client,
    target: &Target,
    arguments: &ImportArgs,
    path: &Path,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    let format = detect_format(arguments.format, path)?;
    let digest = file_digest(path)?;
    let (mut rows, progress_total) = Rows::open(path, format)?;
    let progress = ProgressBar::new(progress_total);
    progress.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {elapsed_precise} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.set_message(path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default());
    let mut in_flight: JoinSet<anyhow::Result<(Batch, crate::client::Answer)>> = JoinSet::new();
    let mut batch = Batch { first_row: 0, rows: 0, body: b"[".to_vec() };
    let mut row_number = 0u64;
    loop {
        let next = rows.next_row()?;
        let finished = next.is_none();
        if let Some(row) = next {
            let element = serde_json::to_vec(&record_element(map_row(row, arguments), arguments.kind))?;
            if batch.rows > 0
                && (batch.rows >= u64::from(arguments.batch_size)
                    || batch.body.len() + element.len() + 1 > MAX_BATCH_BYTES)
            {
                let full = std::mem::replace(&mut batch, Batch { first_row: row_number, rows: 0, body: b"[".to_vec() });
                send(client, target, &digest, full, &mut in_flight, arguments.concurrency as usize, totals).await?;
            }
            if batch.rows > 0 {
                batch.body.push(b',');
            }
            batch.body.extend_from_slice(&element);
            batch.rows += 1;
            row_number += 1;
            if let Some(position) = rows.progress(row_number) {
                progress.set_position(position);
            }
        }
        if finished {
            break;
        }
    }
    if batch.rows > 0 {
        send(client, target, &digest, batch, &mut in_flight, 1, totals).await?;
    }
    while let Some(joined) = in_flight.join_next().await {
        record(joined??, totals)?;
    }
    progress.finish_and_clear();
    Ok(())
}

async fn send(
    client: &Client,
    target: &Target,
    digest: &str,
    mut batch: Batch,
    in_flight: &mut JoinSet<anyhow::Result<(Batch, crate::client::Answer)>>,
    concurrency: usize,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    while in_flight.len() >= concurrency {
        let joined = in_flight.join_next().await.expect("a task is in flight");
        record(joined??, totals)?;
    }
    batch.body.push(b']');
    let client = client.clone();
    let action = target.action;
    let path = target.path.clone();
    let key = format!("import:{digest}:{}", batch.first_row);
    in_flight.spawn(async move {
        let body = std::mem::take(&mut batch.body);
        let answer = client.call(action, "POST", &path, Some(body), &[("x-trainyard-batch-key", &key)]).await?;
        Ok((batch, answer))
    });
    Ok(())
}

fn record((batch, answer): (Batch, crate::client::Answer), totals: &mut Totals) -> anyhow::Result<()> {
    let errors = answer.body.get("errors").and_then(Value::as_array).cloned().unwrap_or_default();
    let per_record = errors.iter().all(|error| error.get("index").is_some());
    if answer.status != 200 && !(answer.status == 400 && per_record && !errors.is_empty()) {
        anyhow::bail!("the server refused the batch starting at row {}: {}", batch.first_row, answer.describe_error());
    }
    totals.batches += 1;
    totals.rows += batch.rows;
    if answer.body.get("duplicate").and_then(Value::as_bool) == Some(true) {
        totals.duplicate_batches += 1;
        return Ok(());
    }
    totals.accepted += answer.body.get("accepted").and_then(Value::as_u64).unwrap_or(0);
    for error in errors {
        totals.rejected += 1;
        if totals.shown_rejections.len() < REJECTIONS_SHOWN {
            let index = error.get("index").and_then(Value::as_u64).unwrap_or(0);
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            let reason = message.split_once(": ").map(|(_, reason)| reason).unwrap_or(message);
            totals.shown_rejections.push(format!("row {}: {reason}", batch.first_row + index + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arguments(kind: ImportKind, mappings: &[(&str, &str)], constants: &[(&str, &str)]) -> ImportArgs {
        ImportArgs {
            client: ClientArgs {
                endpoint: String::new(),
                access_key_id: None,
                access_key_secret: None,
                data_dir: PathBuf::new(),
            },
            app: "app".into(),
            kind,
            table: None,
            primary_key: None,
            format: InputFormat::Auto,
            mappings: mappings.iter().map(|(field, column)| (field.to_string(), column.to_string())).collect(),
            constants: constants.iter().map(|(field, value)| (field.to_string(), value.to_string())).collect(),
            batch_size: 1000,
            concurrency: 1,
            compact: false,
            files: Vec::new(),
        }
    }

    #[test]
    fn rows_are_mapped_set_and_typed() {
        let row: Map<String, Value> =
            serde_json::from_value(json!({"movie_id": "42", "ts": "1795800000", "user_id": "u1", "kind": "click"}))
                .unwrap();
        let mapped = map_row(
            row,
            &arguments(
                ImportKind::Behavior,
                &[("item_id", "movie_id"), ("bhv_time", "ts"), ("bhv_type", "kind")],
                &[("biz_id", "web")],
            ),
        );
        assert_eq!(
            Value::Object(mapped),
            json!({"item_id": "42", "bhv_time": 1795800000, "bhv_type": "click", "user_id": "u1", "biz_id": "web"})
        );
        let search: Map<String, Value> =
            serde_json::from_value(json!({"query": "q", "hits": "3", "raw_query": "1", "timestamp": "1795800000"}))
                .unwrap();
        let typed = map_row(search, &arguments(ImportKind::QueryLog, &[], &[]));
        assert_eq!(Value::Object(typed), json!({"query": "q", "hits": 3, "raw_query": true, "timestamp": 1795800000}));
    }

    #[test]
    fn documents_keep_their_command_column() {
        let fields: Map<String, Value> = serde_json::from_value(json!({"cmd": "DELETE", "id": "1"})).unwrap();
        assert_eq!(
            record_element(fields.clone(), ImportKind::Documents),
            json!({"cmd": "DELETE", "fields": {"id": "1"}})
        );
        assert_eq!(record_element(fields, ImportKind::Behavior), json!({"cmd": "ADD", "fields": {"id": "1"}}));
        assert!(parse_assignment("=x").is_err());
        assert_eq!(parse_assignment("a=b=c"), Ok(("a".into(), "b=c".into())));
    }
}
