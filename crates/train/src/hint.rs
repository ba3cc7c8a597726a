//! hint: the words shown in an empty search box (model types `offline_inference`; and
//! `near_realtime`, the personalized one).
//!
//! # Algorithm
//! **Global hints.** The candidates are hot's: typed searches over the last `window_days` days
//! (default 14), counted once per user session, with the same normalisation and `filter` (see
//! the crate's `searches` module). The `top_n` (default 100) by session count (`pv`) descending, then text
//! ascending, are kept; how many a request shows (3 by default) is serving's concern.
//!
//! **Personalized hints** (model type `near_realtime`, or `personalized=true`):
//! 1. The click graph: every behavior event other than `expose` (a click, a purchase, ...) in the
//!    window whose `rn` is the `rn` of a counted search links that search's query to the
//!    event's item. The join keeps a uniform sample of at most 2 million searches by hash of
//!    their `rn` (all of them below that; see `KeySample`), so memory does not grow with the log.
//! 2. The users: those with a `user_id`, ranked by activity in the window (counted searches plus
//!    behavior events other than `expose`); the 100,000 most active are kept (ties by id).
//! 3. For each kept user, the 10 items they most recently acted on (not `expose`). A query's
//!    score is the sum over those items of the share of the item's joined clicks that came from
//!    the query (`clicks(item, query) / clicks(item)`): queries that led others to what this user
//!    likes. Queries the user searched in the window are left out (they know those). The 10 best
//!    are kept, by score, then `pv`, then text; users left with none are not listed (serving
//!    falls back to the global hints).
//!
//! # Evaluation (`metrics`)
//! The users with a `user_id` who made a counted search on the window's last day
//! (`[now - 1 day, now]`) are evaluated on their first such search (their "next query"; ties in
//! time go to the smaller text), against hints computed from the window minus its last day:
//! - `recall_at_3_global`: the share of them whose next query is among the first 3 global hints;
//! - `recall_at_3_personalized` (when personalized): the same with each user's first 3
//!   personalized hints, filled up with global hints when they have fewer than 3 — what a
//!   request for that user would show. The graph, the recent items and the searched queries
//!   used here are those before the last day; which users are kept is decided on the whole
//!   window.
//!
//! Both are `null`, with `evaluation_unavailable` saying why, when there is nothing to compare.
//!
//! # Artifact (JSON)
//! ```json
//! {"format": "trainyard.hint.v1", "generated_at": 1795900000,
//!  "global": [{"hint": "red shoes", "pv": 120}, ...],
//!  "personalized": {"user-1": [{"hint": "running socks", "pv": 14}, ...], ...}}
//! ```
//! `pv` is always the query's session count over the window. `personalized` is present
//! exactly when the model is personalized (possibly `{}` when no user got hints): serving reads
//! its presence as "personalized model" (`hit` up to 30). `generated_at` is the task start the window ends at.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use trainyard_core::catalog::QUERY_LOG_FILTER_FIELDS;
use trainyard_data::records::DatasetKind;

use crate::common::{
    DAY_SECONDS, FastMap, FastSet, KeySample, PhaseProgress, TextTable, TimeRange, estimated_rows, for_each_batch,
    integer_column, optional_text, stable_hash, text_column,
};
use crate::filter::RecordFilter;
use crate::searches::{QueryCount, SearchCounter, SearchTables, scan_searches, top_queries};
use crate::{TrainError, TrainedModel, TrainingContext, TrainingInput};

/// The artifact's format tag.
pub const FORMAT: &str = "trainyard.hint.v1";

/// Personalized hints kept per user.
const HINTS_PER_USER: usize = 10;
/// Users that get personalized hints, at most (the most active).
const MAX_PERSONALIZED_USERS: usize = 100_000;
/// Searches kept for the join with clicks, at most (a uniform sample by `rn`).
const MAX_JOINED_SEARCHES: usize = 2_000_000;
/// Items a user acted on that their hints come from.
const RECENT_ITEMS_PER_USER: usize = 10;
/// Hints the evaluation looks at (serving's default per request).
const EVALUATED_HINTS: usize = 3;

