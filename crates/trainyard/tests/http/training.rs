//! Training and serving over HTTP: CreateFunctionTask really trains (hot, hint, pop), the task
//! reports progress and ExtendInfo, the model is served by the v3 routes, a new generation is
//! swapped in, a failed one never replaces a good model, cancellation, and kill -9 during
//! training.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Answer, Client, TestServer, instance_path};

const DAY: i64 = 86_400;

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

fn add(fields: Value) -> Value {
    json!({"cmd": "ADD", "fields": fields})
}

fn search(query: &str, user: &str, seconds_ago: i64, hits: i64, raw_query: bool) -> Value {
    add(json!({"query": query, "raw_query": raw_query, "hits": hits, "timestamp": now_seconds() - seconds_ago,
               "user_id": user, "rn": format!("rn-{user}-{query}-{seconds_ago}")}))
}

fn behavior(user: &str, item: &str, bhv_type: &str, seconds_ago: i64, rn: &str) -> Value {
    add(json!({"user_id": user, "biz_id": 1, "trace_id": "Alibaba", "rn": rn, "bhv_type": bhv_type,
               "bhv_time": now_seconds() - seconds_ago, "item_id": item, "item_type": "goods"}))
}

async fn push_searches(client: &Client, app: &str, records: Vec<Value>) {
    let path = format!("/v3/openapi/app-groups/{app}/query-logs/actions/bulk");
    for batch in records.chunks(1000) {
        let answer = client.call("PushQueryLog", "POST", &path, &[], Some(&Value::Array(batch.to_vec()))).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}

async fn push_behavior(client: &Client, app: &str, records: Vec<Value>) {
    let path =
        format!("/v3/openapi/app-groups/{app}/data-collections/{app}/data-collection-type/BEHAVIOR/actions/bulk");
    for batch in records.chunks(1000) {
        let answer = client.call("PushCollectionData", "POST", &path, &[], Some(&Value::Array(batch.to_vec()))).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}

/// The searches of the shop: what hot and hint must count, and what they must not.
fn shop_searches() -> Vec<Value> {
    let mut records = Vec::new();
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        records.push(search("red shoes", user, 3 * DAY, 12, true));
    }
    // The same user again 5 minutes later: the same session, counted once.
    records.push(search("Red  Shoes", "u1", 3 * DAY - 300, 12, true));
    for user in ["u1", "u2", "u3"] {
        records.push(search("blue hat", user, 2 * DAY, 4, true));
    }
    // No results: not counted.
    records.push(search("blue hat", "u6", 2 * DAY, 0, true));
    // Two searches 2 hours apart: two sessions.
    records.push(search("green scarf", "u4", DAY, 3, true));
    records.push(search("green scarf", "u4", DAY - 7200, 3, true));
    for index in 0..10 {
        // Not typed by the user: not counted.
        records.push(search("sponsored", &format!("v{index}"), DAY, 9, false));
        // Outside the 14-day window.
        records.push(search("old fashion", &format!("w{index}"), 20 * DAY, 9, true));
    }
    records
}

/// Item i1 is clicked on 6 of 10 exposures, i2 on 1 of 10, i3 only exposed twice.
fn shop_behavior() -> Vec<Value> {
    let mut records = Vec::new();
    for index in 0..10 {
        let user = format!("b{index}");
        let seconds_ago = 5 * DAY - index * 3600;
        let rn1 = format!("rn-i1-{index}");
        let rn2 = format!("rn-i2-{index}");
        records.push(behavior(&user, "i1", "expose", seconds_ago, &rn1));
        records.push(behavior(&user, "i2", "expose", seconds_ago, &rn2));
        if index < 6 {
            records.push(behavior(&user, "i1", "click", seconds_ago - 10, &rn1));
        }
        if index == 0 {
            records.push(behavior(&user, "i2", "click", seconds_ago - 10, &rn2));
        }
        if index < 2 {
            records.push(behavior(&user, "i3", "expose", seconds_ago, &format!("rn-i3-{index}")));
        }
    }
    records
}

/// The app group "shop" with its searches and an untrained hot instance "hot_a".
async fn shop_with_hot_instance(client: &Client) {
    client.create_app_group("shop").await.expect_ok();
    push_searches(client, "shop", shop_searches()).await;
    client
        .create_instance("shop", "hot", json!({"instanceName": "hot_a", "modelType": "offline_inference"}))
        .await
        .expect_ok();
}

/// Polls GetFunctionTask until the task ends; returns its last answer and the progress seen.
async fn wait_for_task(
    client: &Client,
    app: &str,
    function: &str,
    instance: &str,
    generation: i64,
) -> (Value, Vec<i64>) {
    let path = format!("{}/tasks/{generation}", instance_path(app, function, instance));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut progress_seen = Vec::new();
    loop {
        let answer = client.call("GetFunctionTask", "GET", &path, &[], None).await;
        let task = answer.expect_ok().clone();
        let progress = task["Progress"].as_i64().expect("Progress is an integer");
        if progress_seen.last() != Some(&progress) {
            progress_seen.push(progress);
        }
        if task["Status"] != "running" {
            return (task, progress_seen);
        }
        assert!(Instant::now() < deadline, "generation {generation} of {instance} did not end: {task}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn train(client: &Client, app: &str, function: &str, instance: &str) -> Value {
    let created = client.create_task(app, function, instance).await;
    let generation: i64 = created.expect_ok()["Generation"].as_str().unwrap().parse().unwrap();
    let (task, progress_seen) = wait_for_task(client, app, function, instance, generation).await;
    assert!(progress_seen.windows(2).all(|pair| pair[0] <= pair[1]), "progress never goes back: {progress_seen:?}");
    task
}

fn extend_info(task: &Value) -> Value {
    serde_json::from_str(task["ExtendInfo"].as_str().expect("ExtendInfo is a string")).expect("ExtendInfo is JSON")
}

async fn query(client: &Client, app: &str, what: &str, parameters: &[(&str, &str)]) -> Answer {
    client
        .call(
            &format!("Query{what}"),
            "GET",
            &format!("/v3/openapi/apps/{app}/actions/{}", what.to_lowercase()),
            parameters,
            None,
        )
        .await
}

fn served_list(answer: &Answer, key: &str) -> Vec<(String, i64)> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    let keys: Vec<&String> = answer.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["request_id", "result", "searchtime"], "the v3 serving envelope");
    answer.body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item[key].as_str().unwrap().to_string(), item["pv"].as_i64().unwrap()))
        .collect()
}

