//! What every trainer shares: time windows, reading a snapshot batch by batch with progress and
//! cancellation, typed column access, stable and fast hashing, interned texts and a bounded key
//! sample.

use std::hash::{BuildHasher, Hash, Hasher as _};
use std::ops::RangeInclusive;
use std::rc::Rc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, BooleanArray, Int64Array, RecordBatch, StringArray};
use trainyard_data::Snapshot;
use trainyard_data::columnar::day_text;
use trainyard_data::reader::ScanOptions;
use trainyard_data::records::DatasetKind;

use crate::{TrainError, TrainingContext};

/// Seconds in a day.
pub(crate) const DAY_SECONDS: i64 = 86_400;

/// A half-open span of Unix seconds, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeRange {
    pub start: i64,
    pub end: i64,
}

impl TimeRange {
    /// The `days` days up to and including `now_seconds` (an event stamped exactly now counts).
    pub fn days_ending_at(now_seconds: i64, days: i64) -> TimeRange {
        TimeRange { start: now_seconds - days * DAY_SECONDS, end: now_seconds + 1 }
    }

    pub fn contains(&self, time: i64) -> bool {
        time >= self.start && time < self.end
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The partition days (`dt=`) that can hold events of this range.
    pub fn partition_days(&self) -> RangeInclusive<i64> {
        self.start.div_euclid(DAY_SECONDS)..=(self.end - 1).max(self.start).div_euclid(DAY_SECONDS)
    }

    /// The range as JSON for reports: Unix seconds (end exclusive) and UTC dates (end inclusive).
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "start": self.start,
            "end": self.end,
            "start_date": day_text(self.start.div_euclid(DAY_SECONDS)),
            "end_date": day_text((self.end - 1).max(self.start).div_euclid(DAY_SECONDS)),
        })
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time, for messages.
pub(crate) fn date_of(seconds: i64) -> String {
    day_text(seconds.div_euclid(DAY_SECONDS))
}

/// The hash map of in-memory tables (interned texts and ids, counts, samples).
///
/// Its keys are interned ids, 64-bit hashes or texts of the app group's own data, hashed by a
/// batch trainer: SipHash, the standard library's default, buys resistance to crafted collisions
/// (HashDoS) that is not worth its cost here, so these maps use foldhash, several times faster on
/// short keys. It is still seeded at random per map (`foldhash::fast::RandomState`), so end
/// users typing queries cannot aim collisions at it in advance, and nothing depends on its
/// iteration order (as with the standard `RandomState`).
pub(crate) type FastMap<K, V> = foldhash::HashMap<K, V>;

/// The hash set of in-memory tables (see [`FastMap`]).
pub(crate) type FastSet<T> = foldhash::HashSet<T>;

/// A 64-bit hash that stands for a value within one run (e.g. a user id, or a request and its
/// query): fast, of good quality (`foldhash::quality`), seeded at random per instance, so the
/// same value hashes the same only through the same `IdentityHasher`. A collision merges two
/// values: among n values its chance is about n² / 2⁶⁵, 3·10⁻⁸ for a million, 3 % for a billion.
/// Use [`stable_hash`] where the hash must be the same in every process (e.g. a sample by hash).
#[derive(Default, Clone)]
pub(crate) struct IdentityHasher(foldhash::quality::RandomState);

impl IdentityHasher {
    pub fn hash<T: Hash + ?Sized>(&self, value: &T) -> u64 {
        self.0.hash_one(value)
    }
}

/// A stable 64-bit hash of some texts (fixed keys: the same in every process). Each part is
/// followed by a separator byte so that ("ab", "c") and ("a", "bc") differ.
pub(crate) fn stable_hash(parts: &[&str]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for part in parts {
        hasher.write(part.as_bytes());
        hasher.write_u8(0xFF);
    }
    hasher.finish()
}

/// Progress of one phase of a trainer: rows read out of an estimated total, mapped onto the
/// percent range `from..to` of the whole task.
pub(crate) struct PhaseProgress<'a> {
    context: &'a TrainingContext,
    from_percent: u32,
    to_percent: u32,
    estimated_rows: u64,
    rows_read: u64,
}

