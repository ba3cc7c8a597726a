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
//! | `worker_concurrency` | `--workers` | `TRAINYARD_WORKER_CONCURRENCY` | 1 (0: this process trains nothing and runs no scheduler) |
//! | `task_lease_seconds` | | `TRAINYARD_TASK_LEASE_SECONDS` | 30 |
//! | `task_heartbeat_millis` | | `TRAINYARD_TASK_HEARTBEAT_MILLIS` | 1000 |
//! | `task_poll_millis` | | `TRAINYARD_TASK_POLL_MILLIS` | 500 (how often idle workers look for pending tasks) |
//! | `task_deadline_seconds` | | `TRAINYARD_TASK_DEADLINE_SECONDS` | 21600 (6 h) |
//! | `task_retry_delay_seconds` | | `TRAINYARD_TASK_RETRY_DELAY_SECONDS` | 5 |
//! | `keep_generations` | | `TRAINYARD_KEEP_GENERATIONS` | 3 |
//! | `cron_timezone` | | `TRAINYARD_CRON_TIMEZONE` | `UTC` (or a fixed offset such as `+08:00`) |
//! | `scheduler_tick_seconds` | | `TRAINYARD_SCHEDULER_TICK_SECONDS` | 15 |
//! | `trainer_nice` | | `TRAINYARD_TRAINER_NICE` | 10 |
//! | `region` | | `TRAINYARD_REGION` | `cn-hangzhou` (the region part of OpenSearch ARNs in RAM policies) |
//! | `rate_limit_per_second` | | `TRAINYARD_RATE_LIMIT_PER_SECOND` | 200 (requests per AccessKey; 0 turns the limit off) |
//! | `rate_limit_burst` | | `TRAINYARD_RATE_LIMIT_BURST` | 400 (requests an idle AccessKey may send at once) |
//!
//! A task's lease is extended at every heartbeat; a worker that stops heartbeating (killed)
//! loses its tasks after `task_lease_seconds`, and they run again (up to 3 attempts) or fail
//! with `WorkerLost` in ExtendInfo. The node id that marks this data dir's leases lives in the
//! file `node-id` of the data dir: a restarted node takes its own dead leases back at once.
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
    /// Training tasks run at once by this process; 0 runs no worker and no scheduler.
    pub worker_concurrency: usize,
    pub task_lease_seconds: u64,
    pub task_heartbeat_millis: u64,
    /// How often an idle worker looks for pending tasks.
    pub task_poll_millis: u64,
    pub task_deadline_seconds: u64,
    pub task_retry_delay_seconds: u64,
    /// Successful generations whose models are kept per instance (the served one always is).
    pub keep_generations: usize,
    /// The timezone of instances' cron expressions: `UTC` or a fixed offset like `+08:00`.
    pub cron_timezone: String,
    pub scheduler_tick_seconds: u64,
    /// Nice value of trainer threads (0-19), so that training does not starve the API.
    pub trainer_nice: i32,
    /// The region part of OpenSearch ARNs (`acs:opensearch:{region}:...`).
    pub region: String,
    /// Requests per second per AccessKey (token bucket refill); 0 turns the limit off.
    pub rate_limit_per_second: f64,
    /// Bucket size: requests an idle AccessKey may send at once.
    pub rate_limit_burst: f64,
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
            worker_concurrency: 1,
            task_lease_seconds: 30,
            task_heartbeat_millis: 1000,
            task_poll_millis: 500,
            task_deadline_seconds: 6 * 3600,
            task_retry_delay_seconds: 5,
            keep_generations: 3,
            cron_timezone: "UTC".into(),
            scheduler_tick_seconds: 15,
            trainer_nice: 10,
            region: "cn-hangzhou".into(),
            rate_limit_per_second: 200.0,
            rate_limit_burst: 400.0,
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
    /// Training tasks run at once (0: train nothing here; run `trainyard worker` elsewhere).
    #[arg(long = "workers")]
    #[serde(rename = "worker_concurrency", skip_serializing_if = "Option::is_none")]
    pub worker_concurrency: Option<usize>,
    /// TOML file with any of the settings above.
    #[arg(long, env = "TRAINYARD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

const ENVIRONMENT_KEYS: [&str; 22] = [
    "LISTEN",
    "DATA_DIR",
    "DATABASE_URL",
    "STORE_URL",
    "MAX_BODY_BYTES",
    "MAX_CLOCK_SKEW_SECONDS",
    "SHUTDOWN_GRACE_SECONDS",
    "INGEST_SEGMENT_MAX_BYTES",
    "COMPACTION_INTERVAL_SECONDS",
    "WORKER_CONCURRENCY",
    "TASK_LEASE_SECONDS",
    "TASK_HEARTBEAT_MILLIS",
    "TASK_POLL_MILLIS",
    "TASK_DEADLINE_SECONDS",
    "TASK_RETRY_DELAY_SECONDS",
    "KEEP_GENERATIONS",
    "CRON_TIMEZONE",
    "SCHEDULER_TICK_SECONDS",
    "TRAINER_NICE",
    "REGION",
    "RATE_LIMIT_PER_SECOND",
    "RATE_LIMIT_BURST",
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
        anyhow::ensure!(self.worker_concurrency <= 64, "worker_concurrency must be from 0 to 64");
        anyhow::ensure!(
            (50..=60_000).contains(&self.task_heartbeat_millis),
            "task_heartbeat_millis must be from 50 to 60000"
        );
        anyhow::ensure!(
            self.task_lease_seconds * 1000 >= 3 * self.task_heartbeat_millis,
            "task_lease_seconds must cover at least 3 heartbeats (task_heartbeat_millis)"
        );
        anyhow::ensure!((10..=60_000).contains(&self.task_poll_millis), "task_poll_millis must be from 10 to 60000");
        anyhow::ensure!(self.task_deadline_seconds >= 1, "task_deadline_seconds must be at least 1");
        anyhow::ensure!((1..=1000).contains(&self.keep_generations), "keep_generations must be from 1 to 1000");
        anyhow::ensure!(self.scheduler_tick_seconds >= 1, "scheduler_tick_seconds must be at least 1");
        anyhow::ensure!((0..=19).contains(&self.trainer_nice), "trainer_nice must be from 0 to 19");
        anyhow::ensure!(
            !self.region.is_empty() && self.region.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-'),
            "region must be letters, digits and '-', such as cn-hangzhou"
        );
        anyhow::ensure!(
            self.rate_limit_per_second.is_finite() && self.rate_limit_per_second >= 0.0,
            "rate_limit_per_second must be 0 (no limit) or more"
        );
        anyhow::ensure!(
            self.rate_limit_burst.is_finite() && self.rate_limit_burst >= 1.0,
            "rate_limit_burst must be at least 1"
        );
        trainyard_runner::parse_cron_offset(&self.cron_timezone)
            .map_err(|reason| anyhow::anyhow!("cron_timezone: {reason}"))?;
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
        let named_zone = directory.path().join("zone.toml");
        std::fs::write(&named_zone, "cron_timezone = \"Asia/Shanghai\"\n").unwrap();
        let error = ServeConfig::load(&ServeFlags { config: Some(named_zone), ..ServeFlags::default() }).unwrap_err();
        assert!(format!("{error:#}").contains("cron_timezone"), "{error:#}");
    }
}
