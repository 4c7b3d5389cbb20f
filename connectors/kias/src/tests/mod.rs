//! Tests of the connector against a fake host that records requests and serves canned KIAS
//! responses. The files in `fixtures/` are responses captured from `uig-mock`.

mod directory;
mod entities;
mod responses;
mod session;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use uig_connector_api::reexports::{RArc, ROption, RResult, RStr, RString, RVec, TD_Opaque, Tuple2};
use uig_connector_api::{Host, HostBox, Host_TO, HttpError, HttpRequest, HttpResponse, LogLevel, SendRequest};

use super::*;
use crate::xml::Element;

pub const PASSWORD: &str = "kias-secret-Пароль";
pub const SID: &str = "5F1C2B9A7D3E4C6B8A0F1E2D3C4B5A69";

/// State shared by all clones of a [`FakeHost`].
#[derive(Default)]
struct FakeState {
    responses: VecDeque<Result<HttpResponse, HttpError>>,
    requests: Vec<HttpRequest>,
    logs: Vec<(LogLevel, String)>,
}

/// Host that records requests and log lines and serves queued responses.
#[derive(Clone, Default)]
pub struct FakeHost {
    state: Arc<Mutex<FakeState>>,
}

impl FakeHost {
    pub fn queue(&self, response: Result<HttpResponse, HttpError>) {
        self.state.lock().unwrap().responses.push_back(response);
    }

    /// Queues an HTTP 200 SOAP 1.1 response carrying `data`.
    pub fn queue_data(&self, data: &str) {
        self.queue(Ok(soap_response(200, &exec_envelope(data))));
    }

    pub fn queue_auth(&self, sid: &str) {
        self.queue_data(&format!("<data><result><Sid>{sid}</Sid></result></data>"));
    }

    pub fn queue_result(&self, result: &str) {
        self.queue_data(&format!("<data><result>{result}</result></data>"));
    }

    pub fn queue_error(&self, code: &str, text: &str) {
        self.queue_data(&format!("<data><error><code>{code}</code><text>{text}</text></error></data>"));
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Returns the `pData` documents of the recorded requests.
    pub fn calls(&self) -> Vec<KiasCall> {
        self.requests().iter().map(KiasCall::from_request).collect()
    }

    pub fn logs_at(&self, level: LogLevel) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.logs.iter().filter(|(line_level, _)| *line_level == level).map(|(_, line)| line.clone()).collect()
    }

    pub fn all_logs(&self) -> String {
        let state = self.state.lock().unwrap();
        state.logs.iter().map(|(_, line)| line.as_str()).collect::<Vec<_>>().join("\n")
    }

    pub fn host_box(&self) -> HostBox {
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

/// One recorded `ExecProc` call, read back from the request body.
#[derive(Debug)]
pub struct KiasCall {
    pub procedure: String,
    pub app_id: String,
    pub params: Element,
}

impl KiasCall {
    fn from_request(request: &HttpRequest) -> Self {
        let body = std::str::from_utf8(&request.body).unwrap();
        let envelope = Element::parse_document(body).unwrap();
        let pdata = &envelope.child("Body").unwrap().child("ExecProc").unwrap().child("pData").unwrap().text;
        let data = Element::parse_document(pdata).unwrap();
        let request = data.child("request").unwrap();
        KiasCall {
            procedure: request.child("reqName").unwrap().text.clone(),
            app_id: request.child("AppId").unwrap().text.clone(),
            params: request.child("params").unwrap().clone(),
        }
    }

    /// Returns the text of a parameter, or `None` when it is missing.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.children.iter().find(|param| param.name == name).map(|param| param.text.as_str())
    }

    /// Returns the parameter names in order.
    pub fn param_names(&self) -> Vec<&str> {
        self.params.children.iter().map(|param| param.name.as_str()).collect()
    }
}

pub fn exec_envelope(data: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\
         <soap:Body><ExecProcResponse xmlns=\"http://inslab.ru/\"><ExecProcResult>{data}</ExecProcResult>\
         </ExecProcResponse></soap:Body></soap:Envelope>"
    )
}

pub fn soap_response(status: u16, body: &str) -> HttpResponse {
    response_bytes(status, "text/xml; charset=utf-8", body.as_bytes().to_vec())
}

pub fn response_bytes(status: u16, content_type: &str, body: Vec<u8>) -> HttpResponse {
    let headers = vec![Tuple2(RString::from("content-type"), RString::from(content_type))];
    HttpResponse { status, headers: RVec::from(headers), body: RVec::from(body) }
}

pub fn settings_for_test() -> Settings {
    uig_connector_api::sdk::parse_settings(
        &json!({
            "endpoint": "http://127.0.0.1:9090/kiasSvc.asmx",
            "app_id": 1001,
            "user": "demo",
            "password": PASSWORD,
            "directories": {"car_make": 2001, "region": 2002},
            "timeout_ms": 2500
        })
        .to_string(),
    )
    .unwrap()
}

pub fn connector(host: &FakeHost, settings: Settings) -> Kias {
    Kias::create(settings, HostContext::new(host.host_box())).unwrap()
}

pub fn send_request(entity: &str, payload: Value, attempt: u32) -> SendRequest {
    SendRequest { message_id: 42, entity: entity.into(), payload: payload.to_string().into(), attempt }
}

pub fn notify_request() -> SendRequest {
    send_request(
        "notify",
        json!({"event": "POLICY_ISSUED", "policy_isn": "5500123", "comment": "Клиент «Иванов» & <сын>"}),
        1,
    )
}

pub fn reply_json(reply: &Reply) -> Value {
    serde_json::from_str(&reply.data).unwrap()
}
