//! Counting typed searches over time windows: what hot and hint both learn from.
//!
//! # What counts
//! A query-log entry counts when it is `raw_query` (the user typed it), returned results
//! (`hits > 0`), is not empty once normalised, passes the instance's `filter` (fields
//! `user_id`, `biz_id`, `hits`, `query`; `query` is tested in its normalised form, the text the
//! model shows) and falls in the window (`timestamp`, Unix seconds).
//!
//! # Normalisation
//! `trainyard_core::text::normalize_query`, the one serving matches allow and deny lists with:
//! full-width forms (U+FF01–U+FF5E, and the ideographic space U+3000) become their half-width
//! ASCII forms, ASCII letters become lower case, runs of whitespace become one space, and the
//! ends are trimmed: `"  Ｒｅｄ   SHOES "` is `"red shoes"`. Other scripts are left as they are.
//! A query that is already in that form (most are) is used as read, without a copy.
//!
//! # Sessions
//! A query is counted once per session of its visitor (`pv`), and `uv` counts its distinct
//! visitors; both per window, as if each window's searches were counted on their own:
//! - a visitor with a `user_id` has sessions: runs of that user's counted searches in the window
//!   (any query) whose gaps are under 30 minutes. Searches are read in file order, not time
//!   order, so each user's searches are kept as sorted runs that grow and merge as searches
//!   arrive; each (user, query) pair keeps its own runs the same way, and at the end each of the
//!   pair's runs is mapped to the user's run that holds it. A pair's run always lies inside one
//!   user run (its searches are less than 30 minutes apart, so are the user's), so the count is
//!   exact whatever the reading order.
//! - the windows share these runs: they are built once from the searches of all windows, and
//!   each run carries the set of windows its searches fall in. The searches of one user run that
//!   fall in a window are one session of that window (the run's searches in a time interval are
//!   consecutive, so their gaps stay under 30 minutes) and different runs stay different
//!   sessions, so a pair's `pv` in a window is the number of user runs holding one of the pair's
//!   runs marked with that window: the same count as runs built per window.
//! - without a `user_id`, the search's `rn` (its request id) is the visitor: an `rn` names one
//!   search request, so there is no longer session to find and only repeats of the same
//!   (rn, query) are dropped. Repeats are looked for, per window, among the last one to two
//!   million such searches of that window read (two rotating hash sets), which catches the
//!   repeats of one request (they are pushed together) with bounded memory.
//! - with neither, every search is its own session and its own visitor.
//!
//! # Memory
//! Proportional to the distinct (user, query) pairs searched in the windows, about 30 to 60
//! bytes each (a hash-table slot with one run; a pair searched in several sessions keeps a small
//! list) — and in a real log nearly every search by a known user is a new pair, so in practice
//! this grows with the number of such searches (minus the repeats within a session), once for
//! all windows. Plus: the distinct queries (their text, and while the counts are computed 16
//! bytes per query and window), the users (their id and runs), the queries searched without a
//! user per window, and at most two million 64-bit hashes per window for the `rn` repeats.

use std::borrow::{BorrowMut, Cow};

use arrow_array::Array;
use trainyard_core::text::normalize_query;
use trainyard_data::Snapshot;
use trainyard_data::records::DatasetKind;

use crate::common::{
    FastMap, FastSet, IdentityHasher, PhaseProgress, TextTable, TimeRange, boolean_column, date_of, for_each_batch,
    integer_column, optional_text, text_column,
};
use crate::filter::{FieldValue, RecordFilter};
use crate::{TrainError, TrainingContext};

/// Searches of one user less than this far apart are one session.
pub(crate) const SESSION_GAP_SECONDS: i64 = 30 * 60;

/// [`SESSION_GAP_SECONDS`] in the unit of run times.
const SESSION_GAP: u32 = SESSION_GAP_SECONDS as u32;

/// Size of one generation of the `rn` repeat detector (two generations are kept).
const REQUEST_KEYS_PER_GENERATION: usize = 1_000_000;

/// Windows one [`SearchCounter`] counts at most (a run marks its windows in a byte).
pub(crate) const MAX_WINDOWS: usize = 8;

/// (user, query) pairs counted between two progress steps (and cancellation checks).
const PAIRS_PER_STEP: usize = 1 << 16;

/// Users known by `user_id`, interned by a 64-bit hash of the id (a collision is improbable,
/// see [`IdentityHasher`], and costs one merged user, not a wrong answer elsewhere).
#[derive(Default)]
pub(crate) struct UserTable {
    hasher: IdentityHasher,
    index: FastMap<u64, u32>,
    ids: Vec<Box<str>>,
}

impl UserTable {
    pub fn intern(&mut self, user_id: &str) -> u32 {
        let next = self.ids.len() as u32;
        let index = *self.index.entry(self.hasher.hash(user_id)).or_insert(next);
        if index == next {
            self.ids.push(user_id.into());
        }
        index
    }

    pub fn find(&self, user_id: &str) -> Option<u32> {
        self.index.get(&self.hasher.hash(user_id)).copied()
    }

    pub fn id(&self, user: u32) -> &str {
        &self.ids[user as usize]
    }
}

/// Whether `normalize_query(text)` is `text` itself, so that it needs no copy: no whitespace
/// but single spaces between other characters, no ASCII capital, no full-width form.
fn is_normalized(text: &str) -> bool {
    // True at the start: a leading space is not kept.
    let mut after_space = true;
    for character in text.chars() {
        if character.is_whitespace() {
            if character != ' ' || after_space {
                return false;
            }
            after_space = true;
        } else {
            if character.is_ascii_uppercase() || ('\u{FF01}'..='\u{FF5E}').contains(&character) {
                return false;
            }
            after_space = false;
        }
    }
    // A trailing space is not kept either.
    text.is_empty() || !after_space
}

