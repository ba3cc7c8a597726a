//! Reading a [`Snapshot`]: streams of Arrow batches (with column projection, for trainers that
//! need speed), typed records, and documents resolved to their latest version.
//!
//! Memory stays bounded whatever the dataset's size: Parquet files are read one batch at a time,
//! and log segments (bounded by the rotation size) one at a time. The latest version of each
//! document is found by merging sorted runs (each documents file is sorted by table, primary key
//! and version at compaction; a segment's documents are sorted in memory), so only one batch per
//! run and one document at a time are held.
//!
//! Must run on a blocking thread: Parquet ranges are fetched from the object store through the
//! snapshot's runtime handle.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::{Buf as _, Bytes};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::{ChunkReader, Length};
use serde_json::{Map, Value};

use crate::columnar::{StoredRecord, batch_to_records, partition_day, records_to_batch, schema};
use crate::dataset::{Snapshot, document_order};
use crate::error::DataError;
use crate::manifest::DataFile;
use crate::records::{DatasetKind, DocumentCommand, IngestRecord};
use crate::segment::{Decode, read_segment_file};

/// Rows per batch read from files and built from the log.
pub const BATCH_ROWS: usize = 8192;

/// Random access to one object, for the Parquet reader.
struct ObjectChunks {
    objects: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
    runtime: tokio::runtime::Handle,
}

impl ObjectChunks {
    fn fetch(&self, start: u64, length: u64) -> std::io::Result<Bytes> {
        let end = (start + length).min(self.size);
        self.runtime.block_on(self.objects.get_range(&self.path, start..end)).map_err(std::io::Error::other)
    }
}

/// The first window a sequential read fetches; each next one doubles, up to the largest.
const FIRST_READ_WINDOW: u64 = 64 * 1024;
const LARGEST_READ_WINDOW: u64 = 4 * 1024 * 1024;

/// A sequential reader over an object that fetches growing windows on demand. The Parquet
/// reader asks for a reader at each page header and reads only a little of it: fetching the
/// rest of the file each time would read it many times over.
struct WindowedRead {
    chunks: Arc<ObjectChunks>,
    position: u64,
    window: u64,
    buffer: Bytes,
}

impl std::io::Read for WindowedRead {
    fn read(&mut self, destination: &mut [u8]) -> std::io::Result<usize> {
        if self.buffer.is_empty() {
            if self.position >= self.chunks.size || destination.is_empty() {
                return Ok(0);
            }
            self.buffer = self.chunks.fetch(self.position, self.window)?;
            self.position += self.buffer.len() as u64;
            self.window = (self.window * 2).min(LARGEST_READ_WINDOW);
        }
        let count = destination.len().min(self.buffer.len());
        destination[..count].copy_from_slice(&self.buffer[..count]);
        self.buffer.advance(count);
        Ok(count)
    }
}

/// Random access to an object for the Parquet reader (shared by its column readers).
#[derive(Clone)]
struct SharedChunks(Arc<ObjectChunks>);

impl Length for SharedChunks {
    fn len(&self) -> u64 {
        self.0.size
    }
}

impl ChunkReader for SharedChunks {
    type T = WindowedRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(WindowedRead { chunks: self.0.clone(), position: start, window: FIRST_READ_WINDOW, buffer: Bytes::new() })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.0.fetch(start, length as u64).map_err(|error| parquet::errors::ParquetError::External(Box::new(error)))
    }
}

/// Which rows and columns a scan reads.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Only records whose partition day (Unix day, UTC) is in this range.
    pub days: Option<RangeInclusive<i64>>,
    /// Only these columns (by name), in schema order; `None` reads all.
    pub columns: Option<Vec<String>>,
}

enum Source {
    File(DataFile),
    Segment(usize),
}

/// Batches of one kind from a snapshot: its Parquet files, then its log.
pub struct BatchScan<'a> {
    snapshot: &'a Snapshot,
    kind: DatasetKind,
    options: ScanOptions,
    sources: VecDeque<Source>,
    current_file: Option<ParquetRecordBatchReader>,
    pending: VecDeque<RecordBatch>,
    projection: Option<Vec<usize>>,
}