impl<'a> PhaseProgress<'a> {
    pub fn new(context: &'a TrainingContext, from_percent: u32, to_percent: u32, estimated_rows: u64) -> Self {
        context.set_progress(from_percent);
        PhaseProgress { context, from_percent, to_percent, estimated_rows: estimated_rows.max(1), rows_read: 0 }
    }

    pub fn advance(&mut self, rows: u64) {
        self.rows_read += rows;
        // The estimate counts every record still in the log, of any kind, so the share read can
        // stay below 1; it never goes above, and the next phase starts at `to_percent` anyway.
        let share = (self.rows_read as f64 / self.estimated_rows as f64).min(1.0);
        let span = f64::from(self.to_percent - self.from_percent);
        self.context.set_progress(self.from_percent + (span * share) as u32);
    }
}

impl PhaseProgress<'_> {
    /// The phase is done: its share is reached whatever the estimate said.
    pub fn complete(&mut self) {
        self.context.set_progress(self.to_percent);
    }
}

/// An upper estimate of the rows a scan of `kind` over `days` reads: the rows of the listed
/// files in those days (the manifest counts them) plus every record still in the log (the
/// snapshot does not say which kind they are).
pub(crate) fn estimated_rows(snapshot: &Snapshot, kind: DatasetKind, days: &RangeInclusive<i64>) -> u64 {
    let in_files: u64 =
        snapshot.manifest.files_of(kind).filter(|file| days.contains(&file.day)).map(|file| file.rows).sum();
    let in_log = snapshot.max_sequence.saturating_sub(snapshot.manifest.compacted_through_sequence);
    in_files + in_log
}

/// Reads `kind` over `days` with only `columns`, calling `visit` on each batch. Cancellation is
/// checked before every batch, so a cancelled task stops within one batch; progress moves after
/// every batch. Returns the number of rows read.
pub(crate) fn for_each_batch(
    snapshot: &Snapshot,
    kind: DatasetKind,
    days: RangeInclusive<i64>,
    columns: &[&str],
    context: &TrainingContext,
    progress: &mut PhaseProgress<'_>,
    mut visit: impl FnMut(&RecordBatch) -> Result<(), TrainError>,
) -> Result<u64, TrainError> {
    context.check_cancelled()?;
    let mut column_names: Vec<String> = columns.iter().map(|name| name.to_string()).collect();
    column_names.sort_unstable();
    column_names.dedup();
    let options = ScanOptions { days: Some(days), columns: Some(column_names) };
    let mut rows_read = 0u64;
    for scanned in snapshot.scan(kind, options)? {
        context.check_cancelled()?;
        let batch = scanned?;
        visit(&batch)?;
        rows_read += batch.num_rows() as u64;
        progress.advance(batch.num_rows() as u64);
    }
    progress.complete();
    Ok(rows_read)
}

fn missing_column(name: &str) -> TrainError {
    TrainError::Internal(format!("the scan did not return the column {name}"))
}

/// The text column `name` of a batch.
pub(crate) fn text_column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b StringArray, TrainError> {
    let column = batch.column_by_name(name).ok_or_else(|| missing_column(name))?;
    column.as_string_opt::<i32>().ok_or_else(|| TrainError::Internal(format!("the column {name} is not text")))
}

/// The integer column `name` of a batch.
pub(crate) fn integer_column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b Int64Array, TrainError> {
    let column = batch.column_by_name(name).ok_or_else(|| missing_column(name))?;
    column
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| TrainError::Internal(format!("the column {name} is not an integer")))
}

/// The boolean column `name` of a batch.
pub(crate) fn boolean_column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b BooleanArray, TrainError> {
    let column = batch.column_by_name(name).ok_or_else(|| missing_column(name))?;
    column.as_boolean_opt().ok_or_else(|| TrainError::Internal(format!("the column {name} is not boolean")))
}

/// The value of a nullable text column at `row`; an empty text counts as absent.
pub(crate) fn optional_text(array: &StringArray, row: usize) -> Option<&str> {
    if array.is_null(row) {
        return None;
    }
    Some(array.value(row)).filter(|text| !text.is_empty())
}

