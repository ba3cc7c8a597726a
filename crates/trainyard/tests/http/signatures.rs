//! Request signatures: every refusal code, the clock window and nonce replay.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::support::{Client, Tamper, TestServer};

const LIST: &str = "/v4/openapi/app-groups";

async fn list_with(client: &Client, tamper: Tamper) -> crate::support::Answer {
    client.call_raw("ListAppGroups", "GET", LIST, &[("pageSize", "10")], None, &tamper).await
}

fn date_from_now(offset: Duration) -> String {
    (Utc::now() + offset).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test]
async fn malformed_or_missing_credentials_are_refused() {
    let server = TestServer::start();
    let client = server.client();
    list_with(&client, Tamper::default()).await.expect_ok();
    list_with(&client, Tamper { omit_authorization: true, ..Tamper::default() })
        .await
        .expect_error(400, "IncompleteSignature");
    list_with(&client, Tamper { authorization: Some("Bearer abc".into()), ..Tamper::default() })
        .await
        .expect_error(400, "IncompleteSignature");
    let unsigned_date = "ACS3-HMAC-SHA256 Credential=testAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-signature-nonce;x-acs-version,Signature=00";
    let refused = list_with(&client, Tamper { authorization: Some(unsigned_date.into()), ..Tamper::default() }).await;
    assert!(refused.expect_error(400, "IncompleteSignature").contains("x-acs-date"));
    list_with(&client, Tamper { secret: Some("wrongSecret".into()), ..Tamper::default() })
        .await
        .expect_error(400, "SignatureDoesNotMatch");
    list_with(&client, Tamper { access_key_id: Some("nobody".into()), ..Tamper::default() })
        .await
        .expect_error(404, "InvalidAccessKeyId.NotFound");
    let tampered_query = Tamper { query_on_wire: Some("pageSize=11".into()), ..Tamper::default() };
    list_with(&client, tampered_query).await.expect_error(400, "SignatureDoesNotMatch");
    let wrong_version = list_with(&client, Tamper { version: Some("2020-01-01".into()), ..Tamper::default() }).await;
    wrong_version.expect_error(400, "InvalidVersion");
    let wrong_action = list_with(&client, Tamper { action: Some("RemoveAppGroup".into()), ..Tamper::default() }).await;
    assert!(wrong_action.expect_error(400, "InvalidAction").contains("ListAppGroups"));
}

#[tokio::test]
async fn the_body_is_covered_by_the_signature() {
    let server = TestServer::start();
    let client = server.client();
    let body = serde_json::to_vec(&json!({"name": "signed_name"})).unwrap();
    let swapped =
        Tamper { body_on_wire: Some(serde_json::to_vec(&json!({"name": "other_name"})).unwrap()), ..Tamper::default() };
    let refused = client.call_raw("CreateAppGroup", "POST", LIST, &[], Some(body.clone()), &swapped).await;
    refused.expect_error(400, "SignatureDoesNotMatch");
    let lying_hash = Tamper { content_sha256: Some("0".repeat(64)), ..Tamper::default() };
    let refused_hash = client.call_raw("CreateAppGroup", "POST", LIST, &[], Some(body.clone()), &lying_hash).await;
    assert!(refused_hash.expect_error(400, "SignatureDoesNotMatch").contains("x-acs-content-sha256"));
    let listed = list_with(&client, Tamper::default()).await;
    listed.expect_ok();
    assert_eq!(listed.body["totalCount"], 0, "no refused request created anything");
    client.call_raw("CreateAppGroup", "POST", LIST, &[], Some(body), &Tamper::default()).await.expect_ok();
}

#[tokio::test]
async fn the_clock_window_is_fifteen_minutes_either_way() {
    let server = TestServer::start();
    let client = server.client();
    for (offset_seconds, accepted) in [(-890, true), (890, true), (-910, false), (910, false)] {
        let answer = list_with(
            &client,
            Tamper { date: Some(date_from_now(Duration::seconds(offset_seconds))), ..Tamper::default() },
        )
        .await;
        if accepted {
            answer.expect_ok();
        } else {
            answer.expect_error(400, "InvalidTimeStamp.Expired");
        }
    }
    let malformed =
        list_with(&client, Tamper { date: Some("Sun, 29 Nov 2026 08:49:39 GMT".into()), ..Tamper::default() }).await;
    assert!(malformed.expect_error(400, "InvalidTimeStamp.Format").contains("x-acs-date"));
}

#[tokio::test]
async fn a_nonce_is_used_once_and_only_a_verified_request_uses_it() {
    let server = TestServer::start();
    let client = server.client();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let forged = Tamper { nonce: Some(nonce.clone()), secret: Some("guess".into()), ..Tamper::default() };
    list_with(&client, forged).await.expect_error(400, "SignatureDoesNotMatch");
    list_with(&client, Tamper { nonce: Some(nonce.clone()), ..Tamper::default() }).await.expect_ok();
    list_with(&client, Tamper { nonce: Some(nonce.clone()), ..Tamper::default() })
        .await
        .expect_error(400, "SignatureNonceUsed");
    let too_long = list_with(&client, Tamper { nonce: Some("n".repeat(65)), ..Tamper::default() }).await;
    too_long.expect_error(400, "IncompleteSignature");
}
