//! Access control of every routed request after its signature is verified: the per-AccessKey
//! rate limit, the count of failed signatures per key id, and the authorization of the
//! operation against the caller's RAM policies — generic, from the operation table.
//!
//! # Which resource an operation is authorized on (decision)
//! The action is the operation's `ram_action` ([`Operation::ram_action`]). The resource is
//! derived from the route's path parameters, so every operation added to the table is covered
//! without code here:
//! - a route with `{appGroupIdentity}`: the app group's ARN **by name**,
//!   `acs:opensearch:{region}:{account}:apps/{appGroupName}` (an id in the path is resolved to
//!   the name first; an identity that names no app group is authorized as written, so a caller
//!   without access learns nothing — it gets `Forbidden.RAM` whether or not the group exists);
//! - a RAM admin route (`ram:*` action) with `{userName}`: `acs:ram::{account}:user/{userName}`;
//!   with only `{policyName}`: `acs:ram::{account}:policy/{policyName}`; the root account's
//!   key routes (`/ram/root/...`): `acs:ram::{account}:root` (and only the root passes them);
//!   otherwise `acs:ram::{account}:*` (the region is empty, as in RAM's own ARNs, so policies
//!   written `acs:ram::*:user/x` and `acs:ram:*:*:user/x` both match);
//! - any other route: `acs:opensearch:{region}:{account}:apps/*`, matched as a literal.
//!
//! ListAppGroups is the one operation that filters rather than refuses: a RAM user sees the app
//! groups on whose ARN `opensearch:ListAppGroup` is allowed, and gets `Forbidden.RAM` only when
//! that is none of them and the action is not allowed on `apps/*` either.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use trainyard_core::CoreError;
use trainyard_core::policy::{AuthorizationRequest, RequestContext, opensearch_any_arn, opensearch_app_arn};
use trainyard_core::ram::{ExplainedDecision, NamedPolicy, Principal, RamService, decide, forbidden};
use trainyard_core::service::{Caller, Service};

use crate::error::ApiError;
use crate::operation::Operation;

/// The per-AccessKey request rate: a token bucket refilled at `requests_per_second` holding at
/// most `burst` tokens. `requests_per_second` 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub requests_per_second: f64,
    pub burst: f64,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit { requests_per_second: 200.0, burst: 400.0 }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// Token buckets per AccessKey id. Only keys whose signature verified get a bucket, so the map
/// is bounded by the number of keys.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter { limit, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `access_key_id`, or says how long until one is available.
    pub fn try_acquire(&self, access_key_id: &str, now: Instant) -> Result<(), Duration> {
        let RateLimit { requests_per_second, burst } = self.limit;
        if requests_per_second <= 0.0 {
            return Ok(());
        }
        let capacity = burst.max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(access_key_id.to_string()).or_insert(Bucket { tokens: capacity, refilled_at: now });
        let elapsed = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * requests_per_second).min(capacity);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / requests_per_second))
    }
}

/// Failed signature attempts per existing AccessKey id, since this server started.
#[derive(Debug, Default)]
pub struct FailedSignatures {
    counts: Mutex<HashMap<String, u64>>,
}

impl FailedSignatures {
    /// Counts one failure and returns the new count.
    pub fn record(&self, access_key_id: &str) -> u64 {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(access_key_id.to_string()).or_insert(0);
        *count += 1;
        *count
    }

    pub fn count(&self, access_key_id: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.get(access_key_id).copied().unwrap_or(0)
    }
}

/// What access control needs, shared by every request.
pub struct AccessControl {
    pub ram: RamService,
    /// The region part of OpenSearch ARNs.
    pub region: String,
    pub limiter: RateLimiter,
    pub failed_signatures: FailedSignatures,
}

/// The caller's policies, loaded once per request (a request extension; empty for the root).
#[derive(Debug, Clone, Default)]
pub struct CallerPolicies(pub std::sync::Arc<Vec<NamedPolicy>>);

/// The facts conditions test, for a request from `source_ip` now.
pub fn request_context(source_ip: Option<IpAddr>, now_ms: i64) -> RequestContext {
    // Trainyard serves plain HTTP (TLS is terminated in front of it, where forwarded headers
    // could be forged), so acs:SecureTransport is false.
    RequestContext { source_ip, current_time: now_ms.div_euclid(1000), secure_transport: false, mfa_present: false }
}

