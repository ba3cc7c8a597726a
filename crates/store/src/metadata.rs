//! [`MetadataStore`] over sqlx `Any`.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use trainyard_core::CoreError;
use trainyard_core::catalog::FunctionName;
use trainyard_core::model::{
    AccountId, AppGroup, DataTable, FunctionInstance, FunctionResource, FunctionTask, Millis, Page, PageRequest,
    ResourceData, ResourceType, Tag, TaskTrigger,
};
use trainyard_core::store::{
    AppGroupChanges, AppGroupFilter, AppGroupIdentity, InstanceChanges, InstanceFilter, MetadataStore, NewAppGroup,
    NewFunctionInstance, NewFunctionResource, ResourceReference, TaskFilter,
};

use crate::SqlStore;
use crate::error::{StoreError, is_foreign_key_violation, is_unique_violation};
use crate::query::{BindValue, Conditions};
use crate::rows::{
    APP_GROUP_COLUMNS, INSTANCE_COLUMNS, RESOURCE_COLUMNS, TASK_COLUMNS, app_group_from_row, instance_from_row,
    parameters_to_json, resource_data_to_json, resource_from_row, task_from_row,
};

type AnyTransaction<'a> = sqlx::Transaction<'a, sqlx::Any>;

fn storage(error: sqlx::Error) -> CoreError {
    CoreError::from(StoreError::from_sqlx(error))
}

fn corrupt(error: StoreError) -> CoreError {
    CoreError::from(error)
}

impl SqlStore {
    async fn tags_of(&self, app_group_id: i64) -> Result<Vec<Tag>, CoreError> {
        let rows =
            sqlx::query("SELECT tag_key, tag_value FROM app_group_tags WHERE app_group_id = $1 ORDER BY position")
                .bind(app_group_id)
                .fetch_all(&self.pool)
                .await
                .map_err(storage)?;
        rows.iter()
            .map(|row| {
                Ok(Tag {
                    key: row.try_get("tag_key").map_err(storage)?,
                    value: row.try_get("tag_value").map_err(storage)?,
                })
            })
            .collect()
    }

    async fn app_group_with_tags(&self, row: &AnyRow) -> Result<AppGroup, CoreError> {
        let id: i64 = row.try_get("id").map_err(storage)?;
        let tags = self.tags_of(id).await?;
        app_group_from_row(row, tags).map_err(corrupt)
    }

    async fn find_app_group_by_id(&self, app_group_id: i64) -> Result<Option<AppGroup>, CoreError> {
        let sql = format!("SELECT {APP_GROUP_COLUMNS} FROM app_groups WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_group_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        match row {
            Some(row) => Ok(Some(self.app_group_with_tags(&row).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn instance_by_id(&self, instance_id: i64) -> Result<Option<FunctionInstance>, CoreError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM function_instances WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.map(|row| instance_from_row(&row).map_err(corrupt)).transpose()
    }

    async fn referencing_instances(&self, resource_id: i64) -> Result<Vec<String>, CoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT i.instance_name FROM resource_references r \
             JOIN function_instances i ON i.id = r.instance_id WHERE r.resource_id = $1 ORDER BY i.instance_name",
        )
        .bind(resource_id)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter().map(|row| row.try_get::<String, _>("instance_name").map_err(storage)).collect()
    }

    async fn resource_by_id(&self, resource_id: i64) -> Result<Option<FunctionResource>, CoreError> {
        let sql = format!("SELECT {RESOURCE_COLUMNS} FROM function_resources WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        match row {
            Some(row) => {
                let referenced = self.referencing_instances(resource_id).await?;
                Ok(Some(resource_from_row(&row, referenced).map_err(corrupt)?))
            }
            None => Ok(None),
        }
    }

    async fn active_generation(&self, instance_id: i64) -> Result<Option<i64>, CoreError> {
        let row = sqlx::query(
            "SELECT generation FROM function_tasks WHERE instance_id = $1 AND state IN ('pending', 'running')",
        )
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.map(|row| row.try_get::<i64, _>("generation").map_err(storage)).transpose()
    }

    /// Inserts a pending task with the next generation; `None` when a task of the instance is
    /// already pending or running (the partial unique index refused it, nothing was written).
    pub(crate) async fn try_insert_task(
        &self,
        instance: &FunctionInstance,
        run_id: &str,
        trigger: TaskTrigger,
        now_ms: Millis,
    ) -> Result<Option<i64>, CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        let generation_row = sqlx::query(
            "UPDATE function_instances SET last_generation = last_generation + 1 WHERE id = $1 RETURNING last_generation",
        )
        .bind(instance.id)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(storage)?;
        let Some(generation_row) = generation_row else {
            return Err(CoreError::InstanceNotExist {
                function_name: instance.function_name.to_string(),
                instance_name: instance.instance_name.clone(),
            });
        };
        let generation: i64 = generation_row.try_get("last_generation").map_err(storage)?;
        let inserted = sqlx::query(
            "INSERT INTO function_tasks (instance_id, generation, state, progress, run_id, extend_info, created_ms, started_ms, ended_ms, \
             run_trigger, run_after_ms) VALUES ($1, $2, 'pending', 0, $3, '{}', $4, NULL, NULL, $5, $6) RETURNING id",
        )
        .bind(instance.id)
        .bind(generation)
        .bind(run_id)
        .bind(now_ms)
        .bind(trigger.as_str())
        .bind(now_ms)
        .fetch_one(&mut *transaction)
        .await;
        match inserted {
            Ok(_) => {
                transaction.commit().await.map_err(storage)?;
                Ok(Some(generation))
            }
            Err(error) if is_unique_violation(&error) => {
                transaction.rollback().await.map_err(storage)?;
                Ok(None)
            }
            Err(error) => Err(storage(error)),
        }
    }

