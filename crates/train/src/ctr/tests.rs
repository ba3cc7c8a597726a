//! Tests of the ctr trainer on synthetic snapshots with planted effects.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;
use trainyard_data::records::{
    BehaviorEvent, CollectionRecord, DatasetKind, DocumentCommand, DocumentRecord, IngestRecord,
};

use super::artifact::{ArtifactError, CtrModel, ModelKind};
use super::features::{Context, History, PriorCounts};
use super::{
    check_weights_bounded, examples_per_user, export_vw_examples, learners, train, train_traced, user_scales_of,
};
use crate::common::DAY_SECONDS;
use crate::test_support::{Fixture, NOW, Random, context, event_in, input};
use crate::{TrainError, TrainedModel, TrainingContext};

/// The parameters every test starts from: small tables, one thread (deterministic).
const BASE: &[(&str, &str)] = &[
    ("id_field", "id"),
    ("title_field", "title"),
    ("category_field", "category"),
    ("user_fields", "group"),
    ("hash_bits", "16"),
    ("threads", "1"),
    ("holdout_percent", "20"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut parameters: Vec<(&str, &str)> = BASE.to_vec();
    for (name, value) in extra {
        parameters.retain(|(existing, _)| existing != name);
        parameters.push((name, value));
    }
    parameters
}

fn logistic(logit: f64) -> f64 {
    1.0 / (1.0 + (-logit).exp())
}

/// An app of 200 users in two groups and 100 items in two categories (documents and USER
/// records), with `impressions` exposures over the 10 days before now. The planted effects:
/// group `a` likes category `c0` and group `b` `c1` (±1.5 on the logit), and each item has a
/// quality of its own.
fn planted_app(impressions: usize, seed: u64) -> Fixture {
    let fixture = Fixture::new();
    let mut random = Random::new(seed);
    let documents: Vec<IngestRecord> = (0..100)
        .map(|item| {
            IngestRecord::Document(DocumentRecord {
                table: "main".into(),
                primary_key: format!("i{item}"),
                command: DocumentCommand::Add,
                timestamp_ms: None,
                fields: json!({"id": format!("i{item}"), "title": format!("item number {item}"),
                               "category": format!("c{}", item % 2)})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            })
        })
        .collect();
    fixture.append_records(DatasetKind::Documents, &documents);
    let users: Vec<IngestRecord> = (0..200)
        .map(|user| {
            IngestRecord::User(CollectionRecord {
                key: format!("u{user}"),
                fields: json!({"user_id": format!("u{user}"), "group": if user % 2 == 0 { "a" } else { "b" }})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            })
        })
        .collect();
    fixture.append_records(DatasetKind::Users, &users);
    let quality: Vec<f64> = (0..100).map(|_| random.unit() * 2.0 - 1.0).collect();
    let start = NOW - 10 * DAY_SECONDS;
    let mut events = Vec::with_capacity(impressions * 2);
    for index in 0..impressions {
        let time = start + (index as i64 * 10 * DAY_SECONDS) / impressions as i64;
        let user = random.below(200) as usize;
        let item = random.below(100) as usize;
        let likes = (user % 2) == (item % 2);
        let logit = quality[item] + if likes { 1.5 } else { -1.5 };
        let rn = format!("rn-{index}");
        let user_id = format!("u{user}");
        let item_id = format!("i{item}");
        events.push(event_in(&rn, &user_id, &item_id, "expose", time));
        if random.unit() < logistic(logit) {
            events.push(event_in(&rn, &user_id, &item_id, "click", time + 5));
        }
    }
    fixture.append_behavior(&events);
    fixture.compact();
    fixture
}

#[test]
fn documents_win_over_item_info_records_and_every_known_item_is_served() {
    let fixture = planted_app(2_000, 12);
    let item_info = |key: &str, title: &str| {
        IngestRecord::ItemInfo(CollectionRecord {
            key: key.to_string(),
            fields: json!({"item_id": key, "title": title}).as_object().cloned().unwrap_or_default(),
        })
    };
    // i1 has a document ("item number 1") and an ITEM_INFO record; "catalog-only" only the
    // record, and no behavior.
    fixture.append_records(DatasetKind::ItemInfo, &[item_info("i1", "alpha"), item_info("catalog-only", "beta")]);
    let trained = trained(&fixture, &with(&[("model", "ftrl_lr")]));
    assert_eq!(trained.data_report["item_info_records"], 2);
    assert_eq!(trained.data_report["items_with_documents"], 100);
    let model = CtrModel::load(&trained.artifact).unwrap();
    assert_eq!(model.items_known(), 101, "100 documents and one ITEM_INFO-only item");
    let space = super::features::FeatureSpace::new(16);
    let names = super::features::ItemFieldNames {
        title: Some("title".into()),
        category: Some("category".into()),
        ..Default::default()
    };
    let document = json!({"id": "i1", "title": "item number 1", "category": "c1"});
    let from_document = super::features::ItemFeatures::build(&space, &names, "i1", document.as_object());
    assert_eq!(model.known_item("i1").unwrap().features, from_document);
    let record = json!({"item_id": "catalog-only", "title": "beta"});
    let from_record = super::features::ItemFeatures::build(&space, &names, "catalog-only", record.as_object());
    let catalog_only = model.known_item("catalog-only").unwrap();
    assert_eq!(catalog_only.features, from_record);
    assert_eq!(catalog_only.counts, PriorCounts::default());
}

fn trained(fixture: &Fixture, parameters: &[(&str, &str)]) -> TrainedModel {
    let snapshot = fixture.snapshot();
    train(&input(&snapshot, "ctr", parameters), &context()).unwrap_or_else(|error| panic!("training failed: {error}"))
}

fn metric(model: &TrainedModel, name: &str) -> f64 {
    model.metrics[name].as_f64().unwrap_or_else(|| panic!("no metric {name} in {}", model.metrics))
}

#[test]
fn both_models_learn_a_planted_user_by_category_effect() {
    let fixture = planted_app(12_000, 7);
    for model in ["ftrl_lr", "fm"] {
        let parameters = with(&[("model", model), ("learning_rate", "0.1"), ("ftrl_beta", "0.5")]);
        let trained = trained(&fixture, &parameters);
        let auc = metric(&trained, "auc");
        let baseline = metric(&trained, "baseline_auc");
        assert!(auc > 0.75, "{model}: auc {auc} (baseline {baseline}): {}", trained.metrics);
        assert!(auc > baseline + 0.05, "{model}: auc {auc} is not well above the baseline {baseline}");
        assert!(trained.replace_served && trained.warnings.is_empty(), "{:?}", trained.warnings);
        assert!(metric(&trained, "logloss") < metric(&trained, "baseline_logloss"), "{}", trained.metrics);
        for name in
            ["training_examples", "holdout_examples", "holdout_positives", "examples_per_second", "train_seconds"]
        {
            assert!(metric(&trained, name) > 0.0, "{name}: {}", trained.metrics);
        }
        assert_eq!(trained.metrics["model"], model);
        assert_eq!(trained.metrics["ftrl_beta"], 0.5);
        assert_eq!(trained.data_report["items_with_documents"], 100);
        assert_eq!(trained.data_report["users_with_records"], 200);
        let model = CtrModel::load(&trained.artifact).unwrap();
        assert_eq!(model.items_known(), 100);
        assert_eq!(model.users_known(), 200);
        let examples_per_user = trained.data_report["training_examples_per_user"].as_f64().unwrap();
        let expected = user_scales_of(model.kind(), examples_per_user);
        assert!(expected.id > 1.0, "{examples_per_user} examples per user scale the user id up");
        assert_eq!(model.describe()["user_scales"]["id"], expected.id, "the user scales travel in the artifact");
        assert_eq!(trained.metrics["user_scales"]["id"], expected.id);
    }
    // Two Hogwild threads learn as well (not deterministically: the order of updates varies).
    let hogwild = trained(&fixture, &with(&[("model", "fm"), ("learning_rate", "0.1"), ("threads", "2")]));
    assert!(metric(&hogwild, "auc") > 0.75, "{}", hogwild.metrics);
    assert_eq!(hogwild.metrics["threads"], 2);
}

#[test]
fn evaluation_and_serving_give_the_same_probability_to_the_bit() {
    let fixture = planted_app(4_000, 11);
    let snapshot = fixture.snapshot();
    for (model, user_history) in [("fm", "false"), ("ftrl_lr", "false"), ("fm", "true")] {
        let parameters = with(&[("model", model), ("user_history", user_history)]);
        let (trained, scored) = train_traced(&input(&snapshot, "ctr", &parameters), &context(), 200).unwrap();
        assert_eq!(trained.metrics["user_history"], user_history == "true");
        assert_eq!(scored.len(), 200);
        let served = CtrModel::load(&trained.artifact).unwrap();
        for example in &scored {
            let probability =
                served.score_with_history(&example.user_id, &example.context, &example.item_id, example.history);
            assert_eq!(
                probability.to_bits(),
                example.probability.to_bits(),
                "{model}: {example:?} served {probability}"
            );
        }
        // `score` is the same computation with the item's stored counts.
        let example = &scored[0];
        let item_ids = [example.item_id.as_str(), "never-seen"];
        let scores = served.score(&example.user_id, &example.context, &item_ids);
        assert_eq!(scores.len(), 2);
        assert!(scores.iter().all(|score| score.is_finite() && *score > 0.0 && *score < 1.0), "{scores:?}");
        let stored_user = History { user: example_user_counts(&served, &example.user_id), ..History::default() };
        let unknown = served.score_with_history(&example.user_id, &example.context, "never-seen", stored_user);
        assert_eq!(scores[1].to_bits(), unknown.to_bits());
        // An unknown user scores too.
        assert_eq!(served.score("nobody", &example.context, &item_ids).len(), 2);
    }
}

#[test]
fn a_single_thread_run_is_deterministic_for_its_seed() {
    let fixture = planted_app(3_000, 5);
    for model in ["fm", "ftrl_lr"] {
        let parameters = with(&[("model", model), ("seed", "9")]);
        let first = trained(&fixture, &parameters);
        let second = trained(&fixture, &parameters);
        assert_eq!(first.artifact, second.artifact, "{model}");
        assert_eq!(first.metrics["auc"], second.metrics["auc"]);
    }
    let other_seed = trained(&fixture, &with(&[("model", "fm"), ("seed", "10")]));
    let same = trained(&fixture, &with(&[("model", "fm"), ("seed", "9")]));
    assert_ne!(other_seed.artifact, same.artifact, "the seed initializes the factors");
}

#[test]
fn the_prior_never_sees_the_examples_own_outcome() {
    // Every item is shown exactly once and clicked half the time: if an example's prior held
    // its own outcome, it would predict the label perfectly.
    let fixture = Fixture::new();
    let mut events = Vec::new();
    for index in 0..2_000i64 {
        let time = NOW - 5 * DAY_SECONDS + index * 60;
        let (rn, item) = (format!("rn-{index}"), format!("i{index}"));
        events.push(event_in(&rn, "u1", &item, "expose", time));
        if index % 2 == 0 {
            // The click in the same second as its exposure.
            events.push(event_in(&rn, "u1", &item, "click", time));
        }
    }
    fixture.append_behavior(&events);
    let snapshot = fixture.snapshot();
    let parameters = with(&[("model", "ftrl_lr")]);
    let (trained, scored) = train_traced(&input(&snapshot, "ctr", &parameters), &context(), 1_000)
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(scored.iter().all(|example| example.history.item == PriorCounts::default()), "a prior saw an outcome");
    let auc = metric(&trained, "auc");
    assert!(auc < 0.6, "nothing but the outcome predicts the label, yet auc is {auc}");
    let baseline = metric(&trained, "baseline_auc");
    assert!((baseline - 0.5).abs() < 1e-9, "unseen items all get the prior's mean: {baseline}");
}

#[test]
fn holdout_examples_read_the_training_counts_only() {
    // One item shown every 10 minutes for 3 days, every fourth time clicked in the same second:
    // each holdout example's counts are those of the training part, unmoved by the holdout.
    let fixture = Fixture::new();
    let start = NOW - 3 * DAY_SECONDS;
    let mut events = Vec::new();
    for index in 0..400i64 {
        let time = start + index * 600;
        let rn = format!("rn-{index}");
        events.push(event_in(&rn, &format!("u{index}"), "only", "expose", time));
        if index % 4 == 0 {
            events.push(event_in(&rn, &format!("u{index}"), "only", "click", time));
        }
    }
    fixture.append_behavior(&events);
    let snapshot = fixture.snapshot();
    let (trained, scored) =
        train_traced(&input(&snapshot, "ctr", &with(&[("model", "ftrl_lr")])), &context(), 100).unwrap();
    let training = trained.metrics["training_examples"].as_u64().unwrap();
    let training_positives = trained.metrics["training_positives"].as_u64().unwrap();
    // The holdout reads the counts of the training part only: the same for every holdout
    // example, whatever happened in the holdout before it.
    for example in &scored {
        let training_counts = PriorCounts { clicks: training_positives as u32, exposures: training as u32 };
        assert_eq!(example.history.item, training_counts);
    }
}

#[test]
fn a_click_without_exposure_is_a_positive_example_and_counts_as_an_exposure() {
    let fixture = planted_app(2_000, 3);
    fixture.append_behavior(&[event_in("lonely", "u1", "i1", "click", NOW - 5 * DAY_SECONDS)]);
    let trained = trained(&fixture, &with(&[("model", "ftrl_lr")]));
    assert_eq!(trained.data_report["clicks_without_exposure"], 1, "{}", trained.data_report);
    let impressions = trained.data_report["impressions"].as_u64().unwrap();
    assert_eq!(trained.data_report["examples"].as_u64().unwrap(), impressions + 1);
}

#[test]
fn a_click_joins_its_exposure_of_the_day_before_but_not_of_two_days_before() {
    let fixture = planted_app(2_000, 4);
    let late_evening = (NOW / DAY_SECONDS - 6) * DAY_SECONDS + DAY_SECONDS - 60;
    let events = vec![
        event_in("next-day", "u1", "i1", "expose", late_evening),
        event_in("next-day", "u1", "i1", "click", late_evening + 600),
        event_in("two-days", "u2", "i2", "expose", late_evening - DAY_SECONDS),
        event_in("two-days", "u2", "i2", "click", late_evening + 600),
    ];
    fixture.append_behavior(&events);
    let with_late = trained(&fixture, &with(&[("model", "ftrl_lr")]));
    let without = trained(&planted_app(2_000, 4), &with(&[("model", "ftrl_lr")]));
    let joined = |model: &TrainedModel| model.data_report["clicks_joined"].as_u64().unwrap();
    let lonely = |model: &TrainedModel| model.data_report["clicks_without_exposure"].as_u64().unwrap();
    assert_eq!(joined(&with_late), joined(&without) + 1, "the next-day click joins");
    assert_eq!(lonely(&with_late), lonely(&without) + 1, "the click two days later stands alone");
}

#[test]
fn cancellation_stops_learning_within_a_second() {
    let fixture = planted_app(20_000, 8);
    let snapshot = fixture.snapshot();
    let parameters = with(&[("model", "fm"), ("epochs", "50"), ("threads", "2")]);
    let training_input = input(&snapshot, "ctr", &parameters);
    let context = TrainingContext::new();
    let watcher_context = context.clone();
    let cancelled_at = std::thread::scope(|scope| {
        let watcher = scope.spawn(move || {
            while watcher_context.progress() < 25 {
                std::thread::sleep(Duration::from_millis(5));
            }
            watcher_context.cancel();
            Instant::now()
        });
        let outcome = train(&training_input, &context);
        let finished = Instant::now();
        let cancelled_at = watcher.join().unwrap();
        assert!(matches!(outcome, Err(TrainError::Cancelled)), "{:?}", outcome.map(|model| model.metrics));
        finished.duration_since(cancelled_at)
    });
    assert!(cancelled_at < Duration::from_secs(1), "stopped {cancelled_at:?} after the cancel");
}

#[test]
fn missing_data_fails_naming_what_is_missing() {
    let message = |events: Vec<BehaviorEvent>, parameters: &[(&str, &str)]| {
        let fixture = Fixture::new();
        if !events.is_empty() {
            fixture.append_behavior(&events);
        }
        let snapshot = fixture.snapshot();
        match train(&input(&snapshot, "ctr", parameters), &context()) {
            Err(TrainError::NotEnoughData(message)) => message,
            other => panic!("expected NotEnoughData, got {:?}", other.map(|model| model.metrics)),
        }
    };
    let none = message(Vec::new(), BASE);
    assert!(none.contains("no expose or click behavior events in the last 30 days"), "{none}");
    let time = NOW - DAY_SECONDS;
    let exposures: Vec<_> = (0..10).map(|index| event_in(&format!("r{index}"), "u", "i", "expose", time)).collect();
    let no_clicks = message(exposures.clone(), BASE);
    assert!(no_clicks.contains("no click behavior events (label_behavior_types)"), "{no_clicks}");
    let clicks: Vec<_> = (0..10).map(|index| event_in(&format!("r{index}"), "u", "i", "click", time)).collect();
    let no_exposures = message(clicks, BASE);
    assert!(no_exposures.contains("no expose behavior events"), "{no_exposures}");
    let mut one_day = exposures;
    one_day.push(event_in("r0", "u", "i", "click", time));
    let single_time = message(one_day.clone(), BASE);
    assert!(single_time.contains("the training part is empty"), "{single_time}");
    let buy = message(one_day, &with(&[("label_behavior_types", "buy")]));
    assert!(buy.contains("no buy behavior events"), "{buy}");
}

#[test]
fn weight_tables_too_large_for_memory_fail_the_task_instead_of_the_process() {
    let fixture = planted_app(500, 13);
    let snapshot = fixture.snapshot();
    let parameters = with(&[("model", "fm"), ("hash_bits", "28"), ("factors", "128")]);
    match train(&input(&snapshot, "ctr", &parameters), &context()) {
        Err(TrainError::Internal(message)) => {
            assert!(message.contains("hash_bits=28 with factors=128 needs 258 GiB"), "{message}");
            assert!(message.contains("lower hash_bits or factors"), "{message}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|model| model.metrics)),
    }
}

#[test]
fn a_model_below_its_baseline_warns_and_is_not_served_unless_asked() {
    let fixture = planted_app(3_000, 21);
    // An L1 penalty no weight survives: every example scores 0.5, an AUC of exactly 0.5.
    let useless = with(&[("model", "ftrl_lr"), ("l1", "1000000")]);
    let kept = trained(&fixture, &useless);
    assert!((metric(&kept, "auc") - 0.5).abs() < 1e-12, "{}", kept.metrics);
    assert!(!kept.replace_served);
    assert_eq!(kept.warnings.len(), 1);
    let baseline = format!("{:.4}", metric(&kept, "baseline_auc"));
    assert!(kept.warnings[0].contains("0.5000") && kept.warnings[0].contains(&baseline), "{:?}", kept.warnings);
    let mut forced_parameters = useless.clone();
    forced_parameters.push(("serve_below_baseline", "true"));
    let forced = trained(&fixture, &forced_parameters);
    assert!(forced.replace_served);
    assert_eq!(forced.warnings.len(), 1);
    assert!(forced.warnings[0].contains("serve_below_baseline=true"), "{:?}", forced.warnings);
}

#[test]
fn the_vw_export_writes_the_trainers_examples_and_split() {
    let fixture = planted_app(2_000, 6);
    let snapshot = fixture.snapshot();
    let parameters = with(&[("model", "ftrl_lr")]);
    let training_input = input(&snapshot, "ctr", &parameters);
    let (mut training, mut holdout) = (Vec::new(), Vec::new());
    let (training_lines, holdout_lines) =
        export_vw_examples(&training_input, &context(), &mut training, &mut holdout).unwrap();
    let trained = train(&training_input, &context()).unwrap();
    assert_eq!(training_lines, trained.metrics["training_examples"].as_u64().unwrap());
    assert_eq!(holdout_lines, trained.metrics["holdout_examples"].as_u64().unwrap());
    let training_text = String::from_utf8(training).unwrap();
    let holdout_text = String::from_utf8(holdout).unwrap();
    assert_eq!(training_text.lines().count() as u64, training_lines);
    let positives = holdout_text.lines().filter(|line| line.starts_with("1 |f ")).count() as u64;
    assert_eq!(positives, trained.metrics["holdout_positives"].as_u64().unwrap());
    for line in training_text.lines().chain(holdout_text.lines()) {
        let (label, features) = line.split_once(" |f ").unwrap_or_else(|| panic!("{line}"));
        assert!(label == "1" || label == "-1", "{line}");
        for feature in features.split(' ') {
            let (slot, value) = feature.split_once(':').unwrap_or_else(|| panic!("{feature}"));
            assert!(slot.parse::<u32>().unwrap() < 1 << 16, "{feature}");
            assert!(value.parse::<f32>().unwrap().is_finite(), "{feature}");
        }
    }
    // A random split holds out about the same share, spread over the whole time range.
    let random = with(&[("model", "ftrl_lr"), ("holdout_split", "random")]);
    let random_model = trained_on_snapshot(&snapshot, &random);
    let share = metric(&random_model, "holdout_examples")
        / (metric(&random_model, "holdout_examples") + metric(&random_model, "training_examples"));
    assert!((share - 0.2).abs() < 0.03, "{share}");
}

/// The counts the served model holds for a user.
fn example_user_counts(model: &CtrModel, user_id: &str) -> PriorCounts {
    model.user_features(user_id).1
}

fn trained_on_snapshot(snapshot: &trainyard_data::Snapshot, parameters: &[(&str, &str)]) -> TrainedModel {
    train(&input(snapshot, "ctr", parameters), &context()).unwrap()
}

#[test]
fn progress_reaches_every_phase_and_ends_at_100() {
    let fixture = planted_app(2_000, 2);
    let snapshot = fixture.snapshot();
    let context = TrainingContext::new();
    crate::train(trainyard_core::catalog::FunctionName::Ctr, &input(&snapshot, "ctr", BASE), &context).unwrap();
    assert_eq!(context.progress(), 100);
}

fn small_artifact() -> Vec<u8> {
    static ARTIFACT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ARTIFACT
        .get_or_init(|| {
            let fixture = planted_app(600, 1);
            trained(&fixture, &with(&[("model", "fm"), ("hash_bits", "12"), ("factors", "2")])).artifact
        })
        .clone()
}

/// Replaces the checksum after changing the body, so that the other checks are reached.
fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let body = bytes.len() - 32;
    let checksum = Sha256::digest(&bytes[..body]);
    bytes[body..].copy_from_slice(checksum.as_slice());
    bytes
}

#[test]
fn a_damaged_artifact_is_rejected_with_a_clear_error() {
    let artifact = small_artifact();
    let model = CtrModel::load(&artifact).unwrap();
    assert_eq!(model.to_bytes(), artifact, "a loaded model writes the same bytes");
    let context = Context { biz_id: "web".into(), time: NOW };
    assert_eq!(model.score("u1", &context, &["i1", "i2"]).len(), 2);

    let error = |bytes: &[u8]| CtrModel::load(bytes).expect_err("a damaged artifact loaded").to_string();
    assert!(error(&artifact[..artifact.len() - 1]).contains("checksum"), "{}", error(&artifact[..artifact.len() - 1]));
    assert!(error(b"not a model at all, not even close to one").contains("magic"));
    let mut flipped = artifact.clone();
    flipped[100] ^= 0x10;
    assert!(error(&flipped).contains("SHA-256 checksum does not match"), "{}", error(&flipped));
    // Intact checksums over bad contents: the field checks say what is wrong.
    let mut feature_version = artifact.clone();
    feature_version[12] = 99;
    assert!(matches!(CtrModel::load(&resealed(feature_version)), Err(ArtifactError::Unsupported(_))));
    let mut bits = artifact.clone();
    bits[17] = 0;
    assert!(error(&resealed(bits)).contains("hash bits 0"));
    let mut format = artifact.clone();
    format[8] = 1;
    let refused = CtrModel::load(&format).expect_err("a version 1 artifact loaded");
    assert!(matches!(refused, ArtifactError::Unsupported(_)));
    assert!(refused.to_string().contains("format version 1, this build reads version 2"), "{refused}");
    let mut flags = artifact.clone();
    flags[18] |= 0x10;
    assert!(error(&resealed(flags)).contains("unknown flags"));
    let mut scale = artifact.clone();
    scale[24..28].copy_from_slice(&0f32.to_le_bytes());
    assert!(error(&resealed(scale)).contains("the user id scale 0 is not within (0, 1000]"), "scale check");
    // The first weight row's slot (after the header, the prior and the row count) beyond 2^12.
    let item_bands = u32::from_le_bytes(artifact[60..64].try_into().unwrap()) as usize;
    let user_prior = 64 + 16 * item_bands;
    let user_bands = u32::from_le_bytes(artifact[user_prior + 16..user_prior + 20].try_into().unwrap()) as usize;
    let first_slot = user_prior + 20 + 16 * user_bands + 8;
    let mut slot = artifact.clone();
    slot[first_slot..first_slot + 4].copy_from_slice(&(1u32 << 12).to_le_bytes());
    assert!(error(&resealed(slot)).contains("outside the 2^12 slots"), "slot check");
    let mut not_finite = artifact.clone();
    not_finite[first_slot + 4..first_slot + 8].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(error(&resealed(not_finite)).contains("not a finite number"));
    // Finite but huge: a score would overflow to NaN.
    let mut huge = artifact.clone();
    huge[first_slot + 4..first_slot + 8].copy_from_slice(&1.0e30f32.to_le_bytes());
    let refused = error(&resealed(huge));
    assert!(refused.contains("a weight 1e30 is beyond ±1e6"), "{refused}");
}

#[test]
fn the_user_scales_ramp_up_with_the_users_history() {
    let scales = |model, examples_per_user| {
        let scales = user_scales_of(model, examples_per_user);
        (scales.id, scales.id_cross_category)
    };
    assert_eq!(scales(ModelKind::FtrlLr, 0.0), (1.0, 1.0), "no users");
    assert_eq!(scales(ModelKind::FtrlLr, 5.0), (1.0, 1.0), "a few examples per user: unscaled");
    assert_eq!(scales(ModelKind::Fm, 16.0), (1.0, 1.0));
    let (id, cross) = scales(ModelKind::FtrlLr, 32.0);
    assert!((id - 1.5).abs() < 1e-6 && (cross - 1.5).abs() < 1e-6, "halfway (log scale): {id} {cross}");
    assert_eq!(scales(ModelKind::FtrlLr, 64.0), (2.0, 2.0));
    assert_eq!(scales(ModelKind::FtrlLr, 1000.0), (2.0, 2.0));
    assert_eq!(scales(ModelKind::Fm, 97.0), (5.0, 1.0));
    let counts = [
        PriorCounts { clicks: 1, exposures: 10 },
        PriorCounts { clicks: 0, exposures: 0 },
        PriorCounts { clicks: 3, exposures: 20 },
    ];
    assert_eq!(examples_per_user(&counts), 15.0, "users without examples do not count");
    assert_eq!(examples_per_user(&[]), 0.0);
}

#[test]
fn a_diverged_run_is_refused_before_its_artifact_is_made() {
    let bounded = learners::ExportedWeights { factors: 0, bias: -1.5, slots: vec![3, 9], rows: vec![0.25, -1.0e5] };
    assert!(check_weights_bounded(&bounded).is_ok());
    let diverged = learners::ExportedWeights { rows: vec![0.25, -3.0e7], ..bounded.clone() };
    let message = check_weights_bounded(&diverged).unwrap_err().to_string();
    assert!(message.contains("the learning diverged (a weight of -3e7"), "{message}");
    let nan_bias = learners::ExportedWeights { bias: f32::NAN, ..bounded };
    assert!(check_weights_bounded(&nan_bias).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_truncated_or_bit_flipped_artifact_loads_or_panics(cut in any::<prop::sample::Index>(),
                                                          flip in any::<prop::sample::Index>(),
                                                          bit in 0u8..8,
                                                          reseal in any::<bool>()) {
        let artifact = small_artifact();
        let truncated = &artifact[..cut.index(artifact.len())];
        prop_assert!(CtrModel::load(truncated).is_err());
        let mut flipped = artifact.clone();
        let at = flip.index(artifact.len());
        flipped[at] ^= 1 << bit;
        if reseal && at < artifact.len() - 32 {
            // The checksum no longer guards: the loader must still never panic, and whatever
            // it accepts must score finite probabilities.
            if let Ok(model) = CtrModel::load(&resealed(flipped)) {
                let context = Context { biz_id: "web".into(), time: NOW };
                let scores = model.score("u1", &context, &["i1", "x"]);
                prop_assert!(scores.iter().all(|score| score.is_finite()));
            }
        } else {
            prop_assert!(CtrModel::load(&flipped).is_err());
        }
    }
}
