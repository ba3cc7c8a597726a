//! [`TaskQueue`] over the task table: claims with leases (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, the write gate on SQLite), fenced writes, reaping, cancellation and cron fires.

use async_trait::async_trait;
use sqlx::Row;
use trainyard_core::CoreError;
use trainyard_core::model::{FunctionInstance, FunctionTask, Millis, TaskTrigger};
use trainyard_core::queue::{ClaimedTask, FireOutcome, Heartbeat, ReapedTask, TaskLease, TaskOutcome, TaskQueue};

use crate::error::{StoreError, is_unique_violation};
use crate::rows::{INSTANCE_COLUMNS, TASK_COLUMNS, instance_from_row, task_from_row};
use crate::{Backend, SqlStore};

fn storage(error: sqlx::Error) -> CoreError {
    CoreError::from(StoreError::from_sqlx(error))
}

/// The claim statement: the oldest claimable task becomes running under the lease.
const CLAIM_SQLITE: &str = "UPDATE function_tasks SET state = 'running', lease_owner = $1, lease_expires_ms = $2, \
     attempt = attempt + 1, started_ms = COALESCE(started_ms, $3), progress = 0 \
     WHERE id = (SELECT id FROM function_tasks WHERE state = 'pending' AND run_after_ms <= $4 ORDER BY run_after_ms, id LIMIT 1) \
     RETURNING id";
/// The same; `SKIP LOCKED` lets concurrent claimers on several nodes take different tasks.
const CLAIM_POSTGRES: &str = "UPDATE function_tasks SET state = 'running', lease_owner = $1, lease_expires_ms = $2, \
     attempt = attempt + 1, started_ms = COALESCE(started_ms, $3), progress = 0 \
     WHERE id = (SELECT id FROM function_tasks WHERE state = 'pending' AND run_after_ms <= $4 ORDER BY run_after_ms, id LIMIT 1 \
     FOR UPDATE SKIP LOCKED) RETURNING id";

/// The `ExtendInfo` of a task that ended without a model.
/// The reason recorded when a task stopped by its worker (shutdown) or lost with its worker
/// had been asked to cancel.
const CANCELLED_WHILE_STOPPING: &str = "cancelled: the task was asked to stop and is not run again";

pub fn failure_extend_info(reason: &str, details: serde_json::Value) -> String {
    serde_json::json!({"metrics": {}, "dataReport": {}, "errors": [reason], "failure": details}).to_string()
}

impl SqlStore {
    async fn task_by_id(&self, task_id: i64) -> Result<Option<(FunctionTask, FunctionInstance)>, CoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM function_tasks WHERE id = $1");
        let Some(row) =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(task_id).fetch_optional(&self.pool).await.map_err(storage)?
        else {
            return Ok(None);
        };
        let instance_id: i64 = row.try_get("instance_id").map_err(storage)?;
        let Some(instance) = self.instance_by_id(instance_id).await? else {
            return Ok(None);
        };
        let task = task_from_row(&row, instance.function_name).map_err(CoreError::from)?;
        Ok(Some((task, instance)))
    }
}

