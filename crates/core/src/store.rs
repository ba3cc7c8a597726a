//! The port through which the domain reads and writes metadata. `trainyard-store` implements it
//! over SQLite and PostgreSQL; the domain never sees SQL.
//!
//! Operations that must hold an invariant under concurrency (one active task per instance, no
//! deletion of a default or referenced object) are single calls here so that an implementation
//! can make them atomic; they answer with the domain's own error.

use async_trait::async_trait;

use crate::catalog::FunctionName;
use crate::error::CoreError;
use crate::model::{
    AccountId, AppGroup, AppGroupQuota, DataTable, FunctionInstance, FunctionResource, FunctionTask, InstanceSource,
    Millis, Page, PageRequest, Parameter, ResourceData, ResourceType, Tag, TaskState,
};

/// How a path names an app group: by name, or by its numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppGroupIdentity {
    Id(i64),
    Name(String),
}

/// A new app group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAppGroup {
    pub account_id: AccountId,
    pub name: String,
    pub app_type: String,
    pub charge_type: String,
    pub description: String,
    pub domain: String,
    pub resource_group_id: String,
    pub quota: AppGroupQuota,
    pub tags: Vec<Tag>,
    pub created_ms: Millis,
}

/// Filters of ListAppGroups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppGroupFilter {
    pub name: Option<String>,
    pub app_type: Option<String>,
    pub resource_group_id: Option<String>,
    pub id: Option<i64>,
    /// Every tag listed must be present.
    pub tags: Vec<Tag>,
    /// Newest modification first instead of newest creation first.
    pub sort_by_updated: bool,
}

/// The fields ModifyAppGroup may change; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppGroupChanges {
    pub description: Option<String>,
    pub domain: Option<String>,
    pub resource_group_id: Option<String>,
}

/// A resource a parameter points at, to be checked when an instance is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceReference {
    /// E.g. `usageParameters.allow_dict_id`, for errors.
    pub parameter_field: String,
    pub resource_name: String,
    pub resource_type: ResourceType,
}

/// A new instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFunctionInstance {
    pub app_group_id: i64,
    pub function_name: FunctionName,
    pub instance_name: String,
    pub model_type: String,
    pub function_type: String,
    pub source: InstanceSource,
    pub description: String,
    pub create_parameters: Vec<Parameter>,
    pub usage_parameters: Vec<Parameter>,
    pub cron: String,
    pub version_id: i64,
    pub created_ms: Millis,
}

/// Filters of ListFunctionInstances.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceFilter {
    pub model_type: Option<String>,
    pub function_type: Option<String>,
    /// `None` = every source.
    pub source: Option<InstanceSource>,
}

/// The fields UpdateFunctionInstance may change; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceChanges {
    pub create_parameters: Option<Vec<Parameter>>,
    pub usage_parameters: Option<Vec<Parameter>>,
    pub cron: Option<String>,
    pub description: Option<String>,
}

/// Filters of ListFunctionTasks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskFilter {
    /// Tasks in any of these states; empty = all.
    pub states: Vec<TaskState>,
    /// Keep tasks whose start time is later than this.
    pub started_after_ms: Option<Millis>,
    /// Keep tasks that ended earlier than this.
    pub ended_before_ms: Option<Millis>,
}

/// A new resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFunctionResource {
    pub app_group_id: i64,
    pub function_name: FunctionName,
    pub resource_name: String,
    pub resource_type: ResourceType,
    pub description: String,
    pub data: ResourceData,
    pub created_ms: Millis,
}

