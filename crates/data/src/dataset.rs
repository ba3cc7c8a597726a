//! [`DatasetStore`]: the durable home of every app group's documents, behavior events and
//! query log.
//!
//! Writes go to a per-app-group log of checksummed frames on local disk (`segment`), fsynced
//! before they are acknowledged. A compactor turns sealed log segments into Parquet files on the
//! object store, partitioned Hive-style (`app_group_id=…/kind=…/dt=YYYY-MM-DD/`), and records
//! them in the app group's manifest before deleting the segments. Readers take a [`Snapshot`]:
//! the manifest and the log as they are at one instant, pinned so that compaction cannot delete
//! a segment a reader still needs.
//!
//! Everything here is blocking file and object-store I/O and runs on blocking threads
//! (`spawn_blocking`); the object store is driven through the runtime handle given at open.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};

use crate::columnar::{StoredRecord, partition_day, records_to_batch, write_parquet};
use crate::error::DataError;
use crate::manifest::{AppliedBatch, DataFile, Manifest};
use crate::records::{DatasetKind, IngestRecord};
use crate::segment::{
    ActiveSegment, Decode, Frame, encode_frame_with_payload, encode_payload, parse_segment_file_name,
    read_segment_file, sync_directory,
};

/// Settings of the data store.
#[derive(Debug, Clone)]
pub struct DatasetConfig {
    /// Local directory of the ingest log (one sub-directory per app group).
    pub log_directory: PathBuf,
    /// A segment is sealed once it reaches this size.
    pub segment_max_bytes: u64,
}

/// Where compaction can be told to stop, to test that an interrupted compaction is redone
/// without loss or duplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionFault {
    /// After the Parquet files are written, before the manifest lists them.
    AfterFilesWritten,
    /// After the manifest lists the files, before the log segment is deleted.
    AfterManifestWritten,
}

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub first_sequence: u64,
    pub record_count: u64,
    /// The batch key had been applied before: nothing was written this time.
    pub duplicate: bool,
}

/// What one compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub segments_compacted: usize,
    pub records_compacted: u64,
    pub files_written: usize,
}

#[derive(Debug, Clone)]
struct SealedSegment {
    first_sequence: u64,
    path: PathBuf,
}

#[derive(Debug)]
struct StreamState {
    active: ActiveSegment,
    sealed: Vec<SealedSegment>,
    next_sequence: u64,
    /// Batch keys applied in the live (uncompacted) log; the manifest holds the older ones.
    live_batch_keys: HashMap<String, AppliedBatch>,
}

/// One app group's log and manifest.
struct AppStream {
    app_group_id: i64,
    directory: PathBuf,
    state: Mutex<StreamState>,
    manifest: RwLock<Arc<Manifest>>,
    /// Pin counts of segments (by first sequence) that snapshots are reading.
    pins: Mutex<BTreeMap<u64, usize>>,
    /// Compacted segments whose deletion waits for their pins to drop.
    doomed: Mutex<Vec<SealedSegment>>,
    /// One compaction at a time per app group.
    compaction: Mutex<()>,
}

/// The data store.
pub struct DatasetStore {
    config: DatasetConfig,
    objects: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Handle,
    streams: Mutex<HashMap<i64, Arc<AppStream>>>,
    fault: Mutex<Option<CompactionFault>>,
}

/// The object-store prefix of an app group's data.
pub fn app_group_prefix(app_group_id: i64) -> String {
    format!("datasets/app_group_id={app_group_id}")
}

