//! Training time and memory of the trainers: `pop` and `ctr` on behavior events (ctr with each
//! of its models, `fm` and `ftrl_lr`) and `hot` on query-log searches, each trained with the
//! catalog's default parameters on a synthetic app group.
//!
//! Run it with `bash bench/train.sh` (or `cargo bench -p trainyard-train --bench train`);
//! `bench/README.md` explains what is measured and how to read the tables.
//!
//! 1. **Generate** (this process): a [`DatasetStore`] in a temp dir receives N behavior events
//!    (requests of 5 to 15 exposures, each followed by a click with the same `rn` with the item's
//!    own click-through rate, ~25 % on average; Zipf item popularity; default 10 million events,
//!    100 k items, 500 k users) and M query-log searches (user sessions of 1 to 5 searches,
//!    Zipf query popularity over 50 k queries plus 20 queries trending 5 days at a time, 90 %
//!    `raw_query`, 95 % with hits; default 10 million), both spread in time order over the 30
//!    days ending "now", through `append_blocking` in batches of 1000, interleaved the way both
//!    kinds arrive on a live server; then one document per item (`id`, a `title` of three
//!    words, one of 50 `category` values) and one USER record per user (`age`, `gender`), which
//!    ctr reads (`id_field=id, title_field=title, category_field=category,
//!    user_fields=age,gender`; the rest are the catalog's defaults).
//! 2. **Compact** (a child process): `compact_blocking` turns the whole log into Parquet files.
//! 3. **Train** (one child process per function, so that its peak RSS — `VmHWM` from
//!    `/proc/self/status` — is its own): open the store, take a snapshot (timed), then
//!    `trainyard_train::train(function, input, context)` with the catalog's default create
//!    parameters, while a second thread samples `TrainingContext::progress()` and `VmRSS` every
//!    100 ms.
//!
//! Each child re-executes this binary with `TRAINYARD_BENCH_TRAIN_CHILD=<phase>` and prints one
//! `TRAIN_RESULT {json}` line. A trainer that fails fails the bench.
//!
//! Run without `--bench` (as `cargo test --benches` or `--all-targets` does) it only smoke-tests
//! itself: 20 000 events and 20 000 searches, 1 MiB segments, no results file.
//!
//! Knobs (environment variables; the defaults are those of `cargo bench`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TRAINYARD_BENCH_TRAIN_EVENTS` | `10000000` | behavior events generated (pop's data) |
//! | `TRAINYARD_BENCH_TRAIN_SEARCHES` | the events | query-log searches generated (hot's data) |
//! | `TRAINYARD_BENCH_TRAIN_DAYS` | `30` | days the data is spread over, ending now |
//! | `TRAINYARD_BENCH_TRAIN_ITEMS` | `100000` | distinct items (Zipf popularity) |
//! | `TRAINYARD_BENCH_TRAIN_USERS` | `500000` | distinct users |
//! | `TRAINYARD_BENCH_TRAIN_QUERIES` | `50000` | distinct queries (Zipf popularity) |
//! | `TRAINYARD_BENCH_TRAIN_FUNCTIONS` | `pop,hot,ctr` | comma separated; also `hint` |
//! | `TRAINYARD_BENCH_TRAIN_CTR_MODELS` | `fm,ftrl_lr` | the ctr models trained, one child each |
//! | `TRAINYARD_BENCH_TRAIN_SAMPLE_MS` | `100` | progress sampling period |
//! | `TRAINYARD_BENCH_TRAIN_SEGMENT_BYTES` | `33554432` | log segment rotation size (the server's default) |
//! | `TRAINYARD_BENCH_TRAIN_REUSE_DIR` | none | keep the dataset there and reuse it when the settings match |
//! | `TRAINYARD_BENCH_DATA_PARENT` | the temp dir | where the dataset's temp dir is created |
//! | `TRAINYARD_BENCH_RESULTS_DIR` | `<workspace>/bench/results` | where the markdown is written |

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trainyard_core::catalog::{FunctionName, ParameterList, VersionQuery, current_version};
use trainyard_data::records::{
    BehaviorEvent, CollectionRecord, DatasetKind, DocumentCommand, DocumentRecord, IngestRecord, QueryLogEntry,
};
use trainyard_data::{DatasetConfig, DatasetStore};
use trainyard_train::{TrainingContext, TrainingInput};

