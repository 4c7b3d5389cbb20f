//! KIAS connector tests against the real binary, the real plugin and the mock KIAS: notifications,
//! no double effect when a response is lost, session expiry, response encodings, SOAP Faults
//! against gateway pages, and SOAP 1.2.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::{Gateway, GatewayOptions, Mock};

const WAIT: Duration = Duration::from_secs(20);

/// Text with Cyrillic and the characters that XML escapes, sent and expected back unchanged.
const COMMENT: &str = "Клиент «Иванов» & <сын>: ёлка №5";

/// The password that the mock KIAS accepts by default.
const PASSWORD: &str = "demo-kias-password";

/// Returns the `[connectors.kias]` config pointed at the mock, with SOAP `soap_version`.
fn kias_config(mock: &Mock, soap_version: &str) -> String {
    let url = &mock.url;
    format!(
        "[connectors.kias]\nlibrary = \"libuig_connector_kias.so\"\nrequired = true\nallowed_urls = [\"{url}\"]\n\
         deadline_ms = 10000\nmax_attempts = 4\n\n[connectors.kias.retry]\ninitial_backoff_ms = 200\n\
         max_backoff_ms = 1000\n\n[connectors.kias.settings]\nendpoint = \"{url}/kiasSvc.asmx\"\n\
         soap_version = \"{soap_version}\"\napp_id = 1001\nuser = \"demo\"\npassword = \"{PASSWORD}\"\n\
         timeout_ms = 5000\n\n[connectors.kias.settings.directories]\ncar_make = 2001\n\n"
    )
}

fn start_gateway(mock: &Mock, soap_version: &str) -> Gateway {
    let options = GatewayOptions { extra_config: kias_config(mock, soap_version), ..GatewayOptions::default() };
    Gateway::start_with(mock, options)
}

fn notify_message() -> String {
    json!({"event": "POLICY_ISSUED", "policy_isn": "5500123", "issued": "2025-03-01", "paid": true, "comment": COMMENT})
        .to_string()
}

fn a7_message() -> String {
    json!({
        "series": "7000",
        "number": "0012345",
        "agent_isn": "3366201",
        "policy_isn": "5500123",
        "amount": 12500.5,
        "payer": "Иванов Иван Иванович",
        "date": "2025-03-01"
    })
    .to_string()
}

fn payment_message() -> String {
    json!({"payment_isn": "7700123", "amount": "4500", "date": "2025-03-02", "document": "п/п 15"}).to_string()
}

/// Sends a sync message to the kias connector and returns the HTTP status and body.
fn send_sync(gateway: &Gateway, entity: &str, message: &str) -> (u16, Value) {
    gateway.call("POST", "/sync/message/send", &[("recipient", "kias"), ("entity", entity), ("message", message)])
}

/// Sends an async message to the kias connector and returns its id.
fn send_async(gateway: &Gateway, entity: &str, message: &str) -> i64 {
    let (status, body) =
        gateway.call("POST", "/async/message/send", &[("recipient", "kias"), ("entity", entity), ("message", message)]);
    assert_eq!(status, 202, "{body}");
    body["id"].as_i64().unwrap()
}

fn get(gateway: &Gateway, id: i64) -> Value {
    let (status, body) = gateway.call("GET", "/sync/message/get", &[("id", &id.to_string())]);
    assert_eq!(status, 200, "{body}");
    body
}

/// Returns the delivery attempt lines of `uig message show`.
fn delivery_attempts(gateway: &Gateway, id: i64) -> Vec<String> {
    let output = common::uig(&["message", "show", "--config", gateway.config_path.to_str().unwrap(), &id.to_string()]);
    output.lines().filter(|line| line.starts_with("  delivery #")).map(str::to_string).collect()
}

fn mock_state(mock: &Mock) -> Value {
    reqwest::blocking::get(format!("{}/_mock/kias/state", mock.url)).unwrap().json().unwrap()
}

fn mock_control(mock: &Mock, method: &str, path: &str, body: Option<Value>) {
    let client = reqwest::blocking::Client::new();
    let mut request = client.request(method.parse().unwrap(), format!("{}/_mock/kias/{path}", mock.url));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().unwrap();
    assert!(response.status().is_success(), "{method} {path}: {}", response.status());
}

fn set_mode(mock: &Mock, body: Value) {
    mock_control(mock, "PUT", "mode", Some(body));
}

fn set_encoding(mock: &Mock, encoding: &str) {
    mock_control(mock, "PUT", "encoding", Some(json!({ "encoding": encoding })));
}

