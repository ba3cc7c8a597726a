//! Scan throughput of the data plane: how fast a trainer can read an app group's behavior events
//! back, and what it costs to get them there (append to the ingest log, compaction to Parquet).
//!
//! Run it with `bash bench/scan.sh` (or `cargo bench -p trainyard-data --bench scan`);
//! `bench/README.md` explains what is measured and how to read the tables.
//!
//! 1. **Generate** (this process): a [`DatasetStore`] in a temp dir receives N synthetic behavior
//!    events (default 10 million), spread over 30 days, through `append_blocking` in batches of
//!    1000 (one frame, one `fdatasync` each: what one bulk push costs the store). Building the
//!    events in memory is timed apart and not counted in the append rate.
//! 2. **Compact** (a child process): the store is reopened (which replays the whole log) and
//!    `compact_blocking` turns every segment into Parquet files.
//! 3. **Scan** (one child process per phase, so that each peak RSS — `VmHWM` from
//!    `/proc/self/status` — is that phase's alone): projected scans, whole batches, decoded
//!    records, and, for reference, the same Parquet files read straight from the file system.
//!
//! Each child re-executes this binary with `TRAINYARD_BENCH_SCAN_CHILD=<phase>`; it prints one
//! `SCAN_RESULT {json}` line. Row counts are checked against N: a wrong count fails the bench.
//!
//! Run without `--bench` (as `cargo test --benches` or `--all-targets` does) it only smoke-tests
//! itself: 20 000 events, 1 MiB segments, every phase, no results file.
//!
//! Knobs (environment variables; the defaults are those of `cargo bench`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TRAINYARD_BENCH_SCAN_EVENTS` | `10000000` | events generated |
//! | `TRAINYARD_BENCH_SCAN_DAYS` | `30` | days the events are spread over |
//! | `TRAINYARD_BENCH_SCAN_BATCH` | `1000` | events per `append_blocking` call |
//! | `TRAINYARD_BENCH_SCAN_SEGMENT_BYTES` | `33554432` | log segment rotation size (the server's default, 32 MiB) |
//! | `TRAINYARD_BENCH_SCAN_ORDER` | `time` | `time`: events arrive in time order (live traffic); `random`: any day (a shuffled backfill) |
//! | `TRAINYARD_BENCH_SCAN_PHASES` | all | comma separated, from the phase names of the table |
//! | `TRAINYARD_BENCH_SCAN_REUSE_DIR` | none | keep the generated dataset there and reuse it when the settings match |
//! | `TRAINYARD_BENCH_DATA_PARENT` | the temp dir | where the dataset's temp dir is created |
//! | `TRAINYARD_BENCH_RESULTS_DIR` | `<workspace>/bench/results` | where the markdown is written |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use serde_json::{Value, json};
use trainyard_data::reader::ScanOptions;
use trainyard_data::records::{BehaviorEvent, CollectionType, DatasetKind, IngestRecord, validate_collection_record};
use trainyard_data::{DatasetConfig, DatasetStore};

/// The app group the dataset belongs to.
const APP: i64 = 1;
/// The columns of the projected scans.
const PROJECTED: [&str; 3] = ["item_id", "bhv_type", "bhv_time"];
/// How many events the per-event cost figures are measured on.
const MICRO_EVENTS: u64 = 100_000;
/// The environment variables that make this binary a child running one phase.
const CHILD_PHASE: &str = "TRAINYARD_BENCH_SCAN_CHILD";
const CHILD_DIR: &str = "TRAINYARD_BENCH_SCAN_CHILD_DIR";
const RESULT_PREFIX: &str = "SCAN_RESULT ";
/// The file in a reusable dataset dir that records how (and how fast) it was generated.
const MARKER: &str = "bench-dataset.json";

/// The phases, in order, with what each one does.
const PHASES: [(&str, &str); 8] = [
    ("compact", "reopen the store (replays the log), then compact_blocking(seal_active = true)"),
    (
        "projected",
        "Snapshot::scan, columns item_id, bhv_type, bhv_time; per row: count clicks, sum bhv_time, sum item_id bytes",
    ),
    ("projected_last_7_days", "the same, ScanOptions::days = the last 7 days (files of other days are skipped unread)"),
    (
        "projected_parallel",
        "the same as projected, one Snapshot::scan per thread over contiguous day ranges, one thread per CPU",
    ),
    ("batches", "Snapshot::scan, all 15 columns as Arrow batches; per row: sum bhv_time"),
    ("records", "Snapshot::records (decoded BehaviorEvent values); per row: sum bhv_time, count attributes"),
    (
        "direct_projected",
        "reference: the same Parquet files read with parquet's own std::fs::File reader, same 3 columns",
    ),
    ("direct_batches", "reference: the same, all 15 columns"),
];

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Time,
    Random,
}

struct Settings {
    events: u64,
    days: u64,
    batch: u64,
    segment_bytes: u64,
    order: Order,
    phases: Vec<String>,
    reuse_dir: Option<PathBuf>,
    data_parent: PathBuf,
    results_dir: PathBuf,
    smoke: bool,
}

fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|text| text.trim().to_string()).filter(|text| !text.is_empty())
}

fn env_count(name: &str, default: u64) -> u64 {
    env_text(name)
        .map(|text| text.replace('_', "").parse().unwrap_or_else(|_| panic!("{name}: not a count: {text:?}")))
        .unwrap_or(default)
}

impl Settings {
    fn from_environment(smoke: bool) -> Settings {
        let events = env_count("TRAINYARD_BENCH_SCAN_EVENTS", if smoke { 20_000 } else { 10_000_000 });
        let days = env_count("TRAINYARD_BENCH_SCAN_DAYS", 30);
        let batch = env_count("TRAINYARD_BENCH_SCAN_BATCH", 1000);
        let segment_bytes =
            env_count("TRAINYARD_BENCH_SCAN_SEGMENT_BYTES", if smoke { 1 << 20 } else { 32 * 1024 * 1024 });
        assert!(events >= 1 && days >= 1 && batch >= 1, "events, days and batch must be at least 1");
        assert!(segment_bytes >= 64 * 1024, "TRAINYARD_BENCH_SCAN_SEGMENT_BYTES: at least 64 KiB");
        let order = match env_text("TRAINYARD_BENCH_SCAN_ORDER").as_deref() {
            None | Some("time") => Order::Time,
            Some("random") => Order::Random,
            Some(other) => panic!("TRAINYARD_BENCH_SCAN_ORDER: {other:?} is not time or random"),
        };
        let phases: Vec<String> = match env_text("TRAINYARD_BENCH_SCAN_PHASES") {
            None => PHASES.iter().map(|(name, _)| name.to_string()).collect(),
            Some(text) => text.split(',').map(|name| name.trim().to_string()).collect(),
        };
        for phase in &phases {
            assert!(
                PHASES.iter().any(|(name, _)| name == phase),
                "TRAINYARD_BENCH_SCAN_PHASES: unknown phase {phase:?} (known: {})",
                PHASES.map(|(name, _)| name).join(", ")
            );
        }
        let data_parent = env_text("TRAINYARD_BENCH_DATA_PARENT").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let results_dir = env_text("TRAINYARD_BENCH_RESULTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results"));
        Settings {
            events,
            days,
            batch,
            segment_bytes,
            order,
            phases,
            reuse_dir: env_text("TRAINYARD_BENCH_SCAN_REUSE_DIR").map(PathBuf::from),
            data_parent,
            results_dir,
            smoke,
        }
    }

    /// What a reusable dataset must match.
    fn dataset_identity(&self) -> Value {
        json!({
            "events": self.events,
            "days": self.days,
            "batch": self.batch,
            "segment_bytes": self.segment_bytes,
            "order": format!("{:?}", self.order),
            "generator": 1,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic events

/// SplitMix64: a small, fast, deterministic generator (no dependency needed).
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// The first second of the first day of the dataset: `days` whole days ending yesterday (UTC).
fn first_second(days: u64) -> i64 {
    let today = chrono::Utc::now().timestamp().div_euclid(86_400);
    (today - days as i64) * 86_400
}

/// Behavior event `index` of `total`: ~1 M users, ~200 k items with a skewed popularity, about
/// 20 events per search request (`rn`), 70 % exposures, and the usual extra fields (`reach_time`,
/// `ip`, `login`). As a pushed JSON element it is about 290 bytes.
fn synthetic_event(index: u64, total: u64, first_second: i64, days: u64, order: Order) -> BehaviorEvent {
    let a = mix(index);
    let b = mix(a);
    let span = days as i64 * 86_400;
    let bhv_time = match order {
        Order::Time => first_second + ((index as u128 * span as u128) / total as u128) as i64 + (a % 300) as i64,
        Order::Random => first_second + (b % span as u64) as i64,
    }
    .min(first_second + span - 1);
    let user = mix(index / 20) % 1_000_000;
    let unit = (a >> 11) as f64 / (1u64 << 53) as f64;
    let item = (unit * unit * 200_000.0) as u64;
    let (bhv_type, bhv_value) = match b % 100 {
        0..70 => ("expose", None),
        70..90 => ("click", Some("1".to_string())),
        90..95 => ("cart", Some("1".to_string())),
        95..98 => ("collect", Some("1".to_string())),
        _ => ("buy", Some(format!("{}.00", 10 + b % 490))),
    };
    let reach = chrono::DateTime::from_timestamp(bhv_time + (b % 5) as i64, 0).expect("a valid time");
    let mut attributes = BTreeMap::new();
    attributes.insert("reach_time".to_string(), Value::String(reach.format("%Y%m%d%H%M%S").to_string()));
    attributes.insert("ip".to_string(), Value::String(format!("10.{}.{}.{}", user % 256, (user >> 8) % 256, b % 250)));
    attributes.insert("login".to_string(), Value::String(if user.is_multiple_of(3) { "0" } else { "1" }.to_string()));
    BehaviorEvent {
        user_id: Some(format!("u{user:07}")),
        imei: None,
        biz_id: "10001".to_string(),
        trace_id: "Alibaba".to_string(),
        trace_info: Some(format!("20140713.{:09}", mix(index / 20) % 1_000_000_000)),
        rn: format!("{:012x}{:08x}", mix(index / 20 + 7) >> 16, user),
        item_id: format!("item_{item:06}"),
        item_type: "goods".to_string(),
        bhv_type: bhv_type.to_string(),
        bhv_time,
        bhv_value,
        bhv_detail: None,
        attributes,
    }
}

/// The event as a client would push it (`{"cmd":"ADD","fields":{...}}`).
fn pushed_element(event: &BehaviorEvent) -> Vec<u8> {
    let mut fields = serde_json::Map::new();
    fields.insert("user_id".into(), json!(event.user_id));
    fields.insert("biz_id".into(), json!(event.biz_id));
    fields.insert("trace_id".into(), json!(event.trace_id));
    fields.insert("trace_info".into(), json!(event.trace_info));
    fields.insert("rn".into(), json!(event.rn));
    fields.insert("item_id".into(), json!(event.item_id));
    fields.insert("item_type".into(), json!(event.item_type));
    fields.insert("bhv_type".into(), json!(event.bhv_type));
    fields.insert("bhv_time".into(), json!(event.bhv_time));
    if let Some(value) = &event.bhv_value {
        fields.insert("bhv_value".into(), json!(value));
    }
    for (name, value) in &event.attributes {
        fields.insert(name.clone(), value.clone());
    }
    serde_json::to_vec(&json!({"cmd": "ADD", "fields": fields})).expect("json")
}

// ---------------------------------------------------------------------------------------------
// Process facts

/// A `kB` line of `/proc/self/status` (`VmHWM`, `VmRSS`), in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

/// A line of `/proc/self/io` (`rchar`: bytes read through read(2) and friends, page cache included).
fn io_counter(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let ticks_per_second = 100.0; // USER_HZ, 100 on every Linux this runs on
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|text| {
            let after_name = text.rsplit_once(')')?.1;
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            // Fields 14 and 15 of stat(5); `after_name` starts at field 3.
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / ticks_per_second)
        })
        .unwrap_or(f64::NAN)
}

fn directory_bytes(directory: &Path) -> (u64, usize) {
    let mut total = 0;
    let mut files = 0;
    let Ok(entries) = std::fs::read_dir(directory) else {
        return (0, 0);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            let (bytes, count) = directory_bytes(&path);
            total += bytes;
            files += count;
        } else if let Ok(metadata) = entry.metadata() {
            total += metadata.len();
            files += 1;
        }
    }
    (total, files)
}

