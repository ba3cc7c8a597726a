//! Decoding rows into domain objects, and the JSON shapes of the TEXT columns.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use trainyard_core::catalog::FunctionName;
use trainyard_core::model::{
    AccountId, AppGroup, AppGroupQuota, ArtifactRef, FeatureGenerator, FunctionInstance, FunctionResource,
    FunctionTask, GeneratorFeature, InstanceSource, Parameter, ResourceData, ResourceType, Tag, TaskState, TaskTrigger,
};

use crate::error::StoreError;

/// Columns of `app_groups`, in the order [`app_group_from_row`] reads them.
pub(crate) const APP_GROUP_COLUMNS: &str = "id, account_id, name, app_type, charge_type, description, domain, \
     resource_group_id, quota_doc_size, quota_compute_resource, quota_spec, created_ms, updated_ms";

pub(crate) const INSTANCE_COLUMNS: &str = "id, app_group_id, function_name, instance_name, model_type, function_type, \
     source, description, create_parameters_json, usage_parameters_json, cron, version_id, serving_generation, \
     extend_info, created_ms, updated_ms";

pub(crate) const TASK_COLUMNS: &str = "function_tasks.id, instance_id, generation, state, progress, run_id, function_tasks.extend_info, \
     function_tasks.created_ms, started_ms, ended_ms, run_trigger, attempt, cancel_requested, artifact_path, \
     artifact_sha256, artifact_bytes";

pub(crate) const RESOURCE_COLUMNS: &str = "id, app_group_id, function_name, resource_name, resource_type, description, \
     data_json, created_ms, modified_ms";

fn column<'r, T>(row: &'r AnyRow, name: &'static str, what: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(|error| StoreError::CorruptRow { what, reason: format!("column {name}: {error}") })
}

pub(crate) fn app_group_from_row(row: &AnyRow, tags: Vec<Tag>) -> Result<AppGroup, StoreError> {
    const WHAT: &str = "app group";
    Ok(AppGroup {
        id: column(row, "id", WHAT)?,
        account_id: AccountId(column(row, "account_id", WHAT)?),
        name: column(row, "name", WHAT)?,
        app_type: column(row, "app_type", WHAT)?,
        charge_type: column(row, "charge_type", WHAT)?,
        description: column(row, "description", WHAT)?,
        domain: column(row, "domain", WHAT)?,
        resource_group_id: column(row, "resource_group_id", WHAT)?,
        quota: AppGroupQuota {
            doc_size: column(row, "quota_doc_size", WHAT)?,
            compute_resource: column(row, "quota_compute_resource", WHAT)?,
            spec: column(row, "quota_spec", WHAT)?,
        },
        tags,
        created_ms: column(row, "created_ms", WHAT)?,
        updated_ms: column(row, "updated_ms", WHAT)?,
    })
}

pub(crate) fn instance_from_row(row: &AnyRow) -> Result<FunctionInstance, StoreError> {
    const WHAT: &str = "function instance";
    let function_text: String = column(row, "function_name", WHAT)?;
    let source_text: String = column(row, "source", WHAT)?;
    Ok(FunctionInstance {
        id: column(row, "id", WHAT)?,
        app_group_id: column(row, "app_group_id", WHAT)?,
        function_name: parse_function(&function_text, WHAT)?,
        instance_name: column(row, "instance_name", WHAT)?,
        model_type: column(row, "model_type", WHAT)?,
        function_type: column(row, "function_type", WHAT)?,
        source: InstanceSource::parse(&source_text)
            .ok_or_else(|| StoreError::CorruptRow { what: WHAT, reason: format!("unknown source {source_text}") })?,
        description: column(row, "description", WHAT)?,
        create_parameters: parameters_from_json(&column::<String>(row, "create_parameters_json", WHAT)?)?,
        usage_parameters: parameters_from_json(&column::<String>(row, "usage_parameters_json", WHAT)?)?,
        cron: column(row, "cron", WHAT)?,
        version_id: column(row, "version_id", WHAT)?,
        serving_generation: column(row, "serving_generation", WHAT)?,
        extend_info: column(row, "extend_info", WHAT)?,
        created_ms: column(row, "created_ms", WHAT)?,
        updated_ms: column(row, "updated_ms", WHAT)?,
    })
}

