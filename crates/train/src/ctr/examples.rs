//! From behavior events to a time-ordered stream of labelled examples, with bounded memory.
//!
//! 1. **Spill** (one scan of the window): each `expose` or label event (`label_behavior_types`)
//!    becomes a 24-byte record (time, a 64-bit hash of (`rn`, `item_id`), interned user, item
//!    and business, whether it is a label) appended to its UTC day's buffer; a full buffer
//!    (64 KiB) goes to a temporary file as a chunk of that day. The snapshot's Parquet files are
//!    partitioned by day but not sorted within one, and the log holds any day: the chunks
//!    gather each day's events wherever they came from. Memory: one buffer per day with events
//!    plus the interned ids.
//! 2. **Join**, day by day in time order, one day's events in memory (sorted by time, then
//!    exposures first, then by the join key). An impression is a distinct (`rn`, `item_id`)
//!    exposure (a second exposure of the same pair is the same impression, counted as a
//!    duplicate). A label event joins the impression with its (`rn`, `item_id`) of its own UTC
//!    day or the day before (the attribution horizon: a click a day after its exposure still
//!    counts, one two days later does not); the example is then positive. A label event
//!    without an impression is an example of its own: a positive, exposed at the label's time
//!    (the item was shown, or it could not have been clicked). Further label events of a
//!    labelled pair are duplicates. The user is `user_id`, else `imei`, of the exposure (of the
//!    label event for a label without exposure).
//! 3. **Split.** Each example is a training or a holdout example, decided when it is made:
//!    by time (its time at or after the split time: the holdout is the last part of the time
//!    range) or at random (a seeded hash of its (`rn`, `item_id`) key, so a rerun makes the
//!    same choice, and VW gets the same split).
//! 4. **Prior counts without leakage.** Each item's counts move in time order: an impression
//!    counts as an exposure at its time, its click as a click at the click's time (never
//!    before the exposure). An example records the counts its item had **strictly before** its
//!    time: updates of one second are applied after every example of that second has read the
//!    counts, so an example never sees its own outcome, nor a later one. **Only training
//!    examples move these counts**: a holdout outcome never reaches any example's prior (with
//!    a time split the holdout thus reads the counts as they were at the split). Each user's
//!    counts (its exposures and clicks over every item) move by the same rules. A second
//!    tally over every example (`final_counts`) is what the served model ships: serving may
//!    know everything.
//! 5. **Examples files**: each example, once its label is final (the next day has been
//!    joined), is written in time order as a 32-byte record to the training or the holdout
//!    temporary file, which the learners stream through (the training file once per epoch).
//!    The files are deleted when dropped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use trainyard_data::records::DatasetKind;

use super::features::{History, PriorCounts};
use crate::common::{
    DAY_SECONDS, FastMap, PhaseProgress, TextTable, TimeRange, estimated_rows, for_each_batch, integer_column,
    optional_text, text_column,
};
use crate::{TrainError, TrainingContext, TrainingInput};

/// The behavior type of an impression.
pub(crate) const EXPOSE: &str = "expose";
/// Bytes of a spilled event.
const RECORD_BYTES: usize = 24;
/// Bytes of an example.
const EXAMPLE_BYTES: usize = 32;
/// Bytes a day's spill buffer holds before it is written as a chunk.
const CHUNK_BYTES: usize = 64 * 1024;
/// The label flag, in the top bit of the business index.
const LABEL_BIT: u32 = 1 << 31;

fn io_error(doing: &str) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |error| TrainError::Internal(format!("{doing}: {error}"))
}

/// A behavior event as the join sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawEvent {
    pub time: i64,
    /// Hash of (`rn`, `item_id`): the join key.
    pub key: u64,
    pub user: u32,
    pub item: u32,
    pub biz: u32,
    pub label: bool,
}

impl RawEvent {
    fn encode(&self, base: i64, out: &mut Vec<u8>) {
        out.extend_from_slice(&((self.time - base) as u32).to_le_bytes());
        out.extend_from_slice(&self.key.to_le_bytes());
        out.extend_from_slice(&self.user.to_le_bytes());
        out.extend_from_slice(&self.item.to_le_bytes());
        out.extend_from_slice(&(self.biz | if self.label { LABEL_BIT } else { 0 }).to_le_bytes());
    }

