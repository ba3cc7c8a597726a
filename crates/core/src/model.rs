//! The domain objects, named as the upstream API names them.
//!
//! These types are not `Serialize`: the HTTP crate converts them into wire shapes explicitly, so
//! that a field added here never leaks onto the wire by accident. Times are epoch milliseconds.

use crate::catalog::FunctionName;

/// Epoch milliseconds.
pub type Millis = i64;

/// The account that owns app groups. Until RAM users arrive there is one root account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(pub String);

/// A name/value pair of `createParameters` / `usageParameters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub value: String,
}

/// A key/value tag of an app group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// The (advisory) quota of an app group. Trainyard records it and reports it; it enforces no
/// billing quota.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppGroupQuota {
    pub doc_size: i64,
    pub compute_resource: i64,
    pub spec: String,
}

/// An app group: the workspace that owns instances, resources and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppGroup {
    /// Numeric id, unique across the service; the path may name an app group by it.
    pub id: i64,
    pub account_id: AccountId,
    pub name: String,
    /// `standard` or `enhanced`.
    pub app_type: String,
    /// `POSTPAY` or `PREPAY` (recorded, not billed).
    pub charge_type: String,
    pub description: String,
    /// Industry: empty (general), `general`, `ecommerce`, `education`, `esports`, `community`.
    pub domain: String,
    pub resource_group_id: String,
    pub quota: AppGroupQuota,
    pub tags: Vec<Tag>,
    pub created_ms: Millis,
    pub updated_ms: Millis,
}

impl AppGroup {
    /// The identifier shown as `instanceId`.
    pub fn instance_id(&self) -> String {
        format!("ty-{}", self.id)
    }
}

/// Where an instance came from: created by a user, or by the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceSource {
    User,
    Builtin,
}

impl InstanceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceSource::User => "user",
            InstanceSource::Builtin => "builtin",
        }
    }

    pub fn parse(text: &str) -> Option<InstanceSource> {
        match text {
            "user" => Some(InstanceSource::User),
            "builtin" => Some(InstanceSource::Builtin),
            _ => None,
        }
    }
}

/// An algorithm instance of one function in one app group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInstance {
    pub id: i64,
    pub app_group_id: i64,
    pub function_name: FunctionName,
    pub instance_name: String,
    pub model_type: String,
    pub function_type: String,
    pub source: InstanceSource,
    pub description: String,
    pub create_parameters: Vec<Parameter>,
    pub usage_parameters: Vec<Parameter>,
    /// Empty when the instance does not retrain periodically.
    pub cron: String,
    /// The catalog version the parameters were validated against.
    pub version_id: i64,
    /// The generation whose model is served; `None` until a task has succeeded.
    pub serving_generation: Option<i64>,
    /// JSON text describing the serving model (metrics, data report); `{}` before training.
    pub extend_info: String,
    pub created_ms: Millis,
    pub updated_ms: Millis,
}

impl FunctionInstance {
    /// `available` once a model has been trained, else `unavailable`.
    pub fn status(&self) -> &'static str {
        if self.serving_generation.is_some() { "available" } else { "unavailable" }
    }
}

/// The stored state of a training task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Recorded, waiting for a worker.
    Pending,
    Running,
    Success,
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<TaskState> {
        match text {
            "pending" => Some(TaskState::Pending),
            "running" => Some(TaskState::Running),
            "success" => Some(TaskState::Success),
            "failed" => Some(TaskState::Failed),
            _ => None,
        }
    }

    /// Pending and running tasks hold the instance: no second task, no deletion.
    pub fn is_active(self) -> bool {
        matches!(self, TaskState::Pending | TaskState::Running)
    }

    /// The status the task APIs show: upstream has no `pending`, so a task waiting for a worker
    /// shows as `running` (with progress 0).
    pub fn api_status(self) -> &'static str {
        match self {
            TaskState::Pending | TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
        }
    }
}