/// Checks the reply data of a notification: KIAS's status text and the echoed parameters.
fn assert_notify_reply(data: &Value) {
    assert!(data["isn"].as_str().is_some_and(|isn| isn.bytes().all(|byte| byte.is_ascii_digit())), "{data}");
    assert_eq!(data["statusname"], "Уведомление принято", "{data}");
    assert_eq!(data["event"], "POLICY_ISSUED", "{data}");
    assert_eq!(data["params"]["comment"], COMMENT, "{data}");
    assert_eq!(data["params"]["issued"], "2025-03-01", "{data}");
    assert_eq!(data["params"]["paid"], "Y", "{data}");
}

#[test]
fn notify_sync_delivers() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.1");

    let (status, body) = send_sync(&gateway, "notify", &notify_message());

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered", "{body}");
    assert_notify_reply(&body["data"]);
    let state = mock_state(&mock);
    let notifications = state["notifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 1, "{state}");
    assert_eq!(notifications[0]["params"]["COMMENT"], COMMENT);
    assert_eq!(notifications[0]["params"]["ISSUED"], "01.03.2025");
    assert_eq!(state["auth_count"], 1);
    assert_eq!(state["requests"]["by_soap_version"]["1.1"], 2);
    let log = gateway.log();
    let password_hash = hex::encode(<sha2::Sha512 as sha2::Digest>::digest(PASSWORD.as_bytes()));
    assert!(log.contains("kias connector ready"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(!log.contains(&password_hash), "{log}");
}

#[test]
fn invalid_payload_fails_without_request() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.1");

    let (status, body) = send_sync(&gateway, "a7_create", r#"{"series": "7000", "number": "1"}"#);

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["error"]["kind"], "permanent");
    assert_eq!(body["error"]["code"], "invalid_payload");
    assert!(body["error"]["message"].as_str().unwrap().contains("field \"agent_isn\" is missing"), "{body}");
    assert_eq!(mock_state(&mock)["requests"]["total"], 0);
}

#[test]
fn a7_create_survives_lost_response() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.1");
    set_mode(&mock, json!({"mode": "fail_after_commit", "count": 1, "procedure": "User_A7Create"}));

    let id = send_async(&gateway, "a7_create", &a7_message());
    let delivered = gateway.wait_status(id, &["delivered", "failed"], WAIT);

    assert_eq!(delivered["status"], "delivered", "{delivered}");
    let data = &delivered["data"];
    assert_eq!(data["series"], "7000", "{data}");
    assert_eq!(data["number"], "0012345", "{data}");
    assert_eq!(data["amount"], "12500.50", "{data}");
    assert_eq!(data["payer"], "Иванов Иван Иванович", "{data}");
    assert_eq!(data["datepay"], "2025-03-01", "{data}");
    assert_eq!(data["externalkey"], format!("UIG-{id}"), "{data}");
    let state = mock_state(&mock);
    assert_eq!(state["receipts"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(state["calls"]["User_A7Create"], 1, "{state}");
    assert_eq!(state["calls"]["User_A7Find"], 1, "{state}");
    assert_eq!(delivery_attempts(&gateway, id).len(), 2);
}

#[test]
fn payment_confirm_survives_lost_response() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.1");
    set_mode(&mock, json!({"mode": "fail_after_commit", "count": 1, "procedure": "User_PaymentConfirm"}));

    let id = send_async(&gateway, "payment_confirm", &payment_message());
    let delivered = gateway.wait_status(id, &["delivered", "failed"], WAIT);

    assert_eq!(delivered["status"], "delivered", "{delivered}");
    let data = &delivered["data"];
    assert_eq!(data["isn"], "7700123", "{data}");
    assert_eq!(data["status"], "CONFIRMED", "{data}");
    assert_eq!(data["docno"], "п/п 15", "{data}");
    assert_eq!(data["externalkey"], format!("UIG-{id}"), "{data}");
    let state = mock_state(&mock);
    assert_eq!(state["payments"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(state["calls"]["User_PaymentConfirm"], 1, "{state}");
    assert_eq!(state["calls"]["User_PaymentFind"], 1, "{state}");
    assert_eq!(delivery_attempts(&gateway, id).len(), 2);
}

#[test]
fn second_confirmation_fails() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.1");
    let (_, first) = send_sync(&gateway, "payment_confirm", &payment_message());
    assert_eq!(first["status"], "delivered", "{first}");

    let (status, second) = send_sync(&gateway, "payment_confirm", &payment_message());

    assert_eq!(status, 200, "{second}");
    assert_eq!(second["status"], "failed", "{second}");
    assert_eq!(second["error"]["kind"], "permanent");
    assert_eq!(second["error"]["code"], "103");
    assert!(second["error"]["message"].as_str().unwrap().contains("уже подтверждён"), "{second}");
}

#[test]
fn expired_session_reauthenticates() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.1");
    let (_, first) = send_sync(&gateway, "notify", &notify_message());
    assert_eq!(first["status"], "delivered", "{first}");

    mock_control(&mock, "POST", "expire-sessions", None);
    let (status, second) = send_sync(&gateway, "notify", &notify_message());

    assert_eq!(status, 200, "{second}");
    assert_eq!(second["status"], "delivered", "{second}");
    let state = mock_state(&mock);
    assert_eq!(state["auth_count"], 2, "{state}");
    assert_eq!(state["calls"]["User_NotifyEvent"], 3, "{state}");
    assert_eq!(state["notifications"].as_array().unwrap().len(), 2, "{state}");
}

#[test]
fn every_encoding_keeps_cyrillic() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.1");

    for encoding in ["utf8", "utf8_bom", "utf16le_bom", "utf16be_bom", "cp1251_header", "cp1251_declaration"] {
        set_encoding(&mock, encoding);

        let (status, body) = send_sync(&gateway, "notify", &notify_message());

        assert_eq!(status, 200, "{encoding}: {body}");
        assert_eq!(body["status"], "delivered", "{encoding}: {body}");
        let stored = get(&gateway, body["id"].as_i64().unwrap());
        assert_notify_reply(&stored["data"]);
    }
}

