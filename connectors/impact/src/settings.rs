//! Settings of the IMPACT connector, their JSON Schema and their checks.

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Deserialize;
use uig_connector_api::ConnectorError;

use crate::SUPPORTED_ENTITIES;

/// JSON Schema of [`Settings`], published in the plugin manifest.
pub const CONFIG_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "IMPACT connector settings",
  "type": "object",
  "additionalProperties": false,
  "required": ["base_url", "username", "password"],
  "properties": {
    "base_url": {
      "type": "string",
      "pattern": "^https?://[^?#]+$",
      "description": "Base URL of the IMPACT API without query or fragment. submit_path and status_path are appended to it",
      "examples": ["http://127.0.0.1:9090/impact"]
    },
    "username": {
      "type": "string",
      "minLength": 1,
      "pattern": "^[^:]+$",
      "description": "IMPACT user for HTTP Basic authentication. It must not contain a colon"
    },
    "password": {
      "type": "string",
      "minLength": 1,
      "writeOnly": true,
      "description": "Password of the IMPACT user, sent only in the Authorization header and never logged"
    },
    "submit_path": {
      "type": "string",
      "pattern": "^/",
      "default": "/api/v1/messages",
      "description": "Path of the submit endpoint, appended to base_url. The connector POSTs every message there"
    },
    "status_path": {
      "type": "string",
      "pattern": "^/.*\\{id\\}",
      "default": "/api/v1/messages/{id}",
      "description": "Path of the status endpoint, appended to base_url. {id} is replaced by the percent-encoded IMPACT id"
    },
    "idempotency_header": {
      "type": "string",
      "pattern": "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
      "default": "Idempotency-Key",
      "description": "Name of the request header that carries uig-{message_id}, the key IMPACT uses to drop repeated submits"
    },
    "entities": {
      "type": "array",
      "items": {"enum": ["claim", "policy", "payment"]},
      "minItems": 1,
      "uniqueItems": true,
      "default": ["claim", "policy", "payment"],
      "description": "Entities this connector instance sends to IMPACT, as IMPACT message types. Others are rejected as permanent errors"
    },
    "timeout_ms": {
      "type": "integer",
      "minimum": 0,
      "default": 10000,
      "description": "Timeout of one HTTP exchange with IMPACT in milliseconds. 0 uses the engine's default"
    }
  }
}"#;

/// The placeholder in `status_path` that the IMPACT id replaces.
pub const ID_PLACEHOLDER: &str = "{id}";

/// Characters percent-encoded in the IMPACT id when it goes into the status path: controls, the
/// space and everything that would end or restructure a path segment.
const PATH_SEGMENT: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'%').add(b'/').add(b'<').add(b'>').add(b'?').add(b'\\').add(b'`').add(b'{').add(b'}');

/// Header names that the connector sets itself, so `idempotency_header` cannot take them.
const RESERVED_HEADERS: [&str; 4] = ["authorization", "content-type", "accept", "content-length"];

/// The connector's `settings` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Base URL of the IMPACT API, such as `http://127.0.0.1:9090/impact`. Required. It must start
    /// with `http://` or `https://` and have no query or fragment. A trailing `/` is ignored.
    pub base_url: String,

    /// IMPACT user for HTTP Basic authentication. Required, non-empty and without `:`, because
    /// Basic authentication separates the user from the password with the first colon.
    pub username: String,

    /// Password of the IMPACT user. Required and non-empty. Sent only in the `Authorization`
    /// header, never logged, and removed from every error message the connector returns.
    pub password: String,

    /// Path of the submit endpoint, appended to `base_url`. Default `/api/v1/messages`. It must
    /// start with `/`.
    #[serde(default = "default_submit_path")]
    pub submit_path: String,

    /// Path of the status endpoint, appended to `base_url`. Default `/api/v1/messages/{id}`. It
    /// must start with `/` and contain `{id}`, which is replaced by the percent-encoded IMPACT id.
    #[serde(default = "default_status_path")]
    pub status_path: String,

    /// Name of the header that carries the idempotency key `uig-{message_id}`. Default
    /// `Idempotency-Key`. It must be a valid HTTP header name other than one the connector sets
    /// itself (`Authorization`, `Content-Type`, `Accept`, `Content-Length`).
    #[serde(default = "default_idempotency_header")]
    pub idempotency_header: String,

    /// Entities this instance sends, each becoming the IMPACT message `type`. Default `claim`,
    /// `policy` and `payment`, which is every entity the plugin declares. The list must be a
    /// non-empty subset of them without repeats.
    #[serde(default = "default_entities")]
    pub entities: Vec<String>,

    /// Timeout of one HTTP exchange with IMPACT in milliseconds. Default 10000, and 0 uses the
    /// engine's default HTTP timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_submit_path() -> String {
    "/api/v1/messages".to_string()
}

fn default_status_path() -> String {
    format!("/api/v1/messages/{ID_PLACEHOLDER}")
}

fn default_idempotency_header() -> String {
    "Idempotency-Key".to_string()
}

