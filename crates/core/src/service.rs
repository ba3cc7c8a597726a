//! The operations of the API, one method per upstream operation, named after it.
//!
//! [`Service`] validates input, applies the domain rules and calls the [`MetadataStore`]. It
//! knows nothing of HTTP: callers hand it typed requests and get domain objects or a
//! [`CoreError`] back.

use std::sync::Arc;

use crate::catalog::{self, FunctionName, FunctionVersion, ParameterList, VersionQuery};
use crate::clock::{Clock, format_utc_seconds};
use crate::datasets::DatasetPort;
use crate::error::CoreError;
use crate::model::{
    AccountId, AppGroup, AppGroupQuota, ArtifactRef, DataTable, FeatureGenerator, FunctionInstance, FunctionResource,
    FunctionTask, InstanceSource, Page, PageRequest, Parameter, ResourceData, ResourceType, Tag, TaskState,
};
use crate::names::{parse_generation, printable, validate_name};
use crate::queue::TaskQueue;
use crate::store::{
    AppGroupChanges, AppGroupFilter, AppGroupIdentity, InstanceChanges, InstanceFilter, MetadataStore, NewAppGroup,
    NewFunctionInstance, NewFunctionResource, ResourceReference, TaskFilter,
};

/// The largest `pageSize` any list accepts.
pub const MAX_PAGE_SIZE: i64 = 100;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_LENGTH: usize = 1024;
/// The most generators a `feature_generator` resource may hold.
pub const MAX_GENERATORS: usize = 256;
/// Values at or above this are taken as epoch milliseconds in task time filters; below it, as
/// epoch seconds (upstream documents milliseconds but its examples are seconds).
pub const EPOCH_MILLISECONDS_THRESHOLD: i64 = 100_000_000_000;

/// Who is calling: the authenticated account, the identity in it (the root account or a RAM
/// user) and the AccessKey it signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account_id: AccountId,
    pub principal: crate::ram::Principal,
    pub access_key_id: String,
}

/// CreateAppGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateAppGroupRequest {
    pub name: Option<String>,
    pub app_type: Option<String>,
    pub charge_type: Option<String>,
    pub quota: Option<AppGroupQuota>,
    pub resource_group_id: Option<String>,
    pub tags: Vec<Tag>,
}

/// ListAppGroups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListAppGroupsRequest {
    pub name: Option<String>,
    pub app_type: Option<String>,
    pub resource_group_id: Option<String>,
    pub instance_id: Option<String>,
    pub sort_by: Option<i64>,
    pub tags: Vec<Tag>,
    pub page_number: Option<i64>,
    pub page_size: Option<i64>,
}

/// ModifyAppGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModifyAppGroupRequest {
    pub current_version: Option<String>,
    pub description: Option<String>,
    pub domain: Option<String>,
    pub resource_group_id: Option<String>,
    pub dry_run: bool,
}

/// CreateFunctionInstance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateFunctionInstanceRequest {
    pub instance_name: Option<String>,
    pub model_type: Option<String>,
    pub function_type: Option<String>,
    pub description: Option<String>,
    pub create_parameters: Vec<Parameter>,
    pub usage_parameters: Vec<Parameter>,
    pub cron: Option<String>,
}

/// ListFunctionInstances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFunctionInstancesRequest {
    pub model_type: Option<String>,
    pub function_type: Option<String>,
    pub source: Option<String>,
    pub page_number: Option<i64>,
    pub page_size: Option<i64>,
}

/// UpdateFunctionInstance: every field optional, a given list replaces the stored one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateFunctionInstanceRequest {
    pub create_parameters: Option<Vec<Parameter>>,
    pub usage_parameters: Option<Vec<Parameter>>,
    pub cron: Option<String>,
    pub description: Option<String>,
}

/// ListFunctionTasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFunctionTasksRequest {
    pub status: Option<String>,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub page_number: Option<i64>,
    pub page_size: Option<i64>,
}

/// CreateFunctionResource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateFunctionResourceRequest {
    pub resource_name: Option<String>,
    pub resource_type: Option<String>,
    pub description: Option<String>,
    pub data: Option<ResourceData>,
}

/// UpdateFunctionResource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateFunctionResourceRequest {
    pub description: Option<String>,
    pub data: Option<ResourceData>,
}

/// ListFunctionResources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFunctionResourcesRequest {
    pub resource_type: Option<String>,
    pub page_number: Option<i64>,
    pub page_size: Option<i64>,
}

/// GetFunctionCurrentVersion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetFunctionCurrentVersionRequest {
    pub model_type: Option<String>,
    pub function_type: Option<String>,
    pub domain: Option<String>,
    pub category: Option<String>,
}

/// An instance with the latest of its tasks (for `output=detail` and `DagStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    pub instance: FunctionInstance,
    pub latest_task: Option<FunctionTask>,
    pub is_default: bool,
}

