//! Delivery guarantee tests against the real binary: request rate and queue bounds, the circuit
//! breaker, the maximum message age and callback redirects.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use common::{wait_until, Gateway, GatewayOptions, Mock};

const WAIT: Duration = Duration::from_secs(20);

fn send_async(gateway: &Gateway, recipient: &str, entity: &str, message: &str, callback: Option<&str>) -> (u16, Value) {
    let mut params = vec![("recipient", recipient), ("entity", entity), ("message", message)];
    if let Some(url) = callback {
        params.push(("callback", url));
    }
    gateway.call("POST", "/async/message/send", &params)
}

fn accepted(gateway: &Gateway, entity: &str, message: &str, callback: Option<&str>) -> i64 {
    let (status, body) = send_async(gateway, "testkit", entity, message, callback);
    assert_eq!(status, 202, "{body}");
    body["id"].as_i64().unwrap()
}

fn show(gateway: &Gateway, id: i64) -> String {
    common::uig(&["message", "show", "--config", gateway.config_path.to_str().unwrap(), &id.to_string()])
}

fn ready(gateway: &Gateway) -> Value {
    reqwest::blocking::get(format!("{}/health/ready", gateway.url)).unwrap().json().unwrap()
}

/// Inserts `lines` at the top of the testkit connector's table.
fn testkit_settings(lines: &'static str) -> impl FnOnce(String) -> String {
    move |text| text.replace("[connectors.testkit]\n", &format!("[connectors.testkit]\n{lines}\n"))
}

#[test]
fn client_rate_limit_answers_429() {
    let mock = Mock::start();
    let options = GatewayOptions { extra_config: "[limits]\nclient_rate_per_second = 1\nclient_burst = 3\n".into(), ..GatewayOptions::default() };
    let gateway = Gateway::start_with(&mock, options);

    for _ in 0..3 {
        let (status, body) = gateway.call("GET", "/sync/message/list-new", &[("per_page", "10")]);
        assert_eq!(status, 200, "{body}");
    }
    let signed = gateway.sign("GET", "/sync/message/list-new", &[("per_page", "10")]);
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/sync/message/list-new", gateway.url))
        .query(&signed)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["message"].as_str().unwrap().contains("частоту запросов"), "{body}");
}

