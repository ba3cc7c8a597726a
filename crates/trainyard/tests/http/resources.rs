//! CreateFunctionResource, GetFunctionResource, ListFunctionResources, UpdateFunctionResource,
//! DeleteFunctionResource.

use serde_json::json;

use crate::support::{TestServer, instance_path};

const RESOURCES: &str = "/v4/openapi/app-groups/my_app/functions/ctr/resources";

fn generator_body() -> serde_json::Value {
    json!({"ResourceName": "features", "ResourceType": "feature_generator", "Description": "id features",
           "Data": {"Generators": [{"Generator": "id", "Input": {"Features": [{"Name": "system_item_id", "Type": "item"}]}, "Output": "item_id_feature"}]}})
}

#[tokio::test]
async fn resource_lifecycle() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("my_app").await.expect_ok();
    let created = client.call("CreateFunctionResource", "POST", RESOURCES, &[], Some(&generator_body())).await;
    created.expect_ok();
    assert!(created.body["Latency"].is_f64(), "resource operations answer a float Latency: {}", created.body);
    client
        .call("CreateFunctionResource", "POST", RESOURCES, &[], Some(&json!({"ResourceName": "notes", "ResourceType": "raw_file", "Data": {"Content": "a\nb", "Generators": []}})))
        .await
        .expect_ok();

    let fetched = client.call("GetFunctionResource", "GET", &format!("{RESOURCES}/features"), &[], None).await;
    let result = fetched.expect_ok();
    assert_eq!(result["ResourceName"], "features");
    assert_eq!(result["ResourceType"], "feature_generator");
    assert_eq!(result["FunctionName"], "ctr");
    assert_eq!(result["Description"], "id features");
    assert_eq!(
        result["Data"]["Generators"][0]["Input"]["Features"][0],
        json!({"Name": "system_item_id", "Type": "item"})
    );
    assert_eq!(result["Data"]["Generators"][0]["Output"], "item_id_feature");
    assert_eq!(result["ReferencedInstances"], json!([]));
    assert!(result["CreateTime"].as_i64().unwrap() > 0 && result["ModifyTime"].as_i64().unwrap() > 0);
    let simple = client
        .call("GetFunctionResource", "GET", &format!("{RESOURCES}/features"), &[("output", "simple")], None)
        .await;
    assert!(simple.expect_ok().get("Data").is_none());

    let listed = client.call("ListFunctionResources", "GET", RESOURCES, &[], None).await;
    listed.expect_ok();
    assert_eq!(listed.body["TotalCount"], 2);
    let raw_only = client.call("ListFunctionResources", "GET", RESOURCES, &[("resourceType", "raw_file")], None).await;
    assert_eq!(raw_only.expect_ok()[0]["ResourceName"], "notes");
    assert_eq!(raw_only.body["TotalCount"], 1);
    let paged =
        client.call("ListFunctionResources", "GET", RESOURCES, &[("pageSize", "1"), ("pageNumber", "2")], None).await;
    assert_eq!(paged.expect_ok().as_array().unwrap().len(), 1);

    client
        .call(
            "UpdateFunctionResource",
            "PUT",
            &format!("{RESOURCES}/notes"),
            &[],
            Some(&json!({"Data": {"Content": "c", "Generators": []}, "Description": "new"})),
        )
        .await
        .expect_ok();
    let updated = client.call("GetFunctionResource", "GET", &format!("{RESOURCES}/notes"), &[], None).await;
    assert_eq!(updated.expect_ok()["Data"]["Content"], "c");
    assert_eq!(updated.result()["Description"], "new");

    client.call("DeleteFunctionResource", "DELETE", &format!("{RESOURCES}/notes"), &[], None).await.expect_ok();
    client
        .call("GetFunctionResource", "GET", &format!("{RESOURCES}/notes"), &[], None)
        .await
        .expect_error(404, "Resource.NotExist");
    client
        .call("DeleteFunctionResource", "DELETE", &format!("{RESOURCES}/notes"), &[], None)
        .await
        .expect_error(404, "Resource.NotExist");
    client
        .call("UpdateFunctionResource", "PUT", &format!("{RESOURCES}/notes"), &[], Some(&json!({})))
        .await
        .expect_error(404, "Resource.NotExist");
}

