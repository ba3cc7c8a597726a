//! The store conformance suite: every test here runs against SQLite (always, a fresh database in
//! its own temporary directory) and against PostgreSQL (when `TRAINYARD_TEST_DATABASE_URL` names
//! one, e.g. under `scripts/with-postgres.sh`), so that both backends are held to one contract —
//! the one [`MetadataStore`] and [`TaskQueue`] document.
//!
//! [`store_conformance_suite!`] expands each test body into `sqlite::<name>` and
//! `postgres::<name>`; `cargo test -p trainyard-store postgres::` runs one backend only.
//!
//! PostgreSQL tests share one database (and may run concurrently with each other), so each test
//! works in an account and with access keys of its own, and never asserts on rows it did not
//! create. Claims and reaps of the task queue see every task, so the queue tests keep to a time
//! window of their own and take turns (see [`QUEUE_MS`]).

use std::fmt::Debug;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyPoolOptions;
use trainyard_core::catalog::FunctionName;
use trainyard_core::model::{
    AccountId, AppGroup, AppGroupQuota, ArtifactRef, FeatureGenerator, FunctionInstance, FunctionResource,
    FunctionTask, GeneratorFeature, InstanceSource, Millis, PageRequest, Parameter, ResourceData, ResourceType, Tag,
    TaskState, TaskTrigger,
};
use trainyard_core::queue::{ClaimedTask, FireOutcome, Heartbeat, ReapedTask, TaskLease, TaskOutcome, TaskQueue};
use trainyard_core::ram::{AccessKeyStatus, Principal, RamStore, RamUser, StoredAccessKey, StoredPolicy};
use trainyard_core::store::{
    AppGroupChanges, AppGroupFilter, AppGroupIdentity, InstanceChanges, InstanceFilter, MetadataStore, NewAppGroup,
    NewFunctionInstance, NewFunctionResource, ResourceReference, TaskFilter,
};
use trainyard_core::{CoreError, ErrorCode};
use trainyard_store::queue::failure_extend_info;
use trainyard_store::{Backend, SqlStore, sqlite_url};

const DATABASE_URL_VARIABLE: &str = "TRAINYARD_TEST_DATABASE_URL";

/// A fixed epoch (2023-11-14) so that every time a test writes is deterministic.
const BASE_MS: Millis = 1_700_000_000_000;

/// `forget_expired_signature_nonces` sweeps the whole table, also on a PostgreSQL database other
/// tests share at the same time: a nonce that must outlive the sweep test expires after all of
/// that test's sweep times (a year after [`BASE_MS`]).
const NONCE_EXPIRY_BEYOND_EVERY_SWEEP_MS: Millis = BASE_MS + 365 * 24 * 3_600 * 1_000;

/// The task queue tests live a month before [`BASE_MS`]: every task they create may run from a
/// time in `[QUEUE_MS, BASE_MS)`, and they claim and reap at such times, so that on a shared
/// PostgreSQL database no claim of theirs takes a task another test created (other tests' tasks
/// may run from `BASE_MS` on). Claims and reaps see the whole table, so queue tests also take
/// turns there: see [`TestBackend::hold_the_queue`].
const QUEUE_MS: Millis = BASE_MS - 30 * 24 * 3_600 * 1_000;

/// The lease of every claim and heartbeat of the queue tests.
const LEASE_MS: Millis = 60_000;

/// The lease expiry of a running task [`set_task_state`] sets up: no reaper ever takes it.
const NEVER_EXPIRES_MS: Millis = Millis::MAX;

/// Held by the queue test whose turn it is on a shared PostgreSQL database.
static QUEUE_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Expands each named test body (an `async fn(TestBackend)` in this file) into one
/// `#[tokio::test]` per backend, in the modules `sqlite` and `postgres`.
macro_rules! store_conformance_suite {
    ($($test_name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test_name() {
                    let backend = super::TestBackend::sqlite().await;
                    super::$test_name(backend).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test_name() {
                    let test_path = concat!("postgres::", stringify!($test_name));
                    let Some(backend) = super::TestBackend::postgres(test_path).await else {
                        return;
                    };
                    super::$test_name(backend).await;
                }
            )+
        }
    };
}

store_conformance_suite!(
    app_group_insert_and_find_by_name_and_id,
    app_group_name_is_unique_per_account_and_invisible_across_accounts,
    app_group_list_filters_sort_and_pagination,
    app_group_update_keeps_fields_that_are_not_given,
    app_group_delete_cascades_to_everything_it_owns,
    instance_insert_find_and_duplicate,
    instance_list_filters_and_pagination,
    instance_update_keeps_fields_that_are_not_given,
    resource_insert_duplicate_update_and_list,
    instance_resource_references_are_checked_and_recorded,
    referenced_resource_cannot_be_deleted,
    instance_delete_is_refused_while_default_referencing_or_busy,
    task_generations_are_sequential_and_never_reused,
    concurrent_create_task_has_exactly_one_winner,
    list_tasks_orders_by_start_and_filters,
    default_instance_set_get_and_clear,
    signature_nonces_detect_replays_until_they_expire,
    data_survives_close_and_reopen,
    data_tables_keep_their_primary_key_and_go_with_their_app_group,
    queue_claim_takes_the_oldest_claimable_task_under_a_lease,
    queue_concurrent_claimers_take_each_task_exactly_once,
    queue_heartbeat_extends_the_lease_records_progress_and_reports_cancellation,
    queue_finish_records_the_outcome_and_serves_only_when_asked,
    queue_finish_under_a_lost_lease_changes_nothing,
    queue_an_older_generation_never_replaces_a_newer_serving_model,
    queue_release_gives_the_task_back_without_using_an_attempt,
    queue_a_task_asked_to_cancel_is_never_run_again,
    queue_reaper_retries_a_lost_task_then_fails_it,
    queue_reaper_takes_back_the_leases_of_a_dead_worker_prefix,
    queue_request_cancel_fails_a_pending_task_and_flags_a_running_one,
    queue_fire_schedule_enqueues_each_fire_time_once,
    queue_concurrent_fires_of_one_fire_time_enqueue_one_task,
    queue_delete_task_keeps_the_task_of_the_served_model,
    queue_prunable_generations_keep_the_newest_and_never_the_served_one,
    ram_users_are_unique_per_account_and_invisible_across_accounts,
    ram_access_keys_are_limited_per_user_and_found_by_id,
    ram_access_key_status_and_deletion,
    ram_policies_attach_in_order_and_cannot_be_deleted_while_attached,
    ram_deleting_a_user_takes_its_keys_and_attachments,
    ram_concurrent_key_creation_respects_the_limit,
    ram_root_keys_have_no_user_and_their_own_limit,
);

// ---------------------------------------------------------------------------------------------
// The backend under test
// ---------------------------------------------------------------------------------------------

/// One store under test, and what a test needs to look behind it.
struct TestBackend {
    store: Arc<SqlStore>,
    /// The URL of the same database, for side connections that set up states the store has no
    /// public API for (or only a long way to) and that read rows and columns the store does not
    /// expose.
    database_url: String,
    /// Unique to this test, so that tests sharing one PostgreSQL database do not see each other.
    unique_suffix: String,
    /// SQLite only: owns the database directory, deleted when the test ends.
    sqlite_directory: Option<tempfile::TempDir>,
}

impl TestBackend {
    async fn sqlite() -> TestBackend {
        let sqlite_directory = tempfile::tempdir().expect("create a temporary directory for SQLite");
        let store = SqlStore::open_sqlite_in(sqlite_directory.path()).await.expect("open SQLite store");
        TestBackend {
            store: Arc::new(store),
            database_url: sqlite_url(&sqlite_directory.path().join("trainyard.db")),
            unique_suffix: unique_suffix(),
            sqlite_directory: Some(sqlite_directory),
        }
    }

    /// `None` (after saying so) when no PostgreSQL database is configured.
    async fn postgres(test_name: &str) -> Option<TestBackend> {
        let database_url = match std::env::var(DATABASE_URL_VARIABLE) {
            Ok(database_url) if !database_url.trim().is_empty() => database_url,
            _ => {
                report_skipped(test_name);
                return None;
            }
        };
        let store = SqlStore::connect(&database_url).await.unwrap_or_else(|error| {
            panic!("{DATABASE_URL_VARIABLE} is set but the store cannot connect to it: {error}")
        });
        Some(TestBackend {
            store: Arc::new(store),
            database_url,
            unique_suffix: unique_suffix(),
            sqlite_directory: None,
        })
    }

    /// An account no other test uses.
    fn account(&self, label: &str) -> AccountId {
        AccountId(format!("{label}-{}", self.unique_suffix))
    }

    /// An AccessKey id no other test uses.
    fn access_key_id(&self, label: &str) -> String {
        format!("{label}-{}", self.unique_suffix)
    }

    /// A second connection to the same database, behind the store's back.
    async fn side_connection(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.database_url)
            .await
            .unwrap_or_else(|error| panic!("side connection to the test database: {error}"))
    }

    /// Closes the store and opens it again on the same database, as a restart would.
    async fn reopen(&mut self) {
        self.store.close().await;
        let reopened = match &self.sqlite_directory {
            Some(sqlite_directory) => SqlStore::open_sqlite_in(sqlite_directory.path()).await,
            None => SqlStore::connect(&self.database_url).await,
        };
        self.store = Arc::new(reopened.expect("reopen the store"));
    }

    /// Makes this test the only queue test using the database until the guard is dropped. A
    /// SQLite database is the test's own: nothing to do. On PostgreSQL, queue tests take turns,
    /// and what an earlier queue test of the run left claimable in the queue window (it failed
    /// half-way) is failed first, so that one failure does not spread to every later queue test.
    async fn hold_the_queue(&self) -> Option<tokio::sync::MutexGuard<'static, ()>> {
        if self.store.backend() == Backend::Sqlite {
            return None;
        }
        let turn = QUEUE_TURN.lock().await;
        let side_connection = self.side_connection().await;
        sqlx::query(
            "UPDATE function_tasks SET state = 'failed', lease_owner = NULL, lease_expires_ms = NULL \
             WHERE state IN ('pending', 'running') AND run_after_ms < $1",
        )
        .bind(BASE_MS)
        .execute(&side_connection)
        .await
        .expect("fail what earlier queue tests left in the queue window");
        side_connection.close().await;
        Some(turn)
    }
}

/// Says, visibly, that a PostgreSQL test did not run and how to run it.
fn report_skipped(test_name: &str) {
    // Written to the process's stderr rather than with `eprintln!`, which the test harness
    // captures and hides for passing tests: a skipped backend must never look like a pass.
    let mut standard_error = std::io::stderr().lock();
    let _ = writeln!(
        standard_error,
        "skipped: {test_name}: {DATABASE_URL_VARIABLE} is not set, so this PostgreSQL conformance test did not \
         run (run `bash scripts/with-postgres.sh cargo test -p trainyard-store` to include PostgreSQL)"
    );
}