fn pairs(expected: &[(&str, i64)]) -> Vec<(String, i64)> {
    expected.iter().map(|(text, pv)| (text.to_string(), *pv)).collect()
}

#[tokio::test]
async fn hot_hint_and_pop_are_trained_from_the_data_and_served() {
    let server = TestServer::training(&[]);
    let client = server.client();
    client.create_app_group("shop").await.expect_ok();
    push_searches(&client, "shop", shop_searches()).await;
    push_behavior(&client, "shop", shop_behavior()).await;
    client
        .create_instance("shop", "hot", json!({"instanceName": "hot_a", "modelType": "offline_inference"}))
        .await
        .expect_ok();
    client
        .create_instance("shop", "hint", json!({"instanceName": "hint_a", "modelType": "offline_inference"}))
        .await
        .expect_ok();
    client
        .create_instance(
            "shop",
            "pop",
            json!({"instanceName": "pop_a", "modelType": "pop",
            "createParameters": [{"name": "behavior_weights", "value": "click:1"}],
            "usageParameters": [{"name": "default_score", "value": "0.05"}]}),
        )
        .await
        .expect_ok();

    // Nothing is served before a model exists, and the error says why.
    let no_default = query(&client, "shop", "Hot", &[]).await;
    assert_eq!((no_default.status, no_default.body["status"].as_str()), (404, Some("FAIL")));
    assert!(no_default.body["errors"][0]["message"].as_str().unwrap().contains("default"), "{}", no_default.body);
    client.set_default_instance("shop", "hot", "hot_a").await.expect_ok();
    client.set_default_instance("shop", "hint", "hint_a").await.expect_ok();
    client.set_default_instance("shop", "pop", "pop_a").await.expect_ok();
    let untrained = query(&client, "shop", "Hot", &[]).await;
    assert_eq!((untrained.status, untrained.body["errors"][0]["code"].as_i64()), (404, Some(3012)));
    assert!(untrained.body["errors"][0]["message"].as_str().unwrap().contains("no trained model"));

    for (function, instance) in [("hot", "hot_a"), ("hint", "hint_a"), ("pop", "pop_a")] {
        let task = train(&client, "shop", function, instance).await;
        assert_eq!(task["Status"], "success", "{function}: {task}");
        assert_eq!(task["Progress"], 100);
        assert!(task["EndTime"].as_i64().unwrap() >= task["StartTime"].as_i64().unwrap());
        let info = extend_info(&task);
        for key in ["metrics", "dataReport", "errors"] {
            assert!(info.get(key).is_some(), "{function}: ExtendInfo lacks {key}: {info}");
        }
        let detail = client.get_instance("shop", function, instance, &[("output", "detail")]).await;
        assert_eq!(detail.expect_ok()["Status"], "available", "{function}");
    }

    // hot: raw_query searches with results in the last 14 days, once per user session.
    let expected_hot = pairs(&[("red shoes", 5), ("blue hat", 3), ("green scarf", 2)]);
    let hot = query(&client, "shop", "Hot", &[]).await;
    assert_eq!(served_list(&hot, "hot"), expected_hot);
    assert!(hot.body["result"].as_array().unwrap().iter().all(|item| item["tags"] == 0), "all new: {}", hot.body);
    assert!(hot.body["request_id"].as_str().unwrap().len() == 24);
    assert!(hot.body["searchtime"].as_f64().unwrap() >= 0.0);
    let top_one = query(&client, "shop", "Hot", &[("hit", "1"), ("sort_type", "pv"), ("user_id", "u1")]).await;
    assert_eq!(served_list(&top_one, "hot"), expected_hot[..1]);
    let named = query(&client, "shop", "Hot", &[("model_name", "hot_a")]).await;
    assert_eq!(served_list(&named, "hot"), expected_hot);
    for (parameter, value, code) in
        [("hit", "31", 4007), ("hit", "0", 4007), ("sort_type", "uv", 4007), ("model_name", "nope", 3012)]
    {
        let refused = query(&client, "shop", "Hot", &[(parameter, value)]).await;
        assert_eq!(refused.body["errors"][0]["code"].as_i64(), Some(code), "{parameter}={value}: {}", refused.body);
        assert!(refused.status >= 400);
    }

    // hint: the same counting; 3 by default, at most 10 for a model that is not personalized.
    let hint = query(&client, "shop", "Hint", &[]).await;
    assert_eq!(served_list(&hint, "hint"), expected_hot);
    let two = query(&client, "shop", "Hint", &[("hit", "2")]).await;
    assert_eq!(served_list(&two, "hint"), expected_hot[..2]);
    let too_many = query(&client, "shop", "Hint", &[("hit", "11")]).await;
    assert!(too_many.body["errors"][0]["message"].as_str().unwrap().contains("(0, 10]"), "{}", too_many.body);

    // Dictionaries: usage parameters, applied at query time without retraining.
    client.create_raw_file("shop", "hot", "hot_allow", "fresh pick\n").await.expect_ok();
    client.create_raw_file("shop", "hot", "hot_deny", "# never\nRED SHOES\n").await.expect_ok();
    let updated = client
        .call("UpdateFunctionInstance", "PUT", &instance_path("shop", "hot", "hot_a"), &[], Some(&json!({
            "usageParameters": [{"name": "allow_dict_id", "value": "hot_allow"}, {"name": "deny_dict_id", "value": "hot_deny"}]
        })))
        .await;
    updated.expect_ok();
    let curated = query(&client, "shop", "Hot", &[]).await;
    assert_eq!(served_list(&curated, "hot"), pairs(&[("fresh pick", 0), ("blue hat", 3), ("green scarf", 2)]));

    // pop: smoothed click-through in [0, 1]; unknown items get the default_score usage parameter.
    let popularity = query(&client, "shop", "Popularity", &[("item_ids", "i1,i2,unknown")]).await;
    assert_eq!(popularity.status, 200, "{}", popularity.body);
    let scores: BTreeMap<String, f64> = popularity.body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["item_id"].as_str().unwrap().to_string(), item["score"].as_f64().unwrap()))
        .collect();
    assert!(scores.values().all(|score| (0.0..=1.0).contains(score)), "{scores:?}");
    assert!(scores["i1"] > scores["i2"], "6 clicks in 10 exposures beat 1 in 10: {scores:?}");
    assert_eq!(scores["unknown"], 0.05);
    let missing = query(&client, "shop", "Popularity", &[]).await;
    assert!(missing.body["errors"][0]["message"].as_str().unwrap().contains("item_ids"));
}

