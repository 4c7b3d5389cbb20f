//! Delivery tests against the real binary: callbacks, retries, cache, plugin faults, status
//! refresh, plugin loading, crash recovery and the plugin HTTP allow-list.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::Mac;
use serde_json::Value;

use common::{wait_until, Gateway, GatewayOptions, Mock};

const WAIT: Duration = Duration::from_secs(20);
const LADA_VIN: &str = "XTA21099043765432";

/// Sends an async message and returns its id.
fn send_async(gateway: &Gateway, recipient: &str, entity: &str, message: &str, callback: Option<&str>) -> i64 {
    let mut params = vec![("recipient", recipient), ("entity", entity), ("message", message)];
    if let Some(url) = callback {
        params.push(("callback", url));
    }
    let (status, body) = gateway.call("POST", "/async/message/send", &params);
    assert_eq!(status, 202, "{body}");
    body["id"].as_i64().unwrap()
}

/// Sends a sync message and returns the HTTP status and body.
fn send_sync(gateway: &Gateway, recipient: &str, entity: &str, message: &str) -> (u16, Value) {
    gateway.call("POST", "/sync/message/send", &[("recipient", recipient), ("entity", entity), ("message", message)])
}

fn get(gateway: &Gateway, id: i64) -> Value {
    let (status, body) = gateway.call("GET", "/sync/message/get", &[("id", &id.to_string())]);
    assert_eq!(status, 200, "{body}");
    body
}

/// Runs `uig message show` and returns its output: the stored message with its attempts.
fn show(gateway: &Gateway, id: i64) -> String {
    common::uig(&["message", "show", "--config", gateway.config_path.to_str().unwrap(), &id.to_string()])
}

/// Returns the attempt lines of `uig message show` of the given kind (`delivery`, `callback`, `status`).
fn attempt_lines(output: &str, kind: &str) -> Vec<String> {
    let prefix = format!("  {kind} #");
    output.lines().filter(|line| line.starts_with(&prefix)).map(str::to_string).collect()
}

fn callbacks_url(mock: &Mock) -> String {
    format!("{}/_mock/callbacks", mock.url)
}

/// Lists the callbacks that the mock's sink received, oldest first.
fn received_callbacks(mock: &Mock) -> Vec<Value> {
    let list: Value = reqwest::blocking::get(callbacks_url(mock)).unwrap().json().unwrap();
    list.as_array().unwrap().clone()
}

fn fail_next_callbacks(mock: &Mock, count: u64) {
    let response = reqwest::blocking::Client::new()
        .put(format!("{}/_mock/callbacks/mode", mock.url))
        .json(&serde_json::json!({"fail_next": count}))
        .send()
        .unwrap();
    assert!(response.status().is_success());
}

/// Computes the Standard Webhooks signature independently of the engine.
fn expected_signature(secret: &str, webhook_id: &str, timestamp: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{webhook_id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

fn header<'a>(callback: &'a Value, name: &str) -> &'a str {
    callback["headers"][name].as_str().unwrap_or_else(|| panic!("callback has no {name} header: {callback}"))
}

fn ready_connector(gateway: &Gateway, name: &str) -> Value {
    let ready: Value = reqwest::blocking::get(format!("{}/health/ready", gateway.url)).unwrap().json().unwrap();
    let connectors = ready["connectors"].as_array().unwrap();
    connectors.iter().find(|connector| connector["name"] == name).cloned().unwrap_or_else(|| panic!("connector {name} missing from /health/ready: {ready}"))
}

