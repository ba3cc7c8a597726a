//! API latency under concurrent signed clients: the real `trainyard` binary (the one cargo built
//! for this profile), driven over HTTP by N tokio tasks that each loop sign → send → await.
//!
//! Run it with `bash bench/api_latency.sh` (or `cargo bench -p trainyard --bench api_latency`);
//! `bench/README.md` explains what is measured and how to read the table.
//!
//! Latency is measured client-side per request, from before the request is signed (SHA-256 of
//! the body and of the canonical request, HMAC-SHA256, a fresh nonce) until the whole JSON body
//! has been read and parsed. A request counts as an error unless the answer is HTTP 200 (a
//! transport failure or a body that is not JSON counts too); errors are printed and make the
//! bench exit non-zero.
//!
//! Run without `--bench` (as `cargo test --benches` or `--all-targets` does) it only smoke-tests
//! itself: 0.2 s per row, 1 and 4 clients, all five operations, no results file.
//!
//! **While training** (`TRAINYARD_BENCH_TRAIN_DURING_EVENTS=N`): the server runs one training
//! worker (`worker_concurrency` 1, trainer threads at `trainer_nice`, default 10). Before
//! measuring, the bench pushes N synthetic behavior events to the app group over HTTP
//! (PushCollectionData, 1000 per request, 4 clients), compacts them (CompactDataset), creates a
//! `pop` instance, measures the rows once with the worker idle (the baseline, on the same server
//! and data), then starts CreateFunctionTask, waits until GetFunctionTask shows it running with
//! Progress > 0, and measures the rows again while it trains, checking the task (untimed) after
//! every row. The report says whether the task was still running at the end; rows measured after
//! it ended do not count as "during training". With `TRAINYARD_BENCH_TRAIN_DURING_TASKS=K`, K
//! `pop` instances each get a task at once; the one worker trains them back to back, so that
//! training lasts about K times as long.
//!
//! Knobs (environment variables; the defaults are those of `cargo bench`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TRAINYARD_BENCH_SECONDS` | `5` | measured seconds per (operation, concurrency) |
//! | `TRAINYARD_BENCH_WARMUP_SECONDS` | `1` | unrecorded seconds before each measurement |
//! | `TRAINYARD_BENCH_CONCURRENCY` | `1,16,64` (`1,4` while training) | concurrent clients, comma separated |
//! | `TRAINYARD_BENCH_OPERATIONS` | `create_instance,get_instance,list_tasks` (`get_instance,list_instances` while training) | also `list_instances`, `create_task` |
//! | `TRAINYARD_BENCH_CLIENT_THREADS` | available CPUs | worker threads of the client runtime |
//! | `TRAINYARD_BENCH_DATA_PARENT` | the temp dir | where the server's data dir is created |
//! | `TRAINYARD_BENCH_RESULTS_DIR` | `<workspace>/bench/results` | where the markdown is written |
//! | `TRAINYARD_BENCH_TRAIN_DURING_EVENTS` | `0` (off) | behavior events to load and train `pop` on while measuring |
//! | `TRAINYARD_BENCH_TRAIN_DURING_TASKS` | `1` | while training: tasks queued at once (one per `pop` instance), trained back to back |
//! | `TRAINYARD_BENCH_TRAIN_BASELINE` | `1` | while training: also measure the rows before the task starts (`0`: skip) |
//! | `TRAINYARD_BENCH_TRAINER_NICE` | the server's (10) | while training: the server's `trainer_nice` |
//! | `TRAINYARD_BENCH_TASK_HEARTBEAT_MILLIS` | the server's (1000) | while training: how often the worker records progress |

// `support.rs` carries its own `#![allow(dead_code)]`: the bench uses only part of it.
#[path = "common/machine.rs"]
mod machine;
#[path = "../tests/http/support.rs"]
mod support;

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use support::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, Client, TestServer, encode_segment, instance_path};
use trainyard_api::signature::{
    ACS3_ALGORITHM, WireRequest, acs3_canonical_request, acs3_signature, acs3_string_to_sign, sha256_hex,
};

/// The function and model type every instance is created with (no required parameters).
const FUNCTION: &str = "ctr";
const MODEL_TYPE: &str = "tf_checkpoint";
/// How many instances the read operations spread over (each with one pending task).
const READ_INSTANCES: usize = 8;
/// How many transport panics are printed in full before the rest are only counted.
const PRINTED_PANICS: usize = 5;
/// While training: the function and model type trained during the measurement, and the prefix
/// of the instances trained (`train_during_0`, `_1`, ...).
const TRAINED_FUNCTION: &str = "pop";
const TRAINED_MODEL_TYPE: &str = "pop";
const TRAINED_INSTANCE: &str = "train_during";
/// While training: behavior events per push, and concurrent pushing clients.
const PUSH_BATCH: u64 = 1000;
const PUSH_CLIENTS: usize = 4;
/// While training: how long to wait for the task to show progress.
const TRAINING_START_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    CreateInstance,
    GetInstance,
    ListInstances,
    ListTasks,
    CreateTask,
}

impl Operation {
    fn parse(text: &str) -> Operation {
        match text.trim() {
            "create_instance" | "CreateFunctionInstance" => Operation::CreateInstance,
            "get_instance" | "GetFunctionInstance" => Operation::GetInstance,
            "list_instances" | "ListFunctionInstances" => Operation::ListInstances,
            "list_tasks" | "ListFunctionTasks" => Operation::ListTasks,
            "create_task" | "CreateFunctionTask" => Operation::CreateTask,
            other => panic!(
                "TRAINYARD_BENCH_OPERATIONS: unknown operation {other:?} (create_instance, get_instance, list_instances, list_tasks, create_task)"
            ),
        }
    }

