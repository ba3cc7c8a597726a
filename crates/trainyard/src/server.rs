//! `trainyard serve`: open the data dir and the metadata store, load the root key, serve the
//! API and run the task runner (workers, reaper, cron scheduler) until SIGTERM or Ctrl-C, then
//! drain in-flight requests, hand running tasks back (pending) and close the store.
//!
//! `trainyard worker`: the runner alone, without HTTP, for nodes that only train. It shares
//! the metadata database and the object store with the servers (`--database-url`,
//! `--store-url`) and has a data dir of its own (its node id); it trains on the compacted
//! data in the object store — records still in a server's ingest log (not yet compacted, at
//! most `compaction_interval_seconds` old) are not visible to it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use trainyard_api::access::{AccessControl, FailedSignatures, RateLimit, RateLimiter};
use trainyard_api::credentials::Credentials;
use trainyard_api::{ApiConfig, AppState};
use trainyard_core::clock::{Clock, SystemClock};
use trainyard_core::queue::TaskQueue;
use trainyard_core::ram::{RamService, RamStore, SecretSealer};
use trainyard_core::service::Service;
use trainyard_core::store::MetadataStore;
use trainyard_data::artifacts::ArtifactStore;
use trainyard_data::{DatasetConfig, DatasetStore};
use trainyard_runner::{Runner, RunnerConfig, StorageAdapter};
use trainyard_serve::Serving;
use trainyard_store::SqlStore;

use crate::config::ServeConfig;
use crate::keys::{self, RootKeyOrigin};

/// How often expired signature nonces are forgotten.
const NONCE_JANITOR_PERIOD: Duration = Duration::from_secs(60);
/// The file in the data dir naming this node in task leases.
const NODE_ID_FILE: &str = "node-id";

/// What `serve` and `worker` both open.
pub(crate) struct Backends {
    pub(crate) store: Arc<SqlStore>,
    pub(crate) datasets: Arc<DatasetStore>,
    artifacts: ArtifactStore,
    clock: Arc<dyn Clock>,
    objects_dir: PathBuf,
    node_id: String,
    /// Held while the process runs: one process per data dir.
    _data_dir_lock: std::fs::File,
}

pub(crate) async fn open_backends(config: &ServeConfig) -> anyhow::Result<Backends> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let data_dir_lock = lock_data_dir(&config.data_dir)?;
    let objects_dir = object_store_directory(config)?;
    let store = match &config.database_url {
        Some(url) => SqlStore::connect(url).await,
        None => SqlStore::open_sqlite_in(&config.data_dir).await,
    }
    .context("opening the metadata store")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dataset_config = DatasetConfig {
        log_directory: config.data_dir.join("ingest-log"),
        segment_max_bytes: config.ingest_segment_max_bytes,
    };
    let datasets = Arc::new(
        DatasetStore::open_local(dataset_config, &objects_dir, tokio::runtime::Handle::current())
            .context("opening the data store")?,
    );
    let artifacts = ArtifactStore::new(datasets.objects().clone());
    let node_id = node_id(&config.data_dir)?;
    Ok(Backends {
        store: Arc::new(store),
        datasets,
        artifacts,
        clock,
        objects_dir,
        node_id,
        _data_dir_lock: data_dir_lock,
    })
}

impl Backends {
    fn service(&self) -> Service {
        Service::new(self.store.clone() as Arc<dyn MetadataStore>, self.clock.clone())
            .with_datasets(Arc::new(StorageAdapter {
                datasets: self.datasets.clone(),
                artifacts: self.artifacts.clone(),
            }))
            .with_queue(self.store.clone() as Arc<dyn TaskQueue>)
    }

