//! `trainyard import`, `stats` and `compact` against a running server.

use crate::support::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, TestServer, run_trainyard};

fn trainyard(server: &TestServer, arguments: &[&str]) -> (bool, String, String) {
    let client_flags =
        ["--endpoint", &server.address, "--access-key-id", ACCESS_KEY_ID, "--access-key-secret", ACCESS_KEY_SECRET];
    run_trainyard(arguments.iter().chain(client_flags.iter()))
}

#[tokio::test]
async fn import_loads_maps_reports_and_resumes_without_duplicates() {
    let server = TestServer::start();
    server.client().create_app_group("shop").await.expect_ok();
    let directory = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    let csv = directory.path().join("behavior.csv");
    let mut text = String::from("uid,movie,kind,when\n");
    for row in 0..2500 {
        let when = if row == 7 { "yesterday".to_string() } else { (now - row).to_string() };
        text.push_str(&format!(
            "u{},m{},{},{when}\n",
            row % 50,
            row % 300,
            if row % 3 == 0 { "click" } else { "expose" }
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let csv_path = csv.to_str().unwrap();
    let mapping = [
        "import",
        "--app",
        "shop",
        "--kind",
        "behavior",
        "--map",
        "user_id=uid",
        "--map",
        "item_id=movie",
        "--map",
        "bhv_type=kind",
        "--map",
        "bhv_time=when",
        "--set",
        "biz_id=web",
        "--set",
        "trace_id=Alibaba",
        "--set",
        "rn=r",
        "--set",
        "item_type=movie",
        "--batch-size",
        "1000",
    ];
    let mut first_run: Vec<&str> = mapping.to_vec();
    first_run.push(csv_path);
    let (succeeded, stdout, stderr) = trainyard(&server, &first_run);
    assert!(succeeded, "{stdout}\n{stderr}");
    assert!(stdout.contains("imported 2500 rows") && stdout.contains("2499 accepted, 1 refused"), "{stdout}");
    assert!(stderr.contains("row 8: bhv_time must be Unix seconds"), "{stderr}");

    let (succeeded, stdout, _) = trainyard(&server, &first_run);
    assert!(succeeded);
    assert!(
        stdout.contains("0 accepted, 0 refused, 3 batches already applied"),
        "a re-run applies nothing twice: {stdout}"
    );

    let jsonl = directory.path().join("searches.jsonl");
    std::fs::write(&jsonl, format!("{{\"q\":\"red shoes\",\"raw_query\":true,\"hits\":3,\"timestamp\":{now}}}\n\n{{\"q\":\"hat\",\"raw_query\":false,\"hits\":0,\"timestamp\":{now}}}\n")).unwrap();
    let (succeeded, stdout, stderr) = trainyard(
        &server,
        &["import", "--app", "shop", "--kind", "query-log", "--map", "query=q", "--compact", jsonl.to_str().unwrap()],
    );
    assert!(succeeded && stdout.contains("2 accepted"), "{stdout}\n{stderr}");

    let (succeeded, stdout, _) = trainyard(&server, &["stats", "--app", "shop", "--json"]);
    assert!(succeeded);
    let stats: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stats["Behavior"]["Events"], 2499);
    // The imported searches come back from the dataset reader exactly as the file held them.
    let app_group_id: i64 =
        server.client().call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/shop", &[], None).await.result()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let searches =
        crate::data::read_back(&server.data_dir, app_group_id, trainyard_data::records::DatasetKind::QueryLog);
    let read: Vec<(String, bool, i64, i64)> = searches
        .iter()
        .map(|record| match record {
            trainyard_data::records::IngestRecord::QueryLog(entry) => {
                (entry.query.clone(), entry.raw_query, entry.hits, entry.timestamp)
            }
            other => panic!("not a search: {other:?}"),
        })
        .collect();
    assert_eq!(read, vec![("red shoes".to_string(), true, 3, now), ("hat".to_string(), false, 0, now)]);
    assert_eq!(stats["QueryLog"]["Searches"], 2);
    assert_eq!(stats["RecordsInLog"], 0, "--compact compacted everything");
    let (succeeded, summary, _) = trainyard(&server, &["stats", "--app", "shop"]);
    assert!(succeeded && summary.contains("2499 events") && summary.contains("hot         yes"), "{summary}");
    let (succeeded, stdout, _) = trainyard(&server, &["compact", "--app", "shop"]);
    assert!(succeeded && stdout.contains("compacted 0 records"), "{stdout}");

    let (succeeded, _, stderr) =
        trainyard(&server, &["import", "--app", "nowhere", "--kind", "query-log", jsonl.to_str().unwrap()]);
    assert!(!succeeded && stderr.contains("does not exist"), "{stderr}");
    let (succeeded, _, stderr) =
        trainyard(&server, &["import", "--app", "shop", "--kind", "documents", jsonl.to_str().unwrap()]);
    assert!(!succeeded && stderr.contains("--table"), "{stderr}");
}

#[tokio::test]
async fn documents_import_declares_the_table_and_reads_parquet() {
    let server = TestServer::start();
    server.client().create_app_group("shop").await.expect_ok();
    let directory = tempfile::tempdir().unwrap();
    // A Parquet file written by the data plane's own writer stands in for one from elsewhere.
    let jsonl = directory.path().join("movies.jsonl");
    std::fs::write(&jsonl, "{\"item_id\":1,\"title\":\"Toy Story\",\"genres\":[\"Animation\"]}\n{\"item_id\":2,\"title\":\"Heat\"}\n{\"cmd\":\"DELETE\",\"item_id\":2}\n").unwrap();
    let (succeeded, stdout, stderr) = trainyard(
        &server,
        &[
            "import",
            "--app",
            "shop",
            "--kind",
            "documents",
            "--table",
            "movies",
            "--primary-key",
            "item_id",
            "--compact",
            jsonl.to_str().unwrap(),
        ],
    );
    assert!(succeeded && stdout.contains("3 accepted"), "{stdout}\n{stderr}");
    let parquet_file = walk(&server.data_dir.join("objects"))
        .into_iter()
        .find(|path| path.extension().is_some_and(|extension| extension == "parquet"))
        .unwrap();
    let (succeeded, stdout, stderr) = trainyard(
        &server,
        &[
            "import",
            "--app",
            "shop",
            "--kind",
            "documents",
            "--table",
            "copies",
            "--primary-key",
            "primary_key",
            parquet_file.to_str().unwrap(),
        ],
    );
    assert!(succeeded && stdout.contains("imported 3 rows") && stdout.contains("3 accepted"), "{stdout}\n{stderr}");
    let (_, stdout, _) = trainyard(&server, &["stats", "--app", "shop", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        stats["Tables"],
        serde_json::json!([{"Table": "copies", "Documents": 2}, {"Table": "movies", "Documents": 1}])
    );
}

fn walk(directory: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}
