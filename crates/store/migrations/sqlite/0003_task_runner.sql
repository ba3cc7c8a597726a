-- The task runner: leases with fencing, retries, cancellation, artifacts, and cron fires.
-- Kept in lockstep with ../postgres/0003_task_runner.sql.
ALTER TABLE function_tasks ADD COLUMN run_trigger TEXT NOT NULL DEFAULT 'api';
-- Incremented at each claim; a worker's writes carry it, so a stale attempt cannot overwrite a newer one.
ALTER TABLE function_tasks ADD COLUMN attempt BIGINT NOT NULL DEFAULT 0;
ALTER TABLE function_tasks ADD COLUMN max_attempts BIGINT NOT NULL DEFAULT 3;
ALTER TABLE function_tasks ADD COLUMN lease_owner TEXT;
ALTER TABLE function_tasks ADD COLUMN lease_expires_ms BIGINT;
ALTER TABLE function_tasks ADD COLUMN run_after_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE function_tasks ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0;
ALTER TABLE function_tasks ADD COLUMN artifact_path TEXT;
ALTER TABLE function_tasks ADD COLUMN artifact_sha256 TEXT;
ALTER TABLE function_tasks ADD COLUMN artifact_bytes BIGINT;

CREATE INDEX function_tasks_claimable ON function_tasks (state, run_after_ms);

-- One row per cron fire time and instance: the first node to insert it owns the fire, so a fire
-- time enqueues at most one task however many schedulers run.
CREATE TABLE schedule_fires (
    instance_id BIGINT NOT NULL REFERENCES function_instances (id) ON DELETE CASCADE,
    fire_ms BIGINT NOT NULL,
    generation BIGINT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (instance_id, fire_ms)
);
