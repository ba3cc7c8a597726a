//! ctr: a click-through-rate model (FTRL-Proximal logistic regression or a factorization
//! machine) over hashed features of the user, the item and the context, trained on an app's
//! exposures and clicks and evaluated on a holdout against a smoothed-popularity baseline.
//!
//! # Algorithm
//! 1. **Read** (progress 0–10 %): the behavior events of the last `training_window_days`
//!    days (default 30) ending at the task start; `expose` events and the label events
//!    (`label_behavior_types`, default `click`) are spilled by day to a temporary file
//!    (`examples.rs`). Then every document of every table (the item id is the document's
//!    `id_field` value), the `ITEM_INFO` records (by `item_id`; a document of the same item
//!    wins: it is the richer, curated source) and the `USER` records; the latest version of a
//!    record wins.
//! 2. **Join** (10–20 %): exposures and clicks joined by (`rn`, `item_id`) into examples, in
//!    time order, each carrying its item's click counts strictly before its time; see
//!    `examples.rs` for the attribution horizon (a click the day after its exposure counts),
//!    clicks without exposure (a positive example of their own), duplicates, and why holdout
//!    outcomes never reach any example's counts.
//! 3. **Split**: `holdout_split=time` (default) holds out the examples of the last
//!    `holdout_percent` (default 10) of the time range between the first and the last used
//!    event; `holdout_split=random` holds out that share of examples chosen by a seeded hash
//!    of (`rn`, `item_id`) (for comparison with random-split benchmarks; it is optimistic, as
//!    it lets the model learn from the future).
//! 4. **Smoothing priors**: the empirical-Bayes Beta prior of `pop` (volume bands, moments
//!    fit) over each item's training counts, and another over each user's. They turn an
//!    item's (a user's) counts into its smoothed click-through rate, features of every example
//!    (see `features.rs`). The user's rate is a feature only with `user_history=true` (off by
//!    default: it hurts a time split, where most held-out users are new; see `features.rs`);
//!    its counts are kept and shipped either way. The priors' few parameters are fitted on
//!    the whole training part: an aggregate of the catalogue, not any example's own outcome.
//! 5. **Learn** (20–95 %, in proportion to the examples processed): `epochs` passes over the
//!    training examples in time order with `threads` Hogwild workers (`learners.rs`); with one
//!    thread a run is a pure function of its data and `seed` (same bytes out).
//! 6. **Evaluate** (95–100 %): every holdout example is scored with the counts it carries;
//!    `auc` (ties count half) and `logloss`, against the baseline that scores an example by
//!    its item's smoothed rate over the training counts (`baseline_auc`,
//!    `baseline_logloss`). A model below its baseline is stored with a warning and does not
//!    replace the served one unless `serve_below_baseline=true`.
//! 7. **Artifact** (`artifact.rs`): the weights, the features of every item (documents,
//!    `ITEM_INFO` or behavior) with its counts over **all** examples, every user with a
//!    `USER` record or an example (its field features and counts), and the two priors:
//!    serving recomputes the example's features with the same code
//!    (`features::example_features`) and the same sum (`learners::forward`), so a
//!    training-time score and a serving-time score of the same example agree to the bit.
//!
//! Cancellation is checked before every batch of records read, every 1,024 documents or
//! records, every day joined, every block of 4,096 examples learned or scored (a few
//! milliseconds each) and around the artifact's building.
//!
//! # Choices where the issue is silent
//! - The model is trained once, on the training part; it is not retrained on the whole
//!   window (which would double the time). Its item counts, though, cover every example.
//! - A label event with a user but no exposure is an example exposed at the label's time.
//! - Not enough data is an error naming what is missing: no `expose` events, no label
//!   events, an empty training part or holdout, or a holdout without both outcomes.
//! - Without documents an item has its id feature and its click history only.
//! - The baseline scores a holdout example by its item's rate over all training examples
//!   (with a random split, also those after it); the model's item prior reads only the
//!   training examples before it, as it did in training.
//! - Every example counts once whatever its weight in the business: no down-sampling of
//!   unclicked impressions (MovieLens-sized and 10 M-example apps train in seconds to a minute).
//!
//! `export_vw_examples` writes the same examples and split as Vowpal Wabbit text, for the
//! benchmark against VW.

pub(crate) mod artifact;
pub(crate) mod examples;
pub(crate) mod features;
pub(crate) mod learners;

use std::io::Write;
use std::time::Instant;

use serde_json::json;
use trainyard_data::records::{DatasetKind, IngestRecord};

// What serving needs: the model, its errors and the inputs of `score`; the rest stays inside.
pub use artifact::{ArtifactError, CtrModel, FORMAT, FORMAT_VERSION, MAGIC, ModelKind};
pub use features::{Context, FEATURE_VERSION, History, PriorCounts};