fn default_entities() -> Vec<String> {
    SUPPORTED_ENTITIES.iter().map(|entity| entity.to_string()).collect()
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl Settings {
    /// Checks the values that deserialization accepts but the connector cannot use.
    ///
    /// Errors are [`ConnectorError::config`] naming the field path and the fix. No message
    /// contains the password.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        self.validate_base_url()?;

        if self.username.trim().is_empty() {
            return Err(ConnectorError::config(
                "settings.username is empty: set it to the IMPACT user that the gateway logs in as",
            ));
        }
        if self.username.contains(':') {
            return Err(ConnectorError::config(format!(
                "settings.username {:?} contains \":\", which HTTP Basic authentication cannot carry in a user name: \
                 ask the IMPACT administrators for a user name without a colon",
                self.username
            )));
        }
        if self.password.is_empty() {
            return Err(ConnectorError::config(
                "settings.password is empty: set it to the password of the IMPACT user",
            ));
        }

        validate_path("settings.submit_path", &self.submit_path)?;
        validate_path("settings.status_path", &self.status_path)?;
        if !self.status_path.contains(ID_PLACEHOLDER) {
            return Err(ConnectorError::config(format!(
                "settings.status_path {:?} has no {ID_PLACEHOLDER} placeholder: add it where the IMPACT id goes, \
                 such as \"/api/v1/messages/{ID_PLACEHOLDER}\"",
                self.status_path
            )));
        }

        self.validate_idempotency_header()?;
        self.validate_entities()
    }

    fn validate_base_url(&self) -> Result<(), ConnectorError> {
        let base_url = self.base_url.trim();
        let has_scheme = base_url.starts_with("http://") || base_url.starts_with("https://");
        if !has_scheme {
            return Err(ConnectorError::config(format!(
                "settings.base_url {base_url:?} is invalid: it must start with http:// or https://, \
                 such as \"http://127.0.0.1:9090/impact\""
            )));
        }

        let host_part = base_url.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
        if host_part.trim_matches('/').is_empty() {
            return Err(ConnectorError::config(format!(
                "settings.base_url {base_url:?} has no host: set it to the IMPACT address, \
                 such as \"http://127.0.0.1:9090/impact\""
            )));
        }

        if base_url.contains(['?', '#']) {
            return Err(ConnectorError::config(format!(
                "settings.base_url {base_url:?} contains a query or fragment: remove everything from \"?\" or \"#\" on, \
                 and put a query the endpoints need into submit_path and status_path"
            )));
        }
        Ok(())
    }

    fn validate_idempotency_header(&self) -> Result<(), ConnectorError> {
        let name = self.idempotency_header.as_str();
        if name.is_empty() || !name.bytes().all(is_header_name_byte) {
            return Err(ConnectorError::config(format!(
                "settings.idempotency_header {name:?} is not a valid HTTP header name: use letters, digits and \
                 \"-\", such as \"Idempotency-Key\""
            )));
        }
        if RESERVED_HEADERS.iter().any(|reserved| reserved.eq_ignore_ascii_case(name)) {
            return Err(ConnectorError::config(format!(
                "settings.idempotency_header {name:?} is a header the connector sets itself: \
                 use the header IMPACT reads the idempotency key from, such as \"Idempotency-Key\""
            )));
        }
        Ok(())
    }

    fn validate_entities(&self) -> Result<(), ConnectorError> {
        let supported = SUPPORTED_ENTITIES.join(", ");
        if self.entities.is_empty() {
            return Err(ConnectorError::config(format!(
                "settings.entities is empty: list the entities this connector sends, from {supported}"
            )));
        }

        for (index, entity) in self.entities.iter().enumerate() {
            if !SUPPORTED_ENTITIES.contains(&entity.as_str()) {
                // NOTE: the engine checks every send against the entities of the plugin manifest,
                // which is fixed at build time, so settings can narrow the list but not extend it.
                return Err(ConnectorError::config(format!(
                    "settings.entities[{index}] {entity:?} is not an entity of the impact plugin: \
                     valid entities are {supported}"
                )));
            }
            if self.entities[..index].contains(entity) {
                return Err(ConnectorError::config(format!(
                    "settings.entities[{index}] {entity:?} is listed twice: remove the repeat"
                )));
            }
        }
        Ok(())
    }

    /// Reports whether this instance sends `entity`.
    pub fn accepts(&self, entity: &str) -> bool {
        self.entities.iter().any(|accepted| accepted == entity)
    }

    /// Returns the submit URL, `{base_url}{submit_path}`.
    pub fn submit_url(&self) -> String {
        format!("{}{}", self.trimmed_base_url(), self.submit_path)
    }

    /// Returns the status URL of the IMPACT message `external_id`, with `{id}` in `status_path`
    /// replaced by the id percent-encoded as a path segment.
    pub fn status_url(&self, external_id: &str) -> String {
        let encoded_id = utf8_percent_encode(external_id, PATH_SEGMENT).to_string();
        format!("{}{}", self.trimmed_base_url(), self.status_path.replace(ID_PLACEHOLDER, &encoded_id))
    }

    fn trimmed_base_url(&self) -> &str {
        self.base_url.trim().trim_end_matches('/')
    }
}

/// Checks that an endpoint path starts with `/` and contains no whitespace, control character
/// or fragment.
fn validate_path(field: &str, path: &str) -> Result<(), ConnectorError> {
    if !path.starts_with('/') {
        return Err(ConnectorError::config(format!(
            "{field} {path:?} must start with \"/\", such as \"/api/v1/messages\""
        )));
    }
    if path.chars().any(|character| character.is_whitespace() || character.is_control()) {
        return Err(ConnectorError::config(format!(
            "{field} {path:?} contains whitespace or a control character: percent-encode it or remove it"
        )));
    }
    if path.contains('#') {
        return Err(ConnectorError::config(format!(
            "{field} {path:?} contains a fragment: remove everything from \"#\" on, because HTTP never sends it"
        )));
    }
    Ok(())
}

/// Reports whether `byte` may appear in an HTTP header name (a `tchar` of RFC 9110, section 5.6.2).
fn is_header_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Prints every field except the password, so settings can go into logs and test failures.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("submit_path", &self.submit_path)
            .field("status_path", &self.status_path)
            .field("idempotency_header", &self.idempotency_header)
            .field("entities", &self.entities)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests;
