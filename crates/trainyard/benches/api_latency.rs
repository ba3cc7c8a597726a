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
//! itself: 0.2 s per row, 1 and 4 clients, all four operations, no results file.
//!
//! Knobs (environment variables; the defaults are those of `cargo bench`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TRAINYARD_BENCH_SECONDS` | `5` | measured seconds per (operation, concurrency) |
//! | `TRAINYARD_BENCH_WARMUP_SECONDS` | `1` | unrecorded seconds before each measurement |
//! | `TRAINYARD_BENCH_CONCURRENCY` | `1,16,64` | concurrent clients, comma separated |
//! | `TRAINYARD_BENCH_OPERATIONS` | `create_instance,get_instance,list_tasks` | also `create_task` |
//! | `TRAINYARD_BENCH_CLIENT_THREADS` | available CPUs | worker threads of the client runtime |
//! | `TRAINYARD_BENCH_DATA_PARENT` | the temp dir | where the server's data dir is created |
//! | `TRAINYARD_BENCH_RESULTS_DIR` | `<workspace>/bench/results` | where the markdown is written |

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

use serde_json::json;
use support::{Client, TestServer, instance_path};

/// The function and model type every instance is created with (no required parameters).
const FUNCTION: &str = "ctr";
const MODEL_TYPE: &str = "tf_checkpoint";
/// How many instances the read operations spread over (each with one pending task).
const READ_INSTANCES: usize = 8;
/// How many transport panics are printed in full before the rest are only counted.
const PRINTED_PANICS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    CreateInstance,
    GetInstance,
    ListTasks,
    CreateTask,
}

impl Operation {
    fn parse(text: &str) -> Operation {
        match text.trim() {
            "create_instance" | "CreateFunctionInstance" => Operation::CreateInstance,
            "get_instance" | "GetFunctionInstance" => Operation::GetInstance,
            "list_tasks" | "ListFunctionTasks" => Operation::ListTasks,
            "create_task" | "CreateFunctionTask" => Operation::CreateTask,
            other => panic!(
                "TRAINYARD_BENCH_OPERATIONS: unknown operation {other:?} (create_instance, get_instance, list_tasks, create_task)"
            ),
        }
    }

    fn action(self) -> &'static str {
        match self {
            Operation::CreateInstance => "CreateFunctionInstance",
            Operation::GetInstance => "GetFunctionInstance",
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
        let measure = seconds("TRAINYARD_BENCH_SECONDS", if smoke { 0.2 } else { 5.0 });
        assert!(!measure.is_zero(), "TRAINYARD_BENCH_SECONDS must be above 0");
        let warmup = seconds("TRAINYARD_BENCH_WARMUP_SECONDS", if smoke { 0.0 } else { 1.0 });
        let concurrency: Vec<usize> = text("TRAINYARD_BENCH_CONCURRENCY")
            .unwrap_or_else(|| if smoke { "1,4" } else { "1,16,64" }.into())
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
                if smoke {
                    "create_instance,get_instance,list_tasks,create_task"
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
        Settings { measure, warmup, concurrency, operations, client_threads, data_parent, results_dir, smoke }
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
    Fixture { client, app_group, read_instances, next_name: AtomicU64::new(0), run_tag }
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
    let server = TestServer::start_in(&data_dir, &[]);
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
    println!("\n{facts}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .enable_all()
        .build()
        .expect("client runtime");
    let measurements = runtime.block_on(async {
        let fixture = Arc::new(prepare(server.client()).await);
        let mut measurements = Vec::new();
        for &operation in &settings.operations {
            for &clients in &settings.concurrency {
                let measurement = measure(fixture.clone(), operation, clients, &settings).await;
                println!(
                    "{:<24} clients {:>3}: {:>7} requests, {:>8.0} req/s, p50 {:>7.2} ms, p99 {:>7.2} ms, errors {}",
                    operation.action(),
                    clients,
                    measurement.requests(),
                    measurement.throughput(),
                    measurement.percentile(50.0),
                    measurement.percentile(99.0),
                    measurement.errors
                );
                measurements.push(measurement);
            }
        }
        measurements
    });
    drop(runtime);
    drop(server);

    let table = render_table(&measurements);
    let mut errors_section = String::new();
    for measurement in measurements.iter().filter(|measurement| measurement.errors > 0) {
        for (kind, (count, example)) in &measurement.error_kinds {
            let example: String = example.chars().take(300).collect();
            let _ = writeln!(
                errors_section,
                "- {} clients {}: {count} × {kind}: {example}",
                measurement.operation.action(),
                measurement.clients
            );
        }
    }
    let total_errors: usize = measurements.iter().map(|measurement| measurement.errors).sum();

    println!("\n{table}");
    if total_errors > 0 {
        println!("ERRORS ({total_errors}; any answer other than HTTP 200 is an error):\n{errors_section}");
    } else {
        println!("errors: 0 (every measured request answered HTTP 200)");
    }

    let mut report = String::new();
    let _ = writeln!(report, "# api_latency {}\n", started_at.format("%Y-%m-%d %H:%M:%S UTC"));
    report.push_str(&facts);
    report.push('\n');
    report.push_str(&table);
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
    let results_file = results_dir.join(format!("api_latency-{}.md", started_at.format("%Y%m%dT%H%M%SZ")));
    std::fs::write(&results_file, report).expect("writing the results file");
    println!("\nwritten to {}", results_file.display());

    drop(temporary_dir);
    if total_errors > 0 {
        std::process::exit(1);
    }
}
