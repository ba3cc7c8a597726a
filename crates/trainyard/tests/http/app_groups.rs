//! CreateAppGroup, ListAppGroups, DescribeAppGroup, ModifyAppGroup, RemoveAppGroup.

use serde_json::json;

use crate::support::{TestServer, unique_name};

#[tokio::test]
async fn app_group_lifecycle_by_name_and_by_id() {
    let server = TestServer::start();
    let client = server.client();
    let name = unique_name("app");
    let created = client
        .call(
            "CreateAppGroup",
            "POST",
            "/v4/openapi/app-groups",
            &[],
            Some(&json!({"name": name, "type": "standard", "chargeType": "PREPAY",
                "quota": {"docSize": 10, "computeResource": 20, "spec": "opensearch.share.common"},
                "tags": [{"key": "team", "value": "search"}]})),
        )
        .await;
    let result = created.expect_ok().clone();
    assert!(created.body.get("requestId").is_some() && created.body.get("RequestId").is_none(), "{}", created.body);
    assert_eq!(result["name"], name.as_str());
    assert_eq!(result["type"], "standard");
    assert_eq!(result["chargeType"], "PREPAY");
    assert_eq!(result["quota"], json!({"docSize": 10, "computeResource": 20, "spec": "opensearch.share.common"}));
    assert_eq!(result["tags"], json!([{"key": "team", "value": "search"}]));
    let id = result["id"].as_str().unwrap().to_string();

    let by_id = client.call("DescribeAppGroup", "GET", &format!("/v4/openapi/app-groups/{id}"), &[], None).await;
    assert_eq!(by_id.expect_ok()["name"], name.as_str());

    let modified = client
        .call(
            "ModifyAppGroup",
            "PUT",
            &format!("/v4/openapi/app-groups/{name}"),
            &[],
            Some(&json!({"description": "web search", "domain": "ecommerce"})),
        )
        .await;
    assert_eq!(modified.expect_ok()["description"], "web search");
    let dry_run = client
        .call(
            "ModifyAppGroup",
            "PUT",
            &format!("/v4/openapi/app-groups/{name}"),
            &[("dryRun", "true")],
            Some(&json!({"description": "changed"})),
        )
        .await;
    assert_eq!(dry_run.expect_ok()["description"], "web search", "a dry run changes nothing");
    let described = client.call("DescribeAppGroup", "GET", &format!("/v4/openapi/app-groups/{name}"), &[], None).await;
    assert_eq!(described.expect_ok()["description"], "web search");
    assert_eq!(described.result()["domain"], "ecommerce");

    let version_switch = client
        .call(
            "ModifyAppGroup",
            "PUT",
            &format!("/v4/openapi/app-groups/{name}"),
            &[],
            Some(&json!({"currentVersion": "v2"})),
        )
        .await;
    assert!(version_switch.expect_error(400, "InvalidParameter").contains("currentVersion"));

    let removed = client.call("RemoveAppGroup", "DELETE", &format!("/v4/openapi/app-groups/{name}"), &[], None).await;
    assert_eq!(removed.expect_ok(), &json!([id.parse::<i64>().unwrap()]));
    let gone = client.call("DescribeAppGroup", "GET", &format!("/v4/openapi/app-groups/{name}"), &[], None).await;
    gone.expect_error(404, "App.NotFound");
    let removed_twice =
        client.call("RemoveAppGroup", "DELETE", &format!("/v4/openapi/app-groups/{id}"), &[], None).await;
    removed_twice.expect_error(404, "App.NotFound");
}