#[async_trait]
impl TaskQueue for SqlStore {
    async fn claim_task(
        &self,
        worker_id: &str,
        now_ms: Millis,
        lease_ms: Millis,
    ) -> Result<Option<ClaimedTask>, CoreError> {
        let write_guard = self.write_guard().await;
        let statement = match self.backend() {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let claimed = sqlx::query(statement)
            .bind(worker_id)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        drop(write_guard);
        let Some(row) = claimed else {
            return Ok(None);
        };
        let task_id: i64 = row.try_get("id").map_err(storage)?;
        let Some((task, instance)) = self.task_by_id(task_id).await? else {
            return Ok(None);
        };
        let lease = TaskLease { task_id, worker_id: worker_id.to_string(), attempt: task.attempt };
        Ok(Some(ClaimedTask { task, instance, lease }))
    }

    async fn heartbeat(
        &self,
        lease: &TaskLease,
        progress: i64,
        now_ms: Millis,
        lease_ms: Millis,
    ) -> Result<Heartbeat, CoreError> {
        let write_guard = self.write_guard().await;
        let row = sqlx::query(
            "UPDATE function_tasks SET lease_expires_ms = $1, progress = $2 \
             WHERE id = $3 AND lease_owner = $4 AND attempt = $5 AND state = 'running' RETURNING cancel_requested",
        )
        .bind(now_ms + lease_ms)
        .bind(progress.clamp(0, 99))
        .bind(lease.task_id)
        .bind(lease.worker_id.as_str())
        .bind(lease.attempt)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        drop(write_guard);
        match row {
            None => Ok(Heartbeat::Lost),
            Some(row) => Ok(Heartbeat::Held {
                cancel_requested: row.try_get::<i64, _>("cancel_requested").map_err(storage)? != 0,
            }),
        }
    }

    async fn finish_task(&self, lease: &TaskLease, outcome: &TaskOutcome, now_ms: Millis) -> Result<bool, CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        let finished = match outcome {
            TaskOutcome::Succeeded { artifact, extend_info, .. } => sqlx::query(
                "UPDATE function_tasks SET state = 'success', progress = 100, ended_ms = $1, extend_info = $2, artifact_path = $3, \
                 artifact_sha256 = $4, artifact_bytes = $5, lease_owner = NULL, lease_expires_ms = NULL \
                 WHERE id = $6 AND lease_owner = $7 AND attempt = $8 AND state = 'running' RETURNING instance_id, generation",
            )
            .bind(now_ms)
            .bind(extend_info.as_str())
            .bind(artifact.path.as_str())
            .bind(artifact.sha256.as_str())
            .bind(artifact.bytes)
            .bind(lease.task_id)
            .bind(lease.worker_id.as_str())
            .bind(lease.attempt),
            TaskOutcome::Failed { extend_info } => sqlx::query(
                "UPDATE function_tasks SET state = 'failed', ended_ms = $1, extend_info = $2, lease_owner = NULL, lease_expires_ms = NULL \
                 WHERE id = $3 AND lease_owner = $4 AND attempt = $5 AND state = 'running' RETURNING instance_id, generation",
            )
            .bind(now_ms)
            .bind(extend_info.as_str())
            .bind(lease.task_id)
            .bind(lease.worker_id.as_str())
            .bind(lease.attempt),
        }
        .fetch_optional(&mut *transaction)
        .await
        .map_err(storage)?;
        let Some(row) = finished else {
            transaction.rollback().await.map_err(storage)?;
            return Ok(false);
        };
        if let TaskOutcome::Succeeded { extend_info, serve: true, .. } = outcome {
            let instance_id: i64 = row.try_get("instance_id").map_err(storage)?;
            let generation: i64 = row.try_get("generation").map_err(storage)?;
            // Only forward: a late success of an older generation never replaces a newer model.
            sqlx::query(
                "UPDATE function_instances SET serving_generation = $1, extend_info = $2, updated_ms = $3 \
                 WHERE id = $4 AND (serving_generation IS NULL OR serving_generation < $5)",
            )
            .bind(generation)
            .bind(extend_info.as_str())
            .bind(now_ms)
            .bind(instance_id)
            .bind(generation)
            .execute(&mut *transaction)
            .await
            .map_err(storage)?;
        }
        transaction.commit().await.map_err(storage)?;
        Ok(true)
    }

    async fn release_task(&self, lease: &TaskLease, now_ms: Millis) -> Result<bool, CoreError> {
        let write_guard = self.write_guard().await;
        // A task the user asked to cancel is not run again: it ends here, cancelled.
        let cancelled = sqlx::query(
            "UPDATE function_tasks SET state = 'failed', ended_ms = $1, extend_info = $2, lease_owner = NULL, lease_expires_ms = NULL \
             WHERE id = $3 AND lease_owner = $4 AND attempt = $5 AND state = 'running' AND cancel_requested <> 0",
        )
        .bind(now_ms)
        .bind(failure_extend_info(CANCELLED_WHILE_STOPPING, serde_json::json!({"reason": "Cancelled"})))
        .bind(lease.task_id)
        .bind(lease.worker_id.as_str())
        .bind(lease.attempt)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        if cancelled.rows_affected() > 0 {
            drop(write_guard);
            return Ok(true);
        }
        // The attempt counter stays monotonic (it is the fencing token); the allowance grows
        // instead, so a release does not use up an attempt.
        let released = sqlx::query(
            "UPDATE function_tasks SET state = 'pending', lease_owner = NULL, lease_expires_ms = NULL, progress = 0, \
             max_attempts = max_attempts + 1 WHERE id = $1 AND lease_owner = $2 AND attempt = $3 AND state = 'running'",
        )
        .bind(lease.task_id)
        .bind(lease.worker_id.as_str())
        .bind(lease.attempt)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        drop(write_guard);
        Ok(released.rows_affected() > 0)
    }

