//! Ingest throughput: behavior events pushed over HTTP by N concurrent signed clients, and loaded
//! by `trainyard import` from a generated file (then loaded again, to time the resume path).
//!
//! Run it with `bash bench/ingest.sh` (or `cargo bench -p trainyard --bench ingest`);
//! `bench/README.md` explains what is measured and how to read the tables.
//!
//! **HTTP.** The real `trainyard` binary (the one cargo built for this profile) is started on a
//! fresh data dir, as the HTTP tests do (`tests/http/support.rs`); an app group is created; then
//! for each concurrency level N clients (tokio tasks, one keep-alive HTTP/1.1 pool) loop
//! **sign → POST → await the parsed answer** on the v3 bulk endpoint
//! (`…/data-collection-type/BEHAVIOR/actions/bulk`), each request a JSON array of 1000 synthetic
//! events of about 290 bytes each. The bodies are built before the clock starts (client-side JSON
//! encoding is not measured) and cycled; every request is signed afresh (SHA-256 of the body, of
//! the canonical request, HMAC, a new nonce). A request counts as an error unless it answers
//! HTTP 200 with every record accepted.
//!
//! For reference it also runs the same bodies through `DatasetStore::push_blocking` in this
//! process (split, validate, encode, append + fdatasync: the server's data path without HTTP,
//! signature or nonce), on 1 and on all CPUs.
//!
//! **Import.** A CSV (and optionally JSON Lines) file of synthetic events is written to a temp
//! dir; `trainyard import --kind behavior FILE` is run against the server and timed end to end;
//! then it is run again: every batch is then already applied (its batch key is known), which is
//! the resume path of an interrupted import.
//!
//! Run without `--bench` (as `cargo test --benches` or `--all-targets` does) it only smoke-tests
//! itself: 0.3 s per row at 1 and 4 clients, a 5 000-row import, no results file.
//!
//! Knobs (environment variables; the defaults are those of `cargo bench`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TRAINYARD_BENCH_INGEST_PARTS` | `http,direct,import` | which parts run |
//! | `TRAINYARD_BENCH_SECONDS` | `10` | measured seconds per concurrency level (HTTP and direct rows) |
//! | `TRAINYARD_BENCH_WARMUP_SECONDS` | `2` | unrecorded seconds before each row |
//! | `TRAINYARD_BENCH_CONCURRENCY` | `1,4,16` | concurrent HTTP clients, comma separated |
//! | `TRAINYARD_BENCH_INGEST_BATCH` | `1000` | events per request (the server takes at most 1000) |
//! | `TRAINYARD_BENCH_INGEST_BODIES` | `64` | distinct pre-built bodies, cycled |
//! | `TRAINYARD_BENCH_INGEST_SIGNER` | `fast` | `fast`: the server's own signing code (sha2 crate, as `trainyard import` signs); `support`: the test client of `tests/http/support.rs` (a plain SHA-256 written for the tests) |
//! | `TRAINYARD_BENCH_CLIENT_THREADS` | available CPUs | worker threads of the client runtime |
//! | `TRAINYARD_BENCH_IMPORT_ROWS` | `1000000` | rows of the generated import file |
//! | `TRAINYARD_BENCH_IMPORT_FORMATS` | `csv` | comma separated, from `csv`, `jsonl` |
//! | `TRAINYARD_BENCH_IMPORT_CONCURRENCY` | import's default (4) | `--concurrency` of `trainyard import` |
//! | `TRAINYARD_BENCH_COMPACTION_INTERVAL_SECONDS` | `3600` | the server's compactor period (the default, 60 s, would compact in the middle of the rows) |
//! | `TRAINYARD_BENCH_DATA_PARENT` | the temp dir | where the server's data dir and the import files are created |
//! | `TRAINYARD_BENCH_RESULTS_DIR` | `<workspace>/bench/results` | where the markdown is written |

// `support.rs` carries its own `#![allow(dead_code)]`: the bench uses only part of it.
#[path = "common/machine.rs"]
mod machine;
#[path = "../tests/http/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};
use support::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, TestServer, encode_segment};
use trainyard_api::signature::{
    ACS3_ALGORITHM, WireRequest, acs3_canonical_request, acs3_signature, acs3_string_to_sign, sha256_hex,
};
use trainyard_data::ingest::PushTarget;
use trainyard_data::records::CollectionType;
use trainyard_data::{DatasetConfig, DatasetStore};

/// How many error kinds are kept with an example each.
const ERROR_EXAMPLES: usize = 5;

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    Fast,
    Support,
}

struct Settings {
    http: bool,
    direct: bool,
    import: bool,
    measure: Duration,
    warmup: Duration,
    concurrency: Vec<usize>,
    batch: usize,
    bodies: usize,
    signer: Signer,
    client_threads: usize,
    import_rows: u64,
    import_formats: Vec<String>,
    import_concurrency: Option<String>,
    compaction_interval: String,
    data_parent: PathBuf,
    results_dir: PathBuf,
    smoke: bool,
}

fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|text| text.trim().to_string()).filter(|text| !text.is_empty())
}

fn env_seconds(name: &str, default: f64) -> Duration {
    let seconds = env_text(name)
        .map(|text| text.parse::<f64>().unwrap_or_else(|_| panic!("{name}: not a number: {text:?}")))
        .unwrap_or(default);
    assert!(seconds.is_finite() && seconds >= 0.0, "{name}: must be a non-negative number of seconds");
    Duration::from_secs_f64(seconds)
}

fn env_count(name: &str, default: u64) -> u64 {
    env_text(name)
        .map(|text| text.replace('_', "").parse().unwrap_or_else(|_| panic!("{name}: not a count: {text:?}")))
        .unwrap_or(default)
}

impl Settings {
    fn from_environment(smoke: bool) -> Settings {
        let parts = env_text("TRAINYARD_BENCH_INGEST_PARTS").unwrap_or_else(|| "http,direct,import".into());
        let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
        for part in &parts {
            assert!(
                ["http", "direct", "import"].contains(part),
                "TRAINYARD_BENCH_INGEST_PARTS: unknown part {part:?} (http, direct, import)"
            );
        }
        let measure = env_seconds("TRAINYARD_BENCH_SECONDS", if smoke { 0.3 } else { 10.0 });
        assert!(!measure.is_zero(), "TRAINYARD_BENCH_SECONDS must be above 0");
        let concurrency: Vec<usize> = env_text("TRAINYARD_BENCH_CONCURRENCY")
            .unwrap_or_else(|| if smoke { "1,4" } else { "1,4,16" }.into())
            .split(',')
            .map(|part| {
                let clients: usize = part
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("TRAINYARD_BENCH_CONCURRENCY: not a count: {part:?}"));
                assert!(clients >= 1, "TRAINYARD_BENCH_CONCURRENCY: counts start at 1");
                clients
            })
            .collect();
        let batch = env_count("TRAINYARD_BENCH_INGEST_BATCH", 1000) as usize;
        assert!((1..=1000).contains(&batch), "TRAINYARD_BENCH_INGEST_BATCH: 1 to 1000");
        let signer = match env_text("TRAINYARD_BENCH_INGEST_SIGNER").as_deref() {
            None | Some("fast") => Signer::Fast,
            Some("support") => Signer::Support,
            Some(other) => panic!("TRAINYARD_BENCH_INGEST_SIGNER: {other:?} is not fast or support"),
        };
        let available = std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1);
        let import_formats: Vec<String> = env_text("TRAINYARD_BENCH_IMPORT_FORMATS")
            .unwrap_or_else(|| "csv".into())
            .split(',')
            .map(|format| format.trim().to_string())
            .collect();
        for format in &import_formats {
            assert!(["csv", "jsonl"].contains(&format.as_str()), "TRAINYARD_BENCH_IMPORT_FORMATS: csv or jsonl");
        }
        Settings {
            http: parts.contains(&"http"),
            direct: parts.contains(&"direct"),
            import: parts.contains(&"import"),
            measure,
            warmup: env_seconds("TRAINYARD_BENCH_WARMUP_SECONDS", if smoke { 0.0 } else { 2.0 }),
            concurrency,
            batch,
            bodies: (env_count("TRAINYARD_BENCH_INGEST_BODIES", if smoke { 4 } else { 64 }) as usize).max(1),
            signer,
            client_threads: (env_count("TRAINYARD_BENCH_CLIENT_THREADS", available as u64) as usize).max(1),
            import_rows: env_count("TRAINYARD_BENCH_IMPORT_ROWS", if smoke { 5_000 } else { 1_000_000 }).max(1),
            import_formats,
            import_concurrency: env_text("TRAINYARD_BENCH_IMPORT_CONCURRENCY"),
            compaction_interval: env_text("TRAINYARD_BENCH_COMPACTION_INTERVAL_SECONDS")
                .unwrap_or_else(|| "3600".into()),
            data_parent: env_text("TRAINYARD_BENCH_DATA_PARENT").map(PathBuf::from).unwrap_or_else(std::env::temp_dir),
            results_dir: env_text("TRAINYARD_BENCH_RESULTS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results")),
            smoke,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic events (the same shape as the scan bench's, in crates/data/benches/scan.rs)

/// SplitMix64.
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// The fields of event `index`: ~1 M users, ~200 k items with a skewed popularity, ~20 events per
/// search request (`rn`), 70 % exposures, event times spread over the last 30 days (and never in
/// the future, which the server refuses). About 290 bytes as a pushed element.
fn event_fields(index: u64, now_seconds: i64) -> Map<String, Value> {
    let a = mix(index);
    let b = mix(a);
    let bhv_time = now_seconds - 60 - (b % (30 * 86_400)) as i64;
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
    let mut fields = Map::new();
    fields.insert("user_id".into(), json!(format!("u{user:07}")));
    fields.insert("biz_id".into(), json!("10001"));
    fields.insert("trace_id".into(), json!("Alibaba"));
    fields.insert("trace_info".into(), json!(format!("20140713.{:09}", mix(index / 20) % 1_000_000_000)));
    fields.insert("rn".into(), json!(format!("{:012x}{:08x}", mix(index / 20 + 7) >> 16, user)));
    fields.insert("item_id".into(), json!(format!("item_{item:06}")));
    fields.insert("item_type".into(), json!("goods"));
    fields.insert("bhv_type".into(), json!(bhv_type));
    fields.insert("bhv_time".into(), json!(bhv_time));
    if let Some(value) = bhv_value {
        fields.insert("bhv_value".into(), json!(value));
    }
    fields.insert("reach_time".into(), json!(reach.format("%Y%m%d%H%M%S").to_string()));
    fields.insert("ip".into(), json!(format!("10.{}.{}.{}", user % 256, (user >> 8) % 256, b % 250)));
    fields.insert("login".into(), json!(if user.is_multiple_of(3) { "0" } else { "1" }));
    fields
}

/// The import file's columns (CSV header order).
const COLUMNS: [&str; 13] = [
    "user_id",
    "biz_id",
    "trace_id",
    "trace_info",
    "rn",
    "item_id",
    "item_type",
    "bhv_type",
    "bhv_time",
    "bhv_value",
    "reach_time",
    "ip",
    "login",
];

/// Pre-built bodies: `count` JSON arrays of `batch` events each, leaked so that each request can
/// send one without a copy.
fn build_bodies(count: usize, batch: usize, now_seconds: i64) -> Vec<&'static [u8]> {
    (0..count)
        .map(|body| {
            let mut bytes = b"[".to_vec();
            for row in 0..batch {
                if row > 0 {
                    bytes.push(b',');
                }
                let index = (body * batch + row) as u64;
                let element = json!({"cmd": "ADD", "fields": event_fields(index, now_seconds)});
                serde_json::to_writer(&mut bytes, &element).expect("json");
            }
            bytes.push(b']');
            &*Box::leak(bytes.into_boxed_slice())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A signing client using the server's own ACS3 code (sha2, hmac): what `trainyard import` and an
/// SDK with an optimised SHA-256 cost per request.
#[derive(Clone)]
struct FastClient {
    http: reqwest::Client,
    host: String,
}

impl FastClient {
    fn new(host: &str) -> FastClient {
        FastClient { http: reqwest::Client::builder().no_proxy().build().expect("reqwest"), host: host.to_string() }
    }

    async fn post(&self, action: &str, path: &str, body: &'static [u8]) -> Result<(u16, Value), String> {
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: &str| {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_str(value).expect("a header value"));
        };
        set("accept", "application/json");
        set("host", &self.host);
        set("x-acs-action", action);
        set("x-acs-version", "2017-12-25");
        set("x-acs-date", &chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        set("x-acs-signature-nonce", &uuid::Uuid::new_v4().simple().to_string());
        set("x-acs-content-sha256", &sha256_hex(body));
        set("content-type", "application/json; charset=utf-8");
        let mut signed_headers: Vec<String> = headers.keys().map(|name| name.as_str().to_string()).collect();
        signed_headers.sort();
        let wire = WireRequest { method: "POST", path, query: None, headers: &headers, body };
        let canonical = acs3_canonical_request(&wire, &signed_headers).map_err(|error| error.to_string())?;
        let signature = acs3_signature(ACCESS_KEY_SECRET, &acs3_string_to_sign(&canonical));
        let authorization = format!(
            "{ACS3_ALGORITHM} Credential={ACCESS_KEY_ID},SignedHeaders={},Signature={signature}",
            signed_headers.join(";")
        );
        headers.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&authorization).expect("a header value"));
        headers.remove("host");
        let response = self
            .http
            .post(format!("http://{}{path}", self.host))
            .headers(headers)
            .body(reqwest::Body::from(body))
            .send()
            .await
            .map_err(|error| format!("request not sent: {error}"))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|error| format!("body not read: {error}"))?;
        let body = serde_json::from_slice(&bytes)
            .map_err(|_| format!("HTTP {status}, not JSON: {}", String::from_utf8_lossy(&bytes)))?;
        Ok((status, body))
    }
}