#[tokio::test]
async fn list_filters_sorts_and_pages() {
    let server = TestServer::start();
    let client = server.client();
    let mut names = Vec::new();
    for index in 0..5 {
        let name = format!("app_{index}");
        let body = json!({"name": name, "type": if index % 2 == 0 { "enhanced" } else { "standard" }, "tags": [{"key": "rank", "value": index.to_string()}]});
        client.call("CreateAppGroup", "POST", "/v4/openapi/app-groups", &[], Some(&body)).await.expect_ok();
        names.push(name);
    }
    let all = client.call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[("pageSize", "2")], None).await;
    all.expect_ok();
    assert_eq!(all.body["totalCount"], 5);
    let first_page: Vec<&str> =
        all.result().as_array().unwrap().iter().map(|group| group["name"].as_str().unwrap()).collect();
    assert_eq!(first_page, ["app_4", "app_3"], "newest first");
    let third = client
        .call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[("pageSize", "2"), ("pageNumber", "3")], None)
        .await;
    assert_eq!(third.expect_ok().as_array().unwrap().len(), 1);
    let enhanced = client.call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[("type", "enhanced")], None).await;
    enhanced.expect_ok();
    assert_eq!(enhanced.body["totalCount"], 3);
    let by_name = client.call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[("name", "app_2")], None).await;
    assert_eq!(by_name.expect_ok().as_array().unwrap().len(), 1);
    let by_tag = client
        .call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[("tags", r#"[{"key":"rank","value":"3"}]"#)], None)
        .await;
    assert_eq!(by_tag.expect_ok()[0]["name"], "app_3");
    // Modification times have millisecond resolution; make sure this one is the latest.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    client
        .call("ModifyAppGroup", "PUT", "/v4/openapi/app-groups/app_0", &[], Some(&json!({"description": "touched"})))
        .await
        .expect_ok();
    let by_update = client
        .call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[("sortBy", "1"), ("pageSize", "1")], None)
        .await;
    assert_eq!(by_update.expect_ok()[0]["name"], "app_0", "sortBy=1 sorts by modification time");

    for (query, field) in [
        (("pageSize", "101"), "pageSize"),
        (("pageSize", "0"), "pageSize"),
        (("pageNumber", "0"), "pageNumber"),
        (("pageSize", "ten"), "pageSize"),
        (("sortBy", "7"), "sortBy"),
        (("type", "premium"), "type"),
        (("tags", "not json"), "tags"),
        (("colour", "blue"), "colour"),
    ] {
        let refused = client.call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[query], None).await;
        assert!(refused.expect_error(400, "InvalidParameter").contains(field), "{query:?}: {}", refused.body);
    }
}

#[tokio::test]
async fn names_are_validated_and_unique() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("taken").await.expect_ok();
    client.create_app_group("taken").await.expect_error(409, "App.AlreadyExist");
    for bad in ["9lives", "has space", "dot.ted", "x".repeat(31).as_str(), "ümlaut", "a/b", "a*"] {
        let refused = client.create_app_group(bad).await;
        assert!(refused.expect_error(400, "InvalidParameter").contains("name"), "{bad}: {}", refused.body);
    }
    let missing = client.call("CreateAppGroup", "POST", "/v4/openapi/app-groups", &[], Some(&json!({}))).await;
    missing.expect_error(400, "MissingParameter");
    let bad_type = client
        .call(
            "CreateAppGroup",
            "POST",
            "/v4/openapi/app-groups",
            &[],
            Some(&json!({"name": "ok_name", "type": "gold"})),
        )
        .await;
    assert!(bad_type.expect_error(400, "InvalidParameter").contains("type"));
    let listed = client.call("ListAppGroups", "GET", "/v4/openapi/app-groups", &[], None).await;
    listed.expect_ok();
    assert_eq!(listed.body["totalCount"], 1, "refused creates stored nothing");
}

#[tokio::test]
async fn removing_an_app_group_removes_what_it_owns() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("owner").await.expect_ok();
    client
        .create_instance("owner", "ctr", json!({"instanceName": "ctr_one", "modelType": "tf_checkpoint"}))
        .await
        .expect_ok();
    client.create_task("owner", "ctr", "ctr_one").await.expect_ok();
    client.create_raw_file("owner", "hot", "deny_words", "bad\n").await.expect_ok();
    client.set_default_instance("owner", "ctr", "ctr_one").await.expect_ok();
    client.call("RemoveAppGroup", "DELETE", "/v4/openapi/app-groups/owner", &[], None).await.expect_ok();

    // A new app group of the same name starts empty.
    client.create_app_group("owner").await.expect_ok();
    let instances = client
        .call("ListFunctionInstances", "GET", "/v4/openapi/app-groups/owner/functions/ctr/instances", &[], None)
        .await;
    instances.expect_ok();
    assert_eq!(instances.body["TotalCount"], 0);
    let resources = client
        .call("ListFunctionResources", "GET", "/v4/openapi/app-groups/owner/functions/hot/resources", &[], None)
        .await;
    resources.expect_ok();
    assert_eq!(resources.body["TotalCount"], 0);
    client
        .call(
            "GetFunctionDefaultInstance",
            "GET",
            "/v4/openapi/app-groups/owner/functions/ctr/default-instance",
            &[],
            None,
        )
        .await
        .expect_error(404, "DefaultInstance.NotExist");
}