/// The windows a search falls in: bit `i` for window `i` of the [`SearchCounter`].
type WindowSet = u8;

/// The windows of a set, as indices.
fn windows_in(set: WindowSet) -> impl Iterator<Item = usize> {
    let mut left = set;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let window = left.trailing_zeros() as usize;
        left &= left - 1;
        Some(window)
    })
}

/// Searches less than the session gap apart: `start` and `end` are the times of the first and
/// last (seconds since the counter's earliest window start), `windows` the windows they fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub start: u32,
    pub end: u32,
    pub windows: WindowSet,
}

/// Sorted, disjoint runs; times less than the session gap apart share a run. `M` holds them when
/// there are several ([`PairRuns`], [`UserRuns`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Runs<M> {
    /// Kept without a heap allocation.
    One(Run),
    Many(M),
}

/// The runs of a (user, query) pair: nearly every pair has one, so several are boxed, which keeps
/// the pair's slot in the map at 24 bytes (a `Vec` in place would make it 40).
#[allow(clippy::box_collection)]
pub(crate) type PairRuns = Runs<Box<Vec<Run>>>;

/// The runs of a user: most users searching on several days have several, kept in place (one
/// allocation each, not two).
pub(crate) type UserRuns = Runs<Vec<Run>>;

impl<M: BorrowMut<Vec<Run>> + From<Vec<Run>>> Runs<M> {
    pub fn starting_at(time: u32, windows: WindowSet) -> Self {
        Runs::One(Run { start: time, end: time, windows })
    }

    pub fn insert(&mut self, time: u32, windows: WindowSet) {
        match self {
            Runs::One(run) => {
                if time >= run.start && time <= run.end {
                    run.windows |= windows;
                    return;
                }
                if time > run.end && time - run.end < SESSION_GAP {
                    run.end = time;
                    run.windows |= windows;
                    return;
                }
                if time < run.start && run.start - time < SESSION_GAP {
                    run.start = time;
                    run.windows |= windows;
                    return;
                }
                let existing = *run;
                let new = Run { start: time, end: time, windows };
                let runs = if time < existing.start { vec![new, existing] } else { vec![existing, new] };
                *self = Runs::Many(runs.into());
            }
            Runs::Many(runs) => insert_into_runs(runs.borrow_mut(), time, windows),
        }
    }

    pub fn as_slice(&self) -> &[Run] {
        match self {
            Runs::One(run) => std::slice::from_ref(run),
            Runs::Many(runs) => {
                let runs: &Vec<Run> = runs.borrow();
                runs
            }
        }
    }

    /// The windows any of the runs falls in.
    fn windows(&self) -> WindowSet {
        match self {
            Runs::One(run) => run.windows,
            Runs::Many(_) => self.as_slice().iter().fold(0, |set, run| set | run.windows),
        }
    }
}

fn insert_into_runs(runs: &mut Vec<Run>, time: u32, windows: WindowSet) {
    // Runs before `index` start at or before `time`.
    let index = runs.partition_point(|run| run.start <= time);
    if index > 0 && runs[index - 1].end >= time {
        runs[index - 1].windows |= windows;
        return;
    }
    let joins_previous = index > 0 && time - runs[index - 1].end < SESSION_GAP;
    let joins_next = index < runs.len() && runs[index].start - time < SESSION_GAP;
    match (joins_previous, joins_next) {
        (true, true) => {
            let next = runs.remove(index);
            let previous = &mut runs[index - 1];
            previous.end = next.end;
            previous.windows |= next.windows | windows;
        }
        (true, false) => {
            runs[index - 1].end = time;
            runs[index - 1].windows |= windows;
        }
        (false, true) => {
            runs[index].start = time;
            runs[index].windows |= windows;
        }
        (false, false) => runs.insert(index, Run { start: time, end: time, windows }),
    }
}

/// For each window, how many of `sessions` (a user's runs) hold at least one of `pair_runs`
/// (runs of one query by that user, each inside one of `sessions`) that falls in the window.
fn sessions_holding(pair_runs: &[Run], sessions: &[Run]) -> [u64; MAX_WINDOWS] {
    let mut counts = [0; MAX_WINDOWS];
    let mut last_session = [usize::MAX; MAX_WINDOWS];
    for run in pair_runs {
        let session = sessions.partition_point(|session| session.start <= run.start).saturating_sub(1);
        for window in windows_in(run.windows) {
            if last_session[window] != session {
                counts[window] += 1;
                last_session[window] = session;
            }
        }
    }
    counts
}

/// Keys seen recently (two rotating generations), for the `rn` repeats.
#[derive(Default)]
struct RecentKeys {
    current: FastSet<u64>,
    previous: FastSet<u64>,
}

impl RecentKeys {
    /// True when `key` was not seen recently (and remembers it).
    fn insert(&mut self, key: u64) -> bool {
        if self.current.contains(&key) || self.previous.contains(&key) {
            return false;
        }
        if self.current.len() >= REQUEST_KEYS_PER_GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key);
        true
    }
}

/// Who searched.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Visitor {
    /// A user with a `user_id` (index in the [`UserTable`]).
    User(u32),
    /// No `user_id`: a hash of (rn, query) ([`SearchCounter::request_key`]).
    Request(u64),
    /// Neither `user_id` nor `rn`.
    Anonymous,
}

