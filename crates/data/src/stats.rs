//! Dataset statistics of an app group, and the data checks the trainers will apply — so that a
//! user sees why a training task would fail before starting one.
//!
//! Computed by scanning a snapshot with only the columns needed. Distinct users, items and
//! queries are counted exactly by 64-bit hash (a collision among a billion values is
//! improbable), which keeps memory at about 16 bytes per distinct value.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hasher as _;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use serde::Serialize;

use crate::dataset::Snapshot;
use crate::error::DataError;
use crate::reader::ScanOptions;
use crate::records::DatasetKind;

/// Seconds in a day.
const DAY_SECONDS: i64 = 86_400;

/// Documents of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableStats {
    pub table: String,
    /// Documents at their latest version (deleted ones not counted).
    pub documents: u64,
}

/// Behavior events of one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DayCounts {
    pub day: String,
    pub by_type: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BehaviorStats {
    pub events: u64,
    pub by_type: BTreeMap<String, u64>,
    pub by_day: Vec<DayCounts>,
    pub distinct_users: u64,
    pub distinct_items: u64,
    /// Unix seconds of the first and last event (0 when there are none).
    pub first_time: i64,
    pub last_time: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryLogStats {
    pub searches: u64,
    pub raw_query_searches: u64,
    /// `raw_query` searches that returned results: what hot and hint count.
    pub raw_query_searches_with_results: u64,
    pub distinct_queries: u64,
    pub by_day: BTreeMap<String, u64>,
    /// `raw_query` searches with results, per day: what the hot and hint windows count.
    pub raw_query_searches_with_results_by_day: BTreeMap<String, u64>,
    pub first_time: i64,
    pub last_time: i64,
}

/// One check a trainer applies before it trains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataCheck {
    pub check: String,
    pub passed: bool,
    pub detail: String,
}

/// Whether a function can train on this data with its default parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionReadiness {
    pub function_name: String,
    pub ready: bool,
    pub checks: Vec<DataCheck>,
}

/// Everything DescribeDatasetStats reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DatasetStats {
    pub tables: Vec<TableStats>,
    pub behavior: BehaviorStats,
    /// Distinct items and users with an `ITEM_INFO` / `USER` record.
    pub item_infos: u64,
    pub users: u64,
    pub query_log: QueryLogStats,
    /// Records not yet compacted into Parquet files (still in the log).
    pub records_in_log: u64,
    pub parquet_files: u64,
    pub functions: Vec<FunctionReadiness>,
}

fn hash_text(text: &str) -> u64 {
    // A fixed-key hasher: counts must not depend on the process.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hasher.write(text.as_bytes());
    hasher.finish()
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, DataError> {
    batch
        .column_by_name(name)
        .map(|array| array.as_ref())
        .ok_or_else(|| DataError::Corrupt(format!("column {name} is missing")))
}

impl Snapshot {
    /// Computes the statistics of this snapshot; `now_seconds` anchors the readiness windows.
    pub fn stats(&self, now_seconds: i64) -> Result<DatasetStats, DataError> {
        let mut tables: BTreeMap<String, u64> = BTreeMap::new();
        for document in self.documents(None)? {
            *tables.entry(document?.table).or_default() += 1;
        }
        let behavior = self.behavior_stats()?;
        let query_log = self.query_log_stats()?;
        let item_infos = self.count_distinct_keys(DatasetKind::ItemInfo)?;
        let users = self.count_distinct_keys(DatasetKind::Users)?;
        let records_in_log = self.max_sequence.saturating_sub(self.manifest.compacted_through_sequence);
        let table_stats: Vec<TableStats> =
            tables.into_iter().map(|(table, documents)| TableStats { table, documents }).collect();
        let functions = readiness(&table_stats, &behavior, &query_log, now_seconds);
        Ok(DatasetStats {
            tables: table_stats,
            behavior,
            item_infos,
            users,
            query_log,
            records_in_log,
            parquet_files: self.manifest.files.len() as u64,
            functions,
        })
    }

    /// Item and user records are keyed: a key pushed twice is one item or user.
    fn count_distinct_keys(&self, kind: DatasetKind) -> Result<u64, DataError> {
        let mut keys = HashSet::new();
        for batch in self.scan(kind, ScanOptions { days: None, columns: Some(vec!["key".into()]) })? {
            let batch = batch?;
            let values = column(&batch, "key")?.as_string::<i32>();
            for row in 0..batch.num_rows() {
                keys.insert(hash_text(values.value(row)));
            }
        }
        Ok(keys.len() as u64)
    }

    fn behavior_stats(&self) -> Result<BehaviorStats, DataError> {
        let columns = ["user_id", "imei", "item_id", "bhv_type", "bhv_time"].map(String::from).to_vec();
        let mut stats = BehaviorStats::default();
        let mut by_day: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
        let mut users = HashSet::new();
        let mut items = HashSet::new();
        let mut first_time = i64::MAX;
        let mut last_time = i64::MIN;
        for batch in self.scan(DatasetKind::Behavior, ScanOptions { days: None, columns: Some(columns) })? {
            let batch = batch?;
            let user_ids = column(&batch, "user_id")?.as_string::<i32>();
            let devices = column(&batch, "imei")?.as_string::<i32>();
            let item_ids = column(&batch, "item_id")?.as_string::<i32>();
            let types = column(&batch, "bhv_type")?.as_string::<i32>();
            let times = column(&batch, "bhv_time")?.as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let user = if user_ids.is_valid(row) && !user_ids.value(row).is_empty() {
                    user_ids.value(row)
                } else {
                    devices.value(row)
                };
                users.insert(hash_text(user));
                items.insert(hash_text(item_ids.value(row)));
                let time = times.value(row);
                first_time = first_time.min(time);
                last_time = last_time.max(time);
                let behavior_type = types.value(row);
                *stats.by_type.entry(behavior_type.to_string()).or_default() += 1;
                *by_day
                    .entry(time.div_euclid(DAY_SECONDS))
                    .or_default()
                    .entry(behavior_type.to_string())
                    .or_default() += 1;
                stats.events += 1;
            }
        }
        stats.by_day = by_day
            .into_iter()
            .map(|(day, by_type)| DayCounts { day: crate::columnar::day_text(day), by_type })
            .collect();
        stats.distinct_users = users.len() as u64;
        stats.distinct_items = items.len() as u64;
        if stats.events > 0 {
            stats.first_time = first_time;
            stats.last_time = last_time;
        }
        Ok(stats)
    }

    fn query_log_stats(&self) -> Result<QueryLogStats, DataError> {
        let columns = ["query", "raw_query", "hits", "timestamp"].map(String::from).to_vec();
        let mut stats = QueryLogStats::default();
        let mut queries = HashSet::new();
        let mut first_time = i64::MAX;
        let mut last_time = i64::MIN;
        for batch in self.scan(DatasetKind::QueryLog, ScanOptions { days: None, columns: Some(columns) })? {
            let batch = batch?;
            let texts = column(&batch, "query")?.as_string::<i32>();
            let raw = column(&batch, "raw_query")?.as_boolean();
            let hits = column(&batch, "hits")?.as_primitive::<Int64Type>();
            let times = column(&batch, "timestamp")?.as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                stats.searches += 1;
                queries.insert(hash_text(texts.value(row)));
                let time = times.value(row);
                if raw.value(row) {
                    stats.raw_query_searches += 1;
                    if hits.value(row) > 0 {
                        stats.raw_query_searches_with_results += 1;
                        *stats
                            .raw_query_searches_with_results_by_day
                            .entry(crate::columnar::day_text(time.div_euclid(DAY_SECONDS)))
                            .or_default() += 1;
                    }
                }
                first_time = first_time.min(time);
                last_time = last_time.max(time);
                *stats.by_day.entry(crate::columnar::day_text(time.div_euclid(DAY_SECONDS))).or_default() += 1;
            }
        }
        stats.distinct_queries = queries.len() as u64;
        if stats.searches > 0 {
            stats.first_time = first_time;
            stats.last_time = last_time;
        }
        Ok(stats)
    }
}