/// The model an instance serves: its latest successful generation.
#[derive(Debug, Clone)]
pub struct ServingModel {
    pub app_group: AppGroup,
    pub instance: FunctionInstance,
    pub task: FunctionTask,
    pub artifact: ArtifactRef,
}

/// The domain service.
#[derive(Clone)]
pub struct Service {
    store: Arc<dyn MetadataStore>,
    clock: Arc<dyn Clock>,
    datasets: Option<Arc<dyn DatasetPort>>,
    queue: Option<Arc<dyn TaskQueue>>,
}

impl Service {
    pub fn new(store: Arc<dyn MetadataStore>, clock: Arc<dyn Clock>) -> Service {
        Service { store, clock, datasets: None, queue: None }
    }

    /// Connects the task queue, so that running tasks can be cancelled.
    pub fn with_queue(mut self, queue: Arc<dyn TaskQueue>) -> Service {
        self.queue = Some(queue);
        self
    }

    /// Connects the data plane, so that removing an app group removes its data too.
    pub fn with_datasets(mut self, datasets: Arc<dyn DatasetPort>) -> Service {
        self.datasets = Some(datasets);
        self
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    // ---- app groups ----

    pub async fn create_app_group(
        &self,
        caller: &Caller,
        request: CreateAppGroupRequest,
    ) -> Result<AppGroup, CoreError> {
        let name = request.name.unwrap_or_default();
        validate_name("name", &name)?;
        let app_type = one_of("type", request.app_type, &["standard", "enhanced"], "enhanced")?;
        let charge_type = one_of("chargeType", request.charge_type, &["POSTPAY", "PREPAY"], "POSTPAY")?;
        let quota = request.quota.unwrap_or_default();
        if quota.doc_size < 0 || quota.compute_resource < 0 {
            return Err(CoreError::invalid("quota", "docSize and computeResource may not be negative"));
        }
        validate_text("quota.spec", &quota.spec, 64)?;
        let resource_group_id = request.resource_group_id.unwrap_or_default();
        validate_text("resourceGroupId", &resource_group_id, 64)?;
        validate_tags(&request.tags)?;
        self.store
            .insert_app_group(NewAppGroup {
                account_id: caller.account_id.clone(),
                name,
                app_type,
                charge_type,
                description: String::new(),
                domain: String::new(),
                resource_group_id,
                quota,
                tags: request.tags,
                created_ms: self.clock.now_ms(),
            })
            .await
    }

    pub async fn describe_app_group(&self, caller: &Caller, app_group_identity: &str) -> Result<AppGroup, CoreError> {
        self.resolve_app_group(caller, app_group_identity).await
    }

    pub async fn list_app_groups(
        &self,
        caller: &Caller,
        request: ListAppGroupsRequest,
    ) -> Result<Page<AppGroup>, CoreError> {
        let (filter, page) = app_group_filter(request)?;
        self.store.list_app_groups(&caller.account_id, &filter, page).await
    }

    /// ListAppGroups for a caller who may see only some app groups: the same filters, applied
    /// to the app groups `visible` accepts, paginated after that filter (so `TotalCount` counts
    /// only what the caller may see). Reads every matching app group of the account, which is
    /// fine at the scale of app groups per account.
    pub async fn list_visible_app_groups(
        &self,
        caller: &Caller,
        request: ListAppGroupsRequest,
        visible: &(dyn Fn(&AppGroup) -> bool + Sync),
    ) -> Result<Page<AppGroup>, CoreError> {
        let (filter, page) = app_group_filter(request)?;
        let everything = PageRequest { page_number: 1, page_size: i64::MAX / 2 };
        let all = self.store.list_app_groups(&caller.account_id, &filter, everything).await?;
        let seen: Vec<AppGroup> = all.items.into_iter().filter(|app_group| visible(app_group)).collect();
        let total_count = seen.len() as i64;
        let items = seen
            .into_iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(usize::try_from(page.page_size).unwrap_or(usize::MAX))
            .collect();
        Ok(Page { items, total_count })
    }

    pub async fn modify_app_group(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        request: ModifyAppGroupRequest,
    ) -> Result<AppGroup, CoreError> {
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        if request.current_version.as_deref().is_some_and(|version| !version.is_empty()) {
            return Err(CoreError::invalid(
                "currentVersion",
                "Trainyard app groups have no app versions to switch between",
            ));
        }
        if let Some(description) = &request.description {
            validate_text("description", description, MAX_DESCRIPTION_LENGTH)?;
        }
        if let Some(domain) = &request.domain {
            one_of(
                "domain",
                Some(domain.clone()),
                &["", "general", "ecommerce", "education", "esports", "community"],
                "",
            )?;
        }
        if let Some(resource_group_id) = &request.resource_group_id {
            validate_text("resourceGroupId", resource_group_id, 64)?;
        }
        if request.dry_run {
            return Ok(app_group);
        }
        let changes = AppGroupChanges {
            description: request.description,
            domain: request.domain,
            resource_group_id: request.resource_group_id,
        };
        self.store.update_app_group(app_group.id, &changes, self.clock.now_ms()).await
    }

    /// Removes the app group with its instances, tasks, resources and defaults.
    pub async fn remove_app_group(&self, caller: &Caller, app_group_identity: &str) -> Result<AppGroup, CoreError> {
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        if !self.store.delete_app_group(app_group.id).await? {
            return Err(CoreError::AppNotFound { identity: printable(app_group_identity) });
        }
        // Metadata first: once it is gone the app group is invisible, and its ids are never
        // reused, so data left behind by a failure here can only be garbage, never mixed up.
        if let Some(datasets) = &self.datasets {
            datasets.remove_app_group_data(app_group.id).await?;
        }
        Ok(app_group)
    }

    /// Finds an app group of the caller by name or numeric id; another account's app group is
    /// reported as not found, never as forbidden, so its existence does not leak.
    pub async fn resolve_app_group(&self, caller: &Caller, app_group_identity: &str) -> Result<AppGroup, CoreError> {
        let identity = parse_app_group_identity(app_group_identity)?;
        self.store
            .find_app_group(&caller.account_id, &identity)
            .await?
            .ok_or_else(|| CoreError::AppNotFound { identity: printable(app_group_identity) })
    }

    // ---- document tables of the data plane ----

    /// Declares a document table and its primary key field (PutDataTable, Trainyard's own).
    pub async fn put_data_table(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        table_name: &str,
        primary_key: Option<String>,
    ) -> Result<DataTable, CoreError> {
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        validate_name("tableName", table_name)?;
        let primary_key = primary_key
            .filter(|key| !key.is_empty())
            .ok_or(CoreError::MissingParameter { field: "primaryKey".into() })?;
        catalog::ParameterRule::FieldName.validate("primaryKey", &primary_key)?;
        self.store.put_data_table(app_group.id, table_name, &primary_key, self.clock.now_ms()).await
    }

    pub async fn list_data_tables(
        &self,
        caller: &Caller,
        app_group_identity: &str,
    ) -> Result<Vec<DataTable>, CoreError> {
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        self.store.list_data_tables(app_group.id).await
    }

    /// The app group and the declared table documents are pushed to.
    pub async fn resolve_data_table(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        table_name: &str,
    ) -> Result<(AppGroup, DataTable), CoreError> {
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        validate_name("table", table_name)?;
        let table = self
            .store
            .find_data_table(app_group.id, table_name)
            .await?
            .ok_or_else(|| CoreError::DataTableNotExist { table_name: table_name.to_string() })?;
        Ok((app_group, table))
    }

    // ---- function catalog ----

    pub fn get_function_current_version(
        &self,
        function_name: &str,
        request: GetFunctionCurrentVersionRequest,
    ) -> Result<&'static FunctionVersion, CoreError> {
        let function = FunctionName::parse(function_name)?;
        let model_type = request
            .model_type
            .filter(|value| !value.is_empty())
            .ok_or(CoreError::MissingParameter { field: "modelType".into() })?;
        let function_type = request.function_type.filter(|value| !value.is_empty()).unwrap_or_else(|| "PAAS".into());
        catalog::current_version(VersionQuery {
            function_name: function,
            model_type: &model_type,
            function_type: &function_type,
            domain: request.domain.as_deref().unwrap_or(""),
            category: request.category.as_deref().unwrap_or(""),
        })
    }

