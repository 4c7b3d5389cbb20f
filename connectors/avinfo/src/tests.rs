//! Tests of the connector against a fake host that records requests and serves canned responses.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use uig_connector_api::reexports::{RArc, ROption, RResult, RStr, RString, RVec, TD_Opaque, Tuple2};
use uig_connector_api::sdk::create_connector;
use uig_connector_api::{
    ErrorKind, Host, HostBox, Host_TO, HttpError, HttpErrorKind, HttpRequest, HttpResponse, LogLevel, RemoteState,
    SendRequest,
};

use super::*;

const API_KEY: &str = "secret-key-7f3a9c";

const SUCCESS_BODY: &str = r#"{
  "success": 1,
  "balance": 997,
  "data": {
    "vin": "XTA21099043765432",
    "plate": "А123ВС77",
    "brand": {"code": "VAZ", "name": "LADA (ВАЗ)"},
    "model": "2109",
    "year": 2004,
    "category": "B",
    "power": {"hp": 70, "kw": 51.5},
    "engine_volume": 1499,
    "color": "Белый",
    "osago": [
      {"insurer": "АО «СОГАЗ»", "policy": "ХХХ 0123456789", "date_from": "2025-03-01",
       "date_to": "2026-02-28", "status": "active"}
    ]
  }
}"#;

/// State shared by all clones of a [`FakeHost`].
#[derive(Default)]
struct FakeState {
    responses: VecDeque<Result<HttpResponse, HttpError>>,
    requests: Vec<HttpRequest>,
    cache: HashMap<String, (String, u64)>,
    mappings: HashMap<(String, String), String>,
    logs: Vec<(LogLevel, String)>,
}

/// Host that records requests and log lines, serves queued responses and keeps a cache in memory.
#[derive(Clone, Default)]
struct FakeHost {
    state: Arc<Mutex<FakeState>>,
}

impl FakeHost {
    fn queue(&self, response: Result<HttpResponse, HttpError>) {
        self.state.lock().unwrap().responses.push_back(response);
    }

    fn map(&self, directory: &str, external_code: &str, internal_code: &str) {
        let key = (directory.to_string(), external_code.to_string());
        self.state.lock().unwrap().mappings.insert(key, internal_code.to_string());
    }

    fn requests(&self) -> Vec<HttpRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    fn cache(&self) -> HashMap<String, (String, u64)> {
        self.state.lock().unwrap().cache.clone()
    }

    fn warnings(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.logs.iter().filter(|(level, _)| *level == LogLevel::WARN).map(|(_, line)| line.clone()).collect()
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

    fn cache_get(&self, key: RStr<'_>) -> ROption<RString> {
        let state = self.state.lock().unwrap();
        state.cache.get(key.as_str()).map(|(value, _)| RString::from(value.as_str())).into()
    }

    fn cache_put(&self, key: RStr<'_>, value: RString, ttl_seconds: u64) {
        let mut state = self.state.lock().unwrap();
        state.cache.insert(key.to_string(), (value.to_string(), ttl_seconds));
    }

    fn map_to_internal(&self, directory: RStr<'_>, external_code: RStr<'_>) -> ROption<RString> {
        let state = self.state.lock().unwrap();
        let key = (directory.to_string(), external_code.to_string());
        state.mappings.get(&key).map(|code| RString::from(code.as_str())).into()
    }

    fn map_to_external(&self, _directory: RStr<'_>, _internal_code: RStr<'_>) -> ROption<RString> {
        ROption::RNone
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        self.state.lock().unwrap().logs.push((level, message.to_string()));
    }
}

fn settings_for_test() -> Settings {
    Settings {
        base_url: "http://127.0.0.1:9090".to_string(),
        api_key: API_KEY.to_string(),
        cache_ttl_seconds: 86_400,
        timeout_ms: 2_500,
    }
}

fn connector(host: &FakeHost, settings: Settings) -> Avinfo {
    Avinfo::create(settings, HostContext::new(host.host_box())).unwrap()
}

fn vehicle_request(payload: &str) -> SendRequest {
    SendRequest { message_id: 42, entity: "vehicle".into(), payload: payload.into(), attempt: 1 }
}

fn json_response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let mut all_headers = vec![Tuple2(RString::from("content-type"), RString::from("application/json"))];
    all_headers.extend(headers.iter().map(|(name, value)| Tuple2(RString::from(*name), RString::from(*value))));
    HttpResponse { status, headers: RVec::from(all_headers), body: RVec::from(body.as_bytes().to_vec()) }
}

fn error_body(code: &str, message: &str) -> String {
    json!({"success": 0, "error": {"code": code, "message": message}}).to_string()
}

