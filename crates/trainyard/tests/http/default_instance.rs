//! GetFunctionDefaultInstance, UpdateFunctionDefaultInstance.

use serde_json::json;

use crate::support::TestServer;

const DEFAULT: &str = "/v4/openapi/app-groups/my_app/functions/ctr/default-instance";

#[tokio::test]
async fn set_get_replace_and_clear_the_default() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("my_app").await.expect_ok();
    let unset = client.call("GetFunctionDefaultInstance", "GET", DEFAULT, &[], None).await;
    unset.expect_error(404, "DefaultInstance.NotExist");
    for name in ["ctr_a", "ctr_b"] {
        client
            .create_instance("my_app", "ctr", json!({"instanceName": name, "modelType": "tf_checkpoint"}))
            .await
            .expect_ok();
    }
    client
        .call("UpdateFunctionDefaultInstance", "PUT", DEFAULT, &[], Some(&json!({"instanceName": "ctr_a"})))
        .await
        .expect_ok();
    let fetched = client.call("GetFunctionDefaultInstance", "GET", DEFAULT, &[], None).await;
    assert_eq!(fetched.expect_ok(), &json!({"InstanceName": "ctr_a"}));
    assert_eq!(fetched.body["InstanceName"], "ctr_a");
    assert_eq!(fetched.body["FunctionName"], "ctr");
    let listed = client
        .call("ListFunctionInstances", "GET", "/v4/openapi/app-groups/my_app/functions/ctr/instances", &[], None)
        .await;
    let flags: Vec<(String, bool)> = listed
        .expect_ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|instance| {
            (instance["InstanceName"].as_str().unwrap().to_string(), instance["IsDefault"].as_bool().unwrap())
        })
        .collect();
    assert!(flags.contains(&("ctr_a".into(), true)) && flags.contains(&("ctr_b".into(), false)), "{flags:?}");

    client
        .call("UpdateFunctionDefaultInstance", "PUT", DEFAULT, &[], Some(&json!({"instanceName": "ctr_b"})))
        .await
        .expect_ok();
    let replaced = client.call("GetFunctionDefaultInstance", "GET", DEFAULT, &[], None).await;
    assert_eq!(replaced.expect_ok()["InstanceName"], "ctr_b");
    let unknown = client
        .call("UpdateFunctionDefaultInstance", "PUT", DEFAULT, &[], Some(&json!({"instanceName": "ctr_z"})))
        .await;
    unknown.expect_error(404, "Instance.NotExist");
    let still = client.call("GetFunctionDefaultInstance", "GET", DEFAULT, &[], None).await;
    assert_eq!(still.expect_ok()["InstanceName"], "ctr_b", "a refused update changes nothing");
    let missing = client.call("UpdateFunctionDefaultInstance", "PUT", DEFAULT, &[], Some(&json!({}))).await;
    assert!(missing.expect_error(400, "MissingParameter").contains("instanceName"));

    client
        .call("UpdateFunctionDefaultInstance", "PUT", DEFAULT, &[], Some(&json!({"instanceName": ""})))
        .await
        .expect_ok();
    client
        .call("GetFunctionDefaultInstance", "GET", DEFAULT, &[], None)
        .await
        .expect_error(404, "DefaultInstance.NotExist");
    let other_app = client
        .call(
            "GetFunctionDefaultInstance",
            "GET",
            "/v4/openapi/app-groups/nobody/functions/ctr/default-instance",
            &[],
            None,
        )
        .await;
    other_app.expect_error(404, "App.NotFound");
}