    fn action(self) -> &'static str {
        match self {
            Operation::CreateInstance => "CreateFunctionInstance",
            Operation::GetInstance => "GetFunctionInstance",
            Operation::ListInstances => "ListFunctionInstances",
            Operation::ListTasks => "ListFunctionTasks",
            Operation::CreateTask => "CreateFunctionTask",
        }
    }
}

struct Settings {
    measure: Duration,
    warmup: Duration,
    concurrency: Vec<usize>,
    operations: Vec<Operation>,
    client_threads: usize,
    data_parent: PathBuf,
    results_dir: PathBuf,
    /// Run by `cargo test` (no `--bench` argument): short, and no results file.
    smoke: bool,
    /// The "while training" mode, when asked for.
    train_during: Option<TrainDuring>,
}

/// The knobs of the "while training" mode.
struct TrainDuring {
    /// Behavior events loaded into the app group before the task starts.
    events: u64,
    /// Training tasks queued at once (one per instance); the worker trains them one after
    /// another, so that training lasts long enough to cover every row.
    tasks: usize,
    /// Also measure the rows before the task starts.
    baseline: bool,
    /// The server's `trainer_nice` and `task_heartbeat_millis`, when set.
    trainer_nice: Option<String>,
    heartbeat_millis: Option<String>,
}

impl Settings {
    /// The knobs; `smoke` (run by `cargo test`, not `cargo bench`) changes only the defaults.
    fn from_environment(smoke: bool) -> Settings {
        let seconds = |name: &str, default: f64| -> Duration {
            let value = std::env::var(name).ok().filter(|text| !text.trim().is_empty());
            let parsed = value
                .map(|text| text.trim().parse::<f64>().unwrap_or_else(|_| panic!("{name}: not a number: {text:?}")));
            let seconds = parsed.unwrap_or(default);
            assert!(seconds.is_finite() && seconds >= 0.0, "{name}: must be a non-negative number of seconds");
            Duration::from_secs_f64(seconds)
        };
        let text = |name: &str| std::env::var(name).ok().filter(|text| !text.trim().is_empty());
        let train_during = text("TRAINYARD_BENCH_TRAIN_DURING_EVENTS")
            .map(|value| {
                value
                    .trim()
                    .replace('_', "")
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("TRAINYARD_BENCH_TRAIN_DURING_EVENTS: not a count: {value:?}"))
            })
            .filter(|events| *events > 0)
            .map(|events| TrainDuring {
                events,
                tasks: text("TRAINYARD_BENCH_TRAIN_DURING_TASKS")
                    .map(|value| {
                        value
                            .trim()
                            .parse::<usize>()
                            .unwrap_or_else(|_| panic!("TRAINYARD_BENCH_TRAIN_DURING_TASKS: not a count: {value:?}"))
                    })
                    .unwrap_or(1)
                    .max(1),
                baseline: text("TRAINYARD_BENCH_TRAIN_BASELINE").is_none_or(|value| value.trim() != "0"),
                trainer_nice: text("TRAINYARD_BENCH_TRAINER_NICE").map(|value| value.trim().to_string()),
                heartbeat_millis: text("TRAINYARD_BENCH_TASK_HEARTBEAT_MILLIS").map(|value| value.trim().to_string()),
            });
        let training = train_during.is_some();
        let measure = seconds("TRAINYARD_BENCH_SECONDS", if smoke { 0.2 } else { 5.0 });
        assert!(!measure.is_zero(), "TRAINYARD_BENCH_SECONDS must be above 0");
        let warmup = seconds("TRAINYARD_BENCH_WARMUP_SECONDS", if smoke { 0.0 } else { 1.0 });
        let concurrency: Vec<usize> = text("TRAINYARD_BENCH_CONCURRENCY")
            .unwrap_or_else(|| if smoke || training { "1,4" } else { "1,16,64" }.into())
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
        let operations: Vec<Operation> = text("TRAINYARD_BENCH_OPERATIONS")
            .unwrap_or_else(|| {
                if training {
                    "get_instance,list_instances"
                } else if smoke {
                    "create_instance,get_instance,list_instances,list_tasks,create_task"
                } else {
                    "create_instance,get_instance,list_tasks"
                }
                .into()
            })
            .split(',')
            .map(Operation::parse)
            .collect();
        let available = std::thread::available_parallelism().map(|count| count.get()).unwrap_or(1);
        let client_threads = text("TRAINYARD_BENCH_CLIENT_THREADS")
            .map(|value| value.trim().parse().expect("TRAINYARD_BENCH_CLIENT_THREADS: not a count"))
            .unwrap_or(available)
            .max(1);
        let data_parent = text("TRAINYARD_BENCH_DATA_PARENT").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let results_dir = text("TRAINYARD_BENCH_RESULTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results"));
        Settings {
            measure,
            warmup,
            concurrency,
            operations,
            client_threads,
            data_parent,
            results_dir,
            smoke,
            train_during,
        }
    }
}

/// What one (operation, concurrency) run measured.
struct Measurement {
    operation: Operation,
    clients: usize,
    /// Latency of every request that started inside the measured window, in nanoseconds, sorted.
    latencies: Vec<u64>,
    errors: usize,
    /// `status code` → (count, one example body), for errors inside the measured window.
    error_kinds: BTreeMap<String, (usize, String)>,
    window: Duration,
}

impl Measurement {
    fn requests(&self) -> usize {
        self.latencies.len()
    }

    fn throughput(&self) -> f64 {
        self.requests() as f64 / self.window.as_secs_f64()
    }

    /// Nearest-rank percentile, in milliseconds.
    fn percentile(&self, percent: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((percent / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1] as f64 / 1e6
    }

    fn mean(&self) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.iter().map(|&nanos| nanos as f64).sum::<f64>() / self.latencies.len() as f64 / 1e6
    }