impl Snapshot {
    /// Streams batches of `kind`. Parquet files outside `options.days` are skipped unread.
    pub fn scan(&self, kind: DatasetKind, options: ScanOptions) -> Result<BatchScan<'_>, DataError> {
        let full_schema = schema(kind);
        let projection = match &options.columns {
            None => None,
            Some(names) => {
                let mut indices = Vec::with_capacity(names.len());
                for name in names {
                    indices.push(
                        full_schema
                            .index_of(name)
                            .map_err(|_| DataError::Corrupt(format!("{} has no column {name}", kind.as_str())))?,
                    );
                }
                indices.sort_unstable();
                indices.dedup();
                Some(indices)
            }
        };
        let mut sources: VecDeque<Source> = self
            .manifest
            .files_of(kind)
            .filter(|file| options.days.as_ref().is_none_or(|days| days.contains(&file.day)))
            .cloned()
            .map(Source::File)
            .collect();
        sources.extend((0..self.segments.len()).map(Source::Segment));
        Ok(BatchScan {
            snapshot: self,
            kind,
            options,
            sources,
            current_file: None,
            pending: VecDeque::new(),
            projection,
        })
    }

    /// Every record of `kind` (in the day range), decoded.
    pub fn records(
        &self,
        kind: DatasetKind,
        days: Option<RangeInclusive<i64>>,
    ) -> Result<impl Iterator<Item = Result<StoredRecord, DataError>> + '_, DataError> {
        let scan = self.scan(kind, ScanOptions { days, columns: None })?;
        Ok(scan.flat_map(move |batch| match batch.and_then(|batch| batch_to_records(kind, &batch)) {
            Ok(records) => records.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) => vec![Err(error)],
        }))
    }

    /// Every record of `kind` in the log part of the snapshot (not yet compacted).
    fn log_records(&self, segment_index: usize, kind: DatasetKind) -> Result<Vec<StoredRecord>, DataError> {
        let segment = &self.segments[segment_index];
        let (frames, _) = match read_segment_file(&segment.path, segment.end_offset, false, Decode::Records) {
            Ok(read) => read,
            // A segment compacted and deleted after the snapshot was taken would be pinned; a
            // missing file here means it was empty and never written.
            Err(DataError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut records = Vec::new();
        for frame in frames.into_iter().filter(|frame| frame.kind == kind) {
            for (offset, record) in frame.records.into_iter().enumerate() {
                let sequence = frame.first_sequence + offset as u64;
                if sequence > self.max_sequence || sequence <= self.manifest.compacted_through_sequence {
                    continue;
                }
                records.push(StoredRecord { sequence, received_ms: frame.received_ms, record });
            }
        }
        Ok(records)
    }

    /// The documents of the snapshot, each at its latest version (deleted ones left out), in
    /// (table, primary key) order. `table` restricts to one table.
    pub fn documents(&self, table: Option<&str>) -> Result<DocumentMerge<'_>, DataError> {
        let mut runs: Vec<Box<dyn Iterator<Item = Result<StoredRecord, DataError>> + '_>> = Vec::new();
        for file in self.manifest.files_of(DatasetKind::Documents) {
            let reader = open_file(self, file, None, 1024)?;
            runs.push(Box::new(reader.flat_map(|batch| {
                match batch.map_err(DataError::from).and_then(|batch| batch_to_records(DatasetKind::Documents, &batch))
                {
                    Ok(records) => records.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(error) => vec![Err(error)],
                }
            })));
        }
        for segment_index in 0..self.segments.len() {
            let mut records = self.log_records(segment_index, DatasetKind::Documents)?;
            records.sort_by_cached_key(document_order);
            runs.push(Box::new(records.into_iter().map(Ok)));
        }
        DocumentMerge::new(runs, table.map(str::to_string))
    }
}

fn open_file(
    snapshot: &Snapshot,
    file: &DataFile,
    projection: Option<&[usize]>,
    batch_rows: usize,
) -> Result<ParquetRecordBatchReader, DataError> {
    let chunks = ObjectChunks {
        objects: snapshot.objects.clone(),
        path: ObjectPath::from(file.path.as_str()),
        size: file.bytes,
        runtime: snapshot.runtime.clone(),
    };
    // Each fetch is a round trip through the runtime (and, for local files, its blocking pool):
    // a small file is read in one fetch rather than footer, metadata and page windows apart.
    // Daily partitions make most files small (MovieLens: 214 behavior files of ~10 KiB).
    if fetched_whole(file.bytes) {
        let whole = chunks.fetch(0, file.bytes).map_err(|source| DataError::Io { path: file.path.clone(), source })?;
        return build_reader(ParquetRecordBatchReaderBuilder::try_new(whole)?, projection, batch_rows);
    }
    build_reader(ParquetRecordBatchReaderBuilder::try_new(SharedChunks(Arc::new(chunks)))?, projection, batch_rows)
}

/// Whether a file is fetched whole (see [`open_file`]): up to [`LARGEST_READ_WINDOW`] bytes. This
/// crate's unit tests read every file through the windowed reader (their files are small), so
/// both paths are tested: the HTTP, store and trainer tests read small files whole.
fn fetched_whole(bytes: u64) -> bool {
    !cfg!(test) && bytes <= LARGEST_READ_WINDOW
}

fn build_reader<T: ChunkReader + 'static>(
    builder: ParquetRecordBatchReaderBuilder<T>,
    projection: Option<&[usize]>,
    batch_rows: usize,
) -> Result<ParquetRecordBatchReader, DataError> {
    let mut builder = builder.with_batch_size(batch_rows);
    if let Some(indices) = projection {
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices.iter().copied());
        builder = builder.with_projection(mask);
    }
    Ok(builder.build()?)
}