use self::artifact::{KnownItem, KnownUser};
use self::examples::{Example, ExampleFile, Joined, Spilled, Split};
use self::features::{
    ContextFeatures, Feature, FeatureConfig, FeatureSpace, ItemFeatures, ItemFieldNames, SmoothingPrior, UserFeatures,
    UserScales, biz_feature, example_features,
};
use self::learners::{Hyper, Learner, PassMode, run_pass};
use crate::common::{FastMap, PhaseProgress, TextTable, TimeRange, date_of};
use crate::pop::{ItemTotals, area_under_curve, fit_prior};
use crate::{TrainError, TrainedModel, TrainingContext, TrainingInput};

/// Percent of progress at the end of each phase.
const READ_END: u32 = 10;
const JOIN_END: u32 = 20;
const LEARN_END: u32 = 95;
/// Records between cancellation checks while reading documents and records.
const RECORDS_PER_CHECK: usize = 1024;
/// Probabilities are kept within this of 0 and 1 in the logloss.
const LOGLOSS_EPSILON: f64 = 1e-7;

/// How the holdout is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldoutSplit {
    Time,
    Random,
}

/// The create parameters, parsed (the catalog validated them; the defaults are the catalog's).
#[derive(Debug, Clone)]
struct Settings {
    id_field: String,
    item_fields: ItemFieldNames,
    user_fields: Vec<String>,
    label_types: Vec<String>,
    window_days: i64,
    model: ModelKind,
    hash_bits: u32,
    epochs: u32,
    learning_rate: f32,
    ftrl_beta: f32,
    l1: f32,
    l2: f32,
    factor_learning_rate: f32,
    factor_l2: f32,
    factors: usize,
    holdout_percent: u32,
    holdout_split: HoldoutSplit,
    threads: usize,
    seed: u64,
    serve_below_baseline: bool,
    user_history: bool,
}

fn list_parameter(input: &TrainingInput<'_>, name: &str, default: &str) -> Vec<String> {
    let text = input.parameters.get(name).map(String::as_str).unwrap_or(default);
    text.split(',').map(str::trim).filter(|value| !value.is_empty()).map(str::to_string).collect()
}