    fn max(&self) -> f64 {
        self.latencies.last().map(|&nanos| nanos as f64 / 1e6).unwrap_or(f64::NAN)
    }
}

/// What the workers share.
struct Fixture {
    client: Client,
    app_group: String,
    /// Instances the read operations use (worker `w` uses `read_instances[w % len]`).
    read_instances: Vec<String>,
    /// Source of unique instance names for the create operations.
    next_name: AtomicU64,
    run_tag: String,
}

impl Fixture {
    fn fresh_instance_name(&self) -> String {
        // `b<tag>_<n>`: at most 1 + 6 + 1 + 20 characters, within the 30-character name rule.
        format!("b{}_{}", self.run_tag, self.next_name.fetch_add(1, Ordering::Relaxed))
    }

    fn instance_body(name: &str) -> serde_json::Value {
        json!({
            "instanceName": name,
            "modelType": MODEL_TYPE,
            "description": "api_latency bench",
            "createParameters": [{"name": "title_field", "value": "title"}],
        })
    }
}

/// The result of one timed call: `Ok` for 200, `Err(kind, example)` otherwise.
type Outcome = Result<(), (String, String)>;

/// Sends one request of `operation` as worker `worker`; returns the outcome and the timed span.
async fn one_request(fixture: &Fixture, operation: Operation, worker: usize) -> (Outcome, Duration) {
    let app = fixture.app_group.as_str();
    match operation {
        Operation::CreateInstance => {
            let name = fixture.fresh_instance_name();
            let body = Fixture::instance_body(&name);
            timed(fixture.client.create_instance(app, FUNCTION, body)).await
        }
        Operation::GetInstance => {
            let instance = &fixture.read_instances[worker % fixture.read_instances.len()];
            timed(fixture.client.get_instance(app, FUNCTION, instance, &[])).await
        }
        Operation::ListInstances => {
            let path = format!("/v4/openapi/app-groups/{}/functions/{FUNCTION}/instances", encode_segment(app));
            let query = [("pageNumber", "1"), ("pageSize", "10")];
            timed(fixture.client.call("ListFunctionInstances", "GET", &path, &query, None)).await
        }
        Operation::ListTasks => {
            let instance = &fixture.read_instances[worker % fixture.read_instances.len()];
            let path = format!("{}/tasks", instance_path(app, FUNCTION, instance));
            let query = [("pageNumber", "1"), ("pageSize", "10")];
            timed(fixture.client.call("ListFunctionTasks", "GET", &path, &query, None)).await
        }
        Operation::CreateTask => {
            // Only one pending task per instance (and no runner yet to finish it): each task
            // goes to a fresh instance, created here untimed.
            let name = fixture.fresh_instance_name();
            let (created, _) =
                timed(fixture.client.create_instance(app, FUNCTION, Fixture::instance_body(&name))).await;
            if let Err((kind, example)) = created {
                return (Err((format!("setup CreateFunctionInstance {kind}"), example)), Duration::ZERO);
            }
            timed(fixture.client.create_task(app, FUNCTION, &name)).await
        }
    }
}

/// Times `call` (signing included: the future signs when first polled) and classifies it.
async fn timed(call: impl Future<Output = support::Answer>) -> (Outcome, Duration) {
    let started = Instant::now();
    let answer = CatchUnwind(Box::pin(call)).await;
    let elapsed = started.elapsed();
    let outcome = match answer {
        Ok(answer) if answer.status == 200 => Ok(()),
        Ok(answer) => Err((format!("HTTP {} {}", answer.status, answer.code()), answer.body.to_string())),
        Err(panic) => Err(("transport failure (client panicked)".to_string(), panic_text(&*panic))),
    };
    (outcome, elapsed)
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// `support::Client` panics on a transport failure or a non-JSON body; this turns that panic into
/// an error the bench counts, so that one bad answer does not take a worker down.
struct CatchUnwind<F: Future>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(context))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// What one worker saw inside the measured window.
#[derive(Default)]
struct WorkerTally {
    latencies: Vec<u64>,
    errors: usize,
    error_kinds: BTreeMap<String, (usize, String)>,
}