    pub fn get_function_version(
        &self,
        function_name: &str,
        version_id: &str,
    ) -> Result<&'static FunctionVersion, CoreError> {
        let function = FunctionName::parse(function_name)?;
        let parsed_id = version_id
            .parse::<i64>()
            .map_err(|_| CoreError::invalid("versionId", format!("\"{}\" is not an integer", printable(version_id))))?;
        catalog::find_version(parsed_id).filter(|version| version.function_name == function).ok_or_else(|| {
            CoreError::VersionNotExist {
                reason: format!("version not exist: function {function} has no version {parsed_id}"),
            }
        })
    }

    // ---- instances ----

    pub async fn create_function_instance(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        request: CreateFunctionInstanceRequest,
    ) -> Result<FunctionInstance, CoreError> {
        let function = FunctionName::parse(function_name)?;
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        let instance_name = request.instance_name.unwrap_or_default();
        validate_name("instanceName", &instance_name)?;
        let model_type = request
            .model_type
            .filter(|value| !value.is_empty())
            .ok_or(CoreError::MissingParameter { field: "modelType".into() })?;
        let function_type = request.function_type.filter(|value| !value.is_empty()).unwrap_or_else(|| "PAAS".into());
        let version = catalog::current_version(VersionQuery {
            function_name: function,
            model_type: &model_type,
            function_type: &function_type,
            domain: "",
            category: "",
        })?;
        let description = request.description.unwrap_or_default();
        validate_text("description", &description, MAX_DESCRIPTION_LENGTH)?;
        let cron = normalized_cron(request.cron.as_deref().unwrap_or(""))?;
        let references = resource_references(version, &request.create_parameters, &request.usage_parameters)?;
        self.store
            .insert_instance(
                NewFunctionInstance {
                    app_group_id: app_group.id,
                    function_name: function,
                    instance_name,
                    model_type,
                    function_type,
                    source: InstanceSource::User,
                    description,
                    create_parameters: request.create_parameters,
                    usage_parameters: request.usage_parameters,
                    cron,
                    version_id: version.version_id,
                    created_ms: self.clock.now_ms(),
                },
                &references,
            )
            .await
    }

    pub async fn get_function_instance(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: &str,
    ) -> Result<InstanceView, CoreError> {
        let (app_group, instance) =
            self.resolve_instance(caller, app_group_identity, function_name, instance_name).await?;
        let latest_task = self.store.latest_task(&instance).await?;
        let default_name = self.store.default_instance(app_group.id, instance.function_name).await?;
        let is_default = default_name.as_deref() == Some(instance.instance_name.as_str());
        Ok(InstanceView { instance, latest_task, is_default })
    }

    pub async fn list_function_instances(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        request: ListFunctionInstancesRequest,
        with_latest_task: bool,
    ) -> Result<Page<InstanceView>, CoreError> {
        let function = FunctionName::parse(function_name)?;
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        let page = page_request(request.page_number, request.page_size, 10)?;
        let source = match request.source.as_deref() {
            None | Some("") | Some("user") => Some(InstanceSource::User),
            Some("builtin") => Some(InstanceSource::Builtin),
            Some("all") => None,
            Some(other) => {
                return Err(CoreError::invalid(
                    "source",
                    format!("\"{}\" is not one of: user, builtin, all", printable(other)),
                ));
            }
        };
        let filter = InstanceFilter {
            model_type: request.model_type.filter(|value| !value.is_empty()),
            function_type: request.function_type.filter(|value| !value.is_empty()),
            source,
        };
        let instances = self.store.list_instances(app_group.id, function, &filter, page).await?;
        let default_name = self.store.default_instance(app_group.id, function).await?;
        let mut views = Vec::with_capacity(instances.items.len());
        for instance in instances.items {
            let latest_task = if with_latest_task { self.store.latest_task(&instance).await? } else { None };
            let is_default = default_name.as_deref() == Some(instance.instance_name.as_str());
            views.push(InstanceView { instance, latest_task, is_default });
        }
        Ok(Page { items: views, total_count: instances.total_count })
    }

    pub async fn update_function_instance(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: &str,
        request: UpdateFunctionInstanceRequest,
    ) -> Result<FunctionInstance, CoreError> {
        let (_, instance) = self.resolve_instance(caller, app_group_identity, function_name, instance_name).await?;
        let version = catalog::current_version(VersionQuery {
            function_name: instance.function_name,
            model_type: &instance.model_type,
            function_type: &instance.function_type,
            domain: "",
            category: "",
        })?;
        if let Some(description) = &request.description {
            validate_text("description", description, MAX_DESCRIPTION_LENGTH)?;
        }
        let cron = match &request.cron {
            Some(text) => Some(normalized_cron(text)?),
            None => None,
        };
        let create_parameters = request.create_parameters.as_ref().unwrap_or(&instance.create_parameters);
        let usage_parameters = request.usage_parameters.as_ref().unwrap_or(&instance.usage_parameters);
        let references = resource_references(version, create_parameters, usage_parameters)?;
        let parameters_changed = request.create_parameters.is_some() || request.usage_parameters.is_some();
        let changes = InstanceChanges {
            create_parameters: request.create_parameters,
            usage_parameters: request.usage_parameters,
            cron,
            description: request.description,
        };
        let new_references = if parameters_changed { Some(references.as_slice()) } else { None };
        self.store.update_instance(&instance, &changes, new_references, self.clock.now_ms()).await
    }

    pub async fn delete_function_instance(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: &str,
    ) -> Result<(), CoreError> {
        let (_, instance) = self.resolve_instance(caller, app_group_identity, function_name, instance_name).await?;
        self.store.delete_instance(&instance).await?;
        if let Some(datasets) = &self.datasets {
            datasets
                .remove_instance_data(instance.app_group_id, instance.function_name, &instance.instance_name)
                .await?;
        }
        Ok(())
    }

    async fn resolve_instance(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: &str,
    ) -> Result<(AppGroup, FunctionInstance), CoreError> {
        let function = FunctionName::parse(function_name)?;
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        validate_name("instanceName", instance_name)?;
        let instance = self.store.find_instance(app_group.id, function, instance_name).await?.ok_or_else(|| {
            CoreError::InstanceNotExist {
                function_name: function.to_string(),
                instance_name: instance_name.to_string(),
            }
        })?;
        Ok((app_group, instance))
    }

    // ---- tasks ----

    /// The instance and the parsed generation a task operation names.
    async fn resolve_generation(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: &str,
        generation: &str,
    ) -> Result<(FunctionInstance, i64), CoreError> {
        let (_, instance) = self.resolve_instance(caller, app_group_identity, function_name, instance_name).await?;
        Ok((instance, parse_generation(generation)?))
    }

    /// Records a pending task with the next generation. The runner that executes it is not part
    /// of this crate; until one runs, the task stays pending.
    pub async fn create_function_task(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: &str,
    ) -> Result<FunctionTask, CoreError> {
        let (_, instance) = self.resolve_instance(caller, app_group_identity, function_name, instance_name).await?;
        let now_ms = self.clock.now_ms();
        let run_id = format!("api__{}", format_utc_seconds(now_ms));
        self.store.create_task(&instance, &run_id, now_ms).await
    }

    pub async fn get_function_task(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: &str,
        generation: &str,
    ) -> Result<FunctionTask, CoreError> {
        let (instance, parsed_generation) =
            self.resolve_generation(caller, app_group_identity, function_name, instance_name, generation).await?;
        self.store.find_task(&instance, parsed_generation).await?.ok_or_else(|| CoreError::TaskNotExist {
            instance_name: instance.instance_name.clone(),
            generation: generation.to_string(),
        })
    }

    pub async fn list_function_tasks(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: &str,
        request: ListFunctionTasksRequest,
    ) -> Result<Page<FunctionTask>, CoreError> {
        let (_, instance) = self.resolve_instance(caller, app_group_identity, function_name, instance_name).await?;
        // Upstream documents a default pageSize of 1 for this operation (the latest task).
        let page = page_request(request.page_number, request.page_size, 1)?;
        let states = match request.status.as_deref() {
            None | Some("") => Vec::new(),
            Some("running") => vec![TaskState::Pending, TaskState::Running],
            Some("success") => vec![TaskState::Success],
            Some("failed") => vec![TaskState::Failed],
            Some(other) => {
                return Err(CoreError::invalid(
                    "status",
                    format!("\"{}\" is not one of: success, failed, running", printable(other)),
                ));
            }
        };
        let filter = TaskFilter {
            states,
            started_after_ms: request.start_time.map(|value| epoch_milliseconds("startTime", value)).transpose()?,
            ended_before_ms: request.end_time.map(|value| epoch_milliseconds("endTime", value)).transpose()?,
        };
        self.store.list_tasks(&instance, &filter, page).await
    }

    pub async fn delete_function_task(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: &str,
        generation: &str,
    ) -> Result<(), CoreError> {
        let (instance, parsed_generation) =
            self.resolve_generation(caller, app_group_identity, function_name, instance_name, generation).await?;
        self.store.delete_task(&instance, parsed_generation).await
    }

    /// Trainyard's extension `POST .../tasks/{generation}/actions/cancel`: a pending task fails
    /// at once; a running one is flagged and its worker stops the trainer at its next heartbeat
    /// (the task then fails with `cancelled` in its ExtendInfo). A finished task is returned
    /// unchanged, so that cancelling twice is harmless.
    pub async fn cancel_function_task(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: &str,
        generation: &str,
    ) -> Result<FunctionTask, CoreError> {
        let (instance, parsed_generation) =
            self.resolve_generation(caller, app_group_identity, function_name, instance_name, generation).await?;
        let Some(queue) = &self.queue else {
            return Err(CoreError::StorageUnavailable {
                message: "this service runs without a task queue, so tasks cannot be cancelled".into(),
            });
        };
        queue.request_cancel(&instance, parsed_generation, self.clock.now_ms()).await
    }

    // ---- serving ----

    /// The model to answer a query of `function` with: the instance named by `model_name`, or
    /// the app group's default instance of the function when it is absent or empty, and its
    /// serving generation.
    pub async fn serving_model(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function: FunctionName,
        model_name: Option<&str>,
    ) -> Result<ServingModel, CoreError> {
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        let instance_name = match model_name.filter(|name| !name.is_empty()) {
            Some(name) => {
                validate_name("model_name", name)?;
                name.to_string()
            }
            None => self
                .store
                .default_instance(app_group.id, function)
                .await?
                .ok_or_else(|| CoreError::DefaultInstanceNotExist { function_name: function.to_string() })?,
        };
        let instance = self.store.find_instance(app_group.id, function, &instance_name).await?.ok_or_else(|| {
            CoreError::InstanceNotExist { function_name: function.to_string(), instance_name: instance_name.clone() }
        })?;
        let not_trained =
            || CoreError::ModelNotTrained { function_name: function.to_string(), instance_name: instance_name.clone() };
        let Some(generation) = instance.serving_generation else {
            return Err(not_trained());
        };
        let task = self.store.find_task(&instance, generation).await?.ok_or_else(not_trained)?;
        let artifact = task.artifact.clone().ok_or_else(not_trained)?;
        Ok(ServingModel { app_group, instance, task, artifact })
    }

    /// A resource of the app group, by name (the dictionaries named by usage parameters).
    pub async fn find_function_resource(
        &self,
        app_group_id: i64,
        function: FunctionName,
        resource_name: &str,
    ) -> Result<Option<FunctionResource>, CoreError> {
        self.store.find_resource(app_group_id, function, resource_name).await
    }

    // ---- resources ----

    pub async fn create_function_resource(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        request: CreateFunctionResourceRequest,
    ) -> Result<FunctionResource, CoreError> {
        let function = FunctionName::parse(function_name)?;
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        let resource_name = request.resource_name.unwrap_or_default();
        validate_name("ResourceName", &resource_name)?;
        let type_text = request
            .resource_type
            .filter(|value| !value.is_empty())
            .ok_or(CoreError::MissingParameter { field: "ResourceType".into() })?;
        let resource_type = ResourceType::parse(&type_text).ok_or_else(|| {
            CoreError::invalid(
                "ResourceType",
                format!("\"{}\" is not one of: feature_generator, raw_file", printable(&type_text)),
            )
        })?;
        let description = request.description.unwrap_or_default();
        validate_text("Description", &description, MAX_DESCRIPTION_LENGTH)?;
        let data = request.data.ok_or(CoreError::MissingParameter { field: "Data".into() })?;
        validate_resource_data(resource_type, &data)?;
        self.store
            .insert_resource(NewFunctionResource {
                app_group_id: app_group.id,
                function_name: function,
                resource_name,
                resource_type,
                description,
                data,
                created_ms: self.clock.now_ms(),
            })
            .await
    }

    pub async fn get_function_resource(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        resource_name: &str,
    ) -> Result<FunctionResource, CoreError> {
        self.resolve_resource(caller, app_group_identity, function_name, resource_name).await
    }

    pub async fn list_function_resources(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        request: ListFunctionResourcesRequest,
    ) -> Result<Page<FunctionResource>, CoreError> {
        let function = FunctionName::parse(function_name)?;
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        let page = page_request(request.page_number, request.page_size, 10)?;
        let resource_type = match request.resource_type.as_deref() {
            None | Some("") => None,
            Some(text) => Some(ResourceType::parse(text).ok_or_else(|| {
                CoreError::invalid(
                    "resourceType",
                    format!("\"{}\" is not one of: feature_generator, raw_file", printable(text)),
                )
            })?),
        };
        self.store.list_resources(app_group.id, function, resource_type, page).await
    }

    pub async fn update_function_resource(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        resource_name: &str,
        request: UpdateFunctionResourceRequest,
    ) -> Result<FunctionResource, CoreError> {
        let resource = self.resolve_resource(caller, app_group_identity, function_name, resource_name).await?;
        if let Some(description) = &request.description {
            validate_text("Description", description, MAX_DESCRIPTION_LENGTH)?;
        }
        if let Some(data) = &request.data {
            validate_resource_data(resource.resource_type, data)?;
        }
        self.store
            .update_resource(&resource, request.description.as_deref(), request.data.as_ref(), self.clock.now_ms())
            .await
    }

    pub async fn delete_function_resource(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        resource_name: &str,
    ) -> Result<(), CoreError> {
        let resource = self.resolve_resource(caller, app_group_identity, function_name, resource_name).await?;
        self.store.delete_resource(&resource).await
    }

    async fn resolve_resource(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        resource_name: &str,
    ) -> Result<FunctionResource, CoreError> {
        let function = FunctionName::parse(function_name)?;
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        validate_name("resourceName", resource_name)?;
        self.store.find_resource(app_group.id, function, resource_name).await?.ok_or_else(|| {
            CoreError::ResourceNotExist {
                function_name: function.to_string(),
                resource_name: resource_name.to_string(),
            }
        })
    }

    // ---- default instance ----

    pub async fn get_function_default_instance(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
    ) -> Result<String, CoreError> {
        let function = FunctionName::parse(function_name)?;
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        self.store
            .default_instance(app_group.id, function)
            .await?
            .ok_or_else(|| CoreError::DefaultInstanceNotExist { function_name: function.to_string() })
    }

    /// Sets (or, with an empty name, clears) the default instance. The instance need not be
    /// trained yet, so that create → set default → train works in any order; serving answers a
    /// clear error until a model exists.
    pub async fn update_function_default_instance(
        &self,
        caller: &Caller,
        app_group_identity: &str,
        function_name: &str,
        instance_name: Option<String>,
    ) -> Result<(), CoreError> {
        let function = FunctionName::parse(function_name)?;
        let app_group = self.resolve_app_group(caller, app_group_identity).await?;
        let Some(name) = instance_name else {
            return Err(CoreError::MissingParameter { field: "instanceName".into() });
        };
        if name.is_empty() {
            return self.store.set_default_instance(app_group.id, function, None).await;
        }
        validate_name("instanceName", &name)?;
        self.store.set_default_instance(app_group.id, function, Some(&name)).await
    }
}

