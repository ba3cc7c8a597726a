//! The metadata store of Trainyard: app groups, instances, tasks, resources, default instances
//! and signature nonces, persisted with sqlx over SQLite (the embedded default) or PostgreSQL.
//!
//! # What lives here
//! - [`SqlStore`]: the one implementation of [`trainyard_core::store::MetadataStore`]. The
//!   backend is chosen at run time by URL (`sqlite://...` or `postgres://...`) and both run the
//!   same statements: ids and times are `BIGINT`, JSON is `TEXT`, placeholders are `$N`.
//! - `migrations/sqlite` and `migrations/postgres`: the schema, embedded in the binary, kept in
//!   lockstep (same numbering, same tables).
//! - [`StoreError`]: what can go wrong here, each error mapped to a wire code.
//! - `ram`: [`trainyard_core::ram::RamStore`] — RAM users, AccessKeys (sealed secrets only),
//!   policies and their attachments (migration `0004_ram`).
//! - `queue`: the task queue of the runner ([`trainyard_core::queue::TaskQueue`]) on the same
//!   task table.
//!
//! # Durability
//! SQLite runs in WAL mode with `synchronous=FULL`: a write is fsynced before the call returns,
//! so an acknowledged write survives `kill -9` and power loss. Signature nonces are written on a
//! second pool with `synchronous=NORMAL` — in WAL mode that still survives a process crash,
//! loses at most the last moments on power loss, and keeps a read request free of an fsync.
//! SQLite allows one writer at a time; an in-process write gate queues writers instead of
//! letting them spin on `SQLITE_BUSY`. Automatic WAL checkpoints are off: a background task
//! runs a passive checkpoint every second, so that no request pays for copying the log back
//! into the database (measured: a 5-13 ms stall every ~285 requests with auto-checkpoints).
//!
//! # What must not
//! No domain rules beyond the invariants the schema enforces atomically (one active task per
//! instance, never-reused generations, no deletion of a default or referenced object); no HTTP.

mod error;
mod metadata;
mod query;
pub mod queue;
mod ram;
mod rows;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use crate::error::StoreError;

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The metadata store over SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    /// Pool for signature nonces (SQLite: `synchronous=NORMAL`; PostgreSQL: the main pool).
    nonce_pool: AnyPool,
    backend: Backend,
    /// SQLite only: serializes writers inside this process.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite only: the background checkpointer, stopped when the last clone is dropped.
    _checkpointer: Option<Arc<Checkpointer>>,
}

/// Aborts the checkpoint task when dropped.
struct Checkpointer(tokio::task::JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the WAL is checkpointed in the background.
const CHECKPOINT_PERIOD: Duration = Duration::from_secs(1);

async fn checkpoint_periodically(pool: AnyPool) {
    let mut interval = tokio::time::interval(CHECKPOINT_PERIOD);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if pool.is_closed() {
            return;
        }
        // PASSIVE never waits for the write lock: writers go on appending while it copies.
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            tracing::warn!(%error, "background WAL checkpoint failed");
        }
    }
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database `trainyard.db` in `data_dir`.
    pub async fn open_sqlite_in(data_dir: &Path) -> Result<SqlStore, StoreError> {
        let path = data_dir.join("trainyard.db");
        SqlStore::connect(&sqlite_url(&path)).await
    }

    /// Connects to `url` (`sqlite://PATH[?mode=rwc]` or `postgres://...`) and applies migrations.
    pub async fn connect(url: &str) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let store = match backend {
            Backend::Sqlite => {
                let pool = sqlite_pool(url, "FULL", 8).await?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                let nonce_pool = sqlite_pool(url, "NORMAL", 2).await?;
                let checkpointer = Checkpointer(tokio::spawn(checkpoint_periodically(pool.clone())));
                SqlStore {
                    pool,
                    nonce_pool,
                    backend,
                    write_gate: Some(Arc::new(tokio::sync::Mutex::new(()))),
                    _checkpointer: Some(Arc::new(checkpointer)),
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await
                    .map_err(StoreError::Connect)?;
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                SqlStore { nonce_pool: pool.clone(), pool, backend, write_gate: None, _checkpointer: None }
            }
        };
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pools, waiting for connections to finish, after a last full checkpoint on
    /// SQLite so that the database file alone holds everything.
    pub async fn close(&self) {
        if self.backend == Backend::Sqlite
            && let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await
        {
            tracing::warn!(%error, "final WAL checkpoint failed");
        }
        self.nonce_pool.close().await;
        self.pool.close().await;
    }

    /// Runs `work` while holding the write gate (SQLite) — a no-op gate on PostgreSQL.
    async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }
}

/// `sqlite://` URL for a file path, creating the file if missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

fn backend_of(url: &str) -> Result<Backend, StoreError> {
    if url.starts_with("sqlite:") {
        return Ok(Backend::Sqlite);
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Backend::Postgres);
    }
    Err(StoreError::UnsupportedUrl {
        url: url.split('@').next_back().unwrap_or_default().to_string(),
        reason: "use sqlite://PATH or postgres://USER@HOST/DATABASE".into(),
    })
}

async fn sqlite_pool(url: &str, synchronous: &'static str, max_connections: u32) -> Result<AnyPool, StoreError> {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |connection, _metadata| {
            Box::pin(async move {
                let statements: [&'static str; 5] = [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA wal_autocheckpoint = 0",
                    "PRAGMA foreign_keys = ON",
                    "PRAGMA busy_timeout = 5000",
                    if synchronous == "FULL" { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" },
                ];
                for statement in statements {
                    sqlx::query(statement).execute(&mut *connection).await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(StoreError::Connect)
}