#[derive(Clone)]
enum Pusher {
    Fast(FastClient),
    Support(support::Client),
}

impl Pusher {
    async fn push(&self, path: &str, body: &'static [u8]) -> Result<(u16, Value), String> {
        match self {
            Pusher::Fast(client) => client.post("PushCollectionData", path, body).await,
            Pusher::Support(client) => client
                .try_call_raw("PushCollectionData", "POST", path, body.to_vec())
                .await
                .map(|answer| (answer.status, answer.body)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Process facts

/// User + system CPU seconds of a process (`pid` or `self`); with `children`, those of its
/// waited-for children instead.
fn cpu_seconds(pid: &str, children: bool) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| {
            let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
            // stat(5) fields 14-17 (utime, stime, cutime, cstime); `fields` starts at field 3.
            let (user, system) = if children { (13, 14) } else { (11, 12) };
            let user: f64 = fields.get(user)?.parse().ok()?;
            let system: f64 = fields.get(system)?.parse().ok()?;
            Some((user + system) / 100.0) // USER_HZ
        })
        .unwrap_or(f64::NAN)
}

/// `write_bytes` of `/proc/<pid>/io`: bytes the process caused to be written to storage.
fn written_bytes(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| line.strip_prefix("write_bytes:")).and_then(|value| value.trim().parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// The pid of the server serving `data_dir` (TestServer keeps its child private).
fn server_pid(data_dir: &Path) -> Option<String> {
    let wanted = data_dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let name = entry.file_name().into_string().ok()?;
        name.bytes().all(|byte| byte.is_ascii_digit()).then_some(())?;
        let command = std::fs::read(entry.path().join("cmdline")).ok()?;
        let arguments: Vec<String> =
            command.split(|byte| *byte == 0).map(|part| String::from_utf8_lossy(part).into_owned()).collect();
        (arguments.iter().any(|argument| argument == "serve") && arguments.contains(&wanted)).then_some(name)
    })
}

fn rate(count: f64, seconds: f64) -> String {
    let per_second = count / seconds;
    if per_second >= 1e6 {
        format!("{:.2} M", per_second / 1e6)
    } else if per_second >= 1e4 {
        format!("{:.0} k", per_second / 1e3)
    } else {
        format!("{per_second:.0}")
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP rows

struct Measurement {
    label: String,
    clients: usize,
    /// Latencies of the successful requests that started in the window, in nanoseconds, sorted.
    latencies: Vec<u64>,
    events: u64,
    body_bytes: u64,
    errors: usize,
    error_kinds: BTreeMap<String, (usize, String)>,
    window: Duration,
    server_cpu: f64,
    client_cpu: f64,
    server_written: f64,
}

impl Measurement {
    fn requests(&self) -> usize {
        self.latencies.len()
    }

    fn seconds(&self) -> f64 {
        self.window.as_secs_f64()
    }

    fn percentile(&self, percent: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((percent / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1] as f64 / 1e6
    }
}

#[derive(Default)]
struct Tally {
    latencies: Vec<u64>,
    events: u64,
    body_bytes: u64,
    errors: usize,
    error_kinds: BTreeMap<String, (usize, String)>,
}

impl Tally {
    fn error(&mut self, kind: String, example: String) {
        self.errors += 1;
        if self.error_kinds.len() < ERROR_EXAMPLES || self.error_kinds.contains_key(&kind) {
            self.error_kinds.entry(kind).or_insert((0, example)).0 += 1;
        }
    }

    fn absorb(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.events += other.events;
        self.body_bytes += other.body_bytes;
        self.errors += other.errors;
        for (kind, (count, example)) in other.error_kinds {
            self.error_kinds.entry(kind).or_insert((0, example)).0 += count;
        }
    }
}

/// Classifies an answer: every record of the body accepted, or an error (kind, example).
fn judge(answer: Result<(u16, Value), String>, batch: usize) -> Result<(), (String, String)> {
    match answer {
        Err(error) => Err(("transport failure".into(), error)),
        Ok((200, body)) if body["accepted"].as_u64() == Some(batch as u64) && body["rejected"].as_u64() == Some(0) => {
            Ok(())
        }
        Ok((status, body)) => {
            let code = body["errors"][0]["code"].as_i64().or_else(|| body["Code"].as_i64()).unwrap_or(0);
            let example: String = body.to_string().chars().take(300).collect();
            Err((format!("HTTP {status} code {code} (accepted {})", body["accepted"]), example))
        }
    }
}

async fn measure_http(
    pusher: &Pusher,
    path: &str,
    bodies: &[&'static [u8]],
    clients: usize,
    settings: &Settings,
    server: Option<&str>,
) -> Measurement {
    let start = Instant::now();
    let window_start = start + settings.warmup;
    let window_end = window_start + settings.measure;
    let mut workers = Vec::with_capacity(clients);
    for worker in 0..clients {
        let pusher = pusher.clone();
        let path = path.to_string();
        let bodies = bodies.to_vec();
        let batch = settings.batch;
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut sent = 0usize;
            loop {
                let now = Instant::now();
                if now >= window_end {
                    break;
                }
                let body = bodies[(worker + sent * clients) % bodies.len()];
                sent += 1;
                let began = Instant::now();
                let answer = pusher.push(&path, body).await;
                let elapsed = began.elapsed();
                if now < window_start {
                    continue;
                }
                match judge(answer, batch) {
                    Ok(()) => {
                        tally.latencies.push(elapsed.as_nanos() as u64);
                        tally.events += batch as u64;
                        tally.body_bytes += body.len() as u64;
                    }
                    Err((kind, example)) => tally.error(kind, example),
                }
            }
            tally
        }));
    }
    // CPU of both sides over the measured window.
    tokio::time::sleep_until(window_start.into()).await;
    let sample = || {
        (
            server.map(|pid| cpu_seconds(pid, false)).unwrap_or(f64::NAN),
            cpu_seconds("self", false),
            server.map(written_bytes).unwrap_or(f64::NAN),
        )
    };
    let before = sample();
    tokio::time::sleep_until(window_end.into()).await;
    let after = sample();
    let mut tally = Tally::default();
    for worker in workers {
        tally.absorb(worker.await.expect("a bench worker panicked"));
    }
    tally.latencies.sort_unstable();
    let window = settings.measure;
    Measurement {
        label: "HTTP".into(),
        clients,
        latencies: tally.latencies,
        events: tally.events,
        body_bytes: tally.body_bytes,
        errors: tally.errors,
        error_kinds: tally.error_kinds,
        window,
        server_cpu: (after.0 - before.0) / window.as_secs_f64(),
        client_cpu: (after.1 - before.1) / window.as_secs_f64(),
        server_written: after.2 - before.2,
    }
}

/// The same bodies through `DatasetStore::push_blocking` on `threads` threads in this process:
/// the server's data path (split, validate, encode, append + fdatasync) without HTTP.
fn measure_direct(directory: &Path, bodies: &[&'static [u8]], threads: usize, settings: &Settings) -> Measurement {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let config = DatasetConfig { log_directory: directory.join("log"), segment_max_bytes: 32 * 1024 * 1024 };
    let store = DatasetStore::open_local(config, &directory.join("objects"), runtime.handle().clone()).expect("store");
    let target = PushTarget::Collection(CollectionType::Behavior);
    let start = Instant::now();
    let window_start = start + settings.warmup;
    let window_end = window_start + settings.measure;
    let cpu_before = std::sync::Mutex::new(f64::NAN);
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let store = &store;
                let target = &target;
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    let mut sent = 0usize;
                    loop {
                        let now = Instant::now();
                        if now >= window_end {
                            break;
                        }
                        let body = bodies[(thread + sent * threads) % bodies.len()];
                        sent += 1;
                        let received_ms = chrono::Utc::now().timestamp_millis();
                        let began = Instant::now();
                        let report = store.push_blocking(7, target, body, None, received_ms);
                        let elapsed = began.elapsed();
                        if now < window_start {
                            continue;
                        }
                        match report {
                            Ok(report) if report.accepted == settings.batch && report.rejections.is_empty() => {
                                tally.latencies.push(elapsed.as_nanos() as u64);
                                tally.events += report.accepted as u64;
                                tally.body_bytes += body.len() as u64;
                            }
                            Ok(report) => tally.error(
                                format!("{} of {} accepted", report.accepted, report.received),
                                format!("{:?}", report.rejections.first()),
                            ),
                            Err(error) => tally.error("push failed".into(), error.to_string()),
                        }
                    }
                    tally
                })
            })
            .collect();
        std::thread::sleep(window_start.saturating_duration_since(Instant::now()));
        *cpu_before.lock().expect("cpu") = cpu_seconds("self", false);
        handles.into_iter().map(|handle| handle.join().expect("a push thread")).collect()
    });
    let cpu = cpu_seconds("self", false) - *cpu_before.lock().expect("cpu");
    let mut tally = Tally::default();
    for other in tallies {
        tally.absorb(other);
    }
    tally.latencies.sort_unstable();
    drop(store);
    Measurement {
        label: "push_blocking, in process".into(),
        clients: threads,
        latencies: tally.latencies,
        events: tally.events,
        body_bytes: tally.body_bytes,
        errors: tally.errors,
        error_kinds: tally.error_kinds,
        window: settings.measure,
        server_cpu: cpu / settings.measure.as_secs_f64(),
        client_cpu: f64::NAN,
        server_written: f64::NAN,
    }
}