fn reply_json(reply: &Reply) -> Value {
    serde_json::from_str(&reply.data).unwrap()
}

#[test]
fn second_lookup_served_from_cache() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, &[], SUCCESS_BODY)));
    let avinfo = connector(&host, settings_for_test());

    let first = avinfo.send(&vehicle_request(r#"{"vin": "XTA21099043765432"}"#)).unwrap();
    let second = avinfo.send(&vehicle_request(r#"{"vin": " xta21099043765432 ", "fio": "Иванов"}"#)).unwrap();

    assert_eq!(host.requests().len(), 1);
    assert_eq!(first.state, RemoteState::DONE);
    assert_eq!(reply_json(&first), reply_json(&second));
    let cache = host.cache();
    let (cached, ttl_seconds) = &cache["vin:XTA21099043765432"];
    assert_eq!(*ttl_seconds, 86_400);
    let upstream: Value = serde_json::from_str(SUCCESS_BODY).unwrap();
    assert_eq!(serde_json::from_str::<Value>(cached).unwrap(), upstream["data"]);
}

#[test]
fn request_carries_key_timeout_and_query() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, &[], SUCCESS_BODY)));
    let avinfo = connector(&host, Settings { base_url: "http://127.0.0.1:9090/".to_string(), ..settings_for_test() });

    avinfo.send(&vehicle_request(r#"{"vin": "XTA21099043765432"}"#)).unwrap();

    let request = &host.requests()[0];
    assert_eq!(request.method.as_str(), "GET");
    assert_eq!(
        request.url.as_str(),
        "http://127.0.0.1:9090/api/v1/vehicle?key=secret-key-7f3a9c&vin=XTA21099043765432"
    );
    assert_eq!(request.timeout_ms, 2_500);
    assert!(request.idempotent);
}

#[test]
fn plate_percent_encoded_in_url() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, &[], SUCCESS_BODY)));
    let avinfo = connector(&host, settings_for_test());

    avinfo.send(&vehicle_request(r#"{"plate": "a123bc 77"}"#)).unwrap();

    let url = host.requests()[0].url.to_string();
    let expected_plate = "%D0%90123%D0%92%D0%A177";
    assert!(url.ends_with(&format!("&plate={expected_plate}")), "{url}");
    assert!(host.cache().contains_key("plate:А123ВС77"));
}

#[test]
fn error_not_cached() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(503, &[("retry-after", "3")], &error_body("unavailable", "Сервис недоступен"))));
    host.queue(Ok(json_response(404, &[], &error_body("not_found", "Автомобиль не найден"))));
    let avinfo = connector(&host, settings_for_test());
    let request = vehicle_request(r#"{"vin": "XTA21099043765432"}"#);

    let first = avinfo.send(&request).unwrap_err();
    let second = avinfo.send(&request).unwrap_err();

    assert_eq!(host.requests().len(), 2);
    assert!(host.cache().is_empty());
    assert_eq!(first.kind, ErrorKind::TRANSIENT);
    assert_eq!(first.retry_after_ms.into_option(), Some(3_000));
    assert_eq!(second.kind, ErrorKind::PERMANENT);
    assert_eq!(second.code.as_str(), "not_found");
}

