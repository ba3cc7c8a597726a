//! The response envelope. Handlers return a [`Reply`] (or an error); the outermost middleware,
//! [`write_envelope`], turns it into the JSON body the SDK parses, measuring `Latency` over the
//! whole request and giving every response a `RequestId`.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value};
use trainyard_core::ErrorCode;

use crate::error::ErrorReply;
use crate::operation::{EnvelopeStyle, Operation};

/// A result, before it is wrapped.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub result: Option<Value>,
    pub total_count: Option<i64>,
    /// Extra top-level keys (GetFunctionDefaultInstance's `FunctionName` / `InstanceName`; the
    /// v3 `errors` list of refused records).
    pub top_level: Vec<(&'static str, Value)>,
    /// An answer that failed as a whole but still carries a body (a v3 push whose every record
    /// was refused): this HTTP status, `status: FAIL`.
    pub fail_status: Option<StatusCode>,
}

impl Reply {
    /// A reply without `Result`.
    pub fn empty() -> Reply {
        Reply::default()
    }

    pub fn result(result: Value) -> Reply {
        Reply { result: Some(result), ..Reply::default() }
    }

    pub fn page(items: Vec<Value>, total_count: i64) -> Reply {
        Reply { result: Some(Value::Array(items)), total_count: Some(total_count), ..Reply::default() }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = self.fail_status.unwrap_or(StatusCode::OK).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The request id of the request being served (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Wraps every response in the envelope.
pub async fn write_envelope(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let is_v3_path = request.uri().path().starts_with("/v3/");
    let request_id = if is_v3_path { v3_request_id() } else { uuid::Uuid::new_v4().to_string().to_uppercase() };
    request.extensions_mut().insert(RequestId(request_id.clone()));
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let mut response = next.run(request).await;

    let operation = response.extensions().get::<Operation>().copied();
    let default_style = if is_v3_path { EnvelopeStyle::V3 } else { EnvelopeStyle::PascalIntegerLatency };
    let style = operation.map(Operation::envelope_style).unwrap_or(default_style);
    let status = response.status();
    let reply = response.extensions_mut().remove::<Reply>();
    let error = response.extensions_mut().remove::<ErrorReply>().or_else(|| {
        // Responses that did not come from a handler or our middleware (a tower layer, say).
        (reply.is_none() && (status.is_client_error() || status.is_server_error())).then(|| ErrorReply {
            code: match status {
                StatusCode::NOT_FOUND => ErrorCode::RouteNotFound,
                StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
                StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::RequestBodyTooLarge,
                StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
                _ if status.is_client_error() => ErrorCode::InvalidParameter,
                _ => ErrorCode::InternalError,
            },
            message: status.canonical_reason().unwrap_or("error").to_string(),
        })
    });
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let body = match (&error, reply) {
        (Some(error), _) => envelope(style, &request_id, status.as_u16(), Some(error), latency_ms, Reply::empty()),
        (None, Some(reply)) => envelope(style, &request_id, status.as_u16(), None, latency_ms, reply),
        (None, None) => envelope(style, &request_id, status.as_u16(), None, latency_ms, Reply::empty()),
    };
    tracing::debug!(
        request_id = %request_id,
        method = %method,
        path = %path,
        operation = operation.map(Operation::name).unwrap_or("-"),
        status = status.as_u16(),
        code = error.as_ref().map(|error| error.code.as_str()).unwrap_or(""),
        latency_ms = latency_ms,
        "request"
    );
    let bytes = serde_json::to_vec(&body).expect("envelope serializes");
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=utf-8"));
    headers.remove(header::CONTENT_LENGTH);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-acs-request-id", value);
    }
    if error.as_ref().is_some_and(|error| error.code == ErrorCode::ServiceUnavailable) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    *response.body_mut() = axum::body::Body::from(bytes);
    response
}

/// A v3 request id as upstream writes them: 13 digits of epoch milliseconds and 11 more.
fn v3_request_id() -> String {
    let milliseconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0);
    let random = uuid::Uuid::new_v4().as_u128() % 100_000_000_000;
    format!("{milliseconds:013}{random:011}")
}

/// The numeric code a v3 client reads in `errors[].code` for an error (upstream's table where it
/// has one: 2001 app not found, 4003 signature, 4007 unparsable body, 4010 timestamp, 1000
/// internal; Trainyard's otherwise, listed in docs/data.md).
pub fn v3_error_number(code: ErrorCode) -> u32 {
    match code {
        ErrorCode::SignatureDoesNotMatch
        | ErrorCode::IncompleteSignature
        | ErrorCode::ContentSha256Mismatch
        | ErrorCode::SignatureNonceUsed
        | ErrorCode::InvalidVersion
        | ErrorCode::InvalidAction => 4003,
        ErrorCode::InvalidTimeStampExpired | ErrorCode::InvalidTimeStampFormat => 4010,
        ErrorCode::InvalidAccessKeyIdNotFound => 5001,
        ErrorCode::ForbiddenRam => 5008,
        ErrorCode::AppNotFound => 2001,
        ErrorCode::InvalidParameter | ErrorCode::MissingParameter | ErrorCode::UnsupportedMediaType => 4007,
        ErrorCode::RequestBodyTooLarge => 3015,
        ErrorCode::DataTableNotExist
        | ErrorCode::RouteNotFound
        | ErrorCode::MethodNotAllowed
        | ErrorCode::InstanceNotExist
        | ErrorCode::DefaultInstanceNotExist
        | ErrorCode::ModelNotTrained => 3012,
        ErrorCode::ServiceUnavailable => 1004,
        _ => 1000,
    }
}

fn v3_envelope(request_id: &str, error: Option<&ErrorReply>, reply: Reply) -> Value {
    let mut object = Map::new();
    let failed = error.is_some() || reply.fail_status.is_some();
    object.insert("status".into(), Value::from(if failed { "FAIL" } else { "OK" }));
    object.insert("request_id".into(), Value::from(request_id));
    if let Some(result) = reply.result {
        object.insert("result".into(), result);
    }
    let mut errors = match error {
        Some(error) => vec![serde_json::json!({"code": v3_error_number(error.code), "message": error.message})],
        None => Vec::new(),
    };
    for (key, value) in reply.top_level {
        match (key, value) {
            ("errors", Value::Array(items)) => errors.extend(items),
            (key, value) => {
                object.insert(key.into(), value);
            }
        }
    }
    object.insert("errors".into(), Value::Array(errors));
    Value::Object(object)
}

fn envelope(
    style: EnvelopeStyle,
    request_id: &str,
    http_code: u16,
    error: Option<&ErrorReply>,
    latency_ms: f64,
    reply: Reply,
) -> Value {
    match (style, error) {
        (EnvelopeStyle::V3, _) | (EnvelopeStyle::V3Query, Some(_)) => return v3_envelope(request_id, error, reply),
        (EnvelopeStyle::V3Query, None) => {
            let mut object = Map::new();
            object.insert("request_id".into(), Value::from(request_id));
            object.insert("searchtime".into(), Value::from((latency_ms / 1000.0 * 1e6).round() / 1e6));
            object.insert("result".into(), reply.result.unwrap_or(Value::Array(Vec::new())));
            return Value::Object(object);
        }
        _ => {}
    }
    let latency = match style {
        EnvelopeStyle::PascalFloatLatency => Value::from((latency_ms * 1000.0).round() / 1000.0),
        // Whole milliseconds, never 0 for a request that took any time at all.
        EnvelopeStyle::PascalIntegerLatency | EnvelopeStyle::Camel | EnvelopeStyle::V3 | EnvelopeStyle::V3Query => {
            Value::from(latency_ms.ceil() as i64)
        }
    };
    let (status, code, message) = match error {
        Some(error) => ("FAIL", error.code.as_str(), error.message.as_str()),
        None => ("OK", "", ""),
    };
    let keys: [&str; 8] = match style {
        EnvelopeStyle::Camel => {
            ["requestId", "status", "httpCode", "code", "message", "latency", "result", "totalCount"]
        }
        _ => ["RequestId", "Status", "HttpCode", "Code", "Message", "Latency", "Result", "TotalCount"],
    };
    let mut object = Map::new();
    object.insert(keys[0].into(), Value::from(request_id));
    object.insert(keys[1].into(), Value::from(status));
    object.insert(keys[2].into(), Value::from(http_code));
    object.insert(keys[3].into(), Value::from(code));
    object.insert(keys[4].into(), Value::from(message));
    object.insert(keys[5].into(), latency);
    if let Some(result) = reply.result {
        object.insert(keys[6].into(), result);
    }
    if let Some(total_count) = reply.total_count {
        object.insert(keys[7].into(), Value::from(total_count));
    }
    for (key, value) in reply.top_level {
        object.insert(key.into(), value);
    }
    Value::Object(object)
}