    async fn reap_lost_tasks(
        &self,
        now_ms: Millis,
        retry_delay_ms: Millis,
        dead_worker_prefix: Option<&str>,
        current_worker_id: &str,
    ) -> Result<Vec<ReapedTask>, CoreError> {
        // A plain prefix comparison (not LIKE, whose `_` and `%` are wildcards and which ignores
        // case on SQLite): node `node_1` must never take back the live tasks of `node-1`.
        let prefix = dead_worker_prefix.unwrap_or_default();
        let rows = sqlx::query(
            "SELECT id, instance_id, generation, attempt, max_attempts, lease_owner, lease_expires_ms, cancel_requested FROM function_tasks \
             WHERE state = 'running' AND (lease_expires_ms IS NULL OR lease_expires_ms < $1 \
             OR ($2 <> '' AND substr(lease_owner, 1, length($3)) = $3 AND lease_owner <> $4))",
        )
        .bind(now_ms)
        .bind(prefix)
        .bind(prefix)
        .bind(current_worker_id)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        let mut reaped = Vec::new();
        for row in rows {
            let task_id: i64 = row.try_get("id").map_err(storage)?;
            let attempt: i64 = row.try_get("attempt").map_err(storage)?;
            let max_attempts: i64 = row.try_get("max_attempts").map_err(storage)?;
            let owner: Option<String> = row.try_get("lease_owner").map_err(storage)?;
            let cancel_requested = row.try_get::<i64, _>("cancel_requested").map_err(storage)? != 0;
            // The lease as it was read: when a heartbeat renewed it since, the task stays.
            let seen_expiry: i64 = row.try_get::<Option<i64>, _>("lease_expires_ms").map_err(storage)?.unwrap_or(-1);
            let retried = attempt < max_attempts && !cancel_requested;
            let write_guard = self.write_guard().await;
            let changed = if retried {
                sqlx::query(
                    "UPDATE function_tasks SET state = 'pending', lease_owner = NULL, lease_expires_ms = NULL, progress = 0, run_after_ms = $1 \
                     WHERE id = $2 AND attempt = $3 AND state = 'running' AND COALESCE(lease_expires_ms, -1) = $4",
                )
                .bind(now_ms + retry_delay_ms)
                .bind(task_id)
                .bind(attempt)
                .bind(seen_expiry)
                .execute(&self.pool)
                .await
            } else {
                let (reason, kind) = if cancel_requested {
                    (CANCELLED_WHILE_STOPPING.to_string(), "Cancelled")
                } else {
                    let lost = format!(
                        "WorkerLost: the worker {} stopped answering during attempt {attempt} of {max_attempts}",
                        owner.as_deref().unwrap_or("?")
                    );
                    (lost, "WorkerLost")
                };
                sqlx::query(
                    "UPDATE function_tasks SET state = 'failed', ended_ms = $1, extend_info = $2, lease_owner = NULL, lease_expires_ms = NULL \
                     WHERE id = $3 AND attempt = $4 AND state = 'running' AND COALESCE(lease_expires_ms, -1) = $5",
                )
                .bind(now_ms)
                .bind(failure_extend_info(&reason, serde_json::json!({"reason": kind, "attempts": attempt})))
                .bind(task_id)
                .bind(attempt)
                .bind(seen_expiry)
                .execute(&self.pool)
                .await
            }
            .map_err(storage)?;
            drop(write_guard);
            if changed.rows_affected() > 0 {
                reaped.push(ReapedTask {
                    task_id,
                    instance_id: row.try_get("instance_id").map_err(storage)?,
                    generation: row.try_get("generation").map_err(storage)?,
                    retried,
                });
            }
        }
        Ok(reaped)
    }

    async fn request_cancel(
        &self,
        instance: &FunctionInstance,
        generation: i64,
        now_ms: Millis,
    ) -> Result<FunctionTask, CoreError> {
        let not_found = || CoreError::TaskNotExist {
            instance_name: instance.instance_name.clone(),
            generation: generation.to_string(),
        };
        let write_guard = self.write_guard().await;
        sqlx::query(
            "UPDATE function_tasks SET state = 'failed', ended_ms = $1, extend_info = $2 \
             WHERE instance_id = $3 AND generation = $4 AND state = 'pending'",
        )
        .bind(now_ms)
        .bind(failure_extend_info(
            "cancelled by the user before it started",
            serde_json::json!({"reason": "Cancelled"}),
        ))
        .bind(instance.id)
        .bind(generation)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        sqlx::query("UPDATE function_tasks SET cancel_requested = 1 WHERE instance_id = $1 AND generation = $2 AND state = 'running'")
            .bind(instance.id)
            .bind(generation)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        drop(write_guard);
        use trainyard_core::store::MetadataStore as _;
        self.find_task(instance, generation).await?.ok_or_else(not_found)
    }