#[test]
fn api_key_absent_from_errors() {
    let host = FakeHost::default();
    let echoing_url = format!("http://127.0.0.1:9090/api/v1/vehicle?key={API_KEY}&vin=XTA21099043765432");
    host.queue(Ok(json_response(401, &[], &error_body("invalid_key", &format!("ключ {API_KEY} не найден")))));
    host.queue(Err(HttpError {
        kind: HttpErrorKind::CONNECT,
        message: format!("error sending request for url ({echoing_url}): connection refused").into(),
    }));
    host.queue(Err(HttpError {
        kind: HttpErrorKind::DENIED,
        message: format!("{echoing_url} is outside base URLs").into(),
    }));
    let avinfo = connector(&host, settings_for_test());
    let request = vehicle_request(r#"{"vin": "XTA21099043765432"}"#);

    let errors: Vec<ConnectorError> = (0..3).map(|_| avinfo.send(&request).unwrap_err()).collect();

    assert!(host.requests()[0].url.contains(API_KEY));
    assert_eq!(errors[0].kind, ErrorKind::AUTH);
    assert_eq!(errors[0].code.as_str(), "invalid_key");
    assert_eq!(errors[1].kind, ErrorKind::TRANSIENT);
    assert!(errors[1].message.contains("connection refused"), "{}", errors[1].message);
    assert_eq!(errors[2].kind, ErrorKind::CONFIG);
    for error in &errors {
        assert!(!error.message.contains(API_KEY), "{}", error.message);
        assert!(!error.to_string().contains(API_KEY), "{error}");
    }
    assert!(!host.all_logs().contains(API_KEY));
}

#[test]
fn mapping_applied_to_reply() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, &[], SUCCESS_BODY)));
    host.map("brand", "VAZ", "lada");
    host.map("vehicle_category", "B", "passenger_car");
    let avinfo = connector(&host, settings_for_test());

    let reply = avinfo.send(&vehicle_request(r#"{"vin": "XTA21099043765432"}"#)).unwrap();

    let upstream: Value = serde_json::from_str(SUCCESS_BODY).unwrap();
    assert_eq!(
        reply_json(&reply),
        json!({
            "vin": "XTA21099043765432",
            "plate": "А123ВС77",
            "brand": {"code": "lada", "name": "LADA (ВАЗ)", "avinfo_code": "VAZ"},
            "model": "2109",
            "year": 2004,
            "category": {"code": "passenger_car", "avinfo_code": "B"},
            "power_hp": 70,
            "power_kw": 51.5,
            "engine_volume": 1499,
            "color": "Белый",
            "osago": upstream["data"]["osago"],
            "source": "avinfo",
        })
    );
    assert!(host.warnings().is_empty(), "{:?}", host.warnings());
}

#[test]
fn unmapped_code_warns_once_and_maps_later() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, &[], SUCCESS_BODY)));
    host.map("vehicle_category", "B", "passenger_car");
    let avinfo = connector(&host, settings_for_test());
    let request = vehicle_request(r#"{"vin": "XTA21099043765432"}"#);

    let first = avinfo.send(&request).unwrap();
    let second = avinfo.send(&request).unwrap();
    host.map("brand", "VAZ", "lada");
    let third = avinfo.send(&request).unwrap();

    assert_eq!(host.requests().len(), 1);
    assert_eq!(reply_json(&first)["brand"]["code"], Value::Null);
    assert_eq!(reply_json(&second)["brand"]["code"], Value::Null);
    assert_eq!(reply_json(&third)["brand"]["code"], "lada");
    let warnings = host.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("directory \"brand\""), "{}", warnings[0]);
    assert!(warnings[0].contains("\"VAZ\""), "{}", warnings[0]);
}

#[test]
fn zero_ttl_disables_cache() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, &[], SUCCESS_BODY)));
    host.queue(Ok(json_response(200, &[], SUCCESS_BODY)));
    let avinfo = connector(&host, Settings { cache_ttl_seconds: 0, ..settings_for_test() });
    let request = vehicle_request(r#"{"vin": "XTA21099043765432"}"#);

    avinfo.send(&request).unwrap();
    avinfo.send(&request).unwrap();

    assert_eq!(host.requests().len(), 2);
    assert!(host.cache().is_empty());
}