    /// One page of `table` rows matching `conditions` in `order`, and the number of matches
    /// over all pages. `columns`, `table` and `order` are fixed fragments of this crate.
    async fn fetch_page(
        &self,
        columns: &str,
        table: &str,
        conditions: &Conditions,
        order: &str,
        page: PageRequest,
    ) -> Result<(Vec<AnyRow>, i64), CoreError> {
        let count_sql = format!("SELECT COUNT(*) AS total FROM {table}{}", conditions.where_clause());
        let count_row = conditions.query(count_sql, &[]).fetch_one(&self.pool).await.map_err(storage)?;
        let total_count = count_row.try_get::<i64, _>("total").map_err(storage)?;
        let next = conditions.bound_count();
        let page_sql = format!(
            "SELECT {columns} FROM {table}{} ORDER BY {order} LIMIT ${} OFFSET ${}",
            conditions.where_clause(),
            next + 1,
            next + 2
        );
        let rows = conditions
            .query(page_sql, &[BindValue::Integer(page.page_size), BindValue::Integer(page.offset())])
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        Ok((rows, total_count))
    }
}

fn data_table_from_row(row: &AnyRow) -> Result<DataTable, CoreError> {
    Ok(DataTable {
        app_group_id: row.try_get("app_group_id").map_err(storage)?,
        table_name: row.try_get("table_name").map_err(storage)?,
        primary_key: row.try_get("primary_key").map_err(storage)?,
        created_ms: row.try_get("created_ms").map_err(storage)?,
    })
}

/// Checks each reference (same app group and function, right type) and records it.
async fn write_references(
    transaction: &mut AnyTransaction<'_>,
    instance: (i64, i64, FunctionName),
    references: &[ResourceReference],
) -> Result<(), CoreError> {
    let (instance_id, app_group_id, function_name) = instance;
    for reference in references {
        // A no-op UPDATE rather than a SELECT: it row-locks the resource (FOR NO KEY UPDATE on
        // PostgreSQL), which conflicts with the lock delete_resource takes before its check, so a
        // reference and the deletion of its resource are serialized. The FOREIGN KEY check alone
        // takes only FOR KEY SHARE, which does not conflict, and both would succeed.
        let row = sqlx::query(
            "UPDATE function_resources SET modified_ms = modified_ms \
             WHERE app_group_id = $1 AND function_name = $2 AND resource_name = $3 RETURNING id, resource_type",
        )
        .bind(app_group_id)
        .bind(function_name.as_str())
        .bind(reference.resource_name.as_str())
        .fetch_optional(&mut **transaction)
        .await
        .map_err(storage)?;
        let Some(row) = row else {
            return Err(CoreError::invalid(
                &reference.parameter_field,
                format!(
                    "resource \"{}\" ({}) of function {function_name} does not exist in this app group; create it with CreateFunctionResource first",
                    reference.resource_name,
                    reference.resource_type.as_str()
                ),
            ));
        };
        let resource_id: i64 = row.try_get("id").map_err(storage)?;
        let type_text: String = row.try_get("resource_type").map_err(storage)?;
        if type_text != reference.resource_type.as_str() {
            return Err(CoreError::invalid(
                &reference.parameter_field,
                format!(
                    "resource \"{}\" is a {type_text} resource, a {} resource is needed",
                    reference.resource_name,
                    reference.resource_type.as_str()
                ),
            ));
        }
        sqlx::query("INSERT INTO resource_references (instance_id, parameter_field, resource_id) VALUES ($1, $2, $3)")
            .bind(instance_id)
            .bind(reference.parameter_field.as_str())
            .bind(resource_id)
            .execute(&mut **transaction)
            .await
            .map_err(storage)?;
    }
    Ok(())
}

