//! The configuration of `trainyard serve`, layered: built-in defaults, then a TOML file
//! (`--config PATH` or `TRAINYARD_CONFIG`), then `TRAINYARD_*` environment variables, then
//! command-line flags — each layer overriding the one before.
//!
//! | key | flag | environment | default |
//! |---|---|---|---|
//! | `listen` | `--listen` | `TRAINYARD_LISTEN` | `127.0.0.1:8080` |
//! | `data_dir` | `--data-dir` | `TRAINYARD_DATA_DIR` | `./trainyard-data` |
//! | `database_url` | `--database-url` | `TRAINYARD_DATABASE_URL` | SQLite file `trainyard.db` in the data dir |
//! | `store_url` | `--store-url` | `TRAINYARD_STORE_URL` | `file://` + `objects/` in the data dir |
//! | `max_body_bytes` | | `TRAINYARD_MAX_BODY_BYTES` | 2 MiB |
//! | `max_clock_skew_seconds` | | `TRAINYARD_MAX_CLOCK_SKEW_SECONDS` | 900 |
//! | `shutdown_grace_seconds` | | `TRAINYARD_SHUTDOWN_GRACE_SECONDS` | 30 |
//! | `ingest_segment_max_bytes` | | `TRAINYARD_INGEST_SEGMENT_MAX_BYTES` | 32 MiB |
//! | `compaction_interval_seconds` | | `TRAINYARD_COMPACTION_INTERVAL_SECONDS` | 60 |
//!
//! Root keys are not configuration: they come from `TRAINYARD_ACCESS_KEY_ID` /
//! `TRAINYARD_ACCESS_KEY_SECRET` or from the key file in the data dir (see `keys`).

use std::path::PathBuf;

use anyhow::Context as _;
use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The settings of `serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub store_url: Option<String>,
    pub max_body_bytes: usize,
    pub max_clock_skew_seconds: i64,
    pub shutdown_grace_seconds: u64,
    /// An ingest log segment is sealed (and becomes compactable) at this size.
    pub ingest_segment_max_bytes: u64,
    /// How often the background compactor turns the ingest log into Parquet files.
    pub compaction_interval_seconds: u64,
}

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./trainyard-data"),
            database_url: None,
            store_url: None,
            max_body_bytes: 2 * 1024 * 1024,
            max_clock_skew_seconds: 15 * 60,
            shutdown_grace_seconds: 30,
            ingest_segment_max_bytes: 32 * 1024 * 1024,
            compaction_interval_seconds: 60,
        }
    }
}

/// The flags of `serve`; each one given overrides every other layer.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct ServeFlags {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Directory for the SQLite database, the root key file and local objects.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Metadata database: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Object store for data and model artifacts: file://PATH.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_url: Option<String>,
    /// TOML file with any of the settings above.
    #[arg(long, env = "TRAINYARD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

const ENVIRONMENT_KEYS: [&str; 9] = [
    "LISTEN",
    "DATA_DIR",
    "DATABASE_URL",
    "STORE_URL",
    "MAX_BODY_BYTES",
    "MAX_CLOCK_SKEW_SECONDS",
    "SHUTDOWN_GRACE_SECONDS",
    "INGEST_SEGMENT_MAX_BYTES",
    "COMPACTION_INTERVAL_SECONDS",
];

impl ServeConfig {
    /// Merges the layers and validates the result.
    pub fn load(flags: &ServeFlags) -> anyhow::Result<ServeConfig> {
        let mut figment = Figment::from(Serialized::defaults(ServeConfig::default()));
        if let Some(path) = &flags.config {
            anyhow::ensure!(path.is_file(), "the config file {} does not exist", path.display());
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: ServeConfig = figment
            .merge(Env::prefixed("TRAINYARD_").only(&ENVIRONMENT_KEYS))
            .merge(Serialized::defaults(flags))
            .extract()
            .context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.max_body_bytes >= 1024, "max_body_bytes must be at least 1024");
        anyhow::ensure!(
            (1..=86_400).contains(&self.max_clock_skew_seconds),
            "max_clock_skew_seconds must be from 1 to 86400"
        );
        anyhow::ensure!(
            (64 * 1024..=1024 * 1024 * 1024).contains(&self.ingest_segment_max_bytes),
            "ingest_segment_max_bytes must be from 64 KiB to 1 GiB"
        );
        anyhow::ensure!(self.compaction_interval_seconds >= 1, "compaction_interval_seconds must be at least 1");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("trainyard.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nmax_body_bytes = 4096\n").unwrap();
        let from_file = ServeConfig::load(&ServeFlags { config: Some(file.clone()), ..ServeFlags::default() }).unwrap();
        assert_eq!(from_file.listen, "0.0.0.0:9000");
        assert_eq!(from_file.max_body_bytes, 4096);
        assert_eq!(from_file.data_dir, PathBuf::from("./trainyard-data"));
        let with_flag = ServeConfig::load(&ServeFlags {
            config: Some(file),
            listen: Some("127.0.0.1:1".into()),
            ..ServeFlags::default()
        })
        .unwrap();
        assert_eq!(with_flag.listen, "127.0.0.1:1");
        assert_eq!(with_flag.max_body_bytes, 4096);
    }

    #[test]
    fn unknown_and_invalid_settings_are_refused() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("bad.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let error = ServeConfig::load(&ServeFlags { config: Some(file), ..ServeFlags::default() }).unwrap_err();
        assert!(format!("{error:#}").contains("lisen"), "{error:#}");
        let small = directory.path().join("small.toml");
        std::fs::write(&small, "max_body_bytes = 10\n").unwrap();
        assert!(ServeConfig::load(&ServeFlags { config: Some(small), ..ServeFlags::default() }).is_err());
    }
}