/// The count of one query in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueryCount {
    pub query: u32,
    /// Sessions that searched it.
    pub pv: u64,
    /// Distinct visitors that searched it.
    pub uv: u64,
}

/// The key of a (query, user) pair.
fn pair_key(query: u32, user: u32) -> u64 {
    (u64::from(query) << 32) | u64::from(user)
}

/// The (query, user) of a pair key.
fn pair_of(key: u64) -> (u32, u32) {
    ((key >> 32) as u32, key as u32)
}

/// The counts of up to [`MAX_WINDOWS`] time windows (which may overlap), from one pass over
/// the searches: one set of runs per (user, query) pair and per user for all of them.
pub(crate) struct SearchCounter {
    ranges: Vec<TimeRange>,
    /// The earliest window start: run times are seconds since it.
    base: i64,
    /// Runs of each (query, user) pair, by [`pair_key`].
    pair_runs: FastMap<u64, PairRuns>,
    /// Runs of each user (by index in the [`UserTable`]; `None`: no counted search).
    user_runs: Vec<Option<UserRuns>>,
    /// One past the largest query index counted.
    queries: u32,
    request_hasher: IdentityHasher,
    /// Per window: the `rn` repeat detector.
    request_keys: Vec<RecentKeys>,
    /// Per window: the pv (= uv) of searches without a user (each is its own session and
    /// visitor).
    without_user: Vec<FastMap<u32, u64>>,
    /// Per window: counted searches, before session de-duplication.
    searches: Vec<u64>,
}

impl SearchCounter {
    /// A counter of the windows `ranges` (at most [`MAX_WINDOWS`]), known by their index there.
    pub fn new(ranges: &[TimeRange]) -> Result<SearchCounter, TrainError> {
        if ranges.len() > MAX_WINDOWS {
            return Err(TrainError::Internal(format!("{} windows to count, at most {MAX_WINDOWS}", ranges.len())));
        }
        let base = ranges.iter().map(|range| range.start).min().unwrap_or(0);
        let end = ranges.iter().map(|range| range.end).max().unwrap_or(0);
        if end - base > i64::from(u32::MAX) {
            return Err(TrainError::Internal(format!(
                "the windows span {} seconds, more than run times hold",
                end - base
            )));
        }
        Ok(SearchCounter {
            ranges: ranges.to_vec(),
            base,
            pair_runs: FastMap::default(),
            user_runs: Vec::new(),
            queries: 0,
            request_hasher: IdentityHasher::default(),
            request_keys: ranges.iter().map(|_| RecentKeys::default()).collect(),
            without_user: ranges.iter().map(|_| FastMap::default()).collect(),
            searches: vec![0; ranges.len()],
        })
    }

    /// The windows that hold `time`.
    fn windows_of(&self, time: i64) -> WindowSet {
        self.ranges
            .iter()
            .enumerate()
            .fold(0, |set, (window, range)| if range.contains(time) { set | (1 << window) } else { set })
    }

    /// The visitor key of a search without a user: its `rn` and normalised query.
    pub fn request_key(&self, rn: &str, query: &str) -> u64 {
        self.request_hasher.hash(&(rn, query))
    }

    /// Counts a search in every window that holds `time`.
    #[cfg(test)]
    pub fn add(&mut self, query: u32, visitor: Visitor, time: i64) {
        let windows = self.windows_of(time);
        if windows != 0 {
            self.add_to(windows, query, visitor, time);
        }
    }

    /// Counts a search in `windows`, the windows that hold `time` (not empty).
    fn add_to(&mut self, windows: WindowSet, query: u32, visitor: Visitor, time: i64) {
        self.queries = self.queries.max(query + 1);
        for window in windows_in(windows) {
            self.searches[window] += 1;
        }
        match visitor {
            Visitor::User(user) => {
                // In a window, so within the span checked by `new`.
                let time = (time - self.base) as u32;
                let slot = user as usize;
                if slot >= self.user_runs.len() {
                    self.user_runs.resize_with(slot + 1, || None);
                }
                match &mut self.user_runs[slot] {
                    Some(runs) => runs.insert(time, windows),
                    none => *none = Some(UserRuns::starting_at(time, windows)),
                }
                self.pair_runs
                    .entry(pair_key(query, user))
                    .and_modify(|runs| runs.insert(time, windows))
                    .or_insert_with(|| PairRuns::starting_at(time, windows));
            }
            Visitor::Request(key) => {
                for window in windows_in(windows) {
                    if self.request_keys[window].insert(key) {
                        *self.without_user[window].entry(query).or_default() += 1;
                    }
                }
            }
            Visitor::Anonymous => {
                for window in windows_in(windows) {
                    *self.without_user[window].entry(query).or_default() += 1;
                }
            }
        }
    }

    /// Distinct (user, query) pairs counted: the work of [`SearchCounter::counts`].
    pub fn pairs(&self) -> usize {
        self.pair_runs.len()
    }