/// A uniform sample of keys with bounded memory, for joins whose exact form would need memory
/// in proportion to events (an exposure and its click, a search and the clicks it led to).
///
/// A key is kept when the low `level` bits of its hash are zero, so both sides of a join keep or
/// drop the same keys. When the map outgrows `capacity`, `level` goes up by one and the keys
/// that no longer qualify are dropped: the sample rate halves and memory stays under the cap.
pub(crate) struct KeySample<V> {
    entries: FastMap<u64, V>,
    capacity: usize,
    level: u32,
}

impl<V> KeySample<V> {
    pub fn new(capacity: usize) -> Self {
        KeySample { entries: FastMap::default(), capacity: capacity.max(1), level: 0 }
    }

    fn qualifies(level: u32, key: u64) -> bool {
        level == 0 || key.trailing_zeros() >= level
    }

    /// The share of keys the sample keeps (1 = all).
    pub fn rate(&self) -> f64 {
        0.5f64.powi(self.level as i32)
    }

    /// The entry of `key`, created with `make` if it is new and sampled; `None` when the key is
    /// outside the sample.
    pub fn entry(&mut self, key: u64, make: impl FnOnce() -> V) -> Option<&mut V> {
        if !Self::qualifies(self.level, key) {
            return None;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.level += 1;
            let level = self.level;
            self.entries.retain(|kept, _| Self::qualifies(level, *kept));
            if !Self::qualifies(level, key) {
                return None;
            }
        }
        Some(self.entries.entry(key).or_insert_with(make))
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        self.entries.get(&key)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Texts (queries, item ids) interned: each is stored once and known by its index. A lookup
/// hashes the text once (foldhash, see [`FastMap`]) and compares it with the key in the map's
/// slot, in place for the short texts most queries and ids are (no pointer to follow, so no
/// cache miss on a text stored elsewhere).
#[derive(Default)]
pub(crate) struct TextTable {
    index: FastMap<TextKey, u32>,
    texts: Vec<Rc<str>>,
}

impl TextTable {
    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(index) = self.index.get(text.as_bytes()) {
            return *index;
        }
        let shared: Rc<str> = Rc::from(text);
        let index = self.texts.len() as u32;
        self.index.insert(TextKey::new(&shared), index);
        self.texts.push(shared);
        index
    }

    pub fn text(&self, index: u32) -> &str {
        &self.texts[index as usize]
    }

    pub fn find(&self, text: &str) -> Option<u32> {
        self.index.get(text.as_bytes()).copied()
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }
}

/// Bytes of a text a [`TextKey`] keeps in place.
const INLINE_TEXT_BYTES: usize = 22;

/// A [`TextTable`]'s map key: the bytes of a text up to [`INLINE_TEXT_BYTES`] in place, a
/// longer text shared with the table's list. 24 bytes either way. It hashes and compares as the
/// text's bytes, so the map is looked up with a `&[u8]`.
#[derive(Debug, Clone)]
enum TextKey {
    Inline { length: u8, bytes: [u8; INLINE_TEXT_BYTES] },
    Shared(Rc<str>),
}

impl TextKey {
    fn new(text: &Rc<str>) -> TextKey {
        let length = text.len();
        if length > INLINE_TEXT_BYTES {
            return TextKey::Shared(text.clone());
        }
        let mut bytes = [0; INLINE_TEXT_BYTES];
        bytes[..length].copy_from_slice(text.as_bytes());
        TextKey::Inline { length: length as u8, bytes }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            TextKey::Inline { length, bytes } => &bytes[..usize::from(*length)],
            TextKey::Shared(text) => text.as_bytes(),
        }
    }
}

impl std::borrow::Borrow<[u8]> for TextKey {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

// As `[u8]`'s, which `Borrow` requires.
impl Hash for TextKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes().hash(state);
    }
}

impl PartialEq for TextKey {
    fn eq(&self, other: &TextKey) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for TextKey {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Fixture, search};

    #[test]
    fn the_text_table_interns_short_and_long_texts_once() {
        assert_eq!(std::mem::size_of::<TextKey>(), 24);
        let mut table = TextTable::default();
        let long = "a query longer than twenty-two bytes";
        let texts = ["", "red shoes", "连衣裙 夏季", long, "exactly twenty-two by.", "exactly twenty-three b."];
        let indices: Vec<u32> = texts.iter().map(|text| table.intern(text)).collect();
        assert_eq!(indices, [0, 1, 2, 3, 4, 5]);
        for (text, index) in texts.iter().zip(&indices) {
            assert_eq!(table.intern(text), *index);
            assert_eq!(table.find(text), Some(*index));
            assert_eq!(table.text(*index), *text);
        }
        assert_eq!(table.find("red shoe"), None);
        assert_eq!(table.find(&long[..INLINE_TEXT_BYTES]), None);
        assert_eq!(table.len(), texts.len());
    }

