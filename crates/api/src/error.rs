//! Errors of the HTTP layer: authentication, request shape, and the domain's own errors passed
//! through. Each maps to one [`ErrorCode`] (code + HTTP status).

use axum::response::{IntoResponse, Response};
use trainyard_core::{CoreError, ErrorCode};
use trainyard_serve::ServeError;

use crate::signature::SignatureError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error(
        "specified time stamp or date value is expired: {header} is {skew_seconds} s away from the server time (the limit is {limit_seconds} s)"
    )]
    TimeStampExpired { header: &'static str, skew_seconds: i64, limit_seconds: i64 },
    #[error("The {header} header \"{value}\" is not a valid time ({expected}).")]
    TimeStampFormat { header: &'static str, value: String, expected: &'static str },
    #[error("Specified access key is disabled: {0}.")]
    AccessKeyInactive(String),
    #[error("Request was denied due to request throttling (per-AccessKey rate limit); retry after {} ms.", retry_after.as_millis().max(1))]
    Throttled { retry_after: std::time::Duration },
    #[error("Specified signature nonce was used already.")]
    SignatureNonceUsed,
    #[error("The signature nonce must be 1 to {max} visible ASCII characters.")]
    SignatureNonceInvalid { max: usize },
    #[error("The x-acs-version \"{0}\" is not supported; use 2017-12-25.")]
    InvalidVersion(String),
    #[error("The x-acs-action \"{sent}\" does not match the operation {expected} of this path.")]
    InvalidAction { sent: String, expected: &'static str },
    #[error("The request body is larger than {limit_bytes} bytes.")]
    BodyTooLarge { limit_bytes: usize },
    #[error("The request body could not be read: {0}.")]
    BodyUnreadable(String),
    #[error("No operation is served at {method} {path}.")]
    RouteNotFound { method: String, path: String },
    #[error("The method {method} is not allowed here.")]
    MethodNotAllowed { method: String },
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Core(error) => error.code(),
            ApiError::Serve(error) => error.code(),
            ApiError::Signature(error) => match error {
                SignatureError::MissingAuthorization
                | SignatureError::MalformedAuthorization(_)
                | SignatureError::RequiredHeaderNotSigned(_)
                | SignatureError::SignedHeaderMissing(_)
                | SignatureError::RequiredHeaderMissing(_) => ErrorCode::IncompleteSignature,
                SignatureError::DuplicateQueryParameter(_) => ErrorCode::InvalidParameter,
                SignatureError::UnknownAccessKey(_) => ErrorCode::InvalidAccessKeyIdNotFound,
                SignatureError::ContentSha256Mismatch | SignatureError::Mismatch => ErrorCode::SignatureDoesNotMatch,
            },
            ApiError::TimeStampExpired { .. } => ErrorCode::InvalidTimeStampExpired,
            ApiError::TimeStampFormat { .. } => ErrorCode::InvalidTimeStampFormat,
            ApiError::AccessKeyInactive(_) => ErrorCode::InvalidAccessKeyIdInactive,
            ApiError::Throttled { .. } => ErrorCode::ThrottlingUser,
            ApiError::SignatureNonceUsed => ErrorCode::SignatureNonceUsed,
            ApiError::SignatureNonceInvalid { .. } => ErrorCode::IncompleteSignature,
            ApiError::InvalidVersion(_) => ErrorCode::InvalidVersion,
            ApiError::InvalidAction { .. } => ErrorCode::InvalidAction,
            ApiError::BodyTooLarge { .. } => ErrorCode::RequestBodyTooLarge,
            ApiError::BodyUnreadable(_) => ErrorCode::InvalidParameter,
            ApiError::RouteNotFound { .. } => ErrorCode::RouteNotFound,
            ApiError::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
        }
    }

    /// Shorthand for a refused field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::Core(CoreError::invalid(field, reason))
    }

    /// The message sent to the caller. Storage failures keep their detail in the server log.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// The error as it travels from a handler to the envelope writer (a response extension).
#[derive(Debug, Clone)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = http::StatusCode::from_u16(code.http_status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        if let ApiError::Throttled { retry_after } = &self {
            // Retry-After in whole seconds (HTTP); x-acs-retry-after in milliseconds, which the
            // SDK turns into its ThrottlingException with retry_after.
            let milliseconds = retry_after.as_millis().max(1);
            let seconds = milliseconds.div_ceil(1000);
            let headers = response.headers_mut();
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds as u64));
            headers.insert("x-acs-retry-after", http::HeaderValue::from(milliseconds as u64));
        }
        response.extensions_mut().insert(ErrorReply { code, message: self.message() });
        response
    }
}
