//! Errors of the metadata store, each mapped to a wire code.

use trainyard_core::{CoreError, ErrorCode};

/// What can go wrong below the domain.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database URL \"{url}\" is not supported: {reason}")]
    UnsupportedUrl { url: String, reason: String },
    #[error("could not open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("could not apply the schema migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database is busy or unreachable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("the database is out of space: {0}")]
    StorageFull(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("a stored {what} could not be read: {reason}")]
    CorruptRow { what: &'static str, reason: String },
}

impl StoreError {
    /// The wire code: unavailability is a retryable 503, everything else an internal error.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Unavailable(_) | StoreError::StorageFull(_) => ErrorCode::ServiceUnavailable,
            StoreError::UnsupportedUrl { .. } => ErrorCode::InvalidParameter,
            StoreError::Connect(_)
            | StoreError::Migrate(_)
            | StoreError::Database(_)
            | StoreError::CorruptRow { .. } => ErrorCode::InternalError,
        }
    }

    /// Classifies a driver error.
    pub fn from_sqlx(error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => StoreError::Unavailable(error),
            sqlx::Error::Database(database_error) => {
                let code = database_error.code().map(|code| code.into_owned()).unwrap_or_default();
                match code.as_str() {
                    // SQLite: SQLITE_BUSY, SQLITE_LOCKED (and extended codes).
                    "5" | "6" | "261" | "517" | "262" => StoreError::Unavailable(error),
                    // SQLite SQLITE_FULL, PostgreSQL disk_full.
                    "13" | "53100" => StoreError::StorageFull(error),
                    // PostgreSQL: connection and availability classes.
                    code if code.starts_with("08") || code.starts_with("57P") || code == "53300" => {
                        StoreError::Unavailable(error)
                    }
                    _ => StoreError::Database(error),
                }
            }
            _ => StoreError::Database(error),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        StoreError::from_sqlx(error)
    }
}

impl From<StoreError> for CoreError {
    fn from(error: StoreError) -> CoreError {
        match error.code() {
            ErrorCode::ServiceUnavailable => CoreError::StorageUnavailable { message: error.to_string() },
            _ => {
                tracing::error!(error = %error, "metadata store failure");
                CoreError::StorageFailure { message: "internal storage error (logged on the server)".into() }
            }
        }
    }
}

/// True when the error is a foreign-key violation (the parent row is gone).
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// True when the error is a unique-constraint violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.kind() == sqlx::error::ErrorKind::UniqueViolation)
}
