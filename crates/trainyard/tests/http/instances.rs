//! CreateFunctionInstance, GetFunctionInstance, ListFunctionInstances, UpdateFunctionInstance,
//! DeleteFunctionInstance.

use serde_json::json;

use crate::support::{TestServer, instance_path};

async fn server_with_app() -> (TestServer, crate::support::Client) {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("my_app").await.expect_ok();
    (server, client)
}

#[tokio::test]
async fn create_then_get_at_every_output_level() {
    let (_server, client) = server_with_app().await;
    let created = client
        .create_instance(
            "my_app",
            "ctr",
            json!({"instanceName": "ctr_test", "modelType": "tf_checkpoint", "functionType": "PAAS", "description": "ctr model",
                   "cron": "0 0 ? * MON-FRI",
                   "createParameters": [{"name": "id_field", "value": "item_id"}, {"name": "title_field", "value": ""}],
                   "usageParameters": []}),
        )
        .await;
    created.expect_ok();
    assert!(
        created.body.get("RequestId").is_some() && created.body["Status"] == "OK" && created.body["HttpCode"] == 200
    );
    assert!(created.body["Latency"].is_i64(), "integer Latency: {}", created.body);

    let normal = client.get_instance("my_app", "ctr", "ctr_test", &[]).await;
    let result = normal.expect_ok();
    assert_eq!(result["InstanceName"], "ctr_test");
    assert_eq!(result["FunctionName"], "ctr");
    assert_eq!(result["ModelType"], "tf_checkpoint");
    assert_eq!(result["FunctionType"], "PAAS");
    assert_eq!(result["Source"], "user");
    assert_eq!(result["Status"], "unavailable", "never trained");
    assert_eq!(result["VersionId"], 101);
    assert_eq!(result["Cron"], "0 0 ? * MON-FRI");
    assert_eq!(result["Description"], "ctr model");
    assert_eq!(
        result["CreateParameters"],
        json!([{"Name": "id_field", "Value": "item_id"}, {"Name": "title_field", "Value": ""}])
    );
    assert_eq!(result["UsageParameters"], json!([]));
    assert!(result["ExtendInfo"].is_string());
    assert!(result["CreateTime"].as_i64().unwrap() > 1_600_000_000_000, "milliseconds");
    assert!(result.get("Task").is_none(), "normal shows no Task");

    let simple = client.get_instance("my_app", "ctr", "ctr_test", &[("output", "simple")]).await;
    let simple_result = simple.expect_ok();
    assert_eq!(simple_result["Status"], "unavailable");
    for hidden in ["CreateParameters", "UsageParameters", "Cron", "Description", "Task"] {
        assert!(simple_result.get(hidden).is_none(), "simple hides {hidden}");
    }

    let detail = client.get_instance("my_app", "ctr", "ctr_test", &[("output", "detail")]).await;
    assert_eq!(detail.expect_ok()["Task"]["DagStatus"], "untrained");
    client.create_task("my_app", "ctr", "ctr_test").await.expect_ok();
    let pending = client.get_instance("my_app", "ctr", "ctr_test", &[("output", "detail")]).await;
    let task = &pending.expect_ok()["Task"];
    assert_eq!(task["DagStatus"], "pending");
    assert!(task["LastRunTime"].as_i64().unwrap() > 0);
    assert_eq!(pending.result()["Status"], "unavailable");

    let bad_output = client.get_instance("my_app", "ctr", "ctr_test", &[("output", "everything")]).await;
    assert!(bad_output.expect_error(400, "InvalidParameter").contains("output"));
}

