//! What a serving query can fail with, each mapped onto one wire code.

use trainyard_core::{CoreError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Resolving the app group, instance or serving generation failed, or a parameter is bad.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The artifact of the serving generation is missing, altered or unreadable. Nothing is
    /// served from it (and it is not cached), so a retrained generation replaces it cleanly.
    #[error(
        "The model of instance \"{instance_name}\" (generation {generation}) cannot be served: {reason}. Train a new generation with CreateFunctionTask."
    )]
    ModelDamaged { instance_name: String, generation: i64, reason: String },
}

impl ServeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ServeError::Core(error) => error.code(),
            ServeError::ModelDamaged { .. } => ErrorCode::ModelDamaged,
        }
    }
}