#[tokio::test]
async fn a_new_generation_replaces_the_served_model_and_a_failed_one_never_does() {
    let server = TestServer::training(&[]);
    let client = server.client();
    shop_with_hot_instance(&client).await;
    client.set_default_instance("shop", "hot", "hot_a").await.expect_ok();
    assert_eq!(train(&client, "shop", "hot", "hot_a").await["Status"], "success");
    let first = query(&client, "shop", "Hot", &[("hit", "1")]).await;
    assert_eq!(served_list(&first, "hot"), pairs(&[("red shoes", 5)]));

    let surge: Vec<Value> = (0..8).map(|index| search("umbrella", &format!("rain{index}"), 3600, 5, true)).collect();
    push_searches(&client, "shop", surge).await;
    assert_eq!(train(&client, "shop", "hot", "hot_a").await["Status"], "success");
    let second = query(&client, "shop", "Hot", &[("hit", "1")]).await;
    assert_eq!(served_list(&second, "hot"), pairs(&[("umbrella", 8)]), "generation 2 is served");

    // A filter nothing passes: the task fails naming the missing data, generation 2 stays.
    client
        .call(
            "UpdateFunctionInstance",
            "PUT",
            &instance_path("shop", "hot", "hot_a"),
            &[],
            Some(&json!({
                "createParameters": [{"name": "filter", "value": "user_id=nobody"}]
            })),
        )
        .await
        .expect_ok();
    let failed = train(&client, "shop", "hot", "hot_a").await;
    assert_eq!(failed["Status"], "failed");
    let errors = extend_info(&failed)["errors"].to_string();
    assert!(errors.contains("raw_query"), "the error names the missing data: {errors}");
    let still = query(&client, "shop", "Hot", &[("hit", "1")]).await;
    assert_eq!(served_list(&still, "hot"), pairs(&[("umbrella", 8)]));
    let instance = client.get_instance("shop", "hot", "hot_a", &[("output", "detail")]).await;
    assert_eq!(instance.expect_ok()["Status"], "available");
    // The served generation cannot be deleted; the failed one can.
    let tasks = format!("{}/tasks", instance_path("shop", "hot", "hot_a"));
    client
        .call("DeleteFunctionTask", "DELETE", &format!("{tasks}/2"), &[], None)
        .await
        .expect_error(409, "Task.UnableDelete");
    client.call("DeleteFunctionTask", "DELETE", &format!("{tasks}/3"), &[], None).await.expect_ok();
}

