//! Integration tests of the task runner: a real `SqlStore` on SQLite, a real dataset and
//! artifact store in a temporary directory, the system clock, and tasks created through the
//! domain `Service` — only the trainer is fake, so that leases, heartbeats, cancellation,
//! fencing, deadlines, shutdown, retries, pruning and cron can be driven with known timing.
//!
//! Durations are shortened (heartbeat 50 ms, poll 50 ms, lease 1 s); every wait is a poll with a
//! generous bound, so a slow machine makes a test slower, not wrong.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trainyard_core::clock::{Clock, ManualClock, SystemClock};
use trainyard_core::model::{AccountId, FunctionInstance, FunctionTask, Millis, TaskState, TaskTrigger};
use trainyard_core::queue::{Heartbeat, TaskLease, TaskOutcome, TaskQueue};
use trainyard_core::service::{
    Caller, CreateAppGroupRequest, CreateFunctionInstanceRequest, ListFunctionTasksRequest, Service,
};
use trainyard_core::store::MetadataStore;
use trainyard_data::artifacts::ArtifactStore;
use trainyard_data::{DatasetConfig, DatasetStore};
use trainyard_runner::{Runner, RunnerConfig, Trainer};
use trainyard_store::SqlStore;
use trainyard_train::{TrainError, TrainedModel, TrainingContext};

const APP: &str = "runner_app";
const FUNCTION: &str = "hot";

/// Longest wait for something the runner does within a few heartbeats or polls.
const SOON: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The fake trainer
// ---------------------------------------------------------------------------------------------

