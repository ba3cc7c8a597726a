//! The worker loop: claim, train, heartbeat, finish.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use trainyard_core::catalog::{self, ParameterList};
use trainyard_core::clock::Clock;
use trainyard_core::model::FunctionInstance;
use trainyard_core::queue::{ClaimedTask, Heartbeat, TaskOutcome, TaskQueue};
use trainyard_data::DatasetStore;
use trainyard_data::artifacts::ArtifactStore;
use trainyard_train::{TrainError, TrainedModel, TrainingContext, TrainingInput};

use crate::config::RunnerConfig;

/// Why a running task was stopped before its trainer finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    /// The user asked (CancelFunctionTask).
    Cancelled,
    /// It ran past the per-task deadline.
    DeadlineExceeded,
    /// Another worker holds the task now: this attempt's result must be dropped.
    LeaseLost,
    /// This node is shutting down: the task goes back to pending.
    Shutdown,
}

/// Whether this attempt still holds its task when its model is about to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseCheck {
    Held,
    /// Held, but the user asked to stop it.
    CancelRequested,
    /// Taken over, or it could not be confirmed.
    Lost,
}

/// What trains one task (on the trainer thread: everything here may block).
pub trait Trainer: Send + Sync + 'static {
    fn train(
        &self,
        datasets: &DatasetStore,
        instance: &FunctionInstance,
        now_seconds: i64,
        context: &TrainingContext,
    ) -> Result<TrainedModel, TrainError>;
}

/// The trainers of `trainyard-train`, on a snapshot of the instance's app group, with the
/// instance's create parameters over the catalog defaults.
pub struct FunctionTrainer;

impl Trainer for FunctionTrainer {
    fn train(
        &self,
        datasets: &DatasetStore,
        instance: &FunctionInstance,
        now_seconds: i64,
        context: &TrainingContext,
    ) -> Result<TrainedModel, TrainError> {
        let version = catalog::find_version(instance.version_id).ok_or_else(|| {
            TrainError::Internal(format!("the instance's version {} is not in the catalog", instance.version_id))
        })?;
        let parameters = version.effective_parameters(ParameterList::Create, &instance.create_parameters);
        let snapshot = datasets.snapshot(instance.app_group_id)?;
        let input = TrainingInput { snapshot: &snapshot, now_seconds, model_type: &instance.model_type, parameters };
        trainyard_train::train(instance.function_name, &input, context)
    }
}

/// The runner of one node.
#[derive(Clone)]
pub struct Runner {
    queue: Arc<dyn TaskQueue>,
    datasets: Arc<DatasetStore>,
    artifacts: ArtifactStore,
    clock: Arc<dyn Clock>,
    config: RunnerConfig,
    trainer: Arc<dyn Trainer>,
}

/// The `ExtendInfo` JSON of a task: metrics, the data used, and errors or warnings.
fn extend_info(
    metrics: &serde_json::Value,
    data_report: &serde_json::Value,
    errors: &[String],
    failure: Option<serde_json::Value>,
) -> String {
    let mut info = serde_json::json!({"metrics": metrics, "dataReport": data_report, "errors": errors});
    if let Some(failure) = failure {
        info["failure"] = failure;
    }
    info.to_string()
}

fn failed(reason: &str, kind: &str) -> TaskOutcome {
    TaskOutcome::Failed {
        extend_info: extend_info(
            &serde_json::json!({}),
            &serde_json::json!({}),
            &[reason.to_string()],
            Some(serde_json::json!({"reason": kind})),
        ),
    }
}

/// Lowers the calling thread's scheduling priority (Linux: per-thread nice).
fn lower_thread_priority(nice: i32) {
    // SAFETY: setpriority on the calling thread (who = 0) has no memory-safety preconditions.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if result != 0 {
        tracing::debug!(nice, "could not lower the trainer thread's priority");
    }
}

