//! hot: the top searches of an app group (model types `offline_inference` and `near_realtime`,
//! trained the same way; upstream shows tags for the real-time model only, Trainyard serves them
//! for both).
//!
//! # Algorithm
//! 1. Count typed searches over the last `window_days` days (default 14) ending at the task
//!    start, as the crate's `searches` module defines: `raw_query` searches that returned results
//!    (`hits > 0`), queries normalised (trim, collapsed whitespace, ASCII lower case,
//!    full-width → half-width), the `filter` applied (fields `user_id`, `biz_id`, `hits`,
//!    `query`), each query counted once per session of its user (searches of one user less than
//!    30 minutes apart; without `user_id`, the search's `rn`). `pv` is that session count, `uv`
//!    the number of distinct visitors.
//! 2. Keep the `top_n` (default 100) by `pv` descending, then query text ascending.
//! 3. Tag each entry against the previous window of the same length (the `window_days` days
//!    before this one), counted the same way and cut to its own `top_n`:
//!    - `0` new: the query is not in the previous window's top list;
//!    - `2` surging: it is, and `(pv + 1) / (previous pv + 1) >= 2`;
//!    - `1` hot: otherwise.
//!
//! Allow and deny dictionaries are usage parameters: serving applies them, the trainer does not
//! read resources.
//!
//! # Evaluation (`metrics`)
//! A model is trained the same way on the window minus its last day (`[window start, now - 1
//! day)`) and compared with the last day (`[now - 1 day, now]`), counted the same way:
//! - `precision_at_10`: the share of that model's first 10 entries (fewer if it has fewer) that
//!   are among the last day's 10 most searched queries;
//! - `coverage`: the share of the last day's searches (session-counted `pv`) whose query is in
//!   that model's `top_n` list; `coverage_at_10` the same for its first 10.
//!
//! Both are `null`, with `evaluation_unavailable` saying why, when the window has a single day
//! or when either part has no counted searches.
//!
//! # Artifact (JSON)
//! ```json
//! {"format": "trainyard.hot.v1", "generated_at": 1795900000, "window_days": 14,
//!  "entries": [{"query": "red shoes", "pv": 120, "uv": 97, "tags": 1}, ...]}
//! ```
//! `generated_at` is the task start (Unix seconds) the windows end at; entries are sorted by
//! `pv` descending, then `query` ascending.

use serde::Serialize;
use serde_json::json;
use trainyard_core::catalog::QUERY_LOG_FILTER_FIELDS;
use trainyard_data::records::DatasetKind;

use crate::common::{DAY_SECONDS, FastMap, FastSet, PhaseProgress, TimeRange, estimated_rows};
use crate::filter::RecordFilter;
use crate::searches::{QueryCount, SearchCounter, SearchTables, scan_searches, top_queries};
use crate::{TrainError, TrainedModel, TrainingContext, TrainingInput};

/// The artifact's format tag.
pub const FORMAT: &str = "trainyard.hot.v1";

/// Entries the evaluation compares (precision@10).
const EVALUATION_DEPTH: usize = 10;

/// The progress the query-log scan ends at; computing the window counts takes it to 95.
const SCAN_PERCENT: u32 = 90;
const COUNTS_PERCENT: u32 = 95;

/// The windows counted, by their index in the [`SearchCounter`].
const CURRENT: usize = 0;
const PREVIOUS: usize = 1;
const EVALUATION_TRAINING: usize = 2;
const EVALUATION_DAY: usize = 3;

/// Tags of an entry.
const TAG_NEW: u8 = 0;
const TAG_HOT: u8 = 1;
const TAG_SURGING: u8 = 2;

#[derive(Serialize)]
struct Artifact<'a> {
    format: &'static str,
    generated_at: i64,
    window_days: i64,
    entries: Vec<Entry<'a>>,
}

#[derive(Serialize)]
struct Entry<'a> {
    query: &'a str,
    pv: u64,
    uv: u64,
    tags: u8,
}