fn command_output(program: &str, arguments: &[&str]) -> String {
    Command::new(program)
        .args(arguments)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn runtime() -> tokio::runtime::Runtime {
    // As the server: a multi-threaded runtime whose handle drives the object store.
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn open_store(directory: &Path, segment_bytes: u64, runtime: &tokio::runtime::Runtime) -> DatasetStore {
    let config = DatasetConfig { log_directory: directory.join("log"), segment_max_bytes: segment_bytes };
    DatasetStore::open_local(config, &directory.join("objects"), runtime.handle().clone()).expect("open the store")
}

// ---------------------------------------------------------------------------------------------
// Generation (in the parent)

#[derive(Debug, Clone)]
struct Generation {
    events: u64,
    generate_seconds: f64,
    append_seconds: f64,
    appends: u64,
    log_bytes: u64,
    log_segments: usize,
    hwm_kib: u64,
    mean_element_bytes: f64,
}

impl Generation {
    fn to_json(&self) -> Value {
        json!({
            "events": self.events, "generate_seconds": self.generate_seconds, "append_seconds": self.append_seconds,
            "appends": self.appends, "log_bytes": self.log_bytes, "log_segments": self.log_segments,
            "hwm_kib": self.hwm_kib, "mean_element_bytes": self.mean_element_bytes,
        })
    }

    fn from_json(value: &Value) -> Generation {
        let number = |name: &str| value[name].as_f64().unwrap_or(f64::NAN);
        Generation {
            events: number("events") as u64,
            generate_seconds: number("generate_seconds"),
            append_seconds: number("append_seconds"),
            appends: number("appends") as u64,
            log_bytes: number("log_bytes") as u64,
            log_segments: number("log_segments") as usize,
            hwm_kib: number("hwm_kib") as u64,
            mean_element_bytes: number("mean_element_bytes"),
        }
    }
}

fn generate(directory: &Path, settings: &Settings) -> Generation {
    let runtime = runtime();
    let store = open_store(directory, settings.segment_bytes, &runtime);
    let first = first_second(settings.days);
    let received_ms = chrono::Utc::now().timestamp_millis();
    let mut generate_time = Duration::ZERO;
    let mut append_time = Duration::ZERO;
    let mut appends = 0u64;
    let mut start = 0u64;
    let report_every = (settings.events / 10).max(1);
    let mut next_report = report_every;
    while start < settings.events {
        let end = (start + settings.batch).min(settings.events);
        let began = Instant::now();
        let records: Vec<IngestRecord> = (start..end)
            .map(|index| {
                IngestRecord::Behavior(synthetic_event(index, settings.events, first, settings.days, settings.order))
            })
            .collect();
        let generated = Instant::now();
        store.append_blocking(APP, DatasetKind::Behavior, &records, None, received_ms).expect("append");
        append_time += generated.elapsed();
        generate_time += generated - began;
        appends += 1;
        start = end;
        if start >= next_report && !settings.smoke {
            eprintln!(
                "scan: appended {start} of {} events ({:.0} events/s so far, appends only)",
                settings.events,
                start as f64 / append_time.as_secs_f64()
            );
            next_report += report_every;
        }
    }
    drop(store);
    let (log_bytes, log_segments) = directory_bytes(&directory.join("log"));
    let sample = (0..1000.min(settings.events))
        .map(|index| {
            pushed_element(&synthetic_event(index, settings.events, first, settings.days, settings.order)).len()
        })
        .sum::<usize>() as f64
        / 1000.min(settings.events) as f64;
    Generation {
        events: settings.events,
        generate_seconds: generate_time.as_secs_f64(),
        append_seconds: append_time.as_secs_f64(),
        appends,
        log_bytes,
        log_segments,
        hwm_kib: status_kib("VmHWM:"),
        mean_element_bytes: sample,
    }
}

/// Per-event costs on one core: what the ingest path and the log cost for one event.
fn micro_costs(settings: &Settings) -> Vec<(&'static str, f64)> {
    let count = if settings.smoke { 2_000 } else { MICRO_EVENTS };
    let first = first_second(settings.days);
    let now = chrono::Utc::now().timestamp();
    let began = Instant::now();
    let events: Vec<BehaviorEvent> =
        (0..count).map(|index| synthetic_event(index, count, first, settings.days, settings.order)).collect();
    let generate = began.elapsed();
    let elements: Vec<Vec<u8>> = events.iter().map(pushed_element).collect();
    let began = Instant::now();
    let validated: Vec<IngestRecord> = elements
        .iter()
        .map(|element| validate_collection_record(element, CollectionType::Behavior, now).expect("a valid event"))
        .collect();
    let validate = began.elapsed();
    let began = Instant::now();
    let lines: Vec<Vec<u8>> = validated.iter().map(IngestRecord::to_log_line).collect();
    let encode = began.elapsed();
    let began = Instant::now();
    let decoded: Vec<IngestRecord> =
        lines.iter().map(|line| IngestRecord::from_log_line(DatasetKind::Behavior, line).expect("decodes")).collect();
    let decode = began.elapsed();
    assert_eq!(decoded.len(), events.len());
    let mean_line = lines.iter().map(Vec::len).sum::<usize>() as f64 / lines.len() as f64;
    let per_event = |elapsed: Duration| elapsed.as_secs_f64() * 1e6 / count as f64;
    vec![
        ("build the synthetic event (bench only)", per_event(generate)),
        ("validate_collection_record (JSON element → record, the push path)", per_event(validate)),
        ("IngestRecord::to_log_line (record → log JSON, in every append)", per_event(encode)),
        ("IngestRecord::from_log_line (log JSON → record, in compaction and log replay)", per_event(decode)),
        ("mean log line, bytes (not µs)", mean_line),
    ]
}

// ---------------------------------------------------------------------------------------------
// Phases (in children)

fn run_child(phase: &str) {
    let directory = PathBuf::from(std::env::var(CHILD_DIR).expect("the child is told the dataset dir"));
    let segment_bytes: u64 = env_count("TRAINYARD_BENCH_SCAN_SEGMENT_BYTES", 32 * 1024 * 1024);
    let runtime = runtime();
    let opened = Instant::now();
    let store = open_store(&directory, segment_bytes, &runtime);
    let mut result = json!({"phase": phase});
    if phase == "compact" {
        // Opening the stream replays (decodes) every segment of the log.
        let _ = store.snapshot(APP).expect("snapshot");
        let open_seconds = opened.elapsed().as_secs_f64();
        let hwm_before = status_kib("VmHWM:");
        let (read_before, cpu_before) = (io_counter("rchar:"), cpu_seconds());
        let began = Instant::now();
        let report = store.compact_blocking(APP, true).expect("compaction");
        let seconds = began.elapsed().as_secs_f64();
        result["rows"] = json!(report.records_compacted);
        result["seconds"] = json!(seconds);
        result["open_seconds"] = json!(open_seconds);
        result["hwm_before_kib"] = json!(hwm_before);
        result["read_bytes"] = json!(io_counter("rchar:") - read_before);
        result["cpu_seconds"] = json!(cpu_seconds() - cpu_before);
        result["segments"] = json!(report.segments_compacted);
        result["files"] = json!(report.files_written);
    } else {
        let snapshot = store.snapshot(APP).expect("snapshot");
        let open_seconds = opened.elapsed().as_secs_f64();
        let hwm_before = status_kib("VmHWM:");
        let (read_before, cpu_before) = (io_counter("rchar:"), cpu_seconds());
        let began = Instant::now();
        let (rows, checksum) = match phase {
            "projected" => projected_scan(&snapshot, None),
            "projected_last_7_days" => {
                let last = snapshot.manifest.files_of(DatasetKind::Behavior).map(|file| file.day).max().unwrap_or(0);
                projected_scan(&snapshot, Some(last - 6..=last))
            }
            "projected_parallel" => parallel_projected_scan(&snapshot),
            "batches" => {
                let mut rows = 0u64;
                let mut sum = 0i64;
                for batch in snapshot.scan(DatasetKind::Behavior, ScanOptions::default()).expect("scan") {
                    let batch = batch.expect("a batch");
                    rows += batch.num_rows() as u64;
                    sum = sum.wrapping_add(bhv_time_sum(&batch));
                }
                (rows, sum as u64)
            }
            "records" => {
                let mut rows = 0u64;
                let mut sum = 0i64;
                for stored in snapshot.records(DatasetKind::Behavior, None).expect("records") {
                    let stored = stored.expect("a record");
                    let IngestRecord::Behavior(event) = &stored.record else { panic!("a behavior record") };
                    rows += 1;
                    sum = sum.wrapping_add(event.bhv_time).wrapping_add(event.attributes.len() as i64);
                }
                (rows, sum as u64)
            }
            "direct_projected" => direct_scan(&directory, &snapshot, true),
            "direct_batches" => direct_scan(&directory, &snapshot, false),
            other => panic!("unknown phase {other}"),
        };
        let seconds = began.elapsed().as_secs_f64();
        result["rows"] = json!(rows);
        result["checksum"] = json!(checksum);
        result["seconds"] = json!(seconds);
        result["open_seconds"] = json!(open_seconds);
        result["hwm_before_kib"] = json!(hwm_before);
        result["read_bytes"] = json!(io_counter("rchar:") - read_before);
        result["cpu_seconds"] = json!(cpu_seconds() - cpu_before);
        let files: Vec<_> = snapshot.manifest.files_of(DatasetKind::Behavior).collect();
        result["files"] = json!(files.len());
        result["file_bytes"] = json!(files.iter().map(|file| file.bytes).sum::<u64>());
    }
    result["hwm_kib"] = json!(status_kib("VmHWM:"));
    println!("{RESULT_PREFIX}{result}");
}

/// The trivial per-row work of the projected scans: clicks, the sum of `bhv_time`, the bytes of
/// `item_id`, folded into one checksum so that nothing is optimised away.
fn fold_projected(batch: &RecordBatch, clicks: &mut u64, times: &mut i64, item_bytes: &mut u64) {
    let items = batch.column_by_name("item_id").expect("item_id").as_string::<i32>();
    let types = batch.column_by_name("bhv_type").expect("bhv_type").as_string::<i32>();
    let times_column = batch.column_by_name("bhv_time").expect("bhv_time").as_primitive::<Int64Type>();
    for row in 0..batch.num_rows() {
        *item_bytes += items.value(row).len() as u64;
        if types.value(row) == "click" {
            *clicks += 1;
        }
        *times = times.wrapping_add(times_column.value(row));
    }
}

fn projected_columns() -> Vec<String> {
    PROJECTED.iter().map(|name| name.to_string()).collect()
}

/// The checksum of the projected scans: clicks, the sum of `bhv_time` and the bytes of
/// `item_id`, added up (so that partial scans add up to the whole).
fn projected_checksum(clicks: u64, times: i64, item_bytes: u64) -> u64 {
    clicks.wrapping_add(times as u64).wrapping_add(item_bytes)
}

fn projected_scan(snapshot: &trainyard_data::Snapshot, days: Option<std::ops::RangeInclusive<i64>>) -> (u64, u64) {
    let options = ScanOptions { days, columns: Some(projected_columns()) };
    let (mut rows, mut clicks, mut times, mut item_bytes) = (0u64, 0u64, 0i64, 0u64);
    for batch in snapshot.scan(DatasetKind::Behavior, options).expect("scan") {
        let batch = batch.expect("a batch");
        rows += batch.num_rows() as u64;
        fold_projected(&batch, &mut clicks, &mut times, &mut item_bytes);
    }
    (rows, projected_checksum(clicks, times, item_bytes))
}

fn parallel_projected_scan(snapshot: &trainyard_data::Snapshot) -> (u64, u64) {
    let threads = std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1);
    let mut days: Vec<i64> = snapshot.manifest.files_of(DatasetKind::Behavior).map(|file| file.day).collect();
    days.sort_unstable();
    days.dedup();
    if days.is_empty() {
        return projected_scan(snapshot, None);
    }
    // Contiguous day ranges with about as many days each; the first also takes the log (a scan
    // reads the log whatever its day range, so the other ranges filter it out by day).
    let per_thread = days.len().div_ceil(threads);
    let ranges: Vec<std::ops::RangeInclusive<i64>> =
        days.chunks(per_thread).map(|chunk| chunk[0]..=chunk[chunk.len() - 1]).collect();
    let partials: Vec<(u64, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            ranges.into_iter().map(|range| scope.spawn(move || projected_scan(snapshot, Some(range)))).collect();
        handles.into_iter().map(|handle| handle.join().expect("a scan thread")).collect()
    });
    partials.into_iter().fold((0, 0), |(rows, sum), (more, checksum)| (rows + more, sum.wrapping_add(checksum)))
}