#[tokio::test]
async fn bad_resources_are_refused_naming_the_field() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("my_app").await.expect_ok();
    client.call("CreateFunctionResource", "POST", RESOURCES, &[], Some(&generator_body())).await.expect_ok();
    client
        .call("CreateFunctionResource", "POST", RESOURCES, &[], Some(&generator_body()))
        .await
        .expect_error(409, "Resource.AlreadyExist");
    let cases = [
        (json!({"ResourceType": "raw_file", "Data": {"Content": "x"}}), "MissingParameter", "ResourceName"),
        (json!({"ResourceName": "r", "Data": {"Content": "x"}}), "MissingParameter", "ResourceType"),
        (
            json!({"ResourceName": "r", "ResourceType": "model", "Data": {"Content": "x"}}),
            "InvalidParameter",
            "ResourceType",
        ),
        (json!({"ResourceName": "r", "ResourceType": "raw_file"}), "MissingParameter", "Data"),
        (
            json!({"ResourceName": "r", "ResourceType": "raw_file", "Data": {"Content": "x", "Generators": [{"Generator": "id"}]}}),
            "InvalidParameter",
            "Data.Generators",
        ),
        (
            json!({"ResourceName": "r", "ResourceType": "feature_generator", "Data": {"Generators": []}}),
            "InvalidParameter",
            "Data.Generators",
        ),
        (
            json!({"ResourceName": "r", "ResourceType": "feature_generator", "Data": {"Generators": [{"Generator": "magic", "Input": {"Features": [{"Name": "a", "Type": "item"}]}, "Output": "o"}]}}),
            "InvalidParameter",
            "Data.Generators[0].Generator",
        ),
        (
            json!({"ResourceName": "r", "ResourceType": "feature_generator", "Data": {"Generators": [{"Generator": "id", "Input": {"Features": [{"Name": "a", "Type": "shop"}]}, "Output": "o"}]}}),
            "InvalidParameter",
            "Data.Generators[0].Input.Features[0].Type",
        ),
        (
            json!({"ResourceName": "r/../x", "ResourceType": "raw_file", "Data": {"Content": "x"}}),
            "InvalidParameter",
            "ResourceName",
        ),
        (
            json!({"ResourceName": "r", "ResourceType": "raw_file", "Data": {"Content": "x"}, "ReferencedInstances": ["a"]}),
            "InvalidParameter",
            "ReferencedInstances",
        ),
    ];
    for (body, code, named) in cases {
        let refused = client.call("CreateFunctionResource", "POST", RESOURCES, &[], Some(&body)).await;
        assert!(refused.expect_error(400, code).contains(named), "{body}: {}", refused.body);
    }
    let listed = client.call("ListFunctionResources", "GET", RESOURCES, &[], None).await;
    listed.expect_ok();
    assert_eq!(listed.body["TotalCount"], 1, "nothing refused was stored");
}

#[tokio::test]
async fn references_are_tracked_and_protect_both_sides() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("my_app").await.expect_ok();
    let hot_resources = "/v4/openapi/app-groups/my_app/functions/hot/resources";
    client
        .call(
            "CreateFunctionResource",
            "POST",
            hot_resources,
            &[],
            Some(&json!({"ResourceName": "deny_list", "ResourceType": "raw_file", "Data": {"Content": "spam"}})),
        )
        .await
        .expect_ok();
    let wrong_function = client
        .create_instance("my_app", "hint", json!({"instanceName": "hint_a", "modelType": "offline_inference", "usageParameters": [{"name": "deny_dict_id", "value": "deny_list"}]}))
        .await;
    assert!(
        wrong_function.expect_error(400, "InvalidParameter").contains("usageParameters.deny_dict_id"),
        "resources belong to one function"
    );
    client
        .create_instance("my_app", "hot", json!({"instanceName": "hot_a", "modelType": "offline_inference", "usageParameters": [{"name": "deny_dict_id", "value": "deny_list"}]}))
        .await
        .expect_ok();
    let fetched = client.call("GetFunctionResource", "GET", &format!("{hot_resources}/deny_list"), &[], None).await;
    assert_eq!(fetched.expect_ok()["ReferencedInstances"], json!(["hot_a"]));
    let in_use =
        client.call("DeleteFunctionResource", "DELETE", &format!("{hot_resources}/deny_list"), &[], None).await;
    assert!(in_use.expect_error(409, "Resource.InUse").contains("hot_a"));
    client
        .call(
            "UpdateFunctionInstance",
            "PUT",
            &instance_path("my_app", "hot", "hot_a"),
            &[],
            Some(&json!({"usageParameters": []})),
        )
        .await
        .expect_ok();
    let released = client.call("GetFunctionResource", "GET", &format!("{hot_resources}/deny_list"), &[], None).await;
    assert_eq!(released.expect_ok()["ReferencedInstances"], json!([]));
    client.call("DeleteFunctionResource", "DELETE", &format!("{hot_resources}/deny_list"), &[], None).await.expect_ok();
}
