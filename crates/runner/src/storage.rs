//! The domain's [`DatasetPort`]: removing an app group's data and models, or an instance's
//! models, from the object store (and the app group's ingest log).

use std::sync::Arc;

use async_trait::async_trait;
use trainyard_core::CoreError;
use trainyard_core::catalog::FunctionName;
use trainyard_core::datasets::DatasetPort;
use trainyard_data::DatasetStore;
use trainyard_data::artifacts::{ArtifactStore, instance_models_prefix, models_prefix};

/// Removes data and models when the domain removes their owner.
pub struct StorageAdapter {
    pub datasets: Arc<DatasetStore>,
    pub artifacts: ArtifactStore,
}

#[async_trait]
impl DatasetPort for StorageAdapter {
    async fn remove_app_group_data(&self, app_group_id: i64) -> Result<(), CoreError> {
        self.datasets.remove_app_group(app_group_id).await.map_err(CoreError::from)?;
        self.artifacts.delete_prefix(&models_prefix(app_group_id)).await.map_err(CoreError::from)
    }

    async fn remove_instance_data(
        &self,
        app_group_id: i64,
        function: FunctionName,
        instance_name: &str,
    ) -> Result<(), CoreError> {
        self.artifacts
            .delete_prefix(&instance_models_prefix(app_group_id, function, instance_name))
            .await
            .map_err(CoreError::from)
    }
}