/// The tag of a query counted `current_pv` times now and `previous_pv` times in the previous
/// window's top list (`None` when it was not in it).
fn tag(current_pv: u64, previous_pv: Option<u64>) -> u8 {
    let Some(previous_pv) = previous_pv else {
        return TAG_NEW;
    };
    // Smoothed so that a query going from 0 to 1, or 1 to 2, is not called surging.
    if (current_pv + 1) as f64 / (previous_pv + 1) as f64 >= 2.0 { TAG_SURGING } else { TAG_HOT }
}

/// precision@10, coverage and coverage@10 of `predicted` (a top list) against `actual` (every
/// query's count on the evaluation day); `None` when either is empty.
pub(crate) fn evaluate_top_list(
    predicted: &[QueryCount],
    actual: &[QueryCount],
    tables: &SearchTables,
) -> serde_json::Value {
    let actual_total: u64 = actual.iter().map(|count| count.pv).sum();
    let actual_top: FastSet<u32> =
        top_queries(actual.to_vec(), &tables.queries, EVALUATION_DEPTH).into_iter().map(|count| count.query).collect();
    let predicted_first = &predicted[..predicted.len().min(EVALUATION_DEPTH)];
    let precision = predicted_first.iter().filter(|count| actual_top.contains(&count.query)).count() as f64
        / predicted_first.len() as f64;
    let actual_by_query: FastMap<u32, u64> = actual.iter().map(|count| (count.query, count.pv)).collect();
    let covered = |list: &[QueryCount]| -> f64 {
        let hits: u64 = list.iter().map(|count| actual_by_query.get(&count.query).copied().unwrap_or(0)).sum();
        hits as f64 / actual_total as f64
    };
    json!({
        "precision_at_10": precision,
        "coverage": covered(predicted),
        "coverage_at_10": covered(predicted_first),
        "evaluation_day_searches": actual_total,
        "evaluation_day_queries": actual.len(),
        "evaluation_model_entries": predicted.len(),
    })
}