#[test]
fn contradicting_charset_fails_clearly() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.1");
    set_encoding(&mock, "contradicting_header");

    let id = send_async(&gateway, "notify", &notify_message());
    let failed = gateway.wait_status(id, &["failed", "delivered"], WAIT);

    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["data"], Value::Null);
    let error = &failed["error"];
    assert_eq!(error["kind"], "permanent", "{error}");
    assert_eq!(error["code"], "invalid_encoding", "{error}");
    assert_eq!(error["attempt"], 1, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("cannot be decoded"), "{message}");
    assert!(message.contains("Content-Type charset"), "{message}");
    assert!(message.contains("not valid UTF-8"), "{message}");
    assert!(message.contains("windows-1251"), "{message}");
    assert!(!message.contains('\u{FFFD}'), "{message}");
}

#[test]
fn soap_fault_fails_without_retry() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.1");
    set_mode(&mock, json!({"mode": "fault", "procedure": "User_NotifyEvent"}));

    let id = send_async(&gateway, "notify", &notify_message());
    let failed = gateway.wait_status(id, &["failed", "delivered"], WAIT);

    assert_eq!(failed["status"], "failed", "{failed}");
    let error = &failed["error"];
    assert_eq!(error["kind"], "permanent", "{error}");
    assert_eq!(error["code"], "soap:Server", "{error}");
    assert_eq!(error["attempt"], 1, "{error}");
    assert!(error["message"].as_str().unwrap().contains("mock mode fault"), "{error}");
    assert_eq!(delivery_attempts(&gateway, id).len(), 1);
    assert_eq!(mock_state(&mock)["notifications"], json!([]));
}

#[test]
fn gateway_502_retried_then_delivered() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.1");
    set_mode(&mock, json!({"mode": "html_502", "count": 1, "procedure": "User_NotifyEvent"}));

    let id = send_async(&gateway, "notify", &notify_message());
    let delivered = gateway.wait_status(id, &["delivered", "failed"], WAIT);

    assert_eq!(delivered["status"], "delivered", "{delivered}");
    assert_notify_reply(&delivered["data"]);
    let attempts = delivery_attempts(&gateway, id);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts[0].contains(" transient"), "{attempts:?}");
    assert_eq!(mock_state(&mock)["notifications"].as_array().unwrap().len(), 1);
}

#[test]
fn soap12_binding_delivers() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, "1.2");

    let (status, body) = send_sync(&gateway, "notify", &notify_message());

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered", "{body}");
    assert_notify_reply(&body["data"]);
    let requests = &mock_state(&mock)["requests"]["by_soap_version"];
    assert_eq!(requests["1.2"], 2, "{requests}");
    assert_eq!(requests["1.1"], Value::Null, "{requests}");
}
