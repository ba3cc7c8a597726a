//! The bootstrap AccessKeys of the root account (from the environment or the key file), which
//! are not in the database. RAM users' keys live in the store, sealed, and are looked up per
//! request through `trainyard_core::ram::RamService`. Secrets are held as `SecretString` so that
//! they never appear in `Debug` output or logs; the HMAC schemes need the secret itself, so it
//! is kept in memory (and, for a generated root key, in a 0600 file).

use std::collections::HashMap;

use secrecy::{ExposeSecret, SecretString};
use trainyard_core::model::AccountId;
use trainyard_core::ram::Principal;
use trainyard_core::service::Caller;

/// One AccessKey.
#[derive(Debug, Clone)]
pub struct AccessKey {
    pub access_key_id: String,
    pub access_key_secret: SecretString,
    pub account_id: AccountId,
}

/// The keys the server accepts.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    keys: HashMap<String, AccessKey>,
}

impl Credentials {
    pub fn new(keys: impl IntoIterator<Item = AccessKey>) -> Credentials {
        Credentials { keys: keys.into_iter().map(|key| (key.access_key_id.clone(), key)).collect() }
    }

    /// The secret of an AccessKey id, for signature verification.
    pub fn secret_of(&self, access_key_id: &str) -> Option<String> {
        self.keys.get(access_key_id).map(|key| key.access_key_secret.expose_secret().to_string())
    }

    /// The caller an AccessKey id stands for.
    pub fn caller_of(&self, access_key_id: &str) -> Option<Caller> {
        self.keys.get(access_key_id).map(|key| Caller {
            account_id: key.account_id.clone(),
            principal: Principal::Root,
            access_key_id: key.access_key_id.clone(),
        })
    }
}