/// Parses the `appGroupIdentity` path segment: all digits = id, else a name.
pub fn parse_app_group_identity(text: &str) -> Result<AppGroupIdentity, CoreError> {
    if !text.is_empty() && text.len() <= 18 && text.bytes().all(|byte| byte.is_ascii_digit()) {
        let id = text.parse::<i64>().map_err(|_| CoreError::invalid("appGroupIdentity", "the id is out of range"))?;
        return Ok(AppGroupIdentity::Id(id));
    }
    validate_name("appGroupIdentity", text)?;
    Ok(AppGroupIdentity::Name(text.to_string()))
}

/// Validates and defaults pagination.
pub fn page_request(
    page_number: Option<i64>,
    page_size: Option<i64>,
    default_page_size: i64,
) -> Result<PageRequest, CoreError> {
    let number = page_number.unwrap_or(1);
    if !(1..=1_000_000).contains(&number) {
        return Err(CoreError::invalid("pageNumber", "must be an integer from 1 to 1000000"));
    }
    let size = page_size.unwrap_or(default_page_size);
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(CoreError::invalid("pageSize", format!("must be an integer from 1 to {MAX_PAGE_SIZE}")));
    }
    Ok(PageRequest { page_number: number, page_size: size })
}

fn epoch_milliseconds(field: &str, value: i64) -> Result<i64, CoreError> {
    if value < 0 {
        return Err(CoreError::invalid(field, "must be a non-negative epoch time"));
    }
    if value < EPOCH_MILLISECONDS_THRESHOLD { Ok(value.saturating_mul(1000)) } else { Ok(value) }
}

