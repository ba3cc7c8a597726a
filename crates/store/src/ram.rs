//! [`RamStore`] over sqlx `Any`: users, AccessKeys (sealed secrets only), policies and their
//! attachments. Invariants held here atomically: at most `limit` keys per user (checked and
//! inserted in one transaction, under the user's row lock on PostgreSQL and the write gate on
//! SQLite), a user's keys and attachments go with the user, a policy cannot be deleted while
//! attached (foreign key, no cascade).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use trainyard_core::CoreError;
use trainyard_core::model::{AccountId, Millis};
use trainyard_core::ram::{AccessKeyStatus, Principal, RamStore, RamUser, StoredAccessKey, StoredPolicy, owner_name};

use crate::error::{StoreError, is_foreign_key_violation, is_unique_violation};
use crate::{Backend, SqlStore};

fn storage(error: sqlx::Error) -> CoreError {
    CoreError::from(StoreError::from_sqlx(error))
}

const USER_COLUMNS: &str = "account_id, user_name, display_name, comments, created_ms";
const KEY_COLUMNS: &str = "access_key_id, account_id, user_name, status, sealed_secret, created_ms";
const POLICY_COLUMNS: &str = "account_id, policy_name, description, document, created_ms";

fn user_from_row(row: &AnyRow) -> Result<RamUser, CoreError> {
    Ok(RamUser {
        account_id: AccountId(row.try_get("account_id").map_err(storage)?),
        user_name: row.try_get("user_name").map_err(storage)?,
        display_name: row.try_get("display_name").map_err(storage)?,
        comments: row.try_get("comments").map_err(storage)?,
        created_ms: row.try_get("created_ms").map_err(storage)?,
    })
}

fn key_from_row(row: &AnyRow) -> Result<StoredAccessKey, CoreError> {
    let status_text: String = row.try_get("status").map_err(storage)?;
    let status = AccessKeyStatus::parse("status", &status_text).map_err(|_| {
        CoreError::from(StoreError::CorruptRow { what: "AccessKey", reason: format!("unknown status {status_text}") })
    })?;
    Ok(StoredAccessKey {
        access_key_id: row.try_get("access_key_id").map_err(storage)?,
        account_id: AccountId(row.try_get("account_id").map_err(storage)?),
        owner: match row.try_get::<Option<String>, _>("user_name").map_err(storage)? {
            None => Principal::Root,
            Some(user_name) => Principal::User(user_name),
        },
        status,
        sealed_secret: row.try_get("sealed_secret").map_err(storage)?,
        created_ms: row.try_get("created_ms").map_err(storage)?,
    })
}

/// The owner's column value: NULL for the root account.
fn owner_column(owner: &Principal) -> Option<String> {
    match owner {
        Principal::Root => None,
        Principal::User(user_name) => Some(user_name.clone()),
    }
}

/// The condition selecting an owner's keys, its placeholder numbered `$placeholder`.
fn owner_condition(owner: &Principal, placeholder: usize) -> String {
    match owner {
        Principal::Root => "user_name IS NULL".to_string(),
        Principal::User(_) => format!("user_name = ${placeholder}"),
    }
}

fn policy_from_row(row: &AnyRow) -> Result<StoredPolicy, CoreError> {
    Ok(StoredPolicy {
        account_id: AccountId(row.try_get("account_id").map_err(storage)?),
        policy_name: row.try_get("policy_name").map_err(storage)?,
        description: row.try_get("description").map_err(storage)?,
        document: row.try_get("document").map_err(storage)?,
        created_ms: row.try_get("created_ms").map_err(storage)?,
    })
}

#[async_trait]
impl RamStore for SqlStore {
    async fn insert_user(&self, user: RamUser) -> Result<RamUser, CoreError> {
        let _write_guard = self.write_guard().await;
        let inserted = sqlx::query(
            "INSERT INTO ram_users (account_id, user_name, display_name, comments, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.account_id.0.clone())
        .bind(user.user_name.clone())
        .bind(user.display_name.clone())
        .bind(user.comments.clone())
        .bind(user.created_ms)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(user),
            Err(error) if is_unique_violation(&error) => Err(CoreError::UserAlreadyExist { user_name: user.user_name }),
            Err(error) => Err(storage(error)),
        }
    }