    fn decode(base: i64, bytes: &[u8]) -> RawEvent {
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let biz = word(20);
        RawEvent {
            time: base + i64::from(word(0)),
            key: u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes")),
            user: word(12),
            item: word(16),
            biz: biz & !LABEL_BIT,
            label: biz & LABEL_BIT != 0,
        }
    }
}

/// A labelled example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Example {
    pub time: i64,
    pub user: u32,
    pub item: u32,
    pub biz: u32,
    pub label: bool,
    /// The item's and the user's counts strictly before `time`.
    pub history: History,
}

impl Example {
    fn encode(&self, base: i64, out: &mut [u8]) {
        out[0..4].copy_from_slice(&((self.time - base) as u32).to_le_bytes());
        out[4..8].copy_from_slice(&self.user.to_le_bytes());
        out[8..12].copy_from_slice(&self.item.to_le_bytes());
        out[12..16].copy_from_slice(&(self.biz | if self.label { LABEL_BIT } else { 0 }).to_le_bytes());
        out[16..20].copy_from_slice(&self.history.item.clicks.to_le_bytes());
        out[20..24].copy_from_slice(&self.history.item.exposures.to_le_bytes());
        out[24..28].copy_from_slice(&self.history.user.clicks.to_le_bytes());
        out[28..32].copy_from_slice(&self.history.user.exposures.to_le_bytes());
    }

    fn decode(base: i64, bytes: &[u8]) -> Example {
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let biz = word(12);
        Example {
            time: base + i64::from(word(0)),
            user: word(4),
            item: word(8),
            biz: biz & !LABEL_BIT,
            label: biz & LABEL_BIT != 0,
            history: History {
                item: PriorCounts { clicks: word(16), exposures: word(20) },
                user: PriorCounts { clicks: word(24), exposures: word(28) },
            },
        }
    }
}

/// Events of each day, in chunks of a temporary file.
pub(crate) struct DaySpill {
    file: File,
    base: i64,
    end: u64,
    buffers: BTreeMap<i64, Vec<u8>>,
    chunks: BTreeMap<i64, Vec<(u64, usize)>>,
}

impl DaySpill {
    pub fn new(base: i64) -> Result<DaySpill, TrainError> {
        let file = tempfile::tempfile().map_err(io_error("creating the temporary file of the events"))?;
        Ok(DaySpill { file, base, end: 0, buffers: BTreeMap::new(), chunks: BTreeMap::new() })
    }

    pub fn push(&mut self, event: &RawEvent) -> Result<(), TrainError> {
        let day = event.time.div_euclid(DAY_SECONDS);
        let buffer = self.buffers.entry(day).or_insert_with(|| Vec::with_capacity(CHUNK_BYTES));
        event.encode(self.base, buffer);
        if buffer.len() + RECORD_BYTES > CHUNK_BYTES {
            let full = std::mem::replace(buffer, Vec::with_capacity(CHUNK_BYTES));
            self.write_chunk(day, &full)?;
        }
        Ok(())
    }

    fn write_chunk(&mut self, day: i64, bytes: &[u8]) -> Result<(), TrainError> {
        let doing = "writing the temporary file of the events";
        self.file.seek(SeekFrom::Start(self.end)).map_err(io_error(doing))?;
        self.file.write_all(bytes).map_err(io_error(doing))?;
        self.chunks.entry(day).or_default().push((self.end, bytes.len()));
        self.end += bytes.len() as u64;
        Ok(())
    }

    /// The days with events, increasing.
    pub fn days(&self) -> Vec<i64> {
        let mut days: Vec<i64> = self.chunks.keys().chain(self.buffers.keys()).copied().collect();
        days.sort_unstable();
        days.dedup();
        days
    }

    /// Every event of `day` (in no particular order), into `out` (cleared first).
    pub fn read_day(&mut self, day: i64, out: &mut Vec<RawEvent>) -> Result<(), TrainError> {
        out.clear();
        let doing = "reading the temporary file of the events";
        let mut bytes = Vec::new();
        for &(offset, length) in self.chunks.get(&day).map(Vec::as_slice).unwrap_or(&[]) {
            bytes.resize(length, 0);
            self.file.seek(SeekFrom::Start(offset)).map_err(io_error(doing))?;
            self.file.read_exact(&mut bytes).map_err(io_error(doing))?;
            out.extend(bytes.chunks_exact(RECORD_BYTES).map(|record| RawEvent::decode(self.base, record)));
        }
        if let Some(buffer) = self.buffers.get(&day) {
            out.extend(buffer.chunks_exact(RECORD_BYTES).map(|record| RawEvent::decode(self.base, record)));
        }
        Ok(())
    }
}