/// The windows counted, by their index in the [`SearchCounter`] (the last day needs no counts:
/// only each user's first search on it is looked at).
const CURRENT: usize = 0;
const EVALUATION_TRAINING: usize = 1;

#[derive(Serialize)]
struct Artifact<'a> {
    format: &'static str,
    generated_at: i64,
    global: Vec<Hint<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    personalized: Option<BTreeMap<&'a str, Vec<Hint<'a>>>>,
}

#[derive(Serialize)]
struct Hint<'a> {
    hint: &'a str,
    pv: u64,
}

/// Clicks on items joined to the queries of the searches they came from.
#[derive(Default)]
struct ClickGraph {
    edges: FastMap<(u32, u32), u32>,
}

/// For one item: its joined clicks and how they split among queries.
struct ItemQueries {
    total: u32,
    queries: Vec<(u32, u32)>,
}

impl ClickGraph {
    fn add(&mut self, item: u32, query: u32) {
        *self.edges.entry((item, query)).or_default() += 1;
    }

    fn by_item(&self) -> FastMap<u32, ItemQueries> {
        let mut by_item: FastMap<u32, ItemQueries> = FastMap::default();
        for ((item, query), clicks) in &self.edges {
            let entry = by_item.entry(*item).or_insert(ItemQueries { total: 0, queries: Vec::new() });
            entry.total += clicks;
            entry.queries.push((*query, *clicks));
        }
        by_item
    }
}

/// The items a user acted on most recently (distinct, at most [`RECENT_ITEMS_PER_USER`]).
#[derive(Default, Clone)]
struct RecentItems {
    items: Vec<(i64, u32)>,
}

impl RecentItems {
    fn add(&mut self, time: i64, item: u32) {
        if let Some(known) = self.items.iter_mut().find(|(_, known)| *known == item) {
            known.0 = known.0.max(time);
            return;
        }
        self.items.push((time, item));
        if self.items.len() > RECENT_ITEMS_PER_USER {
            // The oldest goes; ties go to the larger item index so the result does not depend
            // on the reading order.
            let oldest = (0..self.items.len())
                .min_by_key(|index| (self.items[*index].0, std::cmp::Reverse(self.items[*index].1)))
                .unwrap_or(0);
            self.items.swap_remove(oldest);
        }
    }

    fn items(&self) -> impl Iterator<Item = u32> + '_ {
        self.items.iter().map(|(_, item)| *item)
    }
}

/// What a kept user's hints are computed from: for the model (whole window) and for the
/// evaluation (before the last day).
#[derive(Default, Clone)]
struct UserHistory {
    recent: RecentItems,
    recent_before_evaluation_day: RecentItems,
    searched: FastSet<u32>,
    searched_before_evaluation_day: FastSet<u32>,
}

/// A user's personalized hints: queries ranked by their share of the clicks on the user's
/// recent items, leaving out what the user searched.
fn personal_hints(
    recent: &RecentItems,
    searched: &FastSet<u32>,
    graph: &FastMap<u32, ItemQueries>,
    pv: &FastMap<u32, u64>,
    queries: &TextTable,
) -> Vec<u32> {
    let mut scores: FastMap<u32, f64> = FastMap::default();
    for item in recent.items() {
        let Some(item_queries) = graph.get(&item) else {
            continue;
        };
        for (query, clicks) in &item_queries.queries {
            if searched.contains(query) {
                continue;
            }
            *scores.entry(*query).or_default() += f64::from(*clicks) / f64::from(item_queries.total);
        }
    }
    let mut ranked: Vec<(u32, f64)> = scores.into_iter().collect();
    ranked.sort_unstable_by(|left, right| {
        right
            .1
            .total_cmp(&left.1)
            .then_with(|| pv.get(&right.0).copied().unwrap_or(0).cmp(&pv.get(&left.0).copied().unwrap_or(0)))
            .then_with(|| queries.text(left.0).cmp(queries.text(right.0)))
    });
    ranked.truncate(HINTS_PER_USER);
    ranked.into_iter().map(|(query, _)| query).collect()
}

