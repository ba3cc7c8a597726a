//! `trainyard train-offline`: train one function in this process on the data dir of a stopped
//! server, for benchmarks and debugging. Nothing is recorded: no task, no generation, no
//! artifact in the object store (`--artifact-out` writes the model to a file of your choice).
//!
//! It opens the data dir exactly as `serve` does (and takes its lock, so it refuses to run
//! beside a server on the same data dir), takes a snapshot of the app group's data, and runs the
//! trainer the runner would run, with the create parameters given as `--param name=value` over
//! the catalog defaults (validated by the catalog, as CreateFunctionInstance would). It prints
//! one JSON object: the parameters used, wall seconds, the process's peak resident memory, and
//! the trainer's metrics, data report and warnings.
//!
//! For ctr, `--export-vw DIR` writes the trainer's examples (same features, same split) as
//! Vowpal Wabbit text instead of training, and `--score-bench N` times N scoring calls of 100
//! items on the artifact as serving loads it: bench/ctr.sh uses both.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::json;
use trainyard_core::catalog::{self, FunctionName, ParameterList};
use trainyard_core::model::{AccountId, Parameter};
use trainyard_core::service::parse_app_group_identity;
use trainyard_core::store::MetadataStore as _;
use trainyard_train::{TrainingContext, TrainingInput};

use crate::config::{ServeConfig, ServeFlags};
use crate::keys::ROOT_ACCOUNT_ID;
use crate::server::open_backends;

#[derive(Debug, Clone, clap::Args)]
pub struct TrainOfflineArgs {
    #[command(flatten)]
    pub serve: ServeFlags,
    /// App group (name or id).
    #[arg(long)]
    pub app: String,
    /// Function to train (ctr, pop, hot, hint).
    #[arg(long)]
    pub function: String,
    /// Model type; default: the function's first model type in the catalog.
    #[arg(long)]
    pub model_type: Option<String>,
    /// A create parameter, `name=value` (repeat the flag for more).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub parameters: Vec<String>,
    /// The training time, Unix seconds (windows end here); default: now.
    #[arg(long)]
    pub now: Option<i64>,
    /// Write the artifact to this file.
    #[arg(long)]
    pub artifact_out: Option<PathBuf>,
    /// ctr only: instead of training, write the examples the trainer would train and evaluate
    /// on as Vowpal Wabbit text (DIR/train.vw, DIR/holdout.vw; feature names are the hashed
    /// slots), for bench/ctr.sh.
    #[arg(long, value_name = "DIR")]
    pub export_vw: Option<PathBuf>,
    /// ctr only: after training, load the artifact as serving does and time this many scoring
    /// calls of 100 known items each (a random user and context each); reports p50/p99.
    #[arg(long, value_name = "REQUESTS")]
    pub score_bench: Option<usize>,
}

/// Items per scoring call of `--score-bench` (the latency figure).
const SCORE_BENCH_ITEMS: usize = 100;

/// `name=value` → a parameter; the error names the flag and the rule.
fn parse_parameter(text: &str) -> anyhow::Result<Parameter> {
    let Some((name, value)) = text.split_once('=') else {
        bail!("--param {text:?}: expected NAME=VALUE");
    };
    Ok(Parameter { name: name.trim().to_string(), value: value.to_string() })
}

/// The process's peak resident set (VmHWM), in bytes; None where /proc is not there.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kibibytes: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kibibytes * 1024)
}