/// The app group the dataset belongs to.
const APP: i64 = 1;
/// Records per `append_blocking` call (one bulk push).
const BATCH: usize = 1000;
/// The environment variables that make this binary a child running one phase.
const CHILD_PHASE: &str = "TRAINYARD_BENCH_TRAIN_CHILD";
const CHILD_DIR: &str = "TRAINYARD_BENCH_TRAIN_CHILD_DIR";
const CHILD_NOW: &str = "TRAINYARD_BENCH_TRAIN_CHILD_NOW";
const RESULT_PREFIX: &str = "TRAIN_RESULT ";
/// The file in a reusable dataset dir that records how (and how fast) it was generated.
const MARKER: &str = "bench-dataset.json";
/// Bump when the generators change, so that an old reusable dataset is regenerated.
const GENERATOR_VERSION: u64 = 3;

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    events: u64,
    searches: u64,
    days: u64,
    items: u64,
    users: u64,
    queries: u64,
    functions: Vec<FunctionName>,
    ctr_models: Vec<String>,
    sample: Duration,
    segment_bytes: u64,
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
        let events = env_count("TRAINYARD_BENCH_TRAIN_EVENTS", if smoke { 20_000 } else { 10_000_000 });
        let searches = env_count("TRAINYARD_BENCH_TRAIN_SEARCHES", events);
        let days = env_count("TRAINYARD_BENCH_TRAIN_DAYS", 30);
        let items = env_count("TRAINYARD_BENCH_TRAIN_ITEMS", if smoke { 2_000 } else { 100_000 });
        let users = env_count("TRAINYARD_BENCH_TRAIN_USERS", if smoke { 5_000 } else { 500_000 });
        let queries = env_count("TRAINYARD_BENCH_TRAIN_QUERIES", if smoke { 1_000 } else { 50_000 });
        assert!(days >= 2, "TRAINYARD_BENCH_TRAIN_DAYS: at least 2 (the evaluations hold out the last day)");
        assert!(items >= 1 && users >= 1 && queries >= 1, "items, users and queries must be at least 1");
        let functions: Vec<FunctionName> = env_text("TRAINYARD_BENCH_TRAIN_FUNCTIONS")
            .unwrap_or_else(|| "pop,hot,ctr".into())
            .split(',')
            .map(|name| match name.trim() {
                "pop" => FunctionName::Pop,
                "hot" => FunctionName::Hot,
                "hint" => FunctionName::Hint,
                "ctr" => FunctionName::Ctr,
                other => panic!("TRAINYARD_BENCH_TRAIN_FUNCTIONS: {other:?} is not pop, hot, hint or ctr"),
            })
            .collect();
        let ctr_models: Vec<String> = env_text("TRAINYARD_BENCH_TRAIN_CTR_MODELS")
            .unwrap_or_else(|| "fm,ftrl_lr".into())
            .split(',')
            .map(|model| match model.trim() {
                "fm" | "ftrl_lr" => model.trim().to_string(),
                other => panic!("TRAINYARD_BENCH_TRAIN_CTR_MODELS: {other:?} is not fm or ftrl_lr"),
            })
            .collect();
        let sample = Duration::from_millis(env_count("TRAINYARD_BENCH_TRAIN_SAMPLE_MS", 100).max(1));
        let segment_bytes =
            env_count("TRAINYARD_BENCH_TRAIN_SEGMENT_BYTES", if smoke { 1 << 20 } else { 32 * 1024 * 1024 });
        assert!(segment_bytes >= 64 * 1024, "TRAINYARD_BENCH_TRAIN_SEGMENT_BYTES: at least 64 KiB");
        let data_parent = env_text("TRAINYARD_BENCH_DATA_PARENT").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let results_dir = env_text("TRAINYARD_BENCH_RESULTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results"));
        Settings {
            events,
            searches,
            days,
            items,
            users,
            queries,
            functions,
            ctr_models,
            sample,
            segment_bytes,
            reuse_dir: env_text("TRAINYARD_BENCH_TRAIN_REUSE_DIR").map(PathBuf::from),
            data_parent,
            results_dir,
            smoke,
        }
    }

    /// What a reusable dataset must match.
    fn dataset_identity(&self) -> Value {
        json!({
            "events": self.events,
            "searches": self.searches,
            "days": self.days,
            "items": self.items,
            "users": self.users,
            "queries": self.queries,
            "segment_bytes": self.segment_bytes,
            "batch": BATCH,
            "generator": GENERATOR_VERSION,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic data

/// SplitMix64: a small, fast, deterministic generator (no dependency needed).
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// Uniform in [0, 1) from a hash.
fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// A Zipf-like rank in `0..count` (exponent 1, continuous approximation of the inverse CDF):
/// rank 0 is the most frequent, and P(rank < k) ≈ ln(k + 1) / ln(count + 1).
fn zipf(hash: u64, count: u64) -> u64 {
    let rank = ((count as f64 + 1.0).powf(unit(hash)) - 1.0) as u64;
    rank.min(count - 1)
}

/// The time base shared by both generators: records spread in time order over `days` days
/// ending a few minutes before `now` (clicks and later searches of a session come after).
#[derive(Clone, Copy)]
struct Timeline {
    start: i64,
    span: i64,
    end: i64,
}

impl Timeline {
    fn new(now: i64, days: u64) -> Timeline {
        let start = now - days as i64 * 86_400 + 1;
        Timeline { start, span: days as i64 * 86_400 - 1_800, end: now }
    }

    /// The time of the record `produced` of `total`.
    fn at(&self, produced: u64, total: u64) -> i64 {
        self.start + ((produced as i128 * self.span as i128) / total.max(1) as i128) as i64
    }
}

/// Behavior events: search requests (`rn`) of 5 to 15 exposures to one user, each exposure of
/// item `i` followed by a click with the same `rn` with probability `ctr(i)` (0.05 to 0.45,
/// 0.25 on average, independent of popularity), a few seconds to two minutes later.
struct BehaviorGenerator {
    total: u64,
    produced: u64,
    request: u64,
    items: u64,
    users: u64,
    timeline: Timeline,
    pending: VecDeque<BehaviorEvent>,
}

/// The click-through rate of an item: 0.05 to 0.45 by a hash of the item.
fn item_click_rate(item: u64) -> f64 {
    0.25 * (0.2 + 1.6 * unit(mix(item ^ 0x5eed_c11c)))
}

impl BehaviorGenerator {
    fn new(total: u64, items: u64, users: u64, timeline: Timeline) -> BehaviorGenerator {
        BehaviorGenerator { total, produced: 0, request: 0, items, users, timeline, pending: VecDeque::new() }
    }

    fn event(&self, rn: &str, user: &str, item: u64, bhv_type: &str, time: i64) -> BehaviorEvent {
        let mut attributes = BTreeMap::new();
        attributes.insert("login".to_string(), Value::String("1".into()));
        BehaviorEvent {
            user_id: Some(user.to_string()),
            imei: None,
            biz_id: "10001".to_string(),
            trace_id: "Alibaba".to_string(),
            trace_info: None,
            rn: rn.to_string(),
            item_id: format!("item_{item:06}"),
            item_type: "goods".to_string(),
            bhv_type: bhv_type.to_string(),
            bhv_time: time.min(self.timeline.end),
            bhv_value: (bhv_type == "click").then(|| "1".to_string()),
            bhv_detail: None,
            attributes,
        }
    }

    fn fill(&mut self) {
        let request = self.request;
        self.request += 1;
        let seed = mix(request ^ 0xbe4a_7105);
        let time = self.timeline.at(self.produced, self.total);
        let user = format!("u{:07}", mix(seed) % self.users);
        let rn = format!("{seed:016x}");
        let exposures = 5 + mix(seed ^ 1) % 11;
        let mut clicks = Vec::new();
        for slot in 0..exposures {
            let hash = mix(seed.wrapping_add(slot.wrapping_mul(0x2545_f491_4f6c_dd1d)));
            let item = zipf(hash, self.items);
            self.pending.push_back(self.event(&rn, &user, item, "expose", time));
            let roll = mix(hash ^ 0xc11c);
            if unit(roll) < item_click_rate(item) {
                clicks.push(self.event(&rn, &user, item, "click", time + 3 + (roll % 120) as i64));
            }
        }
        clicks.sort_by_key(|event| event.bhv_time);
        self.pending.extend(clicks);
    }

    fn next_batch(&mut self, size: usize) -> Vec<IngestRecord> {
        let mut batch = Vec::with_capacity(size);
        while batch.len() < size && self.produced < self.total {
            if self.pending.is_empty() {
                self.fill();
            }
            let event = self.pending.pop_front().expect("a request has exposures");
            batch.push(IngestRecord::Behavior(event));
            self.produced += 1;
        }
        batch
    }
}

/// Words the query texts are made of.
const WORDS: [&str; 50] = [
    "red", "blue", "green", "black", "white", "shoes", "dress", "shirt", "jacket", "hat", "scarf", "bag", "phone",
    "case", "cable", "charger", "laptop", "stand", "desk", "lamp", "chair", "sofa", "rug", "mug", "tea", "coffee",
    "beans", "rice", "noodles", "sauce", "kids", "women", "men", "summer", "winter", "sport", "running", "yoga",
    "camera", "lens", "watch", "ring", "gold", "silver", "cotton", "wool", "leather", "mini", "pro", "max",
];

/// The text of query `rank`: one to three words, then a number past 2500.
fn query_text(rank: u64) -> String {
    let count = WORDS.len() as u64;
    let first = WORDS[(rank % count) as usize];
    if rank < count {
        return first.to_string();
    }
    let second = WORDS[((rank / count) % count) as usize];
    if rank < count * count {
        return format!("{second} {first}");
    }
    format!("{second} {first} {}", rank / (count * count))
}

/// Query-log searches: sessions of 1 to 5 searches, 20 s to 4 min apart, by a user (90 %) or
/// by nobody known (an `rn` only); the first query Zipf-popular (15 %: one of 20 trending
/// queries, each trending for 5 days), later ones the same query again (half the time) or another Zipf one.
/// 90 % are `raw_query`, 95 % have hits, 10 % are typed in upper case or with extra spaces.
struct SearchGenerator {
    total: u64,
    produced: u64,
    session: u64,
    queries: u64,
    users: u64,
    timeline: Timeline,
    pending: VecDeque<QueryLogEntry>,
}

impl SearchGenerator {
    fn new(total: u64, queries: u64, users: u64, timeline: Timeline) -> SearchGenerator {
        SearchGenerator { total, produced: 0, session: 0, queries, users, timeline, pending: VecDeque::new() }
    }

    fn fill(&mut self) {
        let session = self.session;
        self.session += 1;
        let seed = mix(session ^ 0x5ea4_c4e5);
        let start = self.timeline.at(self.produced, self.total);
        let user = (!seed.is_multiple_of(10)).then(|| format!("u{:07}", mix(seed ^ 2) % self.users));
        let searches = 1 + mix(seed ^ 3) % 5;
        let day = start.div_euclid(86_400) as u64;
        let mut rank = if unit(mix(seed ^ 4)) < 0.15 {
            // Trend `slot` of 20 lasts 5 days, the slots starting on staggered days.
            let slot = mix(seed ^ 5) % 20;
            let period = (day + slot) / 5;
            mix(period.wrapping_mul(7919).wrapping_add(slot)) % self.queries
        } else {
            zipf(mix(seed ^ 6), self.queries)
        };
        let mut time = start;
        for index in 0..searches {
            let hash = mix(seed.wrapping_add((index + 1).wrapping_mul(0x2545_f491_4f6c_dd1d)));
            if index > 0 {
                time += 20 + (hash % 220) as i64;
                if hash.is_multiple_of(2) {
                    rank = zipf(mix(hash ^ 7), self.queries);
                }
            }
            let text = query_text(rank);
            let query = match mix(hash ^ 8) % 20 {
                0 => text.to_uppercase(),
                1 => format!("  {}  ", text.replace(' ', "   ")),
                _ => text,
            };
            self.pending.push_back(QueryLogEntry {
                query,
                raw_query: unit(mix(hash ^ 9)) < 0.9,
                rn: Some(format!("{hash:016x}")),
                user_id: user.clone(),
                hits: if mix(hash ^ 10).is_multiple_of(20) { 0 } else { 1 + (mix(hash ^ 11) % 2000) as i64 },
                timestamp: time.min(self.timeline.end),
                biz_id: Some("10001".to_string()),
                attributes: BTreeMap::new(),
            });
        }
    }

    fn next_batch(&mut self, size: usize) -> Vec<IngestRecord> {
        let mut batch = Vec::with_capacity(size);
        while batch.len() < size && self.produced < self.total {
            if self.pending.is_empty() {
                self.fill();
            }
            batch.push(IngestRecord::QueryLog(self.pending.pop_front().expect("a session has searches")));
            self.produced += 1;
        }
        batch
    }
}

// ---------------------------------------------------------------------------------------------
// Process and machine facts

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

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

fn rate(count: f64, seconds: f64) -> String {
    let per_second = count / seconds;
    if per_second >= 1e6 { format!("{:.2} M", per_second / 1e6) } else { format!("{:.0} k", per_second / 1e3) }
}

// ---------------------------------------------------------------------------------------------
// Generation (in the parent)

#[derive(Debug, Clone)]
struct Generation {
    now: i64,
    events: u64,
    searches: u64,
    generate_seconds: f64,
    append_seconds: f64,
    appends: u64,
    log_bytes: u64,
    log_segments: usize,
    /// Item documents and USER records (ctr's item and user fields).
    documents: u64,
    user_records: u64,
}

impl Generation {
    fn to_json(&self) -> Value {
        json!({
            "now": self.now, "events": self.events, "searches": self.searches,
            "generate_seconds": self.generate_seconds, "append_seconds": self.append_seconds,
            "appends": self.appends, "log_bytes": self.log_bytes, "log_segments": self.log_segments,
            "documents": self.documents, "user_records": self.user_records,
        })
    }

    fn from_json(value: &Value) -> Generation {
        let number = |name: &str| value[name].as_f64().unwrap_or(f64::NAN);
        Generation {
            now: value["now"].as_i64().expect("the marker records now"),
            events: number("events") as u64,
            searches: number("searches") as u64,
            generate_seconds: number("generate_seconds"),
            append_seconds: number("append_seconds"),
            appends: number("appends") as u64,
            log_bytes: number("log_bytes") as u64,
            log_segments: number("log_segments") as usize,
            documents: number("documents") as u64,
            user_records: number("user_records") as u64,
        }
    }
}

/// Appends both kinds, a batch at a time, always the kind that is behind in time (so that the
/// log interleaves them as a live server's does).
fn generate(directory: &Path, settings: &Settings) -> Generation {
    let runtime = runtime();
    let store = open_store(directory, settings.segment_bytes, &runtime);
    let now = chrono::Utc::now().timestamp();
    let timeline = Timeline::new(now, settings.days);
    let mut behavior = BehaviorGenerator::new(settings.events, settings.items, settings.users, timeline);
    let mut searches = SearchGenerator::new(settings.searches, settings.queries, settings.users, timeline);
    let received_ms = now * 1000;
    let mut generate_time = Duration::ZERO;
    let mut append_time = Duration::ZERO;
    let mut appends = 0u64;
    let total = settings.events + settings.searches;
    let report_every = (total / 10).max(1);
    let mut next_report = report_every;
    loop {
        let behavior_share = behavior.produced as f64 / settings.events.max(1) as f64;
        let search_share = searches.produced as f64 / settings.searches.max(1) as f64;
        let behavior_left = behavior.produced < settings.events;
        let searches_left = searches.produced < settings.searches;
        let kind = match (behavior_left, searches_left) {
            (false, false) => break,
            (true, false) => DatasetKind::Behavior,
            (false, true) => DatasetKind::QueryLog,
            (true, true) if behavior_share <= search_share => DatasetKind::Behavior,
            (true, true) => DatasetKind::QueryLog,
        };
        let began = Instant::now();
        let records = match kind {
            DatasetKind::Behavior => behavior.next_batch(BATCH),
            _ => searches.next_batch(BATCH),
        };
        let generated = Instant::now();
        store.append_blocking(APP, kind, &records, None, received_ms).expect("append");
        append_time += generated.elapsed();
        generate_time += generated - began;
        appends += 1;
        let done = behavior.produced + searches.produced;
        if done >= next_report && !settings.smoke {
            eprintln!(
                "train: appended {done} of {total} records ({:.0} records/s so far, appends only)",
                done as f64 / append_time.as_secs_f64()
            );
            next_report += report_every;
        }
    }
    let (documents, user_records) = append_items_and_users(&store, settings, received_ms, &mut append_time);
    drop(store);
    let (log_bytes, log_segments) = directory_bytes(&directory.join("log"));
    Generation {
        documents,
        user_records,
        now,
        events: behavior.produced,
        searches: searches.produced,
        generate_seconds: generate_time.as_secs_f64(),
        append_seconds: append_time.as_secs_f64(),
        appends,
        log_bytes,
        log_segments,
    }
}

/// One document per item (`id`, a three-word `title`, one of 50 `category` values) and one USER
/// record per user (`age` 15 to 74, `gender`), for ctr's item and user features. Returns how
/// many of each were appended.
fn append_items_and_users(
    store: &DatasetStore,
    settings: &Settings,
    received_ms: i64,
    append_time: &mut Duration,
) -> (u64, u64) {
    let document = |item: u64| {
        let hash = mix(item ^ 0xd0c5);
        let title: Vec<&str> = (0..3).map(|word| WORDS[(mix(hash ^ word) % WORDS.len() as u64) as usize]).collect();
        let fields =
            json!({"id": format!("item_{item:06}"), "title": title.join(" "), "category": format!("cat{}", hash % 50)});
        IngestRecord::Document(DocumentRecord {
            table: "main".into(),
            primary_key: format!("item_{item:06}"),
            command: DocumentCommand::Add,
            timestamp_ms: None,
            fields: fields.as_object().cloned().unwrap_or_default(),
        })
    };
    let user_record = |user: u64| {
        let hash = mix(user ^ 0x05e7);
        let fields = json!({"user_id": format!("u{user:07}"), "age": 15 + hash % 60, "gender": if hash.is_multiple_of(2) { "F" } else { "M" }});
        IngestRecord::User(CollectionRecord {
            key: format!("u{user:07}"),
            fields: fields.as_object().cloned().unwrap_or_default(),
        })
    };
    let mut append = |kind: DatasetKind, count: u64, make: &dyn Fn(u64) -> IngestRecord| {
        let mut first = 0;
        while first < count {
            let records: Vec<IngestRecord> = (first..(first + BATCH as u64).min(count)).map(make).collect();
            let began = Instant::now();
            store.append_blocking(APP, kind, &records, None, received_ms).expect("append");
            *append_time += began.elapsed();
            first += records.len() as u64;
        }
        count
    };
    (
        append(DatasetKind::Documents, settings.items, &document),
        append(DatasetKind::Users, settings.users, &user_record),
    )
}

/// Runs one phase in a child process and returns its result line.
fn spawn_phase(phase: &str, directory: &Path, now: i64, settings: &Settings) -> Value {
    let output = Command::new(std::env::current_exe().expect("this binary"))
        .env(CHILD_PHASE, phase)
        .env(CHILD_DIR, directory)
        .env(CHILD_NOW, now.to_string())
        .env("TRAINYARD_BENCH_TRAIN_SEGMENT_BYTES", settings.segment_bytes.to_string())
        .env("TRAINYARD_BENCH_TRAIN_SAMPLE_MS", settings.sample.as_millis().to_string())
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
// Phases (in children)

fn model_type(function: FunctionName) -> &'static str {
    match function {
        FunctionName::Pop => "pop",
        FunctionName::Ctr => "tf_checkpoint",
        _ => "offline_inference",
    }
}

/// One progress sample: milliseconds since training began, the progress, VmRSS in KiB.
type Sample = (u64, u32, u64);

fn run_child(phase: &str) {
    let directory = PathBuf::from(std::env::var(CHILD_DIR).expect("the child is told the dataset dir"));
    let segment_bytes: u64 = env_count("TRAINYARD_BENCH_TRAIN_SEGMENT_BYTES", 32 * 1024 * 1024);
    let runtime = runtime();
    let opened = Instant::now();
    let store = open_store(&directory, segment_bytes, &runtime);
    let mut result = json!({"phase": phase});
    if phase == "compact" {
        let _ = store.snapshot(APP).expect("snapshot");
        let open_seconds = opened.elapsed().as_secs_f64();
        let cpu_before = cpu_seconds();
        let began = Instant::now();
        let report = store.compact_blocking(APP, true).expect("compaction");
        result["seconds"] = json!(began.elapsed().as_secs_f64());
        result["open_seconds"] = json!(open_seconds);
        result["cpu_seconds"] = json!(cpu_seconds() - cpu_before);
        result["rows"] = json!(report.records_compacted);
        result["segments"] = json!(report.segments_compacted);
        result["files"] = json!(report.files_written);
        result["hwm_kib"] = json!(status_kib("VmHWM:"));
        println!("{RESULT_PREFIX}{result}");
        return;
    }

    // `ctr:fm` trains ctr with model fm.
    let (function_name, ctr_model) = match phase.split_once(':') {
        Some((function_name, model)) => (function_name, Some(model)),
        None => (phase, None),
    };
    let function = FunctionName::parse(function_name).expect("a function name");
    let now: i64 = std::env::var(CHILD_NOW).ok().and_then(|text| text.parse().ok()).expect("the child is told now");
    let sample_every = Duration::from_millis(env_count("TRAINYARD_BENCH_TRAIN_SAMPLE_MS", 100).max(1));
    let model_type = model_type(function);
    let version = current_version(VersionQuery {
        function_name: function,
        model_type,
        function_type: "PAAS",
        domain: "",
        category: "",
    })
    .expect("a catalog version");
    let mut parameters = version.effective_parameters(ParameterList::Create, &[]);
    if function == FunctionName::Ctr {
        for (name, value) in [
            ("id_field", "id"),
            ("title_field", "title"),
            ("category_field", "category"),
            ("user_fields", "age,gender"),
            ("model", ctr_model.unwrap_or("fm")),
        ] {
            parameters.insert(name.to_string(), value.to_string());
        }
    }

    let snapshot_began = Instant::now();
    let snapshot = store.snapshot(APP).expect("snapshot");
    let snapshot_seconds = snapshot_began.elapsed().as_secs_f64();
    let open_seconds = opened.elapsed().as_secs_f64();
    let kind = if matches!(function, FunctionName::Pop | FunctionName::Ctr) {
        DatasetKind::Behavior
    } else {
        DatasetKind::QueryLog
    };
    let files: Vec<_> = snapshot.manifest.files_of(kind).collect();
    let (file_count, file_rows, file_bytes) = (
        files.len(),
        files.iter().map(|file| file.rows).sum::<u64>(),
        files.iter().map(|file| file.bytes).sum::<u64>(),
    );
    let rss_before = status_kib("VmRSS:");
    let hwm_before = status_kib("VmHWM:");

    let input = TrainingInput { snapshot: &snapshot, now_seconds: now, model_type, parameters: parameters.clone() };
    let context = TrainingContext::new();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let context = context.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let began = Instant::now();
            let mut samples: Vec<Sample> = Vec::new();
            let mut next = began;
            while !stop.load(Ordering::Relaxed) {
                samples.push((began.elapsed().as_millis() as u64, context.progress(), status_kib("VmRSS:")));
                next += sample_every;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            samples
        })
    };
    let cpu_before = cpu_seconds();
    let began = Instant::now();
    let trained = trainyard_train::train(function, &input, &context);
    let seconds = began.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let mut samples = sampler.join().expect("the sampler thread");
    samples.push(((seconds * 1000.0) as u64, context.progress(), status_kib("VmRSS:")));

    result["function"] = json!(function.as_str());
    result["model_type"] = json!(model_type);
    result["parameters"] = json!(parameters);
    result["seconds"] = json!(seconds);
    result["cpu_seconds"] = json!(cpu);
    result["open_seconds"] = json!(open_seconds);
    result["snapshot_seconds"] = json!(snapshot_seconds);
    result["files"] = json!(file_count);
    result["file_rows"] = json!(file_rows);
    result["file_bytes"] = json!(file_bytes);
    result["rss_before_kib"] = json!(rss_before);
    result["hwm_before_kib"] = json!(hwm_before);
    result["hwm_kib"] = json!(status_kib("VmHWM:"));
    result["samples"] = json!(samples);
    match trained {
        Ok(model) => {
            result["artifact_bytes"] = json!(model.artifact.len());
            result["metrics"] = model.metrics;
            result["data_report"] = model.data_report;
            result["warnings"] = json!(model.warnings);
        }
        Err(error) => result["error"] = json!(error.to_string()),
    }
    println!("{RESULT_PREFIX}{result}");
}

// ---------------------------------------------------------------------------------------------
// Progress analysis

/// What the sampled progress shows.
struct ProgressSummary {
    samples: usize,
    distinct: BTreeSet<u32>,
    /// The longest time the progress did not change: (from ms, length ms, value).
    longest_flat: (u64, u64, u32),
    /// Time spent at the last value before the end (typically 95 while the model is built).
    final_flat: (u64, u32),
    /// (ms, progress, RSS KiB) the first time the progress reached each tenth, and at the end.
    timeline: Vec<Sample>,
    peak_sampled_rss_kib: u64,
}

fn summarize_progress(samples: &[Sample]) -> ProgressSummary {
    let distinct: BTreeSet<u32> = samples.iter().map(|sample| sample.1).collect();
    // Stretches of equal value: from the first sample with it to the first sample with another.
    let mut stretches: Vec<(u64, u64, u32)> = Vec::new();
    let mut index = 0;
    while index < samples.len() {
        let (from, value, _) = samples[index];
        let mut next = index + 1;
        while next < samples.len() && samples[next].1 == value {
            next += 1;
        }
        let until = if next < samples.len() { samples[next].0 } else { samples[samples.len() - 1].0 };
        stretches.push((from, until.saturating_sub(from), value));
        index = next;
    }
    let longest_flat = stretches.iter().copied().max_by_key(|stretch| stretch.1).unwrap_or((0, 0, 0));
    // The last value below 100 (train() sets 100 only when it returns).
    let final_flat = stretches
        .iter()
        .rev()
        .find(|stretch| stretch.2 < 100)
        .map(|stretch| {
            let end = samples.last().map(|sample| sample.0).unwrap_or(0);
            (end.saturating_sub(stretch.0), stretch.2)
        })
        .unwrap_or((0, 0));
    let mut timeline = Vec::new();
    let mut next_tenth = 0;
    for sample in samples {
        if sample.1 >= next_tenth {
            timeline.push(*sample);
            next_tenth = (sample.1 / 10 + 1) * 10;
        }
    }
    if let Some(last) = samples.last()
        && timeline.last() != Some(last)
    {
        timeline.push(*last);
    }
    ProgressSummary {
        samples: samples.len(),
        distinct,
        longest_flat,
        final_flat,
        timeline,
        peak_sampled_rss_kib: samples.iter().map(|sample| sample.2).max().unwrap_or(0),
    }
}

fn samples_of(result: &Value) -> Vec<Sample> {
    result["samples"]
        .as_array()
        .map(|samples| {
            samples
                .iter()
                .filter_map(|sample| {
                    Some((sample[0].as_u64()?, sample[1].as_u64()? as u32, sample[2].as_u64().unwrap_or(0)))
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Report

/// The figures of a trainer's metrics and data report worth a column.
fn headline_metrics(function: &str, result: &Value) -> String {
    let metrics = &result["metrics"];
    let number = |value: &Value| value.as_f64().map(|value| format!("{value:.4}")).unwrap_or_else(|| "null".into());
    match function {
        "pop" => format!(
            "auc {}, baseline_auc {}, holdout impressions {} (sample rate {})",
            number(&metrics["auc"]),
            number(&metrics["baseline_auc"]),
            metrics["holdout_impressions"],
            metrics["holdout_sample_rate"]
        ),
        "ctr" => format!(
            "auc {}, baseline_auc {}, {} training examples x {} epochs at {} examples/s ({} s learning), holdout {}",
            number(&metrics["auc"]),
            number(&metrics["baseline_auc"]),
            metrics["training_examples"],
            metrics["epochs"],
            metrics["examples_per_second"].as_f64().map(|rate| format!("{rate:.0}")).unwrap_or_default(),
            number(&metrics["train_seconds"]),
            metrics["holdout_examples"]
        ),
        "hot" => format!(
            "precision_at_10 {}, coverage {}, coverage_at_10 {}; entries new/hot/surging {}/{}/{}",
            number(&metrics["precision_at_10"]),
            number(&metrics["coverage"]),
            number(&metrics["coverage_at_10"]),
            metrics["entries_new"],
            metrics["entries_hot"],
            metrics["entries_surging"]
        ),
        _ => {
            let mut shown = metrics.clone();
            if let Some(object) = shown.as_object_mut() {
                object.retain(|_, value| value.is_number() || value.is_null());
            }
            shown.to_string()
        }
    }
}

fn data_summary(function: &str, result: &Value) -> String {
    let report = &result["data_report"];
    match function {
        "pop" => format!(
            "rows read {} per pass (2 passes), events used {}, items {}, users {}",
            report["rows_read"], report["events_used"], report["items"], report["users"]
        ),
        "ctr" => format!(
            "impressions {}, clicks joined {}, examples {}, items with documents {}, behavior users with records {}",
            report["impressions"],
            report["clicks_joined"],
            report["examples"],
            report["items_with_documents"],
            report["behavior_users_with_records"]
        ),
        "hot" | "hint" => format!(
            "rows read {}, searches counted {}, distinct queries {}, users {}, entries {}",
            report["query_log"]["rows_read"],
            report["query_log"]["searches_counted"],
            report["distinct_queries"],
            report["users"],
            report["entries"]
        ),
        _ => String::new(),
    }
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
            "train: no --bench argument (run by cargo test): smoke run, {} events and {} searches, no results file",
            settings.events, settings.searches
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
                .prefix("trainyard-train-bench-")
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
            println!(
                "train: reusing the dataset in {} (generated earlier with the same settings)",
                directory.display()
            );
            (generation, compaction)
        }
        None => {
            std::fs::remove_dir_all(directory.join("log")).ok();
            std::fs::remove_dir_all(directory.join("objects")).ok();
            std::fs::remove_file(&marker_path).ok();
            println!(
                "train: generating {} behavior events and {} searches into {}",
                settings.events,
                settings.searches,
                directory.display()
            );
            let generation = generate(&directory, &settings);
            let records = (generation.events + generation.searches) as f64;
            println!(
                "train: appended {} records in {:.1} s ({} records/s; building them took another {:.1} s)",
                records,
                generation.append_seconds,
                rate(records, generation.append_seconds),
                generation.generate_seconds
            );
            let compaction = spawn_phase("compact", &directory, generation.now, &settings);
            assert_eq!(
                compaction["rows"].as_u64(),
                Some(generation.events + generation.searches + generation.documents + generation.user_records),
                "compaction compacts every record"
            );
            println!("train: compacted in {:.1} s", compaction["seconds"].as_f64().unwrap_or(f64::NAN));
            let marker = json!({"identity": identity, "generation": generation.to_json(), "compaction": compaction});
            std::fs::write(&marker_path, serde_json::to_vec_pretty(&marker).expect("json")).expect("the marker");
            (generation, compaction)
        }
    };
    let (parquet_bytes, object_files) = directory_bytes(&directory.join("objects"));

    let mut results: Vec<Value> = Vec::new();
    let mut failures = Vec::new();
    let phases: Vec<String> = settings
        .functions
        .iter()
        .flat_map(|function| match function {
            FunctionName::Ctr => settings.ctr_models.iter().map(|model| format!("ctr:{model}")).collect(),
            other => vec![other.as_str().to_string()],
        })
        .collect();
    for phase in &phases {
        let function = phase.split(':').next().unwrap_or(phase);
        println!("train: training {phase} ...");
        let result = spawn_phase(phase, &directory, generation.now, &settings);
        let seconds = result["seconds"].as_f64().unwrap_or(f64::NAN);
        if let Some(error) = result["error"].as_str() {
            println!("train: {phase} FAILED after {seconds:.2} s: {error}");
            failures.push(format!("{phase}: {error}"));
        } else {
            println!(
                "train: {phase} trained in {seconds:.2} s, peak RSS {:.0} MiB; {}",
                mib(result["hwm_kib"].as_f64().unwrap_or(0.0)),
                headline_metrics(function, &result)
            );
        }
        results.push(result);
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
        "- dataset: one app group; {} behavior events (expose, and a click with the same rn for ~25 % of them; {} items, Zipf popularity; {} users) and {} query-log searches ({} queries, Zipf popularity; sessions of 1-5 searches), over {} days ending at {} (the trainers' now); appended {} per call, interleaved by time, log segments of {} MiB",
        generation.events,
        settings.items,
        settings.users,
        generation.searches,
        settings.queries,
        settings.days,
        chrono::DateTime::from_timestamp(generation.now, 0)
            .map(|time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default(),
        BATCH,
        settings.segment_bytes >> 20
    );
    let _ = writeln!(
        facts,
        "- each trainer runs in a child process of its own (peak RSS = its VmHWM), on a warm page cache, with the catalog's default create parameters; progress sampled every {} ms",
        settings.sample.as_millis()
    );

    let records = (generation.events + generation.searches) as f64;
    let mut build = String::new();
    build.push_str("| step | records | seconds | records/s | peak RSS MiB | notes |\n|---|--:|--:|--:|--:|---|\n");
    let _ = writeln!(
        build,
        "| build records in memory (bench only) | {records} | {:.1} | {} | | not part of any rate |",
        generation.generate_seconds,
        rate(records, generation.generate_seconds)
    );
    let _ = writeln!(
        build,
        "| append_blocking | {records} | {:.1} | {} | | {} calls of {BATCH}; log {:.0} MiB in {} segments |",
        generation.append_seconds,
        rate(records, generation.append_seconds),
        generation.appends,
        generation.log_bytes as f64 / 1048576.0,
        generation.log_segments
    );
    let compact_seconds = compaction["seconds"].as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        build,
        "| compact_blocking | {} | {:.1} | {} | {:.0} | {} segments → {} files; {:.1} CPU s; Parquet {:.0} MiB in {} files |",
        compaction["rows"],
        compact_seconds,
        rate(compaction["rows"].as_f64().unwrap_or(0.0), compact_seconds),
        mib(compaction["hwm_kib"].as_f64().unwrap_or(0.0)),
        compaction["segments"],
        compaction["files"],
        compaction["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
        parquet_bytes as f64 / 1048576.0,
        object_files
    );

    let mut training = String::new();
    training.push_str(
        "| function | model type | rows of its kind | Parquet files / MiB | snapshot s | train s | rows/s | CPU s | RSS before MiB | peak RSS MiB | artifact bytes | outcome |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    let mut details = String::new();
    let mut progress_section = String::new();
    for result in &results {
        let function = result["phase"].as_str().unwrap_or("?");
        // `ctr:fm` is ctr's phase for model fm.
        let function_name = function.split(':').next().unwrap_or(function);
        let seconds = result["seconds"].as_f64().unwrap_or(f64::NAN);
        let rows = result["file_rows"].as_f64().unwrap_or(0.0);
        let outcome = match result["error"].as_str() {
            Some(error) => format!("FAILED: {error}"),
            None => headline_metrics(function_name, result),
        };
        let _ = writeln!(
            training,
            "| {function} | {} | {rows} | {} / {:.1} | {:.3} | {seconds:.2} | {} | {:.2} | {:.0} | {:.0} | {} | {outcome} |",
            result["model_type"].as_str().unwrap_or("?"),
            result["files"],
            result["file_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
            result["snapshot_seconds"].as_f64().unwrap_or(f64::NAN),
            rate(rows, seconds),
            result["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
            mib(result["rss_before_kib"].as_f64().unwrap_or(0.0)),
            mib(result["hwm_kib"].as_f64().unwrap_or(0.0)),
            result["artifact_bytes"].as_u64().map(|bytes| bytes.to_string()).unwrap_or_else(|| "-".into()),
        );
        let _ = writeln!(details, "- `{function}` parameters: `{}`", result["parameters"]);
        if result["error"].is_null() {
            let _ = writeln!(details, "  - data: {}", data_summary(function_name, result));
            let _ = writeln!(details, "  - metrics: `{}`", result["metrics"]);
            let warnings: Vec<&str> =
                result["warnings"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if !warnings.is_empty() {
                let _ = writeln!(details, "  - warnings: {}", warnings.join("; "));
            }
        }

        let summary = summarize_progress(&samples_of(result));
        let (flat_from, flat_length, flat_value) = summary.longest_flat;
        let (final_length, final_value) = summary.final_flat;
        let timeline: Vec<String> = summary
            .timeline
            .iter()
            .map(|(ms, progress, rss)| format!("{:.1} s {progress} % {:.0} MiB", *ms as f64 / 1000.0, mib(*rss as f64)))
            .collect();
        let _ = writeln!(
            progress_section,
            "| {function} | {} | {} | {:.1} s at {flat_value} % (from {:.1} s) | {:.1} s at {final_value} % ({:.0} % of the run) | {:.0} |",
            summary.samples,
            summary.distinct.len(),
            flat_length as f64 / 1000.0,
            flat_from as f64 / 1000.0,
            final_length as f64 / 1000.0,
            100.0 * final_length as f64 / (seconds * 1000.0),
            mib(summary.peak_sampled_rss_kib as f64)
        );
        let _ = writeln!(details, "  - progress (first sample at each tenth, and the end): {}", timeline.join(" → "));
        let values: Vec<String> = summary.distinct.iter().map(u32::to_string).collect();
        let _ = writeln!(details, "  - progress values seen: {}", values.join(", "));
    }

    let mut report = String::new();
    let _ = writeln!(report, "# train {}\n", started_at.format("%Y-%m-%d %H:%M:%S UTC"));
    report.push_str(&facts);
    let _ = write!(
        report,
        "\n## Building the dataset\n\n{build}\n## Training\n\n{training}\n\
         rows/s: rows of the trained kind in the snapshot / train seconds (pop reads them twice, hot once over 28 of the 30 days, ctr once, then learns `epochs` passes over its examples: its metrics give examples/s of the learning alone).\n\n\
         ## Progress as the runner sees it\n\n\
         | function | samples | distinct values | longest flat stretch | last value before the end | peak sampled RSS MiB |\n|---|--:|--:|---|---|--:|\n{progress_section}\n\
         ## Details\n\n{details}"
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
    let results_file = results_dir.join(format!("train-{}.md", started_at.format("%Y%m%dT%H%M%SZ")));
    std::fs::write(&results_file, &report).expect("writing the results file");
    println!("written to {}", results_file.display());
    drop(temporary_dir);
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