#[test]
fn callback_is_signed() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let url = callbacks_url(&mock);
    let message = format!(r#"{{"vin":"{LADA_VIN}"}}"#);
    let id = send_async(&gateway, "avinfo", "vehicle", &message, Some(&url));
    gateway.wait_status(id, &["delivered"], WAIT);
    wait_until("the callback", WAIT, || !received_callbacks(&mock).is_empty());

    let callbacks = received_callbacks(&mock);
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    let callback = &callbacks[0];
    assert_eq!(callback["status"], 200);
    let webhook_id = header(callback, "webhook-id");
    assert_eq!(webhook_id, id.to_string());
    let timestamp = header(callback, "webhook-timestamp");
    let body_text = callback["body"].as_str().unwrap();
    let expected = expected_signature(&gateway.secret, webhook_id, timestamp, body_text);
    assert_eq!(header(callback, "webhook-signature"), expected);

    let body: Value = serde_json::from_str(body_text).unwrap();
    assert_eq!(body["id"], id);
    assert_eq!(body["status"], "delivered");
    assert_eq!(body["data"]["vin"], LADA_VIN);
}

#[test]
fn callback_retries_until_accepted() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);
    fail_next_callbacks(&mock, 2);

    let url = callbacks_url(&mock);
    let id = send_async(&gateway, "testkit", "echo", r#"{"n":1}"#, Some(&url));
    gateway.wait_status(id, &["delivered"], WAIT);
    wait_until("the callback to be delivered", WAIT, || show(&gateway, id).contains("(delivered)"));
    // A fourth delivery, if one were wrongly scheduled, would come within the 1 s backoff cap.
    std::thread::sleep(Duration::from_millis(1200));

    let callbacks = received_callbacks(&mock);
    let statuses: Vec<u64> = callbacks.iter().map(|callback| callback["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![500, 500, 200]);
    for callback in &callbacks {
        assert_eq!(header(callback, "webhook-id"), id.to_string());
    }
    let output = show(&gateway, id);
    assert_eq!(attempt_lines(&output, "callback").len(), 3, "{output}");
}

#[test]
fn sync_send_maps_codes() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let (status, body) = send_sync(&gateway, "avinfo", "vehicle", &format!(r#"{{"vin":"{LADA_VIN}"}}"#));

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered");
    assert_eq!(body["data"]["vin"], LADA_VIN);
    assert_eq!(body["data"]["brand"]["code"], "1001");
    assert_eq!(body["data"]["category"]["code"], "CAT_B");
}

#[test]
fn cache_skips_mock_but_not_errors() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);
    let message = format!(r#"{{"vin":"{LADA_VIN}"}}"#);

    let (status, first) = send_sync(&gateway, "avinfo", "vehicle", &message);
    assert_eq!(status, 200, "{first}");
    assert_eq!(mock.avinfo_requests(), 1);
    let (status, second) = send_sync(&gateway, "avinfo", "vehicle", &message);
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["status"], "delivered");
    assert_eq!(second["data"], first["data"]);
    assert_eq!(mock.avinfo_requests(), 1);

    let other_vin = "XW8ZZZ61ZEG012345";
    let other = format!(r#"{{"vin":"{other_vin}"}}"#);
    mock.set_mode("no_balance");
    let (status, failed) = send_sync(&gateway, "avinfo", "vehicle", &other);
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["kind"], "permanent");
    assert_eq!(failed["error"]["code"], "no_balance");

    mock.set_mode("normal");
    let (status, delivered) = send_sync(&gateway, "avinfo", "vehicle", &other);
    assert_eq!(status, 200, "{delivered}");
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["data"]["vin"], other_vin);
    assert_eq!(mock.stats()["avinfo"]["by_key"][format!("vin:{other_vin}")], 2);
}

