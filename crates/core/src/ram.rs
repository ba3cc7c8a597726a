//! RAM identities: users of an account, their AccessKeys, the policies attached to them — and
//! the decision whether a caller may do an action on a resource.
//!
//! # Identities (decision)
//! Trainyard has **one account**, the root account (`root`), whose bootstrap AccessKey comes from
//! the environment or the data dir's key file (`trainyard` crate, `keys`). The root account may
//! also hold keys in the store (rotatable through the admin API), and so may each RAM user of
//! the account: up to [`MAX_ACCESS_KEYS_PER_USER`] each (RAM's limit, which also makes rotation
//! the only way to a new key: create the second, move callers, delete the first).
//! The root account is allowed everything and needs no policy; a user is allowed only what an
//! attached policy allows ([`crate::policy::evaluate`]).
//!
//! # Secrets at rest (decision)
//! The HMAC signature schemes need the **plaintext** secret to verify a request, so a secret
//! cannot be hashed. It is sealed instead with ChaCha20-Poly1305 under a 256-bit master key that
//! is not in the database ([`SecretSealer`]; the binary keeps it in a 0600 file in the data dir or
//! takes it from the environment). The AccessKey id is the associated data, so a sealed secret
//! copied onto another key's row does not open. What this protects against: a leaked database
//! (a backup, a PostgreSQL dump, a replica) yields no usable secret. What it does not: an attacker
//! who reads both the database and the master key, or the memory of a running server.
//! Secrets are shown once, by CreateAccessKey, and never logged ([`secrecy::SecretString`] in
//! the binary; here the plaintext only travels in [`CreatedAccessKey`]).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::clock::Clock;
use crate::error::CoreError;
use crate::model::{AccountId, Millis};
use crate::names::printable;
use crate::policy::{AuthorizationRequest, Decision, DecisionEffect, Policy, RequestContext, evaluate};

/// The most AccessKeys a RAM user may hold at once (RAM's limit).
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;
/// The longest RAM user or policy name (RAM's limits: 64 and 128; one rule keeps it simple).
pub const MAX_RAM_NAME_LENGTH: usize = 64;
/// The rule for user and policy names, as shown in messages.
pub const RAM_NAME_RULE: &str = "1-64 characters: ASCII letters, digits, '.', '_', '@' and '-'";
/// The longest display name, description or comment.
pub const MAX_RAM_TEXT_LENGTH: usize = 1024;

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The account itself: allowed everything.
    Root,
    /// A RAM user of the account, by name.
    User(String),
}

/// A RAM user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamUser {
    pub account_id: AccountId,
    pub user_name: String,
    pub display_name: String,
    pub comments: String,
    pub created_ms: Millis,
}

/// Whether an AccessKey may sign requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessKeyStatus {
    Active,
    Inactive,
}

impl AccessKeyStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            AccessKeyStatus::Active => "Active",
            AccessKeyStatus::Inactive => "Inactive",
        }
    }

    /// `Active` or `Inactive`, as RAM spells them; the error names `field`.
    pub fn parse(field: &str, text: &str) -> Result<AccessKeyStatus, CoreError> {
        match text {
            "Active" => Ok(AccessKeyStatus::Active),
            "Inactive" => Ok(AccessKeyStatus::Inactive),
            "" => Err(CoreError::MissingParameter { field: field.to_string() }),
            other => Err(CoreError::invalid(field, format!("\"{}\" is not Active or Inactive", printable(other)))),
        }
    }
}

/// An AccessKey as stored: the secret sealed (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccessKey {
    pub access_key_id: String,
    pub account_id: AccountId,
    /// The root account (its rotatable keys, besides the bootstrap key) or a RAM user.
    pub owner: Principal,
    pub status: AccessKeyStatus,
    /// `v1:` + hex(nonce ‖ ciphertext ‖ tag); opened by [`SecretSealer::open`].
    pub sealed_secret: String,
    pub created_ms: Millis,
}

