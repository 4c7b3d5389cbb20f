//! IMPACT connector tests against the real binary, the real plugin and the mock IMPACT: pending
//! messages refreshed to their result, idempotent retries, IMPACT errors and wrong credentials.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{Gateway, GatewayOptions, Mock};

const WAIT: Duration = Duration::from_secs(20);

/// Credentials that `uig-mock` accepts by default.
const USER: &str = "demo-impact";
const PASSWORD: &str = "demo-impact-password";

/// Returns the `[connectors.impact]` section pointing at the mock, logging in with `password`.
fn impact_section(mock: &Mock, password: &str) -> String {
    let base_url = format!("{}/impact", mock.url);
    format!(
        "[connectors.impact]\nlibrary = \"libuig_connector_impact.so\"\nrequired = true\nallowed_urls = [\"{base_url}\"]\n\
         deadline_ms = 5000\nmax_attempts = 10\n\n[connectors.impact.retry]\ninitial_backoff_ms = 200\nmax_backoff_ms = 500\n\n\
         [connectors.impact.settings]\nbase_url = \"{base_url}\"\nusername = \"{USER}\"\npassword = \"{password}\"\ntimeout_ms = 3000\n\n"
    )
}

/// Starts a gateway whose only connector is IMPACT on `mock`.
fn start_gateway(mock: &Mock, password: &str) -> Gateway {
    let options = GatewayOptions {
        extra_config: impact_section(mock, password),
        avinfo: false,
        testkit: false,
        ..GatewayOptions::default()
    };
    Gateway::start_with(mock, options)
}

/// Sends a control request to the mock IMPACT and checks that it succeeded.
fn control(mock: &Mock, method: &str, path: &str, body: Value) {
    let url = format!("{}/_mock/impact/{path}", mock.url);
    let response = reqwest::blocking::Client::new().request(method.parse().unwrap(), url).json(&body).send().unwrap();
    assert!(response.status().is_success(), "{method} {path}: {}", response.status());
}

fn set_mode(mock: &Mock, mode: &str) {
    control(mock, "PUT", "mode", json!({"mode": mode}));
}

/// Reads `GET /_mock/impact/state`.
fn impact_state(mock: &Mock) -> Value {
    reqwest::blocking::get(format!("{}/_mock/impact/state", mock.url)).unwrap().json().unwrap()
}

fn submissions(mock: &Mock) -> Vec<Value> {
    impact_state(mock)["submissions"].as_array().unwrap().clone()
}

fn send_async(gateway: &Gateway, entity: &str, message: &str) -> i64 {
    let (status, body) =
        gateway.call("POST", "/async/message/send", &[("recipient", "impact"), ("entity", entity), ("message", message)]);
    assert_eq!(status, 202, "{body}");
    body["id"].as_i64().unwrap()
}

fn send_sync(gateway: &Gateway, entity: &str, message: &str) -> Value {
    let (status, body) =
        gateway.call("POST", "/sync/message/send", &[("recipient", "impact"), ("entity", entity), ("message", message)]);
    assert_eq!(status, 200, "{body}");
    body
}

fn get(gateway: &Gateway, id: i64) -> Value {
    let (status, body) = gateway.call("GET", "/sync/message/get", &[("id", &id.to_string())]);
    assert_eq!(status, 200, "{body}");
    body
}

/// Calls `PUT /sync/message/status` and returns the status it reports.
fn refresh(gateway: &Gateway, id: i64) -> String {
    let (status, body) = gateway.call("PUT", "/sync/message/status", &[("id", &id.to_string())]);
    assert_eq!(status, 200, "{body}");
    body["status"].as_str().unwrap().to_string()
}

/// Waits until IMPACT's pending response is stored: the message is `processing` with IMPACT's
/// `QUEUED` document as its data. Returns the message.
fn wait_pending(gateway: &Gateway, id: i64) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let message = get(gateway, id);
        if message["status"] == "processing" && message["data"]["status"] == "QUEUED" {
            return message;
        }
        assert!(Instant::now() < deadline, "message {id} never became pending at IMPACT: {message}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pending_message_refreshed_to_result() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, PASSWORD);

    let id = send_async(&gateway, "claim", r#"{"policy": "ХХХ 0123456789", "amount": 150000.00}"#);
    let pending = wait_pending(&gateway, id);
    let impact_id = pending["data"]["id"].as_str().unwrap().to_string();

    let stored = submissions(&mock);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["id"], impact_id);
    assert_eq!(stored[0]["key"], format!("uig-{id}"));
    assert_eq!(stored[0]["externalId"], format!("uig-{id}"));
    assert_eq!(stored[0]["type"], "claim");
    // The worker leaves a message pending at the recipient alone until a status refresh.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&gateway, id)["status"], "processing");

    assert_eq!(refresh(&gateway, id), "processing");
    assert_eq!(get(&gateway, id)["data"]["status"], "PROCESSING");
    assert_eq!(refresh(&gateway, id), "delivered");

    let delivered = get(&gateway, id);
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["data"]["id"], impact_id);
    assert_eq!(delivered["data"]["status"], "DONE");
    assert_eq!(delivered["data"]["result"]["number"], "CLM-000001");
    assert_eq!(delivered["data"]["result"]["externalId"], format!("uig-{id}"));
    assert_eq!(delivered["error"], Value::Null);

    assert_eq!(refresh(&gateway, id), "delivered");
    assert_eq!(impact_state(&mock)["requests"]["status"], 2);
}