#[test]
fn outage_retries_then_delivers() {
    let mock = Mock::start();
    // More attempts and a slower schedule than the harness default, so the outage can be ended
    // before the attempts run out.
    let gateway = Gateway::start_edited(&mock, GatewayOptions::default(), |text| {
        text.replacen(
            "max_attempts = 3\n\n[connectors.avinfo.retry]\ninitial_backoff_ms = 200\nmax_backoff_ms = 1000",
            "max_attempts = 20\n\n[connectors.avinfo.retry]\ninitial_backoff_ms = 400\nmax_backoff_ms = 400",
            1,
        )
    });
    mock.set_mode("outage");

    let id = send_async(&gateway, "avinfo", "vehicle", &format!(r#"{{"vin":"{LADA_VIN}"}}"#), None);
    let retrying = gateway.wait_status(id, &["retrying"], WAIT);
    assert_eq!(retrying["error"]["kind"], "transient");
    assert_eq!(retrying["error"]["code"], "source_unavailable");
    let output = show(&gateway, id);
    assert!(!attempt_lines(&output, "delivery").is_empty(), "{output}");

    mock.set_mode("normal");
    let delivered = gateway.wait_status(id, &["delivered", "failed"], WAIT);
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["data"]["vin"], LADA_VIN);
    assert_eq!(delivered["error"], Value::Null);
    let output = show(&gateway, id);
    let attempts = attempt_lines(&output, "delivery");
    assert!(attempts.len() >= 2, "{output}");
    assert!(attempts.last().unwrap().contains(" ok"), "{output}");
}

#[test]
fn transient_failure_exhausts_attempts() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let id = send_async(&gateway, "testkit", "fail", r#"{"kind":"transient"}"#, None);
    let failed = gateway.wait_status(id, &["failed"], WAIT);

    assert_eq!(failed["error"]["kind"], "transient");
    assert_eq!(failed["error"]["code"], "test_failure");
    assert_eq!(failed["error"]["attempt"], 3);
    assert_eq!(failed["error"]["message"], "failing attempt 3 as asked");
    let output = show(&gateway, id);
    assert!(output.contains("status failed  attempts 3"), "{output}");
    let attempts = attempt_lines(&output, "delivery");
    assert_eq!(attempts.len(), 3, "{output}");
    assert!(attempts.iter().all(|line| line.contains(" transient ")), "{output}");
}

#[test]
fn permanent_failure_is_final() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let id = send_async(&gateway, "testkit", "fail", r#"{"kind":"permanent"}"#, None);
    let failed = gateway.wait_status(id, &["failed"], WAIT);

    assert_eq!(failed["error"]["kind"], "permanent");
    assert_eq!(failed["error"]["attempt"], 1);
    let output = show(&gateway, id);
    assert!(output.contains("status failed  attempts 1"), "{output}");
    assert_eq!(attempt_lines(&output, "delivery").len(), 1, "{output}");
}

#[test]
fn plugin_panic_fails_message() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let id = send_async(&gateway, "testkit", "panic", "{}", None);
    let failed = gateway.wait_status(id, &["failed"], WAIT);
    assert_eq!(failed["error"]["kind"], "panicked");
    let text = failed["error"]["message"].as_str().unwrap();
    assert!(text.contains(&format!("asked to panic for message {id}")), "{text}");

    let echo = send_async(&gateway, "testkit", "echo", r#"{"after":"panic"}"#, None);
    let delivered = gateway.wait_status(echo, &["delivered", "failed"], WAIT);
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["data"]["echo"]["after"], "panic");
}

#[test]
fn slow_plugin_hits_deadline() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let started = Instant::now();
    let id = send_async(&gateway, "testkit", "sleep", r#"{"ms":5000}"#, None);
    let retrying = gateway.wait_status(id, &["retrying", "failed"], WAIT);

    assert_eq!(retrying["status"], "retrying");
    assert_eq!(retrying["error"]["kind"], "transient");
    assert_eq!(retrying["error"]["code"], "deadline_exceeded");
    assert!(started.elapsed() < Duration::from_millis(4500), "{:?}", started.elapsed());
}

#[test]
fn pending_refreshed_by_status_put() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let id = send_async(&gateway, "testkit", "pending", "{}", None);
    wait_until("the pending answer to be stored", WAIT, || {
        attempt_lines(&show(&gateway, id), "delivery").iter().any(|line| line.contains(" pending"))
    });
    // The worker never claims a pending message with no lease, so it stays processing.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&gateway, id)["status"], "processing");

    let (status, body) = gateway.call("PUT", "/sync/message/status", &[("id", &id.to_string())]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered");
    let refreshed = get(&gateway, id);
    assert_eq!(refreshed["status"], "delivered");
    assert_eq!(refreshed["data"], serde_json::json!({"refreshed": format!("ext-{id}")}));
}

