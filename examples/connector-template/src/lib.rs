//! The relay connector, a UIG connector plugin to copy: it POSTs each message as JSON to one HTTP
//! endpoint and returns the endpoint's JSON response as the message's data.
//!
//! The request is `POST {base_url}{path}` with the body
//! `{"message_id": 42, "entity": "record", "payload": <the client's message>}` and the header
//! `Idempotency-Key: uig-42`. A 2xx response with a JSON body (or no body) delivers the message.
//! Every other response becomes a connector error whose kind decides whether the engine retries.

use serde::Serialize;
use serde_json::value::RawValue;
use uig_connector_api::reexports::RString;
use uig_connector_api::sdk::{HostContext, PluginConnector, PluginInfo};
use uig_connector_api::{Capabilities, ConnectorError, ErrorKind, HttpRequest, HttpResponse, Reply, SendRequest};

pub mod settings;

use settings::Settings;

/// The entity this connector accepts. The engine rejects sends of any other entity before they
/// reach the plugin.
pub const RECORD_ENTITY: &str = "record";

/// Text that replaces the API key wherever it would appear in an error message.
const REDACTED: &str = "***";

/// Body of the request to the endpoint.
#[derive(Serialize)]
struct RelayBody<'a> {
    message_id: i64,
    entity: &'a str,
    /// The client's message, embedded byte for byte.
    payload: &'a RawValue,
}

/// One configured relay connector. The engine creates one per `[connectors.NAME]` table and calls
/// it from several threads at once, so it keeps no mutable state.
pub struct Relay {
    settings: Settings,
    host: HostContext,
    endpoint: String,
}

impl PluginConnector for Relay {
    type Settings = Settings;

    const INFO: PluginInfo = PluginInfo {
        name: "relay",
        version: env!("CARGO_PKG_VERSION"),
        description: "posts each message as JSON to one HTTP endpoint and returns its JSON response",
        capabilities: Capabilities::SEND,
        entities: &[RECORD_ENTITY],
        config_schema: settings::CONFIG_SCHEMA,
    };

    /// Checks the settings and logs where the connector sends. The SDK has already parsed them,
    /// so a missing or unknown key never reaches this point.
    fn create(settings: Settings, host: HostContext) -> Result<Self, ConnectorError> {
        settings.validate()?;

        let endpoint = settings.endpoint();
        host.info(&format!(
            "relay connector ready: endpoint={endpoint}, authentication={}, timeout_ms={}",
            if settings.api_key.is_some() { "bearer" } else { "none" },
            settings.timeout_ms
        ));
        Ok(Relay { settings, host, endpoint })
    }

    fn send(&self, request: &SendRequest) -> Result<Reply, ConnectorError> {
        let payload = serde_json::from_str::<&RawValue>(&request.payload).map_err(|error| {
            ConnectorError::permanent(format!("the message is not valid JSON: {error}")).with_code("invalid_payload")
        })?;
        let body = RelayBody { message_id: request.message_id, entity: &request.entity, payload };
        let body = serde_json::to_vec(&body).map_err(|error| {
            ConnectorError::permanent(format!("the request body cannot be encoded: {error}")).with_code("invalid_payload")
        })?;

        // The key stays the same on every attempt, so a recipient that honours it stores a
        // retried message once. That makes the POST safe to repeat.
        let key = format!("uig-{}", request.message_id);
        let mut http_request = HttpRequest::post(self.endpoint.clone(), body)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("Idempotency-Key", &key);
        if let Some(api_key) = &self.settings.api_key {
            http_request = http_request.header("Authorization", &format!("Bearer {api_key}"));
        }
        http_request.timeout_ms = self.settings.timeout_ms;
        http_request.idempotent = true;

        self.host.debug(&format!("relaying message_id={} attempt={}", request.message_id, request.attempt));
        let response = self.host.http(http_request).map_err(|http_error| {
            // Transport failures are transient. A URL outside allowed_urls is a config error.
            let mut error = http_error.into_connector_error();
            error.message = RString::from(format!("request to {} failed: {}", self.endpoint, error.message));
            self.redact(error)
        })?;

        reply(&response).map_err(|error| self.redact(error))
    }
}

/// Maps the endpoint's response to a reply or to a connector error.
///
/// - 2xx with a JSON body, or with none: delivered, and the body (or `null`) is the data.
/// - 2xx with another body: transient, because a proxy in between may have responded.
/// - 401 and 403: auth, so an operator checks the API key. No retry.
/// - 408, 429 and 5xx: transient, retried with backoff, and `Retry-After` in seconds is the
///   earliest retry.
/// - Any other status, such as 400, 404 or 422: permanent. No retry.
pub fn reply(response: &HttpResponse) -> Result<Reply, ConnectorError> {
    let status = response.status;
    let body = String::from_utf8_lossy(&response.body);

    let (kind, summary) = match status {
        200..=299 if body.trim().is_empty() => return Ok(Reply::done("null")),
        200..=299 => match serde_json::from_str::<&RawValue>(&body) {
            Ok(_) => return Ok(Reply::done(body.into_owned())),
            Err(error) => (ErrorKind::TRANSIENT, format!("the endpoint responded with a body that is not JSON ({error})")),
        },
        401 | 403 => (ErrorKind::AUTH, "the endpoint rejected the credentials: check settings.api_key".to_string()),
        408 | 429 | 500..=599 => (ErrorKind::TRANSIENT, "the endpoint is unavailable, retry later".to_string()),
        _ => (ErrorKind::PERMANENT, "the endpoint rejected the message".to_string()),
    };

    let snippet: String = body.chars().take(200).collect();
    let mut error = ConnectorError::new(kind, format!("{summary} (HTTP {status}: {snippet:?})")).with_code(format!("http_{status}"));
    if kind == ErrorKind::TRANSIENT {
        let retry_after_seconds = response.header("retry-after").and_then(|value| value.trim().parse::<u64>().ok());
        if let Some(seconds) = retry_after_seconds {
            error = error.with_retry_after_ms(seconds.saturating_mul(1000));
        }
    }
    Err(error)
}

impl Relay {
    /// Removes the API key from an error, in case the endpoint or a proxy echoed it.
    fn redact(&self, mut error: ConnectorError) -> ConnectorError {
        if let Some(api_key) = &self.settings.api_key {
            error.message = RString::from(error.message.replace(api_key.as_str(), REDACTED));
        }
        error
    }
}

// Generates the exported root module through which the engine finds and creates the connector.
uig_connector_api::export_connector!(Relay);

#[cfg(test)]
mod tests;
