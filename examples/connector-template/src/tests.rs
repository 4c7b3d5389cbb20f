//! Unit tests against a fake host that records requests and serves canned responses, so the
//! connector is tested without the engine or a network.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use uig_connector_api::reexports::{RArc, ROption, RResult, RStr, RString, RVec, TD_Opaque, Tuple2};
use uig_connector_api::sdk::{create_connector, parse_settings};
use uig_connector_api::{
    ErrorKind, Host, HostBox, Host_TO, HttpError, HttpErrorKind, HttpRequest, HttpResponse, LogLevel, RemoteState,
};

use super::*;

const API_KEY: &str = "relay-token-3f9a";

/// Host that records requests and log lines and serves queued responses.
#[derive(Clone, Default)]
struct FakeHost {
    responses: Arc<Mutex<VecDeque<Result<HttpResponse, HttpError>>>>,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl FakeHost {
    fn queue(&self, response: Result<HttpResponse, HttpError>) {
        self.responses.lock().unwrap().push_back(response);
    }

    fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }

    fn host_box(&self) -> HostBox {
        Host_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }
}

impl Host for FakeHost {
    fn http(&self, request: HttpRequest) -> RResult<HttpResponse, HttpError> {
        self.requests.lock().unwrap().push(request);
        let response = self.responses.lock().unwrap().pop_front();
        response.expect("the test queued no response for this request").into()
    }

    fn cache_get(&self, _key: RStr<'_>) -> ROption<RString> {
        ROption::RNone
    }