fn render_rows(measurements: &[Measurement]) -> String {
    let mut table = String::new();
    table.push_str("| path | clients | requests | events | events/s | req/s | body MB/s | p50 ms | p99 ms | max ms | server CPU | client CPU | server disk writes MB/s | errors |\n");
    table.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for measurement in measurements {
        let seconds = measurement.seconds();
        let percent = |value: f64| if value.is_nan() { "–".to_string() } else { format!("{:.0} %", value * 100.0) };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
            measurement.label,
            measurement.clients,
            measurement.requests(),
            measurement.events,
            rate(measurement.events as f64, seconds),
            measurement.requests() as f64 / seconds,
            measurement.body_bytes as f64 / 1e6 / seconds,
            measurement.percentile(50.0),
            measurement.percentile(99.0),
            measurement.latencies.last().map(|&nanos| nanos as f64 / 1e6).unwrap_or(f64::NAN),
            percent(measurement.server_cpu),
            percent(measurement.client_cpu),
            if measurement.server_written.is_nan() {
                "–".to_string()
            } else {
                format!("{:.0}", measurement.server_written / 1e6 / seconds)
            },
            measurement.errors,
        );
    }
    table
}

// ---------------------------------------------------------------------------------------------
// Import

struct ImportRun {
    format: String,
    pass: &'static str,
    rows: u64,
    file_bytes: u64,
    seconds: f64,
    import_cpu: f64,
    server_cpu: f64,
    summary: String,
    ok: bool,
}