#[test]
fn full_queue_answers_503_and_stores_nothing() {
    let mock = Mock::start();
    let options = GatewayOptions { extra_config: "[limits]\nmax_queue_depth = 3\n".into(), ..GatewayOptions::default() };
    // No worker, so accepted messages stay queued.
    let gateway = Gateway::start_edited(&mock, options, |text| text.replace("[worker]\n", "[worker]\nenabled = false\n"));

    for index in 0..3 {
        accepted(&gateway, "echo", &format!(r#"{{"n": {index}}}"#), None);
    }
    let (status, body) = send_async(&gateway, "testkit", "echo", r#"{"n": 3}"#, None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "queue_full");
    assert_eq!(gateway.count_messages(), 3);
    assert_eq!(ready(&gateway)["queue"]["max"], 3);
}

#[test]
fn circuit_breaker_opens_and_pauses_delivery() {
    let mock = Mock::start();
    let gateway = Gateway::start_edited(&mock, GatewayOptions::default(), testkit_settings("circuit_breaker = { min_calls = 4, failure_rate = 0.5, open_seconds = 30 }"));

    for _ in 0..4 {
        let (status, body) = gateway.call("POST", "/sync/message/send", &[("recipient", "testkit"), ("entity", "fail"), ("message", r#"{"kind":"transient"}"#)]);
        assert_eq!(body["status"], "failed", "{status} {body}");
    }
    let connector = ready(&gateway)["connectors"].as_array().unwrap().iter().find(|item| item["name"] == "testkit").cloned().unwrap();
    assert_eq!(connector["circuit"], "open", "{connector}");

    let (status, body) = gateway.call("POST", "/sync/message/send", &[("recipient", "testkit"), ("entity", "echo"), ("message", "{}")]);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "circuit_open");
    assert_eq!(gateway.count_messages(), 4, "a sync send rejected by the breaker is not stored");

    // An async message waits for the breaker without using up attempts.
    let id = accepted(&gateway, "echo", "{}", None);
    std::thread::sleep(Duration::from_millis(800));
    let output = show(&gateway, id);
    assert!(output.contains("status queued  attempts 0"), "{output}");
}

#[test]
fn max_age_fails_retrying_message() {
    let mock = Mock::start();
    let gateway = Gateway::start_edited(&mock, GatewayOptions::default(), |text| {
        let text = testkit_settings("max_age_seconds = 1")(text);
        text.replace("max_attempts = 3\n\n[connectors.testkit.retry]", "max_attempts = 100\n\n[connectors.testkit.retry]")
    });

    let id = accepted(&gateway, "fail", r#"{"kind":"transient"}"#, None);
    let failed = gateway.wait_status(id, &["failed"], WAIT);
    assert_eq!(failed["error"]["kind"], "transient");
    let gave_up = failed["error"]["gave_up"].as_str().unwrap_or_default();
    assert!(gave_up.contains("max_age_seconds = 1"), "{failed}");
    let attempts = failed["error"]["attempt"].as_u64().unwrap();
    assert!(attempts < 100, "gave up after {attempts} attempts");
}

#[test]
fn callback_follows_307_with_same_post() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);
    let url = format!("{}/_mock/redirect?status=307&to=/_mock/callbacks", mock.url);

    let id = accepted(&gateway, "echo", r#"{"n": 1}"#, Some(&url));
    wait_until("the callback", WAIT, || show(&gateway, id).contains("(delivered)"));
    let callbacks: Value = reqwest::blocking::get(format!("{}/_mock/callbacks", mock.url)).unwrap().json().unwrap();
    let callbacks = callbacks.as_array().unwrap();
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    assert_eq!(callbacks[0]["headers"]["webhook-id"], id.to_string());
    let body: Value = serde_json::from_str(callbacks[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["id"], id, "the redirected POST kept its body");
}

#[test]
fn callback_302_counts_as_failure() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);
    let url = format!("{}/_mock/redirect?status=302&to=/_mock/callbacks", mock.url);

    let id = accepted(&gateway, "echo", r#"{"n": 1}"#, Some(&url));
    wait_until("two callback attempts", WAIT, || show(&gateway, id).matches("  callback #").count() >= 2);
    let output = show(&gateway, id);
    assert!(output.contains("answered HTTP 302"), "{output}");
    assert!(output.contains("only 307 and 308 keep the POST"), "{output}");
    let callbacks: Value = reqwest::blocking::get(format!("{}/_mock/callbacks", mock.url)).unwrap().json().unwrap();
    assert_eq!(callbacks, Value::Array(Vec::new()), "the redirect target got a request");
}

#[test]
fn callback_redirect_off_allow_list_fails() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);
    // localhost is not on the test client's allow-list (127.0.0.1 is).
    let target = mock.url.replace("127.0.0.1", "localhost");
    let url = format!("{}/_mock/redirect?status=308&to={target}/_mock/callbacks", mock.url);

    let id = accepted(&gateway, "echo", r#"{"n": 1}"#, Some(&url));
    wait_until("a callback attempt", WAIT, || show(&gateway, id).contains("  callback #"));
    let output = show(&gateway, id);
    assert!(output.contains("is not on the client's allow-list"), "{output}");
    let callbacks: Value = reqwest::blocking::get(format!("{}/_mock/callbacks", mock.url)).unwrap().json().unwrap();
    assert_eq!(callbacks, Value::Array(Vec::new()));
}

fn rotate(gateway: &Gateway, keep_hours: &str) -> String {
    let output = common::uig(&["client", "rotate-secret", "test", "--config", gateway.config_path.to_str().unwrap(), "--keep-previous-hours", keep_hours, "--json"]);
    let rotated: Value = serde_json::from_str(&output).unwrap();
    rotated["secret"].as_str().unwrap().to_string()
}

fn list_with(gateway: &Gateway, secret: &str) -> u16 {
    let signed = common::sign_with(&gateway.token, secret, "GET", "/sync/message/list-new", &[("per_page", "10")]);
    gateway.send_raw("GET", "/sync/message/list-new", &signed, &[]).0
}

#[test]
fn rotated_secret_keeps_old_one_valid() {
    let mock = Mock::start();
    let mut gateway = Gateway::start(&mock);
    let old = gateway.secret.clone();
    gateway.kill();
    let new = rotate(&gateway, "24");
    gateway.spawn();

    assert_eq!(list_with(&gateway, &old), 200);
    assert_eq!(list_with(&gateway, &new), 200);
    assert_eq!(list_with(&gateway, "sec-never-issued-0000"), 401);

    // During the overlap a callback carries one signature per active secret.
    gateway.secret = new.clone();
    let url = format!("{}/_mock/callbacks", mock.url);
    let id = accepted(&gateway, "echo", r#"{"n": 1}"#, Some(&url));
    wait_until("the callback", WAIT, || show(&gateway, id).contains("(delivered)"));
    let callbacks: Value = reqwest::blocking::get(&url).unwrap().json().unwrap();
    let signatures = callbacks[0]["headers"]["webhook-signature"].as_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
}

#[test]
fn expired_previous_secret_is_rejected() {
    let mock = Mock::start();
    let mut gateway = Gateway::start(&mock);
    let old = gateway.secret.clone();
    gateway.kill();
    let new = rotate(&gateway, "0");
    gateway.spawn();

    assert_eq!(list_with(&gateway, &old), 401);
    assert_eq!(list_with(&gateway, &new), 200);
}

fn stored_callbacks(mock: &Mock) -> usize {
    let callbacks: Value = reqwest::blocking::get(format!("{}/_mock/callbacks", mock.url)).unwrap().json().unwrap();
    callbacks.as_array().unwrap().len()
}

/// Sends a testkit `post` to the mock's sink, which stores it and responds only after 2 s, while
/// the connector's HTTP timeout is 500 ms.
fn post_that_times_out(idempotent: bool) -> (Mock, Gateway, Value) {
    let mock = Mock::start();
    let gateway = Gateway::start_edited(&mock, GatewayOptions::default(), testkit_settings("http_timeout_ms = 500"));
    let payload = serde_json::json!({"url": format!("{}/_mock/callbacks?delay_ms=2000", mock.url), "idempotent": idempotent}).to_string();
    let id = accepted(&gateway, "post", &payload, None);
    let failed = gateway.wait_status(id, &["failed"], WAIT);
    (mock, gateway, failed)
}

#[test]
fn uncertain_post_is_not_repeated() {
    let (mock, _gateway, failed) = post_that_times_out(false);
    assert_eq!(failed["error"]["code"], "outcome_unknown", "{failed}");
    assert_eq!(failed["error"]["kind"], "permanent");
    assert_eq!(failed["error"]["attempt"], 1);
    assert!(failed["error"]["message"].as_str().unwrap().contains("uig message retry"), "{failed}");
    // A retry, had one been scheduled, would come within the 1 s backoff cap.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(stored_callbacks(&mock), 1);
}

#[test]
fn idempotent_post_timeout_is_retried() {
    let (mock, _gateway, failed) = post_that_times_out(true);
    assert_eq!(failed["error"]["kind"], "transient", "{failed}");
    assert_eq!(failed["error"]["attempt"], 3);
    assert_eq!(stored_callbacks(&mock), 3);
}

/// Serves `GET` on a raw socket: responds to each request with keep-alive, then closes the connection
/// 100 ms later without saying so, as servers with a short idle timeout do.
fn closing_keep_alive_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let body = r#"{"ok":true}"#;
                let response = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                let _ = stream.write_all(response.as_bytes());
                std::thread::sleep(Duration::from_millis(100));
            });
        }
    });
    (url, connections)
}

