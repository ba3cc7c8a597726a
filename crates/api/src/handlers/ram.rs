//! The RAM admin API: users, their AccessKeys, policies and attachments, and the policy
//! simulator (docs/ram.md). Authorized like every operation, with the `ram:<Operation>` actions:
//! only the root account, or a user granted them, gets here.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use trainyard_core::CoreError;
use trainyard_core::clock::format_utc_seconds;
use trainyard_core::policy::{DecisionEffect, RequestContext};
use trainyard_core::ram::{AccessKeyStatus, Principal, RamUser, StoredAccessKey, StoredPolicy};

use crate::AppState;
use crate::call::Call;
use crate::envelope::Reply;
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserBody {
    user_name: Option<String>,
    display_name: Option<String>,
    comments: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAccessKeyBody {
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePolicyBody {
    policy_name: Option<String>,
    policy_document: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateBody {
    action: Option<String>,
    resource: Option<String>,
    /// `acs:SourceIp` to simulate (default: absent).
    source_ip: Option<String>,
    /// `acs:SecureTransport` to simulate (default: false).
    secure_transport: Option<bool>,
    /// `acs:CurrentTime` to simulate, ISO 8601 (default: now).
    current_time: Option<String>,
}

fn user_result(user: &RamUser) -> Value {
    json!({
        "UserName": user.user_name,
        "DisplayName": user.display_name,
        "Comments": user.comments,
        "CreateDate": format_utc_seconds(user.created_ms),
    })
}

fn access_key_result(state: &AppState, key: &StoredAccessKey) -> Value {
    json!({
        "AccessKeyId": key.access_key_id,
        "UserName": match &key.owner {
            Principal::Root => Value::Null,
            Principal::User(user_name) => Value::from(user_name.clone()),
        },
        "Status": key.status.as_str(),
        "CreateDate": format_utc_seconds(key.created_ms),
        "FailedSignatureCount": state.access.failed_signatures.count(&key.access_key_id),
    })
}

fn policy_result(policy: &StoredPolicy) -> Value {
    json!({
        "PolicyName": policy.policy_name,
        "Description": policy.description,
        "PolicyDocument": policy.document,
        "CreateDate": format_utc_seconds(policy.created_ms),
    })
}

pub async fn create_user(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: CreateUserBody = call.body()?;
    let user = state
        .access
        .ram
        .create_user(&call.caller.account_id, body.user_name.as_deref().unwrap_or(""), body.display_name, body.comments)
        .await?;
    Ok(Reply::result(user_result(&user)))
}

pub async fn list_users(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let users = state.access.ram.list_users(&call.caller.account_id).await?;
    let total = users.len() as i64;
    Ok(Reply::page(users.iter().map(user_result).collect(), total))
}

pub async fn get_user(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let user = state.access.ram.get_user(&call.caller.account_id, call.path("userName")).await?;
    Ok(Reply::result(user_result(&user)))
}

pub async fn delete_user(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    state.access.ram.delete_user(&call.caller.account_id, call.path("userName")).await?;
    Ok(Reply::empty())
}

/// Whose keys a key operation manages: the user of the path, or — on the `/ram/root/...` routes
/// — the root account, which only the root account itself may manage (no policy grants a RAM
/// user the root's keys).
fn key_owner(call: &Call) -> Result<Principal, ApiError> {
    if call.operation.path().starts_with("/v4/openapi/ram/root/") {
        if call.caller.principal != Principal::Root {
            return Err(CoreError::ForbiddenRam {
                action: call.operation.ram_action().to_string(),
                resource: format!("acs:ram::{}:root", call.caller.account_id.0),
                reason: "only the root account manages its own AccessKeys".to_string(),
            }
            .into());
        }
        return Ok(Principal::Root);
    }
    Ok(Principal::User(call.path("userName").to_string()))
}

/// The only answer that carries the secret.
pub async fn create_access_key(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let owner = key_owner(&call)?;
    let created = state.access.ram.create_access_key(&call.caller.account_id, &owner).await?;
    let mut result = access_key_result(&state, &created.key);
    result["AccessKeySecret"] = Value::from(created.access_key_secret);
    tracing::info!(access_key_id = %created.key.access_key_id, owner = ?created.key.owner, "AccessKey created");
    Ok(Reply::result(result))
}

pub async fn list_access_keys(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let owner = key_owner(&call)?;
    let keys = state.access.ram.list_access_keys(&call.caller.account_id, &owner).await?;
    let total = keys.len() as i64;
    Ok(Reply::page(keys.iter().map(|key| access_key_result(&state, key)).collect(), total))
}

pub async fn update_access_key(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: UpdateAccessKeyBody = call.body()?;
    let status = AccessKeyStatus::parse("status", body.status.as_deref().unwrap_or(""))?;
    let owner = key_owner(&call)?;
    state.access.ram.update_access_key(&call.caller.account_id, &owner, call.path("userAccessKeyId"), status).await?;
    Ok(Reply::empty())
}

pub async fn delete_access_key(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let owner = key_owner(&call)?;
    state.access.ram.delete_access_key(&call.caller.account_id, &owner, call.path("userAccessKeyId")).await?;
    Ok(Reply::empty())
}

pub async fn create_policy(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: CreatePolicyBody = call.body()?;
    let policy = state
        .access
        .ram
        .create_policy(
            &call.caller.account_id,
            body.policy_name.as_deref().unwrap_or(""),
            body.policy_document.as_deref(),
            body.description,
        )
        .await?;
    Ok(Reply::result(policy_result(&policy)))
}

pub async fn list_policies(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let policies = state.access.ram.list_policies(&call.caller.account_id).await?;
    let total = policies.len() as i64;
    Ok(Reply::page(policies.iter().map(policy_result).collect(), total))
}

pub async fn get_policy(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let policy = state.access.ram.get_policy(&call.caller.account_id, call.path("policyName")).await?;
    Ok(Reply::result(policy_result(&policy)))
}

pub async fn delete_policy(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    state.access.ram.delete_policy(&call.caller.account_id, call.path("policyName")).await?;
    Ok(Reply::empty())
}

pub async fn attach_policy_to_user(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    state
        .access
        .ram
        .attach_policy_to_user(&call.caller.account_id, call.path("userName"), call.path("policyName"))
        .await?;
    Ok(Reply::empty())
}

pub async fn detach_policy_from_user(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    state
        .access
        .ram
        .detach_policy_from_user(&call.caller.account_id, call.path("userName"), call.path("policyName"))
        .await?;
    Ok(Reply::empty())
}

pub async fn list_policies_for_user(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let policies = state.access.ram.list_policies_for_user(&call.caller.account_id, call.path("userName")).await?;
    let total = policies.len() as i64;
    Ok(Reply::page(policies.iter().map(policy_result).collect(), total))
}

pub async fn simulate_principal_policy(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: SimulateBody = call.body()?;
    let source_ip = match body.source_ip.filter(|text| !text.is_empty()) {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| {
            ApiError::invalid(
                "sourceIp",
                format!("\"{}\" is not an IP address", trainyard_core::names::printable(&text)),
            )
        })?),
    };
    let current_time = match body.current_time.filter(|text| !text.is_empty()) {
        None => call.context.current_time,
        Some(text) => chrono::DateTime::parse_from_rfc3339(&text)
            .map_err(|_| {
                ApiError::invalid("currentTime", "is not an ISO 8601 time with a zone, such as 2026-01-01T00:00:00Z")
            })?
            .timestamp(),
    };
    let context = RequestContext {
        source_ip,
        current_time,
        secure_transport: body.secure_transport.unwrap_or(false),
        mfa_present: false,
    };
    let action = body.action.unwrap_or_default();
    let resource = body.resource.unwrap_or_default();
    let decision =
        state.access.ram.simulate(&call.caller.account_id, call.path("userName"), &action, &resource, context).await?;
    let effect = match decision.effect {
        DecisionEffect::Allowed => "allowed",
        DecisionEffect::ExplicitDeny => "explicitDeny",
        DecisionEffect::ImplicitDeny => "implicitDeny",
    };
    let (policy_name, statement_index) = match &decision.deciding {
        Some((name, index)) => (Value::from(name.clone()), Value::from(*index)),
        None => (Value::Null, Value::Null),
    };
    Ok(Reply::result(json!({
        "Action": action,
        "Resource": resource,
        "Decision": effect,
        "Allowed": decision.is_allowed(),
        "MatchedPolicyName": policy_name,
        "MatchedStatementIndex": statement_index,
    })))
}
