//! The JSON shapes on the wire, and their conversion to and from domain types.
//!
//! Request bodies follow the SDK's casing exactly (camelCase for instances, default instance
//! and app groups; PascalCase for resources) and refuse unknown fields, so that a misspelt or
//! read-only field (`status`, `generation`, ...) is reported instead of silently ignored.
//! Responses are PascalCase for the Function operations (the only casing their SDK models
//! read) and camelCase for the app-group operations (likewise).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trainyard_core::catalog::{FunctionVersion, ParameterSpec};
use trainyard_core::model::{
    AppGroup, AppGroupQuota, FeatureGenerator, FunctionResource, FunctionTask, GeneratorFeature, Parameter,
    ResourceData, Tag, TaskState,
};
use trainyard_core::service::InstanceView;

// ---- request bodies ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterBody {
    pub name: String,
    pub value: String,
}

fn parameters(bodies: Vec<ParameterBody>) -> Vec<Parameter> {
    bodies.into_iter().map(|body| Parameter { name: body.name, value: body.value }).collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateFunctionInstanceBody {
    pub instance_name: Option<String>,
    pub model_type: Option<String>,
    pub function_type: Option<String>,
    pub description: Option<String>,
    pub create_parameters: Option<Vec<ParameterBody>>,
    pub usage_parameters: Option<Vec<ParameterBody>>,
    pub cron: Option<String>,
}

impl From<CreateFunctionInstanceBody> for trainyard_core::service::CreateFunctionInstanceRequest {
    fn from(body: CreateFunctionInstanceBody) -> Self {
        trainyard_core::service::CreateFunctionInstanceRequest {
            instance_name: body.instance_name,
            model_type: body.model_type,
            function_type: body.function_type,
            description: body.description,
            create_parameters: parameters(body.create_parameters.unwrap_or_default()),
            usage_parameters: parameters(body.usage_parameters.unwrap_or_default()),
            cron: body.cron,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateFunctionInstanceBody {
    pub create_parameters: Option<Vec<ParameterBody>>,
    pub usage_parameters: Option<Vec<ParameterBody>>,
    pub cron: Option<String>,
    pub description: Option<String>,
}

impl From<UpdateFunctionInstanceBody> for trainyard_core::service::UpdateFunctionInstanceRequest {
    fn from(body: UpdateFunctionInstanceBody) -> Self {
        trainyard_core::service::UpdateFunctionInstanceRequest {
            create_parameters: body.create_parameters.map(parameters),
            usage_parameters: body.usage_parameters.map(parameters),
            cron: body.cron,
            description: body.description,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateFunctionDefaultInstanceBody {
    pub instance_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct FeatureBody {
    pub name: String,
    #[serde(rename = "Type")]
    pub feature_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct GeneratorInputBody {
    pub features: Option<Vec<FeatureBody>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct GeneratorBody {
    pub generator: Option<String>,
    pub input: Option<GeneratorInputBody>,
    pub output: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ResourceDataBody {
    pub content: Option<String>,
    pub generators: Option<Vec<GeneratorBody>>,
}

impl From<ResourceDataBody> for ResourceData {
    fn from(body: ResourceDataBody) -> Self {
        ResourceData {
            content: body.content.unwrap_or_default(),
            generators: body
                .generators
                .unwrap_or_default()
                .into_iter()
                .map(|generator| FeatureGenerator {
                    generator: generator.generator.unwrap_or_default(),
                    input_features: generator
                        .input
                        .and_then(|input| input.features)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|feature| GeneratorFeature { name: feature.name, feature_type: feature.feature_type })
                        .collect(),
                    output: generator.output.unwrap_or_default(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct CreateFunctionResourceBody {
    pub resource_name: Option<String>,
    pub resource_type: Option<String>,
    pub description: Option<String>,
    pub data: Option<ResourceDataBody>,
}

impl From<CreateFunctionResourceBody> for trainyard_core::service::CreateFunctionResourceRequest {
    fn from(body: CreateFunctionResourceBody) -> Self {
        trainyard_core::service::CreateFunctionResourceRequest {
            resource_name: body.resource_name,
            resource_type: body.resource_type,
            description: body.description,
            data: body.data.map(ResourceData::from),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct UpdateFunctionResourceBody {
    pub description: Option<String>,
    pub data: Option<ResourceDataBody>,
}

impl From<UpdateFunctionResourceBody> for trainyard_core::service::UpdateFunctionResourceRequest {
    fn from(body: UpdateFunctionResourceBody) -> Self {
        trainyard_core::service::UpdateFunctionResourceRequest {
            description: body.description,
            data: body.data.map(ResourceData::from),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuotaBody {
    pub compute_resource: Option<i64>,
    pub doc_size: Option<i64>,
    pub spec: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagBody {
    pub key: Option<String>,
    pub value: Option<String>,
}

pub fn tags(bodies: Vec<TagBody>) -> Vec<Tag> {
    bodies
        .into_iter()
        .map(|tag| Tag { key: tag.key.unwrap_or_default(), value: tag.value.unwrap_or_default() })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateAppGroupBody {
    pub charge_type: Option<String>,
    pub name: Option<String>,
    pub quota: Option<QuotaBody>,
    pub resource_group_id: Option<String>,
    pub tags: Option<Vec<TagBody>>,
    #[serde(rename = "type")]
    pub app_type: Option<String>,
}

impl From<CreateAppGroupBody> for trainyard_core::service::CreateAppGroupRequest {
    fn from(body: CreateAppGroupBody) -> Self {
        trainyard_core::service::CreateAppGroupRequest {
            name: body.name,
            app_type: body.app_type,
            charge_type: body.charge_type,
            quota: body.quota.map(|quota| AppGroupQuota {
                doc_size: quota.doc_size.unwrap_or_default(),
                compute_resource: quota.compute_resource.unwrap_or_default(),
                spec: quota.spec.unwrap_or_default(),
            }),
            resource_group_id: body.resource_group_id,
            tags: tags(body.tags.unwrap_or_default()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModifyAppGroupBody {
    pub current_version: Option<String>,
    pub description: Option<String>,
    pub domain: Option<String>,
    pub resource_group_id: Option<String>,
}

// ---- responses ----

/// How much of an instance or resource to show (`output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLevel {
    /// Identity and status only.
    Simple,
    /// Adds parameters, cron, description and extend info.
    Normal,
    /// Adds the latest training task.
    Detail,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ParameterView<'a> {
    name: &'a str,
    value: &'a str,
}

fn parameter_views(parameters: &[Parameter]) -> Vec<ParameterView<'_>> {
    parameters.iter().map(|parameter| ParameterView { name: &parameter.name, value: &parameter.value }).collect()
}

/// `DagStatus` of an instance's latest task (`untrained` when it has none).
pub fn dag_status(latest_task: Option<&FunctionTask>) -> &'static str {
    match latest_task.map(|task| task.state) {
        None => "untrained",
        Some(TaskState::Pending) => "pending",
        Some(TaskState::Running) => "running",
        Some(TaskState::Success) => "success",
        Some(TaskState::Failed) => "failed",
    }
}

/// An instance as GetFunctionInstance / ListFunctionInstances show it.
pub fn instance_result(view: &InstanceView, level: OutputLevel) -> Value {
    let instance = &view.instance;
    let mut result = serde_json::json!({
        "Belongs": { "Category": "general", "Domain": "general" },
        "CreateTime": instance.created_ms,
        "FunctionName": instance.function_name.as_str(),
        "FunctionType": instance.function_type,
        "InstanceName": instance.instance_name,
        "ModelType": instance.model_type,
        "Source": instance.source.as_str(),
        "Status": instance.status(),
        "VersionId": instance.version_id,
        "IsDefault": view.is_default,
    });
    let object = result.as_object_mut().expect("object");
    if level != OutputLevel::Simple {
        object.insert(
            "CreateParameters".into(),
            serde_json::to_value(parameter_views(&instance.create_parameters)).expect("json"),
        );
        object.insert(
            "UsageParameters".into(),
            serde_json::to_value(parameter_views(&instance.usage_parameters)).expect("json"),
        );
        object.insert("Cron".into(), Value::from(instance.cron.as_str()));
        object.insert("Description".into(), Value::from(instance.description.as_str()));
        object.insert("ExtendInfo".into(), Value::from(instance.extend_info.as_str()));
    }
    if level == OutputLevel::Detail {
        let latest_task = view.latest_task.as_ref();
        object.insert(
            "Task".into(),
            serde_json::json!({
                "DagStatus": dag_status(latest_task),
                "LastRunTime": latest_task.map(FunctionTask::start_time_ms).unwrap_or(0),
                "Generation": latest_task.map(|task| task.generation.to_string()).unwrap_or_default(),
                "Progress": latest_task.map(|task| task.progress).unwrap_or(0),
            }),
        );
    }
    result
}

/// A task as GetFunctionTask / ListFunctionTasks show it: pending shows as `running`, 0 %.
pub fn task_result(task: &FunctionTask) -> Value {
    serde_json::json!({
        "EndTime": task.ended_ms.unwrap_or(0),
        "ExtendInfo": task.extend_info,
        "FunctionName": task.function_name.as_str(),
        "Generation": task.generation.to_string(),
        "Progress": if task.state == TaskState::Pending { 0 } else { task.progress },
        "RunId": task.run_id,
        "StartTime": task.start_time_ms(),
        "Status": task.state.api_status(),
    })
}

/// A resource as GetFunctionResource / ListFunctionResources show it. `simple` leaves out the
/// data and references; `normal` and `detail` show everything.
pub fn resource_result(resource: &FunctionResource, level: OutputLevel) -> Value {
    let mut result = serde_json::json!({
        "CreateTime": resource.created_ms,
        "ModifyTime": resource.modified_ms,
        "FunctionName": resource.function_name.as_str(),
        "ResourceName": resource.resource_name,
        "ResourceType": resource.resource_type.as_str(),
        "Description": resource.description,
    });
    if level != OutputLevel::Simple {
        let generators: Vec<Value> = resource
            .data
            .generators
            .iter()
            .map(|generator| {
                serde_json::json!({
                    "Generator": generator.generator,
                    "Input": { "Features": generator.input_features.iter().map(|feature| serde_json::json!({"Name": feature.name, "Type": feature.feature_type})).collect::<Vec<_>>() },
                    "Output": generator.output,
                })
            })
            .collect();
        let object = result.as_object_mut().expect("object");
        object.insert("Data".into(), serde_json::json!({ "Content": resource.data.content, "Generators": generators }));
        object.insert("ReferencedInstances".into(), serde_json::json!(resource.referenced_instances));
    }
    result
}

fn parameter_spec_result(spec: &ParameterSpec) -> Value {
    serde_json::json!({
        "Name": spec.name,
        "Required": if spec.required { "true" } else { "false" },
        "Description": spec.description,
        "DefaultValue": spec.default_value,
        "Rule": spec.rule.describe(),
    })
}

/// A catalog version as GetFunctionCurrentVersion / GetFunctionVersion show it. `Required` is a
/// string, as upstream sends it; `Description`, `DefaultValue` and `Rule` are additions the
/// SDK ignores and people read.
pub fn version_result(version: &FunctionVersion) -> Value {
    serde_json::json!({
        "FunctionName": version.function_name.as_str(),
        "FunctionType": version.function_type,
        "ModelType": version.model_type,
        "VersionId": version.version_id,
        "VersionName": version.version_name,
        "Description": version.description,
        "Domain": if version.domain.is_empty() { "general" } else { version.domain },
        "VersionConfig": {
            "CreateParameters": version.create_parameters.iter().map(parameter_spec_result).collect::<Vec<_>>(),
            "UsageParameters": version.usage_parameters.iter().map(parameter_spec_result).collect::<Vec<_>>(),
            "Depends": version.depends.iter().map(|dependency| serde_json::json!({
                "Condition": dependency.condition,
                "Dependency": dependency.dependency,
                "Description": dependency.description,
            })).collect::<Vec<_>>(),
        },
    })
}

/// An app group as the app-group operations show it (camelCase; times in epoch seconds).
pub fn app_group_result(app_group: &AppGroup) -> Value {
    serde_json::json!({
        "id": app_group.id.to_string(),
        "name": app_group.name,
        "type": app_group.app_type,
        "status": "normal",
        "chargeType": app_group.charge_type,
        "description": app_group.description,
        "domain": app_group.domain,
        "resourceGroupId": app_group.resource_group_id,
        "instanceId": app_group.instance_id(),
        "lockMode": "Unlock",
        "produced": 1,
        "created": app_group.created_ms / 1000,
        "updated": app_group.updated_ms / 1000,
        "quota": {
            "docSize": app_group.quota.doc_size,
            "computeResource": app_group.quota.compute_resource,
            "spec": app_group.quota.spec,
        },
        "tags": app_group.tags.iter().map(|tag| serde_json::json!({"key": tag.key, "value": tag.value})).collect::<Vec<_>>(),
    })
}