#[test]
fn unreadable_cache_entry_refetched() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, &[], SUCCESS_BODY)));
    host.state.lock().unwrap().cache.insert("vin:XTA21099043765432".to_string(), ("{not json".to_string(), 60));
    let avinfo = connector(&host, settings_for_test());

    let reply = avinfo.send(&vehicle_request(r#"{"vin": "XTA21099043765432"}"#)).unwrap();

    assert_eq!(host.requests().len(), 1);
    assert_eq!(reply_json(&reply)["model"], "2109");
    assert!(host.warnings().iter().any(|line| line.contains("unreadable cache entry")), "{:?}", host.warnings());
}

#[test]
fn invalid_payload_sends_no_request() {
    let host = FakeHost::default();
    let avinfo = connector(&host, settings_for_test());

    let error = avinfo.send(&vehicle_request(r#"{"vin": "XTA2109904376543"}"#)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "invalid_payload");
    assert!(host.requests().is_empty());
}

#[test]
fn unknown_entity_rejected() {
    let host = FakeHost::default();
    let avinfo = connector(&host, settings_for_test());
    let request = SendRequest { entity: "driver".into(), ..vehicle_request(r#"{"vin": "XTA21099043765432"}"#) };

    let error = avinfo.send(&request).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "invalid_payload");
    assert!(error.message.contains("unknown entity \"driver\""), "{}", error.message);
    assert!(host.requests().is_empty());
}

#[test]
fn create_through_sdk_and_send() {
    let host = FakeHost::default();
    host.queue(Ok(json_response(200, &[], SUCCESS_BODY)));
    let settings = json!({"base_url": "http://127.0.0.1:9090", "api_key": API_KEY}).to_string();

    let connector = create_connector::<Avinfo>(settings.as_str().into(), host.host_box()).unwrap();
    let reply = connector.send(vehicle_request(r#"{"vin": "XTA21099043765432"}"#)).unwrap();

    assert_eq!(reply_json(&reply)["source"], "avinfo");
    assert_eq!(host.requests()[0].timeout_ms, 10_000);
    assert!(!host.all_logs().contains(API_KEY), "{}", host.all_logs());
}

#[test]
fn create_rejects_invalid_settings() {
    let host = FakeHost::default();
    let settings = json!({"base_url": "127.0.0.1:9090", "api_key": API_KEY}).to_string();
    let result = create_connector::<Avinfo>(settings.as_str().into(), host.host_box()).into_result();

    let Err(error) = result else { panic!("create accepted a base_url without a scheme") };

    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.contains("settings.base_url"), "{}", error.message);
}

#[test]
fn manifest_describes_plugin() {
    let manifest = Avinfo::INFO.to_manifest();

    assert_eq!(manifest.name.as_str(), "avinfo");
    assert_eq!(manifest.version.as_str(), env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest.capabilities.names(), ["send", "send_async"]);
    assert_eq!(manifest.entities.iter().map(|entity| entity.as_str()).collect::<Vec<_>>(), ["vehicle"]);
    serde_json::from_str::<Value>(&manifest.config_schema).unwrap();
}

/// Runs `send_async` to completion. The fake host returns at once, so one poll finishes it.
fn send_async_now(avinfo: &Arc<Avinfo>, request: SendRequest) -> Result<Reply, ConnectorError> {
    let mut future = std::pin::pin!(avinfo.clone().send_async(request));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => panic!("send_async returned Pending although the fake host returns at once"),
    }
}

/// The engine calls `send_async`. It gives the same replies, errors, requests, cache entries and
/// log lines as `send` for a miss, a hit, an upstream error, a transport error that names the key,
/// an invalid payload and an unknown entity.
#[test]
fn send_async_matches_send() {
    let queue = |host: &FakeHost| {
        host.queue(Ok(json_response(200, &[], SUCCESS_BODY)));
        host.queue(Ok(json_response(404, &[], &error_body("not_found", "Автомобиль не найден"))));
        host.queue(Err(HttpError {
            kind: HttpErrorKind::TIMEOUT,
            message: format!("request to http://127.0.0.1:9090/api/v1/vehicle?key={API_KEY} timed out").into(),
        }));
    };
    let requests = [
        vehicle_request(r#"{"vin": "XTA21099043765432"}"#),
        vehicle_request(r#"{"vin": "XTA21099043765432"}"#),
        vehicle_request(r#"{"vin": "WVWZZZ1JZXW000001"}"#),
        vehicle_request(r#"{"plate": "А123ВС77"}"#),
        vehicle_request(r#"{"vin": 12}"#),
        SendRequest { message_id: 43, entity: "policy".into(), payload: "{}".into(), attempt: 1 },
    ];
    let outcome = |result: Result<Reply, ConnectorError>| match result {
        Ok(reply) => format!("ok {:?} {}", reply.state, reply.data),
        Err(error) => format!("error {} {} {}", error.kind.name(), error.code, error.message),
    };

    let blocking_host = FakeHost::default();
    queue(&blocking_host);
    let blocking = connector(&blocking_host, settings_for_test());
    let expected: Vec<String> = requests.iter().map(|request| outcome(blocking.send(request))).collect();

    let async_host = FakeHost::default();
    queue(&async_host);
    let asynchronous = Arc::new(connector(&async_host, settings_for_test()));
    let actual: Vec<String> = requests.iter().map(|request| outcome(send_async_now(&asynchronous, request.clone()))).collect();

    assert_eq!(actual, expected);
    assert!(expected[0].starts_with("ok"), "{}", expected[0]);
    assert_eq!(expected[0], expected[1], "the second lookup is a cache hit with the same reply");
    assert!(expected[3].contains("timeout") || expected[3].contains("transient"), "{}", expected[3]);
    assert!(!expected[3].contains(API_KEY), "{}", expected[3]);
    let urls = |host: &FakeHost| host.requests().iter().map(|request| request.url.to_string()).collect::<Vec<_>>();
    assert_eq!(urls(&async_host), urls(&blocking_host));
    assert_eq!(urls(&async_host).len(), 3, "a miss, the unknown VIN and the plate: the hit and the invalid requests send nothing");
    assert_eq!(async_host.cache(), blocking_host.cache());
    assert_eq!(async_host.all_logs(), blocking_host.all_logs());
}
