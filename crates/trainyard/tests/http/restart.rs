//! Durability and lifecycle: kill -9 loses nothing acknowledged, SIGTERM exits cleanly, one
//! server per data dir, the root key is generated once and kept private.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::{Tamper, TestServer, instance_path};

#[tokio::test]
async fn acknowledged_writes_survive_kill_minus_nine() {
    let mut server = TestServer::start();
    let client = server.client();
    client.create_app_group("durable").await.expect_ok();
    client
        .create_instance(
            "durable",
            "hot",
            json!({"instanceName": "hot_a", "modelType": "offline_inference", "cron": "0 3 ? * 0,1,3,5"}),
        )
        .await
        .expect_ok();
    client.create_raw_file("durable", "hot", "allow", "shoes").await.expect_ok();
    client.set_default_instance("durable", "hot", "hot_a").await.expect_ok();
    client.create_task("durable", "hot", "hot_a").await.expect_ok();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    client
        .call_raw(
            "ListAppGroups",
            "GET",
            "/v4/openapi/app-groups",
            &[],
            None,
            &Tamper { nonce: Some(nonce.clone()), ..Tamper::default() },
        )
        .await
        .expect_ok();

    server.kill_hard();
    let (data_dir, _keep_alive) = server.take_data_dir();
    let restarted = TestServer::start_in(&data_dir, &[]);
    let client = restarted.client();
    client.call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/durable", &[], None).await.expect_ok();
    let instance = client.get_instance("durable", "hot", "hot_a", &[("output", "detail")]).await;
    assert_eq!(instance.expect_ok()["Cron"], "0 3 ? * 0,1,3,5");
    assert_eq!(instance.result()["Task"]["DagStatus"], "pending");
    let task = client
        .call("GetFunctionTask", "GET", &format!("{}/tasks/1", instance_path("durable", "hot", "hot_a")), &[], None)
        .await;
    task.expect_ok();
    let resource = client
        .call("GetFunctionResource", "GET", "/v4/openapi/app-groups/durable/functions/hot/resources/allow", &[], None)
        .await;
    assert_eq!(resource.expect_ok()["Data"]["Content"], "shoes");
    let default = client
        .call(
            "GetFunctionDefaultInstance",
            "GET",
            "/v4/openapi/app-groups/durable/functions/hot/default-instance",
            &[],
            None,
        )
        .await;
    assert_eq!(default.expect_ok()["InstanceName"], "hot_a");
    client.create_task("durable", "hot", "hot_a").await.expect_error(409, "Task.IsRunning");
    let replay = client
        .call_raw(
            "ListAppGroups",
            "GET",
            "/v4/openapi/app-groups",
            &[],
            None,
            &Tamper { nonce: Some(nonce), ..Tamper::default() },
        )
        .await;
    replay.expect_error(400, "SignatureNonceUsed");
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_the_data_dir_is_exclusive() {
    let mut server = TestServer::start();
    server.client().create_app_group("kept").await.expect_ok();
    let second = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&server.data_dir)
        .env("TRAINYARD_ACCESS_KEY_ID", "a")
        .env("TRAINYARD_ACCESS_KEY_SECRET", "b")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another trainyard process"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    let status = server.terminate();
    assert!(status.success(), "SIGTERM exits with 0, got {status:?}");
    let (data_dir, _keep_alive) = server.take_data_dir();
    let restarted = TestServer::start_in(&data_dir, &[]);
    restarted.client().call("DescribeAppGroup", "GET", "/v4/openapi/app-groups/kept", &[], None).await.expect_ok();
}

#[tokio::test]
async fn a_generated_root_key_is_printed_once_and_stored_privately() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let start = |data_dir: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_trainyard"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("TRAINYARD_ACCESS_KEY_ID")
            .env_remove("TRAINYARD_ACCESS_KEY_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let read_banner = |child: &mut std::process::Child| {
        use std::io::BufRead as _;
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "the server exited: {lines:?}");
            lines.push(line.trim().to_string());
            if line.starts_with("objects:") {
                return lines;
            }
        }
    };
    let mut first = start(&data_dir);
    let banner = read_banner(&mut first);
    first.kill().unwrap();
    first.wait().unwrap();
    let key_id = banner[1].strip_prefix("root AccessKey id: ").unwrap().to_string();
    assert!(banner[2].starts_with("root AccessKey secret: "), "{banner:?}");
    let mode = std::fs::metadata(data_dir.join("root-access-key.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let mut second = start(&data_dir);
    let second_banner = read_banner(&mut second);
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(second_banner[1], format!("root AccessKey id: {key_id}"));
    assert!(
        second_banner.iter().all(|line| !line.contains("secret")),
        "the secret is shown only when generated: {second_banner:?}"
    );
}
