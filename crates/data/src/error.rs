//! Errors of the data plane.

use std::path::Path;

use trainyard_core::{CoreError, ErrorCode};

/// What can go wrong storing or reading datasets.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("I/O error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the object store failed: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("a Parquet file could not be written or read: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("an Arrow batch could not be built or read: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("the dataset manifest could not be read: {0}")]
    Manifest(String),
    #[error("a background task failed: {0}")]
    Task(String),
    #[error("compaction stopped at an injected fault: {0}")]
    InjectedFault(&'static str),
    #[error(
        "the batch key {key} was applied to a push of {applied_elements} records, and this push has {pushed_elements}; a key names one batch (resume an import with the same --batch-size)"
    )]
    BatchKeyMismatch { key: String, applied_elements: u64, pushed_elements: u64 },
}

impl DataError {
    pub fn io(path: &Path, source: std::io::Error) -> DataError {
        DataError::Io { path: path.display().to_string(), source }
    }

    /// The wire code: running out of space is retryable, the rest is an internal error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DataError::Io { source, .. } if source.raw_os_error() == Some(28) => ErrorCode::ServiceUnavailable,
            DataError::Io { .. }
            | DataError::ObjectStore(_)
            | DataError::Parquet(_)
            | DataError::Arrow(_)
            | DataError::Corrupt(_)
            | DataError::Manifest(_)
            | DataError::Task(_)
            | DataError::InjectedFault(_) => ErrorCode::InternalError,
            DataError::BatchKeyMismatch { .. } => ErrorCode::InvalidParameter,
        }
    }
}

impl From<DataError> for CoreError {
    fn from(error: DataError) -> CoreError {
        if let DataError::BatchKeyMismatch { .. } = &error {
            return CoreError::invalid("x-trainyard-batch-key", error.to_string());
        }
        match error.code() {
            ErrorCode::ServiceUnavailable => {
                CoreError::StorageUnavailable { message: "the data store is out of space".into() }
            }
            _ => {
                tracing::error!(error = %error, "data store failure");
                CoreError::StorageFailure { message: "internal data store error (logged on the server)".into() }
            }
        }
    }
}