    /// Every window's counts (in the order of the windows), each query's pv and uv in no
    /// particular order. Progress moves, and cancellation is checked, every 65,536 pairs.
    pub fn counts(
        &self,
        context: &TrainingContext,
        progress: &mut PhaseProgress<'_>,
    ) -> Result<Vec<Vec<QueryCount>>, TrainError> {
        context.check_cancelled()?;
        let windows = self.ranges.len();
        // (pv, uv) of query q in window w at q * windows + w.
        let mut totals: Vec<(u64, u64)> = vec![(0, 0); self.queries as usize * windows];
        for (window, counts) in self.without_user.iter().enumerate() {
            for (query, count) in counts {
                let total = &mut totals[*query as usize * windows + window];
                total.0 += count;
                total.1 += count;
            }
        }
        for (index, (key, runs)) in self.pair_runs.iter().enumerate() {
            if index % PAIRS_PER_STEP == PAIRS_PER_STEP - 1 {
                context.check_cancelled()?;
                progress.advance(PAIRS_PER_STEP as u64);
            }
            let (query, user) = pair_of(*key);
            let slot = query as usize * windows;
            match runs {
                // One run: one session, in each of its windows.
                Runs::One(run) => {
                    for window in windows_in(run.windows) {
                        let total = &mut totals[slot + window];
                        total.0 += 1;
                        total.1 += 1;
                    }
                }
                Runs::Many(_) => {
                    let sessions = self
                        .user_runs
                        .get(user as usize)
                        .and_then(Option::as_ref)
                        .map(UserRuns::as_slice)
                        .unwrap_or_default();
                    let held = sessions_holding(runs.as_slice(), sessions);
                    for (window, sessions) in held.iter().take(windows).enumerate() {
                        if *sessions > 0 {
                            let total = &mut totals[slot + window];
                            total.0 += sessions;
                            total.1 += 1;
                        }
                    }
                }
            }
        }
        context.check_cancelled()?;
        let mut counts: Vec<Vec<QueryCount>> = vec![Vec::new(); windows];
        for (index, (pv, uv)) in totals.into_iter().enumerate() {
            // Every query counted in a window has a visitor there.
            if uv > 0 {
                counts[index % windows].push(QueryCount { query: (index / windows) as u32, pv, uv });
            }
        }
        progress.complete();
        Ok(counts)
    }

    /// The (query, user) pairs searched in `window`.
    pub fn user_queries(&self, window: usize) -> impl Iterator<Item = (u32, u32)> + '_ {
        let bit = 1 << window;
        self.pair_runs.iter().filter(move |(_, runs)| runs.windows() & bit != 0).map(|(key, _)| pair_of(*key))
    }

    /// Distinct users (with a `user_id`) that searched in `window`.
    pub fn users(&self, window: usize) -> usize {
        let bit = 1 << window;
        self.user_runs.iter().flatten().filter(|runs| runs.windows() & bit != 0).count()
    }

    /// Counted searches in `window`, before session de-duplication.
    pub fn searches(&self, window: usize) -> u64 {
        self.searches[window]
    }
}

/// The `limit` most searched: pv descending, then the query text ascending.
pub(crate) fn top_queries(mut counts: Vec<QueryCount>, queries: &TextTable, limit: usize) -> Vec<QueryCount> {
    counts.sort_unstable_by(|left, right| {
        right.pv.cmp(&left.pv).then_with(|| queries.text(left.query).cmp(queries.text(right.query)))
    });
    counts.truncate(limit);
    counts
}

/// One counted search, for trainers that look at more than the counts.
pub(crate) struct CountedSearch<'a> {
    pub time: i64,
    pub query: u32,
    /// The normalised query.
    pub text: &'a str,
    pub user: Option<u32>,
    pub rn: Option<&'a str>,
}

/// What a scan read, and why searches of the first window did not count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SearchScanReport {
    /// Rows of the partitions read (all windows, and the rest of their days).
    pub rows_read: u64,
    /// Searches whose time is in the first window, and the fate of those.
    pub in_window: u64,
    pub not_raw: u64,
    pub without_results: u64,
    pub empty_query: u64,
    pub filtered_out: u64,
    pub counted: u64,
}

impl SearchScanReport {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "rows_read": self.rows_read,
            "searches_in_window": self.in_window,
            "not_raw_query": self.not_raw,
            "without_results": self.without_results,
            "empty_after_normalisation": self.empty_query,
            "filtered_out": self.filtered_out,
            "searches_counted": self.counted,
        })
    }

    /// Why the first window counted nothing, naming the missing data.
    pub fn nothing_counted_message(&self, window_days: i64, window: TimeRange, filter: &RecordFilter) -> String {
        let matching =
            if filter.is_empty() { String::new() } else { format!(" matching the filter `{}`", filter.text()) };
        let mut message = format!(
            "no raw_query searches with results{matching} in the last {window_days} days (window ending {})",
            date_of(window.end - 1)
        );
        if self.in_window == 0 {
            message.push_str(": the query log holds no searches in that window");
        } else {
            message.push_str(&format!(
                ": of {} searches in that window, {} are not raw_query, {} returned no results, \
                 {} are empty once normalised, {} do not match the filter",
                self.in_window, self.not_raw, self.without_results, self.empty_query, self.filtered_out
            ));
        }
        message
    }
}

/// The query tables a scan fills.
#[derive(Default)]
pub(crate) struct SearchTables {
    pub queries: TextTable,
    pub users: UserTable,
}

