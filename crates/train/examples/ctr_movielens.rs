//! The ctr trainer on MovieLens-100k, without a server: loads the MovieLens kit's JSON Lines
//! into a temporary dataset store and trains ctr with each model on each holdout split,
//! printing the holdout AUC and logloss of the model and of the smoothed-popularity baseline.
//!
//! ```sh
//! python3 scripts/movielens_kit.py derive --out /tmp/ml      # the kit's files (no server)
//! cargo run --release -p trainyard-train --example ctr_movielens -- /tmp/ml
//! cargo run --release -p trainyard-train --example ctr_movielens -- /tmp/ml model=fm holdout_split=random epochs=5
//! ```
//!
//! With `--vw OUT` it also writes, for each split, the trainer's own examples and split as
//! Vowpal Wabbit text (`OUT/<split>.train.vw`, `OUT/<split>.holdout.vw`, through
//! `ctr::export_vw_examples`); `bench/ctr.sh` compares with VW end to end.
//!
//! Arguments after the directory are create parameters (`name=value`) set on every run; naming
//! `model` or `holdout_split` runs only that model or split. The other parameters are the
//! kit's suggestion (`id_field=item_id, title_field=title, tags_field=genres,
//! user_fields=age,gender,occupation, training_window_days=365`), 20 % held out like the
//! anchors of `shared/research/ml.md` §1.4, `threads=1` (deterministic), the catalog's defaults
//! for the rest. It prints one line per run and the metrics as JSON with `-v`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use trainyard_core::catalog::FunctionName;
use trainyard_data::records::{
    BehaviorEvent, CollectionRecord, DatasetKind, DocumentCommand, DocumentRecord, IngestRecord,
};
use trainyard_data::{DatasetConfig, DatasetStore};
use trainyard_train::{TrainingContext, TrainingInput, train};

const APP: i64 = 1;

fn lines(path: &Path) -> Vec<Value> {
    let file = std::fs::File::open(path).unwrap_or_else(|error| panic!("opening {}: {error}", path.display()));
    std::io::BufReader::new(file)
        .lines()
        .map(|line| serde_json::from_str(&line.expect("a line")).expect("a JSON line"))
        .collect()
}

fn text(value: &Value, name: &str) -> String {
    match &value[name] {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => String::new(),
    }
}

fn object(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Latency of `CtrModel::score` for 100 items (the serving case): p50 and p99 over 2000 calls,
/// each a user and 100 movies drawn by a fixed hash.
fn scoring_latency(model: &trainyard_train::ctr::CtrModel) -> String {
    let mut state = 0x5eed_u64;
    let mut next = move |bound: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % bound
    };
    let mut durations = Vec::with_capacity(2000);
    let mut checksum = 0.0f64;
    for call in 0..2000 {
        let user_id = (1 + next(943)).to_string();
        let item_ids: Vec<String> = (0..100).map(|_| (1 + next(1682)).to_string()).collect();
        let item_refs: Vec<&str> = item_ids.iter().map(String::as_str).collect();
        let context = trainyard_train::ctr::Context { biz_id: "movielens".into(), time: 893_286_640 + call };
        let started = std::time::Instant::now();
        let scores = model.score(&user_id, &context, &item_refs);
        durations.push(started.elapsed().as_secs_f64() * 1e6);
        checksum += f64::from(scores[0]);
    }
    durations.sort_by(f64::total_cmp);
    format!(
        "p50 {:.0} µs, p99 {:.0} µs (checksum {checksum:.3})",
        durations[durations.len() / 2],
        durations[durations.len() * 99 / 100]
    )
}