fn manifest_path(app_group_id: i64) -> ObjectPath {
    ObjectPath::from(format!("{}/manifest.json", app_group_prefix(app_group_id)))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (every step is durable
    // before the in-memory state changes), so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DatasetStore {
    /// Opens the store. `runtime` drives the object store from blocking threads.
    pub fn open(
        config: DatasetConfig,
        objects: Arc<dyn ObjectStore>,
        runtime: tokio::runtime::Handle,
    ) -> Result<DatasetStore, DataError> {
        std::fs::create_dir_all(&config.log_directory).map_err(|error| DataError::io(&config.log_directory, error))?;
        Ok(DatasetStore { config, objects, runtime, streams: Mutex::new(HashMap::new()), fault: Mutex::new(None) })
    }

    /// Opens the store with its objects in a local directory.
    pub fn open_local(
        config: DatasetConfig,
        objects_directory: &Path,
        runtime: tokio::runtime::Handle,
    ) -> Result<DatasetStore, DataError> {
        std::fs::create_dir_all(objects_directory).map_err(|error| DataError::io(objects_directory, error))?;
        // Automatic cleanup removes directories a delete leaves empty (dropped partitions).
        let objects =
            object_store::local::LocalFileSystem::new_with_prefix(objects_directory)?.with_automatic_cleanup(true);
        DatasetStore::open(config, Arc::new(objects), runtime)
    }

    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// Makes the next compaction stop at `fault` (tests only).
    pub fn inject_compaction_fault(&self, fault: Option<CompactionFault>) {
        *lock(&self.fault) = fault;
    }

    fn stream(&self, app_group_id: i64) -> Result<Arc<AppStream>, DataError> {
        let mut streams = lock(&self.streams);
        if let Some(stream) = streams.get(&app_group_id) {
            return Ok(stream.clone());
        }
        let stream = Arc::new(self.open_stream(app_group_id)?);
        streams.insert(app_group_id, stream.clone());
        Ok(stream)
    }

    /// App groups whose log has been opened in this process.
    pub fn open_app_groups(&self) -> Vec<i64> {
        lock(&self.streams).keys().copied().collect()
    }

    /// App groups with a log on disk (opened or not).
    pub fn app_groups_on_disk(&self) -> Result<Vec<i64>, DataError> {
        let directory = &self.config.log_directory;
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(directory).map_err(|error| DataError::io(directory, error))? {
            let entry = entry.map_err(|error| DataError::io(directory, error))?;
            if let Some(id) =
                entry.file_name().to_str().and_then(|name| name.strip_prefix("app-")).and_then(|id| id.parse().ok())
            {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn load_manifest(&self, app_group_id: i64) -> Result<Manifest, DataError> {
        let path = manifest_path(app_group_id);
        let fetched = self.runtime.block_on(async { self.objects.get(&path).await?.bytes().await });
        match fetched {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|error| DataError::Manifest(format!("{path}: {error}")))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(Manifest::default()),
            Err(error) => Err(error.into()),
        }
    }

    fn open_stream(&self, app_group_id: i64) -> Result<AppStream, DataError> {
        let directory = self.config.log_directory.join(format!("app-{app_group_id}"));
        std::fs::create_dir_all(&directory).map_err(|error| DataError::io(&directory, error))?;
        let manifest = self.load_manifest(app_group_id)?;
        let mut segments: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&directory).map_err(|error| DataError::io(&directory, error))? {
            let entry = entry.map_err(|error| DataError::io(&directory, error))?;
            if let Some(first_sequence) = entry.file_name().to_str().and_then(parse_segment_file_name) {
                segments.push((first_sequence, entry.path()));
            }
        }
        segments.sort();
        let mut sealed = Vec::new();
        let mut live_batch_keys = HashMap::new();
        let mut last_sequence = manifest.max_sequence();
        let mut active = None;
        let segment_count = segments.len();
        for (position, (first_sequence, path)) in segments.into_iter().enumerate() {
            let is_newest = position + 1 == segment_count;
            let (segment, frames) = if is_newest {
                let (reopened, frames) = ActiveSegment::reopen(&path, first_sequence)?;
                (Some(reopened), frames)
            } else {
                (None, read_segment_file(&path, None, false, Decode::HeadersOnly)?.0)
            };
            let segment_last = frames.iter().map(Frame::last_sequence).max().unwrap_or(0);
            let already_compacted = !frames.is_empty() && segment_last <= manifest.compacted_through_sequence;
            if already_compacted || (frames.is_empty() && !is_newest) {
                // Compacted before a crash could delete it, or empty: its records are in files.
                drop(segment);
                std::fs::remove_file(&path).map_err(|error| DataError::io(&path, error))?;
                continue;
            }
            for frame in &frames {
                if let Some(key) = &frame.batch_key {
                    live_batch_keys.insert(
                        key.clone(),
                        AppliedBatch {
                            first_sequence: frame.first_sequence,
                            record_count: frame.record_count as u64,
                            element_count: u64::from(frame.element_count),
                        },
                    );
                }
            }
            last_sequence = last_sequence.max(segment_last);
            match segment {
                Some(reopened) => active = Some(reopened),
                None => sealed.push(SealedSegment { first_sequence, path }),
            }
        }
        sync_directory(&directory)?;
        let next_sequence = last_sequence + 1;
        let active = match active {
            Some(active) => active,
            None => ActiveSegment::create(&directory, next_sequence)?,
        };
        Ok(AppStream {
            app_group_id,
            directory,
            state: Mutex::new(StreamState { active, sealed, next_sequence, live_batch_keys }),
            manifest: RwLock::new(Arc::new(manifest)),
            pins: Mutex::new(BTreeMap::new()),
            doomed: Mutex::new(Vec::new()),
            compaction: Mutex::new(()),
        })
    }

    /// The batch a key was applied to, if it was.
    pub fn applied_batch(&self, app_group_id: i64, batch_key: &str) -> Result<Option<AppliedBatch>, DataError> {
        let stream = self.stream(app_group_id)?;
        let state = lock(&stream.state);
        if let Some(applied) = state.live_batch_keys.get(batch_key) {
            return Ok(Some(*applied));
        }
        Ok(stream.manifest.read().unwrap_or_else(std::sync::PoisonError::into_inner).batch_keys.get(batch_key).copied())
    }

    /// Appends validated records of one kind as one durable frame. With a `batch_key` already
    /// applied, nothing is written and the earlier outcome is returned (`duplicate`) — provided
    /// the push carries as many elements as the first time (`element_count`, refused ones
    /// included); otherwise the key is refused, since it names another batch.
    pub fn append_blocking(
        &self,
        app_group_id: i64,
        kind: DatasetKind,
        records: &[IngestRecord],
        batch_key: Option<&str>,
        received_ms: i64,
    ) -> Result<AppendOutcome, DataError> {
        self.append_elements_blocking(app_group_id, kind, records, records.len(), batch_key, received_ms)
    }

    /// [`DatasetStore::append_blocking`] for a push of `element_count` elements of which
    /// `records` were accepted.
    pub fn append_elements_blocking(
        &self,
        app_group_id: i64,
        kind: DatasetKind,
        records: &[IngestRecord],
        element_count: usize,
        batch_key: Option<&str>,
        received_ms: i64,
    ) -> Result<AppendOutcome, DataError> {
        let stream = self.stream(app_group_id)?;
        // The records' encoding is most of a frame's cost: done before taking the lock, so
        // that concurrent pushes only queue for the write and the fsync.
        let payload = encode_payload(records);
        let mut state = lock(&stream.state);
        if let Some(key) = batch_key {
            let applied = state.live_batch_keys.get(key).copied().or_else(|| {
                stream.manifest.read().unwrap_or_else(std::sync::PoisonError::into_inner).batch_keys.get(key).copied()
            });
            if let Some(applied) = applied {
                if applied.element_count != element_count as u64 {
                    return Err(DataError::BatchKeyMismatch {
                        key: key.to_string(),
                        applied_elements: applied.element_count,
                        pushed_elements: element_count as u64,
                    });
                }
                return Ok(AppendOutcome {
                    first_sequence: applied.first_sequence,
                    record_count: applied.record_count,
                    duplicate: true,
                });
            }
        }
        if records.is_empty() && batch_key.is_none() {
            return Ok(AppendOutcome { first_sequence: state.next_sequence, record_count: 0, duplicate: false });
        }
        let first_sequence = state.next_sequence;
        let element_count_u32 =
            u32::try_from(element_count).map_err(|_| DataError::Corrupt("too many elements in one push".into()))?;
        let frame = encode_frame_with_payload(
            kind,
            first_sequence,
            received_ms,
            batch_key,
            element_count_u32,
            records.len(),
            &payload,
        );
        if !state.active.is_empty() && state.active.length() + frame.len() as u64 > self.config.segment_max_bytes {
            let replacement = ActiveSegment::create(&stream.directory, first_sequence)?;
            let sealed = std::mem::replace(&mut state.active, replacement);
            let sealed_first = sealed.first_sequence;
            let sealed_path = sealed.seal();
            state.sealed.push(SealedSegment { first_sequence: sealed_first, path: sealed_path });
        }
        state.active.append(&frame)?;
        let record_count = records.len() as u64;
        state.next_sequence = first_sequence + record_count.max(1);
        if let Some(key) = batch_key {
            state.live_batch_keys.insert(
                key.to_string(),
                AppliedBatch { first_sequence, record_count, element_count: element_count as u64 },
            );
        }
        Ok(AppendOutcome { first_sequence, record_count, duplicate: false })
    }

    /// [`DatasetStore::append_blocking`] on a blocking thread.
    pub async fn append(
        self: &Arc<Self>,
        app_group_id: i64,
        kind: DatasetKind,
        records: Vec<IngestRecord>,
        batch_key: Option<String>,
        received_ms: i64,
    ) -> Result<AppendOutcome, DataError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.append_blocking(app_group_id, kind, &records, batch_key.as_deref(), received_ms)
        })
        .await
        .map_err(|error| DataError::Task(error.to_string()))?
    }

    /// A consistent view of an app group's data as of now.
    pub fn snapshot(&self, app_group_id: i64) -> Result<Snapshot, DataError> {
        let stream = self.stream(app_group_id)?;
        let state = lock(&stream.state);
        let manifest = stream.manifest.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut segments: Vec<SegmentSlice> = state
            .sealed
            .iter()
            .map(|segment| SegmentSlice {
                first_sequence: segment.first_sequence,
                path: segment.path.clone(),
                end_offset: None,
            })
            .collect();
        segments.push(SegmentSlice {
            first_sequence: state.active.first_sequence,
            path: state.active.path.clone(),
            end_offset: Some(state.active.length()),
        });
        let max_sequence = state.next_sequence - 1;
        {
            let mut pins = lock(&stream.pins);
            for segment in &segments {
                *pins.entry(segment.first_sequence).or_default() += 1;
            }
        }
        drop(state);
        Ok(Snapshot {
            app_group_id,
            manifest,
            segments,
            max_sequence,
            objects: self.objects.clone(),
            runtime: self.runtime.clone(),
            pin: PinGuard { stream },
        })
    }

    /// Seals the active segment (when it holds anything and `seal_active`) and compacts every
    /// sealed segment into Parquet files, oldest first.
    pub fn compact_blocking(&self, app_group_id: i64, seal_active: bool) -> Result<CompactionReport, DataError> {
        let is_open = lock(&self.streams).contains_key(&app_group_id);
        if !is_open && !self.config.log_directory.join(format!("app-{app_group_id}")).exists() {
            // Nothing was ever pushed (or the app group was just removed): do not create a log.
            return Ok(CompactionReport::default());
        }
        let stream = self.stream(app_group_id)?;
        let _one_at_a_time = lock(&stream.compaction);
        let to_compact = {
            let mut state = lock(&stream.state);
            if seal_active && !state.active.is_empty() {
                let next_sequence = state.next_sequence;
                let replacement = ActiveSegment::create(&stream.directory, next_sequence)?;
                let sealed = std::mem::replace(&mut state.active, replacement);
                let first_sequence = sealed.first_sequence;
                state.sealed.push(SealedSegment { first_sequence, path: sealed.seal() });
            }
            state.sealed.clone()
        };
        let mut report = CompactionReport::default();
        for segment in to_compact {
            let (records_compacted, files_written) = self.compact_segment(&stream, &segment)?;
            report.segments_compacted += 1;
            report.records_compacted += records_compacted;
            report.files_written += files_written;
        }
        Ok(report)
    }

    /// [`DatasetStore::compact_blocking`] on a blocking thread.
    pub async fn compact(
        self: &Arc<Self>,
        app_group_id: i64,
        seal_active: bool,
    ) -> Result<CompactionReport, DataError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.compact_blocking(app_group_id, seal_active))
            .await
            .map_err(|error| DataError::Task(error.to_string()))?
    }

    fn compact_segment(&self, stream: &AppStream, segment: &SealedSegment) -> Result<(u64, usize), DataError> {
        let (frames, _) = read_segment_file(&segment.path, None, false, Decode::Records)?;
        let mut groups: BTreeMap<(DatasetKind, i64), Vec<StoredRecord>> = BTreeMap::new();
        let mut batch_keys = Vec::new();
        let mut last_sequence = segment.first_sequence.saturating_sub(1);
        let mut record_total = 0u64;
        for frame in frames {
            last_sequence = last_sequence.max(frame.last_sequence());
            if let Some(key) = &frame.batch_key {
                batch_keys.push((
                    key.clone(),
                    AppliedBatch {
                        first_sequence: frame.first_sequence,
                        record_count: frame.record_count as u64,
                        element_count: u64::from(frame.element_count),
                    },
                ));
            }
            for (offset, record) in frame.records.into_iter().enumerate() {
                let stored = StoredRecord {
                    sequence: frame.first_sequence + offset as u64,
                    received_ms: frame.received_ms,
                    record,
                };
                record_total += 1;
                groups.entry((frame.kind, partition_day(&stored))).or_default().push(stored);
            }
        }
        let mut new_files = Vec::new();
        for ((kind, day), mut records) in groups {
            if kind == DatasetKind::Documents {
                // Sorted runs let readers resolve the latest version of each document by merging.
                records.sort_by_cached_key(document_order);
            }
            let path = format!(
                "{}/kind={}/dt={}/part-{:020}.parquet",
                app_group_prefix(stream.app_group_id),
                kind.as_str(),
                crate::columnar::day_text(day),
                segment.first_sequence
            );
            let min_sequence = records.iter().map(|record| record.sequence).min().unwrap_or(0);
            let max_sequence = records.iter().map(|record| record.sequence).max().unwrap_or(0);
            let batches =
                records.chunks(64 * 1024).map(|chunk| records_to_batch(kind, chunk)).collect::<Result<Vec<_>, _>>()?;
            let bytes = write_parquet(kind, &batches)?;
            let size = bytes.len() as u64;
            let object_path = ObjectPath::from(path.as_str());
            self.runtime.block_on(self.objects.put(&object_path, Bytes::from(bytes).into()))?;
            new_files.push(DataFile {
                path,
                kind,
                day,
                rows: records.len() as u64,
                min_sequence,
                max_sequence,
                bytes: size,
            });
        }
        if *lock(&self.fault) == Some(CompactionFault::AfterFilesWritten) {
            return Err(DataError::InjectedFault("after the files were written"));
        }
        let files_written = new_files.len();
        let mut manifest = (**stream.manifest.read().unwrap_or_else(std::sync::PoisonError::into_inner)).clone();
        // A rerun after an interruption rewrote the same paths; list each file once.
        manifest.files.retain(|file| !new_files.iter().any(|new_file| new_file.path == file.path));
        manifest.files.extend(new_files);
        manifest.batch_keys.extend(batch_keys);
        manifest.compacted_through_sequence = manifest.compacted_through_sequence.max(last_sequence);
        let manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|error| DataError::Manifest(error.to_string()))?;
        self.runtime
            .block_on(self.objects.put(&manifest_path(stream.app_group_id), Bytes::from(manifest_bytes).into()))?;
        if *lock(&self.fault) == Some(CompactionFault::AfterManifestWritten) {
            *stream.manifest.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(manifest);
            return Err(DataError::InjectedFault("after the manifest was written"));
        }
        {
            let mut state = lock(&stream.state);
            *stream.manifest.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(manifest);
            state.sealed.retain(|sealed| sealed.first_sequence != segment.first_sequence);
            for (key, _) in state.live_batch_keys.clone() {
                let in_manifest = stream
                    .manifest
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .batch_keys
                    .contains_key(&key);
                if in_manifest {
                    state.live_batch_keys.remove(&key);
                }
            }
        }
        lock(&stream.doomed).push(segment.clone());
        stream.delete_unpinned_doomed_segments();
        Ok((record_total, files_written))
    }

    /// Removes everything an app group has stored: its log and its objects.
    pub fn remove_app_group_blocking(&self, app_group_id: i64) -> Result<(), DataError> {
        let stream = lock(&self.streams).remove(&app_group_id);
        if let Some(stream) = stream {
            // Wait for an append or compaction in progress to finish.
            let _compaction = lock(&stream.compaction);
            let _state = lock(&stream.state);
        }
        let directory = self.config.log_directory.join(format!("app-{app_group_id}"));
        if directory.exists() {
            std::fs::remove_dir_all(&directory).map_err(|error| DataError::io(&directory, error))?;
        }
        let prefix = ObjectPath::from(app_group_prefix(app_group_id));
        self.runtime.block_on(async {
            use futures_util::TryStreamExt as _;
            let locations: Vec<ObjectPath> =
                self.objects.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await?;
            for location in locations {
                match self.objects.delete(&location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
            Ok::<(), object_store::Error>(())
        })?;
        Ok(())
    }

    /// [`DatasetStore::remove_app_group_blocking`] on a blocking thread.
    pub async fn remove_app_group(self: &Arc<Self>, app_group_id: i64) -> Result<(), DataError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.remove_app_group_blocking(app_group_id))
            .await
            .map_err(|error| DataError::Task(error.to_string()))?
    }
}

