//! The root AccessKey: from `TRAINYARD_ACCESS_KEY_ID` / `TRAINYARD_ACCESS_KEY_SECRET` when set,
//! else from `root-access-key.json` in the data dir, else generated on first start and written
//! there with permissions 0600 (temp file, fsync, rename, fsync of the directory).
//!
//! The master key that seals RAM users' AccessKey secrets in the database
//! (`trainyard_core::ram::SecretSealer`): from `TRAINYARD_MASTER_KEY` (64 hex digits) when set —
//! every API node sharing one PostgreSQL database needs the same one — else from `master.key` in
//! the data dir, else generated on first start and written there the same way (0600). Losing it
//! makes every RAM user's key unusable (they must be re-created); the root key does not need it.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use trainyard_api::credentials::AccessKey;
use trainyard_core::model::AccountId;

/// The account every root key belongs to. RAM users (a later step) live under it.
pub const ROOT_ACCOUNT_ID: &str = "root";
/// The key file's name in the data dir.
pub const KEY_FILE_NAME: &str = "root-access-key.json";

/// Where the root key came from, which decides what is printed at start.
#[derive(Debug)]
pub enum RootKeyOrigin {
    Environment,
    KeyFile,
    /// Just generated: the secret is shown once.
    Generated,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    access_key_id: String,
    access_key_secret: String,
}

/// The master key file's name in the data dir.
pub const MASTER_KEY_FILE_NAME: &str = "master.key";

/// Loads or creates the master key.
pub fn master_key(data_dir: &Path) -> anyhow::Result<[u8; trainyard_core::ram::MASTER_KEY_BYTES]> {
    if let Some(text) = std::env::var("TRAINYARD_MASTER_KEY").ok().filter(|value| !value.is_empty()) {
        return parse_master_key(&text).context("TRAINYARD_MASTER_KEY must be 64 hex digits (32 bytes)");
    }
    let path = data_dir.join(MASTER_KEY_FILE_NAME);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return parse_master_key(&text).with_context(|| format!("{} must hold 64 hex digits", path.display()));
    }
    let key = trainyard_core::ram::SecretSealer::generate_master_key();
    let text: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
    write_private_file(&path, format!("{text}\n").as_bytes())?;
    Ok(key)
}

fn parse_master_key(text: &str) -> anyhow::Result<[u8; trainyard_core::ram::MASTER_KEY_BYTES]> {
    let decoded = hex::decode(text.trim())?;
    decoded.try_into().map_err(|bytes: Vec<u8>| anyhow::anyhow!("{} bytes instead of 32", bytes.len()))
}

/// Loads or creates the root key.
pub fn root_access_key(data_dir: &Path) -> anyhow::Result<(AccessKey, RootKeyOrigin)> {
    let environment_id = std::env::var("TRAINYARD_ACCESS_KEY_ID").ok().filter(|value| !value.is_empty());
    let environment_secret = std::env::var("TRAINYARD_ACCESS_KEY_SECRET").ok().filter(|value| !value.is_empty());
    match (environment_id, environment_secret) {
        (Some(access_key_id), Some(secret)) => {
            return Ok((root_key(access_key_id, secret), RootKeyOrigin::Environment));
        }
        (None, None) => {}
        _ => anyhow::bail!("set both TRAINYARD_ACCESS_KEY_ID and TRAINYARD_ACCESS_KEY_SECRET, or neither"),
    }
    let path = data_dir.join(KEY_FILE_NAME);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let file: KeyFile =
            serde_json::from_str(&text).with_context(|| format!("{} is not a valid key file", path.display()))?;
        return Ok((root_key(file.access_key_id, file.access_key_secret), RootKeyOrigin::KeyFile));
    }
    let access_key_id = format!("TY{}", random_text(22, b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"));
    let secret = random_text(30, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    let key_file = KeyFile { access_key_id: access_key_id.clone(), access_key_secret: secret.clone() };
    write_private_file(&path, serde_json::to_string_pretty(&key_file)?.as_bytes())?;
    Ok((root_key(access_key_id, secret), RootKeyOrigin::Generated))
}

/// The id and secret in a data dir's key file (for the command-line tools).
pub fn read_key_file(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let path = data_dir.join(KEY_FILE_NAME);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: KeyFile =
        serde_json::from_str(&text).with_context(|| format!("{} is not a valid key file", path.display()))?;
    Ok((file.access_key_id, file.access_key_secret))
}

fn root_key(access_key_id: String, secret: String) -> AccessKey {
    AccessKey {
        access_key_id,
        access_key_secret: SecretString::from(secret),
        account_id: AccountId(ROOT_ACCOUNT_ID.into()),
    }
}

/// Shows the secret once (only used right after generation).
pub fn expose_secret(key: &AccessKey) -> &str {
    key.access_key_secret.expose_secret()
}

fn random_text(length: usize, alphabet: &[u8]) -> String {
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - (256 % alphabet.len());
    let mut text = String::with_capacity(length);
    while text.len() < length {
        let mut byte = [0u8; 1];
        getrandom::fill(&mut byte).expect("the operating system provides randomness");
        if (byte[0] as usize) < limit {
            text.push(alphabet[byte[0] as usize % alphabet.len()] as char);
        }
    }
    text
}

/// Writes a file only its owner can read: temp file (0600), fsync, rename, fsync of the directory.
fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let directory = path.parent().context("the key file has no directory")?;
    let file_name = path.file_name().context("the key file has no name")?.to_string_lossy();
    let temporary = directory.join(format!("{file_name}.tmp"));
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(directory)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn generated_key_is_written_0600_and_reloaded() {
        // Not run with the environment variables set (the test suite never sets them).
        if std::env::var_os("TRAINYARD_ACCESS_KEY_ID").is_some() {
            eprintln!("skipped: TRAINYARD_ACCESS_KEY_ID is set in this environment");
            return;
        }
        let directory = tempfile::tempdir().unwrap();
        let (generated, origin) = root_access_key(directory.path()).unwrap();
        assert!(matches!(origin, RootKeyOrigin::Generated));
        assert_eq!(generated.access_key_id.len(), 24);
        assert_eq!(expose_secret(&generated).len(), 30);
        let mode = std::fs::metadata(directory.path().join(KEY_FILE_NAME)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (reloaded, origin) = root_access_key(directory.path()).unwrap();
        assert!(matches!(origin, RootKeyOrigin::KeyFile));
        assert_eq!(reloaded.access_key_id, generated.access_key_id);
        assert_eq!(expose_secret(&reloaded), expose_secret(&generated));
    }

    #[test]
    fn the_master_key_is_generated_0600_once_and_reloaded() {
        if std::env::var_os("TRAINYARD_MASTER_KEY").is_some() {
            eprintln!("skipped: TRAINYARD_MASTER_KEY is set in this environment");
            return;
        }
        let directory = tempfile::tempdir().unwrap();
        let generated = master_key(directory.path()).unwrap();
        let mode = std::fs::metadata(directory.path().join(MASTER_KEY_FILE_NAME)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(master_key(directory.path()).unwrap(), generated);
        std::fs::write(directory.path().join(MASTER_KEY_FILE_NAME), "abc").unwrap();
        assert!(master_key(directory.path()).is_err());
    }
}