fn field_parameter(input: &TrainingInput<'_>, name: &str, default: Option<&str>) -> Option<String> {
    let value = input.parameters.get(name).map(String::as_str).or(default)?;
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

impl Settings {
    fn parse(input: &TrainingInput<'_>) -> Result<Settings, TrainError> {
        let model = match input.parameters.get("model").map(|value| value.trim()).unwrap_or("fm") {
            "fm" => ModelKind::Fm,
            "ftrl_lr" => ModelKind::FtrlLr,
            other => return Err(TrainError::Internal(format!("model `{other}` is neither fm nor ftrl_lr"))),
        };
        let holdout_split = match input.parameters.get("holdout_split").map(|value| value.trim()).unwrap_or("time") {
            "time" => HoldoutSplit::Time,
            "random" => HoldoutSplit::Random,
            other => return Err(TrainError::Internal(format!("holdout_split `{other}` is neither time nor random"))),
        };
        let hash_bits: u32 = input.parameter("hash_bits").unwrap_or(22);
        if !(1..=31).contains(&hash_bits) {
            return Err(TrainError::Internal(format!("hash_bits {hash_bits} is outside 1..=31")));
        }
        let holdout_percent: u32 = input.parameter("holdout_percent").unwrap_or(10);
        if !(1..=99).contains(&holdout_percent) {
            return Err(TrainError::Internal(format!("holdout_percent {holdout_percent} is outside 1..=99")));
        }
        Ok(Settings {
            id_field: field_parameter(input, "id_field", Some("id")).unwrap_or_else(|| "id".to_string()),
            item_fields: ItemFieldNames {
                title: field_parameter(input, "title_field", Some("title")),
                description: field_parameter(input, "description_field", None),
                tags: field_parameter(input, "tags_field", None),
                category: field_parameter(input, "category_field", None),
            },
            user_fields: list_parameter(input, "user_fields", ""),
            label_types: list_parameter(input, "label_behavior_types", "click"),
            window_days: input.parameter("training_window_days").unwrap_or(30),
            model,
            hash_bits,
            epochs: input.parameter::<u32>("epochs").unwrap_or(DEFAULT_EPOCHS).max(1),
            learning_rate: input.parameter("learning_rate").unwrap_or(DEFAULT_LEARNING_RATE),
            ftrl_beta: input.parameter("ftrl_beta").unwrap_or(DEFAULT_FTRL_BETA),
            l1: input.parameter("l1").unwrap_or(DEFAULT_L1),
            l2: input.parameter("l2").unwrap_or(DEFAULT_L2),
            factor_learning_rate: input.parameter("factor_learning_rate").unwrap_or(DEFAULT_FACTOR_LEARNING_RATE),
            factor_l2: input.parameter("factor_l2").unwrap_or(DEFAULT_FACTOR_L2),
            factors: match model {
                ModelKind::Fm => input.parameter::<usize>("factors").unwrap_or(8).clamp(1, 1024),
                ModelKind::FtrlLr => 0,
            },
            holdout_percent,
            holdout_split,
            threads: input.parameter::<usize>("threads").unwrap_or(2).clamp(1, 64),
            seed: input.parameter("seed").unwrap_or(42),
            serve_below_baseline: input.parameter("serve_below_baseline").unwrap_or(false),
            user_history: input.parameter("user_history").unwrap_or(false),
        })
    }

    fn hyper(&self) -> Hyper {
        Hyper {
            factors: self.factors,
            alpha: self.learning_rate,
            beta: self.ftrl_beta,
            l1: self.l1,
            l2: self.l2,
            factor_rate: self.factor_learning_rate,
            factor_l2: self.factor_l2,
            seed: self.seed,
        }
    }
}

/// The values of the user-id features for a model (see [`UserScales`]) when the training part
/// has `examples_per_user` examples per user on average.
///
/// With a history worth learning, the user id should learn faster than the shared features.
/// Measured on MovieLens-100k (97 training examples per user; `cargo run --release -p
/// trainyard-train --example ctr_movielens`, 10 % held out; holdout AUC time / random split,
/// against the unscaled 1 and 1): ftrl_lr learns best with its user id and user × category
/// crosses at 2 (0.7235 / 0.7822 against 0.7210 / 0.7784; 3 and more start to cost on the time
/// split); fm with the user id at 5 (0.7236 / 0.7931 against 0.7191 / 0.7822), where the value
/// also scales every interaction of the user's factors. fm's price there is calibration on the
/// 10 % time split, whose users are mostly new: logloss 0.628 against 0.620 (the baseline's
/// 0.621); on a 20 % time split it is unchanged (0.634 / 0.633).
///
/// With a few examples per user, a faster user id mostly learns noise: on `bench/train.sh`'s
/// synthetic events (3 M events, 5 examples per user, clicks independent of the user) ftrl_lr at
/// 2 / 2 lost 0.007 AUC and fm more. So the scales ramp up with the history: 1 up to
/// [`USER_SCALE_RAMP`]`.0` examples per user, the full values from `.1` on, log-linear between.
fn user_scales_of(model: ModelKind, examples_per_user: f64) -> UserScales {
    let full = match model {
        ModelKind::FtrlLr => UserScales { id: 2.0, id_cross_category: 2.0 },
        ModelKind::Fm => UserScales { id: 5.0, id_cross_category: 1.0 },
    };
    let (low, high) = USER_SCALE_RAMP;
    let share = ((examples_per_user.max(1.0).ln() - low.ln()) / (high.ln() - low.ln())).clamp(0.0, 1.0) as f32;
    UserScales { id: 1.0 + share * (full.id - 1.0), id_cross_category: 1.0 + share * (full.id_cross_category - 1.0) }
}

/// Examples per user (mean over the training part's users) below which the user scales are 1,
/// and from which they are full.
const USER_SCALE_RAMP: (f64, f64) = (16.0, 64.0);

/// The mean number of training examples of the users that have any.
fn examples_per_user(training_user_counts: &[PriorCounts]) -> f64 {
    let (users, examples) = training_user_counts
        .iter()
        .filter(|counts| counts.exposures > 0)
        .fold((0u64, 0u64), |(users, examples), counts| (users + 1, examples + u64::from(counts.exposures)));
    if users == 0 {
        return 0.0;
    }
    examples as f64 / users as f64
}

/// Defaults when a parameter did not reach the trainer (the catalog's are the same).
const DEFAULT_EPOCHS: u32 = 5;
const DEFAULT_LEARNING_RATE: f32 = 0.05;
const DEFAULT_FTRL_BETA: f32 = 1.0;
const DEFAULT_L1: f32 = 0.0001;
const DEFAULT_L2: f32 = 0.0001;
const DEFAULT_FACTOR_LEARNING_RATE: f32 = 0.02;
const DEFAULT_FACTOR_L2: f32 = 0.03;

/// Everything learning and evaluation need, made once (and shared with the VW export).
struct Prepared {
    settings: Settings,
    config: FeatureConfig,
    spilled: Spilled,
    joined: Joined,
    /// Every item known (documents, ITEM_INFO, behavior).
    items: IdTable<ItemFeatures>,
    /// Every user with a USER record, and every behavior user.
    users: IdTable<UserFeatures>,
    /// Interned business → its feature.
    businesses: Vec<Feature>,
    report: serde_json::Value,
}

impl Prepared {
    /// The features of an example, into `out`.
    fn features_of(&self) -> impl Fn(&Example, &mut Vec<Feature>) + Sync + '_ {
        let config = &self.config;
        let items = &self.items;
        let users = &self.users;
        let businesses = &self.businesses;
        move |example: &Example, out: &mut Vec<Feature>| {
            let item = items.of_behavior(example.item);
            let user = users.of_behavior(example.user);
            let context = ContextFeatures::with_biz(&config.space, businesses[example.biz as usize], example.time);
            example_features(config, user, item, &context, example.history, out);
        }
    }
}