/// The first `count` of `personal`, filled up with `global` (without repeats).
fn shown_hints(personal: &[u32], global: &[u32], count: usize) -> Vec<u32> {
    let mut shown: Vec<u32> = Vec::with_capacity(count);
    for query in personal.iter().chain(global) {
        if shown.len() == count {
            break;
        }
        if !shown.contains(query) {
            shown.push(*query);
        }
    }
    shown
}

/// What the behavior scans found, for the data report.
#[derive(Default)]
struct BehaviorReport {
    rows_read: u64,
    positive_events: u64,
    joined_clicks: u64,
    users_with_activity: usize,
    users_kept: usize,
}

/// Trains hint.
pub fn train(input: &TrainingInput<'_>, context: &TrainingContext) -> Result<TrainedModel, TrainError> {
    let window_days: i64 = input.parameter("window_days").unwrap_or(14);
    let top_n: usize = input.parameter("top_n").unwrap_or(100);
    let personalized = input.parameter::<bool>("personalized").unwrap_or(false) || input.model_type == "near_realtime";
    let filter =
        RecordFilter::from_parameter(input.parameters.get("filter").map(String::as_str), QUERY_LOG_FILTER_FIELDS)?;
    let now = input.now_seconds;

    let current = TimeRange::days_ending_at(now, window_days);
    let last_day = TimeRange { start: current.end - DAY_SECONDS, end: current.end };
    let evaluation_training = TimeRange { start: current.start, end: last_day.start };
    let mut ranges = [TimeRange { start: 0, end: 0 }; 2];
    ranges[CURRENT] = current;
    ranges[EVALUATION_TRAINING] = evaluation_training;
    let mut counter = SearchCounter::new(&ranges)?;

    // Phase 1: the query log; its last 5 points of progress are computing the window counts.
    let search_share = if personalized { 50 } else { 95 };
    let scan_share = search_share - 5;
    let mut search_progress = PhaseProgress::new(
        context,
        0,
        scan_share,
        estimated_rows(input.snapshot, DatasetKind::QueryLog, &current.partition_days()),
    );
    let mut tables = SearchTables::default();
    let mut joined_searches: KeySample<(u32, i64)> = KeySample::new(MAX_JOINED_SEARCHES);
    let mut activity: Vec<u32> = Vec::new();
    let mut next_queries: FastMap<u32, (i64, u32, Box<str>)> = FastMap::default();
    let report =
        scan_searches(input.snapshot, context, &mut search_progress, &filter, &mut tables, &mut counter, |search| {
            let Some(user) = search.user else {
                if personalized && let Some(rn) = search.rn {
                    joined_searches.entry(stable_hash(&[rn]), || (search.query, search.time));
                }
                return;
            };
            if personalized {
                if let Some(rn) = search.rn {
                    joined_searches.entry(stable_hash(&[rn]), || (search.query, search.time));
                }
                if activity.len() <= user as usize {
                    activity.resize(user as usize + 1, 0);
                }
                activity[user as usize] += 1;
            }
            if last_day.contains(search.time) {
                let replaces = match next_queries.get(&user) {
                    None => true,
                    Some((time, _, text)) => (search.time, search.text) < (*time, &**text),
                };
                if replaces {
                    next_queries.insert(user, (search.time, search.query, search.text.into()));
                }
            }
        })?;
    if report.counted == 0 {
        return Err(TrainError::NotEnoughData(report.nothing_counted_message(window_days, current, &filter)));
    }
    context.check_cancelled()?;

    let mut count_progress = PhaseProgress::new(context, scan_share, search_share, counter.pairs() as u64);
    let mut counts = counter.counts(context, &mut count_progress)?;
    let current_counts = std::mem::take(&mut counts[CURRENT]);
    let evaluation_counts = std::mem::take(&mut counts[EVALUATION_TRAINING]);
    let distinct_queries = current_counts.len();
    let pv: FastMap<u32, u64> = current_counts.iter().map(|count| (count.query, count.pv)).collect();
    let global = top_queries(current_counts, &tables.queries, top_n);
    let evaluation_pv: FastMap<u32, u64> = evaluation_counts.iter().map(|count| (count.query, count.pv)).collect();
    let evaluation_global: Vec<u32> =
        top_queries(evaluation_counts, &tables.queries, EVALUATED_HINTS).into_iter().map(|count| count.query).collect();

    let mut warnings = Vec::new();
    if global.len() < top_n {
        warnings.push(format!(
            "the window holds {} distinct queries, so the model has {} global hints, not top_n = {top_n}",
            global.len(),
            global.len()
        ));
    }

    // Phases 2 and 3: clicks, for personalized hints.
    let mut personalized_hints: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut evaluation_personal: FastMap<u32, Vec<u32>> = FastMap::default();
    let mut behavior_report = BehaviorReport::default();
    let mut items = TextTable::default();
    if personalized {
        let behavior_days = current.partition_days();
        let behavior_rows = estimated_rows(input.snapshot, DatasetKind::Behavior, &behavior_days);
        let mut graph = ClickGraph::default();
        let mut evaluation_graph = ClickGraph::default();
        let mut click_progress = PhaseProgress::new(context, 50, 75, behavior_rows);
        let click_columns = ["user_id", "rn", "item_id", "bhv_type", "bhv_time"];
        behavior_report.rows_read = for_each_batch(
            input.snapshot,
            DatasetKind::Behavior,
            behavior_days.clone(),
            &click_columns,
            context,
            &mut click_progress,
            |batch| {
                let user_ids = text_column(batch, "user_id")?;
                let request_ids = text_column(batch, "rn")?;
                let item_ids = text_column(batch, "item_id")?;
                let types = text_column(batch, "bhv_type")?;
                let times = integer_column(batch, "bhv_time")?;
                for row in 0..batch.num_rows() {
                    let time = times.value(row);
                    if !current.contains(time) || types.value(row) == "expose" {
                        continue;
                    }
                    behavior_report.positive_events += 1;
                    let item = items.intern(item_ids.value(row));
                    if let Some((query, search_time)) = joined_searches.get(stable_hash(&[request_ids.value(row)])) {
                        behavior_report.joined_clicks += 1;
                        graph.add(item, *query);
                        if evaluation_training.contains(*search_time) && evaluation_training.contains(time) {
                            evaluation_graph.add(item, *query);
                        }
                    }
                    if let Some(user_id) = optional_text(user_ids, row) {
                        let user = tables.users.intern(user_id);
                        if activity.len() <= user as usize {
                            activity.resize(user as usize + 1, 0);
                        }
                        activity[user as usize] += 1;
                    }
                }
                Ok(())
            },
        )?;

        // The most active users, ties by id so the choice does not depend on reading order.
        let mut ranked_users: Vec<u32> =
            (0..activity.len() as u32).filter(|user| activity[*user as usize] > 0).collect();
        behavior_report.users_with_activity = ranked_users.len();
        ranked_users.sort_unstable_by(|left, right| {
            activity[*right as usize]
                .cmp(&activity[*left as usize])
                .then_with(|| tables.users.id(*left).cmp(tables.users.id(*right)))
        });
        ranked_users.truncate(MAX_PERSONALIZED_USERS);
        behavior_report.users_kept = ranked_users.len();
        if behavior_report.users_with_activity > MAX_PERSONALIZED_USERS {
            warnings.push(format!(
                "personalized hints are kept for the {MAX_PERSONALIZED_USERS} most active of {} users",
                behavior_report.users_with_activity
            ));
        }
        let slots: FastMap<u32, usize> = ranked_users.iter().enumerate().map(|(slot, user)| (*user, slot)).collect();
        let mut histories: Vec<UserHistory> = vec![UserHistory::default(); ranked_users.len()];
        for (query, user) in counter.user_queries(CURRENT) {
            if let Some(slot) = slots.get(&user) {
                histories[*slot].searched.insert(query);
            }
        }
        for (query, user) in counter.user_queries(EVALUATION_TRAINING) {
            if let Some(slot) = slots.get(&user) {
                histories[*slot].searched_before_evaluation_day.insert(query);
            }
        }

        let mut history_progress = PhaseProgress::new(context, 75, 95, behavior_rows);
        let history_columns = ["user_id", "item_id", "bhv_type", "bhv_time"];
        for_each_batch(
            input.snapshot,
            DatasetKind::Behavior,
            behavior_days,
            &history_columns,
            context,
            &mut history_progress,
            |batch| {
                let user_ids = text_column(batch, "user_id")?;
                let item_ids = text_column(batch, "item_id")?;
                let types = text_column(batch, "bhv_type")?;
                let times = integer_column(batch, "bhv_time")?;
                for row in 0..batch.num_rows() {
                    let time = times.value(row);
                    if !current.contains(time) || types.value(row) == "expose" {
                        continue;
                    }
                    let Some(slot) = optional_text(user_ids, row)
                        .and_then(|user_id| tables.users.find(user_id))
                        .and_then(|user| slots.get(&user))
                    else {
                        continue;
                    };
                    let Some(item) = items.find(item_ids.value(row)) else {
                        continue;
                    };
                    histories[*slot].recent.add(time, item);
                    if evaluation_training.contains(time) {
                        histories[*slot].recent_before_evaluation_day.add(time, item);
                    }
                }
                Ok(())
            },
        )?;
        context.check_cancelled()?;

        let graph_by_item = graph.by_item();
        let evaluation_graph_by_item = evaluation_graph.by_item();
        for (slot, user) in ranked_users.iter().enumerate() {
            let history = &histories[slot];
            let served_hints = personal_hints(&history.recent, &history.searched, &graph_by_item, &pv, &tables.queries);
            if !served_hints.is_empty() {
                personalized_hints.insert(*user, served_hints);
            }
            if next_queries.contains_key(user) {
                let evaluated_hints = personal_hints(
                    &history.recent_before_evaluation_day,
                    &history.searched_before_evaluation_day,
                    &evaluation_graph_by_item,
                    &evaluation_pv,
                    &tables.queries,
                );
                evaluation_personal.insert(*user, evaluated_hints);
            }
        }
        if behavior_report.joined_clicks == 0 {
            warnings.push(format!(
                "personalized hints need behavior events other than expose whose rn is the rn of a counted \
                 search; there are none in the last {window_days} days, so the model has global hints only"
            ));
        }
    }

    // Evaluation.
    let mut metrics = if evaluation_training.is_empty() {
        unavailable("a 1-day window has nothing left once its last day is held out")
    } else if evaluation_global.is_empty() {
        unavailable("no counted searches before the last day of the window")
    } else if next_queries.is_empty() {
        unavailable("no user with a user_id made a counted search on the last day of the window")
    } else {
        let evaluated = next_queries.len();
        let global_hits =
            next_queries.values().filter(|(_, query, _)| evaluation_global.contains(query)).count() as f64;
        let personalized_recall = personalized.then(|| {
            let hits = next_queries
                .iter()
                .filter(|(user, (_, query, _))| {
                    let personal = evaluation_personal.get(user).map(Vec::as_slice).unwrap_or_default();
                    shown_hints(personal, &evaluation_global, EVALUATED_HINTS).contains(query)
                })
                .count();
            hits as f64 / evaluated as f64
        });
        json!({
            "recall_at_3_global": global_hits / evaluated as f64,
            "recall_at_3_personalized": personalized_recall,
            "evaluated_users": evaluated,
            "evaluated_users_with_personalized_hints":
                evaluation_personal.values().filter(|hints| !hints.is_empty()).count(),
        })
    };
    if let Some(reason) = metrics.get("evaluation_unavailable").and_then(|reason| reason.as_str()) {
        warnings.push(format!("no evaluation: {reason}"));
    }
    metrics["evaluation_training_window"] = evaluation_training.to_json();
    metrics["evaluation_day"] = last_day.to_json();

    let data_report = json!({
        "window": current.to_json(),
        "window_days": window_days,
        "top_n": top_n,
        "filter": if filter.is_empty() { None } else { Some(filter.text()) },
        "query_log": report.to_json(),
        "distinct_queries": distinct_queries,
        "users": counter.users(CURRENT),
        "global_hints": global.len(),
        "personalized": {
            "enabled": personalized,
            "behavior_rows_read": behavior_report.rows_read,
            "behavior_events_other_than_expose": behavior_report.positive_events,
            "clicks_joined_to_searches": behavior_report.joined_clicks,
            "searches_kept_for_the_join": joined_searches.len(),
            "join_sample_rate": joined_searches.rate(),
            "items": items.len(),
            "active_users": behavior_report.users_with_activity,
            "users_kept": behavior_report.users_kept,
            "users_with_hints": personalized_hints.len(),
        },
    });

    let hint = |count: &QueryCount| Hint { hint: tables.queries.text(count.query), pv: count.pv };
    let artifact = Artifact {
        format: FORMAT,
        generated_at: now,
        global: global.iter().map(hint).collect(),
        personalized: personalized.then(|| {
            personalized_hints
                .iter()
                .map(|(user, hints)| {
                    let listed = hints
                        .iter()
                        .map(|query| Hint {
                            hint: tables.queries.text(*query),
                            pv: pv.get(query).copied().unwrap_or(0),
                        })
                        .collect();
                    (tables.users.id(*user), listed)
                })
                .collect()
        }),
    };
    let artifact_bytes = serde_json::to_vec(&artifact)
        .map_err(|error| TrainError::Internal(format!("encoding the artifact: {error}")))?;
    Ok(TrainedModel { artifact: artifact_bytes, metrics, data_report, warnings, replace_served: true })
}

