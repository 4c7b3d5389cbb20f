//! Tests of the connector against a fake host that records requests and serves queued responses.

mod auth;
mod feed;
mod send;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use uig_connector_api::reexports::{RArc, ROption, RResult, RStr, RString, RVec, TD_Opaque, Tuple2};
use uig_connector_api::sdk::{HostContext, PluginConnector};
use uig_connector_api::{Host, HostBox, Host_TO, HttpError, HttpRequest, HttpResponse, LogLevel};

use crate::settings::Settings;
use crate::Kontur;

const BASE_URL: &str = "http://127.0.0.1:9090";
const TOKEN_URL: &str = "http://127.0.0.1:9091/connect/token";
const CLIENT_ID: &str = "demo-kontur";
const CLIENT_SECRET: &str = "client-secret-5d1e";
const INSURER_BOX: &str = "6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13";
const MESSAGE_ID: &str = "0b5f3c1e-8e2d-4a57-9c3b-1f6e7d8a9b0c";

/// State shared by all clones of a [`FakeHost`].
#[derive(Default)]
struct FakeState {
    responses: VecDeque<Result<HttpResponse, HttpError>>,
    requests: Vec<HttpRequest>,
    cache: HashMap<String, (String, u64)>,
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

    fn queue_json(&self, status: u16, body: Value) {
        self.queue(Ok(json_response(status, &[], &body.to_string())));
    }

    fn queue_token(&self, token: &str) {
        self.queue_json(200, token_body(token, 3600));
    }

    fn requests(&self) -> Vec<HttpRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    fn queued_responses_left(&self) -> usize {
        self.state.lock().unwrap().responses.len()
    }

    fn cache(&self) -> HashMap<String, (String, u64)> {
        self.state.lock().unwrap().cache.clone()
    }

    /// Drops every cached value, as if their time to live had passed.
    fn expire_cache(&self) {
        self.state.lock().unwrap().cache.clear();
    }

    fn logs_at(&self, level_filter: LogLevel) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.logs.iter().filter(|(level, _)| *level == level_filter).map(|(_, line)| line.clone()).collect()
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
        let url = request.url.to_string();
        state.requests.push(request);
        let response = state.responses.pop_front().unwrap_or_else(|| panic!("the test queued no response for {url}"));
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

fn settings_for_test() -> Settings {
    Settings {
        base_url: BASE_URL.to_string(),
        token_url: TOKEN_URL.to_string(),
        client_id: CLIENT_ID.to_string(),
        client_secret: CLIENT_SECRET.to_string(),
        scope: "medi_api".to_string(),
        events_count: 100,
        timeout_ms: 2_500,
    }
}

fn connector(host: &FakeHost) -> Kontur {
    connector_with(host, settings_for_test())
}

fn connector_with(host: &FakeHost, settings: Settings) -> Kontur {
    Kontur::create(settings, HostContext::new(host.host_box())).unwrap()
}

fn json_response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    let mut all_headers = vec![Tuple2(RString::from("content-type"), RString::from("application/json"))];
    all_headers.extend(headers.iter().map(|(name, value)| Tuple2(RString::from(*name), RString::from(*value))));
    HttpResponse { status, headers: RVec::from(all_headers), body: RVec::from(body.as_bytes().to_vec()) }
}

fn token_body(token: &str, expires_in: u64) -> Value {
    json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer", "scope": "medi_api"})
}

fn vendor_error(code: &str, message: &str) -> Value {
    json!({"error": {"errorCode": code, "message": message}, "innerErrors": []})
}

/// Returns the value of header `name` of `request`, or `None`.
fn header(request: &HttpRequest, name: &str) -> Option<String> {
    request
        .headers
        .iter()
        .find(|Tuple2(key, _)| key.eq_ignore_ascii_case(name))
        .map(|Tuple2(_, value)| value.to_string())
}

fn body_text(request: &HttpRequest) -> String {
    String::from_utf8(request.body.to_vec()).unwrap()
}

fn reply_json(reply: &uig_connector_api::Reply) -> Value {
    serde_json::from_str(&reply.data).unwrap()
}

#[test]
fn manifest_describes_plugin() {
    let manifest = Kontur::INFO.to_manifest();

    assert_eq!(manifest.name.as_str(), "kontur");
    assert_eq!(manifest.version.as_str(), env!("CARGO_PKG_VERSION"));
    assert!(manifest.capabilities.contains(uig_connector_api::Capabilities::SEND));
    assert!(manifest.capabilities.contains(uig_connector_api::Capabilities::POLL_FEED));
    assert_eq!(manifest.capabilities.names(), ["send", "poll_feed"]);
    assert_eq!(manifest.entities.iter().map(|entity| entity.as_str()).collect::<Vec<_>>(), ["message"]);
    serde_json::from_str::<Value>(&manifest.config_schema).unwrap();
}

#[test]
fn create_logs_settings_without_secret() {
    let host = FakeHost::default();

    connector(&host);

    let logs = host.all_logs();
    assert!(logs.contains("kontur connector ready"), "{logs}");
    assert!(logs.contains(CLIENT_ID), "{logs}");
    assert!(!logs.contains(CLIENT_SECRET), "{logs}");
    assert!(host.requests().is_empty());
}
