//! Authentication and authorization of every routed request: read the body (bounded), find the
//! claimed AccessKey (a bootstrap root key or a RAM user's, from the store), verify the
//! signature (a mismatch for an existing key is counted and logged with the key id), refuse an
//! inactive key, take a token from the key's rate limit, check the operation headers, the clock
//! and the nonce, then authorize the operation against the caller's policies
//! ([`crate::access`]) and attach the [`Caller`] — before any handler runs. Only this module
//! creates a `Caller` for a request.
//!
//! Order matters: the signature is verified before the clock and the nonce are checked, so an
//! unsigned or forged request can neither learn anything about timing nor burn a nonce.

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDateTime;
use http::header;

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use secrecy::{ExposeSecret, SecretString};
use trainyard_core::ram::{AccessKeyStatus, Principal};
use trainyard_core::service::Caller;

use crate::AppState;
use crate::access::{CallerPolicies, authorize, request_context};
use crate::error::ApiError;
use crate::operation::Operation;
use crate::signature::{
    SignatureError, SignatureScheme, VerifiedSignature, WireRequest, parse_authorization, verify_signature,
};

/// The only API version served.
pub const API_VERSION: &str = "2017-12-25";
/// The longest signature nonce accepted.
pub const MAX_NONCE_LENGTH: usize = 64;

/// Authenticates a request routed to `operation` and hands it on with the caller attached.
pub async fn authenticate(
    State(state): State<AppState>,
    matched_path: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    let Some(operation) = Operation::from_route(request.method(), matched_path.as_str()) else {
        // The router only holds operations of the table, so this cannot happen; answer safely.
        return ApiError::RouteNotFound {
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
        }
        .into_response();
    };
    let mut response = match authenticated_request(&state, operation, request).await {
        Ok(request) => next.run(request).await,
        Err(error) => {
            if let ApiError::Signature(signature_error) = &error {
                tracing::warn!(operation = operation.name(), reason = %signature_error, "request refused by signature check");
            }
            error.into_response()
        }
    };
    response.extensions_mut().insert(operation);
    response
}

/// The longest AccessKey id looked up in the store; a longer one is unknown without a query.
const MAX_ACCESS_KEY_ID_LENGTH: usize = 128;

/// An AccessKey found for the id a request claims, before its signature is checked.
struct ClaimedKey {
    access_key_id: String,
    secret: SecretString,
    account_id: trainyard_core::model::AccountId,
    principal: Principal,
    status: AccessKeyStatus,
}

/// Finds the key a request claims to be signed with: a bootstrap root key, else a RAM user's.
async fn claimed_key(state: &AppState, headers: &http::HeaderMap) -> Result<Option<ClaimedKey>, ApiError> {
    let Some(authorization) = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()) else {
        return Ok(None);
    };
    let Ok(parsed) = parse_authorization(authorization) else {
        return Ok(None);
    };
    let access_key_id = parsed.access_key_id;
    if let Some(caller) = state.credentials.caller_of(&access_key_id) {
        let secret = state.credentials.secret_of(&access_key_id).unwrap_or_default();
        return Ok(Some(ClaimedKey {
            access_key_id,
            secret: SecretString::from(secret),
            account_id: caller.account_id,
            principal: caller.principal,
            status: AccessKeyStatus::Active,
        }));
    }
    if access_key_id.len() > MAX_ACCESS_KEY_ID_LENGTH {
        return Ok(None);
    }
    let Some(resolved) = state.access.ram.resolve_access_key(&access_key_id).await? else {
        return Ok(None);
    };
    Ok(Some(ClaimedKey {
        access_key_id,
        secret: SecretString::from(resolved.access_key_secret),
        account_id: resolved.account_id,
        principal: resolved.principal,
        status: resolved.status,
    }))
}