/// Events of the given types in the `window_days` days up to `now_seconds`.
fn events_in_window(behavior: &BehaviorStats, types: &[&str], now_seconds: i64, window_days: i64) -> u64 {
    let first_day = crate::columnar::day_text((now_seconds - window_days * DAY_SECONDS).div_euclid(DAY_SECONDS));
    behavior
        .by_day
        .iter()
        .filter(|day| day.day >= first_day)
        .flat_map(|day| day.by_type.iter())
        .filter(|(behavior_type, _)| types.is_empty() || types.contains(&behavior_type.as_str()))
        .map(|(_, count)| *count)
        .sum()
}

fn check(name: &str, passed: bool, detail: String) -> DataCheck {
    DataCheck { check: name.to_string(), passed, detail }
}

/// The checks each function's trainer applies, with its default parameters (windows, label
/// types). Queries are counted per day, so the search windows are whole days.
fn readiness(
    tables: &[TableStats],
    behavior: &BehaviorStats,
    query_log: &QueryLogStats,
    now_seconds: i64,
) -> Vec<FunctionReadiness> {
    let documents: u64 = tables.iter().map(|table| table.documents).sum();
    let documents_check = check("documents > 0", documents > 0, format!("{documents} documents"));
    let raw_searches_check = |window_days: i64| {
        let first_day = crate::columnar::day_text((now_seconds - window_days * DAY_SECONDS).div_euclid(DAY_SECONDS));
        let in_window: u64 = query_log
            .raw_query_searches_with_results_by_day
            .iter()
            .filter(|(day, _)| **day >= first_day)
            .map(|(_, count)| *count)
            .sum();
        check(
            &format!("raw_query searches with results in the last {window_days} days > 0"),
            in_window > 0,
            format!("{in_window} in the window ({} in all)", query_log.raw_query_searches_with_results),
        )
    };
    let behavior_window = |types: &[&str], window_days: i64, name: &str| {
        let count = events_in_window(behavior, types, now_seconds, window_days);
        check(name, count > 0, format!("{count} in the last {window_days} days"))
    };
    let make = |function_name: &str, checks: Vec<DataCheck>| FunctionReadiness {
        function_name: function_name.to_string(),
        ready: checks.iter().all(|check| check.passed),
        checks,
    };
    vec![
        make(
            "ctr",
            vec![
                behavior_window(&["expose"], 30, "expose events in the last 30 days > 0"),
                behavior_window(&["click"], 30, "click events in the last 30 days > 0"),
                documents_check.clone(),
            ],
        ),
        make("pop", vec![behavior_window(&[], 30, "behavior events in the last 30 days > 0")]),
        make("category", vec![documents_check.clone()]),
        make("hot", vec![raw_searches_check(14)]),
        make("hint", vec![raw_searches_check(14)]),
        make("suggest", vec![documents_check.clone()]),
        make("analyzer", vec![documents_check.clone()]),
        make("termweight", vec![documents_check.clone()]),
        make("synonym", vec![documents_check]),
    ]
}
