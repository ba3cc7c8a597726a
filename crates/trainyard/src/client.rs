//! A client of a running Trainyard server for the command-line tools: requests signed with
//! ACS3-HMAC-SHA256 exactly as the official SDK signs them (with the server's own canonical
//! request code), so the tools go through the same authentication as any other caller.

use std::path::PathBuf;

use anyhow::Context as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use trainyard_api::signature::{
    ACS3_ALGORITHM, WireRequest, acs3_canonical_request, acs3_signature, acs3_string_to_sign, sha256_hex,
};

/// How many times a request refused by the rate limit (429) is sent again.
pub const MAX_THROTTLED_RETRIES: u32 = 5;

/// Where the server is and which key to sign with.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// host:port of the server.
    #[arg(long, env = "TRAINYARD_ENDPOINT", default_value = "127.0.0.1:8080")]
    pub endpoint: String,
    /// AccessKey id (default: TRAINYARD_ACCESS_KEY_ID, else the key file in --data-dir).
    #[arg(long, env = "TRAINYARD_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: Option<String>,
    /// AccessKey secret (default: TRAINYARD_ACCESS_KEY_SECRET, else the key file in --data-dir).
    #[arg(long, env = "TRAINYARD_ACCESS_KEY_SECRET", hide_env_values = true)]
    pub access_key_secret: Option<String>,
    /// Data dir of a local server, to read its root key file when no key is given.
    #[arg(long, env = "TRAINYARD_DATA_DIR", default_value = "./trainyard-data")]
    pub data_dir: PathBuf,
}

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The error message of a failed answer, from either envelope.
    pub fn describe_error(&self) -> String {
        let code = self.body.get("Code").or_else(|| self.body.get("code")).and_then(Value::as_str);
        let message = self.body.get("Message").or_else(|| self.body.get("message")).and_then(Value::as_str);
        if let (Some(code), Some(message)) = (code, message) {
            return format!("{code} (HTTP {}): {message}", self.status);
        }
        match self.body.get("errors").and_then(|errors| errors.get(0)) {
            Some(first) => {
                format!("HTTP {}: {}", self.status, first.get("message").and_then(Value::as_str).unwrap_or("error"))
            }
            None => format!("HTTP {}: {}", self.status, self.body),
        }
    }
}

/// The signing client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    access_key_id: String,
    secret: String,
}

impl Client {
    pub fn new(arguments: &ClientArgs) -> anyhow::Result<Client> {
        let (access_key_id, secret) = match (&arguments.access_key_id, &arguments.access_key_secret) {
            (Some(id), Some(secret)) => (id.clone(), secret.clone()),
            (None, None) => crate::keys::read_key_file(&arguments.data_dir).with_context(|| {
                format!("no AccessKey given (--access-key-id/--access-key-secret or TRAINYARD_ACCESS_KEY_*) and no key file in {}", arguments.data_dir.display())
            })?,
            _ => anyhow::bail!("give both --access-key-id and --access-key-secret, or neither"),
        };
        let http = reqwest::Client::builder().no_proxy().build()?;
        Ok(Client { http, endpoint: arguments.endpoint.clone(), access_key_id, secret })
    }

    /// Sends one signed request. `path` is already percent-encoded; `extra_headers` are signed.
    /// A 429 (the server's per-AccessKey rate limit) is retried, freshly signed, after the wait
    /// the server names, up to [`MAX_THROTTLED_RETRIES`] times.
    pub async fn call(
        &self,
        action: &str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        extra_headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut retries = 0;
        loop {
            let (answer, retry_after) = self.call_once(action, method, path, body.clone(), extra_headers).await?;
            match retry_after {
                Some(wait) if answer.status == 429 && retries < MAX_THROTTLED_RETRIES => {
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
                _ => return Ok(answer),
            }
        }
    }

    async fn call_once(
        &self,
        action: &str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        extra_headers: &[(&str, &str)],
    ) -> anyhow::Result<(Answer, Option<std::time::Duration>)> {
        let body = body.unwrap_or_default();
        let mut headers = HeaderMap::new();
        let mut set = |name: &str, value: &str| -> anyhow::Result<()> {
            headers.insert(HeaderName::from_bytes(name.as_bytes())?, HeaderValue::from_str(value)?);
            Ok(())
        };
        set("accept", "application/json")?;
        set("host", &self.endpoint)?;
        set("x-acs-action", action)?;
        set("x-acs-version", trainyard_api::auth::API_VERSION)?;
        set("x-acs-date", &chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string())?;
        set("x-acs-signature-nonce", &uuid::Uuid::new_v4().simple().to_string())?;
        set("x-acs-content-sha256", &sha256_hex(&body))?;
        if !body.is_empty() {
            set("content-type", "application/json; charset=utf-8")?;
        }
        for (name, value) in extra_headers {
            set(name, value)?;
        }
        let mut signed_headers: Vec<String> = headers.keys().map(|name| name.as_str().to_string()).collect();
        signed_headers.sort();
        let wire = WireRequest { method, path, query: None, headers: &headers, body: &body };
        let canonical_request =
            acs3_canonical_request(&wire, &signed_headers).map_err(|error| anyhow::anyhow!("{error}"))?;
        let signature = acs3_signature(&self.secret, &acs3_string_to_sign(&canonical_request));
        let authorization = format!(
            "{ACS3_ALGORITHM} Credential={},SignedHeaders={},Signature={signature}",
            self.access_key_id,
            signed_headers.join(";")
        );
        headers.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&authorization)?);
        headers.remove("host");
        let url = format!("http://{}{path}", self.endpoint);
        let response = self
            .http
            .request(method.parse()?, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.endpoint))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("x-acs-retry-after")
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
            .map(|milliseconds| std::time::Duration::from_millis(milliseconds.min(60_000)));
        let text = response.text().await?;
        let body = serde_json::from_str(&text)
            .with_context(|| format!("the server answered HTTP {status} with a non-JSON body"))?;
        Ok((Answer { status, body }, retry_after))
    }

    /// Calls and fails on an error answer.
    pub async fn call_ok(
        &self,
        action: &str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        let answer = self.call(action, method, path, body, &[]).await?;
        if answer.status != 200 {
            anyhow::bail!("{action} failed: {}", answer.describe_error());
        }
        Ok(answer.body)
    }
}

/// Percent-encodes one path segment as the SDK does.
pub fn encode_segment(segment: &str) -> String {
    trainyard_api::signature::rfc3986_encode(segment)
}