pub(crate) fn task_from_row(row: &AnyRow, function_name: FunctionName) -> Result<FunctionTask, StoreError> {
    const WHAT: &str = "function task";
    let state_text: String = column(row, "state", WHAT)?;
    Ok(FunctionTask {
        id: column(row, "id", WHAT)?,
        instance_id: column(row, "instance_id", WHAT)?,
        function_name,
        generation: column(row, "generation", WHAT)?,
        state: TaskState::parse(&state_text)
            .ok_or_else(|| StoreError::CorruptRow { what: WHAT, reason: format!("unknown state {state_text}") })?,
        progress: column(row, "progress", WHAT)?,
        run_id: column(row, "run_id", WHAT)?,
        extend_info: column(row, "extend_info", WHAT)?,
        created_ms: column(row, "created_ms", WHAT)?,
        started_ms: column(row, "started_ms", WHAT)?,
        ended_ms: column(row, "ended_ms", WHAT)?,
        trigger: TaskTrigger::parse(&column::<String>(row, "run_trigger", WHAT)?),
        attempt: column(row, "attempt", WHAT)?,
        cancel_requested: column::<i64>(row, "cancel_requested", WHAT)? != 0,
        artifact: match (
            column::<Option<String>>(row, "artifact_path", WHAT)?,
            column::<Option<String>>(row, "artifact_sha256", WHAT)?,
            column::<Option<i64>>(row, "artifact_bytes", WHAT)?,
        ) {
            (Some(path), Some(sha256), Some(bytes)) => Some(ArtifactRef { path, sha256, bytes }),
            _ => None,
        },
    })
}

pub(crate) fn resource_from_row(
    row: &AnyRow,
    referenced_instances: Vec<String>,
) -> Result<FunctionResource, StoreError> {
    const WHAT: &str = "function resource";
    let function_text: String = column(row, "function_name", WHAT)?;
    let type_text: String = column(row, "resource_type", WHAT)?;
    Ok(FunctionResource {
        id: column(row, "id", WHAT)?,
        app_group_id: column(row, "app_group_id", WHAT)?,
        function_name: parse_function(&function_text, WHAT)?,
        resource_name: column(row, "resource_name", WHAT)?,
        resource_type: ResourceType::parse(&type_text)
            .ok_or_else(|| StoreError::CorruptRow { what: WHAT, reason: format!("unknown type {type_text}") })?,
        description: column(row, "description", WHAT)?,
        data: resource_data_from_json(&column::<String>(row, "data_json", WHAT)?)?,
        referenced_instances,
        created_ms: column(row, "created_ms", WHAT)?,
        modified_ms: column(row, "modified_ms", WHAT)?,
    })
}

fn parse_function(text: &str, what: &'static str) -> Result<FunctionName, StoreError> {
    FunctionName::parse(text).map_err(|_| StoreError::CorruptRow { what, reason: format!("unknown function {text}") })
}

#[derive(Serialize, Deserialize)]
struct StoredParameter {
    name: String,
    value: String,
}

pub(crate) fn parameters_to_json(parameters: &[Parameter]) -> String {
    let stored: Vec<StoredParameter> = parameters
        .iter()
        .map(|parameter| StoredParameter { name: parameter.name.clone(), value: parameter.value.clone() })
        .collect();
    serde_json::to_string(&stored).expect("parameters serialize")
}

fn parameters_from_json(text: &str) -> Result<Vec<Parameter>, StoreError> {
    let stored: Vec<StoredParameter> = serde_json::from_str(text)
        .map_err(|error| StoreError::CorruptRow { what: "parameters", reason: error.to_string() })?;
    Ok(stored.into_iter().map(|parameter| Parameter { name: parameter.name, value: parameter.value }).collect())
}

#[derive(Serialize, Deserialize)]
struct StoredFeature {
    name: String,
    feature_type: String,
}

#[derive(Serialize, Deserialize)]
struct StoredGenerator {
    generator: String,
    input_features: Vec<StoredFeature>,
    output: String,
}

#[derive(Serialize, Deserialize)]
struct StoredResourceData {
    content: String,
    generators: Vec<StoredGenerator>,
}

pub(crate) fn resource_data_to_json(data: &ResourceData) -> String {
    let stored = StoredResourceData {
        content: data.content.clone(),
        generators: data
            .generators
            .iter()
            .map(|generator| StoredGenerator {
                generator: generator.generator.clone(),
                input_features: generator
                    .input_features
                    .iter()
                    .map(|feature| StoredFeature {
                        name: feature.name.clone(),
                        feature_type: feature.feature_type.clone(),
                    })
                    .collect(),
                output: generator.output.clone(),
            })
            .collect(),
    };
    serde_json::to_string(&stored).expect("resource data serializes")
}

fn resource_data_from_json(text: &str) -> Result<ResourceData, StoreError> {
    let stored: StoredResourceData = serde_json::from_str(text)
        .map_err(|error| StoreError::CorruptRow { what: "resource data", reason: error.to_string() })?;
    Ok(ResourceData {
        content: stored.content,
        generators: stored
            .generators
            .into_iter()
            .map(|generator| FeatureGenerator {
                generator: generator.generator,
                input_features: generator
                    .input_features
                    .into_iter()
                    .map(|feature| GeneratorFeature { name: feature.name, feature_type: feature.feature_type })
                    .collect(),
                output: generator.output,
            })
            .collect(),
    })
}