/// The text of a JSON value used as an id: a string as is, a number as its JSON text.
fn id_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) if !text.is_empty() => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Something made of each record, by key, with the sequence of the version it was made of.
type LatestRecords<T> = FastMap<String, (u64, T)>;

/// Ids and their features: first every id with a record (sorted, so a run is deterministic),
/// then each id that only behavior names.
struct IdTable<F> {
    ids: Vec<String>,
    features: Vec<F>,
    /// The first `with_record` ids have a record.
    with_record: usize,
    /// Interned behavior id → index into `features`.
    behavior: Vec<u32>,
    /// Behavior ids that have a record.
    behavior_with_record: u64,
}

impl<F: Default> IdTable<F> {
    /// The table of `records`, then of the ids of `behavior_ids` without one, whose features
    /// `build_without_record` makes.
    fn new(
        mut records: LatestRecords<F>,
        behavior_ids: &TextTable,
        build_without_record: impl Fn(&str) -> F,
    ) -> IdTable<F> {
        let mut ids: Vec<String> = records.keys().cloned().collect();
        ids.sort_unstable();
        let mut index_of: FastMap<String, u32> = FastMap::default();
        let mut features = Vec::with_capacity(ids.len());
        for (index, id) in ids.iter().enumerate() {
            features.push(records.remove(id).map(|(_, built)| built).unwrap_or_default());
            index_of.insert(id.clone(), index as u32);
        }
        drop(records);
        let with_record = ids.len();
        let mut behavior = Vec::with_capacity(behavior_ids.len());
        let mut behavior_with_record = 0u64;
        for interned in 0..behavior_ids.len() as u32 {
            let id = behavior_ids.text(interned);
            let index = match index_of.get(id) {
                Some(index) => {
                    behavior_with_record += 1;
                    *index
                }
                None => {
                    ids.push(id.to_string());
                    features.push(build_without_record(id));
                    (features.len() - 1) as u32
                }
            };
            behavior.push(index);
        }
        IdTable { ids, features, with_record, behavior, behavior_with_record }
    }
}

impl<F> IdTable<F> {
    /// The features of an interned behavior id.
    fn of_behavior(&self, interned: u32) -> &F {
        &self.features[self.behavior[interned as usize] as usize]
    }

    /// Each id's counts, from counts by interned behavior id (ids behavior never names: zero).
    fn counts_by_id(&self, by_interned: &[PriorCounts]) -> Vec<PriorCounts> {
        let mut counts = vec![PriorCounts::default(); self.features.len()];
        for (index, interned_counts) in self.behavior.iter().zip(by_interned) {
            counts[*index as usize] = *interned_counts;
        }
        counts
    }
}

/// `build` applied to the latest version of each `ITEM_INFO` or `USER` record, by key. Only
/// what `build` makes is kept (features, not the records' JSON), so memory stays per key small.
fn latest_records<T>(
    input: &TrainingInput<'_>,
    context: &TrainingContext,
    kind: DatasetKind,
    build: impl Fn(&str, &serde_json::Map<String, serde_json::Value>) -> T,
) -> Result<LatestRecords<T>, TrainError> {
    let mut latest = LatestRecords::default();
    for (index, stored) in input.snapshot.records(kind, None)?.enumerate() {
        if index % RECORDS_PER_CHECK == 0 {
            context.check_cancelled()?;
        }
        let stored = stored?;
        let (IngestRecord::ItemInfo(record) | IngestRecord::User(record)) = stored.record else {
            continue;
        };
        match latest.get_mut(&record.key) {
            Some(entry) if entry.0 > stored.sequence => {}
            Some(entry) => *entry = (stored.sequence, build(&record.key, &record.fields)),
            None => {
                let built = build(&record.key, &record.fields);
                latest.insert(record.key, (stored.sequence, built));
            }
        }
    }
    Ok(latest)
}