async fn authenticated_request(state: &AppState, operation: Operation, request: Request) -> Result<Request, ApiError> {
    let limit_bytes = state.config.max_body_bytes;
    let declared_length =
        request.headers().get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared_length.is_some_and(|length| length > limit_bytes) {
        return Err(ApiError::BodyTooLarge { limit_bytes });
    }
    let source_ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let (mut parts, body) = request.into_parts();
    let body_bytes: Bytes = axum::body::to_bytes(body, limit_bytes).await.map_err(|error| {
        let too_large = std::iter::successors(Some(&error as &dyn std::error::Error), |source| source.source())
            .any(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large { ApiError::BodyTooLarge { limit_bytes } } else { ApiError::BodyUnreadable(error.to_string()) }
    })?;
    let wire = WireRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body_bytes,
    };
    let claimed = claimed_key(state, &parts.headers).await?;
    let verified = verify_signature(&wire, |access_key_id| {
        claimed
            .as_ref()
            .filter(|key| key.access_key_id == access_key_id)
            .map(|key| key.secret.expose_secret().to_string())
    });
    let verified = match verified {
        Ok(verified) => verified,
        Err(error) => {
            if let (Some(key), SignatureError::Mismatch | SignatureError::ContentSha256Mismatch) = (&claimed, &error) {
                // The id is logged and counted; the secret and the signatures never are.
                let failures = state.access.failed_signatures.record(&key.access_key_id);
                tracing::warn!(
                    access_key_id = %key.access_key_id,
                    failed_signatures = failures,
                    operation = operation.name(),
                    "signature mismatch for an existing AccessKey"
                );
            }
            return Err(error.into());
        }
    };
    let Some(key) = claimed else {
        return Err(SignatureError::UnknownAccessKey(verified.access_key_id).into());
    };
    if key.status != AccessKeyStatus::Active {
        return Err(ApiError::AccessKeyInactive(key.access_key_id));
    }
    if let Err(wait) = state.access.limiter.try_acquire(&key.access_key_id, std::time::Instant::now()) {
        return Err(ApiError::Throttled { retry_after: wait });
    }
    check_operation_headers(&parts.headers, operation)?;
    let now_ms = state.service.clock().now_ms();
    check_clock(&verified, now_ms, state.config.max_clock_skew_seconds)?;
    remember_nonce(state, &verified, now_ms).await?;
    let caller = Caller { account_id: key.account_id, principal: key.principal, access_key_id: key.access_key_id };
    let policies = state.access.ram.policies_of(&caller.account_id, &caller.principal).await?;
    let path = crate::call::decoded_path_params(&mut parts, state).await?;
    let context = request_context(source_ip, now_ms);
    authorize(&state.access, &state.service, operation, &caller, &policies, &path, context).await?;
    parts.extensions.insert(caller);
    parts.extensions.insert(operation);
    parts.extensions.insert(CallerPolicies(std::sync::Arc::new(policies)));
    parts.extensions.insert(context);
    Ok(Request::from_parts(parts, Body::from(body_bytes)))
}

fn check_operation_headers(headers: &http::HeaderMap, operation: Operation) -> Result<(), ApiError> {
    let header_text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("").to_string();
    let version = header_text("x-acs-version");
    if version != API_VERSION {
        return Err(ApiError::InvalidVersion(version));
    }
    let action = header_text("x-acs-action");
    if action != operation.name() {
        return Err(ApiError::InvalidAction { sent: action, expected: operation.name() });
    }
    Ok(())
}

/// Parses the signed date of either scheme into epoch milliseconds.
fn signed_time_ms(verified: &VerifiedSignature) -> Result<i64, ApiError> {
    match verified.scheme {
        SignatureScheme::Acs3HmacSha256 => NaiveDateTime::parse_from_str(&verified.signed_date, "%Y-%m-%dT%H:%M:%SZ")
            .map(|time| time.and_utc().timestamp_millis())
            .map_err(|_| ApiError::TimeStampFormat {
                header: "x-acs-date",
                value: trainyard_core::names::printable(&verified.signed_date),
                expected: "UTC yyyy-MM-ddTHH:mm:ssZ",
            }),
        SignatureScheme::LegacyHmacSha1 => httpdate::parse_http_date(&verified.signed_date)
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since_epoch| since_epoch.as_millis() as i64)
            .ok_or_else(|| ApiError::TimeStampFormat {
                header: "date",
                value: trainyard_core::names::printable(&verified.signed_date),
                expected: "RFC 1123, e.g. Sun, 29 Nov 2026 08:49:39 GMT",
            }),
    }
}

fn check_clock(verified: &VerifiedSignature, now_ms: i64, max_skew_seconds: i64) -> Result<(), ApiError> {
    let signed_ms = signed_time_ms(verified)?;
    let skew_ms = (now_ms - signed_ms).abs();
    if skew_ms > max_skew_seconds * 1000 {
        let header = match verified.scheme {
            SignatureScheme::Acs3HmacSha256 => "x-acs-date",
            SignatureScheme::LegacyHmacSha1 => "date",
        };
        return Err(ApiError::TimeStampExpired {
            header,
            skew_seconds: skew_ms / 1000,
            limit_seconds: max_skew_seconds,
        });
    }
    Ok(())
}

async fn remember_nonce(state: &AppState, verified: &VerifiedSignature, now_ms: i64) -> Result<(), ApiError> {
    let nonce = &verified.nonce;
    let well_formed = nonce.len() <= MAX_NONCE_LENGTH && nonce.bytes().all(|byte| byte.is_ascii_graphic());
    if !well_formed {
        return Err(ApiError::SignatureNonceInvalid { max: MAX_NONCE_LENGTH });
    }
    // A nonce must outlive every date that can still pass the clock check: the request may be
    // dated up to the skew ahead, and replayed until the skew after that.
    let expires_ms = now_ms + 2 * state.config.max_clock_skew_seconds * 1000 + 60_000;
    let fresh = state
        .service
        .store()
        .remember_signature_nonce(&verified.access_key_id, nonce, now_ms, expires_ms)
        .await
        .map_err(ApiError::from)?;
    if !fresh {
        return Err(ApiError::SignatureNonceUsed);
    }
    Ok(())
}