#[async_trait]
impl MetadataStore for SqlStore {
    async fn insert_app_group(&self, new_app_group: NewAppGroup) -> Result<AppGroup, CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        let inserted = sqlx::query(
            "INSERT INTO app_groups (account_id, name, app_type, charge_type, description, domain, resource_group_id, \
             quota_doc_size, quota_compute_resource, quota_spec, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(new_app_group.account_id.0.as_str())
        .bind(new_app_group.name.as_str())
        .bind(new_app_group.app_type.as_str())
        .bind(new_app_group.charge_type.as_str())
        .bind(new_app_group.description.as_str())
        .bind(new_app_group.domain.as_str())
        .bind(new_app_group.resource_group_id.as_str())
        .bind(new_app_group.quota.doc_size)
        .bind(new_app_group.quota.compute_resource)
        .bind(new_app_group.quota.spec.as_str())
        .bind(new_app_group.created_ms)
        .bind(new_app_group.created_ms)
        .fetch_one(&mut *transaction)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(error) if is_unique_violation(&error) => {
                return Err(CoreError::AppAlreadyExist { name: new_app_group.name });
            }
            Err(error) => return Err(storage(error)),
        };
        let app_group_id: i64 = row.try_get("id").map_err(storage)?;
        for (position, tag) in new_app_group.tags.iter().enumerate() {
            sqlx::query(
                "INSERT INTO app_group_tags (app_group_id, position, tag_key, tag_value) VALUES ($1, $2, $3, $4)",
            )
            .bind(app_group_id)
            .bind(position as i64)
            .bind(tag.key.as_str())
            .bind(tag.value.as_str())
            .execute(&mut *transaction)
            .await
            .map_err(storage)?;
        }
        transaction.commit().await.map_err(storage)?;
        drop(_write_guard);
        self.find_app_group_by_id(app_group_id)
            .await?
            .ok_or_else(|| CoreError::AppNotFound { identity: app_group_id.to_string() })
    }

    async fn find_app_group(
        &self,
        account_id: &AccountId,
        identity: &AppGroupIdentity,
    ) -> Result<Option<AppGroup>, CoreError> {
        let row = match identity {
            AppGroupIdentity::Id(id) => {
                let sql = format!("SELECT {APP_GROUP_COLUMNS} FROM app_groups WHERE account_id = $1 AND id = $2");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(account_id.0.as_str())
                    .bind(*id)
                    .fetch_optional(&self.pool)
                    .await
            }
            AppGroupIdentity::Name(name) => {
                let sql = format!("SELECT {APP_GROUP_COLUMNS} FROM app_groups WHERE account_id = $1 AND name = $2");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(account_id.0.as_str())
                    .bind(name.as_str())
                    .fetch_optional(&self.pool)
                    .await
            }
        }
        .map_err(storage)?;
        match row {
            Some(row) => Ok(Some(self.app_group_with_tags(&row).await?)),
            None => Ok(None),
        }
    }

    async fn list_app_groups(
        &self,
        account_id: &AccountId,
        filter: &AppGroupFilter,
        page: PageRequest,
    ) -> Result<Page<AppGroup>, CoreError> {
        let mut conditions = Conditions::default();
        conditions.push("account_id = ?", vec![BindValue::Text(account_id.0.clone())]);
        if let Some(name) = &filter.name {
            conditions.push("name = ?", vec![BindValue::Text(name.clone())]);
        }
        if let Some(app_type) = &filter.app_type {
            conditions.push("app_type = ?", vec![BindValue::Text(app_type.clone())]);
        }
        if let Some(resource_group_id) = &filter.resource_group_id {
            conditions.push("resource_group_id = ?", vec![BindValue::Text(resource_group_id.clone())]);
        }
        if let Some(id) = filter.id {
            conditions.push("id = ?", vec![BindValue::Integer(id)]);
        }
        for tag in &filter.tags {
            conditions.push(
                "EXISTS (SELECT 1 FROM app_group_tags t WHERE t.app_group_id = app_groups.id AND t.tag_key = ? AND t.tag_value = ?)",
                vec![BindValue::Text(tag.key.clone()), BindValue::Text(tag.value.clone())],
            );
        }
        let order = if filter.sort_by_updated { "updated_ms DESC, id DESC" } else { "created_ms DESC, id DESC" };
        let (rows, total_count) = self.fetch_page(APP_GROUP_COLUMNS, "app_groups", &conditions, order, page).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(self.app_group_with_tags(row).await?);
        }
        Ok(Page { items, total_count })
    }

    async fn update_app_group(
        &self,
        app_group_id: i64,
        changes: &AppGroupChanges,
        now_ms: Millis,
    ) -> Result<AppGroup, CoreError> {
        let _write_guard = self.write_guard().await;
        let result = sqlx::query(
            "UPDATE app_groups SET description = COALESCE($1, description), domain = COALESCE($2, domain), \
             resource_group_id = COALESCE($3, resource_group_id), updated_ms = $4 WHERE id = $5",
        )
        .bind(changes.description.clone())
        .bind(changes.domain.clone())
        .bind(changes.resource_group_id.clone())
        .bind(now_ms)
        .bind(app_group_id)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        drop(_write_guard);
        if result.rows_affected() == 0 {
            return Err(CoreError::AppNotFound { identity: app_group_id.to_string() });
        }
        self.find_app_group_by_id(app_group_id)
            .await?
            .ok_or_else(|| CoreError::AppNotFound { identity: app_group_id.to_string() })
    }

    async fn delete_app_group(&self, app_group_id: i64) -> Result<bool, CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        // Children first, explicitly, so the outcome does not depend on cascade order.
        let statements: [&'static str; 8] = [
            "DELETE FROM data_tables WHERE app_group_id = $1",
            "DELETE FROM default_instances WHERE app_group_id = $1",
            "DELETE FROM resource_references WHERE instance_id IN (SELECT id FROM function_instances WHERE app_group_id = $1)",
            "DELETE FROM function_tasks WHERE instance_id IN (SELECT id FROM function_instances WHERE app_group_id = $1)",
            "DELETE FROM function_instances WHERE app_group_id = $1",
            "DELETE FROM function_resources WHERE app_group_id = $1",
            "DELETE FROM app_group_tags WHERE app_group_id = $1",
            "DELETE FROM app_groups WHERE id = $1",
        ];
        let mut app_groups_deleted = 0;
        for statement in statements {
            app_groups_deleted = sqlx::query(statement)
                .bind(app_group_id)
                .execute(&mut *transaction)
                .await
                .map_err(storage)?
                .rows_affected();
        }
        transaction.commit().await.map_err(storage)?;
        Ok(app_groups_deleted > 0)
    }

    async fn insert_instance(
        &self,
        new_instance: NewFunctionInstance,
        references: &[ResourceReference],
    ) -> Result<FunctionInstance, CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        let inserted = sqlx::query(
            "INSERT INTO function_instances (app_group_id, function_name, instance_name, model_type, function_type, source, \
             description, create_parameters_json, usage_parameters_json, cron, version_id, serving_generation, extend_info, \
             last_generation, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, '{}', 0, $12, $13) RETURNING id",
        )
        .bind(new_instance.app_group_id)
        .bind(new_instance.function_name.as_str())
        .bind(new_instance.instance_name.as_str())
        .bind(new_instance.model_type.as_str())
        .bind(new_instance.function_type.as_str())
        .bind(new_instance.source.as_str())
        .bind(new_instance.description.as_str())
        .bind(parameters_to_json(&new_instance.create_parameters))
        .bind(parameters_to_json(&new_instance.usage_parameters))
        .bind(new_instance.cron.as_str())
        .bind(new_instance.version_id)
        .bind(new_instance.created_ms)
        .bind(new_instance.created_ms)
        .fetch_one(&mut *transaction)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(CoreError::AppNotFound { identity: new_instance.app_group_id.to_string() });
            }
            Err(error) if is_unique_violation(&error) => {
                return Err(CoreError::InstanceAlreadyExist {
                    function_name: new_instance.function_name.to_string(),
                    instance_name: new_instance.instance_name,
                });
            }
            Err(error) => return Err(storage(error)),
        };
        let instance_id: i64 = row.try_get("id").map_err(storage)?;
        write_references(
            &mut transaction,
            (instance_id, new_instance.app_group_id, new_instance.function_name),
            references,
        )
        .await?;
        transaction.commit().await.map_err(storage)?;
        drop(_write_guard);
        self.instance_by_id(instance_id).await?.ok_or_else(|| CoreError::InstanceNotExist {
            function_name: new_instance.function_name.to_string(),
            instance_name: new_instance.instance_name,
        })
    }

    async fn find_instance(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
        instance_name: &str,
    ) -> Result<Option<FunctionInstance>, CoreError> {
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM function_instances WHERE app_group_id = $1 AND function_name = $2 AND instance_name = $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_group_id)
            .bind(function_name.as_str())
            .bind(instance_name)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.map(|row| instance_from_row(&row).map_err(corrupt)).transpose()
    }

    async fn list_instances(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
        filter: &InstanceFilter,
        page: PageRequest,
    ) -> Result<Page<FunctionInstance>, CoreError> {
        let mut conditions = Conditions::default();
        conditions.push("app_group_id = ?", vec![BindValue::Integer(app_group_id)]);
        conditions.push("function_name = ?", vec![BindValue::Text(function_name.as_str().into())]);
        if let Some(model_type) = &filter.model_type {
            conditions.push("model_type = ?", vec![BindValue::Text(model_type.clone())]);
        }
        if let Some(function_type) = &filter.function_type {
            conditions.push("function_type = ?", vec![BindValue::Text(function_type.clone())]);
        }
        if let Some(source) = filter.source {
            conditions.push("source = ?", vec![BindValue::Text(source.as_str().into())]);
        }
        let (rows, total_count) = self
            .fetch_page(INSTANCE_COLUMNS, "function_instances", &conditions, "created_ms DESC, id DESC", page)
            .await?;
        let items = rows.iter().map(|row| instance_from_row(row).map_err(corrupt)).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, total_count })
    }

    async fn update_instance(
        &self,
        instance: &FunctionInstance,
        changes: &InstanceChanges,
        references: Option<&[ResourceReference]>,
        now_ms: Millis,
    ) -> Result<FunctionInstance, CoreError> {
        let not_found = || CoreError::InstanceNotExist {
            function_name: instance.function_name.to_string(),
            instance_name: instance.instance_name.clone(),
        };
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        let result = sqlx::query(
            "UPDATE function_instances SET create_parameters_json = COALESCE($1, create_parameters_json), \
             usage_parameters_json = COALESCE($2, usage_parameters_json), cron = COALESCE($3, cron), \
             description = COALESCE($4, description), updated_ms = $5 WHERE id = $6",
        )
        .bind(changes.create_parameters.as_deref().map(parameters_to_json))
        .bind(changes.usage_parameters.as_deref().map(parameters_to_json))
        .bind(changes.cron.clone())
        .bind(changes.description.clone())
        .bind(now_ms)
        .bind(instance.id)
        .execute(&mut *transaction)
        .await
        .map_err(storage)?;
        if result.rows_affected() == 0 {
            return Err(not_found());
        }
        if let Some(references) = references {
            sqlx::query("DELETE FROM resource_references WHERE instance_id = $1")
                .bind(instance.id)
                .execute(&mut *transaction)
                .await
                .map_err(storage)?;
            write_references(
                &mut transaction,
                (instance.id, instance.app_group_id, instance.function_name),
                references,
            )
            .await?;
        }
        transaction.commit().await.map_err(storage)?;
        drop(_write_guard);
        self.instance_by_id(instance.id).await?.ok_or_else(not_found)
    }

    async fn delete_instance(&self, instance: &FunctionInstance) -> Result<(), CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        // A write first: it takes the write lock (SQLite) or the row lock (PostgreSQL) before
        // the checks, so nothing can make the instance default or busy between check and delete.
        let touched = sqlx::query("UPDATE function_instances SET updated_ms = updated_ms WHERE id = $1")
            .bind(instance.id)
            .execute(&mut *transaction)
            .await
            .map_err(storage)?;
        if touched.rows_affected() == 0 {
            return Err(CoreError::InstanceNotExist {
                function_name: instance.function_name.to_string(),
                instance_name: instance.instance_name.clone(),
            });
        }
        let is_default = sqlx::query("SELECT 1 AS found FROM default_instances WHERE instance_id = $1")
            .bind(instance.id)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(storage)?
            .is_some();
        if is_default {
            return Err(CoreError::InstanceIsDefault {
                function_name: instance.function_name.to_string(),
                instance_name: instance.instance_name.clone(),
            });
        }
        let referenced_rows = sqlx::query(
            "SELECT DISTINCT r.resource_name FROM resource_references rr JOIN function_resources r ON r.id = rr.resource_id \
             WHERE rr.instance_id = $1 ORDER BY r.resource_name",
        )
        .bind(instance.id)
        .fetch_all(&mut *transaction)
        .await
        .map_err(storage)?;
        if !referenced_rows.is_empty() {
            let names = referenced_rows
                .iter()
                .map(|row| row.try_get::<String, _>("resource_name").map_err(storage))
                .collect::<Result<Vec<_>, _>>()?;
            return Err(CoreError::InstanceInUse {
                instance_name: instance.instance_name.clone(),
                resource_names: names.join(", "),
            });
        }
        let active = sqlx::query(
            "SELECT generation FROM function_tasks WHERE instance_id = $1 AND state IN ('pending', 'running')",
        )
        .bind(instance.id)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(storage)?;
        if let Some(row) = active {
            return Err(CoreError::TaskIsRunning {
                instance_name: instance.instance_name.clone(),
                generation: row.try_get("generation").map_err(storage)?,
            });
        }
        sqlx::query("DELETE FROM function_tasks WHERE instance_id = $1")
            .bind(instance.id)
            .execute(&mut *transaction)
            .await
            .map_err(storage)?;
        sqlx::query("DELETE FROM function_instances WHERE id = $1")
            .bind(instance.id)
            .execute(&mut *transaction)
            .await
            .map_err(storage)?;
        transaction.commit().await.map_err(storage)
    }

    async fn create_task(
        &self,
        instance: &FunctionInstance,
        run_id: &str,
        now_ms: Millis,
    ) -> Result<FunctionTask, CoreError> {
        for _attempt in 0..3 {
            if let Some(generation) = self.try_insert_task(instance, run_id, TaskTrigger::Api, now_ms).await? {
                return self.find_task(instance, generation).await?.ok_or_else(|| CoreError::TaskNotExist {
                    instance_name: instance.instance_name.clone(),
                    generation: generation.to_string(),
                });
            }
            if let Some(active_generation) = self.active_generation(instance.id).await? {
                return Err(CoreError::TaskIsRunning {
                    instance_name: instance.instance_name.clone(),
                    generation: active_generation,
                });
            }
            // The task that held the instance finished between the refusal and the lookup:
            // the instance is free now, so try again.
        }
        Err(CoreError::StorageUnavailable { message: "the tasks of this instance keep changing; retry".into() })
    }

    async fn find_task(&self, instance: &FunctionInstance, generation: i64) -> Result<Option<FunctionTask>, CoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM function_tasks WHERE instance_id = $1 AND generation = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(instance.id)
            .bind(generation)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.map(|row| task_from_row(&row, instance.function_name).map_err(corrupt)).transpose()
    }

    async fn latest_task(&self, instance: &FunctionInstance) -> Result<Option<FunctionTask>, CoreError> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM function_tasks WHERE instance_id = $1 ORDER BY generation DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(instance.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.map(|row| task_from_row(&row, instance.function_name).map_err(corrupt)).transpose()
    }

    async fn list_tasks(
        &self,
        instance: &FunctionInstance,
        filter: &TaskFilter,
        page: PageRequest,
    ) -> Result<Page<FunctionTask>, CoreError> {
        let mut conditions = Conditions::default();
        conditions.push("instance_id = ?", vec![BindValue::Integer(instance.id)]);
        conditions.push_in("state", filter.states.iter().map(|state| BindValue::Text(state.as_str().into())).collect());
        if let Some(started_after_ms) = filter.started_after_ms {
            conditions.push("COALESCE(started_ms, created_ms) > ?", vec![BindValue::Integer(started_after_ms)]);
        }
        if let Some(ended_before_ms) = filter.ended_before_ms {
            conditions.push("ended_ms IS NOT NULL AND ended_ms < ?", vec![BindValue::Integer(ended_before_ms)]);
        }
        let (rows, total_count) = self
            .fetch_page(
                TASK_COLUMNS,
                "function_tasks",
                &conditions,
                "COALESCE(started_ms, created_ms) DESC, generation DESC",
                page,
            )
            .await?;
        let items = rows
            .iter()
            .map(|row| task_from_row(row, instance.function_name).map_err(corrupt))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, total_count })
    }

    async fn delete_task(&self, instance: &FunctionInstance, generation: i64) -> Result<(), CoreError> {
        let write_guard = self.write_guard().await;
        // Never the task of the served model: its artifact is what serving reads.
        let deleted = sqlx::query(
            "DELETE FROM function_tasks WHERE instance_id = $1 AND generation = $2 AND state NOT IN ('pending', 'running') \
             AND generation <> COALESCE((SELECT serving_generation FROM function_instances WHERE id = $3), -1)",
        )
            .bind(instance.id)
            .bind(generation)
            .bind(instance.id)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        drop(write_guard);
        if deleted.rows_affected() > 0 {
            return Ok(());
        }
        match self.find_task(instance, generation).await? {
            None => Err(CoreError::TaskNotExist {
                instance_name: instance.instance_name.clone(),
                generation: generation.to_string(),
            }),
            Some(task) => Err(CoreError::TaskUnableDelete {
                instance_name: instance.instance_name.clone(),
                generation,
                reason: if task.state.is_active() {
                    format!("it is {}; a task that is pending or running cannot be deleted", task.state.as_str())
                } else {
                    "its model is the one the instance serves".to_string()
                },
            }),
        }
    }

    async fn insert_resource(&self, new_resource: NewFunctionResource) -> Result<FunctionResource, CoreError> {
        let write_guard = self.write_guard().await;
        let inserted = sqlx::query(
            "INSERT INTO function_resources (app_group_id, function_name, resource_name, resource_type, description, data_json, \
             created_ms, modified_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(new_resource.app_group_id)
        .bind(new_resource.function_name.as_str())
        .bind(new_resource.resource_name.as_str())
        .bind(new_resource.resource_type.as_str())
        .bind(new_resource.description.as_str())
        .bind(resource_data_to_json(&new_resource.data))
        .bind(new_resource.created_ms)
        .bind(new_resource.created_ms)
        .fetch_one(&self.pool)
        .await;
        drop(write_guard);
        let row = match inserted {
            Ok(row) => row,
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(CoreError::AppNotFound { identity: new_resource.app_group_id.to_string() });
            }
            Err(error) if is_unique_violation(&error) => {
                return Err(CoreError::ResourceAlreadyExist {
                    function_name: new_resource.function_name.to_string(),
                    resource_name: new_resource.resource_name,
                });
            }
            Err(error) => return Err(storage(error)),
        };
        let resource_id: i64 = row.try_get("id").map_err(storage)?;
        self.resource_by_id(resource_id).await?.ok_or_else(|| CoreError::ResourceNotExist {
            function_name: new_resource.function_name.to_string(),
            resource_name: new_resource.resource_name,
        })
    }

    async fn find_resource(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
        resource_name: &str,
    ) -> Result<Option<FunctionResource>, CoreError> {
        let row = sqlx::query(
            "SELECT id FROM function_resources WHERE app_group_id = $1 AND function_name = $2 AND resource_name = $3",
        )
        .bind(app_group_id)
        .bind(function_name.as_str())
        .bind(resource_name)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        match row {
            Some(row) => self.resource_by_id(row.try_get("id").map_err(storage)?).await,
            None => Ok(None),
        }
    }

    async fn list_resources(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
        resource_type: Option<ResourceType>,
        page: PageRequest,
    ) -> Result<Page<FunctionResource>, CoreError> {
        let mut conditions = Conditions::default();
        conditions.push("app_group_id = ?", vec![BindValue::Integer(app_group_id)]);
        conditions.push("function_name = ?", vec![BindValue::Text(function_name.as_str().into())]);
        if let Some(resource_type) = resource_type {
            conditions.push("resource_type = ?", vec![BindValue::Text(resource_type.as_str().into())]);
        }
        let (rows, total_count) = self
            .fetch_page(RESOURCE_COLUMNS, "function_resources", &conditions, "created_ms DESC, id DESC", page)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let resource_id: i64 = row.try_get("id").map_err(storage)?;
            let referenced = self.referencing_instances(resource_id).await?;
            items.push(resource_from_row(row, referenced).map_err(corrupt)?);
        }
        Ok(Page { items, total_count })
    }

    async fn update_resource(
        &self,
        resource: &FunctionResource,
        description: Option<&str>,
        data: Option<&ResourceData>,
        now_ms: Millis,
    ) -> Result<FunctionResource, CoreError> {
        let not_found = || CoreError::ResourceNotExist {
            function_name: resource.function_name.to_string(),
            resource_name: resource.resource_name.clone(),
        };
        let write_guard = self.write_guard().await;
        let updated = sqlx::query(
            "UPDATE function_resources SET description = COALESCE($1, description), data_json = COALESCE($2, data_json), modified_ms = $3 WHERE id = $4",
        )
        .bind(description.map(str::to_string))
        .bind(data.map(resource_data_to_json))
        .bind(now_ms)
        .bind(resource.id)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        drop(write_guard);
        if updated.rows_affected() == 0 {
            return Err(not_found());
        }
        self.resource_by_id(resource.id).await?.ok_or_else(not_found)
    }

    async fn delete_resource(&self, resource: &FunctionResource) -> Result<(), CoreError> {
        let _write_guard = self.write_guard().await;
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        let touched = sqlx::query("UPDATE function_resources SET modified_ms = modified_ms WHERE id = $1")
            .bind(resource.id)
            .execute(&mut *transaction)
            .await
            .map_err(storage)?;
        if touched.rows_affected() == 0 {
            return Err(CoreError::ResourceNotExist {
                function_name: resource.function_name.to_string(),
                resource_name: resource.resource_name.clone(),
            });
        }
        let referencing = sqlx::query(
            "SELECT DISTINCT i.instance_name FROM resource_references r JOIN function_instances i ON i.id = r.instance_id \
             WHERE r.resource_id = $1 ORDER BY i.instance_name",
        )
        .bind(resource.id)
        .fetch_all(&mut *transaction)
        .await
        .map_err(storage)?;
        if !referencing.is_empty() {
            let names = referencing
                .iter()
                .map(|row| row.try_get::<String, _>("instance_name").map_err(storage))
                .collect::<Result<Vec<_>, _>>()?;
            return Err(CoreError::ResourceInUse {
                resource_name: resource.resource_name.clone(),
                instance_names: names.join(", "),
            });
        }
        sqlx::query("DELETE FROM function_resources WHERE id = $1")
            .bind(resource.id)
            .execute(&mut *transaction)
            .await
            .map_err(storage)?;
        transaction.commit().await.map_err(storage)
    }

    async fn default_instance(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
    ) -> Result<Option<String>, CoreError> {
        let row = sqlx::query(
            "SELECT i.instance_name FROM default_instances d JOIN function_instances i ON i.id = d.instance_id \
             WHERE d.app_group_id = $1 AND d.function_name = $2",
        )
        .bind(app_group_id)
        .bind(function_name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.map(|row| row.try_get::<String, _>("instance_name").map_err(storage)).transpose()
    }

    async fn set_default_instance(
        &self,
        app_group_id: i64,
        function_name: FunctionName,
        instance_name: Option<&str>,
    ) -> Result<(), CoreError> {
        let _write_guard = self.write_guard().await;
        let Some(instance_name) = instance_name else {
            sqlx::query("DELETE FROM default_instances WHERE app_group_id = $1 AND function_name = $2")
                .bind(app_group_id)
                .bind(function_name.as_str())
                .execute(&self.pool)
                .await
                .map_err(storage)?;
            return Ok(());
        };
        let mut transaction = self.pool.begin().await.map_err(storage)?;
        // Row-lock the instance first (a no-op UPDATE: FOR NO KEY UPDATE on PostgreSQL), as
        // delete_instance does before its checks; otherwise a concurrent delete_instance passes
        // its "is it the default?" check, then deletes the instance and, by cascade, the default
        // this call has just set, and both calls succeed.
        let instance_row = sqlx::query(
            "UPDATE function_instances SET updated_ms = updated_ms \
             WHERE app_group_id = $1 AND function_name = $2 AND instance_name = $3 RETURNING id",
        )
        .bind(app_group_id)
        .bind(function_name.as_str())
        .bind(instance_name)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(storage)?;
        let Some(instance_row) = instance_row else {
            return Err(CoreError::InstanceNotExist {
                function_name: function_name.to_string(),
                instance_name: instance_name.to_string(),
            });
        };
        let instance_id: i64 = instance_row.try_get("id").map_err(storage)?;
        sqlx::query(
            "INSERT INTO default_instances (app_group_id, function_name, instance_id) VALUES ($1, $2, $3) \
             ON CONFLICT (app_group_id, function_name) DO UPDATE SET instance_id = excluded.instance_id",
        )
        .bind(app_group_id)
        .bind(function_name.as_str())
        .bind(instance_id)
        .execute(&mut *transaction)
        .await
        .map_err(storage)?;
        transaction.commit().await.map_err(storage)
    }

    async fn put_data_table(
        &self,
        app_group_id: i64,
        table_name: &str,
        primary_key: &str,
        now_ms: Millis,
    ) -> Result<DataTable, CoreError> {
        let write_guard = self.write_guard().await;
        let inserted = sqlx::query(
            "INSERT INTO data_tables (app_group_id, table_name, primary_key, created_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app_group_id, table_name) DO NOTHING",
        )
        .bind(app_group_id)
        .bind(table_name)
        .bind(primary_key)
        .bind(now_ms)
        .execute(&self.pool)
        .await;
        drop(write_guard);
        match inserted {
            Ok(_) => {}
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(CoreError::AppNotFound { identity: app_group_id.to_string() });
            }
            Err(error) => return Err(storage(error)),
        }
        let table = self
            .find_data_table(app_group_id, table_name)
            .await?
            .ok_or_else(|| CoreError::AppNotFound { identity: app_group_id.to_string() })?;
        if table.primary_key != primary_key {
            return Err(CoreError::DataTableAlreadyExist {
                table_name: table.table_name,
                primary_key: table.primary_key,
            });
        }
        Ok(table)
    }

    async fn find_data_table(&self, app_group_id: i64, table_name: &str) -> Result<Option<DataTable>, CoreError> {
        let row = sqlx::query("SELECT app_group_id, table_name, primary_key, created_ms FROM data_tables WHERE app_group_id = $1 AND table_name = $2")
            .bind(app_group_id)
            .bind(table_name)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        row.map(|row| data_table_from_row(&row)).transpose()
    }

    async fn list_data_tables(&self, app_group_id: i64) -> Result<Vec<DataTable>, CoreError> {
        let rows = sqlx::query("SELECT app_group_id, table_name, primary_key, created_ms FROM data_tables WHERE app_group_id = $1 ORDER BY table_name")
            .bind(app_group_id)
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        rows.iter().map(data_table_from_row).collect()
    }

    async fn remember_signature_nonce(
        &self,
        access_key_id: &str,
        nonce: &str,
        now_ms: Millis,
        expires_ms: Millis,
    ) -> Result<bool, CoreError> {
        let _write_guard = self.write_guard().await;
        let written = sqlx::query(
            "INSERT INTO signature_nonces (access_key_id, nonce, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (access_key_id, nonce) DO UPDATE SET expires_ms = excluded.expires_ms \
             WHERE signature_nonces.expires_ms < $4",
        )
        .bind(access_key_id)
        .bind(nonce)
        .bind(expires_ms)
        .bind(now_ms)
        .execute(&self.nonce_pool)
        .await
        .map_err(storage)?;
        Ok(written.rows_affected() > 0)
    }

    async fn forget_expired_signature_nonces(&self, now_ms: Millis) -> Result<u64, CoreError> {
        let _write_guard = self.write_guard().await;
        let deleted = sqlx::query("DELETE FROM signature_nonces WHERE expires_ms < $1")
            .bind(now_ms)
            .execute(&self.nonce_pool)
            .await
            .map_err(storage)?;
        Ok(deleted.rows_affected())
    }
}
