//! Kontur connector tests against the real binary, the real plugin and the mock Kontur: outbound
//! documents, token reuse and renewal, and vendor errors on failed messages.

mod common;

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use common::{wait_until, Gateway, GatewayOptions, Mock};

const WAIT: Duration = Duration::from_secs(20);

/// The insurer box that the mock serves by default.
const INSURER_BOX: &str = "6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13";

/// A well-formed box id that the mock's client has no access to.
const FOREIGN_BOX: &str = "11111111-2222-4333-8444-555555555555";

/// The client credentials that the mock accepts by default.
const CLIENT_ID: &str = "demo-kontur";
const CLIENT_SECRET: &str = "demo-kontur-secret";

/// Returns the `[connectors.kontur]` config pointed at the mock, with `client_secret`.
fn kontur_config(mock: &Mock, client_secret: &str) -> String {
    let url = &mock.url;
    format!(
        "[connectors.kontur]\nlibrary = \"libuig_connector_kontur.so\"\nrequired = true\nallowed_urls = [\"{url}\"]\n\
         deadline_ms = 10000\nmax_attempts = 5\n\n[connectors.kontur.retry]\ninitial_backoff_ms = 200\n\
         max_backoff_ms = 1000\n\n[connectors.kontur.settings]\nbase_url = \"{url}\"\n\
         token_url = \"{url}/connect/token\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{client_secret}\"\n\n"
    )
}

fn start_gateway(mock: &Mock, client_secret: &str) -> Gateway {
    let options = GatewayOptions { extra_config: kontur_config(mock, client_secret), ..GatewayOptions::default() };
    Gateway::start_with(mock, options)
}

fn document_message(medi_id: &str, text: &str) -> String {
    json!({"mediId": medi_id, "document": text}).to_string()
}

/// Sends a sync `message` to the kontur connector and returns the HTTP status and body.
fn send_sync(gateway: &Gateway, message: &str) -> (u16, Value) {
    gateway.call("POST", "/sync/message/send", &[("recipient", "kontur"), ("entity", "message"), ("message", message)])
}

/// Sends a sync message that must be delivered and returns Kontur's reply data.
fn send_delivered(gateway: &Gateway, message: &str) -> Value {
    let (status, body) = send_sync(gateway, message);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered", "{body}");
    body["data"].clone()
}

fn kontur_stats(mock: &Mock) -> Value {
    reqwest::blocking::get(format!("{}/_mock/kontur/stats", mock.url)).unwrap().json().unwrap()
}

fn counter(mock: &Mock, name: &str) -> u64 {
    let stats = kontur_stats(mock);
    stats[name].as_u64().unwrap_or_else(|| panic!("mock stats have no counter {name}: {stats}"))
}

fn mock_control(mock: &Mock, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::blocking::Client::new();
    let mut request = client.request(method, format!("{}/_mock/kontur/{path}", mock.url));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().unwrap_or(Value::Null)
}

/// Reads a stored message from the mock the way a Kontur client does: a token, then the message.
fn fetch_message(mock: &Mock, message_id: &str) -> Value {
    let client = reqwest::blocking::Client::new();
    let token: Value = client
        .post(format!("{}/connect/token", mock.url))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "medi_api")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let access_token = token["access_token"].as_str().unwrap();
    let response =
        client.get(format!("{}/V2/messages/{message_id}", mock.url)).bearer_auth(access_token).send().unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.json().unwrap()
}

#[test]
fn document_stored_at_mock() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, CLIENT_SECRET);
    let text = "Счёт № 42 от 2025-06-01: приём терапевта, 2 500 ₽";

    let data = send_delivered(&gateway, &document_message(INSURER_BOX, text));

    assert_eq!(data["mediId"], INSURER_BOX);
    assert!(data["documentCirculationId"].is_string(), "{data}");
    let message_id = data["messageId"].as_str().unwrap();
    let stored = fetch_message(&mock, message_id);
    assert_eq!(stored["meta"]["mediId"], INSURER_BOX);
    assert_eq!(stored["meta"]["direction"], "Outbox");
    let content =
        base64::engine::general_purpose::STANDARD.decode(stored["data"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(String::from_utf8(content).unwrap(), text);
    let stats = kontur_stats(&mock);
    assert_eq!(stats["message_posts"], 1);
    assert_eq!(stats["events_by_box"][INSURER_BOX], 2);
    assert!(!gateway.log().contains(CLIENT_SECRET), "the gateway log shows the client secret");
}

#[test]
fn token_reused_across_sends() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, CLIENT_SECRET);

    let message_ids: Vec<Value> = (1..=3)
        .map(|number| {
            send_delivered(&gateway, &document_message(INSURER_BOX, &format!("document {number}")))["messageId"].clone()
        })
        .collect();

    assert_eq!(counter(&mock, "token_requests"), 1);
    assert_eq!(counter(&mock, "message_posts"), 3);
    assert_eq!(counter(&mock, "unauthorized"), 0);
    assert_ne!(message_ids[0], message_ids[1]);
    assert_ne!(message_ids[1], message_ids[2]);
}

