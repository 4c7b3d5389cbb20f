//! Calls to the Medi API v2 with a bearer token, renewed once when the API returns HTTP 401.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use uig_connector_api::reexports::RString;
use uig_connector_api::sdk::HostContext;
use uig_connector_api::{ConnectorError, HttpRequest, HttpResponse};

use crate::auth::TokenSource;
use crate::response::api_body;
use crate::settings::Settings;

/// Characters percent-encoded in a path segment or query value: everything except the
/// URL-unreserved characters `A-Z a-z 0-9 - . _ ~`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Client of the Medi API for one connector instance.
pub struct MediApi {
    host: HostContext,
    api_root: String,
    timeout_ms: u64,
    tokens: TokenSource,
}

impl MediApi {
    /// Creates the client for `settings`, which must have passed [`Settings::validate`].
    pub fn new(settings: &Settings, host: HostContext) -> Self {
        MediApi {
            api_root: settings.api_root().to_string(),
            timeout_ms: settings.timeout_ms,
            tokens: TokenSource::new(settings, host.clone()),
            host,
        }
    }

    /// `GET /V2/events`: reads up to `count` events of box `medi_id` after `last_event_pointer`,
    /// or from the start of the box when it is `None`.
    pub fn events(&self, medi_id: &str, last_event_pointer: Option<&str>, count: u32) -> Result<Value, ConnectorError> {
        let mut url = format!("{}/V2/events?mediId={}", self.api_root, encode(medi_id));
        if let Some(pointer) = last_event_pointer {
            url.push_str(&format!("&lastEventPointer={}", encode(pointer)));
        }
        url.push_str(&format!("&count={count}"));

        let request = HttpRequest::get(url);
        self.call(request, &format!("reading events of box {medi_id}"))
    }

    /// `GET /V2/messages/{messageId}`: reads one message with its metadata and base64 content.
    pub fn message(&self, message_id: &str) -> Result<Value, ConnectorError> {
        let url = format!("{}/V2/messages/{}", self.api_root, encode(message_id));

        let request = HttpRequest::get(url);
        self.call(request, &format!("reading message {message_id}"))
    }

    /// `POST /V2/messages`: sends a base64-encoded message from box `medi_id`.
    pub fn post_message(&self, medi_id: &str, message_base64: &str) -> Result<Value, ConnectorError> {
        let url = format!("{}/V2/messages", self.api_root);
        let body = serde_json::json!({"mediId": medi_id, "message": message_base64}).to_string();

        let request =
            HttpRequest::post(url, body.into_bytes()).header("Content-Type", "application/json; charset=utf-8");
        self.call(request, &format!("sending a message from box {medi_id}"))
    }

    /// Sends `request` with the current token and maps the response. On HTTP 401 the token is
    /// renewed and the request repeated once, so a second 401 becomes an auth error. Kontur
    /// rejects a request with 401 before processing it, so repeating a `POST` is safe.
    fn call(&self, mut request: HttpRequest, action: &str) -> Result<Value, ConnectorError> {
        request.timeout_ms = self.timeout_ms;
        request = request.header("Accept", "application/json");

        let token = self.tokens.current()?;
        let response = self.send_with_token(&request, &token, action)?;
        if response.status != 401 {
            return api_body(&response, action);
        }

        self.host.info(&format!(
            "Kontur rejected {action} with HTTP 401: renewing the access token and repeating the request once"
        ));
        let renewed = self.tokens.renew(&token)?;
        let response = self.send_with_token(&request, &renewed, action)?;
        api_body(&response, action)
    }

    fn send_with_token(
        &self,
        request: &HttpRequest,
        token: &str,
        action: &str,
    ) -> Result<HttpResponse, ConnectorError> {
        let request = request.clone().header("Authorization", &format!("Bearer {token}"));

        self.host.http(request).map_err(|http_error| {
            let mut error = http_error.into_connector_error();
            error.message = RString::from(format!("{action} at Kontur failed: {}", error.message));
            error
        })
    }
}

/// Percent-encodes a path segment or query value.
fn encode(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}
