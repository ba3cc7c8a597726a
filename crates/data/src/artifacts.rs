//! Model artifacts on the object store, beside the datasets:
//! `models/app_group_id=<id>/function=<fn>/instance=<name>/generation=<g>/model-<attempt>.<ext>` (one file per attempt; `<ext>`
//! is `tyctr` for ctr's binary artifact, `json` for the others).
//!
//! Artifacts are written once under a path that names their generation, and recorded (path,
//! SHA-256, size) on the task row in the same step that marks the task successful; the serving
//! side reads them back only through that record and refuses one whose checksum differs, so a
//! damaged or half-written file is never served.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use sha2::{Digest as _, Sha256};
use trainyard_core::catalog::FunctionName;
use trainyard_core::model::ArtifactRef;

use crate::error::DataError;

/// Reads and writes model artifacts.
#[derive(Clone)]
pub struct ArtifactStore {
    objects: Arc<dyn ObjectStore>,
}

/// The object-store prefix of an app group's models.
pub fn models_prefix(app_group_id: i64) -> String {
    format!("models/app_group_id={app_group_id}")
}

/// The object-store prefix of one instance's models.
pub fn instance_models_prefix(app_group_id: i64, function: FunctionName, instance_name: &str) -> String {
    format!("{}/function={function}/instance={instance_name}", models_prefix(app_group_id))
}

/// The file extension of a function's artifacts: what their bytes are, for people browsing the
/// object store (the serving side never relies on it).
pub fn artifact_extension(function: FunctionName) -> &'static str {
    match function {
        FunctionName::Ctr => "tyctr",
        _ => "json",
    }
}

/// Why an artifact could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("the model artifact {path} is damaged: its SHA-256 is {actual}, the task recorded {expected}")]
    ChecksumMismatch { path: String, expected: String, actual: String },
    #[error("the model artifact {path} could not be read: {source}")]
    Unreadable { path: String, source: object_store::Error },
}

impl ArtifactStore {
    pub fn new(objects: Arc<dyn ObjectStore>) -> ArtifactStore {
        ArtifactStore { objects }
    }

    /// Stores the artifact of one attempt of a generation and returns its record. Each attempt
    /// writes a file of its own, so a stale attempt (one whose lease was taken over) can never
    /// overwrite the model the current attempt recorded.
    pub async fn put(
        &self,
        app_group_id: i64,
        function: FunctionName,
        instance_name: &str,
        generation: i64,
        attempt: i64,
        bytes: Vec<u8>,
    ) -> Result<ArtifactRef, DataError> {
        let path = format!(
            "{}/generation={generation}/model-{attempt}.{}",
            instance_models_prefix(app_group_id, function, instance_name),
            artifact_extension(function)
        );
        let sha256 = hex_digest(&bytes);
        let size = bytes.len() as i64;
        self.objects.put(&ObjectPath::from(path.as_str()), Bytes::from(bytes).into()).await?;
        Ok(ArtifactRef { path, sha256, bytes: size })
    }

    /// Reads an artifact and checks it against its record.
    pub async fn get(&self, artifact: &ArtifactRef) -> Result<Bytes, ArtifactError> {
        let path = ObjectPath::from(artifact.path.as_str());
        let fetched = async { self.objects.get(&path).await?.bytes().await }
            .await
            .map_err(|source| ArtifactError::Unreadable { path: artifact.path.clone(), source })?;
        let actual = hex_digest(&fetched);
        if actual != artifact.sha256 {
            return Err(ArtifactError::ChecksumMismatch {
                path: artifact.path.clone(),
                expected: artifact.sha256.clone(),
                actual,
            });
        }
        Ok(fetched)
    }

    /// Deletes one artifact (a missing one is fine).
    pub async fn delete(&self, artifact: &ArtifactRef) -> Result<(), DataError> {
        match self.objects.delete(&ObjectPath::from(artifact.path.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes every object under a prefix (an app group's or an instance's models).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), DataError> {
        use futures_util::TryStreamExt as _;
        let prefix_path = ObjectPath::from(prefix);
        let locations: Vec<ObjectPath> =
            self.objects.list(Some(&prefix_path)).map_ok(|meta| meta.location).try_collect().await?;
        for location in locations {
            match self.objects.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn artifacts_round_trip_and_damage_is_refused() {
        let objects: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let store = ArtifactStore::new(objects.clone());
        let artifact = store.put(7, FunctionName::Hot, "hot_a", 3, 2, b"{\"format\":\"x\"}".to_vec()).await.unwrap();
        assert_eq!(artifact.path, "models/app_group_id=7/function=hot/instance=hot_a/generation=3/model-2.json");
        assert_eq!(store.get(&artifact).await.unwrap(), Bytes::from_static(b"{\"format\":\"x\"}"));
        objects
            .put(&ObjectPath::from(artifact.path.as_str()), Bytes::from_static(b"{\"format\":\"y\"}").into())
            .await
            .unwrap();
        assert!(matches!(store.get(&artifact).await, Err(ArtifactError::ChecksumMismatch { .. })));
        store.delete_prefix(&models_prefix(7)).await.unwrap();
        assert!(matches!(store.get(&artifact).await, Err(ArtifactError::Unreadable { .. })));
    }
}
