//! The serving routes: QueryHot (`/v3/openapi/apps/{app}/actions/hot`), QueryHint
//! (`.../actions/hint`) and Trainyard's QueryPopularity (`.../actions/popularity`).

use axum::extract::State;
use serde_json::json;
use trainyard_serve::{PopularityQuery, RankingQuery};

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
