//! CreateFunctionTask, GetFunctionTask, ListFunctionTasks, DeleteFunctionTask.

use serde_json::json;

use crate::support::{TestServer, instance_path};

#[tokio::test]
async fn a_task_is_recorded_pending_and_holds_the_instance() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("my_app").await.expect_ok();
    client
        .create_instance("my_app", "hot", json!({"instanceName": "hot_a", "modelType": "offline_inference"}))
        .await
        .expect_ok();
    let created = client.create_task("my_app", "hot", "hot_a").await;
    assert_eq!(created.expect_ok()["Generation"], "1");
    let tasks_path = format!("{}/tasks", instance_path("my_app", "hot", "hot_a"));

    let task = client.call("GetFunctionTask", "GET", &format!("{tasks_path}/1"), &[], None).await;
    let result = task.expect_ok();
    assert_eq!(result["Generation"], "1");
    assert_eq!(result["Status"], "running", "pending shows as running");
    assert_eq!(result["Progress"], 0);
    assert_eq!(result["EndTime"], 0);
    assert_eq!(result["FunctionName"], "hot");
    assert!(result["StartTime"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(result["RunId"].as_str().unwrap().starts_with("api__"));
    assert!(result["ExtendInfo"].is_string());

    let second = client.create_task("my_app", "hot", "hot_a").await;
    assert!(second.expect_error(409, "Task.IsRunning").contains("generation 1"));
    let delete_pending = client.call("DeleteFunctionTask", "DELETE", &format!("{tasks_path}/1"), &[], None).await;
    delete_pending.expect_error(409, "Task.UnableDelete");
    client
        .call("GetFunctionTask", "GET", &format!("{tasks_path}/2"), &[], None)
        .await
        .expect_error(404, "Task.NotExist");
    client
        .call("DeleteFunctionTask", "DELETE", &format!("{tasks_path}/9"), &[], None)
        .await
        .expect_error(404, "Task.NotExist");
    for bad in ["0", "01", "-1", "one", "1.5"] {
        let refused = client.call("GetFunctionTask", "GET", &format!("{tasks_path}/{bad}"), &[], None).await;
        assert!(refused.expect_error(400, "InvalidParameter").contains("generation"), "{bad}");
    }

    let listed = client.call("ListFunctionTasks", "GET", &tasks_path, &[], None).await;
    assert_eq!(listed.expect_ok().as_array().unwrap().len(), 1);
    assert_eq!(listed.body["TotalCount"], 1);
    let running =
        client.call("ListFunctionTasks", "GET", &tasks_path, &[("status", "running"), ("pageSize", "10")], None).await;
    assert_eq!(running.expect_ok().as_array().unwrap().len(), 1);
    let succeeded = client.call("ListFunctionTasks", "GET", &tasks_path, &[("status", "success")], None).await;
    succeeded.expect_ok();
    assert_eq!(succeeded.body["TotalCount"], 0);
    let started_later =
        client.call("ListFunctionTasks", "GET", &tasks_path, &[("startTime", "4102444800000")], None).await;
    started_later.expect_ok();
    assert_eq!(started_later.body["TotalCount"], 0, "startTime keeps tasks that started after it");
    let started_after_2020_in_seconds =
        client.call("ListFunctionTasks", "GET", &tasks_path, &[("startTime", "1582214400")], None).await;
    started_after_2020_in_seconds.expect_ok();
    assert_eq!(started_after_2020_in_seconds.body["TotalCount"], 1, "second-resolution startTime is understood");
    let ended = client.call("ListFunctionTasks", "GET", &tasks_path, &[("endTime", "4102444800000")], None).await;
    ended.expect_ok();
    assert_eq!(ended.body["TotalCount"], 0, "an unfinished task has not ended");
    for (query, field) in [
        (("status", "pending"), "status"),
        (("startTime", "yesterday"), "startTime"),
        (("pageSize", "500"), "pageSize"),
    ] {
        let refused = client.call("ListFunctionTasks", "GET", &tasks_path, &[query], None).await;
        assert!(refused.expect_error(400, "InvalidParameter").contains(field));
    }

    let unknown_instance = client.create_task("my_app", "hot", "nope").await;
    unknown_instance.expect_error(404, "Instance.NotExist");
    let body_sent = client
        .call_raw(
            "CreateFunctionTask",
            "POST",
            &tasks_path,
            &[],
            Some(br#"{"generation":"7"}"#.to_vec()),
            &Default::default(),
        )
        .await;
    assert!(body_sent.expect_error(400, "InvalidParameter").contains("body"));
}

#[tokio::test]
async fn concurrent_creates_exactly_one_wins() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("race").await.expect_ok();
    client.create_instance("race", "pop", json!({"instanceName": "pop_a", "modelType": "pop"})).await.expect_ok();
    let attempts: Vec<_> = (0..32)
        .map(|_| {
            let racer = client.clone();
            tokio::spawn(async move { racer.create_task("race", "pop", "pop_a").await })
        })
        .collect();
    let mut won = 0;
    let mut refused = 0;
    for attempt in attempts {
        let answer = attempt.await.unwrap();
        match (answer.status, answer.code()) {
            (200, _) => won += 1,
            (409, "Task.IsRunning") => refused += 1,
            other => panic!("unexpected answer {other:?}: {}", answer.body),
        }
    }
    assert_eq!((won, refused), (1, 31));
    let listed = client
        .call(
            "ListFunctionTasks",
            "GET",
            &format!("{}/tasks", instance_path("race", "pop", "pop_a")),
            &[("pageSize", "100")],
            None,
        )
        .await;
    assert_eq!(listed.expect_ok().as_array().unwrap().len(), 1);
    assert_eq!(listed.result()[0]["Generation"], "1", "refused attempts used no generation");
}