    fn cache_put(&self, _key: RStr<'_>, _value: RString, _ttl_seconds: u64) {}

    fn map_to_internal(&self, _directory: RStr<'_>, _external_code: RStr<'_>) -> ROption<RString> {
        ROption::RNone
    }

    fn map_to_external(&self, _directory: RStr<'_>, _internal_code: RStr<'_>) -> ROption<RString> {
        ROption::RNone
    }

    fn log(&self, _level: LogLevel, message: RStr<'_>) {
        self.logs.lock().unwrap().push(message.to_string());
    }
}

fn relay(host: &FakeHost, settings: Value) -> Relay {
    let settings: Settings = parse_settings(&settings.to_string()).unwrap();
    Relay::create(settings, HostContext::new(host.host_box())).unwrap()
}

fn record(payload: &str) -> SendRequest {
    SendRequest { message_id: 7, entity: RECORD_ENTITY.into(), payload: payload.into(), attempt: 1 }
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let headers = headers.iter().map(|(name, value)| Tuple2(RString::from(*name), RString::from(*value)));
    HttpResponse { status, headers: headers.collect(), body: RVec::from(body.as_bytes().to_vec()) }
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request.headers.iter().find(|Tuple2(key, _)| key.eq_ignore_ascii_case(name)).map(|Tuple2(_, value)| value.as_str())
}

#[test]
fn request_carries_message_and_key() {
    let host = FakeHost::default();
    host.queue(Ok(response(200, &[], r#"{"received": true}"#)));
    let connector = relay(&host, json!({"base_url": "http://127.0.0.1:9090/", "path": "/records", "api_key": API_KEY}));

    let reply = connector.send(&record(r#"{"sum": 1.10}"#)).unwrap();

    assert_eq!(reply.state, RemoteState::DONE);
    assert_eq!(reply.data.as_str(), r#"{"received": true}"#);
    let request = &host.requests()[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.as_str(), "http://127.0.0.1:9090/records");
    assert_eq!(std::str::from_utf8(&request.body).unwrap(), r#"{"message_id":7,"entity":"record","payload":{"sum": 1.10}}"#);
    assert_eq!(header(request, "idempotency-key"), Some("uig-7"));
    assert_eq!(header(request, "authorization"), Some(format!("Bearer {API_KEY}").as_str()));
    assert_eq!(request.timeout_ms, 10_000);
    assert!(request.idempotent);
}

#[test]
fn no_api_key_sends_no_authorization() {
    let host = FakeHost::default();
    host.queue(Ok(response(204, &[], "")));
    let connector = relay(&host, json!({"base_url": "http://127.0.0.1:9090"}));

    let reply = connector.send(&record("{}")).unwrap();

    assert_eq!(reply.data.as_str(), "null");
    assert_eq!(header(&host.requests()[0], "authorization"), None);
    assert_eq!(host.requests()[0].url.as_str(), "http://127.0.0.1:9090/");
}

#[test]
fn statuses_map_to_error_kinds() {
    let cases = [
        (200, "<html>proxy</html>", ErrorKind::TRANSIENT),
        (400, "{}", ErrorKind::PERMANENT),
        (401, "", ErrorKind::AUTH),
        (403, "", ErrorKind::AUTH),
        (404, "", ErrorKind::PERMANENT),
        (408, "", ErrorKind::TRANSIENT),
        (422, "{}", ErrorKind::PERMANENT),
        (429, "", ErrorKind::TRANSIENT),
        (503, "", ErrorKind::TRANSIENT),
    ];
    for (status, body, expected) in cases {
        let error = reply(&response(status, &[], body)).unwrap_err();

        assert_eq!(error.kind, expected, "HTTP {status}");
        assert_eq!(error.code.as_str(), format!("http_{status}"));
    }
}

#[test]
fn retry_after_becomes_hint() {
    let error = reply(&response(429, &[("retry-after", "30")], "")).unwrap_err();

    assert_eq!(error.retry_after_ms.into_option(), Some(30_000));
}

#[test]
fn transport_failures_keep_kind() {
    let host = FakeHost::default();
    host.queue(Err(HttpError { kind: HttpErrorKind::TIMEOUT, message: "timed out".into() }));
    host.queue(Err(HttpError { kind: HttpErrorKind::DENIED, message: "add it to allowed_urls".into() }));
    let connector = relay(&host, json!({"base_url": "http://127.0.0.1:9090"}));

    let timeout = connector.send(&record("{}")).unwrap_err();
    let denied = connector.send(&record("{}")).unwrap_err();

    assert_eq!(timeout.kind, ErrorKind::TRANSIENT);
    assert_eq!(denied.kind, ErrorKind::CONFIG);
    assert!(denied.message.contains("allowed_urls"), "{}", denied.message);
}

#[test]
fn api_key_absent_from_errors_and_logs() {
    let host = FakeHost::default();
    host.queue(Ok(response(401, &[], &format!("token {API_KEY} revoked"))));
    let connector = relay(&host, json!({"base_url": "http://127.0.0.1:9090", "api_key": API_KEY}));

    let error = connector.send(&record("{}")).unwrap_err();

    assert_eq!(error.kind, ErrorKind::AUTH);
    assert!(!error.to_string().contains(API_KEY), "{error}");
    let logs = host.logs.lock().unwrap().join("\n");
    assert!(logs.contains("authentication=bearer"), "{logs}");
    assert!(!logs.contains(API_KEY), "{logs}");
    assert!(!format!("{:?}", connector.settings).contains(API_KEY));
}

#[test]
fn invalid_settings_rejected_with_path() {
    let host = FakeHost::default();
    let cases = [
        (json!({"base_url": "http://127.0.0.1:9090", "timeout": 5}), "timeout"),
        (json!({"path": "/"}), "base_url"),
        (json!({"base_url": "127.0.0.1:9090"}), "settings.base_url"),
        (json!({"base_url": "http://127.0.0.1:9090?x=1"}), "settings.base_url"),
        (json!({"base_url": "http://127.0.0.1:9090", "path": "records"}), "settings.path"),
        (json!({"base_url": "http://127.0.0.1:9090", "api_key": " "}), "settings.api_key"),
    ];
    for (settings, expected) in cases {
        let result = create_connector::<Relay>(settings.to_string().as_str().into(), host.host_box()).into_result();
        let Err(error) = result else { panic!("create accepted {settings}") };

        assert_eq!(error.kind, ErrorKind::CONFIG, "{settings}");
        assert!(error.message.contains(expected), "{settings}: {}", error.message);
    }
}

#[test]
fn schema_lists_every_field() {
    let schema: Value = serde_json::from_str(settings::CONFIG_SCHEMA).unwrap();

    let mut names: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();

    assert_eq!(names, ["api_key", "base_url", "path", "timeout_ms"]);
}

#[test]
fn manifest_describes_plugin() {
    let manifest = Relay::INFO.to_manifest();

    assert_eq!(manifest.name.as_str(), "relay");
    assert_eq!(manifest.capabilities, Capabilities::SEND);
    assert_eq!(manifest.entities.iter().map(|entity| entity.as_str()).collect::<Vec<_>>(), [RECORD_ENTITY]);
}