/// Reads, spills, joins and builds the features (see the module documentation, steps 1–4).
fn prepare(input: &TrainingInput<'_>, context: &TrainingContext) -> Result<Prepared, TrainError> {
    let settings = Settings::parse(input)?;
    let window = TimeRange::days_ending_at(input.now_seconds, settings.window_days);
    let window_in_words =
        format!("in the last {} days (window ending {})", settings.window_days, date_of(window.end - 1));
    let label_words = settings.label_types.join(" or ");
    if settings.label_types.is_empty() {
        return Err(TrainError::NotEnoughData("label_behavior_types names no behavior type".to_string()));
    }
    let mut spilled = examples::spill_behavior(input, context, window, &settings.label_types, (0, READ_END - 3))?;
    let survey = &spilled.survey;
    if survey.exposures == 0 && survey.labels == 0 {
        return Err(TrainError::NotEnoughData(format!(
            "no expose or {label_words} behavior events {window_in_words}: the window holds {} events{}",
            survey.events_in_window,
            types_in_words(&survey.by_type)
        )));
    }
    if survey.exposures == 0 {
        return Err(TrainError::NotEnoughData(format!(
            "no expose behavior events {window_in_words}: a click-through rate needs the impressions \
             ({} {label_words} events found)",
            survey.labels
        )));
    }
    if survey.labels == 0 {
        return Err(TrainError::NotEnoughData(format!(
            "no {label_words} behavior events (label_behavior_types) {window_in_words}: there is no positive \
             example among the {} exposures{}",
            survey.exposures,
            types_in_words(&survey.by_type)
        )));
    }
    let (Some(first_used), Some(last_used)) = (survey.first_used, survey.last_used) else {
        return Err(TrainError::Internal("used events were counted without their times".into()));
    };

    // Items: ITEM_INFO records, then documents (which win), then behavior-only items.
    let space = FeatureSpace::new(settings.hash_bits);
    let build_item = |item_id: &str, fields: &serde_json::Map<String, serde_json::Value>| {
        ItemFeatures::build(&space, &settings.item_fields, item_id, Some(fields))
    };
    let mut known_items = latest_records(input, context, DatasetKind::ItemInfo, build_item)?;
    let item_info_records = known_items.len();
    context.set_progress(READ_END - 2);
    let mut documents_read = 0u64;
    let mut documents_without_id = 0u64;
    let mut items_with_documents = 0u64;
    for (index, document) in input.snapshot.documents(None)?.enumerate() {
        if index % RECORDS_PER_CHECK == 0 {
            context.check_cancelled()?;
        }
        let document = document?;
        documents_read += 1;
        let Some(item_id) = document.fields.get(&settings.id_field).and_then(id_text) else {
            documents_without_id += 1;
            continue;
        };
        let features = build_item(&item_id, &document.fields);
        // A document wins over an ITEM_INFO record (and, among documents, the last table read).
        if known_items.insert(item_id, (u64::MAX, features)).is_none_or(|(sequence, _)| sequence != u64::MAX) {
            items_with_documents += 1;
        }
    }
    let items = IdTable::new(known_items, &spilled.items, |item_id| {
        ItemFeatures::build(&space, &settings.item_fields, item_id, None)
    });

    // Users: every USER record, then behavior-only users.
    context.set_progress(READ_END - 1);
    let build_user = |user_id: &str, fields: &serde_json::Map<String, serde_json::Value>| {
        UserFeatures::build(&space, &settings.user_fields, user_id, Some(fields))
    };
    let user_records = latest_records(input, context, DatasetKind::Users, build_user)?;
    let users = IdTable::new(user_records, &spilled.users, |user_id| UserFeatures::anonymous(&space, user_id));
    let businesses: Vec<Feature> =
        (0..spilled.businesses.len() as u32).map(|index| biz_feature(&space, spilled.businesses.text(index))).collect();
    context.set_progress(READ_END);

    // Join and split.
    let split = match settings.holdout_split {
        HoldoutSplit::Time => {
            let span = last_used - first_used;
            let holdout_seconds = ((span as f64 * f64::from(settings.holdout_percent) / 100.0).ceil() as i64).max(1);
            Split::Time { split_time: last_used + 1 - holdout_seconds }
        }
        HoldoutSplit::Random => {
            Split::Random { seed: settings.seed, per_ten_thousand: u64::from(settings.holdout_percent) * 100 }
        }
    };
    let join_estimate = spilled.survey.exposures + spilled.survey.labels;
    let mut join_progress = PhaseProgress::new(context, READ_END, JOIN_END, join_estimate);
    let joined = examples::join(&mut spilled, split, context, &mut join_progress)?;
    let join_report = &joined.report;
    let split_in_words = match split {
        Split::Time { split_time } => format!("time split at {} ({split_time})", date_of(split_time)),
        Split::Random { .. } => format!("random split of {}% of the examples", settings.holdout_percent),
    };
    let training_examples = join_report.training_examples;
    let holdout_examples = join_report.examples - training_examples;
    let holdout_positives = join_report.positives - join_report.training_positives;
    if training_examples == 0 {
        return Err(TrainError::NotEnoughData(format!(
            "the training part is empty: every one of the {} examples is in the holdout ({split_in_words})",
            join_report.examples
        )));
    }
    if holdout_examples == 0 {
        return Err(TrainError::NotEnoughData(format!(
            "the holdout is empty: none of the {training_examples} examples falls in it ({split_in_words}); \
             more data or a larger holdout_percent is needed"
        )));
    }
    if join_report.training_positives == 0 || join_report.training_positives == training_examples {
        let missing = if join_report.training_positives == 0 { "clicked" } else { "unclicked" };
        return Err(TrainError::NotEnoughData(format!(
            "the training part has no {missing} example ({training_examples} examples, {split_in_words})"
        )));
    }
    if holdout_positives == 0 || holdout_positives == holdout_examples {
        let missing = if holdout_positives == 0 { "clicked" } else { "unclicked" };
        return Err(TrainError::NotEnoughData(format!(
            "the holdout has no {missing} example ({holdout_examples} examples, {split_in_words}): its AUC is \
             undefined; more data or a larger holdout_percent is needed"
        )));
    }

    let prior = smoothing_prior(&joined.training_counts);
    let user_prior = smoothing_prior(&joined.training_user_counts);
    let examples_per_user = examples_per_user(&joined.training_user_counts);
    let config = FeatureConfig {
        space,
        prior,
        user_prior,
        cross_user: true,
        cross_user_fields: true,
        cross_user_fields_item: true,
        user_scales: user_scales_of(settings.model, examples_per_user),
        user_history: settings.user_history,
    };
    let survey = &spilled.survey;
    let report = json!({
        "window": window.to_json(),
        "split": match split {
            Split::Time { split_time } => json!({"kind": "time", "holdout_percent": settings.holdout_percent,
                "split_time": split_time, "split_date": date_of(split_time)}),
            Split::Random { .. } => json!({"kind": "random", "holdout_percent": settings.holdout_percent}),
        },
        "training_examples_per_user": examples_per_user,
        "behavior_rows_read": survey.rows_read,
        "events_in_window": survey.events_in_window,
        "events_by_type": survey.by_type,
        "expose_events": survey.exposures,
        "label_events": survey.labels,
        "impressions": join_report.impressions,
        "duplicate_exposures": join_report.duplicate_exposures,
        "clicks_joined": join_report.labels_joined,
        "clicks_without_exposure": join_report.labels_without_exposure,
        "duplicate_clicks": join_report.duplicate_labels,
        "examples": join_report.examples,
        "positives": join_report.positives,
        "documents_read": documents_read,
        "documents_without_id_field": documents_without_id,
        "item_info_records": item_info_records,
        "items_with_documents": items_with_documents,
        "behavior_items": spilled.items.len(),
        "behavior_items_with_fields": items.behavior_with_record,
        "users_with_records": users.with_record,
        "behavior_users": spilled.users.len(),
        "behavior_users_with_records": users.behavior_with_record,
    });
    Ok(Prepared { settings, config, spilled, joined, items, users, businesses, report })
}

