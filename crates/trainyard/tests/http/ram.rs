//! RAM over HTTP: the admin API, Forbidden.RAM on every kind of operation, object-level
//! authorization (BOLA: a user scoped to one app group cannot reach another), function-level
//! authorization (a non-admin cannot manage keys or policies), disabled and deleted keys,
//! per-key rate limits and failed-signature counts.

use serde_json::{Value, json};

use crate::support::{Client, Tamper, TestServer, instance_path};

const USERS: &str = "/v4/openapi/ram/users";
const POLICIES: &str = "/v4/openapi/ram/policies";

/// Creates a user with one policy (from `statements`) and an AccessKey; a client signing as it.
async fn user_with_policy(server: &TestServer, root: &Client, user: &str, statements: Value) -> Client {
    root.call("CreateUser", "POST", USERS, &[], Some(&json!({"userName": user}))).await.expect_ok();
    let policy_name = format!("{user}-policy");
    let document = json!({"Version": "1", "Statement": statements}).to_string();
    root.call(
        "CreatePolicy",
        "POST",
        POLICIES,
        &[],
        Some(&json!({"policyName": policy_name, "policyDocument": document})),
    )
    .await
    .expect_ok();
    root.call("AttachPolicyToUser", "POST", &format!("{USERS}/{user}/policies/{policy_name}"), &[], None)
        .await
        .expect_ok();
    key_for(server, root, user).await
}

async fn key_for(server: &TestServer, root: &Client, user: &str) -> Client {
    let created = root.call("CreateAccessKey", "POST", &format!("{USERS}/{user}/access-keys"), &[], None).await;
    let result = created.expect_ok();
    let id = result["AccessKeyId"].as_str().unwrap();
    let secret = result["AccessKeySecret"].as_str().unwrap();
    Client::new(&server.address, id, secret)
}

const INSTANCES_A: &str = "/v4/openapi/app-groups/app_a/functions/ctr/instances";

async fn two_app_groups(root: &Client) {
    for app in ["app_a", "app_b"] {
        root.create_app_group(app).await.expect_ok();
        root.create_instance(app, "ctr", json!({"instanceName": "ctr_one", "modelType": "tf_checkpoint"}))
            .await
            .expect_ok();
        root.create_task(app, "ctr", "ctr_one").await.expect_ok();
    }
}

#[tokio::test]
async fn a_read_only_user_can_describe_but_not_write() {
    let server = TestServer::start();
    let root = server.client();
    two_app_groups(&root).await;
    let reader = user_with_policy(
        &server,
        &root,
        "reader",
        json!([{"Effect": "Allow", "Action": ["opensearch:Describe*", "opensearch:ListAppGroup"], "Resource": "*"}]),
    )
    .await;
    reader.call("ListFunctionInstances", "GET", INSTANCES_A, &[], None).await.expect_ok();
    reader.get_instance("app_a", "ctr", "ctr_one", &[]).await.expect_ok();
    let tasks = format!("{}/tasks", instance_path("app_a", "ctr", "ctr_one"));
    reader.call("ListFunctionTasks", "GET", &tasks, &[], None).await.expect_ok();
    reader.call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/app_a", &[], None).await.expect_ok();
    assert_eq!(
        reader
            .call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[], None)
            .await
            .expect_ok()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    reader
        .call(
            "GetFunctionCurrentVersion",
            "GET",
            "/v4/openapi/functions/hot/current-version",
            &[("modelType", "offline_inference")],
            None,
        )
        .await
        .expect_ok();

    // Writes: 403 Forbidden.RAM naming the action and the app group's ARN (by name).
    let refused = reader.create_task("app_a", "ctr", "ctr_one").await;
    let message = refused.expect_error(403, "Forbidden.RAM").to_string();
    assert!(message.contains("opensearch:WriteFunction"), "{message}");
    assert!(message.contains("acs:opensearch:cn-hangzhou:root:apps/app_a"), "{message}");
    reader
        .create_instance("app_a", "ctr", json!({"instanceName": "ctr_two", "modelType": "tf_checkpoint"}))
        .await
        .expect_error(403, "Forbidden.RAM");
    reader.create_app_group("app_c").await.expect_error(403, "Forbidden.RAM");
    reader
        .call("RemoveAppGroup", "DELETE", "/v4/openapi/app-groups/app_a", &[], None)
        .await
        .expect_error(403, "Forbidden.RAM");
    // Serving and data-plane writes are not Describe* (DescribeData is).
    reader
        .call("QueryHot", "GET", "/v3/openapi/apps/app_a/actions/hot", &[("hit", "5")], None)
        .await
        .expect_error(403, "");
    reader
        .call("CompactDataset", "POST", "/v4/openapi/app-groups/app_a/dataset/actions/compact", &[], None)
        .await
        .expect_error(403, "Forbidden.RAM");
    // Nothing changed.
    let instances = root.call("ListFunctionInstances", "GET", INSTANCES_A, &[], None).await;
    assert_eq!(instances.expect_ok().as_array().unwrap().len(), 1);
    root.call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/app_a", &[], None).await.expect_ok();
}

