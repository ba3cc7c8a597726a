//! GetFunctionCurrentVersion, GetFunctionVersion.

use axum::extract::State;
use trainyard_core::service::GetFunctionCurrentVersionRequest;

use crate::AppState;
use crate::call::Call;
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::wire::version_result;

pub async fn get_function_current_version(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let request = GetFunctionCurrentVersionRequest {
        model_type: call.query_text("modelType"),
        function_type: call.query_text("functionType"),
        domain: call.query_text("domain"),
        category: call.query_text("category"),
    };
    let version = state.service.get_function_current_version(call.path("functionName"), request)?;
    Ok(Reply::result(version_result(version)))
}

pub async fn get_function_version(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let version = state.service.get_function_version(call.path("functionName"), call.path("versionId"))?;
    Ok(Reply::result(version_result(version)))
}
