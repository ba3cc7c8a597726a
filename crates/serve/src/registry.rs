//! The loaded models: each instance's serving generation, read once from the object store
//! (its SHA-256 checked against the task's record), parsed, and shared by every query.
//!
//! Swapping is atomic: a query holds an `Arc` of the model it started with, and a new
//! generation replaces the map entry in one step once it is fully loaded — a query never sees
//! a half-loaded model, and one already answering finishes with the old one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use trainyard_core::service::ServingModel;
use trainyard_data::artifacts::ArtifactStore;

use crate::error::ServeError;
use crate::models::{Model, parse_model};

/// A model as served.
#[derive(Debug)]
pub struct LoadedModel {
    pub instance_id: i64,
    pub generation: i64,
    pub model: Model,
}

/// The cache of loaded models, one per instance.
pub struct ModelRegistry {
    artifacts: ArtifactStore,
    loaded: RwLock<HashMap<i64, Arc<LoadedModel>>>,
    /// One load at a time, so that a burst of queries after a new generation lands reads the
    /// artifact once.
    loading: tokio::sync::Mutex<()>,
}

impl ModelRegistry {
    pub fn new(artifacts: ArtifactStore) -> ModelRegistry {
        ModelRegistry { artifacts, loaded: RwLock::new(HashMap::new()), loading: tokio::sync::Mutex::new(()) }
    }

    fn cached(&self, instance_id: i64, generation: i64) -> Option<Arc<LoadedModel>> {
        let loaded = self.loaded.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        loaded.get(&instance_id).filter(|model| model.generation == generation).cloned()
    }

    /// The loaded model of the serving generation, loading it when it is not in the cache.
    pub async fn model_for(&self, serving: &ServingModel) -> Result<Arc<LoadedModel>, ServeError> {
        let instance_id = serving.instance.id;
        let generation = serving.task.generation;
        if let Some(model) = self.cached(instance_id, generation) {
            return Ok(model);
        }
        let _loading = self.loading.lock().await;
        if let Some(model) = self.cached(instance_id, generation) {
            return Ok(model);
        }
        let damaged = |reason: String| {
            tracing::error!(instance = %serving.instance.instance_name, generation, %reason, "a model cannot be served");
            ServeError::ModelDamaged { instance_name: serving.instance.instance_name.clone(), generation, reason }
        };
        let bytes = self.artifacts.get(&serving.artifact).await.map_err(|error| damaged(error.to_string()))?;
        let model = parse_model(serving.instance.function_name, &bytes).map_err(damaged)?;
        let loaded_model = Arc::new(LoadedModel { instance_id, generation, model });
        let mut loaded = self.loaded.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A slower load of an older generation never replaces a newer one.
        let keep_existing = loaded.get(&instance_id).is_some_and(|existing| existing.generation > generation);
        if !keep_existing {
            loaded.insert(instance_id, loaded_model.clone());
            tracing::info!(instance = %serving.instance.instance_name, generation, "model loaded");
        }
        Ok(loaded_model)
    }

    /// The generation loaded for an instance, if any (for tests and diagnostics).
    pub fn loaded_generation(&self, instance_id: i64) -> Option<i64> {
        let loaded = self.loaded.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        loaded.get(&instance_id).map(|model| model.generation)
    }
}