fn main() {
    let mut arguments = std::env::args().skip(1);
    let directory = arguments.next().expect("usage: ctr_movielens DIR [name=value ...] [-v]");
    let mut overrides = BTreeMap::new();
    let mut verbose = false;
    let mut vw_directory: Option<std::path::PathBuf> = None;
    let mut arguments = arguments.peekable();
    while let Some(argument) = arguments.next() {
        if argument == "-v" {
            verbose = true;
            continue;
        }
        if argument == "--vw" {
            vw_directory = Some(arguments.next().expect("--vw needs a directory").into());
            continue;
        }
        let (name, value) = argument.split_once('=').expect("parameters are name=value");
        overrides.insert(name.to_string(), value.to_string());
    }
    let directory = Path::new(&directory);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
    let store_directory = tempfile::tempdir().expect("a temporary directory");
    let config =
        DatasetConfig { log_directory: store_directory.path().join("log"), segment_max_bytes: 64 * 1024 * 1024 };
    let store = Arc::new(
        DatasetStore::open_local(config, &store_directory.path().join("objects"), runtime.handle().clone())
            .expect("a dataset store"),
    );
    let append = |kind: DatasetKind, records: Vec<IngestRecord>| {
        for chunk in records.chunks(5000) {
            store.append_blocking(APP, kind, chunk, None, 0).expect("appended");
        }
    };
    let documents = lines(&directory.join("movies.jsonl"))
        .into_iter()
        .map(|movie| {
            IngestRecord::Document(DocumentRecord {
                table: "movies".into(),
                primary_key: text(&movie, "item_id"),
                command: DocumentCommand::Add,
                timestamp_ms: None,
                fields: object(movie),
            })
        })
        .collect();
    append(DatasetKind::Documents, documents);
    let users = lines(&directory.join("users.jsonl"))
        .into_iter()
        .map(|user| IngestRecord::User(CollectionRecord { key: text(&user, "user_id"), fields: object(user) }))
        .collect();
    append(DatasetKind::Users, users);
    let mut last_time = 0;
    let events: Vec<IngestRecord> = lines(&directory.join("behavior.jsonl"))
        .into_iter()
        .map(|event| {
            let time = event["bhv_time"].as_i64().expect("bhv_time");
            last_time = last_time.max(time);
            IngestRecord::Behavior(BehaviorEvent {
                user_id: Some(text(&event, "user_id")),
                imei: None,
                biz_id: text(&event, "biz_id"),
                trace_id: text(&event, "trace_id"),
                trace_info: None,
                rn: text(&event, "rn"),
                item_id: text(&event, "item_id"),
                item_type: text(&event, "item_type"),
                bhv_type: text(&event, "bhv_type"),
                bhv_time: time,
                bhv_value: None,
                bhv_detail: None,
                attributes: BTreeMap::new(),
            })
        })
        .collect();
    append(DatasetKind::Behavior, events);
    store.compact_blocking(APP, true).expect("compacted");
    let snapshot = store.snapshot(APP).expect("a snapshot");

    let models: Vec<String> = match overrides.get("model") {
        Some(model) => vec![model.clone()],
        None => vec!["ftrl_lr".into(), "fm".into()],
    };
    let splits: Vec<String> = match overrides.get("holdout_split") {
        Some(split) => vec![split.clone()],
        None => vec!["time".into(), "random".into()],
    };
    for split in &splits {
        for model in &models {
            let mut parameters: BTreeMap<String, String> = [
                ("id_field", "item_id"),
                ("title_field", "title"),
                ("tags_field", "genres"),
                ("user_fields", "age,gender,occupation"),
                ("training_window_days", "365"),
                ("holdout_percent", "20"),
                ("threads", "1"),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
            parameters.extend(overrides.clone());
            parameters.insert("model".into(), model.clone());
            parameters.insert("holdout_split".into(), split.clone());
            let input =
                TrainingInput { snapshot: &snapshot, now_seconds: last_time + 1, model_type: "ctr", parameters };
            if let Some(vw_directory) = &vw_directory
                && model == &models[0]
            {
                std::fs::create_dir_all(vw_directory).expect("the VW directory");
                let open = |name: String| {
                    std::io::BufWriter::new(std::fs::File::create(vw_directory.join(name)).expect("a VW file"))
                };
                let mut training = open(format!("{split}.train.vw"));
                let mut holdout = open(format!("{split}.holdout.vw"));
                let written = trainyard_train::ctr::export_vw_examples(
                    &input,
                    &TrainingContext::new(),
                    &mut training,
                    &mut holdout,
                )
                .expect("the VW export");
                println!(
                    "{split:6} VW examples: {} training, {} holdout in {}",
                    written.0,
                    written.1,
                    vw_directory.display()
                );
            }
            let started = std::time::Instant::now();
            let trained = match train(FunctionName::Ctr, &input, &TrainingContext::new()) {
                Ok(trained) => trained,
                Err(error) => {
                    println!("{split:6} {model:7} failed: {error}");
                    continue;
                }
            };
            let metrics = &trained.metrics;
            println!(
                "{split:6} {model:7} auc {:.4} logloss {:.4} | baseline auc {:.4} logloss {:.4} | {} train / {} holdout | {:.0} ex/s | {:.2} s",
                metrics["auc"].as_f64().unwrap_or(f64::NAN),
                metrics["logloss"].as_f64().unwrap_or(f64::NAN),
                metrics["baseline_auc"].as_f64().unwrap_or(f64::NAN),
                metrics["baseline_logloss"].as_f64().unwrap_or(f64::NAN),
                metrics["training_examples"],
                metrics["holdout_examples"],
                metrics["examples_per_second"].as_f64().unwrap_or(0.0),
                started.elapsed().as_secs_f64(),
            );
            let loaded = std::time::Instant::now();
            let served = trainyard_train::ctr::CtrModel::load(&trained.artifact).expect("the artifact loads");
            let load_seconds = loaded.elapsed().as_secs_f64();
            println!(
                "{split:6} {model:7} artifact {} bytes, loaded in {:.1} ms; scoring 100 items: {}",
                trained.artifact.len(),
                load_seconds * 1000.0,
                scoring_latency(&served)
            );
            if verbose {
                println!("{}", serde_json::to_string_pretty(metrics).unwrap_or_default());
                println!("{}", serde_json::to_string_pretty(&trained.data_report).unwrap_or_default());
            }
        }
    }
}
