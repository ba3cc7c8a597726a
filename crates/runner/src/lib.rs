//! The task runner of Trainyard: it makes `CreateFunctionTask` train.
//!
//! # What lives here
//! - [`Runner`]: the worker loop (claims pending tasks with a lease, runs the trainer on a
//!   dedicated low-priority thread, heartbeats progress, honours cancellation and deadlines,
//!   stores the artifact and records the outcome), the reaper (tasks of lost workers go back to
//!   pending or fail with a reason), and the cron scheduler (each fire time enqueues exactly one
//!   task across every node).
//! - [`StorageAdapter`]: what the domain's `DatasetPort` asks when an app group or instance goes
//!   (its data and its model artifacts are deleted).
//!
//! # What must not
//! No HTTP and no SQL: the runner speaks to the database through `trainyard_core::queue` and
//! trusts the task row over anything it holds in memory — a worker that loses its lease stops
//! and its result is discarded (fencing by attempt).

mod config;
pub mod scheduler;
mod storage;
mod worker;

pub use crate::config::{RunnerConfig, parse_cron_offset};
pub use crate::storage::StorageAdapter;
pub use crate::worker::{FunctionTrainer, Runner, Trainer};
