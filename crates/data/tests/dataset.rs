//! The data store end to end: append, snapshot, compaction, documents at their latest version,
//! idempotent batches, recovery after a torn write, and compaction interrupted at each step.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use trainyard_data::columnar::StoredRecord;
use trainyard_data::reader::ScanOptions;
use trainyard_data::records::{
    CollectionType, DatasetKind, IngestRecord, validate_collection_record, validate_document, validate_query_log_entry,
};
use trainyard_data::{CompactionFault, DatasetConfig, DatasetStore};

const NOW: i64 = 1_795_900_000;
const APP: i64 = 7;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    directory: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            runtime: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
            directory: tempfile::tempdir().unwrap(),
        }
    }

    fn open(&self, segment_max_bytes: u64) -> Arc<DatasetStore> {
        let config = DatasetConfig { log_directory: self.directory.path().join("log"), segment_max_bytes };
        Arc::new(
            DatasetStore::open_local(config, &self.directory.path().join("objects"), self.runtime.handle().clone())
                .unwrap(),
        )
    }

    fn log_directory(&self) -> std::path::PathBuf {
        self.directory.path().join("log").join(format!("app-{APP}"))
    }
}

fn behavior(user: &str, item: &str, bhv_type: &str, bhv_time: i64) -> IngestRecord {
    let element = json!({"cmd": "ADD", "fields": {"user_id": user, "biz_id": "web", "trace_id": "Alibaba", "rn": format!("rn-{user}"),
        "bhv_type": bhv_type, "bhv_time": bhv_time, "item_id": item, "item_type": "goods"}});
    validate_collection_record(element.to_string().as_bytes(), CollectionType::Behavior, NOW).unwrap()
}

fn search(query: &str, hits: i64, timestamp: i64) -> IngestRecord {
    let element =
        json!({"cmd": "ADD", "fields": {"query": query, "raw_query": true, "hits": hits, "timestamp": timestamp}});
    validate_query_log_entry(element.to_string().as_bytes(), NOW).unwrap()
}

fn document(command: &str, id: &str, fields: serde_json::Value, timestamp: Option<i64>) -> IngestRecord {
    let mut element = json!({"cmd": command, "fields": fields});
    element["fields"]["id"] = json!(id);
    if let Some(timestamp) = timestamp {
        element["timestamp"] = json!(timestamp);
    }
    validate_document(element.to_string().as_bytes(), "main", "id").unwrap()
}

fn all_records(store: &DatasetStore, kind: DatasetKind) -> Vec<StoredRecord> {
    let snapshot = store.snapshot(APP).unwrap();
    let mut records: Vec<StoredRecord> = snapshot.records(kind, None).unwrap().map(Result::unwrap).collect();
    records.sort_by_key(|record| record.sequence);
    records
}