/// How examples are split between training and holdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// Examples at or after this time (Unix seconds) are held out.
    Time { split_time: i64 },
    /// Each example is held out with probability `per_ten_thousand / 10000`, by a hash of its
    /// join key and the seed.
    Random { seed: u64, per_ten_thousand: u64 },
}

impl Split {
    fn is_holdout(&self, time: i64, key: u64) -> bool {
        match *self {
            Split::Time { split_time } => time >= split_time,
            Split::Random { seed, per_ten_thousand } => {
                super::features::mix64(key ^ super::features::mix64(seed)) % 10_000 < per_ten_thousand
            }
        }
    }
}

/// The examples, in time order, in a temporary file.
pub(crate) struct ExampleFile {
    file: tempfile::NamedTempFile,
    base: i64,
    count: u64,
}

impl ExampleFile {
    pub fn count(&self) -> u64 {
        self.count
    }

    /// A reader with a cursor of its own (one per learner thread).
    pub fn reader(&self) -> Result<ExampleReader, TrainError> {
        let file = self.file.reopen().map_err(io_error("opening the temporary file of the examples"))?;
        Ok(ExampleReader { file, base: self.base, bytes: Vec::new() })
    }
}

pub(crate) struct ExampleReader {
    file: File,
    base: i64,
    bytes: Vec<u8>,
}

impl ExampleReader {
    /// Examples `first..first + count` into `out` (cleared first).
    pub fn read(&mut self, first: u64, count: usize, out: &mut Vec<Example>) -> Result<(), TrainError> {
        let doing = "reading the temporary file of the examples";
        self.bytes.resize(count * EXAMPLE_BYTES, 0);
        self.file.seek(SeekFrom::Start(first * EXAMPLE_BYTES as u64)).map_err(io_error(doing))?;
        self.file.read_exact(&mut self.bytes).map_err(io_error(doing))?;
        out.clear();
        out.extend(self.bytes.chunks_exact(EXAMPLE_BYTES).map(|record| Example::decode(self.base, record)));
        Ok(())
    }
}

/// What the behavior scan found.
#[derive(Debug, Default)]
pub(crate) struct BehaviorSurvey {
    pub rows_read: u64,
    pub events_in_window: u64,
    pub by_type: BTreeMap<String, u64>,
    pub exposures: u64,
    pub labels: u64,
    pub first_used: Option<i64>,
    pub last_used: Option<i64>,
}

/// The spilled events and the interned ids.
pub(crate) struct Spilled {
    pub spill: DaySpill,
    pub survey: BehaviorSurvey,
    pub users: TextTable,
    pub items: TextTable,
    pub businesses: TextTable,
}

/// The join key of (`rn`, `item_id`): fixed keys, so runs are reproducible.
fn join_key(rn: &str, item_id: &str) -> u64 {
    use super::features::{FieldTag, hash_pair, hash_text};
    hash_pair(
        FieldTag::ItemId,
        hash_text(FieldTag::UserId, rn.as_bytes()),
        hash_text(FieldTag::ItemId, item_id.as_bytes()),
    )
}