#[tokio::test]
async fn cancelling_a_pending_task_fails_it_and_cancelling_twice_is_harmless() {
    // No workers: the task stays pending until cancelled.
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("shop").await.expect_ok();
    client
        .create_instance("shop", "hot", json!({"instanceName": "hot_a", "modelType": "offline_inference"}))
        .await
        .expect_ok();
    client.create_task("shop", "hot", "hot_a").await.expect_ok();
    let cancel_path = format!("{}/tasks/1/actions/cancel", instance_path("shop", "hot", "hot_a"));
    let cancelled = client.call("CancelFunctionTask", "POST", &cancel_path, &[], None).await;
    let task = cancelled.expect_ok().clone();
    assert_eq!(task["Status"], "failed");
    assert!(extend_info(&task).to_string().contains("cancelled"), "{task}");
    let again = client.call("CancelFunctionTask", "POST", &cancel_path, &[], None).await;
    assert_eq!(again.expect_ok()["Status"], "failed");
    assert_eq!(again.result()["EndTime"], task["EndTime"], "a finished task is left as it was");
    // The instance is free for a new task.
    client.create_task("shop", "hot", "hot_a").await.expect_ok();
    let unknown = format!("{}/tasks/9/actions/cancel", instance_path("shop", "hot", "hot_a"));
    client.call("CancelFunctionTask", "POST", &unknown, &[], None).await.expect_error(404, "Task.NotExist");
}