/// Runs `clients` workers for warm-up + measurement; records requests that start in the window.
async fn measure(fixture: Arc<Fixture>, operation: Operation, clients: usize, settings: &Settings) -> Measurement {
    let start = Instant::now();
    let window_start = start + settings.warmup;
    let window_end = window_start + settings.measure;
    let mut workers = Vec::with_capacity(clients);
    for worker in 0..clients {
        let fixture = fixture.clone();
        workers.push(tokio::spawn(async move {
            let mut tally = WorkerTally::default();
            loop {
                let now = Instant::now();
                if now >= window_end {
                    break;
                }
                let (outcome, elapsed) = one_request(&fixture, operation, worker).await;
                if now < window_start {
                    continue;
                }
                match outcome {
                    Ok(()) => tally.latencies.push(elapsed.as_nanos() as u64),
                    Err((kind, example)) => {
                        tally.errors += 1;
                        let entry = tally.error_kinds.entry(kind).or_insert((0, example));
                        entry.0 += 1;
                    }
                }
            }
            tally
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut error_kinds: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for worker in workers {
        let tally = worker.await.expect("a bench worker panicked");
        latencies.extend(tally.latencies);
        errors += tally.errors;
        for (kind, (count, example)) in tally.error_kinds {
            let entry = error_kinds.entry(kind).or_insert((0, example));
            entry.0 += count;
        }
    }
    latencies.sort_unstable();
    Measurement { operation, clients, latencies, errors, error_kinds, window: settings.measure }
}

/// Creates the app group, the read instances and one pending task on each.
async fn prepare(client: Client) -> Fixture {
    let run_tag = format!("{:06x}", uuid::Uuid::new_v4().as_u128() as u32 & 0xff_ffff);
    let app_group = format!("bench_{run_tag}");
    client.create_app_group(&app_group).await.expect_ok();
    let mut read_instances = Vec::with_capacity(READ_INSTANCES);
    for index in 0..READ_INSTANCES {
        let name = format!("read_{index}");
        client.create_instance(&app_group, FUNCTION, Fixture::instance_body(&name)).await.expect_ok();
        client.create_task(&app_group, FUNCTION, &name).await.expect_ok();
        // The operations under test answer 200 before the clock starts.
        client.get_instance(&app_group, FUNCTION, &name, &[]).await.expect_ok();
        let path = format!("{}/tasks", instance_path(&app_group, FUNCTION, &name));
        let listed =
            client.call("ListFunctionTasks", "GET", &path, &[("pageNumber", "1"), ("pageSize", "10")], None).await;
        let tasks = listed.expect_ok();
        assert_eq!(tasks.as_array().map(Vec::len), Some(1), "one task listed: {}", listed.body);
        read_instances.push(name);
    }
    let path = format!("/v4/openapi/app-groups/{}/functions/{FUNCTION}/instances", encode_segment(&app_group));
    let listed =
        client.call("ListFunctionInstances", "GET", &path, &[("pageNumber", "1"), ("pageSize", "10")], None).await;
    assert_eq!(listed.expect_ok().as_array().map(Vec::len), Some(READ_INSTANCES), "instances listed: {}", listed.body);
    Fixture { client, app_group, read_instances, next_name: AtomicU64::new(0), run_tag }
}

// ---------------------------------------------------------------------------------------------
// The "while training" mode

/// SplitMix64: a small, fast, deterministic generator.
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// Push body `body` of `bodies`: up to 1000 behavior events of search requests (`rn`) of 5 to
/// 15 exposures of Zipf-popular items (100 k) to one of 500 k users, each exposure followed by a
/// click with the same `rn` with the item's own rate (~25 % on average). Bodies are spread in
/// time order over the 30 days ending at `now` (the shape of the `train` bench's data).
fn behavior_body(body: u64, bodies: u64, events: u64, now: i64) -> Vec<u8> {
    const ITEMS: f64 = 100_000.0;
    const USERS: u64 = 500_000;
    let count = PUSH_BATCH.min(events - body * PUSH_BATCH) as usize;
    let span = 30 * 86_400 - 1_800;
    let time = now - 30 * 86_400 + 1 + ((body as i128 * span as i128) / bodies.max(1) as i128) as i64;
    let mut elements: Vec<Value> = Vec::with_capacity(count);
    let mut request = 0u64;
    while elements.len() < count {
        let seed = mix((body << 20) ^ request);
        request += 1;
        let user = format!("u{:07}", mix(seed) % USERS);
        let rn = format!("{seed:016x}");
        let element = |item: u64, bhv_type: &str, at: i64| {
            let mut fields = json!({
                "user_id": user, "biz_id": "10001", "trace_id": "Alibaba", "rn": rn,
                "item_id": format!("item_{item:06}"), "item_type": "goods", "bhv_type": bhv_type,
                "bhv_time": at, "login": "1",
            });
            if bhv_type == "click" {
                fields["bhv_value"] = json!("1");
            }
            json!({"cmd": "ADD", "fields": fields})
        };
        let mut clicks = Vec::new();
        for slot in 0..5 + mix(seed ^ 1) % 11 {
            let hash = mix(seed.wrapping_add(slot.wrapping_mul(0x2545_f491_4f6c_dd1d)));
            let item = (((ITEMS + 1.0).powf(unit(hash)) - 1.0) as u64).min(ITEMS as u64 - 1);
            elements.push(element(item, "expose", time));
            let roll = mix(hash ^ 0xc11c);
            if unit(roll) < 0.25 * (0.2 + 1.6 * unit(mix(item ^ 0x5eed_c11c))) {
                clicks.push(element(item, "click", (time + 3 + (roll % 120) as i64).min(now)));
            }
        }
        elements.extend(clicks);
    }
    elements.truncate(count);
    serde_json::to_vec(&elements).expect("json")
}

/// Signs and posts `body` with the server's own ACS3 code (sha2): the loading client, faster
/// than `support.rs`'s deliberately plain SHA-256 on bodies of ~250 kB.
async fn post_signed(http: &reqwest::Client, host: &str, action: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_str(value).expect("a header value"));
    };
    set("accept", "application/json");
    set("host", host);
    set("x-acs-action", action);
    set("x-acs-version", "2017-12-25");
    set("x-acs-date", &chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
    set("x-acs-signature-nonce", &uuid::Uuid::new_v4().simple().to_string());
    set("x-acs-content-sha256", &sha256_hex(&body));
    set("content-type", "application/json; charset=utf-8");
    let mut signed_headers: Vec<String> = headers.keys().map(|name| name.as_str().to_string()).collect();
    signed_headers.sort();
    let wire = WireRequest { method: "POST", path, query: None, headers: &headers, body: &body };
    let canonical = acs3_canonical_request(&wire, &signed_headers).expect("a canonical request");
    let signature = acs3_signature(ACCESS_KEY_SECRET, &acs3_string_to_sign(&canonical));
    let authorization = format!(
        "{ACS3_ALGORITHM} Credential={ACCESS_KEY_ID},SignedHeaders={},Signature={signature}",
        signed_headers.join(";")
    );
    headers.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&authorization).expect("a header value"));
    headers.remove("host");
    let response = http
        .post(format!("http://{host}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{action}: request not sent: {error}"));
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_else(|error| panic!("{action}: body not read: {error}"));
    let answer = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{action}: HTTP {status}, not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, answer)
}

/// How the data for the training task got there.
struct Loaded {
    events: u64,
    push_seconds: f64,
    compact_seconds: f64,
    compaction: Value,
}