/// Writes `rows` events as CSV or JSON Lines; returns the file size.
fn write_import_file(path: &Path, format: &str, rows: u64, now_seconds: i64) -> u64 {
    let file = std::fs::File::create(path).expect("the import file");
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    if format == "csv" {
        writeln!(writer, "{}", COLUMNS.join(",")).expect("write");
    }
    for index in 0..rows {
        // Distinct from the HTTP rows' events (those use indices from 0 up).
        let fields = event_fields(1_000_000_000 + index, now_seconds);
        if format == "csv" {
            let cells: Vec<String> = COLUMNS
                .iter()
                .map(|column| match fields.get(*column) {
                    None => String::new(),
                    Some(Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                })
                .collect();
            writeln!(writer, "{}", cells.join(",")).expect("write");
        } else {
            serde_json::to_writer(&mut writer, &fields).expect("write");
            writer.write_all(b"\n").expect("write");
        }
    }
    writer.flush().expect("flush");
    std::fs::metadata(path).expect("metadata").len()
}

fn run_import(
    server: &TestServer,
    server_pid: Option<&str>,
    app: &str,
    file: &Path,
    settings: &Settings,
) -> (f64, f64, f64, String, bool) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainyard"));
    command
        .args(["import", "--endpoint", &server.address, "--access-key-id", ACCESS_KEY_ID])
        .args(["--access-key-secret", ACCESS_KEY_SECRET, "--app", app, "--kind", "behavior"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(concurrency) = &settings.import_concurrency {
        command.args(["--concurrency", concurrency]);
    }
    command.arg(file);
    let server_before = server_pid.map(|pid| cpu_seconds(pid, false)).unwrap_or(f64::NAN);
    let children_before = cpu_seconds("self", true);
    let began = Instant::now();
    let output = command.output().expect("trainyard import runs");
    let seconds = began.elapsed().as_secs_f64();
    let import_cpu = cpu_seconds("self", true) - children_before;
    let server_cpu = server_pid.map(|pid| cpu_seconds(pid, false)).unwrap_or(f64::NAN) - server_before;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return (seconds, import_cpu, server_cpu, format!("FAILED ({}): {stdout} {stderr}", output.status), false);
    }
    (seconds, import_cpu, server_cpu, stdout, true)
}

/// `imported R rows ... : A accepted, F refused, D batches already applied (skipped)`.
fn summary_numbers(summary: &str) -> Option<(u64, u64, u64, u64)> {
    let number_before = |marker: &str| -> Option<u64> {
        let head = &summary[..summary.find(marker)?];
        head.split_whitespace().last()?.parse().ok()
    };
    let rows = summary.strip_prefix("imported ")?.split_whitespace().next()?.parse().ok()?;
    Some((rows, number_before(" accepted")?, number_before(" refused")?, number_before(" batches already applied")?))
}

// ---------------------------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` / `--all-targets` runs this binary
    // without it, and then it only smoke-tests itself (nothing written).
    let smoke = !std::env::args().any(|argument| argument == "--bench");
    let settings = Settings::from_environment(smoke);
    if smoke {
        println!("ingest: no --bench argument (run by cargo test): smoke run, short rows, no results file");
    }
    std::fs::create_dir_all(&settings.data_parent).expect("creating TRAINYARD_BENCH_DATA_PARENT");
    let temporary_dir =
        tempfile::Builder::new().prefix("trainyard-ingest-bench-").tempdir_in(&settings.data_parent).expect("temp dir");
    let data_dir = temporary_dir.path().join("data");
    let server = TestServer::start_in(
        &data_dir,
        &[
            ("TRAINYARD_COMPACTION_INTERVAL_SECONDS", settings.compaction_interval.as_str()),
            // The bench measures the server, not the per-AccessKey rate limit.
            ("TRAINYARD_RATE_LIMIT_PER_SECOND", "0"),
        ],
    );
    let pid = server_pid(&data_dir);
    let data_filesystem = {
        let found = machine::command_output(
            "findmnt",
            &["-n", "-o", "FSTYPE,SOURCE", "--target", &temporary_dir.path().to_string_lossy()],
        );
        found.split_whitespace().collect::<Vec<_>>().join(" on ")
    };
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
    let started_at = chrono::Utc::now();
    let now_seconds = started_at.timestamp();
    let run_tag = format!("{:06x}", uuid::Uuid::new_v4().as_u128() as u32 & 0xff_ffff);

    let bodies = build_bodies(settings.bodies, settings.batch, now_seconds);
    let mean_body = bodies.iter().map(|body| body.len()).sum::<usize>() as f64 / bodies.len() as f64;

    let mut facts = String::new();
    let _ = writeln!(facts, "- date: {}", started_at.format("%Y-%m-%d %H:%M:%S UTC"));
    let _ = writeln!(
        facts,
        "- machine: nproc {}, `uname -r` {}, CPU {}; client, server (and `trainyard import`) share these CPUs",
        machine::command_output("nproc", &[]),
        machine::command_output("uname", &["-r"]),
        machine::cpu_model()
    );
    let _ = writeln!(facts, "- load average at start (1, 5, 15 min): {load_average}");
    let _ = writeln!(
        facts,
        "- code: git {} (`-dirty`: with uncommitted changes)",
        machine::command_output("git", &["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"])
    );
    let _ = writeln!(facts, "- server build profile: {}", machine::server_profile());
    let _ = writeln!(
        facts,
        "- server: data dir {} ({data_filesystem}), listening on {}, compactor every {} s",
        data_dir.display(),
        server.address,
        settings.compaction_interval
    );
    let _ = writeln!(
        facts,
        "- requests: {} events per request, {} pre-built bodies of {:.0} bytes on average ({:.0} bytes per event), signed per request with the {} signer",
        settings.batch,
        bodies.len(),
        mean_body,
        mean_body / settings.batch as f64,
        match settings.signer {
            Signer::Fast => "fast (trainyard_api::signature, sha2)",
            Signer::Support => "support.rs (plain SHA-256)",
        }
    );
    let _ = writeln!(
        facts,
        "- client: {} tokio worker threads, one keep-alive HTTP/1.1 pool; {} s warm-up + {} s measured per row; CPU columns: CPU-seconds per second (100 % = one core) over the measured window",
        settings.client_threads,
        settings.warmup.as_secs_f64(),
        settings.measure.as_secs_f64()
    );
    println!("\n{facts}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .enable_all()
        .build()
        .expect("client runtime");
    let app = format!("ingest_{run_tag}");
    runtime.block_on(async { server.client().create_app_group(&app).await.expect_ok().clone() });
    let path = format!(
        "/v3/openapi/app-groups/{0}/data-collections/{0}/data-collection-type/BEHAVIOR/actions/bulk",
        encode_segment(&app)
    );

    let mut measurements: Vec<Measurement> = Vec::new();
    if settings.http {
        let pusher = match settings.signer {
            Signer::Fast => Pusher::Fast(FastClient::new(&server.address)),
            Signer::Support => Pusher::Support(server.client()),
        };
        for &clients in &settings.concurrency {
            let measurement =
                runtime.block_on(measure_http(&pusher, &path, &bodies, clients, &settings, pid.as_deref()));
            println!(
                "HTTP clients {:>3}: {:>7} events/s, {:>5.0} req/s, p50 {:>7.2} ms, p99 {:>7.2} ms, server CPU {:>4.0} %, client CPU {:>4.0} %, errors {}",
                clients,
                rate(measurement.events as f64, measurement.seconds()),
                measurement.requests() as f64 / measurement.seconds(),
                measurement.percentile(50.0),
                measurement.percentile(99.0),
                measurement.server_cpu * 100.0,
                measurement.client_cpu * 100.0,
                measurement.errors
            );
            measurements.push(measurement);
        }
    }
    if settings.direct {
        let available = std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1);
        let mut levels = vec![1];
        if available > 1 {
            levels.push(available);
        }
        for threads in levels {
            let directory = temporary_dir.path().join(format!("direct-{threads}"));
            let measurement = measure_direct(&directory, &bodies, threads, &settings);
            std::fs::remove_dir_all(&directory).ok();
            println!(
                "push_blocking threads {threads}: {:>7} events/s, p50 {:.2} ms, CPU {:.0} %, errors {}",
                rate(measurement.events as f64, measurement.seconds()),
                measurement.percentile(50.0),
                measurement.server_cpu * 100.0,
                measurement.errors
            );
            measurements.push(measurement);
        }
    }

    let mut imports: Vec<ImportRun> = Vec::new();
    if settings.import {
        for format in &settings.import_formats {
            let file = temporary_dir.path().join(format!("behavior.{format}"));
            let began = Instant::now();
            let file_bytes = write_import_file(&file, format, settings.import_rows, now_seconds);
            println!(
                "import: wrote {} rows of {format} ({:.1} MB) in {:.1} s",
                settings.import_rows,
                file_bytes as f64 / 1e6,
                began.elapsed().as_secs_f64()
            );
            let import_app = format!("import_{format}_{run_tag}");
            runtime.block_on(async { server.client().create_app_group(&import_app).await.expect_ok().clone() });
            for pass in ["first", "resume"] {
                let (seconds, import_cpu, server_cpu, summary, succeeded) =
                    run_import(&server, pid.as_deref(), &import_app, &file, &settings);
                let numbers = summary_numbers(&summary);
                let batches = settings.import_rows.div_ceil(1000);
                let ok = succeeded
                    && match (pass, numbers) {
                        ("first", Some((rows, accepted, refused, skipped))) => {
                            rows == settings.import_rows && accepted == rows && refused == 0 && skipped == 0
                        }
                        (_, Some((rows, accepted, refused, skipped))) => {
                            rows == settings.import_rows && accepted == 0 && refused == 0 && skipped == batches
                        }
                        _ => false,
                    };
                println!("import {format} {pass}: {seconds:.1} s — {summary}");
                imports.push(ImportRun {
                    format: format.clone(),
                    pass,
                    rows: settings.import_rows,
                    file_bytes,
                    seconds,
                    import_cpu,
                    server_cpu,
                    summary,
                    ok,
                });
            }
            std::fs::remove_file(&file).ok();
        }
    }
    drop(runtime);
    drop(server);

    let table = render_rows(&measurements);
    let mut import_table = String::new();
    if !imports.is_empty() {
        import_table.push_str(
            "| file | pass | rows | file MB | seconds | rows/s | file MB/s | import CPU s | server CPU s | outcome |\n",
        );
        import_table.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n");
        for run in &imports {
            let _ = writeln!(
                import_table,
                "| {} | {} | {} | {:.1} | {:.2} | {} | {:.1} | {:.2} | {:.2} | {} |",
                run.format,
                run.pass,
                run.rows,
                run.file_bytes as f64 / 1e6,
                run.seconds,
                rate(run.rows as f64, run.seconds),
                run.file_bytes as f64 / 1e6 / run.seconds,
                run.import_cpu,
                run.server_cpu,
                if run.ok { run.summary.clone() } else { format!("**WRONG**: {}", run.summary) }
            );
        }
    }
    let mut errors_section = String::new();
    for measurement in measurements.iter().filter(|measurement| measurement.errors > 0) {
        for (kind, (count, example)) in &measurement.error_kinds {
            let _ = writeln!(
                errors_section,
                "- {} clients {}: {count} × {kind}: {example}",
                measurement.label, measurement.clients
            );
        }
    }
    let total_errors: usize = measurements.iter().map(|measurement| measurement.errors).sum::<usize>()
        + imports.iter().filter(|run| !run.ok).count();

    let mut report = String::new();
    let _ = writeln!(report, "# ingest {}\n", started_at.format("%Y-%m-%d %H:%M:%S UTC"));
    report.push_str(&facts);
    if !measurements.is_empty() {
        let _ = write!(report, "\n## Pushes\n\n{table}");
    }
    if !imports.is_empty() {
        let _ = write!(report, "\n## trainyard import\n\n{import_table}");
    }
    if total_errors > 0 {
        let _ = write!(report, "\nERRORS ({total_errors}):\n{errors_section}");
    }
    println!("\n{report}");
    if total_errors == 0 {
        println!("errors: 0 (every measured push answered HTTP 200 with all its records accepted)");
    }
    if settings.smoke {
        drop(temporary_dir);
        assert_eq!(total_errors, 0, "every push is accepted whole");
        return;
    }
    std::fs::create_dir_all(&settings.results_dir).expect("creating the results dir");
    let results_dir = settings.results_dir.canonicalize().unwrap_or_else(|_| settings.results_dir.clone());
    let results_file = results_dir.join(format!("ingest-{}.md", started_at.format("%Y%m%dT%H%M%SZ")));
    std::fs::write(&results_file, report).expect("writing the results file");
    println!("written to {}", results_file.display());
    drop(temporary_dir);
    if total_errors > 0 {
        std::process::exit(1);
    }
}