    #[test]
    fn time_ranges_are_half_open_and_find_their_partitions() {
        let range = TimeRange::days_ending_at(10 * DAY_SECONDS + 5, 2);
        assert!(range.contains(8 * DAY_SECONDS + 5) && range.contains(10 * DAY_SECONDS + 5));
        assert!(!range.contains(8 * DAY_SECONDS + 4) && !range.contains(10 * DAY_SECONDS + 6));
        assert_eq!(range.partition_days(), 8..=10);
        assert!(TimeRange { start: 5, end: 5 }.is_empty());
    }

    #[test]
    fn the_key_sample_stays_under_its_cap_and_keeps_both_sides_of_a_key() {
        let mut sample: KeySample<u32> = KeySample::new(1000);
        let keys: Vec<u64> = (0..10_000u32).map(|index| stable_hash(&[&index.to_string()])).collect();
        for key in &keys {
            if let Some(count) = sample.entry(*key, || 0) {
                *count += 1;
            }
        }
        assert!(sample.len() <= 1000, "{}", sample.len());
        assert!(sample.rate() < 1.0 && sample.rate() >= 1.0 / 32.0, "{}", sample.rate());
        // The second side of the join: every key still qualifying is found, with its first count.
        let mut found = 0;
        for key in &keys {
            if let Some(count) = sample.entry(*key, || 0) {
                assert_eq!(*count, 1, "a kept key was seen once before");
                *count += 1;
                found += 1;
            }
        }
        assert_eq!(found, sample.len());
        let expected = keys.len() as f64 * sample.rate();
        assert!((sample.len() as f64 - expected).abs() < expected * 0.25, "{} vs {expected}", sample.len());
    }

    #[test]
    fn cancellation_is_checked_before_every_batch_and_progress_rises_with_each() {
        let fixture = Fixture::new();
        // Three batches of at most 8192 rows, from one Parquet file.
        let searches: Vec<_> = (0..20_000).map(|index| search(&format!("q{}", index % 50), fixture.now)).collect();
        fixture.append_query_log(&searches);
        fixture.compact();
        let snapshot = fixture.snapshot();
        let context = TrainingContext::new();
        let days = TimeRange::days_ending_at(fixture.now, 1).partition_days();
        let total = estimated_rows(&snapshot, DatasetKind::QueryLog, &days);
        assert_eq!(total, 20_000, "the manifest counts the rows of the files");

        let mut progress = PhaseProgress::new(&context, 10, 90, total);
        let mut seen_progress = Vec::new();
        let rows =
            for_each_batch(&snapshot, DatasetKind::QueryLog, days.clone(), &["query"], &context, &mut progress, |_| {
                seen_progress.push(context.progress());
                Ok(())
            })
            .unwrap();
        assert_eq!(rows, 20_000);
        assert_eq!(seen_progress.len(), 3, "three batches");
        assert_eq!(seen_progress[0], 10, "the first batch is visited before it counts");
        assert!(seen_progress.windows(2).all(|pair| pair[1] > pair[0]), "{seen_progress:?}");
        assert_eq!(context.progress(), 90);

        let cancelling = TrainingContext::new();
        let mut cancelling_progress = PhaseProgress::new(&cancelling, 0, 100, total);
        let mut visited = 0;
        let outcome = for_each_batch(
            &snapshot,
            DatasetKind::QueryLog,
            days,
            &["query"],
            &cancelling,
            &mut cancelling_progress,
            |_| {
                visited += 1;
                if visited == 1 {
                    cancelling.cancel();
                }
                Ok(())
            },
        );
        assert!(matches!(outcome, Err(TrainError::Cancelled)), "{:?}", outcome.err());
        assert_eq!(visited, 1, "no batch is read after the one during which the task was cancelled");
    }
}