/// Reads the query log over the days of the counter's windows, counting each search that counts
/// into every window that holds its time, and showing it to `visit`. The report's window counts
/// are those of window 0.
pub(crate) fn scan_searches(
    snapshot: &Snapshot,
    context: &TrainingContext,
    progress: &mut PhaseProgress<'_>,
    filter: &RecordFilter,
    tables: &mut SearchTables,
    counter: &mut SearchCounter,
    mut visit: impl FnMut(&CountedSearch<'_>),
) -> Result<SearchScanReport, TrainError> {
    if counter.ranges.is_empty() {
        return Ok(SearchScanReport::default());
    }
    let start = counter.ranges.iter().map(|range| range.start).min().unwrap_or_default();
    let end = counter.ranges.iter().map(|range| range.end).max().unwrap_or_default();
    let days = TimeRange { start, end }.partition_days();
    let mut columns = vec!["query", "raw_query", "hits", "timestamp", "user_id", "rn"];
    let reads_biz_id = filter.tests("biz_id");
    if reads_biz_id {
        columns.push("biz_id");
    }
    let mut report = SearchScanReport::default();
    report.rows_read = for_each_batch(snapshot, DatasetKind::QueryLog, days, &columns, context, progress, |batch| {
        // The scan returns plain text arrays (not dictionaries): each row's text is read in
        // place, and copied only when normalising changes it or the query is new to the table.
        let texts = text_column(batch, "query")?;
        let raw = boolean_column(batch, "raw_query")?;
        let hits = integer_column(batch, "hits")?;
        let times = integer_column(batch, "timestamp")?;
        let user_ids = text_column(batch, "user_id")?;
        let request_ids = text_column(batch, "rn")?;
        let biz_ids = if reads_biz_id { Some(text_column(batch, "biz_id")?) } else { None };
        for row in 0..batch.num_rows() {
            let time = times.value(row);
            let windows = counter.windows_of(time);
            if windows == 0 {
                continue;
            }
            let in_first_window = windows & 1 != 0;
            report.in_window += u64::from(in_first_window);
            if !raw.value(row) {
                report.not_raw += u64::from(in_first_window);
                continue;
            }
            let hit_count = hits.value(row);
            if hit_count <= 0 {
                report.without_results += u64::from(in_first_window);
                continue;
            }
            let text = texts.value(row);
            let normalized = if is_normalized(text) { Cow::Borrowed(text) } else { Cow::Owned(normalize_query(text)) };
            if normalized.is_empty() {
                report.empty_query += u64::from(in_first_window);
                continue;
            }
            let user_id = optional_text(user_ids, row);
            let rn = optional_text(request_ids, row);
            let passes = filter.matches(|field| match field {
                "query" => FieldValue::Text(&normalized),
                "hits" => FieldValue::Integer(hit_count),
                "user_id" => user_id.map_or(FieldValue::Absent, FieldValue::Text),
                "biz_id" => biz_ids
                    .and_then(|column| if column.is_null(row) { None } else { Some(column.value(row)) })
                    .map_or(FieldValue::Absent, FieldValue::Text),
                _ => FieldValue::Absent,
            });
            if !passes {
                report.filtered_out += u64::from(in_first_window);
                continue;
            }
            report.counted += u64::from(in_first_window);
            let query = tables.queries.intern(&normalized);
            let user = user_id.map(|user_id| tables.users.intern(user_id));
            let visitor = match (user, rn) {
                (Some(user), _) => Visitor::User(user),
                (None, Some(rn)) => Visitor::Request(counter.request_key(rn, &normalized)),
                (None, None) => Visitor::Anonymous,
            };
            counter.add_to(windows, query, visitor, time);
            visit(&CountedSearch { time, query, text: &normalized, user, rn });
        }
        Ok(())
    })?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::common::{DAY_SECONDS, estimated_rows};
    use crate::test_support::{Fixture, NOW, context, search, user_search};

    /// The normalisation is core's; this pins what the trainers' documentation promises.
    #[test]
    fn queries_are_trimmed_collapsed_lower_cased_and_made_half_width() {
        assert_eq!(normalize_query("  Red   SHOES \t"), "red shoes");
        assert_eq!(
            normalize_query("\u{FF32}\u{FF45}\u{FF44}\u{3000}\u{FF33}\u{FF28}\u{FF2F}\u{FF25}\u{FF33}\u{FF01}"),
            "red shoes!"
        );
        assert_eq!(normalize_query("连衣裙　夏季"), "连衣裙 夏季");
        assert_eq!(normalize_query("ÄPFEL"), "Äpfel", "only ASCII letters change case");
        assert_eq!(normalize_query(" \u{3000} "), "");
    }

    /// Run times with every run in window 0.
    fn spans(runs: &PairRuns) -> Vec<(u32, u32)> {
        runs.as_slice().iter().map(|run| (run.start, run.end)).collect()
    }

    fn in_window_0(spans: &[(u32, u32)]) -> Vec<Run> {
        spans.iter().map(|(start, end)| Run { start: *start, end: *end, windows: 1 }).collect()
    }

    #[test]
    fn runs_merge_times_under_the_gap_in_any_order() {
        let gap = SESSION_GAP;
        let mut runs = PairRuns::starting_at(10_000, 1);
        runs.insert(10_000 + gap, 1); // exactly 30 minutes later: a new session
        assert_eq!(spans(&runs), &[(10_000, 10_000), (10_000 + gap, 10_000 + gap)]);
        runs.insert(10_000 + gap / 2, 1); // between the two, under the gap from each: one run
        assert_eq!(spans(&runs), &[(10_000, 10_000 + gap)]);
        runs.insert(10_000 - 5 * gap, 1);
        runs.insert(10_000 + 5 * gap, 1);
        runs.insert(10_000 - gap + 1, 1);
        assert_eq!(
            spans(&runs),
            &[
                (10_000 - 5 * gap, 10_000 - 5 * gap),
                (10_000 - gap + 1, 10_000 + gap),
                (10_000 + 5 * gap, 10_000 + 5 * gap)
            ]
        );
        assert_eq!(
            sessions_holding(&in_window_0(&[(10_000, 10_000), (10_000 + gap, 10_000 + gap)]), runs.as_slice())[0],
            1
        );
        assert_eq!(
            sessions_holding(
                &in_window_0(&[(10_000 - 5 * gap, 10_000 - 5 * gap), (10_000 + 5 * gap, 10_000 + 5 * gap)]),
                runs.as_slice()
            )[0],
            2
        );
    }

    #[test]
    fn a_pair_takes_24_bytes_of_its_map_slot() {
        assert_eq!(std::mem::size_of::<(u64, PairRuns)>(), 24);
        assert!(std::mem::size_of::<Option<UserRuns>>() <= 32);
    }

    #[test]
    fn runs_carry_the_windows_of_their_times_through_merges() {
        let gap = SESSION_GAP;
        let mut runs = UserRuns::starting_at(1_000, 0b001);
        runs.insert(1_000 + gap + 100, 0b010); // a run of its own
        assert_eq!(runs.as_slice().len(), 2);
        runs.insert(1_000 + gap / 2 + 50, 0b100); // under the gap from both: joins them
        assert_eq!(runs.as_slice(), &[Run { start: 1_000, end: 1_000 + gap + 100, windows: 0b111 }]);
        let later = 1_000 + 4 * gap;
        runs.insert(later, 0b010);
        runs.insert(later, 0b001); // the same time again, in another window
        assert_eq!(runs.as_slice()[1], Run { start: later, end: later, windows: 0b011 });
        assert_eq!(runs.windows(), 0b111);
        // A pair with a run in each user run, the first in windows 0 and 2, the second in 0 and
        // 1: two sessions in window 0, one in windows 1 and 2.
        let pair = [Run { start: 1_000, end: 1_000, windows: 0b101 }, runs.as_slice()[1]];
        assert_eq!(sessions_holding(&pair, runs.as_slice())[..3], [2, 1, 1]);
    }

    #[test]
    fn already_normalised_queries_are_recognised_exactly() {
        for text in ["", "red shoes", "连衣裙 夏季", "a", "ünïcode ok", "iphone 15", "a-b_c!"] {
            assert!(is_normalized(text), "{text:?}");
        }
        for text in
            [" ", "Red", " red", "red ", "red  shoes", "red\tshoes", "a\u{3000}b", "\u{FF32}", "a\u{00A0}b", "x\n"]
        {
            assert!(!is_normalized(text), "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_query_is_already_normalised_exactly_when_normalising_keeps_it(
            characters in proptest::collection::vec(
                proptest::sample::select(vec![
                    ' ', ' ', 'a', 'z', 'A', 'Z', '1', '\t', '\n', '\u{0B}', '\u{1F}', '\u{85}', '\u{A0}',
                    '\u{2028}', '\u{3000}', '\u{FF00}', '\u{FF01}', '\u{FF32}', '\u{FF5E}', '\u{FF5F}', 'é', 'Ä',
                    '连',
                ]),
                0..10,
            ),
            any_text in ".{0,12}",
        ) {
            for text in [characters.into_iter().collect::<String>(), any_text] {
                proptest::prop_assert_eq!(is_normalized(&text), normalize_query(&text) == text, "{:?}", text);
            }
        }
    }

    /// Who made a generated search.
    #[derive(Debug, Clone, Copy)]
    enum Who {
        User(u32),
        Request(u32),
        Anonymous,
    }

    /// The time generated searches and windows are around.
    const BASE: i64 = 1_795_000_000;

    /// Windows (some shorter than a session gap, some empty, overlapping or not) and searches
    /// (some outside every window), with times spread over a short, medium or long span so that
    /// users have one long session or many.
    fn windows_and_searches() -> impl proptest::strategy::Strategy<Value = (Vec<TimeRange>, Vec<(u32, Who, i64)>)> {
        use proptest::prelude::*;
        prop_oneof![Just(6_000i64), Just(60_000), Just(600_000)].prop_flat_map(|span| {
            let window = (0..span, prop_oneof![Just(0i64), 1..SESSION_GAP_SECONDS, SESSION_GAP_SECONDS..span])
                .prop_map(|(start, length)| TimeRange { start: BASE + start, end: BASE + start + length });
            let who = prop_oneof![
                8 => (0..12u32).prop_map(Who::User),
                1 => (0..20u32).prop_map(Who::Request),
                1 => Just(Who::Anonymous),
            ];
            let search = (0..10u32, who, -1_000..span + 1_000).prop_map(|(query, who, time)| (query, who, BASE + time));
            (proptest::collection::vec(window, 1..=5), proptest::collection::vec(search, 1..3_000))
        })
    }

    /// What a window's counts should be, computed the plain way: the window's searches alone,
    /// each user's sorted and cut into sessions at gaps of 30 minutes or more.
    struct Expected {
        counts: BTreeMap<u32, (u64, u64)>,
        users: usize,
        user_queries: BTreeSet<(u32, u32)>,
        searches: u64,
    }

    fn expected(window: TimeRange, searches: &[(u32, Who, i64)]) -> Expected {
        let in_window: Vec<(u32, Who, i64)> =
            searches.iter().copied().filter(|(_, _, time)| window.contains(*time)).collect();
        let mut counts: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let mut times_by_user: BTreeMap<u32, Vec<(i64, u32)>> = BTreeMap::new();
        let mut requests: BTreeSet<(u32, u32)> = BTreeSet::new();
        for (query, who, time) in &in_window {
            match who {
                Who::User(user) => times_by_user.entry(*user).or_default().push((*time, *query)),
                Who::Request(rn) => {
                    if requests.insert((*query, *rn)) {
                        let count = counts.entry(*query).or_default();
                        count.0 += 1;
                        count.1 += 1;
                    }
                }
                Who::Anonymous => {
                    let count = counts.entry(*query).or_default();
                    count.0 += 1;
                    count.1 += 1;
                }
            }
        }
        let mut user_queries = BTreeSet::new();
        for (user, times) in &mut times_by_user {
            times.sort_unstable();
            let mut sessions_by_query: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
            let mut session = 0;
            for (index, (time, query)) in times.iter().enumerate() {
                if index > 0 && time - times[index - 1].0 >= SESSION_GAP_SECONDS {
                    session += 1;
                }
                sessions_by_query.entry(*query).or_default().insert(session);
            }
            for (query, sessions) in sessions_by_query {
                let count = counts.entry(query).or_default();
                count.0 += sessions.len() as u64;
                count.1 += 1;
                user_queries.insert((query, *user));
            }
        }
        Expected { counts, users: times_by_user.len(), user_queries, searches: in_window.len() as u64 }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// The shared runs count every window as runs built per window would, in any reading
        /// order.
        #[test]
        fn shared_runs_count_each_window_as_counting_it_alone((windows, searches) in windows_and_searches()) {
            let context = TrainingContext::new();
            let mut by_time = searches.clone();
            by_time.sort_by_key(|(_, _, time)| *time);
            let mut backwards = by_time.clone();
            backwards.reverse();
            for order in [&searches, &by_time, &backwards] {
                let mut counter = SearchCounter::new(&windows).unwrap();
                for (query, who, time) in order.iter() {
                    let visitor = match who {
                        Who::User(user) => Visitor::User(*user),
                        Who::Request(rn) => Visitor::Request(counter.request_key(&format!("rn{rn}"), &format!("q{query}"))),
                        Who::Anonymous => Visitor::Anonymous,
                    };
                    counter.add(*query, visitor, *time);
                }
                let mut progress = PhaseProgress::new(&context, 0, 100, counter.pairs() as u64);
                let counts = counter.counts(&context, &mut progress).unwrap();
                proptest::prop_assert_eq!(counts.len(), windows.len());
                for (window, range) in windows.iter().enumerate() {
                    let wanted = expected(*range, &searches);
                    let counted: BTreeMap<u32, (u64, u64)> =
                        counts[window].iter().map(|count| (count.query, (count.pv, count.uv))).collect();
                    proptest::prop_assert_eq!(counts[window].len(), counted.len(), "one count per query");
                    proptest::prop_assert_eq!(&counted, &wanted.counts, "window {} {:?}", window, range);
                    proptest::prop_assert_eq!(counter.users(window), wanted.users);
                    proptest::prop_assert_eq!(counter.user_queries(window).collect::<BTreeSet<_>>(), wanted.user_queries);
                    proptest::prop_assert_eq!(counter.searches(window), wanted.searches);
                }
            }
        }
    }

    #[test]
    fn counting_moves_the_progress_and_stops_when_cancelled() {
        let window = TimeRange { start: BASE, end: BASE + DAY_SECONDS };
        let mut counter = SearchCounter::new(&[window]).unwrap();
        let pairs = 3 * PAIRS_PER_STEP as u32;
        for index in 0..pairs {
            counter.add(index % 1_000, Visitor::User(index), BASE + i64::from(index % 80_000));
        }
        assert_eq!(counter.pairs(), pairs as usize);
        let context = TrainingContext::new();
        let mut progress = PhaseProgress::new(&context, 90, 95, counter.pairs() as u64);
        let counts = counter.counts(&context, &mut progress).unwrap();
        assert_eq!(counts[0].iter().map(|count| count.uv).sum::<u64>(), u64::from(pairs));
        assert_eq!(context.progress(), 95);

        let cancelled = TrainingContext::new();
        cancelled.cancel();
        let mut progress = PhaseProgress::new(&cancelled, 90, 95, counter.pairs() as u64);
        assert!(matches!(counter.counts(&cancelled, &mut progress), Err(TrainError::Cancelled)));
    }

    fn count_window(
        fixture: &Fixture,
        days: i64,
        filter: Option<&str>,
    ) -> (SearchTables, Vec<QueryCount>, SearchScanReport) {
        let snapshot = fixture.snapshot();
        let context = context();
        let window = TimeRange::days_ending_at(NOW, days);
        let filter = RecordFilter::from_parameter(filter, trainyard_core::catalog::QUERY_LOG_FILTER_FIELDS).unwrap();
        let mut progress = PhaseProgress::new(
            &context,
            0,
            100,
            estimated_rows(&snapshot, DatasetKind::QueryLog, &window.partition_days()),
        );
        let mut tables = SearchTables::default();
        let mut counter = SearchCounter::new(&[window]).unwrap();
        let report =
            scan_searches(&snapshot, &context, &mut progress, &filter, &mut tables, &mut counter, |_| {}).unwrap();
        let counts = counter.counts(&context, &mut progress).unwrap().remove(0);
        let counts = top_queries(counts, &tables.queries, 100);
        (tables, counts, report)
    }

    fn pv_uv(tables: &SearchTables, counts: &[QueryCount], query: &str) -> Option<(u64, u64)> {
        counts.iter().find(|count| tables.queries.text(count.query) == query).map(|count| (count.pv, count.uv))
    }

    #[test]
    fn a_query_counts_once_per_user_session_whatever_the_reading_order() {
        let fixture = Fixture::new();
        let minute = 60;
        let base = NOW - DAY_SECONDS;
        // u1: shoes at 0, hat at 20 min, shoes at 40 min: one session (gaps of 20 minutes), so
        // shoes counts once although its own searches are 40 minutes apart.
        // u1 again 3 hours later: a second session.
        // u2: shoes twice 5 minutes apart: one session. Pushed out of order and split between a
        // Parquet file and the log.
        let first_part = vec![
            user_search("Shoes", "u1", base + 40 * minute),
            user_search("shoes ", "u1", base),
            user_search("shoes", "u2", base + 5 * minute),
        ];
        let second_part = vec![
            user_search("hat", "u1", base + 20 * minute),
            user_search("SHOES", "u1", base + 220 * minute),
            user_search("shoes", "u2", base),
        ];
        fixture.append_query_log(&first_part);
        fixture.compact();
        fixture.append_query_log(&second_part);
        let (tables, counts, report) = count_window(&fixture, 14, None);
        assert_eq!(report.counted, 6);
        assert_eq!(pv_uv(&tables, &counts, "shoes"), Some((3, 2)), "u1: two sessions, u2: one");
        assert_eq!(pv_uv(&tables, &counts, "hat"), Some((1, 1)));
    }

    #[test]
    fn searches_of_one_user_thirty_minutes_apart_are_two_sessions() {
        let fixture = Fixture::new();
        let base = NOW - DAY_SECONDS;
        // The same as above without the search in between: two sessions.
        fixture.append_query_log(&[user_search("shoes", "u1", base), user_search("shoes", "u1", base + 40 * 60)]);
        let (tables, counts, _) = count_window(&fixture, 14, None);
        assert_eq!(pv_uv(&tables, &counts, "shoes"), Some((2, 1)));
    }

    #[test]
    fn only_raw_searches_with_results_in_the_window_count() {
        let fixture = Fixture::new();
        let not_raw = QueryLogEntryBuilder::new("rewritten").raw(false).build();
        let no_results = QueryLogEntryBuilder::new("nothing").hits(0).build();
        fixture.append_query_log(&[
            search("kept", NOW),
            search("kept", NOW - 14 * DAY_SECONDS), // the first second of the window
            search("too old", NOW - 14 * DAY_SECONDS - 1),
            search("future", NOW + 1),
            search("   ", NOW),
            not_raw,
            no_results,
        ]);
        let (tables, counts, report) = count_window(&fixture, 14, None);
        assert_eq!(
            counts.len(),
            1,
            "{:?}",
            counts.iter().map(|count| tables.queries.text(count.query)).collect::<Vec<_>>()
        );
        assert_eq!(pv_uv(&tables, &counts, "kept"), Some((2, 2)), "anonymous searches count each");
        assert_eq!(
            report,
            SearchScanReport {
                rows_read: 7,
                in_window: 5,
                not_raw: 1,
                without_results: 1,
                empty_query: 1,
                filtered_out: 0,
                counted: 2
            }
        );
    }

    #[test]
    fn searches_without_a_user_are_de_duplicated_by_request_id() {
        let fixture = Fixture::new();
        let with_rn = |query: &str, rn: &str| QueryLogEntryBuilder::new(query).rn(rn).build();
        fixture.append_query_log(&[
            with_rn("shoes", "r1"),
            with_rn("shoes", "r1"),
            with_rn("shoes", "r2"),
            with_rn("hat", "r1"),
        ]);
        let (tables, counts, _) = count_window(&fixture, 1, None);
        assert_eq!(pv_uv(&tables, &counts, "shoes"), Some((2, 2)));
        assert_eq!(pv_uv(&tables, &counts, "hat"), Some((1, 1)));
    }

    #[test]
    fn the_filter_applies_to_every_query_log_field() {
        let fixture = Fixture::new();
        fixture.append_query_log(&[
            QueryLogEntryBuilder::new("a").biz("pc").build(),
            QueryLogEntryBuilder::new("b").biz("ios").build(),
            QueryLogEntryBuilder::new("c").build(),
            QueryLogEntryBuilder::new("d").biz("pc").hits(2).build(),
            QueryLogEntryBuilder::new("E").biz("pc").user("bot").build(),
        ]);
        let queries = |filter: &str| {
            let (tables, counts, report) = count_window(&fixture, 1, Some(filter));
            let mut texts: Vec<String> =
                counts.iter().map(|count| tables.queries.text(count.query).to_string()).collect();
            texts.sort();
            (texts, report.filtered_out)
        };
        assert_eq!(queries("biz_id = pc"), (vec!["a".to_string(), "d".into(), "e".into()], 2));
        assert_eq!(queries("biz_id = pc, hits > 5, user_id != bot"), (vec!["a".to_string()], 4));
        assert_eq!(queries("query = e"), (vec!["e".to_string()], 4), "the normalised query is tested");
    }

    /// Query-log entries with some fields set.
    struct QueryLogEntryBuilder(trainyard_data::records::QueryLogEntry);

    impl QueryLogEntryBuilder {
        fn new(query: &str) -> Self {
            QueryLogEntryBuilder(search(query, NOW))
        }
        fn raw(mut self, raw: bool) -> Self {
            self.0.raw_query = raw;
            self
        }
        fn hits(mut self, hits: i64) -> Self {
            self.0.hits = hits;
            self
        }
        fn rn(mut self, rn: &str) -> Self {
            self.0.rn = Some(rn.into());
            self
        }
        fn biz(mut self, biz_id: &str) -> Self {
            self.0.biz_id = Some(biz_id.into());
            self
        }
        fn user(mut self, user_id: &str) -> Self {
            self.0.user_id = Some(user_id.into());
            self
        }
        fn build(self) -> trainyard_data::records::QueryLogEntry {
            self.0
        }
    }
}