/// The order of document versions: by document, then by version time, then by arrival.
pub(crate) fn document_order(stored: &StoredRecord) -> (String, String, i64, u64) {
    match &stored.record {
        IngestRecord::Document(document) => (
            document.table.clone(),
            document.primary_key.clone(),
            document.timestamp_ms.unwrap_or(stored.received_ms),
            stored.sequence,
        ),
        _ => (String::new(), String::new(), 0, stored.sequence),
    }
}

impl AppStream {
    fn delete_unpinned_doomed_segments(&self) {
        let pins = lock(&self.pins);
        let mut doomed = lock(&self.doomed);
        doomed.retain(|segment| {
            if pins.get(&segment.first_sequence).copied().unwrap_or(0) > 0 {
                return true;
            }
            match std::fs::remove_file(&segment.path) {
                Ok(()) => false,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
                Err(error) => {
                    tracing::warn!(path = %segment.path.display(), %error, "could not delete a compacted log segment; will retry");
                    true
                }
            }
        });
        let _ = sync_directory(&self.directory);
    }
}

/// A segment as a snapshot sees it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentSlice {
    pub first_sequence: u64,
    pub path: PathBuf,
    /// For the active segment: its length when the snapshot was taken.
    pub end_offset: Option<u64>,
}

/// Keeps the snapshot's segments from being deleted until it is dropped.
struct PinGuard {
    stream: Arc<AppStream>,
}

/// A consistent, pinned view of one app group's data. Records appended after it was taken are
/// not seen; compaction after it was taken does not disturb it.
pub struct Snapshot {
    pub app_group_id: i64,
    pub manifest: Arc<Manifest>,
    pub(crate) segments: Vec<SegmentSlice>,
    /// The highest sequence the snapshot includes.
    pub max_sequence: u64,
    pub(crate) objects: Arc<dyn ObjectStore>,
    pub(crate) runtime: tokio::runtime::Handle,
    pin: PinGuard,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Snapshot")
            .field("app_group_id", &self.app_group_id)
            .field("max_sequence", &self.max_sequence)
            .field("files", &self.manifest.files.len())
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        {
            let mut pins = lock(&self.pin.stream.pins);
            for segment in &self.segments {
                if let Some(count) = pins.get_mut(&segment.first_sequence) {
                    *count -= 1;
                    if *count == 0 {
                        pins.remove(&segment.first_sequence);
                    }
                }
            }
        }
        self.pin.stream.delete_unpinned_doomed_segments();
    }
}