    async fn scheduled_instances(&self) -> Result<Vec<FunctionInstance>, CoreError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM function_instances WHERE cron <> '' ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await.map_err(storage)?;
        rows.iter().map(|row| instance_from_row(row).map_err(CoreError::from)).collect()
    }

    async fn fire_schedule(
        &self,
        instance: &FunctionInstance,
        fire_ms: Millis,
        run_id: &str,
        now_ms: Millis,
    ) -> Result<FireOutcome, CoreError> {
        let write_guard = self.write_guard().await;
        let claimed = sqlx::query(
            "INSERT INTO schedule_fires (instance_id, fire_ms, generation, created_ms) VALUES ($1, $2, NULL, $3) \
             ON CONFLICT (instance_id, fire_ms) DO NOTHING",
        )
        .bind(instance.id)
        .bind(fire_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await;
        drop(write_guard);
        match claimed {
            Ok(result) if result.rows_affected() == 0 => return Ok(FireOutcome::AlreadyFired),
            Ok(_) => {}
            // The instance was deleted meanwhile.
            Err(error) if crate::error::is_foreign_key_violation(&error) || is_unique_violation(&error) => {
                return Ok(FireOutcome::AlreadyFired);
            }
            Err(error) => return Err(storage(error)),
        }
        // This scheduler owns the fire. A task already pending or running means skipping it
        // (the fire row stays, with no generation, as the record of the skip). If the task
        // cannot be written, the fire row goes so that the next tick tries the fire again; a
        // crash between the two steps loses this one fire (the next fire time runs as usual).
        let inserted = match self.try_insert_task(instance, run_id, TaskTrigger::Cron, now_ms).await {
            Ok(inserted) => inserted,
            Err(error) => {
                let write_guard = self.write_guard().await;
                let forgotten = sqlx::query(
                    "DELETE FROM schedule_fires WHERE instance_id = $1 AND fire_ms = $2 AND generation IS NULL",
                )
                .bind(instance.id)
                .bind(fire_ms)
                .execute(&self.pool)
                .await;
                drop(write_guard);
                if let Err(delete_error) = forgotten {
                    tracing::warn!(%delete_error, "could not forget a fire whose task was not written");
                }
                return Err(error);
            }
        };
        let Some(generation) = inserted else {
            return Ok(FireOutcome::SkippedBusy);
        };
        let write_guard = self.write_guard().await;
        sqlx::query("UPDATE schedule_fires SET generation = $1 WHERE instance_id = $2 AND fire_ms = $3")
            .bind(generation)
            .bind(instance.id)
            .bind(fire_ms)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        drop(write_guard);
        use trainyard_core::store::MetadataStore as _;
        let task = self.find_task(instance, generation).await?.ok_or_else(|| CoreError::TaskNotExist {
            instance_name: instance.instance_name.clone(),
            generation: generation.to_string(),
        })?;
        Ok(FireOutcome::Enqueued(task))
    }

    async fn prunable_generations(
        &self,
        instance: &FunctionInstance,
        keep: usize,
    ) -> Result<Vec<FunctionTask>, CoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM function_tasks WHERE instance_id = $1 AND state = 'success' AND artifact_path IS NOT NULL \
             ORDER BY generation DESC LIMIT 1000000 OFFSET $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(instance.id)
            .bind(keep as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        let serving = self.instance_by_id(instance.id).await?.and_then(|current| current.serving_generation);
        let mut prunable = Vec::new();
        for row in &rows {
            let task = task_from_row(row, instance.function_name).map_err(CoreError::from)?;
            if Some(task.generation) != serving {
                prunable.push(task);
            }
        }
        Ok(prunable)
    }

    async fn forget_artifact(&self, task_id: i64) -> Result<(), CoreError> {
        let write_guard = self.write_guard().await;
        sqlx::query("UPDATE function_tasks SET artifact_path = NULL, artifact_sha256 = NULL, artifact_bytes = NULL WHERE id = $1")
            .bind(task_id)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        drop(write_guard);
        Ok(())
    }
}
