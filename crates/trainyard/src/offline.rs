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
}

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
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