/// Trains hot.
pub fn train(input: &TrainingInput<'_>, context: &TrainingContext) -> Result<TrainedModel, TrainError> {
    let window_days: i64 = input.parameter("window_days").unwrap_or(14);
    let top_n: usize = input.parameter("top_n").unwrap_or(100);
    let filter =
        RecordFilter::from_parameter(input.parameters.get("filter").map(String::as_str), QUERY_LOG_FILTER_FIELDS)?;
    let now = input.now_seconds;

    let current = TimeRange::days_ending_at(now, window_days);
    let previous = TimeRange { start: current.start - window_days * DAY_SECONDS, end: current.start };
    let last_day = TimeRange { start: current.end - DAY_SECONDS, end: current.end };
    let evaluation_training = TimeRange { start: current.start, end: last_day.start };
    let mut ranges = [TimeRange { start: 0, end: 0 }; 4];
    ranges[CURRENT] = current;
    ranges[PREVIOUS] = previous;
    ranges[EVALUATION_TRAINING] = evaluation_training;
    ranges[EVALUATION_DAY] = last_day;
    let mut counter = SearchCounter::new(&ranges)?;
    let scanned_days = TimeRange { start: previous.start, end: current.end }.partition_days();
    let mut progress = PhaseProgress::new(
        context,
        0,
        SCAN_PERCENT,
        estimated_rows(input.snapshot, DatasetKind::QueryLog, &scanned_days),
    );
    let mut tables = SearchTables::default();
    let report = scan_searches(input.snapshot, context, &mut progress, &filter, &mut tables, &mut counter, |_| {})?;
    if report.counted == 0 {
        return Err(TrainError::NotEnoughData(report.nothing_counted_message(window_days, current, &filter)));
    }
    context.check_cancelled()?;

    let mut count_progress = PhaseProgress::new(context, SCAN_PERCENT, COUNTS_PERCENT, counter.pairs() as u64);
    let mut counts = counter.counts(context, &mut count_progress)?;
    let users = counter.users(CURRENT);
    let previous_searches = counter.searches(PREVIOUS);
    // The pairs' runs are no longer needed.
    drop(counter);
    let mut window_counts = |window: usize| std::mem::take(&mut counts[window]);
    let current_counts = window_counts(CURRENT);
    let previous_counts = window_counts(PREVIOUS);
    let evaluation_training_counts = window_counts(EVALUATION_TRAINING);
    let evaluation_day_counts = window_counts(EVALUATION_DAY);
    let distinct_queries = current_counts.len();
    let sessions_counted: u64 = current_counts.iter().map(|count| count.pv).sum();
    let current_top = top_queries(current_counts, &tables.queries, top_n);
    let previous_top = top_queries(previous_counts, &tables.queries, top_n);
    let previous_pv: FastMap<u32, u64> = previous_top.iter().map(|count| (count.query, count.pv)).collect();
    let entries: Vec<Entry<'_>> = current_top
        .iter()
        .map(|count| Entry {
            query: tables.queries.text(count.query),
            pv: count.pv,
            uv: count.uv,
            tags: tag(count.pv, previous_pv.get(&count.query).copied()),
        })
        .collect();

    let mut warnings = Vec::new();
    if entries.len() < top_n {
        warnings.push(format!(
            "the window holds {} distinct queries, so the list has {} entries, not top_n = {top_n}",
            entries.len(),
            entries.len()
        ));
    }
    if previous_searches == 0 {
        warnings.push(format!(
            "the previous {window_days} days hold no counted searches, so every entry is tagged new (0)"
        ));
    }

    let mut metrics = if evaluation_training.is_empty() {
        unavailable("a 1-day window has nothing left once its last day is held out")
    } else if evaluation_training_counts.is_empty() {
        unavailable("no counted searches before the last day of the window")
    } else if evaluation_day_counts.is_empty() {
        unavailable("no counted searches on the last day of the window")
    } else {
        let predicted = top_queries(evaluation_training_counts, &tables.queries, top_n);
        evaluate_top_list(&predicted, &evaluation_day_counts, &tables)
    };
    if let Some(reason) = metrics.get("evaluation_unavailable").and_then(|reason| reason.as_str()) {
        warnings.push(format!("no evaluation: {reason}"));
    }
    metrics["evaluation_training_window"] = evaluation_training.to_json();
    metrics["evaluation_day"] = last_day.to_json();
    let tag_counts = |wanted: u8| entries.iter().filter(|entry| entry.tags == wanted).count();
    metrics["entries_new"] = json!(tag_counts(TAG_NEW));
    metrics["entries_hot"] = json!(tag_counts(TAG_HOT));
    metrics["entries_surging"] = json!(tag_counts(TAG_SURGING));

    let counted_pv: u64 = entries.iter().map(|entry| entry.pv).sum();
    let data_report = json!({
        "window": current.to_json(),
        "previous_window": previous.to_json(),
        "window_days": window_days,
        "top_n": top_n,
        "filter": if filter.is_empty() { None } else { Some(filter.text()) },
        "query_log": report.to_json(),
        "sessions_counted": sessions_counted,
        "sessions_in_entries": counted_pv,
        "distinct_queries": distinct_queries,
        "users": users,
        "previous_window_searches_counted": previous_searches,
        "entries": entries.len(),
    });
    let artifact = Artifact { format: FORMAT, generated_at: now, window_days, entries };
    let artifact_bytes = serde_json::to_vec(&artifact)
        .map_err(|error| TrainError::Internal(format!("encoding the artifact: {error}")))?;
    Ok(TrainedModel { artifact: artifact_bytes, metrics, data_report, warnings, replace_served: true })
}