    fn runner(&self, config: &ServeConfig) -> anyhow::Result<Runner> {
        let mut runner_config = RunnerConfig::for_node(&self.node_id, self.clock.now_ms());
        runner_config.concurrency = config.worker_concurrency;
        runner_config.lease = Duration::from_secs(config.task_lease_seconds);
        runner_config.heartbeat = Duration::from_millis(config.task_heartbeat_millis);
        runner_config.poll = Duration::from_millis(config.task_poll_millis);
        runner_config.deadline = Duration::from_secs(config.task_deadline_seconds);
        runner_config.retry_delay = Duration::from_secs(config.task_retry_delay_seconds);
        runner_config.keep_generations = config.keep_generations;
        runner_config.scheduler_tick = Duration::from_secs(config.scheduler_tick_seconds);
        runner_config.trainer_nice = config.trainer_nice;
        runner_config.cron_offset =
            trainyard_runner::parse_cron_offset(&config.cron_timezone).map_err(|reason| anyhow::anyhow!(reason))?;
        Ok(Runner::new(
            self.store.clone() as Arc<dyn TaskQueue>,
            self.datasets.clone(),
            self.artifacts.clone(),
            self.clock.clone(),
            runner_config,
        ))
    }
}

/// This node's id, created on first start.
fn node_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    }
    let generated = format!("node-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(&path, format!("{generated}\n")).with_context(|| format!("writing {}", path.display()))?;
    Ok(generated)
}

/// Runs the server until a shutdown signal.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let backends = open_backends(&config).await?;
    let (root_key, origin) = keys::root_access_key(&config.data_dir)?;
    let service = backends.service();
    let state = AppState {
        serving: Serving::new(service.clone(), backends.artifacts.clone()),
        service,
        datasets: backends.datasets.clone(),
        credentials: Arc::new(Credentials::new([root_key.clone()])),
        access: Arc::new(AccessControl {
            ram: RamService::new(
                backends.store.clone() as Arc<dyn RamStore>,
                SecretSealer::new(&keys::master_key(&config.data_dir)?),
                backends.clock.clone(),
            ),
            region: config.region.clone(),
            limiter: RateLimiter::new(RateLimit {
                requests_per_second: config.rate_limit_per_second,
                burst: config.rate_limit_burst,
            }),
            failed_signatures: FailedSignatures::default(),
        }),
        config: ApiConfig {
            max_body_bytes: config.max_body_bytes,
            max_clock_skew_seconds: config.max_clock_skew_seconds,
        },
    };
    let listener =
        tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;

    // Machine-readable lines on stdout (tests and scripts read the address from here).
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "trainyard listening on http://{address}")?;
    writeln!(stdout, "root AccessKey id: {}", root_key.access_key_id)?;
    if let RootKeyOrigin::Generated = origin {
        writeln!(
            stdout,
            "root AccessKey secret: {} (generated now, shown once; stored in {})",
            keys::expose_secret(&root_key),
            config.data_dir.join(keys::KEY_FILE_NAME).display()
        )?;
    }
    writeln!(stdout, "metadata: {}", metadata_description(&config))?;
    writeln!(stdout, "objects: {}", backends.objects_dir.display())?;
    writeln!(stdout, "node: {} ({} training worker(s))", backends.node_id, config.worker_concurrency)?;
    stdout.flush()?;
    drop(stdout);

    let shutdown = CancellationToken::new();
    let janitor = tokio::spawn(forget_expired_nonces(backends.store.clone(), backends.clock.clone(), shutdown.clone()));
    let compactor = tokio::spawn(compact_periodically(
        backends.datasets.clone(),
        Duration::from_secs(config.compaction_interval_seconds),
        shutdown.clone(),
    ));
    let runner = start_runner(&backends, &config, &shutdown)?;
    let shutdown_for_signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received: draining in-flight requests");
        shutdown_for_signal.cancel();
    });
    let app = trainyard_api::router(state);
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let graceful = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    let serving = tokio::spawn(async move { graceful.await });
    shutdown.cancelled().await;
    match tokio::time::timeout(grace, serving).await {
        Ok(result) => result.context("server task")?.context("serving")?,
        Err(_) => {
            tracing::warn!(grace_seconds = grace.as_secs(), "in-flight requests did not finish within the grace period")
        }
    }
    janitor.abort();
    stop_runner(runner, grace).await;
    // Let a compaction in progress finish: it is redone safely if cut short, but finishing it
    // leaves less to redo.
    if tokio::time::timeout(Duration::from_secs(30), compactor).await.is_err() {
        tracing::warn!("the compactor did not stop within 30 s");
    }
    backends.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Runs the task runner alone until a shutdown signal.
