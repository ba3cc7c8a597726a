//! Test support: the real `trainyard` binary on port 0 with a temporary data dir, and a client
//! that signs requests with ACS3-HMAC-SHA256 the way the official SDK does. The signer is
//! written here independently of the server's verifier, from `shared/spec/signature.md`, so
//! that a mistake on one side is not mirrored on the other.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use hmac_free_sha256::{hmac_sha256_hex, sha256_hex};
use serde_json::Value;

pub const ACCESS_KEY_ID: &str = "testAccessKeyId";
pub const ACCESS_KEY_SECRET: &str = "testAccessKeySecret";

/// A running server process; killed when dropped.
pub struct TestServer {
    child: Option<Child>,
    pub address: String,
    pub data_dir: PathBuf,
    _temporary_dir: Option<tempfile::TempDir>,
    pub stdout_lines: Vec<String>,
}

impl TestServer {
    /// Starts a server on a fresh data dir. It trains nothing: tasks stay pending, so tests of
    /// the metadata API see the states they create (training tests use [`TestServer::training`]).
    pub fn start() -> TestServer {
        TestServer::start_fresh(&[])
    }

    /// Starts a server on a fresh data dir that runs training workers, with quick heartbeats
    /// and scheduler ticks, plus extra environment variables.
    pub fn training(environment: &[(&str, &str)]) -> TestServer {
        let mut with_workers = vec![
            ("TRAINYARD_WORKER_CONCURRENCY", "1"),
            ("TRAINYARD_TASK_HEARTBEAT_MILLIS", "100"),
            ("TRAINYARD_TASK_POLL_MILLIS", "50"),
            ("TRAINYARD_TASK_LEASE_SECONDS", "5"),
            ("TRAINYARD_TASK_RETRY_DELAY_SECONDS", "0"),
            ("TRAINYARD_SCHEDULER_TICK_SECONDS", "1"),
        ];
        with_workers.extend_from_slice(environment);
        TestServer::start_fresh(&with_workers)
    }

    /// Starts a server on a fresh data dir with extra environment variables (no workers).
    pub fn start_fresh_with(environment: &[(&str, &str)]) -> TestServer {
        TestServer::start_fresh(environment)
    }

    fn start_fresh(environment: &[(&str, &str)]) -> TestServer {
        let temporary_dir = tempfile::tempdir().expect("temp dir");
        let data_dir = temporary_dir.path().join("data");
        let mut server = TestServer::start_in(&data_dir, environment);
        server._temporary_dir = Some(temporary_dir);
        server
    }

    /// Starts a server on `data_dir` with extra environment variables (without training
    /// workers unless they set `TRAINYARD_WORKER_CONCURRENCY`).
    pub fn start_in(data_dir: &Path, environment: &[(&str, &str)]) -> TestServer {
        TestServer::start_in_logging(data_dir, environment, Stdio::inherit())
    }

    /// Starts a server on a fresh data dir whose log (stderr) goes to `log_file`.
    pub fn start_fresh_logging_to(log_file: &Path, environment: &[(&str, &str)]) -> TestServer {
        let temporary_dir = tempfile::tempdir().expect("temp dir");
        let data_dir = temporary_dir.path().join("data");
        let log = std::fs::File::create(log_file).expect("create the log file");
        let mut server = TestServer::start_in_logging(&data_dir, environment, Stdio::from(log));
        server._temporary_dir = Some(temporary_dir);
        server
    }