/// How one training run ends.
#[derive(Debug, Clone)]
enum End {
    /// A model whose artifact is `model <label> #<call>`.
    Model(&'static str),
    /// The same, evaluated below its baseline (`replace_served: false`).
    ModelBelowBaseline(&'static str),
    NotEnoughData(&'static str),
    Panic(&'static str),
}

/// One training run: `steps` sleeps of `step`, progress after each, then `end`.
#[derive(Debug, Clone)]
struct Plan {
    steps: u32,
    step: Duration,
    end: End,
}

impl Plan {
    fn quick(label: &'static str) -> Plan {
        Plan { steps: 2, step: Duration::from_millis(10), end: End::Model(label) }
    }

    /// A run that would take about a minute unless stopped.
    fn endless() -> Plan {
        Plan { steps: 1200, step: Duration::from_millis(50), end: End::Model("endless") }
    }
}

/// A trainer that follows its plans in order (then the fallback), honours cancellation within
/// one step, and counts what happened.
struct FakeTrainer {
    plans: Mutex<VecDeque<Plan>>,
    fallback: Plan,
    started: AtomicUsize,
    cancelled: AtomicUsize,
    produced: Mutex<Vec<Vec<u8>>>,
    /// While set, a run that has done its steps waits (still honouring cancellation) before
    /// it ends.
    held: AtomicBool,
}

impl FakeTrainer {
    fn new(fallback: Plan) -> Arc<FakeTrainer> {
        FakeTrainer::scripted(Vec::new(), fallback)
    }

    fn scripted(plans: Vec<Plan>, fallback: Plan) -> Arc<FakeTrainer> {
        Arc::new(FakeTrainer {
            plans: Mutex::new(plans.into()),
            fallback,
            started: AtomicUsize::new(0),
            cancelled: AtomicUsize::new(0),
            produced: Mutex::new(Vec::new()),
            held: AtomicBool::new(false),
        })
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn produced(&self) -> Vec<Vec<u8>> {
        self.produced.lock().unwrap().clone()
    }

    fn hold(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
    }
}

impl Trainer for FakeTrainer {
    fn train(
        &self,
        _datasets: &DatasetStore,
        instance: &FunctionInstance,
        _now_seconds: i64,
        context: &TrainingContext,
    ) -> Result<TrainedModel, TrainError> {
        let call = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let plan = self.plans.lock().unwrap().pop_front().unwrap_or_else(|| self.fallback.clone());
        for step in 1..=plan.steps {
            std::thread::sleep(plan.step);
            if let Err(error) = context.check_cancelled() {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                return Err(error);
            }
            context.set_progress(step * 100 / plan.steps);
        }
        while self.held.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
            if let Err(error) = context.check_cancelled() {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                return Err(error);
            }
        }
        match plan.end {
            End::Model(label) | End::ModelBelowBaseline(label) => {
                let artifact = format!("model {label} #{call}").into_bytes();
                self.produced.lock().unwrap().push(artifact.clone());
                Ok(TrainedModel {
                    artifact,
                    metrics: serde_json::json!({"call": call, "auc": 0.75}),
                    data_report: serde_json::json!({"instance": instance.instance_name, "searches": 42}),
                    warnings: vec![format!("fake warning of call {call}")],
                    replace_served: matches!(plan.end, End::Model(_)),
                })
            }
            End::NotEnoughData(reason) => Err(TrainError::NotEnoughData(reason.to_string())),
            End::Panic(message) => panic!("{message}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

struct Harness {
    directory: tempfile::TempDir,
    queue: Arc<dyn TaskQueue>,
    service: Service,
    datasets: Arc<DatasetStore>,
    artifacts: ArtifactStore,
    caller: Caller,
}

/// A runner started in the background.
struct Started {
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

impl Started {
    /// Shuts the runner down and waits until `run` has returned.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(SOON, self.handle)
            .await
            .expect("the runner stops after its shutdown token is cancelled")
            .expect("the runner does not panic");
    }
}

fn now_ms() -> Millis {
    SystemClock.now_ms()
}

/// Test settings: everything short.
fn test_config(node_id: &str) -> RunnerConfig {
    let mut config = RunnerConfig::for_node(node_id, now_ms());
    config.heartbeat = Duration::from_millis(50);
    config.poll = Duration::from_millis(50);
    config.lease = Duration::from_secs(1);
    config.retry_delay = Duration::ZERO;
    config.scheduler_tick = Duration::from_millis(100);
    config.deadline = Duration::from_secs(120);
    config
}

fn extend_info(task: &FunctionTask) -> serde_json::Value {
    serde_json::from_str(&task.extend_info).unwrap_or_else(|error| panic!("ExtendInfo is not JSON ({error}): {task:?}"))
}

fn errors_of(task: &FunctionTask) -> Vec<String> {
    extend_info(task)["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("ExtendInfo has no errors array: {}", task.extend_info))
        .iter()
        .map(|error| error.as_str().expect("errors are strings").to_string())
        .collect()
}

fn failure_reason(task: &FunctionTask) -> String {
    extend_info(task)["failure"]["reason"].as_str().unwrap_or_default().to_string()
}

fn files_under(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        return files;
    };
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

impl Harness {
    async fn new() -> Harness {
        Harness::with_clock(Arc::new(SystemClock)).await
    }

    /// A harness whose `Service` (so: creation times of instances and API tasks) reads `clock`.
    async fn with_clock(clock: Arc<dyn Clock>) -> Harness {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = Arc::new(SqlStore::open_sqlite_in(directory.path()).await.expect("open the SQLite store"));
        let queue: Arc<dyn TaskQueue> = store.clone();
        let service = Service::new(store.clone() as Arc<dyn MetadataStore>, clock).with_queue(queue.clone());
        let dataset_config =
            DatasetConfig { log_directory: directory.path().join("ingest-log"), segment_max_bytes: 1 << 20 };
        let datasets = Arc::new(
            DatasetStore::open_local(
                dataset_config,
                &directory.path().join("objects"),
                tokio::runtime::Handle::current(),
            )
            .expect("open the dataset store"),
        );
        let artifacts = ArtifactStore::new(datasets.objects().clone());
        let caller = Caller {
            account_id: AccountId("runner-tests".into()),
            principal: trainyard_core::ram::Principal::Root,
            access_key_id: "LTAIrunnertests0001".into(),
        };
        service
            .create_app_group(&caller, CreateAppGroupRequest { name: Some(APP.into()), ..Default::default() })
            .await
            .expect("create the app group");
        Harness { directory, queue, service, datasets, artifacts, caller }
    }

    async fn instance(&self, name: &str, cron: &str) -> FunctionInstance {
        self.service
            .create_function_instance(
                &self.caller,
                APP,
                FUNCTION,
                CreateFunctionInstanceRequest {
                    instance_name: Some(name.into()),
                    model_type: Some("offline_inference".into()),
                    cron: Some(cron.into()),
                    ..Default::default()
                },
            )
            .await
            .expect("create the instance")
    }

    async fn create_task(&self, instance: &str) -> FunctionTask {
        self.service.create_function_task(&self.caller, APP, FUNCTION, instance).await.expect("create a task")
    }

    async fn task(&self, instance: &str, generation: i64) -> FunctionTask {
        self.service
            .get_function_task(&self.caller, APP, FUNCTION, instance, &generation.to_string())
            .await
            .expect("get the task")
    }

    async fn cancel(&self, instance: &str, generation: i64) -> FunctionTask {
        self.service
            .cancel_function_task(&self.caller, APP, FUNCTION, instance, &generation.to_string())
            .await
            .expect("cancel the task")
    }

    async fn get_instance(&self, instance: &str) -> FunctionInstance {
        self.service
            .get_function_instance(&self.caller, APP, FUNCTION, instance)
            .await
            .expect("get the instance")
            .instance
    }

    async fn tasks(&self, instance: &str) -> Vec<FunctionTask> {
        self.service
            .list_function_tasks(
                &self.caller,
                APP,
                FUNCTION,
                instance,
                ListFunctionTasksRequest { page_size: Some(100), ..Default::default() },
            )
            .await
            .expect("list the tasks")
            .items
    }

    /// Polls the task until `done` holds; fails the test after `within`.
    async fn wait_for(
        &self,
        instance: &str,
        generation: i64,
        within: Duration,
        what: &str,
        done: impl Fn(&FunctionTask) -> bool,
    ) -> FunctionTask {
        let started = Instant::now();
        loop {
            let task = self.task(instance, generation).await;
            if done(&task) {
                return task;
            }
            assert!(
                started.elapsed() < within,
                "{instance} generation {generation} is not {what} after {within:?}: {task:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_finished(&self, instance: &str, generation: i64) -> FunctionTask {
        self.wait_for(instance, generation, SOON, "finished", |task| !task.state.is_active()).await
    }

    fn runner(&self, config: RunnerConfig, trainer: Arc<FakeTrainer>) -> Runner {
        Runner::new(self.queue.clone(), self.datasets.clone(), self.artifacts.clone(), Arc::new(SystemClock), config)
            .with_trainer(trainer)
    }

    fn start(&self, config: RunnerConfig, trainer: Arc<FakeTrainer>) -> Started {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(self.runner(config, trainer).run(shutdown.clone()));
        Started { shutdown, handle }
    }

    /// Every model artifact file in the object store, relative to the object store's root.
    fn artifact_files(&self) -> Vec<String> {
        let root = self.directory.path().join("objects");
        files_under(&root.join("models"))
            .into_iter()
            .map(|path| path.strip_prefix(&root).expect("under the root").to_string_lossy().replace('\\', "/"))
            .collect()
    }
}

async fn claim(queue: &dyn TaskQueue, worker_id: &str, now_ms: Millis, lease_ms: Millis) -> TaskLease {
    queue
        .claim_task(worker_id, now_ms, lease_ms)
        .await
        .expect("claim")
        .unwrap_or_else(|| panic!("{worker_id} finds a task to claim at {now_ms}"))
        .lease
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// 1. A task is claimed, its progress rises as heartbeats write it, it succeeds with progress
///    100, the instance serves its generation and the model can be read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_trains_to_success_with_rising_progress() {
    let harness = Harness::new().await;
    harness.instance("hot_success", "").await;
    assert_eq!(harness.get_instance("hot_success").await.status(), "unavailable");
    let trainer = FakeTrainer::new(Plan { steps: 10, step: Duration::from_millis(100), end: End::Model("success") });
    let runner = harness.start(test_config("node-a"), trainer.clone());

    let created = harness.create_task("hot_success").await;
    assert_eq!((created.generation, created.state, created.progress), (1, TaskState::Pending, 0));
    let mut progress = Vec::new();
    let started = Instant::now();
    let finished = loop {
        let task = harness.task("hot_success", 1).await;
        progress.push(task.progress);
        if !task.state.is_active() {
            break task;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the task did not finish: {task:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    runner.stop().await;

    assert_eq!(finished.state, TaskState::Success, "{}", finished.extend_info);
    assert_eq!(finished.progress, 100);
    assert_eq!(finished.attempt, 1);
    assert!(finished.started_ms.is_some() && finished.ended_ms.is_some(), "{finished:?}");
    assert!(progress.windows(2).all(|pair| pair[0] <= pair[1]), "progress went down: {progress:?}");
    assert!(
        progress.iter().any(|value| (1..100).contains(value)),
        "no progress between 0 and 100 was seen while it ran: {progress:?}"
    );

    let instance = harness.get_instance("hot_success").await;
    assert_eq!(instance.serving_generation, Some(1));
    assert_eq!(instance.status(), "available");

    let artifact = finished.artifact.clone().expect("a successful task records its artifact");
    let produced = trainer.produced();
    assert_eq!(produced, vec![b"model success #1".to_vec()]);
    let stored = harness.artifacts.get(&artifact).await.expect("the artifact is readable and matches its checksum");
    assert_eq!(&stored[..], &produced[0][..]);
    assert_eq!(artifact.bytes, produced[0].len() as i64);
    assert_eq!(harness.artifact_files(), vec![artifact.path.clone()]);

    let info = extend_info(&finished);
    for key in ["metrics", "dataReport", "errors"] {
        assert!(info.get(key).is_some(), "ExtendInfo lacks {key}: {info}");
    }
    assert_eq!(info["metrics"]["call"], 1, "{info}");
    assert_eq!(info["dataReport"]["instance"], "hot_success", "{info}");
    assert_eq!(errors_of(&finished), vec!["fake warning of call 1".to_string()]);
    let served_info: serde_json::Value = serde_json::from_str(&instance.extend_info).expect("instance ExtendInfo");
    assert_eq!(served_info, info, "the instance describes the model it serves");
}

/// 2. A failed training leaves the model that was served before in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_never_replaces_a_good_model() {
    let harness = Harness::new().await;
    harness.instance("hot_keep", "").await;
    let reason = "no raw_query searches in the last 14 days";
    let trainer = FakeTrainer::scripted(
        vec![Plan::quick("good"), Plan { steps: 2, step: Duration::from_millis(10), end: End::NotEnoughData(reason) }],
        Plan::quick("later"),
    );
    let runner = harness.start(test_config("node-a"), trainer.clone());

    harness.create_task("hot_keep").await;
    let first = harness.wait_finished("hot_keep", 1).await;
    assert_eq!(first.state, TaskState::Success, "{}", first.extend_info);
    let served_before = harness.get_instance("hot_keep").await;

    let second = harness.create_task("hot_keep").await;
    assert_eq!(second.generation, 2);
    let second = harness.wait_finished("hot_keep", 2).await;
    runner.stop().await;

    assert_eq!(second.state, TaskState::Failed, "{}", second.extend_info);
    assert_eq!(errors_of(&second), vec![reason.to_string()]);
    assert_eq!(failure_reason(&second), "NotEnoughData");
    assert_eq!(second.artifact, None);
    assert_eq!(trainer.started(), 2);

    let instance = harness.get_instance("hot_keep").await;
    assert_eq!(instance.serving_generation, Some(1));
    assert_eq!(instance.extend_info, served_before.extend_info, "the served model's description is unchanged");
    let artifact = first.artifact.expect("generation 1 has its artifact");
    assert_eq!(&harness.artifacts.get(&artifact).await.expect("generation 1 is still readable")[..], b"model good #1");
    assert_eq!(harness.artifact_files(), vec![artifact.path]);
}

/// 2b. A model below its baseline succeeds but does not replace the served model; the first
///     model of an instance is served whatever its evaluation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_below_its_baseline_is_kept_but_not_served_over_a_good_one() {
    let harness = Harness::new().await;
    harness.instance("ctr_keep", "").await;
    let below = |label| Plan { steps: 2, step: Duration::from_millis(10), end: End::ModelBelowBaseline(label) };
    let trainer =
        FakeTrainer::scripted(vec![below("first"), Plan::quick("good"), below("worse")], Plan::quick("later"));
    let runner = harness.start(test_config("node-a"), trainer.clone());

    harness.create_task("ctr_keep").await;
    let first = harness.wait_finished("ctr_keep", 1).await;
    assert_eq!(first.state, TaskState::Success, "{}", first.extend_info);
    assert_eq!(harness.get_instance("ctr_keep").await.serving_generation, Some(1), "nothing was served before");

    harness.create_task("ctr_keep").await;
    assert_eq!(harness.wait_finished("ctr_keep", 2).await.state, TaskState::Success);
    assert_eq!(harness.get_instance("ctr_keep").await.serving_generation, Some(2));

    harness.create_task("ctr_keep").await;
    let third = harness.wait_finished("ctr_keep", 3).await;
    runner.stop().await;
    assert_eq!(third.state, TaskState::Success, "{}", third.extend_info);
    assert!(third.artifact.is_some(), "the model is stored");
    assert_eq!(harness.get_instance("ctr_keep").await.serving_generation, Some(2), "generation 2 is still served");
}

/// 3. Cancelling: a running task stops and fails within 5 s; a pending one fails at once
///    (before the runner starts, and while the runner's only slot is busy); a finished task is
///    returned unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_of_running_pending_and_finished_tasks() {
    let harness = Harness::new().await;
    for name in ["hot_early", "hot_running", "hot_waiting"] {
        harness.instance(name, "").await;
    }
    let trainer = FakeTrainer::new(Plan::endless());

    // Pending, no runner yet: it fails at once.
    harness.create_task("hot_early").await;
    let early = harness.cancel("hot_early", 1).await;
    assert_eq!(early.state, TaskState::Failed, "{early:?}");
    assert!(early.extend_info.contains("cancelled"), "{}", early.extend_info);
    assert_eq!(failure_reason(&early), "Cancelled");

    let mut config = test_config("node-a");
    config.concurrency = 1;
    let runner = harness.start(config, trainer.clone());

    // Running: the trainer is told to stop and the task fails promptly.
    harness.create_task("hot_running").await;
    harness
        .wait_for("hot_running", 1, SOON, "running with progress", |task| {
            task.state == TaskState::Running && task.progress > 0
        })
        .await;

    // Pending while the only slot is busy: it fails at once too.
    harness.create_task("hot_waiting").await;
    let waiting = harness.cancel("hot_waiting", 1).await;
    assert_eq!(waiting.state, TaskState::Failed, "{waiting:?}");
    assert!(waiting.extend_info.contains("cancelled"), "{}", waiting.extend_info);

    let cancel_requested = Instant::now();
    let flagged = harness.cancel("hot_running", 1).await;
    assert_eq!(flagged.state, TaskState::Running, "a running task is flagged, its worker stops it");
    assert!(flagged.cancel_requested);
    let cancelled = harness
        .wait_for("hot_running", 1, Duration::from_secs(5), "failed (cancel must take effect within 5 s)", |task| {
            task.state == TaskState::Failed
        })
        .await;
    let took = cancel_requested.elapsed();
    assert!(took < Duration::from_secs(5), "the cancel took {took:?}");
    assert!(cancelled.extend_info.contains("cancelled"), "{}", cancelled.extend_info);
    assert_eq!(failure_reason(&cancelled), "Cancelled");
    assert_eq!(cancelled.artifact, None);
    assert_eq!(trainer.cancelled(), 1, "the trainer itself was told to stop");
    assert_eq!(harness.get_instance("hot_running").await.serving_generation, None);

    // Finished: unchanged.
    for (name, task) in [("hot_running", cancelled), ("hot_early", early)] {
        let again = harness.cancel(name, 1).await;
        assert_eq!(again, task, "cancelling a finished task changes nothing");
        assert_eq!(harness.task(name, 1).await, task);
    }

    // The cancelled pending tasks never reach a trainer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    runner.stop().await;
    assert_eq!(trainer.started(), 1);
    assert!(harness.artifact_files().is_empty(), "{:?}", harness.artifact_files());
}

/// 4a. A worker that died holding a task (no heartbeat ever again): once its lease expires the
///     reaper puts the task back and the runner trains it (attempt 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_of_a_dead_worker_is_retried_after_its_lease_expires() {
    let harness = Harness::new().await;
    harness.instance("hot_crash", "").await;
    harness.create_task("hot_crash").await;
    let claimed_at = Instant::now();
    let dead = claim(harness.queue.as_ref(), "dead-worker:1", now_ms(), 1_000).await;
    assert_eq!(dead.attempt, 1);

    let trainer = FakeTrainer::new(Plan::quick("recovered"));
    let runner = harness.start(test_config("node-a"), trainer.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during_lease = harness.task("hot_crash", 1).await;
    if claimed_at.elapsed() < Duration::from_millis(800) {
        assert_eq!((during_lease.state, during_lease.attempt), (TaskState::Running, 1), "a live lease is not taken");
        assert_eq!(trainer.started(), 0);
    }

    let finished = harness.wait_finished("hot_crash", 1).await;
    runner.stop().await;
    assert_eq!(finished.state, TaskState::Success, "{}", finished.extend_info);
    assert_eq!(finished.attempt, 2);
    assert_eq!(trainer.started(), 1);
    assert_eq!(harness.get_instance("hot_crash").await.serving_generation, Some(1));

    // The dead worker's lease is fenced off.
    let queue = harness.queue.as_ref();
    assert_eq!(queue.heartbeat(&dead, 50, now_ms(), 1_000).await.unwrap(), Heartbeat::Lost);
    let failure = TaskOutcome::Failed { extend_info: "{}".into() };
    assert!(!queue.finish_task(&dead, &failure, now_ms()).await.unwrap());
    assert_eq!(harness.task("hot_crash", 1).await, finished);
}

/// 4b. With its attempts used up (three by default), a task whose worker is lost fails with a
///     WorkerLost reason; it never stays running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_attempts_are_used_up_fails_with_worker_lost() {
    let harness = Harness::new().await;
    harness.instance("hot_exhausted", "").await;
    harness.create_task("hot_exhausted").await;
    let queue = harness.queue.as_ref();
    let start = now_ms();
    for attempt in 1..=2 {
        let lease = claim(queue, "dead-worker:1", start + attempt - 1, 0).await;
        assert_eq!(lease.attempt, attempt);
        let reaped = queue.reap_lost_tasks(start + attempt, 0, None, "test-reaper").await.unwrap();
        assert_eq!(reaped.len(), 1);
        assert!(reaped[0].retried, "attempt {attempt} of 3 is retried");
    }
    let last = claim(queue, "dead-worker:1", start + 2, 500).await;
    assert_eq!(last.attempt, 3);

    let trainer = FakeTrainer::new(Plan::quick("never"));
    let runner = harness.start(test_config("node-a"), trainer.clone());
    let failed = harness.wait_finished("hot_exhausted", 1).await;
    // A few more reaper periods: nothing changes any more.
    tokio::time::sleep(Duration::from_millis(600)).await;
    runner.stop().await;

    assert_eq!(failed.state, TaskState::Failed, "{failed:?}");
    assert_eq!(failed.attempt, 3);
    assert!(failed.extend_info.contains("WorkerLost"), "{}", failed.extend_info);
    assert_eq!(failure_reason(&failed), "WorkerLost");
    assert!(failed.ended_ms.is_some());
    assert_eq!(harness.task("hot_exhausted", 1).await, failed);
    assert_eq!(trainer.started(), 0, "no fourth attempt");
    assert_eq!(harness.get_instance("hot_exhausted").await.serving_generation, None);
}

/// 5. A restarted node takes back the tasks of its earlier life at once, long before their
///    leases expire, and leaves the live leases of other nodes alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_takes_back_its_earlier_lives_tasks_at_once() {
    let harness = Harness::new().await;
    let queue = harness.queue.as_ref();
    let mut leases = Vec::new();
    for (name, worker) in [("hot_mine", "node-a:111"), ("hot_other", "node-b:111"), ("hot_similar", "node-ab:111")] {
        harness.instance(name, "").await;
        harness.create_task(name).await;
        leases.push(claim(queue, worker, now_ms(), 600_000).await);
    }

    let mut config = test_config("node-a");
    config.worker_id = "node-a:222".into();
    config.node_id = "node-a".into();
    let trainer = FakeTrainer::new(Plan::quick("restarted"));
    let runner = harness.start(config, trainer.clone());
    let finished = harness.wait_finished("hot_mine", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    runner.stop().await;

    assert_eq!(finished.state, TaskState::Success, "{}", finished.extend_info);
    assert_eq!(finished.attempt, 2);
    assert_eq!(queue.heartbeat(&leases[0], 10, now_ms(), 1_000).await.unwrap(), Heartbeat::Lost);
    for (name, lease) in [("hot_other", &leases[1]), ("hot_similar", &leases[2])] {
        let task = harness.task(name, 1).await;
        assert_eq!((task.state, task.attempt), (TaskState::Running, 1), "{} keeps its task {name}", lease.worker_id);
        assert!(matches!(queue.heartbeat(lease, 10, now_ms(), 600_000).await.unwrap(), Heartbeat::Held { .. }));
    }
    assert_eq!(trainer.started(), 1);
}

/// 6. Fencing at the queue: once a task is reaped and claimed again (attempt 2), the first
///    lease can neither heartbeat nor finish, and a lease with the right attempt but the wrong
///    worker cannot either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lease_is_fenced_off() {
    let harness = Harness::new().await;
    let instance = harness.instance("hot_fenced", "").await;
    harness.create_task("hot_fenced").await;
    let queue = harness.queue.as_ref();
    let start = now_ms();
    let old = claim(queue, "worker-a:1", start, 0).await;
    let reaped = queue.reap_lost_tasks(start + 1, 0, None, "test-reaper").await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert!(reaped[0].retried);
    // The same worker claims it again: only the attempt tells the two leases apart.
    let current = claim(queue, "worker-a:1", start + 1, 600_000).await;
    assert_eq!((old.attempt, current.attempt), (1, 2));
    let forged = TaskLease { worker_id: "worker-b:1".into(), ..current.clone() };

    let artifact = harness
        .artifacts
        .put(instance.app_group_id, instance.function_name, &instance.instance_name, 1, old.attempt, b"stale".to_vec())
        .await
        .unwrap();
    let stale_success =
        TaskOutcome::Succeeded { artifact: artifact.clone(), extend_info: r#"{"stale":true}"#.into(), serve: true };
    let before = harness.task("hot_fenced", 1).await;
    for lease in [&old, &forged] {
        assert_eq!(queue.heartbeat(lease, 77, start + 2, 600_000).await.unwrap(), Heartbeat::Lost, "{lease:?}");
        assert!(!queue.finish_task(lease, &stale_success, start + 2).await.unwrap(), "{lease:?}");
        let failure = TaskOutcome::Failed { extend_info: r#"{"stale":true}"#.into() };
        assert!(!queue.finish_task(lease, &failure, start + 2).await.unwrap(), "{lease:?}");
        assert!(!queue.release_task(lease, 0).await.unwrap(), "{lease:?}");
    }
    let after = harness.task("hot_fenced", 1).await;
    assert_eq!(after, before, "stale writes change nothing");
    assert_eq!((after.state, after.attempt, after.progress, after.artifact.clone()), (TaskState::Running, 2, 0, None));
    assert_eq!(harness.get_instance("hot_fenced").await.serving_generation, None);

    // The current lease works.
    assert_eq!(
        queue.heartbeat(&current, 40, start + 2, 600_000).await.unwrap(),
        Heartbeat::Held { cancel_requested: false }
    );
    assert_eq!(harness.task("hot_fenced", 1).await.progress, 40);
    let success = TaskOutcome::Succeeded { artifact, extend_info: r#"{"current":true}"#.into(), serve: true };
    assert!(queue.finish_task(&current, &success, start + 3).await.unwrap());
    assert_eq!(harness.task("hot_fenced", 1).await.state, TaskState::Success);
    assert_eq!(harness.get_instance("hot_fenced").await.serving_generation, Some(1));
}

/// 6b. Fencing in the runner: a runner whose lease was taken over while it trained stops its
///     trainer, writes no progress, stores no model and records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_loses_its_lease_drops_its_result() {
    let harness = Harness::new().await;
    harness.instance("hot_taken", "").await;
    harness.create_task("hot_taken").await;
    let trainer = FakeTrainer::new(Plan::endless());
    let runner = harness.start(test_config("node-a"), trainer.clone());
    harness.wait_for("hot_taken", 1, SOON, "running", |task| task.state == TaskState::Running).await;
    while trainer.started() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // An hour later (as far as the queue knows) the lease has expired and another worker
    // holds the task.
    let queue = harness.queue.as_ref();
    let later = now_ms() + 3_600_000;
    let reaped = queue.reap_lost_tasks(later, 0, None, "test-reaper").await.unwrap();
    assert_eq!(reaped.len(), 1);
    let other = claim(queue, "node-b:1", later, 3_600_000).await;
    assert_eq!(other.attempt, 2);

    let started = Instant::now();
    while trainer.cancelled() == 0 {
        assert!(started.elapsed() < SOON, "the runner did not stop its trainer after losing the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let task = harness.task("hot_taken", 1).await;
    assert_eq!((task.state, task.attempt, task.progress), (TaskState::Running, 2, 0), "{task:?}");
    assert_eq!(task.artifact, None);
    assert!(harness.artifact_files().is_empty());
    assert_eq!(
        queue.heartbeat(&other, 5, later + 1, 3_600_000).await.unwrap(),
        Heartbeat::Held { cancel_requested: false }
    );
    runner.stop().await;
    assert_eq!(harness.task("hot_taken", 1).await.state, TaskState::Running, "the shutdown does not touch it either");
    assert_eq!(trainer.started(), 1);
}

/// 6c. Fencing of the model file: a worker whose lease was taken over, and whose trainer ends
///     before a heartbeat has told it so, neither overwrites nor deletes the model that the
///     attempt holding the task now stored under the same generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_attempt_never_touches_the_model_of_the_current_one() {
    let harness = Harness::new().await;
    let instance = harness.instance("hot_overwrite", "").await;
    harness.create_task("hot_overwrite").await;
    let trainer = FakeTrainer::new(Plan::quick("stale"));
    trainer.hold(true);
    // Heartbeats far apart: the stale runner's trainer ends before any heartbeat learns that
    // the lease is gone.
    let mut config = test_config("node-a");
    config.heartbeat = Duration::from_secs(30);
    config.lease = Duration::from_secs(120);
    let runner = harness.start(config, trainer.clone());
    harness.wait_for("hot_overwrite", 1, SOON, "running", |task| task.state == TaskState::Running).await;

    // The lease is taken over (the stale node was cut off from the database longer than its
    // lease), and the new attempt stores its model and succeeds.
    let queue = harness.queue.as_ref();
    let later = now_ms() + 3_600_000;
    assert_eq!(queue.reap_lost_tasks(later, 0, None, "test-reaper").await.unwrap().len(), 1);
    let current = claim(queue, "node-b:1", later, 3_600_000).await;
    assert_eq!(current.attempt, 2);
    let artifact = harness
        .artifacts
        .put(
            instance.app_group_id,
            instance.function_name,
            &instance.instance_name,
            1,
            current.attempt,
            b"current model".to_vec(),
        )
        .await
        .unwrap();
    let success =
        TaskOutcome::Succeeded { artifact: artifact.clone(), extend_info: r#"{"current":true}"#.into(), serve: true };
    assert!(queue.finish_task(&current, &success, later + 1).await.unwrap());

    // Now the stale trainer ends with a model of its own.
    trainer.hold(false);
    let started = Instant::now();
    while trainer.produced().is_empty() {
        assert!(started.elapsed() < SOON, "the stale trainer did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runner.stop().await;

    let task = harness.task("hot_overwrite", 1).await;
    assert_eq!((task.state, task.attempt), (TaskState::Success, 2), "{task:?}");
    assert_eq!(task.artifact.as_ref(), Some(&artifact));
    let served = harness.artifacts.get(&artifact).await.expect("the current attempt's model is intact");
    assert_eq!(&served[..], b"current model");
    assert_eq!(harness.artifact_files(), vec![artifact.path.clone()]);
}

/// 7. A task running past the deadline is stopped and fails with DeadlineExceeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_past_its_deadline_fails() {
    let harness = Harness::new().await;
    harness.instance("hot_slow", "").await;
    let trainer = FakeTrainer::new(Plan::endless());
    let mut config = test_config("node-a");
    config.deadline = Duration::from_millis(300);
    let runner = harness.start(config, trainer.clone());
    harness.create_task("hot_slow").await;
    let failed = harness.wait_finished("hot_slow", 1).await;
    runner.stop().await;

    assert_eq!(failed.state, TaskState::Failed, "{failed:?}");
    assert!(failed.extend_info.contains("DeadlineExceeded"), "{}", failed.extend_info);
    assert_eq!(failure_reason(&failed), "DeadlineExceeded");
    assert_eq!(trainer.cancelled(), 1, "the trainer was told to stop");
    assert_eq!(failed.artifact, None);
    assert_eq!(harness.get_instance("hot_slow").await.serving_generation, None);
}

/// 8. Shutting down hands a running task back: `run` returns promptly, the task is pending
///    again (shown as `running`, progress 0) without using up an attempt, and the next runner
///    finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_hands_the_task_back() {
    let harness = Harness::new().await;
    harness.instance("hot_restart", "").await;
    harness.create_task("hot_restart").await;
    let trainer = FakeTrainer::scripted(vec![Plan::endless()], Plan::quick("after restart"));
    let first = harness.start(test_config("node-a"), trainer.clone());
    harness
        .wait_for("hot_restart", 1, SOON, "running with progress", |task| {
            task.state == TaskState::Running && task.progress > 0
        })
        .await;

    first.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), first.handle)
        .await
        .expect("run returns promptly after shutdown")
        .expect("the runner does not panic");
    let handed_back = harness.task("hot_restart", 1).await;
    assert_eq!(handed_back.state, TaskState::Pending, "{handed_back:?}");
    assert_eq!(handed_back.state.api_status(), "running");
    assert_eq!((handed_back.progress, handed_back.attempt), (0, 1));
    assert_eq!(trainer.cancelled(), 1);
    assert_eq!(harness.get_instance("hot_restart").await.serving_generation, None);

    // The handed-back attempt does not count: two lost workers later (attempts 2 and 3 of the
    // default 3) the task is still retried rather than failed.
    let queue = harness.queue.as_ref();
    let start = now_ms();
    for offset in 0..2 {
        claim(queue, "dead-worker:1", start + offset, 0).await;
        let reaped = queue.reap_lost_tasks(start + offset + 1, 0, None, "test-reaper").await.unwrap();
        assert_eq!(reaped.len(), 1);
        assert!(reaped[0].retried, "attempt {} is retried: the released one did not count", offset + 2);
    }

    let second = harness.start(test_config("node-b"), trainer.clone());
    let finished = harness.wait_finished("hot_restart", 1).await;
    second.stop().await;
    assert_eq!(finished.state, TaskState::Success, "{}", finished.extend_info);
    assert_eq!(finished.attempt, 4);
    assert_eq!(harness.get_instance("hot_restart").await.serving_generation, Some(1));
    assert_eq!(trainer.started(), 2);
}

/// 9. A trainer that panics fails its task ("crashed") and the runner goes on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_trainer_fails_the_task_and_the_runner_goes_on() {
    let harness = Harness::new().await;
    harness.instance("hot_panic", "").await;
    let trainer = FakeTrainer::scripted(
        vec![Plan { steps: 1, step: Duration::from_millis(10), end: End::Panic("boom in the trainer") }],
        Plan::quick("after panic"),
    );
    let runner = harness.start(test_config("node-a"), trainer.clone());
    harness.create_task("hot_panic").await;
    let crashed = harness.wait_finished("hot_panic", 1).await;
    assert_eq!(crashed.state, TaskState::Failed, "{crashed:?}");
    assert!(crashed.extend_info.contains("crashed"), "{}", crashed.extend_info);
    assert!(crashed.extend_info.contains("boom in the trainer"), "{}", crashed.extend_info);

    harness.create_task("hot_panic").await;
    let next = harness.wait_finished("hot_panic", 2).await;
    runner.stop().await;
    assert_eq!(next.state, TaskState::Success, "{}", next.extend_info);
    assert_eq!(harness.get_instance("hot_panic").await.serving_generation, Some(2));
    assert_eq!(trainer.started(), 2);
}

/// 10. A cron fire enqueues exactly one task across two nodes ticking at once and repeatedly;
///     fires while a task is pending or running are skipped; the next fire after it finished
///     enqueues again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_fire_enqueues_exactly_once_across_nodes() {
    let at = |text: &str| chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339").timestamp_millis();
    let clock = Arc::new(ManualClock::new(at("2026-03-01T10:00:30Z")));
    let harness = Harness::with_clock(clock.clone()).await;
    harness.instance("hot_cron", "* * * * *").await;
    harness.instance("hot_manual", "").await;
    let queue = harness.queue.clone();
    let node_a = RunnerConfig::for_node("node-a", 1);
    let node_b = RunnerConfig::for_node("node-b", 2);
    let tick_both = |now_ms: Millis| {
        let queue = queue.clone();
        let (node_a, node_b) = (node_a.clone(), node_b.clone());
        async move {
            let mut total = 0;
            for _ in 0..4 {
                let (a, b) = tokio::join!(
                    trainyard_runner::scheduler::tick(queue.as_ref(), now_ms, &node_a),
                    trainyard_runner::scheduler::tick(queue.as_ref(), now_ms, &node_b),
                );
                total += a + b;
            }
            total
        }
    };

    // 10:00:00 came before the instance existed.
    assert_eq!(tick_both(at("2026-03-01T10:00:40Z")).await, 0);
    assert!(harness.tasks("hot_cron").await.is_empty());

    assert_eq!(tick_both(at("2026-03-01T10:01:05Z")).await, 1, "the 10:01 fire enqueues exactly once");
    assert_eq!(tick_both(at("2026-03-01T10:01:50Z")).await, 0, "the 10:01 fire was taken already");
    let tasks = harness.tasks("hot_cron").await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].run_id, "cron__2026-03-01T10:01:00Z");
    assert!(tasks[0].run_id.starts_with("cron__"));
    assert_eq!((tasks[0].generation, tasks[0].state, tasks[0].trigger), (1, TaskState::Pending, TaskTrigger::Cron));
    assert!(harness.tasks("hot_manual").await.is_empty(), "an instance without a cron is never fired");

    // Busy: the 10:02 fire finds it pending, the 10:03 fire finds it running.
    assert_eq!(tick_both(at("2026-03-01T10:02:05Z")).await, 0);
    let lease = claim(queue.as_ref(), "node-a:1", at("2026-03-01T10:02:30Z"), 600_000).await;
    assert_eq!(tick_both(at("2026-03-01T10:03:05Z")).await, 0);
    assert_eq!(harness.tasks("hot_cron").await.len(), 1);

    let outcome = TaskOutcome::Failed { extend_info: r#"{"errors":["done"]}"#.into() };
    assert!(queue.finish_task(&lease, &outcome, at("2026-03-01T10:03:20Z")).await.unwrap());
    assert_eq!(tick_both(at("2026-03-01T10:03:30Z")).await, 0, "a skipped fire is not run late");
    assert_eq!(tick_both(at("2026-03-01T10:04:05Z")).await, 1, "the next fire enqueues again");
    let tasks = harness.tasks("hot_cron").await;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    let newest = tasks.iter().find(|task| task.generation == 2).expect("generation 2");
    assert_eq!(newest.run_id, "cron__2026-03-01T10:04:00Z");
    assert_eq!(newest.state, TaskState::Pending);
}

/// 10b. A fire older than the grace period when first seen (the nodes were down) is not run
///      late; one within it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_fire_missed_beyond_the_grace_period_is_not_run_late() {
    let at = |text: &str| chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339").timestamp_millis();
    let clock = Arc::new(ManualClock::new(at("2026-03-01T10:00:00Z")));
    let harness = Harness::with_clock(clock).await;
    harness.instance("hot_daily", "0 3 * * *").await;
    let mut config = RunnerConfig::for_node("node-a", 1);
    config.schedule_grace = Duration::from_secs(600);
    let queue = harness.queue.as_ref();

    assert_eq!(trainyard_runner::scheduler::tick(queue, at("2026-03-02T03:20:00Z"), &config).await, 0);
    assert!(harness.tasks("hot_daily").await.is_empty());
    assert_eq!(trainyard_runner::scheduler::tick(queue, at("2026-03-03T03:05:00Z"), &config).await, 1);
    let tasks = harness.tasks("hot_daily").await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].run_id, "cron__2026-03-03T03:00:00Z");
}

/// 11. Old generations are pruned: with two kept, after four successes only the two newest
///     models remain in the object store and the older tasks no longer name an artifact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_generations_are_pruned() {
    let harness = Harness::new().await;
    harness.instance("hot_prune", "").await;
    let trainer = FakeTrainer::new(Plan::quick("generation"));
    let mut config = test_config("node-a");
    config.keep_generations = 2;
    let runner = harness.start(config, trainer.clone());
    let mut artifacts = Vec::new();
    for generation in 1..=4 {
        assert_eq!(harness.create_task("hot_prune").await.generation, generation);
        let finished = harness.wait_finished("hot_prune", generation).await;
        assert_eq!(finished.state, TaskState::Success, "{}", finished.extend_info);
        artifacts.push(finished.artifact.expect("a fresh success has its artifact"));
    }
    // Stopping waits for the last task's pruning to end.
    runner.stop().await;

    assert_eq!(harness.get_instance("hot_prune").await.serving_generation, Some(4));
    for generation in 1..=4i64 {
        let task = harness.task("hot_prune", generation).await;
        let kept = generation >= 3;
        assert_eq!(task.state, TaskState::Success);
        assert_eq!(task.artifact.is_some(), kept, "generation {generation}: {:?}", task.artifact);
        let readable = harness.artifacts.get(&artifacts[generation as usize - 1]).await;
        assert_eq!(readable.is_ok(), kept, "generation {generation}'s model in the object store");
    }
    let mut expected = vec![artifacts[2].path.clone(), artifacts[3].path.clone()];
    expected.sort();
    assert_eq!(harness.artifact_files(), expected);
}