#[tokio::test]
async fn create_refuses_bad_input_naming_the_field() {
    let (_server, client) = server_with_app().await;
    let cases = [
        (json!({"modelType": "tf_checkpoint"}), 400, "MissingParameter", "instanceName"),
        (json!({"instanceName": "1ctr", "modelType": "tf_checkpoint"}), 400, "InvalidParameter", "instanceName"),
        (json!({"instanceName": "ctr_a"}), 400, "MissingParameter", "modelType"),
        (json!({"instanceName": "ctr_a", "modelType": "pop"}), 404, "Version.NotExist", "modelType=tf_checkpoint"),
        (
            json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint", "functionType": "SAAS"}),
            404,
            "Version.NotExist",
            "SAAS",
        ),
        (
            json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint", "createParameters": [{"name": "param1", "value": "value1"}]}),
            400,
            "InvalidParameter",
            "createParameters.param1",
        ),
        (
            json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint", "createParameters": [{"name": "epochs", "value": "0"}]}),
            400,
            "InvalidParameter",
            "createParameters.epochs",
        ),
        (
            json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint", "usageParameters": [{"name": "top_n", "value": "1"}]}),
            400,
            "InvalidParameter",
            "usageParameters.top_n",
        ),
        (
            json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint", "cron": "every day"}),
            400,
            "InvalidParameter",
            "cron",
        ),
        (
            json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint", "status": "available"}),
            400,
            "InvalidParameter",
            "status",
        ),
        (json!({"instanceName": "ctr_a", "modelType": 7}), 400, "InvalidParameter", "modelType"),
        (
            json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint", "createParameters": [{"name": "id_field"}]}),
            400,
            "InvalidParameter",
            "createParameters[0]",
        ),
        (
            json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint", "description": "x".repeat(1025)}),
            400,
            "InvalidParameter",
            "description",
        ),
    ];
    for (body, status, code, named) in cases {
        let refused = client.create_instance("my_app", "ctr", body.clone()).await;
        let message = refused.expect_error(status, code);
        assert!(message.contains(named), "{body}: message {message:?} should name {named}");
    }
    let category = client.create_instance("my_app", "category", json!({"instanceName": "cat", "modelType": "offline_inference", "createParameters": [{"name": "title_field", "value": "title"}]})).await;
    assert!(category.expect_error(400, "InvalidParameter").contains("createParameters.category_id_field"));
    let unknown_function =
        client.create_instance("my_app", "rank", json!({"instanceName": "r", "modelType": "tf_checkpoint"})).await;
    assert!(unknown_function.expect_error(400, "InvalidParameter").contains("functionName"));
    let unknown_app =
        client.create_instance("no_app", "ctr", json!({"instanceName": "c", "modelType": "tf_checkpoint"})).await;
    unknown_app.expect_error(404, "App.NotFound");

    let listed = client
        .call("ListFunctionInstances", "GET", "/v4/openapi/app-groups/my_app/functions/ctr/instances", &[], None)
        .await;
    listed.expect_ok();
    assert_eq!(listed.body["TotalCount"], 0, "nothing refused was stored");

    client
        .create_instance("my_app", "ctr", json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint"}))
        .await
        .expect_ok();
    client
        .create_instance("my_app", "ctr", json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint"}))
        .await
        .expect_error(409, "Instance.AlreadyExist");
    client.create_instance("my_app", "pop", json!({"instanceName": "ctr_a", "modelType": "pop"})).await.expect_ok();
    client
        .create_instance("my_app", "ctr", json!({"instanceName": "CTR_A", "modelType": "tf_checkpoint"}))
        .await
        .expect_ok();
}

#[tokio::test]
async fn list_filters_and_pages() {
    let (_server, client) = server_with_app().await;
    for index in 0..3 {
        client
            .create_instance(
                "my_app",
                "hot",
                json!({"instanceName": format!("hot_{index}"), "modelType": "offline_inference"}),
            )
            .await
            .expect_ok();
    }
    client
        .create_instance("my_app", "hot", json!({"instanceName": "hot_live", "modelType": "near_realtime"}))
        .await
        .expect_ok();
    client
        .create_instance("my_app", "hint", json!({"instanceName": "hint_0", "modelType": "offline_inference"}))
        .await
        .expect_ok();
    let path = "/v4/openapi/app-groups/my_app/functions/hot/instances";
    let all = client.call("ListFunctionInstances", "GET", path, &[], None).await;
    assert_eq!(all.expect_ok().as_array().unwrap().len(), 4);
    assert_eq!(all.body["TotalCount"], 4);
    let realtime = client.call("ListFunctionInstances", "GET", path, &[("modelType", "near_realtime")], None).await;
    assert_eq!(realtime.expect_ok()[0]["InstanceName"], "hot_live");
    assert_eq!(realtime.body["TotalCount"], 1);
    let page = client.call("ListFunctionInstances", "GET", path, &[("pageSize", "3"), ("pageNumber", "2")], None).await;
    assert_eq!(page.expect_ok().as_array().unwrap().len(), 1);
    assert_eq!(page.body["TotalCount"], 4);
    let builtin = client.call("ListFunctionInstances", "GET", path, &[("source", "builtin")], None).await;
    assert_eq!(builtin.expect_ok().as_array().unwrap().len(), 0);
    let every_source =
        client.call("ListFunctionInstances", "GET", path, &[("source", "all"), ("functionType", "PAAS")], None).await;
    assert_eq!(every_source.expect_ok().as_array().unwrap().len(), 4);
    let simple = client.call("ListFunctionInstances", "GET", path, &[("output", "simple")], None).await;
    assert!(simple.expect_ok()[0].get("CreateParameters").is_none());
    let detail = client.call("ListFunctionInstances", "GET", path, &[("output", "detail")], None).await;
    assert_eq!(detail.expect_ok()[0]["Task"]["DagStatus"], "untrained");
    let bad_source = client.call("ListFunctionInstances", "GET", path, &[("source", "everyone")], None).await;
    assert!(bad_source.expect_error(400, "InvalidParameter").contains("source"));
}

#[tokio::test]
async fn update_replaces_given_fields_and_validates() {
    let (_server, client) = server_with_app().await;
    client
        .create_instance(
            "my_app",
            "hot",
            json!({"instanceName": "hot_a", "modelType": "offline_inference", "cron": "12 4 ? * 1,2,3,4,5,6,0", "description": "d",
                   "createParameters": [{"name": "window_days", "value": "7"}]}),
        )
        .await
        .expect_ok();
    let path = instance_path("my_app", "hot", "hot_a");
    let updated = client
        .call(
            "UpdateFunctionInstance",
            "PUT",
            &path,
            &[],
            Some(&json!({"createParameters": [{"name": "top_n", "value": "50"}], "cron": ""})),
        )
        .await;
    updated.expect_ok();
    let result = client.get_instance("my_app", "hot", "hot_a", &[]).await.expect_ok().clone();
    assert_eq!(
        result["CreateParameters"],
        json!([{"Name": "top_n", "Value": "50"}]),
        "a given list replaces the stored one"
    );
    assert_eq!(result["Cron"], "", "an empty cron disables periodic training");
    assert_eq!(result["Description"], "d", "fields not given are kept");

    for (body, named) in [
        (json!({"createParameters": [{"name": "window_days", "value": "500"}]}), "createParameters.window_days"),
        (json!({"cron": "* * *"}), "cron"),
        (json!({"modelType": "near_realtime"}), "modelType"),
        (
            json!({"usageParameters": [{"name": "allow_dict_id", "value": "missing_list"}]}),
            "usageParameters.allow_dict_id",
        ),
    ] {
        let refused = client.call("UpdateFunctionInstance", "PUT", &path, &[], Some(&body)).await;
        assert!(refused.expect_error(400, "InvalidParameter").contains(named), "{body}: {}", refused.body);
    }
    let unchanged = client.get_instance("my_app", "hot", "hot_a", &[]).await;
    assert_eq!(unchanged.expect_ok()["CreateParameters"], json!([{"Name": "top_n", "Value": "50"}]));
    let missing = client
        .call("UpdateFunctionInstance", "PUT", &instance_path("my_app", "hot", "nope"), &[], Some(&json!({})))
        .await;
    missing.expect_error(404, "Instance.NotExist");
}

#[tokio::test]
async fn delete_refuses_default_referenced_and_busy_instances() {
    let (_server, client) = server_with_app().await;
    client.create_instance("my_app", "pop", json!({"instanceName": "pop_a", "modelType": "pop"})).await.expect_ok();
    let path = instance_path("my_app", "pop", "pop_a");

    client.create_task("my_app", "pop", "pop_a").await.expect_ok();
    let busy = client.call("DeleteFunctionInstance", "DELETE", &path, &[], None).await;
    busy.expect_error(409, "Task.IsRunning");

    client.create_instance("my_app", "pop", json!({"instanceName": "pop_b", "modelType": "pop"})).await.expect_ok();
    client.set_default_instance("my_app", "pop", "pop_b").await.expect_ok();
    let default =
        client.call("DeleteFunctionInstance", "DELETE", &instance_path("my_app", "pop", "pop_b"), &[], None).await;
    default.expect_error(409, "Instance.IsDefault");

    client.create_raw_file("my_app", "hot", "allow", "shoes\n").await.expect_ok();
    client
        .create_instance("my_app", "hot", json!({"instanceName": "hot_a", "modelType": "offline_inference", "usageParameters": [{"name": "allow_dict_id", "value": "allow"}]}))
        .await
        .expect_ok();
    let referenced =
        client.call("DeleteFunctionInstance", "DELETE", &instance_path("my_app", "hot", "hot_a"), &[], None).await;
    assert!(referenced.expect_error(409, "Instance.InUse").contains("allow"));
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
    client
        .call("DeleteFunctionInstance", "DELETE", &instance_path("my_app", "hot", "hot_a"), &[], None)
        .await
        .expect_ok();
    let gone = client.get_instance("my_app", "hot", "hot_a", &[]).await;
    gone.expect_error(404, "Instance.NotExist");
    let again =
        client.call("DeleteFunctionInstance", "DELETE", &instance_path("my_app", "hot", "hot_a"), &[], None).await;
    again.expect_error(404, "Instance.NotExist");
}