    fn start_in_logging(data_dir: &Path, environment: &[(&str, &str)], stderr: Stdio) -> TestServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_trainyard"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("TRAINYARD_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("TRAINYARD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
            .env("TRAINYARD_WORKER_CONCURRENCY", "0")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (name, value) in environment {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the trainyard binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut reader = BufReader::new(stdout);
        let mut stdout_lines = Vec::new();
        let address = loop {
            let mut line = String::new();
            let read = reader.read_line(&mut line).expect("read stdout");
            assert!(read > 0, "trainyard exited before printing its address; stdout so far: {stdout_lines:?}");
            let trimmed = line.trim().to_string();
            stdout_lines.push(trimmed.clone());
            if let Some(address) = trimmed.strip_prefix("trainyard listening on http://") {
                break address.to_string();
            }
        };
        // Read the rest of the banner, then keep draining stdout so the child never blocks.
        for _ in 0..2 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) > 0 {
                stdout_lines.push(line.trim().to_string());
            }
        }
        std::thread::spawn(move || for _ in reader.lines() {});
        TestServer { child: Some(child), address, data_dir: data_dir.to_path_buf(), _temporary_dir: None, stdout_lines }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.address, ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
        child.wait().expect("exits")
    }

    /// Moves the data dir (and its cleanup) out, so a new server can start on it.
    pub fn take_data_dir(&mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        (self.data_dir.clone(), self._temporary_dir.take())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// What a call returned.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The error code, from either envelope casing.
    pub fn code(&self) -> &str {
        self.body.get("Code").or_else(|| self.body.get("code")).and_then(Value::as_str).unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body.get("Message").or_else(|| self.body.get("message")).and_then(Value::as_str).unwrap_or("")
    }

    pub fn result(&self) -> &Value {
        self.body.get("Result").or_else(|| self.body.get("result")).unwrap_or(&Value::Null)
    }

    /// Asserts an error with this status and code, and returns the message.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &str {
        assert_eq!((self.status, self.code()), (status, code), "body: {}", self.body);
        self.message()
    }

    #[track_caller]
    pub fn expect_ok(&self) -> &Value {
        assert_eq!(self.status, 200, "body: {}", self.body);
        self.result()
    }
}

/// Overrides of what the signer would normally send, for negative tests.
#[derive(Debug, Clone, Default)]
pub struct Tamper {
    pub date: Option<String>,
    pub nonce: Option<String>,
    pub secret: Option<String>,
    pub access_key_id: Option<String>,
    pub version: Option<String>,
    pub action: Option<String>,
    pub content_sha256: Option<String>,
    /// Sent in place of the signed body (the signature still covers the original).
    pub body_on_wire: Option<Vec<u8>>,
    pub authorization: Option<String>,
    pub omit_authorization: bool,
    pub content_type: Option<String>,
    /// Sent in place of the signed query string.
    pub query_on_wire: Option<String>,
    /// Send over a plain TCP socket exactly as given (no client-side path normalisation).
    pub raw_tcp: bool,
    /// With `raw_tcp`: announce this Content-Length and send no body at all.
    pub declared_content_length_only: Option<usize>,
    /// With `raw_tcp`: send the body chunked, without a Content-Length.
    pub chunked: bool,
    /// Extra headers, signed like the others.
    pub extra_headers: Vec<(String, String)>,
}

/// A signing HTTP client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    host: String,
    pub access_key_id: String,
    pub secret: String,
}

/// Percent-encodes one path segment like the SDK (keep `A-Z a-z 0-9 - _ . ~`).
pub fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