fn unavailable(reason: &str) -> serde_json::Value {
    json!({
        "precision_at_10": null,
        "coverage": null,
        "coverage_at_10": null,
        "evaluation_unavailable": reason,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::test_support::{Fixture, NOW, context, input, search, user_search};

    fn artifact(model: &TrainedModel) -> Value {
        serde_json::from_slice(&model.artifact).unwrap()
    }

    fn entry<'a>(served: &'a Value, query: &str) -> Option<&'a Value> {
        served["entries"].as_array().unwrap().iter().find(|entry| entry["query"] == query)
    }

    #[test]
    fn tags_compare_with_the_previous_window() {
        assert_eq!(tag(5, None), TAG_NEW);
        assert_eq!(tag(5, Some(5)), TAG_HOT);
        assert_eq!(tag(3, Some(1)), TAG_SURGING, "(3+1)/(1+1) = 2");
        assert_eq!(tag(2, Some(1)), TAG_HOT, "(2+1)/(1+1) = 1.5");
        assert_eq!(tag(21, Some(10)), TAG_SURGING);
        assert_eq!(tag(20, Some(10)), TAG_HOT, "21/11 < 2");
    }

    #[test]
    fn the_model_ranks_session_counts_tags_entries_and_keeps_top_n() {
        let fixture = Fixture::new();
        let day = DAY_SECONDS;
        let mut searches = Vec::new();
        // Current window: "shoes" by 6 users (one of them twice in a session, once more in a
        // later session), "hat" by 3, "scarf" by 2, "gloves" by 1.
        for user in 0..6 {
            searches.push(user_search("shoes", &format!("u{user}"), NOW - 2 * day));
        }
        searches.push(user_search("Shoes", "u0", NOW - 2 * day + 60));
        searches.push(user_search("shoes", "u0", NOW - day / 2));
        for user in 0..3 {
            searches.push(user_search("hat", &format!("u{user}"), NOW - 3 * day));
        }
        searches.push(search("scarf", NOW - 4 * day));
        searches.push(search("scarf", NOW - 4 * day));
        searches.push(search("gloves", NOW - 5 * day));
        // Previous window (15 to 28 days ago): shoes 3 (7 now: surging), hat 3 (hot), gloves
        // absent but "boots" there; scarf is new. The top list of the previous window is cut
        // to top_n = 3: shoes, hat, boots — gloves (1) would not be in it anyway.
        for user in 0..3 {
            searches.push(user_search("shoes", &format!("p{user}"), NOW - 20 * day));
            searches.push(user_search("hat", &format!("p{user}"), NOW - 20 * day));
            searches.push(user_search("boots", &format!("p{user}"), NOW - 20 * day));
        }
        searches.push(search("gloves", NOW - 21 * day));
        fixture.append_query_log(&searches[..10]);
        fixture.compact();
        fixture.append_query_log(&searches[10..]);
        let snapshot = fixture.snapshot();
        let context = context();
        let model = train(&input(&snapshot, "near_realtime", &[("top_n", "3")]), &context).unwrap();
        let served = artifact(&model);
        assert_eq!(served["format"], "trainyard.hot.v1");
        assert_eq!(served["generated_at"], NOW);
        assert_eq!(served["window_days"], 14);
        let listed: Vec<(String, u64, u64, u64)> = served["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry["query"].as_str().unwrap().to_string(),
                    entry["pv"].as_u64().unwrap(),
                    entry["uv"].as_u64().unwrap(),
                    entry["tags"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            vec![
                ("shoes".to_string(), 7, 6, u64::from(TAG_SURGING)),
                ("hat".to_string(), 3, 3, u64::from(TAG_HOT)),
                ("scarf".to_string(), 2, 2, u64::from(TAG_NEW)),
            ]
        );
        assert_eq!(model.data_report["query_log"]["searches_counted"], 14);
        assert_eq!(model.data_report["distinct_queries"], 4);
        assert_eq!(model.data_report["users"], 6);
        assert_eq!(model.metrics["entries_surging"], 1);
        assert!(model.warnings.is_empty(), "{:?}", model.warnings);
        assert_eq!(context.progress(), 95, "the runner's dispatch sets 100");
    }

    #[test]
    fn ties_sort_by_query_and_the_window_parameter_is_used() {
        let fixture = Fixture::new();
        fixture.append_query_log(&[
            search("b", NOW - DAY_SECONDS),
            search("a", NOW - DAY_SECONDS),
            search("old", NOW - 3 * DAY_SECONDS),
        ]);
        let snapshot = fixture.snapshot();
        let model = train(&input(&snapshot, "offline_inference", &[("window_days", "2")]), &context()).unwrap();
        let served = artifact(&model);
        let queries: Vec<&str> =
            served["entries"].as_array().unwrap().iter().map(|entry| entry["query"].as_str().unwrap()).collect();
        assert_eq!(queries, vec!["a", "b"]);
        assert_eq!(served["window_days"], 2);
        assert!(entry(&served, "old").is_none());
        assert!(model.warnings.iter().any(|warning| warning.contains("2 distinct queries")), "{:?}", model.warnings);
    }

    #[test]
    fn evaluation_compares_the_model_without_its_last_day_with_that_day() {
        let fixture = Fixture::new();
        let day = DAY_SECONDS;
        let mut searches = Vec::new();
        // Before the last day: q0..q11 searched 20, 19, ..., 9 times (q0 most).
        for rank in 0..12u64 {
            for repeat in 0..(20 - rank) {
                searches.push(search(&format!("q{rank:02}"), NOW - 3 * day - repeat as i64));
            }
        }
        // The last day: q00..q04 (five of the model's first 10) and five others, 2 each, plus
        // q11 (in the model's list, past its first 10) once.
        for query in ["q00", "q01", "q02", "q03", "q04", "x1", "x2", "x3", "x4", "x5"] {
            searches.push(search(query, NOW - 100));
            searches.push(search(query, NOW - 200));
        }
        searches.push(search("q11", NOW - 300));
        fixture.append_query_log(&searches);
        let snapshot = fixture.snapshot();
        let model = train(&input(&snapshot, "offline_inference", &[]), &context()).unwrap();
        assert_eq!(model.metrics["precision_at_10"], 0.5, "{}", model.metrics);
        assert_eq!(model.metrics["evaluation_day_searches"], 21);
        assert_eq!(model.metrics["coverage"].as_f64().unwrap(), 11.0 / 21.0);
        assert_eq!(model.metrics["coverage_at_10"].as_f64().unwrap(), 10.0 / 21.0);
        assert_eq!(model.metrics["evaluation_model_entries"], 12);
    }

    #[test]
    fn without_searches_before_the_last_day_the_evaluation_says_why_it_is_missing() {
        let fixture = Fixture::new();
        fixture.append_query_log(&[search("a", NOW)]);
        let snapshot = fixture.snapshot();
        let model = train(&input(&snapshot, "offline_inference", &[]), &context()).unwrap();
        assert!(model.metrics["precision_at_10"].is_null());
        assert_eq!(model.metrics["evaluation_unavailable"], "no counted searches before the last day of the window");
        assert!(model.warnings.iter().any(|warning| warning.starts_with("no evaluation")), "{:?}", model.warnings);
    }

    #[test]
    fn missing_searches_fail_with_a_message_naming_them() {
        let fixture = Fixture::new();
        let snapshot = fixture.snapshot();
        let error = train(&input(&snapshot, "offline_inference", &[]), &context()).unwrap_err();
        assert!(matches!(error, TrainError::NotEnoughData(_)), "{error:?}");
        assert_eq!(
            error.to_string(),
            "no raw_query searches with results in the last 14 days (window ending 2026-11-28): the query log holds no searches in that window"
        );
    }

    #[test]
    fn searches_that_do_not_count_are_named_in_the_error() {
        let fixture = Fixture::new();
        let mut zero_hits = search("a", NOW);
        zero_hits.hits = 0;
        fixture.append_query_log(&[zero_hits, search("b", NOW - 20 * DAY_SECONDS), user_search("c", "bot", NOW)]);
        let snapshot = fixture.snapshot();
        let error =
            train(&input(&snapshot, "offline_inference", &[("filter", "user_id != bot")]), &context()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no raw_query searches with results matching the filter `user_id != bot` in the last 14 days (window ending 2026-11-28): of 2 searches in that window, 0 are not raw_query, 1 returned no results, 0 are empty once normalised, 1 do not match the filter"
        );
    }

    #[test]
    fn a_cancelled_task_stops_without_a_model() {
        let fixture = Fixture::new();
        fixture.append_query_log(&[search("a", NOW)]);
        let snapshot = fixture.snapshot();
        let context = context();
        context.cancel();
        let outcome = train(&input(&snapshot, "offline_inference", &[]), &context);
        assert!(matches!(outcome, Err(TrainError::Cancelled)), "{:?}", outcome.err());
        assert_eq!(context.progress(), 0);
    }
}