#[tokio::test]
async fn a_user_scoped_to_one_app_group_cannot_reach_another() {
    let server = TestServer::start();
    let root = server.client();
    two_app_groups(&root).await;
    let scoped = user_with_policy(
        &server,
        &root,
        "scoped",
        json!([{"Effect": "Allow", "Action": "opensearch:*", "Resource": "acs:opensearch:*:*:apps/app_a"}]),
    )
    .await;
    // Its own app group: everything.
    scoped.call("ListFunctionInstances", "GET", INSTANCES_A, &[], None).await.expect_ok();
    scoped
        .create_instance("app_a", "ctr", json!({"instanceName": "ctr_two", "modelType": "tf_checkpoint"}))
        .await
        .expect_ok();
    // Another app group: refused — by name or by id, for the group, its instances and tasks —
    // and never any of its data.
    let app_b = root.call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/app_b", &[], None).await;
    let app_b_id = app_b.expect_ok()["id"].as_str().unwrap().to_string();
    for identity in ["app_b".to_string(), app_b_id] {
        let path = format!("/v4/openapi/app-groups/{identity}");
        let refused = scoped.call("DescribeAppGroup", "GET", &path, &[], None).await;
        let message = refused.expect_error(403, "Forbidden.RAM");
        assert!(message.contains("apps/app_b"), "the id is resolved to the name: {message}");
        assert!(refused.result().is_null(), "{}", refused.body);
    }
    let instances_b = "/v4/openapi/app-groups/app_b/functions/ctr/instances";
    scoped.call("ListFunctionInstances", "GET", instances_b, &[], None).await.expect_error(403, "Forbidden.RAM");
    scoped.get_instance("app_b", "ctr", "ctr_one", &[]).await.expect_error(403, "Forbidden.RAM");
    let task_b = format!("{}/tasks/1", instance_path("app_b", "ctr", "ctr_one"));
    scoped.call("GetFunctionTask", "GET", &task_b, &[], None).await.expect_error(403, "Forbidden.RAM");
    scoped.call("DeleteFunctionTask", "DELETE", &task_b, &[], None).await.expect_error(403, "Forbidden.RAM");
    scoped.create_task("app_b", "ctr", "ctr_one").await.expect_error(403, "Forbidden.RAM");
    scoped
        .call("DeleteFunctionInstance", "DELETE", &instance_path("app_b", "ctr", "ctr_one"), &[], None)
        .await
        .expect_error(403, "Forbidden.RAM");
    // Case variants are other names, not a way in.
    scoped
        .call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/APP_B", &[], None)
        .await
        .expect_error(403, "Forbidden.RAM");
    // A group that does not exist answers the same as one that does: existence does not leak.
    scoped
        .call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/app_zzz", &[], None)
        .await
        .expect_error(403, "Forbidden.RAM");
    // ListAppGroups shows only what it may see.
    let listed = scoped.call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[], None).await;
    let names: Vec<&str> =
        listed.expect_ok().as_array().unwrap().iter().map(|group| group["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app_a"]);
    assert_eq!(listed.body["totalCount"], 1);
    // B is untouched.
    let tasks_b = format!("{}/tasks", instance_path("app_b", "ctr", "ctr_one"));
    assert_eq!(
        root.call("ListFunctionTasks", "GET", &tasks_b, &[], None).await.expect_ok().as_array().unwrap().len(),
        1
    );
    // And a Deny on A blocks every verb under A.
    root.call(
        "CreatePolicy",
        "POST",
        POLICIES,
        &[],
        Some(&json!({"policyName": "deny-a", "policyDocument": r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"*","Resource":"acs:opensearch:*:*:apps/app_a"}]}"#})),
    )
    .await
    .expect_ok();
    root.call("AttachPolicyToUser", "POST", &format!("{USERS}/scoped/policies/deny-a"), &[], None).await.expect_ok();
    let denied = scoped.call("ListFunctionInstances", "GET", INSTANCES_A, &[], None).await;
    assert!(denied.expect_error(403, "Forbidden.RAM").contains("explicitly denies"));
    let empty = scoped.call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[], None).await;
    empty.expect_error(403, "Forbidden.RAM");
}

