//! CreateFunctionResource, GetFunctionResource, ListFunctionResources, UpdateFunctionResource,
//! DeleteFunctionResource.

use axum::extract::State;
use trainyard_core::service::ListFunctionResourcesRequest;

use crate::AppState;
use crate::call::Call;
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::wire::{CreateFunctionResourceBody, UpdateFunctionResourceBody, resource_result};

pub async fn create_function_resource(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: CreateFunctionResourceBody = call.body()?;
    state
        .service
        .create_function_resource(&call.caller, call.path("appGroupIdentity"), call.path("functionName"), body.into())
        .await?;
    Ok(Reply::empty())
}

pub async fn get_function_resource(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let level = call.output_level()?;
    let resource = state
        .service
        .get_function_resource(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("resourceName"),
        )
        .await?;
    Ok(Reply::result(resource_result(&resource, level)))
}

pub async fn list_function_resources(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let level = call.output_level()?;
    let request = ListFunctionResourcesRequest {
        resource_type: call.query_text("resourceType"),
        page_number: call.query_integer("pageNumber")?,
        page_size: call.query_integer("pageSize")?,
    };
    let page = state
        .service
        .list_function_resources(&call.caller, call.path("appGroupIdentity"), call.path("functionName"), request)
        .await?;
    Ok(Reply::page(page.items.iter().map(|resource| resource_result(resource, level)).collect(), page.total_count))
}

pub async fn update_function_resource(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: UpdateFunctionResourceBody = call.body()?;
    state
        .service
        .update_function_resource(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("resourceName"),
            body.into(),
        )
        .await?;
    Ok(Reply::empty())
}

pub async fn delete_function_resource(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    state
        .service
        .delete_function_resource(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("resourceName"),
        )
        .await?;
    Ok(Reply::empty())
}
