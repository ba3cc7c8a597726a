//! The data plane over HTTP: document tables, the v3 bulk endpoints, refused records, idempotent
//! batches, stats, compaction, and what survives kill -9.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use trainyard_data::records::{DatasetKind, IngestRecord};
use trainyard_data::{DatasetConfig, DatasetStore};

use crate::support::{Client, Tamper, TestServer};

const NOW_SECONDS: fn() -> i64 = || chrono::Utc::now().timestamp();

fn behavior_fields(user: &str, item: &str, bhv_type: &str) -> Value {
    json!({"user_id": user, "biz_id": 7, "trace_id": "Alibaba", "rn": format!("rn-{user}-{item}"), "bhv_type": bhv_type,
           "bhv_time": NOW_SECONDS() - 3600, "item_id": item, "item_type": "goods", "ip": "10.1.2.3"})
}

fn add(fields: Value) -> Value {
    json!({"cmd": "ADD", "fields": fields})
}

async fn push(client: &Client, action: &str, path: &str, records: &Value, tamper: &Tamper) -> crate::support::Answer {
    client.call_raw(action, "POST", path, &[], Some(serde_json::to_vec(records).unwrap()), tamper).await
}

const BEHAVIOR: &str = "/v3/openapi/app-groups/shop/data-collections/shop/data-collection-type/BEHAVIOR/actions/bulk";
const QUERY_LOG: &str = "/v3/openapi/app-groups/shop/query-logs/actions/bulk";
const DOCUMENTS: &str = "/v3/openapi/apps/shop/main/actions/bulk";

/// Reads everything a stopped server's data dir holds, through the dataset reader (on a thread
/// of its own: the reader blocks, and the test's runtime must not).
pub fn read_back(data_dir: &std::path::Path, app_group_id: i64, kind: DatasetKind) -> Vec<IngestRecord> {
    let data_dir = data_dir.to_path_buf();
    std::thread::spawn(move || read_back_blocking(&data_dir, app_group_id, kind)).join().expect("the reader thread")
}

fn read_back_blocking(data_dir: &std::path::Path, app_group_id: i64, kind: DatasetKind) -> Vec<IngestRecord> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let config = DatasetConfig { log_directory: data_dir.join("ingest-log"), segment_max_bytes: 32 << 20 };
    let store =
        Arc::new(DatasetStore::open_local(config, &data_dir.join("objects"), runtime.handle().clone()).unwrap());
    let snapshot = store.snapshot(app_group_id).unwrap();
    let mut records: Vec<_> = snapshot.records(kind, None).unwrap().map(Result::unwrap).collect();
    records.sort_by_key(|stored| stored.sequence);
    records.into_iter().map(|stored| stored.record).collect()
}