/// A new AccessKey: the only time its secret is shown.
pub struct CreatedAccessKey {
    pub key: StoredAccessKey,
    pub access_key_secret: String,
}

impl fmt::Debug for CreatedAccessKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CreatedAccessKey")
            .field("key", &self.key)
            .field("access_key_secret", &"[redacted]")
            .finish()
    }
}

/// A policy as stored: its document in canonical form (see [`Policy::to_canonical_json`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub account_id: AccountId,
    pub policy_name: String,
    pub description: String,
    pub document: String,
    pub created_ms: Millis,
}

/// A policy with its name, ready to evaluate.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    pub policy_name: String,
    pub policy: Policy,
}

/// The port RAM data is kept behind; `trainyard-store` implements it on SQLite and PostgreSQL.
/// Every method is one atomic step.
#[async_trait]
pub trait RamStore: Send + Sync + 'static {
    /// `UserAlreadyExist` when the account has a user of that name.
    async fn insert_user(&self, user: RamUser) -> Result<RamUser, CoreError>;
    async fn find_user(&self, account_id: &AccountId, user_name: &str) -> Result<Option<RamUser>, CoreError>;
    /// By name.
    async fn list_users(&self, account_id: &AccountId) -> Result<Vec<RamUser>, CoreError>;
    /// Deletes the user with its AccessKeys and policy attachments. False when it did not exist.
    async fn delete_user(&self, account_id: &AccountId, user_name: &str) -> Result<bool, CoreError>;
    /// `UserNotExist` when the owning user is gone; `AccessKeyLimitExceeded` when the owner
    /// already has `limit` keys (checked and inserted atomically).
    async fn insert_access_key(&self, key: StoredAccessKey, limit: usize) -> Result<(), CoreError>;
    /// Any account's key, by id (authentication looks keys up before it knows the account).
    async fn find_access_key(&self, access_key_id: &str) -> Result<Option<StoredAccessKey>, CoreError>;
    /// An owner's keys, oldest first.
    async fn list_access_keys(
        &self,
        account_id: &AccountId,
        owner: &Principal,
    ) -> Result<Vec<StoredAccessKey>, CoreError>;
    /// False when the owner has no such key.
    async fn set_access_key_status(
        &self,
        account_id: &AccountId,
        owner: &Principal,
        access_key_id: &str,
        status: AccessKeyStatus,
    ) -> Result<bool, CoreError>;
    /// False when the owner has no such key.
    async fn delete_access_key(
        &self,
        account_id: &AccountId,
        owner: &Principal,
        access_key_id: &str,
    ) -> Result<bool, CoreError>;
    /// `PolicyAlreadyExist` when the account has a policy of that name.
    async fn insert_policy(&self, policy: StoredPolicy) -> Result<StoredPolicy, CoreError>;
    async fn find_policy(&self, account_id: &AccountId, policy_name: &str) -> Result<Option<StoredPolicy>, CoreError>;
    /// By name.
    async fn list_policies(&self, account_id: &AccountId) -> Result<Vec<StoredPolicy>, CoreError>;
    /// `PolicyInUse` while attached to a user. False when it did not exist.
    async fn delete_policy(&self, account_id: &AccountId, policy_name: &str) -> Result<bool, CoreError>;
    /// `UserNotExist` / `PolicyNotExist`; attaching twice is not an error (false the second time).
    async fn attach_policy(
        &self,
        account_id: &AccountId,
        user_name: &str,
        policy_name: &str,
        now_ms: Millis,
    ) -> Result<bool, CoreError>;
    /// False when the policy was not attached.
    async fn detach_policy(
        &self,
        account_id: &AccountId,
        user_name: &str,
        policy_name: &str,
    ) -> Result<bool, CoreError>;
    /// The policies attached to a user, in the order they were attached.
    async fn policies_of_user(&self, account_id: &AccountId, user_name: &str) -> Result<Vec<StoredPolicy>, CoreError>;
}

// ---------------------------------------------------------------------------------------------
// Sealing secrets
// ---------------------------------------------------------------------------------------------