impl Runner {
    pub fn new(
        queue: Arc<dyn TaskQueue>,
        datasets: Arc<DatasetStore>,
        artifacts: ArtifactStore,
        clock: Arc<dyn Clock>,
        config: RunnerConfig,
    ) -> Runner {
        Runner { queue, datasets, artifacts, clock, config, trainer: Arc::new(FunctionTrainer) }
    }

    /// The same runner with another trainer (tests drive the runner with trainers that take
    /// as long, fail or panic as they need).
    pub fn with_trainer(mut self, trainer: Arc<dyn Trainer>) -> Runner {
        self.trainer = trainer;
        self
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Runs the worker loop, the reaper and the scheduler until `shutdown`; running tasks are
    /// then stopped and handed back (pending) so that they run again after the restart.
    pub async fn run(self, shutdown: CancellationToken) {
        // Leases of this node's earlier lives belong to processes that are gone.
        match self
            .queue
            .reap_lost_tasks(self.clock.now_ms(), 0, Some(&format!("{}:", self.config.node_id)), &self.config.worker_id)
            .await
        {
            Ok(reaped) if !reaped.is_empty() => {
                tracing::warn!(tasks = reaped.len(), "took back tasks of this node's previous run")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not take back tasks of this node's previous run"),
        }
        let reaper = tokio::spawn(self.clone().reap_periodically(shutdown.clone()));
        let scheduler = tokio::spawn(crate::scheduler::run(
            self.queue.clone(),
            self.clock.clone(),
            self.config.clone(),
            shutdown.clone(),
        ));
        self.work(shutdown.clone()).await;
        let _ = reaper.await;
        let _ = scheduler.await;
    }

    async fn reap_periodically(self, shutdown: CancellationToken) {
        let period = (self.config.lease / 2).max(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            match self
                .queue
                .reap_lost_tasks(
                    self.clock.now_ms(),
                    self.config.retry_delay.as_millis() as i64,
                    None,
                    &self.config.worker_id,
                )
                .await
            {
                Ok(reaped) => {
                    for task in reaped {
                        tracing::warn!(
                            task_id = task.task_id,
                            generation = task.generation,
                            retried = task.retried,
                            "a worker was lost: task reaped"
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "could not reap lost tasks"),
            }
        }
    }

    async fn work(&self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut running = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let claimed = match self
                .queue
                .claim_task(&self.config.worker_id, self.clock.now_ms(), self.config.lease.as_millis() as i64)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "could not claim a task");
                    None
                }
            };
            let Some(claimed) = claimed else {
                drop(permit);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(self.config.poll) => continue,
                }
            };
            let runner = self.clone();
            let task_shutdown = shutdown.clone();
            running.spawn(async move {
                runner.execute(claimed, task_shutdown).await;
                drop(permit);
            });
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
    }