#[tokio::test]
async fn only_admins_manage_users_keys_and_policies() {
    let server = TestServer::start();
    let root = server.client();
    // A user with every OpenSearch action but no RAM action.
    let operator = user_with_policy(
        &server,
        &root,
        "operator",
        json!([{"Effect": "Allow", "Action": "opensearch:*", "Resource": "*"}]),
    )
    .await;
    operator.create_app_group("ops_app").await.expect_ok();
    let refused = operator.call("CreateAccessKey", "POST", &format!("{USERS}/operator/access-keys"), &[], None).await;
    let message = refused.expect_error(403, "Forbidden.RAM");
    assert!(message.contains("ram:CreateAccessKey") && message.contains("acs:ram::root:user/operator"), "{message}");
    operator
        .call("AttachPolicyToUser", "POST", &format!("{USERS}/operator/policies/operator-policy"), &[], None)
        .await
        .expect_error(403, "Forbidden.RAM");
    operator
        .call("CreateUser", "POST", USERS, &[], Some(&json!({"userName": "sneaky"})))
        .await
        .expect_error(403, "Forbidden.RAM");
    operator
        .call("CreatePolicy", "POST", POLICIES, &[], Some(&json!({"policyName": "p", "policyDocument": "{}"})))
        .await
        .expect_error(403, "Forbidden.RAM");
    operator.call("ListUsers", "GET", USERS, &[], None).await.expect_error(403, "Forbidden.RAM");
    // Nothing was created.
    let users = root.call("ListUsers", "GET", USERS, &[], None).await;
    assert_eq!(users.expect_ok().as_array().unwrap().len(), 1);

    // A user granted key management for itself only.
    let self_service = user_with_policy(
        &server,
        &root,
        "self",
        json!([{"Effect": "Allow", "Action": ["ram:CreateAccessKey", "ram:ListAccessKeys"], "Resource": "acs:ram:*:*:user/self"}]),
    )
    .await;
    self_service.call("ListAccessKeys", "GET", &format!("{USERS}/self/access-keys"), &[], None).await.expect_ok();
    self_service
        .call("CreateAccessKey", "POST", &format!("{USERS}/operator/access-keys"), &[], None)
        .await
        .expect_error(403, "Forbidden.RAM");
    self_service.call("CreateAccessKey", "POST", &format!("{USERS}/self/access-keys"), &[], None).await.expect_ok();
    // RAM's limit: two keys per user.
    self_service
        .call("CreateAccessKey", "POST", &format!("{USERS}/self/access-keys"), &[], None)
        .await
        .expect_error(409, "LimitExceeded.User.AccessKey");
}