fn types_in_words(by_type: &std::collections::BTreeMap<String, u64>) -> String {
    if by_type.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = by_type.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
    format!(" ({})", listed.join(", "))
}

/// The Beta prior of the items' rates (pop's empirical-Bayes fit) over the training counts.
fn smoothing_prior(counts: &[PriorCounts]) -> SmoothingPrior {
    let totals: Vec<ItemTotals> = counts
        .iter()
        .map(|counts| {
            let exposures = f64::from(counts.exposures);
            ItemTotals {
                actions: f64::from(counts.clicks),
                exposures,
                exposure_squares: exposures,
                exposure_count: u64::from(counts.exposures),
            }
        })
        .collect();
    let fitted = fit_prior(&totals);
    SmoothingPrior {
        strength: fitted.strength,
        center: fitted.mean,
        bands: fitted.bands.iter().map(|band| (band.least_exposures, band.mean)).collect(),
    }
}

/// AUC (ties half) and mean logloss of `(probability, label)` pairs.
fn auc_and_logloss(scored: &[(f64, bool)]) -> (Option<f64>, f64) {
    let groups: Vec<(f64, u64, u64)> =
        scored.iter().map(|(score, label)| (*score, u64::from(*label), u64::from(!*label))).collect();
    let mut loss = 0.0;
    for (probability, label) in scored {
        let clamped = probability.clamp(LOGLOSS_EPSILON, 1.0 - LOGLOSS_EPSILON);
        loss -= if *label { clamped.ln() } else { (1.0 - clamped).ln() };
    }
    (area_under_curve(groups), loss / scored.len().max(1) as f64)
}

/// Every example of a file, in order, block by block (cancellation checked between blocks).
fn for_each_example(
    file: &ExampleFile,
    context: &TrainingContext,
    mut visit: impl FnMut(&Example) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let mut reader = file.reader()?;
    let mut block = Vec::with_capacity(learners::BLOCK_EXAMPLES);
    let mut first = 0u64;
    while first < file.count() {
        context.check_cancelled()?;
        let count = (file.count() - first).min(learners::BLOCK_EXAMPLES as u64) as usize;
        reader.read(first, count, &mut block)?;
        for example in &block {
            visit(example)?;
        }
        first += count as u64;
    }
    Ok(())
}

/// A holdout example as evaluation scored it (the train/serve parity test replays it).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code, reason = "read by the train/serve parity test"))]
pub(crate) struct ScoredExample {
    pub user_id: String,
    pub item_id: String,
    pub context: Context,
    pub history: History,
    pub probability: f32,
}