impl Client {
    pub fn new(host: &str, access_key_id: &str, secret: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            host: host.to_string(),
            access_key_id: access_key_id.into(),
            secret: secret.into(),
        }
    }

    /// Calls `action` at `method path?query` with an optional JSON body, signed.
    pub async fn call(
        &self,
        action: &str,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Answer {
        let body_bytes = body.map(|value| serde_json::to_vec(value).expect("json"));
        self.call_raw(action, method, path, query, body_bytes, &Tamper::default()).await
    }

    /// Like [`Client::call`] with a raw body and tampering.
    async fn exchange(
        &self,
        action: &str,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        tamper: &Tamper,
    ) -> Result<Answer, String> {
        let query_string: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(query.iter()).finish();
        let body_bytes = body.unwrap_or_default();
        let date = tamper.date.clone().unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let nonce = tamper.nonce.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let version = tamper.version.clone().unwrap_or_else(|| "2017-12-25".into());
        let action_header = tamper.action.clone().unwrap_or_else(|| action.to_string());
        let content_sha256 = tamper.content_sha256.clone().unwrap_or_else(|| sha256_hex(&body_bytes));
        let mut headers: Vec<(String, String)> = vec![
            ("accept".into(), "application/json".into()),
            ("host".into(), self.host.clone()),
            ("user-agent".into(), "AlibabaCloud (Linux; x86_64) Rust/test Core/0.4.3 TeaDSL/2".into()),
            ("x-acs-action".into(), action_header),
            ("x-acs-content-sha256".into(), content_sha256),
            ("x-acs-credentials-provider".into(), "static_ak".into()),
            ("x-acs-date".into(), date),
            ("x-acs-signature-nonce".into(), nonce),
            ("x-acs-version".into(), version),
        ];
        if !body_bytes.is_empty() {
            headers.push((
                "content-type".into(),
                tamper.content_type.clone().unwrap_or_else(|| "application/json; charset=utf-8".into()),
            ));
        }
        headers.extend(tamper.extra_headers.iter().cloned());
        headers.sort();
        let signed_header_names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
        let canonical_query = {
            let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query_string.as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect();
            pairs.sort();
            pairs.iter().map(|(key, value)| format!("{key}={}", encode_segment(value))).collect::<Vec<_>>().join("&")
        };
        let canonical_headers: String =
            headers.iter().map(|(name, value)| format!("{name}:{}\n", value.trim())).collect();
        let canonical_request = format!(
            "{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{}\n{}",
            signed_header_names.join(";"),
            sha256_hex(&body_bytes)
        );
        let string_to_sign = format!("ACS3-HMAC-SHA256\n{}", sha256_hex(canonical_request.as_bytes()));
        let secret = tamper.secret.clone().unwrap_or_else(|| self.secret.clone());
        let signature = hmac_sha256_hex(secret.as_bytes(), string_to_sign.as_bytes());
        let access_key_id = tamper.access_key_id.clone().unwrap_or_else(|| self.access_key_id.clone());
        let authorization = tamper.authorization.clone().unwrap_or_else(|| {
            format!(
                "ACS3-HMAC-SHA256 Credential={access_key_id},SignedHeaders={},Signature={signature}",
                signed_header_names.join(";")
            )
        });
        let query_string = tamper.query_on_wire.clone().unwrap_or(query_string);
        let url = if query_string.is_empty() {
            format!("http://{}{path}", self.host)
        } else {
            format!("http://{}{path}?{query_string}", self.host)
        };
        let wire_body = tamper.body_on_wire.clone().unwrap_or_else(|| body_bytes.clone());
        let mut wire_headers: Vec<(String, String)> =
            headers.iter().filter(|(name, _)| name != "host").cloned().collect();
        if !tamper.omit_authorization {
            wire_headers.push(("Authorization".into(), authorization.clone()));
        }
        if tamper.raw_tcp {
            let target = if query_string.is_empty() { path.to_string() } else { format!("{path}?{query_string}") };
            return Ok(raw_exchange(&self.host, method, &target, &wire_headers, &wire_body, tamper));
        }
        let mut request = self.http.request(method.parse().expect("method"), url);
        for (name, value) in &wire_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if !wire_body.is_empty() || method != "GET" {
            request = request.body(wire_body);
        }
        let response = request.send().await.map_err(|error| format!("request not sent: {error}"))?;
        let status = response.status().as_u16();
        let response_headers = response.headers().clone();
        let text = response.text().await.map_err(|error| format!("body not read: {error}"))?;
        let body = serde_json::from_str(&text).map_err(|_| format!("response is not JSON: {text:?}"))?;
        Ok(Answer { status, headers: response_headers, body })
    }

    /// Like [`Client::call`] with a raw body and tampering.
    pub async fn call_raw(
        &self,
        action: &str,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        tamper: &Tamper,
    ) -> Answer {
        self.exchange(action, method, path, query, body, tamper).await.unwrap_or_else(|error| panic!("{error}"))
    }

    /// A signed call whose transport failure is returned, not a panic (the server may be gone).
    pub async fn try_call_raw(&self, action: &str, method: &str, path: &str, body: Vec<u8>) -> Result<Answer, String> {
        self.exchange(action, method, path, &[], Some(body), &Tamper::default()).await
    }

    // ---- typed helpers for the common calls ----

    pub async fn create_app_group(&self, name: &str) -> Answer {
        self.call(
            "CreateAppGroup",
            "POST",
            "/v4/openapi/app-groups",
            &[],
            Some(&serde_json::json!({"name": name, "type": "enhanced"})),
        )
        .await
    }

    pub async fn create_instance(&self, app: &str, function: &str, body: Value) -> Answer {
        let path =
            format!("/v4/openapi/app-groups/{}/functions/{}/instances", encode_segment(app), encode_segment(function));
        self.call("CreateFunctionInstance", "POST", &path, &[], Some(&body)).await
    }

    pub async fn get_instance(&self, app: &str, function: &str, instance: &str, query: &[(&str, &str)]) -> Answer {
        let path = instance_path(app, function, instance);
        self.call("GetFunctionInstance", "GET", &path, query, None).await
    }

    /// Creates a `raw_file` resource of `function` holding `content`.
    pub async fn create_raw_file(&self, app: &str, function: &str, name: &str, content: &str) -> Answer {
        let path =
            format!("/v4/openapi/app-groups/{}/functions/{}/resources", encode_segment(app), encode_segment(function));
        let body = serde_json::json!({"ResourceName": name, "ResourceType": "raw_file", "Data": {"Content": content, "Generators": []}});
        self.call("CreateFunctionResource", "POST", &path, &[], Some(&body)).await
    }

    /// Points the app group's default instance of `function` at `instance`.
    pub async fn set_default_instance(&self, app: &str, function: &str, instance: &str) -> Answer {
        let path = format!(
            "/v4/openapi/app-groups/{}/functions/{}/default-instance",
            encode_segment(app),
            encode_segment(function)
        );
        self.call(
            "UpdateFunctionDefaultInstance",
            "PUT",
            &path,
            &[],
            Some(&serde_json::json!({"instanceName": instance})),
        )
        .await
    }

    pub async fn create_task(&self, app: &str, function: &str, instance: &str) -> Answer {
        let path = format!("{}/tasks", instance_path(app, function, instance));
        self.call("CreateFunctionTask", "POST", &path, &[], None).await
    }
}

