//! [`Call`]: everything a handler needs from an authenticated request — the caller, the decoded
//! path parameters, the query parameters (only those the operation accepts) and the body.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, RawPathParams, Request};
use serde::de::DeserializeOwned;
use trainyard_core::names::printable;
use trainyard_core::service::Caller;

use crate::error::ApiError;
use crate::operation::Operation;
use crate::signature::decoded_query_pairs;
use crate::wire::OutputLevel;

/// An authenticated request, decoded.
#[derive(Debug)]
pub struct Call {
    pub caller: Caller,
    /// The caller's policies (empty for the root account) and the request's condition facts.
    pub policies: crate::access::CallerPolicies,
    pub context: trainyard_core::policy::RequestContext,
    pub operation: Operation,
    path: HashMap<String, String>,
    query: HashMap<String, String>,
    headers: http::HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Call {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Call, ApiError> {
        let (mut parts, body) = request.into_parts();
        let unauthenticated = || ApiError::Signature(crate::signature::SignatureError::MissingAuthorization);
        let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(unauthenticated)?;
        let operation = parts.extensions.get::<Operation>().copied().ok_or_else(unauthenticated)?;
        let policies = parts.extensions.get::<crate::access::CallerPolicies>().cloned().unwrap_or_default();
        let context =
            parts.extensions.get::<trainyard_core::policy::RequestContext>().copied().ok_or_else(unauthenticated)?;
        let path = decoded_path_params(&mut parts, state).await?;
        let pairs = decoded_query_pairs(parts.uri.query())?;
        let allowed = operation.query_parameters();
        if let Some((unknown, _)) = pairs.iter().find(|(key, _)| !allowed.contains(&key.as_str())) {
            let accepted = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
            return Err(ApiError::invalid(
                printable(unknown),
                format!("{} accepts no such query parameter (accepted: {accepted})", operation.name()),
            ));
        }
        let body = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
            .await
            .map_err(|error| ApiError::BodyUnreadable(error.to_string()))?;
        Ok(Call {
            caller,
            policies,
            context,
            operation,
            path,
            query: pairs.into_iter().collect(),
            headers: parts.headers,
            body,
        })
    }
}

/// The route's path parameters, percent-decoded.
pub async fn decoded_path_params<S: Send + Sync>(
    parts: &mut http::request::Parts,
    state: &S,
) -> Result<HashMap<String, String>, ApiError> {
    let raw_path_params = <RawPathParams as axum::extract::FromRequestParts<S>>::from_request_parts(parts, state)
        .await
        .map_err(|rejection| ApiError::invalid("path", rejection.body_text()))?;
    let mut path = HashMap::new();
    for (name, raw_value) in &raw_path_params {
        let decoded = percent_encoding::percent_decode_str(raw_value)
            .decode_utf8()
            .map_err(|_| ApiError::invalid(name, "the percent-decoded value is not valid UTF-8"))?;
        path.insert(name.to_string(), decoded.into_owned());
    }
    Ok(path)
}

impl Call {
    /// A path parameter (decoded). The router guarantees the names of its own routes.
    pub fn path(&self, name: &str) -> &str {
        self.path.get(name).map(String::as_str).unwrap_or("")
    }

    /// A request header as text (`None` when absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body exactly as received.
    pub fn raw_body(&self) -> Bytes {
        self.body.clone()
    }

    /// A query parameter as text; an empty value counts as absent.
    pub fn query_text(&self, name: &str) -> Option<String> {
        self.query.get(name).filter(|value| !value.is_empty()).cloned()
    }

    /// A query parameter as an integer; the error names it.
    pub fn query_integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.query_text(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::invalid(name, format!("\"{}\" is not an integer", printable(&text)))),
        }
    }

    /// A query parameter as a boolean. Case-insensitive: the Python SDK sends `str(True)`, i.e.
    /// `True` / `False`.
    pub fn query_boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        let Some(text) = self.query_text(name) else {
            return Ok(None);
        };
        match text.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(ApiError::invalid(name, format!("\"{}\" is not true or false", printable(&text)))),
        }
    }

    /// The `output` level (default `normal`).
    pub fn output_level(&self) -> Result<OutputLevel, ApiError> {
        match self.query_text("output").as_deref() {
            None | Some("normal") => Ok(OutputLevel::Normal),
            Some("simple") => Ok(OutputLevel::Simple),
            Some("detail") => Ok(OutputLevel::Detail),
            Some(other) => Err(ApiError::invalid(
                "output",
                format!("\"{}\" is not one of: simple, normal, detail", printable(other)),
            )),
        }
    }

    /// The JSON body; an empty body reads as `{}`. Errors name the offending field by its path.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let bytes: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &self.body };
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let field = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::invalid("body", format!("the body is not valid JSON: {inner}"))
            } else if field == "." {
                ApiError::invalid("body", inner.to_string())
            } else {
                ApiError::invalid(field, inner.to_string())
            }
        })?;
        deserializer
            .end()
            .map_err(|error| ApiError::invalid("body", format!("unexpected data after the JSON value: {error}")))?;
        Ok(value)
    }

    /// Refuses a body on an operation that takes none (`{}` is tolerated: SDKs send it).
    pub fn expect_no_body(&self) -> Result<(), ApiError> {
        let trimmed: Vec<u8> = self.body.iter().copied().filter(|byte| !byte.is_ascii_whitespace()).collect();
        if trimmed.is_empty() || trimmed == b"{}" {
            return Ok(());
        }
        Err(ApiError::invalid("body", format!("{} takes no request body", self.operation.name())))
    }
}