fn one_of(field: &str, value: Option<String>, allowed: &[&str], default_value: &str) -> Result<String, CoreError> {
    match value {
        None => Ok(default_value.to_string()),
        Some(text) if allowed.contains(&text.as_str()) => Ok(text),
        Some(text) if text.is_empty() => Ok(default_value.to_string()),
        Some(text) => {
            Err(CoreError::invalid(field, format!("\"{}\" is not one of: {}", printable(&text), allowed.join(", "))))
        }
    }
}

fn validate_text(field: &str, value: &str, max_characters: usize) -> Result<(), CoreError> {
    if value.chars().count() > max_characters {
        return Err(CoreError::invalid(field, format!("longer than {max_characters} characters")));
    }
    if value.chars().any(|character| character.is_control() && character != '\n' && character != '\t') {
        return Err(CoreError::invalid(field, "contains control characters"));
    }
    Ok(())
}

fn validate_tags(tags: &[Tag]) -> Result<(), CoreError> {
    if tags.len() > 20 {
        return Err(CoreError::invalid("tags", "at most 20 tags"));
    }
    for tag in tags {
        if tag.key.is_empty() {
            return Err(CoreError::invalid("tags.key", "may not be empty"));
        }
        validate_text("tags.key", &tag.key, 128)?;
        validate_text("tags.value", &tag.value, 128)?;
    }
    Ok(())
}

