//! The task queue: how workers claim tasks, hold them with leases, report progress, finish
//! them, and how lost workers, cancellations and cron fires are handled. `trainyard-store`
//! implements it over the task table itself — the task row is the source of truth.
//!
//! Fencing: each claim increments the task's `attempt`; every later write of the worker names
//! the attempt and its worker id, and changes nothing when either no longer matches. A worker
//! whose heartbeat finds its lease gone stops, and whatever it computed is discarded.

use async_trait::async_trait;

use crate::error::CoreError;
use crate::model::{ArtifactRef, FunctionInstance, FunctionTask, Millis};

/// A worker's hold on one attempt of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLease {
    pub task_id: i64,
    pub worker_id: String,
    pub attempt: i64,
}

/// A task a worker has claimed, with its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTask {
    pub task: FunctionTask,
    pub instance: FunctionInstance,
    pub lease: TaskLease,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease was extended; `cancel_requested` says whether the user asked to stop.
    Held { cancel_requested: bool },
    /// The lease is gone (expired and taken over, or the task was deleted): stop.
    Lost,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// A model was produced; `serve` makes it the instance's serving generation (with the
    /// instance's `ExtendInfo` set to `extend_info`).
    Succeeded {
        artifact: ArtifactRef,
        extend_info: String,
        serve: bool,
    },
    Failed {
        extend_info: String,
    },
}

/// A task whose worker was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapedTask {
    pub task_id: i64,
    pub instance_id: i64,
    pub generation: i64,
    /// Back to pending for another attempt, or failed after the last one.
    pub retried: bool,
}

/// The result of a cron fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    Enqueued(FunctionTask),
    /// Another scheduler (or an earlier tick) already took this fire time.
    AlreadyFired,
    /// A task of the instance was pending or running: this fire is skipped.
    SkippedBusy,
}

/// The queue operations. Each is one atomic step.
#[async_trait]
pub trait TaskQueue: Send + Sync + 'static {
    /// Claims the oldest pending task that may run now: it becomes running, leased to
    /// `worker_id` until `now_ms + lease_ms`, with its attempt incremented.
    async fn claim_task(
        &self,
        worker_id: &str,
        now_ms: Millis,
        lease_ms: Millis,
    ) -> Result<Option<ClaimedTask>, CoreError>;
    /// Extends the lease and records progress (0-100).
    async fn heartbeat(
        &self,
        lease: &TaskLease,
        progress: i64,
        now_ms: Millis,
        lease_ms: Millis,
    ) -> Result<Heartbeat, CoreError>;
    /// Finishes the attempt; false when the lease was lost (nothing was written).
    async fn finish_task(&self, lease: &TaskLease, outcome: &TaskOutcome, now_ms: Millis) -> Result<bool, CoreError>;
    /// Gives a claimed task back (the worker is shutting down): it becomes pending again and
    /// the attempt does not count — unless its cancellation was requested: then it fails,
    /// cancelled, at `now_ms`.
    async fn release_task(&self, lease: &TaskLease, now_ms: Millis) -> Result<bool, CoreError>;
    /// Tasks running under an expired lease (a task whose cancellation was requested fails,
    /// cancelled, instead of running again) — or, when `dead_worker_prefix` is given, under
    /// any worker whose id starts with it other than `current_worker_id` (a previous life of
    /// this node) — go back to pending after `retry_delay_ms` while attempts remain, else fail
    /// with a reason in their `ExtendInfo`.
    async fn reap_lost_tasks(
        &self,
        now_ms: Millis,
        retry_delay_ms: Millis,
        dead_worker_prefix: Option<&str>,
        current_worker_id: &str,
    ) -> Result<Vec<ReapedTask>, CoreError>;
    /// Cancels a task: a pending one fails at once, a running one is flagged for its worker.
    /// `TaskNotExist`; a finished task is returned unchanged.
    async fn request_cancel(
        &self,
        instance: &FunctionInstance,
        generation: i64,
        now_ms: Millis,
    ) -> Result<FunctionTask, CoreError>;
    /// Instances with a cron.
    async fn scheduled_instances(&self) -> Result<Vec<FunctionInstance>, CoreError>;
    /// Enqueues the task of one cron fire, exactly once across every scheduler.
    async fn fire_schedule(
        &self,
        instance: &FunctionInstance,
        fire_ms: Millis,
        run_id: &str,
        now_ms: Millis,
    ) -> Result<FireOutcome, CoreError>;
    /// Successful generations of the instance beyond the newest `keep` (never the serving one),
    /// whose artifacts may be deleted.
    async fn prunable_generations(
        &self,
        instance: &FunctionInstance,
        keep: usize,
    ) -> Result<Vec<FunctionTask>, CoreError>;
    /// Records that a task's artifact was deleted.
    async fn forget_artifact(&self, task_id: i64) -> Result<(), CoreError>;
}
