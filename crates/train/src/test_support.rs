//! Small synthetic datasets in a real `DatasetStore` (temporary directory), for the trainers'
//! tests. The reader blocks, so tests are plain `#[test]`s with their own runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use trainyard_data::records::{BehaviorEvent, DatasetKind, IngestRecord, QueryLogEntry};
use trainyard_data::{DatasetConfig, DatasetStore, Snapshot};

use crate::{TrainingContext, TrainingInput};

/// 2026-11-28 21:06:40 UTC: the task start of every test.
pub(crate) const NOW: i64 = 1_795_900_000;
const APP: i64 = 1;

pub(crate) struct Fixture {
    pub now: i64,
    store: Arc<DatasetStore>,
    // Dropped after the store: the store's objects live in it and the runtime drives them.
    _runtime: tokio::runtime::Runtime,
    _directory: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let directory = tempfile::tempdir().unwrap();
        let config = DatasetConfig { log_directory: directory.path().join("log"), segment_max_bytes: 64 * 1024 * 1024 };
        let store = Arc::new(
            DatasetStore::open_local(config, &directory.path().join("objects"), runtime.handle().clone()).unwrap(),
        );
        Fixture { now: NOW, store, _runtime: runtime, _directory: directory }
    }

    pub fn append_behavior(&self, events: &[BehaviorEvent]) {
        let records: Vec<IngestRecord> = events.iter().cloned().map(IngestRecord::Behavior).collect();
        for chunk in records.chunks(5000) {
            self.store.append_blocking(APP, DatasetKind::Behavior, chunk, None, NOW * 1000).unwrap();
        }
    }

    pub fn append_query_log(&self, searches: &[QueryLogEntry]) {
        let records: Vec<IngestRecord> = searches.iter().cloned().map(IngestRecord::QueryLog).collect();
        for chunk in records.chunks(5000) {
            self.store.append_blocking(APP, DatasetKind::QueryLog, chunk, None, NOW * 1000).unwrap();
        }
    }

    /// Appends records of any kind (documents, ITEM_INFO, USER...).
    pub fn append_records(&self, kind: DatasetKind, records: &[IngestRecord]) {
        for chunk in records.chunks(5000) {
            self.store.append_blocking(APP, kind, chunk, None, NOW * 1000).unwrap();
        }
    }

    /// Moves everything appended so far into Parquet files (later appends stay in the log).
    pub fn compact(&self) {
        self.store.compact_blocking(APP, true).unwrap();
    }

    pub fn snapshot(&self) -> Snapshot {
        self.store.snapshot(APP).unwrap()
    }
}

/// A training input over `snapshot` with the given parameters (the catalog's defaults are the
/// trainers' own defaults, so tests name only what they change).
pub(crate) fn input<'a>(snapshot: &'a Snapshot, model_type: &'a str, parameters: &[(&str, &str)]) -> TrainingInput<'a> {
    let parameters: BTreeMap<String, String> =
        parameters.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    TrainingInput { snapshot, now_seconds: NOW, model_type, parameters }
}

pub(crate) fn context() -> TrainingContext {
    TrainingContext::new()
}

/// A behavior event; `rn` defaults to one per user.
pub(crate) fn event(user: &str, item: &str, bhv_type: &str, time: i64) -> BehaviorEvent {
    BehaviorEvent {
        user_id: Some(user.to_string()),
        imei: None,
        biz_id: "web".into(),
        trace_id: "Alibaba".into(),
        trace_info: None,
        rn: format!("rn-{user}"),
        item_id: item.to_string(),
        item_type: "goods".into(),
        bhv_type: bhv_type.to_string(),
        bhv_time: time,
        bhv_value: None,
        bhv_detail: None,
        attributes: BTreeMap::new(),
    }
}

/// A behavior event of a given search request.
pub(crate) fn event_in(rn: &str, user: &str, item: &str, bhv_type: &str, time: i64) -> BehaviorEvent {
    BehaviorEvent { rn: rn.to_string(), ..event(user, item, bhv_type, time) }
}

/// A typed search with results, no user and no request id.
pub(crate) fn search(query: &str, time: i64) -> QueryLogEntry {
    QueryLogEntry {
        query: query.to_string(),
        raw_query: true,
        rn: None,
        user_id: None,
        hits: 10,
        timestamp: time,
        biz_id: None,
        attributes: BTreeMap::new(),
    }
}

/// A typed search with results by a user.
pub(crate) fn user_search(query: &str, user: &str, time: i64) -> QueryLogEntry {
    QueryLogEntry { user_id: Some(user.to_string()), ..search(query, time) }
}

/// A small deterministic random generator (SplitMix64), so that tests need no dependency.
pub(crate) struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// The keys of a JSON object, for assertions.
pub(crate) fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_object().map(|object| object.keys().cloned().collect()).unwrap_or_default()
}