/// Sends one request on a fresh TCP connection and reads the whole answer (`Connection: close`).
fn raw_exchange(
    host: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
    tamper: &Tamper,
) -> Answer {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = tamper.declared_content_length_only {
        head.push_str(&format!("Content-Length: {length}\r\n\r\n"));
        stream.write_all(head.as_bytes()).expect("write head");
    } else if tamper.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        stream.write_all(head.as_bytes()).expect("write head");
        for chunk in body.chunks(64 * 1024) {
            // The server may answer and close before the whole body is sent; that is fine.
            if stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|_| stream.write_all(chunk))
                .and_then(|_| stream.write_all(b"\r\n"))
                .is_err()
            {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).expect("write head");
        stream.write_all(body).expect("write body");
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let (head_text, body_text) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status: u16 = head_text.split_whitespace().nth(1).and_then(|code| code.parse().ok()).expect("status line");
    let mut response_headers = reqwest::header::HeaderMap::new();
    for line in head_text.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
            reqwest::header::HeaderValue::from_str(value.trim()),
        ) {
            response_headers.append(name, value);
        }
    }
    let chunked_answer = response_headers.get("transfer-encoding").is_some_and(|value| value == "chunked");
    let body_text = if chunked_answer { dechunk(body_text) } else { body_text.to_string() };
    let body = serde_json::from_str(&body_text).unwrap_or_else(|_| panic!("response is not JSON: {body_text:?}"));
    Answer { status, headers: response_headers, body }
}