#[tokio::test]
async fn the_admin_api_manages_users_keys_and_policies() {
    let server = TestServer::start();
    let root = server.client();
    root.call("CreateUser", "POST", USERS, &[], Some(&json!({"userName": "alice", "displayName": "Alice"})))
        .await
        .expect_ok();
    root.call("CreateUser", "POST", USERS, &[], Some(&json!({"userName": "alice"})))
        .await
        .expect_error(409, "EntityAlreadyExists.User");
    let bad_name = root.call("CreateUser", "POST", USERS, &[], Some(&json!({"userName": "al ice"}))).await;
    assert!(bad_name.expect_error(400, "InvalidParameter").contains("userName"));
    root.call("GetUser", "GET", &format!("{USERS}/bob"), &[], None).await.expect_error(404, "EntityNotExist.User");

    // The secret is in the create answer only.
    let created = root.call("CreateAccessKey", "POST", &format!("{USERS}/alice/access-keys"), &[], None).await;
    let created = created.expect_ok().clone();
    assert_eq!(created["AccessKeySecret"].as_str().unwrap().len(), 30);
    let listed = root.call("ListAccessKeys", "GET", &format!("{USERS}/alice/access-keys"), &[], None).await;
    let listed = listed.expect_ok().as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["AccessKeyId"], created["AccessKeyId"]);
    assert_eq!(listed[0]["Status"], "Active");
    assert!(listed[0].get("AccessKeySecret").is_none());
    // ... and never in the database: secrets are sealed.
    let database = std::fs::read(server.data_dir.join("trainyard.db")).unwrap_or_default();
    let wal = std::fs::read(server.data_dir.join("trainyard.db-wal")).unwrap_or_default();
    let secret = created["AccessKeySecret"].as_str().unwrap().as_bytes();
    for bytes in [&database, &wal] {
        assert!(!bytes.windows(secret.len()).any(|window| window == secret), "the plaintext secret is stored");
    }

    // A malformed policy is refused naming the problem; nothing is stored.
    let malformed = root
        .call(
            "CreatePolicy",
            "POST",
            POLICIES,
            &[],
            Some(&json!({"policyName": "broken", "policyDocument": r#"{"Version":"1","Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#})),
        )
        .await;
    let message = malformed.expect_error(400, "InvalidParameter");
    assert!(
        message.contains("policyDocument.Statement[0].Effect") && message.contains("\"Allow\" or \"Deny\""),
        "{message}"
    );
    root.call("GetPolicy", "GET", &format!("{POLICIES}/broken"), &[], None)
        .await
        .expect_error(404, "EntityNotExist.Policy");
    root.call("AttachPolicyToUser", "POST", &format!("{USERS}/alice/policies/broken"), &[], None)
        .await
        .expect_error(404, "EntityNotExist.Policy");

    let document = r#"{"Statement":[{"Effect":"Allow","Action":"opensearch:Describe*","Resource":"*"}],"Version":"1"}"#;
    let policy = root
        .call("CreatePolicy", "POST", POLICIES, &[], Some(&json!({"policyName": "Reader", "policyDocument": document})))
        .await;
    // Stored in canonical form.
    assert_eq!(
        policy.expect_ok()["PolicyDocument"],
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"opensearch:Describe*","Resource":"*"}]}"#
    );
    root.call("AttachPolicyToUser", "POST", &format!("{USERS}/alice/policies/Reader"), &[], None).await.expect_ok();
    let attached = root.call("ListPoliciesForUser", "GET", &format!("{USERS}/alice/policies"), &[], None).await;
    assert_eq!(attached.expect_ok()[0]["PolicyName"], "Reader");
    root.call("DeletePolicy", "DELETE", &format!("{POLICIES}/Reader"), &[], None)
        .await
        .expect_error(409, "DeleteConflict.Policy.User");

    // The simulator says which statement decided.
    let simulate = format!("{USERS}/alice/actions/simulate");
    let allowed = root
        .call(
            "SimulatePrincipalPolicy",
            "POST",
            &simulate,
            &[],
            Some(
                &json!({"action": "opensearch:DescribeFunction", "resource": "acs:opensearch:cn-hangzhou:root:apps/x"}),
            ),
        )
        .await;
    let allowed = allowed.expect_ok();
    assert_eq!(
        (allowed["Decision"].as_str(), allowed["MatchedPolicyName"].as_str()),
        (Some("allowed"), Some("Reader"))
    );
    assert_eq!(allowed["MatchedStatementIndex"], 0);
    let denied = root
        .call(
            "SimulatePrincipalPolicy",
            "POST",
            &simulate,
            &[],
            Some(&json!({"action": "opensearch:WriteFunction", "resource": "acs:opensearch:cn-hangzhou:root:apps/x"})),
        )
        .await;
    assert_eq!(denied.expect_ok()["Decision"], "implicitDeny");
    assert!(denied.result()["MatchedPolicyName"].is_null());

    root.call("DetachPolicyFromUser", "DELETE", &format!("{USERS}/alice/policies/Reader"), &[], None).await.expect_ok();
    root.call("DeletePolicy", "DELETE", &format!("{POLICIES}/Reader"), &[], None).await.expect_ok();
    root.call("DeleteUser", "DELETE", &format!("{USERS}/alice"), &[], None).await.expect_ok();
    root.call("ListUsers", "GET", USERS, &[], None).await.expect_ok();
    assert_eq!(root.call("ListUsers", "GET", USERS, &[], None).await.expect_ok().as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn disabled_and_deleted_keys_fail_with_their_codes() {
    let server = TestServer::start();
    let root = server.client();
    root.create_app_group("my_app").await.expect_ok();
    let user =
        user_with_policy(&server, &root, "carol", json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}])).await;
    user.call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/my_app", &[], None).await.expect_ok();
    let key_path = format!("{USERS}/carol/access-keys/{}", user.access_key_id);
    root.call("UpdateAccessKey", "PUT", &key_path, &[], Some(&json!({"status": "Inactive"}))).await.expect_ok();
    user.call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/my_app", &[], None)
        .await
        .expect_error(400, "InvalidAccessKeyId.Inactive");
    root.call("UpdateAccessKey", "PUT", &key_path, &[], Some(&json!({"status": "disabled"})))
        .await
        .expect_error(400, "InvalidParameter");
    root.call("UpdateAccessKey", "PUT", &key_path, &[], Some(&json!({"status": "Active"}))).await.expect_ok();
    user.call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/my_app", &[], None).await.expect_ok();
    root.call("DeleteAccessKey", "DELETE", &key_path, &[], None).await.expect_ok();
    user.call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/my_app", &[], None)
        .await
        .expect_error(404, "InvalidAccessKeyId.NotFound");
    root.call("DeleteAccessKey", "DELETE", &key_path, &[], None)
        .await
        .expect_error(404, "EntityNotExist.User.AccessKey");
}

