//! The data plane: PushDocuments, PushCollectionData, PushQueryLog (v3 bulk endpoints), and
//! Trainyard's PutDataTable, ListDataTables, DescribeDatasetStats and CompactDataset.

use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use trainyard_core::model::DataTable;
use trainyard_data::ingest::{PushError, PushReport, PushTarget};
use trainyard_data::records::CollectionType;

use crate::AppState;
use crate::call::Call;
use crate::envelope::Reply;
use crate::error::ApiError;

/// The header that makes a push idempotent (`trainyard import` sends one per file and offset).
pub const BATCH_KEY_HEADER: &str = "x-trainyard-batch-key";
/// The longest batch key.
pub const MAX_BATCH_KEY_BYTES: usize = 256;

fn batch_key(call: &Call) -> Result<Option<String>, ApiError> {
    let Some(value) = call.header(BATCH_KEY_HEADER) else {
        return Ok(None);
    };
    let well_formed =
        !value.is_empty() && value.len() <= MAX_BATCH_KEY_BYTES && value.bytes().all(|byte| byte.is_ascii_graphic());
    if !well_formed {
        return Err(ApiError::invalid(
            BATCH_KEY_HEADER,
            format!("must be 1 to {MAX_BATCH_KEY_BYTES} visible ASCII characters"),
        ));
    }
    Ok(Some(value.to_string()))
}

fn push_reply(report: PushReport) -> Reply {
    let errors: Vec<Value> = report
        .rejections
        .iter()
        .map(|rejection| json!({"code": rejection.code.number(), "index": rejection.index, "message": format!("record {}: {}", rejection.index, rejection.message)}))
        .collect();
    // Every record refused (not: nothing new, as for a batch key applied before).
    let all_refused = report.accepted == 0 && !report.rejections.is_empty();
    let duplicate = report.appended.is_some_and(|appended| appended.duplicate);
    Reply {
        result: Some(Value::Bool(!all_refused)),
        top_level: vec![
            ("errors", Value::Array(errors)),
            ("accepted", Value::from(report.accepted)),
            ("rejected", Value::from(report.rejections.len())),
            ("duplicate", Value::Bool(duplicate)),
        ],
        // Some records kept: 200, so that clients (the Java SDK throws on >= 400) know the batch
        // went in; the refused ones are listed. Every record refused: 400.
        fail_status: all_refused.then_some(StatusCode::BAD_REQUEST),
        ..Reply::default()
    }
}

fn push_error(error: PushError) -> ApiError {
    match error {
        PushError::Body(split_error) => ApiError::invalid("body", split_error.to_string()),
        PushError::TooManyRecords(count) => ApiError::invalid(
            "body",
            format!(
                "a push carries at most {} records; this one has {count}",
                trainyard_data::ingest::MAX_RECORDS_PER_PUSH
            ),
        ),
        PushError::Data(data_error) => ApiError::Core(data_error.into()),
    }
}

async fn push(state: &AppState, call: &Call, app_group_id: i64, target: PushTarget) -> Result<Reply, ApiError> {
    let batch_key = batch_key(call)?;
    let received_ms = state.service.clock().now_ms();
    let report =
        state.datasets.push(app_group_id, target, call.raw_body(), batch_key, received_ms).await.map_err(push_error)?;
    Ok(push_reply(report))
}

pub async fn push_documents(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let (app_group, table) =
        state.service.resolve_data_table(&call.caller, call.path("appGroupIdentity"), call.path("tableName")).await?;
    push(&state, &call, app_group.id, PushTarget::Documents { table: table.table_name, primary_key: table.primary_key })
        .await
}

pub async fn push_collection_data(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let app_group = state.service.resolve_app_group(&call.caller, call.path("appGroupIdentity")).await?;
    // The collection name is normally the app group's own; Trainyard keeps one collection per
    // app group and accepts any well-formed name for it.
    trainyard_core::names::validate_name("dataCollectionName", call.path("dataCollectionName"))?;
    let type_text = call.path("dataCollectionType");
    let collection_type = CollectionType::parse(type_text).ok_or_else(|| {
        ApiError::invalid(
            "dataCollectionType",
            format!("\"{}\" is not one of BEHAVIOR, ITEM_INFO, USER", trainyard_core::names::printable(type_text)),
        )
    })?;
    push(&state, &call, app_group.id, PushTarget::Collection(collection_type)).await
}

pub async fn push_query_log(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let app_group = state.service.resolve_app_group(&call.caller, call.path("appGroupIdentity")).await?;
    push(&state, &call, app_group.id, PushTarget::QueryLog).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PutDataTableBody {
    primary_key: Option<String>,
}

fn data_table_result(table: &DataTable) -> Value {
    json!({"TableName": table.table_name, "PrimaryKey": table.primary_key, "CreateTime": table.created_ms})
}

pub async fn put_data_table(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: PutDataTableBody = call.body()?;
    let table = state
        .service
        .put_data_table(&call.caller, call.path("appGroupIdentity"), call.path("tableName"), body.primary_key)
        .await?;
    Ok(Reply::result(data_table_result(&table)))
}

pub async fn list_data_tables(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let tables = state.service.list_data_tables(&call.caller, call.path("appGroupIdentity")).await?;
    let count = tables.len() as i64;
    Ok(Reply::page(tables.iter().map(data_table_result).collect(), count))
}

pub async fn describe_dataset_stats(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let app_group = state.service.resolve_app_group(&call.caller, call.path("appGroupIdentity")).await?;
    let now_seconds = state.service.clock().now_ms().div_euclid(1000);
    let datasets = state.datasets.clone();
    let stats = tokio::task::spawn_blocking(move || datasets.snapshot(app_group.id)?.stats(now_seconds))
        .await
        .map_err(|error| ApiError::Core(trainyard_core::CoreError::StorageFailure { message: error.to_string() }))?
        .map_err(|error| ApiError::Core(error.into()))?;
    Ok(Reply::result(serde_json::to_value(stats).expect("stats serialize")))
}

/// Compacts the app group's log into Parquet files now (the background compactor does it
/// periodically): what `trainyard import` calls at the end so the data is columnar at once.
pub async fn compact_dataset(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let app_group = state.service.resolve_app_group(&call.caller, call.path("appGroupIdentity")).await?;
    let report = state.datasets.compact(app_group.id, true).await.map_err(|error| ApiError::Core(error.into()))?;
    Ok(Reply::result(json!({
        "SegmentsCompacted": report.segments_compacted,
        "RecordsCompacted": report.records_compacted,
        "FilesWritten": report.files_written,
    })))
}