/// Pushes `events` behavior events to the app group over HTTP, then compacts them to Parquet
/// (the server's compactor is set to an hour, so nothing else compacts during the measurement).
async fn load_behavior(fixture: &Fixture, host: &str, events: u64) -> Loaded {
    let app = fixture.app_group.clone();
    let path = format!(
        "/v3/openapi/app-groups/{0}/data-collections/{0}/data-collection-type/BEHAVIOR/actions/bulk",
        encode_segment(&app)
    );
    let now = chrono::Utc::now().timestamp();
    let bodies = events.div_ceil(PUSH_BATCH);
    let next_body = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder().no_proxy().build().expect("reqwest");
    let began = Instant::now();
    let mut pushers = Vec::new();
    for _ in 0..PUSH_CLIENTS {
        let (next_body, http, path, host) = (next_body.clone(), http.clone(), path.clone(), host.to_string());
        pushers.push(tokio::spawn(async move {
            loop {
                let body = next_body.fetch_add(1, Ordering::Relaxed);
                if body >= bodies {
                    break;
                }
                let bytes = behavior_body(body, bodies, events, now);
                let expected = PUSH_BATCH.min(events - body * PUSH_BATCH);
                let (status, answer) = post_signed(&http, &host, "PushCollectionData", &path, bytes).await;
                assert!(
                    status == 200 && answer["accepted"].as_u64() == Some(expected),
                    "push {body}: HTTP {status}, expected {expected} accepted: {answer}"
                );
                if body > 0 && body % (bodies / 10).max(1) == 0 {
                    eprintln!("api_latency: pushed {} of {events} events", body * PUSH_BATCH);
                }
            }
        }));
    }
    for pusher in pushers {
        pusher.await.expect("a pushing client panicked");
    }
    let push_seconds = began.elapsed().as_secs_f64();
    let began = Instant::now();
    let path = format!("/v4/openapi/app-groups/{}/dataset/actions/compact", encode_segment(&app));
    let compacted = fixture.client.call("CompactDataset", "POST", &path, &[], None).await;
    let compaction = compacted.expect_ok().clone();
    let compact_seconds = began.elapsed().as_secs_f64();
    Loaded { events, push_seconds, compact_seconds, compaction }
}

/// What GetFunctionTask said about one training task.
#[derive(Clone)]
struct OneTask {
    /// `running` (which includes pending: GetFunctionTask shows a queued task as running, 0 %),
    /// `success` or `failed`.
    status: String,
    progress: i64,
    /// EndTime - StartTime, ms, once ended.
    took_ms: Option<i64>,
    extend_info: String,
}

/// The training tasks as GetFunctionTask showed them at one moment.
#[derive(Clone)]
struct TaskState {
    /// Seconds since the tasks were created.
    at: f64,
    tasks: Vec<OneTask>,
}

impl TaskState {
    /// Training is going on: a task is running (or queued behind the one that is).
    fn running(&self) -> bool {
        self.tasks.iter().any(|task| task.status == "running")
    }

    /// A task is seen training: running with Progress > 0.
    fn training(&self) -> bool {
        self.tasks.iter().any(|task| task.status == "running" && task.progress > 0)
    }

    /// The first task that ended without success.
    fn failure(&self) -> Option<&OneTask> {
        self.tasks.iter().find(|task| task.status != "running" && task.status != "success")
    }

    fn describe(&self) -> String {
        let (count, at) = (self.tasks.len(), self.at);
        let ended = self.tasks.iter().filter(|task| task.status != "running").count();
        // The worker trains one task at a time, the oldest first: the first one still showing
        // `running` is the one training (or the next to be claimed).
        if let Some(index) = self.tasks.iter().position(|task| task.status == "running") {
            let progress = self.tasks[index].progress;
            return if count == 1 {
                format!("running, {progress} % (at {at:.1} s)")
            } else {
                format!("task {} of {count} running, {progress} %, {ended} ended (at {at:.1} s)", index + 1)
            };
        }
        let mut statuses: Vec<&str> = self.tasks.iter().map(|task| task.status.as_str()).collect();
        statuses.dedup();
        let took: Vec<String> =
            self.tasks.iter().filter_map(|task| task.took_ms).map(|ms| format!("{:.1}", ms as f64 / 1000.0)).collect();
        let took = if took.is_empty() { "?".to_string() } else { took.join(" + ") };
        let tasks = if count == 1 { String::new() } else { format!("all {count} tasks ") };
        format!("{tasks}{} after {took} s of training (seen at {at:.1} s)", statuses.join("/"))
    }
}

/// The training tasks, one per instance, created together and trained one after another.
struct TrainingTasks {
    /// (instance, generation), in creation order.
    tasks: Vec<(String, String)>,
    created: Instant,
}

impl TrainingTasks {
    async fn state(&self, client: &Client, app: &str) -> TaskState {
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for (instance, generation) in &self.tasks {
            let path = format!("{}/tasks/{generation}", instance_path(app, TRAINED_FUNCTION, instance));
            let answer = client.call("GetFunctionTask", "GET", &path, &[], None).await;
            let task = answer.expect_ok();
            let status = task["Status"].as_str().unwrap_or("?").to_string();
            let (start, end) = (task["StartTime"].as_i64().unwrap_or(0), task["EndTime"].as_i64().unwrap_or(0));
            tasks.push(OneTask {
                took_ms: (status != "running" && end > 0 && start > 0).then(|| end - start),
                status,
                progress: task["Progress"].as_i64().unwrap_or(0),
                extend_info: task["ExtendInfo"].as_str().unwrap_or("").to_string(),
            });
        }
        TaskState { at: self.created.elapsed().as_secs_f64(), tasks }
    }
}