#[test]
fn expired_token_renewed() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, CLIENT_SECRET);
    send_delivered(&gateway, &document_message(INSURER_BOX, "before expiry"));

    let expired = mock_control(&mock, reqwest::Method::POST, "expire-tokens", None);
    let data = send_delivered(&gateway, &document_message(INSURER_BOX, "after expiry"));

    assert_eq!(expired, json!({"expired": 1}));
    assert!(data["messageId"].is_string(), "{data}");
    assert_eq!(counter(&mock, "token_requests"), 2);
    assert_eq!(counter(&mock, "unauthorized"), 1);
    // The rejected post and its repetition with the new token both reach the mock.
    assert_eq!(counter(&mock, "message_posts"), 3);
    assert_eq!(counter(&mock, "messages_stored"), 2);
}

#[test]
fn vendor_error_fails_message() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, CLIENT_SECRET);

    let (status, body) = send_sync(&gateway, &document_message(FOREIGN_BOX, "not my box"));

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    let error = &body["error"];
    assert_eq!(error["kind"], "config");
    assert_eq!(error["code"], "HasNoAccessToMediId");
    assert!(error["message"].as_str().unwrap().contains("HasNoAccessToMediId"), "{error}");
    let id = body["id"].as_i64().unwrap();
    let (status, stored) = gateway.call("GET", "/sync/message/get", &[("id", &id.to_string())]);
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["status"], "failed");
    assert_eq!(stored["error"]["code"], "HasNoAccessToMediId");
    assert_eq!(counter(&mock, "messages_stored"), 0);
}

#[test]
fn invalid_payload_fails_without_request() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, CLIENT_SECRET);

    let (status, body) = send_sync(&gateway, &json!({"mediId": INSURER_BOX}).to_string());

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["error"]["kind"], "permanent");
    assert_eq!(body["error"]["code"], "invalid_payload");
    assert_eq!(counter(&mock, "token_requests"), 0);
    assert_eq!(counter(&mock, "message_posts"), 0);
}

#[test]
fn wrong_secret_is_auth_error() {
    let mock = Mock::start();
    let wrong_secret = "not-the-kontur-secret-7c41";
    let gateway = start_gateway(&mock, wrong_secret);

    let (status, body) = send_sync(&gateway, &document_message(INSURER_BOX, "document"));

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["error"]["kind"], "auth");
    assert_eq!(body["error"]["code"], "invalid_client");
    assert!(!body.to_string().contains(wrong_secret), "{body}");
    assert!(!gateway.log().contains(wrong_secret), "the gateway log shows the client secret");
    assert_eq!(counter(&mock, "token_requests"), 1);
    assert_eq!(counter(&mock, "message_posts"), 0);
}

#[test]
fn outage_retried_until_delivered() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, CLIENT_SECRET);
    mock_control(&mock, reqwest::Method::PUT, "mode", Some(json!({"mode": "error_500"})));

    let message = document_message(INSURER_BOX, "sent during an outage");
    let (status, body) = gateway.call(
        "POST",
        "/async/message/send",
        &[("recipient", "kontur"), ("entity", "message"), ("message", message.as_str())],
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_i64().unwrap();
    wait_until("the first failed attempt", WAIT, || counter(&mock, "token_requests") >= 1);
    mock_control(&mock, reqwest::Method::PUT, "mode", Some(json!({"mode": "normal"})));
    let delivered = gateway.wait_status(id, &["delivered"], WAIT);

    assert_eq!(delivered["data"]["mediId"], INSURER_BOX);
    assert_eq!(counter(&mock, "messages_stored"), 1);
}