impl BatchScan<'_> {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, DataError> {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                return Ok(Some(batch));
            }
            if let Some(reader) = &mut self.current_file {
                match reader.next() {
                    Some(batch) => return Ok(Some(batch?)),
                    None => self.current_file = None,
                }
            }
            let Some(source) = self.sources.pop_front() else {
                return Ok(None);
            };
            match source {
                Source::File(file) => {
                    self.current_file = Some(open_file(self.snapshot, &file, self.projection.as_deref(), BATCH_ROWS)?)
                }
                Source::Segment(index) => {
                    let mut records = self.snapshot.log_records(index, self.kind)?;
                    if let Some(days) = &self.options.days {
                        records.retain(|record| days.contains(&partition_day(record)));
                    }
                    for chunk in records.chunks(BATCH_ROWS) {
                        let batch = records_to_batch(self.kind, chunk)?;
                        let projected = match &self.projection {
                            Some(indices) => batch.project(indices)?,
                            None => batch,
                        };
                        self.pending.push_back(projected);
                    }
                }
            }
        }
    }
}

impl Iterator for BatchScan<'_> {
    type Item = Result<RecordBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

/// A document at its latest version.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub table: String,
    pub primary_key: String,
    pub fields: Map<String, Value>,
    /// The sequence of the version that last changed it.
    pub sequence: u64,
}

type MergeKey = (String, String, i64, u64);

/// The k-way merge of sorted document runs, folding each document's versions in order.
pub struct DocumentMerge<'a> {
    runs: Vec<Box<dyn Iterator<Item = Result<StoredRecord, DataError>> + 'a>>,
    heads: BinaryHeap<Reverse<(MergeKey, usize)>>,
    held: Vec<Option<StoredRecord>>,
    table: Option<String>,
    failed: bool,
}

impl<'a> DocumentMerge<'a> {
    fn new(
        mut runs: Vec<Box<dyn Iterator<Item = Result<StoredRecord, DataError>> + 'a>>,
        table: Option<String>,
    ) -> Result<DocumentMerge<'a>, DataError> {
        let mut heads = BinaryHeap::new();
        let mut held = Vec::with_capacity(runs.len());
        for (index, run) in runs.iter_mut().enumerate() {
            match run.next().transpose()? {
                Some(record) => {
                    heads.push(Reverse((document_order(&record), index)));
                    held.push(Some(record));
                }
                None => held.push(None),
            }
        }
        Ok(DocumentMerge { runs, heads, held, table, failed: false })
    }

    fn pop(&mut self) -> Result<Option<StoredRecord>, DataError> {
        let Some(Reverse((_, index))) = self.heads.pop() else {
            return Ok(None);
        };
        let record = self.held[index].take().expect("a head holds its record");
        if let Some(next) = self.runs[index].next().transpose()? {
            self.heads.push(Reverse((document_order(&next), index)));
            self.held[index] = Some(next);
        }
        Ok(Some(record))
    }

    fn peek_document(&self) -> Option<(&str, &str)> {
        self.heads.peek().map(|Reverse(((table, key, _, _), _))| (table.as_str(), key.as_str()))
    }

    fn next_document(&mut self) -> Result<Option<Document>, DataError> {
        loop {
            let Some(first) = self.pop()? else {
                return Ok(None);
            };
            let IngestRecord::Document(first_version) = first.record else {
                return Err(DataError::Corrupt("a documents run holds another kind".into()));
            };
            let mut current: Option<Document> = None;
            let table = first_version.table.clone();
            let primary_key = first_version.primary_key.clone();
            apply_version(&mut current, first_version, first.sequence);
            while self.peek_document() == Some((table.as_str(), primary_key.as_str())) {
                let next = self.pop()?.expect("peeked");
                let IngestRecord::Document(version) = next.record else {
                    return Err(DataError::Corrupt("a documents run holds another kind".into()));
                };
                apply_version(&mut current, version, next.sequence);
            }
            let wanted = self.table.as_deref().is_none_or(|wanted| wanted == table);
            if let Some(document) = current.filter(|_| wanted) {
                return Ok(Some(document));
            }
        }
    }
}

fn apply_version(current: &mut Option<Document>, version: crate::records::DocumentRecord, sequence: u64) {
    match version.command {
        DocumentCommand::Add => {
            *current = Some(Document {
                table: version.table,
                primary_key: version.primary_key,
                fields: version.fields,
                sequence,
            });
        }
        DocumentCommand::Update => match current {
            Some(document) => {
                document.fields.extend(version.fields);
                document.sequence = sequence;
            }
            None => {
                *current = Some(Document {
                    table: version.table,
                    primary_key: version.primary_key,
                    fields: version.fields,
                    sequence,
                })
            }
        },
        DocumentCommand::Delete => *current = None,
    }
}

impl Iterator for DocumentMerge<'_> {
    type Item = Result<Document, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_document();
        if next.is_err() {
            self.failed = true;
        }
        next.transpose()
    }
}