#[test]
fn retried_submit_stores_one_record() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, PASSWORD);
    set_mode(&mock, "error_500");

    let id = send_async(&gateway, "payment", r#"{"amount": 99.90}"#);
    let retrying = gateway.wait_status(id, &["retrying"], WAIT);
    assert_eq!(retrying["error"]["kind"], "transient");
    assert_eq!(retrying["error"]["code"], "internal_error");
    // The mock stored the message before it responded with 500, as an IMPACT that fails after
    // its commit would.
    assert_eq!(submissions(&mock).len(), 1);

    set_mode(&mock, "normal");
    let pending = wait_pending(&gateway, id);

    let state = impact_state(&mock);
    let stored = state["submissions"].as_array().unwrap();
    assert_eq!(stored.len(), 1, "{state}");
    assert_eq!(stored[0]["id"], pending["data"]["id"]);
    let submits = state["submit_counts"][format!("uig-{id}")].as_u64().unwrap();
    assert!(submits >= 2, "{state}");
}

#[test]
fn broken_responses_retried_without_duplicates() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, PASSWORD);

    for (index, mode) in ["malformed", "reset"].into_iter().enumerate() {
        set_mode(&mock, mode);
        let id = send_async(&gateway, "policy", &format!(r#"{{"mode": "{mode}"}}"#));
        let retrying = gateway.wait_status(id, &["retrying"], WAIT);
        assert_eq!(retrying["error"]["kind"], "transient", "{mode}: {retrying}");
        if mode == "malformed" {
            assert_eq!(retrying["error"]["code"], "invalid_response", "{retrying}");
        }

        set_mode(&mock, "normal");
        wait_pending(&gateway, id);

        let state = impact_state(&mock);
        assert_eq!(state["submissions"].as_array().unwrap().len(), index + 1, "{mode}: {state}");
        assert!(state["submit_counts"][format!("uig-{id}")].as_u64().unwrap() >= 2, "{mode}: {state}");
    }
}

#[test]
fn error_status_fails_message() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, PASSWORD);

    let id = send_async(&gateway, "claim", r#"{"amount": 1, "reject": true}"#);
    wait_pending(&gateway, id);
    assert_eq!(refresh(&gateway, id), "processing");
    assert_eq!(refresh(&gateway, id), "failed");

    let failed = get(&gateway, id);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["kind"], "permanent");
    assert_eq!(failed["error"]["code"], "recipient_failed");
    assert_eq!(failed["error"]["data"]["status"], "ERROR");
    assert_eq!(failed["error"]["data"]["error"]["code"], "rejected");
}

#[test]
fn done_at_submit_delivers_sync() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, PASSWORD);
    control(&mock, "PUT", "progress", json!({"status_queries_until_done": 0}));

    let body = send_sync(&gateway, "payment", r#"{"amount": 10}"#);

    assert_eq!(body["status"], "delivered", "{body}");
    assert_eq!(body["data"]["status"], "DONE");
    assert_eq!(body["data"]["result"]["number"], "PAY-000001");
    let id = body["id"].as_i64().unwrap();
    assert_eq!(refresh(&gateway, id), "delivered");
    assert_eq!(impact_state(&mock)["requests"]["status"], 0);
}

#[test]
fn rejected_content_fails_permanently() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, PASSWORD);

    let body = send_sync(&gateway, "claim", r#""not an object""#);

    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["error"]["kind"], "permanent");
    assert_eq!(body["error"]["code"], "invalid_payload");
    assert!(body["error"]["message"].as_str().unwrap().contains("HTTP 422"), "{body}");
    assert!(submissions(&mock).is_empty());
}

#[test]
fn wrong_password_fails_with_auth() {
    let mock = Mock::start();
    let wrong_password = "wrong-impact-password-5d2a";
    let gateway = start_gateway(&mock, wrong_password);

    let sync = send_sync(&gateway, "claim", r#"{"amount": 1}"#);
    let id = send_async(&gateway, "claim", r#"{"amount": 2}"#);
    let failed = gateway.wait_status(id, &["failed"], WAIT);

    for body in [&sync, &failed] {
        assert_eq!(body["status"], "failed", "{body}");
        assert_eq!(body["error"]["kind"], "auth", "{body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        assert_eq!(body["error"]["attempt"], 1, "{body}");
        assert!(!body.to_string().contains(wrong_password), "{body}");
    }
    assert!(submissions(&mock).is_empty());
    let log = gateway.log();
    assert!(log.contains("impact connector ready"), "{log}");
    assert!(!log.contains(wrong_password), "the gateway log contains the password");
}

#[test]
fn unknown_id_at_refresh_fails_message() {
    let mock = Mock::start();
    let gateway = start_gateway(&mock, PASSWORD);
    let id = send_async(&gateway, "claim", r#"{"policy": "ХХХ 0123456789"}"#);
    wait_pending(&gateway, id);

    // The mock IMPACT is reset and loses the submission, so the status query gets 404 with IMPACT's error body.
    control(&mock, "POST", "reset", Value::Null);
    assert_eq!(refresh(&gateway, id), "failed");
    let failed = get(&gateway, id);
    assert_eq!(failed["error"]["kind"], "permanent", "{failed}");
}
