//! GetFunctionDefaultInstance, UpdateFunctionDefaultInstance.

use axum::extract::State;
use serde_json::Value;

use crate::AppState;
use crate::call::Call;
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::wire::UpdateFunctionDefaultInstanceBody;

/// The SDK model reads `Result.InstanceName` and, at top level, `FunctionName` and
/// `InstanceName`; all three are filled.
pub async fn get_function_default_instance(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let function_name = call.path("functionName");
    let instance_name =
        state.service.get_function_default_instance(&call.caller, call.path("appGroupIdentity"), function_name).await?;
    Ok(Reply {
        result: Some(serde_json::json!({ "InstanceName": instance_name })),
        total_count: None,
        top_level: vec![("FunctionName", Value::from(function_name)), ("InstanceName", Value::from(instance_name))],
        ..Reply::default()
    })
}

pub async fn update_function_default_instance(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: UpdateFunctionDefaultInstanceBody = call.body()?;
    state
        .service
        .update_function_default_instance(
            &call.caller,
            call.path("appGroupIdentity"),
            call.path("functionName"),
            body.instance_name,
        )
        .await?;
    Ok(Reply::empty())
}
