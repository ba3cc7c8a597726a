-- Metadata of Trainyard: app groups, instances, tasks, resources, defaults, signature nonces.
-- Kept in lockstep with ../postgres/0001_metadata.sql: same tables, columns and constraints.
-- Portable types only: ids and times are 64-bit integers (times in epoch milliseconds), JSON is TEXT.
-- Ids are never reused (AUTOINCREMENT here, IDENTITY there): an id once seen names one object only.

CREATE TABLE app_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    app_type TEXT NOT NULL,
    charge_type TEXT NOT NULL,
    description TEXT NOT NULL,
    domain TEXT NOT NULL,
    resource_group_id TEXT NOT NULL,
    quota_doc_size BIGINT NOT NULL,
    quota_compute_resource BIGINT NOT NULL,
    quota_spec TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE app_group_tags (
    app_group_id BIGINT NOT NULL REFERENCES app_groups (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (app_group_id, position)
);

CREATE TABLE function_instances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_group_id BIGINT NOT NULL REFERENCES app_groups (id) ON DELETE CASCADE,
    function_name TEXT NOT NULL,
    instance_name TEXT NOT NULL,
    model_type TEXT NOT NULL,
    function_type TEXT NOT NULL,
    source TEXT NOT NULL,
    description TEXT NOT NULL,
    create_parameters_json TEXT NOT NULL,
    usage_parameters_json TEXT NOT NULL,
    cron TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    serving_generation BIGINT,
    extend_info TEXT NOT NULL,
    -- The highest generation ever given to a task of this instance; never decreases, so
    -- generations are not reused after a task is deleted.
    last_generation BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    UNIQUE (app_group_id, function_name, instance_name)
);

CREATE TABLE function_tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id BIGINT NOT NULL REFERENCES function_instances (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    state TEXT NOT NULL,
    progress BIGINT NOT NULL,
    run_id TEXT NOT NULL,
    extend_info TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    started_ms BIGINT,
    ended_ms BIGINT,
    UNIQUE (instance_id, generation)
);

-- At most one pending or running task per instance, enforced by the database itself so that
-- concurrent CreateFunctionTask calls cannot both win.
CREATE UNIQUE INDEX function_tasks_one_active ON function_tasks (instance_id) WHERE state IN ('pending', 'running');

CREATE TABLE function_resources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_group_id BIGINT NOT NULL REFERENCES app_groups (id) ON DELETE CASCADE,
    function_name TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    description TEXT NOT NULL,
    data_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL,
    UNIQUE (app_group_id, function_name, resource_name)
);

CREATE TABLE resource_references (
    instance_id BIGINT NOT NULL REFERENCES function_instances (id) ON DELETE CASCADE,
    parameter_field TEXT NOT NULL,
    resource_id BIGINT NOT NULL REFERENCES function_resources (id) ON DELETE CASCADE,
    PRIMARY KEY (instance_id, parameter_field)
);

CREATE INDEX resource_references_by_resource ON resource_references (resource_id);

CREATE TABLE default_instances (
    app_group_id BIGINT NOT NULL REFERENCES app_groups (id) ON DELETE CASCADE,
    function_name TEXT NOT NULL,
    instance_id BIGINT NOT NULL REFERENCES function_instances (id) ON DELETE CASCADE,
    PRIMARY KEY (app_group_id, function_name)
);

-- WITHOUT ROWID (SQLite only): the random nonce key is the table, with no second B-tree to update.
CREATE TABLE signature_nonces (
    access_key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (access_key_id, nonce)
) WITHOUT ROWID;

CREATE INDEX signature_nonces_by_expiry ON signature_nonces (expires_ms);