fn dechunk(mut text: &str) -> String {
    let mut joined = String::new();
    while let Some((size_line, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size_line.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        joined.push_str(&rest[..size]);
        text = &rest[size + 2..];
    }
    joined
}

pub fn instance_path(app: &str, function: &str, instance: &str) -> String {
    format!(
        "/v4/openapi/app-groups/{}/functions/{}/instances/{}",
        encode_segment(app),
        encode_segment(function),
        encode_segment(instance)
    )
}

/// A unique, valid name for this test run.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// SHA-256 and HMAC-SHA256 written out here (FIPS 180-4, RFC 2104) so that the test signer
/// shares no crypto code with the server.
mod hmac_free_sha256 {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    pub fn sha256(message: &[u8]) -> [u8; 32] {
        let mut state: [u32; 8] =
            [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
        let mut padded = message.to_vec();
        padded.push(0x80);
        while padded.len() % 64 != 56 {
            padded.push(0);
        }
        padded.extend_from_slice(&((message.len() as u64) * 8).to_be_bytes());
        for block in padded.chunks(64) {
            let mut schedule = [0u32; 64];
            for (index, word) in block.chunks(4).enumerate() {
                schedule[index] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for index in 16..64 {
                let s0 = schedule[index - 15].rotate_right(7)
                    ^ schedule[index - 15].rotate_right(18)
                    ^ (schedule[index - 15] >> 3);
                let s1 = schedule[index - 2].rotate_right(17)
                    ^ schedule[index - 2].rotate_right(19)
                    ^ (schedule[index - 2] >> 10);
                schedule[index] =
                    schedule[index - 16].wrapping_add(s0).wrapping_add(schedule[index - 7]).wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
            for index in 0..64 {
                let sum1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let choose = (e & f) ^ (!e & g);
                let temporary1 =
                    h.wrapping_add(sum1).wrapping_add(choose).wrapping_add(K[index]).wrapping_add(schedule[index]);
                let sum0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let majority = (a & b) ^ (a & c) ^ (b & c);
                let temporary2 = sum0.wrapping_add(majority);
                h = g;
                g = f;
                f = e;
                e = d.wrapping_add(temporary1);
                d = c;
                c = b;
                b = a;
                a = temporary1.wrapping_add(temporary2);
            }
            for (slot, value) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
                *slot = slot.wrapping_add(value);
            }
        }
        let mut digest = [0u8; 32];
        for (index, word) in state.iter().enumerate() {
            digest[index * 4..index * 4 + 4].copy_from_slice(&word.to_be_bytes());
        }
        digest
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    pub fn sha256_hex(message: &[u8]) -> String {
        hex(&sha256(message))
    }

    pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
        let mut block_key = [0u8; 64];
        if key.len() > 64 {
            block_key[..32].copy_from_slice(&sha256(key));
        } else {
            block_key[..key.len()].copy_from_slice(key);
        }
        let inner: Vec<u8> = block_key.iter().map(|byte| byte ^ 0x36).chain(message.iter().copied()).collect();
        let inner_digest = sha256(&inner);
        let outer: Vec<u8> = block_key.iter().map(|byte| byte ^ 0x5c).chain(inner_digest.iter().copied()).collect();
        hex(&sha256(&outer))
    }

    #[test]
    fn known_answers() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

/// Runs the `trainyard` binary with `arguments` (no backtraces in its errors); (whether it
/// succeeded, stdout, stderr).
pub fn run_trainyard<I, S>(arguments: I) -> (bool, String, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = Command::new(env!("CARGO_BIN_EXE_trainyard"))
        .args(arguments)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the trainyard binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