/// Trains ctr (see the module documentation).
pub(crate) fn train(input: &TrainingInput<'_>, context: &TrainingContext) -> Result<TrainedModel, TrainError> {
    train_traced(input, context, 0).map(|(model, _)| model)
}

/// Trains, and returns the first `traced` holdout examples as evaluation scored them.
pub(crate) fn train_traced(
    input: &TrainingInput<'_>,
    context: &TrainingContext,
    traced: usize,
) -> Result<(TrainedModel, Vec<ScoredExample>), TrainError> {
    let mut prepared = prepare(input, context)?;
    // What the metrics need once the prepared data has become the served model.
    let settings = prepared.settings.clone();
    let prior = prepared.config.prior.clone();
    let join_report = prepared.joined.report.clone();
    let data_report = std::mem::take(&mut prepared.report);
    let joined = &prepared.joined;
    let features_of = prepared.features_of();

    // Learn.
    let learner = Learner::new(settings.hash_bits, settings.hyper())?;
    let training_count = joined.training.count();
    let total = training_count * u64::from(settings.epochs);
    let learn_started = Instant::now();
    let mut epoch_seconds = Vec::new();
    for epoch in 0..u64::from(settings.epochs) {
        let epoch_started = Instant::now();
        let done_before = epoch * training_count;
        let span = f64::from(LEARN_END - JOIN_END);
        let mut on_progress = |processed: u64| {
            let share = (done_before + processed) as f64 / total.max(1) as f64;
            context.set_progress(JOIN_END + (span * share.min(1.0)) as u32);
        };
        run_pass(
            &learner,
            &joined.training,
            0..training_count,
            PassMode::Learn,
            settings.threads,
            &features_of,
            context,
            &mut on_progress,
        )?;
        epoch_seconds.push(epoch_started.elapsed().as_secs_f64());
    }
    let train_seconds = learn_started.elapsed().as_secs_f64();
    context.set_progress(LEARN_END);

    // Evaluate.
    let holdout_count = joined.holdout.count();
    let predictions = run_pass(
        &learner,
        &joined.holdout,
        0..holdout_count,
        PassMode::Predict,
        settings.threads,
        &features_of,
        context,
        &mut |_| {},
    )?;
    let mut baseline = Vec::with_capacity(predictions.len());
    let mut trace = Vec::new();
    let mut position = 0usize;
    for_each_example(&joined.holdout, context, |example| {
        let counts = joined.training_counts.get(example.item as usize).copied().unwrap_or_default();
        baseline.push((prior.rate(counts.clicks, counts.exposures), example.label));
        if trace.len() < traced
            && let Some((probability, _)) = predictions.get(position)
        {
            trace.push(ScoredExample {
                user_id: prepared.spilled.users.text(example.user).to_string(),
                item_id: prepared.spilled.items.text(example.item).to_string(),
                context: Context {
                    biz_id: prepared.spilled.businesses.text(example.biz).to_string(),
                    time: example.time,
                },
                history: example.history,
                probability: *probability,
            });
        }
        position += 1;
        Ok(())
    })?;
    let model_scores: Vec<(f64, bool)> =
        predictions.iter().map(|(probability, label)| (f64::from(*probability), *label)).collect();
    let (auc, logloss) = auc_and_logloss(&model_scores);
    let (baseline_auc, baseline_logloss) = auc_and_logloss(&baseline);
    let (Some(auc), Some(baseline_auc)) = (auc, baseline_auc) else {
        return Err(TrainError::Internal("the holdout lost its positives or negatives".into()));
    };

    // The artifact.
    context.check_cancelled()?;
    drop(features_of);
    let weights = learner.export();
    // The dense tables (288 MiB for fm at 22 bits) are not needed once exported.
    drop(learner);
    check_weights_bounded(&weights)?;
    let model = served_model(prepared, weights, input.now_seconds);
    context.check_cancelled()?;
    let artifact = model.to_bytes();
    let description = model.describe();
    drop(model);

    let mut warnings = Vec::new();
    let below_baseline = auc < baseline_auc;
    if below_baseline {
        let serving = if settings.serve_below_baseline {
            "it replaces the served model anyway (serve_below_baseline=true)"
        } else {
            "the instance keeps serving its previous model (set serve_below_baseline=true to serve it)"
        };
        warnings.push(format!(
            "the model's holdout AUC {auc:.4} is below the smoothed-popularity baseline's {baseline_auc:.4}: {serving}"
        ));
    }
    let examples_processed = total as f64;
    let metrics = json!({
        "model": settings.model.as_str(),
        "format": FORMAT,
        "auc": auc,
        "logloss": logloss,
        "baseline_auc": baseline_auc,
        "baseline_logloss": baseline_logloss,
        "training_examples": training_count,
        "training_positives": join_report.training_positives,
        "holdout_examples": holdout_count,
        "holdout_positives": join_report.positives - join_report.training_positives,
        "holdout_split": match settings.holdout_split { HoldoutSplit::Time => "time", HoldoutSplit::Random => "random" },
        "epochs": settings.epochs,
        "epoch_seconds": epoch_seconds,
        "train_seconds": train_seconds,
        "examples_per_second": if train_seconds > 0.0 { examples_processed / train_seconds } else { 0.0 },
        "threads": settings.threads,
        "hash_bits": settings.hash_bits,
        "factors": settings.factors,
        "learning_rate": settings.learning_rate,
        "ftrl_beta": settings.ftrl_beta,
        "l1": settings.l1,
        "l2": settings.l2,
        "factor_learning_rate": settings.factor_learning_rate,
        "factor_l2": settings.factor_l2,
        "user_history": settings.user_history,
        "weights": description["weights"],
        "user_scales": description["user_scales"],
        "artifact_bytes": artifact.len(),
        "prior": {"strength": prior.strength, "center": prior.center, "bands": prior.bands.len()},
    });
    context.set_progress(100);
    let trained = TrainedModel {
        artifact,
        metrics,
        data_report,
        warnings,
        replace_served: !below_baseline || settings.serve_below_baseline,
    };
    Ok((trained, trace))
}

