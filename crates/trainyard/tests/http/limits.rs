//! Limits and hostile input: every refusal is a clear 4xx in the envelope, and nothing stored
//! changes.

use serde_json::json;

use crate::support::{Tamper, TestServer};

const INSTANCES: &str = "/v4/openapi/app-groups/my_app/functions/ctr/instances";

#[tokio::test]
async fn oversized_and_malformed_bodies_are_refused() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("my_app").await.expect_ok();
    // Announced too large: refused before a byte of the body is read.
    let announced = Tamper { raw_tcp: true, declared_content_length_only: Some(3 * 1024 * 1024), ..Tamper::default() };
    let refused_early =
        client.call_raw("CreateFunctionInstance", "POST", INSTANCES, &[], Some(b"{}".to_vec()), &announced).await;
    refused_early.expect_error(413, "RequestBodyTooLarge");
    // Chunked, no length announced: refused once the limit is crossed.
    let huge = vec![b' '; 2 * 1024 * 1024 + 4096];
    let streamed = Tamper { raw_tcp: true, chunked: true, ..Tamper::default() };
    let refused_late = client.call_raw("CreateFunctionInstance", "POST", INSTANCES, &[], Some(huge), &streamed).await;
    refused_late.expect_error(413, "RequestBodyTooLarge");

    let malformed = client
        .call_raw(
            "CreateFunctionInstance",
            "POST",
            INSTANCES,
            &[],
            Some(b"{\"instanceName\":".to_vec()),
            &Tamper::default(),
        )
        .await;
    assert!(malformed.expect_error(400, "InvalidParameter").contains("not valid JSON"));
    let not_utf8 = client
        .call_raw(
            "CreateFunctionInstance",
            "POST",
            INSTANCES,
            &[],
            Some(b"{\"instanceName\":\"\xff\xfe\"}".to_vec()),
            &Tamper::default(),
        )
        .await;
    not_utf8.expect_error(400, "InvalidParameter");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested = client
        .call_raw("CreateFunctionInstance", "POST", INSTANCES, &[], Some(deep.into_bytes()), &Tamper::default())
        .await;
    nested.expect_error(400, "InvalidParameter");
    let array_body = client
        .call_raw("CreateFunctionInstance", "POST", INSTANCES, &[], Some(b"[]".to_vec()), &Tamper::default())
        .await;
    array_body.expect_error(400, "InvalidParameter");
    let trailing = client
        .call_raw("CreateFunctionInstance", "POST", INSTANCES, &[], Some(b"{} {}".to_vec()), &Tamper::default())
        .await;
    trailing.expect_error(400, "InvalidParameter");
    let wrong_type =
        client.create_instance("my_app", "ctr", json!({"instanceName": ["ctr"], "modelType": "tf_checkpoint"})).await;
    assert!(wrong_type.expect_error(400, "InvalidParameter").contains("instanceName"));
    let mass_assignment = client
        .create_instance(
            "my_app",
            "ctr",
            json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint", "versionId": 999}),
        )
        .await;
    assert!(mass_assignment.expect_error(400, "InvalidParameter").contains("versionId"));

    let listed = client.call("ListFunctionInstances", "GET", INSTANCES, &[], None).await;
    listed.expect_ok();
    assert_eq!(listed.body["TotalCount"], 0);
}

#[tokio::test]
async fn hostile_paths_and_queries_are_refused() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("my_app").await.expect_ok();
    // Sent over a raw socket: an HTTP client library would normalise `%2e%2e` away itself.
    for (path, field) in [
        ("/v4/openapi/app-groups/..%2F..%2Fetc/functions/ctr/instances", "appGroupIdentity"),
        ("/v4/openapi/app-groups/%2e%2e/functions/ctr/instances", "appGroupIdentity"),
        ("/v4/openapi/app-groups/my%00app/functions/ctr/instances", "appGroupIdentity"),
        ("/v4/openapi/app-groups/%FF%FE/functions/ctr/instances", "appGroupIdentity"),
        ("/v4/openapi/app-groups/my_app/functions/..%2Fctr/instances", "functionName"),
        ("/v4/openapi/app-groups/my_app/functions/CTR/instances", "functionName"),
    ] {
        let raw = Tamper { raw_tcp: true, ..Tamper::default() };
        let refused = client.call_raw("ListFunctionInstances", "GET", path, &[], None, &raw).await;
        assert!(refused.expect_error(400, "InvalidParameter").contains(field), "{path}: {}", refused.body);
    }
    for (path, field) in [
        (format!("{INSTANCES}/ctr%20test%2F%C3%A9%2A~%2B"), "instanceName"),
        (format!("{INSTANCES}/{}", "a".repeat(31)), "instanceName"),
        (format!("{INSTANCES}/%E4%B8%AD%E6%96%87"), "instanceName"),
    ] {
        let refused = client.call("GetFunctionInstance", "GET", &path, &[], None).await;
        assert!(refused.expect_error(400, "InvalidParameter").contains(field), "{path}: {}", refused.body);
    }
    let unknown_query =
        client.call("GetFunctionInstance", "GET", &format!("{INSTANCES}/ctr_a"), &[("verbose", "1")], None).await;
    assert!(unknown_query.expect_error(400, "InvalidParameter").contains("verbose"));
    let duplicate = client
        .call_raw(
            "ListFunctionInstances",
            "GET",
            INSTANCES,
            &[],
            None,
            &Tamper { query_on_wire: Some("pageSize=1&pageSize=2".into()), ..Tamper::default() },
        )
        .await;
    assert!(duplicate.expect_error(400, "InvalidParameter").contains("pageSize"));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let server = TestServer::start();
    let client = server.client();
    let unknown = client.call("Nothing", "GET", "/v4/openapi/nothing-here", &[], None).await;
    assert!(unknown.expect_error(404, "NotFound").contains("/v4/openapi/nothing-here"));
    assert!(unknown.body["RequestId"].as_str().is_some_and(|id| id.len() == 36));
    let wrong_method = client.call("ListAppGroups", "PATCH", "/v4/openapi/app-groups", &[], None).await;
    wrong_method.expect_error(405, "MethodNotAllowed");
    assert!(unknown.headers.get("server").is_none(), "no server banner");
}