/// Enough behavior for pop to train for a while in a debug build: `users` users who each see
/// and click items over the last 20 days.
fn many_behavior_events(users: usize) -> Vec<Value> {
    let mut records = Vec::with_capacity(users * 12);
    for user_index in 0..users {
        let user = format!("user{user_index}");
        for event_index in 0..10 {
            let item = format!("item{}", (user_index * 7 + event_index * 13) % 5000);
            let seconds_ago = ((user_index * 31 + event_index * 7919) % (20 * DAY as usize)) as i64 + 60;
            let rn = format!("rn-{user_index}-{event_index}");
            records.push(behavior(&user, &item, "expose", seconds_ago, &rn));
            if (user_index + event_index) % 4 == 0 {
                records.push(behavior(&user, &item, "click", seconds_ago - 5, &rn));
            }
        }
    }
    records
}

#[tokio::test]
async fn a_task_running_when_the_server_is_killed_finishes_after_the_restart() {
    let environment = [("TRAINYARD_WORKER_CONCURRENCY", "1"), ("TRAINYARD_TASK_HEARTBEAT_MILLIS", "50")];
    let mut server = TestServer::training(&environment);
    let client = server.client();
    client.create_app_group("shop").await.expect_ok();
    let pushed = Instant::now();
    push_behavior(&client, "shop", many_behavior_events(12_000)).await;
    eprintln!("pushed in {:.1} s", pushed.elapsed().as_secs_f64());
    client.create_instance("shop", "pop", json!({"instanceName": "pop_a", "modelType": "pop"})).await.expect_ok();
    client.create_task("shop", "pop", "pop_a").await.expect_ok();
    let task_path = format!("{}/tasks/1", instance_path("shop", "pop", "pop_a"));
    let started = Instant::now();
    loop {
        let task = client.call("GetFunctionTask", "GET", &task_path, &[], None).await.expect_ok().clone();
        assert_eq!(task["Status"], "running", "training ended before the kill ({task}); give it more data");
        if task["Progress"].as_i64().unwrap() > 0 {
            eprintln!("killing at progress {} after {:.2} s", task["Progress"], started.elapsed().as_secs_f64());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the task never started: {task}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill_hard();

    let (data_dir, _keep_alive) = server.take_data_dir();
    let restarted = TestServer::start_in(&data_dir, &environment);
    let client = restarted.client();
    let (task, _) = wait_for_task(&client, "shop", "pop", "pop_a", 1).await;
    eprintln!("finished {:.2} s after the kill", started.elapsed().as_secs_f64());
    assert_eq!(task["Status"], "success", "the task ran again after the restart: {task}");
    let scores = query(&client, "shop", "Popularity", &[("item_ids", "item0,item1"), ("model_name", "pop_a")]).await;
    assert_eq!(scores.status, 200, "{}", scores.body);
}

/// The model files under a data dir's object store.
fn model_files(data_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![data_dir.join("objects").join("models")];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn a_damaged_model_is_refused_and_a_retrained_one_served() {
    let server = TestServer::training(&[]);
    let client = server.client();
    shop_with_hot_instance(&client).await;
    assert_eq!(train(&client, "shop", "hot", "hot_a").await["Status"], "success");
    let files = model_files(&server.data_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let original = std::fs::read(&files[0]).unwrap();
    let altered = String::from_utf8(original).unwrap().replace("red shoes", "red shoez");
    std::fs::write(&files[0], altered).unwrap();

    let refused = query(&client, "shop", "Hot", &[("model_name", "hot_a")]).await;
    assert_eq!((refused.status, refused.body["errors"][0]["code"].as_i64()), (500, Some(1000)), "{}", refused.body);
    let message = refused.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("SHA-256") && message.contains("generation 1"), "{message}");

    assert_eq!(train(&client, "shop", "hot", "hot_a").await["Status"], "success");
    let served = query(&client, "shop", "Hot", &[("model_name", "hot_a"), ("hit", "1")]).await;
    assert_eq!(served_list(&served, "hot"), pairs(&[("red shoes", 5)]));
}

/// A cinema where users "a*" click action films 8 times in 10 and drama 1 in 10, users "d*" the
/// reverse: a planted signal the ctr model must find through the user × genre cross.
fn cinema_behavior() -> Vec<Value> {
    let mut records = Vec::new();
    for user_index in 0..20 {
        let taste = if user_index % 2 == 0 { "a" } else { "d" };
        let user = format!("{taste}{user_index}");
        for item_index in 0..10 {
            let item = format!("m{item_index}");
            let is_action = item_index < 5;
            for round in 0..6 {
                let seconds_ago = 20 * DAY - (round * 3 + user_index % 3) * DAY - item_index * 600 - user_index * 7;
                let rn = format!("rn-{user}-{item}-{round}");
                records.push(behavior(&user, &item, "expose", seconds_ago, &rn));
                // Deterministic "80 %": rounds 0..4 of 5 liked, 1 in 10 (round 0 of even items) disliked.
                let likes = (taste == "a") == is_action;
                let clicked = if likes { round % 5 != 4 } else { round == 0 && item_index % 2 == 0 };
                if clicked {
                    records.push(behavior(&user, &item, "click", seconds_ago - 30, &rn));
                }
            }
        }
    }
    records
}

/// The app group "cinema": ten films (five action, five drama) in the documents table "movies"
/// and the behavior of [`cinema_behavior`].
async fn cinema_app(client: &Client) {
    client.create_app_group("cinema").await.expect_ok();
    client
        .call(
            "PutDataTable",
            "PUT",
            "/v4/openapi/app-groups/cinema/data-tables/movies",
            &[],
            Some(&json!({"primaryKey": "item_id"})),
        )
        .await
        .expect_ok();
    let documents: Vec<Value> = (0..10)
        .map(|index| {
            let genre = if index < 5 { "action" } else { "drama" };
            add(json!({"item_id": format!("m{index}"), "title": format!("film {index}"), "genre": genre}))
        })
        .collect();
    let pushed = client
        .call(
            "PushDocuments",
            "POST",
            "/v3/openapi/apps/cinema/movies/actions/bulk",
            &[],
            Some(&Value::Array(documents)),
        )
        .await;
    assert_eq!(pushed.status, 200, "{}", pushed.body);
    push_behavior(client, "cinema", cinema_behavior()).await;
}

async fn query_ctr(client: &Client, app: &str, body: Value) -> Answer {
    client.call("QueryCtr", "POST", &format!("/v3/openapi/apps/{app}/actions/ctr"), &[], Some(&body)).await
}

#[tokio::test]
async fn ctr_is_trained_from_exposures_clicks_and_documents_and_scores_items() {
    let server = TestServer::training(&[]);
    let client = server.client();
    cinema_app(&client).await;

    // Not trained yet: a clear error, not a score.
    let untrained = query_ctr(&client, "cinema", json!({"item_ids": ["m1"]})).await;
    assert!(untrained.status >= 400, "{}", untrained.body);

    let create = json!({"instanceName": "ctr_a", "modelType": "tf_checkpoint", "createParameters": [
        {"name": "id_field", "value": "item_id"}, {"name": "category_field", "value": "genre"},
        {"name": "holdout_percent", "value": "20"}, {"name": "threads", "value": "1"}]});
    client.create_instance("cinema", "ctr", create).await.expect_ok();
    let task = train(&client, "cinema", "ctr", "ctr_a").await;
    assert_eq!(task["Status"], "success", "{task}");
    assert_eq!(task["Progress"], 100);
    let info = extend_info(&task);
    let metrics = &info["metrics"];
    for key in ["auc", "logloss", "baseline_auc", "baseline_logloss"] {
        assert!(metrics[key].is_f64(), "metrics.{key} is a number: {metrics}");
    }
    assert!(metrics["auc"].as_f64().unwrap() > 0.75, "the planted taste is learned: {metrics}");
    assert!(
        metrics["auc"].as_f64().unwrap() > metrics["baseline_auc"].as_f64().unwrap(),
        "the per-user taste beats item popularity: {metrics}"
    );

    let scored = query_ctr(
        &client,
        "cinema",
        json!({"model_name": "ctr_a", "user_id": "a0", "biz_id": "1", "item_ids": ["m0", "m7", "unseen"]}),
    )
    .await;
    assert_eq!(scored.status, 200, "{}", scored.body);
    let result = scored.body["result"].as_array().unwrap();
    let ids: Vec<&str> = result.iter().map(|item| item["item_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["m0", "m7", "unseen"]);
    let score = |index: usize| result[index]["score"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&score(0)) && score(0) > 0.0);
    assert!(score(0) > score(1), "an action fan prefers the action film: {}", scored.body);
    assert_eq!(result[2]["known"], false);
    assert_eq!(result[0]["known"], true);
    let without_default =
        query_ctr(&client, "cinema", json!({"user_id": "d1", "biz_id": "1", "item_ids": ["m0", "m7"]})).await;
    assert_eq!(without_default.status, 404, "no model_name and no default instance: {}", without_default.body);
    client
        .call(
            "UpdateFunctionDefaultInstance",
            "PUT",
            "/v4/openapi/app-groups/cinema/functions/ctr/default-instance",
            &[],
            Some(&json!({"instanceName": "ctr_a"})),
        )
        .await
        .expect_ok();
    let drama_fan =
        query_ctr(&client, "cinema", json!({"user_id": "d1", "biz_id": "1", "item_ids": ["m0", "m7"]})).await;
    assert_eq!(drama_fan.status, 200, "the default instance answers: {}", drama_fan.body);
    let drama_scores: Vec<f64> =
        drama_fan.body["result"].as_array().unwrap().iter().map(|item| item["score"].as_f64().unwrap()).collect();
    assert!(drama_scores[1] > drama_scores[0], "{}", drama_fan.body);

    // Bad requests name the field and the rule.
    let cases = [
        (json!({}), "item_ids"),
        (json!({"item_ids": []}), "item_ids"),
        (json!({"item_ids": ["m1", " "]}), "item id number 2 is empty"),
        (json!({"item_ids": (0..1001).map(|index| format!("i{index}")).collect::<Vec<_>>()}), "at most 1000"),
        (json!({"item_ids": ["m1"], "item_id": "m1"}), "item_id"),
        (json!({"item_ids": ["m1"], "time": -5}), "time"),
        (json!({"item_ids": "m1"}), "item_ids"),
    ];
    for (body, expected) in cases {
        let refused = query_ctr(&client, "cinema", body.clone()).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.body);
        let message = refused.body["errors"][0]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(expected), "{body}: {message}");
    }
}

/// `trainyard train-offline` on a data dir; (succeeded, stdout, stderr).
fn train_offline(data_dir: &std::path::Path, arguments: &[&str]) -> (bool, String, String) {
    let data_dir_text = data_dir.to_str().expect("a UTF-8 temp path");
    crate::support::run_trainyard(["train-offline", "--data-dir", data_dir_text].iter().chain(arguments.iter()))
}

#[tokio::test]
async fn train_offline_trains_exports_and_times_scoring_on_a_stopped_servers_data_dir() {
    let mut server = TestServer::start();
    cinema_app(&server.client()).await;
    server.terminate();
    let (data_dir, _cleanup) = server.take_data_dir();
    let ctr = [
        "--app",
        "cinema",
        "--function",
        "ctr",
        "--param",
        "id_field=item_id",
        "--param",
        "category_field=genre",
        "--param",
        "holdout_percent=20",
        "--param",
        "threads=1",
    ];

    let artifact = data_dir.join("offline.tyctr");
    let artifact_text = artifact.to_str().unwrap();
    let (succeeded, stdout, stderr) =
        train_offline(&data_dir, &[&ctr[..], &["--score-bench", "50", "--artifact-out", artifact_text]].concat());
    assert!(succeeded, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert!(report["metrics"]["auc"].as_f64().unwrap() > 0.75, "{report}");
    assert_eq!(report["parameters"]["category_field"], "genre");
    assert_eq!(report["parameters"]["model"], "fm", "catalog defaults fill the rest");
    assert_eq!(report["scoring"]["requests"], 50);
    assert!(report["scoring"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(report["peak_resident_bytes"].as_u64().unwrap() > 0);
    let written = std::fs::read(&artifact).unwrap();
    assert_eq!(written.len() as u64, report["artifact_bytes"].as_u64().unwrap());
    assert_eq!(&written[..8], b"TYCTRMDL");

    let export_dir = data_dir.join("vw");
    let (exported, stdout, stderr) =
        train_offline(&data_dir, &[&ctr[..], &["--export-vw", export_dir.to_str().unwrap()]].concat());
    assert!(exported, "{stderr}");
    let export: Value = serde_json::from_str(&stdout).expect("one JSON object");
    let training = std::fs::read_to_string(export_dir.join("train.vw")).unwrap();
    let holdout = std::fs::read_to_string(export_dir.join("holdout.vw")).unwrap();
    assert_eq!(training.lines().count() as u64, export["export"]["training_examples"].as_u64().unwrap());
    assert_eq!(holdout.lines().count() as u64, export["export"]["holdout_examples"].as_u64().unwrap());
    assert_eq!(
        training.lines().count() as u64,
        report["metrics"]["training_examples"].as_u64().unwrap(),
        "the export holds the examples the trainer trains on"
    );
    assert!(
        training.lines().chain(holdout.lines()).all(|line| line.starts_with("1 |f ") || line.starts_with("-1 |f "))
    );

    // Bad input names the flag and the rule.
    let (refused, _, stderr) = train_offline(&data_dir, &["--app", "cinema", "--function", "pop", "--export-vw", "x"]);
    assert!(!refused && stderr.contains("--export-vw: only ctr"), "{stderr}");
    let (refused, _, stderr) = train_offline(&data_dir, &[&ctr[..], &["--param", "epochs=0"]].concat());
    assert!(!refused && stderr.contains("epochs"), "{stderr}");
    let (refused, _, stderr) = train_offline(&data_dir, &["--app", "nowhere", "--function", "ctr"]);
    assert!(!refused && stderr.contains("--app: no app group"), "{stderr}");
}
