//! The data plane of Trainyard: what an app group's trainers learn from.
//!
//! # What lives here
//! - [`records`]: the records (documents, behavior events, item and user records, query-log
//!   searches), how each pushed element is validated, and why one is refused.
//! - [`json_array`]: splitting a bulk body into elements so each is judged on its own.
//! - `segment`: the ingest log — checksummed frames, fsynced before acknowledgement, torn
//!   tails cut on reopen.
//! - [`dataset::DatasetStore`]: per-app-group logs, compaction into Parquet files on an object
//!   store (`app_group_id=…/kind=…/dt=…/`), the manifest, batch keys for idempotent imports, and
//!   pinned [`dataset::Snapshot`]s.
//! - [`reader`]: streaming reads of a snapshot (Arrow batches with projection, typed records,
//!   documents at their latest version) with bounded memory.
//! - [`stats`]: dataset statistics and the checks each trainer applies.
//! - [`artifacts`]: model artifacts on the same object store, checked by SHA-256 on read.
//! - [`ingest`]: a bulk push end to end (split, validate, append, report), and the domain's
//!   `DatasetPort` (removing an app group's data).
//!
//! # What must not
//! No HTTP and no SQL. Everything here blocks: call it from blocking threads (the async
//! wrappers do that). Records and their validation rules are this crate's; the wire envelope
//! of the bulk endpoints belongs to `trainyard-api`.

pub mod artifacts;
pub mod columnar;
pub mod dataset;
mod error;
pub mod ingest;
pub mod json_array;
pub mod manifest;
pub mod reader;
pub mod records;
mod segment;
pub mod stats;

pub use dataset::{AppendOutcome, CompactionFault, CompactionReport, DatasetConfig, DatasetStore, Snapshot};
pub use error::DataError;
