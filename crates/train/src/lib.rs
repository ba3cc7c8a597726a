//! The trainers of Trainyard: one module per function, each a pure function from a dataset
//! snapshot and parameters to a model artifact and its evaluation.
//!
//! # What lives here
//! - [`train`]: dispatch by function; [`TrainingInput`], [`TrainingContext`] (progress and
//!   cancellation), [`TrainedModel`], [`TrainError`].
//! - one module per function that is built ([`pop`], [`hot`], [`hint`], [`ctr`]), each
//!   documenting its algorithm, its evaluation and the format of its artifact. [`ctr`] also
//!   holds what serving needs to score with a ctr artifact ([`ctr::CtrModel`]).
//! - shared by them: `searches` (counting typed searches per user session over time windows:
//!   hot's and hint's candidates), `common` (reading a snapshot batch by batch with progress and
//!   cancellation, time windows, a bounded key sample for joins), `filter` (evaluating the
//!   `filter` parameter on records).
//!
//! # What must not
//! No HTTP, no SQL, no task bookkeeping: the runner claims tasks, stores artifacts and records
//! outcomes. Trainers only read the snapshot they are given (never the live data), check the
//! cancellation flag often, and fail with a message naming the missing data rather than produce
//! an empty model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use trainyard_core::catalog::FunctionName;
use trainyard_data::{DataError, Snapshot};

mod common;
pub mod ctr;
mod filter;
pub mod hint;
pub mod hot;
pub mod pop;
mod searches;
#[cfg(test)]
mod test_support;

/// What a trainer trains on.
pub struct TrainingInput<'a> {
    /// The app group's data as of the task's start.
    pub snapshot: &'a Snapshot,
    /// The task's start, Unix seconds: training windows end here.
    pub now_seconds: i64,
    /// The instance's model type (e.g. `offline_inference`, `near_realtime`).
    pub model_type: &'a str,
    /// Every create parameter of the instance's version, with the catalog default filled in
    /// where the instance did not set one (absent when it has neither).
    pub parameters: BTreeMap<String, String>,
}

impl TrainingInput<'_> {
    /// A parameter parsed as `T`; the catalog has validated it already.
    pub fn parameter<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.parameters.get(name).and_then(|value| value.trim().parse().ok())
    }
}

/// Progress reporting and cancellation, shared with the runner.
#[derive(Clone, Default)]
pub struct TrainingContext {
    progress: Arc<AtomicU32>,
    cancelled: Arc<AtomicBool>,
}

impl TrainingContext {
    pub fn new() -> TrainingContext {
        TrainingContext::default()
    }

    /// Reports progress, 0 to 100 (values only go up).
    pub fn set_progress(&self, percent: u32) {
        self.progress.fetch_max(percent.min(100), Ordering::Relaxed);
    }

    pub fn progress(&self) -> u32 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Asks the trainer to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once cancellation was asked: call it often (every batch).
    pub fn check_cancelled(&self) -> Result<(), TrainError> {
        if self.is_cancelled() { Err(TrainError::Cancelled) } else { Ok(()) }
    }
}

/// A trained model.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    /// The artifact the serving side loads (format documented per trainer).
    pub artifact: Vec<u8>,
    /// Evaluation figures, e.g. `{"auc": 0.71, "baseline_auc": 0.65}`.
    pub metrics: serde_json::Value,
    /// What data was used: windows, counts of events, queries, items...
    pub data_report: serde_json::Value,
    /// Things the user should know that did not stop training.
    pub warnings: Vec<String>,
    /// Whether the model should replace the one the instance serves. False for a model that
    /// evaluated worse than its baseline (the task still succeeds, with a warning); the runner
    /// serves it anyway when the instance serves nothing yet.
    pub replace_served: bool,
}

/// Why training did not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data is not enough to train; the message names what is missing, e.g. "no raw_query
    /// searches in the last 14 days".
    #[error("{0}")]
    NotEnoughData(String),
    #[error("cancelled")]
    Cancelled,
    /// The function has no trainer yet.
    #[error("no trainer is built for function {0} yet")]
    NotBuilt(String),
    #[error("reading the dataset failed: {0}")]
    Data(#[from] DataError),
    #[error("{0}")]
    Internal(String),
}

/// Trains `function` on `input`. Progress reaches 100 when a model is returned.
pub fn train(
    function: FunctionName,
    input: &TrainingInput<'_>,
    context: &TrainingContext,
) -> Result<TrainedModel, TrainError> {
    let model = match function {
        FunctionName::Pop => pop::train(input, context)?,
        FunctionName::Hot => hot::train(input, context)?,
        FunctionName::Hint => hint::train(input, context)?,
        FunctionName::Ctr => ctr::train(input, context)?,
        other => return Err(TrainError::NotBuilt(other.to_string())),
    };
    context.set_progress(100);
    Ok(model)
}