fn normalized_cron(text: &str) -> Result<String, CoreError> {
    Ok(crate::cron::parse_cron(text)?.map(|schedule| schedule.pattern().to_string()).unwrap_or_default())
}

fn resource_references(
    version: &FunctionVersion,
    create_parameters: &[Parameter],
    usage_parameters: &[Parameter],
) -> Result<Vec<ResourceReference>, CoreError> {
    let mut references = Vec::new();
    for (list, parameters) in [(ParameterList::Create, create_parameters), (ParameterList::Usage, usage_parameters)] {
        version.validate_parameters(list, parameters)?;
        for parameter in parameters {
            if parameter.value.is_empty() {
                continue;
            }
            if let Some(resource_type) = version.referenced_resource_type(list, &parameter.name) {
                references.push(ResourceReference {
                    parameter_field: format!("{}.{}", list.field_name(), parameter.name),
                    resource_name: parameter.value.clone(),
                    resource_type,
                });
            }
        }
    }
    Ok(references)
}

const GENERATORS: &[&str] = &["lookup", "sequence", "overlap", "raw", "combo", "id"];

fn validate_resource_data(resource_type: ResourceType, data: &ResourceData) -> Result<(), CoreError> {
    match resource_type {
        ResourceType::RawFile => {
            if !data.generators.is_empty() {
                return Err(CoreError::invalid("Data.Generators", "a raw_file resource holds Content, not Generators"));
            }
            if data.content.contains('\0') {
                return Err(CoreError::invalid("Data.Content", "contains a NUL character"));
            }
            Ok(())
        }
        ResourceType::FeatureGenerator => {
            if !data.content.is_empty() {
                return Err(CoreError::invalid(
                    "Data.Content",
                    "a feature_generator resource holds Generators, not Content",
                ));
            }
            if data.generators.is_empty() {
                return Err(CoreError::invalid(
                    "Data.Generators",
                    "a feature_generator resource needs at least one generator",
                ));
            }
            if data.generators.len() > MAX_GENERATORS {
                return Err(CoreError::invalid("Data.Generators", format!("at most {MAX_GENERATORS} generators")));
            }
            data.generators.iter().enumerate().try_for_each(|(index, generator)| validate_generator(index, generator))
        }
    }
}

