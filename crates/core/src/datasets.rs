//! The port to the data plane that the domain needs: removing what an app group stored when the
//! app group is removed. `trainyard-data` implements it.

use async_trait::async_trait;

use crate::error::CoreError;

/// What the domain asks of the data plane.
#[async_trait]
pub trait DatasetPort: Send + Sync + 'static {
    /// Deletes every document, event and search an app group stored.
    async fn remove_app_group_data(&self, app_group_id: i64) -> Result<(), CoreError>;
}