fn segment_files(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(directory).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn appended_records_come_back_identical_before_and_after_compaction() {
    let fixture = Fixture::new();
    let store = fixture.open(64 * 1024 * 1024);
    let events: Vec<IngestRecord> = (0..50)
        .map(|index| behavior(&format!("u{}", index % 7), &format!("i{index}"), "click", NOW - 86_400 * (index % 3)))
        .collect();
    let outcome = store.append_blocking(APP, DatasetKind::Behavior, &events, None, 1_000).unwrap();
    assert_eq!((outcome.first_sequence, outcome.record_count, outcome.duplicate), (1, 50, false));
    let searches = vec![search("red shoes", 3, NOW), search("blue hat", 0, NOW)];
    store.append_blocking(APP, DatasetKind::QueryLog, &searches, None, 2_000).unwrap();

    let before: Vec<IngestRecord> =
        all_records(&store, DatasetKind::Behavior).into_iter().map(|stored| stored.record).collect();
    assert_eq!(before, events);
    let report = store.compact_blocking(APP, true).unwrap();
    assert_eq!(report.records_compacted, 52);
    assert_eq!(report.files_written, 4, "three days of behavior, one of searches");
    let after = all_records(&store, DatasetKind::Behavior);
    assert_eq!(after.iter().map(|stored| stored.record.clone()).collect::<Vec<_>>(), events);
    assert_eq!(after.iter().map(|stored| stored.sequence).collect::<Vec<_>>(), (1..=50).collect::<Vec<u64>>());
    assert!(after.iter().all(|stored| stored.received_ms == 1_000));
    let searches_after: Vec<IngestRecord> =
        all_records(&store, DatasetKind::QueryLog).into_iter().map(|stored| stored.record).collect();
    assert_eq!(searches_after, searches);
    let partitions: BTreeSet<String> =
        store.snapshot(APP).unwrap().manifest.files.iter().map(|file| file.path.clone()).collect();
    assert!(partitions.iter().all(|path| path.starts_with("datasets/app_group_id=7/kind=")), "{partitions:?}");
    assert!(partitions.iter().any(|path| path.contains("/kind=behavior/dt=2026-11-28/")), "{partitions:?}");
    assert_eq!(segment_files(&fixture.log_directory()).len(), 1, "compacted segments are deleted, a fresh one remains");

    // Reopened from disk, the same data, and the sequence goes on.
    drop(store);
    let reopened = fixture.open(64 * 1024 * 1024);
    assert_eq!(all_records(&reopened, DatasetKind::Behavior).len(), 50);
    let next = reopened.append_blocking(APP, DatasetKind::QueryLog, &[search("green", 1, NOW)], None, 3_000).unwrap();
    assert_eq!(next.first_sequence, 53);
}

#[test]
fn day_ranges_and_projections_read_only_what_is_asked() {
    let fixture = Fixture::new();
    let store = fixture.open(64 * 1024 * 1024);
    let events: Vec<IngestRecord> =
        (0..30).map(|index| behavior("u", "i", "expose", NOW - 86_400 * (index % 3))).collect();
    store.append_blocking(APP, DatasetKind::Behavior, &events[..15], None, 1).unwrap();
    store.compact_blocking(APP, true).unwrap();
    store.append_blocking(APP, DatasetKind::Behavior, &events[15..], None, 2).unwrap();
    let snapshot = store.snapshot(APP).unwrap();
    let today = NOW.div_euclid(86_400);
    let options = ScanOptions { days: Some(today..=today), columns: Some(vec!["bhv_time".into(), "item_id".into()]) };
    let mut rows = 0;
    for batch in snapshot.scan(DatasetKind::Behavior, options).unwrap() {
        let batch = batch.unwrap();
        assert_eq!(batch.num_columns(), 2, "projected to item_id and bhv_time");
        rows += batch.num_rows();
    }
    assert_eq!(rows, 10, "a third of the events are from today, in files and in the log");
}

#[test]
fn a_snapshot_is_unaffected_by_later_appends_and_compactions() {
    let fixture = Fixture::new();
    let store = fixture.open(2_000);
    for index in 0..20 {
        store
            .append_blocking(APP, DatasetKind::QueryLog, &[search(&format!("q{index}"), 1, NOW)], None, index)
            .unwrap();
    }
    let snapshot = store.snapshot(APP).unwrap();
    assert!(segment_files(&fixture.log_directory()).len() > 1, "the small rotation size made several segments");
    store.compact_blocking(APP, true).unwrap();
    store.append_blocking(APP, DatasetKind::QueryLog, &[search("later", 1, NOW)], None, 99).unwrap();
    let seen: Vec<StoredRecord> = snapshot.records(DatasetKind::QueryLog, None).unwrap().map(Result::unwrap).collect();
    assert_eq!(seen.len(), 20, "pinned segments were kept for the snapshot");
    drop(snapshot);
    assert_eq!(segment_files(&fixture.log_directory()).len(), 1, "released segments are deleted");
    assert_eq!(all_records(&store, DatasetKind::QueryLog).len(), 21);
}

#[test]
fn the_latest_version_of_each_document_wins() {
    let fixture = Fixture::new();
    let store = fixture.open(64 * 1024 * 1024);
    let first = vec![
        document("add", "1", json!({"title": "one", "price": 1}), None),
        document("add", "2", json!({"title": "two"}), None),
        document("add", "3", json!({"title": "three"}), None),
        document("add", "5", json!({"title": "five, newest by timestamp"}), Some(2_000_000_000_000)),
    ];
    store.append_blocking(APP, DatasetKind::Documents, &first, None, 10).unwrap();
    store.compact_blocking(APP, true).unwrap();
    let second = vec![
        document("update", "1", json!({"price": 2}), None),
        document("delete", "2", json!({}), None),
        document("update", "4", json!({"title": "four, created by update"}), None),
        document("add", "5", json!({"title": "five, older by timestamp"}), Some(1_000_000_000_000)),
    ];
    store.append_blocking(APP, DatasetKind::Documents, &second, None, 20).unwrap();
    let third = vec![document("add", "3", json!({"title": "three again"}), None)];
    store.append_blocking(APP, DatasetKind::Documents, &third, None, 30).unwrap();
    for compacted in [false, true] {
        if compacted {
            store.compact_blocking(APP, true).unwrap();
        }
        let snapshot = store.snapshot(APP).unwrap();
        let documents: Vec<(String, serde_json::Value)> = snapshot
            .documents(Some("main"))
            .unwrap()
            .map(|document| {
                let document = document.unwrap();
                (document.primary_key, serde_json::Value::Object(document.fields))
            })
            .collect();
        assert_eq!(
            documents,
            vec![
                ("1".into(), json!({"id": "1", "title": "one", "price": 2})),
                ("3".into(), json!({"id": "3", "title": "three again"})),
                ("4".into(), json!({"id": "4", "title": "four, created by update"})),
                ("5".into(), json!({"id": "5", "title": "five, newest by timestamp"})),
            ],
            "compacted: {compacted}"
        );
        assert_eq!(snapshot.documents(Some("other")).unwrap().count(), 0);
    }
}

#[test]
fn a_batch_key_is_applied_once_even_across_compaction_and_restart() {
    let fixture = Fixture::new();
    let store = fixture.open(64 * 1024 * 1024);
    let batch = vec![search("a", 1, NOW), search("b", 1, NOW)];
    let first = store.append_blocking(APP, DatasetKind::QueryLog, &batch, Some("import:file:0"), 1).unwrap();
    let again = store.append_blocking(APP, DatasetKind::QueryLog, &batch, Some("import:file:0"), 2).unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(again.first_sequence, first.first_sequence);
    store.compact_blocking(APP, true).unwrap();
    assert!(store.append_blocking(APP, DatasetKind::QueryLog, &batch, Some("import:file:0"), 3).unwrap().duplicate);
    drop(store);
    let reopened = fixture.open(64 * 1024 * 1024);
    assert!(reopened.append_blocking(APP, DatasetKind::QueryLog, &batch, Some("import:file:0"), 4).unwrap().duplicate);
    reopened.append_blocking(APP, DatasetKind::QueryLog, &batch, Some("import:file:2"), 5).unwrap();
    drop(reopened);
    let reopened_again = fixture.open(64 * 1024 * 1024);
    assert!(
        reopened_again.append_blocking(APP, DatasetKind::QueryLog, &batch, Some("import:file:2"), 6).unwrap().duplicate,
        "a key still in the log is remembered too"
    );
    assert_eq!(all_records(&reopened_again, DatasetKind::QueryLog).len(), 4);
}

#[test]
fn a_torn_write_is_cut_off_and_acknowledged_records_survive() {
    let fixture = Fixture::new();
    let store = fixture.open(64 * 1024 * 1024);
    store.append_blocking(APP, DatasetKind::QueryLog, &[search("kept", 1, NOW)], None, 1).unwrap();
    drop(store);
    let segment = fixture.log_directory().join(&segment_files(&fixture.log_directory())[0]);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(b"TYFR\x40\x00\x00\x00half a frame");
    std::fs::write(&segment, &bytes).unwrap();
    let reopened = fixture.open(64 * 1024 * 1024);
    assert_eq!(all_records(&reopened, DatasetKind::QueryLog).len(), 1);
    let next = reopened.append_blocking(APP, DatasetKind::QueryLog, &[search("after", 1, NOW)], None, 2).unwrap();
    assert_eq!(next.first_sequence, 2);
    assert_eq!(all_records(&reopened, DatasetKind::QueryLog).len(), 2);
}

#[test]
fn compaction_interrupted_at_any_step_neither_loses_nor_duplicates() {
    for fault in [CompactionFault::AfterFilesWritten, CompactionFault::AfterManifestWritten] {
        let fixture = Fixture::new();
        let store = fixture.open(64 * 1024 * 1024);
        let events: Vec<IngestRecord> =
            (0..40).map(|index| behavior("u", &format!("i{index}"), "click", NOW - 86_400 * (index % 2))).collect();
        store.append_blocking(APP, DatasetKind::Behavior, &events[..20], Some("import:x:0"), 1).unwrap();
        store
            .append_blocking(APP, DatasetKind::Documents, &[document("add", "1", json!({"t": 1}), None)], None, 1)
            .unwrap();
        store.inject_compaction_fault(Some(fault));
        assert!(store.compact_blocking(APP, true).is_err(), "{fault:?} stops the compaction");
        // The process dies here; a new one opens the same directories.
        drop(store);
        let reopened = fixture.open(64 * 1024 * 1024);
        reopened.append_blocking(APP, DatasetKind::Behavior, &events[20..], None, 2).unwrap();
        assert_eq!(all_records(&reopened, DatasetKind::Behavior).len(), 40, "{fault:?}: before the rerun");
        reopened.compact_blocking(APP, true).unwrap();
        let records = all_records(&reopened, DatasetKind::Behavior);
        assert_eq!(
            records.iter().map(|stored| stored.record.clone()).collect::<Vec<_>>(),
            events,
            "{fault:?}: after the rerun"
        );
        let sequences: BTreeSet<u64> = records.iter().map(|stored| stored.sequence).collect();
        assert_eq!(sequences.len(), 40, "{fault:?}: no duplicates");
        let snapshot = reopened.snapshot(APP).unwrap();
        assert_eq!(snapshot.documents(None).unwrap().count(), 1);
        let paths: Vec<&String> = snapshot.manifest.files.iter().map(|file| &file.path).collect();
        let unique: BTreeSet<&String> = paths.iter().copied().collect();
        assert_eq!(paths.len(), unique.len(), "{fault:?}: each file listed once");
        assert!(
            reopened
                .append_blocking(APP, DatasetKind::Behavior, &events[..20], Some("import:x:0"), 3)
                .unwrap()
                .duplicate
        );
    }
}

#[test]
fn stats_count_what_the_trainers_will_see() {
    let fixture = Fixture::new();
    let store = fixture.open(64 * 1024 * 1024);
    store
        .append_blocking(
            APP,
            DatasetKind::Behavior,
            &[
                behavior("u1", "i1", "expose", NOW),
                behavior("u1", "i1", "click", NOW),
                behavior("u2", "i2", "expose", NOW - 86_400 * 40),
            ],
            None,
            1,
        )
        .unwrap();
    store
        .append_blocking(
            APP,
            DatasetKind::QueryLog,
            &[search("shoes", 4, NOW), search("shoes", 0, NOW), search("hats", 2, NOW - 86_400 * 30)],
            None,
            1,
        )
        .unwrap();
    store
        .append_blocking(
            APP,
            DatasetKind::Documents,
            &[
                document("add", "1", json!({}), None),
                document("add", "2", json!({}), None),
                document("delete", "2", json!({}), None),
            ],
            None,
            1,
        )
        .unwrap();
    store.compact_blocking(APP, true).unwrap();
    let stats = store.snapshot(APP).unwrap().stats(NOW).unwrap();
    assert_eq!(stats.tables[0].documents, 1);
    assert_eq!(stats.behavior.events, 3);
    assert_eq!(stats.behavior.by_type.get("expose"), Some(&2));
    assert_eq!((stats.behavior.distinct_users, stats.behavior.distinct_items), (2, 2));
    assert_eq!(
        (stats.query_log.searches, stats.query_log.raw_query_searches_with_results, stats.query_log.distinct_queries),
        (3, 2, 2)
    );
    assert_eq!(stats.records_in_log, 0);
    let ready =
        |function: &str| stats.functions.iter().find(|readiness| readiness.function_name == function).unwrap().ready;
    assert!(ready("ctr") && ready("pop") && ready("hot") && ready("suggest"));
    let empty = fixture.open(64 * 1024 * 1024);
    let empty_stats = empty.snapshot(99).unwrap().stats(NOW).unwrap();
    let hot = empty_stats.functions.iter().find(|readiness| readiness.function_name == "hot").unwrap();
    assert!(!hot.ready);
    assert!(hot.checks[0].check.contains("raw_query searches with results in the last 14 days"));
}

#[test]
fn removing_an_app_group_removes_its_log_and_files() {
    let fixture = Fixture::new();
    let store = fixture.open(64 * 1024 * 1024);
    store.append_blocking(APP, DatasetKind::QueryLog, &[search("a", 1, NOW)], None, 1).unwrap();
    store.compact_blocking(APP, true).unwrap();
    store.append_blocking(APP, DatasetKind::QueryLog, &[search("b", 1, NOW)], None, 1).unwrap();
    store.remove_app_group_blocking(APP).unwrap();
    assert!(!fixture.log_directory().exists());
    assert!(!fixture.directory.path().join("objects/datasets/app_group_id=7").exists());
    assert_eq!(all_records(&store, DatasetKind::QueryLog).len(), 0, "a new, empty stream");
}

#[test]
fn a_batch_key_reused_for_a_different_batch_is_refused() {
    let fixture = Fixture::new();
    let store = fixture.open(64 * 1024 * 1024);
    let two = vec![search("a", 1, NOW), search("b", 1, NOW)];
    store.append_blocking(APP, DatasetKind::QueryLog, &two, Some("import:f:0"), 1).unwrap();
    let error = store.append_blocking(APP, DatasetKind::QueryLog, &two[..1], Some("import:f:0"), 2).unwrap_err();
    assert!(error.to_string().contains("applied to a push of 2 records, and this push has 1"), "{error}");
    store.compact_blocking(APP, true).unwrap();
    assert!(
        store.append_blocking(APP, DatasetKind::QueryLog, &two[..1], Some("import:f:0"), 3).is_err(),
        "also once compacted"
    );
    assert_eq!(all_records(&store, DatasetKind::QueryLog).len(), 2);
}

#[test]
fn item_and_user_records_are_counted_once_per_key() {
    let fixture = Fixture::new();
    let store = fixture.open(64 * 1024 * 1024);
    let user = |id: &str| {
        validate_collection_record(
            format!("{{\"cmd\":\"ADD\",\"fields\":{{\"user_id\":\"{id}\"}}}}").as_bytes(),
            CollectionType::User,
            NOW,
        )
        .unwrap()
    };
    store.append_blocking(APP, DatasetKind::Users, &[user("u1"), user("u2"), user("u1")], None, 1).unwrap();
    assert_eq!(store.snapshot(APP).unwrap().stats(NOW).unwrap().users, 2);
}
