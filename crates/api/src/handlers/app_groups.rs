//! CreateAppGroup, ListAppGroups, DescribeAppGroup, ModifyAppGroup, RemoveAppGroup.

use axum::extract::State;
use serde_json::Value;
use trainyard_core::model::AppGroup;
use trainyard_core::policy::{opensearch_any_arn, opensearch_app_arn};
use trainyard_core::ram::{Principal, forbidden};
use trainyard_core::service::{ListAppGroupsRequest, ModifyAppGroupRequest};

use crate::AppState;
use crate::access::decide_for;
use crate::call::Call;
use crate::envelope::Reply;
use crate::error::ApiError;
use crate::wire::{CreateAppGroupBody, ModifyAppGroupBody, TagBody, app_group_result, tags};

pub async fn create_app_group(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: CreateAppGroupBody = call.body()?;
    let app_group = state.service.create_app_group(&call.caller, body.into()).await?;
    Ok(Reply::result(app_group_result(&app_group)))
}

pub async fn list_app_groups(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    // The SDK sends tags as a JSON array in one query value.
    let tag_filter = match call.query_text("tags") {
        None => Vec::new(),
        Some(text) => {
            let bodies: Vec<TagBody> = serde_json::from_str(&text).map_err(|error| {
                ApiError::invalid("tags", format!("expected a JSON array of {{\"key\",\"value\"}}: {error}"))
            })?;
            tags(bodies)
        }
    };
    let request = ListAppGroupsRequest {
        name: call.query_text("name"),
        app_type: call.query_text("type"),
        resource_group_id: call.query_text("resourceGroupId"),
        instance_id: call.query_text("instanceId"),
        sort_by: call.query_integer("sortBy")?,
        tags: tag_filter,
        page_number: call.query_integer("pageNumber")?,
        page_size: call.query_integer("pageSize")?,
    };
    if call.caller.principal == Principal::Root {
        let page = state.service.list_app_groups(&call.caller, request).await?;
        return Ok(Reply::page(page.items.iter().map(app_group_result).collect(), page.total_count));
    }
    // A RAM user sees the app groups it may list (crate::access documents the rule).
    let action = call.operation.ram_action();
    let account = &call.caller.account_id.0;
    let allows =
        |resource: &str| decide_for(&call.caller, &call.policies.0, action, resource, call.context).is_allowed();
    let visible = |app_group: &AppGroup| allows(&opensearch_app_arn(&state.access.region, account, &app_group.name));
    let page = state.service.list_visible_app_groups(&call.caller, request, &visible).await?;
    if page.total_count == 0 {
        let any = opensearch_any_arn(&state.access.region, account);
        let decision = decide_for(&call.caller, &call.policies.0, action, &any, call.context);
        if !decision.is_allowed() {
            return Err(forbidden(&decision, action, &any).into());
        }
    }
    Ok(Reply::page(page.items.iter().map(app_group_result).collect(), page.total_count))
}

pub async fn describe_app_group(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let app_group = state.service.describe_app_group(&call.caller, call.path("appGroupIdentity")).await?;
    Ok(Reply::result(app_group_result(&app_group)))
}

pub async fn modify_app_group(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: ModifyAppGroupBody = call.body()?;
    let request = ModifyAppGroupRequest {
        current_version: body.current_version,
        description: body.description,
        domain: body.domain,
        resource_group_id: body.resource_group_id,
        dry_run: call.query_boolean("dryRun")?.unwrap_or(false),
    };
    let app_group = state.service.modify_app_group(&call.caller, call.path("appGroupIdentity"), request).await?;
    Ok(Reply::result(app_group_result(&app_group)))
}

/// `result` is a list of integers in the SDK model: Trainyard answers the removed app group's id.
pub async fn remove_app_group(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let removed = state.service.remove_app_group(&call.caller, call.path("appGroupIdentity")).await?;
    Ok(Reply::result(Value::from(vec![removed.id])))
}
