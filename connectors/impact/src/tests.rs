//! Tests of the connector against a fake host that records requests and serves canned responses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use uig_connector_api::reexports::{RArc, ROption, RResult, RStr, RString, RVec, TD_Opaque, Tuple2};
use uig_connector_api::sdk::create_connector;
use uig_connector_api::{
    ErrorKind, Host, HostBox, Host_TO, HttpError, HttpErrorKind, HttpRequest, HttpResponse, LogLevel, RemoteState,
};

use super::*;

const PASSWORD: &str = "p4ss-impact-9c1e";

/// Base64 of `gateway:p4ss-impact-9c1e`.
const ENCODED_CREDENTIALS: &str = "Z2F0ZXdheTpwNHNzLWltcGFjdC05YzFl";

/// State shared by all clones of a [`FakeHost`].
#[derive(Default)]
struct FakeState {
    responses: VecDeque<Result<HttpResponse, HttpError>>,
    requests: Vec<HttpRequest>,
    logs: Vec<(LogLevel, String)>,
}

/// Host that records requests and log lines and serves queued responses.
#[derive(Clone, Default)]
struct FakeHost {
    state: Arc<Mutex<FakeState>>,
}

impl FakeHost {
    fn queue(&self, response: Result<HttpResponse, HttpError>) {
        self.state.lock().unwrap().responses.push_back(response);
    }

    fn requests(&self) -> Vec<HttpRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    fn all_logs(&self) -> String {
        let state = self.state.lock().unwrap();
        state.logs.iter().map(|(_, line)| line.as_str()).collect::<Vec<_>>().join("\n")
    }

    fn host_box(&self) -> HostBox {
        Host_TO::from_ptr(RArc::new(self.clone()), TD_Opaque)
    }
}

impl Host for FakeHost {
    fn http(&self, request: HttpRequest) -> RResult<HttpResponse, HttpError> {
        let mut state = self.state.lock().unwrap();
        state.requests.push(request);
        let response = state.responses.pop_front().expect("the test queued no response for this request");
        response.into()
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

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        self.state.lock().unwrap().logs.push((level, message.to_string()));
    }
}

fn settings_json() -> Value {
    json!({"base_url": "http://127.0.0.1:9090/impact", "username": "gateway", "password": PASSWORD, "timeout_ms": 2500})
}

fn connector_with(host: &FakeHost, settings: Value) -> Impact {
    let settings: Settings = uig_connector_api::sdk::parse_settings(&settings.to_string()).unwrap();
    Impact::create(settings, HostContext::new(host.host_box())).unwrap()
}

fn connector(host: &FakeHost) -> Impact {
    connector_with(host, settings_json())
}

fn send_request(entity: &str, payload: &str) -> SendRequest {
    SendRequest { message_id: 42, entity: entity.into(), payload: payload.into(), attempt: 1 }
}

fn status_request(external_id: Option<&str>) -> StatusRequest {
    StatusRequest {
        message_id: 42,
        entity: "claim".into(),
        external_id: external_id.map(RString::from).into(),
        payload: "{}".into(),
    }
}

fn json_response(status: u16, body: &str) -> HttpResponse {
    let headers = vec![Tuple2(RString::from("content-type"), RString::from("application/json"))];
    HttpResponse { status, headers: RVec::from(headers), body: RVec::from(body.as_bytes().to_vec()) }
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|Tuple2(key, _)| key.eq_ignore_ascii_case(name))
        .map(|Tuple2(_, value)| value.as_str())
}

#[test]
fn submit_request_follows_protocol() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(202, r#"{"Status": "QUEUED", "id": "IMP-000001"}"#)));
    let impact = connector(&host);
    let payload = r#"{"policy": "ХХХ 0123456789", "amount": 150000.00}"#;

    impact.send(&send_request("claim", payload)).unwrap();

    let request = &host.requests()[0];
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.as_str(), "http://127.0.0.1:9090/impact/api/v1/messages");
    assert_eq!(header(request, "authorization"), Some(format!("Basic {ENCODED_CREDENTIALS}").as_str()));
    assert_eq!(header(request, "idempotency-key"), Some("uig-42"));
    assert_eq!(header(request, "content-type"), Some("application/json"));
    assert_eq!(header(request, "accept"), Some("application/json"));
    assert!(request.idempotent);
    assert_eq!(request.timeout_ms, 2_500);
    let body = std::str::from_utf8(&request.body).unwrap();
    assert_eq!(body, format!(r#"{{"type":"claim","externalId":"uig-42","payload":{payload}}}"#));
}

#[test]
fn queued_submit_returns_pending() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(202, r#"{"Status": "QUEUED", "id": "IMP-000001"}"#)));
    let impact = connector(&host);

    let reply = impact.send(&send_request("claim", "{}")).unwrap();

    assert_eq!(reply.state, RemoteState::PENDING);
    assert_eq!(reply.external_id.into_option().map(|id| id.to_string()), Some("IMP-000001".to_string()));
}

#[test]
fn done_submit_returns_result() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, r#"{"Status": "DONE", "id": "IMP-1", "result": {"number": "PAY-1"}}"#)));
    let impact = connector(&host);

    let reply = impact.send(&send_request("payment", "{}")).unwrap();

    assert_eq!(reply.state, RemoteState::DONE);
    let data: Value = serde_json::from_str(&reply.data).unwrap();
    assert_eq!(data, json!({"id": "IMP-1", "status": "DONE", "result": {"number": "PAY-1"}}));
}