/// Reads the window's behavior, keeping exposures and label events, into a day spill.
pub(crate) fn spill_behavior(
    input: &TrainingInput<'_>,
    context: &TrainingContext,
    window: TimeRange,
    label_types: &[String],
    progress_range: (u32, u32),
) -> Result<Spilled, TrainError> {
    let days = window.partition_days();
    let estimated = estimated_rows(input.snapshot, DatasetKind::Behavior, &days);
    let mut progress = PhaseProgress::new(context, progress_range.0, progress_range.1, estimated);
    let mut spilled = Spilled {
        spill: DaySpill::new(window.start)?,
        survey: BehaviorSurvey::default(),
        users: TextTable::default(),
        items: TextTable::default(),
        businesses: TextTable::default(),
    };
    let columns = ["rn", "item_id", "bhv_type", "bhv_time", "user_id", "imei", "biz_id"];
    let Spilled { spill, survey, users, items, businesses } = &mut spilled;
    survey.rows_read =
        for_each_batch(input.snapshot, DatasetKind::Behavior, days, &columns, context, &mut progress, |batch| {
            let request_ids = text_column(batch, "rn")?;
            let item_ids = text_column(batch, "item_id")?;
            let types = text_column(batch, "bhv_type")?;
            let times = integer_column(batch, "bhv_time")?;
            let user_ids = text_column(batch, "user_id")?;
            let devices = text_column(batch, "imei")?;
            let biz_ids = text_column(batch, "biz_id")?;
            for row in 0..batch.num_rows() {
                let time = times.value(row);
                if !window.contains(time) {
                    continue;
                }
                survey.events_in_window += 1;
                let behavior_type = types.value(row);
                match survey.by_type.get_mut(behavior_type) {
                    Some(count) => *count += 1,
                    None => {
                        survey.by_type.insert(behavior_type.to_string(), 1);
                    }
                }
                let label = label_types.iter().any(|wanted| wanted == behavior_type);
                if !label && behavior_type != EXPOSE {
                    continue;
                }
                if label {
                    survey.labels += 1;
                } else {
                    survey.exposures += 1;
                }
                survey.first_used = Some(survey.first_used.map_or(time, |first| first.min(time)));
                survey.last_used = Some(survey.last_used.map_or(time, |last| last.max(time)));
                let item_id = item_ids.value(row);
                let user = optional_text(user_ids, row).or_else(|| optional_text(devices, row)).unwrap_or("");
                let event = RawEvent {
                    time,
                    key: join_key(request_ids.value(row), item_id),
                    user: users.intern(user),
                    item: items.intern(item_id),
                    biz: businesses.intern(biz_ids.value(row)),
                    label,
                };
                spill.push(&event)?;
            }
            Ok(())
        })?;
    Ok(spilled)
}

/// Counts of the join, for the data report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct JoinReport {
    /// Distinct (rn, item) exposures.
    pub impressions: u64,
    pub duplicate_exposures: u64,
    /// Label events joined to an impression.
    pub labels_joined: u64,
    /// Label events with no impression: examples of their own.
    pub labels_without_exposure: u64,
    pub duplicate_labels: u64,
    pub examples: u64,
    pub positives: u64,
    pub training_examples: u64,
    pub training_positives: u64,
}

/// Writes examples to a temporary file.
struct ExampleWriter {
    writer: BufWriter<tempfile::NamedTempFile>,
    count: u64,
}

impl ExampleWriter {
    fn new() -> Result<ExampleWriter, TrainError> {
        let file = tempfile::NamedTempFile::new().map_err(io_error("creating the temporary file of the examples"))?;
        Ok(ExampleWriter { writer: BufWriter::with_capacity(256 * 1024, file), count: 0 })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), TrainError> {
        self.writer.write_all(bytes).map_err(io_error("writing the temporary file of the examples"))?;
        self.count += 1;
        Ok(())
    }

    fn finish(self, base: i64) -> Result<ExampleFile, TrainError> {
        let file = self
            .writer
            .into_inner()
            .map_err(|error| io_error("writing the temporary file of the examples")(error.into_error()))?;
        Ok(ExampleFile { file, base, count: self.count })
    }
}

/// The joined examples.
pub(crate) struct Joined {
    pub training: ExampleFile,
    pub holdout: ExampleFile,
    /// Each item's counts over the training examples (what the baseline and the prior fit
    /// see).
    pub training_counts: Vec<PriorCounts>,
    /// Each item's counts over every example (what the served model ships).
    pub final_counts: Vec<PriorCounts>,
    /// Each user's counts, the same two ways.
    pub training_user_counts: Vec<PriorCounts>,
    pub final_user_counts: Vec<PriorCounts>,
    pub report: JoinReport,
}

/// An example waiting for its label to be final.
#[derive(Debug, Clone, Copy)]
struct Pending {
    key: u64,
    /// A label event with no impression: it counts as an exposure and a click at its time.
    without_exposure: bool,
    /// Held out: its outcome does not move the training counts.
    holdout: bool,
    example: Example,
}