/// The length of a master key, in bytes.
pub const MASTER_KEY_BYTES: usize = 32;
const SEALED_PREFIX: &str = "v1:";
const NONCE_BYTES: usize = 12;

/// Seals and opens AccessKey secrets with ChaCha20-Poly1305 under a master key; the AccessKey id
/// is the associated data.
#[derive(Clone)]
pub struct SecretSealer {
    cipher: ChaCha20Poly1305,
}

impl fmt::Debug for SecretSealer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SecretSealer([redacted])")
    }
}

impl SecretSealer {
    pub fn new(master_key: &[u8; MASTER_KEY_BYTES]) -> SecretSealer {
        SecretSealer { cipher: ChaCha20Poly1305::new(&Key::from(*master_key)) }
    }

    /// A fresh random master key.
    pub fn generate_master_key() -> [u8; MASTER_KEY_BYTES] {
        let mut key = [0u8; MASTER_KEY_BYTES];
        getrandom::fill(&mut key).expect("the operating system provides randomness");
        key
    }

    pub fn seal(&self, access_key_id: &str, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the operating system provides randomness");
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: secret.as_bytes(), aad: access_key_id.as_bytes() })
            .expect("ChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut sealed = String::with_capacity(SEALED_PREFIX.len() + 2 * (NONCE_BYTES + ciphertext.len()));
        sealed.push_str(SEALED_PREFIX);
        for byte in nonce.iter().chain(&ciphertext) {
            sealed.push_str(&format!("{byte:02x}"));
        }
        sealed
    }

    /// The secret, or `None` when `sealed` was not sealed for this id under this master key.
    pub fn open(&self, access_key_id: &str, sealed: &str) -> Option<String> {
        let hex = sealed.strip_prefix(SEALED_PREFIX)?;
        if hex.len() % 2 != 0 || hex.len() < 2 * NONCE_BYTES {
            return None;
        }
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|index| u8::from_str_radix(hex.get(index..index + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
        let plaintext = self
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: access_key_id.as_bytes() })
            .ok()?;
        String::from_utf8(plaintext).ok()
    }
}

/// Random text from `alphabet`, every character equally likely.
pub fn random_text(length: usize, alphabet: &[u8]) -> String {
    let limit = 256 - (256 % alphabet.len());
    let mut text = String::with_capacity(length);
    let mut pool = [0u8; 64];
    while text.len() < length {
        getrandom::fill(&mut pool).expect("the operating system provides randomness");
        for byte in pool {
            if text.len() < length && (byte as usize) < limit {
                text.push(alphabet[byte as usize % alphabet.len()] as char);
            }
        }
    }
    text
}