#[test]
fn retried_submit_reuses_key() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(500, r#"{"error": {"code": "internal", "message": "try again"}}"#)));
    host.queue(Ok(json_response(200, r#"{"Status": "QUEUED", "id": "IMP-1"}"#)));
    let impact = connector(&host);

    let first = impact.send(&send_request("claim", "{}")).unwrap_err();
    let second = impact.send(&SendRequest { attempt: 2, ..send_request("claim", "{}") }).unwrap();

    assert_eq!(first.kind, ErrorKind::TRANSIENT);
    assert_eq!(second.state, RemoteState::PENDING);
    let requests = host.requests();
    assert_eq!(header(&requests[0], "idempotency-key"), Some("uig-42"));
    assert_eq!(header(&requests[1], "idempotency-key"), Some("uig-42"));
    assert_eq!(requests[0].body, requests[1].body);
}

#[test]
fn custom_paths_and_header_used() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(202, r#"{"Status": "QUEUED", "id": "A 1"}"#)));
    host.queue(Ok(json_response(200, r#"{"Status": "PROCESSING", "id": "A 1"}"#)));
    let mut settings = settings_json();
    settings["submit_path"] = json!("/rest/submit?v=2");
    settings["status_path"] = json!("/rest/{id}/state");
    settings["idempotency_header"] = json!("X-Request-Key");
    let impact = connector_with(&host, settings);

    let sent = impact.send(&send_request("policy", "{}")).unwrap();
    let external_id = sent.external_id.into_option().unwrap().to_string();
    impact.refresh_status(&status_request(Some(&external_id))).unwrap();

    let requests = host.requests();
    assert_eq!(requests[0].url.as_str(), "http://127.0.0.1:9090/impact/rest/submit?v=2");
    assert_eq!(header(&requests[0], "x-request-key"), Some("uig-42"));
    assert_eq!(header(&requests[0], "idempotency-key"), None);
    assert_eq!(requests[1].url.as_str(), "http://127.0.0.1:9090/impact/rest/A%201/state");
}

#[test]
fn status_query_follows_protocol() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, r#"{"Status": "PROCESSING", "id": "IMP-7"}"#)));
    let impact = connector(&host);

    let reply = impact.refresh_status(&status_request(Some("IMP-7"))).unwrap();

    assert_eq!(reply.state, RemoteState::PENDING);
    let request = &host.requests()[0];
    assert_eq!(request.method.as_str(), "GET");
    assert_eq!(request.url.as_str(), "http://127.0.0.1:9090/impact/api/v1/messages/IMP-7");
    assert_eq!(header(request, "authorization"), Some(format!("Basic {ENCODED_CREDENTIALS}").as_str()));
    assert!(request.body.is_empty());
    assert!(request.idempotent);
    assert_eq!(request.timeout_ms, 2_500);
}

#[test]
fn status_states_map_to_replies() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, r#"{"Status": "DONE", "id": "IMP-7", "result": {"number": "CLM-7"}}"#)));
    host.queue(Ok(json_response(200, r#"{"Status": "ERROR", "id": "IMP-7", "error": {"code": "rejected", "message": "no"}}"#)));
    let impact = connector(&host);

    let done = impact.refresh_status(&status_request(Some("IMP-7"))).unwrap();
    let failed = impact.refresh_status(&status_request(Some("IMP-7"))).unwrap();

    assert_eq!(done.state, RemoteState::DONE);
    assert_eq!(serde_json::from_str::<Value>(&done.data).unwrap()["result"], json!({"number": "CLM-7"}));
    assert_eq!(failed.state, RemoteState::FAILED);
    assert_eq!(serde_json::from_str::<Value>(&failed.data).unwrap()["error"]["code"], "rejected");
}

#[test]
fn status_without_external_id_rejected() {
    let host = FakeHost::default();
    let impact = connector(&host);

    let error = impact.refresh_status(&status_request(None)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "missing_external_id");
    assert!(host.requests().is_empty());
}

#[test]
fn unknown_status_id_is_permanent() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(404, r#"{"error": {"code": "not_found", "message": "no message IMP-404"}}"#)));
    let impact = connector(&host);

    let error = impact.refresh_status(&status_request(Some("IMP-404"))).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "not_found");
}

#[test]
fn entity_outside_settings_rejected() {
    let host = FakeHost::default();
    let mut settings = settings_json();
    settings["entities"] = json!(["payment"]);
    let impact = connector_with(&host, settings);

    let error = impact.send(&send_request("claim", "{}")).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "unsupported_entity");
    assert!(error.message.contains("sends only payment"), "{}", error.message);
    assert!(host.requests().is_empty());
}

#[test]
fn invalid_payload_sends_nothing() {
    let host = FakeHost::default();
    let impact = connector(&host);

    let error = impact.send(&send_request("claim", "{not json")).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "invalid_payload");
    assert!(host.requests().is_empty());
}

#[test]
fn transport_errors_keep_kind() {
    let host = FakeHost::default();
    let failures = [
        (HttpErrorKind::CONNECT, ErrorKind::TRANSIENT),
        (HttpErrorKind::TIMEOUT, ErrorKind::TRANSIENT),
        (HttpErrorKind::INTERRUPTED, ErrorKind::TRANSIENT),
        (HttpErrorKind::DENIED, ErrorKind::CONFIG),
    ];
    for (http_kind, _) in failures {
        host.queue(Err(HttpError { kind: http_kind, message: "request to http://127.0.0.1:9090/impact failed".into() }));
    }
    let impact = connector(&host);

    for (http_kind, expected) in failures {
        let error = impact.send(&send_request("claim", "{}")).unwrap_err();

        assert_eq!(error.kind, expected, "{http_kind:?}");
        assert!(error.message.starts_with("submit of message 42 to IMPACT failed: "), "{}", error.message);
    }
}

#[test]
fn secrets_absent_from_errors_and_logs() {
    let host = FakeHost::default();
    let echoed = format!("user gateway with password {PASSWORD} (Basic {ENCODED_CREDENTIALS}) is locked");
    host.queue(Ok(json_response(401, &json!({"error": {"code": "locked", "message": echoed}}).to_string())));
    host.queue(Ok(json_response(200, &format!("<html>{PASSWORD}</html>"))));
    host.queue(Err(HttpError { kind: HttpErrorKind::OTHER, message: format!("header Basic {ENCODED_CREDENTIALS}").into() }));
    let impact = connector(&host);

    let errors: Vec<ConnectorError> = (0..3).map(|_| impact.send(&send_request("claim", "{}")).unwrap_err()).collect();

    assert_eq!(errors[0].kind, ErrorKind::AUTH);
    assert_eq!(errors[0].code.as_str(), "locked");
    assert_eq!(errors[1].kind, ErrorKind::TRANSIENT);
    assert_eq!(errors[2].kind, ErrorKind::TRANSIENT);
    for error in &errors {
        assert!(!error.to_string().contains(PASSWORD), "{error}");
        assert!(!error.to_string().contains(ENCODED_CREDENTIALS), "{error}");
        assert!(error.message.contains(REDACTED), "{error}");
    }
    let logs = host.all_logs();
    assert!(logs.contains("username=gateway"), "{logs}");
    assert!(!logs.contains(PASSWORD), "{logs}");
    assert!(!logs.contains(ENCODED_CREDENTIALS), "{logs}");
}

#[test]
fn create_through_sdk_and_send() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(202, r#"{"Status": "QUEUED", "id": "IMP-1"}"#)));
    let settings = json!({"base_url": "http://127.0.0.1:9090/impact", "username": "gateway", "password": PASSWORD});

    let connector = create_connector::<Impact>(settings.to_string().as_str().into(), host.host_box()).unwrap();
    let reply = connector.send(send_request("claim", "{}")).unwrap();

    assert_eq!(reply.state, RemoteState::PENDING);
    assert_eq!(host.requests()[0].timeout_ms, 10_000);
}

#[test]
fn create_rejects_invalid_settings() {
    let host = FakeHost::default();
    let settings = json!({"base_url": "http://127.0.0.1:9090", "username": "gateway", "password": PASSWORD, "entities": ["car"]});

    let result = create_connector::<Impact>(settings.to_string().as_str().into(), host.host_box()).into_result();
    let Err(error) = result else { panic!("create accepted an unknown entity") };

    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.contains("settings.entities[0]"), "{}", error.message);
    assert!(!error.message.contains(PASSWORD), "{}", error.message);
}

#[test]
fn manifest_describes_plugin() {
    let manifest = Impact::INFO.to_manifest();

    assert_eq!(manifest.name.as_str(), "impact");
    assert_eq!(manifest.version.as_str(), env!("CARGO_PKG_VERSION"));
    assert!(manifest.capabilities.contains(Capabilities::SEND));
    assert!(manifest.capabilities.contains(Capabilities::REFRESH_STATUS));
    assert!(!manifest.capabilities.contains(Capabilities::POLL_FEED));
    let entities: Vec<&str> = manifest.entities.iter().map(|entity| entity.as_str()).collect();
    assert_eq!(entities, SUPPORTED_ENTITIES);
    serde_json::from_str::<Value>(&manifest.config_schema).unwrap();
}