fn bhv_time_sum(batch: &RecordBatch) -> i64 {
    let times = batch.column_by_name("bhv_time").expect("bhv_time").as_primitive::<Int64Type>();
    times.values().iter().fold(0i64, |sum, value| sum.wrapping_add(*value))
}

/// The snapshot's Parquet files read with parquet's reader over `std::fs::File` (positioned
/// reads of exactly what each page needs), bypassing the object store adapter.
fn direct_scan(directory: &Path, snapshot: &trainyard_data::Snapshot, projected: bool) -> (u64, u64) {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let (mut rows, mut clicks, mut times, mut item_bytes) = (0u64, 0u64, 0i64, 0u64);
    for file in snapshot.manifest.files_of(DatasetKind::Behavior) {
        let path = directory.join("objects").join(&file.path);
        let handle = std::fs::File::open(&path).expect("a data file");
        let mut builder =
            ParquetRecordBatchReaderBuilder::try_new(handle).expect("a Parquet file").with_batch_size(8192);
        if projected {
            let schema = builder.schema().clone();
            let indices = PROJECTED.iter().map(|name| schema.index_of(name).expect("a column"));
            let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
            builder = builder.with_projection(mask);
        }
        for batch in builder.build().expect("a reader") {
            let batch = batch.expect("a batch");
            rows += batch.num_rows() as u64;
            if projected {
                fold_projected(&batch, &mut clicks, &mut times, &mut item_bytes);
            } else {
                times = times.wrapping_add(bhv_time_sum(&batch));
            }
        }
    }
    (rows, if projected { projected_checksum(clicks, times, item_bytes) } else { times as u64 })
}