/// Process id, wall clock and a counter: unique across concurrent tests and across runs
/// against a database that outlives them.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
    format!("{}-{}-{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Asserts that `result` is an error with `expected_code` and returns the error for further checks.
#[track_caller]
fn expect_error<T: Debug>(result: Result<T, CoreError>, expected_code: ErrorCode) -> CoreError {
    match result {
        Ok(value) => panic!("expected {}, got Ok({value:?})", expected_code.as_str()),
        Err(error) => {
            assert_eq!(error.code(), expected_code, "wrong error code for: {error}");
            error
        }
    }
}

#[track_caller]
fn assert_message_contains(error: &CoreError, expected_fragment: &str) {
    let message = error.to_string();
    assert!(message.contains(expected_fragment), "message {message:?} should contain {expected_fragment:?}");
}

fn page(page_number: i64, page_size: i64) -> PageRequest {
    PageRequest { page_number, page_size }
}

/// Everything there is, in one page.
fn everything() -> PageRequest {
    page(1, 1000)
}

fn tag(key: &str, value: &str) -> Tag {
    Tag { key: key.to_string(), value: value.to_string() }
}

fn parameter(name: &str, value: &str) -> Parameter {
    Parameter { name: name.to_string(), value: value.to_string() }
}

fn new_app_group(account_id: &AccountId, name: &str, created_ms: Millis) -> NewAppGroup {
    NewAppGroup {
        account_id: account_id.clone(),
        name: name.to_string(),
        app_type: "standard".to_string(),
        charge_type: "POSTPAY".to_string(),
        description: format!("app group {name}"),
        domain: "ecommerce".to_string(),
        resource_group_id: "rg-default".to_string(),
        quota: AppGroupQuota { doc_size: 10, compute_resource: 20, spec: "opensearch.share.common".to_string() },
        tags: Vec::new(),
        created_ms,
    }
}

fn new_instance(
    app_group_id: i64,
    function_name: FunctionName,
    instance_name: &str,
    created_ms: Millis,
) -> NewFunctionInstance {
    NewFunctionInstance {
        app_group_id,
        function_name,
        instance_name: instance_name.to_string(),
        model_type: "tf_checkpoint".to_string(),
        function_type: "PAAS".to_string(),
        source: InstanceSource::User,
        description: format!("instance {instance_name}"),
        create_parameters: vec![parameter("time_range", "7"), parameter("filter", "a>1")],
        usage_parameters: Vec::new(),
        cron: String::new(),
        version_id: 1,
        created_ms,
    }
}

fn new_resource(
    app_group_id: i64,
    function_name: FunctionName,
    resource_name: &str,
    resource_type: ResourceType,
    created_ms: Millis,
) -> NewFunctionResource {
    let data = match resource_type {
        ResourceType::RawFile => ResourceData { content: "word1\nword2\n".to_string(), generators: Vec::new() },
        ResourceType::FeatureGenerator => ResourceData {
            content: String::new(),
            generators: vec![FeatureGenerator {
                generator: "lookup".to_string(),
                input_features: vec![
                    GeneratorFeature { name: "user_id".to_string(), feature_type: "user".to_string() },
                    GeneratorFeature { name: "item_id".to_string(), feature_type: "item".to_string() },
                ],
                output: "user_item_lookup".to_string(),
            }],
        },
    };
    NewFunctionResource {
        app_group_id,
        function_name,
        resource_name: resource_name.to_string(),
        resource_type,
        description: format!("resource {resource_name}"),
        data,
        created_ms,
    }
}

fn raw_file_reference(parameter_field: &str, resource_name: &str) -> ResourceReference {
    ResourceReference {
        parameter_field: parameter_field.to_string(),
        resource_name: resource_name.to_string(),
        resource_type: ResourceType::RawFile,
    }
}

/// An app group of a fresh account, for tests about what lives inside one.
async fn fresh_app_group(backend: &TestBackend, name: &str) -> AppGroup {
    let account_id = backend.account("owner");
    backend.store.insert_app_group(new_app_group(&account_id, name, BASE_MS)).await.expect("insert app group")
}

fn names_of_app_groups(app_groups: &[AppGroup]) -> Vec<&str> {
    app_groups.iter().map(|app_group| app_group.name.as_str()).collect()
}

fn names_of_instances(instances: &[FunctionInstance]) -> Vec<&str> {
    instances.iter().map(|instance| instance.instance_name.as_str()).collect()
}

fn names_of_resources(resources: &[FunctionResource]) -> Vec<&str> {
    resources.iter().map(|resource| resource.resource_name.as_str()).collect()
}

/// Moves a task to `state` directly in the database, with no worker claiming and finishing it:
/// the quick way to the finished tasks that let the next one start.
async fn set_task_state(
    side_connection: &AnyPool,
    instance: &FunctionInstance,
    generation: i64,
    state: TaskState,
    started_ms: Option<Millis>,
    ended_ms: Option<Millis>,
) {
    let progress: i64 = if state.is_active() { 0 } else { 100 };
    // A running task set up here holds a lease that never expires: a queue test reaping lost
    // tasks at the same time (on a shared PostgreSQL database) must leave it to this test.
    let lease_expires_ms = (state == TaskState::Running).then_some(NEVER_EXPIRES_MS);
    let updated = sqlx::query(
        "UPDATE function_tasks SET state = $1, progress = $2, started_ms = $3, ended_ms = $4, lease_owner = NULL, \
         lease_expires_ms = $5 WHERE instance_id = $6 AND generation = $7",
    )
    .bind(state.as_str())
    .bind(progress)
    .bind(started_ms)
    .bind(ended_ms)
    .bind(lease_expires_ms)
    .bind(instance.id)
    .bind(generation)
    .execute(side_connection)
    .await
    .expect("set task state");
    assert_eq!(updated.rows_affected(), 1, "task generation {generation} of {} should exist", instance.instance_name);
}

/// `SELECT COUNT(*) ... WHERE <column> = $1` on the side connection.
async fn count_rows(side_connection: &AnyPool, count_sql: &'static str, id: i64) -> i64 {
    let row = sqlx::query(count_sql).bind(id).fetch_one(side_connection).await.expect(count_sql);
    row.try_get::<i64, _>(0).expect("count is an integer")
}

/// Creates a task and finishes it at once, as a worker would have.
async fn create_finished_task(
    backend: &TestBackend,
    side_connection: &AnyPool,
    instance: &FunctionInstance,
    state: TaskState,
    started_ms: Millis,
    ended_ms: Millis,
) -> i64 {
    let task = backend.store.create_task(instance, "api__test", started_ms).await.expect("create task");
    set_task_state(side_connection, instance, task.generation, state, Some(started_ms), Some(ended_ms)).await;
    task.generation
}

// ---------------------------------------------------------------------------------------------
// App groups
// ---------------------------------------------------------------------------------------------

async fn app_group_insert_and_find_by_name_and_id(backend: TestBackend) {
    let store = &backend.store;
    let account_id = backend.account("owner");
    let mut app_group_to_insert = new_app_group(&account_id, "shop", BASE_MS);
    app_group_to_insert.tags = vec![tag("env", "prod"), tag("team", "search")];
    let inserted = store.insert_app_group(app_group_to_insert.clone()).await.expect("insert app group");

    assert!(inserted.id > 0, "ids are positive: {}", inserted.id);
    assert_eq!(inserted.instance_id(), format!("ty-{}", inserted.id));
    assert_eq!(inserted.account_id, account_id);
    assert_eq!(inserted.name, "shop");
    assert_eq!(inserted.app_type, app_group_to_insert.app_type);
    assert_eq!(inserted.charge_type, app_group_to_insert.charge_type);
    assert_eq!(inserted.description, app_group_to_insert.description);
    assert_eq!(inserted.domain, app_group_to_insert.domain);
    assert_eq!(inserted.resource_group_id, app_group_to_insert.resource_group_id);
    assert_eq!(inserted.quota, app_group_to_insert.quota);
    assert_eq!(inserted.tags, app_group_to_insert.tags, "tags keep their order");
    assert_eq!((inserted.created_ms, inserted.updated_ms), (BASE_MS, BASE_MS));

    let found_by_name =
        store.find_app_group(&account_id, &AppGroupIdentity::Name("shop".into())).await.expect("find by name");
    assert_eq!(found_by_name.as_ref(), Some(&inserted));
    let found_by_id = store.find_app_group(&account_id, &AppGroupIdentity::Id(inserted.id)).await.expect("find by id");
    assert_eq!(found_by_id.as_ref(), Some(&inserted));

    let missing_by_name =
        store.find_app_group(&account_id, &AppGroupIdentity::Name("shops".into())).await.expect("find");
    assert_eq!(missing_by_name, None);
    let missing_by_id =
        store.find_app_group(&account_id, &AppGroupIdentity::Id(inserted.id + 1_000_000)).await.expect("find");
    assert_eq!(missing_by_id, None);
}

async fn app_group_name_is_unique_per_account_and_invisible_across_accounts(backend: TestBackend) {
    let store = &backend.store;
    let first_account = backend.account("first");
    let second_account = backend.account("second");
    let first_app_group = store.insert_app_group(new_app_group(&first_account, "shop", BASE_MS)).await.expect("insert");

    let mut duplicate = new_app_group(&first_account, "shop", BASE_MS + 1);
    duplicate.description = "a different description does not make it a different app group".into();
    let duplicate_error = expect_error(store.insert_app_group(duplicate).await, ErrorCode::AppAlreadyExist);
    assert_message_contains(&duplicate_error, "\"shop\"");
    assert_eq!(duplicate_error, CoreError::AppAlreadyExist { name: "shop".into() });

    let second_app_group = store
        .insert_app_group(new_app_group(&second_account, "shop", BASE_MS + 2))
        .await
        .expect("same name, other account");
    assert_ne!(second_app_group.id, first_app_group.id);

    // Each account sees its own app group, by name, by id and in lists; never the other's.
    let first_by_name =
        store.find_app_group(&first_account, &AppGroupIdentity::Name("shop".into())).await.expect("find");
    assert_eq!(first_by_name.map(|app_group| app_group.id), Some(first_app_group.id));
    let second_by_name =
        store.find_app_group(&second_account, &AppGroupIdentity::Name("shop".into())).await.expect("find");
    assert_eq!(second_by_name.map(|app_group| app_group.id), Some(second_app_group.id));
    let second_by_first_id =
        store.find_app_group(&second_account, &AppGroupIdentity::Id(first_app_group.id)).await.expect("find");
    assert_eq!(second_by_first_id, None, "an app group id of another account must not resolve");

    let first_list =
        store.list_app_groups(&first_account, &AppGroupFilter::default(), everything()).await.expect("list");
    assert_eq!(first_list.total_count, 1);
    assert_eq!(first_list.items.iter().map(|app_group| app_group.id).collect::<Vec<_>>(), vec![first_app_group.id]);
    let by_other_accounts_id = AppGroupFilter { id: Some(second_app_group.id), ..AppGroupFilter::default() };
    let filtered = store.list_app_groups(&first_account, &by_other_accounts_id, everything()).await.expect("list");
    assert_eq!(filtered.total_count, 0);
    assert!(filtered.items.is_empty());

    let untouched =
        store.find_app_group(&first_account, &AppGroupIdentity::Id(first_app_group.id)).await.expect("find");
    assert_eq!(untouched, Some(first_app_group), "the refused duplicate must not have changed the original");
}

async fn app_group_list_filters_sort_and_pagination(backend: TestBackend) {
    let store = &backend.store;
    let account_id = backend.account("owner");
    let other_account_id = backend.account("other");
    // Created oldest first: alpha (BASE), beta (+1s), gamma (+2s), delta (+3s), epsilon (+4s).
    let specifications: [(&str, &str, &str, Vec<Tag>); 5] = [
        ("alpha", "standard", "rg-a", vec![tag("env", "prod"), tag("team", "search")]),
        ("beta", "enhanced", "rg-a", vec![tag("env", "prod")]),
        ("gamma", "standard", "rg-b", vec![tag("env", "test"), tag("team", "search")]),
        ("delta", "enhanced", "rg-b", vec![tag("team", "search"), tag("env", "prod")]),
        ("epsilon", "standard", "rg-a", Vec::new()),
    ];
    let mut inserted_app_groups = Vec::new();
    for (index, (name, app_type, resource_group_id, tags)) in specifications.into_iter().enumerate() {
        let mut app_group_to_insert = new_app_group(&account_id, name, BASE_MS + 1_000 * index as i64);
        app_group_to_insert.app_type = app_type.to_string();
        app_group_to_insert.resource_group_id = resource_group_id.to_string();
        app_group_to_insert.tags = tags;
        inserted_app_groups.push(store.insert_app_group(app_group_to_insert).await.expect("insert"));
    }
    store.insert_app_group(new_app_group(&other_account_id, "zeta", BASE_MS + 9_000)).await.expect("insert");

    let list = |filter: AppGroupFilter, page_request: PageRequest| {
        let listed_account_id = &account_id;
        async move { store.list_app_groups(listed_account_id, &filter, page_request).await.expect("list app groups") }
    };

    let all = list(AppGroupFilter::default(), everything()).await;
    assert_eq!(all.total_count, 5, "the other account's app group is not counted");
    assert_eq!(
        names_of_app_groups(&all.items),
        ["epsilon", "delta", "gamma", "beta", "alpha"],
        "newest creation first"
    );
    assert_eq!(all.items[4], inserted_app_groups[0], "listed app groups carry their tags");

    let first_page = list(AppGroupFilter::default(), page(1, 2)).await;
    let second_page = list(AppGroupFilter::default(), page(2, 2)).await;
    let third_page = list(AppGroupFilter::default(), page(3, 2)).await;
    let past_the_end = list(AppGroupFilter::default(), page(4, 2)).await;
    assert_eq!(names_of_app_groups(&first_page.items), ["epsilon", "delta"]);
    assert_eq!(names_of_app_groups(&second_page.items), ["gamma", "beta"]);
    assert_eq!(names_of_app_groups(&third_page.items), ["alpha"]);
    assert!(past_the_end.items.is_empty());
    for listed_page in [&first_page, &second_page, &third_page, &past_the_end] {
        assert_eq!(listed_page.total_count, 5, "the total counts every page's matches");
    }

    let by_name = list(AppGroupFilter { name: Some("gamma".into()), ..AppGroupFilter::default() }, everything()).await;
    assert_eq!((names_of_app_groups(&by_name.items), by_name.total_count), (vec!["gamma"], 1));
    let by_missing_name =
        list(AppGroupFilter { name: Some("gam".into()), ..AppGroupFilter::default() }, everything()).await;
    assert_eq!((by_missing_name.items.len(), by_missing_name.total_count), (0, 0), "the name filter is exact");

    let by_type =
        list(AppGroupFilter { app_type: Some("enhanced".into()), ..AppGroupFilter::default() }, everything()).await;
    assert_eq!((names_of_app_groups(&by_type.items), by_type.total_count), (vec!["delta", "beta"], 2));

    let by_resource_group =
        list(AppGroupFilter { resource_group_id: Some("rg-b".into()), ..AppGroupFilter::default() }, everything())
            .await;
    assert_eq!(names_of_app_groups(&by_resource_group.items), ["delta", "gamma"]);

    let by_id =
        list(AppGroupFilter { id: Some(inserted_app_groups[1].id), ..AppGroupFilter::default() }, everything()).await;
    assert_eq!(names_of_app_groups(&by_id.items), ["beta"]);

    let by_one_tag =
        list(AppGroupFilter { tags: vec![tag("env", "prod")], ..AppGroupFilter::default() }, everything()).await;
    assert_eq!((names_of_app_groups(&by_one_tag.items), by_one_tag.total_count), (vec!["delta", "beta", "alpha"], 3));
    let by_two_tags = list(
        AppGroupFilter { tags: vec![tag("env", "prod"), tag("team", "search")], ..AppGroupFilter::default() },
        everything(),
    )
    .await;
    assert_eq!(names_of_app_groups(&by_two_tags.items), ["delta", "alpha"], "every tag listed must be present");
    let by_tag_with_other_value =
        list(AppGroupFilter { tags: vec![tag("env", "staging")], ..AppGroupFilter::default() }, everything()).await;
    assert_eq!(by_tag_with_other_value.total_count, 0, "a tag matches on key and value");

    let combined = list(
        AppGroupFilter {
            app_type: Some("standard".into()),
            tags: vec![tag("team", "search")],
            ..AppGroupFilter::default()
        },
        everything(),
    )
    .await;
    assert_eq!(names_of_app_groups(&combined.items), ["gamma", "alpha"], "filters combine with AND");

    // Modifying the oldest app group puts it first when sorting by modification.
    store
        .update_app_group(
            inserted_app_groups[0].id,
            &AppGroupChanges { description: Some("touched".into()), ..AppGroupChanges::default() },
            BASE_MS + 60_000,
        )
        .await
        .expect("update");
    let by_update = list(AppGroupFilter { sort_by_updated: true, ..AppGroupFilter::default() }, everything()).await;
    assert_eq!(names_of_app_groups(&by_update.items), ["alpha", "epsilon", "delta", "gamma", "beta"]);
    let by_creation = list(AppGroupFilter::default(), everything()).await;
    assert_eq!(names_of_app_groups(&by_creation.items), ["epsilon", "delta", "gamma", "beta", "alpha"]);
}

async fn app_group_update_keeps_fields_that_are_not_given(backend: TestBackend) {
    let store = &backend.store;
    let account_id = backend.account("owner");
    let mut app_group_to_insert = new_app_group(&account_id, "shop", BASE_MS);
    app_group_to_insert.tags = vec![tag("env", "prod")];
    let original = store.insert_app_group(app_group_to_insert).await.expect("insert");

    let description_only =
        AppGroupChanges { description: Some("new description".into()), ..AppGroupChanges::default() };
    let after_description =
        store.update_app_group(original.id, &description_only, BASE_MS + 5_000).await.expect("update");
    assert_eq!(after_description.description, "new description");
    assert_eq!(after_description.domain, original.domain, "a field not given is kept");
    assert_eq!(after_description.resource_group_id, original.resource_group_id, "a field not given is kept");
    assert_eq!(after_description.updated_ms, BASE_MS + 5_000);
    assert_eq!(after_description.created_ms, original.created_ms);
    assert_eq!(after_description.tags, original.tags);

    let other_fields =
        AppGroupChanges { description: None, domain: Some("education".into()), resource_group_id: Some(String::new()) };
    let after_other_fields = store.update_app_group(original.id, &other_fields, BASE_MS + 6_000).await.expect("update");
    assert_eq!(after_other_fields.description, "new description");
    assert_eq!(after_other_fields.domain, "education");
    assert_eq!(after_other_fields.resource_group_id, "", "Some(empty) sets an empty value, unlike None");

    let nothing =
        store.update_app_group(original.id, &AppGroupChanges::default(), BASE_MS + 7_000).await.expect("update");
    assert_eq!(AppGroup { updated_ms: after_other_fields.updated_ms, ..nothing.clone() }, after_other_fields);
    assert_eq!(nothing.updated_ms, BASE_MS + 7_000);

    let found = store.find_app_group(&account_id, &AppGroupIdentity::Id(original.id)).await.expect("find");
    assert_eq!(found, Some(nothing), "the update is what is stored");

    let missing_error = expect_error(
        store.update_app_group(original.id + 1_000_000, &description_only, BASE_MS).await,
        ErrorCode::AppNotFound,
    );
    assert_message_contains(&missing_error, &(original.id + 1_000_000).to_string());
}

async fn app_group_delete_cascades_to_everything_it_owns(backend: TestBackend) {
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let account_id = backend.account("owner");
    let mut doomed_to_insert = new_app_group(&account_id, "doomed", BASE_MS);
    doomed_to_insert.tags = vec![tag("env", "prod"), tag("team", "search")];
    let doomed = store.insert_app_group(doomed_to_insert).await.expect("insert");
    let survivor = store.insert_app_group(new_app_group(&account_id, "survivor", BASE_MS)).await.expect("insert");

    // Give both app groups one of everything: tags, a resource, an instance referencing it,
    // a default instance and a finished and a pending task.
    let mut owned_instances = Vec::new();
    for app_group in [&doomed, &survivor] {
        store
            .insert_resource(new_resource(
                app_group.id,
                FunctionName::Hot,
                "allow_list",
                ResourceType::RawFile,
                BASE_MS,
            ))
            .await
            .expect("insert resource");
        let instance = store
            .insert_instance(
                new_instance(app_group.id, FunctionName::Hot, "hot_instance", BASE_MS),
                &[raw_file_reference("usageParameters.allow_dict_id", "allow_list")],
            )
            .await
            .expect("insert instance");
        store.set_default_instance(app_group.id, FunctionName::Hot, Some("hot_instance")).await.expect("set default");
        create_finished_task(
            &backend,
            &side_connection,
            &instance,
            TaskState::Success,
            BASE_MS + 1_000,
            BASE_MS + 2_000,
        )
        .await;
        store.create_task(&instance, "api__pending", BASE_MS + 3_000).await.expect("create pending task");
        owned_instances.push(instance);
    }
    let doomed_instance = &owned_instances[0];

    assert!(store.delete_app_group(doomed.id).await.expect("delete app group"), "an existing app group is deleted");

    assert_eq!(store.find_app_group(&account_id, &AppGroupIdentity::Id(doomed.id)).await.expect("find"), None);
    assert_eq!(store.find_instance(doomed.id, FunctionName::Hot, "hot_instance").await.expect("find"), None);
    assert_eq!(store.find_resource(doomed.id, FunctionName::Hot, "allow_list").await.expect("find"), None);
    assert_eq!(store.default_instance(doomed.id, FunctionName::Hot).await.expect("default"), None);
    let orphan_checks: [(&'static str, i64); 7] = [
        ("SELECT COUNT(*) AS total FROM app_groups WHERE id = $1", doomed.id),
        ("SELECT COUNT(*) AS total FROM app_group_tags WHERE app_group_id = $1", doomed.id),
        ("SELECT COUNT(*) AS total FROM function_instances WHERE app_group_id = $1", doomed.id),
        ("SELECT COUNT(*) AS total FROM function_tasks WHERE instance_id = $1", doomed_instance.id),
        ("SELECT COUNT(*) AS total FROM function_resources WHERE app_group_id = $1", doomed.id),
        ("SELECT COUNT(*) AS total FROM resource_references WHERE instance_id = $1", doomed_instance.id),
        ("SELECT COUNT(*) AS total FROM default_instances WHERE app_group_id = $1", doomed.id),
    ];
    for (count_sql, id) in orphan_checks {
        assert_eq!(
            count_rows(&side_connection, count_sql, id).await,
            0,
            "left behind after delete_app_group: {count_sql} [{id}]"
        );
    }

    // The other app group of the same account keeps everything.
    let survivor_instance = &owned_instances[1];
    assert_eq!(
        store
            .find_app_group(&account_id, &AppGroupIdentity::Id(survivor.id))
            .await
            .expect("find")
            .map(|app_group| app_group.id),
        Some(survivor.id)
    );
    assert_eq!(
        store.default_instance(survivor.id, FunctionName::Hot).await.expect("default").as_deref(),
        Some("hot_instance")
    );
    let survivor_resource = store.find_resource(survivor.id, FunctionName::Hot, "allow_list").await.expect("find");
    assert_eq!(survivor_resource.map(|resource| resource.referenced_instances), Some(vec!["hot_instance".to_string()]));
    let survivor_tasks = store.list_tasks(survivor_instance, &TaskFilter::default(), everything()).await.expect("list");
    assert_eq!(survivor_tasks.total_count, 2);

    assert!(
        !store.delete_app_group(doomed.id).await.expect("delete again"),
        "deleting a missing app group answers false"
    );
}

// ---------------------------------------------------------------------------------------------
// Instances
// ---------------------------------------------------------------------------------------------

async fn instance_insert_find_and_duplicate(backend: TestBackend) {
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    let other_app_group =
        store.insert_app_group(new_app_group(&app_group.account_id, "other", BASE_MS)).await.expect("insert");

    let mut instance_to_insert = new_instance(app_group.id, FunctionName::Ctr, "ctr_instance", BASE_MS + 10);
    instance_to_insert.usage_parameters = vec![parameter("z_last", "1"), parameter("a_first", "2")];
    instance_to_insert.cron = "0 3 * * *".into();
    instance_to_insert.version_id = 7;
    instance_to_insert.source = InstanceSource::Builtin;
    let inserted = store.insert_instance(instance_to_insert.clone(), &[]).await.expect("insert instance");

    assert!(inserted.id > 0);
    assert_eq!(inserted.app_group_id, app_group.id);
    assert_eq!(inserted.function_name, FunctionName::Ctr);
    assert_eq!(inserted.instance_name, "ctr_instance");
    assert_eq!(inserted.model_type, instance_to_insert.model_type);
    assert_eq!(inserted.function_type, instance_to_insert.function_type);
    assert_eq!(inserted.source, InstanceSource::Builtin);
    assert_eq!(inserted.description, instance_to_insert.description);
    assert_eq!(inserted.create_parameters, instance_to_insert.create_parameters);
    assert_eq!(inserted.usage_parameters, instance_to_insert.usage_parameters, "parameters keep their order");
    assert_eq!(inserted.cron, "0 3 * * *");
    assert_eq!(inserted.version_id, 7);
    assert_eq!(inserted.serving_generation, None, "nothing is served before a task succeeds");
    assert_eq!(inserted.status(), "unavailable");
    assert_eq!(inserted.extend_info, "{}");
    assert_eq!((inserted.created_ms, inserted.updated_ms), (BASE_MS + 10, BASE_MS + 10));

    let found = store.find_instance(app_group.id, FunctionName::Ctr, "ctr_instance").await.expect("find");
    assert_eq!(found.as_ref(), Some(&inserted));
    assert_eq!(store.find_instance(app_group.id, FunctionName::Pop, "ctr_instance").await.expect("find"), None);
    assert_eq!(store.find_instance(app_group.id, FunctionName::Ctr, "ctr_instanc").await.expect("find"), None);
    assert_eq!(store.find_instance(other_app_group.id, FunctionName::Ctr, "ctr_instance").await.expect("find"), None);

    let mut duplicate = new_instance(app_group.id, FunctionName::Ctr, "ctr_instance", BASE_MS + 20);
    duplicate.description = "a different description does not make it a different instance".into();
    let duplicate_error = expect_error(store.insert_instance(duplicate, &[]).await, ErrorCode::InstanceAlreadyExist);
    assert_eq!(
        duplicate_error,
        CoreError::InstanceAlreadyExist { function_name: "ctr".into(), instance_name: "ctr_instance".into() }
    );
    let after_duplicate = store.find_instance(app_group.id, FunctionName::Ctr, "ctr_instance").await.expect("find");
    assert_eq!(after_duplicate, Some(inserted.clone()), "the refused duplicate must not have changed the original");

    // The name is scoped to (app group, function).
    let same_name_other_function =
        store.insert_instance(new_instance(app_group.id, FunctionName::Pop, "ctr_instance", BASE_MS), &[]).await;
    assert_eq!(same_name_other_function.expect("same name, other function").function_name, FunctionName::Pop);
    let same_name_other_app_group =
        store.insert_instance(new_instance(other_app_group.id, FunctionName::Ctr, "ctr_instance", BASE_MS), &[]).await;
    assert_ne!(same_name_other_app_group.expect("same name, other app group").id, inserted.id);
}

async fn instance_list_filters_and_pagination(backend: TestBackend) {
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    // (name, model type, function type, source), created one second apart, oldest first.
    let specifications = [
        ("first", "tf_checkpoint", "PAAS", InstanceSource::User),
        ("second", "offline_inference", "PAAS", InstanceSource::User),
        ("third", "tf_checkpoint", "SAAS", InstanceSource::Builtin),
        ("fourth", "tf_checkpoint", "PAAS", InstanceSource::Builtin),
        ("fifth", "offline_inference", "SAAS", InstanceSource::User),
    ];
    for (index, (name, model_type, function_type, source)) in specifications.into_iter().enumerate() {
        let mut instance_to_insert =
            new_instance(app_group.id, FunctionName::Hot, name, BASE_MS + 1_000 * index as i64);
        instance_to_insert.model_type = model_type.to_string();
        instance_to_insert.function_type = function_type.to_string();
        instance_to_insert.source = source;
        store.insert_instance(instance_to_insert, &[]).await.expect("insert instance");
    }
    store
        .insert_instance(new_instance(app_group.id, FunctionName::Hint, "other_function", BASE_MS + 9_000), &[])
        .await
        .expect("insert");

    let list = |filter: InstanceFilter, page_request: PageRequest| async move {
        store.list_instances(app_group.id, FunctionName::Hot, &filter, page_request).await.expect("list instances")
    };

    let all = list(InstanceFilter::default(), everything()).await;
    assert_eq!(all.total_count, 5, "instances of other functions are not listed");
    assert_eq!(
        names_of_instances(&all.items),
        ["fifth", "fourth", "third", "second", "first"],
        "newest creation first"
    );

    let second_page = list(InstanceFilter::default(), page(2, 2)).await;
    assert_eq!((names_of_instances(&second_page.items), second_page.total_count), (vec!["third", "second"], 5));
    let last_page = list(InstanceFilter::default(), page(3, 2)).await;
    assert_eq!((names_of_instances(&last_page.items), last_page.total_count), (vec!["first"], 5));
    let past_the_end = list(InstanceFilter::default(), page(9, 2)).await;
    assert_eq!((past_the_end.items.len(), past_the_end.total_count), (0, 5));

    let by_model_type = list(
        InstanceFilter { model_type: Some("offline_inference".into()), ..InstanceFilter::default() },
        everything(),
    )
    .await;
    assert_eq!((names_of_instances(&by_model_type.items), by_model_type.total_count), (vec!["fifth", "second"], 2));
    let by_function_type =
        list(InstanceFilter { function_type: Some("SAAS".into()), ..InstanceFilter::default() }, everything()).await;
    assert_eq!(names_of_instances(&by_function_type.items), ["fifth", "third"]);
    let builtin_only =
        list(InstanceFilter { source: Some(InstanceSource::Builtin), ..InstanceFilter::default() }, everything()).await;
    assert_eq!(names_of_instances(&builtin_only.items), ["fourth", "third"]);
    let user_only =
        list(InstanceFilter { source: Some(InstanceSource::User), ..InstanceFilter::default() }, everything()).await;
    assert_eq!(names_of_instances(&user_only.items), ["fifth", "second", "first"]);
    let combined = list(
        InstanceFilter {
            model_type: Some("tf_checkpoint".into()),
            function_type: Some("PAAS".into()),
            source: Some(InstanceSource::User),
        },
        everything(),
    )
    .await;
    assert_eq!((names_of_instances(&combined.items), combined.total_count), (vec!["first"], 1));
    let no_match =
        list(InstanceFilter { model_type: Some("tf".into()), ..InstanceFilter::default() }, everything()).await;
    assert_eq!((no_match.items.len(), no_match.total_count), (0, 0));
}

async fn instance_update_keeps_fields_that_are_not_given(backend: TestBackend) {
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    let mut instance_to_insert = new_instance(app_group.id, FunctionName::Hot, "hot_instance", BASE_MS);
    instance_to_insert.usage_parameters = vec![parameter("filter", "a>1")];
    instance_to_insert.cron = "0 1 * * *".into();
    let original = store.insert_instance(instance_to_insert, &[]).await.expect("insert");

    let cron_only = InstanceChanges { cron: Some("0 2 * * *".into()), ..InstanceChanges::default() };
    let after_cron = store.update_instance(&original, &cron_only, None, BASE_MS + 1_000).await.expect("update");
    assert_eq!(
        after_cron,
        FunctionInstance { cron: "0 2 * * *".into(), updated_ms: BASE_MS + 1_000, ..original.clone() },
        "only the cron and the modification time change"
    );

    let parameters_and_description = InstanceChanges {
        create_parameters: Some(vec![parameter("time_range", "30")]),
        usage_parameters: Some(Vec::new()),
        cron: None,
        description: Some("retrained monthly".into()),
    };
    let after_parameters =
        store.update_instance(&after_cron, &parameters_and_description, None, BASE_MS + 2_000).await.expect("update");
    assert_eq!(after_parameters.create_parameters, vec![parameter("time_range", "30")]);
    assert_eq!(after_parameters.usage_parameters, Vec::new(), "Some(empty) clears the parameters, unlike None");
    assert_eq!(after_parameters.description, "retrained monthly");
    assert_eq!(after_parameters.cron, "0 2 * * *", "a field not given is kept");

    let clear_cron = InstanceChanges { cron: Some(String::new()), ..InstanceChanges::default() };
    let after_clear =
        store.update_instance(&after_parameters, &clear_cron, None, BASE_MS + 3_000).await.expect("update");
    assert_eq!(after_clear.cron, "");
    assert_eq!(after_clear.description, "retrained monthly");

    let nothing =
        store.update_instance(&after_clear, &InstanceChanges::default(), None, BASE_MS + 4_000).await.expect("update");
    assert_eq!(nothing, FunctionInstance { updated_ms: BASE_MS + 4_000, ..after_clear.clone() });
    let found = store.find_instance(app_group.id, FunctionName::Hot, "hot_instance").await.expect("find");
    assert_eq!(found, Some(nothing.clone()), "the update is what is stored");
    assert_eq!(nothing.created_ms, original.created_ms);

    store.delete_instance(&nothing).await.expect("delete");
    let gone_error = expect_error(
        store.update_instance(&nothing, &cron_only, None, BASE_MS + 5_000).await,
        ErrorCode::InstanceNotExist,
    );
    assert_message_contains(&gone_error, "\"hot_instance\"");
}

// ---------------------------------------------------------------------------------------------
// Resources and references
// ---------------------------------------------------------------------------------------------

async fn resource_insert_duplicate_update_and_list(backend: TestBackend) {
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    let raw_file_to_insert =
        new_resource(app_group.id, FunctionName::Hot, "allow_list", ResourceType::RawFile, BASE_MS);
    let raw_file = store.insert_resource(raw_file_to_insert.clone()).await.expect("insert");
    assert_eq!(raw_file.resource_name, "allow_list");
    assert_eq!(raw_file.resource_type, ResourceType::RawFile);
    assert_eq!(raw_file.description, raw_file_to_insert.description);
    assert_eq!(raw_file.data, raw_file_to_insert.data);
    assert!(raw_file.referenced_instances.is_empty());
    assert_eq!((raw_file.created_ms, raw_file.modified_ms), (BASE_MS, BASE_MS));

    let generator_to_insert =
        new_resource(app_group.id, FunctionName::Hot, "features", ResourceType::FeatureGenerator, BASE_MS + 1);
    let generator = store.insert_resource(generator_to_insert.clone()).await.expect("insert");
    assert_eq!(generator.data, generator_to_insert.data, "generators round-trip");
    store
        .insert_resource(new_resource(
            app_group.id,
            FunctionName::Hint,
            "hint_file",
            ResourceType::RawFile,
            BASE_MS + 2,
        ))
        .await
        .expect("insert");

    let duplicate_error = expect_error(
        store
            .insert_resource(new_resource(
                app_group.id,
                FunctionName::Hot,
                "allow_list",
                ResourceType::FeatureGenerator,
                BASE_MS,
            ))
            .await,
        ErrorCode::ResourceAlreadyExist,
    );
    assert_eq!(
        duplicate_error,
        CoreError::ResourceAlreadyExist { function_name: "hot".into(), resource_name: "allow_list".into() }
    );
    store
        .insert_resource(new_resource(
            app_group.id,
            FunctionName::Pop,
            "allow_list",
            ResourceType::RawFile,
            BASE_MS + 3,
        ))
        .await
        .expect("same name, other function");

    let all_hot = store.list_resources(app_group.id, FunctionName::Hot, None, everything()).await.expect("list");
    assert_eq!((names_of_resources(&all_hot.items), all_hot.total_count), (vec!["features", "allow_list"], 2));
    let raw_files = store
        .list_resources(app_group.id, FunctionName::Hot, Some(ResourceType::RawFile), everything())
        .await
        .expect("list");
    assert_eq!(names_of_resources(&raw_files.items), ["allow_list"]);
    let second_page = store.list_resources(app_group.id, FunctionName::Hot, None, page(2, 1)).await.expect("list");
    assert_eq!((names_of_resources(&second_page.items), second_page.total_count), (vec!["allow_list"], 2));

    let new_data = ResourceData { content: "word3\n".into(), generators: Vec::new() };
    let after_data = store.update_resource(&raw_file, None, Some(&new_data), BASE_MS + 1_000).await.expect("update");
    assert_eq!(after_data.data, new_data);
    assert_eq!(after_data.description, raw_file.description, "a description not given is kept");
    assert_eq!(after_data.modified_ms, BASE_MS + 1_000);
    let after_description =
        store.update_resource(&after_data, Some("renamed"), None, BASE_MS + 2_000).await.expect("update");
    assert_eq!(after_description.description, "renamed");
    assert_eq!(after_description.data, new_data, "data not given is kept");
    let found = store.find_resource(app_group.id, FunctionName::Hot, "allow_list").await.expect("find");
    assert_eq!(found, Some(after_description));
}

async fn instance_resource_references_are_checked_and_recorded(backend: TestBackend) {
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    store
        .insert_resource(new_resource(app_group.id, FunctionName::Hot, "allow_list", ResourceType::RawFile, BASE_MS))
        .await
        .expect("insert");
    store
        .insert_resource(new_resource(
            app_group.id,
            FunctionName::Hot,
            "features",
            ResourceType::FeatureGenerator,
            BASE_MS,
        ))
        .await
        .expect("insert");
    // Same name, other function: must not satisfy a reference of `hot`.
    store
        .insert_resource(new_resource(app_group.id, FunctionName::Hint, "deny_list", ResourceType::RawFile, BASE_MS))
        .await
        .expect("insert");

    let missing_error = expect_error(
        store
            .insert_instance(
                new_instance(app_group.id, FunctionName::Hot, "refused", BASE_MS),
                &[
                    raw_file_reference("usageParameters.allow_dict_id", "allow_list"),
                    raw_file_reference("usageParameters.deny_dict_id", "deny_list"),
                ],
            )
            .await,
        ErrorCode::InvalidParameter,
    );
    let CoreError::InvalidParameter { field, reason } = &missing_error else { unreachable!("checked by code") };
    assert_eq!(field, "usageParameters.deny_dict_id", "the error names the parameter that points nowhere");
    assert!(reason.contains("\"deny_list\"") && reason.contains("does not exist"), "reason: {reason}");
    assert_message_contains(&missing_error, "usageParameters.deny_dict_id");
    assert_eq!(
        store.find_instance(app_group.id, FunctionName::Hot, "refused").await.expect("find"),
        None,
        "a refused insert leaves no instance behind"
    );
    let allow_list =
        store.find_resource(app_group.id, FunctionName::Hot, "allow_list").await.expect("find").expect("exists");
    assert!(allow_list.referenced_instances.is_empty(), "a refused insert leaves no reference behind");

    let wrong_type_error = expect_error(
        store
            .insert_instance(
                new_instance(app_group.id, FunctionName::Hot, "refused", BASE_MS),
                &[raw_file_reference("usageParameters.allow_dict_id", "features")],
            )
            .await,
        ErrorCode::InvalidParameter,
    );
    let CoreError::InvalidParameter { field, reason } = &wrong_type_error else { unreachable!("checked by code") };
    assert_eq!(field, "usageParameters.allow_dict_id");
    assert!(
        reason.contains("feature_generator") && reason.contains("raw_file"),
        "the reason names both types: {reason}"
    );

    // Valid references are recorded and shown on the resource, sorted by instance name.
    let references = [raw_file_reference("usageParameters.allow_dict_id", "allow_list")];
    let zulu = store
        .insert_instance(new_instance(app_group.id, FunctionName::Hot, "zulu", BASE_MS), &references)
        .await
        .expect("insert");
    let alpha = store
        .insert_instance(new_instance(app_group.id, FunctionName::Hot, "alpha", BASE_MS), &references)
        .await
        .expect("insert");
    let allow_list =
        store.find_resource(app_group.id, FunctionName::Hot, "allow_list").await.expect("find").expect("exists");
    assert_eq!(allow_list.referenced_instances, ["alpha", "zulu"]);
    let listed = store
        .list_resources(app_group.id, FunctionName::Hot, Some(ResourceType::RawFile), everything())
        .await
        .expect("list");
    assert_eq!(listed.items[0].referenced_instances, ["alpha", "zulu"], "lists show references too");
    let features =
        store.find_resource(app_group.id, FunctionName::Hot, "features").await.expect("find").expect("exists");
    assert!(features.referenced_instances.is_empty());

    // A refused update changes nothing: neither its fields nor its references.
    let description_change =
        InstanceChanges { description: Some("should not stick".into()), ..InstanceChanges::default() };
    let refused_update_error = expect_error(
        store
            .update_instance(
                &zulu,
                &description_change,
                Some(&[raw_file_reference("usageParameters.deny_dict_id", "nowhere")]),
                BASE_MS + 1,
            )
            .await,
        ErrorCode::InvalidParameter,
    );
    assert_message_contains(&refused_update_error, "usageParameters.deny_dict_id");
    let zulu_after_refusal =
        store.find_instance(app_group.id, FunctionName::Hot, "zulu").await.expect("find").expect("exists");
    assert_eq!(zulu_after_refusal, zulu, "a refused update is rolled back");
    let allow_list =
        store.find_resource(app_group.id, FunctionName::Hot, "allow_list").await.expect("find").expect("exists");
    assert_eq!(allow_list.referenced_instances, ["alpha", "zulu"]);

    // `None` keeps the references; `Some(empty)` removes them.
    store.update_instance(&zulu, &description_change, None, BASE_MS + 2).await.expect("update without references");
    let allow_list =
        store.find_resource(app_group.id, FunctionName::Hot, "allow_list").await.expect("find").expect("exists");
    assert_eq!(allow_list.referenced_instances, ["alpha", "zulu"]);
    store
        .update_instance(&zulu, &InstanceChanges::default(), Some(&[]), BASE_MS + 3)
        .await
        .expect("update clearing references");
    let allow_list =
        store.find_resource(app_group.id, FunctionName::Hot, "allow_list").await.expect("find").expect("exists");
    assert_eq!(allow_list.referenced_instances, ["alpha"]);

    // References can be replaced by an update.
    let generator_reference = ResourceReference {
        parameter_field: "createParameters.feature_generator".into(),
        resource_name: "features".into(),
        resource_type: ResourceType::FeatureGenerator,
    };
    store
        .update_instance(&alpha, &InstanceChanges::default(), Some(&[generator_reference]), BASE_MS + 4)
        .await
        .expect("replace references");
    let allow_list =
        store.find_resource(app_group.id, FunctionName::Hot, "allow_list").await.expect("find").expect("exists");
    assert!(
        allow_list.referenced_instances.is_empty(),
        "replaced references are gone: {:?}",
        allow_list.referenced_instances
    );
    let features =
        store.find_resource(app_group.id, FunctionName::Hot, "features").await.expect("find").expect("exists");
    assert_eq!(features.referenced_instances, ["alpha"]);
}

async fn referenced_resource_cannot_be_deleted(backend: TestBackend) {
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    let allow_list = store
        .insert_resource(new_resource(app_group.id, FunctionName::Hot, "allow_list", ResourceType::RawFile, BASE_MS))
        .await
        .expect("insert");
    let references = [raw_file_reference("usageParameters.allow_dict_id", "allow_list")];
    let first = store
        .insert_instance(new_instance(app_group.id, FunctionName::Hot, "first", BASE_MS), &references)
        .await
        .expect("insert");
    let second = store
        .insert_instance(new_instance(app_group.id, FunctionName::Hot, "second", BASE_MS), &references)
        .await
        .expect("insert");

    let in_use_error = expect_error(store.delete_resource(&allow_list).await, ErrorCode::ResourceInUse);
    assert_eq!(
        in_use_error,
        CoreError::ResourceInUse { resource_name: "allow_list".into(), instance_names: "first, second".into() }
    );
    assert!(store.find_resource(app_group.id, FunctionName::Hot, "allow_list").await.expect("find").is_some());

    store.update_instance(&first, &InstanceChanges::default(), Some(&[]), BASE_MS + 1).await.expect("drop reference");
    let still_in_use_error = expect_error(store.delete_resource(&allow_list).await, ErrorCode::ResourceInUse);
    assert_message_contains(&still_in_use_error, "second");

    store.update_instance(&second, &InstanceChanges::default(), Some(&[]), BASE_MS + 2).await.expect("drop reference");
    store.delete_resource(&allow_list).await.expect("delete an unreferenced resource");
    assert_eq!(store.find_resource(app_group.id, FunctionName::Hot, "allow_list").await.expect("find"), None);

    let missing_error = expect_error(store.delete_resource(&allow_list).await, ErrorCode::ResourceNotExist);
    assert_eq!(
        missing_error,
        CoreError::ResourceNotExist { function_name: "hot".into(), resource_name: "allow_list".into() }
    );
}

async fn instance_delete_is_refused_while_default_referencing_or_busy(backend: TestBackend) {
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    store
        .insert_resource(new_resource(app_group.id, FunctionName::Hot, "allow_list", ResourceType::RawFile, BASE_MS))
        .await
        .expect("insert");

    // Default instance.
    let default_instance = store
        .insert_instance(new_instance(app_group.id, FunctionName::Hot, "the_default", BASE_MS), &[])
        .await
        .expect("insert");
    store.set_default_instance(app_group.id, FunctionName::Hot, Some("the_default")).await.expect("set default");
    let is_default_error = expect_error(store.delete_instance(&default_instance).await, ErrorCode::InstanceIsDefault);
    assert_eq!(
        is_default_error,
        CoreError::InstanceIsDefault { function_name: "hot".into(), instance_name: "the_default".into() }
    );
    store.set_default_instance(app_group.id, FunctionName::Hot, None).await.expect("clear default");
    store.delete_instance(&default_instance).await.expect("delete once no longer default");

    // Instance referencing a resource.
    let referencing = store
        .insert_instance(
            new_instance(app_group.id, FunctionName::Hot, "referencing", BASE_MS),
            &[raw_file_reference("usageParameters.allow_dict_id", "allow_list")],
        )
        .await
        .expect("insert");
    let in_use_error = expect_error(store.delete_instance(&referencing).await, ErrorCode::InstanceInUse);
    assert_eq!(
        in_use_error,
        CoreError::InstanceInUse { instance_name: "referencing".into(), resource_names: "allow_list".into() }
    );
    store
        .update_instance(&referencing, &InstanceChanges::default(), Some(&[]), BASE_MS + 1)
        .await
        .expect("drop reference");
    store.delete_instance(&referencing).await.expect("delete once it references nothing");

    // Instance with a pending, then a running task.
    let busy = store
        .insert_instance(new_instance(app_group.id, FunctionName::Hot, "busy", BASE_MS), &[])
        .await
        .expect("insert");
    let finished_generation =
        create_finished_task(&backend, &side_connection, &busy, TaskState::Failed, BASE_MS + 1_000, BASE_MS + 2_000)
            .await;
    let pending_task = store.create_task(&busy, "api__busy", BASE_MS + 3_000).await.expect("create task");
    let pending_error = expect_error(store.delete_instance(&busy).await, ErrorCode::TaskIsRunning);
    assert_eq!(
        pending_error,
        CoreError::TaskIsRunning { instance_name: "busy".into(), generation: pending_task.generation }
    );
    set_task_state(&side_connection, &busy, pending_task.generation, TaskState::Running, Some(BASE_MS + 4_000), None)
        .await;
    let running_error = expect_error(store.delete_instance(&busy).await, ErrorCode::TaskIsRunning);
    assert_message_contains(&running_error, &format!("generation {}", pending_task.generation));
    assert!(store.find_instance(app_group.id, FunctionName::Hot, "busy").await.expect("find").is_some());

    set_task_state(
        &side_connection,
        &busy,
        pending_task.generation,
        TaskState::Success,
        Some(BASE_MS + 4_000),
        Some(BASE_MS + 5_000),
    )
    .await;
    store.delete_instance(&busy).await.expect("delete once its tasks have finished");
    assert_eq!(store.find_instance(app_group.id, FunctionName::Hot, "busy").await.expect("find"), None);
    assert_eq!(
        count_rows(&side_connection, "SELECT COUNT(*) AS total FROM function_tasks WHERE instance_id = $1", busy.id)
            .await,
        0,
        "the instance's finished tasks (generations {finished_generation} and {}) go with it",
        pending_task.generation
    );

    let gone_error = expect_error(store.delete_instance(&busy).await, ErrorCode::InstanceNotExist);
    assert_eq!(gone_error, CoreError::InstanceNotExist { function_name: "hot".into(), instance_name: "busy".into() });
}

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

async fn task_generations_are_sequential_and_never_reused(backend: TestBackend) {
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = store
        .insert_instance(new_instance(app_group.id, FunctionName::Ctr, "ctr_instance", BASE_MS), &[])
        .await
        .expect("insert");
    assert_eq!(store.latest_task(&instance).await.expect("latest"), None);

    let first = store.create_task(&instance, "api__2023-11-14T22:13:21Z", BASE_MS + 1_000).await.expect("create task");
    assert_eq!(first.generation, 1);
    assert_eq!(first.instance_id, instance.id);
    assert_eq!(first.function_name, FunctionName::Ctr);
    assert_eq!(first.state, TaskState::Pending);
    assert_eq!(first.progress, 0);
    assert_eq!(first.run_id, "api__2023-11-14T22:13:21Z");
    assert_eq!(first.extend_info, "{}");
    assert_eq!((first.created_ms, first.started_ms, first.ended_ms), (BASE_MS + 1_000, None, None));
    assert_eq!(store.find_task(&instance, 1).await.expect("find"), Some(first.clone()));

    let while_pending_error =
        expect_error(store.create_task(&instance, "api__again", BASE_MS + 1_500).await, ErrorCode::TaskIsRunning);
    assert_eq!(while_pending_error, CoreError::TaskIsRunning { instance_name: "ctr_instance".into(), generation: 1 });
    let unable_delete_error = expect_error(store.delete_task(&instance, 1).await, ErrorCode::TaskUnableDelete);
    assert_eq!(
        unable_delete_error,
        CoreError::TaskUnableDelete {
            instance_name: "ctr_instance".into(),
            generation: 1,
            reason: "it is pending; a task that is pending or running cannot be deleted".into()
        }
    );
    set_task_state(&side_connection, &instance, 1, TaskState::Running, Some(BASE_MS + 1_600), None).await;
    expect_error(store.create_task(&instance, "api__again", BASE_MS + 1_700).await, ErrorCode::TaskIsRunning);
    let running_delete_error = expect_error(store.delete_task(&instance, 1).await, ErrorCode::TaskUnableDelete);
    assert_message_contains(&running_delete_error, "running");
    set_task_state(&side_connection, &instance, 1, TaskState::Success, Some(BASE_MS + 1_600), Some(BASE_MS + 1_800))
        .await;

    let second = store.create_task(&instance, "api__second", BASE_MS + 2_000).await.expect("create task");
    assert_eq!(second.generation, 2, "refused attempts do not use up generations");
    set_task_state(&side_connection, &instance, 2, TaskState::Failed, Some(BASE_MS + 2_000), Some(BASE_MS + 2_500))
        .await;
    let third = store.create_task(&instance, "api__third", BASE_MS + 3_000).await.expect("create task");
    assert_eq!(third.generation, 3);
    set_task_state(&side_connection, &instance, 3, TaskState::Success, Some(BASE_MS + 3_000), Some(BASE_MS + 3_500))
        .await;

    store.delete_task(&instance, 3).await.expect("delete a finished task");
    assert_eq!(store.find_task(&instance, 3).await.expect("find"), None);
    let missing_error = expect_error(store.delete_task(&instance, 3).await, ErrorCode::TaskNotExist);
    assert_eq!(missing_error, CoreError::TaskNotExist { instance_name: "ctr_instance".into(), generation: "3".into() });
    expect_error(store.delete_task(&instance, 99).await, ErrorCode::TaskNotExist);

    let fourth = store.create_task(&instance, "api__fourth", BASE_MS + 4_000).await.expect("create task");
    assert_eq!(fourth.generation, 4, "the generation of a deleted task is not given again");
    assert_eq!(store.latest_task(&instance).await.expect("latest"), Some(fourth.clone()));

    // Deleting the newest finished task must not let its generation come back either.
    set_task_state(&side_connection, &instance, 4, TaskState::Failed, Some(BASE_MS + 4_000), Some(BASE_MS + 4_500))
        .await;
    store.delete_task(&instance, 4).await.expect("delete");
    let fifth = store.create_task(&instance, "api__fifth", BASE_MS + 5_000).await.expect("create task");
    assert_eq!(fifth.generation, 5);

    let remaining = store.list_tasks(&instance, &TaskFilter::default(), everything()).await.expect("list");
    assert_eq!(remaining.items.iter().map(|task| task.generation).collect::<Vec<_>>(), [5, 2, 1]);
}

async fn concurrent_create_task_has_exactly_one_winner(backend: TestBackend) {
    let store = &backend.store;
    const CONCURRENT_CALLERS: usize = 32;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = Arc::new(
        store
            .insert_instance(new_instance(app_group.id, FunctionName::Ctr, "contended", BASE_MS), &[])
            .await
            .expect("insert"),
    );

    // All callers start together so that they really race.
    let start_line = Arc::new(tokio::sync::Barrier::new(CONCURRENT_CALLERS));
    let mut callers = Vec::with_capacity(CONCURRENT_CALLERS);
    for caller_index in 0..CONCURRENT_CALLERS {
        let caller_store = Arc::clone(store);
        let caller_instance = Arc::clone(&instance);
        let caller_start_line = Arc::clone(&start_line);
        callers.push(tokio::spawn(async move {
            caller_start_line.wait().await;
            caller_store.create_task(&caller_instance, &format!("api__caller_{caller_index}"), BASE_MS + 1_000).await
        }));
    }
    let mut winners = Vec::new();
    let mut refusals = 0;
    for caller in callers {
        match caller.await.expect("caller task panicked") {
            Ok(task) => winners.push(task),
            Err(error) => {
                assert_eq!(
                    error.code(),
                    ErrorCode::TaskIsRunning,
                    "a loser must be told a task is running, got: {error}"
                );
                assert_eq!(error, CoreError::TaskIsRunning { instance_name: "contended".into(), generation: 1 });
                refusals += 1;
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one concurrent create_task wins: {winners:?}");
    assert_eq!(refusals, CONCURRENT_CALLERS - 1);
    assert_eq!(winners[0].generation, 1);
    let tasks = store.list_tasks(&instance, &TaskFilter::default(), everything()).await.expect("list");
    assert_eq!(tasks.total_count, 1, "the refused callers left no task behind");

    set_task_state(&side_connection, &instance, 1, TaskState::Success, Some(BASE_MS + 1_000), Some(BASE_MS + 2_000))
        .await;
    let next = store.create_task(&instance, "api__next", BASE_MS + 3_000).await.expect("create task");
    assert_eq!(next.generation, 2, "the refused callers used up no generation");
}

async fn list_tasks_orders_by_start_and_filters(backend: TestBackend) {
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = store
        .insert_instance(new_instance(app_group.id, FunctionName::Ctr, "ctr_instance", BASE_MS), &[])
        .await
        .expect("insert");
    let other_instance = store
        .insert_instance(new_instance(app_group.id, FunctionName::Ctr, "other", BASE_MS), &[])
        .await
        .expect("insert");

    // Start times deliberately out of generation order: the list sorts by start, not generation.
    //   generation 1: success, started +1s,  ended +1.5s
    //   generation 2: failed,  started +3s,  ended +3.5s
    //   generation 3: success, started +2s,  ended +2.5s
    //   generation 4: pending, submitted +4s (its start time is its submission time)
    let seconds = |count: i64| BASE_MS + count * 1_000;
    create_finished_task(&backend, &side_connection, &instance, TaskState::Success, seconds(1), seconds(1) + 500).await;
    create_finished_task(&backend, &side_connection, &instance, TaskState::Failed, seconds(3), seconds(3) + 500).await;
    create_finished_task(&backend, &side_connection, &instance, TaskState::Success, seconds(2), seconds(2) + 500).await;
    store.create_task(&instance, "api__pending", seconds(4)).await.expect("create pending task");
    create_finished_task(&backend, &side_connection, &other_instance, TaskState::Success, seconds(1), seconds(9)).await;

    let list = |filter: TaskFilter, page_request: PageRequest| {
        let listed_instance = &instance;
        async move {
            let listed = store.list_tasks(listed_instance, &filter, page_request).await.expect("list tasks");
            (listed.items.iter().map(|task| task.generation).collect::<Vec<_>>(), listed.total_count)
        }
    };

    assert_eq!(list(TaskFilter::default(), everything()).await, (vec![4, 2, 3, 1], 4), "newest start first");
    assert_eq!(list(TaskFilter::default(), page(1, 3)).await, (vec![4, 2, 3], 4));
    assert_eq!(list(TaskFilter::default(), page(2, 3)).await, (vec![1], 4));
    assert_eq!(list(TaskFilter::default(), page(3, 3)).await, (vec![], 4));

    let states = |states: &[TaskState]| TaskFilter { states: states.to_vec(), ..TaskFilter::default() };
    assert_eq!(list(states(&[TaskState::Success]), everything()).await, (vec![3, 1], 2));
    assert_eq!(list(states(&[TaskState::Failed]), everything()).await, (vec![2], 1));
    assert_eq!(list(states(&[TaskState::Pending, TaskState::Running]), everything()).await, (vec![4], 1));
    assert_eq!(list(states(&[TaskState::Running]), everything()).await, (vec![], 0));
    assert_eq!(list(states(&[TaskState::Success, TaskState::Failed]), everything()).await, (vec![2, 3, 1], 3));
    assert_eq!(
        list(states(&[TaskState::Pending, TaskState::Running, TaskState::Success, TaskState::Failed]), everything())
            .await,
        (vec![4, 2, 3, 1], 4)
    );

    let started_after = |after_ms: Millis| TaskFilter { started_after_ms: Some(after_ms), ..TaskFilter::default() };
    assert_eq!(list(started_after(seconds(1) + 500), everything()).await, (vec![4, 2, 3], 3));
    assert_eq!(list(started_after(seconds(2)), everything()).await, (vec![4, 2], 2), "strictly later than the bound");
    assert_eq!(list(started_after(seconds(4)), everything()).await, (vec![], 0));

    let ended_before = |before_ms: Millis| TaskFilter { ended_before_ms: Some(before_ms), ..TaskFilter::default() };
    assert_eq!(list(ended_before(seconds(3)), everything()).await, (vec![3, 1], 2), "a pending task has not ended");
    assert_eq!(
        list(ended_before(seconds(2) + 500), everything()).await,
        (vec![1], 1),
        "strictly earlier than the bound"
    );
    assert_eq!(list(ended_before(seconds(100)), everything()).await, (vec![2, 3, 1], 3));

    let combined = TaskFilter {
        states: vec![TaskState::Success],
        started_after_ms: Some(seconds(1) + 500),
        ended_before_ms: Some(seconds(100)),
    };
    assert_eq!(list(combined, everything()).await, (vec![3], 1));

    let other_tasks = store.list_tasks(&other_instance, &TaskFilter::default(), everything()).await.expect("list");
    assert_eq!(other_tasks.total_count, 1, "tasks are listed per instance");
}

// ---------------------------------------------------------------------------------------------
// Default instances
// ---------------------------------------------------------------------------------------------

async fn default_instance_set_get_and_clear(backend: TestBackend) {
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    let other_app_group =
        store.insert_app_group(new_app_group(&app_group.account_id, "other", BASE_MS)).await.expect("insert");
    for instance_name in ["first", "second"] {
        store
            .insert_instance(new_instance(app_group.id, FunctionName::Hot, instance_name, BASE_MS), &[])
            .await
            .expect("insert");
    }
    store
        .insert_instance(new_instance(app_group.id, FunctionName::Hint, "hint_only", BASE_MS), &[])
        .await
        .expect("insert");

    assert_eq!(store.default_instance(app_group.id, FunctionName::Hot).await.expect("default"), None);

    store.set_default_instance(app_group.id, FunctionName::Hot, Some("first")).await.expect("set default");
    assert_eq!(
        store.default_instance(app_group.id, FunctionName::Hot).await.expect("default").as_deref(),
        Some("first")
    );
    store.set_default_instance(app_group.id, FunctionName::Hot, Some("second")).await.expect("replace default");
    assert_eq!(
        store.default_instance(app_group.id, FunctionName::Hot).await.expect("default").as_deref(),
        Some("second")
    );
    store
        .set_default_instance(app_group.id, FunctionName::Hot, Some("second"))
        .await
        .expect("set the same default again");
    assert_eq!(
        store.default_instance(app_group.id, FunctionName::Hint).await.expect("default"),
        None,
        "defaults are per function"
    );
    assert_eq!(
        store.default_instance(other_app_group.id, FunctionName::Hot).await.expect("default"),
        None,
        "defaults are per app group"
    );

    let unknown_error = expect_error(
        store.set_default_instance(app_group.id, FunctionName::Hot, Some("third")).await,
        ErrorCode::InstanceNotExist,
    );
    assert_eq!(
        unknown_error,
        CoreError::InstanceNotExist { function_name: "hot".into(), instance_name: "third".into() }
    );
    let other_function_error = expect_error(
        store.set_default_instance(app_group.id, FunctionName::Hot, Some("hint_only")).await,
        ErrorCode::InstanceNotExist,
    );
    assert_message_contains(&other_function_error, "\"hint_only\"");
    expect_error(
        store.set_default_instance(other_app_group.id, FunctionName::Hot, Some("first")).await,
        ErrorCode::InstanceNotExist,
    );
    assert_eq!(
        store.default_instance(app_group.id, FunctionName::Hot).await.expect("default").as_deref(),
        Some("second"),
        "a refused change keeps the current default"
    );

    store.set_default_instance(app_group.id, FunctionName::Hot, None).await.expect("clear default");
    assert_eq!(store.default_instance(app_group.id, FunctionName::Hot).await.expect("default"), None);
    store.set_default_instance(app_group.id, FunctionName::Hot, None).await.expect("clearing an unset default is fine");
    assert_eq!(store.default_instance(app_group.id, FunctionName::Hot).await.expect("default"), None);
}

// ---------------------------------------------------------------------------------------------
// Signature nonces
// ---------------------------------------------------------------------------------------------

async fn signature_nonces_detect_replays_until_they_expire(backend: TestBackend) {
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let access_key_id = backend.access_key_id("key");
    let other_access_key_id = backend.access_key_id("other-key");
    let seconds = |count: i64| BASE_MS + count * 1_000;
    let remember = |key: &str, nonce: &str, now_ms: Millis, expires_ms: Millis| {
        let owned_key = key.to_string();
        let owned_nonce = nonce.to_string();
        async move {
            store.remember_signature_nonce(&owned_key, &owned_nonce, now_ms, expires_ms).await.expect("remember nonce")
        }
    };

    assert!(remember(&access_key_id, "nonce-1", seconds(0), seconds(900)).await, "a new nonce is accepted");
    assert!(!remember(&access_key_id, "nonce-1", seconds(1), seconds(901)).await, "a replay is refused");
    assert!(
        !remember(&access_key_id, "nonce-1", seconds(900), seconds(1_800)).await,
        "still remembered at its expiry instant"
    );
    assert!(remember(&other_access_key_id, "nonce-1", seconds(2), seconds(902)).await, "nonces are per AccessKey");
    assert!(remember(&access_key_id, "nonce-2", seconds(3), seconds(400)).await);

    // Past its expiry a nonce counts as forgotten even before it is swept, and is remembered
    // afresh with the new expiry.
    assert!(
        remember(&access_key_id, "nonce-1", seconds(901), seconds(2_000)).await,
        "an expired nonce is accepted again"
    );
    assert!(
        !remember(&access_key_id, "nonce-1", seconds(1_000), seconds(2_100)).await,
        "and remembered with its new expiry"
    );

    // Sweep at +950s: nonce-2 (expired +400s) and the other key's nonce-1 (expired +902s) go;
    // nonce-1 (now expiring +2000s) stays.
    let forgotten = store.forget_expired_signature_nonces(seconds(950)).await.expect("forget expired");
    match store.backend() {
        Backend::Sqlite => assert_eq!(forgotten, 2),
        // A shared database may also hold other runs' expired nonces.
        Backend::Postgres => assert!(forgotten >= 2, "forgot {forgotten}"),
    }
    let remaining_rows = sqlx::query(
        "SELECT nonce, expires_ms FROM signature_nonces WHERE access_key_id = $1 OR access_key_id = $2 ORDER BY nonce",
    )
    .bind(access_key_id.as_str())
    .bind(other_access_key_id.as_str())
    .fetch_all(&side_connection)
    .await
    .expect("read nonces");
    let remaining: Vec<(String, i64)> = remaining_rows
        .iter()
        .map(|row| (row.try_get("nonce").expect("nonce"), row.try_get("expires_ms").expect("expires_ms")))
        .collect();
    assert_eq!(remaining, [("nonce-1".to_string(), seconds(2_000))]);

    assert!(remember(&access_key_id, "nonce-2", seconds(960), seconds(1_860)).await, "a swept nonce is accepted again");
    assert!(
        !remember(&access_key_id, "nonce-1", seconds(960), seconds(1_860)).await,
        "the sweep kept unexpired nonces"
    );
}

// ---------------------------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------------------------

async fn data_survives_close_and_reopen(mut backend: TestBackend) {
    let account_id = backend.account("owner");
    let access_key_id = backend.access_key_id("key");
    let mut app_group_to_insert = new_app_group(&account_id, "durable", BASE_MS);
    app_group_to_insert.tags = vec![tag("env", "prod")];
    let app_group = backend.store.insert_app_group(app_group_to_insert).await.expect("insert app group");
    let resource = backend
        .store
        .insert_resource(new_resource(app_group.id, FunctionName::Hot, "allow_list", ResourceType::RawFile, BASE_MS))
        .await
        .expect("insert");
    let instance = backend
        .store
        .insert_instance(
            new_instance(app_group.id, FunctionName::Hot, "hot_instance", BASE_MS),
            &[raw_file_reference("usageParameters.allow_dict_id", "allow_list")],
        )
        .await
        .expect("insert instance");
    backend
        .store
        .set_default_instance(app_group.id, FunctionName::Hot, Some("hot_instance"))
        .await
        .expect("set default");
    let task = backend.store.create_task(&instance, "api__durable", BASE_MS + 1_000).await.expect("create task");
    assert!(
        backend
            .store
            .remember_signature_nonce(&access_key_id, "nonce", BASE_MS, NONCE_EXPIRY_BEYOND_EVERY_SWEEP_MS)
            .await
            .expect("remember")
    );

    backend.reopen().await;

    let reopened_app_group =
        backend.store.find_app_group(&account_id, &AppGroupIdentity::Name("durable".into())).await.expect("find");
    assert_eq!(reopened_app_group, Some(app_group.clone()));
    let reopened_instance =
        backend.store.find_instance(app_group.id, FunctionName::Hot, "hot_instance").await.expect("find");
    assert_eq!(reopened_instance, Some(instance.clone()));
    let reopened_resource =
        backend.store.find_resource(app_group.id, FunctionName::Hot, "allow_list").await.expect("find");
    assert_eq!(
        reopened_resource,
        Some(FunctionResource { referenced_instances: vec!["hot_instance".into()], ..resource })
    );
    assert_eq!(
        backend.store.default_instance(app_group.id, FunctionName::Hot).await.expect("default").as_deref(),
        Some("hot_instance")
    );
    assert_eq!(backend.store.find_task(&instance, task.generation).await.expect("find"), Some(task));
    assert!(
        !backend
            .store
            .remember_signature_nonce(&access_key_id, "nonce", BASE_MS + 1, NONCE_EXPIRY_BEYOND_EVERY_SWEEP_MS)
            .await
            .expect("remember"),
        "a remembered nonce survives a restart"
    );
    expect_error(backend.store.create_task(&instance, "api__again", BASE_MS + 2_000).await, ErrorCode::TaskIsRunning);
    backend.store.close().await;
}

async fn data_tables_keep_their_primary_key_and_go_with_their_app_group(backend: TestBackend) {
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    let other_app_group =
        store.insert_app_group(new_app_group(&app_group.account_id, "other", BASE_MS)).await.expect("insert");
    assert_eq!(store.find_data_table(app_group.id, "main").await.expect("find"), None);
    let declared = store.put_data_table(app_group.id, "main", "item_id", BASE_MS).await.expect("declare");
    assert_eq!(
        (declared.table_name.as_str(), declared.primary_key.as_str(), declared.created_ms),
        ("main", "item_id", BASE_MS)
    );
    let again = store.put_data_table(app_group.id, "main", "item_id", BASE_MS + 5).await.expect("declare again");
    assert_eq!(again, declared, "the same declaration again changes nothing");
    let conflict =
        expect_error(store.put_data_table(app_group.id, "main", "id", BASE_MS).await, ErrorCode::DataTableAlreadyExist);
    assert_eq!(conflict, CoreError::DataTableAlreadyExist { table_name: "main".into(), primary_key: "item_id".into() });
    store.put_data_table(app_group.id, "authors", "author_id", BASE_MS).await.expect("declare");
    store.put_data_table(other_app_group.id, "main", "id", BASE_MS).await.expect("tables are per app group");
    let listed: Vec<(String, String)> = store
        .list_data_tables(app_group.id)
        .await
        .expect("list")
        .into_iter()
        .map(|table| (table.table_name, table.primary_key))
        .collect();
    assert_eq!(listed, vec![("authors".into(), "author_id".into()), ("main".into(), "item_id".into())]);
    assert!(store.delete_app_group(app_group.id).await.expect("delete"));
    assert!(store.list_data_tables(app_group.id).await.expect("list").is_empty());
    assert_eq!(store.list_data_tables(other_app_group.id).await.expect("list").len(), 1);
    expect_error(store.put_data_table(app_group.id, "main", "id", BASE_MS).await, ErrorCode::AppNotFound);
}

// ---------------------------------------------------------------------------------------------
// The task queue
// ---------------------------------------------------------------------------------------------

/// The columns of the queue that [`FunctionTask`] does not show.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QueueColumns {
    lease_owner: Option<String>,
    lease_expires_ms: Option<Millis>,
    run_after_ms: Millis,
    max_attempts: i64,
}

async fn queue_columns(side_connection: &AnyPool, task_id: i64) -> QueueColumns {
    let row = sqlx::query(
        "SELECT lease_owner, lease_expires_ms, run_after_ms, max_attempts FROM function_tasks WHERE id = $1",
    )
    .bind(task_id)
    .fetch_one(side_connection)
    .await
    .expect("read the queue columns of a task");
    QueueColumns {
        lease_owner: row.try_get("lease_owner").expect("lease_owner"),
        lease_expires_ms: row.try_get("lease_expires_ms").expect("lease_expires_ms"),
        run_after_ms: row.try_get("run_after_ms").expect("run_after_ms"),
        max_attempts: row.try_get("max_attempts").expect("max_attempts"),
    }
}

/// A task leased to `worker_id` until `expires_ms`.
fn leased(worker_id: &str, expires_ms: Millis, run_after_ms: Millis, max_attempts: i64) -> QueueColumns {
    QueueColumns {
        lease_owner: Some(worker_id.to_string()),
        lease_expires_ms: Some(expires_ms),
        run_after_ms,
        max_attempts,
    }
}

/// A task no worker holds.
fn unleased(run_after_ms: Millis, max_attempts: i64) -> QueueColumns {
    QueueColumns { lease_owner: None, lease_expires_ms: None, run_after_ms, max_attempts }
}

/// Sets a task's state and nothing else, behind the store's back.
async fn force_task_state(side_connection: &AnyPool, task_id: i64, state: TaskState) {
    let updated = sqlx::query("UPDATE function_tasks SET state = $1 WHERE id = $2")
        .bind(state.as_str())
        .bind(task_id)
        .execute(side_connection)
        .await
        .expect("force a task state");
    assert_eq!(updated.rows_affected(), 1, "task {task_id} should exist");
}

/// A CTR instance of the queue window, retrained on `cron` when it is not empty.
async fn queue_instance(
    backend: &TestBackend,
    app_group: &AppGroup,
    instance_name: &str,
    cron: &str,
) -> FunctionInstance {
    let mut to_insert = new_instance(app_group.id, FunctionName::Ctr, instance_name, QUEUE_MS);
    to_insert.cron = cron.to_string();
    backend.store.insert_instance(to_insert, &[]).await.expect("insert instance")
}

async fn find_task(store: &SqlStore, instance: &FunctionInstance, generation: i64) -> FunctionTask {
    store
        .find_task(instance, generation)
        .await
        .expect("find task")
        .unwrap_or_else(|| panic!("task generation {generation} of {} should exist", instance.instance_name))
}

async fn find_instance(store: &SqlStore, instance: &FunctionInstance) -> FunctionInstance {
    store
        .find_instance(instance.app_group_id, instance.function_name, &instance.instance_name)
        .await
        .expect("find instance")
        .unwrap_or_else(|| panic!("instance {} should exist", instance.instance_name))
}

/// Claims a task that must be there.
async fn claim(store: &SqlStore, worker_id: &str, now_ms: Millis) -> ClaimedTask {
    match store.claim_task(worker_id, now_ms, LEASE_MS).await.expect("claim a task") {
        Some(claimed) => claimed,
        None => panic!("{worker_id} found nothing to claim at QUEUE_MS + {}", now_ms - QUEUE_MS),
    }
}

async fn heartbeat(store: &SqlStore, lease: &TaskLease, progress: i64, now_ms: Millis) -> Heartbeat {
    store.heartbeat(lease, progress, now_ms, LEASE_MS).await.expect("heartbeat")
}

/// What the reaper did to the tasks of `task_ids` (a shared database may hold other tests' tasks).
async fn reap(
    store: &SqlStore,
    task_ids: &[i64],
    now_ms: Millis,
    retry_delay_ms: Millis,
    dead_worker_prefix: Option<&str>,
    current_worker_id: &str,
) -> Vec<ReapedTask> {
    let reaped = store
        .reap_lost_tasks(now_ms, retry_delay_ms, dead_worker_prefix, current_worker_id)
        .await
        .expect("reap lost tasks");
    reaped.into_iter().filter(|reaped_task| task_ids.contains(&reaped_task.task_id)).collect()
}

fn reaped(task: &FunctionTask, retried: bool) -> ReapedTask {
    ReapedTask { task_id: task.id, instance_id: task.instance_id, generation: task.generation, retried }
}

fn artifact_of(instance: &FunctionInstance, generation: i64) -> ArtifactRef {
    ArtifactRef {
        path: format!("models/{}/{generation}/model.tar", instance.id),
        sha256: format!("{generation:064x}"),
        bytes: 4_096 + generation,
    }
}

fn metrics_of(generation: i64) -> String {
    serde_json::json!({"metrics": {"auc": 0.5 + generation as f64 / 100.0}, "dataReport": {"rows": generation}, "errors": []})
        .to_string()
}

fn succeeded(instance: &FunctionInstance, generation: i64, serve: bool) -> TaskOutcome {
    TaskOutcome::Succeeded { artifact: artifact_of(instance, generation), extend_info: metrics_of(generation), serve }
}

fn failed(reason: &str) -> TaskOutcome {
    TaskOutcome::Failed { extend_info: failure_extend_info(reason, serde_json::json!({"reason": reason})) }
}

fn extend_info_json(task: &FunctionTask) -> serde_json::Value {
    serde_json::from_str(&task.extend_info)
        .unwrap_or_else(|error| panic!("ExtendInfo {:?} is not JSON: {error}", task.extend_info))
}

/// The single error of a failed task's `ExtendInfo`, and the reason of its `failure`.
#[track_caller]
fn failure_of(task: &FunctionTask) -> (String, String) {
    let extend_info = extend_info_json(task);
    let errors = extend_info["errors"].as_array().unwrap_or_else(|| panic!("no errors in {extend_info}"));
    assert_eq!(errors.len(), 1, "one error in {extend_info}");
    let error = errors[0].as_str().unwrap_or_else(|| panic!("the error is text in {extend_info}")).to_string();
    let reason = extend_info["failure"]["reason"].as_str().unwrap_or_else(|| panic!("no reason in {extend_info}"));
    (error, reason.to_string())
}

/// Creates a task of `instance` at `now_ms`, claims it and finishes it a second later with the
/// outcome `outcome` makes of its generation, as a worker would; returns the finished task.
/// Nothing else may be claimable at `now_ms`.
async fn run_task(
    store: &SqlStore,
    instance: &FunctionInstance,
    now_ms: Millis,
    outcome: impl FnOnce(i64) -> TaskOutcome,
) -> FunctionTask {
    let created = store.create_task(instance, &format!("api__{now_ms}"), now_ms).await.expect("create task");
    let claimed = claim(store, "node:runner", now_ms).await;
    assert_eq!(claimed.task.id, created.id, "the task just created is the one to claim");
    assert!(
        store.finish_task(&claimed.lease, &outcome(created.generation), now_ms + 1_000).await.expect("finish task")
    );
    find_task(store, instance, created.generation).await
}

async fn queue_claim_takes_the_oldest_claimable_task_under_a_lease(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    assert_eq!(
        store.claim_task("node:a", QUEUE_MS + 5_000, LEASE_MS).await.expect("claim"),
        None,
        "nothing is pending"
    );

    // Created in this order (ids ascend), each claimable from QUEUE_MS + its delay.
    let mut created = Vec::new();
    for (instance_name, delay_ms) in
        [("late", 2_000), ("early", 1_000), ("tie_first", 1_500), ("tie_second", 1_500), ("future", 10_000)]
    {
        let instance = queue_instance(&backend, &app_group, instance_name, "").await;
        let task = store
            .create_task(&instance, &format!("api__{instance_name}"), QUEUE_MS + delay_ms)
            .await
            .expect("create task");
        assert_eq!((task.state, task.attempt, task.trigger), (TaskState::Pending, 0, TaskTrigger::Api));
        created.push((instance, task));
    }
    let [(_, late_task), (early, early_task), (_, tie_first_task), (_, tie_second_task), (future, future_task)]: [_;
        5] = created.try_into().expect("five tasks");

    let now_ms = QUEUE_MS + 5_000;
    let claimed = claim(store, "node:a", now_ms).await;
    let running =
        FunctionTask { state: TaskState::Running, attempt: 1, started_ms: Some(now_ms), ..early_task.clone() };
    assert_eq!(claimed.task, running, "the oldest claimable task runs its first attempt");
    assert_eq!(claimed.lease, TaskLease { task_id: early_task.id, worker_id: "node:a".into(), attempt: 1 });
    assert_eq!(claimed.instance, early, "the claim comes with the task's instance");
    assert_eq!(find_task(store, &early, early_task.generation).await, running);
    assert_eq!(
        queue_columns(&side_connection, early_task.id).await,
        leased("node:a", now_ms + LEASE_MS, QUEUE_MS + 1_000, 3)
    );

    // Then by the time they may run from, equal times by creation; the future one is not yet
    // claimable.
    let mut claimed_ids = Vec::new();
    for _ in 0..10 {
        match store.claim_task("node:b", now_ms, LEASE_MS).await.expect("claim") {
            Some(next) => claimed_ids.push(next.task.id),
            None => break,
        }
    }
    assert_eq!(claimed_ids, [tie_first_task.id, tie_second_task.id, late_task.id]);
    assert_eq!(store.claim_task("node:b", QUEUE_MS + 9_999, LEASE_MS).await.expect("claim"), None);
    assert_eq!(find_task(store, &future, 1).await, future_task, "still pending, never attempted");
    assert_eq!(queue_columns(&side_connection, future_task.id).await, unleased(QUEUE_MS + 10_000, 3));

    let on_time = claim(store, "node:b", QUEUE_MS + 10_000).await;
    assert_eq!(on_time.task.id, future_task.id, "claimable from the very millisecond");
    assert_eq!((on_time.task.state, on_time.lease.attempt), (TaskState::Running, 1));
    assert_eq!(store.claim_task("node:c", QUEUE_MS + 100_000, LEASE_MS).await.expect("claim"), None, "all are running");
}

async fn queue_concurrent_claimers_take_each_task_exactly_once(backend: TestBackend) {
    const CLAIMERS: usize = 16;
    const TASKS: i64 = 5;
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let mut created = Vec::new();
    for index in 0..TASKS {
        let instance = queue_instance(&backend, &app_group, &format!("contended_{index}"), "").await;
        let task = store.create_task(&instance, "api__contended", QUEUE_MS + 1_000 + index).await.expect("create task");
        created.push((instance, task));
    }

    // Every claimer claims until nothing is left, all starting together.
    let now_ms = QUEUE_MS + 10_000;
    let start_line = Arc::new(tokio::sync::Barrier::new(CLAIMERS));
    let mut claimers = Vec::with_capacity(CLAIMERS);
    for claimer_index in 0..CLAIMERS {
        let claimer_store = Arc::clone(store);
        let claimer_start_line = Arc::clone(&start_line);
        claimers.push(tokio::spawn(async move {
            let worker_id = format!("node:claimer_{claimer_index}");
            claimer_start_line.wait().await;
            let mut claimed = Vec::new();
            while let Some(task) = claimer_store.claim_task(&worker_id, now_ms, LEASE_MS).await? {
                claimed.push(task);
                if claimed.len() > TASKS as usize {
                    break;
                }
            }
            Ok::<_, CoreError>((worker_id, claimed))
        }));
    }
    let mut claims = Vec::new();
    for claimer in claimers {
        let (worker_id, claimed) = claimer.await.expect("claimer panicked").expect("claim");
        for claimed_task in claimed {
            assert_eq!(claimed_task.lease.worker_id, worker_id);
            assert_eq!(claimed_task.lease.attempt, 1, "claimed once: {claimed_task:?}");
            assert_eq!(claimed_task.instance.id, claimed_task.task.instance_id);
            claims.push((claimed_task.task.id, worker_id.clone()));
        }
    }
    claims.sort();
    let mut created_ids: Vec<i64> = created.iter().map(|(_, task)| task.id).collect();
    created_ids.sort();
    assert_eq!(claims.iter().map(|(task_id, _)| *task_id).collect::<Vec<_>>(), created_ids, "each task exactly once");
    for (instance, task) in &created {
        let worker_id = &claims.iter().find(|(task_id, _)| *task_id == task.id).expect("claimed").1;
        let stored = find_task(store, instance, task.generation).await;
        assert_eq!((stored.state, stored.attempt), (TaskState::Running, 1));
        assert_eq!(
            queue_columns(&side_connection, task.id).await,
            leased(worker_id, now_ms + LEASE_MS, task.created_ms, 3)
        );
    }
    assert_eq!(store.claim_task("node:late", now_ms, LEASE_MS).await.expect("claim"), None);
}

async fn queue_heartbeat_extends_the_lease_records_progress_and_reports_cancellation(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = queue_instance(&backend, &app_group, "ctr", "").await;
    let task = store.create_task(&instance, "api__heartbeat", QUEUE_MS + 1_000).await.expect("create task");
    let lease = claim(store, "node:a", QUEUE_MS + 2_000).await.lease;
    let held = Heartbeat::Held { cancel_requested: false };

    assert_eq!(heartbeat(store, &lease, 40, QUEUE_MS + 10_000).await, held);
    assert_eq!(
        queue_columns(&side_connection, task.id).await,
        leased("node:a", QUEUE_MS + 10_000 + LEASE_MS, QUEUE_MS + 1_000, 3),
        "the lease runs from the heartbeat"
    );
    assert_eq!(find_task(store, &instance, 1).await.progress, 40);
    // 100 is for a finished task only.
    for (reported, recorded) in [(250, 99), (100, 99), (-5, 0), (99, 99), (0, 0), (63, 63)] {
        assert_eq!(heartbeat(store, &lease, reported, QUEUE_MS + 20_000).await, held);
        assert_eq!(find_task(store, &instance, 1).await.progress, recorded, "progress {reported} is recorded as");
    }

    // Another worker, another attempt, another task: lost, and nothing changes.
    let wrong_leases = [
        TaskLease { worker_id: "node:b".into(), ..lease.clone() },
        TaskLease { attempt: 0, ..lease.clone() },
        TaskLease { attempt: 2, ..lease.clone() },
        TaskLease { task_id: task.id + 1_000_000, ..lease.clone() },
    ];
    let before = (find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await);
    for wrong_lease in &wrong_leases {
        assert_eq!(heartbeat(store, wrong_lease, 80, QUEUE_MS + 30_000).await, Heartbeat::Lost, "{wrong_lease:?}");
        let after = (find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await);
        assert_eq!(after, before, "a lost heartbeat ({wrong_lease:?}) changes nothing");
    }

    // The lease expires, the task is reaped and the same worker id (a restarted node) claims it
    // again: the first attempt's heartbeats are lost.
    let lost_ms = QUEUE_MS + 20_000 + LEASE_MS + 1;
    let expected_reaped = reaped(&task, true);
    assert_eq!(reap(store, &[task.id], lost_ms, 0, None, "node:a").await, [expected_reaped]);
    let second = claim(store, "node:a", lost_ms).await;
    assert_eq!(second.lease, TaskLease { task_id: task.id, worker_id: "node:a".into(), attempt: 2 });
    assert_eq!(heartbeat(store, &second.lease, 10, lost_ms + 1_000).await, held);
    let before = (find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await);
    assert_eq!(before.0.progress, 10);
    assert_eq!(heartbeat(store, &lease, 90, lost_ms + 2_000).await, Heartbeat::Lost, "a stale attempt is lost");
    assert_eq!((find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await), before);

    // A cancellation reaches the worker through its heartbeat.
    let flagged = store.request_cancel(&instance, 1, lost_ms + 3_000).await.expect("request cancel");
    assert_eq!(flagged, FunctionTask { cancel_requested: true, ..before.0.clone() });
    assert_eq!(heartbeat(store, &second.lease, 20, lost_ms + 4_000).await, Heartbeat::Held { cancel_requested: true });
    assert_eq!(find_task(store, &instance, 1).await.progress, 20);
    assert_eq!(
        queue_columns(&side_connection, task.id).await,
        leased("node:a", lost_ms + 4_000 + LEASE_MS, lost_ms, 3)
    );
    assert_eq!(heartbeat(store, &lease, 30, lost_ms + 5_000).await, Heartbeat::Lost);

    // A finished task has no lease to hold.
    assert!(store.finish_task(&second.lease, &failed("Cancelled"), lost_ms + 6_000).await.expect("finish"));
    assert_eq!(heartbeat(store, &second.lease, 50, lost_ms + 7_000).await, Heartbeat::Lost);
    let finished = find_task(store, &instance, 1).await;
    assert_eq!((finished.state, finished.progress), (TaskState::Failed, 20));
}

async fn queue_finish_records_the_outcome_and_serves_only_when_asked(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = queue_instance(&backend, &app_group, "ctr", "").await;
    assert_eq!(
        (instance.serving_generation, instance.status(), instance.extend_info.as_str()),
        (None, "unavailable", "{}")
    );

    // Generation 1 succeeds and is served.
    let first_task = store.create_task(&instance, "api__first", QUEUE_MS + 1_000).await.expect("create task");
    let first = claim(store, "node:a", QUEUE_MS + 2_000).await;
    assert_eq!(heartbeat(store, &first.lease, 60, QUEUE_MS + 3_000).await, Heartbeat::Held { cancel_requested: false });
    assert!(store.finish_task(&first.lease, &succeeded(&instance, 1, true), QUEUE_MS + 4_000).await.expect("finish"));
    let first_finished = FunctionTask {
        state: TaskState::Success,
        progress: 100,
        started_ms: Some(QUEUE_MS + 2_000),
        ended_ms: Some(QUEUE_MS + 4_000),
        extend_info: metrics_of(1),
        attempt: 1,
        artifact: Some(artifact_of(&instance, 1)),
        ..first_task.clone()
    };
    assert_eq!(find_task(store, &instance, 1).await, first_finished);
    assert_eq!(queue_columns(&side_connection, first_task.id).await, unleased(QUEUE_MS + 1_000, 3), "no lease left");
    let serving = find_instance(store, &instance).await;
    assert_eq!(
        serving,
        FunctionInstance {
            serving_generation: Some(1),
            extend_info: metrics_of(1),
            updated_ms: QUEUE_MS + 4_000,
            ..instance.clone()
        }
    );
    assert_eq!(serving.status(), "available");

    // The same lease cannot finish it again, either way.
    for late_outcome in [failed("Late"), succeeded(&instance, 1, true)] {
        assert!(!store.finish_task(&first.lease, &late_outcome, QUEUE_MS + 5_000).await.expect("finish"));
        assert_eq!(find_task(store, &instance, 1).await, first_finished);
        assert_eq!(find_instance(store, &instance).await, serving);
    }

    // Generation 2 succeeds without being served: the instance keeps serving generation 1.
    let second_task = store.create_task(&instance, "api__second", QUEUE_MS + 10_000).await.expect("create task");
    let second = claim(store, "node:a", QUEUE_MS + 11_000).await;
    assert!(
        store.finish_task(&second.lease, &succeeded(&instance, 2, false), QUEUE_MS + 12_000).await.expect("finish")
    );
    assert_eq!(
        find_task(store, &instance, 2).await,
        FunctionTask {
            state: TaskState::Success,
            progress: 100,
            started_ms: Some(QUEUE_MS + 11_000),
            ended_ms: Some(QUEUE_MS + 12_000),
            extend_info: metrics_of(2),
            attempt: 1,
            artifact: Some(artifact_of(&instance, 2)),
            ..second_task
        }
    );
    assert_eq!(find_instance(store, &instance).await, serving, "serve: false leaves the instance alone");

    // Generation 3 fails: the task records why, the instance keeps serving generation 1.
    let third_task = store.create_task(&instance, "api__third", QUEUE_MS + 20_000).await.expect("create task");
    let third = claim(store, "node:a", QUEUE_MS + 21_000).await;
    assert_eq!(
        heartbeat(store, &third.lease, 30, QUEUE_MS + 22_000).await,
        Heartbeat::Held { cancel_requested: false }
    );
    let failure = failed("OutOfMemory");
    assert!(store.finish_task(&third.lease, &failure, QUEUE_MS + 23_000).await.expect("finish"));
    let TaskOutcome::Failed { extend_info: failure_info } = failure else { unreachable!() };
    assert_eq!(
        find_task(store, &instance, 3).await,
        FunctionTask {
            state: TaskState::Failed,
            progress: 30,
            started_ms: Some(QUEUE_MS + 21_000),
            ended_ms: Some(QUEUE_MS + 23_000),
            extend_info: failure_info,
            attempt: 1,
            artifact: None,
            ..third_task.clone()
        }
    );
    assert_eq!(queue_columns(&side_connection, third_task.id).await, unleased(QUEUE_MS + 20_000, 3));
    assert_eq!(find_instance(store, &instance).await, serving, "a failure never touches the serving model");

    // Nor does it make an instance that never served available.
    let never_served = queue_instance(&backend, &app_group, "never_served", "").await;
    let failed_task = run_task(store, &never_served, QUEUE_MS + 30_000, |_| failed("BadData")).await;
    assert_eq!(failed_task.state, TaskState::Failed);
    let unchanged = find_instance(store, &never_served).await;
    assert_eq!(unchanged, never_served);
    assert_eq!(unchanged.status(), "unavailable");
}

async fn queue_finish_under_a_lost_lease_changes_nothing(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = queue_instance(&backend, &app_group, "ctr", "").await;
    let task = store.create_task(&instance, "api__contested", QUEUE_MS + 1_000).await.expect("create task");
    let first = claim(store, "node:a", QUEUE_MS + 2_000).await;

    // Not the lease's worker.
    let impostor = TaskLease { worker_id: "node:b".into(), ..first.lease.clone() };
    let before = (find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await);
    assert!(!store.finish_task(&impostor, &succeeded(&instance, 1, true), QUEUE_MS + 3_000).await.expect("finish"));
    assert!(!store.release_task(&impostor, QUEUE_MS + 3_000).await.expect("release"));
    assert_eq!((find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await), before);
    assert_eq!(find_instance(store, &instance).await, instance);

    // The lease expires; the task is reaped and the same worker (another of its slots) runs
    // attempt 2: only the attempt tells the two apart. Attempt 1 finishing late changes nothing,
    // whatever it reports.
    let lost_ms = QUEUE_MS + 2_000 + LEASE_MS + 1;
    assert_eq!(reap(store, &[task.id], lost_ms, 1_000, None, "node:a").await, [reaped(&task, true)]);
    let second = claim(store, "node:a", lost_ms + 1_000).await;
    assert_eq!(second.lease, TaskLease { attempt: 2, ..first.lease.clone() });
    let before = (find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await);
    assert_eq!(before.1, leased("node:a", lost_ms + 1_000 + LEASE_MS, lost_ms + 1_000, 3));
    for stale_outcome in [succeeded(&instance, 1, true), succeeded(&instance, 1, false), failed("Stale")] {
        assert!(!store.finish_task(&first.lease, &stale_outcome, lost_ms + 2_000).await.expect("finish"));
        assert_eq!((find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await), before);
        assert_eq!(find_instance(store, &instance).await, instance, "a stale success serves nothing");
    }
    assert!(
        !store.release_task(&first.lease, lost_ms + 2_500).await.expect("release"),
        "a stale attempt cannot release either"
    );
    assert_eq!((find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await), before);

    // The current attempt finishes.
    assert!(store.finish_task(&second.lease, &succeeded(&instance, 1, true), lost_ms + 3_000).await.expect("finish"));
    let finished = find_task(store, &instance, 1).await;
    assert_eq!((finished.state, finished.attempt, finished.ended_ms), (TaskState::Success, 2, Some(lost_ms + 3_000)));
    assert_eq!(find_instance(store, &instance).await.serving_generation, Some(1));
}

async fn queue_an_older_generation_never_replaces_a_newer_serving_model(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = queue_instance(&backend, &app_group, "ctr", "").await;

    // Generation 1 runs under node:a's lease. No API lets generation 2 start while it runs, so it
    // is set aside behind the store's back, and back to running once generation 2 is served.
    let first_task = store.create_task(&instance, "api__first", QUEUE_MS + 1_000).await.expect("create task");
    let first = claim(store, "node:a", QUEUE_MS + 2_000).await;
    force_task_state(&side_connection, first_task.id, TaskState::Failed).await;
    let second_task =
        run_task(store, &instance, QUEUE_MS + 10_000, |generation| succeeded(&instance, generation, true)).await;
    assert_eq!(second_task.generation, 2);
    let serving = find_instance(store, &instance).await;
    assert_eq!((serving.serving_generation, serving.extend_info.clone()), (Some(2), metrics_of(2)));
    force_task_state(&side_connection, first_task.id, TaskState::Running).await;

    // Generation 1 finishes last: its task succeeds, the instance keeps serving generation 2.
    assert!(store.finish_task(&first.lease, &succeeded(&instance, 1, true), QUEUE_MS + 20_000).await.expect("finish"));
    let first_finished = find_task(store, &instance, 1).await;
    assert_eq!(
        (first_finished.state, first_finished.ended_ms, first_finished.artifact),
        (TaskState::Success, Some(QUEUE_MS + 20_000), Some(artifact_of(&instance, 1)))
    );
    assert_eq!(find_instance(store, &instance).await, serving, "serving_generation never moves backwards");

    // A newer generation still moves it forward.
    run_task(store, &instance, QUEUE_MS + 30_000, |generation| succeeded(&instance, generation, true)).await;
    assert_eq!(
        find_instance(store, &instance).await,
        FunctionInstance {
            serving_generation: Some(3),
            extend_info: metrics_of(3),
            updated_ms: QUEUE_MS + 31_000,
            ..instance.clone()
        }
    );
}

async fn queue_release_gives_the_task_back_without_using_an_attempt(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = queue_instance(&backend, &app_group, "ctr", "").await;
    let task = store.create_task(&instance, "api__released", QUEUE_MS + 1_000).await.expect("create task");
    let first = claim(store, "node:a", QUEUE_MS + 2_000).await;
    assert_eq!(heartbeat(store, &first.lease, 50, QUEUE_MS + 3_000).await, Heartbeat::Held { cancel_requested: false });

    // Only the holder of the current attempt releases it.
    let before = (find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await);
    for wrong_lease in [
        TaskLease { worker_id: "node:b".into(), ..first.lease.clone() },
        TaskLease { attempt: 2, ..first.lease.clone() },
    ] {
        assert!(!store.release_task(&wrong_lease, QUEUE_MS + 3_500).await.expect("release"), "{wrong_lease:?}");
        assert_eq!((find_task(store, &instance, 1).await, queue_columns(&side_connection, task.id).await), before);
    }

    // Pending again, claimable at once, with one more attempt allowed (the attempt counter is the
    // fencing token: it never goes back).
    assert!(store.release_task(&first.lease, QUEUE_MS + 3_500).await.expect("release"));
    assert_eq!(
        find_task(store, &instance, 1).await,
        FunctionTask {
            state: TaskState::Pending,
            progress: 0,
            attempt: 1,
            started_ms: Some(QUEUE_MS + 2_000),
            ..task.clone()
        }
    );
    assert_eq!(queue_columns(&side_connection, task.id).await, unleased(QUEUE_MS + 1_000, 4));
    assert!(!store.release_task(&first.lease, QUEUE_MS + 3_600).await.expect("release"), "released once");
    assert_eq!(heartbeat(store, &first.lease, 60, QUEUE_MS + 4_000).await, Heartbeat::Lost);

    // Three attempts may still be lost: 2 and 3 are retried, 4 is the last.
    let mut now_ms = QUEUE_MS + 4_000;
    let mut lease = claim(store, "node:b", now_ms).await.lease;
    for attempt in 2..=4 {
        assert_eq!(lease.attempt, attempt);
        now_ms += LEASE_MS + 1;
        let last = attempt == 4;
        assert_eq!(
            reap(store, &[task.id], now_ms, 0, None, "node:b").await,
            [reaped(&task, !last)],
            "attempt {attempt}"
        );
        if !last {
            lease = claim(store, "node:b", now_ms).await.lease;
        }
    }
    let lost = find_task(store, &instance, 1).await;
    assert_eq!((lost.state, lost.attempt, lost.ended_ms), (TaskState::Failed, 4, Some(now_ms)));
    let (error, reason) = failure_of(&lost);
    assert!(error.contains("WorkerLost") && error.contains("attempt 4 of 4"), "{error}");
    assert_eq!(reason, "WorkerLost");
}

async fn queue_a_task_asked_to_cancel_is_never_run_again(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let flagged_running = |instance: FunctionInstance, now_ms: Millis, worker_id: &'static str| async move {
        let task = store.create_task(&instance, "api__flagged", now_ms).await.expect("create task");
        let claimed = claim(store, worker_id, now_ms).await;
        assert_eq!(claimed.task.id, task.id);
        let flagged = store.request_cancel(&instance, task.generation, now_ms + 100).await.expect("cancel");
        assert_eq!((flagged.state, flagged.cancel_requested), (TaskState::Running, true));
        (instance, task, claimed.lease)
    };
    #[track_caller]
    fn assert_cancelled(task: &FunctionTask, ended_ms: Millis) {
        assert_eq!((task.state, task.ended_ms, task.artifact.as_ref()), (TaskState::Failed, Some(ended_ms), None));
        let (error, reason) = failure_of(task);
        assert!(error.contains("cancel"), "{error}");
        assert_eq!(reason, "Cancelled");
    }

    // Its worker shuts down and gives it back: it ends, cancelled, instead of waiting for the
    // next worker.
    let released = queue_instance(&backend, &app_group, "released", "").await;
    let (released, released_task, lease) = flagged_running(released, QUEUE_MS + 1_000, "node:a").await;
    assert!(store.release_task(&lease, QUEUE_MS + 2_000).await.expect("release"));
    let ended = find_task(store, &released, 1).await;
    assert_cancelled(&ended, QUEUE_MS + 2_000);
    assert_eq!((ended.attempt, ended.started_ms), (1, Some(QUEUE_MS + 1_000)));
    assert_eq!(queue_columns(&side_connection, released_task.id).await, unleased(QUEUE_MS + 1_000, 3));
    assert!(!store.release_task(&lease, QUEUE_MS + 2_100).await.expect("release"), "released once");
    assert_eq!(find_task(store, &released, 1).await, ended);
    assert_eq!(store.claim_task("node:b", QUEUE_MS + 3_000, LEASE_MS).await.expect("claim"), None);

    // Its worker is lost with attempts left: it ends, cancelled, instead of being retried.
    let lost = queue_instance(&backend, &app_group, "lost", "").await;
    let (lost, lost_task, _) = flagged_running(lost, QUEUE_MS + 10_000, "node:a").await;
    let lost_ms = QUEUE_MS + 10_000 + LEASE_MS + 1;
    assert_eq!(reap(store, &[lost_task.id], lost_ms, 0, None, "node:b").await, [reaped(&lost_task, false)]);
    let ended = find_task(store, &lost, 1).await;
    assert_cancelled(&ended, lost_ms);
    assert_eq!(ended.attempt, 1);
    assert_eq!(store.claim_task("node:b", lost_ms + 1, LEASE_MS).await.expect("claim"), None);

    // So is a task of this node's earlier life taken back at start.
    let restarted = queue_instance(&backend, &app_group, "restarted", "").await;
    let (restarted, restarted_task, _) = flagged_running(restarted, QUEUE_MS + 200_000, "node:old").await;
    let restart_ms = QUEUE_MS + 200_500;
    assert_eq!(
        reap(store, &[restarted_task.id], restart_ms, 0, Some("node:"), "node:new").await,
        [reaped(&restarted_task, false)]
    );
    assert_cancelled(&find_task(store, &restarted, 1).await, restart_ms);

    // A release without a cancellation still gives the task back.
    let plain = queue_instance(&backend, &app_group, "plain", "").await;
    let plain_task = store.create_task(&plain, "api__plain", QUEUE_MS + 300_000).await.expect("create task");
    let claimed = claim(store, "node:a", QUEUE_MS + 300_000).await;
    assert!(store.release_task(&claimed.lease, QUEUE_MS + 300_500).await.expect("release"));
    let pending = find_task(store, &plain, 1).await;
    assert_eq!((pending.state, pending.ended_ms, pending.cancel_requested), (TaskState::Pending, None, false));
    assert_eq!(queue_columns(&side_connection, plain_task.id).await, unleased(QUEUE_MS + 300_000, 4));
}

async fn queue_reaper_retries_a_lost_task_then_fails_it(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = queue_instance(&backend, &app_group, "ctr", "").await;
    let task = store.create_task(&instance, "api__lost", QUEUE_MS + 1_000).await.expect("create task");
    const RETRY_DELAY_MS: Millis = 5_000;

    let first = claim(store, "node:a", QUEUE_MS + 2_000).await;
    assert_eq!(heartbeat(store, &first.lease, 50, QUEUE_MS + 3_000).await, Heartbeat::Held { cancel_requested: false });
    let expires_ms = QUEUE_MS + 3_000 + LEASE_MS;
    assert_eq!(reap(store, &[task.id], expires_ms, RETRY_DELAY_MS, None, "node:x").await, [], "held until it expires");
    assert_eq!(find_task(store, &instance, 1).await.state, TaskState::Running);

    // Lost with attempts left: pending again after the delay, progress back to 0.
    assert_eq!(reap(store, &[task.id], expires_ms + 1, RETRY_DELAY_MS, None, "node:x").await, [reaped(&task, true)]);
    let retry_ms = expires_ms + 1 + RETRY_DELAY_MS;
    assert_eq!(
        find_task(store, &instance, 1).await,
        FunctionTask {
            state: TaskState::Pending,
            progress: 0,
            attempt: 1,
            started_ms: Some(QUEUE_MS + 2_000),
            ..task.clone()
        }
    );
    assert_eq!(queue_columns(&side_connection, task.id).await, unleased(retry_ms, 3));
    assert_eq!(reap(store, &[task.id], retry_ms + LEASE_MS, RETRY_DELAY_MS, None, "node:x").await, [], "not running");
    assert_eq!(store.claim_task("node:b", retry_ms - 1, LEASE_MS).await.expect("claim"), None, "not before the delay");

    // Attempt 2 is lost as well; attempt 3 is the last.
    let second = claim(store, "node:b", retry_ms).await;
    assert_eq!(second.lease.attempt, 2);
    let second_lost_ms = retry_ms + LEASE_MS + 1;
    assert_eq!(reap(store, &[task.id], second_lost_ms, RETRY_DELAY_MS, None, "node:x").await, [reaped(&task, true)]);
    let third = claim(store, "node:c", second_lost_ms + RETRY_DELAY_MS).await;
    assert_eq!(third.lease.attempt, 3);
    let third_lost_ms = second_lost_ms + RETRY_DELAY_MS + LEASE_MS + 1;
    assert_eq!(reap(store, &[task.id], third_lost_ms, RETRY_DELAY_MS, None, "node:x").await, [reaped(&task, false)]);

    let lost = find_task(store, &instance, 1).await;
    assert_eq!(
        lost,
        FunctionTask {
            state: TaskState::Failed,
            progress: 0,
            attempt: 3,
            started_ms: Some(QUEUE_MS + 2_000),
            ended_ms: Some(third_lost_ms),
            extend_info: lost.extend_info.clone(),
            ..task.clone()
        }
    );
    let (error, reason) = failure_of(&lost);
    assert!(error.contains("WorkerLost") && error.contains("node:c") && error.contains("attempt 3 of 3"), "{error}");
    assert_eq!(reason, "WorkerLost");
    assert_eq!(extend_info_json(&lost)["failure"]["attempts"], 3);
    assert_eq!(queue_columns(&side_connection, task.id).await, unleased(second_lost_ms + RETRY_DELAY_MS, 3));
    assert_eq!(find_instance(store, &instance).await, instance, "a lost task serves nothing");
    assert_eq!(reap(store, &[task.id], third_lost_ms + LEASE_MS, 0, None, "node:x").await, [], "reaped once");
    assert_eq!(store.claim_task("node:d", third_lost_ms + LEASE_MS, LEASE_MS).await.expect("claim"), None);
    for stale_lease in [&first.lease, &second.lease, &third.lease] {
        assert_eq!(heartbeat(store, stale_lease, 10, third_lost_ms + 1).await, Heartbeat::Lost);
    }
}

async fn queue_reaper_takes_back_the_leases_of_a_dead_worker_prefix(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    const RETRY_DELAY_MS: Millis = 1_000;

    // other:expired's lease expires at +60.5s; the others hold theirs until +130s. This node is
    // `node_1`: its prefix is taken literally, so `_` stands for no other character, and case
    // counts.
    let expired = queue_instance(&backend, &app_group, "expired", "").await;
    let expired_task = store.create_task(&expired, "api__expired", QUEUE_MS + 500).await.expect("create task");
    claim(store, "other:expired", QUEUE_MS + 500).await;
    let mut held_tasks = Vec::new();
    for (index, worker_id) in
        ["node_1:old", "node_1:current", "other:live", "nodeX1:live", "NODE_1:live"].into_iter().enumerate()
    {
        let instance = queue_instance(&backend, &app_group, &format!("held_{index}"), "").await;
        let task =
            store.create_task(&instance, "api__held", QUEUE_MS + 1_000 + index as Millis).await.expect("create task");
        let claimed = claim(store, worker_id, QUEUE_MS + 70_000).await;
        assert_eq!(claimed.task.id, task.id);
        held_tasks.push((worker_id, task));
    }
    let old_task = &held_tasks[0].1;
    let mut all_ids = vec![expired_task.id];
    all_ids.extend(held_tasks.iter().map(|(_, task)| task.id));
    let now_ms = QUEUE_MS + 100_000;

    // Without a prefix only the expired lease goes.
    assert_eq!(
        reap(store, &all_ids, now_ms, RETRY_DELAY_MS, None, "node_1:current").await,
        [reaped(&expired_task, true)]
    );
    // With it, the node's earlier life goes too, but not its current one nor any other node's.
    assert_eq!(
        reap(store, &all_ids, now_ms, RETRY_DELAY_MS, Some("node_1:"), "node_1:current").await,
        [reaped(old_task, true)]
    );
    assert_eq!(queue_columns(&side_connection, old_task.id).await, unleased(now_ms + RETRY_DELAY_MS, 3));
    assert_eq!(queue_columns(&side_connection, expired_task.id).await, unleased(now_ms + RETRY_DELAY_MS, 3));
    for (worker_id, task) in &held_tasks[1..] {
        assert_eq!(
            queue_columns(&side_connection, task.id).await,
            leased(worker_id, QUEUE_MS + 70_000 + LEASE_MS, task.created_ms, 3),
            "{worker_id} keeps its lease"
        );
    }
    assert_eq!(
        reap(store, &all_ids, now_ms, RETRY_DELAY_MS, Some("node_1:"), "node_1:current").await,
        [],
        "nothing more to take back"
    );
}

async fn queue_request_cancel_fails_a_pending_task_and_flags_a_running_one(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = queue_instance(&backend, &app_group, "ctr", "").await;

    // Pending: failed at once, never claimed.
    let pending = store.create_task(&instance, "api__pending", QUEUE_MS + 1_000).await.expect("create task");
    let cancelled = store.request_cancel(&instance, 1, QUEUE_MS + 2_000).await.expect("cancel");
    assert_eq!(
        cancelled,
        FunctionTask {
            state: TaskState::Failed,
            ended_ms: Some(QUEUE_MS + 2_000),
            extend_info: cancelled.extend_info.clone(),
            ..pending.clone()
        }
    );
    let (error, reason) = failure_of(&cancelled);
    assert!(error.contains("cancelled"), "{error}");
    assert_eq!(reason, "Cancelled");
    assert_eq!(find_task(store, &instance, 1).await, cancelled);
    assert_eq!(store.claim_task("node:a", QUEUE_MS + 3_000, LEASE_MS).await.expect("claim"), None);
    assert_eq!(store.request_cancel(&instance, 1, QUEUE_MS + 4_000).await.expect("cancel again"), cancelled);

    // Running: flagged; the worker learns it from its heartbeat and stops.
    let running_task = store.create_task(&instance, "api__running", QUEUE_MS + 10_000).await.expect("create task");
    assert_eq!(running_task.generation, 2);
    let claimed = claim(store, "node:a", QUEUE_MS + 11_000).await;
    let flagged = store.request_cancel(&instance, 2, QUEUE_MS + 12_000).await.expect("cancel");
    assert_eq!(flagged, FunctionTask { cancel_requested: true, ..claimed.task.clone() });
    assert_eq!(find_task(store, &instance, 2).await, flagged);
    assert_eq!(store.request_cancel(&instance, 2, QUEUE_MS + 13_000).await.expect("cancel again"), flagged);
    assert_eq!(
        heartbeat(store, &claimed.lease, 40, QUEUE_MS + 14_000).await,
        Heartbeat::Held { cancel_requested: true }
    );
    assert!(store.finish_task(&claimed.lease, &failed("Cancelled"), QUEUE_MS + 15_000).await.expect("finish"));

    // Finished: returned unchanged.
    for generation in [1, 2] {
        let finished = find_task(store, &instance, generation).await;
        assert_eq!(store.request_cancel(&instance, generation, QUEUE_MS + 20_000).await.expect("cancel"), finished);
        assert_eq!(find_task(store, &instance, generation).await, finished);
    }
    let succeeded_task =
        run_task(store, &instance, QUEUE_MS + 30_000, |generation| succeeded(&instance, generation, true)).await;
    let serving = find_instance(store, &instance).await;
    assert_eq!(store.request_cancel(&instance, 3, QUEUE_MS + 40_000).await.expect("cancel"), succeeded_task);
    assert_eq!(find_task(store, &instance, 3).await, succeeded_task);
    assert_eq!(find_instance(store, &instance).await, serving);

    let unknown = expect_error(store.request_cancel(&instance, 99, QUEUE_MS + 50_000).await, ErrorCode::TaskNotExist);
    assert_eq!(unknown, CoreError::TaskNotExist { instance_name: "ctr".into(), generation: "99".into() });
}

async fn schedule_fires(side_connection: &AnyPool, instance: &FunctionInstance) -> Vec<(Millis, Option<i64>)> {
    let rows = sqlx::query("SELECT fire_ms, generation FROM schedule_fires WHERE instance_id = $1 ORDER BY fire_ms")
        .bind(instance.id)
        .fetch_all(side_connection)
        .await
        .expect("read schedule fires");
    rows.iter()
        .map(|row| (row.try_get("fire_ms").expect("fire_ms"), row.try_get("generation").expect("generation")))
        .collect()
}

async fn queue_fire_schedule_enqueues_each_fire_time_once(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let side_connection = backend.side_connection().await;
    let app_group = fresh_app_group(&backend, "shop").await;
    let nightly = queue_instance(&backend, &app_group, "nightly", "0 3 * * *").await;
    let manual = queue_instance(&backend, &app_group, "manual", "").await;
    let dropped = queue_instance(&backend, &app_group, "dropped", "30 * * * *").await;
    let own_ids = [nightly.id, manual.id, dropped.id];
    let scheduled = || async move {
        let listed = store.scheduled_instances().await.expect("scheduled instances");
        listed.into_iter().filter(|instance| own_ids.contains(&instance.id)).collect::<Vec<_>>()
    };
    assert_eq!(scheduled().await, [nightly.clone(), dropped.clone()], "only instances with a cron");

    let first_fire_ms = QUEUE_MS + 3_600_000;
    let FireOutcome::Enqueued(first_task) =
        store.fire_schedule(&nightly, first_fire_ms, "cron__first", first_fire_ms + 20).await.expect("fire")
    else {
        panic!("the first fire enqueues");
    };
    assert_eq!(
        (first_task.generation, first_task.state, first_task.trigger, first_task.run_id.as_str()),
        (1, TaskState::Pending, TaskTrigger::Cron, "cron__first")
    );
    assert_eq!((first_task.created_ms, first_task.started_ms, first_task.attempt), (first_fire_ms + 20, None, 0));
    assert_eq!(find_task(store, &nightly, 1).await, first_task);
    assert_eq!(queue_columns(&side_connection, first_task.id).await, unleased(first_fire_ms + 20, 3));

    // The same fire time again (another scheduler, a later tick): nothing more.
    assert_eq!(
        store.fire_schedule(&nightly, first_fire_ms, "cron__again", first_fire_ms + 500).await.expect("fire"),
        FireOutcome::AlreadyFired
    );
    // The next fire time while the task is still pending: skipped, and remembered as skipped.
    let second_fire_ms = first_fire_ms + 3_600_000;
    assert_eq!(
        store.fire_schedule(&nightly, second_fire_ms, "cron__busy", second_fire_ms).await.expect("fire"),
        FireOutcome::SkippedBusy
    );
    assert_eq!(
        store.fire_schedule(&nightly, second_fire_ms, "cron__busy_again", second_fire_ms + 1).await.expect("fire"),
        FireOutcome::AlreadyFired
    );
    let tasks = store.list_tasks(&nightly, &TaskFilter::default(), everything()).await.expect("list tasks");
    assert_eq!(tasks.items, std::slice::from_ref(&first_task), "no task was created by the repeated or skipped fires");
    assert_eq!(schedule_fires(&side_connection, &nightly).await, [(first_fire_ms, Some(1)), (second_fire_ms, None)]);

    // Once the task has finished, the next fire enqueues the next generation.
    let claimed = claim(store, "node:a", second_fire_ms + 10).await;
    assert_eq!(claimed.task.id, first_task.id);
    assert!(
        store.finish_task(&claimed.lease, &succeeded(&nightly, 1, true), second_fire_ms + 20).await.expect("finish")
    );
    let third_fire_ms = second_fire_ms + 3_600_000;
    let FireOutcome::Enqueued(second_task) =
        store.fire_schedule(&nightly, third_fire_ms, "cron__third", third_fire_ms).await.expect("fire")
    else {
        panic!("a fire after the task finished enqueues");
    };
    assert_eq!(
        (second_task.generation, second_task.trigger),
        (2, TaskTrigger::Cron),
        "a skipped fire used no generation"
    );
    expect_error(store.create_task(&nightly, "api__manual", third_fire_ms + 1).await, ErrorCode::TaskIsRunning);
    assert_eq!(
        schedule_fires(&side_connection, &nightly).await,
        [(first_fire_ms, Some(1)), (second_fire_ms, None), (third_fire_ms, Some(2))]
    );

    // A fire for an instance deleted meanwhile is dropped.
    store.delete_instance(&dropped).await.expect("delete instance");
    assert_eq!(
        store.fire_schedule(&dropped, first_fire_ms, "cron__dropped", first_fire_ms).await.expect("fire"),
        FireOutcome::AlreadyFired
    );
    // An instance whose cron is cleared leaves the schedule.
    store
        .update_instance(
            &nightly,
            &InstanceChanges { cron: Some(String::new()), ..InstanceChanges::default() },
            None,
            third_fire_ms,
        )
        .await
        .expect("clear the cron");
    assert_eq!(scheduled().await, []);
}

async fn queue_concurrent_fires_of_one_fire_time_enqueue_one_task(backend: TestBackend) {
    const SCHEDULERS: usize = 8;
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = Arc::new(queue_instance(&backend, &app_group, "nightly", "0 3 * * *").await);
    let fire_ms = QUEUE_MS + 3_600_000;

    let start_line = Arc::new(tokio::sync::Barrier::new(SCHEDULERS));
    let mut schedulers = Vec::with_capacity(SCHEDULERS);
    for scheduler_index in 0..SCHEDULERS {
        let scheduler_store = Arc::clone(store);
        let scheduler_instance = Arc::clone(&instance);
        let scheduler_start_line = Arc::clone(&start_line);
        schedulers.push(tokio::spawn(async move {
            scheduler_start_line.wait().await;
            let run_id = format!("cron__scheduler_{scheduler_index}");
            let now_ms = fire_ms + scheduler_index as Millis;
            scheduler_store.fire_schedule(&scheduler_instance, fire_ms, &run_id, now_ms).await
        }));
    }
    let mut enqueued = Vec::new();
    let mut already_fired = 0;
    for scheduler in schedulers {
        match scheduler.await.expect("scheduler panicked").expect("fire") {
            FireOutcome::Enqueued(task) => enqueued.push(task),
            FireOutcome::AlreadyFired => already_fired += 1,
            FireOutcome::SkippedBusy => panic!("no scheduler may see the fire's own task as busy"),
        }
    }
    assert_eq!(enqueued.len(), 1, "exactly one scheduler enqueues: {enqueued:?}");
    assert_eq!(already_fired, SCHEDULERS - 1);
    assert_eq!((enqueued[0].generation, enqueued[0].trigger), (1, TaskTrigger::Cron));
    let tasks = store.list_tasks(&instance, &TaskFilter::default(), everything()).await.expect("list tasks");
    assert_eq!(tasks.items, enqueued);
}

async fn queue_delete_task_keeps_the_task_of_the_served_model(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = queue_instance(&backend, &app_group, "ctr", "").await;
    let serve = |generation| succeeded(&instance, generation, true);

    let first = run_task(store, &instance, QUEUE_MS + 1_000, serve).await;
    let refused = expect_error(store.delete_task(&instance, 1).await, ErrorCode::TaskUnableDelete);
    assert_eq!(
        refused,
        CoreError::TaskUnableDelete {
            instance_name: "ctr".into(),
            generation: 1,
            reason: "its model is the one the instance serves".into()
        }
    );
    assert_message_contains(&refused, "serves");
    assert_eq!(find_task(store, &instance, 1).await, first);

    // Tasks whose model is not served go.
    run_task(store, &instance, QUEUE_MS + 10_000, |_| failed("BadData")).await;
    run_task(store, &instance, QUEUE_MS + 20_000, |generation| succeeded(&instance, generation, false)).await;
    store.delete_task(&instance, 2).await.expect("delete a failed task");
    store.delete_task(&instance, 3).await.expect("delete a success that was not served");
    assert_eq!(find_instance(store, &instance).await.serving_generation, Some(1));

    // Once a newer model is served, the older task goes, and the newer one stays.
    run_task(store, &instance, QUEUE_MS + 30_000, serve).await;
    assert_eq!(find_instance(store, &instance).await.serving_generation, Some(4));
    store.delete_task(&instance, 1).await.expect("delete the task of a model no longer served");
    assert_eq!(store.find_task(&instance, 1).await.expect("find"), None);
    expect_error(store.delete_task(&instance, 4).await, ErrorCode::TaskUnableDelete);
    let remaining = store.list_tasks(&instance, &TaskFilter::default(), everything()).await.expect("list tasks");
    assert_eq!(remaining.items.iter().map(|task| task.generation).collect::<Vec<_>>(), [4]);
}

async fn queue_prunable_generations_keep_the_newest_and_never_the_served_one(backend: TestBackend) {
    let _queue_turn = backend.hold_the_queue().await;
    let store = &backend.store;
    let app_group = fresh_app_group(&backend, "shop").await;
    let instance = queue_instance(&backend, &app_group, "ctr", "").await;
    let other = queue_instance(&backend, &app_group, "other", "").await;

    // 1 and 2 served (2 serves now), 3 failed, 4 and 5 succeeded without being served.
    let mut tasks = Vec::new();
    for (index, outcome) in ["serve", "serve", "fail", "keep", "keep"].into_iter().enumerate() {
        let now_ms = QUEUE_MS + 10_000 * (index as Millis + 1);
        let task = run_task(store, &instance, now_ms, |generation| match outcome {
            "serve" => succeeded(&instance, generation, true),
            "keep" => succeeded(&instance, generation, false),
            _ => failed("BadData"),
        })
        .await;
        tasks.push(task);
    }
    run_task(store, &other, QUEUE_MS + 100_000, |generation| succeeded(&other, generation, false)).await;
    assert_eq!(find_instance(store, &instance).await.serving_generation, Some(2));

    let instance_ref = &instance;
    let prunable = |keep: usize| async move {
        let instance = instance_ref;
        let prunable = store.prunable_generations(instance, keep).await.expect("prunable generations");
        assert!(prunable.iter().all(|task| task.instance_id == instance.id), "only the instance's own: {prunable:?}");
        prunable.iter().map(|task| task.generation).collect::<Vec<_>>()
    };
    let all = store.prunable_generations(&instance, 0).await.expect("prunable generations");
    assert_eq!(all, [tasks[4].clone(), tasks[3].clone(), tasks[0].clone()], "newest first, not the served one");
    assert_eq!(prunable(1).await, [4, 1]);
    assert_eq!(prunable(2).await, [1]);
    assert_eq!(prunable(3).await, [1], "the served one counts among those kept");
    assert_eq!(prunable(4).await, Vec::<i64>::new());
    assert_eq!(prunable(100).await, Vec::<i64>::new());

    // Once its artifact is deleted, a generation is no longer prunable (nor counted as kept).
    store.forget_artifact(tasks[0].id).await.expect("forget artifact");
    assert_eq!(find_task(store, &instance, 1).await, FunctionTask { artifact: None, ..tasks[0].clone() });
    store.forget_artifact(tasks[0].id).await.expect("forgetting twice is fine");
    assert_eq!(prunable(0).await, [5, 4]);
    assert_eq!(prunable(1).await, [4]);
    assert_eq!(prunable(2).await, Vec::<i64>::new());
    assert_eq!(find_task(store, &instance, 2).await.artifact, Some(artifact_of(&instance, 2)), "others keep theirs");
}

// ---------------------------------------------------------------------------------------------
// Known PostgreSQL races
// ---------------------------------------------------------------------------------------------

/// Interleavings that only PostgreSQL allows (SQLite's in-process write gate serializes every
/// write). Each test forces the interleaving by holding, on a side connection, a lock on a row:
/// `FOR KEY SHARE` stalls the store's `DELETE` of that row but nothing else; `FOR UPDATE` on a
/// task is what another node's claim holds between choosing the task and committing.
mod postgres_races {
    use super::*;

    /// Lets the stalled call reach its blocked statement before the next step.
    const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reaper_never_takes_a_lease_renewed_after_it_looked() {
        let test_path = "postgres_races::reaper_never_takes_a_lease_renewed_after_it_looked";
        let Some(backend) = TestBackend::postgres(test_path).await else {
            return;
        };
        let _queue_turn = backend.hold_the_queue().await;
        let store = &backend.store;
        let side_connection = backend.side_connection().await;
        let app_group = fresh_app_group(&backend, "shop").await;
        let instance = queue_instance(&backend, &app_group, "ctr", "").await;
        let task = store.create_task(&instance, "api__renewed", QUEUE_MS + 1_000).await.expect("create task");
        let lease = claim(store, "node:a", QUEUE_MS + 2_000).await.lease;
        let lost_ms = QUEUE_MS + 2_000 + LEASE_MS + 1;

        // The worker's late heartbeat (what `heartbeat` writes) is between its write and commit
        // while the reaper reads the expired lease.
        let mut heartbeat_in_flight = side_connection.begin().await.expect("begin");
        sqlx::query(
            "UPDATE function_tasks SET lease_expires_ms = $1 WHERE id = $2 AND lease_owner = $3 AND attempt = $4 \
             AND state = 'running'",
        )
        .bind(lost_ms + LEASE_MS)
        .bind(task.id)
        .bind(lease.worker_id.as_str())
        .bind(lease.attempt)
        .execute(&mut *heartbeat_in_flight)
        .await
        .expect("renew the lease");
        let reaper = tokio::spawn({
            let reaping_store = Arc::clone(store);
            async move { reaping_store.reap_lost_tasks(lost_ms, 0, None, "node:x").await }
        });
        tokio::time::sleep(SETTLE).await;
        heartbeat_in_flight.commit().await.expect("commit the heartbeat");

        let reaped = reaper.await.expect("reaper panicked").expect("reap");
        assert!(reaped.iter().all(|reaped_task| reaped_task.task_id != task.id), "took a renewed lease: {reaped:?}");
        assert_eq!(heartbeat(store, &lease, 10, lost_ms + 1).await, Heartbeat::Held { cancel_requested: false });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn claim_never_hands_one_task_to_two_claimers() {
        let test_path = "postgres_races::claim_never_hands_one_task_to_two_claimers";
        let Some(backend) = TestBackend::postgres(test_path).await else {
            return;
        };
        let _queue_turn = backend.hold_the_queue().await;
        let store = &backend.store;
        let side_connection = backend.side_connection().await;
        let app_group = fresh_app_group(&backend, "shop").await;
        let instance = queue_instance(&backend, &app_group, "ctr", "").await;
        let task = store.create_task(&instance, "api__contended", QUEUE_MS + 1_000).await.expect("create task");

        // Another node's claim has chosen the task and not committed yet.
        let mut other_claim = side_connection.begin().await.expect("begin");
        sqlx::query("SELECT id FROM function_tasks WHERE id = $1 FOR UPDATE")
            .bind(task.id)
            .fetch_all(&mut *other_claim)
            .await
            .expect("lock the task row");
        let claimers: Vec<_> = ["node:a", "node:b"]
            .into_iter()
            .map(|worker_id| {
                let claiming_store = Arc::clone(store);
                tokio::spawn(async move { claiming_store.claim_task(worker_id, QUEUE_MS + 2_000, LEASE_MS).await })
            })
            .collect();
        tokio::time::sleep(SETTLE).await;
        other_claim.commit().await.expect("release the task row");

        let mut leases = Vec::new();
        for claimer in claimers {
            if let Some(claimed) = claimer.await.expect("claimer panicked").expect("claim") {
                leases.push(claimed.lease);
            }
        }
        assert!(leases.len() <= 1, "one task was handed to several claimers: {leases:?}");
        let stored = find_task(store, &instance, task.generation).await;
        assert_eq!(stored.attempt, leases.len() as i64, "one attempt per claim: {leases:?}");
        assert_eq!(
            store.claim_task("node:c", QUEUE_MS + 3_000, LEASE_MS).await.expect("claim").is_some(),
            leases.is_empty()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn referenced_resource_is_never_deleted_under_a_concurrent_reference() {
        let test_path = "postgres_races::referenced_resource_is_never_deleted_under_a_concurrent_reference";
        let Some(backend) = TestBackend::postgres(test_path).await else {
            return;
        };
        let store = &backend.store;
        let side_connection = backend.side_connection().await;
        let app_group = fresh_app_group(&backend, "shop").await;
        let resource = store
            .insert_resource(new_resource(
                app_group.id,
                FunctionName::Hot,
                "allow_list",
                ResourceType::RawFile,
                BASE_MS,
            ))
            .await
            .expect("insert resource");

        let mut blocker = side_connection.begin().await.expect("begin");
        sqlx::query("SELECT id FROM function_resources WHERE id = $1 FOR KEY SHARE")
            .bind(resource.id)
            .fetch_all(&mut *blocker)
            .await
            .expect("lock the resource row");

        let deletion = tokio::spawn({
            let deleting_store = Arc::clone(store);
            let deleted_resource = resource.clone();
            async move { deleting_store.delete_resource(&deleted_resource).await }
        });
        tokio::time::sleep(SETTLE).await;
        let insertion = tokio::spawn({
            let inserting_store = Arc::clone(store);
            async move {
                inserting_store
                    .insert_instance(
                        new_instance(app_group.id, FunctionName::Hot, "late_reference", BASE_MS),
                        &[raw_file_reference("usageParameters.allow_dict_id", "allow_list")],
                    )
                    .await
            }
        });
        tokio::time::sleep(SETTLE).await;
        blocker.commit().await.expect("release the resource row");

        let deletion_result = deletion.await.expect("deletion panicked");
        let insertion_result = insertion.await.expect("insertion panicked");
        assert!(
            deletion_result.is_err() || insertion_result.is_err(),
            "both succeeded: the resource is gone while instance \"late_reference\" was created referencing it \
             (deletion: {deletion_result:?}, insertion: {insertion_result:?})"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn default_instance_is_never_deleted_under_a_concurrent_set_default() {
        let test_path = "postgres_races::default_instance_is_never_deleted_under_a_concurrent_set_default";
        let Some(backend) = TestBackend::postgres(test_path).await else {
            return;
        };
        let store = &backend.store;
        let side_connection = backend.side_connection().await;
        let app_group = fresh_app_group(&backend, "shop").await;
        let instance = store
            .insert_instance(new_instance(app_group.id, FunctionName::Hot, "contended", BASE_MS), &[])
            .await
            .expect("insert instance");

        let mut blocker = side_connection.begin().await.expect("begin");
        sqlx::query("SELECT id FROM function_instances WHERE id = $1 FOR KEY SHARE")
            .bind(instance.id)
            .fetch_all(&mut *blocker)
            .await
            .expect("lock the instance row");

        let deletion = tokio::spawn({
            let deleting_store = Arc::clone(store);
            let deleted_instance = instance.clone();
            async move { deleting_store.delete_instance(&deleted_instance).await }
        });
        tokio::time::sleep(SETTLE).await;
        let set_default = tokio::spawn({
            let setting_store = Arc::clone(store);
            async move { setting_store.set_default_instance(app_group.id, FunctionName::Hot, Some("contended")).await }
        });
        tokio::time::sleep(SETTLE).await;
        blocker.commit().await.expect("release the instance row");

        let deletion_result = deletion.await.expect("deletion panicked");
        let set_default_result = set_default.await.expect("set_default panicked");
        assert!(
            deletion_result.is_err() || set_default_result.is_err(),
            "both succeeded: the default instance was deleted (and the default silently cleared) \
             (deletion: {deletion_result:?}, set default: {set_default_result:?})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RAM: users, AccessKeys, policies and attachments
// ---------------------------------------------------------------------------------------------

fn ram_user(account_id: &AccountId, user_name: &str) -> RamUser {
    RamUser {
        account_id: account_id.clone(),
        user_name: user_name.to_string(),
        display_name: format!("{user_name} display"),
        comments: "comment".into(),
        created_ms: BASE_MS,
    }
}

fn user(user_name: &str) -> Principal {
    Principal::User(user_name.to_string())
}

fn ram_key(account_id: &AccountId, user_name: &str, access_key_id: &str, created_ms: Millis) -> StoredAccessKey {
    StoredAccessKey {
        access_key_id: access_key_id.to_string(),
        account_id: account_id.clone(),
        owner: Principal::User(user_name.to_string()),
        status: AccessKeyStatus::Active,
        sealed_secret: format!("v1:sealed-{access_key_id}"),
        created_ms,
    }
}

fn ram_policy(account_id: &AccountId, policy_name: &str) -> StoredPolicy {
    StoredPolicy {
        account_id: account_id.clone(),
        policy_name: policy_name.to_string(),
        description: "d".into(),
        document: format!(
            r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"opensearch:{policy_name}","Resource":"*"}}]}}"#
        ),
        created_ms: BASE_MS,
    }
}

async fn ram_users_are_unique_per_account_and_invisible_across_accounts(backend: TestBackend) {
    let store = &backend.store;
    let account = backend.account("ram-users");
    let other_account = backend.account("ram-users-other");
    let alice = store.insert_user(ram_user(&account, "alice")).await.unwrap();
    store.insert_user(ram_user(&account, "bob")).await.unwrap();
    assert_eq!(
        store.insert_user(ram_user(&account, "alice")).await.unwrap_err(),
        CoreError::UserAlreadyExist { user_name: "alice".into() }
    );
    // The same name in another account is another user.
    store.insert_user(ram_user(&other_account, "alice")).await.unwrap();
    assert_eq!(store.find_user(&account, "alice").await.unwrap(), Some(alice));
    assert_eq!(store.find_user(&account, "Alice").await.unwrap(), None, "names are case-sensitive");
    let names: Vec<String> = store.list_users(&account).await.unwrap().into_iter().map(|user| user.user_name).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(store.list_users(&other_account).await.unwrap().len(), 1);
}

async fn ram_access_keys_are_limited_per_user_and_found_by_id(backend: TestBackend) {
    let store = &backend.store;
    let account = backend.account("ram-keys");
    store.insert_user(ram_user(&account, "alice")).await.unwrap();
    let first = ram_key(&account, "alice", &backend.access_key_id("first"), BASE_MS);
    let second = ram_key(&account, "alice", &backend.access_key_id("second"), BASE_MS + 1);
    store.insert_access_key(first.clone(), 2).await.unwrap();
    store.insert_access_key(second.clone(), 2).await.unwrap();
    let third = ram_key(&account, "alice", &backend.access_key_id("third"), BASE_MS + 2);
    assert_eq!(
        store.insert_access_key(third.clone(), 2).await.unwrap_err(),
        CoreError::AccessKeyLimitExceeded { owner: "RAM user \"alice\"".into(), limit: 2 }
    );
    assert_eq!(store.find_access_key(&third.access_key_id).await.unwrap(), None);
    assert_eq!(store.find_access_key(&first.access_key_id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.list_access_keys(&account, &user("alice")).await.unwrap(), vec![first, second]);
    // A key for a user that does not exist.
    let orphan = ram_key(&account, "nobody", &backend.access_key_id("orphan"), BASE_MS);
    assert_eq!(
        store.insert_access_key(orphan, 2).await.unwrap_err(),
        CoreError::UserNotExist { user_name: "nobody".into() }
    );
}

async fn ram_access_key_status_and_deletion(backend: TestBackend) {
    let store = &backend.store;
    let account = backend.account("ram-status");
    store.insert_user(ram_user(&account, "alice")).await.unwrap();
    store.insert_user(ram_user(&account, "bob")).await.unwrap();
    let key = ram_key(&account, "alice", &backend.access_key_id("key"), BASE_MS);
    store.insert_access_key(key.clone(), 2).await.unwrap();
    assert!(
        store
            .set_access_key_status(&account, &user("alice"), &key.access_key_id, AccessKeyStatus::Inactive)
            .await
            .unwrap()
    );
    assert_eq!(store.find_access_key(&key.access_key_id).await.unwrap().unwrap().status, AccessKeyStatus::Inactive);
    // Another user cannot touch it.
    assert!(
        !store
            .set_access_key_status(&account, &user("bob"), &key.access_key_id, AccessKeyStatus::Active)
            .await
            .unwrap()
    );
    assert!(!store.delete_access_key(&account, &user("bob"), &key.access_key_id).await.unwrap());
    assert!(
        store
            .set_access_key_status(&account, &user("alice"), &key.access_key_id, AccessKeyStatus::Active)
            .await
            .unwrap()
    );
    assert!(store.delete_access_key(&account, &user("alice"), &key.access_key_id).await.unwrap());
    assert!(!store.delete_access_key(&account, &user("alice"), &key.access_key_id).await.unwrap());
    assert_eq!(store.find_access_key(&key.access_key_id).await.unwrap(), None);
}

async fn ram_policies_attach_in_order_and_cannot_be_deleted_while_attached(backend: TestBackend) {
    let store = &backend.store;
    let account = backend.account("ram-policies");
    store.insert_user(ram_user(&account, "alice")).await.unwrap();
    let reader = store.insert_policy(ram_policy(&account, "Reader")).await.unwrap();
    let writer = store.insert_policy(ram_policy(&account, "Writer")).await.unwrap();
    assert_eq!(
        store.insert_policy(ram_policy(&account, "Reader")).await.unwrap_err(),
        CoreError::PolicyAlreadyExist { policy_name: "Reader".into() }
    );
    assert_eq!(store.find_policy(&account, "Reader").await.unwrap(), Some(reader.clone()));
    assert_eq!(store.list_policies(&account).await.unwrap(), vec![reader.clone(), writer.clone()]);
    // Attached in this order: Writer, then Reader.
    assert!(store.attach_policy(&account, "alice", "Writer", BASE_MS).await.unwrap());
    assert!(store.attach_policy(&account, "alice", "Reader", BASE_MS).await.unwrap());
    assert!(!store.attach_policy(&account, "alice", "Reader", BASE_MS).await.unwrap(), "attaching twice");
    assert_eq!(store.policies_of_user(&account, "alice").await.unwrap(), vec![writer.clone(), reader.clone()]);
    assert_eq!(
        store.attach_policy(&account, "alice", "Missing", BASE_MS).await.unwrap_err(),
        CoreError::PolicyNotExist { policy_name: "Missing".into() }
    );
    assert_eq!(
        store.attach_policy(&account, "nobody", "Reader", BASE_MS).await.unwrap_err(),
        CoreError::UserNotExist { user_name: "nobody".into() }
    );
    assert_eq!(
        store.delete_policy(&account, "Reader").await.unwrap_err(),
        CoreError::PolicyInUse { policy_name: "Reader".into(), user_names: "alice".into() }
    );
    assert!(store.detach_policy(&account, "alice", "Reader").await.unwrap());
    assert!(!store.detach_policy(&account, "alice", "Reader").await.unwrap());
    assert!(store.delete_policy(&account, "Reader").await.unwrap());
    assert!(!store.delete_policy(&account, "Reader").await.unwrap());
    assert_eq!(store.policies_of_user(&account, "alice").await.unwrap(), vec![writer]);
}

async fn ram_deleting_a_user_takes_its_keys_and_attachments(backend: TestBackend) {
    let store = &backend.store;
    let account = backend.account("ram-delete");
    store.insert_user(ram_user(&account, "alice")).await.unwrap();
    store.insert_policy(ram_policy(&account, "Reader")).await.unwrap();
    store.attach_policy(&account, "alice", "Reader", BASE_MS).await.unwrap();
    let key = ram_key(&account, "alice", &backend.access_key_id("key"), BASE_MS);
    store.insert_access_key(key.clone(), 2).await.unwrap();
    assert!(store.delete_user(&account, "alice").await.unwrap());
    assert!(!store.delete_user(&account, "alice").await.unwrap());
    assert_eq!(store.find_access_key(&key.access_key_id).await.unwrap(), None);
    assert_eq!(store.find_user(&account, "alice").await.unwrap(), None);
    // The policy is free to go now; a new user of the same name starts without it.
    store.insert_user(ram_user(&account, "alice")).await.unwrap();
    assert!(store.policies_of_user(&account, "alice").await.unwrap().is_empty());
    assert!(store.delete_policy(&account, "Reader").await.unwrap());
}

async fn ram_concurrent_key_creation_respects_the_limit(backend: TestBackend) {
    let store = backend.store.clone();
    let account = backend.account("ram-race");
    store.insert_user(ram_user(&account, "alice")).await.unwrap();
    let mut handles = Vec::new();
    for index in 0..6 {
        let store = store.clone();
        let key = ram_key(&account, "alice", &backend.access_key_id(&format!("race{index}")), BASE_MS + index);
        handles.push(tokio::spawn(async move { store.insert_access_key(key, 2).await }));
    }
    let mut created = 0;
    for handle in handles {
        match handle.await.unwrap() {
            Ok(()) => created += 1,
            Err(CoreError::AccessKeyLimitExceeded { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 2);
    assert_eq!(store.list_access_keys(&account, &user("alice")).await.unwrap().len(), 2);
}

async fn ram_root_keys_have_no_user_and_their_own_limit(backend: TestBackend) {
    let store = &backend.store;
    let account = backend.account("ram-root");
    store.insert_user(ram_user(&account, "alice")).await.unwrap();
    let mut root_key = ram_key(&account, "unused", &backend.access_key_id("root1"), BASE_MS);
    root_key.owner = Principal::Root;
    store.insert_access_key(root_key.clone(), 2).await.unwrap();
    let mut second = root_key.clone();
    second.access_key_id = backend.access_key_id("root2");
    store.insert_access_key(second.clone(), 2).await.unwrap();
    let mut third = root_key.clone();
    third.access_key_id = backend.access_key_id("root3");
    assert_eq!(
        store.insert_access_key(third, 2).await.unwrap_err(),
        CoreError::AccessKeyLimitExceeded { owner: "the root account".into(), limit: 2 }
    );
    // A user's keys are counted apart.
    store.insert_access_key(ram_key(&account, "alice", &backend.access_key_id("alice1"), BASE_MS), 2).await.unwrap();
    assert_eq!(store.find_access_key(&root_key.access_key_id).await.unwrap(), Some(root_key.clone()));
    assert_eq!(store.list_access_keys(&account, &Principal::Root).await.unwrap(), vec![root_key.clone(), second]);
    assert_eq!(store.list_access_keys(&account, &user("alice")).await.unwrap().len(), 1);
    // A user cannot reach the root's keys, nor the root a user's through its own listing.
    assert!(!store.delete_access_key(&account, &user("alice"), &root_key.access_key_id).await.unwrap());
    assert!(
        store
            .set_access_key_status(&account, &Principal::Root, &root_key.access_key_id, AccessKeyStatus::Inactive)
            .await
            .unwrap()
    );
    assert!(store.delete_access_key(&account, &Principal::Root, &root_key.access_key_id).await.unwrap());
    // Deleting a user leaves the root's keys alone.
    assert!(store.delete_user(&account, "alice").await.unwrap());
    assert_eq!(store.list_access_keys(&account, &Principal::Root).await.unwrap().len(), 1);
}