/// The ARN an operation is authorized on (see the module documentation). An app group named in
/// the path is resolved to its name through `service`.
pub async fn resource_of(
    access: &AccessControl,
    service: &Service,
    operation: Operation,
    caller: &Caller,
    path: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let account = &caller.account_id.0;
    if let Some(identity) = path.get("appGroupIdentity") {
        let name = match service.resolve_app_group(caller, identity).await {
            Ok(app_group) => app_group.name,
            Err(CoreError::AppNotFound { .. } | CoreError::InvalidParameter { .. }) => identity.clone(),
            Err(other) => return Err(other.into()),
        };
        return Ok(opensearch_app_arn(&access.region, account, &name));
    }
    if operation.ram_action().starts_with("ram:") {
        if let Some(user_name) = path.get("userName") {
            return Ok(format!("acs:ram::{account}:user/{user_name}"));
        }
        if let Some(policy_name) = path.get("policyName") {
            return Ok(format!("acs:ram::{account}:policy/{policy_name}"));
        }
        if operation.path().starts_with("/v4/openapi/ram/root/") {
            return Ok(format!("acs:ram::{account}:root"));
        }
        return Ok(format!("acs:ram::{account}:*"));
    }
    Ok(opensearch_any_arn(&access.region, account))
}

/// Decides `action` on `resource` for the caller.
pub fn decide_for(
    caller: &Caller,
    policies: &[NamedPolicy],
    action: &str,
    resource: &str,
    context: RequestContext,
) -> ExplainedDecision {
    decide(&caller.principal, policies, &AuthorizationRequest { action, resource, context })
}

/// Authorizes `operation` for the caller, or answers `Forbidden.RAM` naming action and resource.
pub async fn authorize(
    access: &AccessControl,
    service: &Service,
    operation: Operation,
    caller: &Caller,
    policies: &[NamedPolicy],
    path: &HashMap<String, String>,
    context: RequestContext,
) -> Result<(), ApiError> {
    if caller.principal == Principal::Root {
        return Ok(());
    }
    if operation == Operation::ListAppGroups {
        // Filtered by the handler instead (see the module documentation).
        return Ok(());
    }
    let resource = resource_of(access, service, operation, caller, path).await?;
    let action = operation.ram_action();
    let decision = decide_for(caller, policies, action, &resource, context);
    if decision.is_allowed() {
        return Ok(());
    }
    tracing::info!(
        access_key_id = %caller.access_key_id,
        principal = ?caller.principal,
        action,
        resource = %resource,
        deciding = ?decision.deciding,
        "request refused by RAM policy"
    );
    Err(forbidden(&decision, action, &resource).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let limiter = RateLimiter::new(RateLimit { requests_per_second: 2.0, burst: 3.0 });
        let start = Instant::now();
        for _ in 0..3 {
            limiter.try_acquire("k", start).unwrap();
        }
        let wait = limiter.try_acquire("k", start).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        // Another key has its own bucket.
        limiter.try_acquire("other", start).unwrap();
        // Half a second refills one token.
        limiter.try_acquire("k", start + Duration::from_millis(500)).unwrap();
        assert!(limiter.try_acquire("k", start + Duration::from_millis(500)).is_err());
        // Never more than the burst.
        let later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            limiter.try_acquire("k", later).unwrap();
        }
        assert!(limiter.try_acquire("k", later).is_err());
    }

    #[test]
    fn a_zero_rate_turns_the_limit_off() {
        let limiter = RateLimiter::new(RateLimit { requests_per_second: 0.0, burst: 0.0 });
        for _ in 0..1000 {
            limiter.try_acquire("k", Instant::now()).unwrap();
        }
    }

    #[test]
    fn failed_signatures_are_counted_per_key() {
        let failures = FailedSignatures::default();
        assert_eq!(failures.record("a"), 1);
        assert_eq!(failures.record("a"), 2);
        assert_eq!(failures.count("a"), 2);
        assert_eq!(failures.count("b"), 0);
    }
}
