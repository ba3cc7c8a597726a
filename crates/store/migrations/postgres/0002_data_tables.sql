-- Document tables of app groups: the primary key field each table's pushes are keyed by.
-- Kept in lockstep with ../sqlite/0002_data_tables.sql.
CREATE TABLE data_tables (
    app_group_id BIGINT NOT NULL REFERENCES app_groups (id) ON DELETE CASCADE,
    table_name TEXT NOT NULL,
    primary_key TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (app_group_id, table_name)
);
