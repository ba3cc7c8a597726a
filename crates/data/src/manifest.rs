//! The manifest of an app group's compacted data: which Parquet files exist, up to which
//! sequence the log has been compacted, and the batch keys already applied.
//!
//! It lives beside the files on the object store (`manifest.json`) and is replaced whole with one
//! atomic put after the files it lists are written; the log segments it covers are deleted only
//! after that. So at any instant every record is either in a listed file or in a live segment,
//! never in both as far as readers are concerned, and a compaction interrupted at any point is
//! simply redone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::records::DatasetKind;

/// One Parquet file of the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Object path, relative to the store root.
    pub path: String,
    pub kind: DatasetKind,
    /// Unix day of the `dt=` partition.
    pub day: i64,
    pub rows: u64,
    pub min_sequence: u64,
    pub max_sequence: u64,
    pub bytes: u64,
}

/// Where an applied batch key's records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedBatch {
    pub first_sequence: u64,
    pub record_count: u64,
    /// Elements the push carried, refused ones included.
    pub element_count: u64,
}

/// The manifest of one app group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Every record with a sequence up to this one is in `files`.
    pub compacted_through_sequence: u64,
    pub files: Vec<DataFile>,
    pub batch_keys: BTreeMap<String, AppliedBatch>,
}

impl Default for Manifest {
    fn default() -> Manifest {
        Manifest { format: 1, compacted_through_sequence: 0, files: Vec::new(), batch_keys: BTreeMap::new() }
    }
}

impl Manifest {
    /// The files of `kind`, oldest data first.
    pub fn files_of(&self, kind: DatasetKind) -> impl Iterator<Item = &DataFile> {
        self.files.iter().filter(move |file| file.kind == kind)
    }

    /// The highest sequence in any file.
    pub fn max_sequence(&self) -> u64 {
        self.files.iter().map(|file| file.max_sequence).max().unwrap_or(0).max(self.compacted_through_sequence)
    }
}