impl Pending {
    /// The example an event starts: an impression (unlabelled until a click joins it), or a
    /// label event without one (`without_exposure`: positive at once).
    fn of_event(event: &RawEvent, split: &Split, without_exposure: bool) -> Pending {
        Pending {
            key: event.key,
            without_exposure,
            holdout: split.is_holdout(event.time, event.key),
            example: Example {
                time: event.time,
                user: event.user,
                item: event.item,
                biz: event.biz,
                label: without_exposure,
                history: History::default(),
            },
        }
    }
}

/// A change of an item's counts at a time, or an example reading them.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// Pending example `index` of the current day reads its item's counts, then counts as an
    /// exposure (and as a click when it is a label without exposure).
    Example { index: usize },
    /// A click of an impression of `item` by `user` (of a holdout example or not).
    Click { item: u32, user: u32, holdout: bool },
}

struct Joiner {
    base: i64,
    split: Split,
    training: ExampleWriter,
    holdout: ExampleWriter,
    /// Item counts over training examples: what every example's prior reads.
    counts: Vec<PriorCounts>,
    /// Item counts over every example: the served model's.
    all_counts: Vec<PriorCounts>,
    /// User counts, the same two ways.
    user_counts: Vec<PriorCounts>,
    all_user_counts: Vec<PriorCounts>,
    report: JoinReport,
    encoded: [u8; EXAMPLE_BYTES],
    /// The previous day's examples and their keys (their labels can still come).
    yesterday: Vec<Pending>,
    yesterday_keys: FastMap<u64, usize>,
    yesterday_day: Option<i64>,
}

impl Joiner {
    fn item_counts(counts: &mut Vec<PriorCounts>, item: u32) -> &mut PriorCounts {
        let index = item as usize;
        if counts.len() <= index {
            counts.resize(index + 1, PriorCounts::default());
        }
        &mut counts[index]
    }

    /// Counts an exposure (and a click) of `item`: in every tally, and in the training one
    /// unless it is a holdout outcome.
    fn count(&mut self, item: u32, user: u32, exposures: u32, clicks: u32, holdout: bool) {
        Self::add(&mut self.all_counts, item, exposures, clicks);
        Self::add(&mut self.all_user_counts, user, exposures, clicks);
        if !holdout {
            Self::add(&mut self.counts, item, exposures, clicks);
            Self::add(&mut self.user_counts, user, exposures, clicks);
        }
    }

    fn add(tally: &mut Vec<PriorCounts>, item: u32, exposures: u32, clicks: u32) {
        let counts = Self::item_counts(tally, item);
        counts.exposures = counts.exposures.saturating_add(exposures);
        counts.clicks = counts.clicks.saturating_add(clicks);
    }

    fn write(&mut self, pending: &Pending) -> Result<(), TrainError> {
        let example = &pending.example;
        example.encode(self.base, &mut self.encoded);
        self.report.examples += 1;
        self.report.positives += u64::from(example.label);
        if pending.holdout {
            self.holdout.write(&self.encoded)
        } else {
            self.report.training_examples += 1;
            self.report.training_positives += u64::from(example.label);
            self.training.write(&self.encoded)
        }
    }

    /// Writes the previous day's examples: their labels are final.
    fn flush_yesterday(&mut self) -> Result<(), TrainError> {
        let mut finished = std::mem::take(&mut self.yesterday);
        finished.sort_by_key(|pending| (pending.example.time, pending.key, pending.example.user, pending.example.item));
        for pending in &finished {
            self.write(pending)?;
        }
        self.yesterday_keys.clear();
        self.yesterday_day = None;
        Ok(())
    }