/// Runs one phase in a child process and returns its result line.
fn spawn_phase(phase: &str, directory: &Path, settings: &Settings) -> Value {
    let output = Command::new(std::env::current_exe().expect("this binary"))
        .env(CHILD_PHASE, phase)
        .env(CHILD_DIR, directory)
        .env("TRAINYARD_BENCH_SCAN_SEGMENT_BYTES", settings.segment_bytes.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .expect("the phase child starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "phase {phase} failed ({}); stdout: {stdout}", output.status);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(RESULT_PREFIX))
        .unwrap_or_else(|| panic!("phase {phase} printed no result; stdout: {stdout}"));
    serde_json::from_str(line).expect("a result line is JSON")
}

// ---------------------------------------------------------------------------------------------
// Report

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

fn rate(count: f64, seconds: f64) -> String {
    let per_second = count / seconds;
    if per_second >= 1e6 { format!("{:.2} M", per_second / 1e6) } else { format!("{:.0} k", per_second / 1e3) }
}

fn main() {
    if let Ok(phase) = std::env::var(CHILD_PHASE) {
        run_child(&phase);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` / `--all-targets` runs this binary
    // without it, and then it only smoke-tests itself.
    let smoke = !std::env::args().any(|argument| argument == "--bench");
    let settings = Settings::from_environment(smoke);
    if smoke {
        println!(
            "scan: no --bench argument (run by cargo test): smoke run, {} events, no results file",
            settings.events
        );
    }

    std::fs::create_dir_all(&settings.data_parent).expect("creating TRAINYARD_BENCH_DATA_PARENT");
    let temporary_dir;
    let directory = match &settings.reuse_dir {
        Some(reuse) => {
            temporary_dir = None;
            reuse.clone()
        }
        None => {
            let created = tempfile::Builder::new()
                .prefix("trainyard-scan-bench-")
                .tempdir_in(&settings.data_parent)
                .expect("temp dir");
            let path = created.path().to_path_buf();
            temporary_dir = Some(created);
            path
        }
    };
    let marker_path = directory.join(MARKER);
    let identity = settings.dataset_identity();
    let reused: Option<(Generation, Value)> = std::fs::read(&marker_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(|marker| marker["identity"] == identity)
        .map(|marker| (Generation::from_json(&marker["generation"]), marker["compaction"].clone()));
    let file_system = {
        let path = directory.to_string_lossy().into_owned();
        std::fs::create_dir_all(&directory).expect("the dataset dir");
        let found = command_output("findmnt", &["-n", "-o", "FSTYPE,SOURCE", "--target", &path]);
        found.split_whitespace().collect::<Vec<_>>().join(" on ")
    };
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
    let started_at = chrono::Utc::now();

    let (generation, compaction) = match reused {
        Some((generation, compaction)) => {
            println!("scan: reusing the dataset in {} (generated earlier with the same settings)", directory.display());
            (generation, compaction)
        }
        None => {
            if directory.join("log").exists() || directory.join("objects").exists() {
                std::fs::remove_dir_all(directory.join("log")).ok();
                std::fs::remove_dir_all(directory.join("objects")).ok();
            }
            println!("scan: generating {} events into {}", settings.events, directory.display());
            let generation = generate(&directory, &settings);
            println!(
                "scan: appended {} events in {:.1} s ({} events/s; building them took another {:.1} s)",
                generation.events,
                generation.append_seconds,
                rate(generation.events as f64, generation.append_seconds),
                generation.generate_seconds
            );
            let compaction = spawn_phase("compact", &directory, &settings);
            assert_eq!(compaction["rows"].as_u64(), Some(settings.events), "compaction compacts every event");
            println!(
                "scan: compacted in {:.1} s (after {:.1} s reopening the store)",
                compaction["seconds"].as_f64().unwrap_or(f64::NAN),
                compaction["open_seconds"].as_f64().unwrap_or(f64::NAN)
            );
            let marker = json!({"identity": identity, "generation": generation.to_json(), "compaction": compaction});
            std::fs::write(&marker_path, serde_json::to_vec_pretty(&marker).expect("json")).expect("the marker");
            (generation, compaction)
        }
    };
    let (parquet_bytes, object_files) = directory_bytes(&directory.join("objects"));

    let micro = micro_costs(&settings);

    let mut results: Vec<Value> = Vec::new();
    let mut failures = Vec::new();
    for phase in settings.phases.iter().filter(|phase| phase.as_str() != "compact") {
        let result = spawn_phase(phase, &directory, &settings);
        let rows = result["rows"].as_u64().unwrap_or(0);
        let seconds = result["seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{phase:<22} {rows:>10} rows in {seconds:>7.2} s: {:>8} events/s, peak RSS {:>7.1} MiB",
            rate(rows as f64, seconds),
            result["hwm_kib"].as_f64().unwrap_or(0.0) / 1024.0
        );
        if phase != "projected_last_7_days" && rows != settings.events {
            failures.push(format!("{phase}: {rows} rows, expected {}", settings.events));
        }
        results.push(result);
    }
    let checksums: Vec<(String, u64)> = results
        .iter()
        .filter(|result| {
            matches!(result["phase"].as_str(), Some("projected" | "projected_parallel" | "direct_projected"))
        })
        .map(|result| (result["phase"].as_str().unwrap_or("").to_string(), result["checksum"].as_u64().unwrap_or(0)))
        .collect();
    if checksums.windows(2).any(|pair| pair[0].1 != pair[1].1) {
        failures.push(format!("the projected scans disagree: {checksums:?}"));
    }

    // ---- the report
    let mut facts = String::new();
    let _ = writeln!(facts, "- date: {}", started_at.format("%Y-%m-%d %H:%M:%S UTC"));
    let _ = writeln!(
        facts,
        "- machine: nproc {}, `uname -r` {}, CPU {}, memory {}",
        command_output("nproc", &[]),
        command_output("uname", &["-r"]),
        cpu_model(),
        command_output("sh", &["-c", "free -g | awk '/Mem:/ {print $2 \" GiB\"}'"])
    );
    let _ = writeln!(facts, "- load average at start (1, 5, 15 min): {load_average}");
    let _ = writeln!(
        facts,
        "- code: git {} (`-dirty`: with uncommitted changes)",
        command_output("git", &["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"])
    );
    let _ = writeln!(
        facts,
        "- build: {}; dataset in {} ({file_system})",
        if cfg!(debug_assertions) {
            "debug assertions ON (not representative)"
        } else {
            "optimized, debug assertions off"
        },
        directory.display()
    );
    let _ = writeln!(
        facts,
        "- dataset: {} behavior events over {} days ({} order), appended {} per call, log segments of {} MiB; mean pushed element {:.0} bytes",
        settings.events,
        settings.days,
        match settings.order {
            Order::Time => "time",
            Order::Random => "random",
        },
        settings.batch,
        settings.segment_bytes >> 20,
        generation.mean_element_bytes
    );
    let _ = writeln!(
        facts,
        "- scans read a warm page cache (the files were just written; nothing is dropped), one child process per phase"
    );

    let mut build = String::new();
    build.push_str("| step | events | seconds | events/s | peak RSS MiB | notes |\n|---|--:|--:|--:|--:|---|\n");
    let _ = writeln!(
        build,
        "| build events in memory (bench only) | {} | {:.1} | {} | | not part of any rate |",
        generation.events,
        generation.generate_seconds,
        rate(generation.events as f64, generation.generate_seconds)
    );
    let _ = writeln!(
        build,
        "| append_blocking | {} | {:.1} | {} | {:.0} | {} calls of {} events: JSON encode + write + fdatasync each |",
        generation.events,
        generation.append_seconds,
        rate(generation.events as f64, generation.append_seconds),
        mib(generation.hwm_kib as f64 * 1024.0),
        generation.appends,
        settings.batch
    );
    let compact_seconds = compaction["seconds"].as_f64().unwrap_or(f64::NAN);
    let open_seconds = compaction["open_seconds"].as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        build,
        "| reopen the store with the whole log uncompacted | {} | {:.1} | {} | {:.0} | replays (decodes) every segment |",
        generation.events,
        open_seconds,
        rate(generation.events as f64, open_seconds),
        compaction["hwm_before_kib"].as_f64().unwrap_or(0.0) / 1024.0
    );
    let _ = writeln!(
        build,
        "| compact_blocking | {} | {:.1} | {} | {:.0} | {} segments → {} files; {:.2} CPU s |",
        compaction["rows"],
        compact_seconds,
        rate(compaction["rows"].as_f64().unwrap_or(0.0), compact_seconds),
        compaction["hwm_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        compaction["segments"],
        compaction["files"],
        compaction["cpu_seconds"].as_f64().unwrap_or(f64::NAN)
    );

    let events = generation.events as f64;
    let mut sizes = String::new();
    sizes.push_str("| form | bytes | MiB | bytes/event | files |\n|---|--:|--:|--:|--:|\n");
    let _ = writeln!(
        sizes,
        "| pushed JSON elements (estimate: mean element × events) | {:.0} | {:.1} | {:.0} | |",
        generation.mean_element_bytes * events,
        mib(generation.mean_element_bytes * events),
        generation.mean_element_bytes
    );
    let _ = writeln!(
        sizes,
        "| ingest log (before compaction) | {} | {:.1} | {:.0} | {} |",
        generation.log_bytes,
        mib(generation.log_bytes as f64),
        generation.log_bytes as f64 / events,
        generation.log_segments
    );
    let _ = writeln!(
        sizes,
        "| Parquet + manifest (after) | {} | {:.1} | {:.1} | {} |",
        parquet_bytes,
        mib(parquet_bytes as f64),
        parquet_bytes as f64 / events,
        object_files
    );
    let _ = writeln!(
        sizes,
        "| ratio log / Parquet | {:.2} × | | | |",
        generation.log_bytes as f64 / parquet_bytes.max(1) as f64
    );

    let mut scans = String::new();
    scans.push_str(
        "| phase | rows | seconds | events/s | peak RSS MiB | RSS before scan MiB | read(2) MiB | CPU s | files |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for result in &results {
        let rows = result["rows"].as_f64().unwrap_or(0.0);
        let seconds = result["seconds"].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            scans,
            "| {} | {} | {:.2} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {} |",
            result["phase"].as_str().unwrap_or("?"),
            rows,
            seconds,
            rate(rows, seconds),
            result["hwm_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            result["hwm_before_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            mib(result["read_bytes"].as_f64().unwrap_or(0.0)),
            result["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
            result["files"]
        );
    }
    let mut phases_legend = String::new();
    for (name, what) in PHASES {
        let _ = writeln!(phases_legend, "- `{name}`: {what}");
    }
    let mut micro_table = String::new();
    micro_table.push_str("| step (one core, in process) | µs/event | events/s |\n|---|--:|--:|\n");
    for (what, value) in &micro {
        if what.contains("bytes") {
            let _ = writeln!(micro_table, "| {what} | {value:.0} | |");
        } else {
            let _ = writeln!(micro_table, "| {what} | {value:.2} | {} |", rate(1e6, *value));
        }
    }

    let mut report = String::new();
    let _ = writeln!(report, "# scan {}\n", started_at.format("%Y-%m-%d %H:%M:%S UTC"));
    report.push_str(&facts);
    let _ = write!(
        report,
        "\n## Building the dataset\n\n{build}\n## Sizes\n\n{sizes}\n## Scans\n\n{scans}\n{phases_legend}\n## Per-event costs\n\n{micro_table}"
    );
    if !failures.is_empty() {
        let _ = write!(report, "\nFAILURES:\n- {}\n", failures.join("\n- "));
    }
    println!("\n{report}");

    if settings.smoke {
        drop(temporary_dir);
        assert!(failures.is_empty(), "{failures:?}");
        return;
    }
    std::fs::create_dir_all(&settings.results_dir).expect("creating the results dir");
    let results_dir = settings.results_dir.canonicalize().unwrap_or_else(|_| settings.results_dir.clone());
    let results_file = results_dir.join(format!("scan-{}.md", started_at.format("%Y%m%dT%H%M%SZ")));
    std::fs::write(&results_file, &report).expect("writing the results file");
    println!("written to {}", results_file.display());
    drop(temporary_dir);
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