/// A new AccessKey id: `LTAI` (upstream's prefix, which SDK tooling recognises) + 20 characters.
pub fn new_access_key_id() -> String {
    format!("LTAI{}", random_text(20, b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"))
}

/// A new AccessKey secret: 30 characters of letters and digits (upstream's length).
pub fn new_access_key_secret() -> String {
    random_text(30, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Checks a user or policy name against [`RAM_NAME_RULE`]; the error names `field`.
pub fn validate_ram_name(field: &str, value: &str) -> Result<(), CoreError> {
    if value.is_empty() {
        return Err(CoreError::MissingParameter { field: field.to_string() });
    }
    let well_formed = value.len() <= MAX_RAM_NAME_LENGTH
        && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'@' | b'-'));
    if !well_formed {
        return Err(CoreError::invalid(
            field,
            format!("\"{}\" does not follow the rule: {RAM_NAME_RULE}", printable(value)),
        ));
    }
    Ok(())
}

fn validate_text(field: &str, value: &str) -> Result<(), CoreError> {
    if value.chars().count() > MAX_RAM_TEXT_LENGTH {
        return Err(CoreError::invalid(field, format!("is longer than {MAX_RAM_TEXT_LENGTH} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(CoreError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/// The RAM operations of the admin API and the authorization of every request.
#[derive(Clone)]
pub struct RamService {
    store: Arc<dyn RamStore>,
    sealer: SecretSealer,
    clock: Arc<dyn Clock>,
}

/// An AccessKey that authentication found: who it stands for and its secret.
pub struct ResolvedAccessKey {
    pub account_id: AccountId,
    pub principal: Principal,
    pub status: AccessKeyStatus,
    pub access_key_secret: String,
}

impl fmt::Debug for ResolvedAccessKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ResolvedAccessKey")
            .field("account_id", &self.account_id)
            .field("principal", &self.principal)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A decision with the name of the policy whose statement decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainedDecision {
    pub effect: DecisionEffect,
    /// (policy name, statement index from 0); none for the root account or an implicit deny.
    pub deciding: Option<(String, usize)>,
}

impl ExplainedDecision {
    pub fn is_allowed(&self) -> bool {
        self.effect == DecisionEffect::Allowed
    }
}

/// How an owner is named in messages: `RAM user "alice"` or `the root account`.
pub fn owner_name(owner: &Principal) -> String {
    match owner {
        Principal::Root => "the root account".to_string(),
        Principal::User(user_name) => format!("RAM user \"{user_name}\""),
    }
}

/// Evaluates `request` for a principal whose policies are `policies`: the root account is
/// allowed everything; a user by its policies.
pub fn decide(
    principal: &Principal,
    policies: &[NamedPolicy],
    request: &AuthorizationRequest<'_>,
) -> ExplainedDecision {
    if *principal == Principal::Root {
        return ExplainedDecision { effect: DecisionEffect::Allowed, deciding: None };
    }
    let compiled: Vec<Policy> = policies.iter().map(|named| named.policy.clone()).collect();
    let Decision { effect, deciding } = evaluate(&compiled, request);
    ExplainedDecision {
        effect,
        deciding: deciding
            .map(|reference| (policies[reference.policy_index].policy_name.clone(), reference.statement_index)),
    }
}

/// The refusal of a decision that does not allow.
pub fn forbidden(decision: &ExplainedDecision, action: &str, resource: &str) -> CoreError {
    let reason = match decision.effect {
        DecisionEffect::ExplicitDeny => "an attached policy explicitly denies it",
        _ => "no attached policy allows it",
    };
    CoreError::ForbiddenRam { action: action.to_string(), resource: resource.to_string(), reason: reason.to_string() }
}

impl RamService {
    pub fn new(store: Arc<dyn RamStore>, sealer: SecretSealer, clock: Arc<dyn Clock>) -> RamService {
        RamService { store, sealer, clock }
    }

    /// The key with this id, for authentication: `None` when unknown (or its secret does not
    /// open under this master key, which is logged: the master key changed).
    pub async fn resolve_access_key(&self, access_key_id: &str) -> Result<Option<ResolvedAccessKey>, CoreError> {
        let Some(stored) = self.store.find_access_key(access_key_id).await? else {
            return Ok(None);
        };
        let Some(secret) = self.sealer.open(&stored.access_key_id, &stored.sealed_secret) else {
            tracing::error!(
                access_key_id = %printable(access_key_id),
                "the secret of this AccessKey does not open under the current master key; the key is treated as unknown"
            );
            return Ok(None);
        };
        Ok(Some(ResolvedAccessKey {
            account_id: stored.account_id,
            principal: stored.owner,
            status: stored.status,
            access_key_secret: secret,
        }))
    }

    /// The compiled policies of a principal (none for the root account).
    pub async fn policies_of(
        &self,
        account_id: &AccountId,
        principal: &Principal,
    ) -> Result<Vec<NamedPolicy>, CoreError> {
        let Principal::User(user_name) = principal else {
            return Ok(Vec::new());
        };
        let stored = self.store.policies_of_user(account_id, user_name).await?;
        stored
            .into_iter()
            .map(|policy| {
                // Stored documents passed validation; one that no longer parses is storage damage.
                let compiled = Policy::parse(&policy.document).map_err(|error| CoreError::StorageFailure {
                    message: format!("stored policy {} no longer parses: {error}", policy.policy_name),
                })?;
                Ok(NamedPolicy { policy_name: policy.policy_name, policy: compiled })
            })
            .collect()
    }

    // ---- users ----

    pub async fn create_user(
        &self,
        account_id: &AccountId,
        user_name: &str,
        display_name: Option<String>,
        comments: Option<String>,
    ) -> Result<RamUser, CoreError> {
        validate_ram_name("userName", user_name)?;
        let display_name = display_name.unwrap_or_else(|| user_name.to_string());
        validate_text("displayName", &display_name)?;
        let comments = comments.unwrap_or_default();
        validate_text("comments", &comments)?;
        self.store
            .insert_user(RamUser {
                account_id: account_id.clone(),
                user_name: user_name.to_string(),
                display_name,
                comments,
                created_ms: self.clock.now_ms(),
            })
            .await
    }

    pub async fn get_user(&self, account_id: &AccountId, user_name: &str) -> Result<RamUser, CoreError> {
        validate_ram_name("userName", user_name)?;
        self.store
            .find_user(account_id, user_name)
            .await?
            .ok_or_else(|| CoreError::UserNotExist { user_name: user_name.to_string() })
    }

    pub async fn list_users(&self, account_id: &AccountId) -> Result<Vec<RamUser>, CoreError> {
        self.store.list_users(account_id).await
    }

    pub async fn delete_user(&self, account_id: &AccountId, user_name: &str) -> Result<(), CoreError> {
        validate_ram_name("userName", user_name)?;
        if !self.store.delete_user(account_id, user_name).await? {
            return Err(CoreError::UserNotExist { user_name: user_name.to_string() });
        }
        Ok(())
    }

    // ---- AccessKeys ----

    /// Checks that the owner exists (the root account always does).
    async fn check_owner(&self, account_id: &AccountId, owner: &Principal) -> Result<(), CoreError> {
        if let Principal::User(user_name) = owner {
            self.get_user(account_id, user_name).await?;
        }
        Ok(())
    }

    fn key_not_found(owner: &Principal, access_key_id: &str) -> CoreError {
        CoreError::AccessKeyNotExist { owner: owner_name(owner), access_key_id: printable(access_key_id) }
    }

    /// A new Active key for the root account or a user; the only time its secret is shown.
    pub async fn create_access_key(
        &self,
        account_id: &AccountId,
        owner: &Principal,
    ) -> Result<CreatedAccessKey, CoreError> {
        if let Principal::User(user_name) = owner {
            validate_ram_name("userName", user_name)?;
        }
        let access_key_id = new_access_key_id();
        let secret = new_access_key_secret();
        let key = StoredAccessKey {
            sealed_secret: self.sealer.seal(&access_key_id, &secret),
            access_key_id,
            account_id: account_id.clone(),
            owner: owner.clone(),
            status: AccessKeyStatus::Active,
            created_ms: self.clock.now_ms(),
        };
        self.store.insert_access_key(key.clone(), MAX_ACCESS_KEYS_PER_USER).await?;
        Ok(CreatedAccessKey { key, access_key_secret: secret })
    }

    pub async fn list_access_keys(
        &self,
        account_id: &AccountId,
        owner: &Principal,
    ) -> Result<Vec<StoredAccessKey>, CoreError> {
        self.check_owner(account_id, owner).await?;
        self.store.list_access_keys(account_id, owner).await
    }

    pub async fn update_access_key(
        &self,
        account_id: &AccountId,
        owner: &Principal,
        access_key_id: &str,
        status: AccessKeyStatus,
    ) -> Result<(), CoreError> {
        self.check_owner(account_id, owner).await?;
        if !self.store.set_access_key_status(account_id, owner, access_key_id, status).await? {
            return Err(Self::key_not_found(owner, access_key_id));
        }
        Ok(())
    }

    pub async fn delete_access_key(
        &self,
        account_id: &AccountId,
        owner: &Principal,
        access_key_id: &str,
    ) -> Result<(), CoreError> {
        self.check_owner(account_id, owner).await?;
        if !self.store.delete_access_key(account_id, owner, access_key_id).await? {
            return Err(Self::key_not_found(owner, access_key_id));
        }
        Ok(())
    }

    // ---- policies ----

    /// Validates the document (a malformed one is refused naming `policyDocument.<path>` and the
    /// rule) and stores its canonical form.
    pub async fn create_policy(
        &self,
        account_id: &AccountId,
        policy_name: &str,
        policy_document: Option<&str>,
        description: Option<String>,
    ) -> Result<StoredPolicy, CoreError> {
        validate_ram_name("policyName", policy_name)?;
        let document = policy_document
            .filter(|document| !document.is_empty())
            .ok_or(CoreError::MissingParameter { field: "policyDocument".into() })?;
        let policy = Policy::parse(document).map_err(|error| error.into_core_error("policyDocument"))?;
        let description = description.unwrap_or_default();
        validate_text("description", &description)?;
        self.store
            .insert_policy(StoredPolicy {
                account_id: account_id.clone(),
                policy_name: policy_name.to_string(),
                description,
                document: policy.to_canonical_json(),
                created_ms: self.clock.now_ms(),
            })
            .await
    }

    pub async fn get_policy(&self, account_id: &AccountId, policy_name: &str) -> Result<StoredPolicy, CoreError> {
        validate_ram_name("policyName", policy_name)?;
        self.store
            .find_policy(account_id, policy_name)
            .await?
            .ok_or_else(|| CoreError::PolicyNotExist { policy_name: policy_name.to_string() })
    }

    pub async fn list_policies(&self, account_id: &AccountId) -> Result<Vec<StoredPolicy>, CoreError> {
        self.store.list_policies(account_id).await
    }

    pub async fn delete_policy(&self, account_id: &AccountId, policy_name: &str) -> Result<(), CoreError> {
        validate_ram_name("policyName", policy_name)?;
        if !self.store.delete_policy(account_id, policy_name).await? {
            return Err(CoreError::PolicyNotExist { policy_name: policy_name.to_string() });
        }
        Ok(())
    }

    /// Attaches a stored policy; its document is validated again first, so that a policy
    /// stored by an older release with laxer rules is refused here rather than evaluated.
    pub async fn attach_policy_to_user(
        &self,
        account_id: &AccountId,
        user_name: &str,
        policy_name: &str,
    ) -> Result<(), CoreError> {
        validate_ram_name("userName", user_name)?;
        let policy = self.get_policy(account_id, policy_name).await?;
        Policy::parse(&policy.document).map_err(|error| error.into_core_error("policyDocument"))?;
        self.store.attach_policy(account_id, user_name, policy_name, self.clock.now_ms()).await?;
        Ok(())
    }

    pub async fn detach_policy_from_user(
        &self,
        account_id: &AccountId,
        user_name: &str,
        policy_name: &str,
    ) -> Result<(), CoreError> {
        self.get_user(account_id, user_name).await?;
        validate_ram_name("policyName", policy_name)?;
        if !self.store.detach_policy(account_id, user_name, policy_name).await? {
            return Err(CoreError::PolicyNotExist { policy_name: policy_name.to_string() });
        }
        Ok(())
    }

    pub async fn list_policies_for_user(
        &self,
        account_id: &AccountId,
        user_name: &str,
    ) -> Result<Vec<StoredPolicy>, CoreError> {
        self.get_user(account_id, user_name).await?;
        self.store.policies_of_user(account_id, user_name).await
    }

    /// What the policy simulator answers: would `user_name` be allowed `action` on `resource`
    /// in `context`, and which statement decided.
    pub async fn simulate(
        &self,
        account_id: &AccountId,
        user_name: &str,
        action: &str,
        resource: &str,
        context: RequestContext,
    ) -> Result<ExplainedDecision, CoreError> {
        self.get_user(account_id, user_name).await?;
        if action.is_empty() {
            return Err(CoreError::MissingParameter { field: "action".into() });
        }
        if resource.is_empty() {
            return Err(CoreError::MissingParameter { field: "resource".into() });
        }
        let principal = Principal::User(user_name.to_string());
        let policies = self.policies_of(account_id, &principal).await?;
        Ok(decide(&principal, &policies, &AuthorizationRequest { action, resource, context }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_key_and_master_key() {
        let sealer = SecretSealer::new(&[7u8; MASTER_KEY_BYTES]);
        let sealed = sealer.seal("LTAIone", "s3cret");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("s3cret"));
        assert_eq!(sealer.open("LTAIone", &sealed).as_deref(), Some("s3cret"));
        assert_eq!(sealer.open("LTAItwo", &sealed), None, "another key id is other associated data");
        let other = SecretSealer::new(&[8u8; MASTER_KEY_BYTES]);
        assert_eq!(other.open("LTAIone", &sealed), None);
        // Fresh nonces: sealing twice gives different texts.
        assert_ne!(sealer.seal("LTAIone", "s3cret"), sealed);
        // Damage is detected.
        let mut damaged = sealed.clone();
        let last = damaged.pop().unwrap();
        damaged.push(if last == '0' { '1' } else { '0' });
        assert_eq!(sealer.open("LTAIone", &damaged), None);
        assert_eq!(sealer.open("LTAIone", "v1:zz"), None);
        assert_eq!(sealer.open("LTAIone", "plain"), None);
        assert_eq!(format!("{sealer:?}"), "SecretSealer([redacted])");
    }

    #[test]
    fn generated_ids_and_secrets_have_their_shapes() {
        let id = new_access_key_id();
        assert!(id.starts_with("LTAI") && id.len() == 24, "{id}");
        let secret = new_access_key_secret();
        assert_eq!(secret.len(), 30);
        assert!(secret.bytes().all(|byte| byte.is_ascii_alphanumeric()));
        assert_ne!(new_access_key_secret(), secret);
    }

    #[test]
    fn names_follow_the_ram_rule() {
        assert!(validate_ram_name("userName", "alice.ops@team-1_x").is_ok());
        assert_eq!(
            validate_ram_name("userName", "").unwrap_err(),
            CoreError::MissingParameter { field: "userName".into() }
        );
        let error = validate_ram_name("userName", "al ice").unwrap_err().to_string();
        assert!(error.contains("userName") && error.contains(RAM_NAME_RULE), "{error}");
        assert!(validate_ram_name("policyName", &"a".repeat(65)).is_err());
        assert!(validate_ram_name("policyName", "a/b").is_err());
        assert!(validate_ram_name("policyName", "a*").is_err());
    }

    #[test]
    fn the_root_account_is_allowed_everything() {
        let request = AuthorizationRequest {
            action: "ram:CreateUser",
            resource: "acs:ram:*:root:user/x",
            context: RequestContext { source_ip: None, current_time: 0, secure_transport: false, mfa_present: false },
        };
        assert!(decide(&Principal::Root, &[], &request).is_allowed());
        let user = decide(&Principal::User("x".into()), &[], &request);
        assert_eq!(user, ExplainedDecision { effect: DecisionEffect::ImplicitDeny, deciding: None });
        let message = forbidden(&user, request.action, request.resource).to_string();
        assert!(message.contains("ram:CreateUser") && message.contains("acs:ram:*:root:user/x"), "{message}");
        let deny = [NamedPolicy {
            policy_name: "NoRam".into(),
            policy: Policy::parse(r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"ram:*","Resource":"*"}]}"#)
                .unwrap(),
        }];
        let denied = decide(&Principal::User("x".into()), &deny, &request);
        assert_eq!(denied.deciding, Some(("NoRam".to_string(), 0)));
        assert!(forbidden(&denied, "a", "b").to_string().contains("explicitly denies"));
    }

    #[test]
    fn statuses_parse_as_ram_spells_them() {
        assert_eq!(AccessKeyStatus::parse("status", "Inactive").unwrap(), AccessKeyStatus::Inactive);
        assert!(AccessKeyStatus::parse("status", "inactive").unwrap_err().to_string().contains("status"));
    }
}
