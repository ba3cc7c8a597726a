//! CreateFunctionTask, GetFunctionTask, ListFunctionTasks, DeleteFunctionTask, and Trainyard's
//! CancelFunctionTask.

use axum::extract::State;
use trainyard_core::service::ListFunctionTasksRequest;

use crate::AppState;
use crate::call::Call;
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::wire::task_result;

/// Records a pending task. Upstream parses no `Result`; Trainyard adds the new task as `Result`
/// (its `Generation` is what a caller polls next) — the SDK ignores it.
pub async fn create_function_task(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let task = state
        .service
        .create_function_task(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("instanceName"),
        )
        .await?;
    Ok(Reply::result(task_result(&task)))
}

pub async fn get_function_task(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let task = state
        .service
        .get_function_task(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("instanceName"),
            call.path("generation"),
        )
        .await?;
    Ok(Reply::result(task_result(&task)))
}

pub async fn list_function_tasks(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let request = ListFunctionTasksRequest {
        status: call.query_text("status"),
        start_time: call.query_integer("startTime")?,
        end_time: call.query_integer("endTime")?,
        page_number: call.query_integer("pageNumber")?,
        page_size: call.query_integer("pageSize")?,
    };
    let page = state
        .service
        .list_function_tasks(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("instanceName"),
            request,
        )
        .await?;
    Ok(Reply::page(page.items.iter().map(task_result).collect(), page.total_count))
}

pub async fn delete_function_task(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    state
        .service
        .delete_function_task(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("instanceName"),
            call.path("generation"),
        )
        .await?;
    Ok(Reply::empty())
}

/// Trainyard's extension: stops a task. Answers the task as it is after the request (a running
/// task still shows `running` until its worker stops it, within a few seconds).
pub async fn cancel_function_task(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let task = state
        .service
        .cancel_function_task(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            call.path("instanceName"),
            call.path("generation"),
        )
        .await?;
    Ok(Reply::result(task_result(&task)))
}
