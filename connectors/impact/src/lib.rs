//! UIG connector plugin for IMPACT: submits claims, policies and payments over JSON REST with HTTP
//! Basic authentication and refreshes their processing state.
//!
//! IMPACT accepts a message, responds with `QUEUED` and its own id, and finishes it later. The connector
//! returns a pending reply with that id, and the engine's status refresh queries IMPACT again until
//! the message is `DONE` or `ERROR`. The wire protocol is in docs/impact-api.md.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::value::RawValue;
use uig_connector_api::reexports::RString;
use uig_connector_api::sdk::{HostContext, PluginConnector, PluginInfo};
use uig_connector_api::{Capabilities, ConnectorError, HttpRequest, HttpResponse, RemoteState, Reply, SendRequest, StatusRequest};

pub mod protocol;
pub mod settings;

use protocol::SubmitBody;
use settings::Settings;

/// Every entity the plugin declares. `settings.entities` selects a subset of them.
pub const SUPPORTED_ENTITIES: [&str; 3] = ["claim", "policy", "payment"];

/// Text that replaces the password and the encoded credentials wherever they would appear in an
/// error message.
const REDACTED: &str = "***";

/// The IMPACT connector.
pub struct Impact {
    settings: Settings,
    host: HostContext,
    submit_url: String,
    /// Value of the `Authorization` header: `Basic` and the Base64 of `username:password`.
    authorization: String,
    /// The Base64 credentials alone, removed from error messages like the password.
    encoded_credentials: String,
}

/// Returns the idempotency key of a ledger message, the same on every attempt.
pub fn idempotency_key(message_id: i64) -> String {
    format!("uig-{message_id}")
}

impl PluginConnector for Impact {
    type Settings = Settings;

    const INFO: PluginInfo = PluginInfo {
        name: "impact",
        version: env!("CARGO_PKG_VERSION"),
        description: "IMPACT claims, policies and payments over JSON REST, with status refresh",
        capabilities: Capabilities(Capabilities::SEND.0 | Capabilities::REFRESH_STATUS.0),
        entities: &SUPPORTED_ENTITIES,
        config_schema: settings::CONFIG_SCHEMA,
    };

    fn create(settings: Settings, host: HostContext) -> Result<Self, ConnectorError> {
        settings.validate()?;

        let encoded_credentials = BASE64.encode(format!("{}:{}", settings.username, settings.password));
        host.info(&format!(
            "impact connector ready: submit_url={}, status_path={}, username={}, entities={}, timeout_ms={}",
            settings.submit_url(),
            settings.status_path,
            settings.username,
            settings.entities.join(","),
            settings.timeout_ms
        ));

        Ok(Impact {
            submit_url: settings.submit_url(),
            authorization: format!("Basic {encoded_credentials}"),
            encoded_credentials,
            settings,
            host,
        })
    }

    /// Submits the message to IMPACT under the idempotency key `uig-{message_id}`.
    ///
    /// The key is the same on every attempt, so IMPACT stores a message once however often the
    /// engine retries, and the request is marked idempotent. The reply is pending under IMPACT's
    /// id unless IMPACT finished the message at once.
    fn send(&self, request: &SendRequest) -> Result<Reply, ConnectorError> {
        let entity = request.entity.as_str();
        if !self.settings.accepts(entity) {
            return Err(ConnectorError::permanent(format!(
                "unknown entity {entity:?}: this impact connector sends only {}",
                self.settings.entities.join(", ")
            ))
            .with_code("unsupported_entity"));
        }
        let payload = serde_json::from_str::<&RawValue>(&request.payload).map_err(|error| {
            ConnectorError::permanent(format!("the message is not valid JSON: {error}")).with_code("invalid_payload")
        })?;

        let key = idempotency_key(request.message_id);
        let body = SubmitBody { entity, external_id: &key, payload };
        let body = serde_json::to_vec(&body).map_err(|error| {
            ConnectorError::permanent(format!("the submit body cannot be encoded: {error}")).with_code("invalid_payload")
        })?;

        let mut http_request = self
            .authorized(HttpRequest::post(self.submit_url.clone(), body))
            .header("Content-Type", "application/json")
            .header(&self.settings.idempotency_header, &key);
        http_request.idempotent = true;

        self.host.debug(&format!(
            "submitting {entity} to IMPACT (message_id={}, attempt={}, key={key})",
            request.message_id, request.attempt
        ));
        let response = self.exchange(http_request, &format!("submit of message {} to IMPACT", request.message_id))?;

        let reply = protocol::submit_reply(&response).map_err(|error| self.redact(error))?;
        self.log_state(request.message_id, &reply);
        Ok(reply)
    }

    /// Asks IMPACT for the state of the message it accepted under `request.external_id`.
    fn refresh_status(&self, request: &StatusRequest) -> Result<Reply, ConnectorError> {
        let Some(external_id) = request.external_id.as_ref().into_option() else {
            return Err(ConnectorError::permanent(format!(
                "message {} has no IMPACT id to ask about: IMPACT never accepted it, so send it again",
                request.message_id
            ))
            .with_code("missing_external_id"));
        };

        let http_request = self.authorized(HttpRequest::get(self.settings.status_url(external_id)));
        let operation = format!("status query of IMPACT message {external_id} (message_id={})", request.message_id);
        let response = self.exchange(http_request, &operation)?;

        let reply = protocol::status_reply(&response, external_id).map_err(|error| self.redact(error))?;
        self.log_state(request.message_id, &reply);
        Ok(reply)
    }
}

impl Impact {
    /// Adds the credentials, the `Accept` header and the configured timeout to a request.
    fn authorized(&self, request: HttpRequest) -> HttpRequest {
        let mut request = request.header("Authorization", &self.authorization).header("Accept", "application/json");
        request.timeout_ms = self.settings.timeout_ms;
        request
    }

    /// Executes a request through the host. A failed exchange becomes a connector error that
    /// names `operation`: transient, or config when the engine refused the URL.
    fn exchange(&self, request: HttpRequest, operation: &str) -> Result<HttpResponse, ConnectorError> {
        self.host.http(request).map_err(|http_error| {
            let mut error = http_error.into_connector_error();
            error.message = RString::from(format!("{operation} failed: {}", error.message));
            self.redact(error)
        })
    }

    fn log_state(&self, message_id: i64, reply: &Reply) {
        let external_id = reply.external_id.as_ref().map(|id| id.as_str()).unwrap_or("-");
        let state = match reply.state {
            RemoteState::PENDING => "pending",
            RemoteState::FAILED => "failed",
            _ => "done",
        };
        self.host.debug(&format!("IMPACT reports message_id={message_id} {state} (IMPACT id {external_id})"));
    }

    /// Replaces the password and the encoded credentials in the error's message and code.
    fn redact(&self, mut error: ConnectorError) -> ConnectorError {
        error.message = RString::from(self.redact_text(&error.message));
        error.code = RString::from(self.redact_text(&error.code));
        error
    }

    /// Replaces every occurrence of the secrets in `text`. A very short password also replaces
    /// unrelated text: the message gets garbled, but the password cannot remain in it.
    fn redact_text(&self, text: &str) -> String {
        text.replace(&self.encoded_credentials, REDACTED).replace(&self.settings.password, REDACTED)
    }
}

uig_connector_api::export_connector!(Impact);

#[cfg(test)]
mod tests;