    async fn find_user(&self, account_id: &AccountId, user_name: &str) -> Result<Option<RamUser>, CoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM ram_users WHERE account_id = $1 AND user_name = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id.0.clone())
            .bind(user_name.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self, account_id: &AccountId) -> Result<Vec<RamUser>, CoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM ram_users WHERE account_id = $1 ORDER BY user_name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id.0.clone())
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn delete_user(&self, account_id: &AccountId, user_name: &str) -> Result<bool, CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        // Children first, explicitly, so the outcome does not depend on cascade support.
        let statements: [&'static str; 3] = [
            "DELETE FROM ram_access_keys WHERE account_id = $1 AND user_name = $2",
            "DELETE FROM ram_user_policies WHERE account_id = $1 AND user_name = $2",
            "DELETE FROM ram_users WHERE account_id = $1 AND user_name = $2",
        ];
        let mut users_deleted = 0;
        for statement in statements {
            users_deleted = sqlx::query(statement)
                .bind(account_id.0.clone())
                .bind(user_name.to_string())
                .execute(&mut *transaction)
                .await
                .map_err(storage)?
                .rows_affected();
        }
        transaction.commit().await.map_err(storage)?;
        Ok(users_deleted > 0)
    }

    async fn insert_access_key(&self, key: StoredAccessKey, limit: usize) -> Result<(), CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        match &key.owner {
            Principal::User(user_name) => {
                // The user's row lock serializes key creation for that user on PostgreSQL.
                let lock_user = match self.backend {
                    Backend::Postgres => {
                        "SELECT user_name FROM ram_users WHERE account_id = $1 AND user_name = $2 FOR UPDATE"
                    }
                    Backend::Sqlite => "SELECT user_name FROM ram_users WHERE account_id = $1 AND user_name = $2",
                };
                let user = sqlx::query(lock_user)
                    .bind(key.account_id.0.clone())
                    .bind(user_name.clone())
                    .fetch_optional(&mut *transaction)
                    .await
                    .map_err(storage)?;
                if user.is_none() {
                    return Err(CoreError::UserNotExist { user_name: user_name.clone() });
                }
            }
            Principal::Root => {
                // The root has no row to lock: the table lock (PostgreSQL) serializes root key
                // creation (rare) against itself; SQLite's write gate already does.
                if self.backend == Backend::Postgres {
                    sqlx::query("LOCK TABLE ram_access_keys IN SHARE ROW EXCLUSIVE MODE")
                        .execute(&mut *transaction)
                        .await
                        .map_err(storage)?;
                }
            }
        }
        let count_sql = format!(
            "SELECT COUNT(*) AS n FROM ram_access_keys WHERE account_id = $1 AND {}",
            owner_condition(&key.owner, 2)
        );
        let mut count_query = sqlx::query(sqlx::AssertSqlSafe(count_sql)).bind(key.account_id.0.clone());
        if let Some(user_name) = owner_column(&key.owner) {
            count_query = count_query.bind(user_name);
        }
        let count: i64 =
            count_query.fetch_one(&mut *transaction).await.map_err(storage)?.try_get("n").map_err(storage)?;
        if count >= limit as i64 {
            return Err(CoreError::AccessKeyLimitExceeded { owner: owner_name(&key.owner), limit });
        }
        let inserted = sqlx::query(
            "INSERT INTO ram_access_keys (access_key_id, account_id, user_name, status, sealed_secret, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.access_key_id.clone())
        .bind(key.account_id.0.clone())
        .bind(owner_column(&key.owner))
        .bind(key.status.as_str())
        .bind(key.sealed_secret.clone())
        .bind(key.created_ms)
        .execute(&mut *transaction)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(CoreError::UserNotExist { user_name: owner_column(&key.owner).unwrap_or_default() });
            }
            Err(error) => return Err(storage(error)),
        }
        transaction.commit().await.map_err(storage)
    }

    async fn find_access_key(&self, access_key_id: &str) -> Result<Option<StoredAccessKey>, CoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM ram_access_keys WHERE access_key_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(access_key_id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_access_keys(
        &self,
        account_id: &AccountId,
        owner: &Principal,
    ) -> Result<Vec<StoredAccessKey>, CoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM ram_access_keys WHERE account_id = $1 AND {} ORDER BY created_ms, access_key_id",
            owner_condition(owner, 2)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id.0.clone());
        if let Some(user_name) = owner_column(owner) {
            query = query.bind(user_name);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(storage)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn set_access_key_status(
        &self,
        account_id: &AccountId,
        owner: &Principal,
        access_key_id: &str,
        status: AccessKeyStatus,
    ) -> Result<bool, CoreError> {
        let _write_guard = self.write_guard().await;
        let sql = format!(
            "UPDATE ram_access_keys SET status = $1 WHERE account_id = $2 AND access_key_id = $3 AND {}",
            owner_condition(owner, 4)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status.as_str())
            .bind(account_id.0.clone())
            .bind(access_key_id.to_string());
        if let Some(user_name) = owner_column(owner) {
            query = query.bind(user_name);
        }
        let updated = query.execute(&self.pool).await.map_err(storage)?;
        Ok(updated.rows_affected() > 0)
    }

    async fn delete_access_key(
        &self,
        account_id: &AccountId,
        owner: &Principal,
        access_key_id: &str,
    ) -> Result<bool, CoreError> {
        let _write_guard = self.write_guard().await;
        let sql = format!(
            "DELETE FROM ram_access_keys WHERE account_id = $1 AND access_key_id = $2 AND {}",
            owner_condition(owner, 3)
        );
        let mut query =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id.0.clone()).bind(access_key_id.to_string());
        if let Some(user_name) = owner_column(owner) {
            query = query.bind(user_name);
        }
        let deleted = query.execute(&self.pool).await.map_err(storage)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn insert_policy(&self, policy: StoredPolicy) -> Result<StoredPolicy, CoreError> {
        let _write_guard = self.write_guard().await;
        let inserted = sqlx::query(
            "INSERT INTO ram_policies (account_id, policy_name, description, document, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(policy.account_id.0.clone())
        .bind(policy.policy_name.clone())
        .bind(policy.description.clone())
        .bind(policy.document.clone())
        .bind(policy.created_ms)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(policy),
            Err(error) if is_unique_violation(&error) => {
                Err(CoreError::PolicyAlreadyExist { policy_name: policy.policy_name })
            }
            Err(error) => Err(storage(error)),
        }
    }

    async fn find_policy(&self, account_id: &AccountId, policy_name: &str) -> Result<Option<StoredPolicy>, CoreError> {
        let sql = format!("SELECT {POLICY_COLUMNS} FROM ram_policies WHERE account_id = $1 AND policy_name = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id.0.clone())
            .bind(policy_name.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn list_policies(&self, account_id: &AccountId) -> Result<Vec<StoredPolicy>, CoreError> {
        let sql = format!("SELECT {POLICY_COLUMNS} FROM ram_policies WHERE account_id = $1 ORDER BY policy_name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id.0.clone())
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        rows.iter().map(policy_from_row).collect()
    }

    async fn delete_policy(&self, account_id: &AccountId, policy_name: &str) -> Result<bool, CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        let lock_policy = match self.backend {
            Backend::Postgres => {
                "SELECT policy_name FROM ram_policies WHERE account_id = $1 AND policy_name = $2 FOR UPDATE"
            }
            Backend::Sqlite => "SELECT policy_name FROM ram_policies WHERE account_id = $1 AND policy_name = $2",
        };
        let exists = sqlx::query(lock_policy)
            .bind(account_id.0.clone())
            .bind(policy_name.to_string())
            .fetch_optional(&mut *transaction)
            .await
            .map_err(storage)?;
        if exists.is_none() {
            return Ok(false);
        }
        let attached_to = sqlx::query(
            "SELECT user_name FROM ram_user_policies WHERE account_id = $1 AND policy_name = $2 ORDER BY user_name",
        )
        .bind(account_id.0.clone())
        .bind(policy_name.to_string())
        .fetch_all(&mut *transaction)
        .await
        .map_err(storage)?
        .iter()
        .map(|row| row.try_get::<String, _>("user_name").map_err(storage))
        .collect::<Result<Vec<_>, _>>()?;
        if !attached_to.is_empty() {
            return Err(CoreError::PolicyInUse {
                policy_name: policy_name.to_string(),
                user_names: attached_to.join(", "),
            });
        }
        let deleted = sqlx::query("DELETE FROM ram_policies WHERE account_id = $1 AND policy_name = $2")
            .bind(account_id.0.clone())
            .bind(policy_name.to_string())
            .execute(&mut *transaction)
            .await;
        let deleted = match deleted {
            Ok(result) => result.rows_affected(),
            // An attachment that raced in (SQLite has no row lock; the foreign key catches it).
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(CoreError::PolicyInUse {
                    policy_name: policy_name.to_string(),
                    user_names: "(attached concurrently)".into(),
                });
            }
            Err(error) => return Err(storage(error)),
        };
        transaction.commit().await.map_err(storage)?;
        Ok(deleted > 0)
    }

    async fn attach_policy(
        &self,
        account_id: &AccountId,
        user_name: &str,
        policy_name: &str,
        now_ms: Millis,
    ) -> Result<bool, CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        let user = sqlx::query("SELECT user_name FROM ram_users WHERE account_id = $1 AND user_name = $2")
            .bind(account_id.0.clone())
            .bind(user_name.to_string())
            .fetch_optional(&mut *transaction)
            .await
            .map_err(storage)?;
        if user.is_none() {
            return Err(CoreError::UserNotExist { user_name: user_name.to_string() });
        }
        let inserted = sqlx::query(
            "INSERT INTO ram_user_policies (account_id, user_name, policy_name, attached_ms, position) \
             SELECT $1, $2, $3, $4, COALESCE(MAX(position), 0) + 1 FROM ram_user_policies WHERE account_id = $1 AND user_name = $2 \
             ON CONFLICT (account_id, user_name, policy_name) DO NOTHING",
        )
        .bind(account_id.0.clone())
        .bind(user_name.to_string())
        .bind(policy_name.to_string())
        .bind(now_ms)
        .execute(&mut *transaction)
        .await;
        let newly_attached = match inserted {
            Ok(result) => result.rows_affected() > 0,
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(CoreError::PolicyNotExist { policy_name: policy_name.to_string() });
            }
            Err(error) => return Err(storage(error)),
        };
        transaction.commit().await.map_err(storage)?;
        Ok(newly_attached)
    }

    async fn detach_policy(
        &self,
        account_id: &AccountId,
        user_name: &str,
        policy_name: &str,
    ) -> Result<bool, CoreError> {
        let _write_guard = self.write_guard().await;
        let deleted =
            sqlx::query("DELETE FROM ram_user_policies WHERE account_id = $1 AND user_name = $2 AND policy_name = $3")
                .bind(account_id.0.clone())
                .bind(user_name.to_string())
                .bind(policy_name.to_string())
                .execute(&self.pool)
                .await
                .map_err(storage)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn policies_of_user(&self, account_id: &AccountId, user_name: &str) -> Result<Vec<StoredPolicy>, CoreError> {
        let rows = sqlx::query(
            "SELECT p.account_id, p.policy_name, p.description, p.document, p.created_ms FROM ram_user_policies a \
             JOIN ram_policies p ON p.account_id = a.account_id AND p.policy_name = a.policy_name \
             WHERE a.account_id = $1 AND a.user_name = $2 ORDER BY a.position",
        )
        .bind(account_id.0.clone())
        .bind(user_name.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter().map(policy_from_row).collect()
    }
}