/// The instance the `index`th training task runs on.
fn trained_instance(index: usize) -> String {
    format!("{TRAINED_INSTANCE}_{index}")
}

/// Creates one task on each training instance and waits until one shows running with
/// Progress > 0, or all have ended, or the wait times out. Returns the tasks and what was seen.
async fn start_training(fixture: &Fixture, count: usize) -> (TrainingTasks, TaskState) {
    let app = fixture.app_group.as_str();
    let mut tasks = Vec::with_capacity(count);
    for index in 0..count {
        let instance = trained_instance(index);
        let created = fixture.client.create_task(app, TRAINED_FUNCTION, &instance).await;
        let generation = created.expect_ok()["Generation"].as_str().expect("a Generation").to_string();
        tasks.push((instance, generation));
    }
    let tasks = TrainingTasks { tasks, created: Instant::now() };
    loop {
        let state = tasks.state(&fixture.client, app).await;
        if state.training() || !state.running() {
            return (tasks, state);
        }
        assert!(
            tasks.created.elapsed() < TRAINING_START_TIMEOUT,
            "no training task showed progress within {TRAINING_START_TIMEOUT:?}: {}",
            state.describe()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The rows of the training mode: each with the task's state before and after it.
struct TrainingRows {
    measurements: Vec<Measurement>,
    states: Vec<(TaskState, TaskState)>,
}

/// Measures every (operation, concurrency) row, checking the task (untimed) between rows.
async fn measure_while_training(
    fixture: Arc<Fixture>,
    tasks: &TrainingTasks,
    first: TaskState,
    settings: &Settings,
) -> TrainingRows {
    let mut measurements = Vec::new();
    let mut states = Vec::new();
    let mut before = first;
    for &operation in &settings.operations {
        for &clients in &settings.concurrency {
            let measurement = measure(fixture.clone(), operation, clients, settings).await;
            let after = tasks.state(&fixture.client, &fixture.app_group).await;
            print_row(&measurement, &format!("training: {}", after.describe()));
            measurements.push(measurement);
            states.push((before, after.clone()));
            before = after;
        }
    }
    TrainingRows { measurements, states }
}

fn print_row(measurement: &Measurement, note: &str) {
    println!(
        "{:<24} clients {:>3}: {:>7} requests, {:>8.0} req/s, p50 {:>7.2} ms, p99 {:>7.2} ms, errors {}{}{note}",
        measurement.operation.action(),
        measurement.clients,
        measurement.requests(),
        measurement.throughput(),
        measurement.percentile(50.0),
        measurement.percentile(99.0),
        measurement.errors,
        if note.is_empty() { "" } else { "; " },
    );
}

async fn measure_all(fixture: Arc<Fixture>, settings: &Settings) -> Vec<Measurement> {
    let mut measurements = Vec::new();
    for &operation in &settings.operations {
        for &clients in &settings.concurrency {
            let measurement = measure(fixture.clone(), operation, clients, settings).await;
            print_row(&measurement, "");
            measurements.push(measurement);
        }
    }
    measurements
}

/// Everything the training mode found, for the report.
struct TrainingRun {
    loaded: Loaded,
    baseline: Vec<Measurement>,
    started: TaskState,
    rows: TrainingRows,
}

impl TrainingRun {
    /// The row during which the task ended, if it did: (index, state).
    fn ended_in(&self) -> Option<(usize, &TaskState)> {
        if !self.started.running() {
            return None;
        }
        self.rows
            .states
            .iter()
            .enumerate()
            .find(|(_, (_, after))| !after.running())
            .map(|(index, (_, after))| (index, after))
    }

    /// "the task" or "the N tasks".
    fn tasks_in_words(&self) -> String {
        match self.started.tasks.len() {
            1 => "the task".to_string(),
            count => format!("the {count} tasks"),
        }
    }

    fn conclusion(&self) -> String {
        let rows = self.rows.measurements.len();
        let tasks = self.tasks_in_words();
        if !self.started.running() {
            return format!(
                "NOT DURING TRAINING: {tasks} ended before training was seen (a task running with Progress > 0): {}; \
                 no row was measured during training: raise TRAINYARD_BENCH_TRAIN_DURING_EVENTS",
                self.started.describe()
            );
        }
        match self.ended_in() {
            None => format!(
                "training was still going on at the end of the measurement ({}): all {rows} rows were measured during training",
                self.rows.states.last().map(|(_, after)| after.describe()).unwrap_or_default()
            ),
            Some((index, state)) => {
                let row = &self.rows.measurements[index];
                let complete = match index {
                    0 => "no row was measured entirely during training".to_string(),
                    1 => "only the first row was measured entirely during training".to_string(),
                    _ => format!("only the first {index} rows were measured entirely during training"),
                };
                format!(
                    "FINISHED EARLY: {tasks} ended during row {} of {rows} ({}, {} client{}): {}; {complete}, and the \
                     figures of the rows from that one on do not count as \"during training\" (raise \
                     TRAINYARD_BENCH_TRAIN_DURING_EVENTS or TRAINYARD_BENCH_TRAIN_DURING_TASKS, or shorten \
                     TRAINYARD_BENCH_SECONDS)",
                    index + 1,
                    row.operation.action(),
                    row.clients,
                    if row.clients == 1 { "" } else { "s" },
                    state.describe()
                )
            }
        }
    }
}

fn render_table(measurements: &[Measurement]) -> String {
    let mut table = String::new();
    table.push_str(
        "| operation | clients | requests | req/s | mean ms | p50 ms | p90 ms | p99 ms | max ms | errors |\n",
    );
    table.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for measurement in measurements {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            measurement.operation.action(),
            measurement.clients,
            measurement.requests(),
            measurement.throughput(),
            measurement.mean(),
            measurement.percentile(50.0),
            measurement.percentile(90.0),
            measurement.percentile(99.0),
            measurement.max(),
            measurement.errors,
        );
    }
    table
}

/// The report of the training mode: how the data was loaded, the rows before and while
/// training (the same table as the normal mode), and the task's state around each row.
fn render_training(run: &TrainingRun) -> String {
    let mut section = String::new();
    let compaction = &run.loaded.compaction;
    let _ = writeln!(
        section,
        "Data: {} behavior events pushed over HTTP in {:.1} s ({:.0} events/s, {PUSH_CLIENTS} clients, {PUSH_BATCH} per push), compacted (CompactDataset) in {:.1} s: {} records from {} log segments into {} Parquet files.\n",
        run.loaded.events,
        run.loaded.push_seconds,
        run.loaded.events as f64 / run.loaded.push_seconds,
        run.loaded.compact_seconds,
        compaction["RecordsCompacted"],
        compaction["SegmentsCompacted"],
        compaction["FilesWritten"]
    );
    if !run.baseline.is_empty() {
        let _ = writeln!(
            section,
            "### Before training (worker idle; same server, data and rows)\n\n{}",
            render_table(&run.baseline)
        );
    }
    let heading = if run.started.running() { "While training" } else { "After the task ended (NOT during training)" };
    let _ = writeln!(
        section,
        "### {heading} (`{TRAINED_FUNCTION}` on {} events, {}; when the rows began: {})\n\n{}",
        run.loaded.events,
        run.tasks_in_words(),
        run.started.describe(),
        render_table(&run.rows.measurements)
    );
    section.push_str("Training around each row (GetFunctionTask of each task, untimed, between rows):\n\n");
    section.push_str(
        "| operation | clients | before the row | after the row | during training |\n|---|--:|---|---|---|\n",
    );
    for (measurement, (before, after)) in run.rows.measurements.iter().zip(&run.rows.states) {
        let during = match (before.running(), after.running()) {
            (true, true) => "yes",
            (true, false) => "partly (ended during the row)",
            (false, _) => "no",
        };
        let _ = writeln!(
            section,
            "| {} | {} | {} | {} | {during} |",
            measurement.operation.action(),
            measurement.clients,
            before.describe(),
            after.describe()
        );
    }
    let _ = writeln!(section, "\n**{}**", run.conclusion());
    let last = run.rows.states.last().map(|(_, after)| after).unwrap_or(&run.started);
    if let Some(failed) = last.failure() {
        let info: String = failed.extend_info.chars().take(500).collect();
        let _ = writeln!(section, "\nA training task did not succeed ({}): ExtendInfo {info}", failed.status);
    }
    section
}

/// Prints the first few panics in full (with the default hook) and only counts the rest.
fn quiet_panics() {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let seen = PANICS.fetch_add(1, Ordering::Relaxed);
        if seen < PRINTED_PANICS {
            default_hook(info);
        } else if seen == PRINTED_PANICS {
            eprintln!("(further panics are counted as errors, not printed)");
        }
    }));
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` / `--all-targets` runs this binary
    // without it, and then it only smoke-tests itself (a fraction of a second per row, nothing
    // written). Any other argument is ignored: the knobs come from the environment.
    let smoke = !std::env::args().any(|argument| argument == "--bench");
    let settings = Settings::from_environment(smoke);
    if smoke {
        println!("api_latency: no --bench argument (run by cargo test): smoke run, short rows, no results file");
    }
    quiet_panics();

    let data_parent = &settings.data_parent;
    std::fs::create_dir_all(data_parent).expect("creating TRAINYARD_BENCH_DATA_PARENT");
    let temporary_dir = tempfile::Builder::new().prefix("trainyard-bench-").tempdir_in(data_parent).expect("temp dir");
    let data_dir = temporary_dir.path().join("data");
    // While training: one worker (the server's default), and no background compaction inside
    // the measurement (the bench compacts the loaded events itself).
    // The bench measures the server, not the per-AccessKey rate limit.
    let mut environment: Vec<(&str, &str)> = vec![("TRAINYARD_RATE_LIMIT_PER_SECOND", "0")];
    if let Some(training) = &settings.train_during {
        environment.push(("TRAINYARD_WORKER_CONCURRENCY", "1"));
        environment.push(("TRAINYARD_COMPACTION_INTERVAL_SECONDS", "3600"));
        if let Some(nice) = &training.trainer_nice {
            environment.push(("TRAINYARD_TRAINER_NICE", nice));
        }
        if let Some(millis) = &training.heartbeat_millis {
            environment.push(("TRAINYARD_TASK_HEARTBEAT_MILLIS", millis));
        }
    }
    let server = TestServer::start_in(&data_dir, &environment);
    let data_filesystem = {
        let path = temporary_dir.path().to_string_lossy().into_owned();
        let found = machine::command_output("findmnt", &["-n", "-o", "FSTYPE,SOURCE", "--target", &path]);
        if found == "?" {
            machine::command_output("stat", &["-f", "-c", "%T", &path])
        } else {
            found.split_whitespace().collect::<Vec<_>>().join(" on ")
        }
    };
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());

    let started_at = chrono::Utc::now();
    let mut facts = String::new();
    let _ = writeln!(facts, "- date: {}", started_at.format("%Y-%m-%d %H:%M:%S UTC"));
    let _ = writeln!(
        facts,
        "- machine: nproc {}, `uname -r` {}, CPU {}",
        machine::command_output("nproc", &[]),
        machine::command_output("uname", &["-r"]),
        machine::cpu_model()
    );
    let _ = writeln!(
        facts,
        "- load average at start (1, 5, 15 min): {load_average} (anything else running skews the figures)"
    );
    let _ = writeln!(facts, "- server build profile: {}", machine::server_profile());
    let _ = writeln!(
        facts,
        "- server: SQLite metadata in {} (file system: {data_filesystem}), listening on {}; client and server share the machine",
        data_dir.display(),
        server.address
    );
    let _ = writeln!(
        facts,
        "- client: {} tokio worker threads, one shared HTTP/1.1 keep-alive pool; {} s warm-up + {} s measured per row",
        settings.client_threads,
        settings.warmup.as_secs_f64(),
        settings.measure.as_secs_f64()
    );
    let _ = writeln!(
        facts,
        "- latency: client-side, per request, from before signing (ACS3-HMAC-SHA256, fresh nonce) to the parsed JSON body; closed loop (each client sends its next request when the previous answer arrives)"
    );
    if let Some(training) = &settings.train_during {
        let _ = writeln!(
            facts,
            "- mode: while training: the server runs 1 training worker, trainer threads at nice {}, progress recorded every {} ms; {} behavior events pushed over HTTP and compacted before measuring; `{TRAINED_FUNCTION}` trained with its default parameters during the second set of rows ({} task{} queued at once, one per instance, trained one after another)",
            training.trainer_nice.as_deref().unwrap_or("10 (the server's default)"),
            training.heartbeat_millis.as_deref().unwrap_or("1000 (the server's default)"),
            training.events,
            training.tasks,
            if training.tasks == 1 { "" } else { "s" }
        );
    }
    println!("\n{facts}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .enable_all()
        .build()
        .expect("client runtime");
    let host = server.address.clone();
    let (measurements, training_run) = runtime.block_on(async {
        let fixture = Arc::new(prepare(server.client()).await);
        let Some(training) = &settings.train_during else {
            return (measure_all(fixture, &settings).await, None);
        };
        println!("api_latency: loading {} behavior events over HTTP ...", training.events);
        let loaded = load_behavior(&fixture, &host, training.events).await;
        println!(
            "api_latency: pushed {} events in {:.1} s ({:.0} events/s), compacted in {:.1} s: {}",
            loaded.events,
            loaded.push_seconds,
            loaded.events as f64 / loaded.push_seconds,
            loaded.compact_seconds,
            loaded.compaction
        );
        for index in 0..training.tasks {
            let body = json!({"instanceName": trained_instance(index), "modelType": TRAINED_MODEL_TYPE,
                              "description": "api_latency bench: trained during the measurement"});
            fixture.client.create_instance(&fixture.app_group, TRAINED_FUNCTION, body).await.expect_ok();
        }
        let baseline = if training.baseline {
            println!("api_latency: rows before training (worker idle, same server and data):");
            measure_all(fixture.clone(), &settings).await
        } else {
            Vec::new()
        };
        println!("api_latency: CreateFunctionTask on {} {TRAINED_FUNCTION} instance(s) ...", training.tasks);
        let (tasks, started) = start_training(&fixture, training.tasks).await;
        println!("api_latency: training: {}", started.describe());
        println!("api_latency: rows while training:");
        let rows = measure_while_training(fixture.clone(), &tasks, started.clone(), &settings).await;
        let run = TrainingRun { loaded, baseline, started, rows };
        println!("api_latency: {}", run.conclusion());
        (Vec::new(), Some(run))
    });
    drop(runtime);
    drop(server);

    let table = render_table(&measurements);
    let training_section = training_run.as_ref().map(render_training);
    // Every measured row, in both modes (while training: the baseline rows, then the others).
    let every_row: Vec<(&str, &Measurement)> = match &training_run {
        None => measurements.iter().map(|measurement| ("", measurement)).collect(),
        Some(run) => run
            .baseline
            .iter()
            .map(|measurement| ("before training: ", measurement))
            .chain(run.rows.measurements.iter().map(|measurement| ("while training: ", measurement)))
            .collect(),
    };
    let mut errors_section = String::new();
    for (phase, measurement) in every_row.iter().filter(|(_, measurement)| measurement.errors > 0) {
        for (kind, (count, example)) in &measurement.error_kinds {
            let example: String = example.chars().take(300).collect();
            let _ = writeln!(
                errors_section,
                "- {phase}{} clients {}: {count} × {kind}: {example}",
                measurement.operation.action(),
                measurement.clients
            );
        }
    }
    let total_errors: usize = every_row.iter().map(|(_, measurement)| measurement.errors).sum();

    match &training_section {
        Some(section) => println!("\n{section}"),
        None => println!("\n{table}"),
    }
    if total_errors > 0 {
        println!("ERRORS ({total_errors}; any answer other than HTTP 200 is an error):\n{errors_section}");
    } else {
        println!("errors: 0 (every measured request answered HTTP 200)");
    }

    let mut report = String::new();
    let _ = writeln!(report, "# api_latency {}\n", started_at.format("%Y-%m-%d %H:%M:%S UTC"));
    report.push_str(&facts);
    report.push('\n');
    match &training_section {
        Some(section) => report.push_str(section),
        None => report.push_str(&table),
    }
    if total_errors > 0 {
        let _ = write!(report, "\nErrors ({total_errors}):\n{errors_section}");
    }
    if settings.smoke {
        drop(temporary_dir);
        assert_eq!(total_errors, 0, "every request answers HTTP 200");
        return;
    }
    std::fs::create_dir_all(&settings.results_dir).expect("creating the results dir");
    let results_dir = settings.results_dir.canonicalize().unwrap_or_else(|_| settings.results_dir.clone());
    let name = if settings.train_during.is_some() { "api_latency-training" } else { "api_latency" };
    let results_file = results_dir.join(format!("{name}-{}.md", started_at.format("%Y%m%dT%H%M%SZ")));
    std::fs::write(&results_file, report).expect("writing the results file");
    println!("\nwritten to {}", results_file.display());

    drop(temporary_dir);
    if total_errors > 0 {
        std::process::exit(1);
    }
}