/// Metadata persistence. Every method is one atomic step; an `Ok` means the write is durable.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// `AppAlreadyExist` when the account already has an app group of that name.
    async fn insert_app_group(&self, new_app_group: NewAppGroup) -> Result<AppGroup, CoreError>;
    async fn find_app_group(
        &self,
        account_id: &AccountId,
        identity: &AppGroupIdentity,
    ) -> Result<Option<AppGroup>, CoreError>;
    async fn list_app_groups(
        &self,
        account_id: &AccountId,
        filter: &AppGroupFilter,
        page: PageRequest,
    ) -> Result<Page<AppGroup>, CoreError>;
    async fn update_app_group(
        &self,
        app_group_id: i64,
        changes: &AppGroupChanges,
        now_ms: Millis,
    ) -> Result<AppGroup, CoreError>;
    /// Removes the app group and everything it owns. False when it did not exist.
    async fn delete_app_group(&self, app_group_id: i64) -> Result<bool, CoreError>;

    /// `InstanceAlreadyExist`, or `ResourceNotExist` / `InvalidParameter` for a bad reference.
    async fn insert_instance(
        &self,
        new_instance: NewFunctionInstance,
        references: &[ResourceReference],
    ) -> Result<FunctionInstance, CoreError>;
    async fn find_instance(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
        instance_name: &str,
    ) -> Result<Option<FunctionInstance>, CoreError>;
    async fn list_instances(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
        filter: &InstanceFilter,
        page: PageRequest,
    ) -> Result<Page<FunctionInstance>, CoreError>;
    /// `references`, when given, replaces the instance's resource references (checked as on insert).
    async fn update_instance(
        &self,
        instance: &FunctionInstance,
        changes: &InstanceChanges,
        references: Option<&[ResourceReference]>,
        now_ms: Millis,
    ) -> Result<FunctionInstance, CoreError>;
    /// Refuses with `InstanceIsDefault`, `InstanceInUse` or `TaskIsRunning`; deletes the
    /// instance's tasks with it. `InstanceNotExist` when it is already gone.
    async fn delete_instance(&self, instance: &FunctionInstance) -> Result<(), CoreError>;

    /// Records a pending task with the instance's next generation; `TaskIsRunning` when a task
    /// of the instance is pending or running (exactly one of concurrent callers wins).
    async fn create_task(
        &self,
        instance: &FunctionInstance,
        run_id: &str,
        now_ms: Millis,
    ) -> Result<FunctionTask, CoreError>;
    async fn find_task(&self, instance: &FunctionInstance, generation: i64) -> Result<Option<FunctionTask>, CoreError>;
    /// The most recently created task of the instance.
    async fn latest_task(&self, instance: &FunctionInstance) -> Result<Option<FunctionTask>, CoreError>;
    /// Newest start time first.
    async fn list_tasks(
        &self,
        instance: &FunctionInstance,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<FunctionTask>, CoreError>;
    /// `TaskNotExist`, or `TaskUnableDelete` while the task is pending or running.
    async fn delete_task(&self, instance: &FunctionInstance, generation: i64) -> Result<(), CoreError>;

    /// `ResourceAlreadyExist` when the name is taken for this function in the app group.
    async fn insert_resource(&self, new_resource: NewFunctionResource) -> Result<FunctionResource, CoreError>;
    async fn find_resource(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
        resource_name: &str,
    ) -> Result<Option<FunctionResource>, CoreError>;
    async fn list_resources(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
        resource_type: Option<ResourceType>,
        page: PageRequest,
    ) -> Result<Page<FunctionResource>, CoreError>;
    async fn update_resource(
        &self,
        resource: &FunctionResource,
        description: Option<&str>,
        data: Option<&ResourceData>,
        now_ms: Millis,
    ) -> Result<FunctionResource, CoreError>;
    /// `ResourceInUse` while an instance references it.
    async fn delete_resource(&self, resource: &FunctionResource) -> Result<(), CoreError>;

    async fn default_instance(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
    ) -> Result<Option<String>, CoreError>;
    /// `None` clears the default; `InstanceNotExist` when the named instance does not exist.
    async fn set_default_instance(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
        instance_name: Option<&str>,
    ) -> Result<(), CoreError>;

    /// Declares a document table; the same declaration again is a no-op, another primary key for
    /// an existing table is `DataTableAlreadyExist`.
    async fn put_data_table(
        &self,
        app_group_id: i64,
        table_name: &str,
        primary_key: &str,
        now_ms: Millis,
    ) -> Result<DataTable, CoreError>;
    async fn find_data_table(&self, app_group_id: i64, table_name: &str) -> Result<Option<DataTable>, CoreError>;
    async fn list_data_tables(&self, app_group_id: i64) -> Result<Vec<DataTable>, CoreError>;

    /// Remembers a signature nonce of an AccessKey until `expires_ms`; false when it is still
    /// remembered from an earlier request (a replay). A remembered nonce whose expiry is before
    /// `now_ms` counts as forgotten.
    async fn remember_signature_nonce(
        &self,
        access_key_id: &str,
        nonce: &str,
        now_ms: Millis,
        expires_ms: Millis,
    ) -> Result<bool, CoreError>;
    /// Forgets nonces whose expiry has passed; returns how many.
    async fn forget_expired_signature_nonces(&self, now_ms: Millis) -> Result<u64, CoreError>;
}
