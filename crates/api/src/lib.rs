//! The HTTP face of Trainyard: the OpenSearch 2017-12-25 routes, the response envelope, request
//! signatures and error codes.
//!
//! # What lives here
//! - [`router`]: the axum router — one route per [`operation::Operation`], each
//!   authenticated by [`auth::authenticate`] and wrapped by [`envelope::write_envelope`].
//! - [`signature`]: ACS3-HMAC-SHA256 and legacy HMAC-SHA1 verification (pure functions).
//! - [`access`]: per-AccessKey rate limits, failed-signature counts, and the authorization of
//!   every operation against the caller's RAM policies, driven by the operation table.
//! - `handlers::ram`: the RAM admin API (users, AccessKeys, policies, the policy simulator).
//! - [`handlers`]: one handler per operation — decode a [`call::Call`], call the domain
//!   service, encode a [`envelope::Reply`]. No business rule lives in a handler.
//! - [`wire`]: request bodies and response shapes, with the SDK's exact casing.
//! - [`error::ApiError`]: transport errors and the domain's, each with its wire code.
//!
//! # What must not
//! No SQL, no domain rules and no record validation: those belong to `trainyard-store`,
//! `trainyard-core` and `trainyard-data`. This is the only crate that knows HTTP and the
//! envelopes.

pub mod access;
pub mod auth;
pub mod call;
pub mod credentials;
pub mod envelope;
pub mod error;
pub mod handlers;
pub mod operation;
pub mod signature;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, delete, get, post, put};
use trainyard_core::service::Service;
use trainyard_data::DatasetStore;
use trainyard_serve::Serving;

use crate::access::AccessControl;
use crate::credentials::Credentials;
use crate::error::ApiError;
use crate::operation::Operation;

/// Limits and windows of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Requests with a larger body are refused with 413.
    pub max_body_bytes: usize,
    /// A signed date further than this from the server clock is refused.
    pub max_clock_skew_seconds: i64,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig { max_body_bytes: 2 * 1024 * 1024, max_clock_skew_seconds: 15 * 60 }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub datasets: Arc<DatasetStore>,
    pub credentials: Arc<Credentials>,
    /// RAM users, keys and policies; rate limits; failed-signature counts.
    pub access: Arc<AccessControl>,
    pub serving: Serving,
    pub config: ApiConfig,
}

fn handler_of(operation: Operation) -> MethodRouter<AppState> {
    use crate::handlers::{app_groups, data, default_instance, instances, ram, resources, serving, tasks, versions};
    match operation {
        Operation::CreateFunctionInstance => post(instances::create_function_instance),
        Operation::GetFunctionInstance => get(instances::get_function_instance),
        Operation::ListFunctionInstances => get(instances::list_function_instances),
        Operation::UpdateFunctionInstance => put(instances::update_function_instance),
        Operation::DeleteFunctionInstance => delete(instances::delete_function_instance),
        Operation::CreateFunctionTask => post(tasks::create_function_task),
        Operation::GetFunctionTask => get(tasks::get_function_task),
        Operation::ListFunctionTasks => get(tasks::list_function_tasks),
        Operation::DeleteFunctionTask => delete(tasks::delete_function_task),
        Operation::CancelFunctionTask => post(tasks::cancel_function_task),
        Operation::CreateFunctionResource => post(resources::create_function_resource),
        Operation::GetFunctionResource => get(resources::get_function_resource),
        Operation::ListFunctionResources => get(resources::list_function_resources),
        Operation::UpdateFunctionResource => put(resources::update_function_resource),
        Operation::DeleteFunctionResource => delete(resources::delete_function_resource),
        Operation::GetFunctionCurrentVersion => get(versions::get_function_current_version),
        Operation::GetFunctionVersion => get(versions::get_function_version),
        Operation::GetFunctionDefaultInstance => get(default_instance::get_function_default_instance),
        Operation::UpdateFunctionDefaultInstance => put(default_instance::update_function_default_instance),
        Operation::CreateAppGroup => post(app_groups::create_app_group),
        Operation::ListAppGroups => get(app_groups::list_app_groups),
        Operation::DescribeAppGroup => get(app_groups::describe_app_group),
        Operation::ModifyAppGroup => put(app_groups::modify_app_group),
        Operation::RemoveAppGroup => delete(app_groups::remove_app_group),
        Operation::PutDataTable => put(data::put_data_table),
        Operation::ListDataTables => get(data::list_data_tables),
        Operation::DescribeDatasetStats => get(data::describe_dataset_stats),
        Operation::CompactDataset => post(data::compact_dataset),
        Operation::PushDocuments => post(data::push_documents),
        Operation::PushCollectionData => post(data::push_collection_data),
        Operation::PushQueryLog => post(data::push_query_log),
        Operation::QueryHot => get(serving::query_hot),
        Operation::QueryHint => get(serving::query_hint),
        Operation::QueryPopularity => get(serving::query_popularity),
        Operation::QueryCtr => post(serving::query_ctr),
        Operation::CreateUser => post(ram::create_user),
        Operation::ListUsers => get(ram::list_users),
        Operation::GetUser => get(ram::get_user),
        Operation::DeleteUser => delete(ram::delete_user),
        Operation::CreateAccessKey => post(ram::create_access_key),
        Operation::ListAccessKeys => get(ram::list_access_keys),
        Operation::UpdateAccessKey => put(ram::update_access_key),
        Operation::DeleteAccessKey => delete(ram::delete_access_key),
        Operation::CreateRootAccessKey => post(ram::create_access_key),
        Operation::ListRootAccessKeys => get(ram::list_access_keys),
        Operation::UpdateRootAccessKey => put(ram::update_access_key),
        Operation::DeleteRootAccessKey => delete(ram::delete_access_key),
        Operation::CreatePolicy => post(ram::create_policy),
        Operation::ListPolicies => get(ram::list_policies),
        Operation::GetPolicy => get(ram::get_policy),
        Operation::DeletePolicy => delete(ram::delete_policy),
        Operation::AttachPolicyToUser => post(ram::attach_policy_to_user),
        Operation::DetachPolicyFromUser => delete(ram::detach_policy_from_user),
        Operation::ListPoliciesForUser => get(ram::list_policies_for_user),
        Operation::SimulatePrincipalPolicy => post(ram::simulate_principal_policy),
    }
}

/// The router serving every operation.
pub fn router(state: AppState) -> Router {
    let mut routes: Router<AppState> = Router::new();
    for operation in Operation::ALL {
        routes = routes.route(operation.path(), handler_of(*operation));
    }
    routes
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(envelope::write_envelope))
        .with_state(state)
}

async fn route_not_found(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::RouteNotFound { method: method.to_string(), path: trainyard_core::names::printable(uri.path()) }
}

async fn method_not_allowed(method: http::Method) -> ApiError {
    ApiError::MethodNotAllowed { method: method.to_string() }
}