#[tokio::test]
async fn pushed_records_are_kept_refused_ones_reported_and_read_back_identical() {
    let mut server = TestServer::start();
    let client = server.client();
    let created = client.create_app_group("shop").await;
    let app_group_id: i64 = created.result()["id"].as_str().unwrap().parse().unwrap();

    let undeclared =
        push(&client, "PushDocuments", DOCUMENTS, &json!([add(json!({"id": "1"}))]), &Tamper::default()).await;
    assert_eq!(undeclared.status, 404);
    assert_eq!(undeclared.body["status"], "FAIL");
    assert_eq!(undeclared.body["errors"][0]["code"], 3012);
    assert!(undeclared.body["errors"][0]["message"].as_str().unwrap().contains("data-tables/main"));
    let declared = client
        .call(
            "PutDataTable",
            "PUT",
            "/v4/openapi/app-groups/shop/data-tables/main",
            &[],
            Some(&json!({"primaryKey": "id"})),
        )
        .await;
    assert_eq!(declared.expect_ok()["PrimaryKey"], "id");
    let conflicting = client
        .call(
            "PutDataTable",
            "PUT",
            "/v4/openapi/app-groups/shop/data-tables/main",
            &[],
            Some(&json!({"primaryKey": "sku"})),
        )
        .await;
    conflicting.expect_error(409, "DataTable.AlreadyExist");

    let documents = json!([
        {"cmd": "ADD", "fields": {"id": "1", "title": "red shoes", "tags": ["a", "b"]}},
        {"cmd": "add", "fields": {"id": 2, "title": "blue hat"}},
        {"cmd": "UPDATE", "fields": {"id": "1", "price": 30}},
        {"cmd": "DELETE", "fields": {"id": "2"}},
        {"cmd": "ADD", "fields": {"title": "no key"}}
    ]);
    let pushed = push(&client, "PushDocuments", DOCUMENTS, &documents, &Tamper::default()).await;
    assert_eq!(pushed.status, 200, "{}", pushed.body);
    assert_eq!(
        (pushed.body["status"].as_str(), pushed.body["result"].as_bool(), pushed.body["accepted"].as_i64()),
        (Some("OK"), Some(true), Some(4))
    );
    assert_eq!(
        pushed.body["errors"],
        json!([{"code": 7301, "index": 4, "message": "record 4: the primary key field id is missing"}])
    );
    assert!(
        pushed.body["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 24 && id.bytes().all(|byte| byte.is_ascii_digit()))
    );

    let oversize = "x".repeat(70 * 1024);
    let mut behavior = vec![
        add(behavior_fields("u1", "i1", "expose")),
        add(
            json!({"user_id": "u1", "biz_id": "web", "trace_id": "Alibaba", "rn": "r", "bhv_time": NOW_SECONDS(), "item_id": "i", "item_type": "goods"}),
        ),
        add(
            json!({"user_id": {"nested": true}, "biz_id": "web", "trace_id": "Alibaba", "rn": "r", "bhv_type": "click", "bhv_time": NOW_SECONDS(), "item_id": "i", "item_type": "goods"}),
        ),
        add(
            json!({"user_id": "u1", "biz_id": "web", "trace_id": "Alibaba", "rn": "r", "bhv_type": "click", "bhv_time": NOW_SECONDS() * 1000, "item_id": "i", "item_type": "goods"}),
        ),
        add(
            json!({"user_id": "u1", "biz_id": "web", "trace_id": "Alibaba", "rn": "r", "bhv_type": "click", "bhv_time": NOW_SECONDS(), "item_id": oversize, "item_type": "goods"}),
        ),
        add(behavior_fields("u2", "i2", "click")),
    ];
    behavior.push(add(behavior_fields("u3", "i3", "buy")));
    let mut body = serde_json::to_vec(&Value::Array(behavior.clone())).unwrap();
    // Splice a record with invalid UTF-8 in at index 7.
    body.pop();
    body.extend_from_slice(b",{\"cmd\":\"ADD\",\"fields\":{\"user_id\":\"\xff\xfe\"}}]");
    let answer = client.call_raw("PushCollectionData", "POST", BEHAVIOR, &[], Some(body), &Tamper::default()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["accepted"], 3);
    let refused: Vec<(i64, i64)> = answer.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| (error["index"].as_i64().unwrap(), error["code"].as_i64().unwrap()))
        .collect();
    assert_eq!(refused, vec![(1, 4008), (2, 4009), (3, 4010), (4, 4011), (7, 4007)]);
    let messages: Vec<&str> =
        answer.body["errors"].as_array().unwrap().iter().map(|error| error["message"].as_str().unwrap()).collect();
    assert!(
        messages[0].contains("bhv_type is required") && messages[1].contains("user_id must be a string"),
        "{messages:?}"
    );
    assert!(
        messages[2].contains("milliseconds") && messages[3].contains("limit") && messages[4].contains("UTF-8"),
        "{messages:?}"
    );

    let all_bad =
        push(&client, "PushCollectionData", BEHAVIOR, &json!([add(json!({"biz_id": 1}))]), &Tamper::default()).await;
    assert_eq!(
        (all_bad.status, all_bad.body["status"].as_str(), all_bad.body["result"].as_bool()),
        (400, Some("FAIL"), Some(false))
    );
    let not_an_array = push(&client, "PushCollectionData", BEHAVIOR, &json!({"cmd": "ADD"}), &Tamper::default()).await;
    assert_eq!((not_an_array.status, not_an_array.body["errors"][0]["code"].as_i64()), (400, Some(4007)));
    let too_many = Value::Array(vec![add(behavior_fields("u", "i", "click")); 1001]);
    let refused_batch = push(&client, "PushCollectionData", BEHAVIOR, &too_many, &Tamper::default()).await;
    assert_eq!(refused_batch.status, 400);
    assert!(refused_batch.body["errors"][0]["message"].as_str().unwrap().contains("at most 1000"));
    let lower_case_type =
        "/v3/openapi/app-groups/shop/data-collections/shop/data-collection-type/behavior/actions/bulk";
    push(
        &client,
        "PushCollectionData",
        lower_case_type,
        &json!([add(behavior_fields("u4", "i4", "expose"))]),
        &Tamper::default(),
    )
    .await;
    let unknown_type = "/v3/openapi/app-groups/shop/data-collections/shop/data-collection-type/CLICKS/actions/bulk";
    let wrong_type = push(&client, "PushCollectionData", unknown_type, &json!([]), &Tamper::default()).await;
    assert!(wrong_type.body["errors"][0]["message"].as_str().unwrap().contains("dataCollectionType"));

    let searches = json!([
        add(
            json!({"query": "red shoes", "raw_query": true, "hits": 12, "timestamp": NOW_SECONDS() - 60, "user_id": "u1", "rn": "r1"})
        ),
        add(json!({"query": "blue hat", "raw_query": false, "hits": 0, "timestamp": NOW_SECONDS() - 30, "biz_id": 3}))
    ]);
    let logged = push(&client, "PushQueryLog", QUERY_LOG, &searches, &Tamper::default()).await;
    assert_eq!((logged.status, logged.body["accepted"].as_i64()), (200, Some(2)));
    let missing_app = push(
        &client,
        "PushQueryLog",
        "/v3/openapi/app-groups/nowhere/query-logs/actions/bulk",
        &searches,
        &Tamper::default(),
    )
    .await;
    assert_eq!((missing_app.status, missing_app.body["errors"][0]["code"].as_i64()), (404, Some(2001)));

    let stats =
        client.call("DescribeDatasetStats", "GET", "/v4/openapi/app-groups/shop/dataset-stats", &[], None).await;
    let result = stats.expect_ok().clone();
    assert_eq!(result["Tables"], json!([{"Table": "main", "Documents": 1}]));
    assert_eq!(result["Behavior"]["Events"], 4);
    assert_eq!(result["Behavior"]["ByType"], json!({"buy": 1, "click": 1, "expose": 2}));
    assert_eq!(result["QueryLog"]["RawQuerySearchesWithResults"], 1);
    let hot =
        result["Functions"].as_array().unwrap().iter().find(|function| function["FunctionName"] == "hot").unwrap();
    assert_eq!(hot["Ready"], true);
    let compacted =
        client.call("CompactDataset", "POST", "/v4/openapi/app-groups/shop/dataset/actions/compact", &[], None).await;
    assert_eq!(compacted.expect_ok()["RecordsCompacted"], 10);
    let after =
        client.call("DescribeDatasetStats", "GET", "/v4/openapi/app-groups/shop/dataset-stats", &[], None).await;
    assert_eq!(after.expect_ok()["RecordsInLog"], 0);
    assert_eq!(after.result()["Behavior"], result["Behavior"], "the same counts from Parquet");

    // Round trip: what the reader returns is what was pushed (as normalised: biz_id 7 → "7").
    assert_eq!(server.terminate().code(), Some(0));
    let events = read_back(&server.data_dir, app_group_id, DatasetKind::Behavior);
    let items: Vec<String> = events
        .iter()
        .map(|record| match record {
            IngestRecord::Behavior(event) => event.item_id.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(items, ["i1", "i2", "i3", "i4"]);
    let IngestRecord::Behavior(first) = &events[0] else { unreachable!() };
    assert_eq!((first.biz_id.as_str(), first.attributes.get("ip")), ("7", Some(&json!("10.1.2.3"))));
    let logged_back = read_back(&server.data_dir, app_group_id, DatasetKind::QueryLog);
    let IngestRecord::QueryLog(second) = &logged_back[1] else { unreachable!() };
    assert_eq!((second.query.as_str(), second.raw_query, second.biz_id.as_deref()), ("blue hat", false, Some("3")));
}

#[tokio::test]
async fn a_batch_key_makes_a_push_idempotent() {
    let server = TestServer::start();
    let client = server.client();
    client.create_app_group("shop").await.expect_ok();
    let searches = json!([add(json!({"query": "a", "raw_query": true, "hits": 1, "timestamp": NOW_SECONDS()}))]);
    let keyed =
        Tamper { extra_headers: vec![("x-trainyard-batch-key".into(), "import:file-1:0".into())], ..Tamper::default() };
    let first = push(&client, "PushQueryLog", QUERY_LOG, &searches, &keyed).await;
    let again = push(&client, "PushQueryLog", QUERY_LOG, &searches, &keyed).await;
    assert_eq!((first.body["duplicate"].as_bool(), again.body["duplicate"].as_bool()), (Some(false), Some(true)));
    assert_eq!(
        (again.status, again.body["status"].as_str()),
        (200, Some("OK")),
        "a batch applied before is not an error"
    );
    let stats =
        client.call("DescribeDatasetStats", "GET", "/v4/openapi/app-groups/shop/dataset-stats", &[], None).await;
    assert_eq!(stats.expect_ok()["QueryLog"]["Searches"], 1);
    let bad_key =
        Tamper { extra_headers: vec![("x-trainyard-batch-key".into(), "x".repeat(300))], ..Tamper::default() };
    let refused = push(&client, "PushQueryLog", QUERY_LOG, &searches, &bad_key).await;
    assert_eq!(refused.status, 400);
}

#[tokio::test]
async fn acknowledged_pushes_survive_kill_minus_nine_and_none_is_torn() {
    let mut server = TestServer::start();
    let client = server.client();
    let created = client.create_app_group("shop").await;
    let app_group_id: i64 = created.result()["id"].as_str().unwrap().parse().unwrap();
    let acknowledged = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let client = client.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                for batch in 0..1000 {
                    let records: Vec<Value> = (0..50)
                        .map(|index| add(json!({"query": format!("w{writer}-b{batch}-r{index}"), "raw_query": true, "hits": 1, "timestamp": NOW_SECONDS()})))
                        .collect();
                    let body = serde_json::to_vec(&Value::Array(records)).unwrap();
                    let sent = tokio::time::timeout(std::time::Duration::from_secs(5), client.try_call_raw("PushQueryLog", "POST", QUERY_LOG, body)).await;
                    match sent {
                        Ok(Ok(answer)) if answer.status == 200 => {
                            acknowledged.lock().unwrap().insert(format!("w{writer}-b{batch}"));
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    server.kill_hard();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 10, "the writers got going before the kill ({} batches)", acknowledged.len());

    let (data_dir, _keep) = server.take_data_dir();
    let records = read_back(&data_dir, app_group_id, DatasetKind::QueryLog);
    let mut per_batch: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for record in &records {
        let IngestRecord::QueryLog(entry) = record else { unreachable!() };
        let batch = entry.query.rsplit_once("-r").unwrap().0.to_string();
        *per_batch.entry(batch).or_default() += 1;
    }
    for batch in &acknowledged {
        assert_eq!(per_batch.get(batch), Some(&50), "acknowledged batch {batch} is complete");
    }
    assert!(per_batch.values().all(|count| *count == 50), "no batch is torn: {per_batch:?}");
    // The restarted server serves the same data and takes new pushes after it.
    let restarted = TestServer::start_in(&data_dir, &[]);
    let stats = restarted
        .client()
        .call("DescribeDatasetStats", "GET", "/v4/openapi/app-groups/shop/dataset-stats", &[], None)
        .await;
    assert_eq!(stats.expect_ok()["QueryLog"]["Searches"].as_u64().unwrap() as usize, records.len());
}