fn validate_generator(index: usize, generator: &FeatureGenerator) -> Result<(), CoreError> {
    let field = format!("Data.Generators[{index}]");
    if !GENERATORS.contains(&generator.generator.as_str()) {
        return Err(CoreError::invalid(
            format!("{field}.Generator"),
            format!("\"{}\" is not one of: {}", printable(&generator.generator), GENERATORS.join(", ")),
        ));
    }
    if generator.input_features.is_empty() {
        return Err(CoreError::invalid(format!("{field}.Input.Features"), "needs at least one input feature"));
    }
    for (feature_index, feature) in generator.input_features.iter().enumerate() {
        let feature_field = format!("{field}.Input.Features[{feature_index}]");
        catalog::ParameterRule::FieldName.validate(&format!("{feature_field}.Name"), &feature.name)?;
        if feature.feature_type != "item" && feature.feature_type != "user" {
            return Err(CoreError::invalid(format!("{feature_field}.Type"), "must be item or user"));
        }
    }
    catalog::ParameterRule::FieldName.validate(&format!("{field}.Output"), &generator.output)
}

/// The store filter and page of a ListAppGroups request, validated.
fn app_group_filter(request: ListAppGroupsRequest) -> Result<(AppGroupFilter, PageRequest), CoreError> {
    let page = page_request(request.page_number, request.page_size, 10)?;
    let app_type = match request.app_type {
        Some(value) if !value.is_empty() => Some(one_of("type", Some(value), &["standard", "enhanced"], "")?),
        _ => None,
    };
    let id = match request.instance_id.filter(|value| !value.is_empty()) {
        None => None,
        Some(instance_id) => match instance_id.strip_prefix("ty-").and_then(|digits| digits.parse::<i64>().ok()) {
            Some(id) => Some(id),
            // An instance id Trainyard never issued matches no app group.
            None => Some(-1),
        },
    };
    let sort_by_updated = match request.sort_by {
        None | Some(0) => false,
        Some(1) => true,
        Some(_) => return Err(CoreError::invalid("sortBy", "must be 0 (creation time) or 1 (modification time)")),
    };
    let filter = AppGroupFilter {
        name: request.name.filter(|value| !value.is_empty()),
        app_type,
        resource_group_id: request.resource_group_id.filter(|value| !value.is_empty()),
        id,
        tags: request.tags,
        sort_by_updated,
    };
    Ok((filter, page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_group_identity_is_an_id_when_numeric() {
        assert_eq!(parse_app_group_identity("150057101"), Ok(AppGroupIdentity::Id(150057101)));
        assert_eq!(parse_app_group_identity("my_app"), Ok(AppGroupIdentity::Name("my_app".into())));
        assert!(parse_app_group_identity("..").is_err());
        assert!(parse_app_group_identity("").is_err());
        assert!(parse_app_group_identity("99999999999999999999").is_err());
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(page_request(None, None, 10), Ok(PageRequest { page_number: 1, page_size: 10 }));
        assert_eq!(page_request(Some(3), Some(100), 10).unwrap().offset(), 200);
        assert!(page_request(Some(0), None, 10).is_err());
        assert!(page_request(None, Some(101), 10).unwrap_err().to_string().contains("pageSize"));
    }

    #[test]
    fn task_time_filters_accept_seconds_and_milliseconds() {
        assert_eq!(epoch_milliseconds("startTime", 1_582_214_400), Ok(1_582_214_400_000));
        assert_eq!(epoch_milliseconds("startTime", 1_620_000_000_000), Ok(1_620_000_000_000));
        assert!(epoch_milliseconds("startTime", -1).is_err());
    }

    #[test]
    fn resource_data_must_fit_its_type() {
        let raw = ResourceData { content: "a\nb".into(), generators: vec![] };
        assert!(validate_resource_data(ResourceType::RawFile, &raw).is_ok());
        assert!(validate_resource_data(ResourceType::FeatureGenerator, &raw).is_err());
        let generator = FeatureGenerator {
            generator: "id".into(),
            input_features: vec![crate::model::GeneratorFeature {
                name: "system_item_id".into(),
                feature_type: "item".into(),
            }],
            output: "item_id_feature".into(),
        };
        let generators = ResourceData { content: String::new(), generators: vec![generator.clone()] };
        assert!(validate_resource_data(ResourceType::FeatureGenerator, &generators).is_ok());
        let bad = ResourceData {
            content: String::new(),
            generators: vec![FeatureGenerator { generator: "magic".into(), ..generator }],
        };
        let error = validate_resource_data(ResourceType::FeatureGenerator, &bad).unwrap_err();
        assert!(error.to_string().contains("Data.Generators[0].Generator"), "{error}");
    }
}