#[tokio::test]
async fn failed_signatures_are_counted_per_key() {
    let server = TestServer::start();
    let root = server.client();
    let user =
        user_with_policy(&server, &root, "dave", json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}])).await;
    let wrong_secret = Tamper { secret: Some("not-the-secret".into()), ..Tamper::default() };
    for _ in 0..3 {
        user.call_raw("ListAppGroups", "GET", "/v4/openapi/app-groups", &[], None, &wrong_secret)
            .await
            .expect_error(400, "SignatureDoesNotMatch");
    }
    let keys = root.call("ListAccessKeys", "GET", &format!("{USERS}/dave/access-keys"), &[], None).await;
    assert_eq!(keys.expect_ok()[0]["FailedSignatureCount"], 3);
}

#[tokio::test]
async fn each_access_key_is_rate_limited_on_its_own() {
    let server = TestServer::start_fresh_with(&[
        ("TRAINYARD_RATE_LIMIT_PER_SECOND", "0.5"),
        ("TRAINYARD_RATE_LIMIT_BURST", "6"),
    ]);
    let root = server.client();
    // Setup takes 5 of the root key's 6 tokens.
    let user =
        user_with_policy(&server, &root, "erin", json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}])).await;
    let mut statuses = Vec::new();
    let mut throttled = None;
    for _ in 0..8 {
        let answer = user.call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[], None).await;
        statuses.push(answer.status);
        if answer.status == 429 {
            throttled = Some(answer);
        }
    }
    assert_eq!(&statuses[..6], &[200; 6], "{statuses:?}");
    let throttled = throttled.expect("the seventh request is throttled");
    throttled.expect_error(429, "Throttling.User");
    let retry_after: u64 = throttled.headers["retry-after"].to_str().unwrap().parse().unwrap();
    let retry_after_ms: u64 = throttled.headers["x-acs-retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert!((1..=2000).contains(&retry_after_ms), "{retry_after_ms}");
    // Another key is not affected by this one's burst.
    root.call("ListUsers", "GET", USERS, &[], None).await.expect_ok();
}