    /// Trains one claimed task to its end.
    async fn execute(&self, claimed: ClaimedTask, shutdown: CancellationToken) {
        let ClaimedTask { task, instance, lease } = claimed;
        let function = instance.function_name;
        tracing::info!(app_group_id = instance.app_group_id, function = %function, instance = %instance.instance_name,
            generation = task.generation, attempt = lease.attempt, "training started");
        let context = TrainingContext::new();
        let (result_sender, mut result_receiver) = oneshot::channel::<Result<TrainedModel, TrainError>>();
        let started = tokio::time::Instant::now();
        {
            let datasets = self.datasets.clone();
            let trainer = self.trainer.clone();
            let context = context.clone();
            let instance = instance.clone();
            let nice = self.config.trainer_nice;
            let now_seconds = self.clock.now_ms().div_euclid(1000);
            let spawned = std::thread::Builder::new().name(format!("trainer-{}", task.id)).spawn(move || {
                lower_thread_priority(nice);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    trainer.train(&datasets, &instance, now_seconds, &context)
                }))
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()));
                    Err(TrainError::Internal(format!(
                        "the trainer crashed: {}",
                        message.unwrap_or_else(|| "panic".into())
                    )))
                });
                let _ = result_sender.send(outcome);
            });
            if let Err(error) = spawned {
                self.finish(&lease, failed(&format!("could not start a trainer thread: {error}"), "Internal")).await;
                return;
            }
        }
        let mut stop_reason: Option<StopReason> = None;
        let result = loop {
            tokio::select! {
                result = &mut result_receiver => break result.unwrap_or_else(|_| Err(TrainError::Internal("the trainer thread ended without a result".into()))),
                _ = tokio::time::sleep(self.config.heartbeat) => {}
                _ = shutdown.cancelled(), if stop_reason.is_none() => {
                    stop_reason = Some(StopReason::Shutdown);
                    context.cancel();
                    continue;
                }
            }
            if stop_reason.is_none() && started.elapsed() > self.config.deadline {
                stop_reason = Some(StopReason::DeadlineExceeded);
                context.cancel();
            }
            let heartbeat = self
                .queue
                .heartbeat(
                    &lease,
                    i64::from(context.progress()),
                    self.clock.now_ms(),
                    self.config.lease.as_millis() as i64,
                )
                .await;
            match heartbeat {
                Ok(Heartbeat::Held { cancel_requested: true }) if stop_reason.is_none() => {
                    stop_reason = Some(StopReason::Cancelled);
                    context.cancel();
                }
                Ok(Heartbeat::Lost) => {
                    stop_reason = Some(StopReason::LeaseLost);
                    context.cancel();
                }
                Ok(_) => {}
                // A missed heartbeat is not fatal: the lease outlives several of them, and
                // fencing protects the task if it does run out.
                Err(error) => tracing::warn!(task_id = lease.task_id, %error, "heartbeat failed"),
            }
        };
        let outcome = match (stop_reason, result) {
            (Some(StopReason::LeaseLost), _) => {
                tracing::warn!(task_id = lease.task_id, "the lease was lost: this attempt's result is dropped");
                return;
            }
            (Some(StopReason::Shutdown), _) => {
                match self.queue.release_task(&lease, self.clock.now_ms()).await {
                    Ok(_) => tracing::info!(task_id = lease.task_id, "shutting down: the task goes back to pending"),
                    Err(error) => {
                        tracing::warn!(task_id = lease.task_id, %error, "could not hand the task back; its lease will expire")
                    }
                }
                return;
            }
            (Some(StopReason::Cancelled), Err(TrainError::Cancelled)) | (Some(StopReason::Cancelled), Ok(_)) => {
                failed("cancelled: stopped at the user's request (CancelFunctionTask)", "Cancelled")
            }
            (Some(StopReason::DeadlineExceeded), _) => failed(
                &format!(
                    "DeadlineExceeded: the task ran longer than its deadline of {} s",
                    self.config.deadline.as_secs()
                ),
                "DeadlineExceeded",
            ),
            // The artifact's path names the generation, not the attempt: a worker whose lease was
            // taken over (its trainer ended before a heartbeat told it so) must not write there,
            // or it would overwrite the model of the attempt that holds the task now. So the
            // lease is confirmed first; that heartbeat also gives the write a whole fresh lease.
            (_, Ok(model)) => match self.confirm_lease(&lease, context.progress()).await {
                LeaseCheck::Held => match self
                    .artifacts
                    .put(
                        instance.app_group_id,
                        function,
                        &instance.instance_name,
                        task.generation,
                        lease.attempt,
                        model.artifact,
                    )
                    .await
                {
                    Ok(artifact) => TaskOutcome::Succeeded {
                        artifact,
                        extend_info: extend_info(&model.metrics, &model.data_report, &model.warnings, None),
                        // A model that evaluated below its baseline is kept but does not replace
                        // a served one; with nothing served yet, it is better than nothing.
                        serve: model.replace_served || instance.serving_generation.is_none(),
                    },
                    Err(error) => {
                        failed(&format!("StorageError: the model could not be stored: {error}"), "StorageError")
                    }
                },
                LeaseCheck::CancelRequested => {
                    failed("cancelled: stopped at the user's request (CancelFunctionTask)", "Cancelled")
                }
                LeaseCheck::Lost => {
                    tracing::warn!(
                        task_id = lease.task_id,
                        "the lease was lost (or could not be confirmed) as training ended: this attempt's model is dropped"
                    );
                    return;
                }
            },
            (_, Err(TrainError::NotEnoughData(reason))) => failed(&reason, "NotEnoughData"),
            (_, Err(TrainError::Cancelled)) => failed("cancelled", "Cancelled"),
            (_, Err(other)) => failed(&other.to_string(), "TrainerError"),
        };
        let succeeded = matches!(outcome, TaskOutcome::Succeeded { .. });
        let recorded = self.finish(&lease, outcome).await;
        if !recorded {
            // The model this attempt wrote (a file of its own attempt) is left in place: a
            // finish that reported errors may have committed it after all. An unrecorded one is
            // an orphan file, removed with its instance.
            if succeeded {
                tracing::warn!(
                    task_id = lease.task_id,
                    "the outcome was not recorded: the model this attempt wrote is left as an orphan file"
                );
            }
            return;
        }
        tracing::info!(
            task_id = lease.task_id,
            generation = task.generation,
            succeeded,
            seconds = started.elapsed().as_secs_f64(),
            "training finished"
        );
        if succeeded {
            self.prune_generations(&instance).await;
        }
    }

    /// Extends the lease once more, right before the model is written; retried like `finish`.
    /// A lease that cannot be confirmed counts as lost: the task stays running under it until
    /// it expires and the reaper hands it to another attempt.
    async fn confirm_lease(&self, lease: &trainyard_core::queue::TaskLease, progress: u32) -> LeaseCheck {
        for attempt in 0..5u32 {
            let heartbeat = self
                .queue
                .heartbeat(lease, i64::from(progress), self.clock.now_ms(), self.config.lease.as_millis() as i64)
                .await;
            match heartbeat {
                Ok(Heartbeat::Held { cancel_requested: false }) => return LeaseCheck::Held,
                Ok(Heartbeat::Held { cancel_requested: true }) => return LeaseCheck::CancelRequested,
                Ok(Heartbeat::Lost) => return LeaseCheck::Lost,
                Err(error) => {
                    tracing::warn!(task_id = lease.task_id, %error, attempt, "could not confirm the lease; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
                }
            }
        }
        LeaseCheck::Lost
    }

    async fn finish(&self, lease: &trainyard_core::queue::TaskLease, outcome: TaskOutcome) -> bool {
        // The outcome is the one thing a crash must not lose: retry a few times.
        for attempt in 0..5u32 {
            match self.queue.finish_task(lease, &outcome, self.clock.now_ms()).await {
                Ok(recorded) => return recorded,
                Err(error) => {
                    tracing::warn!(task_id = lease.task_id, %error, attempt, "could not record the outcome; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
                }
            }
        }
        false
    }

    async fn prune_generations(&self, instance: &FunctionInstance) {
        let prunable = match self.queue.prunable_generations(instance, self.config.keep_generations).await {
            Ok(prunable) => prunable,
            Err(error) => {
                tracing::warn!(%error, "could not list old generations");
                return;
            }
        };
        for task in prunable {
            let Some(artifact) = &task.artifact else { continue };
            if let Err(error) = self.artifacts.delete(artifact).await {
                tracing::warn!(%error, generation = task.generation, "could not delete an old model");
                continue;
            }
            if let Err(error) = self.queue.forget_artifact(task.id).await {
                tracing::warn!(%error, generation = task.generation, "could not record an old model's deletion");
            }
        }
    }
}
