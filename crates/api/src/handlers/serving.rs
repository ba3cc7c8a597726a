//! The serving routes: QueryHot (`/v3/openapi/apps/{app}/actions/hot`), QueryHint
//! (`.../actions/hint`) and Trainyard's QueryPopularity (`.../actions/popularity`) and QueryCtr
//! (`POST .../actions/ctr`).

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use trainyard_serve::{CtrQuery, PopularityQuery, RankingQuery};

use crate::AppState;
use crate::call::Call;
use crate::envelope::Reply;
use crate::error::ApiError;

fn ranking_query(call: &Call) -> Result<RankingQuery, ApiError> {
    Ok(RankingQuery {
        hit: call.query_integer("hit")?,
        sort_type: call.query_text("sort_type"),
        user_id: call.query_text("user_id"),
        model_name: call.query_text("model_name"),
    })
}

pub async fn query_hot(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let items = state.serving.hot(&call.caller, call.path("appGroupIdentity"), &ranking_query(&call)?).await?;
    let result = items.iter().map(|item| json!({"hot": item.hot, "pv": item.pv, "tags": item.tags})).collect();
    Ok(Reply::result(serde_json::Value::Array(result)))
}

pub async fn query_hint(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let items = state.serving.hint(&call.caller, call.path("appGroupIdentity"), &ranking_query(&call)?).await?;
    let result = items.iter().map(|item| json!({"hint": item.hint, "pv": item.pv})).collect();
    Ok(Reply::result(serde_json::Value::Array(result)))
}

pub async fn query_popularity(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    call.expect_no_body()?;
    let query = PopularityQuery { item_ids: call.query_text("item_ids"), model_name: call.query_text("model_name") };
    let items = state.serving.popularity(&call.caller, call.path("appGroupIdentity"), &query).await?;
    let result = items.iter().map(|item| json!({"item_id": item.item_id, "score": item.score})).collect();
    Ok(Reply::result(serde_json::Value::Array(result)))
}

/// QueryCtr's body; unknown fields are refused (a misspelt `item_id` must not score nothing).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CtrBody {
    user_id: Option<String>,
    biz_id: Option<String>,
    time: Option<i64>,
    item_ids: Option<Vec<String>>,
    model_name: Option<String>,
}

pub async fn query_ctr(State(state): State<AppState>, call: Call) -> Result<Reply, ApiError> {
    let body: CtrBody = call.body()?;
    let query = CtrQuery {
        user_id: body.user_id,
        biz_id: body.biz_id,
        time: body.time,
        item_ids: body.item_ids,
        model_name: body.model_name,
    };
    let now_seconds = state.service.clock().now_ms().div_euclid(1000);
    let items = state.serving.ctr(&call.caller, call.path("appGroupIdentity"), &query, now_seconds).await?;
    let result =
        items.iter().map(|item| json!({"item_id": item.item_id, "score": item.score, "known": item.known})).collect();
    Ok(Reply::result(serde_json::Value::Array(result)))
}