/// Runs `trainyard GROUP <client flags> ARGS...` as the root; (success, stdout, stderr).
fn cli(server: &TestServer, group: &str, arguments: &[&str]) -> (bool, String, String) {
    let client_flags = [
        "--endpoint",
        &server.address,
        "--access-key-id",
        crate::support::ACCESS_KEY_ID,
        "--access-key-secret",
        crate::support::ACCESS_KEY_SECRET,
    ];
    crate::support::run_trainyard(std::iter::once(&group).chain(client_flags.iter()).chain(arguments.iter()))
}

#[tokio::test]
async fn the_cli_manages_users_keys_policies_and_simulates() {
    let server = TestServer::start();
    let directory = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = cli(&server, "users", &["create", "alice", "--display-name", "Alice"]);
    assert!(ok, "{stdout}{stderr}");
    let reader = directory.path().join("reader.json");
    std::fs::write(
        &reader,
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"opensearch:Describe*","Resource":"acs:opensearch:*:*:apps/*"}]}"#,
    )
    .unwrap();
    let reader_path = reader.to_str().unwrap();
    assert!(cli(&server, "policies", &["create", "Reader", "--document", reader_path]).0);
    let broken = directory.path().join("broken.json");
    std::fs::write(&broken, r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*"}]}"#).unwrap();
    let (ok, _, stderr) = cli(&server, "policies", &["create", "Broken", "--document", broken.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("policyDocument.Statement[0]") && stderr.contains("Resource or NotResource"), "{stderr}");
    assert!(cli(&server, "policies", &["attach", "Reader", "--user", "alice"]).0);

    let (ok, stdout, stderr) = cli(&server, "keys", &["create", "--user", "alice"]);
    assert!(ok, "{stderr}");
    let key_id = stdout.lines().find_map(|line| line.strip_prefix("AccessKey id: ")).unwrap().to_string();
    let secret = stdout.lines().find_map(|line| line.strip_prefix("AccessKey secret: ")).unwrap();
    let secret = secret.split(' ').next().unwrap().to_string();
    let alice = Client::new(&server.address, &key_id, &secret);
    server.client().create_app_group("my_app").await.expect_ok();
    alice.call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/my_app", &[], None).await.expect_ok();

    let resource = "acs:opensearch:cn-hangzhou:root:apps/my_app";
    let (ok, stdout, _) = cli(
        &server,
        "policies",
        &["simulate", "--user", "alice", "--action", "opensearch:DescribeFunction", "--resource", resource],
    );
    assert!(ok);
    assert!(stdout.contains("allowed") && stdout.contains("policy Reader Statement[0]"), "{stdout}");
    let (_, stdout, _) = cli(
        &server,
        "policies",
        &["simulate", "--user", "alice", "--action", "opensearch:WriteFunction", "--resource", resource],
    );
    assert!(stdout.contains("denied") && stdout.contains("implicit deny"), "{stdout}");

    // Rotation: a second key, both work until the old one is deleted.
    let (ok, stdout, stderr) = cli(&server, "keys", &["rotate", "--user", "alice", &key_id]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("still works"), "{stdout}");
    assert!(cli(&server, "keys", &["disable", "--user", "alice", &key_id]).0);
    let (_, listed, _) = cli(&server, "keys", &["list", "--user", "alice"]);
    assert!(listed.lines().any(|line| line.starts_with(&key_id) && line.contains("Inactive")), "{listed}");
    alice
        .call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/my_app", &[], None)
        .await
        .expect_error(400, "InvalidAccessKeyId.Inactive");
    assert!(cli(&server, "keys", &["delete", "--user", "alice", &key_id]).0);
    let (_, listed, _) = cli(&server, "keys", &["list", "--user", "alice"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let (_, users, _) = cli(&server, "users", &["list"]);
    assert!(users.starts_with("alice\tAlice"), "{users}");
    let (ok, _, stderr) = cli(&server, "policies", &["delete", "Reader"]);
    assert!(!ok && stderr.contains("DeleteConflict.Policy.User"), "{stderr}");
}

/// Every operation of the table — present and future, serving and admin routes included — is
/// refused to a user without policies: authorization is driven by the table, not by handlers.
#[tokio::test]
async fn every_operation_in_the_table_is_authorized() {
    use trainyard_api::operation::Operation;
    let server = TestServer::start();
    let root = server.client();
    two_app_groups(&root).await;
    root.call("CreateUser", "POST", USERS, &[], Some(&json!({"userName": "nobody"}))).await.expect_ok();
    let nobody = key_for(&server, &root, "nobody").await;
    let values = [
        ("{appGroupIdentity}", "app_a"),
        ("{functionName}", "ctr"),
        ("{instanceName}", "ctr_one"),
        ("{generation}", "1"),
        ("{resourceName}", "res"),
        ("{versionId}", "1"),
        ("{tableName}", "items"),
        ("{dataCollectionName}", "events"),
        ("{dataCollectionType}", "behavior"),
        ("{userName}", "nobody"),
        ("{userAccessKeyId}", &nobody.access_key_id),
        ("{policyName}", "any"),
    ];
    for operation in Operation::ALL {
        let mut path = operation.path().to_string();
        for (parameter, value) in values {
            path = path.replace(parameter, value);
        }
        assert!(!path.contains('{'), "a path parameter without a test value: {path}");
        let body = (operation.method() != http::Method::GET).then(|| json!({}));
        let answer = nobody.call(operation.name(), operation.method().as_str(), &path, &[], body.as_ref()).await;
        assert_eq!(answer.status, 403, "{operation:?} {path}: {}", answer.body);
        let message = answer
            .body
            .get("Message")
            .or_else(|| answer.body.get("message"))
            .or_else(|| answer.body["errors"][0].get("message"));
        let message = message.and_then(Value::as_str).unwrap_or_default();
        assert!(message.contains(operation.ram_action()), "{operation:?}: {message}");
    }
}

#[tokio::test]
async fn the_root_account_rotates_its_own_keys_and_no_user_can() {
    let server = TestServer::start();
    let root = server.client();
    const ROOT_KEYS: &str = "/v4/openapi/ram/root/access-keys";
    let created = root.call("CreateRootAccessKey", "POST", ROOT_KEYS, &[], None).await;
    let created = created.expect_ok().clone();
    assert!(created["UserName"].is_null());
    let second_root = Client::new(
        &server.address,
        created["AccessKeyId"].as_str().unwrap(),
        created["AccessKeySecret"].as_str().unwrap(),
    );
    // The new root key is the root: allowed everything without a policy.
    second_root.call("CreateUser", "POST", USERS, &[], Some(&json!({"userName": "admin"}))).await.expect_ok();
    let listed = second_root.call("ListRootAccessKeys", "GET", ROOT_KEYS, &[], None).await;
    assert_eq!(listed.expect_ok().as_array().unwrap().len(), 1);
    // Not even a user granted every RAM action manages the root's keys.
    let admin =
        user_with_policy(&server, &root, "ramadmin", json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]))
            .await;
    admin.call("ListUsers", "GET", USERS, &[], None).await.expect_ok();
    let refused = admin.call("CreateRootAccessKey", "POST", ROOT_KEYS, &[], None).await;
    assert!(refused.expect_error(403, "Forbidden.RAM").contains("only the root account"));
    let key_path = format!("{ROOT_KEYS}/{}", second_root.access_key_id);
    admin.call("DeleteRootAccessKey", "DELETE", &key_path, &[], None).await.expect_error(403, "Forbidden.RAM");
    // A user's key id on the root route is not the root's.
    let user_key = format!("{ROOT_KEYS}/{}", admin.access_key_id);
    root.call("DeleteRootAccessKey", "DELETE", &user_key, &[], None)
        .await
        .expect_error(404, "EntityNotExist.User.AccessKey");
    // Rotate out: disable, then delete; the bootstrap key keeps working.
    root.call("UpdateRootAccessKey", "PUT", &key_path, &[], Some(&json!({"status": "Inactive"}))).await.expect_ok();
    second_root.call("ListUsers", "GET", USERS, &[], None).await.expect_error(400, "InvalidAccessKeyId.Inactive");
    root.call("DeleteRootAccessKey", "DELETE", &key_path, &[], None).await.expect_ok();
    second_root.call("ListUsers", "GET", USERS, &[], None).await.expect_error(404, "InvalidAccessKeyId.NotFound");
    let (ok, stdout, stderr) = cli(&server, "keys", &["create", "--root"]);
    assert!(ok && stdout.contains("AccessKey secret: "), "{stdout}{stderr}");
    let (_, listed, stderr) = cli(&server, "keys", &["list", "--root"]);
    assert_eq!(listed.lines().count(), 1, "{listed}{stderr}");
    let (ok, _, stderr) = cli(&server, "keys", &["list"]);
    assert!(!ok && stderr.contains("--user"), "{stderr}");
}

/// OWASP API2: secrets never reach the log, even at debug level, while key ids do (a failed
/// signature is logged with the id of the key it claimed).
#[tokio::test]
async fn secrets_never_appear_in_the_log() {
    let directory = tempfile::tempdir().unwrap();
    let log_file = directory.path().join("server.log");
    let mut server = TestServer::start_fresh_logging_to(&log_file, &[("RUST_LOG", "debug")]);
    let root = server.client();
    root.create_app_group("my_app").await.expect_ok();
    let created = root.call("CreateUser", "POST", USERS, &[], Some(&json!({"userName": "frank"}))).await;
    created.expect_ok();
    let key = root.call("CreateAccessKey", "POST", &format!("{USERS}/frank/access-keys"), &[], None).await;
    let key = key.expect_ok().clone();
    let (key_id, secret) = (key["AccessKeyId"].as_str().unwrap(), key["AccessKeySecret"].as_str().unwrap());
    let frank = Client::new(&server.address, key_id, secret);
    frank
        .call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/my_app", &[], None)
        .await
        .expect_error(403, "Forbidden.RAM");
    let wrong = Tamper { secret: Some(format!("{secret}x")), ..Tamper::default() };
    frank
        .call_raw("ListAppGroups", "GET", "/v4/openapi/app-groups", &[], None, &wrong)
        .await
        .expect_error(400, "SignatureDoesNotMatch");
    server.terminate();
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains(key_id), "the failed signature is logged with the key id");
    assert!(log.contains("signature mismatch for an existing AccessKey"), "{log}");
    for secret_text in [secret, crate::support::ACCESS_KEY_SECRET] {
        assert!(!log.contains(secret_text), "a secret is in the log");
    }
}

/// The command-line tools wait out a 429 (re-signed after x-acs-retry-after) instead of failing:
/// with one token refilled every second, the second and third quick calls are each refused
/// once, wait, and succeed.
#[tokio::test]
async fn the_cli_waits_out_the_rate_limit() {
    let server =
        TestServer::start_fresh_with(&[("TRAINYARD_RATE_LIMIT_PER_SECOND", "1"), ("TRAINYARD_RATE_LIMIT_BURST", "1")]);
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let (ok, stdout, stderr) = cli(&server, "users", &["list"]);
        assert!(ok, "{stdout}{stderr}");
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500), "{:?}", started.elapsed());
}