/// Fails a run whose weights went beyond what an artifact may hold (see [`artifact::MAX_WEIGHT`])
/// rather than store a model the loader would refuse.
fn check_weights_bounded(weights: &learners::ExportedWeights) -> Result<(), TrainError> {
    let out_of_bounds = weights
        .rows
        .iter()
        .chain([&weights.bias])
        .find(|weight| weight.is_nan() || weight.abs() > artifact::MAX_WEIGHT);
    match out_of_bounds {
        None => Ok(()),
        Some(weight) => Err(TrainError::Internal(format!(
            "the learning diverged (a weight of {weight:e}, beyond ±{:e}): lower learning_rate or \
             factor_learning_rate",
            artifact::MAX_WEIGHT
        ))),
    }
}

/// The model to serve: the weights, every item with its counts over all examples, and every
/// user with a USER record or an example, with its counts.
fn served_model(prepared: Prepared, weights: learners::ExportedWeights, now_seconds: i64) -> CtrModel {
    let Prepared { settings, config, joined, items, users, .. } = prepared;
    let item_counts = items.counts_by_id(&joined.final_counts);
    let mut known_items = FastMap::default();
    known_items.reserve(items.ids.len());
    for ((item_id, features), counts) in items.ids.into_iter().zip(items.features).zip(item_counts) {
        known_items.insert(item_id, KnownItem { features, counts });
    }
    let user_counts = users.counts_by_id(&joined.final_user_counts);
    let mut known_users = FastMap::default();
    for (index, ((user_id, features), counts)) in users.ids.into_iter().zip(users.features).zip(user_counts).enumerate()
    {
        let has_record = index < users.with_record;
        if !has_record && counts.exposures == 0 {
            continue;
        }
        let UserFeatures { features: field_features, field_keys, .. } = features;
        known_users.insert(user_id, KnownUser { features: field_features, field_keys, counts });
    }
    CtrModel::new(settings.model, config, now_seconds, weights, known_items, known_users)
}

/// Writes the examples the trainer would train on (`train_out`, in training order) and
/// evaluate on (`holdout_out`) as Vowpal Wabbit text lines, `1 |f 123:1 4567:0.5` or
/// `-1 |f ...`: the feature names are the slot numbers, so `vw -b hash_bits` sees the same
/// slots (and collisions), and the same split. Returns (training lines, holdout lines).
pub fn export_vw_examples(
    input: &TrainingInput<'_>,
    context: &TrainingContext,
    train_out: &mut dyn Write,
    holdout_out: &mut dyn Write,
) -> Result<(u64, u64), TrainError> {
    let prepared = prepare(input, context)?;
    let features_of = prepared.features_of();
    let mut written = [0u64; 2];
    let files = [&prepared.joined.training, &prepared.joined.holdout];
    let outputs: [&mut dyn Write; 2] = [train_out, holdout_out];
    for ((file, out), count) in files.into_iter().zip(outputs).zip(written.iter_mut()) {
        let mut features = Vec::with_capacity(64);
        let mut line = String::with_capacity(1024);
        for_each_example(file, context, |example| {
            features_of(example, &mut features);
            line.clear();
            line.push_str(if example.label { "1 |f" } else { "-1 |f" });
            for feature in &features {
                use std::fmt::Write as _;
                let _ = write!(line, " {}:{}", feature.slot, feature.value);
            }
            line.push('\n');
            out.write_all(line.as_bytes())
                .map_err(|error| TrainError::Internal(format!("writing the VW examples: {error}")))?;
            *count += 1;
            Ok(())
        })?;
    }
    Ok((written[0], written[1]))
}

#[cfg(test)]
mod tests;
