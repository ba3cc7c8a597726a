//! CreateFunctionInstance, GetFunctionInstance, ListFunctionInstances, UpdateFunctionInstance,
//! DeleteFunctionInstance.

use axum::extract::State;
use trainyard_core::service::ListFunctionInstancesRequest;

use crate::AppState;
use crate::call::Call;
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::wire::{CreateFunctionInstanceBody, OutputLevel, UpdateFunctionInstanceBody, instance_result};

pub async fn create_function_instance(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: CreateFunctionInstanceBody = call.body()?;
    state
        .service
        .create_function_instance(&call.caller, call.path("appGroupIdentity"), call.path("functionName"), body.into())
        .await?;
    Ok(Reply::empty())
}

pub async fn get_function_instance(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let level = call.output_level()?;
    let view = state
        .service
        .get_function_instance(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("instanceName"),
        )
        .await?;
    Ok(Reply::result(instance_result(&view, level)))
}

pub async fn list_function_instances(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let level = call.output_level()?;
    let request = ListFunctionInstancesRequest {
        model_type: call.query_text("modelType"),
        function_type: call.query_text("functionType"),
        source: call.query_text("source"),
        page_number: call.query_integer("pageNumber")?,
        page_size: call.query_integer("pageSize")?,
    };
    let page = state
        .service
        .list_function_instances(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            request,
            level == OutputLevel::Detail,
        )
        .await?;
    Ok(Reply::page(page.items.iter().map(|view| instance_result(view, level)).collect(), page.total_count))
}

pub async fn update_function_instance(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: UpdateFunctionInstanceBody = call.body()?;
    state
        .service
        .update_function_instance(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("instanceName"),
            body.into(),
        )
        .await?;
    Ok(Reply::empty())
}

pub async fn delete_function_instance(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    state
        .service
        .delete_function_instance(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("instanceName"),
        )
        .await?;
    Ok(Reply::empty())
}