#[test]
fn closed_keep_alive_connection_is_not_a_failure() {
    let mock = Mock::start();
    let (server, connections) = closing_keep_alive_server();
    let mock_url = mock.url.clone();
    let allowed = server.clone();
    let gateway = Gateway::start_edited(&mock, GatewayOptions::default(), move |text| {
        let testkit_urls = format!("allowed_urls = [\"{mock_url}\"]\ndeadline_ms = 2000");
        text.replace(&testkit_urls, &format!("allowed_urls = [\"{mock_url}\", \"{allowed}\"]\ndeadline_ms = 2000"))
    });
    let payload = serde_json::json!({"url": format!("{server}/first")}).to_string();
    for round in 0..3 {
        let (status, body) = gateway.call("POST", "/sync/message/send", &[("recipient", "testkit"), ("entity", "fetch"), ("message", &payload)]);
        assert_eq!(status, 200, "round {round}: {body}");
        assert_eq!(body["status"], "delivered", "round {round}: {body}");
        // Long enough for the server to have closed the pooled connection.
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 3, "each send opened a fresh connection");
}

/// A TLS server on loopback with a certificate from a private CA: `openssl s_server -www`.
struct TlsServer {
    child: std::process::Child,
    url: String,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let output = std::process::Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl runs");
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=UIG Test Root CA"]);
        run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
        std::fs::write(dir.path().join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        run(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext"]);

        let port = common::free_port();
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-cert", "server.pem", "-key", "server.key", "-www", "-quiet"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsServer { child, url: format!("https://127.0.0.1:{port}"), ca: dir.path().join("ca.pem"), _dir: dir }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a gateway whose testkit may reach the TLS server, trusting `ca` if given.
fn gateway_for_tls(mock: &Mock, server: &TlsServer, ca: Option<&std::path::Path>) -> Gateway {
    let mock_url = mock.url.clone();
    let allowed = server.url.clone();
    let ca_line = ca.map(|path| format!("ca_certificates = [\"{}\"]\n", path.display())).unwrap_or_default();
    Gateway::start_edited(mock, GatewayOptions::default(), move |text| {
        let testkit_urls = format!("allowed_urls = [\"{mock_url}\"]\ndeadline_ms = 2000");
        text.replace(&testkit_urls, &format!("allowed_urls = [\"{mock_url}\", \"{allowed}\"]\n{ca_line}deadline_ms = 2000"))
    })
}

fn fetch_over_tls(gateway: &Gateway, server: &TlsServer) -> Value {
    let payload = serde_json::json!({"url": format!("{}/", server.url)}).to_string();
    let (status, body) = gateway.call("POST", "/sync/message/send", &[("recipient", "testkit"), ("entity", "fetch"), ("message", &payload)]);
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn connector_ca_certificate_is_trusted() {
    let mock = Mock::start();
    let server = TlsServer::start();

    let untrusted = gateway_for_tls(&mock, &server, None);
    let body = fetch_over_tls(&untrusted, &server);
    assert_eq!(body["status"], "failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    drop(untrusted);

    let trusted = gateway_for_tls(&mock, &server, Some(&server.ca));
    let body = fetch_over_tls(&trusted, &server);
    assert_eq!(body["status"], "delivered", "{body}");
    assert_eq!(body["data"]["status"], 200, "{body}");
}

#[test]
fn unreadable_ca_file_names_it() {
    let mock = Mock::start();
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("not-a-ca.pem");
    std::fs::write(&bogus, "hello").unwrap();
    let mut text = common::config_text(dir.path(), common::free_port(), &mock.url, &GatewayOptions::default());
    text = text.replace("[connectors.avinfo]\n", &format!("[connectors.avinfo]\nca_certificates = [\"{}\"]\n", bogus.display()));
    let path = dir.path().join("uig.toml");
    std::fs::write(&path, text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_uig")).args(["serve", "--config", path.to_str().unwrap()]).env("UIG_MASTER_KEY", common::MASTER_KEY).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("required connector \"avinfo\" cannot start"), "{stderr}");
    assert!(stderr.contains("not-a-ca.pem"), "{stderr}");
}

#[test]
fn long_target_and_headers_are_rejected() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);
    let client = reqwest::blocking::Client::new();

    let long_query = format!("{}/sync/message/list-new?per_page=10&pad={}", gateway.url, "a".repeat(9000));
    let response = client.get(long_query).header("accept-language", "en").send().unwrap();
    assert_eq!(response.status().as_u16(), 414);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "uri_too_long");
    assert!(body["error"]["message"].as_str().unwrap().contains("POST body"), "{body}");

    let mut request = client.get(format!("{}/health/live", gateway.url));
    for index in 0..20 {
        request = request.header(format!("x-padding-{index}"), "b".repeat(1000));
    }
    let response = request.send().unwrap();
    assert_eq!(response.status().as_u16(), 431);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large");
}

#[test]
fn sigterm_finishes_in_flight_delivery() {
    let mock = Mock::start();
    let mut gateway = Gateway::start(&mock);
    let id = accepted(&gateway, "sleep", r#"{"ms": 1500}"#, None);
    wait_until("the delivery to start", WAIT, || show(&gateway, id).contains("status processing"));

    let started = Instant::now();
    let status = gateway.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() >= Duration::from_millis(500), "the gateway left before the delivery finished");
    let output = show(&gateway, id);
    assert!(output.contains("status delivered  attempts 1"), "{output}");
    assert!(gateway.log().contains("delivery worker stopped"), "{}", gateway.log());
}

#[test]
fn garbage_plugin_reply_fails_attempt() {
    let mock = Mock::start();
    let gateway = Gateway::start(&mock);
    let id = accepted(&gateway, "garbage", "{}", None);

    let failed = gateway.wait_status(id, &["failed"], WAIT);
    assert_eq!(failed["error"]["code"], "invalid_plugin_reply", "{failed}");
    assert_eq!(failed["error"]["kind"], "permanent");
    assert_eq!(failed["data"], Value::Null, "the broken reply is not stored as data");

    // The gateway keeps serving other messages.
    let (status, body) = gateway.call("POST", "/sync/message/send", &[("recipient", "testkit"), ("entity", "echo"), ("message", r#"{"n": 2}"#)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "delivered");
}
