-- RAM: users of an account, their AccessKeys (secrets sealed with the server's master key, never
-- in plaintext), policies (canonical JSON) and which policies are attached to which user.
-- Kept in lockstep with ../sqlite/0004_ram.sql.
CREATE TABLE ram_users (
    account_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    comments TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, user_name)
);

-- user_name NULL: a key of the account's root (a foreign key with a NULL column is not checked).
CREATE TABLE ram_access_keys (
    access_key_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    user_name TEXT,
    status TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    sealed_secret TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    FOREIGN KEY (account_id, user_name) REFERENCES ram_users (account_id, user_name) ON DELETE CASCADE
);
CREATE INDEX ram_access_keys_by_user ON ram_access_keys (account_id, user_name);

CREATE TABLE ram_policies (
    account_id TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    description TEXT NOT NULL,
    document TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, policy_name)
);

-- A policy cannot be deleted while attached (no cascade from ram_policies); a user's
-- attachments go with the user.
CREATE TABLE ram_user_policies (
    account_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    attached_ms BIGINT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (account_id, user_name, policy_name),
    FOREIGN KEY (account_id, user_name) REFERENCES ram_users (account_id, user_name) ON DELETE CASCADE,
    FOREIGN KEY (account_id, policy_name) REFERENCES ram_policies (account_id, policy_name)
);
CREATE INDEX ram_user_policies_by_policy ON ram_user_policies (account_id, policy_name);