pub async fn work(config: ServeConfig) -> anyhow::Result<()> {
    anyhow::ensure!(config.worker_concurrency >= 1, "a worker needs worker_concurrency (--workers) of at least 1");
    let backends = open_backends(&config).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "trainyard worker {} ({} training worker(s))", backends.node_id, config.worker_concurrency)?;
    writeln!(stdout, "metadata: {}", metadata_description(&config))?;
    writeln!(stdout, "objects: {}", backends.objects_dir.display())?;
    stdout.flush()?;
    drop(stdout);
    let shutdown = CancellationToken::new();
    let runner = start_runner(&backends, &config, &shutdown)?;
    wait_for_signal().await;
    tracing::info!("shutdown signal received: handing running tasks back");
    shutdown.cancel();
    stop_runner(runner, Duration::from_secs(config.shutdown_grace_seconds)).await;
    backends.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn start_runner(
    backends: &Backends,
    config: &ServeConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if config.worker_concurrency == 0 {
        tracing::info!("worker_concurrency is 0: this process trains nothing and runs no scheduler");
        return Ok(None);
    }
    let runner = backends.runner(config)?;
    Ok(Some(tokio::spawn(runner.run(shutdown.clone()))))
}

/// Waits for the runner to hand its running tasks back after `shutdown` was cancelled.
async fn stop_runner(runner: Option<tokio::task::JoinHandle<()>>, grace: Duration) {
    let Some(runner) = runner else { return };
    if tokio::time::timeout(grace, runner).await.is_err() {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "the task runner did not stop in time; its tasks go back to pending when their leases expire"
        );
    }
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn forget_expired_nonces(store: Arc<SqlStore>, clock: Arc<dyn Clock>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(NONCE_JANITOR_PERIOD);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        match store.forget_expired_signature_nonces(clock.now_ms()).await {
            Ok(forgotten) if forgotten > 0 => tracing::debug!(forgotten, "forgot expired signature nonces"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not forget expired signature nonces"),
        }
    }
}

/// Where metadata lives, for the start banner (a password in a database URL is not shown).
fn metadata_description(config: &ServeConfig) -> String {
    match &config.database_url {
        None => format!("SQLite {}", config.data_dir.join("trainyard.db").display()),
        Some(url) => match (url.split_once("://"), url.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host_and_database))) => format!("{scheme}://***@{host_and_database}"),
            _ => url.clone(),
        },
    }
}

/// Compacts every app group's sealed log segments (and seals active ones that hold anything)
/// into Parquet files, every `interval`.
async fn compact_periodically(datasets: Arc<DatasetStore>, interval: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let app_group_ids = match datasets.app_groups_on_disk() {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "could not list the ingest log");
                continue;
            }
        };
        for app_group_id in app_group_ids {
            if shutdown.is_cancelled() {
                return;
            }
            match datasets.compact(app_group_id, true).await {
                Ok(report) if report.records_compacted > 0 => tracing::info!(
                    app_group_id,
                    records = report.records_compacted,
                    files = report.files_written,
                    "compacted the ingest log into Parquet"
                ),
                Ok(_) => {}
                Err(error) => tracing::error!(app_group_id, %error, "compaction failed; it will be retried"),
            }
        }
    }
}

/// One server per data dir: a second one would run a second writer (and, later, a second
/// task runner) over the same files.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("trainyard.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!(
                "another trainyard process is using the data dir {} (lock file {})",
                data_dir.display(),
                path.display()
            )
        }
        Err(std::fs::TryLockError::Error(error)) => Err(error).with_context(|| format!("locking {}", path.display())),
    }
}

/// The local directory behind `store_url` (created if missing). Data and model artifacts will
/// live there; S3-compatible stores come with the data-ingest work and are refused until then.
fn object_store_directory(config: &ServeConfig) -> anyhow::Result<PathBuf> {
    let directory = match config.store_url.as_deref() {
        None => config.data_dir.join("objects"),
        Some(url) => match url.strip_prefix("file://") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => anyhow::bail!(
                "store_url \"{url}\" is not supported: this build stores objects on the local file system only (file:///absolute/path)"
            ),
        },
    };
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("creating the object store directory {}", directory.display()))?;
    Ok(directory)
}