/// Where a trained model's artifact is, and how to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRef {
    /// Object path, relative to the object store root.
    pub path: String,
    /// Lower-case hex SHA-256 of the artifact: checked before a model is served.
    pub sha256: String,
    pub bytes: i64,
}

/// What started a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskTrigger {
    /// CreateFunctionTask.
    Api,
    /// The instance's cron.
    Cron,
}

impl TaskTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskTrigger::Api => "api",
            TaskTrigger::Cron => "cron",
        }
    }

    pub fn parse(text: &str) -> TaskTrigger {
        if text == "cron" { TaskTrigger::Cron } else { TaskTrigger::Api }
    }
}

/// One training run of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTask {
    pub id: i64,
    pub instance_id: i64,
    pub function_name: FunctionName,
    /// 1, 2, 3 ... per instance, never reused.
    pub generation: i64,
    pub state: TaskState,
    /// 0-100.
    pub progress: i64,
    /// `<trigger>__<ISO time>`, e.g. `api__2026-11-29T08:49:38Z`.
    pub run_id: String,
    /// JSON text: metrics, data report and errors of the run.
    pub extend_info: String,
    pub created_ms: Millis,
    /// When a worker first started it (kept across retries); `None` until a worker claimed it.
    pub started_ms: Option<Millis>,
    /// When it finished; `None` until then.
    pub ended_ms: Option<Millis>,
    pub trigger: TaskTrigger,
    /// How many times a worker has claimed it (the fencing token of the current attempt).
    pub attempt: i64,
    /// A stop was asked while it ran.
    pub cancel_requested: bool,
    /// The model it produced, once it succeeded.
    pub artifact: Option<ArtifactRef>,
}

impl FunctionTask {
    /// The `StartTime` shown: when it started, or when it was submitted while still pending.
    pub fn start_time_ms(&self) -> Millis {
        self.started_ms.unwrap_or(self.created_ms)
    }
}

/// The type of a function resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    FeatureGenerator,
    RawFile,
}

impl ResourceType {
    pub const ALL: [ResourceType; 2] = [ResourceType::FeatureGenerator, ResourceType::RawFile];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::FeatureGenerator => "feature_generator",
            ResourceType::RawFile => "raw_file",
        }
    }

    pub fn parse(text: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|resource_type| resource_type.as_str() == text)
    }
}

/// One input feature of a generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorFeature {
    pub name: String,
    /// `item` or `user`.
    pub feature_type: String,
}

/// One feature generator of a `feature_generator` resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureGenerator {
    /// `lookup`, `sequence`, `overlap`, `raw`, `combo` or `id`.
    pub generator: String,
    pub input_features: Vec<GeneratorFeature>,
    pub output: String,
}

/// The content of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceData {
    /// The file text of a `raw_file`.
    pub content: String,
    /// The generators of a `feature_generator`.
    pub generators: Vec<FeatureGenerator>,
}

/// A resource (file or feature generator) of one function in one app group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionResource {
    pub id: i64,
    pub app_group_id: i64,
    pub function_name: FunctionName,
    pub resource_name: String,
    pub resource_type: ResourceType,
    pub description: String,
    pub data: ResourceData,
    /// Names of the instances whose parameters reference this resource.
    pub referenced_instances: Vec<String>,
    pub created_ms: Millis,
    pub modified_ms: Millis,
}

/// A page request, already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based.
    pub page_number: i64,
    pub page_size: i64,
}

impl PageRequest {
    pub fn offset(&self) -> i64 {
        (self.page_number - 1).saturating_mul(self.page_size)
    }
}

/// One page of results and the number of matches over all pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total_count: i64,
}

/// A document table of an app group: the documents pushed to it are keyed by `primary_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTable {
    pub app_group_id: i64,
    pub table_name: String,
    /// The document field that identifies a document.
    pub primary_key: String,
    pub created_ms: Millis,
}