    fn join_day(&mut self, day: i64, events: &mut [RawEvent]) -> Result<(), TrainError> {
        if self.yesterday_day.is_some_and(|yesterday| yesterday != day - 1) {
            self.flush_yesterday()?;
        }
        events.sort_unstable_by_key(|event| (event.time, event.label, event.key, event.user, event.item, event.biz));
        let mut today: Vec<Pending> = Vec::new();
        let mut today_keys: FastMap<u64, usize> = FastMap::default();
        for event in events.iter().filter(|event| !event.label) {
            if today_keys.contains_key(&event.key) || self.yesterday_keys.contains_key(&event.key) {
                self.report.duplicate_exposures += 1;
                continue;
            }
            today_keys.insert(event.key, today.len());
            today.push(Pending::of_event(event, &self.split, false));
            self.report.impressions += 1;
        }
        let mut moments: Vec<(i64, Moment)> =
            (0..today.len()).map(|index| (today[index].example.time, Moment::Example { index })).collect();
        for event in events.iter().filter(|event| event.label) {
            let found = match today_keys.get(&event.key) {
                Some(&index) => Some(&mut today[index]),
                None => self.yesterday_keys.get(&event.key).map(|&index| &mut self.yesterday[index]),
            };
            match found {
                Some(pending) if pending.example.label => self.report.duplicate_labels += 1,
                Some(pending) => {
                    pending.example.label = true;
                    self.report.labels_joined += 1;
                    // A click counts at its own time, never before its exposure.
                    let click = Moment::Click {
                        item: pending.example.item,
                        user: pending.example.user,
                        holdout: pending.holdout,
                    };
                    moments.push((event.time.max(pending.example.time), click));
                }
                None => {
                    today_keys.insert(event.key, today.len());
                    moments.push((event.time, Moment::Example { index: today.len() }));
                    today.push(Pending::of_event(event, &self.split, true));
                    self.report.labels_without_exposure += 1;
                }
            }
        }
        // Every example of a second reads the counts before any change of that second.
        moments.sort_by_key(|(time, moment)| (*time, matches!(moment, Moment::Click { .. })));
        let mut start = 0;
        while start < moments.len() {
            let time = moments[start].0;
            let end = start + moments[start..].iter().take_while(|(moment_time, _)| *moment_time == time).count();
            for (_, moment) in &moments[start..end] {
                if let Moment::Example { index } = moment {
                    let (item, user) = (today[*index].example.item, today[*index].example.user);
                    today[*index].example.history = History {
                        item: *Self::item_counts(&mut self.counts, item),
                        user: *Self::item_counts(&mut self.user_counts, user),
                    };
                }
            }
            for (_, moment) in &moments[start..end] {
                match *moment {
                    Moment::Example { index } => {
                        // An impression's click is a moment of its own; a label without
                        // exposure is clicked at its own time.
                        let pending = today[index];
                        let clicks = u32::from(pending.without_exposure);
                        self.count(pending.example.item, pending.example.user, 1, clicks, pending.holdout);
                    }
                    Moment::Click { item, user, holdout } => self.count(item, user, 0, 1, holdout),
                }
            }
            start = end;
        }
        self.flush_yesterday()?;
        self.yesterday = today;
        self.yesterday_keys = today_keys;
        self.yesterday_day = Some(day);
        Ok(())
    }
}

/// Joins the spilled events into examples (see the module documentation).
pub(crate) fn join(
    spilled: &mut Spilled,
    split: Split,
    context: &TrainingContext,
    progress: &mut PhaseProgress<'_>,
) -> Result<Joined, TrainError> {
    let mut joiner = Joiner {
        base: spilled.spill.base,
        split,
        training: ExampleWriter::new()?,
        holdout: ExampleWriter::new()?,
        counts: vec![PriorCounts::default(); spilled.items.len()],
        all_counts: vec![PriorCounts::default(); spilled.items.len()],
        user_counts: vec![PriorCounts::default(); spilled.users.len()],
        all_user_counts: vec![PriorCounts::default(); spilled.users.len()],
        report: JoinReport::default(),
        encoded: [0; EXAMPLE_BYTES],
        yesterday: Vec::new(),
        yesterday_keys: FastMap::default(),
        yesterday_day: None,
    };
    let mut events = Vec::new();
    for day in spilled.spill.days() {
        context.check_cancelled()?;
        spilled.spill.read_day(day, &mut events)?;
        joiner.join_day(day, &mut events)?;
        progress.advance(events.len() as u64);
    }
    joiner.flush_yesterday()?;
    progress.complete();
    let Joiner { base, training, holdout, counts, all_counts, user_counts, all_user_counts, report, .. } = joiner;
    Ok(Joined {
        training: training.finish(base)?,
        holdout: holdout.finish(base)?,
        training_counts: counts,
        final_counts: all_counts,
        training_user_counts: user_counts,
        final_user_counts: all_user_counts,
        report,
    })
}