#[test]
fn status_put_keeps_delivered() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);
    let (status, sent) = send_sync(&gateway, "avinfo", "vehicle", &format!(r#"{{"vin":"{LADA_VIN}"}}"#));
    assert_eq!(status, 200, "{sent}");
    let id = sent["id"].as_i64().unwrap();

    let (status, body) = gateway.call("PUT", "/sync/message/status", &[("id", &id.to_string())]);

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered");
    assert_eq!(body["updated_at"], sent["updated_at"]);
    assert_eq!(mock.avinfo_requests(), 1);
    let output = show(&gateway, id);
    assert!(attempt_lines(&output, "status").is_empty(), "{output}");
}

fn foreign_library() -> String {
    common::build_artifacts();
    common::foreign_dir().join("libuig_connector_testkit.so").display().to_string()
}

fn testkit_section(library: &str, required: bool) -> String {
    format!("[connectors.testkit]\nlibrary = \"{library}\"\nrequired = {required}\ndeadline_ms = 2000\n\n")
}

#[test]
fn foreign_required_plugin_stops_start() {
    let mock = Mock::start();
    common::build_artifacts();
    let library = foreign_library();
    let dir = tempfile::tempdir().unwrap();
    let options = GatewayOptions { testkit: false, extra_config: testkit_section(&library, true), ..GatewayOptions::default() };
    let config_path = dir.path().join("uig.toml");
    std::fs::write(&config_path, common::config_text(dir.path(), common::free_port(), &mock.url, &options)).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_uig"))
        .args(["serve", "--config", config_path.to_str().unwrap()])
        .env("UIG_MASTER_KEY", common::MASTER_KEY)
        .env("UIG_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("uig serve kept running with an incompatible required plugin");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = stderr.lines().find(|line| line.contains(&library)).unwrap_or_else(|| panic!("no line names {library}: {stderr}"));
    assert!(reason.contains("99.0.0"), "{reason}");
    assert!(reason.contains("0.1.0"), "{reason}");
    assert!(reason.contains("rebuild"), "{reason}");
}

/// Starts a gateway whose testkit connector is optional and loads from `library`, then checks
/// that it is reported unavailable for `reason` and that sends to it get 503.
fn assert_optional_unavailable(library: &str, reason: &str) {
    let mock = Mock::start();
    let options = GatewayOptions { testkit: false, extra_config: testkit_section(library, false), ..GatewayOptions::default() };
    let gateway = Gateway::start_with(&mock, options);

    let testkit = ready_connector(&gateway, "testkit");
    assert_eq!(testkit["status"], "unavailable");
    let stated = testkit["reason"].as_str().unwrap();
    assert!(stated.contains(library), "{stated}");
    assert!(stated.contains(reason), "{stated}");
    assert_eq!(ready_connector(&gateway, "avinfo")["status"], "loaded");

    let (status, body) = send_sync(&gateway, "testkit", "echo", "{}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "connector_unavailable");
    assert_eq!(gateway.count_messages(), 0);
}

#[test]
fn foreign_optional_plugin_unavailable() {
    assert_optional_unavailable(&foreign_library(), "99.0.0");
}

#[test]
fn newer_interface_plugin_unavailable() {
    let library = common::newer_dir().join("libuig_connector_testkit.so").display().to_string();
    assert_optional_unavailable(&library, "0.99.0, newer than this engine's 0.1.0");
}

#[test]
fn missing_optional_plugin_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("libuig_connector_missing.so").display().to_string();
    assert_optional_unavailable(&library, "file not found");
}

#[test]
fn crash_recovery_delivers_all() {
    let mock = Mock::start();
    // A short lease so messages held by the killed process are claimed again soon. The avinfo
    // connector is left out because its 10 s deadline must stay below the lease.
    let options = GatewayOptions { avinfo: false, ..GatewayOptions::default() };
    let mut gateway = Gateway::start_edited(&mock, options, |text| text.replacen("lease_seconds = 60", "lease_seconds = 3", 1));

    let ids: Vec<i64> = (0..4).map(|n| send_async(&gateway, "testkit", "sleep", &format!(r#"{{"ms":1500,"n":{n}}}"#), None)).collect();
    for id in &ids {
        gateway.wait_status(*id, &["processing"], WAIT);
    }
    gateway.kill();
    gateway.spawn();

    for id in &ids {
        let message = gateway.wait_status(*id, &["delivered", "failed"], WAIT);
        assert_eq!(message["status"], "delivered", "message {id}");
        assert_eq!(message["data"]["slept_ms"], 1500, "message {id}");
        // The attempt cut short by the kill was never stored, so only the second one counts.
        let output = show(&gateway, *id);
        assert!(output.contains("status delivered  attempts 1"), "{output}");
        assert_eq!(attempt_lines(&output, "delivery").len(), 1, "{output}");
    }
    assert_eq!(gateway.count_messages(), ids.len() as i64);
}

#[test]
fn host_http_outside_allow_list() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let id = send_async(&gateway, "testkit", "fetch", r#"{"url":"http://127.0.0.2:1/"}"#, None);
    let failed = gateway.wait_status(id, &["failed", "delivered"], WAIT);

    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["kind"], "config");
    let text = failed["error"]["message"].as_str().unwrap();
    assert!(text.contains("connectors.testkit.allowed_urls"), "{text}");
    assert_eq!(failed["error"]["attempt"], 1);
}

#[test]
fn host_http_inside_allow_list() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let url = format!("{}/_mock/stats", mock.url);
    let id = send_async(&gateway, "testkit", "fetch", &serde_json::json!({"url": url}).to_string(), None);
    let delivered = gateway.wait_status(id, &["delivered", "failed"], WAIT);

    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["data"]["status"], 200);
    let body: Value = serde_json::from_str(delivered["data"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["avinfo"]["mode"], "normal");
}

#[test]
fn slow_callback_receiver_holds_back_no_other() {
    let mock = Mock::start();
    let gateway = Gateway::start_edited(&mock, GatewayOptions::default(), |text| text.replace("[callbacks]\ntimeout_ms = 2000", "[callbacks]\ntimeout_ms = 20000"));

    // A receiver that accepts connections and never responds.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (accepted, accepted_signal) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut open_connections = Vec::new();
        for stream in listener.incoming().flatten() {
            open_connections.push(stream);
            let _ = accepted.send(());
        }
    });

    let slow = send_async(&gateway, "testkit", "echo", r#"{"n":1}"#, Some(&slow_url));
    accepted_signal.recv_timeout(Duration::from_secs(10)).expect("the slow receiver got no callback");
    let fast = send_async(&gateway, "testkit", "echo", r#"{"n":2}"#, Some(&callbacks_url(&mock)));
    wait_until("the callback of the second message", Duration::from_secs(10), || {
        received_callbacks(&mock).iter().any(|callback| header(callback, "webhook-id") == fast.to_string())
    });

    // The first callback is still waiting for a response, so its attempt is not stored yet.
    assert!(attempt_lines(&show(&gateway, slow), "callback").is_empty());
}

/// Starts a gateway whose connector `asynckit` is the testkit plugin built with `async-send`:
/// one call at a time, and a 1 s deadline.
fn async_gateway(mock: &Mock) -> Gateway {
    common::build_artifacts();
    let library = common::async_send_dir().join("libuig_connector_testkit.so").display().to_string();
    let extra_config = format!(
        "[connectors.asynckit]\nlibrary = \"{library}\"\nrequired = true\nallowed_urls = [\"{}\"]\ndeadline_ms = 1000\nconcurrency = 1\nmax_attempts = 3\n\n\
         [connectors.asynckit.retry]\ninitial_backoff_ms = 60000\nmax_backoff_ms = 60000\n\n",
        mock.url
    );
    Gateway::start_with(mock, GatewayOptions { extra_config, ..GatewayOptions::default() })
}

#[test]
fn async_plugin_uses_host_http() {
    let mock = Mock::start();
    let gateway = async_gateway(&mock);
    assert_eq!(ready_connector(&gateway, "asynckit")["status"], "loaded");

    let (status, body) = send_sync(&gateway, "asynckit", "fetch", &format!(r#"{{"url":"{}/_mock/stats"}}"#, mock.url));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered", "{body}");
    assert_eq!(body["data"]["status"], 200);
    assert_eq!(body["data"]["async"], true, "the engine called send instead of send_async: {body}");
    assert!(body["data"]["body"].as_str().unwrap().contains("avinfo"), "{body}");

    // The blocking host HTTP inside the future fails the call instead of the engine.
    let (status, body) = send_sync(&gateway, "asynckit", "fetch_blocking", &format!(r#"{{"url":"{}/_mock/stats"}}"#, mock.url));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("use http_async"), "{body}");
    assert_eq!(ready_connector(&gateway, "asynckit")["status"], "loaded");

    // The allow-list applies to the asynchronous HTTP too.
    let (status, body) = send_sync(&gateway, "asynckit", "fetch", r#"{"url":"http://127.0.0.2:1/"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["error"]["kind"], "config", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("allowed_urls"), "{body}");
}

#[test]
fn async_deadline_frees_slot() {
    let mock = Mock::start();
    let gateway = async_gateway(&mock);

    // The connector runs one call at a time. A blocking call past its deadline keeps that slot
    // for the whole 8 s sleep. A future is dropped at the deadline, so the echo runs next.
    let started = Instant::now();
    let slow = send_async(&gateway, "asynckit", "sleep", r#"{"ms":8000}"#, None);
    gateway.wait_status(slow, &["processing"], WAIT);
    // The echo's own deadline counts from its start, so it starts well after the sleep: the slot
    // frees at the sleep's deadline, long before the echo's.
    std::thread::sleep(Duration::from_millis(400));
    let echo = send_async(&gateway, "asynckit", "echo", r#"{"after":"sleep"}"#, None);

    let retrying = gateway.wait_status(slow, &["retrying", "failed", "delivered"], WAIT);
    assert_eq!(retrying["status"], "retrying", "{retrying}");
    assert_eq!(retrying["error"]["code"], "deadline_exceeded", "{retrying}");
    let delivered = gateway.wait_status(echo, &["delivered", "failed"], WAIT);
    assert_eq!(delivered["status"], "delivered", "{delivered}");
    assert_eq!(delivered["data"]["echo"]["after"], "sleep");
    assert!(started.elapsed() < Duration::from_secs(6), "the echo waited {:?} for the slot", started.elapsed());
}

#[test]
fn async_plugin_panic_fails_message() {
    let mock = Mock::start();
    let gateway = async_gateway(&mock);

    let (status, body) = send_sync(&gateway, "asynckit", "panic", "{}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["error"]["kind"], "panicked", "{body}");
    let id = body["id"].as_i64().unwrap();
    let text = body["error"]["message"].as_str().unwrap();
    assert!(text.contains(&format!("asked to panic inside the future of message {id}")), "{text}");
    assert!(text.contains("send_async"), "{text}");

    let (status, body) = send_sync(&gateway, "asynckit", "sleep", r#"{"ms":50}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered", "{body}");
    assert_eq!(body["data"], serde_json::json!({"slept_ms": 50, "async": true}));
}

/// A sync send of a lookup entity (testkit's `lookup`) calls the plugin before anything is stored,
/// with message id 0, and stores the message once, with its result and one attempt. An async send
/// of the same entity goes through the worker as before.
#[test]
fn sync_lookup_is_stored_with_its_result() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);

    let (status, body) = send_sync(&gateway, "testkit", "lookup", r#"{"value":"A123BC77"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered");
    assert_eq!(body["data"]["looked_up"], "A123BC77");
    assert_eq!(body["data"]["message_id"], 0);
    let id = body["id"].as_i64().unwrap();
    let stored = get(&gateway, id);
    assert_eq!(stored["data"], body["data"]);
    assert_eq!(stored["entity"], "lookup");
    let output = show(&gateway, id);
    assert_eq!(attempt_lines(&output, "delivery").len(), 1, "{output}");

    // A failed lookup is stored failed with its error, like any sync send: no retry.
    for kind in ["transient", "permanent"] {
        let (status, failed) = send_sync(&gateway, "testkit", "lookup", &format!(r#"{{"fail":"{kind}"}}"#));
        assert_eq!(status, 200, "{failed}");
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["data"], Value::Null);
        assert_eq!(failed["error"]["kind"], kind);
        assert_eq!(failed["error"]["code"], "test_failure");
        let output = show(&gateway, failed["id"].as_i64().unwrap());
        assert_eq!(attempt_lines(&output, "delivery").len(), 1, "{output}");
    }
    assert_eq!(gateway.count_messages(), 3);

    // An async send of a lookup entity is stored first and delivered by the worker with its id.
    let queued = send_async(&gateway, "testkit", "lookup", r#"{"value":"async"}"#, None);
    let delivered = gateway.wait_status(queued, &["delivered"], WAIT);
    assert_eq!(delivered["data"]["message_id"], queued);

    // The engine read the lookups from the loaded plugins. The log is a file, so it has no colours.
    let log = gateway.log();
    assert!(!log.contains('\x1b'), "the log file contains terminal escape sequences");
    let loaded = |connector: &str| {
        let name = format!("connector={connector} ");
        log.lines().find(|line| line.contains("connector loaded") && line.contains(&name)).unwrap_or_default()
    };
    assert!(loaded("testkit").contains(r#"lookups=["lookup"]"#), "{log}");
    assert!(loaded("avinfo").contains(r#"lookups=["vehicle"]"#), "{log}");
}

/// An engine killed during two sync calls. The message of an ordinary entity was stored before the
/// call, so the worker can finish it. The lookup stores nothing, and its client sees the request
/// fail.
#[test]
fn lookup_cut_short_by_a_crash_stores_nothing() {
    let mock = Mock::start();
    let mut gateway = Gateway::start(&mock);
    let pending_call = |entity: &str, message: &str| {
        let signed = gateway.sign("POST", "/sync/message/send", &[("recipient", "testkit"), ("entity", entity), ("message", message)]);
        let url = format!("{}/sync/message/send", gateway.url);
        std::thread::spawn(move || {
            let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&signed).finish();
            reqwest::blocking::Client::new().post(url).header("content-type", "application/x-www-form-urlencoded").body(body).send().map(|response| response.status().as_u16())
        })
    };
    let lookup = pending_call("lookup", r#"{"value":"cut","sleep_ms":1500}"#);
    let ordinary = pending_call("sleep", r#"{"ms":1500}"#);
    std::thread::sleep(Duration::from_millis(500));
    gateway.kill();
    assert!(lookup.join().unwrap().is_err(), "the lookup was answered before the kill");
    assert!(ordinary.join().unwrap().is_err(), "the ordinary send was answered before the kill");

    gateway.spawn();
    assert_eq!(gateway.count_messages(), 1);
    let (status, listed) = gateway.call("GET", "/sync/message/list-all", &[]);
    assert_eq!(status, 200, "{listed}");
    let stored = get(&gateway, listed["data"][0]["id"].as_i64().unwrap());
    assert_eq!(stored["entity"], "sleep");
    assert_eq!(stored["status"], "processing");
}

/// A lookup that the plugin does not accept as an entity keeps the connector from loading, with a
/// reason that names the key and the valid entities.
#[test]
fn unknown_lookup_entity_is_rejected() {
    let mock = Mock::start();
    let gateway = Gateway::start_edited(&mock, GatewayOptions::default(), |text| text.replace("lookups = [\"lookup\"]", "lookups = [\"lookup\", \"vehicle\"]"));

    let testkit = ready_connector(&gateway, "testkit");
    assert_eq!(testkit["status"], "unavailable", "{testkit}");
    let reason = testkit["reason"].as_str().unwrap();
    assert!(reason.contains(r#"connectors.testkit.lookups names entity "vehicle""#), "{reason}");
    assert!(reason.contains("echo, fail"), "{reason}");
    assert_eq!(ready_connector(&gateway, "avinfo")["status"], "loaded");
}
