//! Pushing a bulk body: split it into elements, validate each, append the good ones as one
//! durable frame, and report the refused ones with their index.

use std::sync::Arc;

use crate::dataset::{AppendOutcome, DatasetStore};
use crate::error::DataError;
use crate::json_array::{SplitError, split_array};
use crate::records::{
    CollectionType, DatasetKind, IngestRecord, RecordRejection, RecordRejectionReason, validate_collection_record,
    validate_document, validate_elements, validate_query_log_entry,
};

/// The most records one push may carry (upstream's limit for documents, applied to every kind).
pub const MAX_RECORDS_PER_PUSH: usize = 1000;

/// What is being pushed.
#[derive(Debug, Clone)]
pub enum PushTarget {
    /// Documents of a table keyed by `primary_key`.
    Documents {
        table: String,
        primary_key: String,
    },
    /// A data collection 2.0 type.
    Collection(CollectionType),
    QueryLog,
}

impl PushTarget {
    fn kind(&self) -> DatasetKind {
        match self {
            PushTarget::Documents { .. } => DatasetKind::Documents,
            PushTarget::Collection(CollectionType::Behavior) => DatasetKind::Behavior,
            PushTarget::Collection(CollectionType::ItemInfo) => DatasetKind::ItemInfo,
            PushTarget::Collection(CollectionType::User) => DatasetKind::Users,
            PushTarget::QueryLog => DatasetKind::QueryLog,
        }
    }

    fn validate(&self, element: &[u8], now_seconds: i64) -> Result<IngestRecord, RecordRejectionReason> {
        match self {
            PushTarget::Documents { table, primary_key } => validate_document(element, table, primary_key),
            PushTarget::Collection(collection_type) => {
                validate_collection_record(element, *collection_type, now_seconds)
            }
            PushTarget::QueryLog => validate_query_log_entry(element, now_seconds),
        }
    }
}

/// Why a push was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{0}")]
    Body(#[from] SplitError),
    #[error("a push carries at most {MAX_RECORDS_PER_PUSH} records; this one has {0}")]
    TooManyRecords(usize),
    #[error(transparent)]
    Data(#[from] DataError),
}

/// The outcome of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub received: usize,
    pub accepted: usize,
    pub rejections: Vec<RecordRejection>,
    /// Where the accepted records went; `None` when none was accepted and no batch key was given.
    pub appended: Option<AppendOutcome>,
}

impl DatasetStore {
    /// Validates and appends a bulk body (a JSON array) on a blocking thread. `batch_key` makes
    /// the push idempotent: pushing the same key again writes nothing.
    pub async fn push(
        self: &Arc<Self>,
        app_group_id: i64,
        target: PushTarget,
        body: bytes::Bytes,
        batch_key: Option<String>,
        received_ms: i64,
    ) -> Result<PushReport, PushError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.push_blocking(app_group_id, &target, &body, batch_key.as_deref(), received_ms)
        })
        .await
        .map_err(|error| PushError::Data(DataError::Task(error.to_string())))?
    }

    /// [`DatasetStore::push`], on the calling thread.
    pub fn push_blocking(
        &self,
        app_group_id: i64,
        target: &PushTarget,
        body: &[u8],
        batch_key: Option<&str>,
        received_ms: i64,
    ) -> Result<PushReport, PushError> {
        let elements = split_array(body)?;
        if elements.len() > MAX_RECORDS_PER_PUSH {
            return Err(PushError::TooManyRecords(elements.len()));
        }
        // A batch already applied (a resumed import) is answered before any validation work;
        // the append below checks again, atomically, for a push that races this one.
        if let Some(key) = batch_key
            && let Some(applied) = self.applied_batch(app_group_id, key)?
            && applied.element_count == elements.len() as u64
        {
            let appended = AppendOutcome {
                first_sequence: applied.first_sequence,
                record_count: applied.record_count,
                duplicate: true,
            };
            return Ok(PushReport {
                received: elements.len(),
                accepted: 0,
                rejections: Vec::new(),
                appended: Some(appended),
            });
        }
        let now_seconds = received_ms.div_euclid(1000);
        let (records, rejections) = validate_elements(&elements, |element| target.validate(element, now_seconds));
        let appended = if records.is_empty() && batch_key.is_none() {
            None
        } else {
            Some(self.append_elements_blocking(
                app_group_id,
                target.kind(),
                &records,
                elements.len(),
                batch_key,
                received_ms,
            )?)
        };
        Ok(PushReport { received: elements.len(), accepted: records.len(), rejections, appended })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::DatasetConfig;

    #[test]
    fn good_records_are_kept_and_bad_ones_reported_by_index() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let directory = tempfile::tempdir().unwrap();
        let config = DatasetConfig { log_directory: directory.path().join("log"), segment_max_bytes: 1 << 20 };
        let store =
            DatasetStore::open_local(config, &directory.path().join("objects"), runtime.handle().clone()).unwrap();
        let body = br#"[
            {"cmd":"ADD","fields":{"query":"a","raw_query":true,"hits":1,"timestamp":1795800000}},
            {"cmd":"ADD","fields":{"query":"b","raw_query":true,"hits":1}},
            not json,
            {"cmd":"ADD","fields":{"query":"c","raw_query":false,"hits":0,"timestamp":1795800000}}
        ]"#;
        let report = store.push_blocking(1, &PushTarget::QueryLog, body, None, 1_795_900_000_000).unwrap();
        assert_eq!((report.received, report.accepted), (4, 2));
        let indices: Vec<usize> = report.rejections.iter().map(|rejection| rejection.index).collect();
        assert_eq!(indices, vec![1, 2]);
        assert!(report.rejections[0].message.contains("timestamp is required"));
        assert_eq!(report.appended.unwrap().record_count, 2);
        let too_many = format!("[{}]", vec!["{}"; MAX_RECORDS_PER_PUSH + 1].join(","));
        assert!(matches!(
            store.push_blocking(1, &PushTarget::QueryLog, too_many.as_bytes(), None, 0),
            Err(PushError::TooManyRecords(1001))
        ));
        assert!(matches!(
            store.push_blocking(1, &PushTarget::QueryLog, b"{}", None, 0),
            Err(PushError::Body(SplitError::NotAnArray))
        ));
    }
}