pub async fn run(arguments: TrainOfflineArgs) -> anyhow::Result<()> {
    let function = FunctionName::parse(&arguments.function).map_err(|error| anyhow::anyhow!("--function: {error}"))?;
    let version = match &arguments.model_type {
        Some(model_type) => catalog::all_versions()
            .iter()
            .filter(|version| version.function_name == function && version.model_type == model_type)
            .max_by_key(|version| version.version_id),
        None => catalog::all_versions()
            .iter()
            .filter(|version| version.function_name == function)
            .max_by_key(|version| version.version_id),
    }
    .with_context(|| format!("--model-type: function {function} has no such model type in the catalog"))?;
    let given = arguments.parameters.iter().map(|text| parse_parameter(text)).collect::<anyhow::Result<Vec<_>>>()?;
    version.validate_parameters(ParameterList::Create, &given).map_err(|error| anyhow::anyhow!("--param: {error}"))?;
    let parameters: BTreeMap<String, String> = version.effective_parameters(ParameterList::Create, &given);

    let config = ServeConfig::load(&arguments.serve)?;
    let backends = open_backends(&config).await?;
    let identity = parse_app_group_identity(&arguments.app).map_err(|error| anyhow::anyhow!("--app: {error}"))?;
    let app_group = backends
        .store
        .find_app_group(&AccountId(ROOT_ACCOUNT_ID.into()), &identity)
        .await?
        .with_context(|| format!("--app: no app group {:?} in {}", arguments.app, config.data_dir.display()))?;
    let now_seconds = arguments.now.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let datasets = backends.datasets.clone();
    let model_type = version.model_type;
    if let Some(directory) = &arguments.export_vw {
        if function != FunctionName::Ctr {
            bail!("--export-vw: only ctr trains on examples (got --function {function})");
        }
        return export_vw(datasets, app_group.id, now_seconds, model_type, parameters, directory).await;
    }
    let training_parameters = parameters.clone();
    let started = Instant::now();
    let trained = tokio::task::spawn_blocking(move || {
        let snapshot = datasets.snapshot(app_group.id)?;
        let input = TrainingInput { snapshot: &snapshot, now_seconds, model_type, parameters: training_parameters };
        trainyard_train::train(function, &input, &TrainingContext::new()).map_err(anyhow::Error::from)
    })
    .await??;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(path) = &arguments.artifact_out {
        std::fs::write(path, &trained.artifact).with_context(|| format!("writing {}", path.display()))?;
    }
    let scoring = match arguments.score_bench {
        Some(requests) if function == FunctionName::Ctr => Some(score_bench(&trained.artifact, requests, now_seconds)?),
        Some(_) => bail!("--score-bench: only ctr scores items (got --function {function})"),
        None => None,
    };
    let report = json!({
        "function": function.as_str(),
        "version_id": version.version_id,
        "model_type": model_type,
        "parameters": parameters,
        "now": now_seconds,
        "seconds": seconds,
        "peak_resident_bytes": peak_resident_bytes(),
        "artifact_bytes": trained.artifact.len(),
        "metrics": trained.metrics,
        "data_report": trained.data_report,
        "warnings": trained.warnings,
        "replace_served": trained.replace_served,
        "scoring": scoring,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn export_vw(
    datasets: std::sync::Arc<trainyard_data::DatasetStore>,
    app_group_id: i64,
    now_seconds: i64,
    model_type: &'static str,
    parameters: BTreeMap<String, String>,
    directory: &std::path::Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory).with_context(|| format!("creating {}", directory.display()))?;
    let train_path = directory.join("train.vw");
    let holdout_path = directory.join("holdout.vw");
    let started = Instant::now();
    let (train_file, holdout_file) = (std::fs::File::create(&train_path)?, std::fs::File::create(&holdout_path)?);
    let export_parameters = parameters.clone();
    let (training_examples, holdout_examples) = tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, u64)> {
        let snapshot = datasets.snapshot(app_group_id)?;
        let input = TrainingInput { snapshot: &snapshot, now_seconds, model_type, parameters: export_parameters };
        let mut train_out = std::io::BufWriter::new(train_file);
        let mut holdout_out = std::io::BufWriter::new(holdout_file);
        let counts = trainyard_train::ctr::export_vw_examples(
            &input,
            &TrainingContext::new(),
            &mut train_out,
            &mut holdout_out,
        )?;
        std::io::Write::flush(&mut train_out)?;
        std::io::Write::flush(&mut holdout_out)?;
        Ok(counts)
    })
    .await??;
    let report = json!({
        "function": "ctr",
        "parameters": parameters,
        "now": now_seconds,
        "seconds": started.elapsed().as_secs_f64(),
        "export": {
            "train": train_path, "training_examples": training_examples,
            "holdout": holdout_path, "holdout_examples": holdout_examples,
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Times `requests` scoring calls of [`SCORE_BENCH_ITEMS`] items on the artifact as loaded by
/// serving: known items and users drawn by a fixed-seed generator, the context's time stepping
/// through the hours and weekdays after `now_seconds`.
fn score_bench(artifact: &[u8], requests: usize, now_seconds: i64) -> anyhow::Result<serde_json::Value> {
    if requests == 0 {
        bail!("--score-bench: give at least 1 request");
    }
    let load_started = Instant::now();
    let model = trainyard_train::ctr::CtrModel::load(artifact)?;
    let load_seconds = load_started.elapsed().as_secs_f64();
    let mut item_ids: Vec<&str> = model.known_item_ids().collect();
    item_ids.sort_unstable();
    if item_ids.is_empty() {
        bail!("--score-bench: the model knows no items");
    }
    let mut user_ids: Vec<&str> = model.known_user_ids().collect();
    user_ids.sort_unstable();
    // A fixed-seed xorshift: the same requests every run, no dependency for it.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut latencies_ms = Vec::with_capacity(requests);
    let mut asked: Vec<&str> = Vec::with_capacity(SCORE_BENCH_ITEMS);
    let mut checksum = 0.0f64;
    for request in 0..requests {
        asked.clear();
        asked.extend((0..SCORE_BENCH_ITEMS).map(|_| item_ids[(next() % item_ids.len() as u64) as usize]));
        let user = if user_ids.is_empty() { "bench-user" } else { user_ids[(next() % user_ids.len() as u64) as usize] };
        let context = trainyard_train::ctr::Context { biz_id: String::new(), time: now_seconds + request as i64 * 977 };
        let started = Instant::now();
        let scores = model.score(user, &context, &asked);
        latencies_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        checksum += scores.iter().map(|score| f64::from(*score)).sum::<f64>();
    }
    latencies_ms.sort_by(f64::total_cmp);
    let percentile = |fraction: f64| latencies_ms[((latencies_ms.len() as f64 - 1.0) * fraction).round() as usize];
    Ok(json!({
        "requests": requests,
        "items_per_request": SCORE_BENCH_ITEMS,
        "load_seconds": load_seconds,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "max_ms": percentile(1.0),
        "mean_score": checksum / (requests * SCORE_BENCH_ITEMS) as f64,
    }))
}
