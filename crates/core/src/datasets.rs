//! The port to the object storage that the domain needs: removing what an app group (its data
//! and models) or an instance (its models) stored when it is removed. The runner implements it.

use async_trait::async_trait;

use crate::catalog::FunctionName;
use crate::error::CoreError;

/// What the domain asks of the data plane.
#[async_trait]
pub trait DatasetPort: Send + Sync + 'static {
    /// Deletes every document, event, search and model an app group stored.
    async fn remove_app_group_data(&self, app_group_id: i64) -> Result<(), CoreError>;
    /// Deletes the model artifacts of one instance.
    async fn remove_instance_data(
        &self,
        app_group_id: i64,
        function: FunctionName,
        instance_name: &str,
    ) -> Result<(), CoreError>;
}