fn unavailable(reason: &str) -> serde_json::Value {
    json!({
        "recall_at_3_global": null,
        "recall_at_3_personalized": null,
        "evaluation_unavailable": reason,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::test_support::{Fixture, NOW, context, event_in, input, keys, search, user_search};

    fn artifact(model: &TrainedModel) -> Value {
        serde_json::from_slice(&model.artifact).unwrap()
    }

    fn hints(list: &Value) -> Vec<(String, u64)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|hint| (hint["hint"].as_str().unwrap().to_string(), hint["pv"].as_u64().unwrap()))
            .collect()
    }

    fn searched_with_rn(
        query: &str,
        user: Option<&str>,
        rn: &str,
        time: i64,
    ) -> trainyard_data::records::QueryLogEntry {
        let mut entry = search(query, time);
        entry.user_id = user.map(str::to_string);
        entry.rn = Some(rn.to_string());
        entry
    }

    #[test]
    fn global_hints_are_hot_counting_cut_to_top_n_and_personalization_is_off_by_default() {
        let fixture = Fixture::new();
        let day = DAY_SECONDS;
        fixture.append_query_log(&[
            user_search("Shoes", "u1", NOW - 2 * day),
            user_search("shoes", "u1", NOW - 2 * day + 60), // same session
            user_search("shoes", "u2", NOW - 2 * day),
            user_search("hat", "u3", NOW - 3 * day),
            search("scarf", NOW - 20 * day), // outside the 14 days
        ]);
        let snapshot = fixture.snapshot();
        let model = train(&input(&snapshot, "offline_inference", &[("top_n", "5")]), &context()).unwrap();
        let served = artifact(&model);
        assert_eq!(served["format"], "trainyard.hint.v1");
        assert_eq!(served["generated_at"], NOW);
        assert_eq!(hints(&served["global"]), vec![("shoes".to_string(), 2), ("hat".to_string(), 1)]);
        assert_eq!(keys(&served), ["format", "generated_at", "global"].map(String::from).into());
        assert_eq!(model.data_report["personalized"]["enabled"], false);
    }

    /// Three users searched and clicked; "ann" clicked the items others found with "running
    /// socks" and "trail shoes".
    fn clicks_fixture() -> Fixture {
        let fixture = Fixture::new();
        let day = DAY_SECONDS;
        let mut searches = Vec::new();
        let mut events = Vec::new();
        // Others: "running socks" led to clicks on sock-1 (3 times) and "trail shoes" to
        // trail-1 (once); "socks" to sock-1 once. Searches without a user count as well.
        for (index, (query, item)) in [
            ("running socks", "sock-1"),
            ("running socks", "sock-1"),
            ("running socks", "sock-1"),
            ("socks", "sock-1"),
            ("trail shoes", "trail-1"),
        ]
        .into_iter()
        .enumerate()
        {
            let rn = format!("other-{index}");
            let user = format!("other{index}");
            searches.push(searched_with_rn(query, Some(&user), &rn, NOW - 5 * day));
            events.push(event_in(&rn, &user, item, "expose", NOW - 5 * day));
            events.push(event_in(&rn, &user, item, "click", NOW - 5 * day + 10));
        }
        // ann searched "socks" (so it is not hinted to her) and clicked sock-1 and trail-1.
        searches.push(searched_with_rn("socks", Some("ann"), "ann-1", NOW - 4 * day));
        events.push(event_in("ann-1", "ann", "sock-1", "click", NOW - 4 * day + 5));
        events.push(event_in("elsewhere", "ann", "trail-1", "cart", NOW - 3 * day));
        // ann's next query, on the last day: "running socks".
        searches.push(searched_with_rn("running socks", Some("ann"), "ann-2", NOW - 3600));
        searches.push(searched_with_rn("zzz", Some("ann"), "ann-3", NOW - 60));
        fixture.append_query_log(&searches);
        fixture.compact();
        fixture.append_behavior(&events);
        fixture
    }

    #[test]
    fn personalized_hints_come_from_queries_that_led_to_the_users_clicks() {
        let fixture = clicks_fixture();
        let snapshot = fixture.snapshot();
        let context = context();
        let model = train(&input(&snapshot, "near_realtime", &[]), &context).unwrap();
        let served = artifact(&model);
        // sock-1: running socks 3/4 + socks 1/4 + ann's own socks search (joined too: 3/5, 2/5);
        // trail-1: trail shoes 1/1. ann searched socks and (on the last day) running socks.
        // So ann's only hint is trail shoes; the others get what they did not search.
        let personalized = served["personalized"].as_object().unwrap();
        assert_eq!(hints(&personalized["ann"]), vec![("trail shoes".to_string(), 1)]);
        // other0 searched running socks and clicked sock-1: socks is hinted.
        assert_eq!(hints(&personalized["other0"]), vec![("socks".to_string(), 2)]);
        // other4 searched trail shoes and clicked trail-1, which no other query led to.
        assert!(!personalized.contains_key("other4"), "{personalized:?}");
        assert_eq!(model.data_report["personalized"]["clicks_joined_to_searches"], 6);
        assert_eq!(model.data_report["personalized"]["users_kept"], 6);
        assert_eq!(model.data_report["personalized"]["join_sample_rate"], 1.0);
        // Evaluation: ann's next query on the last day is "running socks"; before that day she
        // had searched only "socks", so her hints were trail shoes (1 = all of trail-1's
        // clicks) and running socks (3/5 of sock-1's); globally it is first too (pv 3 before
        // the last day).
        assert_eq!(model.metrics["evaluated_users"], 1);
        assert_eq!(model.metrics["recall_at_3_personalized"], 1.0);
        assert_eq!(model.metrics["recall_at_3_global"], 1.0);
        assert_eq!(context.progress(), 95);

        // The same data with personalized=true on the offline model type.
        let offline = train(&input(&snapshot, "offline_inference", &[("personalized", "true")]), &context).unwrap();
        assert_eq!(served["personalized"], artifact(&offline)["personalized"]);
        assert_eq!(offline.data_report["personalized"]["enabled"], true);
    }

    #[test]
    fn evaluation_measures_recall_of_the_next_query() {
        let fixture = Fixture::new();
        let day = DAY_SECONDS;
        let mut searches = Vec::new();
        // Before the last day, a (4), b (3), c (2), d (1).
        for (query, count) in [("a", 4), ("b", 3), ("c", 2), ("d", 1)] {
            for index in 0..count {
                searches.push(search(query, NOW - 3 * day - index));
            }
        }
        // The last day: u1 first searches b, then z; u2 searches d; u3 c; u4 only z.
        searches.push(user_search("z", "u1", NOW - 50));
        searches.push(user_search("b", "u1", NOW - 100));
        searches.push(user_search("d", "u2", NOW - 100));
        searches.push(user_search("c", "u3", NOW - 100));
        searches.push(user_search("z", "u4", NOW - 100));
        fixture.append_query_log(&searches);
        let snapshot = fixture.snapshot();
        let model = train(&input(&snapshot, "offline_inference", &[]), &context()).unwrap();
        assert_eq!(model.metrics["evaluated_users"], 4);
        assert_eq!(model.metrics["recall_at_3_global"], 0.5, "b and c are in a, b, c; d and z are not");
        assert!(model.metrics["recall_at_3_personalized"].is_null());
    }

    #[test]
    fn missing_searches_fail_with_a_message_naming_them_and_clicks_alone_are_not_enough() {
        let fixture = Fixture::new();
        fixture.append_behavior(&[event_in("r", "u", "i", "click", NOW)]);
        let snapshot = fixture.snapshot();
        let error = train(&input(&snapshot, "near_realtime", &[("window_days", "7")]), &context()).unwrap_err();
        assert!(matches!(error, TrainError::NotEnoughData(_)), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("no raw_query searches with results in the last 7 days (window ending 2026-11-28)"),
            "{error}"
        );
    }

    #[test]
    fn personalization_without_clicks_warns_and_keeps_global_hints() {
        let fixture = Fixture::new();
        fixture.append_query_log(&[user_search("a", "u1", NOW - DAY_SECONDS * 2)]);
        let snapshot = fixture.snapshot();
        let model = train(&input(&snapshot, "near_realtime", &[]), &context()).unwrap();
        assert_eq!(hints(&artifact(&model)["global"]), vec![("a".to_string(), 1)]);
        assert!(model.warnings.iter().any(|warning| warning.contains("global hints only")), "{:?}", model.warnings);
        assert!(model.metrics["recall_at_3_global"].is_null());
    }

    #[test]
    fn a_cancelled_task_stops_without_a_model() {
        let fixture = clicks_fixture();
        let snapshot = fixture.snapshot();
        let context = context();
        context.cancel();
        assert!(matches!(train(&input(&snapshot, "near_realtime", &[]), &context), Err(TrainError::Cancelled)));
    }

    #[test]
    fn recent_items_keep_the_latest_distinct_ones_and_shown_hints_fill_from_global() {
        let mut recent = RecentItems::default();
        for item in 0..12u32 {
            recent.add(i64::from(item) * 10, item);
        }
        recent.add(5, 11); // an older click on a known item changes nothing
        let mut kept: Vec<u32> = recent.items().collect();
        kept.sort_unstable();
        assert_eq!(kept, (2..12).collect::<Vec<u32>>());
        assert_eq!(shown_hints(&[7], &[1, 7, 2, 3], 3), vec![7, 1, 2]);
        assert_eq!(shown_hints(&[], &[1], 3), vec![1]);
    }
}
