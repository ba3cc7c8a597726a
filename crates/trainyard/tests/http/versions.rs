//! GetFunctionCurrentVersion, GetFunctionVersion.

use serde_json::Value;

use crate::support::TestServer;

#[tokio::test]
async fn current_version_and_version_by_id() {
    let server = TestServer::start();
    let client = server.client();
    let current = client
        .call(
            "GetFunctionCurrentVersion",
            "GET",
            "/v4/openapi/functions/hot/current-version",
            &[("modelType", "offline_inference")],
            None,
        )
        .await;
    let result = current.expect_ok().clone();
    assert_eq!(result["FunctionName"], "hot");
    assert_eq!(result["ModelType"], "offline_inference");
    assert_eq!(result["FunctionType"], "PAAS");
    assert_eq!(result["VersionName"], "v1");
    let version_id = result["VersionId"].as_i64().unwrap();
    let create_parameters = result["VersionConfig"]["CreateParameters"].as_array().unwrap();
    let filter = create_parameters.iter().find(|parameter| parameter["Name"] == "filter").unwrap();
    assert_eq!(filter["Required"], "false", "Required is a string, as upstream sends it");
    assert!(filter["Rule"].as_str().unwrap().contains("user_id"));
    let window = create_parameters.iter().find(|parameter| parameter["Name"] == "window_days").unwrap();
    assert_eq!(window["DefaultValue"], "14");
    let usage: Vec<&Value> = result["VersionConfig"]["UsageParameters"].as_array().unwrap().iter().collect();
    assert!(usage.iter().any(|parameter| parameter["Name"] == "allow_dict_id"));
    assert!(!result["VersionConfig"]["Depends"].as_array().unwrap().is_empty());

    let by_id = client
        .call("GetFunctionVersion", "GET", &format!("/v4/openapi/functions/hot/versions/{version_id}"), &[], None)
        .await;
    assert_eq!(by_id.expect_ok(), &result);

    let category = client
        .call(
            "GetFunctionCurrentVersion",
            "GET",
            "/v4/openapi/functions/category/current-version",
            &[("modelType", "offline_inference")],
            None,
        )
        .await;
    let required: Vec<&str> = category.expect_ok()["VersionConfig"]["CreateParameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|parameter| parameter["Required"] == "true")
        .map(|parameter| parameter["Name"].as_str().unwrap())
        .collect();
    assert_eq!(required, ["category_id_field", "category_name_field", "title_field"]);

    for function in ["ctr", "pop", "category", "hot", "hint", "suggest", "analyzer", "termweight", "synonym"] {
        let model_type = match function {
            "ctr" | "termweight" => "tf_checkpoint",
            "pop" => "pop",
            "analyzer" => "text",
            _ => "offline_inference",
        };
        let answer = client
            .call(
                "GetFunctionCurrentVersion",
                "GET",
                &format!("/v4/openapi/functions/{function}/current-version"),
                &[("modelType", model_type)],
                None,
            )
            .await;
        assert_eq!(answer.expect_ok()["FunctionName"], function);
    }
}

#[tokio::test]
async fn version_errors() {
    let server = TestServer::start();
    let client = server.client();
    let missing_model_type =
        client.call("GetFunctionCurrentVersion", "GET", "/v4/openapi/functions/ctr/current-version", &[], None).await;
    assert!(missing_model_type.expect_error(400, "MissingParameter").contains("modelType"));
    let wrong_model_type = client
        .call(
            "GetFunctionCurrentVersion",
            "GET",
            "/v4/openapi/functions/ctr/current-version",
            &[("modelType", "_checkpoint")],
            None,
        )
        .await;
    wrong_model_type.expect_error(404, "Version.NotExist");
    let education = client
        .call(
            "GetFunctionCurrentVersion",
            "GET",
            "/v4/openapi/functions/ctr/current-version",
            &[("modelType", "tf_checkpoint"), ("domain", "education")],
            None,
        )
        .await;
    education.expect_error(404, "Version.NotExist");
    let other_function =
        client.call("GetFunctionVersion", "GET", "/v4/openapi/functions/pop/versions/101", &[], None).await;
    other_function.expect_error(404, "Version.NotExist");
    let unknown =
        client.call("GetFunctionVersion", "GET", "/v4/openapi/functions/ctr/versions/999999", &[], None).await;
    unknown.expect_error(404, "Version.NotExist");
    let not_a_number =
        client.call("GetFunctionVersion", "GET", "/v4/openapi/functions/ctr/versions/v1", &[], None).await;
    assert!(not_a_number.expect_error(400, "InvalidParameter").contains("versionId"));
    let unknown_function =
        client.call("GetFunctionVersion", "GET", "/v4/openapi/functions/rank/versions/101", &[], None).await;
    assert!(unknown_function.expect_error(400, "InvalidParameter").contains("functionName"));
}
